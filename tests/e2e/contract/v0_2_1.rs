//! What contract 0.2.1 added, end to end: tokens over operator-provisioned logins, and patch-chain
//! planning.

use super::*;

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
