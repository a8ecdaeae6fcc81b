//! CTWing's envelope: `{"code": 0, "msg": "ok", "result": …}` on success. Refusals carry the
//! HTTP status of the spec's error table both as the status and as `code`, with `msg` saying
//! what was wrong and `result: null`:
//!
//! | HTTP / code | when |
//! |------|------|
//! | 400 | a parameter or body field is missing, ill-typed or out of range; the wrong body shape for the product's protocol; an action the task's state does not allow |
//! | 401 | missing or bad signature headers, unknown application, wrong signature, stale timestamp |
//! | 403 | wrong `MasterKey` for the product |
//! | 404 | unknown product, task, firmware, device or subtask |
//! | 405 | a method the path does not take |
//! | 413 | body larger than the host allows |
//! | 429 | too many attempts from this client (`Retry-After` says when to try again) |
//! | 500 | the host failed (retry later) |
//! | 503 | the service is busy (`Retry-After` says when to try again) |
//! | 504 | the request took too long |
//!
//! Every answer carries the server clock in `x-ag-timestamp` (Unix milliseconds), as CTWing's
//! gateway does: the SDKs' examples print it from any response, not only `/echo`'s.

use ota_plugin_sdk::{Failure, FailureKind, HostError, Response, clock};
use serde::Serialize;
use serde_json::{Value, json};

/// Everything an API can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with this message.
    Bad(String),
    /// 401 with this message.
    Unauthorized(String),
    /// 403 with this message.
    Forbidden(String),
    /// 404 with this message.
    NotFound(String),
    MethodNotAllowed,
    BodyTooLarge,
    /// A host refusal, mapped by its case.
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
    fn parts(self) -> (u16, &'static str, String) {
        match self {
            ApiError::Bad(m) => (400, "Bad request", m),
            ApiError::Unauthorized(m) => (401, "Unauthorized", m),
            ApiError::Forbidden(m) => (403, "Forbidden", m),
            ApiError::NotFound(m) => (404, "Not found", m),
            ApiError::MethodNotAllowed => {
                (405, "Method not allowed", "use the API's method".into())
            }
            ApiError::BodyTooLarge => (413, "Payload too large", "request body too large".into()),
            ApiError::Host(e) => match e {
                HostError::Unauthenticated(m) => (401, "Unauthorized", m),
                HostError::Forbidden(m) => (403, "Forbidden", m),
                HostError::NotFound(m) => (404, "Not found", m),
                HostError::Conflict(m) | HostError::Invalid(m) => (400, "Bad request", m),
                HostError::Unsupported(m) | HostError::Internal(m) => (500, "Internal Error", m),
            },
            ApiError::Failed(f) => {
                let title = match f.kind {
                    FailureKind::Busy => "Service Unavailable",
                    FailureKind::RateLimited => "Too Many Requests",
                    FailureKind::Timeout => "Gateway Timeout",
                    FailureKind::Crashed => "Internal Error",
                };
                (f.status, title, f.message)
            }
        }
    }

    pub fn into_response(self) -> Response {
        let retry = match &self {
            ApiError::Failed(f) => f.retry_after_secs,
            _ => None,
        };
        let (status, title, detail) = self.parts();
        let r = stamped(Response::json(
            status,
            &json!({ "code": status, "msg": format!("{title}: {detail}"), "result": Value::Null }),
        ));
        match retry {
            Some(s) => r.header("retry-after", s.to_string()),
            None => r,
        }
    }
}

/// Success in the envelope, `result` first serialized as given.
pub fn ok(result: impl Serialize) -> Response {
    #[derive(Serialize)]
    struct Envelope<T> {
        code: u16,
        msg: &'static str,
        result: T,
    }
    stamped(Response::json(
        200,
        &Envelope {
            code: 0,
            msg: "ok",
            result,
        },
    ))
}

/// `r` with the server clock in `x-ag-timestamp`.
pub fn stamped(r: Response) -> Response {
    r.header("x-ag-timestamp", clock::now_millis().to_string())
}

/// CTWing's paging shape.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub page_num: u64,
    pub page_size: u64,
    pub total: u64,
    pub list: Vec<T>,
}
