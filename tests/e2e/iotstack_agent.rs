//! The IoTStack installer for real: `DownloadCmd` run with bash in a temp root against the
//! live server installs a release tarball, starts the agent, and deployments created later
//! reach the gateway without a person (installed, restarted, rolled back when the new
//! version does not stay up), with progress flowing back to `deployment/info`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ota_tests::{API_KEY, OPERATOR_KEY, Options, PRODUCT, TENANT, TestServer, admin, eventually};
use serde_json::{Value, json};

use crate::iotstack::parse_download_cmd;

const GATEWAY: &str = "abcdefg1hd";

/// `reinstall/create` for the gateway, as the spec's example asks it.
fn create_body(version: &str) -> String {
    json!({
        "GatewaySN": GATEWAY, "ProductSN": PRODUCT, "SoftwareVersion": version,
        "OS": "linux", "CPUArch": "x86_64", "Mode": "native", "Password": "iotstack"
    })
    .to_string()
}

/// A release tarball whose `bin/iot-edge` runs `service` (a shell script body). Its files (and
/// its `./` folder) are recorded world-writable and set-uid, owned by uid 4242: what a
/// careless (or hostile) package carries, and what the installer must not keep.
fn tarball(dir: &Path, name: &str, service: &str) -> Vec<u8> {
    let src = dir.join(format!("src-{name}"));
    std::fs::create_dir_all(src.join("bin")).unwrap();
    let bin = src.join("bin/iot-edge");
    std::fs::write(&bin, format!("#!/bin/sh\n{service}\n")).unwrap();
    std::fs::write(src.join("VERSION"), name).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4777)).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = dir.join(format!("{name}.tar.gz"));
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .args(["--owner=4242", "--group=4242"])
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// A service that says which version runs and stays up until stopped.
const GOOD_SERVICE: &str = r#"echo "$IOT_EDGE_VERSION $$" > "$IOT_EDGE_PREFIX/service-ran"
exec sleep 300"#;

/// Store `bytes` and release them as `version` for `arch`, online; answers the SHA-256.
async fn release(t: &TestServer, version: &str, arch: Option<&str>, bytes: Vec<u8>) -> String {
    release_with(t, version, arch, json!({}), bytes).await
}

/// [`release`] with more fields of the admin API's release (`status`, `module`, …).
async fn release_with(
    t: &TestServer,
    version: &str,
    arch: Option<&str>,
    more: Value,
    bytes: Vec<u8>,
) -> String {
    let r = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .bearer_auth(OPERATOR_KEY)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sha = r.json::<Value>().await.unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = json!({
        "product": PRODUCT, "version": version, "blob_sha256": sha, "status": "online",
    });
    if let Some(arch) = arch {
        body["arch"] = json!(arch);
    }
    for (k, v) in more.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = admin(
        t,
        reqwest::Method::POST,
        &format!("/admin/api/v1/tenants/{TENANT}/releases"),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["arch"], json!(arch));
    sha
}

/// The gateway's root, with every process the script started killed when the test ends
/// (also when it fails half-way).
struct Gateway {
    root: PathBuf,
    work: PathBuf,
}

impl Gateway {
    fn new(t: &TestServer) -> Self {
        let root = t.dir.path().join("gateway/opt/iot-edge");
        let work = t.dir.path().join("gateway/home");
        std::fs::create_dir_all(&work).unwrap();
        Gateway { root, work }
    }

    /// Run a command line with bash in the gateway's home, as an operator pastes it.
    async fn bash(&self, line: &str) -> std::process::Output {
        tokio::process::Command::new("bash")
            .arg("-c")
            .arg(line)
            .current_dir(&self.work)
            .env("IOT_EDGE_PREFIX", &self.root)
            .env("IOT_EDGE_INIT", "process")
            .env("IOT_EDGE_POLL_SECS", "1")
            .env("IOT_EDGE_HEALTH_SECS", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap()
    }

    fn link(&self, name: &str) -> Option<String> {
        std::fs::read_link(self.root.join(name))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.join(name)).unwrap_or_default()
    }

    /// The pid in `run/<name>.pid` (`<pid> <start time>`) if that process is alive.
    fn pid(&self, name: &str) -> Option<String> {
        let file = self.read(&format!("run/{name}.pid"));
        let pid = file.split_whitespace().next().unwrap_or("").to_string();
        let alive = !pid.is_empty()
            && std::process::Command::new("kill")
                .args(["-0", &pid])
                .status()
                .is_ok_and(|s| s.success());
        alive.then_some(pid)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for name in ["agent", "service"] {
            if let Some(pid) = self.pid(name) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid])
                    .status();
            }
        }
    }
}

/// A process's start time as /proc has it (the second half of a pid file).
fn start_time(pid: &str) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(") ").unwrap().1;
    after.split(' ').nth(19).unwrap().to_string()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn deployment(t: &TestServer, id: u64) -> Value {
    let (status, body) = t
        .post(
            "/api/v1/deployment/info",
            Some(API_KEY),
            &json!({ "DeploymentID": id }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["Data"].clone()
}

async fn create_deployment(t: &TestServer) -> u64 {
    create_deployment_with(t, json!({})).await
}

/// [`create_deployment`] with more fields of `deployment/create` (`KeepLocal`).
async fn create_deployment_with(t: &TestServer, more: Value) -> u64 {
    let mut body = json!({ "ProductSN": PRODUCT, "DeviceSN": GATEWAY });
    for (k, v) in more.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, body) = t
        .post(
            "/api/v1/deployment/create",
            Some(API_KEY),
            &body.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["Data"]["DeploymentID"].as_u64().unwrap()
}

/// Wait (bounded) until the deployment is final; answers its data.
async fn finished(t: &TestServer, g: &Gateway, id: u64) -> Value {
    let done = eventually(Duration::from_secs(40), || async {
        let s = deployment(t, id).await["Status"].clone();
        s == "success" || s == "failed" || s == "timeout"
    })
    .await;
    let d = deployment(t, id).await;
    assert!(
        done,
        "deployment {id} never finished: {d}\nagent log:\n{}",
        g.read("log/agent.log")
    );
    d
}

#[tokio::test]
async fn download_cmd_installs_and_the_agent_carries_out_later_deployments() {
    let t = TestServer::start(Options::default()).await;
    let g = Gateway::new(&t);
    let dir = t.dir.path();
    release(&t, "1.0", Some("x86_64"), tarball(dir, "1.0", GOOD_SERVICE)).await;
    // Built for another architecture: never offered to this x86_64 gateway.
    release(
        &t,
        "9.9",
        Some("arm7"),
        tarball(dir, "9.9-arm", GOOD_SERVICE),
    )
    .await;

    let (status, created) = t
        .post(
            "/api/v1/reinstall/create",
            Some(API_KEY),
            &create_body("1.0"),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let cmd = created["Data"]["DownloadCmd"].as_str().unwrap().to_string();
    let (_, _, secret) = parse_download_cmd(&cmd);

    // The operator pastes DownloadCmd as printed (it uses wget, as the spec's does).
    let out = g.bash(&cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("SHA-256"), "{said}");
    assert!(said.contains("installed 1.0"), "{said}");
    assert!(said.contains("accepted its credentials"), "{said}");
    assert!(said.contains("agent started"), "{said}");
    assert_eq!(g.link("current").as_deref(), Some("versions/1.0"));
    assert_eq!(g.read("versions/1.0/VERSION"), "1.0");
    use std::os::unix::fs::MetadataExt;
    let bin = std::fs::metadata(g.root.join("versions/1.0/bin/iot-edge")).unwrap();
    assert_eq!(
        bin.mode() & 0o7777,
        0o755,
        "no set-uid, no write for others"
    );
    let me = std::fs::metadata(&g.work).unwrap().uid();
    assert_eq!(bin.uid(), me, "owned by the installer, not the archive");
    let folder = std::fs::metadata(g.root.join("versions/1.0")).unwrap();
    assert_eq!(folder.mode() & 0o7777, 0o755, "the archive's ./ is 777");
    assert!(g.root.join("bin/iot_edge_process.sh").exists());
    let conf = g.root.join("etc/gateway.conf");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&conf).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the config holds the secret: {mode:o}");
    assert!(g.read("etc/gateway.conf").contains(&secret));
    assert!(g.pid("agent").is_some(), "{}", g.read("log/agent.log"));
    assert!(
        eventually(Duration::from_secs(20), || async {
            // The service can write its mark before the agent has written its pid file.
            g.read("service-ran").starts_with("1.0 ") && g.pid("service").is_some()
        })
        .await,
        "the agent never started 1.0's service: {}",
        g.read("log/agent.log")
    );

    // Installing the running version again from the same file leaves it (and the service
    // running from its folder) alone. The lock names a live process whose start time is
    // not the holder's (a pid reused after a reboot): it is stale, and taken over.
    let service = g.pid("service").expect("1.0 runs");
    // The agent starts the service before it lets go of the lock.
    assert!(
        eventually(Duration::from_secs(20), || async {
            std::fs::symlink_metadata(g.root.join("run/changer")).is_err()
        })
        .await,
        "the agent never released the lock"
    );
    let mut reused = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::os::unix::fs::symlink(format!("{}:1", reused.id()), g.root.join("run/changer")).unwrap();
    let out = g.bash("./iot_edge_process.sh --install x86_64 1.0").await;
    reused.kill().unwrap();
    let _ = reused.wait();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("1.0 is already installed and current"),
        "{said}"
    );
    assert_eq!(g.pid("service"), Some(service));

    // A newer release, then a deployment: the agent installs it with no one at the gateway,
    // and clears what changers that died left behind (staging folders, a download).
    let leftovers = [
        "versions/.7.7.new/bin",
        "versions/.0.9.old.99999999/bin",
        "tmp/99999999.package",
        "tmp/body.json",
    ];
    for left in leftovers {
        std::fs::create_dir_all(g.root.join(left)).unwrap();
    }
    release(&t, "1.1", Some("x86_64"), tarball(dir, "1.1", GOOD_SERVICE)).await;
    let first = create_deployment(&t).await;
    let d = finished(&t, &g, first).await;
    for left in leftovers {
        let top: PathBuf = Path::new(left).iter().take(2).collect();
        assert!(!g.root.join(&top).exists(), "{left} was left");
    }
    let log = d["Log"].as_str().unwrap();
    assert_eq!(d["Status"], "success", "{log}");
    assert!(
        log.contains("processing: gateway abcdefg1hd: installing 1.1 (x86_64) over 1.0"),
        "{log}"
    );
    assert!(log.contains("verified"), "{log}");
    assert!(log.contains("1.1 running (pid "), "{log}");
    assert_eq!(g.link("current").as_deref(), Some("versions/1.1"));
    assert_eq!(g.link("previous").as_deref(), Some("versions/1.0"));
    assert!(g.read("service-ran").starts_with("1.1 "));
    // The gateway's recorded version follows the deployment.
    let (_, device) = t
        .admin_get(&format!(
            "/admin/api/v1/tenants/{TENANT}/products/{PRODUCT}/devices/{GATEWAY}"
        ))
        .await;
    assert!(
        device["modules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["version"] == "1.1"),
        "{device}"
    );

    // A version that does not stay up is rolled back and the deployment fails, saying why.
    release(
        &t,
        "1.2",
        Some("x86_64"),
        tarball(dir, "1.2", "echo 'cannot open /dev/ttyS9' >&2\nexit 3"),
    )
    .await;
    let second = create_deployment(&t).await;
    let d = finished(&t, &g, second).await;
    let log = d["Log"].as_str().unwrap();
    assert_eq!(d["Status"], "failed", "{log}");
    assert!(log.contains("1.2 did not stay up"), "{log}");
    assert!(log.contains("rolled back to 1.1"), "{log}");
    assert!(log.contains("cannot open /dev/ttyS9"), "{log}");
    assert_eq!(g.link("current").as_deref(), Some("versions/1.1"));
    assert!(
        eventually(Duration::from_secs(10), || async {
            g.read("service-ran").starts_with("1.1 ") && g.pid("service").is_some()
        })
        .await,
        "1.1 is not running again"
    );

    // KeepLocal twice: the service keeps running 1.1, which is then neither current nor
    // previous, and its folder stays while it runs from it.
    let service = g.pid("service").unwrap();
    for version in ["1.3", "1.4"] {
        release(
            &t,
            version,
            Some("x86_64"),
            tarball(dir, version, GOOD_SERVICE),
        )
        .await;
        let id = create_deployment_with(&t, json!({ "KeepLocal": true })).await;
        let d = finished(&t, &g, id).await;
        assert_eq!(d["Status"], "success", "{d}");
        assert!(d["Log"].as_str().unwrap().contains("KeepLocal"), "{d}");
    }
    assert_eq!(g.link("current").as_deref(), Some("versions/1.4"));
    assert_eq!(g.link("previous").as_deref(), Some("versions/1.3"));
    assert_eq!(g.pid("service"), Some(service), "left running");
    assert!(g.read("service-ran").starts_with("1.1 "));
    assert_eq!(g.read("versions/1.1/VERSION"), "1.1", "its folder stays");

    // A reinstall cut off between its two renames (a power cut) leaves current pointing at
    // nothing; the agent puts the folder renamed aside back.
    std::fs::rename(
        g.root.join("versions/1.4"),
        g.root.join("versions/.1.4.old.4242.0"),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            g.read("current/VERSION") == "1.4"
        })
        .await,
        "current was not repaired: {}",
        g.read("log/agent.log")
    );

    // Running DownloadCmd's --start again restarts the agent (a reinstall's new secret and
    // script take effect); a pid file naming someone else's process is not ours.
    let agent = g.pid("agent").unwrap();
    let out = g.bash("./iot_edge_process.sh --start").await;
    assert!(out.status.success(), "{}", text(&out));
    let restarted = g.pid("agent").expect("an agent runs");
    assert_ne!(restarted, agent);
    let mut stranger = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(
        g.root.join("run/agent.pid"),
        format!("{} 1\n", stranger.id()),
    )
    .unwrap();
    let out = g.bash("./iot_edge_process.sh --status").await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("agent:    stopped"),
        "{}",
        text(&out)
    );
    assert!(stranger.try_wait().unwrap().is_none(), "left alone");
    stranger.kill().unwrap();
    let _ = stranger.wait();
    std::fs::write(
        g.root.join("run/agent.pid"),
        format!("{restarted} {}\n", start_time(&restarted)),
    )
    .unwrap();

    // Stopped, the gateway reports by hand; any text survives the trip, tabs and all, and
    // bytes that are not UTF-8 (a crashing binary's output) become U+FFFD, not a refusal.
    let out = g.bash("./iot_edge_process.sh --stop").await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(g.pid("agent").is_none() && g.pid("service").is_none());
    let third = create_deployment(&t).await;
    let line = "col1\tcol2\r\nnext \"quoted\" back\\slash \u{7} bell";
    std::fs::write(g.work.join("line.txt"), line).unwrap();
    let out = g
        .bash(&format!(
            "./iot_edge_process.sh --report {third} processing \"$(cat line.txt)\""
        ))
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let d = deployment(&t, third).await;
    assert_eq!(d["Status"], "processing");
    assert!(d["Log"].as_str().unwrap().contains(line), "{d}");
    std::fs::write(
        g.work.join("bytes.txt"),
        b"crash \xff\xfe caf\xe9 ok \xc3\xa9",
    )
    .unwrap();
    let out = g
        .bash(&format!(
            "./iot_edge_process.sh --report {third} failed \"$(cat bytes.txt)\""
        ))
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let d = deployment(&t, third).await;
    assert_eq!(d["Status"], "failed");
    assert!(
        d["Log"]
            .as_str()
            .unwrap()
            .contains("crash \u{fffd}\u{fffd} caf\u{fffd} ok \u{e9}"),
        "{d}"
    );

    // A final report the host could not take (it was down) waits in run/pending; the agent
    // sends it before asking for work, and never carries that deployment out a second time.
    let fourth = create_deployment(&t).await;
    std::fs::create_dir_all(g.root.join("run/pending")).unwrap();
    std::fs::write(
        g.root.join(format!("run/pending/{fourth}")),
        "success\n1.1 running\nkept while the host was away",
    )
    .unwrap();
    let out = g.bash("./iot_edge_process.sh --start").await;
    assert!(out.status.success(), "{}", text(&out));
    let d = finished(&t, &g, fourth).await;
    assert_eq!(d["Status"], "success", "{d}");
    let log = d["Log"].as_str().unwrap();
    assert!(
        log.contains("1.1 running\nkept while the host was away"),
        "{log}"
    );
    assert!(!log.contains("installing"), "carried out twice: {log}");
    // The agent drops the kept report once the host's answer is in (just after the host
    // recorded it).
    assert!(
        eventually(Duration::from_secs(20), || async {
            !g.root.join(format!("run/pending/{fourth}")).exists()
        })
        .await,
        "the kept report stayed in run/pending"
    );
    let kept = format!("deployment {fourth}: the host took the kept success report");
    assert!(
        eventually(Duration::from_secs(10), || async {
            g.read("log/agent.log").contains(&kept)
        })
        .await,
        "{}",
        g.read("log/agent.log")
    );
    t.stop().await;
}

#[tokio::test]
async fn the_agent_endpoint_answers_the_gateway_its_deployment_and_file() {
    let t = TestServer::start(Options::default()).await;
    let (_, created) = t
        .post(
            "/api/v1/reinstall/create",
            Some(API_KEY),
            &create_body("1.0"),
        )
        .await;
    let (_, key, secret) = parse_download_cmd(created["Data"]["DownloadCmd"].as_str().unwrap());
    let poll = |auth: Option<(&str, &str)>| {
        let mut req = t.http.post(t.url("/api/v1/deployment/poll"));
        match auth {
            Some((k, s)) => req = req.basic_auth(k, Some(s)),
            None => req = req.header("X-API-Key", API_KEY),
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let gateway = Some((key.as_str(), secret.as_str()));

    // Nothing open: an empty Data. A tenant key names no gateway: 403 in IoTStack's shape.
    assert_eq!(poll(gateway).await, (200, json!({"Code": 0, "Data": {}})));
    let (status, body) = poll(None).await;
    assert_eq!((status, body["Code"].clone()), (403, json!(2003)), "{body}");
    let (status, body) = poll(Some((key.as_str(), "wrongwrongwrong1"))).await;
    assert_eq!((status, body["Code"].clone()), (401, json!(2001)), "{body}");

    // Open, but nothing uploaded for x86_64: the deployment without a file.
    let id = create_deployment(&t).await;
    release(&t, "2.0", Some("arm7"), b"arm".to_vec()).await;
    let (status, body) = poll(gateway).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Data"]["DeploymentID"], id);
    assert_eq!(body["Data"]["Status"], "init");
    assert!(body["Data"].get("URL").is_none(), "{body}");

    // Files for every architecture count; the newest wins and stays chosen.
    let any = release(&t, "1.5", None, b"any arch".to_vec()).await;
    let x86 = release(&t, "1.5", Some("x86_64"), b"x86 build".to_vec()).await;
    // Architectures match in any case, so one differing only in case is the same one.
    let (status, body) = admin(
        &t,
        reqwest::Method::POST,
        &format!("/admin/api/v1/tenants/{TENANT}/releases"),
        Some(json!({"product": PRODUCT, "version": "1.5", "arch": "X86_64", "blob_sha256": x86})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (_, body) = poll(gateway).await;
    let data = &body["Data"];
    assert_eq!(data["SoftwareVersion"], "1.5", "{body}");
    assert_eq!(data["CPUArch"], "x86_64");
    assert_eq!(data["SHA256"], x86.as_str());
    assert_ne!(data["SHA256"], any.as_str());
    assert_eq!(data["Size"], 9);
    assert_eq!(data["URL"], format!("{}/blobs/{x86}", t.server.url()));
    release(&t, "1.6", None, b"newer".to_vec()).await;
    let (_, again) = poll(gateway).await;
    assert_eq!(again["Data"]["SHA256"], x86.as_str(), "the choice is kept");

    // The installer's lookup: by architecture and version, `key=value` lines.
    let lookup = |version: &str| {
        t.http
            .get(t.url(&format!("/install/{key}/packages/x86_64/{version}")))
            .send()
    };
    let r = lookup("1.6").await.unwrap();
    assert_eq!(r.status(), 200);
    let lines = r.text().await.unwrap();
    assert!(
        lines.starts_with("version=1.6\narch=\nurl=http://"),
        "{lines}"
    );
    let r = lookup("2.0").await.unwrap();
    assert_eq!(r.status(), 404, "2.0 exists for arm7 only");
    assert!(r.text().await.unwrap().contains("--arch x86_64"));

    // The lookup needs only the public device key: a `test` release is not served there, and
    // a release of another module (the product's wifi firmware) is never the gateway's.
    release_with(
        &t,
        "3.0",
        Some("x86_64"),
        json!({"status": "test"}),
        b"t".to_vec(),
    )
    .await;
    release_with(&t, "4.0", None, json!({"module": "wifi"}), b"w".to_vec()).await;
    for version in ["3.0", "4.0"] {
        let r = lookup(version).await.unwrap();
        assert_eq!(r.status(), 404, "{version}");
    }
    let (_, body) = poll(gateway).await;
    let next = body["Data"]["DeploymentID"].as_u64().unwrap();
    let report = json!({"DeploymentID": next, "Status": "success"}).to_string();
    let r = t
        .http
        .post(t.url("/api/v1/deployment/report"))
        .basic_auth(&key, Some(&secret))
        .header("content-type", "application/json")
        .body(report)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    create_deployment(&t).await;
    let (_, body) = poll(gateway).await;
    assert_eq!(
        body["Data"]["SoftwareVersion"], "1.6",
        "online, mcu: {body}"
    );
    t.stop().await;
}
