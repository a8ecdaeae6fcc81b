//! Plugin path vs native handler for UBTech's robot check, `GET /file/download`: the OAuth2
//! token verified, the product of the package file and language found, both versions the
//! robot runs recorded (first contact registers it), the product's releases read, the
//! check-in through the engine and the patch chain to the offered release answered as
//! `;`-joined URLs and ids. Robots on version 2 of a running campaign to 3, with a patch
//! 2 -> 3 beside the full releases, so the chain has one link. Two rounds: first contact
//! creates the robots and their jobs, the repeat polls find them. Prints requests/s,
//! p50/p99 and the ratios. Run: `cargo bench -p ota-host --bench ubtech`
//! (`BENCH_DEVICES`, `BENCH_CONCURRENCY`, `BENCH_DB=postgres`).

mod support;

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use ota_host::Services;
use ota_host::auth::{LoginKind, TokenPolicy};
use ota_host::catalog::releases::{Module, ReleaseFilter};
use serde_json::{Value, json};

const PACKAGE_PLUGIN: &str = "com.bench.plugin";
const PACKAGE_NATIVE: &str = "com.bench.native";
const FILE: &str = "service";
const LANGUAGE: &str = "en";

fn product(package: &str) -> String {
    format!("{package}:{FILE}:{LANGUAGE}")
}

/// The dialect's envelope: code "100" with the URLs and ids, or an error code and text.
fn answer(code: &str, data: &str, id: Option<&str>) -> (StatusCode, Json<Value>) {
    let mut v = json!({"code": code, "data": data});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    (StatusCode::OK, Json(v))
}

/// The native twin of the plugin's download check: the same reads, writes and answer.
async fn native_download(
    State(s): State<Services>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let p = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let Ok(id) = s.auth.verify_token("ubtech", p("access_token")).await else {
        return answer("401", "invalid token", None);
    };
    let (version, robot) = (p("version"), p("robot_id"));
    let sn = format!("{}:{}:{}", p("package_name"), p("file_name"), p("language"));
    if s.catalog.product(id.tenant.id, &sn).await.is_err() {
        return answer("404", "no such package", None);
    }
    let device = s
        .catalog
        .register_device(id.tenant.id, &sn, robot)
        .await
        .unwrap();
    for (module, v) in [("mcu", version), ("sub", p("robot_version"))] {
        s.catalog
            .set_module_version(device.id, module, 0, v)
            .await
            .unwrap();
    }
    let device = s.catalog.device(device.id).await.unwrap();
    let filter = ReleaseFilter {
        product: Some(sn.clone()),
        module: Some(Module::Mcu),
        status: None,
    };
    let page = ota_host::catalog::releases::PageReq {
        page: 1,
        page_size: 200,
        offset: None,
    };
    let releases = s
        .catalog
        .list_releases(id.tenant.id, &filter, page)
        .await
        .unwrap();
    assert!(!releases.items.is_empty());
    let Some(offer) = s.check_in(&device, "mcu", 0, version).await.unwrap() else {
        return answer("403", "no running campaign", None);
    };
    let chain = s
        .catalog
        .upgrade_path(id.tenant.id, offer.campaign.release_id, version)
        .await
        .unwrap();
    let urls: Vec<String> = chain
        .iter()
        .map(|r| r.external_url.clone().unwrap_or_default())
        .collect();
    let ids: Vec<String> = chain.iter().map(|r| r.id.to_string()).collect();
    answer("100", &urls.join(";"), Some(&ids.join(";")))
}

/// Full releases 2 and 3 and a patch 2 -> 3 of a product, and a campaign to 3.
async fn provision(s: &Services, tenant_id: i64, sn: &str) {
    let p = s.catalog.product(tenant_id, sn).await.unwrap();
    support::online_release(s, tenant_id, sn, Module::Mcu, 0, "2").await;
    let full = support::online_release(s, tenant_id, sn, Module::Mcu, 0, "3").await;
    support::online_patch(s, tenant_id, sn, Module::Mcu, 0, Some("2"), "3").await;
    support::running_campaign(s, tenant_id, p.id, &full, "to 3".into(), None).await;
}

fn main() {
    let n = support::env("BENCH_DEVICES", 5_000) as usize;
    let concurrency = support::env("BENCH_CONCURRENCY", 16) as usize;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let products = [product(PACKAGE_PLUGIN), product(PACKAGE_NATIVE)];
        let file = support::tenant(&[&products[0], &products[1]], &[]);
        let (server, _dir) = support::start("ota_plugin_ubtech.wasm", "ubtech.wasm", file).await;
        let s = server.services.clone();
        let tenant = s.auth.tenant("bench").await.unwrap();
        let setup = Instant::now();
        for sn in &products {
            provision(&s, tenant.id, sn).await;
        }
        s.auth
            .create_login("bench", "ubtech", LoginKind::User, "robot-app", "secret-1")
            .await
            .unwrap();
        let policy = TokenPolicy {
            access_ttl_secs: 86_400,
            refresh_ttl_secs: 86_400,
        };
        let grant = s
            .auth
            .password_grant("ubtech", policy, None, "robot-app", "secret-1", None)
            .await
            .unwrap();
        let token = grant.access_token;
        let native_base = support::serve(
            axum::Router::new()
                .route("/file/download", get(native_download))
                .with_state(s.clone()),
        )
        .await;
        println!(
            "setup: 2 products with 2 releases, a patch and a campaign in {:.1}s",
            setup.elapsed().as_secs_f64()
        );
        let url = |base: &str, package: &str, i: usize| {
            format!(
                "{base}/file/download?access_token={token}&package_name={package}&version=2\
                 &file_name={FILE}&language={LANGUAGE}&robot_version=1&robot_id=robot-{i:06}"
            )
        };
        let plugin_urls: Vec<String> = (0..n)
            .map(|i| url(&server.url(), PACKAGE_PLUGIN, i))
            .collect();
        let native_urls: Vec<String> = (0..n).map(|i| url(&native_base, PACKAGE_NATIVE, i)).collect();

        let client = reqwest::Client::new();
        // Same answer from both (modulo release ids and URLs' product), from a warm-up robot.
        let shape = |mut v: Value| {
            let links = v["data"].as_str().unwrap_or_default().split(';').count();
            let ids = v["id"].as_str().unwrap_or_default().split(';').count();
            v["data"] = json!(links);
            v["id"] = json!(ids);
            v
        };
        let mut answers = Vec::new();
        for base in [server.url(), native_base.clone()] {
            let package = if base == native_base { PACKAGE_NATIVE } else { PACKAGE_PLUGIN };
            let v: Value = client
                .get(url(&base, package, n + 1))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(v["code"], "100", "{v}");
            answers.push(shape(v));
        }
        assert_eq!(answers[0], answers[1], "plugin and native answers differ");

        let send = {
            let client = client.clone();
            move |url: String| {
                let client = client.clone();
                async move {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    let v: Value = r.json().await.unwrap();
                    assert_eq!(v["code"], "100", "{v}");
                }
            }
        };
        println!(
            "ubtech GET /file/download (OAuth2 token, patch chain of 1), {concurrency} concurrent clients, {}",
            support::database_name()
        );
        support::first_and_repeat(&native_urls, &plugin_urls, concurrency, send).await;
    });
}
