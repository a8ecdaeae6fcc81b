//! CORS as browser consoles meet it, over real HTTP: a mount with `[plugins.<name>.cors]` has
//! its preflights answered by the host (no plugin runs) and its answers carry the grant; an
//! origin not listed gets no grant; a mount without CORS is left alone; the OSS upload
//! endpoint answers any origin by default, as Aliyun's browser uploader needs.

use ota_host::config::{CorsConfig, FileConfig, MountConfig};
use ota_tests::{API_KEY, Options, TestServer};
use reqwest::Method;

const CONSOLE: &str = "https://console.example.com";

async fn preflight(t: &TestServer, path: &str, origin: &str) -> reqwest::Response {
    t.http
        .request(Method::OPTIONS, t.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key, content-type")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_mount_with_cors_answers_preflights_and_grants_its_origins() {
    let t = TestServer::start(Options {
        configure: Box::new(|f: &mut FileConfig| {
            f.plugins.insert(
                "iotstack".into(),
                MountConfig {
                    cors: Some(CorsConfig {
                        allow_origins: vec![CONSOLE.into()],
                        expose_headers: vec!["x-request-id".into()],
                        max_age_secs: 120,
                        ..CorsConfig::default()
                    }),
                    ..Default::default()
                },
            );
        }),
        ..Default::default()
    })
    .await;
    let info = "/api/v1/deployment/info";

    let r = preflight(&t, info, CONSOLE).await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], CONSOLE);
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"),
        "{h:?}"
    );
    assert_eq!(h["access-control-allow-headers"], "x-api-key, content-type");
    assert_eq!(h["access-control-max-age"], "120");
    // Answered by the host: the plugin never ran, so no request id was given.
    assert!(!h.contains_key("x-request-id"), "{h:?}");

    // The request itself: the plugin's answer, with the grant and the exposed header.
    let r = t
        .http
        .post(t.url(info))
        .header("origin", CONSOLE)
        .header("x-api-key", API_KEY)
        .json(&serde_json::json!({"DeploymentID": 1}))
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    assert_eq!(h["access-control-allow-origin"], CONSOLE);
    assert_eq!(h["access-control-expose-headers"], "x-request-id");
    assert!(h.contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body.get("Code").is_some(),
        "IoTStack's own envelope: {body}"
    );

    // Another origin: answered, but granted nothing, so the browser keeps the page out.
    let r = preflight(&t, info, "https://evil.example").await;
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    t.stop().await;
}

#[tokio::test]
async fn a_mount_without_cors_is_left_alone() {
    let t = TestServer::start(Options::default()).await;
    let r = preflight(&t, "/api/v1/deployment/info", CONSOLE).await;
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    assert_ne!(r.status(), 200, "no route takes OPTIONS");
    t.stop().await;
}

#[tokio::test]
async fn the_oss_endpoint_answers_any_origin() {
    let t = TestServer::start(Options::default()).await;
    let r = t
        .http
        .request(Method::OPTIONS, t.url("/oss/acme"))
        .header("origin", "https://any.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    // An upload's answer exposes its ETag to the uploader's script.
    let r = t
        .http
        .post(t.url("/oss/acme"))
        .header("origin", "https://any.example")
        .multipart(reqwest::multipart::Form::new().text("key", "x"))
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("etag"),
        "{h:?}"
    );
    t.stop().await;
}
