//! `/metrics` and `/readyz` over HTTP: who may scrape (an operator key on the main
//! listener, anyone on the operator's metrics listener), the exposition parsed by
//! Prometheus's own parser, and counters and gauges that move as MXChip devices check in.

use std::collections::BTreeMap;

use ota_tests::prometheus::{self, Sample, value};
use ota_tests::{API_KEY, OPERATOR_KEY, Options, PRODUCT, TestServer, admin};
use reqwest::Method;
use serde_json::{Value, json};

const FILES: &str = "/api/v1/ota/fqhmuglv1fybql33/files/";

async fn start() -> (TestServer, String) {
    let t = TestServer::start(Options {
        plugins: vec![("mxchip.wasm", "mxchip")],
        configure: Box::new(|f| f.metrics.listen = Some("127.0.0.1:0".parse().unwrap())),
        ..Default::default()
    })
    .await;
    let (token, _) = crate::mxchip::console_token(&t).await;
    (t, token)
}

/// An MXChip call with the console's token: status and JSON body.
async fn mx(
    t: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = t
        .http
        .request(method, t.url(path))
        .header("Authorization", format!("token {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Scrape `url` with an optional bearer key: status, content type and body.
async fn get(t: &TestServer, url: &str, key: Option<&str>) -> (u16, String, String) {
    let mut req = t.http.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.text().await.unwrap())
}

/// Scrape through the metrics listener (no key) and parse: samples and family types;
/// `None` without python3 outside CI.
async fn scrape(t: &TestServer) -> Option<(Vec<Sample>, BTreeMap<String, String>)> {
    let addr = t.server.metrics_addr.expect("metrics listener configured");
    let (s, _, text) = get(t, &format!("http://{addr}/metrics"), None).await;
    assert_eq!(s, 200, "{text}");
    prometheus::parse(&text)
}

fn at(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or(0.0)
}

#[tokio::test]
async fn only_operators_scrape_the_main_listener() {
    let (t, _) = start().await;
    let (s, _, body) = get(&t, &t.url("/metrics"), None).await;
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (s, &e["error"]["code"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    let (s, _, body) = get(&t, &t.url("/metrics"), Some(API_KEY)).await;
    assert_eq!(s, 403, "a tenant key is not an operator's: {body}");
    let (s, ctype, body) = get(&t, &t.url("/metrics"), Some(OPERATOR_KEY)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    let Some((samples, types)) = prometheus::parse(&body) else {
        return;
    };
    assert_eq!(types["ota_auth_cache_lookups"], "counter");
    assert_eq!(types["ota_db_fast_reads"], "counter");
    assert_eq!(types["ota_scheduler_pass_duration_seconds"], "histogram");
    assert_eq!(types["ota_db_connections"], "gauge");
    assert_eq!(
        value(
            &samples,
            "ota_plugin_info",
            &[("plugin", "mxchip"), ("version", "0.1.0")]
        ),
        Some(1.0),
        "{body}"
    );
    assert!(at(&samples, "ota_db_connections_max", &[]) >= 1.0);
    // A plugin may not claim the host's paths.
    let (s, _, _) = get(&t, &t.url("/metrics/x"), Some(OPERATOR_KEY)).await;
    assert_eq!(s, 404);
    t.stop().await;
}

#[tokio::test]
async fn counters_and_gauges_move_with_device_checks() {
    let (t, token) = start().await;
    let Some((before, _)) = scrape(&t).await else {
        return;
    };
    let (s, f) = mx(
        &t,
        Method::POST,
        FILES,
        &token,
        Some(json!({"file_name": "a.bin", "file_url": "https://cdn.example/a.bin", "md5": "c".repeat(32),
                    "size": "4096", "version": "1.0.9", "ug_type": 0, "customize": ""})),
    )
    .await;
    assert_eq!(s, 200, "{f}");
    let id = f["data"]["id"].as_i64().unwrap();
    let (s, b) = admin(
        &t,
        Method::PATCH,
        &format!("/admin/api/v1/tenants/acme/releases/{id}"),
        Some(json!({"status": "online"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    for device in ["d-1", "d-2", "d-3"] {
        let (s, b) = mx(
            &t,
            Method::GET,
            &format!("/api/v1/ota/device/?product_id={PRODUCT}&wifi_version=5.0&mcu_version=1.0.1&device_id={device}"),
            &token,
            None,
        )
        .await;
        assert_eq!((s, &b["data"]["need_ota"]), (200, &json!(true)), "{b}");
    }
    let (s, b) = mx(&t, Method::GET, &format!("{FILES}{id}/"), &token, None).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = mx(
        &t,
        Method::GET,
        &format!("{FILES}{id}/"),
        "0".repeat(40).as_str(),
        None,
    )
    .await;
    assert_eq!(s, 401);

    let (after, types) = scrape(&t).await.unwrap();
    assert_eq!(types["ota_plugin_requests"], "counter");
    assert_eq!(types["ota_plugin_request_duration_seconds"], "histogram");
    assert_eq!(types["ota_campaign_jobs"], "gauge");
    let moved =
        |name: &str, labels: &[(&str, &str)]| at(&after, name, labels) - at(&before, name, labels);
    // Three devices, two modules each: the mcu module is offered, wifi (no firmware) is not.
    assert_eq!(
        moved(
            "ota_check_ins_total",
            &[("dialect", "mxchip"), ("offered", "true")]
        ),
        3.0
    );
    // At least two modules per device (the first check of the new firmware finds no
    // campaign yet; the plugin makes one and asks again).
    assert!(moved("ota_check_ins_total", &[("dialect", "mxchip")]) >= 6.0);
    // Requests are counted under the route that served them, never the raw path.
    let by_id = [
        ("plugin", "mxchip"),
        ("route", "/api/v1/ota/{product_id}/files/{id}/"),
    ];
    assert_eq!(
        moved(
            "ota_plugin_requests_total",
            &[by_id[0], by_id[1], ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "ota_plugin_requests_total",
            &[by_id[0], by_id[1], ("status", "401")]
        ),
        1.0
    );
    assert!(
        after
            .iter()
            .all(|s| !s.labels.get("route").is_some_and(|r| r.contains(PRODUCT))),
        "a raw path became a label"
    );
    assert_eq!(
        moved("ota_plugin_requests_total", &[("plugin", "mxchip")]),
        6.0
    );
    assert_eq!(
        moved(
            "ota_plugin_request_duration_seconds_count",
            &[("plugin", "mxchip")]
        ),
        6.0
    );
    assert!(
        moved(
            "ota_plugin_instantiate_seconds_count",
            &[("plugin", "mxchip")]
        ) >= 6.0
    );
    // The console's token was verified once and then remembered.
    assert!(moved("ota_auth_cache_lookups_total", &[("result", "hit")]) >= 1.0);
    // The device checks read their facts on the calling thread (a SQLite file here).
    assert!(moved("ota_db_fast_reads_total", &[("result", "answered")]) >= 6.0);
    // The campaign the release went online with, and its three notified devices.
    let campaign = after
        .iter()
        .find(|s| s.name == "ota_campaign_info" && s.labels["tenant"] == "acme")
        .unwrap_or_else(|| panic!("no campaign_info in {after:?}"))
        .labels["campaign"]
        .clone();
    assert_eq!(
        at(
            &after,
            "ota_campaign_jobs",
            &[("campaign", &campaign), ("state", "notified")]
        ),
        3.0
    );
    assert_eq!(
        at(
            &after,
            "ota_campaign_failure_ratio",
            &[("campaign", &campaign)]
        ),
        0.0
    );
    t.stop().await;
}

#[tokio::test]
async fn readyz_names_what_does_not_answer() {
    let (t, _) = start().await;
    let (s, _, body) = get(&t, &t.url("/readyz"), None).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, v), (200, json!({"database": "ok", "blobs": "ok"})));
    let blobs = t.dir.path().join("data/blobs");
    let aside = t.dir.path().join("data/blobs-aside");
    std::fs::rename(&blobs, &aside).unwrap();
    let (s, _, body) = get(&t, &t.url("/readyz"), None).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, &v["database"]), (503, &json!("ok")), "{body}");
    assert_ne!(v["blobs"], "ok", "{body}");
    std::fs::rename(&aside, &blobs).unwrap();
    let addr = t.server.metrics_addr.unwrap();
    let (s, _, _) = get(&t, &format!("http://{addr}/readyz"), None).await;
    assert_eq!(s, 200, "the metrics listener answers /readyz too");
    t.stop().await;
}
