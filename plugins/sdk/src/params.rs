//! Request parameters as vendor clients send them: the query string, and a JSON object or a
//! form in the body (whatever the Content-Type says: real clients send every spelling, or
//! none). Numbers arrive as numbers or strings; both are accepted.

use serde_json::{Map, Value};

use crate::Request;

/// A parameter that is missing, ill-typed or unparsable; the message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

/// A 32-hex-digit MD5 as sent (any case), lower-cased; `None` when it is not one.
pub fn md5_hex(value: &str) -> Option<String> {
    let v = value.trim();
    (v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every parameter of a request, body over query.
pub struct Params(Map<String, Value>);

impl Params {
    /// Query and body. A body that is neither a JSON object nor a form is a bad parameter.
    pub fn of(req: &Request) -> Result<Self, ParamError> {
        let mut map = Map::new();
        for (k, v) in req.query_pairs() {
            map.insert(k, Value::String(v));
        }
        let body = req.body();
        if !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => map.extend(o),
                Ok(_) => return Err(ParamError("the body must be a JSON object".into())),
                Err(_) if body.trim_ascii_start().first() == Some(&b'{') => {
                    return Err(ParamError("the body is not valid JSON".into()));
                }
                Err(_) => {
                    for (k, v) in req.form_pairs() {
                        map.insert(k, Value::String(v));
                    }
                }
            }
        }
        Ok(Params(map))
    }

    /// Parameters from an already parsed JSON object (e.g. a nested one).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Params(map)
    }

    /// A parameter's value as sent; `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.present(name)
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A text parameter (a number is taken as its text); `None` when absent or null.
    pub fn text(&self, name: &str) -> Result<Option<String>, ParamError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ParamError(format!("{name} must be a string"))),
        }
    }

    /// A required, non-empty text parameter.
    pub fn required(&self, name: &str) -> Result<String, ParamError> {
        self.text(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ParamError(format!("missing {name}")))
    }

    /// An integer parameter given as a number or a numeric string.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ParamError> {
        let bad = || ParamError(format!("{name} must be an integer"));
        match self.present(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A list of strings: a JSON list, or one comma-separated string (forms cannot carry
    /// lists). `Some(empty)` when given as `[]` or `""`.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, ParamError> {
        let bad = || ParamError(format!("{name} must be a list of strings"));
        match self.present(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(bad()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
            )),
            Some(_) => Err(bad()),
        }
    }
}
