//! The dashboard at `/ui`: who may see it (an operator key, once, in a cookie; a revoked key
//! ends the session; actions only from its own pages), what its pages and chart data say
//! about a campaign MXChip devices work through, and a real headless Chromium, driven by
//! Playwright, logging in, checking a running campaign's numbers against the admin API,
//! pausing it and saving screenshots.

use std::path::PathBuf;
use std::time::Duration;

use ota_tests::browser;
use ota_tests::{API_KEY, OPERATOR_KEY, Options, PRODUCT, TENANT, TestServer, admin, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "/admin/api/v1/tenants/acme";

async fn start() -> TestServer {
    TestServer::start(Options {
        plugins: vec![("mxchip.wasm", "mxchip")],
        configure: Box::new(|f| {
            f.scheduler.interval_ms = 100;
            f.scheduler.progress_sample_secs = 1;
        }),
        ..Default::default()
    })
    .await
}

/// A client that keeps cookies and does not follow redirects, so each answer is seen.
fn browserish() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Log `c` in with `key`: the status and `Location` of the answer.
async fn log_in(t: &TestServer, c: &reqwest::Client, key: &str, next: &str) -> (u16, String) {
    let r = c
        .post(t.url("/ui/login"))
        .form(&[("key", key), ("next", next)])
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), to)
}

/// GET a dashboard path: status, `Location` and body.
async fn page(t: &TestServer, c: &reqwest::Client, path: &str) -> (u16, String, String) {
    let r = c.get(t.url(path)).send().await.unwrap();
    let to = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), to, r.text().await.unwrap())
}

/// An MXChip device check on firmware `mcu`; answers whether an update was offered.
async fn check(t: &TestServer, token: &str, device: &str, mcu: &str) -> bool {
    let r = t
        .http
        .get(t.url(&format!(
            "/api/v1/ota/device/?product_id={PRODUCT}&wifi_version=5.0&mcu_version={mcu}&device_id={device}"
        )))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    b["data"]["need_ota"] == json!(true)
}

/// An MXChip version report: the device now runs `mcu`.
async fn report(t: &TestServer, token: &str, device: &str, mcu: &str) {
    let r = t
        .http
        .put(t.url("/api/v1/ota/version/"))
        .header("Authorization", format!("token {token}"))
        .json(&json!({"device_id": device, "product_id": PRODUCT, "wifi_version": "5.0", "mcu_version": mcu}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The campaign's job counts as the admin API gives them.
async fn by_state(t: &TestServer, id: i64) -> Value {
    let (s, b) = admin(t, Method::GET, &format!("{ADMIN}/campaigns/{id}"), None).await;
    assert_eq!(s, 200, "{b}");
    b["stats"]["by_state"].clone()
}

/// The chart data of campaign `id` (the scheduler's samples and this moment).
async fn series(t: &TestServer, c: &reqwest::Client, id: i64) -> Value {
    let (s, _, body) = page(t, c, &format!("/ui/campaigns/{id}/series")).await;
    assert_eq!(s, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Move the clock a minute on and wait until the scheduler has sampled the campaign again.
async fn next_sample(t: &TestServer, c: &reqwest::Client, id: i64) {
    let before = series(t, c, id).await["t"].as_array().unwrap().len();
    t.clock.advance_secs(60);
    assert!(
        eventually(Duration::from_secs(10), || async {
            series(t, c, id).await["t"].as_array().unwrap().len() > before
        })
        .await,
        "no new progress sample"
    );
}

/// Ten MXChip devices, a release rolled out by an operator's campaign to 80% of them with a
/// failure guard at 50%: five succeed, two time out, one is still notified. Answers the
/// campaign id and a logged-in dashboard client.
async fn running_campaign(t: &TestServer) -> (i64, reqwest::Client) {
    let (token, _) = crate::mxchip::console_token(t).await;
    // The devices register on their first check, before any firmware exists.
    for n in 1..=10 {
        assert!(!check(t, &token, &format!("d-{n}"), "1.0.1").await);
    }
    let (s, rel) = admin(
        t,
        Method::POST,
        &format!("{ADMIN}/releases"),
        Some(json!({"product": PRODUCT, "module": "mcu", "version": "1.0.9", "name": "Spring fixes",
                    "url": "https://cdn.example/fw-1.0.9.bin", "md5": "c".repeat(32), "size": 524288})),
    )
    .await;
    assert_eq!(s, 201, "{rel}");
    let release = rel["id"].as_i64().unwrap();
    let path = format!("{ADMIN}/releases/{release}");
    let (s, b) = admin(t, Method::PATCH, &path, Some(json!({"status": "online"}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, c) = admin(
        t,
        Method::POST,
        &format!("{ADMIN}/campaigns"),
        Some(json!({"name": "mcu 1.0.9 to the fleet", "release_id": release, "mode": "auto",
                    "scope": {"type": "all"}, "retries": 0, "timeout_secs": 3600,
                    "waves": {"initial_percent": 80, "step": 10, "interval_secs": 86400, "max_failure_pct": 50}})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (s, b) = admin(
        t,
        Method::POST,
        &format!("{ADMIN}/campaigns/{id}/actions/start"),
        None,
    )
    .await;
    assert_eq!((s, &b["status"]), (200, &json!("running")), "{b}");

    let ui = browserish();
    assert_eq!(log_in(t, &ui, OPERATOR_KEY, "").await.0, 303);
    next_sample(t, &ui, id).await;
    for n in 1..=7 {
        assert!(check(t, &token, &format!("d-{n}"), "1.0.1").await);
    }
    next_sample(t, &ui, id).await;
    for n in 3..=7 {
        report(t, &token, &format!("d-{n}"), "1.0.9").await;
    }
    next_sample(t, &ui, id).await;
    // Past the per-device timeout: the two jobs still open time out (2 of 7 finished
    // failing, under the guard's 50%).
    t.clock.advance_secs(3_601);
    assert!(
        eventually(Duration::from_secs(10), || async {
            by_state(t, id).await["timed-out"] == json!(2)
        })
        .await
    );
    assert!(check(t, &token, "d-8", "1.0.1").await);
    // The wave admitted eight: the last two are not offered the update yet.
    assert!(!check(t, &token, "d-9", "1.0.1").await);
    next_sample(t, &ui, id).await;
    assert_eq!(
        by_state(t, id).await,
        json!({"timed-out": 2, "succeeded": 5, "notified": 1})
    );
    (id, ui)
}

#[tokio::test]
async fn pages_need_a_live_operator_key_and_actions_their_own_origin() {
    let t = start().await;
    let c = browserish();
    // Not logged in: a page goes to the form and back; htmx is told where to go.
    let (s, to, _) = page(&t, &c, "/ui/campaigns").await;
    assert_eq!((s, to.as_str()), (303, "/ui/login?next=%2Fui%2Fcampaigns"));
    let r = c
        .get(t.url("/ui/campaigns/rows"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["hx-redirect"], "/ui/login");
    let (s, _, body) = page(&t, &c, "/ui/login").await;
    assert!(s == 200 && body.contains("name=\"key\""), "{body}");
    // A tenant's key is not an operator's; nor is a made-up one.
    for key in [API_KEY, "nonsense"] {
        let r = c
            .post(t.url("/ui/login"))
            .form(&[("key", key)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("not a live operator API key")
        );
    }
    // An operator key logs in, returning to where it was sent from (and only ever to /ui).
    let (s, to) = log_in(&t, &c, OPERATOR_KEY, "/ui/plugins").await;
    assert_eq!((s, to.as_str()), (303, "/ui/plugins"));
    let (s, to) = log_in(&t, &c, OPERATOR_KEY, "https://evil.example/").await;
    assert_eq!((s, to.as_str()), (303, "/ui/campaigns"));
    let (s, _, body) = page(&t, &c, "/ui/plugins").await;
    assert_eq!(s, 200, "{body}");
    let contract = format!("ota:dialect@{}", ota_host::runtime::bindings::CONTRACT);
    assert!(
        body.contains("data-plugin=\"mxchip\"") && body.contains(&contract),
        "{body}"
    );
    let r = c.get(t.url("/ui/campaigns")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    // Nothing inline may run or style the page; nothing may frame it.
    for directive in [
        "default-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Unknown dashboard paths are the dashboard's own 404, never a plugin's.
    let (s, _, body) = page(&t, &c, "/ui/nothing/here").await;
    assert!(s == 404 && body.contains("no such page"), "{body}");
    // The vendored libraries and their licenses are served without a login.
    for asset in [
        "htmx-2.0.11.min.js",
        "uPlot-1.6.32.iife.min.js",
        "LICENSE.uPlot",
    ] {
        let r = t
            .http
            .get(t.url(&format!("/ui/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }

    // Uploaded files are served sandboxed: a page among them cannot act on the dashboard.
    let r = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .bearer_auth(OPERATOR_KEY)
        .body("<script>fetch('/ui/campaigns/1/actions/cancel', {method: 'POST'})</script>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sha = r.json::<Value>().await.unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .http
        .get(t.url(&format!("/blobs/{sha}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-security-policy"], "sandbox");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");

    // A campaign to act on.
    let (id, _) = running_campaign(&t).await;
    let action = |header: &'static str, value: &'static str| {
        c.post(t.url(&format!("/ui/campaigns/{id}/actions/pause")))
            .header(header, value)
            .header("HX-Request", "true")
            .send()
    };
    // From another site's page, by either header browsers send: refused, nothing changed.
    for (header, value) in [
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
    ] {
        let r = action(header, value).await.unwrap();
        assert_eq!(r.status(), 403, "{header}: {value}");
    }
    let (_, b) = admin(&t, Method::GET, &format!("{ADMIN}/campaigns/{id}"), None).await;
    assert_eq!(b["status"], "running");
    // From its own page: paused, the panel answering with the outcome.
    let own = format!("http://{}", t.server.addr);
    let r = c
        .post(t.url(&format!("/ui/campaigns/{id}/actions/pause")))
        .header("Origin", own.as_str())
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("Pause by ops: now paused."), "{body}");
    assert!(body.contains("data-action=\"resume\"") && !body.contains("data-action=\"pause\""));
    let (_, b) = admin(&t, Method::GET, &format!("{ADMIN}/campaigns/{id}"), None).await;
    assert_eq!(b["status"], "paused");
    // Pausing again is refused in the panel, not as a broken page.
    let r = c
        .post(t.url(&format!("/ui/campaigns/{id}/actions/pause")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Pause refused"));

    // The device search matches any identifier, case-insensitively; `%` is literal.
    let (s, _, body) = page(&t, &c, "/ui/devices?q=D-1").await;
    assert_eq!(s, 200);
    assert_eq!(body.matches("data-device=").count(), 2, "d-1 and d-10");
    let (_, _, body) = page(&t, &c, "/ui/devices/rows?q=%25").await;
    assert!(body.contains("No device matches"), "{body}");
    let (_, _, body) = page(&t, &c, "/ui/devices/rows?q=").await;
    assert_eq!(
        body.matches("data-device=").count(),
        10,
        "no text: every device"
    );
    let (_, _, body) = page(&t, &c, "/ui/releases").await;
    assert!(body.contains("Spring fixes") && body.contains("1.0.9") && body.contains(TENANT));

    // Logging out ends the session on the server: its token no longer opens a page.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain
        .post(t.url("/ui/login"))
        .form(&[("key", OPERATOR_KEY)])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(OPERATOR_KEY),
        "the key itself never goes to the browser"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let with = |path: &str| {
        plain
            .get(t.url(path))
            .header("Cookie", session.as_str())
            .send()
    };
    assert_eq!(with("/ui/releases").await.unwrap().status(), 200);
    let r = plain
        .post(t.url("/ui/logout"))
        .header("Cookie", session.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(with("/ui/releases").await.unwrap().status(), 303);

    // A second operator logs in; revoking their key ends their session at once.
    let (s, k) = admin(
        &t,
        Method::POST,
        "/admin/api/v1/api-keys",
        Some(json!({"name": "temp-ops"})),
    )
    .await;
    assert_eq!(s, 201, "{k}");
    let other = browserish();
    assert_eq!(
        log_in(&t, &other, k["key"].as_str().unwrap(), "").await.0,
        303
    );
    assert_eq!(page(&t, &other, "/ui/devices").await.0, 200);
    let key_id = k["info"]["id"].as_i64().unwrap();
    let (s, _) = admin(
        &t,
        Method::DELETE,
        &format!("/admin/api/v1/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, to, _) = page(&t, &other, "/ui/devices").await;
    assert_eq!((s, to.as_str()), (303, "/ui/login?next=%2Fui%2Fdevices"));
    t.stop().await;
}

#[tokio::test]
async fn the_chart_data_follows_the_campaign_through_time() {
    let t = start().await;
    let (id, ui) = running_campaign(&t).await;
    let s = series(&t, &ui, id).await;
    let times: Vec<f64> = s["t"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // Four samples, a minute or more apart, and this moment.
    assert!(times.len() >= 5, "{s}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{s}");
    let state = |name: &str| -> Vec<i64> {
        s["states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .map(|x| {
                x["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    let succeeded = state("succeeded");
    assert_eq!(succeeded.first(), Some(&0));
    assert_eq!(succeeded.last(), Some(&5));
    assert_eq!(state("timed-out").last(), Some(&2));
    let failure = s["failure"].as_array().unwrap();
    // Two timed out of seven finished.
    let last = failure.last().unwrap().as_f64().unwrap();
    assert!((last - 2.0 / 7.0).abs() < 1e-9, "{s}");
    assert_eq!(s["threshold"], json!(0.5));
    t.stop().await;
}

#[tokio::test]
async fn a_browser_logs_in_checks_a_running_campaign_and_pauses_it() {
    let Some(browser) = browser::browser() else {
        return;
    };
    let t = start().await;
    let (id, _) = running_campaign(&t).await;
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/dashboard_browser.py");
    // Replicas stamp their reports with the server's (manual) clock: let it run with real
    // time while the browser works, so two reports apart give the plugins page a rate.
    let clock = t.clock.clone();
    let ticking = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            clock.advance_secs(1);
        }
    });
    // The server runs on this test's runtime: the script runs beside it, not blocking it.
    // Its own process group, so a timeout ends Chromium too, not only the script.
    let child = tokio::process::Command::new(&browser.python)
        .process_group(0)
        .arg(&script)
        .env("BASE_URL", format!("http://{}", t.server.addr))
        .env("OPERATOR_KEY", OPERATOR_KEY)
        .env("TENANT", TENANT)
        .env("CAMPAIGN_ID", id.to_string())
        .env("CHROMIUM", &browser.chromium)
        .env("OUT_DIR", &out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let group = child.id().expect("the script is running");
    let Ok(done) = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output()).await
    else {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &format!("-{group}")])
            .status();
        panic!("the browser script did not finish within 4 minutes");
    };
    let done = done.unwrap();
    ticking.abort();
    let says = format!(
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(done.status.success(), "the browser script failed:\n{says}");
    // What the browser did, seen from the admin API.
    let (_, b) = admin(&t, Method::GET, &format!("{ADMIN}/campaigns/{id}"), None).await;
    assert_eq!(b["status"], "paused", "{b}");
    let (_, log) = admin(
        &t,
        Method::GET,
        &format!("{ADMIN}/campaigns/{id}/log"),
        None,
    )
    .await;
    assert!(log.to_string().contains("from the dashboard"), "{log}");
    for shot in [
        "01-login.png",
        "02-campaigns.png",
        "03-campaign.png",
        "04-paused.png",
        "05-devices.png",
        "06-plugins.png",
        "07-releases.png",
    ] {
        let bytes = std::fs::read(out.join(shot)).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{shot} was not saved"
        );
    }
    eprintln!("dashboard screenshots: {}", out.display());
    t.stop().await;
}
