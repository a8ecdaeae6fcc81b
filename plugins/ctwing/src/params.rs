//! Reading CTWing's arguments leniently: query values arrive percent-encoded, optional ones
//! are sent even when unset (`None` from the Python SDK, `""` from others), and numbers come
//! as JSON numbers or as strings (`"outTime": "24"`). Each problem is reported by name.

use ota_plugin_sdk::Request;
use serde_json::{Map, Value};

use crate::envelope::ApiError;

/// The decoded query parameters.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn of(req: &Request) -> Self {
        Query(req.query_pairs())
    }

    /// Every pair as it arrived (decoded), for the string to sign.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// A value, with the SDKs' spellings of "unset" (`""`, `None`, `null`) as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !unset(v))
    }

    /// Refuse control characters (e.g. `%00`) in any value: no id, name or search term has
    /// them, and some databases cannot store them.
    pub fn check_printable(&self) -> Result<(), ApiError> {
        match self.0.iter().find(|(_, v)| v.chars().any(char::is_control)) {
            Some((k, _)) => Err(ApiError::Bad(format!("{k} contains control characters"))),
            None => Ok(()),
        }
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::Bad(format!("missing query parameter {name}")))
    }

    pub fn required_id(&self, name: &str) -> Result<u64, ApiError> {
        number(name, self.required(name)?)
    }

    pub fn optional_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name).map(|v| number(name, v)).transpose()
    }
}

fn unset(v: &str) -> bool {
    v.is_empty() || v == "None" || v == "null" || v == "undefined"
}

/// A non-negative integer written in decimal.
pub fn number(name: &str, v: &str) -> Result<u64, ApiError> {
    v.parse::<u64>()
        .map_err(|_| ApiError::Bad(format!("{name} must be a non-negative integer, not {v:?}")))
}

/// A JSON request body that is an object. The SDKs send JSON under any content type.
pub struct Body(Map<String, Value>);

impl Body {
    pub fn parse(req: &Request) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(req.body()) {
            Ok(Value::Object(m)) => Ok(Body(m)),
            Ok(_) => Err(ApiError::Bad("the body must be a JSON object".into())),
            Err(e) => Err(ApiError::Bad(format!("malformed JSON body: {e}"))),
        }
    }

    /// A field; `null` and `""` count as absent (in bodies `"None"` is a value: only the
    /// query carries the Python SDK's unset marker).
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.trim().is_empty(),
            _ => true,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An integer sent as a number or a numeric string.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::Bad(format!("{name} must be an integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::Bad(format!("{name} must be an integer, not {s:?}"))),
            Some(_) => Err(ApiError::Bad(format!("{name} must be an integer"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, ApiError> {
        self.opt_int(name)?
            .ok_or_else(|| ApiError::Bad(format!("missing field {name}")))
    }

    /// A string (numbers are accepted and written in decimal).
    pub fn opt_string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::Bad(format!("{name} must be a string"))),
        }
    }

    pub fn string(&self, name: &str) -> Result<String, ApiError> {
        self.opt_string(name)?
            .ok_or_else(|| ApiError::Bad(format!("missing field {name}")))
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A comma-separated list of ids (`"1,2, 3"`), at least one.
pub fn id_list(name: &str, v: &str) -> Result<Vec<u64>, ApiError> {
    let ids: Vec<u64> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| number(name, s))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Err(ApiError::Bad(format!("{name} names no id")));
    }
    Ok(ids)
}
