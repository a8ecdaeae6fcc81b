//! The admin API at its edges: which credential wins when both are sent, the last operator
//! key cannot lock everyone out, and every refusal (including axum's own extractor and
//! body-limit rejections) is the `{"error": {...}}` shape.

use ota_tests::{OPERATOR_KEY, TestServer, admin};
use reqwest::Method;
use serde_json::{Value, json};

/// Status, content type and JSON body of a response.
async fn parts(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {ct}: {e}: {text:?}"));
    (status, ct, body)
}

#[tokio::test]
async fn a_blank_header_does_not_hide_a_valid_key() {
    let t = TestServer::start(Default::default()).await;
    let r = t
        .http
        .get(t.url("/admin/api/v1/tenants"))
        .header("X-API-Key", "")
        .bearer_auth(OPERATOR_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, body) = parts(
        t.http
            .get(t.url("/admin/api/v1/tenants"))
            .header("X-API-Key", "   ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    t.stop().await;
}

#[tokio::test]
async fn the_last_operator_key_cannot_be_revoked() {
    let t = TestServer::start(Default::default()).await;
    let (_, keys) = admin(&t, Method::GET, "/admin/api/v1/api-keys", None).await;
    let ops = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "operator")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, body) = admin(
        &t,
        Method::DELETE,
        &format!("/admin/api/v1/api-keys/{ops}"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    // With a second operator key, the first may go; the second then is the last.
    let (status, created) = admin(
        &t,
        Method::POST,
        "/admin/api/v1/api-keys",
        Some(json!({"name": "ops-2"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (second_id, second_key) = (
        created["info"]["id"].as_i64().unwrap(),
        created["key"].as_str().unwrap().to_string(),
    );
    let (status, _) = admin(
        &t,
        Method::DELETE,
        &format!("/admin/api/v1/api-keys/{ops}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let r = t
        .http
        .delete(t.url(&format!("/admin/api/v1/api-keys/{second_id}")))
        .bearer_auth(&second_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = t
        .http
        .get(t.url("/admin/api/v1/tenants"))
        .bearer_auth(&second_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the admin API is still reachable");
    t.stop().await;
}

#[tokio::test]
async fn every_refusal_is_json() {
    let t = TestServer::start(Default::default()).await;
    let big = vec![b'x'; 5 << 20];
    let (status, ct, body) = parts(
        t.http
            .post(t.url("/admin/api/v1/tenants"))
            .bearer_auth(OPERATOR_KEY)
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, ct.as_str()), (413, "application/json"), "{body}");
    assert_eq!(body["error"]["code"], "too_large");

    let (status, ct, body) = parts(
        t.http
            .patch(t.url("/admin/api/v1/tenants/acme/campaigns/9223372036854775808"))
            .bearer_auth(OPERATOR_KEY)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, ct.as_str()), (400, "application/json"), "{body}");
    assert_eq!(body["error"]["code"], "bad_request");

    let r = t
        .http
        .put(t.url("/admin/api/v1/tenants"))
        .bearer_auth(OPERATOR_KEY)
        .send()
        .await
        .unwrap();
    let allow = r
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, ct, body) = parts(r).await;
    assert_eq!((status, ct.as_str()), (405, "application/json"), "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert!(allow.is_some_and(|a| a.contains("GET") && a.contains("POST")));
    t.stop().await;
}
