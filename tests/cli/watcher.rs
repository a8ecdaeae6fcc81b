//! The folder watcher as the README's own run command meets it: a relative data dir (the
//! default `./ota-data`), plugins swapped and refused while it runs, and a log that stays
//! quiet: no ERROR on a clean start, one ERROR per refused file version, none for reads.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::BIN;

/// A custom section appended to a component: same code, new bytes (a "changed" plugin).
fn with_custom_section(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"ota-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(payload.len() as u8); // fits one LEB128 byte
    out.extend(payload);
    out
}

fn built(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(ota_host::bundled::BUILD_DIR).join(format!("ota_plugin_{name}.wasm")))
        .unwrap()
}

async fn wait_for(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn relative_data_dir_hot_swaps_and_logs_each_refusal_once() {
    let cwd = tempfile::tempdir().unwrap();
    let op = "watcher-test-operator-key-0123456789";
    std::fs::write(
        cwd.path().join("ota.toml"),
        format!("[[operator-keys]]\nname = \"ops\"\nkey = \"{op}\"\n"),
    )
    .unwrap();
    // Exactly the README's command, minus cargo: no --data-dir, so `./ota-data` relative to
    // the working directory.
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config", "ota.toml"])
        .current_dir(cwd.path())
        .env_remove("OTA_HOST_DATA_DIR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = super::capture_stderr(&mut child);
    let (url, _) = super::listening(&mut child);
    let plugins = cwd.path().join("ota-data/plugins");
    let http = reqwest::Client::new();
    let inventory = async || -> serde_json::Value {
        http.get(format!("{url}/admin/plugins"))
            .bearer_auth(op)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    // The host's own ERROR lines; a refused plugin's panic, which the SDK's hook logs
    // through the plugin's `log` import at load time, is counted apart.
    let errors = || -> Vec<String> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("ERROR") && !l.contains("panicked at"))
            .cloned()
            .collect()
    };
    let panics = || -> usize {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("ERROR") && l.contains("panicked at"))
            .count()
    };

    // A quiet second after start: reading the files to load them must not look like a change.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        errors(),
        Vec::<String>::new(),
        "a clean start logs no ERROR"
    );
    let first = inventory().await;
    assert_eq!(first["plugins"].as_array().unwrap().len(), 5, "{first}");
    assert_eq!(first["failures"], serde_json::json!([]), "{first}");

    // A changed bundled plugin is swapped in, not refused as a conflict with itself.
    let changed = with_custom_section(&std::fs::read(plugins.join("iotstack.wasm")).unwrap(), "v2");
    let tmp = plugins.join(".iotstack.upload");
    std::fs::write(&tmp, &changed).unwrap();
    std::fs::rename(&tmp, plugins.join("iotstack.wasm")).unwrap();
    let want = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&changed))
    };
    let swapped = wait_for(Duration::from_secs(20), async || {
        inventory().await["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "iotstack" && p["sha256"] == want.as_str())
    })
    .await;
    assert!(swapped, "{}", inventory().await);
    assert_eq!(errors(), Vec::<String>::new());

    // A file whose manifest traps is refused once, and reading it changes nothing.
    std::fs::write(plugins.join("bad-manifest.wasm"), built("bad_manifest")).unwrap();
    let refused = wait_for(Duration::from_secs(20), async || {
        inventory().await["failures"].as_array().unwrap().len() == 1
    })
    .await;
    assert!(refused, "{}", inventory().await);
    for _ in 0..5 {
        let _ = std::fs::read(plugins.join("bad-manifest.wasm")).unwrap();
        let _ = std::fs::read(plugins.join("iotstack.wasm")).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // `touch` changes metadata only.
    let f = std::fs::File::options()
        .write(true)
        .open(plugins.join("bad-manifest.wasm"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let errs = errors();
    assert_eq!(errs.len(), 1, "one ERROR per refused version: {errs:#?}");
    assert!(errs[0].contains("bad-manifest.wasm"), "{errs:?}");
    assert_eq!(
        panics(),
        1,
        "the author also learns why: the manifest's panic"
    );

    // New bytes are a new version: tried again, refused again, logged again once.
    std::fs::write(
        plugins.join("bad-manifest.wasm"),
        with_custom_section(&built("bad_manifest"), "again"),
    )
    .unwrap();
    let again = wait_for(Duration::from_secs(20), async || errors().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(again && errors().len() == 2, "{:#?}", errors());

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
}
