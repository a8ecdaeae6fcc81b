//! The `ota:dialect@0.2` contract end to end: every host call, made by a real component
//! (`plugins/testing/probe`) through the real linker and adapters, over HTTP. The probe answers
//! `{"ok": result}` or `{"err": {"case", "message"}}`, so each assertion reads as the call a
//! dialect would make and what it gets back.

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

fn new_campaign(release: u64, name: &str, scope: Value, tag: &str) -> Value {
    json!({ "campaign": {
        "release_id": release, "name": name, "description": "first wave", "from_version": null,
        "scope": scope, "mode": "Auto", "tag": tag, "retries": 1, "timeout_secs": 3600,
        "waves": null, "created_by": "alice"
    }})
}

#[tokio::test]
async fn blobs_and_releases_through_the_contract() {
    let t = TestServer::start(options()).await;
    let blob = upload(&t, b"firmware 2.0 bytes").await;
    let sha = blob["sha256"].as_str().unwrap();

    let info = ok(&t, "stat", json!({ "id": sha })).await;
    assert_eq!(info["md5"], blob["md5"]);
    assert_eq!(info["size"], 18);
    assert_eq!(
        case(&call(&t, "stat", json!({ "id": "nope" })).await),
        "invalid"
    );
    let unknown = "0".repeat(64);
    assert_eq!(
        case(&call(&t, "stat", json!({ "id": unknown })).await),
        "not-found"
    );

    // A plain link and a signed one both serve the bytes.
    let plain = ok(
        &t,
        "download-url",
        json!({ "id": sha, "ttl_seconds": null }),
    )
    .await;
    assert_eq!(plain, json!(t.url(&format!("/blobs/{sha}"))));
    let signed = ok(&t, "download-url", json!({ "id": sha, "ttl_seconds": 60 })).await;
    let signed = signed.as_str().unwrap();
    assert!(signed.contains("sig="), "{signed}");
    for url in [plain.as_str().unwrap(), signed] {
        let r = t.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(&r.bytes().await.unwrap()[..], b"firmware 2.0 bytes");
    }
    assert_eq!(
        case(&call(&t, "download-url", json!({ "id": sha, "ttl_seconds": 0 })).await),
        "invalid"
    );

    let stored = ok(
        &t,
        "create-release",
        new_release("2.0", json!({ "Blob": sha })),
    )
    .await;
    assert_eq!(stored["md5"], blob["md5"], "facts come from the store");
    assert_eq!(stored["blob_id"], json!(sha));
    assert_eq!(stored["customize"], "{\"k\":1}");
    let md5 = "0123456789abcdef0123456789abcdef";
    let external =
        json!({ "External": { "url": "https://cdn.example/fw-1.5.bin", "md5": md5, "size": 99 } });
    let ext = ok(&t, "create-release", new_release("1.5", external.clone())).await;
    assert_eq!(ext["external_url"], "https://cdn.example/fw-1.5.bin");
    assert_eq!(
        case(&call(&t, "create-release", new_release("1.5", external)).await),
        "conflict"
    );
    let bad = json!({ "External": { "url": "ftp://x", "md5": md5, "size": 1 } });
    assert_eq!(
        case(&call(&t, "create-release", new_release("1.6", bad)).await),
        "invalid"
    );
    assert_eq!(
        case(
            &call(
                &t,
                "create-release",
                new_release("1.7", json!({ "Blob": unknown }))
            )
            .await
        ),
        "not-found"
    );

    let page = ok(
        &t,
        "list-releases",
        json!({ "filter": { "product_sn": PRODUCT, "module": "Mcu", "status": null }, "window": window(0, 1) }),
    )
    .await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["version"], "1.5", "newest first");
    let second = ok(
        &t,
        "list-releases",
        json!({ "filter": { "product_sn": null, "module": null, "status": null }, "window": window(1, 5) }),
    )
    .await;
    assert_eq!(second["items"][0]["version"], "2.0");
    assert_eq!(
        case(
            &call(
                &t,
                "list-releases",
                json!({ "filter": { "product_sn": null, "module": null, "status": null }, "window": window(0, 0) })
            )
            .await
        ),
        "invalid"
    );

    let id = ext["id"].as_u64().unwrap();
    let patched = ok(
        &t,
        "update-release",
        json!({ "id": id, "patch": { "name": "renamed", "version": null, "payload": null,
            "description": "hotfix", "customize": null, "mac_range": ["AABBCC000000-AABBCCFFFFFF"] } }),
    )
    .await;
    assert_eq!(
        (
            &patched["name"],
            &patched["description"],
            &patched["version"]
        ),
        (&json!("renamed"), &json!("hotfix"), &json!("1.5"))
    );
    assert_eq!(patched["mac_range"][0], "AABBCC000000-AABBCCFFFFFF");
    assert_eq!(
        case(
            &call(
                &t,
                "update-release",
                json!({ "id": id, "patch": { "name": null, "version": "2.0", "payload": null,
                    "description": null, "customize": null, "mac_range": null } })
            )
            .await
        ),
        "conflict",
        "two releases may not share a version"
    );
    let invalid = ok(
        &t,
        "set-release-status",
        json!({ "id": id, "status": "Invalid" }),
    )
    .await;
    assert_eq!(invalid["status"], "Invalid");
    ok(&t, "delete-release", json!({ "id": id })).await;
    assert_eq!(
        case(&call(&t, "get-release", json!({ "id": id })).await),
        "not-found"
    );
    // Another tenant sees none of it.
    let theirs = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "get-release",
        json!({ "id": stored["id"] }),
    )
    .await;
    assert_eq!(case(&theirs), "not-found");
    t.stop().await;
}

#[tokio::test]
async fn devices_through_the_contract() {
    let t = TestServer::start(options()).await;
    let product = ok(&t, "get-product", json!({ "sn": PRODUCT })).await;
    assert_eq!(product["sn"], PRODUCT);
    let all = ok(&t, "list-products", json!({})).await;
    assert_eq!(all.as_array().unwrap().len(), 1);

    for sn in ["d1", "d2", "d3"] {
        ok(
            &t,
            "register-device",
            json!({ "product_sn": PRODUCT, "device_sn": sn }),
        )
        .await;
    }
    let d1 = ok(
        &t,
        "update-device",
        json!({ "product_sn": PRODUCT, "device_sn": "d1",
            "patch": { "name": "lobby", "imei": "860000000000001", "mac": null, "group": "g1" } }),
    )
    .await;
    assert_eq!(
        (&d1["name"], &d1["imei"], &d1["group"]),
        (&json!("lobby"), &json!("860000000000001"), &json!("g1"))
    );
    let cleared = ok(
        &t,
        "update-device",
        json!({ "product_sn": PRODUCT, "device_sn": "d1",
            "patch": { "name": "", "imei": null, "mac": null, "group": null } }),
    )
    .await;
    assert_eq!(cleared["name"], Value::Null, "an empty string clears");
    assert_eq!(cleared["imei"], "860000000000001", "null keeps");

    let filter = |group: &str| {
        json!({ "product_sn": PRODUCT,
            "filter": { "sn": null, "name": null, "imei": null, "mac": null, "group": group },
            "window": window(0, 10) })
    };
    let g1 = ok(&t, "list-devices", filter("g1")).await;
    assert_eq!(g1["total"], 1);
    assert_eq!(g1["items"][0]["sn"], "d1");
    assert_eq!(ok(&t, "list-devices", filter("none")).await["total"], 0);

    let by_id = ok(&t, "get-device-by-id", json!({ "id": d1["id"] })).await;
    assert_eq!(by_id["sn"], "d1");
    let reported = ok(
        &t,
        "report-versions",
        json!({ "product_sn": PRODUCT, "device_sn": "d2",
            "versions": [{ "module": "Wifi", "identify": 0, "version": "3.1" },
                         { "module": "Mcu", "identify": 0, "version": "1.0" }] }),
    )
    .await;
    assert_eq!(reported["modules"].as_array().unwrap().len(), 2);
    assert!(reported["online_at"].as_u64().is_some());
    assert_eq!(
        case(
            &call(
                &t,
                "get-device",
                json!({ "product_sn": PRODUCT, "device_sn": "ghost" })
            )
            .await
        ),
        "not-found"
    );

    // A device principal reaches its own device and nothing else.
    let grant = ok(
        &t,
        "put-install-config",
        json!({ "product_sn": PRODUCT, "device_sn": "d3",
            "config": { "software_version": "1.0", "os": "linux", "cpu_arch": "x86_64",
                        "mode": "native", "password": "pw" },
            "report_url": "http://127.0.0.1/report" }),
    )
    .await;
    let key = grant["device_key"].as_str().unwrap().to_string();
    let secret = grant["device_secret"].as_str().unwrap().to_string();
    let creds = [
        ("x-device-key", key.as_str()),
        ("x-device-secret", secret.as_str()),
    ];
    let own = call_as(
        &t,
        &creds,
        "get-device",
        json!({ "product_sn": PRODUCT, "device_sn": "d3" }),
    )
    .await;
    assert_eq!(own["ok"]["sn"], "d3", "{own}");
    let other = call_as(
        &t,
        &creds,
        "get-device",
        json!({ "product_sn": PRODUCT, "device_sn": "d1" }),
    )
    .await;
    assert_eq!(case(&other), "forbidden");
    let by_id = call_as(&t, &creds, "get-device-by-id", json!({ "id": d1["id"] })).await;
    assert_eq!(case(&by_id), "not-found");
    let listing = call_as(&t, &creds, "list-devices", filter("g1")).await;
    assert_eq!(case(&listing), "forbidden");
    let check = call_as(
        &t,
        &creds,
        "check-in",
        json!({ "product_sn": PRODUCT, "device_sn": "d1", "module": "Mcu", "identify": 0, "current": "1.0" }),
    )
    .await;
    assert_eq!(case(&check), "forbidden");

    // Without credentials nothing is answered.
    let anonymous = call_as(&t, &[], "get-product", json!({ "sn": PRODUCT })).await;
    assert_eq!(case(&anonymous), "unauthenticated");
    t.stop().await;
}

#[tokio::test]
async fn a_campaign_through_the_contract() {
    let t = TestServer::start(options()).await;
    let blob = upload(&t, b"firmware 2.0 bytes").await;
    let release = ok(
        &t,
        "create-release",
        new_release("2.0", json!({ "Blob": blob["sha256"] })),
    )
    .await;
    let rid = release["id"].as_u64().unwrap();
    for sn in ["d1", "d2", "d3"] {
        ok(
            &t,
            "register-device",
            json!({ "product_sn": PRODUCT, "device_sn": sn }),
        )
        .await;
    }
    let c = ok(
        &t,
        "create-campaign",
        new_campaign(rid, "spring", json!({ "Devices": ["d1", "d2"] }), "Formal"),
    )
    .await;
    let id = c["id"].as_u64().unwrap();
    assert_eq!(
        (&c["status"], &c["created_by"], &c["target_version"]),
        (&json!("Draft"), &json!("alice"), &json!("2.0"))
    );
    assert_eq!(c["scope"], json!({ "Devices": ["d1", "d2"] }));
    assert_eq!(c["description"], "first wave");
    let ghost = call(
        &t,
        "create-campaign",
        new_campaign(rid, "x", json!({ "Devices": ["ghost"] }), "Formal"),
    )
    .await;
    assert_eq!(case(&ghost), "not-found");

    let check = |sn: &'static str, current: &'static str| json!({ "product_sn": PRODUCT, "device_sn": sn, "module": "Mcu", "identify": 0, "current": current });
    assert_eq!(ok(&t, "check-in", check("d1", "1.0")).await, Value::Null);

    // Submitted to bob: carol may not approve, bob may.
    let pending = ok(
        &t,
        "submit",
        json!({ "id": id, "approver": "bob", "actor": "alice" }),
    )
    .await;
    assert_eq!(
        (&pending["status"], &pending["approver"]),
        (&json!("Pending"), &json!("bob"))
    );
    let by_carol = call(
        &t,
        "act",
        json!({ "id": id, "action": "Approve", "actor": "carol", "note": "" }),
    )
    .await;
    assert_eq!(case(&by_carol), "forbidden");
    let running = ok(
        &t,
        "act",
        json!({ "id": id, "action": "Approve", "actor": "bob", "note": "ok" }),
    )
    .await;
    assert_eq!(running["status"], "Running");

    let offer = ok(&t, "check-in", check("d1", "1.0")).await;
    assert_eq!(offer["release"]["id"], rid);
    assert_eq!(offer["release"]["blob_id"], blob["sha256"]);
    assert_eq!(offer["job"]["state"], "Notified");
    assert_eq!(offer["job"]["device_sn"], "d1");
    assert_eq!(offer["job"]["version_before"], "1.0");
    assert_eq!(
        ok(&t, "check-in", check("d3", "1.0")).await,
        Value::Null,
        "d3 is not listed"
    );
    let job = offer["job"]["id"].as_u64().unwrap();
    let report = |state: &str, version: Value| json!({ "job_id": job, "state": state, "code": 8, "text": "done", "version_now": version });
    assert_eq!(
        ok(&t, "report-job", report("Downloading", Value::Null)).await["state"],
        "Downloading"
    );
    let back = call(&t, "report-job", report("Queued", Value::Null)).await;
    assert_eq!(case(&back), "conflict", "a job never goes back");
    let done = ok(&t, "report-job", report("Succeeded", json!("2.0"))).await;
    assert_eq!(
        (&done["state"], &done["result_code"], &done["version_after"]),
        (&json!("Succeeded"), &json!(8), &json!("2.0"))
    );
    let d1 = ok(
        &t,
        "get-device",
        json!({ "product_sn": PRODUCT, "device_sn": "d1" }),
    )
    .await;
    assert_eq!(d1["modules"][0]["version"], "2.0");
    let theirs = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "report-job",
        report("Failed", Value::Null),
    )
    .await;
    assert_eq!(case(&theirs), "not-found");

    let stats = ok(&t, "stats", json!({ "campaign_id": id })).await;
    assert_eq!(stats["total"], 1);
    assert_eq!(stats["by_state"], json!([["Succeeded", 1]]));
    assert_eq!(stats["versions"], json!([["2.0", 1]]));
    let jobs =
        |filter: Value| json!({ "campaign_id": id, "filter": filter, "window": window(0, 10) });
    let succeeded = ok(
        &t,
        "list-jobs",
        jobs(json!({ "state": "Succeeded", "device_sn": null })),
    )
    .await;
    assert_eq!(succeeded["total"], 1);
    let of_d2 = ok(
        &t,
        "list-jobs",
        jobs(json!({ "state": null, "device_sn": "d2" })),
    )
    .await;
    assert_eq!(of_d2["total"], 0);

    // Edits, listing changes and the op log.
    let edited = ok(
        &t,
        "update-campaign",
        json!({ "id": id, "patch": { "name": "Spring Renamed", "description": null, "retries": 3,
            "timeout_secs": null, "tag": null, "scope": { "Devices": ["d2", "d3"] },
            "maintenance_window": { "start_minute": 1320, "end_minute": 240 } } }),
    )
    .await;
    assert_eq!(edited["scope"], json!({ "Devices": ["d2", "d3"] }));
    assert_eq!(
        edited["maintenance_window"],
        json!({ "start_minute": 1320, "end_minute": 240 })
    );
    assert_eq!(edited["retries"], 3);
    let bad = call(
        &t,
        "update-campaign",
        json!({ "id": id, "patch": { "name": null, "description": null, "retries": 4,
            "timeout_secs": null, "tag": null, "scope": null } }),
    )
    .await;
    assert_eq!(case(&bad), "invalid");
    assert_eq!(
        ok(
            &t,
            "add-devices",
            json!({ "id": id, "device_sns": ["d1", "d2"], "actor": null })
        )
        .await,
        1
    );
    assert_eq!(
        ok(
            &t,
            "remove-devices",
            json!({ "id": id, "device_sns": ["d3"], "actor": "ops" })
        )
        .await,
        1
    );
    let log = ok(
        &t,
        "campaign-log",
        json!({ "campaign_id": id, "window": window(0, 50) }),
    )
    .await;
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
            "submit",
            "approve",
            "update",
            "add-devices",
            "remove-devices"
        ]
    );
    assert_eq!(log["total"], 6);
    assert_eq!(log["items"][1]["actor"], "alice");

    let filter = |name: &str| {
        json!({ "filter": { "product_sn": PRODUCT, "name_contains": name, "module": null,
            "tag": null, "status": null }, "window": window(0, 10) })
    };
    assert_eq!(
        ok(&t, "list-campaigns", filter("RENAMED")).await["total"],
        1
    );
    assert_eq!(ok(&t, "list-campaigns", filter("autumn")).await["total"], 0);

    // A test campaign starts without approval; a deleted campaign is gone from every view.
    let quick = ok(
        &t,
        "create-campaign",
        new_campaign(rid, "quick", json!("All"), "Test"),
    )
    .await;
    let qid = quick["id"].as_u64().unwrap();
    let started = ok(
        &t,
        "act",
        json!({ "id": qid, "action": "Start", "actor": null, "note": "" }),
    )
    .await;
    assert_eq!(started["status"], "Running");
    ok(&t, "delete-campaign", json!({ "id": qid, "actor": null })).await;
    assert_eq!(
        case(&call(&t, "get-campaign", json!({ "id": qid })).await),
        "not-found"
    );
    assert_eq!(ok(&t, "list-campaigns", filter("")).await["total"], 1);
    let other = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "get-campaign",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(case(&other), "not-found");
    t.stop().await;
}

/// 0.2.1: tokens over operator-provisioned logins, and patch-chain planning.
#[tokio::test]
async fn tokens_and_upgrade_paths_through_the_contract() {
    let t = TestServer::start(options()).await;
    for (realm, kind, name, secret) in [
        ("probe", "user", "alice", "alice-pw"),
        ("probe", "client", "app", "app-secret"),
        ("iotstack", "user", "bob", "bob-pw"),
    ] {
        let r = t
            .http
            .post(t.url("/admin/api/v1/tenants/acme/logins"))
            .bearer_auth(OPERATOR_KEY)
            .json(&json!({"realm": realm, "kind": kind, "name": name, "secret": secret}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let grant = |args: Value| call_as(&t, &[], "password-grant", args);
    let g = grant(json!({"client": null, "username": "alice", "password": "alice-pw"})).await;
    let g = &g["ok"];
    assert_eq!(g["expires_in"], 43_200, "{g}");
    assert_eq!(g["principal"]["tenant"], "acme");
    assert_eq!(g["principal"]["subject"], "alice");
    assert_eq!(g["principal"]["scheme"], "Token");
    let access = g["access_token"].as_str().unwrap().to_string();
    let refresh = g["refresh_token"].as_str().unwrap().to_string();
    // Refusals carry OAuth2's distinction.
    let v = grant(json!({"client": {"id": "app", "secret": "nope"}, "username": "alice", "password": "alice-pw"})).await;
    assert!(v["err"].get("InvalidClient").is_some(), "{v}");
    let v = grant(json!({"client": null, "username": "alice", "password": "nope"})).await;
    assert!(v["err"].get("InvalidGrant").is_some(), "{v}");
    // Another plugin's account is unknown here.
    let v = grant(json!({"client": null, "username": "bob", "password": "bob-pw"})).await;
    assert!(v["err"].get("InvalidGrant").is_some(), "{v}");

    // The access token authenticates data calls as the tenant.
    let bearer = [("x-bearer-token", access.as_str())];
    let v = call_as(&t, &bearer, "get-product", json!({"sn": PRODUCT})).await;
    assert_eq!(v["ok"]["sn"], PRODUCT, "{v}");
    let v = call_as(
        &t,
        &[("x-bearer-token", refresh.as_str())],
        "list-products",
        json!({}),
    )
    .await;
    assert_eq!(
        case(&v),
        "unauthenticated",
        "a refresh token is no access token"
    );

    // Refresh with a client-less grant; the old pair dies.
    let v = call_as(
        &t,
        &[],
        "refresh-grant",
        json!({"client": null, "refresh_token": refresh}),
    )
    .await;
    let access2 = v["ok"]["access_token"].as_str().unwrap().to_string();
    let v = call_as(&t, &bearer, "list-products", json!({})).await;
    assert_eq!(case(&v), "unauthenticated");
    let v = call_as(
        &t,
        &[],
        "refresh-grant",
        json!({"client": null, "refresh_token": refresh}),
    )
    .await;
    assert!(v["err"].get("InvalidGrant").is_some(), "{v}");
    // Revoking works once and is idempotent after.
    let bearer2 = [("x-bearer-token", access2.as_str())];
    assert!(
        call_as(&t, &bearer2, "list-products", json!({}))
            .await
            .get("ok")
            .is_some()
    );
    for _ in 0..2 {
        let v = call_as(&t, &[], "revoke-token", json!({"token": access2})).await;
        assert!(v.get("ok").is_some(), "{v}");
    }
    assert_eq!(
        case(&call_as(&t, &bearer2, "list-products", json!({})).await),
        "unauthenticated"
    );

    // upgrade-path over releases made through the contract.
    let ext = |v: &str| json!({ "External": { "url": format!("https://cdn.example/{v}"), "md5": "0123456789abcdef0123456789abcdef", "size": 10 } });
    let full = ok(&t, "create-release", new_release("3", ext("full3"))).await;
    let mut patch = new_release("3", ext("p23"));
    patch["release"]["from_version"] = json!("2");
    let patch = ok(&t, "create-release", patch).await;
    let path = ok(
        &t,
        "upgrade-path",
        json!({"id": full["id"], "from_version": "2"}),
    )
    .await;
    assert_eq!(path.as_array().unwrap().len(), 1);
    assert_eq!(path[0]["id"], patch["id"]);
    let path = ok(
        &t,
        "upgrade-path",
        json!({"id": full["id"], "from_version": "1"}),
    )
    .await;
    assert_eq!(path[0]["id"], full["id"], "no chain: the full package");
    let path = ok(
        &t,
        "upgrade-path",
        json!({"id": full["id"], "from_version": "3"}),
    )
    .await;
    assert_eq!(path, json!([]));
    let v = call(
        &t,
        "upgrade-path",
        json!({"id": full["id"], "from_version": "4"}),
    )
    .await;
    assert_eq!(case(&v), "invalid");
    let v = call(
        &t,
        "upgrade-path",
        json!({"id": 999_999, "from_version": "1"}),
    )
    .await;
    assert_eq!(case(&v), "not-found");
    let v = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "upgrade-path",
        json!({"id": full["id"], "from_version": "1"}),
    )
    .await;
    assert_eq!(case(&v), "not-found", "another tenant's release is unknown");
    t.stop().await;
}

/// 0.2.2: signed requests, product keys and attributes, cancelling and retrying jobs.
#[tokio::test]
async fn signatures_product_facts_and_job_control_through_the_contract() {
    use hmac::{Hmac, Mac};
    let t = TestServer::start(options()).await;
    let admin = |method: reqwest::Method, path: String, body: Value| {
        let req = t
            .http
            .request(method, t.url(&path))
            .bearer_auth(OPERATOR_KEY)
            .json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let base = "/admin/api/v1/tenants/acme";
    for (realm, key, secret) in [("probe", "k1", "s1-secret"), ("ctwing", "k2", "s2-secret")] {
        let s = admin(
            reqwest::Method::POST,
            format!("{base}/app-keys"),
            json!({"realm": realm, "app_key": key, "secret": secret}),
        )
        .await;
        assert_eq!(s, 201);
    }
    let sign = |secret: &str, msg: &str| {
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(msg.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let verify = |key: &str, msg: &str, sig: Vec<u8>, ts: Option<i64>| {
        call_as(
            &t,
            &[],
            "verify-hmac-sha1",
            json!({"key_id": key, "message": msg, "signature": sig, "timestamp_millis": ts}),
        )
    };
    let v = verify(
        "k1",
        "hello",
        sign("s1-secret", "hello"),
        Some(ota_tests::T0_MILLIS),
    )
    .await;
    assert_eq!(v["ok"]["scheme"], "Hmac", "{v}");
    assert_eq!(
        (v["ok"]["tenant"].as_str(), v["ok"]["subject"].as_str()),
        (Some("acme"), Some("k1"))
    );
    assert!(
        verify("k1", "hello", sign("s1-secret", "hello"), None)
            .await
            .get("ok")
            .is_some()
    );
    for v in [
        verify("k1", "hello", sign("s1-secret", "hellO"), None).await,
        verify("k1", "hello", sign("other", "hello"), None).await,
        verify("k2", "hello", sign("s2-secret", "hello"), None).await,
        verify(
            "k1",
            "hello",
            sign("s1-secret", "hello"),
            Some(ota_tests::T0_MILLIS + 901_000),
        )
        .await,
        verify("nobody", "hello", sign("s1-secret", "hello"), None).await,
    ] {
        assert_eq!(case(&v), "unauthenticated", "{v}");
    }

    // Product attributes and keys, set by the operator, read by the plugin.
    let s = admin(
        reqwest::Method::PUT,
        format!("{base}/products/{PRODUCT}/attributes"),
        json!({"ctwing.protocol": "t-link", "b": "2"}),
    )
    .await;
    assert_eq!(s, 200);
    let attrs = ok(&t, "product-attributes", json!({"sn": PRODUCT})).await;
    assert_eq!(attrs, json!([["b", "2"], ["ctwing.protocol", "t-link"]]));
    let other = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "product-attributes",
        json!({"sn": PRODUCT}),
    )
    .await;
    assert_eq!(other["ok"], json!([]), "attributes are per tenant");
    assert_eq!(
        case(&call(&t, "product-attributes", json!({"sn": "nope"})).await),
        "not-found"
    );
    let s = admin(
        reqwest::Method::PUT,
        format!("{base}/products/{PRODUCT}/key"),
        json!({"key": "mk-1"}),
    )
    .await;
    assert_eq!(s, 200);
    let pk = |key: &str| {
        call(
            &t,
            "verify-product-key",
            json!({"product_sn": PRODUCT, "key": key}),
        )
    };
    assert!(pk("mk-1").await.get("ok").is_some());
    assert_eq!(case(&pk("mk-2").await), "unauthenticated");
    let unkeyed = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "verify-product-key",
        json!({"product_sn": PRODUCT, "key": "mk-1"}),
    )
    .await;
    assert_eq!(
        case(&unkeyed),
        "unauthenticated",
        "another tenant's product has no key"
    );

    // Cancel and retry chosen jobs.
    let ext = json!({ "External": { "url": "https://cdn.example/2.bin", "md5": "0123456789abcdef0123456789abcdef", "size": 10 } });
    let release = ok(&t, "create-release", new_release("2.0", ext)).await;
    for sn in ["d1", "d2", "d3"] {
        ok(
            &t,
            "register-device",
            json!({ "product_sn": PRODUCT, "device_sn": sn }),
        )
        .await;
    }
    let mut manual = new_campaign(
        release["id"].as_u64().unwrap(),
        "manual",
        json!({ "Devices": [] }),
        "Formal",
    );
    manual["campaign"]["mode"] = json!("Manual");
    let c = ok(&t, "create-campaign", manual).await;
    let id = c["id"].as_u64().unwrap();
    ok(
        &t,
        "add-devices",
        json!({"id": id, "device_sns": ["d1", "d2", "d3"], "actor": "ops"}),
    )
    .await;
    ok(
        &t,
        "act",
        json!({ "id": id, "action": "Start", "actor": "ops", "note": "" }),
    )
    .await;
    let check = |sn: &'static str| json!({ "product_sn": PRODUCT, "device_sn": sn, "module": "Mcu", "identify": 0, "current": "1.0" });
    let offer = ok(&t, "check-in", check("d1")).await;
    let j1 = offer["job"]["id"].as_u64().unwrap();
    ok(&t, "report-job", json!({"job_id": j1, "state": "Failed", "code": 7, "text": "flash error", "version_now": null})).await;
    let jobs = ok(&t, "list-jobs", json!({"campaign_id": id, "filter": {"state": null, "device_sn": null}, "window": window(0, 10)})).await;
    let ids: Vec<u64> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    // Retrying takes only the failed one; cancelling only open ones.
    let n = ok(
        &t,
        "retry-jobs",
        json!({"campaign_id": id, "job_ids": ids, "actor": "ops"}),
    )
    .await;
    assert_eq!(n, 1);
    let n = ok(
        &t,
        "cancel-jobs",
        json!({"campaign_id": id, "job_ids": [ids[1], 999_999], "actor": "ops"}),
    )
    .await;
    assert_eq!(n, 1);
    let jobs = ok(&t, "list-jobs", json!({"campaign_id": id, "filter": {"state": null, "device_sn": null}, "window": window(0, 10)})).await;
    let states: Vec<(&str, u64)> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["state"].as_str().unwrap(),
                j["retry_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, vec![("Queued", 1), ("Cancelled", 0), ("Queued", 0)]);
    let n = ok(
        &t,
        "cancel-jobs",
        json!({"campaign_id": id, "job_ids": [ids[1]], "actor": "ops"}),
    )
    .await;
    assert_eq!(n, 0, "a final job is skipped");
    let log = ok(
        &t,
        "campaign-log",
        json!({"campaign_id": id, "window": window(0, 50)}),
    )
    .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"retry-jobs") && actions.contains(&"cancel-jobs"),
        "{actions:?}"
    );
    // A finished campaign runs again when a job is retried, while its release is offered.
    let mut single = new_campaign(
        release["id"].as_u64().unwrap(),
        "single",
        json!({ "Devices": [] }),
        "Formal",
    );
    single["campaign"]["mode"] = json!("Manual");
    single["campaign"]["retries"] = json!(0);
    let c2 = ok(&t, "create-campaign", single).await["id"]
        .as_u64()
        .unwrap();
    ok(
        &t,
        "add-devices",
        json!({"id": c2, "device_sns": ["d3"], "actor": "ops"}),
    )
    .await;
    ok(
        &t,
        "act",
        json!({ "id": c2, "action": "Start", "actor": "ops", "note": "" }),
    )
    .await;
    let fail_d3 = || async {
        let offer = ok(&t, "check-in", check("d3")).await;
        let j = offer["job"]["id"].as_u64().expect("an offer");
        ok(
            &t,
            "report-job",
            json!({"job_id": j, "state": "Failed", "code": 1, "text": "x", "version_now": null}),
        )
        .await;
        t.server.scheduler_tick().await;
        j
    };
    let j = fail_d3().await;
    assert_eq!(
        ok(&t, "get-campaign", json!({"id": c2})).await["status"],
        "Finished"
    );
    assert_eq!(
        ok(
            &t,
            "retry-jobs",
            json!({"campaign_id": c2, "job_ids": [j], "actor": "ops"})
        )
        .await,
        1
    );
    t.server.scheduler_tick().await;
    assert_eq!(
        ok(&t, "get-campaign", json!({"id": c2})).await["status"],
        "Running",
        "the queued job keeps it open"
    );
    // Once the release is invalid, a finished campaign stays finished.
    let j = fail_d3().await;
    assert_eq!(
        ok(&t, "get-campaign", json!({"id": c2})).await["status"],
        "Finished"
    );
    ok(
        &t,
        "set-release-status",
        json!({"id": release["id"], "status": "Invalid"}),
    )
    .await;
    let v = call(
        &t,
        "retry-jobs",
        json!({"campaign_id": c2, "job_ids": [j], "actor": "ops"}),
    )
    .await;
    assert_eq!(case(&v), "conflict", "{v}");
    let v = call(
        &t,
        "add-devices",
        json!({"id": c2, "device_sns": ["d2"], "actor": "ops"}),
    )
    .await;
    assert_eq!(case(&v), "conflict", "{v}");
    // Another tenant cannot touch the campaign.
    let v = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "cancel-jobs",
        json!({"campaign_id": id, "job_ids": [ids[0]], "actor": null}),
    )
    .await;
    assert_eq!(case(&v), "not-found");
    t.stop().await;
}

/// 0.2.3: signed upload forms, uploaded objects, URLs of this host, release facts.
#[tokio::test]
async fn uploads_and_release_facts_through_the_contract() {
    let t = TestServer::start(options()).await;
    let callback = |url: String| json!({"url": url, "body": "object=${object}", "body_type": "application/x-www-form-urlencoded"});
    let v = call(
        &t,
        "post-policy",
        json!({"dir": "fw/", "max_bytes": 100, "ttl_seconds": 0, "callback": null}),
    )
    .await;
    assert_eq!(case(&v), "invalid", "{v}");
    let v = call(&t, "post-policy", json!({"dir": "fw/", "max_bytes": 100, "ttl_seconds": 60, "callback": callback("http://elsewhere.example/cb".into())})).await;
    assert_eq!(case(&v), "invalid", "an off-host callback: {v}");
    let v = call(
        &t,
        "post-policy",
        json!({"dir": "../", "max_bytes": 100, "ttl_seconds": 60, "callback": null}),
    )
    .await;
    assert_eq!(case(&v), "invalid", "{v}");
    let form = ok(&t, "post-policy", json!({"dir": "fw/", "max_bytes": 100, "ttl_seconds": 60, "callback": callback(t.url("/probe/stat"))})).await;
    assert_eq!(form["host"], t.url("/oss/acme"));
    assert_eq!(form["dir"], "fw/");
    assert_eq!(form["expire"], ota_tests::T0_MILLIS / 1000 + 60);
    assert!(!form["callback"].as_str().unwrap().is_empty());
    // One key per tenant: a second form is signed with the same access id.
    let again = ok(
        &t,
        "post-policy",
        json!({"dir": "", "max_bytes": 5, "ttl_seconds": 5, "callback": null}),
    )
    .await;
    assert_eq!(again["access_id"], form["access_id"]);
    assert_eq!(again["callback"], "");

    // Upload through the form (without the optional callback), then look it up.
    let data: &'static [u8] = b"contract firmware";
    let multipart = reqwest::multipart::Form::new()
        .text("key", "fw/a.bin")
        .text(
            "OSSAccessKeyId",
            form["access_id"].as_str().unwrap().to_string(),
        )
        .text("policy", form["policy"].as_str().unwrap().to_string())
        .text("Signature", form["signature"].as_str().unwrap().to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(data).file_name("a.bin"),
        );
    let r = t
        .http
        .post(t.url("/oss/acme"))
        .multipart(multipart)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // A form signed without a callback cannot be given one by its uploader (it would reach
    // a route with the tenant's authority), and a signed callback reaches only a route of
    // the plugin that asked for it; nothing is stored for the refusal.
    let post_form = |form: &Value, key: &'static str, callback: Option<String>| {
        let mut m = reqwest::multipart::Form::new()
            .text("key", key)
            .text(
                "OSSAccessKeyId",
                form["access_id"].as_str().unwrap().to_string(),
            )
            .text("policy", form["policy"].as_str().unwrap().to_string())
            .text("Signature", form["signature"].as_str().unwrap().to_string());
        if let Some(cb) = callback {
            m = m.text("callback", cb);
        }
        let m = m.part(
            "file",
            reqwest::multipart::Part::bytes(data).file_name("x.bin"),
        );
        let req = t.http.post(t.url("/oss/acme")).multipart(m);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    use base64::Engine as _;
    let injected = base64::engine::general_purpose::STANDARD.encode(
        json!({"callbackUrl": t.url("/probe/list-products"), "callbackBody": "{}", "callbackBodyType": "application/json"}).to_string(),
    );
    let (s, body) = post_form(&again, "fw/injected.bin", Some(injected)).await;
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    let v = call(&t, "get-object", json!({"key": "fw/injected.bin"})).await;
    assert_eq!(case(&v), "not-found");
    let foreign = ok(&t, "post-policy", json!({"dir": "fw/", "max_bytes": 100, "ttl_seconds": 60, "callback": callback(t.url("/api/v1/deployment/info"))})).await;
    let (s, body) = post_form(
        &foreign,
        "fw/foreign.bin",
        Some(foreign["callback"].as_str().unwrap().to_string()),
    )
    .await;
    assert_eq!(s, 203, "{body}");
    assert!(
        body.contains("<Code>CallbackFailed</Code>") && body.contains("not a route of the plugin"),
        "{body}"
    );

    let object = ok(&t, "get-object", json!({"key": "fw/a.bin"})).await;
    assert_eq!(object["url"], t.url("/oss/acme/fw/a.bin"));
    assert_eq!(object["blob"]["size"], data.len());
    let v = call(&t, "get-object", json!({"key": "fw/missing.bin"})).await;
    assert_eq!(case(&v), "not-found");
    let v = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "get-object",
        json!({"key": "fw/a.bin"}),
    )
    .await;
    assert_eq!(case(&v), "not-found", "another tenant's bucket: {v}");

    // URLs of this host resolve to their file; others to none.
    let found = ok(&t, "find-url", json!({"url": t.url("/oss/acme/fw/a.bin")})).await;
    assert_eq!(found, object["blob"]);
    let stored = upload(&t, b"admin upload").await;
    let found = ok(&t, "find-url", json!({"url": stored["signed_url"]})).await;
    assert_eq!(found["id"], stored["sha256"]);
    for url in [
        "https://cdn.example/oss/acme/fw/a.bin".to_string(),
        t.url("/oss/acme/fw/missing.bin"),
        t.url(&format!("/blobs/{}", "0".repeat(64))),
        t.url("/healthz"),
    ] {
        assert_eq!(
            ok(&t, "find-url", json!({"url": url})).await,
            Value::Null,
            "{url}"
        );
    }
    let v = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "find-url",
        json!({"url": t.url("/oss/acme/fw/a.bin")}),
    )
    .await;
    assert_eq!(v["ok"], Value::Null, "{v}");

    // Release facts: set, refuse a bad name without changing anything, remove.
    let release = ok(
        &t,
        "create-release",
        new_release("1.0.0", json!({"Blob": stored["sha256"]})),
    )
    .await;
    let id = release["id"].as_u64().unwrap();
    assert_eq!(
        ok(&t, "release-attributes", json!({"id": id})).await,
        json!([])
    );
    let set = ok(
        &t,
        "set-release-attributes",
        json!({"id": id, "changes": [["mx.size", "20kb"], ["mx.url", "https://x/a.bin"]]}),
    )
    .await;
    assert_eq!(
        set,
        json!([["mx.size", "20kb"], ["mx.url", "https://x/a.bin"]])
    );
    let v = call(
        &t,
        "set-release-attributes",
        json!({"id": id, "changes": [["mx.size", "1kb"], ["bad name!", "x"]]}),
    )
    .await;
    assert_eq!(case(&v), "invalid");
    let v = call(
        &t,
        "set-release-attributes",
        json!({"id": id, "changes": [["mx.size", "x".repeat(1025)]]}),
    )
    .await;
    assert_eq!(case(&v), "invalid");
    let left = ok(
        &t,
        "set-release-attributes",
        json!({"id": id, "changes": [["mx.url", null]]}),
    )
    .await;
    assert_eq!(left, json!([["mx.size", "20kb"]]));
    let v = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "release-attributes",
        json!({"id": id}),
    )
    .await;
    assert_eq!(case(&v), "not-found");
    ok(&t, "delete-release", json!({"id": id})).await;
    let v = call(&t, "release-attributes", json!({"id": id})).await;
    assert_eq!(case(&v), "not-found");
    t.stop().await;
}

/// 0.2.4: device logins, sending a campaign back to draft, campaign facts, job search.
#[tokio::test]
async fn device_logins_campaign_facts_and_job_search_through_the_contract() {
    let t = TestServer::start(options()).await;
    for (tenant, key) in [("acme", "acme-pk"), ("globex", "globex-pk")] {
        let s = ota_tests::admin(
            &t,
            reqwest::Method::PUT,
            &format!("/admin/api/v1/tenants/{tenant}/products/{PRODUCT}/key"),
            Some(json!({"key": key})),
        )
        .await;
        assert_eq!(s.0, 200);
    }
    let login = |mac: &str, key: &str| {
        call_as(
            &t,
            &[],
            "device-login",
            json!({"product_sn": PRODUCT, "mac": mac, "product_key": key}),
        )
    };
    // The key decides the tenant: both tenants have a product of this serial number.
    let g = login("AABBCCDDEE01", "acme-pk").await;
    let g = g["ok"].clone();
    assert_eq!(g["principal"]["tenant"], "acme", "{g}");
    assert_eq!(g["principal"]["scheme"], "Token");
    assert_eq!(
        g["principal"]["device"],
        json!({"product_sn": PRODUCT, "device_sn": "AABBCCDDEE01"})
    );
    let other = login("AABBCCDDEE01", "globex-pk").await;
    assert_eq!(other["ok"]["principal"]["tenant"], "globex");
    for bad in [
        login("AABBCCDDEE01", "nope").await,
        login("AABBCCDDEE01", "").await,
    ] {
        assert!(bad["err"]["InvalidGrant"].is_string(), "{bad}");
    }
    let token = g["access_token"].as_str().unwrap().to_string();
    let dev = [("x-bearer-token", token.as_str())];
    let me = call_as(
        &t,
        &dev,
        "get-device",
        json!({"product_sn": PRODUCT, "device_sn": "AABBCCDDEE01"}),
    )
    .await;
    assert_eq!(me["ok"]["mac"], "AABBCCDDEE01");
    let device_id = me["ok"]["id"].as_u64().unwrap();
    // A second login finds the same device by its MAC, even after the operator renamed it.
    let again = login("AABBCCDDEE01", "acme-pk").await;
    assert_eq!(
        again["ok"]["principal"]["device"]["device_sn"],
        "AABBCCDDEE01"
    );
    ok(
        &t,
        "register-device",
        json!({"product_sn": PRODUCT, "device_sn": "peer"}),
    )
    .await;
    let peer = call_as(
        &t,
        &dev,
        "get-device",
        json!({"product_sn": PRODUCT, "device_sn": "peer"}),
    )
    .await;
    assert_eq!(
        case(&peer),
        "forbidden",
        "a device token reaches only its device"
    );
    // The refresh grant renews a device's pair without a client, still confined.
    let renewed = call_as(
        &t,
        &[],
        "refresh-grant",
        json!({"client": null, "refresh_token": g["refresh_token"]}),
    )
    .await;
    assert_eq!(
        renewed["ok"]["principal"]["device"]["device_sn"], "AABBCCDDEE01",
        "{renewed}"
    );
    let stale = call_as(&t, &dev, "get-product", json!({"sn": PRODUCT})).await;
    assert_eq!(
        case(&stale),
        "unauthenticated",
        "refreshing retires the old pair"
    );
    let token = renewed["ok"]["access_token"].as_str().unwrap().to_string();
    let dev = [("x-bearer-token", token.as_str())];

    // A running campaign, its facts, and its revision back to draft.
    let blob = upload(&t, b"firmware 3 bytes").await;
    let rid = ok(
        &t,
        "create-release",
        new_release("3", json!({ "Blob": blob["sha256"] })),
    )
    .await["id"]
        .as_u64()
        .unwrap();
    let c = ok(
        &t,
        "create-campaign",
        new_campaign(rid, "c", json!("All"), "Formal"),
    )
    .await;
    let id = c["id"].as_u64().unwrap();
    let facts = ok(
        &t,
        "set-campaign-attributes",
        json!({"id": id, "changes": [["xlink.from_md5", "abc"], ["gone", null]]}),
    )
    .await;
    assert_eq!(facts, json!([["xlink.from_md5", "abc"]]));
    let bad = call(
        &t,
        "set-campaign-attributes",
        json!({"id": id, "changes": [["bad name", "x"]]}),
    )
    .await;
    assert_eq!(case(&bad), "invalid");
    let theirs = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "campaign-attributes",
        json!({"id": id}),
    )
    .await;
    assert_eq!(case(&theirs), "not-found");
    let seen = call_as(&t, &dev, "campaign-attributes", json!({"id": id})).await;
    assert_eq!(
        seen["ok"], facts,
        "a device reads its own product's campaign facts"
    );
    let denied = call_as(
        &t,
        &dev,
        "set-campaign-attributes",
        json!({"id": id, "changes": []}),
    )
    .await;
    assert_eq!(case(&denied), "forbidden");
    let draft_revise = call(&t, "revise", json!({"id": id, "actor": "ann"})).await;
    assert_eq!(case(&draft_revise), "conflict");
    ok(
        &t,
        "act",
        json!({"id": id, "action": "Start", "actor": "ann", "note": ""}),
    )
    .await;
    let check = json!({"product_sn": PRODUCT, "device_sn": "AABBCCDDEE01", "module": "Mcu", "identify": 0, "current": "2"});
    let offer = call_as(&t, &dev, "check-in", check.clone()).await;
    assert_eq!(offer["ok"]["job"]["state"], "Notified", "{offer}");
    ok(&t, "check-in", json!({"product_sn": PRODUCT, "device_sn": "peer", "module": "Mcu", "identify": 0, "current": "2"})).await;
    let stats = ok(&t, "stats", json!({"campaign_id": id})).await;
    assert_eq!(stats["total"], 2);
    let denied = call_as(&t, &dev, "stats", json!({"campaign_id": id})).await;
    assert_eq!(
        case(&denied),
        "forbidden",
        "a device counts, it does not read statistics"
    );
    let count = |states: Value| {
        call_as(
            &t,
            &dev,
            "count-jobs",
            json!({"campaign_id": id, "states": states}),
        )
    };
    assert_eq!(count(json!([])).await["ok"], 2);
    assert_eq!(count(json!(["Notified", "Succeeded"])).await["ok"], 2);
    assert_eq!(count(json!(["Succeeded"])).await["ok"], 0);
    let theirs = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "count-jobs",
        json!({"campaign_id": id, "states": []}),
    )
    .await;
    assert_eq!(case(&theirs), "not-found");
    let revised = ok(&t, "revise", json!({"id": id, "actor": "ann"})).await;
    assert_eq!(revised["status"], "Draft");
    let log = ok(
        &t,
        "campaign-log",
        json!({"campaign_id": id, "window": window(0, 50)}),
    )
    .await;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "revise" && e["actor"] == "ann"),
        "{log}"
    );
    assert_eq!(
        call_as(&t, &dev, "check-in", check).await["ok"],
        Value::Null,
        "a draft offers nothing"
    );

    // Job search: bound values, literal wildcards, typed fields.
    let search = |conditions: Value| json!({"query": {"conditions": conditions, "order": [{"field": "DeviceSn", "descending": true}], "states": []}, "window": window(0, 10)});
    let cond = |field: &str, op: &str, values: Value| json!({"field": field, "operator": op, "values": values});
    let all = ok(
        &t,
        "search-jobs",
        search(json!([cond("CampaignId", "Eq", json!([id.to_string()]))])),
    )
    .await;
    assert_eq!(all["total"], 2);
    assert_eq!(
        all["items"][0]["job"]["device_sn"], "peer",
        "ordered by sn, descending"
    );
    assert_eq!(all["items"][1]["device_id"], device_id);
    assert_eq!(all["items"][1]["device_mac"], "AABBCCDDEE01");
    assert_eq!(all["items"][1]["product_sn"], PRODUCT);
    assert_eq!(
        (&all["items"][1]["module"], &all["items"][1]["identify"]),
        (&json!("Mcu"), &json!(0))
    );
    let mac = ok(
        &t,
        "search-jobs",
        search(json!([cond("DeviceMac", "Like", json!(["ccdd"]))])),
    )
    .await;
    assert_eq!(
        mac["total"], 1,
        "like is a case-insensitive substring match"
    );
    for hostile in ["'; DROP TABLE jobs; --", "%", "_", "AABB%"] {
        let none = ok(
            &t,
            "search-jobs",
            search(json!([cond("DeviceMac", "Like", json!([hostile]))])),
        )
        .await;
        assert_eq!(none["total"], 0, "{hostile}");
        let none = ok(
            &t,
            "search-jobs",
            search(json!([cond("DeviceSn", "Eq", json!([hostile]))])),
        )
        .await;
        assert_eq!(none["total"], 0, "{hostile}");
    }
    let range = ok(
        &t,
        "search-jobs",
        search(json!([
            cond("DeviceId", "In", json!([device_id.to_string(), "999999"])),
            cond("JobId", "Gt", json!(["0"]))
        ])),
    )
    .await;
    assert_eq!(range["total"], 1);
    for wrong in [
        cond("CampaignId", "Lt", json!(["abc"])),
        cond("CampaignId", "Like", json!(["1"])),
        cond("DeviceSn", "Eq", json!(["a", "b"])),
    ] {
        assert_eq!(
            case(&call(&t, "search-jobs", search(json!([wrong]))).await),
            "invalid"
        );
    }
    let mine = call_as(&t, &dev, "search-jobs", search(json!([]))).await;
    assert_eq!(
        mine["ok"]["total"], 1,
        "a device finds only its own jobs: {mine}"
    );
    // A new product key retires the tokens devices earned with the old one.
    let s = ota_tests::admin(
        &t,
        reqwest::Method::PUT,
        &format!("/admin/api/v1/tenants/acme/products/{PRODUCT}/key"),
        Some(json!({"key": "acme-pk-2"})),
    )
    .await;
    assert_eq!(s.0, 200);
    let retired = call_as(&t, &dev, "get-product", json!({"sn": PRODUCT})).await;
    assert_eq!(case(&retired), "unauthenticated", "{retired}");
    let refreshed = call_as(
        &t,
        &[],
        "refresh-grant",
        json!({"client": null, "refresh_token": renewed["ok"]["refresh_token"]}),
    )
    .await;
    assert!(refreshed["err"]["InvalidGrant"].is_string(), "{refreshed}");
    assert!(login("AABBCCDDEE01", "acme-pk").await["err"]["InvalidGrant"].is_string());
    assert_eq!(
        login("AABBCCDDEE01", "acme-pk-2").await["ok"]["principal"]["tenant"],
        "acme"
    );
    // A key that fits products of two tenants decides nothing: refused.
    let s = ota_tests::admin(
        &t,
        reqwest::Method::PUT,
        &format!("/admin/api/v1/tenants/globex/products/{PRODUCT}/key"),
        Some(json!({"key": "acme-pk-2"})),
    )
    .await;
    assert_eq!(s.0, 200);
    let both = login("AABBCCDDEE01", "acme-pk-2").await;
    assert!(
        both["err"]["InvalidGrant"]
            .as_str()
            .unwrap()
            .contains("several tenants"),
        "{both}"
    );
    let theirs = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "search-jobs",
        search(json!([])),
    )
    .await;
    assert_eq!(theirs["ok"]["total"], 0);
    t.stop().await;
}

/// 0.2.8: a campaign without its device list answers what `get-campaign` answers, its
/// scope's list replaced by how many it lists, alone and in pages.
#[tokio::test]
async fn campaign_briefs_through_the_contract() {
    let t = TestServer::start(options()).await;
    let blob = upload(&t, b"firmware 3.0 bytes").await;
    let release = ok(
        &t,
        "create-release",
        new_release("3.0", json!({ "Blob": blob["sha256"] })),
    )
    .await;
    let rid = release["id"].as_u64().unwrap();
    for sn in ["d1", "d2", "d3"] {
        ok(
            &t,
            "register-device",
            json!({ "product_sn": PRODUCT, "device_sn": sn }),
        )
        .await;
    }
    let listed = ok(
        &t,
        "create-campaign",
        new_campaign(
            rid,
            "listed",
            json!({ "Devices": ["d1", "d2", "d3"] }),
            "Formal",
        ),
    )
    .await;
    let everyone = ok(
        &t,
        "create-campaign",
        new_campaign(rid, "everyone", json!("All"), "Formal"),
    )
    .await;
    let (lid, eid) = (
        listed["id"].as_u64().unwrap(),
        everyone["id"].as_u64().unwrap(),
    );

    // The brief is the full record but for the list, which it counts.
    let brief = ok(&t, "get-campaign-brief", json!({ "id": lid })).await;
    assert_eq!(brief["listed"], 3);
    assert_eq!(brief["campaign"]["scope"], json!({ "Devices": [] }));
    let mut full = ok(&t, "get-campaign", json!({ "id": lid })).await;
    assert_eq!(full["scope"], json!({ "Devices": ["d1", "d2", "d3"] }));
    full["scope"] = json!({ "Devices": [] });
    assert_eq!(brief["campaign"], full);
    let all = ok(&t, "get-campaign-brief", json!({ "id": eid })).await;
    assert_eq!(
        (&all["listed"], &all["campaign"]["scope"]),
        (&json!(0), &json!("All"))
    );
    assert_eq!(
        all["campaign"],
        ok(&t, "get-campaign", json!({ "id": eid })).await
    );

    // The count follows the list.
    ok(
        &t,
        "remove-devices",
        json!({ "id": lid, "device_sns": ["d2"], "actor": null }),
    )
    .await;
    assert_eq!(
        ok(&t, "get-campaign-brief", json!({ "id": lid })).await["listed"],
        2
    );

    // Pages: the same filter, order and total as list-campaigns.
    let page = |name: &str, offset: u64, limit: u32| {
        json!({ "filter": { "product_sn": PRODUCT, "name_contains": name, "module": null,
            "tag": null, "status": null }, "window": window(offset, limit) })
    };
    let briefs = ok(&t, "list-campaign-briefs", page("", 0, 10)).await;
    let campaigns = ok(&t, "list-campaigns", page("", 0, 10)).await;
    assert_eq!(
        (&briefs["total"], &campaigns["total"]),
        (&json!(2), &json!(2))
    );
    let ids = |items: &Value, key: Option<&str>| -> Vec<u64> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| key.map_or(i, |k| &i[k])["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(&briefs["items"], Some("campaign")),
        ids(&campaigns["items"], None)
    );
    let listed_counts: Vec<&Value> = briefs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["listed"])
        .collect();
    assert_eq!(listed_counts, [&json!(0), &json!(2)], "newest first");
    let second = ok(&t, "list-campaign-briefs", page("list", 0, 1)).await;
    assert_eq!(
        (&second["total"], second["items"][0]["listed"].clone()),
        (&json!(1), json!(2))
    );
    assert_eq!(
        ok(&t, "list-campaign-briefs", page("", 1, 1)).await["items"][0]["campaign"]["id"],
        lid
    );

    // The same refusals as get-campaign and list-campaigns.
    let other = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "get-campaign-brief",
        json!({ "id": lid }),
    )
    .await;
    assert_eq!(case(&other), "not-found");
    let theirs = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "list-campaign-briefs",
        json!({ "filter": { "product_sn": null, "name_contains": null, "module": null,
            "tag": null, "status": null }, "window": window(0, 10) }),
    )
    .await;
    assert_eq!(theirs["ok"]["total"], 0);
    let unknown_product = call(
        &t,
        "list-campaign-briefs",
        json!({ "filter": { "product_sn": "nope", "name_contains": null, "module": null,
            "tag": null, "status": null }, "window": window(0, 10) }),
    )
    .await;
    assert_eq!(
        case(&unknown_product),
        case(
            &call(
                &t,
                "list-campaigns",
                json!({ "filter": { "product_sn": "nope", "name_contains": null, "module": null,
                    "tag": null, "status": null }, "window": window(0, 10) }),
            )
            .await
        )
    );
    ok(&t, "delete-campaign", json!({ "id": eid, "actor": null })).await;
    assert_eq!(
        case(&call(&t, "get-campaign-brief", json!({ "id": eid })).await),
        "not-found"
    );
    t.stop().await;
}
