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

/// A Rust panic: the SDK's hook must get its message and place into the host's log.
fn panic(_: &Request) -> Response {
    let what = "flux capacitor";
    panic!("the {what} is empty")
}

/// What HTTP cannot carry: a status past 599 (the client gets 500) or, with `?headers`,
/// headers with a bad name and a bad value (dropped); each is logged for the author.
fn malformed(req: &Request) -> Response {
    if req.query().contains("headers") {
        return Response::text(200, "half a header set")
            .header("bad name", "x")
            .header("x-bad-value", "line\nbreak")
            .header("x-good", "kept");
    }
    Response::text(999, "no such status")
}

/// Prints to stdout and stderr, a lot: lines reach the log, bounded.
fn chatter(_: &Request) -> Response {
    println!("hello from stdout");
    eprintln!("warning from stderr");
    for i in 0..10_000 {
        eprintln!("noise line {i}");
    }
    Response::text(200, "printed")
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
            .get("/misbehave/panic", panic)
            .get("/misbehave/malformed", malformed)
            .get("/misbehave/print", chatter)
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
