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
    assert!(body.contains("plugin_failure"), "{body}");
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
async fn declared_but_unimplemented_calls_say_unsupported() {
    let t = TestServer::start(options()).await;
    let (status, body) = get(&t, "/misbehave/contract").await;
    assert_eq!(status, 200, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 5, "{body}");
    for line in &lines[..4] {
        assert!(line.starts_with("unsupported: "), "{body}");
    }
    // Data calls before any auth call are refused, not answered.
    assert!(lines[4].starts_with("unauthenticated: "), "{body}");
    t.stop().await;
}
