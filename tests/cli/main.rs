//! The `ota-host` binary as operators use it: provisioning subcommands, `plugin check`, and
//! `serve` with its printed address, seeded plugins folder and clean exit on SIGTERM.
//! (Declared as a test of the `ota-host` package so cargo builds the binary for it.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ota-host");

mod abuse;
mod diagnostics;
mod openapi;
mod oss2;
mod plugin_kit;
mod push;
#[path = "../support/python.rs"]
mod python;
mod secrets;
mod watcher;

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

/// Run a bash script of the suite (in a process group of its own, so that running out of
/// `budget` ends whatever it started), with `env` and `OTA_HOST_BIN` set to this build's
/// binary; answers what it printed, and fails the test when it fails or overruns.
fn run_script(script: &str, env: &[(&str, &str)], budget: std::time::Duration) -> String {
    use std::os::unix::process::CommandExt;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(script);
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("bash")
        .arg(&script)
        .env("OTA_HOST_BIN", BIN)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("bash runs {}: {e}", script.display()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > budget {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(s) => assert!(s.success(), "{} failed ({s}):\n{printed}", script.display()),
        None => panic!("{} took over {budget:?}:\n{printed}", script.display()),
    }
    printed
}

/// `bytes` with every `from` replaced by `to` (of the same length).
fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn plugin_check_validates_offline() {
    let dir = tempfile::tempdir().unwrap();
    let good = Path::new(ota_host::bundled::BUILD_DIR).join("ota_plugin_iotstack.wasm");
    let (ok, out, err) = ota(dir.path(), &["plugin", "check", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest["name"], "iotstack");
    assert_eq!(manifest["contract"], "ota:dialect@0.2.8");
    assert_eq!(manifest["needs"], "ota:dialect@0.2.7");
    // A plugin built against 0.2.4 that calls 0.2.4's additions needs 0.2.4.
    let old =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/contracts/probe-0.2.4.wasm");
    let (ok, out, err) = ota(dir.path(), &["plugin", "check", old.to_str().unwrap()]);
    assert!(ok, "{err}");
    let probe: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(probe["contract"], "ota:dialect@0.2.4");
    assert_eq!(probe["needs"], "ota:dialect@0.2.4");
    let routes = manifest["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 7);
    assert!(
        routes
            .iter()
            .any(|r| r["method"] == "*" && r["path"] == "/api/v1/{*rest}"),
        "{manifest}"
    );

    // A plugin calling a function this host lacks (as if built against a newer 0.2.x: the
    // iotstack component with one import renamed, same length) is refused, naming it.
    let bytes = std::fs::read(&good).unwrap();
    let renamed = replace_all(&bytes, b"next-deployment", b"next-teleporter");
    assert_ne!(renamed, bytes);
    let newer = dir.path().join("newer.wasm");
    std::fs::write(&newer, renamed).unwrap();
    let (ok, _, err) = ota(dir.path(), &["plugin", "check", newer.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains(
            "calls rollout.next-teleporter that this host (ota:dialect@0.2.8) does not have"
        ),
        "{err}"
    );

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
    // Characters a database URL would read as its own (sqlx decodes `%41`; `?` ends a path).
    let data = dir.path().join("data 100%41?#");
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
    let (ok, drf, err) = ota(
        &data,
        &[
            "api-key", "create", "--tenant", "acme", "--name", "mx", "--format", "hex40",
        ],
    );
    assert!(ok, "{err}");
    let drf = drf.trim();
    assert!(
        drf.len() == 40
            && drf
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{drf}"
    );

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

    let (mut child, url, printed) = serve(&data);
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
    // The CLI and the server used the data dir's own database file, and the server's reads
    // on the calling thread opened that same file (they fall back to the pool otherwise).
    assert!(data.join("ota.db").exists());
    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answered: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ota_db_fast_reads_total{result=\"answered\"} "))
        .unwrap_or_else(|| panic!("no fast reads counted: {metrics}"))
        .parse()
        .unwrap();
    assert!(answered >= 1.0, "{metrics}");

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

/// Start `serve` on `data` (default config, a free port); answers the child, its URL and
/// the lines it printed until it listened.
fn serve(data: &Path) -> (std::process::Child, String, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OTA_HOST_DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (url, printed) = listening(&mut child);
    (child, url, printed)
}

/// Wait for `serve`'s "listening on" line; answers the URL and every line printed so far.
/// The rest of stdout keeps being read, so the server never writes to a closed or full pipe.
fn listening(child: &mut std::process::Child) -> (String, Vec<String>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    loop {
        let line = lines.next().expect("serve exited early").unwrap();
        printed.push(line.clone());
        if let Some(url) = line.strip_prefix("listening on ") {
            std::thread::spawn(move || for _ in lines {});
            return (url.to_string(), printed);
        }
    }
}

/// Collect a child's stderr (the server's log) line by line as it arrives.
fn capture_stderr(child: &mut std::process::Child) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    log
}

/// UBTech needs no SQL either: logins, a release from a local file and a campaign come from
/// subcommands, and an unmodified robot flow then works against the served plugin.
#[tokio::test]
async fn ubtech_is_provisioned_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let product = "com.ubtechinc.alpha2services:service5mic:CN";
    assert!(ota(&data, &["tenant", "create", "acme"]).0);
    assert!(ota(&data, &["product", "create", "--tenant", "acme", product]).0);
    let (ok, _, err) = ota(
        &data,
        &[
            "login", "create", "--tenant", "acme", "--realm", "ubtech", "--kind", "client",
            "mobile_1", "--secret", "secret_1",
        ],
    );
    assert!(ok, "{err}");
    // Without --secret one is generated and printed once.
    let (ok, password, err) = ota(
        &data,
        &[
            "login", "create", "--tenant", "acme", "--realm", "ubtech", "aa",
        ],
    );
    assert!(ok, "{err}");
    let password = password.trim().to_string();
    assert_eq!(password.len(), 32);
    let (ok, listing, _) = ota(&data, &["login", "list", "--tenant", "acme"]);
    assert!(
        ok && listing.contains("\tubtech\tuser\taa\tactive"),
        "{listing}"
    );
    assert!(!listing.contains(&password), "secrets are never listed");

    let full = dir.path().join("full.bin");
    std::fs::write(&full, b"alpha2 services 19").unwrap();
    let (ok, out, err) = ota(
        &data,
        &[
            "release",
            "create",
            "--tenant",
            "acme",
            "--product",
            product,
            "--version",
            "19",
            "--file",
            full.to_str().unwrap(),
            "--status",
            "online",
            "--name",
            "service5mic",
        ],
    );
    assert!(ok, "{err}");
    let release: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = release["id"].as_i64().unwrap();
    let patch = dir.path().join("patch.bin");
    std::fs::write(&patch, b"18 to 19").unwrap();
    let (ok, out, err) = ota(
        &data,
        &[
            "release",
            "create",
            "--tenant",
            "acme",
            "--product",
            product,
            "--version",
            "19",
            "--from-version",
            "18",
            "--file",
            patch.to_str().unwrap(),
            "--status",
            "online",
        ],
    );
    assert!(ok, "{err}");
    let patch = serde_json::from_str::<serde_json::Value>(&out).unwrap();
    assert_eq!(
        patch["name"], "patch.bin",
        "named after the uploaded file: {patch}"
    );
    let patch_id = patch["id"].as_i64().unwrap();
    let (ok, listing, _) = ota(&data, &["release", "list", "--tenant", "acme"]);
    assert!(ok && listing.contains("18 -> 19\tany\tonline"), "{listing}");
    let (ok, out, err) = ota(
        &data,
        &[
            "campaign",
            "create",
            "--tenant",
            "acme",
            "--release",
            &id.to_string(),
            "--name",
            "all robots",
            "--start",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"status\": \"running\""), "{out}");
    let (ok, listing, _) = ota(&data, &["campaign", "list", "--tenant", "acme"]);
    assert!(ok && listing.contains("running\t19"), "{listing}");
    // A robot that has not called yet: refused, with the flag that registers it named.
    let release = id.to_string();
    let one_robot = |register: bool| {
        let mut args = vec![
            "campaign",
            "create",
            "--tenant",
            "acme",
            "--release",
            &release,
            "--name",
            "one new robot",
            "--device",
            "r-new",
        ];
        if register {
            args.push("--register-devices");
        }
        ota(&data, &args)
    };
    let (ok, _, err) = one_robot(false);
    assert!(!ok && err.contains("--register-devices"), "{err}");
    let (ok, out, err) = one_robot(true);
    assert!(ok, "{err}");
    assert!(out.contains("\"status\": \"draft\""), "{out}");

    let (mut child, url, printed) = serve(&data);
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("loaded plugin ubtech")),
        "{printed:?}"
    );
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .get(format!(
            "{url}/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password={password}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().expect("a token");
    let answer: serde_json::Value = http
        .get(format!(
            "{url}/file/download?access_token={access}&package_name=com.ubtechinc.alpha2services\
             &version=18&file_name=service5mic&language=CN&robot_version=1&robot_id=r1"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["code"], "100", "{answer}");
    assert_eq!(answer["id"], patch_id.to_string());
    let bytes = http
        .get(answer["data"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), b"18 to 19");

    // Revoking the user's tokens from the command line ends the session.
    let (_, listing, _) = ota(&data, &["login", "list", "--tenant", "acme"]);
    let user_id = listing
        .lines()
        .find(|l| l.contains("\taa\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    let (ok, out, err) = ota(
        &data,
        &["login", "revoke-tokens", "--tenant", "acme", &user_id],
    );
    assert!(ok && out.contains("revoked 2 tokens"), "{out}{err}");
    let r = http
        .get(format!(
            "{url}/file/download?access_token={access}&package_name=p&version=1&file_name=f&language=CN&robot_version=1&robot_id=r1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
}

/// CTWing's app key, product protocol, MasterKey and devices come from subcommands too; a
/// request signed as the AEP SDK signs it then sees them.
#[tokio::test]
async fn ctwing_is_provisioned_from_the_command_line() {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pid = "10005986";
    for args in [
        vec!["tenant", "create", "acme"],
        vec!["product", "create", "--tenant", "acme", pid, "--name", "TV"],
        vec![
            "device",
            "put",
            "--tenant",
            "acme",
            "--product",
            pid,
            "1000598611113",
            "--name",
            "tv-1",
        ],
    ] {
        let (ok, _, err) = ota(&data, &args);
        assert!(ok, "{args:?}: {err}");
    }
    let (ok, out, err) = ota(
        &data,
        &[
            "product",
            "set-attr",
            "--tenant",
            "acme",
            pid,
            "ctwing.protocol=t-link",
            "note=x",
        ],
    );
    assert!(ok && out.contains("ctwing.protocol=t-link"), "{out}{err}");
    let (ok, out, _) = ota(
        &data,
        &["product", "set-attr", "--tenant", "acme", pid, "note="],
    );
    assert!(ok && !out.contains("note"), "an empty value removes: {out}");
    let (ok, key, err) = ota(&data, &["product", "key", "--tenant", "acme", pid]);
    assert!(ok, "{err}");
    let master_key = key.trim().to_string();
    assert_eq!(master_key.len(), 24, "fits a 32-byte C string");
    let (ok, out, err) = ota(
        &data,
        &[
            "app-key",
            "create",
            "--tenant",
            "acme",
            "--realm",
            "ctwing",
            "--app-key",
            "dAaFG7DiPt8",
        ],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "dAaFG7DiPt8");
    let secret = lines[1].to_string();
    let (ok, listing, _) = ota(&data, &["app-key", "list", "--tenant", "acme"]);
    assert!(
        ok && listing.contains("ctwing\tdAaFG7DiPt8\tactive") && !listing.contains(&secret),
        "{listing}"
    );

    let (mut child, url, printed) = serve(&data);
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("loaded plugin ctwing")),
        "{printed:?}"
    );
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let to_sign = format!(
        "application:dAaFG7DiPt8\ntimestamp:{timestamp}\nMasterKey:{master_key}\nisSelectDevice:2\nproductId:{pid}\n"
    );
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{url}/aep_upgrade_management/devices?productId={pid}&isSelectDevice=2&MasterKey={master_key}"
        ))
        .header("application", "dAaFG7DiPt8")
        .header("timestamp", &timestamp)
        .header("signature", signature)
        .header("MasterKey", &master_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["code"], 0, "{answer}");
    assert_eq!(answer["result"]["list"][0]["deviceSn"], "11113", "{answer}");
    assert_eq!(answer["result"]["list"][0]["deviceName"], "tv-1");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
}

#[tokio::test]
async fn mxchip_is_provisioned_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for args in [
        vec!["tenant", "create", "acme"],
        vec![
            "product",
            "create",
            "--tenant",
            "acme",
            "test",
            "--name",
            "Anxin plug",
        ],
    ] {
        let (ok, _, err) = ota(&data, &args);
        assert!(ok, "{args:?}: {err}");
    }
    let (ok, token, err) = ota(
        &data,
        &[
            "api-key", "create", "--tenant", "acme", "--name", "console", "--format", "hex40",
        ],
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();

    let (mut child, url, printed) = serve(&data);
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("loaded plugin mxchip")),
        "{printed:?}"
    );
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{url}/api/v1/ota/test/files/"))
        .header("Authorization", format!("token {token}"))
        .json(
            &serde_json::json!({"file_name": "ota.bin", "file_url": "https://cdn.example/a.bin",
            "md5": "0123456789abcdef0123456789abcdef", "size": "20kb", "version": "1.0.1"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["meta"]["code"], 0, "{created}");
    assert_eq!(created["data"]["status"], 0);
    let id = created["data"]["id"].as_i64().unwrap().to_string();
    let check = format!(
        "{url}/api/v1/ota/device/?product_id=test&wifi_version=1.0.0&mcu_version=1.0.0&device_id=plug-1"
    );
    let ask = || async {
        http.get(&check)
            .header("Authorization", format!("token {token}"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    assert_eq!(ask().await["data"]["need_ota"], false, "test firmware");
    // The operator puts it online with the CLI while the server runs.
    let (ok, listing, err) = ota(
        &data,
        &["release", "list", "--tenant", "acme", "--product", "test"],
    );
    assert!(ok && listing.contains("1.0.1"), "{listing}{err}");
    let (ok, _, err) = ota(
        &data,
        &["release", "set-status", "--tenant", "acme", &id, "online"],
    );
    assert!(ok, "{err}");
    let answer = ask().await;
    assert_eq!(answer["data"]["need_ota"], true, "{answer}");
    assert_eq!(
        answer["data"]["files"][0]["file_url"],
        "https://cdn.example/a.bin"
    );
    let (ok, campaigns, _) = ota(&data, &["campaign", "list", "--tenant", "acme"]);
    assert!(
        ok && campaigns.contains(&format!("mxchip:{id}:online")),
        "{campaigns}"
    );
    // The upload key: the token's access id, until the operator rotates it.
    let form: serde_json::Value = http
        .get(format!("{url}/oss_token/ota/"))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (ok, shown, err) = ota(&data, &["upload-key", "show", "--tenant", "acme"]);
    assert!(ok, "{err}");
    assert_eq!(shown.trim(), form["data"]["accessid"], "{form}");
    let (ok, rotated, err) = ota(&data, &["upload-key", "rotate", "--tenant", "acme"]);
    assert!(ok && rotated.trim() != shown.trim(), "{err}");
    let upload = reqwest::multipart::Form::new()
        .text("key", "ota/x.bin")
        .text("OSSAccessKeyId", shown.trim().to_string())
        .text(
            "policy",
            form["data"]["policy"].as_str().unwrap().to_string(),
        )
        .text(
            "Signature",
            form["data"]["signature"].as_str().unwrap().to_string(),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"fw".to_vec()).file_name("x.bin"),
        );
    let r = http
        .post(format!("{url}/oss/acme"))
        .multipart(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the old key's forms stop working");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
}

/// Start `serve` on `data` with `config`, wait until it listens, answer the child.
fn spawn_serve(data: &Path, config: &Path) -> std::process::Child {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("OTA_HOST_DATA_DIR", data)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    listening(&mut child);
    child
}

/// The scheduler survives `kill -9` at any moment: a server whose scheduler runs every 5 ms
/// over fifty waved campaigns and hundreds of jobs coming due is killed without warning
/// again and again, then left to finish. Every transition happened exactly once: each job
/// timed out and was retried once (none lost, none twice), and each campaign's wave was
/// widened exactly as often as its op log says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_survives_kill_9() {
    use ota_host::catalog::releases::{Module, NewRelease, Payload, ReleaseStatus};
    use ota_host::clock::SystemClock;
    use ota_host::config::{Config, FileConfig, Overrides};
    use ota_host::rollout::campaigns::{
        Action, DeviceFacts, JobFilter, Mode, NewCampaign, Scope, Target, Waves,
    };
    use ota_host::rollout::job::JobState;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config_file = dir.path().join("ota.toml");
    std::fs::write(&config_file, "[scheduler]\ninterval-ms = 5\n").unwrap();
    let config = Config::from_parts(
        FileConfig::load(&config_file).unwrap(),
        Overrides {
            data_dir: Some(data.clone()),
            ..Default::default()
        },
    )
    .unwrap();

    let (campaigns, per_campaign) = (50usize, 10usize);
    let mut ids = Vec::new();
    {
        let s = ota_host::Services::open(&config, std::sync::Arc::new(SystemClock))
            .await
            .unwrap();
        let t = s.auth.create_tenant("crash").await.unwrap();
        let p = s.catalog.create_product(t.id, "K", "crash").await.unwrap();
        for n in 0..campaigns {
            let r = s
                .catalog
                .create_release(
                    t.id,
                    NewRelease {
                        product_sn: "K".into(),
                        module: Module::Sub,
                        identify: n as i64,
                        name: format!("sub {n}"),
                        version: "2".into(),
                        from_version: None,
                        payload: Payload::External {
                            url: "https://cdn.example/k.bin".into(),
                            md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
                            size: 1,
                        },
                        status: ReleaseStatus::Online,
                        description: String::new(),
                        customize: String::new(),
                        mac_range: vec![],
                        arch: None,
                    },
                )
                .await
                .unwrap();
            let c = s
                .rollout
                .create_campaign(
                    t.id,
                    NewCampaign {
                        name: format!("k{n}"),
                        description: String::new(),
                        target: Target {
                            release_id: r.id,
                            product_id: p.id,
                            module: "sub".into(),
                            identify: n as i64,
                            version: "2".into(),
                        },
                        from_version: None,
                        scope: Scope::All,
                        mode: Mode::Auto,
                        tag: "formal".into(),
                        retries: 3,
                        // Deadlines spread over three seconds, so passes keep finding work.
                        timeout_secs: 1 + (n % 3) as u64,
                        waves: Some(Waves {
                            initial: per_campaign as u64,
                            step: 1,
                            interval_secs: 1,
                            max_failure_pct: None,
                        }),
                        window: None,
                    },
                    "ops",
                )
                .await
                .unwrap();
            s.rollout
                .act(t.id, c.id, Action::Start, "ops", "")
                .await
                .unwrap();
            for i in 0..per_campaign {
                let d = s
                    .catalog
                    .register_device(t.id, "K", &format!("k{n}-{i}"))
                    .await
                    .unwrap();
                let facts = DeviceFacts {
                    id: d.id,
                    product_id: p.id,
                    group: None,
                };
                let offer = s
                    .rollout
                    .check_in(&facts, "sub", n as i64, "1")
                    .await
                    .unwrap();
                assert!(offer.is_some());
            }
            ids.push((t.id, c.id));
        }
        s.db.close().await;
    }

    // Kill it without warning at pseudo-random moments.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill schedule seed {seed}");
    for _ in 0..8 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut child = spawn_serve(&data, &config_file);
        std::thread::sleep(Duration::from_millis(20 + (seed >> 33) % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // Then let it finish the work: every deadline has passed well before this run ends.
    let mut child = spawn_serve(&data, &config_file);
    std::thread::sleep(Duration::from_millis(3_500));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();

    let s = ota_host::Services::open(&config, std::sync::Arc::new(SystemClock))
        .await
        .unwrap();
    let mut widened_total = 0;
    for (tenant, id) in ids {
        let (jobs, total) = s
            .rollout
            .jobs(tenant, id, &JobFilter::default(), 200, 0)
            .await
            .unwrap();
        assert_eq!(
            total as usize, per_campaign,
            "campaign {id}: jobs lost or added"
        );
        for j in &jobs {
            assert_eq!(
                (j.state, j.previous_state, j.retry_count),
                (JobState::Queued, JobState::TimedOut, 1),
                "campaign {id} job {}: timed out and retried exactly once",
                j.id
            );
        }
        let c = s.rollout.campaign(tenant, id).await.unwrap();
        let log = s.rollout.campaign_log(tenant, id).await.unwrap();
        let widens = log.iter().filter(|e| e.action == "widen").count() as i64;
        assert_eq!(
            c.wave_cap.unwrap() - per_campaign as i64,
            widens,
            "campaign {id}: every widening logged once"
        );
        widened_total += widens;
    }
    assert!(widened_total > 0, "the scheduler ran");
}
