//! Dispatch to plugins: find the plugin whose mount (listener, Host, prefix) and routes claim
//! the request, read the body within the size limit, hand the request over on a fresh
//! instance, and send back exactly what the plugin answered. A plugin failure (trap, deadline,
//! memory) costs this one request a 5xx and a log line.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::{AppState, Listener};
use crate::runtime::InvokeError;
use crate::runtime::bindings::{self, Refusal};

/// Hop-by-hop and framing headers are the host's business, never the plugin's.
const HOST_OWNED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
];

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
        Some(n) if n > limit as u64 => None,
        _ => axum::body::to_bytes(body, limit).await.ok(),
    };
    let outcome = match body {
        Some(bytes) => {
            wit.body = bytes.to_vec();
            state.runtime.handle(&plugin, &wit, &host_url).await
        }
        None => {
            state
                .runtime
                .refuse(&plugin, &wit, Refusal::BodyTooLarge, &host_url)
                .await
        }
    };

    let response = match outcome {
        Ok(r) => to_http(r),
        Err(e) => failure(&e, &request_id),
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

fn failure(e: &InvokeError, request_id: &str) -> Response {
    let status = match e {
        InvokeError::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
        InvokeError::Capacity(_) => StatusCode::SERVICE_UNAVAILABLE,
        InvokeError::OutOfMemory | InvokeError::Trap(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::error!(error = %e, request_id, "plugin call failed");
    (
        status,
        Json(json!({ "error": { "code": "plugin_failure", "message": format!("the plugin failed to answer (request {request_id})") } })),
    )
        .into_response()
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
