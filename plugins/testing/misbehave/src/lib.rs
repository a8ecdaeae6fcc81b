//! A test-only dialect that misbehaves on purpose, to prove the host's sandbox: each route
//! costs only its own request a 5xx, and the server and other plugins keep serving.

use ota_plugin_sdk::{
    Dialect, Failure, FailureKind, HostError, Refusal, Request, Response, Router, blobs, dialect,
};

struct Misbehave;

fn spin(_: &Request) -> Response {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn hog(_: &Request) -> Response {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&held);
    }
}

fn trap(_: &Request) -> Response {
    std::process::abort()
}

/// Counts calls in this instance's memory: a fresh instance per request always answers 1,
/// so any other answer means state leaked from an earlier request.
fn count(_: &Request) -> Response {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    Response::text(200, n.to_string())
}

/// Calls data functions of every host interface before any credentials were verified;
/// answers each error's case, one per line (all must be `unauthenticated`).
fn contract(_: &Request) -> Response {
    let case = |e: HostError| match e {
        HostError::Unsupported(m) => format!("unsupported: {m}"),
        HostError::Unauthenticated(m) => format!("unauthenticated: {m}"),
        other => format!("other: {other:?}"),
    };
    let lines = [
        blobs::stat("x")
            .map(|_| "ok".to_string())
            .unwrap_or_else(case),
        blobs::download_url("x", None).unwrap_or_else(case),
        ota_plugin_sdk::catalog::get_product("P")
            .map(|_| "ok".to_string())
            .unwrap_or_else(case),
        ota_plugin_sdk::rollout::get_campaign(1)
            .map(|_| "ok".to_string())
            .unwrap_or_else(case),
    ];
    Response::text(200, lines.join("\n"))
}

fn echo(req: &Request) -> Response {
    Response::text(200, format!("misbehave {} ok", env!("CARGO_PKG_VERSION")))
        .header("x-request-id", req.request_id())
}

impl Dialect for Misbehave {
    const NAME: &'static str = "misbehave";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "Test";
    const DESCRIPTION: &'static str = "loops, allocates and traps on demand";

    fn router() -> Router {
        Router::new()
            .get("/misbehave/loop", spin)
            .get("/misbehave/alloc", hog)
            .get("/misbehave/trap", trap)
            .get("/misbehave/trap-twice", trap)
            .get("/misbehave/ok", echo)
            .get("/misbehave/count", count)
            .get("/misbehave/contract", contract)
    }

    fn refuse(_: &Request, _: Refusal) -> Response {
        Response::text(413, "too large")
    }

    /// Failures in this dialect's words, so tests can tell them from the host's; on
    /// `/misbehave/trap-twice` the failure answer traps too (the host must answer then).
    fn fail(req: &Request, failure: &Failure) -> Response {
        if req.path() == "/misbehave/trap-twice" {
            std::process::abort()
        }
        let kind = match failure.kind {
            FailureKind::Busy => "busy",
            FailureKind::RateLimited => "rate-limited",
            FailureKind::Timeout => "timeout",
            FailureKind::Crashed => "crashed",
        };
        ota_plugin_sdk::retry_after(
            Response::text(failure.status, format!("misbehave failed: {kind}")),
            failure,
        )
    }
}

dialect!(Misbehave);
