//! The operator's view of plugins: `GET /admin/plugins`, operator keys only.

use ota_tests::{API_KEY, OPERATOR_KEY, Options, TENANT, TestServer};
use serde_json::Value;

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
    assert_eq!(p["contract"], "ota:dialect@0.2.8");
    // It calls rollout.next-deployment, which 0.2.7 added.
    assert_eq!(p["needs"], "ota:dialect@0.2.7");
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
        "POST /api/v1/deployment/poll",
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
    let port = ota_tests::free_port();
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

#[tokio::test]
async fn admin_api_manages_tenants_products_keys_and_releases() {
    use serde_json::{Value, json};
    let t = TestServer::start(Options::default()).await;
    let op = ota_tests::OPERATOR_KEY;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = t.http.request(method, t.url(path)).bearer_auth(op);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };
    use reqwest::Method;
    // Tenants and products.
    let (s, b) = call(
        Method::POST,
        "/admin/api/v1/tenants",
        Some(json!({"name": "initech"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = call(
        Method::POST,
        "/admin/api/v1/tenants",
        Some(json!({"name": "initech"})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, b) = call(
        Method::POST,
        "/admin/api/v1/tenants",
        Some(json!({"nom": 1})),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
    let (s, b) = call(
        Method::POST,
        "/admin/api/v1/tenants/initech/products",
        Some(json!({"sn": "TPS-1", "name": "Report"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = call(Method::GET, "/admin/api/v1/tenants/initech/products", None).await;
    assert_eq!((s, b["items"][0]["sn"].as_str()), (200, Some("TPS-1")));
    let (s, _) = call(Method::GET, "/admin/api/v1/tenants/nobody/products", None).await;
    assert_eq!(s, 404);

    // A tenant key made here works for the dialect at once; revoked, it stops.
    let (s, b) = call(
        Method::POST,
        "/admin/api/v1/api-keys",
        Some(json!({"tenant": "initech", "name": "gw"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let key = b["key"].as_str().unwrap().to_string();
    let key_id = b["info"]["id"].as_i64().unwrap();
    // A key in a Django REST framework token's shape works the same way.
    let (s, b) = call(
        Method::POST,
        "/admin/api/v1/api-keys",
        Some(json!({"tenant": "initech", "name": "mx", "format": "hex40"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let drf = b["key"].as_str().unwrap().to_string();
    assert!(
        drf.len() == 40 && drf.chars().all(|c| c.is_ascii_hexdigit()),
        "{drf}"
    );
    // Authenticated (an unknown deployment is a 404, a bad key a 401).
    let info = r#"{"DeploymentID":999999}"#;
    assert_eq!(
        t.post("/api/v1/deployment/info", Some(&drf), info).await.0,
        404
    );
    let forged = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(
        t.post("/api/v1/deployment/info", Some(forged), info)
            .await
            .0,
        401
    );
    let dep = r#"{"ProductSN":"TPS-1","DeviceSN":"gw-7"}"#;
    assert_eq!(
        t.post("/api/v1/deployment/create", Some(&key), dep).await.0,
        200
    );
    let (s, b) = call(
        Method::GET,
        "/admin/api/v1/tenants/initech/products/TPS-1/devices?page=1&page_size=10",
        None,
    )
    .await;
    assert_eq!(
        (s, b["total"].as_i64(), b["items"][0]["sn"].as_str()),
        (200, Some(1), Some("gw-7"))
    );
    let (s, _) = call(
        Method::GET,
        "/admin/api/v1/tenants/initech/products/TPS-1/devices?page=0",
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        Method::DELETE,
        &format!("/admin/api/v1/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        t.post("/api/v1/deployment/create", Some(&key), dep).await.0,
        401
    );

    // Releases: from an uploaded blob, and from an external URL.
    let blob: Value = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .bearer_auth(op)
        .body(b"firmware 2.0".to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sha = blob["sha256"].as_str().unwrap();
    let (s, r1) = call(
        Method::POST,
        "/admin/api/v1/tenants/initech/releases",
        Some(json!({
            "product": "TPS-1", "module": "mcu", "version": "2.0", "blob_sha256": sha,
            "md5": blob["md5"], "mac_range": ["AABBCC000000-AABBCCFFFFFF"], "customize": "{\"k\":1}"
        })),
    )
    .await;
    assert_eq!(s, 201, "{r1}");
    assert_eq!(r1["size"], 12);
    assert_eq!(r1["status"], "test");
    assert_eq!(r1["download_path"], format!("/blobs/{sha}"));
    let (s, _) = call(
        Method::POST,
        "/admin/api/v1/tenants/initech/releases",
        Some(json!({
            "product": "TPS-1", "module": "mcu", "version": "2.0", "blob_sha256": sha
        })),
    )
    .await;
    assert_eq!(s, 409, "same module + version twice");
    let (s, b) = call(Method::POST, "/admin/api/v1/tenants/initech/releases", Some(json!({
        "product": "TPS-1", "module": "mcu", "version": "2.1", "blob_sha256": sha, "md5": "0".repeat(32)
    }))).await;
    assert_eq!(s, 400, "{b}");
    let (s, r2) = call(Method::POST, "/admin/api/v1/tenants/initech/releases", Some(json!({
        "product": "TPS-1", "module": "wifi", "version": "3.1", "from_version": "3.0",
        "url": "https://cdn.example.com/w.bin", "md5": "d41d8cd98f00b204e9800998ecf8427e", "size": 4096
    }))).await;
    assert_eq!(s, 201, "{r2}");
    for bad in [
        json!({"product": "TPS-1", "module": "wifi", "version": "4", "url": "https://x/y"}),
        json!({"product": "TPS-1", "module": "wifi", "version": "4", "from_version": "5", "url": "https://x/y", "md5": "d41d8cd98f00b204e9800998ecf8427e", "size": 1}),
        json!({"product": "TPS-1", "module": "gpu", "version": "4", "blob_sha256": sha}),
        json!({"product": "TPS-1", "module": "mcu", "version": "4"}),
        json!({"product": "NOPE", "module": "mcu", "version": "4", "blob_sha256": sha}),
    ] {
        let (s, b) = call(
            Method::POST,
            "/admin/api/v1/tenants/initech/releases",
            Some(bad.clone()),
        )
        .await;
        assert!(s == 400 || s == 404, "{bad} -> {s} {b}");
    }
    let (s, b) = call(
        Method::GET,
        "/admin/api/v1/tenants/initech/releases?module=wifi",
        None,
    )
    .await;
    assert_eq!((s, b["total"].as_i64()), (200, Some(1)));
    assert_eq!(b["items"][0]["from_version"], "3.0");
    let (_, b) = call(
        Method::GET,
        "/admin/api/v1/tenants/initech/releases?page_size=1&page=2",
        None,
    )
    .await;
    assert_eq!(
        (b["total"].as_i64(), b["items"][0]["version"].as_str()),
        (Some(2), Some("2.0"))
    );
    let id = r1["id"].as_i64().unwrap();
    let (s, b) = call(
        Method::PATCH,
        &format!("/admin/api/v1/tenants/initech/releases/{id}"),
        Some(json!({"status": "online"})),
    )
    .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("online")));
    // Another tenant cannot see it.
    let (s, _) = call(
        Method::GET,
        &format!("/admin/api/v1/tenants/acme/releases/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        Method::DELETE,
        &format!("/admin/api/v1/tenants/initech/releases/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        Method::GET,
        &format!("/admin/api/v1/tenants/initech/releases/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    // Tenant keys never reach the admin API.
    let r = t
        .http
        .get(t.url("/admin/api/v1/tenants"))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    t.stop().await;
}

#[tokio::test]
async fn admin_api_runs_a_campaign_through_approval() {
    use reqwest::Method;
    use serde_json::{Value, json};
    let t = TestServer::start(Options::default()).await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let mut req = t
            .http
            .request(method, t.url(&path))
            .bearer_auth(ota_tests::OPERATOR_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let base = "/admin/api/v1/tenants/acme";
    // Devices come from first contact through the dialect.
    for sn in ["gw-a", "gw-b"] {
        let body = json!({"ProductSN": ota_tests::PRODUCT, "DeviceSN": sn}).to_string();
        assert_eq!(
            t.post("/api/v1/deployment/create", Some(API_KEY), &body)
                .await
                .0,
            200
        );
    }
    let (s, rel) = call(
        Method::POST,
        format!("{base}/releases"),
        Some(json!({
            "product": ota_tests::PRODUCT, "module": "mcu", "version": "5.0",
            "url": "https://cdn.example/5.bin", "md5": "d41d8cd98f00b204e9800998ecf8427e", "size": 1
        })),
    )
    .await;
    assert_eq!(s, 201, "{rel}");
    // A test release only goes to test campaigns until it is put online.
    let formal =
        json!({"name": "early", "release_id": rel["id"], "mode": "auto", "scope": {"type": "all"}});
    let (s, _) = call(Method::POST, format!("{base}/campaigns"), Some(formal)).await;
    assert_eq!(s, 409);
    let online = json!({"status": "online"});
    let (s, _) = call(
        Method::PATCH,
        format!("{base}/releases/{}", rel["id"]),
        Some(online),
    )
    .await;
    assert_eq!(s, 200);
    let (s, c) = call(Method::POST, format!("{base}/campaigns"), Some(json!({
        "name": "fleet to 5.0", "release_id": rel["id"], "mode": "manual",
        "scope": {"type": "devices", "value": ["gw-a", "gw-b"]}, "retries": 2, "timeout_secs": 600
    }))).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["status"], "draft");
    assert_eq!(c["created_by"], "ops");
    let id = c["id"].as_i64().unwrap();
    let (s, _) = call(Method::POST, format!("{base}/campaigns"), Some(json!({
        "name": "x", "release_id": rel["id"], "mode": "auto", "scope": {"type": "devices", "value": ["nope"]}
    }))).await;
    assert_eq!(s, 404, "unknown device in scope");
    // Waves by share of the product's devices: 50% of 2 is 1.
    let (s, w) = call(Method::POST, format!("{base}/campaigns"), Some(json!({
        "name": "staged", "release_id": rel["id"], "mode": "auto", "scope": {"type": "all"},
        "waves": {"initial_percent": 50, "step": 10, "interval_secs": 3600, "max_failure_pct": 5}
    }))).await;
    assert_eq!(
        (s, w["wave_cap"].as_i64(), w["max_failure_pct"].as_i64()),
        (201, Some(1), Some(5)),
        "{w}"
    );
    // A device that has not checked in yet: refused, with the way out named, unless the
    // operator asks to register it.
    let fresh = |register: bool| {
        json!({
            "name": "fresh", "release_id": rel["id"], "mode": "manual", "register_devices": register,
            "scope": {"type": "devices", "value": ["gw-new"]}
        })
    };
    let (s, e) = call(
        Method::POST,
        format!("{base}/campaigns"),
        Some(fresh(false)),
    )
    .await;
    assert_eq!(s, 404, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("register_devices")),
        "{e}"
    );
    let (s, c) = call(Method::POST, format!("{base}/campaigns"), Some(fresh(true))).await;
    assert_eq!(s, 201, "{c}");
    let (s, d) = call(
        Method::GET,
        format!("{base}/products/{}/devices/gw-new", ota_tests::PRODUCT),
        None,
    )
    .await;
    assert_eq!(s, 200, "registered: {d}");
    let (s, _) = call(
        Method::DELETE,
        format!("{base}/campaigns/{}", c["id"]),
        None,
    )
    .await;
    assert!(s == 200 || s == 204, "{s}");
    let (s, _) = call(
        Method::POST,
        format!("{base}/campaigns"),
        Some(json!({
            "name": "bad", "release_id": rel["id"], "mode": "auto", "scope": {"type": "all"},
            "waves": {"initial": 1, "initial_percent": 50, "step": 1, "interval_secs": 1}
        })),
    )
    .await;
    assert_eq!(s, 400);
    // A nightly window in UTC; a malformed one is refused.
    let (s, nightly) = call(
        Method::POST,
        format!("{base}/campaigns"),
        Some(json!({
            "name": "nightly", "release_id": rel["id"], "mode": "auto", "scope": {"type": "all"},
            "maintenance_window": {"start": "22:00", "end": "04:30"}
        })),
    )
    .await;
    assert_eq!(
        (s, nightly["window"].clone()),
        (201, json!({"start_min": 1320, "end_min": 270})),
        "{nightly}"
    );
    let (s, _) = call(
        Method::POST,
        format!("{base}/campaigns"),
        Some(json!({
            "name": "never", "release_id": rel["id"], "mode": "auto", "scope": {"type": "all"},
            "maintenance_window": {"start": "25:00", "end": "04:30"}
        })),
    )
    .await;
    assert_eq!(s, 400);

    let (s, b) = call(
        Method::POST,
        format!("{base}/campaigns/{id}/devices"),
        Some(json!({"devices": ["gw-a", "gw-b"]})),
    )
    .await;
    assert_eq!(
        (s, b["added"].as_i64()),
        (200, Some(0)),
        "already listed by scope"
    );
    let (s, b) = call(
        Method::POST,
        format!("{base}/campaigns/{id}/actions/approve"),
        None,
    )
    .await;
    assert_eq!(s, 409, "a draft cannot be approved: {b}");
    let (s, _) = call(
        Method::POST,
        format!("{base}/campaigns/{id}/actions/launch"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    for action in ["submit", "approve", "pause", "resume"] {
        let (s, b) = call(
            Method::POST,
            format!("{base}/campaigns/{id}/actions/{action}"),
            Some(json!({"note": action})),
        )
        .await;
        assert_eq!(s, 200, "{action}: {b}");
    }
    let (_, shown) = call(Method::GET, format!("{base}/campaigns/{id}"), None).await;
    assert_eq!(
        (shown["status"].as_str(), shown["approver"].as_str()),
        (Some("running"), Some("ops"))
    );
    assert_eq!(shown["stats"]["total"], 2);
    assert_eq!(shown["stats"]["by_state"]["queued"], 2);
    let (_, jobs) = call(
        Method::GET,
        format!("{base}/campaigns/{id}/jobs?page_size=1"),
        None,
    )
    .await;
    assert_eq!(
        (
            jobs["total"].as_i64(),
            jobs["items"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );
    let (s, b) = call(
        Method::POST,
        format!("{base}/campaigns/{id}/actions/cancel"),
        None,
    )
    .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("cancelled")));
    let (_, jobs) = call(Method::GET, format!("{base}/campaigns/{id}/jobs"), None).await;
    assert!(
        jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "cancelled")
    );
    let (_, log) = call(Method::GET, format!("{base}/campaigns/{id}/log"), None).await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "create",
            "add-devices",
            "submit",
            "approve",
            "pause",
            "resume",
            "cancel"
        ]
    );
    let (_, list) = call(Method::GET, format!("{base}/campaigns"), None).await;
    assert_eq!(list["total"], 3);
    // Invalidating the release withdraws it: the staged and nightly campaigns (still drafts)
    // are cancelled.
    let staged = w["id"].as_i64().unwrap();
    let nightly = nightly["id"].as_i64().unwrap();
    let invalid = json!({"status": "invalid"});
    let (s, r) = call(
        Method::PATCH,
        format!("{base}/releases/{}", rel["id"]),
        Some(invalid),
    )
    .await;
    assert_eq!(
        (s, &r["cancelled_campaigns"]),
        (200, &json!([staged, nightly])),
        "{r}"
    );
    let (_, shown) = call(Method::GET, format!("{base}/campaigns/{staged}"), None).await;
    assert_eq!(shown["status"], "cancelled");
    let (s, _) = call(
        Method::GET,
        format!("/admin/api/v1/tenants/globex/campaigns/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 404, "another tenant's campaign");
    t.stop().await;
}

/// Every `$ref` in `v` points at a schema that exists.
fn dangling_refs(v: &Value, schemas: &serde_json::Map<String, Value>, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let name = r.trim_start_matches("#/components/schemas/");
                if !r.starts_with("#/components/schemas/") || !schemas.contains_key(name) {
                    out.push(r.clone());
                }
            }
            m.values().for_each(|x| dangling_refs(x, schemas, out));
        }
        Value::Array(a) => a.iter().for_each(|x| dangling_refs(x, schemas, out)),
        _ => {}
    }
}

/// The OpenAPI document is generated from the routes: it parses as OpenAPI 3.1, every
/// reference resolves, every path parameter is declared, it lists exactly the admin API's
/// operations, and each documented operation is really routed.
#[tokio::test]
async fn the_openapi_document_describes_the_routes() {
    let t = TestServer::start(Options::default()).await;
    let r = t
        .http
        .get(t.url("/admin/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let spec = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);
    let doc: Value = serde_json::from_str(&text).unwrap();

    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut dangling = Vec::new();
    dangling_refs(&doc, schemas, &mut dangling);
    assert!(dangling.is_empty(), "unresolved references: {dangling:?}");
    for name in ["Campaign", "Job", "Release", "Device", "ErrorBody", "Stats"] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("api_key"));

    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    declared.contains(&name),
                    "{method} {path}: path parameter {name} undeclared"
                );
            }
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    let tenant = "/admin/api/v1/tenants/{tenant}";
    let mut expected = vec![
        "GET /admin/plugins".to_string(),
        "GET /admin/api/v1/tenants".into(),
        "POST /admin/api/v1/tenants".into(),
        "GET /admin/api/v1/api-keys".into(),
        "POST /admin/api/v1/api-keys".into(),
        "DELETE /admin/api/v1/api-keys/{id}".into(),
        "POST /admin/api/v1/blobs".into(),
        "GET /admin/api/v1/plugins".into(),
        "POST /admin/api/v1/plugins".into(),
        "POST /admin/api/v1/plugins/{name}/rollback".into(),
        "POST /admin/api/v1/plugins/{name}/promote".into(),
        format!("GET {tenant}/products"),
        format!("POST {tenant}/products"),
        format!("GET {tenant}/products/{{sn}}"),
        format!("GET {tenant}/products/{{sn}}/devices"),
        format!("GET {tenant}/products/{{sn}}/devices/{{device}}"),
        format!("PUT {tenant}/products/{{sn}}/devices/{{device}}"),
        format!("GET {tenant}/releases"),
        format!("POST {tenant}/releases"),
        format!("GET {tenant}/releases/{{id}}"),
        format!("PATCH {tenant}/releases/{{id}}"),
        format!("DELETE {tenant}/releases/{{id}}"),
        format!("GET {tenant}/campaigns"),
        format!("POST {tenant}/campaigns"),
        format!("GET {tenant}/campaigns/{{id}}"),
        format!("PATCH {tenant}/campaigns/{{id}}"),
        format!("DELETE {tenant}/campaigns/{{id}}"),
        format!("POST {tenant}/campaigns/{{id}}/actions/{{action}}"),
        format!("GET {tenant}/campaigns/{{id}}/devices"),
        format!("POST {tenant}/campaigns/{{id}}/devices"),
        format!("DELETE {tenant}/campaigns/{{id}}/devices"),
        format!("GET {tenant}/campaigns/{{id}}/jobs"),
        format!("GET {tenant}/campaigns/{{id}}/log"),
        format!("GET {tenant}/logins"),
        format!("POST {tenant}/logins"),
        format!("DELETE {tenant}/logins/{{id}}"),
        format!("POST {tenant}/logins/{{id}}/revoke-tokens"),
        format!("GET {tenant}/app-keys"),
        format!("POST {tenant}/app-keys"),
        format!("DELETE {tenant}/app-keys/{{id}}"),
        format!("GET {tenant}/products/{{sn}}/attributes"),
        format!("PUT {tenant}/products/{{sn}}/attributes"),
        format!("PUT {tenant}/products/{{sn}}/key"),
    ];
    expected.sort();
    assert_eq!(operations, expected);

    // Each documented operation is routed: with an operator key and placeholder values it
    // is answered by its handler (never 405, never what a path nobody routes gets).
    let r = t
        .http
        .post(t.url("/admin/api/v1/no-such-resource/999999"))
        .bearer_auth(OPERATOR_KEY)
        .body("{}")
        .send()
        .await
        .unwrap();
    let unrouted = (r.status().as_u16(), r.text().await.unwrap());
    assert_eq!(unrouted.0, 404);
    for op in &operations {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path
            .replace("{tenant}", TENANT)
            .replace("{sn}", "fqhmuglv1fybql33")
            .replace("{device}", "nobody")
            .replace("{action}", "pause")
            .replace("{id}", "999999");
        let method: reqwest::Method = method.parse().unwrap();
        let r = t
            .http
            .request(method.clone(), t.url(&path))
            .bearer_auth(OPERATOR_KEY)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert_ne!(status, 405, "{method} {path}");
        let body = r.text().await.unwrap();
        assert_ne!(
            (status, body.as_str()),
            (unrouted.0, unrouted.1.as_str()),
            "{method} {path} is documented but not routed"
        );
    }
    t.stop().await;
}
