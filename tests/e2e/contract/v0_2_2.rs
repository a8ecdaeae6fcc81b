//! What contract 0.2.2 added, end to end: signed requests, product keys and attributes, cancelling
//! and retrying jobs.

use super::*;

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
