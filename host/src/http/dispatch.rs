//! Dispatch to plugins: find the plugin whose mount (listener, Host, prefix) and routes claim
//! the request (a CORS preflight by the method it asks about, answered by the mount's CORS
//! layer), read the body within the size limit, hand the request over on a fresh instance,
//! and send back exactly what the plugin answered. A plugin failure (trap, deadline,
//! memory, a busy plugin, a rate-limited client) costs this one request a failure answer (in
//! the dialect's words where the plugin can give them) and one log line.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use tower::ServiceExt;

use super::{AppState, Listener};
use crate::metrics::FailureKind;
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

/// The request budget of each client address: a flood from one address is answered "too
/// many requests" (in the dialect's words) before a plugin instance is spent on it.
pub struct PerIp {
    limiter: Option<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    checks: std::sync::atomic::AtomicU64,
}

impl PerIp {
    /// `per_sec` requests per second, bursts of twice that; 0 for no limit.
    pub fn new(per_sec: u32) -> Self {
        let limiter = std::num::NonZeroU32::new(per_sec).map(|n| {
            let burst = n.saturating_mul(std::num::NonZeroU32::MIN.saturating_add(1));
            governor::RateLimiter::keyed(governor::Quota::per_second(n).allow_burst(burst))
        });
        PerIp {
            limiter,
            checks: Default::default(),
        }
    }

    /// `Err(seconds to wait)` when `ip` is over its budget.
    fn check(&self, ip: Option<std::net::IpAddr>) -> Result<(), u32> {
        let (Some(l), Some(ip)) = (&self.limiter, ip) else {
            return Ok(());
        };
        // Addresses that went quiet are forgotten now and then, so the table stays small.
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 65_536 == 65_535 {
            l.retain_recent();
            l.shrink_to_fit();
        }
        l.check_key(&ip).map_err(|not_until| {
            let clock = governor::clock::DefaultClock::default();
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&clock));
            wait.as_secs().saturating_add(1).min(u64::from(u32::MAX)) as u32
        })
    }
}

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

/// The client's `Host` without its port (the `Host` header, else the URI's authority).
fn host_name(parts: &axum::http::request::Parts) -> Option<&str> {
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))?;
    Some(match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    })
}

pub async fn dispatch(
    State(state): State<AppState>,
    Extension(listener): Extension<Listener>,
    req: Request,
) -> Response {
    let started = tokio::time::Instant::now();
    let (parts, body) = req.into_parts();
    let host = host_name(&parts);
    let path = parts.uri.path().to_string();
    // A CORS preflight asks about another method: routed by that one, it reaches the mount
    // whose CORS answers it. On a mount without CORS it stays a plain OPTIONS request.
    let preflight = super::cors::preflight(&parts)
        .and_then(|asked| {
            state
                .registry
                .route(listener.0, host, asked.as_str(), &path)
        })
        .filter(|(plugin, _)| state.cors.of(&plugin.name).is_some());
    let routed = preflight.or_else(|| {
        state
            .registry
            .route(listener.0, host, parts.method.as_str(), &path)
    });
    let Some((plugin, rel_path)) = routed else {
        let method = &parts.method;
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": { "code": "not_found", "message": format!("no route for {method} {path}") } })),
        )
            .into_response();
    };
    let key_spec = plugin.mount.canary_key.clone();
    let plugin = state.registry.version_for(plugin, || {
        canary_hash(&plugin_key(key_spec.as_deref(), &parts))
    });
    let req = Request::from_parts(parts, body);
    let Some(cors) = state.cors.of(&plugin.name).cloned() else {
        return serve(state, listener, plugin, rel_path, started, req).await;
    };
    let inner = tower::service_fn(move |req: Request| {
        let (state, plugin, rel_path) = (state.clone(), plugin.clone(), rel_path.clone());
        async move {
            Ok::<_, std::convert::Infallible>(
                serve(state, listener, plugin, rel_path, started, req).await,
            )
        }
    });
    match tower::Layer::layer(&cors, inner).oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Who asks, as the plugin's mount names it (`canary-key`), for choosing between its stable
/// and canary versions; only computed while it has a canary.
fn plugin_key(spec: Option<&str>, parts: &axum::http::request::Parts) -> String {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let client = || {
        parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default()
    };
    match spec.and_then(|k| k.split_once(':')) {
        Some(("header", name)) => header(name).unwrap_or_else(client),
        Some(("query", name)) => form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(client),
        _ => header("authorization")
            .or_else(|| header("x-api-key"))
            .unwrap_or_else(client),
    }
}

/// The same 64-bit hash of a key on every replica (so a device sees one version whichever
/// replica it reaches).
fn canary_hash(key: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Hand a routed request to its plugin and answer what it answers (or its failure).
async fn serve(
    state: AppState,
    listener: Listener,
    plugin: std::sync::Arc<crate::runtime::LoadedPlugin>,
    rel_path: String,
    started: tokio::time::Instant,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();

    let request_id = new_request_id();
    let host_url = super::host_url(&state.config, listener, &parts.headers, &parts.uri);
    let site = CallSite {
        host_url: host_url.clone(),
        oss_url: state.oss_url.as_deref().map(str::to_string),
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

    let origin = Origin {
        plugin: &plugin.name,
        version: &plugin.version,
        request_id: &request_id,
    };
    if let Err(retry_after_secs) = state.per_ip.check(site.client) {
        let e = InvokeError::RateLimited { retry_after_secs };
        let response = to_http(state.runtime.fail(&plugin, &wit, &e, &site).await, &origin);
        tokio::time::sleep_until(started + tarpit(&e, &state.config.limits)).await;
        tracing::info!(plugin = %plugin.name, %method, route = %path, status = response.status().as_u16(), request_id = %request_id, "request refused: address over its request rate");
        let metrics = &state.services.metrics;
        metrics.failure(&plugin.name, FailureKind::RateLimited);
        count(metrics, &plugin, &method, &path, &response, started);
        return response;
    }

    let limit = state.config.limits.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match declared {
        Some(n) if n > limit as u64 => Err(BodyProblem::TooLarge),
        _ => {
            let whole = Duration::from_millis(state.config.limits.body_timeout_ms);
            match tokio::time::timeout(whole, axum::body::to_bytes(body, limit)).await {
                Ok(read) => read.map_err(|e| BodyProblem::of(&e)),
                Err(_) => Err(BodyProblem::Stalled),
            }
        }
    };
    let outcome = match body {
        Ok(bytes) => {
            wit.body = bytes.to_vec();
            state.runtime.handle(&plugin, &wit, &site).await
        }
        Err(BodyProblem::TooLarge) => {
            state
                .services
                .metrics
                .failure(&plugin.name, FailureKind::BodyTooLarge);
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
            let metrics = &state.services.metrics;
            metrics.failure(&plugin.name, FailureKind::BodyNotReceived);
            count(metrics, &plugin, &method, &path, &r, started);
            return r;
        }
    };

    let response = match outcome {
        Ok(r) => to_http(r, &origin),
        Err(e) => {
            log_failure(&e, &plugin.name, &plugin.version, &request_id);
            state
                .services
                .metrics
                .failure(&plugin.name, failure_kind(&e));
            let answer = to_http(state.runtime.fail(&plugin, &wit, &e, &site).await, &origin);
            tokio::time::sleep_until(started + tarpit(&e, &state.config.limits)).await;
            answer
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
    count(
        &state.services.metrics,
        &plugin,
        &method,
        &path,
        &response,
        started,
    );
    let mut response = response;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Count an answered plugin request under the route pattern that served it.
fn count(
    metrics: &crate::metrics::Metrics,
    plugin: &crate::runtime::LoadedPlugin,
    method: &str,
    path: &str,
    response: &Response,
    started: tokio::time::Instant,
) {
    metrics.request(
        &plugin.name,
        &plugin.version,
        plugin.route_label(method, path),
        response.status().as_u16(),
        started.elapsed(),
    );
}

fn failure_kind(e: &InvokeError) -> FailureKind {
    match e {
        InvokeError::Busy(_) => FailureKind::Busy,
        InvokeError::RateLimited { .. } => FailureKind::RateLimited,
        InvokeError::Deadline(_) => FailureKind::Timeout,
        InvokeError::OutOfMemory => FailureKind::Memory,
        InvokeError::Trap(_) => FailureKind::Trap,
    }
}

/// How long a refusal takes at least. A flood's refusals are answered late, so a client that
/// asks again at once waits in between: the flood costs the flooder time (and the host a
/// sleeping task, bounded by the connection caps), not the host's CPU. A throttled client
/// waits up to a second, a client of a saturated plugin as long as a queued call would.
fn tarpit(e: &InvokeError, limits: &crate::config::Limits) -> Duration {
    match e {
        InvokeError::RateLimited { retry_after_secs } => {
            Duration::from_secs(u64::from(*retry_after_secs)).min(Duration::from_secs(1))
        }
        InvokeError::Busy(_) => Duration::from_millis(limits.plugin_queue_ms),
        _ => Duration::ZERO,
    }
}

/// A plugin's own failure is an ERROR (its author must look); a busy plugin or a throttled
/// client is the budget doing its job, and each request already has its request line.
fn log_failure(e: &InvokeError, plugin: &str, version: &str, request_id: &str) {
    match e {
        InvokeError::Deadline(_) | InvokeError::OutOfMemory | InvokeError::Trap(_) => {
            tracing::error!(%plugin, %version, error = %e, %request_id, "plugin call failed")
        }
        InvokeError::Busy(_) | InvokeError::RateLimited { .. } => {
            tracing::debug!(%plugin, %version, error = %e, %request_id, "request refused")
        }
    }
}

/// Which plugin call an answer came from, for the log lines about what was wrong with it.
struct Origin<'a> {
    plugin: &'a str,
    version: &'a str,
    request_id: &'a str,
}

/// The plugin's answer as HTTP. What HTTP cannot carry is fixed, and logged for the plugin's
/// author: a status outside 100-599 becomes a 500; a header with an invalid name or value is
/// dropped, and so is one the host owns (framing and connection headers).
fn to_http(r: bindings::Response, o: &Origin<'_>) -> Response {
    let (plugin, version, request_id) = (o.plugin, o.version, o.request_id);
    let status = match StatusCode::from_u16(r.status)
        .ok()
        .filter(|s| (100..=599).contains(&s.as_u16()))
    {
        Some(s) => s,
        None => {
            tracing::error!(
                %plugin,
                %version,
                %request_id,
                status = r.status,
                "the plugin answered an invalid HTTP status; the client gets 500"
            );
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let mut response = Response::new(Body::from(r.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in r.headers {
        if HOST_OWNED.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            tracing::debug!(%plugin, %version, %request_id, header = %name, "dropped a response header the host sets itself");
            continue;
        }
        let reason = match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
                continue;
            }
            (Err(_), _) => "invalid header name",
            (_, Err(_)) => "invalid header value (control characters or non-visible bytes)",
        };
        tracing::warn!(%plugin, %version, %request_id, header = %name.escape_debug(), reason, "dropped a response header");
    }
    sandbox_pages(headers);
    response
}

/// A plugin answer a browser could run as a page (HTML, XML, SVG, or no type to sniff)
/// is sandboxed unless the plugin set its own policy: a page echoing what a client sent
/// must not act on this host's dashboard with an operator's cookie.
fn sandbox_pages(headers: &mut axum::http::HeaderMap) {
    let runnable = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| {
            let t = t.to_ascii_lowercase();
            ["html", "xml", "svg"].iter().any(|k| t.contains(k))
        });
    if runnable && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_browser_could_run_as_pages_are_sandboxed() {
        let csp = |content_type: Option<&str>, own: Option<&str>| {
            let mut h = axum::http::HeaderMap::new();
            if let Some(t) = content_type {
                h.insert(header::CONTENT_TYPE, t.parse().unwrap());
            }
            if let Some(p) = own {
                h.insert(header::CONTENT_SECURITY_POLICY, p.parse().unwrap());
            }
            sandbox_pages(&mut h);
            h.get(header::CONTENT_SECURITY_POLICY)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            csp(Some("text/html; charset=utf-8"), None).as_deref(),
            Some("sandbox")
        );
        assert_eq!(csp(Some("image/svg+xml"), None).as_deref(), Some("sandbox"));
        assert_eq!(
            csp(Some("application/xml"), None).as_deref(),
            Some("sandbox")
        );
        assert_eq!(csp(None, None).as_deref(), Some("sandbox"), "sniffable");
        assert_eq!(csp(Some("application/json"), None), None);
        assert_eq!(csp(Some("application/octet-stream"), None), None);
        // A plugin that sets its own policy keeps it.
        assert_eq!(
            csp(Some("text/html"), Some("default-src 'none'")).as_deref(),
            Some("default-src 'none'")
        );
    }
}
