//! The MXChip FogCloud dialect over HTTP against `plugins/mxchip`: token auth, the OSS
//! upload token and the host's OSS-compatible PostObject endpoint with real multipart forms,
//! firmware CRUD with the spec's fixtures, the dual-module device check (through the rollout
//! engine) and the version report.

use base64::Engine as _;
use ota_tests::{Options, PRODUCT, TestServer, admin};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const ADMIN: &str = "/admin/api/v1/tenants/acme";
const FILES: &str = "/api/v1/ota/fqhmuglv1fybql33/files/";

/// The spec's create example, as MXChip's console sends it.
const CREATE_FIXTURE: &str = r#"{"file_name":"ota.bin","file_url":"https://xxx.com/a.bin","md5":"0123456789abcdef0123456789abcdef","size":"20kb","ug_type":0,"version":"1.0.1","description":"","customize":"xxx"}"#;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// CRC-64/XZ bit by bit (OSS's `x-oss-hash-crc64ecma`), independent of the host's table.
fn crc64_xz(bytes: &[u8]) -> u64 {
    const POLY: u64 = 0xC96C_5795_D787_0F42; // ECMA-182, reflected
    let mut crc = !0u64;
    for &b in bytes {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

/// A call as MXChip's clients make it: `Authorization: token <key>`, JSON body.
async fn mx(
    t: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = t.http.request(method, t.url(path));
    if let Some(k) = token {
        req = req.header("Authorization", format!("token {k}"));
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {text:?}"));
    (status, v)
}

fn code(v: &Value) -> i64 {
    v["meta"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no meta.code in {v}"))
}

/// A server with the MXChip plugin, uploads capped at `max_bytes`, and a hex40 token made
/// through the admin API; answers the token and its key id.
async fn start(max_bytes: u64) -> (TestServer, String, i64) {
    start_with(max_bytes, false).await
}

/// [`start`], optionally with the OSS endpoint on a listener of its own (`blobs.oss-listen`).
async fn start_with(max_bytes: u64, oss_listener: bool) -> (TestServer, String, i64) {
    let t = TestServer::start(Options {
        plugins: vec![("mxchip.wasm", "mxchip")],
        configure: Box::new(move |f| {
            if oss_listener {
                f.blobs.oss_listen = Some("127.0.0.1:0".parse().unwrap());
            }
            let mut m = ota_host::config::MountConfig::default();
            m.settings
                .insert("upload-max-bytes".into(), max_bytes.to_string());
            m.settings.insert("upload-ttl-secs".into(), "600".into());
            f.plugins.insert("mxchip".into(), m);
        }),
        ..Default::default()
    })
    .await;
    let (token, id) = console_token(&t).await;
    (t, token, id)
}

/// A tenant API key in the shape MXChip's console uses (40 hex characters), made through the
/// admin API; answers the key and its id.
pub(crate) async fn console_token(t: &TestServer) -> (String, i64) {
    let (s, b) = admin(
        t,
        Method::POST,
        "/admin/api/v1/api-keys",
        Some(json!({"tenant": "acme", "name": "mxchip-console", "format": "hex40"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let token = b["key"].as_str().unwrap().to_string();
    assert!(token.len() == 40 && token.bytes().all(|c| c.is_ascii_hexdigit()));
    (token, b["info"]["id"].as_i64().unwrap())
}

async fn device_count(t: &TestServer) -> Option<u64> {
    admin(
        t,
        Method::GET,
        &format!("{ADMIN}/products/{PRODUCT}/devices"),
        None,
    )
    .await
    .1["total"]
        .as_u64()
}

async fn set_status(t: &TestServer, id: i64, status: &str) {
    let (s, b) = admin(
        t,
        Method::PATCH,
        &format!("{ADMIN}/releases/{id}"),
        Some(json!({"status": status})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

async fn create(t: &TestServer, token: &str, body: Value) -> (u16, Value) {
    mx(t, Method::POST, FILES, Some(token), Some(&body.to_string())).await
}

/// An upload form as Aliyun's browser uploader builds it, `file` last.
fn form(fields: &[(&str, &str)], file: Vec<u8>) -> Form {
    let mut f = Form::new();
    for (k, v) in fields {
        f = f.text(k.to_string(), v.to_string());
    }
    f.part(
        "file",
        Part::bytes(file)
            .file_name("firmware.bin")
            .mime_str("application/octet-stream")
            .unwrap(),
    )
}

async fn post_form(
    t: &TestServer,
    url: &str,
    form: Form,
) -> (u16, String, reqwest::header::HeaderMap) {
    let r = t.http.post(url).multipart(form).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.unwrap(), headers)
}

async fn oss_token(t: &TestServer, token: &str) -> Value {
    let (s, b) = mx(t, Method::GET, "/oss_token/ota/", Some(token), None).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["meta"]["message"], "oss token");
    b["data"].clone()
}

fn xml_code(body: &str) -> String {
    body.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or_else(|| panic!("not an OSS error: {body}"))
        .to_string()
}

#[tokio::test]
async fn tokens_are_required_checked_and_revocable() {
    let (t, token, key_id) = start(1 << 20).await;
    let check =
        "/api/v1/ota/device/?product_id=fqhmuglv1fybql33&wifi_version=1.0.0&mcu_version=1.0.0";
    let create_body = Some(CREATE_FIXTURE);
    for (method, path, body) in [
        (Method::GET, "/oss_token/ota/", None),
        (Method::GET, FILES, None),
        (Method::POST, FILES, create_body),
        (Method::GET, check, None),
        (
            Method::PUT,
            "/api/v1/ota/version/",
            Some(r#"{"device_id":"d1","wifi_version":"1","mcu_version":"1"}"#),
        ),
    ] {
        // Missing, wrong scheme, empty, malformed and unknown tokens.
        for header in [
            None,
            Some(format!("Bearer {token}")),
            Some("token".to_string()),
            Some(format!("token {token} extra")),
            Some("token 0123456789abcdef0123456789abcdef01234567".to_string()),
        ] {
            let mut req = t.http.request(method.clone(), t.url(path));
            if let Some(h) = &header {
                req = req.header("Authorization", h);
            }
            if let Some(b) = body {
                req = req.body(b);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {header:?}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(code(&v), 10401, "{v}");
            assert!(v["meta"]["message"].as_str().unwrap().len() > 3);
        }
    }
    // Nothing was written by the refused create.
    let (s, b) = mx(&t, Method::GET, FILES, Some(&token), None).await;
    assert_eq!((s, b["data"]["count"].as_u64()), (200, Some(0)), "{b}");
    // The scheme name is case-insensitive, as DRF's is.
    let r = t
        .http
        .get(t.url(FILES))
        .header("authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A revoked token stops working.
    let (s, _) = admin(
        &t,
        Method::DELETE,
        &format!("/admin/api/v1/api-keys/{key_id}"),
        None,
    )
    .await;
    assert!(s == 200 || s == 204, "{s}");
    let (s, b) = mx(&t, Method::GET, FILES, Some(&token), None).await;
    assert_eq!((s, code(&b)), (401, 10401));
    t.stop().await;
}

#[tokio::test]
async fn upload_create_check_download_report() {
    let (t, token, _) = start(1 << 20).await;
    let tok = oss_token(&t, &token).await;
    // The spec's fields, in Aliyun's PostObject shape.
    let policy: Value = serde_json::from_slice(&b64(tok["policy"].as_str().unwrap())).unwrap();
    let expiration = policy["expiration"].as_str().unwrap();
    assert!(
        expiration.starts_with("2023-11-14T22:23:20"),
        "{expiration}"
    );
    assert_eq!(tok["expire"], 1_700_000_600);
    assert_eq!(tok["dir"], "ota/");
    assert_eq!(tok["host"], t.url("/oss/acme"));
    let conditions = policy["conditions"].as_array().unwrap();
    assert!(conditions.contains(&json!(["starts-with", "$key", "ota/"])));
    assert!(conditions.contains(&json!(["content-length-range", 0, 1 << 20])));
    let callback: Value = serde_json::from_slice(&b64(tok["callback"].as_str().unwrap())).unwrap();
    assert_eq!(callback["callbackUrl"], t.url("/oss_callback/ota/"));
    assert!(
        callback["callbackBody"]
            .as_str()
            .unwrap()
            .contains("${object}")
    );
    assert_eq!(
        b64(tok["signature"].as_str().unwrap()).len(),
        20,
        "HMAC-SHA1"
    );
    assert!(tok["accessid"].as_str().unwrap().len() >= 16);

    // Upload with the callback: the uploader gets the callback's JSON.
    let firmware: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let md5 = md5_hex(&firmware);
    let key = "ota/fw-1.0.1.bin";
    let fields = [
        ("key", key),
        ("OSSAccessKeyId", tok["accessid"].as_str().unwrap()),
        ("policy", tok["policy"].as_str().unwrap()),
        ("Signature", tok["signature"].as_str().unwrap()),
        ("success_action_status", "200"),
        ("callback", tok["callback"].as_str().unwrap()),
    ];
    let host = tok["host"].as_str().unwrap().to_string();
    let (s, body, headers) = post_form(&t, &host, form(&fields, firmware.clone())).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        headers["etag"].to_str().unwrap(),
        format!("\"{}\"", md5.to_uppercase())
    );
    let cb: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code(&cb), 0, "{cb}");
    let file_url = format!("{host}/{key}");
    assert_eq!(cb["data"]["file_url"], file_url);
    assert_eq!(cb["data"]["md5"], md5);
    assert_eq!(cb["data"]["size"], "40000");
    assert_eq!(cb["data"]["file_name"], "fw-1.0.1.bin");
    assert_eq!(
        headers["x-oss-hash-crc64ecma"].to_str().unwrap(),
        crc64_xz(&firmware).to_string()
    );
    // Without the callback field, OSS's default answer: 204.
    let (s, body, _) = post_form(&t, &host, form(&fields[..4], firmware.clone())).await;
    assert_eq!(s, 204, "{body}");
    // A browser form that names a page to go to next: 303 there, with what OSS appends.
    let mut redirect = fields[..4].to_vec();
    redirect.push((
        "success_action_redirect",
        "https://console.example/done?x=1",
    ));
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(&host)
        .multipart(form(&redirect, firmware.clone()))
        .send()
        .await
        .unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    assert_eq!(s, 303, "{:?}", r.text().await);
    let etag_q = format!("%22{}%22", md5.to_uppercase());
    assert_eq!(
        h["location"].to_str().unwrap(),
        format!(
            "https://console.example/done?x=1&bucket=acme&key=ota%2Ffw-1.0.1.bin&etag={etag_q}"
        )
    );
    // The object as OSS serves it: one ETag (the quoted upper-case MD5) on GET and HEAD,
    // its CRC-64, Last-Modified, and a 304 for the ETag an SDK sends back.
    let object_url = format!("{host}/{key}");
    for method in [Method::GET, Method::HEAD] {
        let r = t
            .http
            .request(method.clone(), &object_url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{method}");
        let h = r.headers().clone();
        assert_eq!(
            h["etag"].to_str().unwrap(),
            format!("\"{}\"", md5.to_uppercase())
        );
        assert_eq!(h.get_all("etag").iter().count(), 1);
        assert_eq!(
            h["x-oss-hash-crc64ecma"].to_str().unwrap(),
            crc64_xz(&firmware).to_string()
        );
        assert_eq!(
            h["last-modified"].to_str().unwrap(),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(h["content-length"].to_str().unwrap(), "40000", "{method}");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), if method == Method::GET { 40_000 } else { 0 });
    }
    let r = t
        .http
        .get(&object_url)
        .header("If-None-Match", format!("\"{}\"", md5.to_uppercase()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 304);
    // A resume names the same validator in If-Range, and gets its range.
    let r = t
        .http
        .get(&object_url)
        .header("If-Range", format!("\"{}\"", md5.to_uppercase()))
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    // The callback route refuses anyone but the host.
    let (s, b) = mx(
        &t,
        Method::POST,
        "/oss_callback/ota/",
        Some(&token),
        Some("object=ota/fw-1.0.1.bin"),
    )
    .await;
    assert_eq!((s, code(&b)), (401, 10401));

    // Register it: md5 and byte size are checked against the stored object.
    let mut bad = json!({"file_name": "fw.bin", "file_url": file_url, "md5": "0".repeat(32), "size": "40000", "version": "1.0.1"});
    let (s, b) = create(&t, &token, bad.clone()).await;
    assert_eq!((s, code(&b)), (400, 10000), "{b}");
    bad["md5"] = json!(md5);
    bad["size"] = json!("39999");
    let (s, b) = create(&t, &token, bad).await;
    assert_eq!((s, code(&b)), (400, 10000), "{b}");
    let (s, b) = create(
        &t,
        &token,
        json!({"file_name": "fw.bin", "file_url": file_url, "md5": md5.to_uppercase(), "size": "40000",
               "version": "1.0.1", "mac_range": ["C8:93:46:00:00:10~C8:93:46:00:00:1F"], "customize": "{\"k\":1}"}),
    )
    .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let fw = &b["data"];
    let id = fw["id"].as_i64().unwrap();
    assert_eq!(fw["status"], 0);
    assert_eq!(fw["ota_type"], 0);
    assert_eq!(fw["product"], PRODUCT);
    assert_eq!(fw["file_url"], file_url);
    assert_eq!(fw["md5"], md5);
    // 2023-11-14T22:13:20Z in China time.
    assert_eq!(fw["created_at"], "2023-11-15T06:13:20");
    // The operator sees it as a release backed by the uploaded file.
    let (s, r) = admin(&t, Method::GET, &format!("{ADMIN}/releases/{id}"), None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["version"], "1.0.1");
    assert_eq!(r["status"], "test");
    assert_eq!(r["size"], 40000);

    let check = |q: &str| {
        format!("/api/v1/ota/device/?product_id={PRODUCT}&wifi_version=2.0.0&mcu_version=1.0.0{q}")
    };
    // Test firmware: withheld from a device outside its mac_range, offered inside it.
    let (s, b) = mx(
        &t,
        Method::GET,
        &check("&mac=C89346000020&device_id=outside"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["data"], json!({"need_ota": false, "files": []}));
    let (s, b) = mx(
        &t,
        Method::GET,
        &check("&mac=c8:93:46:00:00:15&device_id=tester"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (s, b["data"]["need_ota"].clone()),
        (200, json!(true)),
        "{b}"
    );
    let offered = &b["data"]["files"][0];
    assert_eq!(offered["version"], "1.0.1");
    assert_eq!(offered["ota_type"], 0);
    assert_eq!(offered["customize"], "{\"k\":1}");
    assert_eq!(offered["md5"], md5);
    assert_eq!(b["data"]["files"].as_array().unwrap().len(), 1);
    let (_, dev) = admin(
        &t,
        Method::GET,
        &format!("{ADMIN}/products/{PRODUCT}/devices/tester"),
        None,
    )
    .await;
    assert_eq!(dev["mac"], "C89346000015", "{dev}");
    // Anonymous checks (no device_id / mac) see online firmware only, and create nothing.
    let (_, b) = mx(&t, Method::GET, &check(""), Some(&token), None).await;
    assert_eq!(b["data"]["need_ota"], false);
    let before = device_count(&t).await;

    // Online: every device gets it, through a formal campaign the dialect started.
    set_status(&t, id, "online").await;
    let (_, b) = mx(&t, Method::GET, &check(""), Some(&token), None).await;
    assert_eq!(b["data"]["files"][0]["version"], "1.0.1", "{b}");
    assert_eq!(device_count(&t).await, before);
    let (_, campaigns) = admin(&t, Method::GET, &format!("{ADMIN}/campaigns"), None).await;
    assert!(
        !campaigns
            .to_string()
            .contains(&format!("mxchip:{id}:online")),
        "an anonymous check starts nothing: {campaigns}"
    );
    let (s, b) = mx(
        &t,
        Method::GET,
        &check("&device_id=dev-1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["need_ota"], true, "{b}");
    let url = b["data"]["files"][0]["file_url"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, campaigns) = admin(&t, Method::GET, &format!("{ADMIN}/campaigns"), None).await;
    let items = campaigns["items"].as_array().unwrap();
    let online = items
        .iter()
        .find(|c| c["name"] == format!("mxchip:{id}:online"))
        .unwrap_or_else(|| panic!("{campaigns}"));
    assert_eq!(online["status"], "running");
    assert_eq!(online["tag"], "formal");
    let cid = online["id"].as_i64().unwrap();
    // The same campaign serves the next device; no duplicate.
    let (_, b) = mx(
        &t,
        Method::GET,
        &check("&device_id=dev-2"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(b["data"]["need_ota"], true);
    let (_, campaigns) = admin(&t, Method::GET, &format!("{ADMIN}/campaigns"), None).await;
    let n = campaigns["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == format!("mxchip:{id}:online"))
        .count();
    assert_eq!(n, 1);

    // Download with a Range request, as firmware resumes.
    let r = t
        .http
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &firmware[100..200]);
    let whole = t.http.get(&file_url).send().await.unwrap();
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &firmware[..]);
    // The object URL itself resumes too, as OSS serves it.
    let r = t
        .http
        .get(&file_url)
        .header("Range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        "bytes 39990-39999/40000"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &firmware[39_990..]);

    // Report: the job succeeds, and the device needs nothing more.
    let (s, b) = mx(
        &t,
        Method::PUT,
        "/api/v1/ota/version/",
        Some(&token),
        Some(r#"{"device_id":"dev-1","wifi_version":"2.0.0","mcu_version":"1.0.1"}"#),
    )
    .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(
        b,
        json!({"meta": {"code": 0, "message": "update version ok"}, "data": {}})
    );
    let (_, jobs) = admin(
        &t,
        Method::GET,
        &format!("{ADMIN}/campaigns/{cid}/jobs?device=dev-1"),
        None,
    )
    .await;
    assert_eq!(jobs["items"][0]["state"], "succeeded", "{jobs}");
    let (_, dev) = admin(
        &t,
        Method::GET,
        &format!("{ADMIN}/products/{PRODUCT}/devices/dev-1"),
        None,
    )
    .await;
    let modules = dev["modules"].as_array().unwrap();
    assert!(
        modules
            .iter()
            .any(|m| m["module"] == "mcu" && m["version"] == "1.0.1"),
        "{dev}"
    );
    let (_, b) = mx(
        &t,
        Method::GET,
        &format!("/api/v1/ota/device/?product_id={PRODUCT}&wifi_version=2.0.0&mcu_version=1.0.1&device_id=dev-1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(b["data"], json!({"need_ota": false, "files": []}));
    // A factory reset: dev-1 comes back on the old firmware and is offered the file again,
    // by the same job, as an anonymous device would be.
    let (_, b) = mx(
        &t,
        Method::GET,
        &check("&device_id=dev-1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(b["data"]["need_ota"], true, "{b}");
    assert_eq!(b["data"]["files"][0]["version"], "1.0.1", "{b}");
    let (_, jobs) = admin(
        &t,
        Method::GET,
        &format!("{ADMIN}/campaigns/{cid}/jobs?device=dev-1"),
        None,
    )
    .await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs["items"][0]["state"], "notified", "{jobs}");
    let (s, b) = mx(
        &t,
        Method::PUT,
        "/api/v1/ota/version/",
        Some(&token),
        Some(r#"{"device_id":"dev-1","wifi_version":"2.0.0","mcu_version":"1.0.1"}"#),
    )
    .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    // Reports validate too.
    for body in [
        r#"{"wifi_version":"1","mcu_version":"1"}"#,
        r#"{"device_id":"dev-1","mcu_version":"1"}"#,
        r#"{"device_id":"dev-1""#,
    ] {
        let (s, b) = mx(
            &t,
            Method::PUT,
            "/api/v1/ota/version/",
            Some(&token),
            Some(body),
        )
        .await;
        assert_eq!((s, code(&b)), (400, 10000), "{body}: {b}");
    }
    // A device that never named itself in a check (the spec's check has no device_id) may
    // still report: the tenant's only product is the one it belongs to.
    let (s, b) = mx(
        &t,
        Method::PUT,
        "/api/v1/ota/version/",
        Some(&token),
        Some(r#"{"device_id":"fresh","wifi_version":"2.0.0","mcu_version":"1.0.1"}"#),
    )
    .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let (s, dev) = admin(
        &t,
        Method::GET,
        &format!("{ADMIN}/products/{PRODUCT}/devices/fresh"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{dev}");
    t.stop().await;
}

#[tokio::test]
async fn the_upload_endpoint_refuses_bad_forms_and_keeps_nothing() {
    let (t, token, _) = start(4096).await;
    let tok = oss_token(&t, &token).await;
    let host = tok["host"].as_str().unwrap().to_string();
    let (id, policy, sig) = (
        tok["accessid"].as_str().unwrap().to_string(),
        tok["policy"].as_str().unwrap().to_string(),
        tok["signature"].as_str().unwrap().to_string(),
    );
    let small = vec![7u8; 1000];
    let base = |key: &'static str| {
        vec![
            ("key", key),
            ("OSSAccessKeyId", ""),
            ("policy", ""),
            ("Signature", ""),
        ]
    };
    let fill = |mut f: Vec<(&'static str, &'static str)>,
                id: &'static str,
                p: &'static str,
                s: &'static str| {
        f[1].1 = id;
        f[2].1 = p;
        f[3].1 = s;
        f
    };
    let (id, policy, sig): (&'static str, &'static str, &'static str) = (
        Box::leak(id.into_boxed_str()),
        Box::leak(policy.into_boxed_str()),
        Box::leak(sig.into_boxed_str()),
    );
    let mut tampered = b64(sig);
    tampered[0] ^= 1;
    let tampered: &'static str = Box::leak(
        base64::engine::general_purpose::STANDARD
            .encode(tampered)
            .into_boxed_str(),
    );
    let forged_policy: &'static str = Box::leak(
        base64::engine::general_purpose::STANDARD
            .encode(
                br#"{"expiration":"2099-01-01T00:00:00.000Z","conditions":[["content-length-range",0,999999999]]}"#,
            )
            .into_boxed_str(),
    );
    for (fields, file, status, expected) in [
        (
            fill(base("ota/a.bin"), id, policy, tampered),
            small.clone(),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            fill(base("ota/a.bin"), id, forged_policy, sig),
            small.clone(),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            fill(base("ota/a.bin"), "LTAIUNKNOWN", policy, sig),
            small.clone(),
            403,
            "InvalidAccessKeyId",
        ),
        (
            fill(base("other/a.bin"), id, policy, sig),
            small.clone(),
            403,
            "AccessDenied",
        ),
        (
            fill(base("ota/a.bin"), id, policy, sig),
            vec![1u8; 5000],
            400,
            "EntityTooLarge",
        ),
        (
            vec![("key", "ota/a.bin"), ("policy", policy), ("Signature", sig)],
            small.clone(),
            400,
            "InvalidArgument",
        ),
    ] {
        let (s, body, headers) = post_form(&t, &host, form(&fields, file)).await;
        assert_eq!((s, xml_code(&body).as_str()), (status, expected), "{body}");
        assert!(headers["content-type"].to_str().unwrap().contains("xml"));
        assert!(body.contains("<RequestId>"));
    }
    // A callback other than the signed one.
    let other_cb: &'static str = Box::leak(
        base64::engine::general_purpose::STANDARD
            .encode(br#"{"callbackUrl":"http://127.0.0.1:1/steal","callbackBody":"x"}"#)
            .into_boxed_str(),
    );
    let mut f = fill(base("ota/a.bin"), id, policy, sig);
    f.push(("callback", other_cb));
    let (s, body, _) = post_form(&t, &host, form(&f, small.clone())).await;
    assert_eq!(
        (s, xml_code(&body).as_str()),
        (403, "AccessDenied"),
        "{body}"
    );
    // An empty callback field is no callback; another tenant's valid form is not this
    // bucket's; a file name that would make a bad key.
    let mut f = fill(base("ota/empty-cb.bin"), id, policy, sig);
    f.push(("callback", ""));
    let (s, body, _) = post_form(&t, &host, form(&f, small.clone())).await;
    assert_eq!(s, 204, "{body}");
    let globex = oss_token(&t, ota_tests::OTHER_TENANT_KEY).await;
    let g = |k: &str| -> &'static str {
        Box::leak(globex[k].as_str().unwrap().to_string().into_boxed_str())
    };
    let (s, body, _) = post_form(
        &t,
        &host,
        form(
            &fill(
                base("ota/g.bin"),
                g("accessid"),
                g("policy"),
                g("signature"),
            ),
            small.clone(),
        ),
    )
    .await;
    assert_eq!(
        (s, xml_code(&body).as_str()),
        (403, "InvalidAccessKeyId"),
        "{body}"
    );
    let bad_name = Form::new()
        .text("key", "ota/${filename}")
        .text("OSSAccessKeyId", id)
        .text("policy", policy)
        .text("Signature", sig)
        .part("file", Part::bytes(small.clone()).file_name("a b?.bin"));
    let (s, body, _) = post_form(&t, &host, bad_name).await;
    assert_eq!(
        (s, xml_code(&body).as_str()),
        (400, "InvalidObjectName"),
        "{body}"
    );
    // Not multipart at all; an unknown bucket.
    let r = t.http.post(&host).body("key=x").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(xml_code(&r.text().await.unwrap()), "MalformedPOSTRequest");
    let (s, body, _) = post_form(
        &t,
        &t.url("/oss/nobody"),
        form(&fill(base("ota/a.bin"), id, policy, sig), small.clone()),
    )
    .await;
    assert_eq!((s, xml_code(&body).as_str()), (404, "NoSuchBucket"));
    // Nothing was kept under any of those keys.
    for key in ["ota/a.bin", "other/a.bin", "ota/g.bin"] {
        let r = t.http.get(format!("{host}/{key}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
        assert_eq!(xml_code(&r.text().await.unwrap()), "NoSuchKey");
    }
    // The policy expires (600 s here).
    t.clock.advance_secs(601);
    let (s, body, _) = post_form(
        &t,
        &host,
        form(&fill(base("ota/a.bin"), id, policy, sig), small.clone()),
    )
    .await;
    assert_eq!(
        (s, xml_code(&body).as_str()),
        (403, "AccessDenied"),
        "{body}"
    );
    assert!(body.contains("expired"), "{body}");
    // A fresh token works, and success_action_status 201 answers OSS's PostResponse.
    let tok = oss_token(&t, &token).await;
    let fields = [
        ("key", "ota/${filename}"),
        ("OSSAccessKeyId", tok["accessid"].as_str().unwrap()),
        ("policy", tok["policy"].as_str().unwrap()),
        ("Signature", tok["signature"].as_str().unwrap()),
        ("success_action_status", "201"),
    ];
    let (s, body, _) = post_form(&t, &host, form(&fields, small.clone())).await;
    assert_eq!(s, 201, "{body}");
    assert!(body.contains("<Key>ota/firmware.bin</Key>"), "{body}");
    let r = t
        .http
        .get(format!("{host}/ota/firmware.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &small[..]);
    t.stop().await;
}

#[tokio::test]
async fn firmware_crud_as_the_spec_prints_it() {
    let (t, token, _) = start(1 << 20).await;
    // The spec's create example, answered as printed.
    let (s, b) = mx(&t, Method::POST, FILES, Some(&token), Some(CREATE_FIXTURE)).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["meta"]["message"], "upload file ok");
    let fw = b["data"].clone();
    let keys: Vec<&str> = fw.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "id",
        "product",
        "ota_type",
        "file_name",
        "file_url",
        "size",
        "md5",
        "version",
        "mac_range",
        "customize",
        "created_at",
        "updated_at",
        "description",
        "status",
        "is_delete",
        "extra",
    ];
    expected.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(fw["size"], "20kb");
    assert_eq!(fw["file_url"], "https://xxx.com/a.bin");
    assert_eq!(fw["mac_range"], Value::Null);
    assert_eq!(fw["customize"], "xxx");
    assert_eq!(fw["is_delete"], false);
    assert_eq!(fw["extra"], json!({}));
    let id = fw["id"].as_i64().unwrap();
    // The host stores 20 KiB as the declared size.
    let (_, r) = admin(&t, Method::GET, &format!("{ADMIN}/releases/{id}"), None).await;
    assert_eq!(r["size"], 20480);

    // Missing or ill-typed parameters, a duplicate version, an unknown product.
    let base: Value = serde_json::from_str(CREATE_FIXTURE).unwrap();
    for field in ["file_name", "file_url", "md5", "size", "version"] {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(field);
        b["version"] = json!(if field == "version" {
            Value::Null
        } else {
            json!("9.9.9")
        });
        let (s, v) = create(&t, &token, b).await;
        assert_eq!((s, code(&v)), (400, 10000), "without {field}: {v}");
    }
    for (field, value) in [
        ("ug_type", json!(7)),
        ("ug_type", json!("wifi")),
        ("md5", json!("xyz")),
        ("size", json!("huge")),
        ("file_url", json!("ftp://x/a.bin")),
        // This server's own object and download spaces, naming nothing stored.
        ("file_url", json!(t.url("/oss/acme/ota/missing.bin"))),
        (
            "file_url",
            json!(t.url(&format!("/blobs/{}", "0".repeat(64)))),
        ),
        ("mac_range", json!(7)),
        ("version", json!("1.0.1")),
    ] {
        let mut b = base.clone();
        b[field] = value.clone();
        if field != "version" {
            b["version"] = json!("9.9.9");
        }
        let (s, v) = create(&t, &token, b).await;
        assert_eq!((s, code(&v)), (400, 10000), "{field}={value}: {v}");
    }
    let (s, v) = mx(
        &t,
        Method::POST,
        "/api/v1/ota/nope/files/",
        Some(&token),
        Some(CREATE_FIXTURE),
    )
    .await;
    assert_eq!((s, code(&v)), (400, 10000), "{v}");
    let (s, v) = mx(
        &t,
        Method::POST,
        FILES,
        Some(&token),
        Some("{\"file_name\":"),
    )
    .await;
    assert_eq!((s, code(&v)), (400, 10000), "{v}");
    // A form body and numbers as strings work too; ug_type "1" is wifi.
    let r = t
        .http
        .post(t.url(FILES.trim_end_matches('/')))
        .header("Authorization", format!("token {token}"))
        .form(&[
            ("file_name", "wifi.bin"),
            ("file_url", "https://xxx.com/w.bin"),
            ("md5", &"a".repeat(32)),
            ("size", "1024"),
            ("version", "2.0.0"),
            ("ug_type", "1"),
        ])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (code(&v), v["data"]["ota_type"].clone()),
        (0, json!(1)),
        "{v}"
    );

    // The console's FormData: multipart text fields, a repeated mac_range, and a file part
    // the create ignores (the file itself went to OSS).
    let r = t
        .http
        .post(t.url(FILES))
        .header("Authorization", format!("token {token}"))
        .multipart(form(
            &[
                ("file_name", "console.bin"),
                ("file_url", "https://xxx.com/c.bin"),
                ("md5", &"b".repeat(32)),
                ("size", "2kb"),
                ("version", "2.0.1"),
                ("mac_range", "C8:93:46:00:00:10~C8:93:46:00:00:1F"),
                ("mac_range", "DEF1LUK"),
            ],
            b"ignored".to_vec(),
        ))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(v["data"]["file_name"], "console.bin");
    assert_eq!(v["data"]["size"], "2kb");
    assert_eq!(
        v["data"]["mac_range"],
        json!(["C8:93:46:00:00:10~C8:93:46:00:00:1F", "DEF1LUK"])
    );
    let console = format!("{FILES}{}/", v["data"]["id"]);
    let (s, v) = mx(&t, Method::DELETE, &console, Some(&token), None).await;
    assert_eq!((s, code(&v)), (200, 0), "{v}");
    let broken = t
        .http
        .post(t.url(FILES))
        .header("Authorization", format!("token {token}"))
        .header("Content-Type", "multipart/form-data; boundary=zz")
        .body("--zz\r\nContent-Disposition: form-data; name=\"file_name\"\r\n\r\nx")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status().as_u16(), 400);
    let v: Value = broken.json().await.unwrap();
    assert_eq!(code(&v), 10000, "{v}");

    // Twelve files: DRF pages of ten, newest first, absolute links.
    for i in 0..10 {
        let mut b = base.clone();
        b["version"] = json!(format!("3.0.{i}"));
        assert_eq!(create(&t, &token, b).await.0, 200);
    }
    let (s, p1) = mx(&t, Method::GET, FILES, Some(&token), None).await;
    assert_eq!((s, code(&p1)), (200, 0));
    assert_eq!(p1["meta"]["message"], "info list");
    let d = &p1["data"];
    assert_eq!(
        (d["count"].as_u64(), d["page_size"].as_u64()),
        (Some(12), Some(10))
    );
    assert_eq!(d["results"].as_array().unwrap().len(), 10);
    assert_eq!(d["results"][0]["version"], "3.0.9");
    assert_eq!(d["previous"], Value::Null);
    let next = d["next"].as_str().unwrap();
    assert_eq!(next, t.url(&format!("{FILES}?page=2")));
    let (_, p2) = mx(
        &t,
        Method::GET,
        next.strip_prefix(&t.url("")).unwrap(),
        Some(&token),
        None,
    )
    .await;
    let d = &p2["data"];
    assert_eq!(d["results"].as_array().unwrap().len(), 2);
    assert_eq!(d["results"][1]["version"], "1.0.1");
    assert_eq!(d["next"], Value::Null);
    assert_eq!(d["previous"], t.url(FILES));
    let (s, v) = mx(
        &t,
        Method::GET,
        &format!("{FILES}?page=3"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (400, 10000));

    // Read, update (partial fields keep their values), version clash.
    let one = format!("{FILES}{id}");
    let (s, v) = mx(&t, Method::GET, &one, Some(&token), None).await;
    assert_eq!(
        (s, code(&v), v["meta"]["message"].clone()),
        (200, 0, json!("file info"))
    );
    assert_eq!(v["data"]["version"], "1.0.1");
    let (s, v) = mx(
        &t,
        Method::PUT,
        &one,
        Some(&token),
        Some(r#"{"description":"fixed","mac_range":["DEF1LUK","DEF1L2G"]}"#),
    )
    .await;
    assert_eq!((s, code(&v)), (200, 0), "{v}");
    assert_eq!(v["meta"]["message"], "update file ok");
    assert_eq!(
        v["data"],
        json!({"ota_type": 0, "file_name": "ota.bin", "file_url": "https://xxx.com/a.bin", "size": "20kb",
               "md5": "0123456789abcdef0123456789abcdef", "version": "1.0.1", "mac_range": ["DEF1LUK", "DEF1L2G"], "extra": {}})
    );
    let (_, v) = mx(&t, Method::GET, &one, Some(&token), None).await;
    assert_eq!(v["data"]["description"], "fixed");
    // The console as Django REST framework clients send it: a form, the list as a repeated key.
    let r = t
        .http
        .put(t.url(&one))
        .header("Authorization", format!("token {token}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("mac_range=DEF1LUK&description=form&mac_range=DEF1L3H")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["mac_range"], json!(["DEF1LUK", "DEF1L3H"]), "{v}");
    let (_, v) = mx(&t, Method::GET, &one, Some(&token), None).await;
    assert_eq!(v["data"]["description"], "form");
    let (s, _) = mx(
        &t,
        Method::PUT,
        &one,
        Some(&token),
        Some(r#"{"mac_range":["DEF1LUK","DEF1L2G"]}"#),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = mx(
        &t,
        Method::PUT,
        &one,
        Some(&token),
        Some(r#"{"version":"3.0.1"}"#),
    )
    .await;
    assert_eq!((s, code(&v)), (400, 10000), "{v}");
    let (s, v) = mx(&t, Method::PUT, &one, Some(&token), Some(r#"{"file_url":"https://xxx.com/b.bin","md5":"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB","size":"1mb","version":"1.0.2"}"#)).await;
    assert_eq!((s, code(&v)), (200, 0), "{v}");
    assert_eq!(
        (v["data"]["size"].clone(), v["data"]["md5"].clone()),
        (json!("1mb"), json!("b".repeat(32)))
    );
    let (_, r) = admin(&t, Method::GET, &format!("{ADMIN}/releases/{id}"), None).await;
    assert_eq!(
        (r["size"].clone(), r["version"].clone()),
        (json!(1 << 20), json!("1.0.2"))
    );

    // Unknown and malformed ids.
    for path in [format!("{FILES}999999"), format!("{FILES}999999/")] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let (s, v) = mx(&t, method.clone(), &path, Some(&token), Some("{}")).await;
            assert_eq!((s, code(&v)), (404, 10500), "{method} {path}: {v}");
        }
    }
    let (s, v) = mx(&t, Method::GET, &format!("{FILES}abc"), Some(&token), None).await;
    assert_eq!((s, code(&v)), (400, 10000));

    // Delete: online firmware refuses (10501), test firmware goes and disappears.
    set_status(&t, id, "online").await;
    let (s, v) = mx(&t, Method::DELETE, &one, Some(&token), None).await;
    assert_eq!((s, code(&v)), (400, 10501), "{v}");
    let (_, list) = mx(
        &t,
        Method::GET,
        &format!("{FILES}?page=2"),
        Some(&token),
        None,
    )
    .await;
    let victim = list["data"]["results"][0]["id"].as_i64().unwrap();
    let (s, v) = mx(
        &t,
        Method::DELETE,
        &format!("{FILES}{victim}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({"meta": {"message": "任务删除成功", "code": 0}, "data": {"ot_id": null}})
        )
    );
    let (s, v) = mx(
        &t,
        Method::GET,
        &format!("{FILES}{victim}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (404, 10500));
    let (_, list) = mx(&t, Method::GET, FILES, Some(&token), None).await;
    assert_eq!(list["data"]["count"], 11);
    t.stop().await;
}

#[tokio::test]
async fn device_check_offers_the_newest_file_per_module() {
    let (t, token, _) = start(1 << 20).await;
    let mut ids = Vec::new();
    for (version, ug) in [
        ("1.0.9", 0),
        ("1.0.10", 0),
        ("1.0.2", 0),
        ("5.1", 1),
        ("5.2", 1),
    ] {
        let (s, b) = create(
            &t,
            &token,
            json!({"file_name": format!("{version}.bin"), "file_url": format!("https://cdn.example/{version}.bin"),
                   "md5": "c".repeat(32), "size": "4096", "version": version, "ug_type": ug, "customize": version}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        ids.push(b["data"]["id"].as_i64().unwrap());
    }
    for id in &ids[..4] {
        set_status(&t, *id, "online").await;
    }
    // 5.2 stays test firmware without a mac_range: nobody gets it.
    let check = |path: &str, wifi: &str, mcu: &str, who: &str| {
        format!("{path}?product_id={PRODUCT}&wifi_version={wifi}&mcu_version={mcu}{who}")
    };
    for path in [
        "/api/v1/ota/device/",
        "/api/v1/ota/devce/",
        "/api/v1/ota/device",
    ] {
        let (s, b) = mx(
            &t,
            Method::GET,
            &check(path, "5.0", "1.0.1", "&device_id=d-1"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!((s, code(&b)), (200, 0), "{path}: {b}");
        assert_eq!(b["meta"]["message"], "ota file info");
        let files = b["data"]["files"].as_array().unwrap();
        assert_eq!(b["data"]["need_ota"], true);
        assert_eq!(files.len(), 2, "{b}");
        assert_eq!(
            files[0],
            json!({"file_url": "https://cdn.example/1.0.10.bin", "md5": "c".repeat(32), "version": "1.0.10", "ota_type": 0, "customize": "1.0.10"})
        );
        assert_eq!(files[1]["version"], "5.1");
        assert_eq!(files[1]["ota_type"], 1);
    }
    // One module current: one file.
    let (_, b) = mx(
        &t,
        Method::GET,
        &check("/api/v1/ota/device/", "5.1", "1.0.1", "&device_id=d-2"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(b["data"]["files"].as_array().unwrap().len(), 1);
    assert_eq!(b["data"]["files"][0]["ota_type"], 0);
    // Invalid firmware is never offered: the device falls back to the next newest.
    set_status(&t, ids[1], "invalid").await;
    let (_, b) = mx(
        &t,
        Method::GET,
        &check("/api/v1/ota/device/", "5.1", "1.0.1", ""),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(b["data"]["files"][0]["version"], "1.0.9", "{b}");
    // An operator's paused campaign offers nothing.
    let (_, campaigns) = admin(&t, Method::GET, &format!("{ADMIN}/campaigns"), None).await;
    let c = campaigns["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == format!("mxchip:{}:online", ids[3]))
        .unwrap_or_else(|| panic!("{campaigns}"))
        .clone();
    let (s, v) = admin(
        &t,
        Method::POST,
        &format!("{ADMIN}/campaigns/{}/actions/pause", c["id"]),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, b) = mx(
        &t,
        Method::GET,
        &check("/api/v1/ota/device/", "5.0", "1.0.9", "&device_id=d-3"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(b["data"], json!({"need_ota": false, "files": []}), "{b}");
    // Missing parameters and an unknown product.
    for q in [
        "?wifi_version=1&mcu_version=1&product_id=".to_string(),
        format!("?product_id={PRODUCT}&mcu_version=1"),
        format!("?product_id={PRODUCT}&wifi_version=1"),
        "?product_id=nope&wifi_version=1&mcu_version=1".to_string(),
    ] {
        let (s, v) = mx(
            &t,
            Method::GET,
            &format!("/api/v1/ota/device/{q}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!((s, code(&v)), (400, 10000), "{q}: {v}");
    }
    t.stop().await;
}

/// The engine keeps a named device's offer current: a newer online firmware supersedes an
/// older offer, a timed-out job is offered again, a narrowed `mac_range` withdraws test
/// firmware, and a release the operator rolls out with a campaign of their own is left to it.
#[tokio::test]
async fn offers_follow_the_newest_firmware_and_the_operator() {
    let (t, token, _) = start(1 << 20).await;
    let firmware = |version: &str, ug: u8, mac_range: Value| {
        json!({"file_name": format!("{version}.bin"), "file_url": format!("https://cdn.example/{version}.bin"),
               "md5": "e".repeat(32), "size": "1kb", "version": version, "ug_type": ug, "mac_range": mac_range})
    };
    let check = |mcu: &str, who: &str| {
        format!(
            "/api/v1/ota/device/?product_id={PRODUCT}&wifi_version=9.0&mcu_version={mcu}&device_id={who}"
        )
    };
    let offered = |b: &Value| -> Vec<String> {
        b["data"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["version"].as_str().unwrap().to_string())
            .collect()
    };
    let jobs_of = |name: String| {
        let t = &t;
        async move {
            let (_, cs) = admin(t, Method::GET, &format!("{ADMIN}/campaigns"), None).await;
            let c = cs["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .cloned();
            match c {
                None => Value::Null,
                Some(c) => {
                    admin(
                        t,
                        Method::GET,
                        &format!("{ADMIN}/campaigns/{}/jobs", c["id"]),
                        None,
                    )
                    .await
                    .1
                }
            }
        }
    };

    // 1.0.9 online: d-1 gets it. Then 1.0.10 goes online: it supersedes the older offer.
    let old = create(&t, &token, firmware("1.0.9", 0, Value::Null))
        .await
        .1["data"]["id"]
        .as_i64()
        .unwrap();
    set_status(&t, old, "online").await;
    let (_, b) = mx(&t, Method::GET, &check("1.0.1", "d-1"), Some(&token), None).await;
    assert_eq!(offered(&b), vec!["1.0.9"], "{b}");
    let new = create(&t, &token, firmware("1.0.10", 0, Value::Null))
        .await
        .1["data"]["id"]
        .as_i64()
        .unwrap();
    set_status(&t, new, "online").await;
    let (_, b) = mx(&t, Method::GET, &check("1.0.1", "d-1"), Some(&token), None).await;
    assert_eq!(offered(&b), vec!["1.0.10"], "{b}");
    let old_jobs = jobs_of(format!("mxchip:{old}:online")).await;
    assert_eq!(old_jobs["items"][0]["state"], "cancelled", "{old_jobs}");

    // The job times out unreported (7 days); the next check offers the firmware again.
    t.clock.advance_secs(7 * 86_400 + 1);
    t.server.scheduler_tick().await;
    let jobs = jobs_of(format!("mxchip:{new}:online")).await;
    assert_eq!(jobs["items"][0]["state"], "timed-out", "{jobs}");
    let (_, b) = mx(&t, Method::GET, &check("1.0.1", "d-1"), Some(&token), None).await;
    assert_eq!(offered(&b), vec!["1.0.10"], "{b}");
    let jobs = jobs_of(format!("mxchip:{new}:online")).await;
    assert_eq!(jobs["items"][0]["state"], "notified", "{jobs}");

    // Test firmware for a listed device, withdrawn when its mac_range drops the device.
    let test = create(&t, &token, firmware("2.0.0-rc1", 0, json!(["tester-1"])))
        .await
        .1["data"]["id"]
        .as_i64()
        .unwrap();
    let (_, b) = mx(
        &t,
        Method::GET,
        &check("1.0.10", "tester-1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(offered(&b), vec!["2.0.0-rc1"], "{b}");
    let (s, v) = mx(
        &t,
        Method::PUT,
        &format!("{FILES}{test}"),
        Some(&token),
        Some(r#"{"mac_range":["tester-2"]}"#),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, b) = mx(
        &t,
        Method::GET,
        &check("1.0.10", "tester-1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(b["data"], json!({"need_ota": false, "files": []}), "{b}");
    let jobs = jobs_of(format!("mxchip:{test}:test")).await;
    assert_eq!(jobs["items"][0]["state"], "cancelled", "{jobs}");
    let (_, b) = mx(
        &t,
        Method::GET,
        &check("1.0.10", "tester-2"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(offered(&b), vec!["2.0.0-rc1"], "{b}");

    // Wifi firmware the operator rolls out with a manual campaign of their own: the dialect
    // leaves it to them (no device is in it yet, so nothing is offered) and adds no campaign.
    let wifi = create(&t, &token, firmware("9.1", 1, Value::Null)).await.1["data"]["id"]
        .as_i64()
        .unwrap();
    set_status(&t, wifi, "online").await;
    let (s, c) = admin(
        &t,
        Method::POST,
        &format!("{ADMIN}/campaigns"),
        Some(json!({"release_id": wifi, "name": "ops wifi", "mode": "manual", "tag": "formal", "scope": {"type": "all"}})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let (_, b) = mx(&t, Method::GET, &check("1.0.1", "d-9"), Some(&token), None).await;
    assert_eq!(offered(&b), vec!["1.0.10"], "only mcu: {b}");
    assert_eq!(jobs_of(format!("mxchip:{wifi}:online")).await, Value::Null);
    t.stop().await;
}

/// Aliyun's `oss2` SDK, given the upload form's `host` as its endpoint, drops the path and
/// asks `http://<ip:port>/<bucket>/<key>` with the key's `/` as `%2F`: with `blobs.oss-listen`
/// the form names that listener, a browser form uploads there, the callback still reaches
/// the plugin, and GET, HEAD, Range and `?objectMeta` answer as OSS does.
#[tokio::test]
async fn oss_sdks_reach_objects_path_style_on_the_oss_listener() {
    let (t, token, _) = start_with(1 << 20, true).await;
    let oss = format!("http://{}", t.server.oss_addr.expect("an OSS listener"));
    let tok = oss_token(&t, &token).await;
    let host = tok["host"].as_str().unwrap().to_string();
    assert_eq!(host, format!("{oss}/acme"));
    let firmware: Vec<u8> = (0..5_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let md5 = md5_hex(&firmware);
    let key = "ota/fw-2.0.0.bin";
    let fields = [
        ("key", key),
        ("OSSAccessKeyId", tok["accessid"].as_str().unwrap()),
        ("policy", tok["policy"].as_str().unwrap()),
        ("Signature", tok["signature"].as_str().unwrap()),
        ("success_action_status", "200"),
        ("callback", tok["callback"].as_str().unwrap()),
    ];
    let (s, body, _) = post_form(&t, &host, form(&fields, firmware.clone())).await;
    assert_eq!(s, 200, "{body}");
    let cb: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cb["data"]["file_url"], format!("{host}/{key}"), "{cb}");
    // Registered by the URL the callback named: it is this host's object.
    let (s, b) = create(
        &t,
        &token,
        json!({"file_name": "fw.bin", "file_url": cb["data"]["file_url"], "md5": md5,
               "size": "5000", "version": "2.0.0"}),
    )
    .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let (_, r) = admin(
        &t,
        Method::GET,
        &format!("{ADMIN}/releases/{}", b["data"]["id"]),
        None,
    )
    .await;
    assert_eq!(r["size"], 5000, "stored, not external: {r}");
    // What oss2 sends.
    let object = format!("{oss}/acme/ota%2Ffw-2.0.0.bin");
    for method in [Method::GET, Method::HEAD] {
        let r = t
            .http
            .request(method.clone(), &object)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{method}");
        assert_eq!(
            r.headers()["etag"].to_str().unwrap(),
            format!("\"{}\"", md5.to_uppercase())
        );
        assert_eq!(
            r.headers()["x-oss-hash-crc64ecma"].to_str().unwrap(),
            crc64_xz(&firmware).to_string()
        );
    }
    let r = t
        .http
        .head(format!("{object}?objectMeta"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("last-modified"));
    let r = t
        .http
        .get(&object)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &firmware[1000..2000]);
    let r = t.http.get(format!("{oss}/acme/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(xml_code(&r.text().await.unwrap()), "NoSuchKey");
    // The main listener's /oss path keeps working, and nothing else is on the OSS listener.
    let r = t
        .http
        .get(t.url("/oss/acme/ota/fw-2.0.0.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = t.http.get(format!("{oss}/healthz")).send().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        405,
        "a bucket named healthz takes only POST"
    );
    let r = t
        .http
        .get(format!("{oss}/admin/api/v1/tenants"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(xml_code(&r.text().await.unwrap()), "NoSuchBucket");
}
