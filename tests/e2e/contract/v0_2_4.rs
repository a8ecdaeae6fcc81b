//! What contract 0.2.4 added, end to end: device logins, sending a campaign back to draft,
//! campaign facts, job search.

use super::*;

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
