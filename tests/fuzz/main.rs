//! Fuzzing on the stable toolchain. A small mutation engine (`engine`) drives the seeds in
//! `tests/fuzz/corpus/<target>/` (requests as the specs print them) through each target and
//! checks its oracle: every dialect's request parsing through the real plugin over real HTTP
//! (never a 5xx, never broken JSON), the XLINK job query language, the OSS PostObject
//! multipart parser (never a 5xx, refusals as OSS XML), and the route matcher's algebra.
//!
//! `cargo test --release --workspace --test fuzz` runs each target for `FUZZ_SECS` (3 by
//! default, so the suite stays quick); `FUZZ_SECS=600 ... -- xlink` is a real run, and
//! `FUZZ_SEED` replays one. A finding is kept under `target/fuzz-findings/` and fails.

mod engine;
mod http;
mod routes;

use base64::Engine as _;
use hmac::Mac;
use ota_tests::{API_KEY, Options, PRODUCT, T0_MILLIS, TENANT, TestServer, admin};
use reqwest::Method;
use serde_json::json;

use http::Req;

const BASE: &str = "/admin/api/v1/tenants/acme";

/// Fuzz `target`'s seeds against `t`, with `vars` for the seeds' placeholders and `prepare`
/// run on each mutated request just before it is sent (e.g. to sign it).
async fn dialect(
    target: &'static str,
    t: &TestServer,
    vars: Vec<(&'static str, String)>,
    prepare: fn(&mut Req),
) {
    let seeds: Vec<Req> = http::seeds(target)
        .iter()
        .map(|s| Req::parse(s, &vars))
        .collect();
    // Every seed as written must be answered without a server error first.
    for s in &seeds {
        let mut s = s.clone();
        prepare(&mut s);
        if let Err(why) = http::dialect_oracle(http::send(&t.http, &t.server.url(), &s).await) {
            panic!("seed of {target} fails: {why}\n{}", s.render());
        }
    }
    let (http_client, base, seeds) = (t.http.clone(), t.server.url(), std::sync::Arc::new(seeds));
    // How deep the inputs got: answers by status class.
    let classes = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        u64,
    >::new()));
    let counted = classes.clone();
    http::run(target, 4, move |mut r| {
        let (http_client, base, seeds, counted) = (
            http_client.clone(),
            base.clone(),
            seeds.clone(),
            counted.clone(),
        );
        async move {
            let mut req = r.pick(&seeds).clone();
            req.mutate(&mut r);
            prepare(&mut req);
            let answer = http::send(&http_client, &base, &req).await;
            let class = match &answer {
                Ok(Some(reply)) => format!("{}", reply.status),
                Ok(None) => "not sent".into(),
                Err(_) => "no answer".into(),
            };
            *counted.lock().unwrap().entry(class).or_default() += 1;
            (req.render(), http::dialect_oracle(answer))
        }
    })
    .await;
    println!("fuzz {target}: answers {:?}", classes.lock().unwrap());
}

fn unchanged(_: &mut Req) {}

/// A server with `plugin` and fuzz-friendly limits: no per-address rate (the fuzzer is one
/// address), and logins that do not back off.
async fn server(plugin: &'static str) -> TestServer {
    TestServer::start(Options {
        plugins: vec![(plugin, plugin.trim_end_matches(".wasm"))],
        configure: Box::new(|f| {
            f.limits.requests_per_ip_per_sec = 0;
            f.logins.free_failures = u32::MAX;
            f.logins.attempts_per_minute = u32::MAX;
            f.logins.attempt_burst = u32::MAX;
        }),
        ..Default::default()
    })
    .await
}

async fn provision(
    t: &TestServer,
    path: &str,
    method: Method,
    body: serde_json::Value,
) -> serde_json::Value {
    let (s, b) = admin(t, method, &format!("{BASE}{path}"), Some(body)).await;
    assert!((200..300).contains(&s), "{path}: {s} {b}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iotstack() {
    let t = server("iotstack.wasm").await;
    dialect(
        "iotstack",
        &t,
        vec![("API_KEY", API_KEY.into()), ("PRODUCT", PRODUCT.into())],
        unchanged,
    )
    .await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ubtech() {
    let t = server("ubtech.wasm").await;
    for (kind, name, secret) in [("client", "mobile_1", "secret_1"), ("user", "aa", "aa")] {
        provision(
            &t,
            "/logins",
            Method::POST,
            json!({"realm": "ubtech", "kind": kind, "name": name, "secret": secret}),
        )
        .await;
    }
    let product = "com.ubtechinc.alpha2services:service5mic:CN";
    provision(
        &t,
        "/products",
        Method::POST,
        json!({"sn": product, "name": "5mic"}),
    )
    .await;
    for (version, from) in [("19", None), ("19", Some("18"))] {
        provision(
            &t,
            "/releases",
            Method::POST,
            json!({
            "product": product, "module": "mcu", "version": version, "from_version": from,
            "url": "https://cdn.example/p.bin", "md5": "d41d8cd98f00b204e9800998ecf8427e",
            "size": 10, "status": "online"}),
        )
        .await;
    }
    provision(
        &t,
        "/campaigns",
        Method::POST,
        json!({"name": "c", "release_id": 1, "mode": "auto", "scope": {"type": "all"}}),
    )
    .await;
    let token: serde_json::Value = t
        .http
        .get(t.url("/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password=aa"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vars = vec![
        ("TOKEN", token["access_token"].as_str().unwrap().to_string()),
        (
            "REFRESH",
            token["refresh_token"].as_str().unwrap().to_string(),
        ),
    ];
    dialect("ubtech", &t, vars, unchanged).await;
    t.stop().await;
}

const APP_KEY: &str = "dAaFG7DiPt8";
const APP_SECRET: &str = "p6mYxUBsvw";

/// Sign as the AEP SDKs do, after mutation, so the fuzz reaches past the signature check.
fn ctwing_sign(req: &mut Req) {
    let mut q: Vec<&(String, String)> = req.query.iter().collect();
    q.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = format!("application:{APP_KEY}\ntimestamp:{T0_MILLIS}\n");
    for (k, v) in q {
        s.push_str(&format!("{k}:{v}\n"));
    }
    let body = String::from_utf8_lossy(&req.body).to_string();
    if !body.trim().is_empty() {
        s.push_str(&body);
        s.push('\n');
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(s.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    req.set_header("application", APP_KEY.into());
    req.set_header("timestamp", T0_MILLIS.to_string());
    req.set_header("signature", sig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctwing() {
    let t = server("ctwing.wasm").await;
    provision(
        &t,
        "/app-keys",
        Method::POST,
        json!({"realm": "ctwing", "app_key": APP_KEY, "secret": APP_SECRET}),
    )
    .await;
    for (sn, protocol) in [("10005977", "lwm2m"), ("10005986", "t-link")] {
        provision(&t, "/products", Method::POST, json!({"sn": sn, "name": sn})).await;
        provision(
            &t,
            &format!("/products/{sn}/attributes"),
            Method::PUT,
            json!({"ctwing.protocol": protocol}),
        )
        .await;
        provision(
            &t,
            &format!("/products/{sn}/devices/{sn}0001"),
            Method::PUT,
            json!({"imei": "122344584512546"}),
        )
        .await;
        provision(
            &t,
            "/releases",
            Method::POST,
            json!({
            "product": sn, "module": "mcu", "version": "1.3251", "url": "https://cdn.example/f.bin",
            "md5": "d41d8cd98f00b204e9800998ecf8427e", "size": 1024, "status": "online"}),
        )
        .await;
    }
    provision(
        &t,
        "/products/10005977/key",
        Method::PUT,
        json!({"key": "mk-10005977"}),
    )
    .await;
    dialect("ctwing", &t, vec![], ctwing_sign).await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mxchip() {
    let (t, token) = mxchip_server().await;
    provision(
        &t,
        "/products",
        Method::POST,
        json!({"sn": "test", "name": "plug"}),
    )
    .await;
    dialect("mxchip", &t, vec![("TOKEN", token)], unchanged).await;
    t.stop().await;
}

/// A server with the MXChip plugin and a console token (`hex40`, Django REST framework's).
async fn mxchip_server() -> (TestServer, String) {
    let t = server("mxchip.wasm").await;
    let (s, b) = admin(
        &t,
        Method::POST,
        "/admin/api/v1/api-keys",
        Some(json!({"tenant": TENANT, "name": "mx", "format": "hex40"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let token = b["key"].as_str().unwrap().to_string();
    (t, token)
}

/// A server with the XLINK plugin, a product key, a member and a device; its tokens.
async fn xlink_server() -> (TestServer, Vec<(&'static str, String)>) {
    let t = server("xlink.wasm").await;
    let product = "160fa2b4f2e803e9160fa2b4f2e80301";
    provision(
        &t,
        "/products",
        Method::POST,
        json!({"sn": product, "name": "plug"}),
    )
    .await;
    provision(
        &t,
        &format!("/products/{product}/key"),
        Method::PUT,
        json!({"key": "authorize-code-0123456789"}),
    )
    .await;
    provision(
        &t,
        "/logins",
        Method::POST,
        json!({"realm": "xlink", "kind": "user", "name": "alice", "secret": "alice-pw"}),
    )
    .await;
    let corp: serde_json::Value = t
        .http
        .post(t.url("/v2/corp_auth"))
        .body(r#"{"account":"alice","password":"alice-pw"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device: serde_json::Value = t.http.post(t.url("/v2/device_login"))
        .body(format!(r#"{{"product_id":"{product}","mac":"AABBCCDDEEFF","authorize_code":"authorize-code-0123456789"}}"#))
        .send().await.unwrap().json().await.unwrap();
    let vars = vec![
        (
            "CORP_TOKEN",
            corp["access_token"].as_str().unwrap().to_string(),
        ),
        (
            "CORP_REFRESH",
            corp["refresh_token"].as_str().unwrap().to_string(),
        ),
        (
            "DEVICE_TOKEN",
            device["access_token"].as_str().unwrap().to_string(),
        ),
        ("DEVICE_ID", device["device_id"].to_string()),
        ("PRODUCT", product.to_string()),
    ];
    (t, vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xlink() {
    let (t, vars) = xlink_server().await;
    dialect("xlink", &t, vars, unchanged).await;
    t.stop().await;
}

/// The job query language of `ota-logs` (`query`, `order`, `filter`, paging) on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xlink_query() {
    let (t, vars) = xlink_server().await;
    dialect("xlink-query", &t, vars, unchanged).await;
    t.stop().await;
}

/// OSS PostObject forms (a policy signed by the host), damaged anywhere: never a 5xx, and
/// every refusal is OSS's XML error document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_multipart() {
    let (t, key) = mxchip_server().await;
    let token: serde_json::Value = t
        .http
        .get(t.url("/oss_token/ota/"))
        .header("authorization", format!("token {key}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &token["data"];
    let vars = vec![
        ("ACCESSID", d["accessid"].as_str().unwrap().to_string()),
        ("POLICY", d["policy"].as_str().unwrap().to_string()),
        ("SIGNATURE", d["signature"].as_str().unwrap().to_string()),
        ("DIR", d["dir"].as_str().unwrap().to_string()),
    ];
    // Seeds are written with plain newlines; multipart bodies travel with CRLF.
    let seeds: Vec<Req> = http::seeds("oss")
        .iter()
        .map(|s| {
            let mut req = Req::parse(s, &vars);
            req.body = String::from_utf8_lossy(&req.body)
                .replace('\n', "\r\n")
                .into_bytes();
            req
        })
        .collect();
    let (client, base, seeds) = (t.http.clone(), t.server.url(), std::sync::Arc::new(seeds));
    http::run("oss", 4, move |mut r| {
        let (client, base, seeds) = (client.clone(), base.clone(), seeds.clone());
        async move {
            let mut req = r.pick(&seeds).clone();
            // The multipart body is where the parser works: damage it (and the boundary in
            // the content type now and then), never the path.
            for _ in 0..(1 + r.below(3)) {
                engine::mutate_bytes(&mut r, &mut req.body);
            }
            if r.chance(8) {
                let ct = req.header("content-type").unwrap_or_default().to_string();
                req.set_header("content-type", engine::mutate_text(&mut r, &ct));
            }
            let verdict = match http::send(&client, &base, &req).await {
                Err(e) => Err(e),
                Ok(None) => Ok(()),
                Ok(Some(http::Reply { status, .. })) if status >= 500 => {
                    Err(format!("answered {status}"))
                }
                Ok(Some(http::Reply { status, body, .. }))
                    if status >= 400 && !String::from_utf8_lossy(&body).contains("<Error>") =>
                {
                    Err(format!(
                        "{status} without an OSS error document: {}",
                        String::from_utf8_lossy(&body)
                    ))
                }
                Ok(Some(_)) => Ok(()),
            };
            (req.render(), verdict)
        }
    })
    .await;
    t.stop().await;
}
