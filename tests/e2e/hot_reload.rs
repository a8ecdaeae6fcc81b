//! Hot loading over real files: replace a plugin under a steady stream of requests, refuse
//! broken and conflicting files while the old version keeps serving, unload removed files,
//! and reuse compiled code across restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ota_tests::{Options, TestServer, built_plugin, eventually};
use serde_json::Value;

fn with_misbehave() -> Options {
    Options {
        plugins: vec![
            ("iotstack.wasm", "iotstack"),
            ("misbehave.wasm", "misbehave"),
        ],
        // Four clients as fast as they can go from one address: not a flood to throttle here.
        configure: Box::new(|f| f.limits.requests_per_ip_per_sec = 0),
        ..Default::default()
    }
}

async fn ok_text(t: &TestServer) -> Option<String> {
    let r = t.http.get(t.url("/misbehave/ok")).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.text().await.ok()
}

async fn failure_for(t: &TestServer, file: &str) -> Option<String> {
    let (_, body) = t.admin_get("/admin/plugins").await;
    body["failures"].as_array()?.iter().find_map(|f| {
        f["file"]
            .as_str()?
            .ends_with(file)
            .then(|| f["reason"].as_str().unwrap_or("").to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_plugin_under_load_fails_no_request() {
    let t = Arc::new(TestServer::start(with_misbehave()).await);
    assert_eq!(ok_text(&t).await.as_deref(), Some("misbehave 0.1.0 ok"));

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, v1, v2) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (t, stop, ok, failed, v1, v2) = (
            t.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            v1.clone(),
            v2.clone(),
        );
        clients.push(tokio::spawn(async move {
            // Bounded: at most 20 000 requests per client even if `stop` never came.
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match ok_text(&t).await.as_deref() {
                    Some("misbehave 0.1.0 ok") => v1.fetch_add(1, Ordering::SeqCst),
                    Some("misbehave 2.0.0 ok") => v2.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                ok.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Atomic replace, as deploy tools do it: write aside, rename over.
    let tmp = t.plugins_dir().join(".misbehave.upload");
    std::fs::copy(built_plugin("misbehave-v2"), &tmp).unwrap();
    std::fs::rename(&tmp, t.plugins_dir().join("misbehave.wasm")).unwrap();
    let swapped = eventually(Duration::from_secs(20), || {
        let v2 = v2.clone();
        async move { v2.load(Ordering::SeqCst) > 50 }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    assert!(swapped, "version 2.0.0 never answered");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the swap"
    );
    assert!(v1.load(Ordering::SeqCst) > 0);
    // Once swapped, only the new version answers.
    assert_eq!(ok_text(&t).await.as_deref(), Some("misbehave 2.0.0 ok"));

    let (_, body) = t.admin_get("/admin/plugins").await;
    let m = body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "misbehave")
        .unwrap()
        .clone();
    assert_eq!(m["version"], "2.0.0");
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(built_plugin("misbehave-v2")).unwrap(),
        ))
    };
    assert_eq!(m["sha256"], Value::String(hash));
    Arc::into_inner(t).unwrap().stop().await;
}

#[tokio::test]
async fn broken_files_are_refused_and_the_old_version_keeps_serving() {
    let t = TestServer::start(with_misbehave()).await;
    let dir = t.plugins_dir();

    // Garbage over a serving plugin: refused, v1 keeps answering.
    std::fs::write(dir.join("misbehave.wasm"), b"this is not webassembly").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            failure_for(&t, "misbehave.wasm").await.is_some()
        })
        .await
    );
    let reason = failure_for(&t, "misbehave.wasm").await.unwrap();
    assert!(reason.contains("not a WebAssembly component"), "{reason}");
    assert_eq!(ok_text(&t).await.as_deref(), Some("misbehave 0.1.0 ok"));

    // A core module is not a component of our world.
    std::fs::write(dir.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    // A component whose manifest traps.
    std::fs::copy(built_plugin("bad-manifest"), dir.join("bad-manifest.wasm")).unwrap();
    // The same plugin name from a second file: refused at load with a clear message.
    std::fs::copy(built_plugin("iotstack"), dir.join("iotstack-copy.wasm")).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            failure_for(&t, "core.wasm").await.is_some()
                && failure_for(&t, "iotstack-copy.wasm").await.is_some()
                && failure_for(&t, "bad-manifest.wasm").await.is_some()
        })
        .await
    );
    let trapped = failure_for(&t, "bad-manifest.wasm").await.unwrap();
    assert!(
        trapped.starts_with("manifest call failed: plugin trapped"),
        "{trapped}"
    );
    let conflict = failure_for(&t, "iotstack-copy.wasm").await.unwrap();
    assert!(
        conflict.contains("route conflict") && conflict.contains("iotstack"),
        "{conflict}"
    );
    let (status, _) = t
        .post(
            "/api/v1/deployment/create",
            Some(ota_tests::API_KEY),
            r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"g"}"#,
        )
        .await;
    assert_eq!(status, 200, "the original iotstack keeps serving");

    // Removing the file unloads the plugin and clears its error.
    std::fs::remove_file(dir.join("misbehave.wasm")).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let r = t.http.get(t.url("/misbehave/ok")).send().await.unwrap();
            r.status() == 404
        })
        .await
    );
    assert!(failure_for(&t, "misbehave.wasm").await.is_none());

    // A new good file is picked up while running.
    std::fs::copy(built_plugin("misbehave-v2"), dir.join("m2.wasm")).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            ok_text(&t).await.as_deref() == Some("misbehave 2.0.0 ok")
        })
        .await
    );
    t.stop().await;
}

#[tokio::test]
async fn a_plugin_renamed_to_a_new_file_keeps_serving() {
    let t = TestServer::start(with_misbehave()).await;
    let dir = t.plugins_dir();
    // The new file is refused while the old one serves the same plugin name ...
    std::fs::copy(
        built_plugin("misbehave-v2"),
        dir.join("misbehave-renamed.wasm"),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            failure_for(&t, "misbehave-renamed.wasm").await.is_some()
        })
        .await
    );
    assert_eq!(ok_text(&t).await.as_deref(), Some("misbehave 0.1.0 ok"));
    // ... and takes over once the old file is gone.
    std::fs::remove_file(dir.join("misbehave.wasm")).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            ok_text(&t).await.as_deref() == Some("misbehave 2.0.0 ok")
        })
        .await
    );
    assert!(failure_for(&t, "misbehave-renamed.wasm").await.is_none());
    t.stop().await;
}

fn listing(dir: &std::path::Path) -> Vec<(String, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn compiled_plugins_are_cached_by_content_hash() {
    let t = TestServer::start(with_misbehave()).await;
    let cache = t.dir.path().join("data").join("cache");
    let before = listing(&cache);
    assert_eq!(
        before.len(),
        2,
        "one compiled artifact per plugin: {before:?}"
    );
    let config = ota_host::config::Config::from_parts(
        ota_tests::base_config(),
        ota_host::config::Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(t.dir.path().join("data")),
            plugins_dir: Some(t.plugins_dir()),
            ..Default::default()
        },
    )
    .unwrap();
    let TestServer { server, dir, .. } = t;
    server.shutdown().await;
    let again = ota_host::server::start(config, ota_host::clock::ManualClock::new(0))
        .await
        .unwrap();
    assert_eq!(again.registry.snapshot().plugins.len(), 2);
    // Same files, untouched: the restart deserialized instead of recompiling.
    assert_eq!(before, listing(&cache));
    again.shutdown().await;
    drop(dir);
}
