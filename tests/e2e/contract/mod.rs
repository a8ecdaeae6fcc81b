//! The `ota:dialect@0.2` contract end to end: every host call, made by a real component
//! (`plugins/testing/probe`) through the real linker and adapters, over HTTP. The probe answers
//! `{"ok": result}` or `{"err": {"case", "message"}}`, so each assertion reads as the call a
//! dialect would make and what it gets back.

mod v0_2_0;
mod v0_2_1;
mod v0_2_2;
mod v0_2_3;
mod v0_2_4;
mod v0_2_8;

use ota_tests::{API_KEY, OPERATOR_KEY, OTHER_TENANT_KEY, Options, PRODUCT, TestServer};
use serde_json::{Value, json};

fn options() -> Options {
    Options {
        plugins: vec![("iotstack.wasm", "iotstack"), ("probe.wasm", "probe")],
        ..Default::default()
    }
}

/// Call `name` with `args` as the holder of `creds` (header name, value pairs).
async fn call_as(t: &TestServer, creds: &[(&str, &str)], name: &str, args: Value) -> Value {
    let mut req = t
        .http
        .post(t.url(&format!("/probe/{name}")))
        .header("content-type", "application/json")
        .body(args.to_string());
    for (h, v) in creds {
        req = req.header(*h, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{name}");
    r.json().await.unwrap()
}

async fn call(t: &TestServer, name: &str, args: Value) -> Value {
    call_as(t, &[("x-api-key", API_KEY)], name, args).await
}

/// The `ok` value of a call that must succeed.
async fn ok(t: &TestServer, name: &str, args: Value) -> Value {
    let v = call(t, name, args).await;
    assert!(v.get("ok").is_some(), "{name} failed: {v}");
    v["ok"].clone()
}

/// The error case of a call that must fail.
fn case(v: &Value) -> &str {
    v["err"]["case"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {v}"))
}

fn window(offset: u64, limit: u32) -> Value {
    json!({ "offset": offset, "limit": limit })
}

async fn upload(t: &TestServer, data: &'static [u8]) -> Value {
    let r = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .bearer_auth(OPERATOR_KEY)
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn new_release(version: &str, payload: Value) -> Value {
    json!({ "release": {
        "product_sn": PRODUCT, "module": "Mcu", "identify": 0, "name": format!("fw {version}"),
        "version": version, "from_version": null, "payload": payload, "status": "Online",
        "description": "", "customize": "{\"k\":1}", "mac_range": []
    }})
}

/// An online release of `version` from the uploaded `file`, and devices `d1`-`d3` of the
/// product: what a campaign test starts from. Answers the release's id and the file's
/// SHA-256 (its blob id).
async fn release_and_three_devices(
    t: &TestServer,
    version: &str,
    file: &'static [u8],
) -> (u64, Value) {
    let blob = upload(t, file).await;
    let release = ok(
        t,
        "create-release",
        new_release(version, json!({ "Blob": blob["sha256"] })),
    )
    .await;
    for sn in ["d1", "d2", "d3"] {
        ok(
            t,
            "register-device",
            json!({ "product_sn": PRODUCT, "device_sn": sn }),
        )
        .await;
    }
    (release["id"].as_u64().unwrap(), blob["sha256"].clone())
}

fn new_campaign(release: u64, name: &str, scope: Value, tag: &str) -> Value {
    json!({ "campaign": {
        "release_id": release, "name": name, "description": "first wave", "from_version": null,
        "scope": scope, "mode": "Auto", "tag": tag, "retries": 1, "timeout_secs": 3600,
        "waves": null, "created_by": "alice"
    }})
}
