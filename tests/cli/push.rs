//! `ota-host plugin push`, `rollback` and `pushed` against a running server on the same
//! database: what the command line pushes serves within seconds, without touching the
//! plugins folder by hand, and a rollback returns the previous version.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{ota, serve};

fn built(name: &str) -> String {
    Path::new(ota_host::bundled::BUILD_DIR)
        .join(format!("ota_plugin_{}.wasm", name.replace('-', "_")))
        .display()
        .to_string()
}

/// What `/misbehave/ok` answers, once it answers `want`, within five seconds.
async fn serves(url: &str, want: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if let Ok(r) = reqwest::get(format!("{url}/misbehave/ok")).await
            && r.status() == 200
            && r.text().await.unwrap_or_default() == want
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn pushes_and_rollbacks_from_the_command_line_reach_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Pushed before the server ever ran: it serves from the first start.
    let (ok, out, err) = ota(&data, &["plugin", "push", &built("misbehave")]);
    assert!(ok, "{err}");
    let pushed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&pushed["name"], &pushed["version"], &pushed["state"]),
        (
            &serde_json::json!("misbehave"),
            &serde_json::json!("0.1.0"),
            &serde_json::json!("serving")
        )
    );
    let (mut child, url, _) = serve(&data);
    assert!(serves(&url, "misbehave 0.1.0 ok").await);

    let (ok, _, err) = ota(&data, &["plugin", "push", &built("misbehave-v2")]);
    assert!(ok, "{err}");
    assert!(serves(&url, "misbehave 2.0.0 ok").await, "the second push");
    let (ok, out, err) = ota(&data, &["plugin", "rollback", "misbehave"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"0.1.0\""), "{out}");
    assert!(serves(&url, "misbehave 0.1.0 ok").await, "the rollback");
    let (ok, _, err) = ota(&data, &["plugin", "rollback", "misbehave"]);
    assert!(!ok && err.contains("no previous version"), "{err}");
    let (ok, out, _) = ota(&data, &["plugin", "pushed"]);
    assert!(ok);
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{out}");
    // A canary taking every request, ended, then again and promoted.
    let v2 = built("misbehave-v2");
    let (ok, out, err) = ota(&data, &["plugin", "push", &v2, "--canary", "100"]);
    assert!(ok && out.contains("\"canary\""), "{out}{err}");
    assert!(serves(&url, "misbehave 2.0.0 ok").await, "the canary");
    let (ok, _, err) = ota(&data, &["plugin", "rollback", "misbehave"]);
    assert!(ok, "{err}");
    assert!(serves(&url, "misbehave 0.1.0 ok").await, "the canary ended");
    let (ok, _, err) = ota(&data, &["plugin", "push", &v2, "--canary", "100"]);
    assert!(ok, "{err}");
    assert!(serves(&url, "misbehave 2.0.0 ok").await);
    let (ok, out, err) = ota(&data, &["plugin", "promote", "misbehave"]);
    assert!(ok && out.contains("\"serving\""), "{out}{err}");
    let (ok, _, err) = ota(&data, &["plugin", "push", &v2, "--canary", "101"]);
    assert!(!ok && err.contains("101"), "{err}");
    // Not a plugin: refused before anything is stored.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm junk").unwrap();
    let (ok, _, err) = ota(&data, &["plugin", "push", junk.to_str().unwrap()]);
    assert!(!ok && err.contains("refused"), "{err}");
    let _ = child.kill();
    let _ = child.wait();
}
