//! Dispatch to plugins: find the plugin whose mount (listener, Host, prefix) and routes claim
//! the request, read the body within the size limit, hand the request over on a fresh
//! instance, and send back exactly what the plugin answered. A plugin failure (trap, deadline,
//! memory, a busy plugin, a rate-limited client) costs this one request a failure answer (in
//! the dialect's words where the plugin can give them) and one log line.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::{AppState, Listener};
use crate::runtime::bindings::{self, Refusal};
use crate::runtime::{CallSite, InvokeError};

/// Hop-by-hop and framing headers are the host's business, never the plugin's.
const HOST_OWNED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
];

/// Why a request body could not be read whole.
#[derive(Debug, PartialEq, Eq)]
enum BodyProblem {
    /// Over the configured limit.
    TooLarge,
    /// No bytes for the body idle timeout.
    Stalled,
    /// The client went away, or sent a broken chunked encoding.
    Broken,
}

impl BodyProblem {
    fn of(e: &axum::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return BodyProblem::TooLarge;
            }
            if s.is::<tower_http::timeout::TimeoutError>() {
                return BodyProblem::Stalled;
            }
            source = s.source();
        }
        BodyProblem::Broken
    }
}

fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub async fn dispatch(
    State(state): State<AppState>,
    Extension(listener): Extension<Listener>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let host_name = authority.as_deref().map(|a| {
        a.rsplit_once(':').map_or(a, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                a
            }
        })
    });
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();

    let Some((plugin, rel_path)) = state.registry.route(listener.0, host_name, &method, &path)
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": { "code": "not_found", "message": format!("no route for {method} {path}") } })),
        )
            .into_response();
    };

    let request_id = new_request_id();
    let host_url = super::host_url(&state.config, listener, &parts.headers, &parts.uri);
    let site = CallSite {
        host_url: host_url.clone(),
        client: parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
        preauthorized: None,
    };
    let mut wit = bindings::Request {
        method: method.clone(),
        path: rel_path,
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
        base_url: format!("{host_url}{}", plugin.mount.prefix),
        host_url: host_url.clone(),
        request_id: request_id.clone(),
    };

    let limit = state.config.limits.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match declared {
        Some(n) if n > limit as u64 => Err(BodyProblem::TooLarge),
        _ => axum::body::to_bytes(body, limit)
            .await
            .map_err(|e| BodyProblem::of(&e)),
    };
    let outcome = match body {
        Ok(bytes) => {
            wit.body = bytes.to_vec();
            state.runtime.handle(&plugin, &wit, &site).await
        }
        Err(BodyProblem::TooLarge) => {
            state
                .runtime
                .refuse(&plugin, &wit, Refusal::BodyTooLarge, &site)
                .await
        }
        Err(problem) => {
            // The client stalled or vanished mid-body: nobody is likely to read an answer, so
            // the plugin is not bothered; the connection is not reused.
            tracing::info!(plugin = %plugin.name, %method, route = %path, ?problem, request_id = %request_id, "request body not received");
            let mut r = (
                StatusCode::REQUEST_TIMEOUT,
                Json(json!({ "error": { "code": "request_timeout", "message": "the request body did not arrive in time" } })),
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };

    let response = match outcome {
        Ok(r) => to_http(r),
        Err(e) => {
            log_failure(&e, &plugin.name, &plugin.version, &request_id);
            to_http(state.runtime.fail(&plugin, &wit, &e, &site).await)
        }
    };
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        plugin = %plugin.name,
        version = %plugin.version,
        %method,
        route = %path,
        status,
        latency_ms = format_args!("{latency_ms:.2}"),
        request_id = %request_id,
        "request"
    );
    let mut response = response;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// A plugin's own failure is an ERROR (its author must look); a busy plugin or a throttled
/// client is the budget doing its job, and each request already has its request line.
fn log_failure(e: &InvokeError, plugin: &str, version: &str, request_id: &str) {
    match e {
        InvokeError::Deadline(_) | InvokeError::OutOfMemory | InvokeError::Trap(_) => {
            tracing::error!(plugin, version, error = %e, request_id, "plugin call failed")
        }
        InvokeError::Busy(_) | InvokeError::RateLimited { .. } => {
            tracing::debug!(plugin, version, error = %e, request_id, "request refused")
        }
    }
}

fn to_http(r: bindings::Response) -> Response {
    let status = StatusCode::from_u16(r.status)
        .ok()
        .filter(|s| (100..=599).contains(&s.as_u16()))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(r.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in r.headers {
        if HOST_OWNED.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(n, v);
        }
    }
    response
}
