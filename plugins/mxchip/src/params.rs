//! Request parameters as MXChip's clients send them: the query string, and a JSON object or
//! a form in the body (Django REST framework parses either, whatever the content type says).
//! Numbers arrive as numbers or strings; both are accepted.

use ota_plugin_sdk::Request;
use serde_json::{Map, Value};

use crate::meta::MxError;

/// Every parameter of a request, body over query.
pub struct Params(Map<String, Value>);

impl Params {
    /// Query and body. A body that is neither a JSON object nor a form is a bad parameter.
    pub fn of(req: &Request) -> Result<Self, MxError> {
        let mut map = Map::new();
        for (k, v) in req.query_pairs() {
            map.insert(k, Value::String(v));
        }
        let body = req.body();
        if !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => map.extend(o),
                Ok(_) => return Err(MxError::BadParam("the body must be a JSON object".into())),
                Err(_) if body.trim_ascii_start().first() == Some(&b'{') => {
                    return Err(MxError::BadParam("the body is not valid JSON".into()));
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

    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A text parameter (a number is taken as its text); `None` when absent or null.
    pub fn text(&self, name: &str) -> Result<Option<String>, MxError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(MxError::BadParam(format!("{name} must be a string"))),
        }
    }

    /// A required, non-empty text parameter.
    pub fn required(&self, name: &str) -> Result<String, MxError> {
        self.text(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| MxError::BadParam(format!("missing {name}")))
    }

    /// An integer parameter given as a number or a numeric string.
    pub fn int(&self, name: &str) -> Result<Option<i64>, MxError> {
        let bad = || MxError::BadParam(format!("{name} must be an integer"));
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
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, MxError> {
        let bad = || MxError::BadParam(format!("{name} must be a list of strings"));
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
