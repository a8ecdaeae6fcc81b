//! Reading IoTStack's JSON bodies leniently but precisely: each field's absence, wrong type
//! and bad value is reported by name, and the spellings real clients send (`"true"`, `"12"`,
//! `X86_64`) are accepted and normalized.

use serde_json::{Map, Value};

use crate::errors::ApiError;

/// A request body that is known to be a JSON object.
pub struct Body(Map<String, Value>);

impl Body {
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Body(map)),
            Ok(_) => Err(ApiError::Malformed("expected a JSON object".into())),
            Err(e) => Err(ApiError::Malformed(e.to_string())),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required non-empty string (surrounding whitespace trimmed).
    pub fn string(&self, name: &'static str) -> Result<String, ApiError> {
        self.opt_string(name)?.ok_or(ApiError::Missing(name))
    }

    /// An optional string; `null` counts as absent, `""` is refused.
    pub fn opt_string(&self, name: &'static str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(ApiError::BadValue(name, "must not be empty".into()))
            }
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(ApiError::WrongType(name, "a string")),
        }
    }

    /// A required non-negative integer; a decimal string is accepted too.
    pub fn id(&self, name: &'static str) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Err(ApiError::Missing(name)),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or(ApiError::WrongType(name, "a positive integer")),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| ApiError::WrongType(name, "a positive integer")),
            Some(_) => Err(ApiError::WrongType(name, "a positive integer")),
        }
    }

    /// An optional boolean; `"true"`/`"false"` and `1`/`0` are accepted too.
    pub fn opt_bool(&self, name: &'static str) -> Result<Option<bool>, ApiError> {
        let wrong = || ApiError::WrongType(name, "a boolean");
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(wrong()),
            },
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(wrong()),
            },
            Some(_) => Err(wrong()),
        }
    }
}

/// Match `value` case-insensitively against the allowed spellings and return the canonical one.
pub fn one_of(
    name: &'static str,
    value: &str,
    allowed: &[&'static str],
) -> Result<&'static str, ApiError> {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value))
        .copied()
        .ok_or_else(|| {
            ApiError::BadValue(
                name,
                format!(
                    "unsupported value {value:?}; supported: {}",
                    allowed.join(", ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_types() {
        let b = Body::parse(br#"{"A":"12","B":"true","C":1,"D":null,"E":7}"#).unwrap();
        assert_eq!(b.id("A").unwrap(), 12);
        assert_eq!(b.opt_bool("B").unwrap(), Some(true));
        assert_eq!(b.opt_bool("C").unwrap(), Some(true));
        assert_eq!(b.opt_string("D").unwrap(), None);
        assert!(matches!(b.string("E"), Err(ApiError::WrongType("E", _))));
        assert!(matches!(b.string("Z"), Err(ApiError::Missing("Z"))));
    }

    #[test]
    fn refuses_non_objects() {
        assert!(matches!(Body::parse(b"[1]"), Err(ApiError::Malformed(_))));
        assert!(matches!(Body::parse(b"{"), Err(ApiError::Malformed(_))));
    }

    #[test]
    fn canonical_spelling() {
        assert_eq!(
            one_of("CPUArch", "X86_64", &["x86_64", "arm7"]).unwrap(),
            "x86_64"
        );
        assert!(one_of("OS", "windows", &["linux"]).is_err());
    }
}
