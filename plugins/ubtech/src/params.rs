//! UBTech's parameters: query string first, then a form-encoded body (some robots POST the
//! same fields as a form). Every value is a string on the wire.

use ota_plugin_sdk::Request;

use crate::errors::UbError;

/// The request's parameters, query before body.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The query's pairs, then a form body's (when the Content-Type says form).
    pub fn of(req: &Request) -> Self {
        let mut pairs = req.query_pairs();
        let form = req.header("content-type").is_some_and(|t| {
            t.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if form {
            pairs.extend(req.form_pairs());
        }
        Params(pairs)
    }

    /// The first non-empty value of `name`, exactly as sent: for passwords, secrets and
    /// tokens, whose spaces are theirs.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// The first non-blank value of `name`, trimmed.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .find(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// [`Params::get`], or the error naming the missing parameter.
    pub fn required(&self, name: &'static str) -> Result<String, UbError> {
        self.get(name).ok_or(UbError::Missing(name))
    }
}
