//! The IoTStack dialect over HTTP against `plugins/iotstack`: every endpoint of
//! `specs/iotstack.md` with the spec's example payloads, and each class of bad input.

use ota_host::config::{AuthMode, MountConfig};
use ota_tests::{API_KEY, OTHER_TENANT_KEY, Options, PRODUCT, T0_MILLIS, TestServer};
use serde_json::{Value, json};

/// The request behind the spec's `reinstall/create` example answer.
const CREATE_FIXTURE: &str = r#"{
    "GatewaySN": "abcdefg1hd",
    "ProductSN": "fqhmuglv1fybql33",
    "SoftwareVersion": "1.0",
    "OS": "linux",
    "CPUArch": "x86_64",
    "Mode": "native",
    "Password": "iotstack"
}"#;

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: u64) {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["Code"], want_code, "body: {body}");
    assert!(
        body["Message"].as_str().is_some_and(|m| !m.is_empty()),
        "error needs a message: {body}"
    );
}

/// Run `DownloadCmd`'s pieces by hand: the script URL it fetches, the device key in that URL
/// (`/install/<key>/iot_edge_process.sh`) and the secret `--config` stores (the spec's order:
/// ProductSN, GatewaySN, secret, password).
pub(crate) fn parse_download_cmd(cmd: &str) -> (String, String, String) {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let url = words[words.iter().position(|w| *w == "-O").unwrap() + 2].to_string();
    let key = url.rsplit('/').nth(1).unwrap().to_string();
    let cfg = words.iter().position(|w| *w == "--config").unwrap();
    (url, key, words[cfg + 3].to_string())
}

#[tokio::test]
async fn reinstall_create_answers_the_spec_shape_with_a_working_download_command() {
    let t = TestServer::start(Options::default()).await;
    let (status, body) = t
        .post("/api/v1/reinstall/create", Some(API_KEY), CREATE_FIXTURE)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Code"], 0);
    let data = &body["Data"];
    for (k, v) in [
        ("CPUArch", "x86_64"),
        ("Mode", "native"),
        ("OS", "linux"),
        ("Password", "iotstack"),
        ("Version", "1.0"),
        ("SoftwareVersion", "1.0"),
        ("Memory", ">= 128M"),
        ("RAM", ">= 128M"),
    ] {
        assert_eq!(data[k], v, "{k} in {data}");
    }
    let cmd = data["DownloadCmd"].as_str().unwrap();
    assert!(
        cmd.starts_with("wget -O iot_edge_process.sh http://127.0.0.1:"),
        "{cmd}"
    );
    assert!(
        cmd.contains("./iot_edge_process.sh --install x86_64 1.0 sh"),
        "{cmd}"
    );
    assert!(cmd.ends_with("./iot_edge_process.sh --start"), "{cmd}");
    let (url, device_key, secret) = parse_download_cmd(cmd);
    assert!(url.starts_with(&t.server.url()), "{url} is not this server");
    assert!(cmd.contains(&format!(
        "--config fqhmuglv1fybql33 abcdefg1hd {secret} iotstack"
    )));
    assert_eq!(device_key.len(), 16);
    assert_eq!(secret.len(), 16);

    // The script is served by the host and configured for this gateway.
    let script = t.http.get(&url).send().await.unwrap();
    assert_eq!(script.status(), 200);
    let text = script.text().await.unwrap();
    assert!(text.starts_with("#!/bin/sh"));
    assert!(text.contains(&format!("DEVICE_KEY='{device_key}'")));
    assert!(text.contains("/api/v1/deployment/report'"));
    assert!(
        !text.contains(&secret),
        "the secret must never be in the script"
    );
    let unknown = t
        .http
        .get(t.url("/install/nosuchkey/iot_edge_process.sh"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Creating again rotates the secret; the device key stays.
    let (_, again) = t
        .post("/api/v1/reinstall/create", Some(API_KEY), CREATE_FIXTURE)
        .await;
    let (_, key2, secret2) = parse_download_cmd(again["Data"]["DownloadCmd"].as_str().unwrap());
    assert_eq!(key2, device_key);
    assert_ne!(secret2, secret);
    t.stop().await;
}

#[tokio::test]
async fn reinstall_create_defaults_and_normalizes() {
    let t = TestServer::start(Options::default()).await;
    let (status, body) = t
        .post(
            "/api/v1/reinstall/create",
            Some(API_KEY),
            &json!({"GatewaySN": "gw-2", "ProductSN": PRODUCT, "SoftwareVersion": "2.1",
                    "OS": "Linux", "CPUArch": "armv8_64"})
            .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Data"]["Mode"], "native");
    assert_eq!(body["Data"]["Password"], "iotstack");
    assert_eq!(body["Data"]["OS"], "linux");
    assert_eq!(body["Data"]["CPUArch"], "ARMv8_64");

    // A password with shell metacharacters is quoted in the command, not executed.
    let (_, body) = t
        .post(
            "/api/v1/reinstall/create",
            Some(API_KEY),
            &json!({"GatewaySN": "gw-3", "ProductSN": PRODUCT, "SoftwareVersion": "2.1",
                    "OS": "linux", "CPUArch": "arm7", "Password": "p w'$(reboot)"})
            .to_string(),
        )
        .await;
    let cmd = body["Data"]["DownloadCmd"].as_str().unwrap();
    assert!(
        cmd.contains(r#"'p w'\''$(reboot)' && ./iot_edge_process.sh --start"#),
        "{cmd}"
    );

    // The installer keeps a version in a folder of its name: no spaces, slashes or `..`.
    for version in ["1.0; reboot", "../1", ".hidden", "8.0 beta"] {
        let (status, body) = t
            .post(
                "/api/v1/reinstall/create",
                Some(API_KEY),
                &json!({"GatewaySN": "gw-4", "ProductSN": PRODUCT, "SoftwareVersion": version,
                        "OS": "linux", "CPUArch": "arm7"})
                .to_string(),
            )
            .await;
        assert_error(status, &body, 400, 1004);
    }
    t.stop().await;
}

#[tokio::test]
async fn reinstall_info_returns_the_stored_configuration() {
    let t = TestServer::start(Options::default()).await;
    t.post(
        "/api/v1/reinstall/create",
        Some(API_KEY),
        &json!({"GatewaySN": "abcdefg1hd", "ProductSN": PRODUCT, "SoftwareVersion": "1.0",
                "OS": "linux", "CPUArch": "X86_64", "Password": "s3cret"})
        .to_string(),
    )
    .await;
    let (status, body) = t
        .post(
            "/api/v1/reinstall/info",
            Some(API_KEY),
            r#"{"GatewaySN":"abcdefg1hd","ProductSN":"fqhmuglv1fybql33"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"Code": 0, "Data": {"DownloadInfo": {
            "CPUArch": "x86_64", "SoftwareVersion": "1.0", "OS": "linux",
            "RAM": ">= 128M", "Memory": ">= 128M", "Mode": "native", "Password": "s3cret"
        }}})
    );

    // Unknown gateway, unknown product, and another tenant's gateway: a clear 3001.
    for (key, body) in [
        (
            API_KEY,
            r#"{"GatewaySN":"nope","ProductSN":"fqhmuglv1fybql33"}"#,
        ),
        (API_KEY, r#"{"GatewaySN":"abcdefg1hd","ProductSN":"nope"}"#),
        (
            OTHER_TENANT_KEY,
            r#"{"GatewaySN":"abcdefg1hd","ProductSN":"fqhmuglv1fybql33"}"#,
        ),
    ] {
        let (status, answer) = t.post("/api/v1/reinstall/info", Some(key), body).await;
        assert_error(status, &answer, 404, 3001);
    }
    t.stop().await;
}

#[tokio::test]
async fn operator_settings_reach_the_plugin() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| {
            let mut m = MountConfig::default();
            m.settings.insert("memory".into(), "≥ 2 GB".into());
            m.settings.insert("ram".into(), "≥ 1 GB".into());
            f.plugins.insert("iotstack".into(), m);
        }),
        ..Default::default()
    })
    .await;
    let (_, body) = t
        .post("/api/v1/reinstall/create", Some(API_KEY), CREATE_FIXTURE)
        .await;
    assert_eq!(body["Data"]["Memory"], "≥ 2 GB");
    assert_eq!(body["Data"]["RAM"], "≥ 1 GB");
    t.stop().await;
}

#[tokio::test]
async fn deployments_move_through_their_statuses_with_a_log() {
    let t = TestServer::start(Options::default()).await;
    // The gateway's own credentials come from its install command.
    let (_, created) = t
        .post("/api/v1/reinstall/create", Some(API_KEY), CREATE_FIXTURE)
        .await;
    let (_, device_key, secret) =
        parse_download_cmd(created["Data"]["DownloadCmd"].as_str().unwrap());

    let (status, body) = t
        .post(
            "/api/v1/deployment/create",
            Some(API_KEY),
            r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"abcdefg1hd","KeepLocal":true}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Code"], 0);
    let id = body["Data"]["DeploymentID"]
        .as_u64()
        .expect("DeploymentID is an int");

    let info = |id: Value| {
        let t = &t;
        async move {
            t.post(
                "/api/v1/deployment/info",
                Some(API_KEY),
                &json!({ "DeploymentID": id }).to_string(),
            )
            .await
        }
    };
    let (status, body) = info(json!(id)).await;
    assert_eq!(status, 200, "{body}");
    let d = &body["Data"];
    assert_eq!(d["DeploymentID"], id);
    assert_eq!(d["Status"], "init");
    assert_eq!(d["CreateTime"], T0_MILLIS / 1000);
    assert_eq!(d["LastModifiedTime"], T0_MILLIS / 1000);
    assert_eq!(d["KeepLocal"], true);
    assert!(d["Log"].as_str().unwrap().contains("init"));

    // The gateway reports progress with Basic auth (what the install script sends).
    t.clock.advance_secs(30);
    let report = |status: &str, log: &str| {
        let body = json!({"DeploymentID": id, "Status": status, "Log": log}).to_string();
        let req = t
            .http
            .post(t.url("/api/v1/deployment/report"))
            .basic_auth(&device_key, Some(&secret))
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = report("processing", "pulling images").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Data"]["Status"], "processing");
    t.clock.advance_secs(30);
    let (status, body) = report("success", "all services up").await;
    assert_eq!(status, 200, "{body}");

    // A DeploymentID sent as a string is read too (lenient in what we accept).
    let (_, body) = info(json!(id.to_string())).await;
    let d = &body["Data"];
    assert_eq!(d["Status"], "success");
    assert_eq!(d["CreateTime"], T0_MILLIS / 1000);
    assert_eq!(d["LastModifiedTime"], T0_MILLIS / 1000 + 60);
    let log = d["Log"].as_str().unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[1].contains("processing: pulling images"), "{log}");
    assert!(lines[2].contains("success: all services up"), "{log}");

    // Final is final; a wrong secret is refused; nothing changes.
    let (status, body) = report("failed", "late").await;
    assert_error(status, &body, 409, 3009);
    let bad = t
        .http
        .post(t.url("/api/v1/deployment/report"))
        .basic_auth(&device_key, Some("wrongwrongwrong1"))
        .body(json!({"DeploymentID": id, "Status": "failed"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let (_, body) = info(json!(id)).await;
    assert_eq!(body["Data"]["Status"], "success");
    assert_eq!(body["Data"]["Log"].as_str().unwrap().lines().count(), 3);

    // Device credentials reach only their own device and cannot create anything.
    let other = t
        .post(
            "/api/v1/deployment/create",
            Some(API_KEY),
            r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"another-gw"}"#,
        )
        .await
        .1["Data"]["DeploymentID"]
        .as_u64()
        .unwrap();
    let r = t
        .http
        .post(t.url("/api/v1/deployment/info"))
        .basic_auth(&device_key, Some(&secret))
        .body(json!({ "DeploymentID": other }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = t
        .http
        .post(t.url("/api/v1/deployment/create"))
        .basic_auth(&device_key, Some(&secret))
        .body(r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"abcdefg1hd"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    t.stop().await;
}

#[tokio::test]
async fn unfinished_deployments_time_out_by_the_scheduler() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| f.scheduler.deployment_timeout_secs = 600),
        ..Default::default()
    })
    .await;
    let create = r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"gw-slow"}"#;
    let (_, a) = t
        .post("/api/v1/deployment/create", Some(API_KEY), create)
        .await;
    let a = a["Data"]["DeploymentID"].as_u64().unwrap();
    t.clock.advance_secs(300);
    let (_, b) = t
        .post("/api/v1/deployment/create", Some(API_KEY), create)
        .await;
    let b = b["Data"]["DeploymentID"].as_u64().unwrap();
    t.clock.advance_secs(301);
    assert_eq!(
        t.server.scheduler_tick().await,
        1,
        "only the first is overdue"
    );
    assert_eq!(
        t.server.scheduler_tick().await,
        0,
        "a transition applies once"
    );

    let status_of = |id: u64| {
        let t = &t;
        async move {
            let (_, body) = t
                .post(
                    "/api/v1/deployment/info",
                    Some(API_KEY),
                    &json!({ "DeploymentID": id }).to_string(),
                )
                .await;
            body["Data"].clone()
        }
    };
    let da = status_of(a).await;
    assert_eq!(da["Status"], "timeout");
    assert_eq!(da["LastModifiedTime"], T0_MILLIS / 1000 + 601);
    assert!(
        da["Log"]
            .as_str()
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .contains("timeout")
    );
    assert_eq!(status_of(b).await["Status"], "init");
    t.stop().await;
}

#[tokio::test]
async fn every_bad_input_class_gets_a_coded_error() {
    let t = TestServer::start(Options::default()).await;
    let cases: &[(&str, &str, u16, u64)] = &[
        // malformed JSON / not an object
        ("/api/v1/reinstall/create", "{\"GatewaySN\":", 400, 1001),
        ("/api/v1/deployment/info", "[1,2]", 400, 1001),
        ("/api/v1/deployment/create", "", 400, 1001),
        // missing required fields
        (
            "/api/v1/reinstall/create",
            r#"{"ProductSN":"fqhmuglv1fybql33","SoftwareVersion":"1","OS":"linux","CPUArch":"arm7"}"#,
            400,
            1002,
        ),
        ("/api/v1/reinstall/info", r#"{"GatewaySN":"x"}"#, 400, 1002),
        (
            "/api/v1/deployment/create",
            r#"{"ProductSN":"fqhmuglv1fybql33"}"#,
            400,
            1002,
        ),
        ("/api/v1/deployment/info", r#"{}"#, 400, 1002),
        // wrong types
        (
            "/api/v1/reinstall/create",
            r#"{"GatewaySN":12,"ProductSN":"fqhmuglv1fybql33","SoftwareVersion":"1","OS":"linux","CPUArch":"arm7"}"#,
            400,
            1003,
        ),
        (
            "/api/v1/deployment/create",
            r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"g","KeepLocal":"maybe"}"#,
            400,
            1003,
        ),
        (
            "/api/v1/deployment/info",
            r#"{"DeploymentID":"one"}"#,
            400,
            1003,
        ),
        (
            "/api/v1/deployment/info",
            r#"{"DeploymentID":-4}"#,
            400,
            1003,
        ),
        // unsupported enum values
        (
            "/api/v1/reinstall/create",
            r#"{"GatewaySN":"g","ProductSN":"fqhmuglv1fybql33","SoftwareVersion":"1","OS":"windows","CPUArch":"arm7"}"#,
            400,
            1004,
        ),
        (
            "/api/v1/reinstall/create",
            r#"{"GatewaySN":"g","ProductSN":"fqhmuglv1fybql33","SoftwareVersion":"1","OS":"linux","CPUArch":"mips"}"#,
            400,
            1004,
        ),
        (
            "/api/v1/reinstall/create",
            r#"{"GatewaySN":"g","ProductSN":"fqhmuglv1fybql33","SoftwareVersion":"1","OS":"linux","CPUArch":"arm7","Mode":"docker"}"#,
            400,
            1004,
        ),
        (
            "/api/v1/reinstall/create",
            r#"{"GatewaySN":"","ProductSN":"fqhmuglv1fybql33","SoftwareVersion":"1","OS":"linux","CPUArch":"arm7"}"#,
            400,
            1004,
        ),
        (
            "/api/v1/deployment/report",
            r#"{"DeploymentID":1,"Status":"timeout"}"#,
            400,
            1004,
        ),
        // unknown ids
        (
            "/api/v1/reinstall/create",
            r#"{"GatewaySN":"g","ProductSN":"nosuchproduct","SoftwareVersion":"1","OS":"linux","CPUArch":"arm7"}"#,
            404,
            3001,
        ),
        (
            "/api/v1/deployment/create",
            r#"{"ProductSN":"nosuchproduct","DeviceSN":"g"}"#,
            404,
            3001,
        ),
        (
            "/api/v1/deployment/info",
            r#"{"DeploymentID":424242}"#,
            404,
            3001,
        ),
        (
            "/api/v1/deployment/info",
            r#"{"DeploymentID":18446744073709551615}"#,
            404,
            3001,
        ),
    ];
    for (path, body, status, code) in cases {
        let (got_status, got) = t.post(path, Some(API_KEY), body).await;
        assert_eq!(
            (got_status, &got["Code"]),
            (*status, &json!(code)),
            "{path} {body} -> {got}"
        );
        assert!(
            got["Message"].as_str().is_some_and(|m| !m.is_empty()),
            "{got}"
        );
    }
    // Nothing was half-written by any of the refused requests.
    let (_, body) = t
        .post(
            "/api/v1/reinstall/info",
            Some(API_KEY),
            r#"{"GatewaySN":"g","ProductSN":"fqhmuglv1fybql33"}"#,
        )
        .await;
    assert_error(404, &body, 404, 3001);
    t.stop().await;
}

#[tokio::test]
async fn credentials_are_required_by_default() {
    let t = TestServer::start(Options::default()).await;
    let body = r#"{"DeploymentID":1}"#;
    let (status, answer) = t.post("/api/v1/deployment/info", None, body).await;
    assert_error(status, &answer, 401, 2001);
    let (status, answer) = t
        .post("/api/v1/deployment/info", Some("not-a-key"), body)
        .await;
    assert_error(status, &answer, 401, 2001);
    // Operator keys are for the admin API, not for dialects.
    let (status, answer) = t
        .post(
            "/api/v1/deployment/info",
            Some(ota_tests::OPERATOR_KEY),
            body,
        )
        .await;
    assert_error(status, &answer, 403, 2003);
    // Bearer works as well as X-API-Key.
    let r = t
        .http
        .post(t.url("/api/v1/deployment/create"))
        .bearer_auth(API_KEY)
        .body(r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"g"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    t.stop().await;
}

#[tokio::test]
async fn oversized_bodies_and_wrong_methods_get_the_dialect_shape() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| f.limits.max_body_bytes = 1024),
        ..Default::default()
    })
    .await;
    let big = format!(r#"{{"DeploymentID":1,"pad":"{}"}}"#, "x".repeat(4096));
    let (status, body) = t.post("/api/v1/deployment/info", Some(API_KEY), &big).await;
    assert_error(status, &body, 413, 1005);
    let r = t
        .http
        .get(t.url("/api/v1/deployment/info"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(status, &r.json().await.unwrap(), 405, 1006);
    let r = t.http.get(t.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    t.stop().await;
}

#[tokio::test]
async fn anonymous_mount_under_a_prefix() {
    let t = TestServer::start(Options {
        configure: Box::new(|f| {
            f.plugins.insert(
                "iotstack".into(),
                MountConfig {
                    prefix: "/iot".into(),
                    auth: AuthMode::Anonymous,
                    tenant: Some(ota_tests::TENANT.into()),
                    ..Default::default()
                },
            );
        }),
        ..Default::default()
    })
    .await;
    let (status, body) = t
        .post("/iot/api/v1/reinstall/create", None, CREATE_FIXTURE)
        .await;
    assert_eq!(status, 200, "{body}");
    let cmd = body["Data"]["DownloadCmd"].as_str().unwrap();
    // The script lives on the host; the report URL carries the mount prefix.
    let (url, _, _) = parse_download_cmd(cmd);
    let script = t.http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        script.contains("/iot/api/v1/deployment/report'"),
        "{script}"
    );
    let r = t
        .http
        .post(t.url("/api/v1/reinstall/create"))
        .body(CREATE_FIXTURE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "unprefixed paths are not mounted");
    t.stop().await;
}
