//! Plugin path vs native handler for MXChip's device check, `GET /api/v1/ota/device/`: token
//! verified, the product's firmware read, and both modules checked in through the engine
//! (active campaigns cached), answered in MXChip's envelope. 10 000 devices per path (two
//! identical products, so neither path sees the other's jobs) and four running campaigns each
//! (three mcu releases, one wifi). Each path makes two rounds over its devices: the first
//! contact creates the jobs, the repeat polls find them. Prints requests/s, p50/p99 and the
//! ratios. Run: `cargo bench -p ota-host --bench mxchip` (`BENCH_DEVICES`,
//! `BENCH_CONCURRENCY`, `BENCH_DB=postgres`).

mod support;

use std::time::Instant;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use ota_host::Services;
use ota_host::catalog::releases::ReleaseFilter;
use serde_json::{Value, json};

use support::mxchip::TOKEN;

#[derive(serde::Deserialize)]
struct CheckQuery {
    product_id: Option<String>,
    wifi_version: Option<String>,
    mcu_version: Option<String>,
    device_id: Option<String>,
}

/// The native twin of the plugin's check: the same reads, writes and answer.
async fn native_check(
    State(s): State<Services>,
    headers: HeaderMap,
    Query(q): Query<CheckQuery>,
) -> (StatusCode, Json<Value>) {
    let err = |status: StatusCode, code: i64, msg: &str| {
        (
            status,
            Json(json!({"meta": {"code": code, "message": msg}, "data": null})),
        )
    };
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("token"))
        .map(|(_, k)| k.trim().to_string());
    let Some(key) = key else {
        return err(StatusCode::UNAUTHORIZED, 10401, "no token");
    };
    let Ok(id) = s.auth.verify_api_key(&key).await else {
        return err(StatusCode::UNAUTHORIZED, 10401, "Invalid token.");
    };
    let tenant = id.tenant.expect("tenant key");
    let (Some(product), Some(wifi), Some(mcu), Some(sn)) =
        (q.product_id, q.wifi_version, q.mcu_version, q.device_id)
    else {
        return err(StatusCode::BAD_REQUEST, 10000, "missing parameter");
    };
    if s.catalog.product(tenant.id, &product).await.is_err() {
        return err(StatusCode::BAD_REQUEST, 10000, "unknown product");
    }
    let page = ota_host::catalog::releases::PageReq {
        page: 1,
        page_size: 200,
        offset: None,
    };
    let filter = ReleaseFilter {
        product: Some(product.clone()),
        module: None,
        status: None,
    };
    let _firmware = s
        .catalog
        .list_releases(tenant.id, &filter, page)
        .await
        .unwrap();
    let device = s
        .catalog
        .register_device(tenant.id, &product, &sn)
        .await
        .unwrap();
    let mut files = Vec::new();
    for (module, current, ota_type) in [("mcu", &mcu, 0), ("wifi", &wifi, 1)] {
        if let Some(offer) = s.check_in(&device, module, 0, current).await.unwrap() {
            let r = s
                .catalog
                .offered_release(tenant.id, offer.campaign.release_id)
                .await
                .unwrap();
            files.push(json!({
                "file_url": r.external_url, "md5": r.md5, "version": r.version,
                "ota_type": ota_type, "customize": r.customize,
            }));
        }
    }
    (
        StatusCode::OK,
        Json(json!({"meta": {"code": 0, "message": "ota file info"},
                    "data": {"need_ota": !files.is_empty(), "files": files}})),
    )
}

fn main() {
    let n = support::env("BENCH_DEVICES", 10_000) as usize;
    let concurrency = support::env("BENCH_CONCURRENCY", 16) as usize;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let file = support::tenant(&["P-plugin", "P-native"], &[("console", TOKEN)]);
        let (server, _dir) = support::start("ota_plugin_mxchip.wasm", "mxchip.wasm", file).await;
        let s = server.services.clone();
        let tenant = s.auth.tenant("bench").await.unwrap();
        let setup = Instant::now();
        for p in ["P-plugin", "P-native"] {
            support::mxchip::provision(&s, tenant.id, p).await;
            let pid = s.catalog.product(tenant.id, p).await.unwrap().id;
            support::bulk_devices(&s, pid, n, None).await;
        }

        let native_base = support::serve(
            axum::Router::new()
                .route("/api/v1/ota/device/", get(native_check))
                .with_state(s.clone()),
        )
        .await;
        let urls = |base: &str, product: &str| -> Vec<String> {
            (0..n)
                .map(|i| {
                    format!(
                        "{base}/api/v1/ota/device/?product_id={product}&wifi_version=2.9.0\
                         &mcu_version=1.0.{}&device_id=dev-{i}",
                        i % 7
                    )
                })
                .collect()
        };
        let plugin_urls = urls(&server.url(), "P-plugin");
        let native_urls = urls(&native_base, "P-native");
        let client = reqwest::Client::new();
        println!(
            "setup: {n} devices and 4 running campaigns per path in {:.1}s",
            setup.elapsed().as_secs_f64()
        );

        // Same answer from both (modulo product), and warm-up of the instance pool.
        let get = |url: String| {
            let client = client.clone();
            async move {
                support::mxchip::check(&client, url)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let a = get(plugin_urls[0].clone()).await;
        let b = get(native_urls[0].clone()).await;
        assert_eq!(a, b, "plugin and native answers differ");

        println!(
            "mxchip GET /api/v1/ota/device/ (token, 2 modules, 4 campaigns), {concurrency} concurrent clients, {}",
            support::database_name()
        );
        let send = {
            let client = client.clone();
            move |url: String| {
                let client = client.clone();
                async move {
                    let r = support::mxchip::check(&client, url)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    let v: Value = r.json().await.unwrap();
                    assert_eq!(v["data"]["files"].as_array().map(Vec::len), Some(2), "{v}");
                }
            }
        };
        support::first_and_repeat(&native_urls, &plugin_urls, concurrency, send).await;
        server.shutdown().await;
    });
}
