//! XLINK's error answer, `{"error":{"code":<int>,"msg":"…"}}`, with the HTTP status the code
//! begins with (`4001001` → 400, `4031003` → 403, `4041013` → 404, `5031001` → 503). The codes
//! are XLINK's own (its published table, in the spec's Wire facts); where the table has none
//! for a case, the nearest general one:
//! - 4001001 a parameter is missing, ill-typed or out of range, the body is not JSON, or the
//!   task's status or tag does not allow the step (XLINK's "a field failed validation");
//! - 4001007 wrong enterprise account or password; 4001010 an invalid or expired refresh
//!   token; 4001035 a task with the same type, identify and from_version exists;
//!   4001039 wrong device authorize code ("device verification failed");
//! - 4031002 no `Access-Token` sent; 4031021 an expired one (clients refresh on this code
//!   only); 4031003 an unknown, revoked or forged one;
//!   4031001 the token may not do this (another device, another auditor, another corp);
//! - 4041001 no such API (a path this dialect does not serve); 4041005 unknown product,
//!   4041008 unknown device, 4041003 unknown member (an auditor not in the corp),
//!   4041013 unknown task, and the device check's "nothing to
//!   upgrade"; 4041000 anything else the host does not know;
//! - 4131001 body too large (XLINK's table has no code for it; the status is HTTP's);
//! - 5031001 the server failed, is busy, took too long or refused a client for too many
//!   attempts (XLINK's table has no other server-side code; `Retry-After` tells busy and
//!   rate-limited clients when to come back).

use ota_plugin_sdk::params::ParamError;
use ota_plugin_sdk::{HostError, Response};
use serde_json::json;

/// Why a request was refused, in XLINK's terms.
#[derive(Debug)]
pub enum XError {
    Param(String),
    BadLogin(String),
    AuthorizeCode(String),
    State(String),
    Duplicate(String),
    /// No `Access-Token` header.
    NoToken,
    Token(String),
    BadRefresh(String),
    Forbidden(String),
    UnknownProduct(String),
    UnknownTask(String),
    UnknownDevice(String),
    UnknownMember(String),
    /// An `Access-Token` that was valid and has expired: the one refusal clients renew on.
    ExpiredToken,
    NothingToUpgrade,
    TooLarge,
    Host(HostError),
}

impl From<HostError> for XError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Invalid(m) => XError::Param(m),
            HostError::Conflict(m) => XError::State(m),
            HostError::Unauthenticated(m) => XError::Token(m),
            HostError::Forbidden(m) => XError::Forbidden(m),
            other => XError::Host(other),
        }
    }
}

impl From<ParamError> for XError {
    fn from(e: ParamError) -> Self {
        XError::Param(e.0)
    }
}

impl XError {
    pub fn code_and_message(self) -> (i64, String) {
        match self {
            XError::Param(m) => (4001001, m),
            XError::BadLogin(m) => (4001007, m),
            XError::AuthorizeCode(m) => (4001039, m),
            XError::State(m) => (4001001, m),
            XError::Duplicate(m) => (4001035, m),
            XError::NoToken => (4031002, "missing Access-Token header".into()),
            XError::Token(m) => (4031003, m),
            XError::BadRefresh(m) => (4001010, m),
            XError::Forbidden(m) => (4031001, m),
            XError::UnknownProduct(m) => (4041005, m),
            XError::UnknownTask(m) => (4041013, m),
            XError::UnknownDevice(m) => (4041008, m),
            XError::UnknownMember(m) => (4041003, m),
            XError::ExpiredToken => (4031021, "Access-Token expired; refresh it".into()),
            XError::NothingToUpgrade => (4041013, "no upgrade task for this version".into()),
            XError::TooLarge => (4131001, "request body too large".into()),
            XError::Host(HostError::NotFound(m)) => (4041000, m),
            XError::Host(e) => (5031001, e.message().to_string()),
        }
    }

    pub fn into_response(self) -> Response {
        let (code, msg) = self.code_and_message();
        let status = (code / 10000) as u16;
        Response::json(status, &json!({ "error": { "code": code, "msg": msg } }))
    }

    /// A failure the host reported instead of an answer (contract 0.2.5).
    pub fn failed(f: &ota_plugin_sdk::Failure) -> Response {
        ota_plugin_sdk::retry_after(
            Response::json(
                503,
                &json!({ "error": { "code": 5031001, "msg": f.message } }),
            ),
            f,
        )
    }
}

/// Turn a handler's result into the answer.
pub fn respond(result: Result<Response, XError>) -> Response {
    result.unwrap_or_else(XError::into_response)
}

/// HTTP 200 with an empty body, as XLINK answers the calls that return nothing.
pub fn done() -> Response {
    Response::new(200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_codes_prefix() {
        for (e, status) in [
            (XError::Param("x".into()), 400),
            (XError::Token("x".into()), 403),
            (XError::NothingToUpgrade, 404),
            (XError::TooLarge, 413),
            (XError::Host(HostError::Internal("x".into())), 503),
        ] {
            assert_eq!(e.into_response().status(), status);
        }
    }
}
