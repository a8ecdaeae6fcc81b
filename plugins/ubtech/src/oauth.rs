//! `GET|POST /oauth/token`: OAuth2's password grant exactly as the spec prints it (all
//! parameters in the query), the standard form-encoded POST, and the refresh grant. The host
//! checks the client and user accounts (provisioned by the operator for this plugin) and
//! issues the tokens; this module speaks OAuth2's wire format (RFC 6749 sections 4.3, 5, 6).

use ota_plugin_sdk::auth::{self, ClientCredentials, GrantError, TokenGrant};
use ota_plugin_sdk::{HostError, Request, Response};
use serde::Serialize;

use crate::params::Params;

/// The scopes UBTech's server grants every client, as printed in the spec.
const SCOPE: &str = "read write trust";

/// A successful answer, fields in the spec's order.
#[derive(Serialize)]
struct TokenAnswer {
    access_token: String,
    token_type: &'static str,
    refresh_token: String,
    expires_in: u64,
    scope: &'static str,
}

#[derive(Serialize)]
struct OAuthError<'a> {
    error: &'a str,
    error_description: String,
}

/// A failure the host reported instead of a token answer, as OAuth2 clients read it.
pub fn failed(f: &ota_plugin_sdk::Failure) -> Response {
    use ota_plugin_sdk::FailureKind;
    let error = match f.kind {
        FailureKind::Busy | FailureKind::RateLimited => "temporarily_unavailable",
        FailureKind::Timeout | FailureKind::Crashed => "server_error",
    };
    ota_plugin_sdk::retry_after(refuse(f.status, error, f.message.clone()), f)
}

/// A refusal of the host's before the handler ran (an oversized body, a method the endpoint
/// does not take), as OAuth2 clients read it: `invalid_request`.
pub fn refused(status: u16, description: &str) -> Response {
    refuse(status, "invalid_request", description)
}

fn refuse(status: u16, error: &str, description: impl Into<String>) -> Response {
    let mut r = Response::json(
        status,
        &OAuthError {
            error,
            error_description: description.into(),
        },
    )
    .header("cache-control", "no-store")
    .header("pragma", "no-cache");
    if status == 401 {
        r = r.header(
            "www-authenticate",
            "Basic realm=\"oauth\", error=\"invalid_client\"",
        );
    }
    r
}

fn granted(g: TokenGrant) -> Response {
    Response::json(
        200,
        &TokenAnswer {
            access_token: g.access_token,
            token_type: "bearer",
            refresh_token: g.refresh_token,
            expires_in: g.expires_in,
            scope: SCOPE,
        },
    )
    .header("cache-control", "no-store")
    .header("pragma", "no-cache")
}

fn grant_error(e: GrantError) -> Response {
    match e {
        GrantError::InvalidClient(m) => refuse(401, "invalid_client", m),
        GrantError::InvalidGrant(m) => refuse(400, "invalid_grant", m),
        GrantError::Other(HostError::Invalid(m)) => refuse(400, "invalid_request", m),
        GrantError::Other(e) => refuse(500, "server_error", e.message().to_string()),
    }
}

/// `GET|POST /oauth/token`.
pub fn token(req: &Request) -> Response {
    let p = Params::of(req);
    // The client may authenticate with parameters (as the spec shows) or, as RFC 6749
    // prefers, with HTTP Basic.
    let client = match (p.get("client_id"), p.raw("client_secret"), req.basic_auth()) {
        (Some(id), Some(secret), _) => ClientCredentials { id, secret },
        (_, _, Some((id, secret))) => ClientCredentials { id, secret },
        (Some(_), None, None) => {
            return refuse(401, "invalid_client", "missing client_secret");
        }
        _ => return refuse(401, "invalid_client", "client authentication is required"),
    };
    let Some(grant_type) = p.get("grant_type") else {
        return refuse(400, "invalid_request", "missing grant_type");
    };
    let result = match grant_type.as_str() {
        "password" => {
            let (Some(username), Some(password)) = (p.get("username"), p.raw("password")) else {
                return refuse(
                    400,
                    "invalid_request",
                    "the password grant needs username and password",
                );
            };
            auth::password_grant(Some(&client), &username, &password)
        }
        "refresh_token" => {
            let Some(refresh) = p.raw("refresh_token") else {
                return refuse(400, "invalid_request", "missing refresh_token");
            };
            auth::refresh_grant(Some(&client), &refresh)
        }
        other => {
            return refuse(
                400,
                "unsupported_grant_type",
                format!("unsupported grant type: {other}"),
            );
        }
    };
    match result {
        Ok(g) => granted(g),
        Err(e) => grant_error(e),
    }
}
