//! Where a plugin request's fixed cost goes, layer by layer, in one run: a fresh instance
//! plus one `handle` call with no host call (the runtime alone, no HTTP), then over HTTP the
//! host's own `/healthz` (the edge: accept loop, middleware, router), a bare axum twin
//! answering the same bytes, and a plugin route that makes no host call (edge + runtime).
//! Prints µs per call and requests/s. Run: `cargo bench -p ota-host --bench hot_path`.
//!
//! Knobs: `BENCH_SECS` (per HTTP path, default 3), `BENCH_CONCURRENCY` (default 16),
//! `BENCH_CALLS` (runtime-only calls, default 20000).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use ota_host::runtime::CallSite;
use ota_host::runtime::bindings::Request;

fn request(i: usize) -> Request {
    Request {
        method: "GET".into(),
        path: format!("/acme/controller/v1/dev-{i}"),
        query: String::new(),
        headers: vec![("accept".into(), "*/*".into())],
        body: Vec::new(),
        base_url: "http://127.0.0.1".into(),
        host_url: "http://127.0.0.1".into(),
        request_id: format!("bench-{i}"),
    }
}

fn main() {
    let secs = support::env("BENCH_SECS", 3);
    let concurrency = support::env("BENCH_CONCURRENCY", 16) as usize;
    let calls = support::env("BENCH_CALLS", 20_000) as usize;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let built =
            std::path::Path::new(ota_host::bundled::BUILD_DIR).join("ota_plugin_catchall.wasm");
        let (server, _dir) =
            support::start_files(&[(built.as_path(), "catchall.wasm")], Default::default()).await;
        let plugin = server
            .registry
            .snapshot()
            .plugins
            .values()
            .next()
            .cloned()
            .expect("catchall loaded");
        let runtime = server.loader.runtime.clone();
        let site = CallSite::default();

        // The runtime alone: one task after another, then two at once (one per core).
        for i in 0..200 {
            runtime.handle(&plugin, &request(i), &site).await.unwrap();
        }
        let started = Instant::now();
        for i in 0..calls {
            let r = runtime.handle(&plugin, &request(i), &site).await.unwrap();
            assert_eq!(r.status, 200);
        }
        let serial = started.elapsed();
        let started = Instant::now();
        let tasks: Vec<_> = (0..2)
            .map(|t| {
                let (runtime, plugin) = (runtime.clone(), Arc::clone(&plugin));
                tokio::spawn(async move {
                    let site = CallSite::default();
                    for i in 0..calls / 2 {
                        runtime
                            .handle(&plugin, &request(t * calls + i), &site)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let parallel = started.elapsed();
        let per = |d: Duration| d.as_secs_f64() * 1e6 / calls as f64;
        println!("runtime only: fresh instance + handle (no host call), {calls} calls");
        println!("   one task: {:>7.1} µs per call", per(serial));
        println!(
            "  two tasks: {:>7.0} calls/s",
            calls as f64 / parallel.as_secs_f64()
        );

        let twin =
            support::serve(axum::Router::new().route("/healthz", get(|| async { "ok" }))).await;
        let client = reqwest::Client::new();
        let paths = [
            ("bare axum twin", format!("{twin}/healthz")),
            ("host /healthz", format!("{}/healthz", server.url())),
            (
                "plugin, no host call",
                format!("{}/acme/controller/v1/dev-1", server.url()),
            ),
        ];
        for (_, url) in &paths {
            support::get_for_secs(&client, url, None, 1, concurrency).await;
        }
        println!("over HTTP, {secs}s per path, {concurrency} concurrent clients");
        let mut figures = Vec::new();
        for (label, url) in &paths {
            let s = support::get_for_secs(&client, url, None, secs, concurrency).await;
            s.print(label, "");
            figures.push(s.rps);
        }
        println!(
            "ratios: host edge/bare axum {:.2}, plugin/host edge {:.2}, plugin/bare axum {:.2}",
            figures[1] / figures[0],
            figures[2] / figures[1],
            figures[2] / figures[0]
        );
        server.shutdown().await;
    });
}
