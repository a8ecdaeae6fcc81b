//! The abuse bench: each attack of the isolation work runs against a real `ota-host` process
//! on loopback while an honest client (another address) polls another dialect, and the bench
//! prints, per attack, the honest client's success rate and latency, the server's peak
//! resident memory and open files, and its ERROR lines. A fresh server per attack, so peaks
//! are the attack's own. Every attack is bounded in time (`ABUSE_SECS`, default 20).
//!
//! `cargo bench -p ota-host --bench abuse` (knobs: `ABUSE_SECS`, `ABUSE_HONEST` clients,
//! `ABUSE_ONLY=login,looping` to run some attacks, `ABUSE_WORKERS` to scale request floods).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_ota-host");
const OPERATOR: &str = "abuse-bench-operator-key-0123456789";
const API_KEY: &str = "abuse-bench-tenant-key-0123456789";
const PRODUCT: &str = "fqhmuglv1fybql33";

/// The attacker's address and the honest client's: per-address budgets must tell them apart.
const ATTACKER: &str = "127.0.0.1";
const HONEST: &str = "127.0.0.2";

/// A server process under attack, with what its log said.
struct Server {
    child: Child,
    url: String,
    addr: std::net::SocketAddr,
    errors: Arc<AtomicU64>,
    dir: tempfile::TempDir,
}

fn built(file: &str) -> PathBuf {
    Path::new(ota_host::bundled::BUILD_DIR).join(file)
}

fn ota(data: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    /// Seeded bundled plugins plus `misbehave`, a tenant with a gateway product and key, and
    /// UBTech logins.
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let plugins = data.join("plugins");
        // Provisioning seeds the plugins folder only when serving; do it first so that
        // misbehave joins the bundled plugins.
        std::fs::create_dir_all(&data).unwrap();
        let config = dir.path().join("ota.toml");
        std::fs::write(
            &config,
            format!(
                "[[operator-keys]]\nname = \"ops\"\nkey = \"{OPERATOR}\"\n\n[[tenants]]\nname = \"acme\"\n\
                 products = [{{ sn = \"{PRODUCT}\" }}]\napi-keys = [{{ name = \"gw\", key = \"{API_KEY}\" }}]\n"
            ),
        )
        .unwrap();
        ota(&data, &["tenant", "create", "acme"]);
        ota(
            &data,
            &[
                "login", "create", "--tenant", "acme", "--realm", "ubtech", "--kind", "client",
                "mobile_1", "--secret", "secret_1",
            ],
        );
        ota(
            &data,
            &[
                "login", "create", "--tenant", "acme", "--realm", "ubtech", "aa", "--secret", "aa",
            ],
        );
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let errors = Arc::new(AtomicU64::new(0));
        {
            let errors = errors.clone();
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("ERROR") {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("serve exited early").unwrap();
            if let Some(u) = line.strip_prefix("listening on ") {
                break u.to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        std::fs::copy(
            built("ota_plugin_misbehave.wasm"),
            plugins.join("misbehave.wasm"),
        )
        .unwrap();
        let addr = url.trim_start_matches("http://").parse().unwrap();
        Server {
            child,
            url,
            addr,
            errors,
            dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn plugins(&self) -> PathBuf {
        self.dir.path().join("data/plugins")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (current RSS, peak RSS) in MiB and open files of a process.
fn resources(pid: u32) -> (u64, u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (field("VmRSS:"), field("VmHWM:"), fds)
}

fn client(from: &str, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(from.parse().unwrap()))
        .timeout(timeout)
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// The honest side: `n` gateways polling IoTStack's deployment info every 20 ms.
async fn honest(url: String, n: usize, stop: Arc<AtomicBool>) -> (u64, u64, Vec<Duration>) {
    let http = client(HONEST, Duration::from_secs(10));
    let created: serde_json::Value = http
        .post(format!("{url}/api/v1/deployment/create"))
        .header("X-API-Key", API_KEY)
        .body(format!(
            r#"{{"ProductSN":"{PRODUCT}","DeviceSN":"honest-gw"}}"#
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["Data"]["DeploymentID"]
        .as_u64()
        .expect("deployment");
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (http, url, stop) = (http.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed, mut lat) = (0u64, 0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = http
                        .post(format!("{url}/api/v1/deployment/info"))
                        .header("X-API-Key", API_KEY)
                        .body(format!(r#"{{"DeploymentID":{id}}}"#))
                        .send()
                        .await;
                    let answered = match r {
                        Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if answered {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                    lat.push(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (ok, failed, lat)
            })
        })
        .collect();
    let (mut ok, mut failed, mut lat) = (0, 0, Vec::new());
    for t in tasks {
        let (o, f, l) = t.await.unwrap();
        ok += o;
        failed += f;
        lat.extend(l);
    }
    (ok, failed, lat)
}

/// A connection from the attacker's address.
async fn connect(addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{ATTACKER}:0").parse().unwrap())?;
    s.connect(addr).await
}

/// Requests sent by an attack, and how they were answered (status → count).
type Tally = Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>;

fn count(t: &Tally, what: impl Into<String>) {
    *t.lock().unwrap().entry(what.into()).or_default() += 1;
}

/// `workers` loops sending GETs to `path` as fast as answers come.
async fn hammer(base: String, path: &str, workers: usize, stop: Arc<AtomicBool>, tally: Tally) {
    let http = client(ATTACKER, Duration::from_secs(30));
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (http, stop, tally) = (http.clone(), stop.clone(), tally.clone());
            let url = format!("{base}{}", path.replace("{w}", &w.to_string()));
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match http.get(url.replace("{i}", &i.to_string())).send().await {
                        Ok(r) => count(&tally, r.status().as_u16().to_string()),
                        Err(_) => count(&tally, "error"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// `n` sockets that send part of a head and then nothing, reopened when the server closes
/// them.
async fn slowloris(addr: std::net::SocketAddr, n: usize, stop: Arc<AtomicBool>, tally: Tally) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (stop, tally) = (stop.clone(), tally.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = connect(addr).await else {
                        count(&tally, "connect failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    count(&tally, "opened");
                    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
                    let mut buf = [0u8; 256];
                    loop {
                        tokio::select! {
                            r = tokio::io::AsyncReadExt::read(&mut s, &mut buf) => {
                                if matches!(r, Ok(0) | Err(_)) {
                                    count(&tally, "closed by server");
                                    break;
                                }
                            }
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                                if stop.load(Ordering::Relaxed) { return; }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// `n` uploads that declare 1 MiB and send a byte every two seconds.
async fn slow_bodies(addr: std::net::SocketAddr, n: usize, stop: Arc<AtomicBool>, tally: Tally) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (stop, tally) = (stop.clone(), tally.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = connect(addr).await else {
                        count(&tally, "connect failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    count(&tally, "opened");
                    let head = format!(
                        "POST /api/v1/deployment/info HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\
                         Content-Length: 1048576\r\n\r\n"
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    while !stop.load(Ordering::Relaxed) {
                        if s.write_all(b"{").await.is_err() {
                            count(&tally, "closed by server");
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Drop a plugin whose manifest traps into the folder, then read it again and again.
async fn refused_file(plugins: PathBuf, stop: Arc<AtomicBool>, tally: Tally) {
    std::fs::copy(
        built("ota_plugin_bad_manifest.wasm"),
        plugins.join("bad.wasm"),
    )
    .unwrap();
    while !stop.load(Ordering::Relaxed) {
        let _ = std::fs::read(plugins.join("bad.wasm"));
        let _ = std::fs::read(plugins.join("iotstack.wasm"));
        count(&tally, "reads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A flood's worker count, scaled by `ABUSE_WORKERS` when set.
fn workers(default: usize) -> usize {
    support::env("ABUSE_WORKERS", default as u64) as usize
}

/// One row of the table.
struct Row {
    attack: &'static str,
    tally: String,
    honest_ok: u64,
    honest_failed: u64,
    p50: Duration,
    p99: Duration,
    peak_rss: u64,
    peak_fds: usize,
    errors: u64,
}

async fn run(attack: &'static str, secs: u64, honest_clients: usize) -> Row {
    let server = Server::start();
    // Let the misbehave plugin load and the server settle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tally: Tally = Default::default();
    let honest_task = tokio::spawn(honest(server.url.clone(), honest_clients, stop.clone()));
    let attack_task = {
        let (stop, tally, addr, plugins) =
            (stop.clone(), tally.clone(), server.addr, server.plugins());
        let s = server.url.clone();
        let fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match attack {
            "none" => Box::pin(async {}),
            "login flood" => Box::pin(hammer(
                s,
                "/oauth/token?client_id=c{w}&client_secret=s&grant_type=password&username=u{i}&password=p",
                200,
                stop,
                tally,
            )),
            "slowloris 1100" => Box::pin(slowloris(addr, 1100, stop, tally)),
            "slow bodies 300" => Box::pin(slow_bodies(addr, 300, stop, tally)),
            "looping plugin 300" => {
                Box::pin(hammer(s, "/misbehave/loop", workers(300), stop, tally))
            }
            "memory bombs 120" => Box::pin(hammer(s, "/misbehave/alloc", 120, stop, tally)),
            "refused plugin file" => Box::pin(refused_file(plugins, stop, tally)),
            other => panic!("unknown attack {other}"),
        };
        fut
    };
    let pid = server.pid();
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak_fds = 0;
            while !stop.load(Ordering::Relaxed) {
                peak_fds = peak_fds.max(resources(pid).2);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak_fds
        })
    };
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    attack_task.await;
    timer.await.unwrap();
    let (ok, failed, mut lat) = honest_task.await.unwrap();
    let peak_fds = sampler.await.unwrap();
    let (_, peak_rss, _) = resources(pid);
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let tally = tally
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ");
    Row {
        attack,
        tally,
        honest_ok: ok,
        honest_failed: failed,
        p50: pct(0.50),
        p99: pct(0.99),
        peak_rss,
        peak_fds,
        errors: server.errors.load(Ordering::Relaxed),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs = support::env("ABUSE_SECS", 20);
    let honest_clients = support::env("ABUSE_HONEST", 4) as usize;
    println!(
        "abuse bench: each attack {secs} s against a fresh server; {honest_clients} honest IoTStack \
         pollers from {HONEST} (every 20 ms each), attacker from {ATTACKER}"
    );
    let attacks = [
        "none",
        "login flood",
        "slowloris 1100",
        "slow bodies 300",
        "looping plugin 300",
        "memory bombs 120",
        "refused plugin file",
    ];
    let only = std::env::var("ABUSE_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    for a in attacks
        .into_iter()
        .filter(|a| only.is_empty() || only.split(',').any(|o| a.starts_with(o)))
    {
        let row = run(a, secs, honest_clients).await;
        println!("{:<22} attack answers: {}", row.attack, row.tally);
        rows.push(row);
    }
    println!();
    println!(
        "| attack | honest ok | honest p50 ms | honest p99 ms | peak RSS MiB | peak open files | ERROR lines |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        let total = r.honest_ok + r.honest_failed;
        println!(
            "| {} | {:.2}% of {} | {:.1} | {:.1} | {} | {} | {} |",
            r.attack,
            100.0 * r.honest_ok as f64 / total.max(1) as f64,
            total,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.peak_rss,
            r.peak_fds,
            r.errors
        );
    }
}
