//! The CTWing AEP dialect over HTTP against `plugins/ctwing`: every `aep_upgrade_management`
//! API signed as the official AEP SDKs sign, for an LWM2M and a T-Link product, each
//! validation rule and each auth refusal. The signatures are pinned by vectors computed
//! independently with Python's `hmac`/`hashlib` (see `PYTHON_VECTORS`).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use ota_host::clock::Clock;
use ota_tests::{Options, T0_MILLIS, TestServer, admin};
use reqwest::Method;
use serde_json::{Value, json};
use sha1::Sha1;

const APP_KEY: &str = "dAaFG7DiPt8";
const APP_SECRET: &str = "p6mYxUBsvw";
const LWM2M: &str = "10005977";
const TLINK: &str = "10005986";
const MASTER_KEY: &str = "mk-10005977";
const BASE: &str = "/admin/api/v1/tenants/acme";

/// (string to sign, base64 signature), computed with
/// `python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b"p6mYxUBsvw",
/// S.encode(), hashlib.sha1).digest()).decode())'`, the body of the second being Python's
/// `json.dumps` of the spec's create example (so non-ASCII arrives as `\u` escapes).
const PYTHON_VECTORS: [(&str, &str); 5] = [
    (
        "application:dAaFG7DiPt8\ntimestamp:1700000000000\nMasterKey:mk-10005977\nid:3456\nproductId:10005977\n",
        "mhGA/fBuxTe6RpzP7kn6vTuDFzY=",
    ),
    (
        "application:dAaFG7DiPt8\ntimestamp:1700000000000\n{\"createBy\": \"huangliang\", \"firmwareId\": 1, \"jobDesc\": \"sddd\", \"jobName\": \"\\u5317\\u5411\\u6d4b\\u8bd5\", \"productId\": 10005977, \"retryTimes\": 1, \"outTime\": \"24\"}\n",
        "A8y54Yx+8yBk0AXCpXt2wDSpfoY=",
    ),
    (
        "application:dAaFG7DiPt8\ntimestamp:1700000000000\nMasterKey:mk-10005977\npageNow:1\npageSize:20\nproductId:10005977\nsearchValue:北向\n",
        "lwTB5T4iPJc9WMgzr4WhY9GDCAc=",
    ),
    // Query and body together (ModifyRemoteUpgradeTask).
    (
        "application:dAaFG7DiPt8\ntimestamp:1700000000000\nMasterKey:mk-10005977\nid:1\n{\"updateBy\": \"huangliang\", \"jobDesc\": \"sddd\", \"jobName\": \"\\u5317\\u5411\\u6d4b\\u8bd5\", \"productId\": 10005977, \"retryTimes\": 2, \"outTime\": \"24\"}\n",
        "XbyI5HihT/6pfyZTCLiVWorV9pw=",
    ),
    // Unset optionals as the Python SDK sends and signs them.
    (
        "application:dAaFG7DiPt8\ntimestamp:1700000000000\nMasterKey:mk-10005977\npageNow:None\npageSize:None\nproductId:10005977\nsearchValue:None\n",
        "yGlN/nmU4owcWKWJ1NK2taHrBJA=",
    ),
];

fn hmac_b64(secret: &str, message: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The SDK's string to sign: application, timestamp, the query sorted by name (decoded
/// values), then the body when there is one.
fn string_to_sign(app_key: &str, timestamp: i64, query: &[(&str, &str)], body: &str) -> String {
    let mut q: Vec<&(&str, &str)> = query.iter().collect();
    q.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = format!("application:{app_key}\ntimestamp:{timestamp}\n");
    for (k, v) in q {
        s.push_str(&format!("{k}:{v}\n"));
    }
    if !body.trim().is_empty() {
        s.push_str(body);
        s.push('\n');
    }
    s
}

#[test]
fn the_test_signer_matches_the_python_vectors() {
    for (message, signature) in PYTHON_VECTORS {
        assert_eq!(hmac_b64(APP_SECRET, message.as_bytes()), signature);
    }
    let body = PYTHON_VECTORS[1].0.split_once("1700000000000\n").unwrap().1;
    assert_eq!(
        string_to_sign(APP_KEY, T0_MILLIS, &[], body.trim_end_matches('\n')),
        PYTHON_VECTORS[1].0
    );
    assert_eq!(
        string_to_sign(
            APP_KEY,
            T0_MILLIS,
            &[
                ("productId", LWM2M),
                ("id", "3456"),
                ("MasterKey", MASTER_KEY)
            ],
            ""
        ),
        PYTHON_VECTORS[0].0
    );
}

/// A signed call as the SDK makes it: MasterKey as header and query parameter, the query
/// form-encoded on the wire, `version` per API, no content type on bodies.
struct Call<'a> {
    method: Method,
    api: &'a str,
    query: Vec<(&'a str, String)>,
    body: String,
    master_key: Option<&'a str>,
    /// Signing time; the server's clock when none.
    timestamp: Option<i64>,
    secret: &'a str,
    app_key: &'a str,
}

impl<'a> Call<'a> {
    fn new(method: Method, api: &'a str) -> Self {
        Call {
            method,
            api,
            query: Vec::new(),
            body: String::new(),
            master_key: None,
            timestamp: None,
            secret: APP_SECRET,
            app_key: APP_KEY,
        }
    }

    fn q(mut self, name: &'a str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = body.to_string();
        self
    }

    fn mk(mut self, key: &'a str) -> Self {
        self.master_key = Some(key);
        self
    }

    async fn send(self, t: &TestServer) -> (u16, Value) {
        let timestamp = self.timestamp.unwrap_or_else(|| t.clock.now_millis());
        let mut query: Vec<(&str, String)> = self.query.clone();
        if let Some(k) = self.master_key {
            query.push(("MasterKey", k.to_string()));
        }
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let s = string_to_sign(self.app_key, timestamp, &pairs, &self.body);
        let signature = hmac_b64(self.secret, s.as_bytes());
        let encoded: String = query
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let url = t.url(&format!("/aep_upgrade_management{}?{encoded}", self.api));
        let mut req = t
            .http
            .request(self.method.clone(), url)
            .header("application", self.app_key)
            .header("timestamp", timestamp.to_string())
            .header("signature", signature)
            .header("version", api_version(&self.method, self.api));
        if let Some(k) = self.master_key {
            req = req.header("MasterKey", k);
        }
        if !self.body.is_empty() {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(self.body.clone());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        // Every answer, refusals included, carries the server clock (the SDKs print it).
        let stamp = r
            .headers()
            .get("x-ag-timestamp")
            .map(|v| v.to_str().unwrap());
        assert_eq!(
            stamp,
            Some(t.clock.now_millis().to_string().as_str()),
            "{} {}: x-ag-timestamp",
            self.method,
            self.api
        );
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} answered non-JSON ({e}): {text:?}", self.api));
        (status, v)
    }
}

/// The `version` header each SDK function sends.
fn api_version(method: &Method, api: &str) -> &'static str {
    match (method.as_str(), api) {
        ("GET", "/detail") => "20190615001517",
        ("GET", "/task") => "20190615001509",
        ("PUT", "/control") => "20190615001456",
        ("GET", "/devices") => "20190615001451",
        ("DELETE", "/task") => "20190615001444",
        ("GET", "/tasks") => "20190615001440",
        ("PUT", "/task") => "20190615001433",
        ("POST", "/task") => "20190615001416",
        ("POST", "/operational") => "20190615001412",
        ("GET", "/details") => "20190615001406",
        _ => "20190615001416",
    }
}

fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Two products (LWM2M with a MasterKey, T-Link), an app key, devices and a firmware each,
/// all made through the admin API as an operator would.
async fn start() -> (TestServer, i64, i64) {
    let t = TestServer::start(Options {
        plugins: vec![("ctwing.wasm", "ctwing")],
        ..Default::default()
    })
    .await;
    let (s, b) = admin(
        &t,
        Method::POST,
        &format!("{BASE}/app-keys"),
        Some(json!({"realm": "ctwing", "app_key": APP_KEY, "secret": APP_SECRET})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    for (sn, name, protocol) in [
        (LWM2M, "复用lw二进制 远程升级", "lwm2m"),
        (TLINK, "彩色电视", "t-link"),
    ] {
        let (s, b) = admin(
            &t,
            Method::POST,
            &format!("{BASE}/products"),
            Some(json!({"sn": sn, "name": name})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let (s, _) = admin(
            &t,
            Method::PUT,
            &format!("{BASE}/products/{sn}/attributes"),
            Some(json!({"ctwing.protocol": protocol})),
        )
        .await;
        assert_eq!(s, 200);
    }
    let (s, b) = admin(
        &t,
        Method::PUT,
        &format!("{BASE}/products/{LWM2M}/key"),
        Some(json!({"key": MASTER_KEY})),
    )
    .await;
    assert_eq!((s, b["key"].as_str()), (200, Some(MASTER_KEY)));
    // Devices: deviceId = productId + device number, as CTWing builds them.
    for (product, no, name, imei, group) in [
        (LWM2M, "0001", "meter-1", "122344584512546", "g1"),
        (LWM2M, "0002", "meter-2", "122344584512547", "g2"),
        (LWM2M, "0003", "meter-3", "122344584512548", "g1"),
        (TLINK, "11113", "十大城市打车", "", ""),
        (TLINK, "11114", "tv-2", "", ""),
    ] {
        let (s, b) = admin(
            &t,
            Method::PUT,
            &format!("{BASE}/products/{product}/devices/{product}{no}"),
            Some(json!({"name": name, "imei": imei, "group": group})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let mut firmware = Vec::new();
    for (product, version) in [(LWM2M, "1.3251"), (TLINK, "10.3")] {
        let mut release = json!({
            "product": product, "module": "mcu", "version": version,
            "url": format!("https://cdn.example/{product}.bin"),
            "md5": "d41d8cd98f00b204e9800998ecf8427e", "size": 1024, "status": "online"
        });
        // One named as CTWing's console shows it; the other keeps its file's name.
        if product == LWM2M {
            release["name"] = json!("工作簿1.xlsx");
        }
        let (s, b) = admin(&t, Method::POST, &format!("{BASE}/releases"), Some(release)).await;
        assert_eq!(s, 201, "{b}");
        firmware.push(b["id"].as_i64().unwrap());
    }
    (t, firmware[0], firmware[1])
}

fn assert_refused(status: u16, body: &Value, want: u16) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["code"], want, "{body}");
    assert!(body["result"].is_null(), "{body}");
    assert!(
        body["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn echo_serves_the_clock_unauthenticated() {
    let (t, _, _) = start().await;
    let r = t.http.get(t.url("/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ag-timestamp"], T0_MILLIS.to_string());
    t.stop().await;
}

#[tokio::test]
async fn the_pinned_python_vectors_are_accepted_on_the_wire() {
    let (t, lwm2m_fw, _) = start().await;
    assert_eq!(lwm2m_fw, 1, "the create vector names firmware 1");
    // Vector 2: the spec's create body as Python's json.dumps sends it, unsigned by us.
    let body = PYTHON_VECTORS[1]
        .0
        .split_once("1700000000000\n")
        .unwrap()
        .1
        .trim_end();
    let r = t
        .http
        .post(t.url("/aep_upgrade_management/task"))
        .header("application", APP_KEY)
        .header("timestamp", "1700000000000")
        .header("signature", PYTHON_VECTORS[1].1)
        .header("version", "20190615001416")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["result"]["jobName"], "北向测试", "{created}");
    // Vector 3: a Chinese search value, form-encoded on the wire, MasterKey in the query.
    let r = t
        .http
        .get(t.url(
            "/aep_upgrade_management/tasks?productId=10005977&pageNow=1&pageSize=20\
             &searchValue=%E5%8C%97%E5%90%91&MasterKey=mk-10005977",
        ))
        .header("application", APP_KEY)
        .header("timestamp", "1700000000000")
        .header("signature", PYTHON_VECTORS[2].1)
        .header("MasterKey", MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["result"]["total"], 1, "{listed}");
    assert_eq!(listed["result"]["list"][0]["jobName"], "北向测试");
    // Vector 4: query and body together; the task's retries become 2.
    let body = PYTHON_VECTORS[3]
        .0
        .split_once("id:1\n")
        .unwrap()
        .1
        .trim_end();
    let r = t
        .http
        .put(t.url("/aep_upgrade_management/task?id=1&MasterKey=mk-10005977"))
        .header("application", APP_KEY)
        .header("timestamp", "1700000000000")
        .header("signature", PYTHON_VECTORS[3].1)
        .header("version", "20190615001433")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Vector 5: `None` for unset optionals is signed as sent, then means "default".
    let r = t
        .http
        .get(t.url(
            "/aep_upgrade_management/tasks?productId=10005977&pageNow=None&pageSize=None\
             &searchValue=None&MasterKey=mk-10005977",
        ))
        .header("application", APP_KEY)
        .header("timestamp", "1700000000000")
        .header("signature", PYTHON_VECTORS[4].1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(
        (
            listed["result"]["pageSize"].as_u64(),
            listed["result"]["total"].as_u64()
        ),
        (Some(20), Some(1))
    );
    assert_eq!(listed["result"]["list"][0]["retryTimes"], 2, "{listed}");
    // Vector 1 is a valid signature for a task that does not exist: past auth, 404.
    let r = t
        .http
        .get(t.url("/aep_upgrade_management/task?id=3456&productId=10005977&MasterKey=mk-10005977"))
        .header("application", APP_KEY)
        .header("timestamp", "1700000000000")
        .header("signature", PYTHON_VECTORS[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    t.stop().await;
}

#[tokio::test]
async fn every_auth_refusal_changes_nothing() {
    let (t, fw, _) = start().await;
    let create = json!({"firmwareId": fw, "jobName": "x", "productId": LWM2M.parse::<u64>().unwrap(), "retryTimes": 1});
    // Unknown application, wrong secret, stale and future timestamps: 401.
    let mut c = Call::new(Method::POST, "/task").body(create.clone());
    c.app_key = "nobody";
    let (s, b) = c.send(&t).await;
    assert_refused(s, &b, 401);
    let mut c = Call::new(Method::POST, "/task").body(create.clone());
    c.secret = "wrong-secret";
    let (s, b) = c.send(&t).await;
    assert_refused(s, &b, 401);
    for skew in [-16 * 60_000, 16 * 60_000] {
        let mut c = Call::new(Method::POST, "/task").body(create.clone());
        c.timestamp = Some(T0_MILLIS + skew);
        let (s, b) = c.send(&t).await;
        assert_refused(s, &b, 401);
    }
    // Within the window is fine: 14 minutes off.
    let mut c = Call::new(Method::GET, "/tasks").q("productId", TLINK);
    c.timestamp = Some(T0_MILLIS - 14 * 60_000);
    assert_eq!(c.send(&t).await.0, 200);
    // Tampering with a signed parameter after signing.
    let r = t
        .http
        .get(t.url("/aep_upgrade_management/task?id=3457&productId=10005977&MasterKey=mk-10005977"))
        .header("application", APP_KEY)
        .header("timestamp", "1700000000000")
        .header("signature", PYTHON_VECTORS[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Missing headers, a signature that is not base64.
    let r = t
        .http
        .get(t.url("/aep_upgrade_management/tasks?productId=10005986"))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    assert_refused(s, &r.json().await.unwrap(), 401);
    let r = t
        .http
        .get(t.url("/aep_upgrade_management/tasks?productId=10005986"))
        .header("application", APP_KEY)
        .header("timestamp", "1700000000000")
        .header("signature", "***")
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    assert_refused(s, &r.json().await.unwrap(), 401);
    // An unsigned body-carrying call is a 401 whatever its body.
    let r = t
        .http
        .post(t.url("/aep_upgrade_management/task"))
        .body("not json")
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    assert_refused(s, &r.json().await.unwrap(), 401);
    // Wrong MasterKey: 403; a MasterKey for a product without one: 403.
    let (s, b) = Call::new(Method::POST, "/task")
        .body(create.clone())
        .mk("wrong")
        .send(&t)
        .await;
    assert_refused(s, &b, 403);
    let (s, b) = Call::new(Method::GET, "/tasks")
        .q("productId", TLINK)
        .mk("anything")
        .send(&t)
        .await;
    assert_refused(s, &b, 403);
    // A revoked app key stops working.
    let (_, keys) = admin(&t, Method::GET, &format!("{BASE}/app-keys"), None).await;
    let id = keys["items"][0]["id"].as_i64().unwrap();
    let (s, _) = admin(&t, Method::DELETE, &format!("{BASE}/app-keys/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, _) = Call::new(Method::GET, "/tasks")
        .q("productId", TLINK)
        .send(&t)
        .await;
    assert_eq!(s, 401);
    // Nothing was created by any refused call.
    let (_, list) = admin(&t, Method::GET, &format!("{BASE}/campaigns"), None).await;
    assert_eq!(list["total"], 0, "{list}");
    t.stop().await;
}

#[tokio::test]
async fn an_lwm2m_task_from_creation_to_subtasks() {
    let (t, fw, tlink_fw) = start().await;
    let pid: u64 = LWM2M.parse().unwrap();
    // Create: the spec's example body (outTime is T-Link's and ignored here).
    let (s, b) = Call::new(Method::POST, "/task")
        .mk(MASTER_KEY)
        .body(json!({
            "createBy": "huangliang", "firmwareId": fw, "jobDesc": "sddd",
            "jobName": "北向测试", "productId": pid, "retryTimes": 1, "outTime": "129"
        }))
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["code"].as_i64(), b["msg"].as_str()),
        (Some(0), Some("ok"))
    );
    let r = &b["result"];
    let job = r["jobId"].as_u64().unwrap();
    assert_eq!(r["productId"], pid);
    assert_eq!(r["tenantId"], "acme");
    assert_eq!(r["productProtocol"], 3);
    assert_eq!(r["upgradePlan"], 1);
    assert_eq!(r["retryTimes"], 1);
    assert_eq!(r["createBy"], "huangliang");
    assert_eq!(r["firmwareId"], fw);

    // Validation for LWM2M: retryTimes required and 0-3; the other product's firmware; a
    // missing jobName; a string productId works.
    for (body, want) in [
        (
            json!({"firmwareId": fw, "jobName": "x", "productId": pid}),
            400,
        ),
        (
            json!({"firmwareId": fw, "jobName": "x", "productId": pid, "retryTimes": 4}),
            400,
        ),
        (
            json!({"firmwareId": fw, "jobName": "x", "productId": pid, "retryTimes": -1}),
            400,
        ),
        (
            json!({"firmwareId": fw, "productId": pid, "retryTimes": 1}),
            400,
        ),
        (
            json!({"jobName": "x", "productId": pid, "retryTimes": 1}),
            400,
        ),
        (
            json!({"firmwareId": tlink_fw, "jobName": "x", "productId": pid, "retryTimes": 1}),
            404,
        ),
        (
            json!({"firmwareId": fw, "jobName": "x", "productId": 999, "retryTimes": 1}),
            404,
        ),
    ] {
        let (s, b) = Call::new(Method::POST, "/task")
            .mk(MASTER_KEY)
            .body(body.clone())
            .send(&t)
            .await;
        assert_refused(s, &b, want);
    }
    let (s, _) = Call::new(Method::POST, "/task")
        .mk(MASTER_KEY)
        .body(json!({"firmwareId": fw.to_string(), "jobName": "second", "productId": LWM2M, "retryTimes": "0"}))
        .send(&t)
        .await;
    assert_eq!(s, 200, "numbers as strings are accepted");
    // Malformed JSON.
    let mut c = Call::new(Method::POST, "/task").mk(MASTER_KEY);
    c.body = "{not json".into();
    let (s, b) = c.send(&t).await;
    assert_refused(s, &b, 400);

    // Query one, as printed.
    let (s, b) = Call::new(Method::GET, "/task")
        .q("id", job)
        .q("productId", pid)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    let r = &b["result"];
    for (k, v) in [
        ("jobName", json!("北向测试")),
        ("jobStatus", json!(1)),
        ("deviceStatus", json!(0)),
        ("firmwareName", json!("工作簿1.xlsx")),
        ("firmwareVersion", json!("1.3251")),
        ("firmwareUrl", json!("https://cdn.example/10005977.bin")),
        ("outTime", json!(0)),
        ("takeTime", json!("")),
        ("createTime", json!("2023-11-15 06:13:20")),
        ("upgradePlan", json!(1)),
        ("retryTimes", json!(1)),
        ("productName", json!("复用lw二进制 远程升级")),
        ("tenantId", json!("acme")),
    ] {
        assert_eq!(r[k], v, "{k} in {r}");
    }

    // Modify: name, description, retries; out-of-range retryTimes refused.
    let (s, b) = Call::new(Method::PUT, "/task")
        .q("id", job)
        .mk(MASTER_KEY)
        .body(json!({"updateBy": "huangliang", "jobDesc": "new desc", "jobName": "北向测试2", "productId": pid, "retryTimes": 2}))
        .send(&t)
        .await;
    assert_eq!((s, b["result"].as_str()), (200, Some("SUCCESS")), "{b}");
    let (s, b) = Call::new(Method::PUT, "/task")
        .q("id", job)
        .mk(MASTER_KEY)
        .body(json!({"productId": pid, "retryTimes": 9}))
        .send(&t)
        .await;
    assert_refused(s, &b, 400);

    // List with fuzzy search and paging.
    let (s, b) = Call::new(Method::GET, "/tasks")
        .q("productId", pid)
        .q("pageNow", 1)
        .q("pageSize", 1)
        .q("searchValue", "测试2")
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    let page = &b["result"];
    assert_eq!(
        (
            page["pageNum"].as_u64(),
            page["pageSize"].as_u64(),
            page["total"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(page["list"][0]["jobDesc"], "new desc");
    assert_eq!(page["list"][0]["retryTimes"], 2);
    // Python's SDK sends unset optionals as the text None: treated as absent (defaults 1/20).
    let (s, b) = Call::new(Method::GET, "/tasks")
        .q("productId", pid)
        .q("pageNow", "None")
        .q("pageSize", "None")
        .q("searchValue", "None")
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (
            b["result"]["total"].as_u64(),
            b["result"]["pageSize"].as_u64()
        ),
        (Some(2), Some(20))
    );

    // Devices that may join (2), with exact filters; IMEI search is LWM2M's.
    let (s, b) = Call::new(Method::GET, "/devices")
        .q("productId", pid)
        .q("isSelectDevice", 2)
        .q("deviceGroupIdSearch", "g1")
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["total"], 2, "{b}");
    let row = &b["result"]["list"][0];
    assert_eq!(row["deviceId"], format!("{LWM2M}0001"));
    assert_eq!(row["imei"], "122344584512546");
    assert_eq!(row["taskId"], "");
    assert_eq!(row["netStatus"], 2);
    // Never seen: numbers all the same (SDK users int() them), not null.
    assert_eq!(
        (&row["onlineAt"], &row["offlineAt"]),
        (&json!(0), &json!(0))
    );
    let (_, b) = Call::new(Method::GET, "/devices")
        .q("productId", pid)
        .q("isSelectDevice", 2)
        .q("imeiSearch", "122344584512547")
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(b["result"]["list"][0]["deviceName"], "meter-2", "{b}");
    let (s, b) = Call::new(Method::GET, "/devices")
        .q("productId", pid)
        .q("isSelectDevice", 2)
        .q("deviceNoSearch", "0001")
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (s, b) = Call::new(Method::GET, "/devices")
        .q("productId", pid)
        .q("isSelectDevice", 1)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (s, b) = Call::new(Method::GET, "/devices")
        .q("productId", pid)
        .q("isSelectDevice", 3)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_refused(s, &b, 400);

    // Operational, LWM2M shape: add two devices; the T-Link shape is refused.
    let add = json!({"createBy": "ops", "deviceInfoList": [{"deviceId": format!("{LWM2M}0001")}, {"deviceId": format!("{LWM2M}0002")}], "jobId": job, "operational": 1, "productId": pid});
    let (s, b) = Call::new(Method::POST, "/operational")
        .mk(MASTER_KEY)
        .body(add)
        .send(&t)
        .await;
    assert_eq!((s, b["result"].as_str()), (200, Some("SUCCESS")), "{b}");
    let tlink_shape = json!({"createBy": "ops", "deviceIdList": format!("{LWM2M}0003"), "jobId": job, "operational": 1, "productId": pid});
    let (s, b) = Call::new(Method::POST, "/operational")
        .mk(MASTER_KEY)
        .body(tlink_shape)
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let unknown = json!({"createBy": "ops", "deviceInfoList": [{"deviceId": "nope"}], "jobId": job, "operational": 1, "productId": pid});
    let (s, b) = Call::new(Method::POST, "/operational")
        .mk(MASTER_KEY)
        .body(unknown)
        .send(&t)
        .await;
    assert_refused(s, &b, 404);
    for bad in [
        json!({"deviceInfoList": [{"deviceId": "x"}], "jobId": job, "operational": 1, "productId": pid}),
        json!({"createBy": "ops", "jobId": job, "operational": 4, "productId": pid, "taskIdList": "1"}),
        json!({"createBy": "ops", "jobId": job, "operational": 2, "productId": pid}),
        json!({"createBy": "ops", "jobId": job, "operational": 1, "productId": pid, "deviceInfoList": "x"}),
    ] {
        let (s, b) = Call::new(Method::POST, "/operational")
            .mk(MASTER_KEY)
            .body(bad.clone())
            .send(&t)
            .await;
        assert_refused(s, &b, 400);
    }

    // Devices in the task (1), with their subtask ids.
    let (s, b) = Call::new(Method::GET, "/devices")
        .q("id", job)
        .q("productId", pid)
        .q("isSelectDevice", 1)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["total"], 2);
    let tasks: Vec<String> = b["result"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["taskId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        b["result"]["list"][0]["taskState"], "0",
        "queued is LWM2M 0"
    );
    // The remaining one may still join.
    let (_, b) = Call::new(Method::GET, "/devices")
        .q("id", job)
        .q("productId", pid)
        .q("isSelectDevice", 2)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(b["result"]["total"], 1, "{b}");

    // Control: only runStatus 2; then the task runs. The refused calls changed nothing.
    let (s, b) = Call::new(Method::PUT, "/control")
        .q("id", job)
        .mk(MASTER_KEY)
        .body(json!({"productId": pid, "runStatus": 1}))
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (_, c) = admin(&t, Method::GET, &format!("{BASE}/campaigns/{job}"), None).await;
    assert_eq!(c["status"], "draft", "{c}");
    let (_, jobs) = admin(
        &t,
        Method::GET,
        &format!("{BASE}/campaigns/{job}/jobs"),
        None,
    )
    .await;
    assert_eq!(jobs["total"], 2, "the refused adds added nothing: {jobs}");
    // The task waits an hour before it starts: takeTime counts from the start.
    t.clock.advance_secs(3600);
    let (s, b) = Call::new(Method::PUT, "/control")
        .q("id", job)
        .mk(MASTER_KEY)
        .body(json!({"productId": pid, "runStatus": 2}))
        .send(&t)
        .await;
    assert_eq!((s, b["result"].as_str()), (200, Some("SUCCESS")), "{b}");
    t.clock.advance_secs(93 * 3600 + 43 * 60);
    let (s, b) = Call::new(Method::GET, "/detail")
        .q("id", job)
        .q("productId", pid)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    let r = &b["result"];
    assert_eq!(
        (r["jobStatus"].as_u64(), r["allNum"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    assert_eq!(r["takeTime"], "93时43分");
    assert!(
        r.get("upgradePlan").is_none() && r.get("productName").is_none(),
        "{r}"
    );

    // Cancel one subtask (2); retrying (3) applies to failed subtasks only, so the cancelled
    // one stays cancelled.
    let (s, b) = Call::new(Method::POST, "/operational")
        .mk(MASTER_KEY)
        .body(json!({"createBy": "ops", "jobId": job, "operational": 2, "productId": pid, "taskIdList": tasks[0]}))
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = Call::new(Method::POST, "/operational")
        .mk(MASTER_KEY)
        .body(json!({"createBy": "ops", "jobId": job, "operational": 3, "productId": pid, "taskIdList": tasks[0]}))
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (s, b) = Call::new(Method::POST, "/operational")
        .mk(MASTER_KEY)
        .body(json!({"createBy": "ops", "jobId": job, "operational": 2, "productId": pid, "taskIdList": "999999"}))
        .send(&t)
        .await;
    assert_refused(s, &b, 404);
    let (_, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("taskStatus", 10)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(b["result"]["total"], 1, "cancelled is LWM2M 10: {b}");
    let sub = &b["result"]["list"][0];
    assert_eq!(sub["taskId"].as_u64().unwrap().to_string(), tasks[0]);
    assert_eq!(sub["jobId"], job);
    assert_eq!(sub["productName"], "复用lw二进制 远程升级");
    assert!(!sub["finishTime"].as_str().unwrap().is_empty());
    // Subtasks without a status filter, fuzzy search over IMEI / name / id.
    let (_, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("searchValue", "4512547")
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(b["result"]["total"], 1, "{b}");
    assert_eq!(b["result"]["list"][0]["deviceName"], "meter-2");
    assert_eq!(b["result"]["list"][0]["resultCode"], "-1");
    let (_, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("searchValue", "METER")
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(b["result"]["total"], 2, "{b}");
    let (s, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("taskStatus", 12)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_refused(s, &b, 400);

    // Adding a cancelled device again brings its subtask back.
    let (s, b) = Call::new(Method::POST, "/operational")
        .mk(MASTER_KEY)
        .body(json!({"createBy": "ops", "deviceInfoList": [{"deviceId": format!("{LWM2M}0001")}], "jobId": job, "operational": 1, "productId": pid}))
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("taskStatus", 10)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(b["result"]["total"], 0, "{b}");
    let (_, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("taskStatus", 0)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!(b["result"]["total"], 2, "both wait again (LWM2M 0): {b}");
    let waiting: Vec<String> = b["result"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["taskId"].as_u64().unwrap().to_string())
        .collect();
    assert!(waiting.contains(&tasks[0]), "{waiting:?}");
    // Bad paging and control characters are refused.
    for (k, v) in [
        ("pageNow", "1152921504606846977"),
        ("pageNow", "0"),
        ("searchValue", "a\u{0}b"),
    ] {
        let (s, b) = Call::new(Method::GET, "/details")
            .q("id", job)
            .q("productId", pid)
            .q(k, v)
            .mk(MASTER_KEY)
            .send(&t)
            .await;
        assert_refused(s, &b, 400);
    }

    // Delete; then the task is gone.
    let (s, b) = Call::new(Method::DELETE, "/task")
        .q("id", job)
        .q("productId", pid)
        .q("updateBy", "huangliang")
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_eq!((s, b["result"].as_str()), (200, Some("SUCCESS")), "{b}");
    let (s, b) = Call::new(Method::GET, "/task")
        .q("id", job)
        .q("productId", pid)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_refused(s, &b, 404);
    t.stop().await;
}

#[tokio::test]
async fn a_tlink_task_with_its_own_rules() {
    let (t, lwm2m_fw, fw) = start().await;
    let pid: u64 = TLINK.parse().unwrap();
    // outTime required (1-168, never 0); retryTimes is LWM2M's and ignored.
    for (body, want) in [
        (
            json!({"firmwareId": fw, "jobName": "tv", "productId": pid, "retryTimes": 1}),
            400,
        ),
        (
            json!({"firmwareId": fw, "jobName": "tv", "productId": pid, "outTime": 0}),
            400,
        ),
        (
            json!({"firmwareId": fw, "jobName": "tv", "productId": pid, "outTime": "169"}),
            400,
        ),
        (
            json!({"firmwareId": lwm2m_fw, "jobName": "tv", "productId": pid, "outTime": 24}),
            404,
        ),
    ] {
        let (s, b) = Call::new(Method::POST, "/task")
            .body(body.clone())
            .send(&t)
            .await;
        assert_refused(s, &b, want);
    }
    let (s, b) = Call::new(Method::POST, "/task")
        .body(json!({"firmwareId": fw, "jobName": "彩色电视", "productId": pid, "outTime": "24", "jobDesc": "sss"}))
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["productProtocol"], 1);
    assert_eq!(b["result"]["retryTimes"], 0);
    let job = b["result"]["jobId"].as_u64().unwrap();
    let (_, b) = Call::new(Method::GET, "/task")
        .q("id", job)
        .q("productId", pid)
        .send(&t)
        .await;
    assert_eq!(
        (
            b["result"]["outTime"].as_u64(),
            b["result"]["retryTimes"].as_u64()
        ),
        (Some(24), Some(0)),
        "{b}"
    );
    // Its release was registered without a name: it keeps its file's.
    assert_eq!(b["result"]["fileName"], "10005986.bin", "{b}");
    // Modify outTime within range; out of range refused.
    let (s, _) = Call::new(Method::PUT, "/task")
        .q("id", job)
        .body(json!({"productId": pid, "outTime": "48"}))
        .send(&t)
        .await;
    assert_eq!(s, 200);
    let (s, b) = Call::new(Method::PUT, "/task")
        .q("id", job)
        .body(json!({"productId": pid, "outTime": 0}))
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (_, b) = Call::new(Method::GET, "/task")
        .q("id", job)
        .q("productId", pid)
        .send(&t)
        .await;
    assert_eq!(b["result"]["outTime"], 48);

    // Device number search is T-Link's; IMEI is not.
    let (_, b) = Call::new(Method::GET, "/devices")
        .q("productId", pid)
        .q("isSelectDevice", 2)
        .q("deviceNoSearch", "11113")
        .send(&t)
        .await;
    assert_eq!(b["result"]["total"], 1, "{b}");
    assert_eq!(b["result"]["list"][0]["deviceSn"], "11113");
    assert_eq!(b["result"]["list"][0]["deviceId"], format!("{TLINK}11113"));
    let (s, b) = Call::new(Method::GET, "/devices")
        .q("productId", pid)
        .q("isSelectDevice", 2)
        .q("imeiSearch", "1")
        .send(&t)
        .await;
    assert_refused(s, &b, 400);

    // Operational, T-Link shape: a comma list; the LWM2M shape and retry are refused.
    let (s, b) = Call::new(Method::POST, "/operational")
        .body(json!({"createBy": "ops", "deviceIdList": format!("{TLINK}11113,{TLINK}11114"), "jobId": job, "operational": 1, "productId": pid}))
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = Call::new(Method::POST, "/operational")
        .body(json!({"createBy": "ops", "deviceInfoList": [{"deviceId": format!("{TLINK}11113")}], "jobId": job, "operational": 1, "productId": pid}))
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (s, b) = Call::new(Method::POST, "/operational")
        .body(json!({"createBy": "ops", "jobId": job, "operational": 3, "productId": pid, "taskIdList": "1"}))
        .send(&t)
        .await;
    assert_refused(s, &b, 400);

    // Subtasks: taskStatus is required for T-Link and in 1-4.
    let (s, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (s, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("taskStatus", 5)
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (s, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("taskStatus", 1)
        .send(&t)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["total"], 2, "both wait (T-Link 1): {b}");
    let first = b["result"]["list"][0]["taskId"].as_u64().unwrap();
    assert_eq!(b["result"]["list"][0]["taskState"], "1");
    assert_eq!(b["result"]["list"][0]["deviceSn"], "11113");
    // Cancel one: it is failed in T-Link's vocabulary (4).
    let (s, _) = Call::new(Method::POST, "/operational")
        .body(json!({"createBy": "ops", "jobId": job, "operational": 2, "productId": pid, "taskIdList": first.to_string()}))
        .send(&t)
        .await;
    assert_eq!(s, 200);
    let (_, b) = Call::new(Method::GET, "/details")
        .q("id", job)
        .q("productId", pid)
        .q("taskStatus", 4)
        .send(&t)
        .await;
    assert_eq!(b["result"]["total"], 1, "{b}");
    // Start, and the task of the other product is unknown here.
    let (s, _) = Call::new(Method::PUT, "/control")
        .q("id", job)
        .body(json!({"productId": pid, "runStatus": 2}))
        .send(&t)
        .await;
    assert_eq!(s, 200);
    let (s, b) = Call::new(Method::PUT, "/control")
        .q("id", job)
        .body(json!({"productId": pid, "runStatus": 2}))
        .send(&t)
        .await;
    assert_refused(s, &b, 400);
    let (s, b) = Call::new(Method::GET, "/task")
        .q("id", job)
        .q("productId", LWM2M)
        .mk(MASTER_KEY)
        .send(&t)
        .await;
    assert_refused(s, &b, 404);
    t.stop().await;
}
