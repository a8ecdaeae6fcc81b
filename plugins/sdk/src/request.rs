//! The incoming request as a dialect sees it: headers by case-insensitive name, decoded query
//! parameters, route parameters, JSON body, and the credentials clients commonly send.

use base64::Engine as _;
use serde::de::DeserializeOwned;

use crate::bindings::ota::dialect::types;

/// One vendor request plus the parameters its route captured.
pub struct Request {
    inner: types::Request,
    params: Vec<(String, String)>,
}

impl Request {
    /// Wrap a raw request with the route parameters the router captured.
    pub fn new(inner: types::Request, params: Vec<(String, String)>) -> Self {
        Request { inner, params }
    }

    /// Upper-case HTTP method.
    pub fn method(&self) -> &str {
        &self.inner.method
    }

    /// Path relative to the plugin's mount.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Raw query string, without `?`.
    pub fn query(&self) -> &str {
        &self.inner.query
    }

    /// Raw body bytes.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// Absolute URL of this plugin's mount (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Absolute URL of the host (no trailing slash).
    pub fn host_url(&self) -> &str {
        &self.inner.host_url
    }

    /// The host's id for this request.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// First header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All query parameters, percent- and `+`-decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.inner.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The body read as `application/x-www-form-urlencoded` pairs, decoded, in order
    /// (whatever the Content-Type says; check it first where that matters).
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.inner.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The parts of a `multipart/form-data` body: `None` when the Content-Type is another
    /// one, `Some(Err(()))` when the body does not follow its boundary.
    pub fn multipart(&self) -> Option<Result<Vec<crate::multipart::Part>, ()>> {
        let boundary = crate::multipart::boundary(self.header("content-type")?)?;
        Some(crate::multipart::parse(&boundary, &self.inner.body).ok_or(()))
    }

    /// The first query parameter with this exact name, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.inner.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A `{name}` segment captured by the route.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON into `T`. Content-Type is deliberately not checked: real
    /// clients send it in every spelling, or not at all.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.inner.body)
    }

    /// `Authorization: Bearer <token>` (scheme case-insensitive).
    pub fn bearer_token(&self) -> Option<&str> {
        self.authorization("bearer")
    }

    /// `Authorization: Basic <base64 user:password>`, decoded.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let encoded = self.authorization("basic")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    }

    /// The credentials of an `Authorization: <scheme> <credentials>` header.
    pub fn authorization(&self, scheme: &str) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (got, rest) = value.split_once(' ')?;
        got.eq_ignore_ascii_case(scheme).then(|| rest.trim())
    }

    /// The underlying raw request.
    pub fn raw(&self) -> &types::Request {
        &self.inner
    }
}
