//! A test-only dialect that misbehaves on purpose, to prove the host's sandbox: each route
//! costs only its own request a 5xx, and the server and other plugins keep serving.

use ota_plugin_sdk::{Dialect, Refusal, Request, Response, Router, dialect};

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
            .get("/misbehave/ok", echo)
            .get("/misbehave/count", count)
    }

    fn refuse(_: &Request, _: Refusal) -> Response {
        Response::text(413, "too large")
    }
}

dialect!(Misbehave);
