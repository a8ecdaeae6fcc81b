//! Contract 0.2.0's calls end to end: blobs and releases, devices, and a campaign from draft to a
//! finished job.

use super::*;

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
    let (rid, sha256) = release_and_three_devices(&t, "2.0", b"firmware 2.0 bytes").await;
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
    assert_eq!(offer["release"]["blob_id"], sha256);
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
