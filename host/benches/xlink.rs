//! Plugin path vs native handler for XLINK's device check,
//! `POST /v2/upgrade/firmware/check/{device_id}`: the device's `Access-Token` verified, the
//! body read (numbers as strings, as firmware sends them), the check-in through the engine
//! (active campaigns cached) and the task answered with its from-version facts and upgrade
//! count. 10 000 devices per path (two identical products, so neither path sees the other's
//! jobs), each with its own device token, and four running tasks per product (from versions
//! 1-4 to 9). Two rounds: first contact creates the jobs, the repeat polls find them. Prints
//! requests/s, p50/p99 and the ratios. Run: `cargo bench -p ota-host --bench xlink`
//! (`BENCH_DEVICES`, `BENCH_CONCURRENCY`, `BENCH_DB=postgres`).

mod support;

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ota_host::Services;
use ota_host::auth::TokenPolicy;
use ota_host::catalog::releases::Module;
use ota_host::rollout::job::JobState;
use serde_json::{Value, json};

fn type_of(module: &str) -> i64 {
    match module {
        "wifi" => 1,
        "mcu" => 2,
        _ => 3,
    }
}

fn number_or_text(v: &str) -> Value {
    v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n))
}

/// The native twin of the plugin's check: the same reads, writes and answer.
async fn native_check(
    State(s): State<Services>,
    Path(device_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let err = |status: StatusCode, code: i64, msg: &str| {
        (status, Json(json!({"error": {"code": code, "msg": msg}})))
    };
    let Some(token) = headers.get("access-token").and_then(|v| v.to_str().ok()) else {
        return err(
            StatusCode::FORBIDDEN,
            4031003,
            "missing Access-Token header",
        );
    };
    let Ok(id) = s.auth.verify_token("xlink", token.trim()).await else {
        return err(StatusCode::FORBIDDEN, 4031003, "invalid access token");
    };
    let Some(own) = id.device_id else {
        return err(StatusCode::FORBIDDEN, 4031001, "not a device token");
    };
    let device = s.catalog.device(own).await.unwrap();
    if device.id != device_id {
        return err(StatusCode::FORBIDDEN, 4031001, "another device's token");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, 4001001, "the body is not JSON");
    };
    let num = |k: &str| match &v[k] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let module = match num("type").unwrap_or(1) {
        1 => "wifi",
        2 => "mcu",
        3 => "sub",
        _ => return err(StatusCode::BAD_REQUEST, 4001001, "bad type"),
    };
    if v["product_id"]
        .as_str()
        .is_some_and(|p| p != device.product_sn)
    {
        return err(StatusCode::BAD_REQUEST, 4001001, "another product's device");
    }
    let identify = num("identify").unwrap_or(0);
    let Some(current) = num("current_version") else {
        return err(StatusCode::BAD_REQUEST, 4001001, "missing current_version");
    };
    let Some(offer) = s
        .check_in(&device, module, identify, &current.to_string())
        .await
        .unwrap()
    else {
        return err(
            StatusCode::NOT_FOUND,
            4041013,
            "no upgrade task for this version",
        );
    };
    let c = offer.campaign;
    let r = s
        .catalog
        .offered_release(c.tenant_id, c.release_id)
        .await
        .unwrap();
    let attrs: HashMap<String, String> = s
        .rollout
        .campaign_attributes(&c)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let upgraded = s
        .rollout
        .count_jobs(&c, &[JobState::Succeeded])
        .await
        .unwrap();
    let attr = |k: &str| attrs.get(k).cloned().unwrap_or_default();
    (
        StatusCode::OK,
        Json(json!({
            "id": c.id.to_string(),
            "product_id": device.product_sn,
            "name": c.name,
            "description": c.description,
            "from_version": number_or_text(c.from_version.as_deref().unwrap_or("0")),
            "from_version_url": attr("xlink.from_version_url"),
            "from_version_md5": attr("xlink.from_version_md5"),
            "from_version_size": attr("xlink.from_version_size").parse::<u64>().unwrap_or(0),
            "target_version": number_or_text(&c.target_version),
            "target_version_url": attrs.get("xlink.target_version_url").cloned().or(r.external_url),
            "target_version_md5": r.md5,
            "target_version_size": r.size,
            "upgrade_count": upgraded,
            "status": 1,
            "type": type_of(&c.module),
            "identify": c.identify,
            "scope": {"category": 0, "device_list": []},
        })),
    )
}

/// Four running tasks (from versions 1-4 to 9) for a product, with the dialect's attributes.
async fn provision(s: &Services, tenant_id: i64, product: &str) {
    let p = s.catalog.product(tenant_id, product).await.unwrap();
    let r = support::online_release(s, tenant_id, product, Module::Mcu, 0, "9").await;
    for from in 1..=4 {
        let name = format!("mcu {from} to 9");
        let c =
            support::running_campaign(s, tenant_id, p.id, &r, name, Some(from.to_string())).await;
        let attrs: Vec<(String, Option<String>)> = [
            (
                "xlink.from_version_url",
                format!("https://cdn.example/mcu-{from}.bin"),
            ),
            ("xlink.from_version_md5", support::EMPTY_MD5.to_string()),
            ("xlink.from_version_size", "65536".to_string()),
            (
                "xlink.target_version_url",
                "https://cdn.example/mcu-9.bin".to_string(),
            ),
            ("xlink.task_type", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v)))
        .collect();
        s.rollout
            .set_campaign_attributes(tenant_id, c.id, &attrs)
            .await
            .unwrap();
    }
}

/// One check: (base URL, product, device id, token, current version).
type Check = (String, &'static str, i64, String, usize);

fn main() {
    let n = support::env("BENCH_DEVICES", 10_000) as usize;
    let concurrency = support::env("BENCH_CONCURRENCY", 16) as usize;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let file = support::tenant(&["P-plugin", "P-native"], &[]);
        let (server, _dir) = support::start("ota_plugin_xlink.wasm", "xlink.wasm", file).await;
        let s = server.services.clone();
        let tenant = s.auth.tenant("bench").await.unwrap();
        let policy = TokenPolicy {
            access_ttl_secs: 86_400,
            refresh_ttl_secs: 86_400,
        };
        let setup = Instant::now();
        let native_base = support::serve(
            axum::Router::new()
                .route("/v2/upgrade/firmware/check/{device_id}", post(native_check))
                .with_state(s.clone()),
        )
        .await;
        let mut checks: HashMap<&str, Vec<Check>> = HashMap::new();
        for (p, base) in [("P-plugin", server.url()), ("P-native", native_base)] {
            provision(&s, tenant.id, p).await;
            let pid = s.catalog.product(tenant.id, p).await.unwrap().id;
            let ids = support::bulk_devices(&s, pid, n, Some(|i| format!("{:012X}", i))).await;
            let mut list = Vec::with_capacity(n);
            for (i, id) in ids.into_iter().enumerate() {
                let g = s
                    .auth
                    .device_grant("xlink", policy, &tenant, id, pid)
                    .await
                    .unwrap();
                list.push((base.clone(), p, id, g.access_token, i % 4 + 1));
            }
            checks.insert(p, list);
        }
        println!(
            "setup: {n} devices with tokens and 4 running tasks per path in {:.1}s",
            setup.elapsed().as_secs_f64()
        );

        let client = reqwest::Client::new();
        let send = {
            let client = client.clone();
            move |(base, product, id, token, current): Check| {
                let client = client.clone();
                async move {
                    let r = client
                        .post(format!("{base}/v2/upgrade/firmware/check/{id}"))
                        .header("Content-Type", "application/json")
                        .header("Access-Token", token)
                        .body(format!(
                            r#"{{"product_id":"{product}","type":"2","current_version":"0{current}","identify":"0"}}"#
                        ))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    let v: Value = r.json().await.unwrap();
                    assert_eq!(v["target_version"], 9, "{v}");
                }
            }
        };
        // Same answer from both (modulo ids and product), and warm-up of the instance pool.
        let answer = |(base, _, id, token, current): Check| {
            let client = client.clone();
            async move {
                let mut v: Value = client
                    .post(format!("{base}/v2/upgrade/firmware/check/{id}"))
                    .header("Access-Token", token)
                    .body(format!(r#"{{"type":2,"current_version":{current},"identify":0}}"#))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for k in ["id", "product_id"] {
                    v.as_object_mut().unwrap().remove(k);
                }
                v
            }
        };
        let a = answer(checks["P-plugin"][n - 1].clone()).await;
        let b = answer(checks["P-native"][n - 1].clone()).await;
        assert_eq!(a, b, "plugin and native answers differ");

        println!(
            "xlink POST /v2/upgrade/firmware/check/{{device_id}} (device token, 4 tasks), {concurrency} concurrent clients, {}",
            support::database_name()
        );
        support::first_and_repeat(&checks["P-native"], &checks["P-plugin"], concurrency, send).await;
        server.shutdown().await;
    });
}
