//! What contract 0.2.3 added, end to end: signed upload forms, uploaded objects, URLs of this
//! host, release facts.

use super::*;

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
