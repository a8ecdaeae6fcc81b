//! IoTStack's error envelope and our code table. The spec prints only `Code: 0`; a client
//! tells success from failure by `Code != 0`, and the HTTP status says whose fault it is.
//!
//! | HTTP | Code | meaning |
//! |------|------|---------|
//! | 400  | 1001 | body is not a JSON object |
//! | 400  | 1002 | a required field is missing |
//! | 400  | 1003 | a field has the wrong type |
//! | 400  | 1004 | a field has an unsupported value |
//! | 413  | 1005 | body larger than the host allows |
//! | 405  | 1006 | method not allowed on this path |
//! | 401  | 2001 | no or unknown credentials |
//! | 403  | 2003 | credentials may not do this |
//! | 404  | 3001 | unknown product, gateway or deployment |
//! | 409  | 3009 | conflicts with the object's state |
//! | 429  | 4029 | too many attempts from this client; wait `Retry-After` seconds |
//! | 500  | 5000 | server error (retry later) |
//! | 503  | 5003 | the service is busy; retry after `Retry-After` seconds |
//! | 504  | 5004 | the request took too long |

use ota_plugin_sdk::{Failure, FailureKind, HostError, IntoResponse, Response};
use serde_json::json;

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    Malformed(String),
    Missing(&'static str),
    WrongType(&'static str, &'static str),
    BadValue(&'static str, String),
    BodyTooLarge,
    MethodNotAllowed,
    /// A path under the API that names no API.
    NoSuchApi,
    Host(HostError),
    /// A failure the host reported instead of an answer (contract 0.2.5).
    Failed(Failure),
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        ApiError::Host(e)
    }
}

impl ApiError {
    fn parts(&self) -> (u16, u32, String) {
        match self {
            ApiError::Malformed(why) => (400, 1001, format!("malformed JSON body: {why}")),
            ApiError::Missing(f) => (400, 1002, format!("missing required field {f}")),
            ApiError::WrongType(f, t) => (400, 1003, format!("field {f} must be {t}")),
            ApiError::BadValue(f, why) => (400, 1004, format!("field {f}: {why}")),
            ApiError::BodyTooLarge => (413, 1005, "request body too large".into()),
            ApiError::MethodNotAllowed => (405, 1006, "method not allowed; use POST".into()),
            ApiError::NoSuchApi => (404, 3001, "no such API".into()),
            ApiError::Host(e) => match e {
                HostError::Unauthenticated(m) => (401, 2001, m.clone()),
                HostError::Forbidden(m) => (403, 2003, m.clone()),
                HostError::NotFound(m) => (404, 3001, m.clone()),
                HostError::Conflict(m) => (409, 3009, m.clone()),
                HostError::Invalid(m) => (400, 1004, m.clone()),
                HostError::Unsupported(m) | HostError::Internal(m) => (500, 5000, m.clone()),
            },
            ApiError::Failed(f) => match f.kind {
                FailureKind::Busy => (503, 5003, f.message.clone()),
                FailureKind::RateLimited => (429, 4029, f.message.clone()),
                FailureKind::Timeout => (504, 5004, f.message.clone()),
                FailureKind::Crashed => (500, 5000, f.message.clone()),
            },
        }
    }
}

/// The error in IoTStack's envelope: what a handler's `Err` becomes.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let retry = match &self {
            ApiError::Failed(f) => f.retry_after_secs,
            _ => None,
        };
        let r = Response::json(status, &json!({ "Code": code, "Message": message }));
        match retry {
            Some(s) => r.header("retry-after", s.to_string()),
            None => r,
        }
    }
}

/// Success in IoTStack's envelope.
pub fn ok(data: serde_json::Value) -> Response {
    Response::json(200, &json!({ "Code": 0, "Data": data }))
}
