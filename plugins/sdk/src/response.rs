//! Building the vendor's response: status, headers and a body, JSON by default.

use serde::Serialize;

use crate::bindings::ota::dialect::types;

/// A response under construction.
pub struct Response {
    inner: types::Response,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Self {
        Response {
            inner: types::Response {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            },
        }
    }

    /// `value` serialized as JSON with `content-type: application/json;charset=UTF-8`.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        // Serializing our own plain data types cannot fail; fall back to an empty object
        // rather than trapping if a plugin hands in something exotic.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Response::new(status)
            .header("content-type", "application/json;charset=UTF-8")
            .body(body)
    }

    /// Plain text with `content-type: text/plain; charset=utf-8`.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.into().into_bytes())
    }

    /// Add a header (names may repeat).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.into(), value.into()));
        self
    }

    /// Replace the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.inner.status
    }

    /// The raw body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.inner.body
    }

    /// The raw WIT response.
    pub fn into_inner(self) -> types::Response {
        self.inner
    }
}
