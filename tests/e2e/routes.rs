//! Routing past the routes: paths a dialect claims with a fallback (`/v2/{*rest}`) answer in
//! that dialect's shape with 404 or 405 + `Allow`, the deepest claim wins, and the host's own
//! paths never reach a plugin, whatever its patterns.

use ota_tests::{Options, TestServer};
use reqwest::Method;
use serde_json::Value;

async fn send(t: &TestServer, method: Method, path: &str) -> (u16, String, String) {
    let r = t.http.request(method, t.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let allow = r
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, allow, r.text().await.unwrap())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn reserved_paths_never_reach_a_plugin_whatever_its_patterns() {
    let t = TestServer::start(Options {
        plugins: vec![("catchall.wasm", "catchall")],
        ..Default::default()
    })
    .await;
    let (s, _, body) = send(&t, Method::GET, "/acme/controller/v1/x").await;
    assert_eq!((s, body.as_str()), (200, "route tenant=acme id=x"));
    let (_, _, body) = send(&t, Method::POST, "/acme/controller/v1/x").await;
    assert_eq!(body, "fallback /acme/controller/v1/x allow=[GET]");
    let (_, _, body) = send(&t, Method::GET, "/anything/else").await;
    assert_eq!(body, "fallback /anything/else allow=[]");
    for first in [
        "admin", "install", "blobs", "oss", "healthz", "readyz", "metrics",
    ] {
        for path in [
            format!("/{first}/controller/v1/x"),
            format!("/{first}/nope"),
            format!("/{first}"),
            format!("//{first}/controller/v1/x"),
        ] {
            for method in [Method::GET, Method::POST] {
                let (_, _, body) = send(&t, method.clone(), &path).await;
                assert!(
                    !body.starts_with("route") && !body.starts_with("fallback"),
                    "{method} {path} reached the plugin: {body}"
                );
            }
        }
    }
    let (s, _, _) = send(&t, Method::GET, "/healthz").await;
    assert_eq!(s, 200);
    t.stop().await;
}

#[tokio::test]
async fn unrouted_paths_speak_each_dialect() {
    let t = TestServer::start(Options {
        plugins: vec![
            ("iotstack.wasm", "iotstack"),
            ("mxchip.wasm", "mxchip"),
            ("xlink.wasm", "xlink"),
            ("ctwing.wasm", "ctwing"),
            ("ubtech.wasm", "ubtech"),
        ],
        ..Default::default()
    })
    .await;
    // MXChip owns /api/v1/ota (deeper than IoTStack's /api/v1).
    let (s, _, body) = send(&t, Method::POST, "/api/v1/ota/nope/").await;
    assert_eq!(s, 404, "{body}");
    assert_eq!(json(&body)["meta"]["code"], 10000, "{body}");
    let (s, allow, body) = send(&t, Method::DELETE, "/api/v1/ota/device/").await;
    assert_eq!((s, allow.as_str()), (405, "GET"), "{body}");
    assert_eq!(json(&body)["meta"]["code"], 10000, "{body}");
    // IoTStack owns the rest of /api/v1.
    let (s, _, body) = send(&t, Method::POST, "/api/v1/nope").await;
    assert_eq!((s, &json(&body)["Code"]), (404, &3001.into()), "{body}");
    let (s, allow, body) = send(&t, Method::GET, "/api/v1/deployment/info").await;
    assert_eq!((s, allow.as_str()), (405, "POST"), "{body}");
    assert_eq!(json(&body)["Code"], 1006, "{body}");
    // XLINK, CTWing, UBTech.
    let (s, _, body) = send(&t, Method::GET, "/v2/upgrade/firmware/nope").await;
    assert_eq!((s, &json(&body)["error"]["code"]), (404, &4041001.into()));
    let (s, _, body) = send(&t, Method::GET, "/aep_upgrade_management/nope").await;
    let v = json(&body);
    assert_eq!(
        (s, &v["code"], &v["result"]),
        (404, &404.into(), &Value::Null)
    );
    let (s, allow, body) = send(&t, Method::DELETE, "/aep_upgrade_management/tasks").await;
    assert_eq!(
        (s, allow.as_str(), &json(&body)["code"]),
        (405, "GET", &405.into())
    );
    let (s, _, body) = send(&t, Method::GET, "/file/nope").await;
    assert_eq!((s, &json(&body)["code"]), (404, &"500".into()), "{body}");
    let (s, allow, body) = send(&t, Method::DELETE, "/oauth/token").await;
    assert_eq!((s, allow.as_str()), (405, "GET, POST"), "{body}");
    assert_eq!(json(&body)["error"], "invalid_request", "{body}");
    // Nobody claims the root: the host answers.
    let (s, _, body) = send(&t, Method::GET, "/no/dialect/here").await;
    assert_eq!(
        (s, &json(&body)["error"]["code"]),
        (404, &"not_found".into())
    );
    t.stop().await;
}
