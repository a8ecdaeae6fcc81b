//! MXChip's envelope, `{"meta":{"code","message"},"data"}`, and its error codes: 0 ok,
//! 10000 bad parameter, 10500 unknown id, 10501 wrong state; a refused token is HTTP 401 with
//! code 10401 (the spec prints no code for it; Django REST framework answers 401). The host's
//! failures are ours: 10429 too many attempts (429), 10503 busy (503), 10504 too slow (504),
//! 10000 with HTTP 500 for a crash, each with `Retry-After` where it applies.

use ota_plugin_sdk::{Failure, FailureKind, HostError, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// Why a request was refused, in MXChip's terms.
#[derive(Debug)]
pub enum MxError {
    /// 10000: a parameter is missing, ill-typed or contradicts stored facts.
    BadParam(String),
    /// 10500: the named firmware does not exist (or was deleted).
    UnknownId(String),
    /// 10501: the firmware's status does not allow this.
    WrongState(String),
    /// 10401: no, a malformed, an unknown or a revoked `Authorization: token`.
    Unauthorized(String),
    /// The host failed (HTTP 500, code 10000 with the host's message).
    Host(HostError),
}

impl From<HostError> for MxError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Invalid(m) | HostError::Conflict(m) => MxError::BadParam(m),
            HostError::Unauthenticated(m) => MxError::Unauthorized(m),
            other => MxError::Host(other),
        }
    }
}

impl From<ota_plugin_sdk::params::ParamError> for MxError {
    fn from(e: ota_plugin_sdk::params::ParamError) -> Self {
        MxError::BadParam(e.0)
    }
}

impl MxError {
    pub fn into_response(self) -> Response {
        let (status, code, message) = match self {
            MxError::BadParam(m) => (400, 10000, format!("参数错误: {m}")),
            MxError::UnknownId(m) => (404, 10500, m),
            MxError::WrongState(m) => (400, 10501, m),
            MxError::Unauthorized(m) => (401, 10401, m),
            MxError::Host(HostError::NotFound(m)) => (404, 10500, m),
            MxError::Host(HostError::Forbidden(m)) => (403, 10403, m),
            MxError::Host(e) => (500, 10000, e.message().to_string()),
        };
        let mut r = Response::json(status, &envelope(code, &message, Value::Null));
        if status == 401 {
            r = r.header("www-authenticate", "Token");
        }
        r
    }
}

/// A failure the host reported instead of an answer (contract 0.2.5).
pub fn failed(f: &Failure) -> Response {
    let code = match f.kind {
        FailureKind::Busy => 10503,
        FailureKind::RateLimited => 10429,
        FailureKind::Timeout => 10504,
        FailureKind::Crashed => 10000,
    };
    ota_plugin_sdk::retry_after(
        Response::json(f.status, &envelope(code, &f.message, Value::Null)),
        f,
    )
}

/// The envelope with a code, a message and the data.
pub fn envelope(code: i64, message: &str, data: impl Serialize) -> Value {
    json!({ "meta": { "code": code, "message": message }, "data": data })
}

/// HTTP 200 with code 0.
pub fn ok(message: &str, data: impl Serialize) -> Response {
    Response::json(200, &envelope(0, message, data))
}

/// Turn a handler's result into the answer.
pub fn respond(result: Result<Response, MxError>) -> Response {
    result.unwrap_or_else(MxError::into_response)
}
