//! Isolation under abuse, end to end and bounded in count and time: slow and idle connections
//! are closed, connection caps answer 503, a login flood is throttled in the dialect's own
//! words while an honest login from elsewhere succeeds (its memory cost is measured on a
//! server process of its own in `tests/cli/abuse.rs`), a saturated
//! plugin answers busy in its own words while another plugin keeps serving, and failures are
//! answered by the plugin where it can (by the host where it cannot).

use std::time::Duration;

use ota_tests::{API_KEY, Options, TestServer, admin};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server closes `s` within `limit` (reading whatever it still sends).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Send one full request on `s` and read its answer's head.
async fn request(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| {
            f.limits.header_read_timeout_ms = 300;
            f.limits.keep_alive_idle_ms = 3_000;
        }),
        ..Default::default()
    })
    .await;
    let addr = t.server.addr;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut slowloris = TcpStream::connect(addr).await.unwrap();
    slowloris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut kept = TcpStream::connect(addr).await.unwrap();
    assert!(
        request(&mut kept, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );

    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "a connection that sends nothing"
    );
    assert!(
        closed_within(&mut slowloris, Duration::from_secs(5)).await,
        "a head that never ends"
    );
    // Idle between requests is not a slow head: the kept-alive connection outlives the
    // header timeout, serves again, and is closed once idle for the keep-alive time.
    assert!(
        request(&mut kept, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        closed_within(&mut kept, Duration::from_secs(10)).await,
        "an idle kept-alive connection"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_abandoned() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| f.limits.body_idle_timeout_ms = 300),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(t.server.addr).await.unwrap();
    s.write_all(
        format!(
            "POST /api/v1/reinstall/info HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"GatewaySN\":"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept waiting for the body");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    t.stop().await;
}

#[tokio::test]
async fn a_trickled_body_is_cut_off() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| f.limits.body_timeout_ms = 500),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(t.server.addr).await.unwrap();
    s.write_all(
        format!(
            "POST /api/v1/reinstall/info HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\
             Content-Length: 1000\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // A byte every 100 ms is never idle, but the whole body is due within 500 ms.
    let mut answer = Vec::new();
    for _ in 0..50 {
        if s.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_throttled_in_the_dialects_words() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| f.limits.requests_per_ip_per_sec = 5),
        ..Default::default()
    })
    .await;
    let body = r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"gw-1"}"#;
    let flood: Vec<_> = (0..30)
        .map(|_| {
            let (http, url) = (t.http.clone(), t.url("/api/v1/deployment/create"));
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("X-API-Key", API_KEY)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let retry = r.headers().get("retry-after").is_some();
                (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut throttled = 0;
    for f in flood {
        let (status, retry, body) = f.await.unwrap();
        if status == 429 {
            // IoTStack's envelope, not the host's.
            assert_eq!(body["Code"], 4029, "{body}");
            assert!(retry);
            throttled += 1;
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }
    assert!(throttled >= 15, "only {throttled} of 30 throttled");
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = other
        .post(t.url("/api/v1/deployment/create"))
        .header("X-API-Key", API_KEY)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another address has its own budget");
    t.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_answered_503_and_closed() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| f.limits.max_connections_per_ip = 3),
        ..Default::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(t.server.addr).await.unwrap();
        assert!(
            request(&mut s, "/healthz")
                .await
                .starts_with("HTTP/1.1 200")
        );
        held.push(s);
    }
    let mut over = TcpStream::connect(t.server.addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut answer))
        .await
        .expect("the refused connection was not closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    // Another address has its own share.
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = other.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A closed connection frees its place.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut s = TcpStream::connect(t.server.addr).await.unwrap();
        if request(&mut s, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
        {
            again = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_throttled_and_an_honest_login_still_succeeds() {
    let t = TestServer::start(Options {
        plugins: vec![("ubtech.wasm", "ubtech")],
        configure: Box::new(|f| {
            f.logins.attempt_burst = 10;
            f.logins.free_failures = 3;
        }),
        ..Default::default()
    })
    .await;
    for (kind, name, secret) in [("client", "mobile_1", "secret_1"), ("user", "aa", "aa")] {
        let (status, body) = admin(
            &t,
            Method::POST,
            "/admin/api/v1/tenants/acme/logins",
            Some(json!({"realm": "ubtech", "kind": kind, "name": name, "secret": secret})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let flood: Vec<_> = (0..120)
        .map(|i| {
            let (http, url) = (
                t.http.clone(),
                t.url(&format!(
                    "/oauth/token?client_id=mobile_{i}&client_secret=nope&grant_type=password&username=u{i}&password=p"
                )),
            );
            tokio::spawn(async move {
                let r = http.get(url).send().await.unwrap();
                let retry = r.headers().get("retry-after").is_some();
                (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut throttled = 0;
    for f in flood {
        let (status, retry, body) = f.await.unwrap();
        match status {
            401 => assert_eq!(body["error"], "invalid_client", "{body}"),
            429 => {
                // In OAuth2's words, as the client's library reads them.
                assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                assert!(retry, "429 without Retry-After");
                throttled += 1;
            }
            503 => assert_eq!(body["error"], "temporarily_unavailable", "{body}"),
            other => panic!("flood answered {other}: {body}"),
        }
    }
    assert!(throttled > 50, "only {throttled} of 120 throttled");

    // The flood came from 127.0.0.1; a robot elsewhere logs in at once.
    let robot = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = robot
        .get(t.url(
            "/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password=aa",
        ))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access_token"].as_str().unwrap().len(), 32);
    t.stop().await;
}

fn with_misbehave(instances: u32) -> Options {
    Options {
        plugins: vec![
            ("iotstack.wasm", "iotstack"),
            ("misbehave.wasm", "misbehave"),
            ("legacy-v01.wasm", "legacy-v01"),
        ],
        configure: Box::new(move |f| {
            f.limits.request_timeout_ms = 1_000;
            f.limits.memory_mib = 16;
            f.plugins.entry("misbehave".into()).or_default().instances = Some(instances);
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_plugin_is_busy_in_its_own_words_and_costs_no_one_else() {
    let t = TestServer::start(with_misbehave(3)).await;
    let loops: Vec<_> = (0..12)
        .map(|_| {
            let (http, url) = (t.http.clone(), t.url("/misbehave/loop"));
            tokio::spawn(async move {
                let r = http.get(url).send().await.unwrap();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                (r.status().as_u16(), retry, r.text().await.unwrap())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // While every instance of misbehave spins, another plugin answers every request.
    for i in 0..20 {
        let (status, body) = t
            .post(
                "/api/v1/deployment/create",
                Some(API_KEY),
                &format!(r#"{{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"gw-{i}"}}"#),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (mut busy, mut timed_out) = (0, 0);
    for l in loops {
        let (status, retry, body) = l.await.unwrap();
        match status {
            503 => {
                assert_eq!(body, "misbehave failed: busy");
                assert_eq!(retry.as_deref(), Some("1"));
                busy += 1;
            }
            504 => {
                assert_eq!(body, "misbehave failed: timeout");
                timed_out += 1;
            }
            other => panic!("a loop answered {other}: {body}"),
        }
    }
    assert_eq!(timed_out, 3, "exactly the plugin's instances ran");
    assert_eq!(busy, 9);
    // Once they are gone, the plugin serves again.
    let r = t.http.get(t.url("/misbehave/ok")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    t.stop().await;
}

#[tokio::test]
async fn failures_are_answered_by_the_plugin_where_it_can() {
    let t = TestServer::start(with_misbehave(8)).await;
    let get = async |path: &str| {
        let r = t.http.get(t.url(path)).send().await.unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (r.status().as_u16(), ct, r.text().await.unwrap())
    };
    // A 0.2.5 plugin's trap: its own words.
    let (status, _, body) = get("/misbehave/trap").await;
    assert_eq!((status, body.as_str()), (500, "misbehave failed: crashed"));
    // Its failure answer traps too: the host answers, without internals.
    let (status, ct, body) = get("/misbehave/trap-twice").await;
    assert_eq!(status, 500);
    assert_eq!(ct, "application/json");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "plugin_failure", "{body}");
    assert!(
        !body.contains("wasm") && !body.contains("unreachable"),
        "{body}"
    );
    // A plugin older than 0.2.5 has no failure answer: the host's.
    let (status, ct, body) = get("/legacy/trap").await;
    assert_eq!(status, 500);
    assert_eq!(ct, "application/json");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "plugin_failure", "{body}");
    t.stop().await;
}

#[tokio::test]
async fn memory_bombs_give_their_budget_back() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| {
            f.limits.memory_mib = 16;
            f.plugins
                .entry("misbehave".into())
                .or_default()
                .memory_budget_mib = Some(24);
        }),
        ..with_misbehave(8)
    })
    .await;
    let bombs: Vec<_> = (0..6)
        .map(|_| {
            let (http, url) = (t.http.clone(), t.url("/misbehave/alloc"));
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for b in bombs {
        assert_eq!(b.await.unwrap(), 500);
    }
    // Every bomb's memory came back to the budget: an honest call fits again.
    let r = t.http.get(t.url("/misbehave/ok")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = t
        .post(
            "/api/v1/deployment/create",
            Some(API_KEY),
            r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"gw-m"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    t.stop().await;
}
