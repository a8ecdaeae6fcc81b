//! Request parameters as vendor clients send them: the query string, and a JSON object or a
//! form in the body (whatever the Content-Type says: real clients send every spelling, or
//! none; a `multipart/form-data` body is read by its boundary). Numbers arrive as numbers or
//! strings; both are accepted.

use std::collections::BTreeMap;

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
///
/// A key repeated in the query or a form (`mac_range=A&mac_range=B`, as browsers and Django
/// REST framework clients send a list) reads as its last value where one value is asked for,
/// and as all of them from [`Params::list`], the way Django's `QueryDict` reads it.
pub struct Params {
    map: Map<String, Value>,
    /// The values of keys given more than once in one query or form, in order.
    repeated: BTreeMap<String, Vec<String>>,
}

impl Params {
    /// Query and body. A body that is neither a JSON object nor a form is a bad parameter.
    pub fn of(req: &Request) -> Result<Self, ParamError> {
        let mut params = Params::from_map(Map::new());
        params.add_pairs(req.query_pairs());
        let body = req.body();
        if let Some(parts) = req.multipart() {
            // A browser's FormData: its text fields are the form; files are read with
            // `Request::multipart`.
            let parts = parts.map_err(|()| {
                ParamError("the multipart body does not follow its boundary".into())
            })?;
            let mut fields = Vec::new();
            for p in parts.into_iter().filter(|p| p.filename.is_none()) {
                let value = String::from_utf8(p.data)
                    .map_err(|_| ParamError(format!("{} must be UTF-8 text", p.name)))?;
                fields.push((p.name, value));
            }
            params.add_pairs(fields);
            return Ok(params);
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => {
                    for k in o.keys() {
                        params.repeated.remove(k);
                    }
                    params.map.extend(o);
                }
                Ok(_) => return Err(ParamError("the body must be a JSON object".into())),
                Err(_) if body.trim_ascii_start().first() == Some(&b'{') => {
                    return Err(ParamError("the body is not valid JSON".into()));
                }
                Err(_) => params.add_pairs(req.form_pairs()),
            }
        }
        Ok(params)
    }

    /// One source's pairs (the query, or a form), over what is there.
    fn add_pairs(&mut self, pairs: Vec<(String, String)>) {
        let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            grouped.entry(k).or_default().push(v);
        }
        for (k, values) in grouped {
            let last = values.last().cloned().unwrap_or_default();
            if values.len() > 1 {
                self.repeated.insert(k.clone(), values);
            } else {
                self.repeated.remove(&k);
            }
            self.map.insert(k, Value::String(last));
        }
    }

    /// Parameters from an already parsed JSON object (e.g. a nested one).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Params {
            map,
            repeated: BTreeMap::new(),
        }
    }

    /// A parameter's value as sent; `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.present(name)
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
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

    /// A list of strings: a JSON list, a key repeated in the query or a form, or one
    /// comma-separated string. `Some(empty)` when given as `[]` or `""`.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, ParamError> {
        let bad = || ParamError(format!("{name} must be a list of strings"));
        if let Some(values) = self.repeated.get(name) {
            // Each value whole (no comma splitting, as Django's getlist); blanks skipped.
            return Ok(Some(
                values
                    .iter()
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect(),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::ota::dialect::types;

    fn request(query: &str, body: &str) -> Request {
        Request::new(
            types::Request {
                method: "POST".into(),
                path: "/x".into(),
                query: query.into(),
                headers: Vec::new(),
                body: body.as_bytes().to_vec(),
                base_url: String::new(),
                host_url: String::new(),
                request_id: String::new(),
            },
            Vec::new(),
        )
    }

    #[test]
    fn multipart_fields_are_parameters_and_files_are_not() {
        let mut req = request("version=1", "");
        let body: &[u8] =
            b"--B\r\nContent-Disposition: form-data; name=\"file_name\"\r\n\r\nfw.bin\r\n\
--B\r\nContent-Disposition: form-data; name=\"mac_range\"\r\n\r\nA\r\n\
--B\r\nContent-Disposition: form-data; name=\"mac_range\"\r\n\r\nB\r\n\
--B\r\nContent-Disposition: form-data; name=\"blob\"; filename=\"x.bin\"\r\n\r\n\xff\r\n--B--\r\n";
        let mut raw = req.raw().clone();
        raw.headers = vec![(
            "content-type".into(),
            "multipart/form-data; boundary=B".into(),
        )];
        raw.body = body.to_vec();
        req = Request::new(raw, Vec::new());
        let p = Params::of(&req).unwrap();
        assert_eq!(p.text("file_name").unwrap().as_deref(), Some("fw.bin"));
        assert_eq!(p.text("version").unwrap().as_deref(), Some("1"));
        assert_eq!(
            p.list("mac_range").unwrap(),
            Some(vec!["A".into(), "B".into()])
        );
        assert_eq!(p.get("blob"), None);
        let mut raw = req.raw().clone();
        raw.body = b"--B\r\nno end".to_vec();
        assert!(Params::of(&Request::new(raw, Vec::new())).is_err());
    }

    #[test]
    fn repeated_form_keys_are_a_list_and_their_last_value() {
        let p = Params::of(&request("", "mac_range=A&name=fw&mac_range=B&mac_range=")).unwrap();
        assert_eq!(
            p.list("mac_range").unwrap(),
            Some(vec!["A".into(), "B".into()])
        );
        assert_eq!(p.text("mac_range").unwrap().as_deref(), Some(""));
        assert_eq!(p.text("name").unwrap().as_deref(), Some("fw"));
        // One value keeps reading as before: a comma-separated list.
        let p = Params::of(&request("mac_range=A,B", "")).unwrap();
        assert_eq!(
            p.list("mac_range").unwrap(),
            Some(vec!["A".into(), "B".into()])
        );
    }

    #[test]
    fn a_json_body_replaces_a_repeated_query_key() {
        let p = Params::of(&request("tag=a&tag=b", r#"{"tag": ["c"]}"#)).unwrap();
        assert_eq!(p.list("tag").unwrap(), Some(vec!["c".into()]));
        let p = Params::of(&request("tag=a&tag=b", "tag=z")).unwrap();
        assert_eq!(p.list("tag").unwrap(), Some(vec!["z".into()]));
    }
}
