//! Logging in to the dashboard. An operator types an API key once and gets a session
//! (`auth::sessions`) whose random token rides in an HttpOnly, SameSite=Strict cookie scoped
//! to `/ui`, so the key never sits in the browser; logging out or revoking the key ends it.
//! State changes must come from the dashboard's own pages (`Sec-Fetch-Site`, else `Origin`).

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;

use super::{Tab, UiError, page};
use crate::auth::KeyIdentity;
use crate::http::AppState;
use crate::http::error::ApiError;

/// The cookie that carries the session token.
const COOKIE: &str = "ota_ui_session";

/// How long a login lasts; then the operator logs in again.
const LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/login", get(form).post(login))
        .route("/ui/logout", post(logout))
}

/// A logged-in operator. Extracting it refuses a request without a live session (a page is
/// sent to the login form, an htmx request is told to go there) and a state change from
/// another origin.
pub(crate) struct Session(pub KeyIdentity);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if !matches!(parts.method, Method::GET | Method::HEAD)
            && !same_origin(&parts.headers, &parts.uri, state)
        {
            return Err(cross_origin());
        }
        let jar = CookieJar::from_headers(&parts.headers);
        if let Some(token) = jar.get(COOKIE)
            && let Ok(id) = state.services.auth.session(token.value()).await
        {
            return Ok(Session(id));
        }
        Err(to_login(parts))
    }
}

fn cross_origin() -> Response {
    UiError(ApiError::Forbidden(
        "a dashboard action must come from the dashboard's own pages".into(),
    ))
    .into_response()
}

/// Whether a state-changing request comes from this host's own pages. Browsers say so in
/// `Sec-Fetch-Site`; older ones send `Origin`, which must name this host as the browser
/// reached it (`public-url`, or the `Host` it sent). The cookie is SameSite=Strict too.
fn same_origin(headers: &HeaderMap, uri: &Uri, state: &AppState) -> bool {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return site == "same-origin";
    }
    let Some(origin) = get("origin") else {
        // Not a browser (curl, a script): no ambient cookie to abuse.
        return true;
    };
    let public = state
        .config
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/'));
    // HTTP/2 names the host in the request's authority, not a `Host` header.
    let host = get("host").or_else(|| uri.authority().map(|a| a.as_str()));
    public.is_some_and(|p| p.eq_ignore_ascii_case(origin))
        || host.is_some_and(|h| {
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(h))
        })
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
    (next.starts_with("/ui/")
        && !next.starts_with("/ui/login")
        && !next.contains('\\')
        && !next.chars().any(char::is_control))
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
    uri: Uri,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Response {
    // Logging someone in under another's key from a foreign page is refused too.
    if !same_origin(&headers, &uri, &state) {
        return cross_origin();
    }
    let next = safe_next(&f.next).unwrap_or("/ui/campaigns").to_string();
    match state
        .services
        .auth
        .open_session(f.key.trim(), LIFETIME)
        .await
        .map_err(ApiError::from)
    {
        Ok((token, _)) => {
            let cookie = Cookie::build((COOKIE, token))
                .path("/ui")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(https(&state, &headers))
                .max_age(time::Duration::seconds(LIFETIME.as_secs() as i64))
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

async fn logout(
    _: Session,
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, UiError> {
    if let Some(token) = jar.get(COOKIE) {
        state.services.auth.close_session(token.value()).await?;
    }
    let gone = Cookie::build((COOKIE, "")).path("/ui").build();
    Ok((jar.remove(gone), Redirect::to("/ui/login")).into_response())
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
    fn control_characters_never_reach_a_location_header() {
        assert_eq!(safe_next("/ui/devices?q=a\r\nSet-Cookie:x"), None);
        assert_eq!(safe_next("/ui/\u{7f}"), None);
    }
}
