//! Plugins built against released contracts keep working: each file in
//! `tests/fixtures/contracts/` was built by the SDK of its day and is kept as built. Dropped
//! into a running server's folder, each loads, says which contract it was built against and
//! which it needs, and answers requests through today's host.

use std::path::PathBuf;
use std::time::Duration;

use ota_tests::{API_KEY, Options, PRODUCT, TestServer, eventually};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/contracts/{name}"))
}

/// A server with no plugin but the fixture, hot-loaded from its folder; answers what
/// `GET /admin/plugins` says about it.
async fn serve(file: &str) -> (TestServer, Value) {
    let t = TestServer::start(Options {
        plugins: vec![],
        ..Default::default()
    })
    .await;
    std::fs::copy(fixture(file), t.plugins_dir().join(file)).unwrap();
    let loaded = eventually(Duration::from_secs(20), || async {
        let (_, body) = t.admin_get("/admin/plugins").await;
        body["plugins"].as_array().is_some_and(|p| p.len() == 1)
    })
    .await;
    let (_, body) = t.admin_get("/admin/plugins").await;
    assert!(loaded, "{file} never loaded: {body}");
    (t, body["plugins"][0].clone())
}

async fn post(t: &TestServer, path: &str, body: Value) -> (u16, Value) {
    t.post(path, Some(API_KEY), &body.to_string()).await
}

#[tokio::test]
async fn a_0_1_0_dialect_still_serves_its_vendor() {
    let (t, p) = serve("iotstack-0.1.0.wasm").await;
    assert_eq!(p["name"], "iotstack");
    assert_eq!(p["contract"], "ota:dialect@0.1.0");
    assert_eq!(p["needs"], "ota:dialect@0.1.0");

    let (status, created) = post(
        &t,
        "/api/v1/deployment/create",
        json!({"ProductSN": PRODUCT, "DeviceSN": "gw-compat"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["Code"], 0, "{created}");
    let id = created["Data"]["DeploymentID"].clone();
    let (status, info) = post(&t, "/api/v1/deployment/info", json!({"DeploymentID": id})).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["Data"]["DeploymentID"], id);
    assert_eq!(info["Data"]["Status"], "init");
    // Refusals keep the 0.1 dialect's own envelope.
    let (status, refused) = t
        .post(
            "/api/v1/deployment/info",
            None,
            &json!({"DeploymentID": id}).to_string(),
        )
        .await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused["Code"].is_number(), "{refused}");
    t.stop().await;
}

/// Both probes list the tenant's products through the host call of 0.2.0, and the 0.2.4
/// probe's own additions (device logins) reach today's host too.
#[tokio::test]
async fn dialects_built_against_0_2_0_and_0_2_4_call_todays_host() {
    for (file, contract, needs) in [
        ("probe-0.2.0.wasm", "0.2.0", "0.2.0"),
        ("probe-0.2.4.wasm", "0.2.4", "0.2.4"),
    ] {
        let (t, p) = serve(file).await;
        assert_eq!(p["contract"], format!("ota:dialect@{contract}"), "{file}");
        assert_eq!(p["needs"], format!("ota:dialect@{needs}"), "{file}");
        let (status, products) = post(&t, "/probe/list-products", json!({})).await;
        assert_eq!(status, 200, "{file}: {products}");
        let sns: Vec<&str> = products["ok"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: {products}"))
            .iter()
            .filter_map(|p| p["sn"].as_str())
            .collect();
        assert_eq!(sns, [PRODUCT], "{file}");
        let (_, registered) = post(
            &t,
            "/probe/register-device",
            json!({"product_sn": PRODUCT, "device_sn": "compat-1"}),
        )
        .await;
        assert_eq!(registered["ok"]["sn"], "compat-1", "{file}: {registered}");
        t.stop().await;
    }
    // What 0.2.4 added answers on today's host: an unknown product key is refused as such.
    let (t, _) = serve("probe-0.2.4.wasm").await;
    let (_, login) = post(
        &t,
        "/probe/device-login",
        json!({"product_sn": PRODUCT, "mac": "aa:bb:cc:dd:ee:ff", "product_key": "nope"}),
    )
    .await;
    assert!(login.get("err").is_some(), "{login}");
    t.stop().await;
}
