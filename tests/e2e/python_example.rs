//! The bundled Python dialect (`plugins/examples/tiny-ota-py`), built from its source with
//! componentize-py as its README says, hot-loaded into a real server and driven over HTTP: a
//! campaign offered through it, the job reported to success, numbers sent as strings, and
//! the vendor's envelope on every refusal.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ota_tests::{
    API_KEY, OPERATOR_KEY, Options, PRODUCT, TENANT, TestServer, admin, eventually, python,
};
use reqwest::Method;
use serde_json::{Value, json};

/// Build the example into `out` (from a copy, so the checkout gets no `__pycache__`).
fn build(out: &Path) -> Option<PathBuf> {
    let componentize = python::componentize_py()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = out.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(
        repo.join("plugins/examples/tiny-ota-py/app.py"),
        src.join("app.py"),
    )
    .unwrap();
    let wasm = out.join("tiny-ota.wasm");
    let built = Command::new(componentize)
        .arg("-d")
        .arg(repo.join("wit/v0.2"))
        .args(["-w", "dialect", "componentize", "app", "-o"])
        .arg(&wasm)
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "componentize-py failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    Some(wasm)
}

async fn get(t: &TestServer, path: &str, key: Option<&str>) -> (u16, Value, String) {
    let mut r = t.http.get(t.url(path));
    if let Some(key) = key {
        r = r.header("X-API-Key", key);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let allow = r
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, r.json().await.unwrap_or(Value::Null), allow)
}

async fn post(t: &TestServer, path: &str, body: &str) -> (u16, Value) {
    let r = t
        .http
        .post(t.url(path))
        .header("X-API-Key", API_KEY)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An online mcu release of `version` with `content` as its file, in a running campaign for
/// every device of the product.
async fn offer_everyone(t: &TestServer, version: &str, content: &[u8]) {
    let r = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .bearer_auth(OPERATOR_KEY)
        .body(content.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sha = r.json::<Value>().await.unwrap()["sha256"].clone();
    let base = format!("/admin/api/v1/tenants/{TENANT}");
    let (s, release) = admin(
        t,
        Method::POST,
        &format!("{base}/releases"),
        Some(json!({
            "product": PRODUCT, "module": "mcu", "version": version,
            "blob_sha256": sha, "status": "online",
        })),
    )
    .await;
    assert_eq!(s, 201, "{release}");
    let (s, c) = admin(
        t,
        Method::POST,
        &format!("{base}/campaigns"),
        Some(json!({
            "name": "tiny", "release_id": release["id"], "mode": "auto",
            "scope": {"type": "all"},
        })),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let (s, c) = admin(
        t,
        Method::POST,
        &format!("{base}/campaigns/{}/actions/start", c["id"]),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{c}");
}

#[tokio::test]
async fn the_python_dialect_offers_a_campaign_and_takes_job_reports() {
    let out = tempfile::tempdir().unwrap();
    let Some(wasm) = build(out.path()) else {
        return;
    };
    let t = TestServer::start(Options {
        plugins: vec![],
        ..Default::default()
    })
    .await;
    std::fs::copy(&wasm, t.plugins_dir().join("tiny-ota.wasm")).unwrap();
    let loaded = eventually(Duration::from_secs(30), || async {
        let (_, body) = t.admin_get("/admin/plugins").await;
        body["plugins"][0]["name"] == "tiny-ota"
    })
    .await;
    let (_, plugins) = t.admin_get("/admin/plugins").await;
    assert!(loaded, "{plugins}");

    let update = format!("/tiny/v1/devices/{PRODUCT}/py-dev-1/update");
    // Nothing to offer yet: the device is registered on first contact all the same.
    let (s, b, _) = get(&t, &format!("{update}?version=1.0"), Some(API_KEY)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({"code": 0, "update": null, "poll_secs": 300}));

    let firmware = b"tiny firmware 1.1".to_vec();
    offer_everyone(&t, "1.1", &firmware).await;
    let (s, b, _) = get(&t, &format!("{update}?version=1.0"), Some(API_KEY)).await;
    assert_eq!(s, 200, "{b}");
    let offered = &b["update"];
    assert_eq!(offered["version"], "1.1", "{b}");
    assert_eq!(offered["size"], firmware.len(), "{b}");
    let job = offered["job"].as_u64().expect("a job id");
    let file = t
        .http
        .get(offered["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.bytes().await.unwrap().as_ref(), firmware.as_slice());

    // Progress, with the numbers as strings (as some firmware sends them), then success.
    let (s, b) = post(
        &t,
        &format!("/tiny/v1/jobs/{job}"),
        r#"{"state":"downloading","code":"0"}"#,
    )
    .await;
    assert_eq!((s, &b["state"]), (200, &json!("downloading")), "{b}");
    let (s, b) = post(
        &t,
        &format!("/tiny/v1/jobs/{job}"),
        r#"{"state":"succeeded","code":0,"text":"flashed","version":"1.1"}"#,
    )
    .await;
    assert_eq!(
        b,
        json!({"code": 0, "job": job, "state": "succeeded"}),
        "{s}"
    );
    let (s, b, _) = get(&t, &format!("{update}?version=1.1"), Some(API_KEY)).await;
    assert_eq!((s, &b["update"]), (200, &Value::Null), "{b}");

    // Refusals, each in the vendor's envelope with its five-digit code.
    let cases: Vec<(u16, i64, (u16, Value, String))> = vec![
        (
            401,
            40101,
            get(&t, &format!("{update}?version=1.0"), None).await,
        ),
        (
            401,
            40101,
            get(&t, &format!("{update}?version=1.0"), Some("no-such-key")).await,
        ),
        (400, 40001, get(&t, &update, Some(API_KEY)).await),
        (
            400,
            40001,
            get(&t, &format!("{update}?version=1&module=gpu"), Some(API_KEY)).await,
        ),
        (
            404,
            40401,
            get(&t, "/tiny/v2/anything", Some(API_KEY)).await,
        ),
    ];
    for (status, code, (s, b, _)) in cases {
        assert_eq!((s, &b["code"]), (status, &json!(code)), "{b}");
        assert!(b["message"].is_string(), "{b}");
    }
    let (s, b, allow) = get(&t, &format!("/tiny/v1/jobs/{job}"), Some(API_KEY)).await;
    assert_eq!(
        (s, &b["code"], allow.as_str()),
        (405, &json!(40501), "POST")
    );
    for (path, body, status, code) in [
        ("/tiny/v1/jobs/abc", r#"{"state":"failed"}"#, 400, 40001),
        ("/tiny/v1/jobs/1", "{not json", 400, 40001),
        ("/tiny/v1/jobs/1", r#"{"state":"exploded"}"#, 400, 40001),
        ("/tiny/v1/jobs/987654", r#"{"state":"failed"}"#, 404, 40401),
    ] {
        let (s, b) = post(&t, path, body).await;
        assert_eq!(
            (s, &b["code"]),
            (status, &json!(code)),
            "{path} {body}: {b}"
        );
    }
    t.stop().await;
}
