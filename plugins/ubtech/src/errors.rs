//! UBTech's envelope and codes. Every answer is `{"code": "<string>", "data": …}`; the spec's
//! codes are `"100"` ok, `"101"` created, `"102"` no such version, `"103"` robot not allowed,
//! `"104"` no such language, `"500"` server error. The business refusals (102-104) travel with
//! HTTP 200, as robots read only `code`, and carry an empty `id` like a download answer's, so
//! a robot that reads `id` finds one. What the spec does not cover is ours:
//!
//! | HTTP | code  | when |
//! |------|-------|------|
//! | 400  | "500" | a required parameter is missing or malformed (`data` names it) |
//! | 401  | "103" | no, unknown, expired or revoked `access_token` (plus OAuth2's `error: invalid_token`, so OAuth-aware clients refresh) |
//! | 405  | "500" | a method the call does not take |
//! | 413  | "500" | body larger than the host allows |
//! | 429  | "500" | too many attempts from this client (`Retry-After`) |
//! | 500  | "500" | the host failed (retry later) |
//! | 503  | "500" | the service is busy (`Retry-After`) |
//! | 504  | "500" | the request took too long |
//!
//! On `/oauth/token` those failures are OAuth2 errors instead: `temporarily_unavailable` for
//! busy and rate-limited clients, `server_error` otherwise.

use ota_plugin_sdk::{Failure, HostError, Response};
use serde::Serialize;

/// Everything a file call can fail with.
#[derive(Debug)]
pub enum UbError {
    /// A required parameter is absent or blank.
    Missing(&'static str),
    /// A parameter's value is out of range.
    BadValue(&'static str, String),
    /// No, unknown, expired or revoked access token.
    BadToken(String),
    /// "102": no such package, file, version or release.
    NoVersion(String),
    /// "103": the robot may not have this update.
    NotAllowed(String),
    /// "104": no release in the asked language.
    NoLanguage(String),
    MethodNotAllowed,
    /// A path under the API that names no API.
    NoSuchApi,
    BodyTooLarge,
    /// Any other refusal of the host, mapped by its case.
    Host(HostError),
}

impl From<HostError> for UbError {
    fn from(e: HostError) -> Self {
        UbError::Host(e)
    }
}

/// The envelope, fields in the spec's order.
#[derive(Serialize)]
pub struct Envelope<'a> {
    /// UBTech's code, a string.
    pub code: &'a str,
    /// The answer's payload, or what went wrong.
    pub data: String,
    /// The `;`-joined release ids of a download answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// OAuth2's error code on 401s, for clients that refresh on `invalid_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// OAuth2's description beside `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl UbError {
    fn parts(self) -> (u16, &'static str, String) {
        match self {
            UbError::Missing(p) => (400, "500", format!("missing required parameter {p}")),
            UbError::BadValue(p, why) => (400, "500", format!("parameter {p}: {why}")),
            UbError::BadToken(m) => (401, "103", m),
            UbError::NoVersion(m) => (200, "102", m),
            UbError::NotAllowed(m) => (200, "103", m),
            UbError::NoLanguage(m) => (200, "104", m),
            UbError::MethodNotAllowed => (405, "500", "method not allowed".into()),
            UbError::NoSuchApi => (404, "500", "no such API".into()),
            UbError::BodyTooLarge => (413, "500", "request body too large".into()),
            UbError::Host(e) => match e {
                HostError::Unauthenticated(m) => (401, "103", m),
                HostError::Forbidden(m) => (200, "103", m),
                HostError::NotFound(m) => (200, "102", m),
                HostError::Invalid(m) => (400, "500", m),
                HostError::Conflict(m) | HostError::Unsupported(m) | HostError::Internal(m) => {
                    (500, "500", m)
                }
            },
        }
    }

    /// A failure the host reported instead of an answer (contract 0.2.5).
    pub fn failed(f: &Failure) -> Response {
        ota_plugin_sdk::retry_after(
            Response::json(
                f.status,
                &Envelope {
                    code: "500",
                    data: f.message.clone(),
                    id: None,
                    error: None,
                    error_description: None,
                },
            ),
            f,
        )
    }

    pub fn into_response(self) -> Response {
        let (status, code, data) = self.parts();
        let (error, error_description) = if status == 401 {
            (Some("invalid_token"), Some(data.clone()))
        } else {
            (None, None)
        };
        let id = (status == 200).then(String::new);
        let mut r = Response::json(
            status,
            &Envelope {
                code,
                data,
                id,
                error,
                error_description,
            },
        );
        if status == 401 {
            r = r.header("www-authenticate", "Bearer error=\"invalid_token\"");
        }
        r
    }
}
