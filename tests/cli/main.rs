//! The `ota-host` binary as operators use it: provisioning subcommands, `plugin check`, and
//! `serve` with its printed address, seeded plugins folder and clean exit on SIGTERM.
//! (Declared as a test of the `ota-host` package so cargo builds the binary for it.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ota-host");

fn ota(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_check_validates_offline() {
    let dir = tempfile::tempdir().unwrap();
    let good = Path::new(ota_host::bundled::BUILD_DIR).join("ota_plugin_iotstack.wasm");
    let (ok, out, err) = ota(dir.path(), &["plugin", "check", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest["name"], "iotstack");
    assert_eq!(manifest["contract"], "ota:dialect@0.2.0");
    assert_eq!(manifest["routes"].as_array().unwrap().len(), 5);

    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"nope").unwrap();
    let (ok, _, err) = ota(dir.path(), &["plugin", "check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("refused") && err.contains("not a WebAssembly component"),
        "{err}"
    );
    assert!(
        !dir.path().join("ota.db").exists(),
        "check touches no database"
    );
}

#[tokio::test]
async fn provision_then_serve_then_stop() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(ota(&data, &["tenant", "create", "acme"]).0);
    let (ok, _, err) = ota(&data, &["tenant", "create", "acme"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    assert!(
        ota(
            &data,
            &[
                "product", "create", "--tenant", "acme", "P9", "--name", "Edge"
            ]
        )
        .0
    );
    let (ok, out, _) = ota(&data, &["product", "list", "--tenant", "acme"]);
    assert!(ok && out.contains("P9\tEdge"), "{out}");
    let (ok, key, err) = ota(
        &data,
        &["api-key", "create", "--tenant", "acme", "--name", "gw"],
    );
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("ota_") && key.len() > 30);
    let (ok, op, _) = ota(&data, &["api-key", "create", "--operator", "--name", "ops"]);
    assert!(ok);
    let op = op.trim().to_string();
    let (_, listing, _) = ota(&data, &["api-key", "list"]);
    assert!(!listing.contains(&key), "secrets are never listed");

    let firmware = dir.path().join("fw.bin");
    std::fs::write(&firmware, b"firmware image v1").unwrap();
    let (ok, _, err) = ota(
        &data,
        &[
            "blob",
            "put",
            firmware.to_str().unwrap(),
            "--md5",
            "00000000000000000000000000000000",
        ],
    );
    assert!(!ok && err.contains("declared md5"), "{err}");
    let (ok, out, err) = ota(&data, &["blob", "put", firmware.to_str().unwrap()]);
    assert!(ok, "{err}");
    let blob: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(blob["size"], 17);
    let sha = blob["sha256"].as_str().unwrap().to_string();

    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OTA_HOST_DATA_DIR", &data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let url = loop {
        let line = lines.next().expect("serve exited early").unwrap();
        printed.push(line.clone());
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("loaded plugin iotstack")),
        "{printed:?}"
    );
    assert!(
        data.join("plugins/iotstack.wasm").exists(),
        "plugins folder seeded"
    );

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/api/v1/deployment/create"))
        .header("X-API-Key", &key)
        .body(r#"{"ProductSN":"P9","DeviceSN":"gw-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{url}/admin/plugins"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{url}/blobs/{sha}")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"firmware image v1");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            child.try_wait().unwrap()
        })
        .expect("serve did not stop on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}
