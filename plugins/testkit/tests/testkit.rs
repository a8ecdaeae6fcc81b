//! The testkit as a plugin author uses it: a built dialect served by a real host, provisioned
//! from TOML, spoken to over HTTP, with the clock and the scheduler moved by the test.

use std::path::PathBuf;

use ota_plugin_testkit::TestHost;
use serde_json::{Value, json};

const KEY: &str = "dev-key-0123456789abcdef0123";
const SEED: &str = r#"
[[tenants]]
name = "acme"
products = [{ sn = "P" }]
api-keys = [{ name = "dev", key = "dev-key-0123456789abcdef0123" }]
"#;

fn built(name: &str) -> PathBuf {
    PathBuf::from(ota_host::bundled::BUILD_DIR).join(format!("ota_plugin_{name}.wasm"))
}

async fn post(host: &TestHost, path: &str, body: Value) -> (u16, Value) {
    let r = host
        .post(path)
        .header("X-API-Key", KEY)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_dialect_answers_over_http_and_the_clock_moves_its_deadlines() {
    let host = TestHost::builder()
        .plugin(built("iotstack"))
        .seed(SEED)
        .start()
        .await
        .unwrap();
    let (status, created) = post(
        &host,
        "/api/v1/deployment/create",
        json!({"ProductSN": "P", "DeviceSN": "gw-1"}),
    )
    .await;
    assert_eq!((status, &created["Code"]), (200, &json!(0)), "{created}");
    let id = created["Data"]["DeploymentID"].clone();
    let info = json!({"DeploymentID": id});
    let (_, body) = post(&host, "/api/v1/deployment/info", info.clone()).await;
    assert_eq!(body["Data"]["Status"], "init", "{body}");

    // A month later nothing was reported: the scheduler times the deployment out.
    host.clock().advance_secs(30 * 24 * 3600);
    host.scheduler_tick().await;
    let (_, body) = post(&host, "/api/v1/deployment/info", info).await;
    assert_eq!(body["Data"]["Status"], "timeout", "{body}");

    // The host's own paths never reach a plugin.
    let r = host.get("/healthz").send().await.unwrap();
    assert_eq!(r.status(), 200);
    host.shutdown().await;
}

#[tokio::test]
async fn a_plugin_the_server_would_refuse_fails_start_with_the_reason() {
    let refused = TestHost::builder()
        .plugin(built("bad_manifest"))
        .start()
        .await
        .err()
        .expect("refused");
    let said = format!("{refused:#}");
    assert!(said.contains("bad_manifest.wasm"), "{said}");

    let none = TestHost::builder().start().await.err().expect("refused");
    assert!(none.to_string().contains(".plugin(path)"), "{none}");
    let bad_seed = TestHost::builder()
        .plugin(built("iotstack"))
        .seed("[[tenants]]\nname = 3")
        .start()
        .await
        .err()
        .expect("refused");
    assert!(format!("{bad_seed:#}").contains("seed"), "{bad_seed:#}");
}
