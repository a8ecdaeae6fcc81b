//! Plugin path vs native handler, in one run: the same IoTStack `deployment/info` request
//! (API-key auth, JSON in, three lookups, JSON out) served once through the real `.wasm`
//! plugin and once by an equivalent axum handler calling the same domain services. Prints
//! requests/s, p50/p99 latency and the ratio. Run: `cargo bench -p ota-host --bench iotstack`.
//!
//! Knobs: `BENCH_SECS` (per path, default 5), `BENCH_CONCURRENCY` (default 16),
//! `BENCH_DB=postgres` (a throwaway PostgreSQL instead of SQLite).

mod support;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ota_host::Services;
use serde_json::{Value, json};

const KEY: &str = "bench-key-0123456789abcdef";

/// The native twin of the plugin's `deployment/info` (same checks, same answer).
async fn native_info(
    State(s): State<Services>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let err = |status: StatusCode, code: u32, msg: &str| {
        (status, Json(json!({"Code": code, "Message": msg})))
    };
    let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) else {
        return err(StatusCode::UNAUTHORIZED, 2001, "credentials required");
    };
    let Ok(id) = s.auth.verify_api_key(key.trim()).await else {
        return err(StatusCode::UNAUTHORIZED, 2001, "unknown key");
    };
    let tenant = id.tenant.expect("tenant key");
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, 1001, "malformed JSON body");
    };
    let Some(dep_id) = map.get("DeploymentID").and_then(Value::as_i64) else {
        return err(StatusCode::BAD_REQUEST, 1002, "missing DeploymentID");
    };
    let d = match s.rollout.deployment(dep_id).await {
        Ok(d) if d.tenant_id == tenant.id => d,
        _ => return err(StatusCode::NOT_FOUND, 3001, "unknown deployment"),
    };
    let _device = s.catalog.device(d.device_id).await.expect("device");
    (
        StatusCode::OK,
        Json(json!({"Code": 0, "Data": {
            "DeploymentID": d.id, "Status": d.status.as_str(),
            "CreateTime": d.created_at / 1000, "LastModifiedTime": d.updated_at / 1000,
            "Log": d.log(), "KeepLocal": d.keep_local,
        }})),
    )
}

async fn drive(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    secs: u64,
    concurrency: usize,
) -> support::Stats {
    let (client, url, body) = (client.clone(), url.to_string(), body.to_string());
    support::for_secs(secs, concurrency, move || {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let r = client
                .post(&url)
                .header("X-API-Key", KEY)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await.unwrap();
        }
    })
    .await
}

fn main() {
    let secs = support::env("BENCH_SECS", 5);
    let concurrency = support::env("BENCH_CONCURRENCY", 16) as usize;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let file = support::tenant(&["P1"], &[("bench", KEY)]);
        let (server, _dir) =
            support::start("ota_plugin_iotstack.wasm", "iotstack.wasm", file).await;
        let client = reqwest::Client::new();
        let created: Value = client
            .post(format!("{}/api/v1/deployment/create", server.url()))
            .header("X-API-Key", KEY)
            .body(r#"{"ProductSN":"P1","DeviceSN":"gw-bench"}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["Data"]["DeploymentID"].as_u64().unwrap();
        let body = json!({ "DeploymentID": id }).to_string();

        let native_base = support::serve(
            axum::Router::new()
                .route("/api/v1/deployment/info", post(native_info))
                .with_state(server.services.clone()),
        )
        .await;
        let native_url = format!("{native_base}/api/v1/deployment/info");
        let plugin_url = format!("{}/api/v1/deployment/info", server.url());

        // Same answer from both, then warm up both.
        let a: Value = client
            .post(&plugin_url)
            .header("X-API-Key", KEY)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let b: Value = client
            .post(&native_url)
            .header("X-API-Key", KEY)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(a, b, "plugin and native answers differ");
        drive(&client, &plugin_url, &body, 1, concurrency).await;
        drive(&client, &native_url, &body, 1, concurrency).await;

        let native = drive(&client, &native_url, &body, secs, concurrency).await;
        let plugin = drive(&client, &plugin_url, &body, secs, concurrency).await;
        println!(
            "iotstack deployment/info, {secs}s per path, {concurrency} concurrent clients, {}",
            support::database_name()
        );
        for (name, s) in [
            ("native axum handler", &native),
            ("wasm plugin path", &plugin),
        ] {
            println!(
                "{name:>20}: {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} requests)",
                s.rps,
                s.p50.as_secs_f64() * 1e3,
                s.p99.as_secs_f64() * 1e3,
                s.n
            );
        }
        println!(
            "ratio plugin/native: throughput {:.2}, p50 latency {:.2}x",
            plugin.rps / native.rps,
            plugin.p50.as_secs_f64() / native.p50.as_secs_f64()
        );
        server.shutdown().await;
    });
}
