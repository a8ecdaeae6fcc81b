//! The operator's view of plugins: `GET /admin/plugins`, operator keys only.

use ota_tests::{API_KEY, Options, TestServer};

#[tokio::test]
async fn admin_plugins_lists_what_is_loaded_for_operators_only() {
    let t = TestServer::start(Options::default()).await;
    let anonymous = t.http.get(t.url("/admin/plugins")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let tenant = t
        .http
        .get(t.url("/admin/plugins"))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), 403);

    let (status, body) = t.admin_get("/admin/plugins").await;
    assert_eq!(status, 200);
    let plugins = body["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 1);
    let p = &plugins[0];
    assert_eq!(p["name"], "iotstack");
    assert_eq!(p["vendor"], "IoTStack");
    assert_eq!(p["version"], "0.1.0");
    assert_eq!(p["contract"], "ota:dialect@0.1.0");
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
    assert!(p["loaded_at"].as_i64().unwrap() > 0);
    assert_eq!(p["mount"]["auth"], "api-key");
    let routes: Vec<String> = p["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "POST /api/v1/reinstall/create",
        "POST /api/v1/reinstall/info",
        "POST /api/v1/deployment/create",
        "POST /api/v1/deployment/info",
        "POST /api/v1/deployment/report",
    ] {
        assert!(
            routes.contains(&want.to_string()),
            "{want} missing from {routes:?}"
        );
    }
    assert_eq!(body["failures"].as_array().unwrap().len(), 0);
    t.stop().await;
}

#[tokio::test]
async fn mounts_by_host_header_and_by_own_listener() {
    use ota_host::config::MountConfig;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let own: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t = TestServer::start(Options {
        plugins: vec![
            ("iotstack.wasm", "iotstack"),
            ("misbehave.wasm", "misbehave"),
        ],
        configure: Box::new(move |f| {
            f.plugins.insert(
                "iotstack".into(),
                MountConfig {
                    host: Some("iot.example.test".into()),
                    ..Default::default()
                },
            );
            f.plugins.insert(
                "misbehave".into(),
                MountConfig {
                    listen: Some(own),
                    ..Default::default()
                },
            );
        }),
        ..Default::default()
    })
    .await;
    let body = r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"g"}"#;
    let send = |host: &'static str| {
        t.http
            .post(t.url("/api/v1/deployment/create"))
            .header("host", host)
            .header("X-API-Key", API_KEY)
            .body(body)
            .send()
    };
    assert_eq!(send("iot.example.test:8080").await.unwrap().status(), 200);
    assert_eq!(send("other.example.test").await.unwrap().status(), 404);

    assert_eq!(
        t.server.plugin_listeners,
        vec![("misbehave".to_string(), own)]
    );
    let on_own = t
        .http
        .get(format!("http://{own}/misbehave/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_own.status(), 200);
    let on_main = t.http.get(t.url("/misbehave/ok")).send().await.unwrap();
    assert_eq!(
        on_main.status(),
        404,
        "a plugin on its own listener is not on the main one"
    );
    t.stop().await;
}
