//! Logging in to the dashboard with an operator API key. The key is kept in an HttpOnly,
//! SameSite=Strict cookie scoped to `/ui` and verified on every request exactly as the admin
//! API verifies its header, so revoking the key ends every session it opened at once.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;

use super::{Tab, UiError, page};
use crate::auth::{KeyIdentity, Role};
use crate::http::AppState;
use crate::http::error::ApiError;

/// The cookie that carries the operator key.
const COOKIE: &str = "ota_ui_key";

/// How long a login lasts without being renewed.
const LIFETIME: time::Duration = time::Duration::hours(12);

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/login", get(form).post(login))
        .route("/ui/logout", post(logout))
}

/// A logged-in operator. Extracting it refuses a request without a valid operator key
/// (a page is sent to the login form, an htmx request is told to go there) and a state
/// change from another origin.
pub(crate) struct Session(pub KeyIdentity);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if !matches!(parts.method, Method::GET | Method::HEAD) && !same_origin(&parts.headers) {
            return Err(UiError(ApiError::Forbidden(
                "a dashboard action must come from the dashboard's own pages".into(),
            ))
            .into_response());
        }
        let jar = CookieJar::from_headers(&parts.headers);
        if let Some(key) = jar.get(COOKIE)
            && let Ok(id) = verify(state, key.value()).await
        {
            return Ok(Session(id));
        }
        Err(to_login(parts))
    }
}

/// The operator behind `key`, if it is a live operator key.
async fn verify(state: &AppState, key: &str) -> Result<KeyIdentity, ApiError> {
    let id = state.services.auth.verify_api_key(key).await?;
    if id.role != Role::Operator {
        return Err(ApiError::Forbidden(
            "the dashboard needs an operator key".into(),
        ));
    }
    Ok(id)
}

/// Whether a state-changing request comes from this host's own pages: browsers send
/// `Origin` with every POST, and it must name the host the request was sent to. The cookie
/// is SameSite=Strict too; this is the second lock.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match (get(header::ORIGIN), get(header::HOST)) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
        // Not a browser (curl, a script): no ambient cookie risk.
        (None, _) => true,
    }
}

/// Where an unauthenticated request goes: htmx follows `HX-Redirect`; a page is redirected
/// to the form, which returns to it after login.
fn to_login(parts: &Parts) -> Response {
    if parts.headers.contains_key("hx-request") {
        return (StatusCode::UNAUTHORIZED, [("hx-redirect", "/ui/login")]).into_response();
    }
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let to = match safe_next(next) {
        Some(next) => format!(
            "/ui/login?next={}",
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => "/ui/login".into(),
    };
    Redirect::to(&to).into_response()
}

/// A return address after login, only ever a dashboard path on this host.
fn safe_next(next: &str) -> Option<&str> {
    (next.starts_with("/ui/") && !next.starts_with("/ui/login") && !next.contains('\\'))
        .then_some(next)
}

#[derive(Deserialize, Default)]
struct Next {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    tab: Option<Tab>,
    operator: &'static str,
    next: String,
    error: Option<String>,
}

async fn form(q: Result<Query<Next>, QueryRejection>) -> Response {
    let next = q.ok().and_then(|Query(n)| n.next).unwrap_or_default();
    page(
        StatusCode::OK,
        &LoginPage {
            tab: None,
            operator: "",
            next: safe_next(&next).unwrap_or("").to_string(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(&f.next).unwrap_or("/ui/campaigns").to_string();
    let key = f.key.trim();
    match verify(&state, key).await {
        Ok(_) => {
            let secure = https(&state, &headers);
            let cookie = Cookie::build((COOKIE, key.to_string()))
                .path("/ui")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(secure)
                .max_age(LIFETIME)
                .build();
            (jar.add(cookie), Redirect::to(&next)).into_response()
        }
        Err(e) => {
            let (status, error) = match e {
                ApiError::Internal(_) => (e.status(), "the server could not check the key".into()),
                _ => (
                    StatusCode::UNAUTHORIZED,
                    "That is not a live operator API key.".to_string(),
                ),
            };
            page(
                status,
                &LoginPage {
                    tab: None,
                    operator: "",
                    next: f.next,
                    error: Some(error),
                },
            )
        }
    }
}

/// Whether the browser reached this host over HTTPS (directly by its public URL, or through
/// a proxy that says so): only then is the cookie marked `Secure`.
fn https(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

async fn logout(_: Session, jar: CookieJar) -> Response {
    let gone = Cookie::build((COOKIE, "")).path("/ui").build();
    (jar.remove(gone), Redirect::to("/ui/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_returned_to() {
        assert_eq!(safe_next("/ui/campaigns/3"), Some("/ui/campaigns/3"));
        assert_eq!(safe_next("/ui/devices?q=a"), Some("/ui/devices?q=a"));
        assert_eq!(safe_next("https://evil.example/"), None);
        assert_eq!(safe_next("//evil.example/ui/"), None);
        assert_eq!(safe_next("/ui/\\evil"), None);
        assert_eq!(safe_next("/ui/login?next=/ui/x"), None);
        assert_eq!(safe_next("/admin/plugins"), None);
    }

    #[test]
    fn a_state_change_must_name_this_host_as_its_origin() {
        let headers = |origin: Option<&str>, host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            h
        };
        assert!(same_origin(&headers(
            Some("http://127.0.0.1:8080"),
            "127.0.0.1:8080"
        )));
        assert!(!same_origin(&headers(
            Some("http://evil.example"),
            "127.0.0.1:8080"
        )));
        assert!(!same_origin(&headers(Some("null"), "127.0.0.1:8080")));
        assert!(same_origin(&headers(None, "127.0.0.1:8080")));
    }
}
