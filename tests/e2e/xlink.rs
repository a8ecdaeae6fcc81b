//! The XLINK dialect over HTTP against `plugins/xlink`: device and enterprise logins, the
//! test → formal → audit workflow under both Api-Versions, the device check and report with
//! string and numeric bodies, OTA logs and their query language (with injection attempts),
//! op logs, statistics, and every refusal in XLINK's `{"error":{"code","msg"}}` shape.

use ota_tests::{OPERATOR_KEY, Options, PRODUCT, TestServer, admin};
use reqwest::Method;
use serde_json::{Value, json};

const BASE: &str = "/admin/api/v1/tenants/acme";
const AUTH_CODE: &str = "xlink-authorize-code-1";
const FIRMWARE: &[u8] = b"xlink mcu firmware v3 bytes";

async fn start() -> TestServer {
    start_on(None).await
}

/// A server with the XLINK plugin, its product key and two members, on `database` (SQLite
/// in a temporary directory when none).
pub(crate) async fn start_on(database: Option<String>) -> TestServer {
    let t = TestServer::start(Options {
        plugins: vec![("xlink.wasm", "xlink")],
        database,
        ..Default::default()
    })
    .await;
    let (s, b) = admin(
        &t,
        Method::PUT,
        &format!("{BASE}/products/{PRODUCT}/key"),
        Some(json!({"key": AUTH_CODE})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    for (name, secret) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        let (s, b) = admin(
            &t,
            Method::POST,
            &format!("{BASE}/logins"),
            Some(json!({"realm": "xlink", "kind": "user", "name": name, "secret": secret})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    t
}

/// Send `body` (raw text) with the given headers; answers status, raw text and JSON (Null
/// for an empty body).
async fn send(
    t: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, String, Value) {
    let mut req = t.http.request(method, t.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: non-JSON ({e}): {text:?}"))
    };
    (s, text, v)
}

/// A JSON call with `Access-Token` (and `Api-Version: 2` when `v2`).
async fn call(
    t: &TestServer,
    method: Method,
    path: impl AsRef<str>,
    token: impl AsRef<str>,
    v2: bool,
    body: Option<Value>,
) -> (u16, Value) {
    let mut h = vec![
        ("Content-Type", "application/json"),
        ("Access-Token", token.as_ref()),
    ];
    if v2 {
        h.push(("Api-Version", "2"));
    }
    let (s, _, v) = send(t, method, path.as_ref(), &h, body.map(|b| b.to_string())).await;
    (s, v)
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: i64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    // Messages are for people: no Rust paths or variant names (`CampaignStatus::Finished`).
    assert!(
        !body["error"]["msg"].as_str().unwrap().contains("::"),
        "{body}"
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only the error object: {body}"
    );
}

async fn corp_login(t: &TestServer, account: &str, password: &str) -> Value {
    let (s, text, v) = send(
        t,
        Method::POST,
        "/v2/corp_auth",
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(json!({"account": account, "password": password}).to_string()),
    )
    .await;
    assert_eq!(s, 200, "{text}");
    for word in ["true", "false", "null"] {
        assert!(
            !text.contains(word),
            "eval()-safe answers hold no {word}: {text}"
        );
    }
    v
}

async fn device_login(t: &TestServer, mac: &str) -> (String, u64) {
    let (s, _, v) = send(
        t,
        Method::POST,
        "/v2/device_login",
        &[("Content-Type", "application/json")],
        Some(json!({"product_id": PRODUCT, "mac": mac, "authorize_code": AUTH_CODE}).to_string()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["device_id"].is_u64(), "device_id is a number: {v}");
    assert!(v["expire_in"].is_u64());
    (
        v["access_token"].as_str().unwrap().to_string(),
        v["device_id"].as_u64().unwrap(),
    )
}

/// Upload the firmware through the admin API; answers its host URL and md5.
async fn upload(t: &TestServer) -> (String, String) {
    let r = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .bearer_auth(OPERATOR_KEY)
        .body(FIRMWARE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    (
        t.url(&format!("/blobs/{}", b["sha256"].as_str().unwrap())),
        b["md5"].as_str().unwrap().to_string(),
    )
}

/// The spec's create body, with our values.
fn new_task(
    name: &str,
    from: Value,
    target: Value,
    url: &str,
    md5: &str,
    tag_type: Value,
    scope: Value,
) -> Value {
    json!({
        "product_id": PRODUCT,
        "name": name,
        "description": "winter rollout",
        "from_version": from,
        "from_version_url": "https://cdn.example.com/fw-2.bin",
        "from_version_md5": "0123456789abcdef0123456789abcdef",
        "from_version_size": "2048",
        "target_version": target,
        "target_version_url": url,
        "target_version_md5": md5,
        "target_version_size": FIRMWARE.len(),
        "type": "2",
        "identify": 0,
        "scope": scope,
        "task_type": "0",
        "tag_type": tag_type,
    })
}

fn task_path(id: &str) -> String {
    format!("/v2/upgrade/firmware/tasks/{id}")
}

/// The whole workflow: device login → test task → devices → formal →
/// submit → reject → resubmit → approve → running → check (string and numeric bodies) →
/// download → report → OTA logs → op logs → statistics.
#[tokio::test]
async fn test_to_formal_to_audit_to_rollout_under_api_version_2() {
    rollout_workflow(start().await, true).await;
}

/// The same walk without `Api-Version`: pending and awaiting-audit tasks show as stopped (0).
#[tokio::test]
async fn test_to_formal_to_audit_to_rollout_without_api_version() {
    rollout_workflow(start().await, false).await;
}

/// The workflow above on any server from [`start_on`] (the PostgreSQL suite runs it too).
pub(crate) async fn rollout_workflow(t: TestServer, v2: bool) {
    // Statuses 2 (pending execution) and 3 (awaiting audit) show only under Api-Version 2.
    let st = |n: i64| json!(if v2 || n <= 1 { n } else { 0 });
    let alice = corp_login(&t, "alice", "alice-pw").await;
    assert_eq!(
        (&alice["corp_id"], &alice["member_id"]),
        (&json!("acme"), &json!("alice"))
    );
    assert!(alice["expire_in"].is_u64());
    let alice = alice["access_token"].as_str().unwrap().to_string();
    // Some consoles post the login as a form.
    let (s, _, bob) = send(
        &t,
        Method::POST,
        "/v2/corp_auth",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some("account=bob&password=bob-pw".into()),
    )
    .await;
    assert_eq!(s, 200, "{bob}");
    let bob = bob["access_token"].as_str().unwrap().to_string();

    let (d1_token, d1) = device_login(&t, "AABBCCDDEE01").await;
    let (d2_token, d2) = device_login(&t, "aa:bb:cc:dd:ee:02").await;
    let (d3_token, d3) = device_login(&t, "AABBCCDDEE03").await;
    assert_eq!(
        device_login(&t, "AABBCCDDEE01").await.1,
        d1,
        "a device keeps its id"
    );
    let (url, md5) = upload(&t).await;

    // A test task for d1, pending execution (2) under Api-Version 2.
    let (s, task) = call(
        &t,
        Method::POST,
        "/v2/upgrade/firmware/task",
        &alice,
        v2,
        Some(new_task(
            "mcu v3",
            json!("02"),
            json!(3),
            &url,
            &md5,
            json!("1"),
            json!({"category": 1, "device_list": [d1]}),
        )),
    )
    .await;
    assert_eq!(s, 200, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(task["status"], st(2));
    assert_eq!(task["tag_type"], 1);
    assert_eq!(task["task_type"], 0);
    assert_eq!(task["type"], 2);
    assert_eq!(
        (&task["from_version"], &task["target_version"]),
        (&json!(2), &json!(3))
    );
    assert_eq!(task["from_version_size"], 2048);
    assert_eq!(task["target_version_size"], FIRMWARE.len());
    assert_eq!(task["target_version_url"], url);
    assert_eq!(task["upgrade_count"], 0);
    assert_eq!(task["scope"], json!({"category": 1, "device_list": [d1]}));
    let created = task["create_time"].as_str().unwrap();
    // yyyy-MM-dd'T'HH:mm:ss.SS'Z': hundredths, as the spec prints.
    assert!(
        created.len() == 23 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    assert_eq!(created.as_bytes()[19], b'.', "{created}");
    let (_, v0) = call(&t, Method::GET, &task_path(&id), &alice, false, None).await;
    assert_eq!(v0["status"], 0, "without Api-Version only 0 and 1 appear");

    // The test task's devices: add d2, delete it, overwrite with d1.
    let devices = |opt: i64, list: Value| {
        call(
            &t,
            Method::PUT,
            format!("{}/devices", task_path(&id)),
            &alice,
            v2,
            Some(json!({"opt": opt, "device_list": list})),
        )
    };
    assert_eq!(devices(1, json!([d2.to_string()])).await.0, 200);
    let (_, v) = call(&t, Method::GET, &task_path(&id), &alice, v2, None).await;
    assert_eq!(v["scope"]["device_list"], json!([d1, d2]));
    assert_eq!(devices(2, json!([d2])).await.0, 200);
    assert_eq!(devices(3, json!([d1])).await.0, 200);
    let (_, v) = call(&t, Method::GET, &task_path(&id), &alice, v2, None).await;
    assert_eq!(v["scope"]["device_list"], json!([d1]));

    // Start the test task: d1 (listed) gets it, d2 does not.
    let status = |st: Value| {
        call(
            &t,
            Method::POST,
            "/v2/upgrade/firmware/task/status",
            &alice,
            false,
            Some(json!({"product_id": PRODUCT, "upgrade_task_id": id, "status": st})),
        )
    };
    assert_eq!(status(json!("1")).await.0, 200);
    let check_body =
        json!({"product_id": PRODUCT, "type": "2", "current_version": "02", "identify": "0"});
    let (s, v) = call(
        &t,
        Method::POST,
        &format!("/v2/upgrade/firmware/check/{d1}"),
        &d1_token,
        false,
        Some(check_body.clone()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], 1);
    let (s, v) = call(
        &t,
        Method::POST,
        &format!("/v2/upgrade/firmware/check/{d2}"),
        &d2_token,
        false,
        Some(json!({"type": 2, "identify": 0, "current_version": 2})),
    )
    .await;
    assert_error(s, &v, 404, 4041013);

    // Test → formal for the whole product: back to pending execution (2).
    let (s, v) = call(
        &t,
        Method::PUT,
        &format!("{}/product-tag", task_path(&id)),
        &alice,
        v2,
        Some(json!({"name": "mcu v3 formal", "scope": {"category": 0}})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = call(&t, Method::GET, &task_path(&id), &alice, v2, None).await;
    assert_eq!(
        (&v["status"], &v["tag_type"], &v["name"]),
        (&st(2), &json!(0), &json!("mcu v3 formal"))
    );
    assert_eq!(v["scope"]["category"], 0);
    let (s, v) = status(json!(1)).await;
    assert_error(s, &v, 400, 4001001);
    let (_, v) = call(&t, Method::GET, &task_path(&id), &alice, v2, None).await;
    assert_eq!(v["status"], st(2), "a formal task runs only once audited");

    // Submit to bob; alice may not audit; bob rejects, it is resubmitted, bob approves.
    let submit = || {
        call(
            &t,
            Method::PUT,
            format!("{}/submit-audit", task_path(&id)),
            &alice,
            v2,
            Some(json!({"audit_member_id": "bob"})),
        )
    };
    assert_eq!(submit().await.0, 200);
    let (_, v) = call(&t, Method::GET, &task_path(&id), &alice, v2, None).await;
    assert_eq!(
        (&v["status"], &v["audit_member_id"]),
        (&st(3), &json!("bob"))
    );
    let audit = |token: &str, result: Value| {
        let token = token.to_string();
        let t = &t;
        let id = id.clone();
        async move {
            call(
                t,
                Method::PUT,
                &format!("{}/audit", task_path(&id)),
                &token,
                v2,
                Some(json!({"audit_result": result})),
            )
            .await
        }
    };
    let (s, v) = audit(&alice, json!(1)).await;
    assert_error(s, &v, 403, 4031001);
    assert_eq!(audit(&bob, json!("2")).await.0, 200);
    let (_, v) = call(&t, Method::GET, &task_path(&id), &alice, v2, None).await;
    assert_eq!(
        (&v["status"], &v["audit_member_id"]),
        (&st(2), &json!("")),
        "rejected: pending execution, auditor cleared"
    );
    assert_eq!(submit().await.0, 200);
    assert_eq!(audit(&bob, json!(1)).await.0, 200);
    let (_, v) = call(&t, Method::GET, &task_path(&id), &alice, v2, None).await;
    assert_eq!(
        (&v["status"], &v["audit_member_id"]),
        (&json!(1), &json!(""))
    );

    // Running for everyone: d1 with a string body, d2 with a numeric one.
    let (s, _, text) = send(
        &t,
        Method::POST,
        &format!("/v2/upgrade/firmware/check/{d1}"),
        &[
            ("Content-Type", "application/json;charset=utf-8"),
            ("Access-Token", &d1_token),
        ],
        Some(check_body.to_string()),
    )
    .await;
    assert_eq!(s, 200, "{text}");
    let raw = serde_json::to_string(&text).unwrap();
    for key in [
        "target_version",
        "target_version_url",
        "target_version_md5",
        "target_version_size",
        "from_version",
        "from_version_md5",
    ] {
        assert_eq!(
            raw.matches(&format!("\"{key}\":")).count(),
            1,
            "{key} appears once: {raw}"
        );
    }
    assert_eq!(text["target_version"], 3, "a JSON number");
    assert_eq!(text["target_version_md5"], md5);
    assert_eq!(text["from_version_md5"], "0123456789abcdef0123456789abcdef");
    assert_eq!(text["id"], id);
    let (s, _, numeric) = send(
        &t,
        Method::POST,
        &format!("/v2/upgrade/firmware/check/{d2}"),
        &[("Access-Token", &d2_token)],
        Some(json!({"type": 2, "identify": 0, "current_version": 2}).to_string()),
    )
    .await;
    assert_eq!(s, 200, "no Content-Type at all: {numeric}");
    assert_eq!(numeric["target_version"], 3);

    // Download what the check named.
    let bytes = t
        .http
        .get(text["target_version_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], FIRMWARE);

    // Reports: d1 succeeded, d2 failed ("result" as a string).
    let report = |dev: u64, token: &str, body: Value| {
        let token = token.to_string();
        let t = &t;
        async move {
            call(
                t,
                Method::POST,
                &format!("/v2/upgrade/firmware/report/{dev}"),
                &token,
                false,
                Some(body),
            )
            .await
        }
    };
    let (s, v) = report(d1, &d1_token, json!({"type": "2", "mod": "MX1290", "identify": "0", "last_version": "2", "current_version": "3", "result": "0", "desc": "ok", "start_date": "2015-10-09T08:15:40.843Z", "end_date": "2015-10-09T08:16:40.843Z"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = report(d2, &d2_token, json!({"type": 2, "mod": "MX1290", "identify": 0, "last_version": 2, "current_version": 2, "result": 1, "desc": "flash write failed"})).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = call(&t, Method::GET, &task_path(&id), &alice, v2, None).await;
    assert_eq!(v["upgrade_count"], 1);
    let (s, v) = call(
        &t,
        Method::POST,
        &format!("/v2/upgrade/firmware/check/{d1}"),
        &d1_token,
        false,
        Some(json!({"product_id": PRODUCT, "type": 2, "identify": 0, "current_version": 3})),
    )
    .await;
    assert_error(s, &v, 404, 4041013);

    // The gateway logs that it handed d3 the task (d3 never checked in): only once d3's
    // version is known (here from a report without a job) and the task applies to it.
    let issue = |corp: &'static str| {
        let (t, alice) = (&t, alice.clone());
        let body = json!({"device_id": d3.to_string(), "task_id": id}).to_string();
        async move {
            let headers = [("Access-Token", alice.as_str()), ("Corp-ID", corp)];
            send(t, Method::POST, "/v2/upgrade/ota-log", &headers, Some(body)).await
        }
    };
    let (s, _, v) = issue("globex").await;
    assert_error(s, &v, 403, 4031001);
    let (s, _, v) = issue("acme").await;
    assert_error(s, &v, 400, 4001001);
    let (s, v) = report(
        d3,
        &d3_token,
        json!({"type": 2, "identify": 0, "current_version": 2, "result": 0}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _, v) = issue("acme").await;
    assert_eq!(s, 200, "{v}");

    // OTA logs and the query language.
    let logs = |body: Value| {
        call(
            &t,
            Method::POST,
            "/v2/upgrade/ota-logs",
            &alice,
            false,
            Some(body),
        )
    };
    let (s, v) =
        logs(json!({"query": {"task_id": {"$eq": id}}, "order": {"device_sn": "asc"}})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["count"], 3);
    let list = v["list"].as_array().unwrap();
    assert_eq!(
        list.iter()
            .map(|l| l["device_id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![d1, d2, d3]
    );
    assert_eq!(
        list.iter()
            .map(|l| l["status"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert_eq!(list[0]["device_mac"], "AABBCCDDEE01");
    assert_eq!(
        (&list[0]["product_id"], &list[0]["task_id"]),
        (&json!(PRODUCT), &json!(id))
    );
    assert!(list[0]["execute_time"].as_str().unwrap().ends_with('Z'));
    let count = |v: &Value| v["count"].as_u64().unwrap();
    assert_eq!(
        count(
            &logs(json!({"query": {"device_mac": {"$like": "ddee0"}}}))
                .await
                .1
        ),
        3,
        "like matches case-insensitively"
    );
    assert_eq!(
        count(
            &logs(json!({"query": {"device_id": {"$in": [d1, d3.to_string()]}}}))
                .await
                .1
        ),
        2
    );
    assert_eq!(
        count(
            &logs(json!({"query": {"device_id": {"$gt": d1, "$lte": d3}}}))
                .await
                .1
        ),
        2
    );
    assert_eq!(
        count(
            &logs(json!({"query": {"device_sn": {"$lt": "AABBCCDDEE02"}}}))
                .await
                .1
        ),
        1
    );
    for hostile in ["'; DROP TABLE jobs; --", "%", "_", "AABB%", "\\"] {
        assert_eq!(
            count(
                &logs(json!({"query": {"device_mac": {"$like": hostile}}}))
                    .await
                    .1
            ),
            0,
            "{hostile}"
        );
        assert_eq!(
            count(
                &logs(json!({"query": {"device_sn": {"$eq": hostile}}}))
                    .await
                    .1
            ),
            0,
            "{hostile}"
        );
    }
    assert_eq!(count(&logs(json!({})).await.1), 3, "the table survived");
    let (_, v) = logs(json!({"filter": ["device_id", "status"], "limit": "1", "offset": 1, "order": {"device_id": "desc"}})).await;
    assert_eq!(v["list"], json!([{"device_id": d2, "status": 2}]));
    for bad in [
        json!({"query": {"name": {"$eq": "x"}}}),
        json!({"query": {"task_id": {"$regex": ".*"}}}),
        json!({"query": {"task_id": {"$lt": "abc"}}}),
        json!({"query": {"task_id": {"$in": "1"}}}),
        json!({"query": {"device_mac": {"$eq": {"$ne": 1}}}}),
        json!({"query": {"task_id": {"$like": "1"}}}),
        json!({"order": {"device_id": "sideways"}}),
        json!({"filter": "device_id"}),
    ] {
        let (s, v) = logs(bad.clone()).await;
        assert_error(s, &v, 400, 4001001);
    }

    // Op logs: every change, who and when.
    let (s, v) = call(
        &t,
        Method::GET,
        &format!("{}/op-logs", task_path(&id)),
        &alice,
        false,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let entries = v["list"].as_array().unwrap();
    assert_eq!(v["count"], entries.len());
    let did = |content: &str, who: &str| {
        entries.iter().any(|e| {
            e["content"].as_str().unwrap().starts_with(content)
                && e["opt_id"] == who
                && e["opt_account"] == who
        })
    };
    for (content, who) in [
        ("create", "alice"),
        ("start", "alice"),
        ("revise", "alice"),
        ("submit", "alice"),
        ("reject", "bob"),
        ("approve", "bob"),
    ] {
        assert!(did(content, who), "{content} by {who}: {v}");
    }
    assert!(entries[0]["create_date"].as_str().unwrap().ends_with('Z'));

    // Statistics from real jobs: d1 on 3; d2 (failed) and d3 (issued) on 2. `total` is every
    // device the whole-product task selects, also d4, which has not checked in.
    device_login(&t, "AABBCCDDEE04").await;
    let (s, v) = call(
        &t,
        Method::GET,
        &format!("/v2/statistics/ota/customize-task/{id}/device-firmware-version"),
        &alice,
        false,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 4);
    let mut ratios = v["ratios"].as_array().unwrap().clone();
    ratios.sort_by_key(|r| r["firmware_version"].as_i64());
    assert_eq!(
        ratios,
        vec![
            json!({"devices": 2, "firmware_version": 2}),
            json!({"devices": 1, "firmware_version": 3})
        ]
    );
    t.stop().await;
}

/// Without `Api-Version`: new tasks are stopped (0), start and stop toggle 0/1, lists and
/// queries, delete, and the type/identify/from_version uniqueness.
#[tokio::test]
async fn tasks_without_api_version() {
    let t = start().await;
    let alice = corp_login(&t, "alice", "alice-pw").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let create = |name: &str, from: i64, ty: &str, tag: i64| {
        let mut body = new_task(
            name,
            json!(from),
            json!(from + 1),
            "https://cdn.example.com/fw.bin",
            "00112233445566778899aabbccddeeff",
            json!(tag),
            json!({"category": 0}),
        );
        body["type"] = json!(ty);
        let alice = alice.clone();
        let t = &t;
        async move {
            call(
                t,
                Method::POST,
                "/v2/upgrade/firmware/task",
                &alice,
                false,
                Some(body),
            )
            .await
        }
    };
    let (s, a) = create("alpha", 1, "1", 0).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (&a["status"], &a["type"], &a["identify"]),
        (&json!(0), &json!(1), &json!(0))
    );
    assert_eq!(
        a["target_version_url"], "https://cdn.example.com/fw.bin",
        "external URLs are kept"
    );
    let (s, v) = create("alpha again", 1, "1", 0).await;
    assert_error(s, &v, 400, 4001035);
    let (_, b) = create("beta", 5, "2", 1).await;
    let (_, c) = create("gamma", 7, "2", 0).await;
    let (a, b, c) = (
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
        c["id"].as_str().unwrap().to_string(),
    );

    let status = |id: &str, st: i64| {
        call(
            &t,
            Method::POST,
            "/v2/upgrade/firmware/task/status",
            &alice,
            false,
            Some(json!({"product_id": PRODUCT, "upgrade_task_id": id, "status": st})),
        )
    };
    for (st, want) in [(1, 1), (0, 0), (1, 1)] {
        assert_eq!(status(&a, st).await.0, 200);
        let (_, v) = call(&t, Method::GET, &task_path(&a), &alice, false, None).await;
        assert_eq!(v["status"], want);
    }
    let (s, v) = status(&a, 2).await;
    assert_error(s, &v, 400, 4001001);

    let (s, v) = call(
        &t,
        Method::GET,
        &format!("/v2/upgrade/firmware/tasks?product_id={PRODUCT}&offset=1&limit=1"),
        &alice,
        false,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], b, "newest first");
    let list = |body: Value| {
        call(
            &t,
            Method::POST,
            "/v2/upgrade/firmware/tasks",
            &alice,
            false,
            Some(body),
        )
    };
    let ids = |v: &Value| {
        v["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, v) = list(json!({"product_id": PRODUCT, "type": 2})).await;
    assert_eq!(
        (v["count"].as_u64(), ids(&v)),
        (Some(2), vec![c.clone(), b.clone()])
    );
    let (_, v) = list(json!({"product_id": PRODUCT, "tag_type": "1"})).await;
    assert_eq!(ids(&v), vec![b.clone()]);
    // Unset filters as the console sends them: empty strings filter nothing.
    let (s, v) = list(json!({"product_id": PRODUCT, "type": "", "tag_type": ""})).await;
    assert_eq!((s, v["count"].as_u64()), (200, Some(3)), "{v}");
    let (_, v) = list(json!({"product_id": PRODUCT, "query": {"name": {"$like": "AMM"}}})).await;
    assert_eq!(ids(&v), vec![c.clone()]);
    let (_, v) = list(json!({"product_id": PRODUCT, "query": {"_id": {"$eq": a}}})).await;
    assert_eq!(ids(&v), vec![a.clone()]);
    let (_, v) =
        list(json!({"product_id": PRODUCT, "order": {"name": "asc"}, "offset": "0", "limit": "2"}))
            .await;
    assert_eq!(
        (v["count"].as_u64(), ids(&v)),
        (Some(3), vec![a.clone(), b.clone()])
    );
    let (s, v) =
        list(json!({"product_id": PRODUCT, "query": {"description": {"$like": "x"}}})).await;
    assert_error(s, &v, 400, 4001001);

    // Delete: gone from lists and lookups; its type/identify/from_version is free again.
    let (s, v) = call(
        &t,
        Method::POST,
        "/v2/upgrade/firmware/task/delete",
        &alice,
        false,
        Some(json!({"id": a, "product_id": PRODUCT})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(&t, Method::GET, &task_path(&a), &alice, false, None).await;
    assert_error(s, &v, 404, 4041013);
    let (_, v) = list(json!({"product_id": PRODUCT})).await;
    assert_eq!(v["count"], 2);
    assert_eq!(create("alpha reborn", 1, "1", 0).await.0, 200);
    t.stop().await;
}

/// Every refusal in XLINK's shape; illegal workflow steps leave the task and its op log alone.
/// Member names are each corp's own: two corps may both have `carol`, each logs in to its
/// own corp, and one name and password that fit members of two corps log in to neither.
#[tokio::test]
async fn members_of_two_corps_may_share_a_name() {
    let t = start().await;
    for (tenant, name, secret) in [
        ("acme", "carol", "acme-carol"),
        ("globex", "carol", "globex-carol"),
        ("acme", "dave", "same-pw"),
        ("globex", "dave", "same-pw"),
    ] {
        let (s, b) = admin(
            &t,
            Method::POST,
            &format!("/admin/api/v1/tenants/{tenant}/logins"),
            Some(json!({"realm": "xlink", "kind": "user", "name": name, "secret": secret})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    assert_eq!(
        corp_login(&t, "carol", "acme-carol").await["corp_id"],
        "acme"
    );
    assert_eq!(
        corp_login(&t, "carol", "globex-carol").await["corp_id"],
        "globex"
    );
    let (s, _, v) = send(
        &t,
        Method::POST,
        "/v2/corp_auth",
        &[("Content-Type", "application/json")],
        Some(json!({"account": "dave", "password": "same-pw"}).to_string()),
    )
    .await;
    assert_error(s, &v, 400, 4001007);
}

/// `surplus_count` on wifi tasks: the selected devices still on the from-version, whole
/// product or device list; MCU tasks do not print it.
#[tokio::test]
async fn wifi_tasks_count_the_devices_still_on_their_from_version() {
    let t = start().await;
    let alice = corp_login(&t, "alice", "alice-pw").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for (mac, version) in [
        ("AABBCCDDEE01", 2),
        ("AABBCCDDEE02", 2),
        ("AABBCCDDEE03", 5),
    ] {
        let (token, id) = device_login(&t, mac).await;
        let (s, v) = call(
            &t,
            Method::POST,
            format!("/v2/upgrade/firmware/report/{id}"),
            token,
            false,
            Some(json!({"type": 1, "identify": 0, "current_version": version, "result": 0})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        ids.push(id);
    }
    let (url, md5) = upload(&t).await;
    let create = |from: i64, kind: &str, scope: Value| {
        let mut body = new_task("wifi", json!(from), json!(9), &url, &md5, json!(0), scope);
        body["type"] = json!(kind);
        call(
            &t,
            Method::POST,
            "/v2/upgrade/firmware/task",
            &alice,
            false,
            Some(body),
        )
    };
    let (s, v) = create(2, "1", json!({"category": 0})).await;
    assert_eq!((s, &v["surplus_count"]), (200, &json!(2)), "{v}");
    let (s, v) = create(
        5,
        "1",
        json!({"category": 1, "device_list": [ids[0], ids[2]]}),
    )
    .await;
    assert_eq!((s, &v["surplus_count"]), (200, &json!(1)), "{v}");
    let (_, shown) = call(
        &t,
        Method::GET,
        task_path(v["id"].as_str().unwrap()),
        &alice,
        false,
        None,
    )
    .await;
    assert_eq!(shown["surplus_count"], 1, "{shown}");
    let (s, v) = create(2, "2", json!({"category": 0})).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("surplus_count").is_none(), "{v}");
}

/// XLINK firmware keeps `authorize_code` in a 32-byte C string: a generated product key
/// fits it and logs a device in; an operator may ask for another length, not for both a key
/// and a length.
#[tokio::test]
async fn generated_product_keys_fit_device_firmware() {
    let t = start().await;
    let key_path = format!("{BASE}/products/{PRODUCT}/key");
    let (s, b) = admin(&t, Method::PUT, &key_path, None).await;
    assert_eq!(s, 200, "{b}");
    let key = b["key"].as_str().unwrap().to_string();
    assert!(key.len() <= 31, "{key}");
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "{key}");
    let (s, _, v) = send(
        &t,
        Method::POST,
        "/v2/device_login",
        &[("Content-Type", "application/json")],
        Some(
            json!({"product_id": PRODUCT, "mac": "AABBCCDDEE09", "authorize_code": key})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, b) = admin(&t, Method::PUT, &key_path, Some(json!({"length": 40}))).await;
    assert_eq!((s, b["key"].as_str().map(str::len)), (200, Some(40)), "{b}");
    let (s, b) = admin(&t, Method::PUT, &key_path, Some(json!({"length": 8}))).await;
    assert_eq!(s, 400, "too short to generate: {b}");
}

/// The normal path from a test to a formal task: the test task finished (one device
/// succeeded, one failed), then turns formal for the whole product, passes audit, and
/// reaches the device that failed and one that was never listed.
#[tokio::test]
async fn a_finished_test_task_turns_formal_and_reaches_the_whole_product() {
    let t = start().await;
    let alice = corp_login(&t, "alice", "alice-pw").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = corp_login(&t, "bob", "bob-pw").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (d1_token, d1) = device_login(&t, "AABBCCDDEE01").await;
    let (d2_token, d2) = device_login(&t, "AABBCCDDEE02").await;
    let (d3_token, d3) = device_login(&t, "AABBCCDDEE03").await;
    let (url, md5) = upload(&t).await;
    let (s, task) = call(
        &t,
        Method::POST,
        "/v2/upgrade/firmware/task",
        &alice,
        false,
        Some(new_task(
            "mcu v3 test",
            json!("02"),
            json!(3),
            &url,
            &md5,
            json!(1),
            json!({"category": 1, "device_list": [d1, d3]}),
        )),
    )
    .await;
    assert_eq!(s, 200, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &t,
        Method::POST,
        "/v2/upgrade/firmware/task/status",
        &alice,
        false,
        Some(json!({"product_id": PRODUCT, "upgrade_task_id": id, "status": 1})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let check = |dev: u64, token: &str, version: &str| {
        let (t, token) = (&t, token.to_string());
        let body = json!({"product_id": PRODUCT, "type": "2", "current_version": version, "identify": "0"});
        async move {
            call(
                t,
                Method::POST,
                format!("/v2/upgrade/firmware/check/{dev}"),
                token,
                false,
                Some(body),
            )
            .await
        }
    };
    let report = |dev: u64, token: &str, version: &str, result: &str| {
        let (t, token) = (&t, token.to_string());
        let body = json!({"type": "2", "identify": "0", "last_version": "2", "current_version": version, "result": result});
        async move {
            call(
                t,
                Method::POST,
                format!("/v2/upgrade/firmware/report/{dev}"),
                token,
                false,
                Some(body),
            )
            .await
        }
    };
    for (dev, token) in [(d1, &d1_token), (d3, &d3_token)] {
        let (s, v) = check(dev, token, "2").await;
        assert_eq!((s, &v["target_version"]), (200, &json!(3)), "{v}");
    }
    assert_eq!(report(d1, &d1_token, "3", "0").await.0, 200);
    assert_eq!(report(d3, &d3_token, "2", "1").await.0, 200);
    t.server.scheduler_tick().await;
    let (_, v) = call(&t, Method::GET, task_path(&id), &alice, true, None).await;
    assert_eq!(v["status"], 0, "finished: {v}");
    let (s, v) = check(d3, &d3_token, "2").await;
    assert_error(s, &v, 404, 4041013);

    // Formal for the whole product, audited by bob, running.
    let (s, v) = call(
        &t,
        Method::PUT,
        format!("{}/product-tag", task_path(&id)),
        &alice,
        true,
        Some(json!({"name": "mcu v3", "scope": {"category": 0}})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = call(&t, Method::GET, task_path(&id), &alice, true, None).await;
    assert_eq!(
        (&v["status"], &v["tag_type"]),
        (&json!(2), &json!(0)),
        "{v}"
    );
    let (s, v) = call(
        &t,
        Method::PUT,
        format!("{}/submit-audit", task_path(&id)),
        &alice,
        true,
        Some(json!({"audit_member_id": "bob"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(
        &t,
        Method::PUT,
        format!("{}/audit", task_path(&id)),
        &bob,
        true,
        Some(json!({"audit_result": 1})),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // The device that failed the test gets another attempt, the unlisted one its first;
    // the one that succeeded has nothing to do.
    for (dev, token) in [(d3, &d3_token), (d2, &d2_token)] {
        let (s, v) = check(dev, token, "2").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!((&v["id"], &v["target_version"]), (&json!(id), &json!(3)));
    }
    let (s, v) = check(d1, &d1_token, "3").await;
    assert_error(s, &v, 404, 4041013);
    assert_eq!(report(d3, &d3_token, "3", "0").await.0, 200);
    let (_, v) = call(&t, Method::GET, task_path(&id), &alice, true, None).await;
    assert_eq!(v["upgrade_count"], 2, "{v}");
}

#[tokio::test]
async fn refusals() {
    let t = start().await;
    let alice_login = corp_login(&t, "alice", "alice-pw").await;
    let alice = alice_login["access_token"].as_str().unwrap().to_string();
    let post = |path: &str, token: &str, body: Value| {
        call(
            &t,
            Method::POST,
            path.to_string(),
            token.to_string(),
            false,
            Some(body),
        )
    };

    // Logins.
    let login = |mac: &str, code: &str| {
        json!({"product_id": PRODUCT, "mac": mac, "authorize_code": code}).to_string()
    };
    for (path, body, code) in [
        ("/v2/device_login", login("AABBCCDDEE01", "wrong"), 4001039),
        (
            "/v2/device_login",
            json!({"product_id": "nope", "mac": "AABBCCDDEE01", "authorize_code": AUTH_CODE})
                .to_string(),
            4001039,
        ),
        ("/v2/device_login", login("not-a-mac", AUTH_CODE), 4001001),
        (
            "/v2/corp_auth",
            json!({"account": "alice", "password": "nope"}).to_string(),
            4001007,
        ),
        ("/v2/corp_auth", "{\"account\": ".to_string(), 4001001),
    ] {
        let (s, _, v) = send(&t, Method::POST, path, &[], Some(body.clone())).await;
        assert_error(s, &v, 400, code);
    }

    // Tokens: missing, forged, refreshed away, expired; device tokens stay in their lane.
    let tasks = format!("/v2/upgrade/firmware/tasks?product_id={PRODUCT}");
    let (s, _, v) = send(&t, Method::GET, &tasks, &[], None).await;
    assert_error(s, &v, 403, 4031002);
    let (s, v) = call(
        &t,
        Method::GET,
        &tasks,
        "0123456789abcdef0123456789abcdef",
        false,
        None,
    )
    .await;
    assert_error(s, &v, 403, 4031003);
    let (d1_token, d1) = device_login(&t, "AABBCCDDEE01").await;
    let (_, d2) = device_login(&t, "AABBCCDDEE02").await;
    let (s, v) = call(&t, Method::GET, &tasks, &d1_token, false, None).await;
    assert_error(s, &v, 403, 4031001);
    let check = json!({"product_id": PRODUCT, "type": 1, "identify": 0, "current_version": 1});
    let (s, v) = post(
        &format!("/v2/upgrade/firmware/check/{d2}"),
        &d1_token,
        check.clone(),
    )
    .await;
    assert_error(s, &v, 403, 4031001);
    let (s, v) = post(
        &format!("/v2/upgrade/firmware/check/{d1}"),
        &d1_token,
        json!({"type": 1, "identify": 0}),
    )
    .await;
    assert_error(s, &v, 400, 4001001);
    let (s, v) = post(
        &format!("/v2/upgrade/firmware/check/{d1}"),
        &d1_token,
        json!({"type": 9, "current_version": 1}),
    )
    .await;
    assert_error(s, &v, 400, 4001001);
    let (s, v) = post("/v2/upgrade/firmware/check/999999", &alice, check.clone()).await;
    assert_error(s, &v, 404, 4041008);
    let (s, v) = post(
        &format!("/v2/upgrade/firmware/report/{d1}"),
        &d1_token,
        json!({"type": 1, "current_version": 2, "result": 7}),
    )
    .await;
    assert_error(s, &v, 400, 4001001);
    let (s, _, v) = send(
        &t,
        Method::POST,
        "/v2/corp/token/refresh",
        &[],
        Some(json!({"refresh_token": alice_login["refresh_token"]}).to_string()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let fresh = v["access_token"].as_str().unwrap().to_string();
    let (s, v) = call(&t, Method::GET, &tasks, &alice, false, None).await;
    assert_error(s, &v, 403, 4031003);
    let (s, _) = call(&t, Method::GET, &tasks, &fresh, false, None).await;
    assert_eq!(s, 200);
    let (s, _, v) = send(
        &t,
        Method::POST,
        "/v2/corp/token/refresh",
        &[],
        Some(json!({"refresh_token": alice_login["refresh_token"]}).to_string()),
    )
    .await;
    assert_error(s, &v, 400, 4001010);
    t.clock.advance_secs(43_201);
    // Expired, the one refusal clients renew on; a revoked token stays merely invalid.
    let (s, v) = call(&t, Method::GET, &tasks, &fresh, false, None).await;
    assert_error(s, &v, 403, 4031021);
    let (s, v) = post(
        &format!("/v2/upgrade/firmware/check/{d1}"),
        &d1_token,
        check,
    )
    .await;
    assert_error(s, &v, 403, 4031021);
    let (s, v) = call(&t, Method::GET, &tasks, &alice, false, None).await;
    assert_error(s, &v, 403, 4031003);
    let alice = corp_login(&t, "alice", "alice-pw").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Bad task bodies: nothing is created.
    let good = new_task(
        "ok",
        json!(1),
        json!(2),
        "https://cdn.example.com/fw.bin",
        "00112233445566778899aabbccddeeff",
        json!(0),
        json!({"category": 0}),
    );
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    for bad in [
        with("name", json!("x".repeat(33))),
        with("description", json!("x".repeat(251))),
        with("from_version", json!("abc")),
        with("target_version", json!(4_294_967_296_i64)),
        with("target_version", json!(1)),
        with("type", json!(4)),
        with("tag_type", json!(2)),
        with("target_version_md5", json!("xyz")),
        with("target_version_url", json!("ftp://x")),
        with("scope", json!({"category": 1})),
        with("scope", json!({"category": 1, "device_list": [999999]})),
        with("from_version", json!(5)),
        without("name"),
        without("target_version"),
        without("target_version_size"),
    ] {
        let (s, v) = post("/v2/upgrade/firmware/task", &alice, bad.clone()).await;
        assert!(s == 400 || s == 404, "{bad}: {s} {v}");
        assert!(v["error"]["code"].is_i64(), "{v}");
    }
    let (s, v) = post(
        "/v2/upgrade/firmware/task",
        &alice,
        with("product_id", json!("nope")),
    )
    .await;
    assert_error(s, &v, 404, 4041005);
    let (s, _, v) = send(
        &t,
        Method::POST,
        "/v2/upgrade/firmware/task",
        &[("Access-Token", &alice)],
        Some("{not json".into()),
    )
    .await;
    assert_error(s, &v, 400, 4001001);
    let (_, v) = post(
        "/v2/upgrade/firmware/tasks",
        &alice,
        json!({"product_id": PRODUCT}),
    )
    .await;
    assert_eq!(v["count"], 0, "no half-made task: {v}");
    let (_, releases) = t.admin_get(&format!("{BASE}/releases")).await;
    assert_eq!(
        releases["total"], 0,
        "no release without its task: {releases}"
    );

    // Illegal workflow steps change nothing.
    let (s, formal) = post("/v2/upgrade/firmware/task", &alice, good.clone()).await;
    assert_eq!(s, 200, "{formal}");
    let id = formal["id"].as_str().unwrap().to_string();
    let op_logs = || {
        call(
            &t,
            Method::GET,
            format!("{}/op-logs", task_path(&id)),
            &alice,
            false,
            None,
        )
    };
    let before = op_logs().await.1;
    let put = |what: &str, body: Value| {
        call(
            &t,
            Method::PUT,
            format!("{}/{what}", task_path(&id)),
            &alice,
            true,
            Some(body),
        )
    };
    for (what, body, code) in [
        ("product-tag", json!({}), 4001001),
        ("devices", json!({"opt": 1, "device_list": [d1]}), 4001001),
        ("audit", json!({"audit_result": 1}), 4001001),
        ("submit-audit", json!({}), 4001001),
        ("devices", json!({"opt": 4, "device_list": [d1]}), 4001001),
    ] {
        let (s, v) = put(what, body).await;
        assert_error(s, &v, 400, code);
    }
    // The auditor must be a member of the corp: not one of another corp, not nobody.
    let (s, _) = admin(
        &t,
        Method::POST,
        "/admin/api/v1/tenants/globex/logins",
        Some(json!({"realm": "xlink", "kind": "user", "name": "carol", "secret": "carol-pw"})),
    )
    .await;
    assert_eq!(s, 201);
    for stranger in ["carol", "nobody"] {
        let (s, v) = put("submit-audit", json!({"audit_member_id": stranger})).await;
        assert_error(s, &v, 404, 4041003);
    }
    assert_eq!(
        put("submit-audit", json!({"audit_member_id": "bob"}))
            .await
            .0,
        200
    );
    let (s, v) = put("submit-audit", json!({"audit_member_id": "bob"})).await;
    assert_error(s, &v, 400, 4001001);
    let (s, v) = call(
        &t,
        Method::POST,
        "/v2/upgrade/firmware/task/status",
        &alice,
        false,
        Some(json!({"product_id": PRODUCT, "upgrade_task_id": id, "status": 1})),
    )
    .await;
    assert_error(s, &v, 400, 4001001);
    let after = op_logs().await.1;
    assert_eq!(
        after["count"].as_u64().unwrap(),
        before["count"].as_u64().unwrap() + 1,
        "only the one submit was logged"
    );
    let (s, v) = call(&t, Method::GET, &task_path("424242"), &alice, false, None).await;
    assert_error(s, &v, 404, 4041013);
    let (s, v) = call(
        &t,
        Method::GET,
        &task_path("not-a-task"),
        &alice,
        false,
        None,
    )
    .await;
    assert_error(s, &v, 404, 4041013);
    // Paths XLINK does not serve, under its /v2 space: its own 4041001, never the host's
    // string code; a path it serves for other methods is a 405 that names them.
    for path in [
        "/v2/upgrade/firmware/check/3/geapp?useHttps=true",
        "/v2/",
        "/v2/no/such/api",
    ] {
        let (s, _, v) = send(&t, Method::POST, path, &[("Access-Token", &alice)], None).await;
        assert_error(s, &v, 404, 4041001);
    }
    let r = t
        .http
        .delete(t.url("/v2/upgrade/firmware/task"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let v: Value = r.json().await.unwrap();
    assert_error(405, &v, 405, 4041001);
    t.stop().await;
}
