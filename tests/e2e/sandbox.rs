//! The sandbox limits: a plugin that loops forever, allocates without bound or traps costs
//! that one request a 5xx; the server, the same plugin's next request and other plugins keep
//! serving, and no request sees another's memory.

use std::time::{Duration, Instant};

use ota_tests::{API_KEY, Options, TestServer};

async fn get(t: &TestServer, path: &str) -> (u16, String) {
    let r = t.http.get(t.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn everything_still_serves(t: &TestServer) {
    assert_eq!(get(t, "/misbehave/ok").await.0, 200);
    let (status, body) = t
        .post(
            "/api/v1/deployment/create",
            Some(API_KEY),
            r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"gw"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn options() -> Options {
    Options {
        plugins: vec![
            ("iotstack.wasm", "iotstack"),
            ("misbehave.wasm", "misbehave"),
        ],
        configure: Box::new(|f| {
            f.limits.request_timeout_ms = 500;
            f.limits.memory_mib = 16;
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_hits_the_deadline_and_nothing_else() {
    let t = TestServer::start(options()).await;
    let started = Instant::now();
    let looping = {
        let (http, url) = (t.http.clone(), t.url("/misbehave/loop"));
        tokio::spawn(async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap(), Instant::now())
        })
    };
    // While it spins, other requests are answered (the loop yields at every epoch tick).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = get(&t, "/misbehave/ok").await;
    let ok_done = Instant::now();
    assert_eq!(status, 200);
    let (status, body, loop_done) = looping.await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert_eq!(
        body, "misbehave failed: timeout",
        "answered in the plugin's words"
    );
    assert!(ok_done < loop_done, "the loop blocked another request");
    let took = loop_done - started;
    assert!(
        took >= Duration::from_millis(450),
        "deadline fired early: {took:?}"
    );
    everything_still_serves(&t).await;
    t.stop().await;
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_cap() {
    let t = TestServer::start(options()).await;
    let (status, body) = get(&t, "/misbehave/alloc").await;
    assert_eq!(status, 500, "{body}");
    everything_still_serves(&t).await;
    t.stop().await;
}

#[tokio::test]
async fn a_trap_costs_one_request() {
    let t = TestServer::start(options()).await;
    for _ in 0..3 {
        let (status, body) = get(&t, "/misbehave/trap").await;
        assert_eq!(status, 500, "{body}");
        everything_still_serves(&t).await;
    }
    t.stop().await;
}

#[tokio::test]
async fn every_request_gets_a_fresh_instance() {
    let t = TestServer::start(options()).await;
    for _ in 0..20 {
        assert_eq!(get(&t, "/misbehave/count").await, (200, "1".to_string()));
    }
    t.stop().await;
}

#[tokio::test]
async fn data_calls_before_auth_are_refused() {
    let t = TestServer::start(options()).await;
    let (status, body) = get(&t, "/misbehave/contract").await;
    assert_eq!(status, 200, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 4, "{body}");
    for line in &lines {
        assert!(line.starts_with("unauthenticated: "), "{body}");
    }
    t.stop().await;
}

/// A plugin built against the frozen 0.1 contract keeps loading next to 0.2 plugins, its
/// calls reach the same domain through the 0.1 adapters, and what 0.1 declared without
/// implementing still answers `unsupported`.
#[tokio::test]
async fn a_plugin_built_against_0_1_keeps_working() {
    let t = TestServer::start(Options {
        plugins: vec![
            ("iotstack.wasm", "iotstack"),
            ("legacy-v01.wasm", "legacy-v01"),
        ],
        ..Default::default()
    })
    .await;
    let (status, body) = t.admin_get("/admin/plugins").await;
    assert_eq!(status, 200);
    let contracts: Vec<(String, String)> = body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["contract"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        contracts.contains(&("legacy-v01".into(), "ota:dialect@0.1.0".into())),
        "{contracts:?}"
    );
    assert!(
        contracts.contains(&("iotstack".into(), "ota:dialect@0.2.8".into())),
        "{contracts:?}"
    );

    let r = t
        .http
        .get(t.url(&format!("/legacy/product?sn={}", ota_tests::PRODUCT)))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let line = r.text().await.unwrap();
    // tenant, product name (may hold spaces), device, created-at.
    let parts: Vec<&str> = line.split(' ').collect();
    let n = parts.len();
    assert_eq!(parts[0], ota_tests::TENANT, "{line}");
    assert_eq!(parts[n - 2], "legacy-device", "{line}");
    // 0.1 counted device creation in seconds; 0.2 in milliseconds.
    assert_eq!(
        parts[n - 1].parse::<i64>().unwrap(),
        ota_tests::T0_MILLIS / 1000,
        "{line}"
    );

    let (status, body) = get(&t, "/legacy/contract").await;
    assert_eq!(status, 200, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 5, "{body}");
    for line in &lines[..4] {
        assert!(line.starts_with("unsupported: "), "{body}");
    }
    assert!(lines[4].starts_with("unauthenticated: "), "{body}");
    t.stop().await;
}
