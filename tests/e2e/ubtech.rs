//! The UBTech dialect over HTTP against `plugins/ubtech`: the OAuth2 token lifecycle, the
//! patch-chain download with every answer code, and callbacks moving jobs — with releases,
//! logins and campaigns made the way an operator makes them, through the native admin API.

use ota_tests::{OPERATOR_KEY, Options, TestServer, admin};
use reqwest::Method;
use serde_json::{Value, json};

const PACKAGE: &str = "com.ubtechinc.alpha2services";
const FILE: &str = "service5mic";
/// The spec's example client and user.
const CLIENT: (&str, &str) = ("mobile_1", "secret_1");
const USER: (&str, &str) = ("aa", "aa");
const BASE: &str = "/admin/api/v1/tenants/acme";

fn product(language: &str) -> String {
    format!("{PACKAGE}:{FILE}:{language}")
}

async fn start() -> TestServer {
    let t = TestServer::start(Options {
        plugins: vec![("ubtech.wasm", "ubtech")],
        ..Default::default()
    })
    .await;
    for (kind, (name, secret)) in [("client", CLIENT), ("user", USER)] {
        let (s, b) = admin(
            &t,
            Method::POST,
            &format!("{BASE}/logins"),
            Some(json!({"realm": "ubtech", "kind": kind, "name": name, "secret": secret})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        assert!(b.get("secret").is_none(), "secrets are never echoed: {b}");
    }
    t
}

/// Raw GET: status and body text.
async fn get_text(t: &TestServer, path_and_query: &str) -> (u16, String) {
    let r = t.http.get(t.url(path_and_query)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get(t: &TestServer, path_and_query: &str) -> (u16, Value) {
    let (s, text) = get_text(t, path_and_query).await;
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path_and_query} answered non-JSON ({e}): {text:?}"));
    (s, v)
}

async fn post(t: &TestServer, path_and_query: &str) -> (u16, Value) {
    let r = t.http.post(t.url(path_and_query)).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

/// The spec's token call, verbatim.
async fn token(t: &TestServer) -> (String, String) {
    let (s, b) = get(
        t,
        "/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password=aa",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    (
        b["access_token"].as_str().unwrap().to_string(),
        b["refresh_token"].as_str().unwrap().to_string(),
    )
}

fn download_query(token: &str, language: &str, version: &str, robot: &str) -> String {
    format!(
        "/file/download?access_token={token}&package_name={PACKAGE}&version={version}\
         &file_name={FILE}&language={language}&robot_version=1&robot_id={robot}"
    )
}

fn assert_oauth_error(status: u16, body: &Value, want_status: u16, want: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn token_lifecycle_issue_use_expire_refresh_revoke() {
    let t = start().await;
    // The spec's call, answered in the printed shape and field order.
    let (s, text) = get_text(
        &t,
        "/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password=aa",
    )
    .await;
    assert_eq!(s, 200, "{text}");
    let keys: Vec<&str> = [
        "access_token",
        "token_type",
        "refresh_token",
        "expires_in",
        "scope",
    ]
    .into_iter()
    .collect();
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| text.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    let b: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(b.as_object().unwrap().len(), 5, "{b}");
    assert_eq!(b["token_type"], "bearer");
    assert_eq!(b["scope"], "read write trust");
    assert_eq!(b["expires_in"], 43_200);
    for k in ["access_token", "refresh_token"] {
        let v = b[k].as_str().unwrap();
        assert_eq!(v.len(), 32, "{k}");
        assert!(v.chars().all(|c| c.is_ascii_hexdigit()));
    }
    let access = b["access_token"].as_str().unwrap().to_string();
    let refresh = b["refresh_token"].as_str().unwrap().to_string();

    // The token works as a parameter and as a bearer header ("102": the package is unknown,
    // which proves the call got past authentication).
    let (s, b) = get(&t, &download_query(&access, "CN", "6", "r1")).await;
    assert_eq!((s, b["code"].as_str()), (200, Some("102")), "{b}");
    let r = t
        .http
        .get(t.url(&download_query("", "CN", "6", "r1").replace("access_token=&", "")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Expiry through the server's clock.
    t.clock.advance_secs(43_199);
    assert_eq!(
        get(&t, &download_query(&access, "CN", "6", "r1")).await.0,
        200
    );
    t.clock.advance_secs(2);
    let (s, b) = get(&t, &download_query(&access, "CN", "6", "r1")).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("103")), "{b}");
    assert_eq!(b["error"], "invalid_token");

    // Refresh with the standard form-encoded POST: a new pair; the old one is dead.
    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&client_id=mobile_1&client_secret=secret_1"
    );
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let b: Value = r.json().await.unwrap();
    let access2 = b["access_token"].as_str().unwrap().to_string();
    assert_ne!(access2, access);
    assert_ne!(b["refresh_token"].as_str().unwrap(), refresh);
    assert_eq!(
        get(&t, &download_query(&access2, "CN", "6", "r1")).await.0,
        200
    );
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    assert_oauth_error(s, &r.json().await.unwrap(), 400, "invalid_grant");

    // A refresh token is tied to its client: HTTP Basic client auth, another client.
    let (s, b) = admin(
        &t,
        Method::POST,
        &format!("{BASE}/logins"),
        Some(json!({"realm": "ubtech", "kind": "client", "name": "desk", "secret": "desk-secret"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (_, fresh) = get(
        &t,
        "/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password=aa",
    )
    .await;
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .basic_auth("desk", Some("desk-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", fresh["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    assert_oauth_error(s, &r.json().await.unwrap(), 400, "invalid_grant");
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .basic_auth("mobile_1", Some("secret_1"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", fresh["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "Basic client auth works too");
    let b: Value = r.json().await.unwrap();
    let access3 = b["access_token"].as_str().unwrap().to_string();
    let refresh3 = b["refresh_token"].as_str().unwrap().to_string();

    // Refresh tokens expire too (30 days by default).
    t.clock.advance_secs(30 * 86_400 + 1);
    let (s, b) = get(
        &t,
        &format!("/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=refresh_token&refresh_token={refresh3}"),
    )
    .await;
    assert_oauth_error(s, &b, 400, "invalid_grant");
    assert_eq!(
        get(&t, &download_query(&access3, "CN", "6", "r1")).await.0,
        401
    );
    // A day later the dead tokens are swept (the server does this hourly).
    t.clock.advance_secs(86_401);
    let (live, _) = token(&t).await;
    let pruned = t.server.services.auth.prune_tokens().await.unwrap();
    assert_eq!(
        get(&t, &download_query(&live, "CN", "6", "r1")).await.0,
        200,
        "a live token survives the sweep"
    );
    assert!(pruned >= 6, "every pair issued so far is dead: {pruned}");
    assert_eq!(t.server.services.auth.prune_tokens().await.unwrap(), 0);

    // Revocation by the operator: every token of the user dies, the account keeps working.
    let (access4, _) = token(&t).await;
    assert_eq!(
        get(&t, &download_query(&access4, "CN", "6", "r1")).await.0,
        200
    );
    let (_, logins) = admin(&t, Method::GET, &format!("{BASE}/logins"), None).await;
    let user_id = logins["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "aa")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (s, b) = admin(
        &t,
        Method::POST,
        &format!("{BASE}/logins/{user_id}/revoke-tokens"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(b["revoked"].as_u64().unwrap() >= 2, "{b}");
    let (s, b) = get(&t, &download_query(&access4, "CN", "6", "r1")).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("103")));
    let (access5, _) = token(&t).await;
    // Disabling the account kills its tokens and its logins.
    let (s, _) = admin(
        &t,
        Method::DELETE,
        &format!("{BASE}/logins/{user_id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        get(&t, &download_query(&access5, "CN", "6", "r1")).await.0,
        401
    );
    let (s, b) = get(
        &t,
        "/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password=aa",
    )
    .await;
    assert_oauth_error(s, &b, 400, "invalid_grant");
    t.stop().await;
}

#[tokio::test]
async fn token_refusals_speak_oauth2() {
    let t = start().await;
    // Another plugin's user with the same name and password is not this plugin's.
    let (s, _) = admin(
        &t,
        Method::POST,
        &format!("{BASE}/logins"),
        Some(json!({"realm": "xlink", "kind": "user", "name": "bb", "secret": "bb"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, b) = admin(
        &t,
        Method::POST,
        &format!("{BASE}/logins"),
        Some(json!({"realm": "ubtech", "kind": "user", "name": "aa", "secret": "again"})),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    let cases: &[(&str, u16, &str)] = &[
        (
            "client_id=mobile_1&client_secret=wrong&grant_type=password&username=aa&password=aa",
            401,
            "invalid_client",
        ),
        (
            "client_id=nobody&client_secret=secret_1&grant_type=password&username=aa&password=aa",
            401,
            "invalid_client",
        ),
        (
            "grant_type=password&username=aa&password=aa",
            401,
            "invalid_client",
        ),
        (
            "client_id=mobile_1&grant_type=password&username=aa&password=aa",
            401,
            "invalid_client",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password=ab",
            400,
            "invalid_grant",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&grant_type=password&username=zz&password=aa",
            400,
            "invalid_grant",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&grant_type=password&username=bb&password=bb",
            400,
            "invalid_grant",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&grant_type=client_credentials",
            400,
            "unsupported_grant_type",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&grant_type=authorization_code&code=x",
            400,
            "unsupported_grant_type",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&username=aa&password=aa",
            400,
            "invalid_request",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa",
            400,
            "invalid_request",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&grant_type=refresh_token",
            400,
            "invalid_request",
        ),
        (
            "client_id=mobile_1&client_secret=secret_1&grant_type=refresh_token&refresh_token=0123456789abcdef0123456789abcdef",
            400,
            "invalid_grant",
        ),
    ];
    for (query, status, error) in cases {
        let (s, b) = get(&t, &format!("/oauth/token?{query}")).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (*status, Some(*error)),
            "{query}: {b}"
        );
        assert!(b.get("access_token").is_none());
    }
    // A method the token endpoint does not take, and a body over the host's limit: OAuth2
    // errors too, since OAuth2 libraries parse every token answer as one.
    let r = t.http.delete(t.url("/oauth/token")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "invalid_request", "{b}");
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&username={}",
            "a".repeat(2 << 20)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "invalid_request", "{b}");
    assert!(b["error_description"].is_string(), "{b}");
    t.stop().await;
}

/// Upload a file through the admin API; answers its sha256.
async fn blob(t: &TestServer, content: &str) -> String {
    let b: Value = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .bearer_auth(OPERATOR_KEY)
        .body(content.as_bytes().to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    b["sha256"].as_str().unwrap().to_string()
}

async fn make_product(t: &TestServer, sn: &str) {
    let (s, b) = admin(
        t,
        Method::POST,
        &format!("{BASE}/products"),
        Some(json!({"sn": sn})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
}

/// An online release of `product` (a patch when `from` is given) with `content` as its file.
async fn release(
    t: &TestServer,
    product: &str,
    from: Option<&str>,
    to: &str,
    content: &str,
) -> i64 {
    let sha = blob(t, content).await;
    let (s, b) = admin(
        t,
        Method::POST,
        &format!("{BASE}/releases"),
        Some(json!({
            "product": product, "module": "mcu", "version": to, "from_version": from,
            "blob_sha256": sha, "status": "online", "name": FILE
        })),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_i64().unwrap()
}

async fn campaign(t: &TestServer, release: i64, scope: Value) -> i64 {
    let (s, c) = admin(
        t,
        Method::POST,
        &format!("{BASE}/campaigns"),
        Some(json!({"name": "robots", "release_id": release, "mode": "auto", "scope": scope})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (s, c) = admin(
        t,
        Method::POST,
        &format!("{BASE}/campaigns/{id}/actions/start"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{c}");
    id
}

/// The download answer split into (code, urls, ids).
async fn download(
    t: &TestServer,
    token: &str,
    language: &str,
    version: &str,
    robot: &str,
) -> (String, Vec<String>, Vec<String>) {
    let (s, b) = get(t, &download_query(token, language, version, robot)).await;
    assert_eq!(s, 200, "{b}");
    let split = |v: &Value| -> Vec<String> {
        v.as_str()
            .unwrap_or_default()
            .split(';')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    (
        b["code"].as_str().unwrap().to_string(),
        split(&b["data"]),
        split(&b["id"]),
    )
}

async fn job_of(t: &TestServer, campaign: i64, robot: &str) -> Value {
    let (s, b) = admin(
        t,
        Method::GET,
        &format!("{BASE}/campaigns/{campaign}/jobs?device={robot}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b["items"][0].clone()
}

async fn module_version(t: &TestServer, product: &str, robot: &str, module: &str) -> Value {
    let (s, d) = admin(
        t,
        Method::GET,
        &format!("{BASE}/products/{product}/devices/{robot}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{d}");
    d["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == module)
        .map(|m| m["version"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn download_answers_the_shortest_patch_chain_and_every_code() {
    let t = start().await;
    let cn = product("CN");
    make_product(&t, &cn).await;
    let full = release(&t, &cn, None, "19", "full package 19").await;
    let p18_19 = release(&t, &cn, Some("18"), "19", "patch 18-19").await;
    let p17_18 = release(&t, &cn, Some("17"), "18", "patch 17-18").await;
    let p17_19 = release(&t, &cn, Some("17"), "19", "patch 17-19").await;
    let p16_17 = release(&t, &cn, Some("16"), "17", "patch 16-17").await;
    let c = campaign(&t, full, json!({"type": "all"})).await;
    let (tok, _) = token(&t).await;

    // One patch.
    let (code, urls, ids) = download(&t, &tok, "CN", "18", "robot-18").await;
    assert_eq!(
        (code.as_str(), ids.clone()),
        ("100", vec![p18_19.to_string()])
    );
    // Two competing chains from 17 (17->18->19 and 17->19): the shorter wins.
    let (_, _, ids) = download(&t, &tok, "CN", "17", "robot-17").await;
    assert_eq!(ids, vec![p17_19.to_string()]);
    // Several patches in install order.
    let (code, urls16, ids) = download(&t, &tok, "CN", "16", "robot-16").await;
    assert_eq!(code, "100");
    assert_eq!(ids, vec![p16_17.to_string(), p17_19.to_string()]);
    assert_eq!(urls16.len(), 2);
    // A gap (nothing leaves 15): the full package.
    let (_, _, ids) = download(&t, &tok, "CN", "15", "robot-15").await;
    assert_eq!(ids, vec![full.to_string()]);
    // Already current: "100" with nothing to fetch.
    let (s, b) = get(&t, &download_query(&tok, "CN", "19", "robot-19")).await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"code": "100", "data": "", "id": ""}));
    // Withdrawing the direct patch makes the two-step chain the shortest.
    let (s, _) = admin(
        &t,
        Method::PATCH,
        &format!("{BASE}/releases/{p17_19}"),
        Some(json!({"status": "invalid"})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, _, ids) = download(&t, &tok, "CN", "17", "robot-17b").await;
    assert_eq!(ids, vec![p17_18.to_string(), p18_19.to_string()]);

    // The URLs are this server's own blobs, and Range works on them.
    assert!(urls[0].starts_with(&t.server.url()), "{}", urls[0]);
    let body = t
        .http
        .get(&urls16[0])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "patch 16-17");
    let r = t
        .http
        .get(&urls16[1])
        .header("range", "bytes=6-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.text().await.unwrap(), "17-19");

    // Robots are registered with both versions, and have jobs in the campaign.
    assert_eq!(module_version(&t, &cn, "robot-16", "mcu").await, "16");
    assert_eq!(module_version(&t, &cn, "robot-16", "sub").await, "1");
    assert_eq!(job_of(&t, c, "robot-16").await["state"], "notified");
    let (_, stats) = admin(&t, Method::GET, &format!("{BASE}/campaigns/{c}/jobs"), None).await;
    assert_eq!(stats["total"], 5, "five robots below 19 joined: {stats}");

    // "104": the package and file exist, but not in this language (no product at all, or a
    // product without releases).
    let (code, _, _) = download(&t, &tok, "EN", "17", "robot-en").await;
    assert_eq!(code, "104");
    make_product(&t, &product("JP")).await;
    let (code, _, _) = download(&t, &tok, "JP", "17", "robot-jp").await;
    assert_eq!(code, "104");
    // "102": an unknown package, or a version newer than any release.
    let (s, b) = get(
        &t,
        &download_query(&tok, "CN", "6", "r").replace(PACKAGE, "com.ubtechinc.unknown"),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (200, Some("102")), "{b}");
    // Like a download answer, a refusal carries `id` (empty): robots read it unconditionally.
    assert_eq!(b["id"], "", "{b}");
    let (code, _, _) = download(&t, &tok, "CN", "25", "robot-25").await;
    assert_eq!(code, "102");

    // "103": a newer release, but no campaign reaches the robot.
    let de = product("DE");
    make_product(&t, &de).await;
    let de_full = release(&t, &de, None, "19", "DE 19").await;
    let (code, _, _) = download(&t, &tok, "DE", "17", "robot-a").await;
    assert_eq!(code, "103");
    let (code, _, _) = download(&t, &tok, "DE", "17", "robot-b").await;
    assert_eq!(code, "103");
    // An allow-list campaign lets exactly the listed robot through.
    campaign(
        &t,
        de_full,
        json!({"type": "devices", "value": ["robot-a"]}),
    )
    .await;
    let (code, _, ids) = download(&t, &tok, "DE", "17", "robot-a").await;
    assert_eq!((code.as_str(), ids), ("100", vec![de_full.to_string()]));
    let (code, _, _) = download(&t, &tok, "DE", "17", "robot-b").await;
    assert_eq!(code, "103");
    t.stop().await;
}

#[tokio::test]
async fn download_refuses_bad_input_without_recording_anything() {
    let t = start().await;
    let cn = product("CN");
    make_product(&t, &cn).await;
    let full = release(&t, &cn, None, "19", "full").await;
    campaign(&t, full, json!({"type": "all"})).await;
    let (tok, _) = token(&t).await;
    let full_query = download_query(&tok, "CN", "17", "robot-x");
    for name in [
        "package_name",
        "version",
        "file_name",
        "language",
        "robot_version",
        "robot_id",
    ] {
        // Drop the parameter entirely, then send it blank.
        let without: Vec<&str> = full_query
            .split(['?', '&'])
            .skip(1)
            .filter(|kv| !kv.starts_with(&format!("{name}=")))
            .collect();
        let (s, b) = get(&t, &format!("/file/download?{}", without.join("&"))).await;
        assert_eq!((s, b["code"].as_str()), (400, Some("500")), "{name}: {b}");
        assert!(b["data"].as_str().unwrap().contains(name), "{b}");
        let blank = format!("/file/download?{}&{name}=", without.join("&"));
        assert_eq!(get(&t, &blank).await.0, 400, "{name} blank");
    }
    // No token, a forged one.
    let (s, b) = get(&t, &full_query.replace(&format!("access_token={tok}&"), "")).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("103")), "{b}");
    let forged = full_query.replace(&tok, "10bb2da80c1a442e99a4d914451e5fbe");
    let (s, b) = get(&t, &forged).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("103")), "{b}");
    // Nothing of robot-x was recorded by the refused calls.
    let (s, _) = admin(
        &t,
        Method::GET,
        &format!("{BASE}/products/{cn}/devices/robot-x"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    t.stop().await;
}

#[tokio::test]
async fn callbacks_move_the_robots_jobs() {
    let t = start().await;
    let cn = product("CN");
    make_product(&t, &cn).await;
    let full = release(&t, &cn, None, "19", "full 19").await;
    let p16_17 = release(&t, &cn, Some("16"), "17", "patch 16-17").await;
    let p17_19 = release(&t, &cn, Some("17"), "19", "patch 17-19").await;
    let c = campaign(&t, full, json!({"type": "all"})).await;
    let (tok, _) = token(&t).await;
    for robot in ["walker", "failer", "waiter"] {
        let (code, _, _) = download(&t, &tok, "CN", "16", robot).await;
        assert_eq!(code, "100");
    }
    let callback = |id: i64, robot: &str, code: &str| {
        format!("/file/callback?access_token={tok}&id={id}&robot_id={robot}&code={code}")
    };

    // The first patch of a two-patch chain: installing, the robot now runs 17.
    let (s, b) = post(&t, &callback(p16_17, "walker", "1")).await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"code": "100", "data": "regisiter information"}));
    assert_eq!(job_of(&t, c, "walker").await["state"], "installing");
    assert_eq!(module_version(&t, &cn, "walker", "mcu").await, "17");
    // The last one: succeeded, on 19; the next download has nothing to do.
    post(&t, &callback(p17_19, "walker", "1")).await;
    let job = job_of(&t, c, "walker").await;
    assert_eq!(
        (job["state"].as_str(), job["result_code"].as_i64()),
        (Some("succeeded"), Some(1))
    );
    assert_eq!(job["version_after"], "19");
    assert_eq!(module_version(&t, &cn, "walker", "mcu").await, "19");
    let (code, urls, _) = download(&t, &tok, "CN", "19", "walker").await;
    assert_eq!((code.as_str(), urls.len()), ("100", 0));
    // A retransmitted success changes nothing and is still acknowledged.
    let (s, b) = post(&t, &callback(p17_19, "walker", "1")).await;
    assert_eq!((s, b["code"].as_str()), (200, Some("100")));

    // 2 failure, reported by following the callback as a link (GET), as the spec prints it.
    let (s, b) = get(&t, &callback(p16_17, "failer", "2")).await;
    assert_eq!((s, b["code"].as_str()), (200, Some("100")), "{b}");
    let job = job_of(&t, c, "failer").await;
    assert_eq!(
        (job["state"].as_str(), job["result_code"].as_i64()),
        (Some("failed"), Some(2))
    );
    // 0 no status keeps the job notified; 3 not updated yet moves it to downloading.
    post(&t, &callback(p16_17, "waiter", "0")).await;
    let job = job_of(&t, c, "waiter").await;
    assert_eq!(
        (
            job["state"].as_str(),
            job["result_code"].as_i64(),
            job["result_text"].as_str()
        ),
        (Some("notified"), Some(0), Some("no status"))
    );
    post(&t, &callback(p16_17, "waiter", "3")).await;
    let job = job_of(&t, c, "waiter").await;
    assert_eq!(
        (job["state"].as_str(), job["result_code"].as_i64()),
        (Some("downloading"), Some(3))
    );
    // An unknown release id: "102".
    let (s, b) = post(&t, &callback(23_000, "waiter", "1")).await;
    assert_eq!((s, b["code"].as_str()), (200, Some("102")), "{b}");
    assert_eq!(b["id"], "", "{b}");
    // A robot never seen here (updated some other way) is registered: "101", created.
    let (s, b) = post(&t, &callback(p17_19, "sideloaded", "1")).await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"code": "101", "data": "regisiter information"}));
    assert_eq!(module_version(&t, &cn, "sideloaded", "mcu").await, "19");
    let (_, b) = post(&t, &callback(p17_19, "sideloaded", "1")).await;
    assert_eq!(b["code"], "100", "known from now on");
    // Bad code, missing parameters, bad token.
    let (s, b) = post(&t, &callback(p16_17, "waiter", "7")).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("500")), "{b}");
    let (s, _) = post(
        &t,
        &format!("/file/callback?access_token={tok}&id={p16_17}&code=1"),
    )
    .await;
    assert_eq!(s, 400);
    let (s, b) = post(&t, &callback(p16_17, "waiter", "1").replace(&tok, "nope")).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("103")));
    assert_eq!(
        job_of(&t, c, "waiter").await["state"],
        "downloading",
        "refusals changed nothing"
    );
    t.stop().await;
}

#[tokio::test]
async fn another_plugins_token_is_refused() {
    let t = TestServer::start(Options {
        plugins: vec![("ubtech.wasm", "ubtech"), ("probe.wasm", "probe")],
        ..Default::default()
    })
    .await;
    for (realm, kind, name, secret) in [
        ("probe", "user", "aa", "aa"),
        ("ubtech", "client", "mobile_1", "secret_1"),
    ] {
        let (s, _) = admin(
            &t,
            Method::POST,
            &format!("{BASE}/logins"),
            Some(json!({"realm": realm, "kind": kind, "name": name, "secret": secret})),
        )
        .await;
        assert_eq!(s, 201);
    }
    // A real token, issued by the probe plugin for the same user name and password.
    let r = t
        .http
        .post(t.url("/probe/password-grant"))
        .json(&json!({"client": null, "username": "aa", "password": "aa"}))
        .send()
        .await
        .unwrap();
    let g: Value = r.json().await.unwrap();
    let foreign = g["ok"]["access_token"]
        .as_str()
        .expect("probe issued a token");
    let (s, b) = get(&t, &download_query(foreign, "CN", "6", "r1")).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("103")), "{b}");
    // And its refresh token is no UBTech refresh token either.
    let refresh = g["ok"]["refresh_token"].as_str().unwrap();
    let (s, b) = get(
        &t,
        &format!("/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );
    t.stop().await;
}

/// Login names belong to the tenant: two tenants each have a client `mobile_1` and a user
/// `aa`, each logs in to its own, and a client of one with a user of the other is refused
/// exactly as a wrong password is (nothing says the user exists elsewhere).
#[tokio::test]
async fn logins_are_per_tenant() {
    let t = start().await;
    let globex = "/admin/api/v1/tenants/globex/logins";
    for (kind, name, secret) in [
        ("client", "mobile_1", "globex-secret"),
        ("user", "aa", "globex-pw"),
    ] {
        let (s, b) = admin(
            &t,
            Method::POST,
            globex,
            Some(json!({"realm": "ubtech", "kind": kind, "name": name, "secret": secret})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = admin(
        &t,
        Method::POST,
        globex,
        Some(json!({"realm": "ubtech", "kind": "user", "name": "aa", "secret": "again"})),
    )
    .await;
    assert_eq!(s, 409, "a tenant's names stay unique: {b}");
    let grant = |client_secret: &str, password: &str| {
        format!(
            "/oauth/token?client_id=mobile_1&client_secret={client_secret}&grant_type=password&username=aa&password={password}"
        )
    };
    let (acme_access, _) = token(&t).await;
    let (s, b) = get(&t, &grant("globex-secret", "globex-pw")).await;
    assert_eq!(s, 200, "{b}");
    assert_ne!(b["access_token"].as_str().unwrap(), acme_access);
    let (s, wrong) = get(&t, &grant("secret_1", "not-the-password")).await;
    assert_oauth_error(s, &wrong, 400, "invalid_grant");
    let (s, cross) = get(&t, &grant("secret_1", "globex-pw")).await;
    assert_oauth_error(s, &cross, 400, "invalid_grant");
    assert_eq!(
        cross, wrong,
        "a user of another tenant is as unknown as none"
    );
    let (s, cross) = get(&t, &grant("globex-secret", "aa")).await;
    assert_eq!(cross, wrong, "{s}");
    let (s, b) = get(&t, &grant("nope", "aa")).await;
    assert_oauth_error(s, &b, 401, "invalid_client");
    t.stop().await;
}
