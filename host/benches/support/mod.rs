//! What the plugin-vs-native benches share: knobs from the environment, a server with one
//! bundled plugin, bulk-loaded devices, a native twin's listener, and rounds of concurrent
//! requests summarized as requests/s and latency percentiles.

#![allow(dead_code)]

pub mod mxchip;

#[path = "../../../tests/support/pg.rs"]
pub mod pg;

/// The allocator the `ota-host` binary runs with, so the benches measure what it serves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ota_host::Services;
use ota_host::catalog::releases::{Module, NewRelease, Payload, Release, ReleaseStatus};
use ota_host::clock::SystemClock;
use ota_host::config::{Config, FileConfig, KeyDecl, Overrides, ProductDecl, TenantDecl};
use ota_host::rollout::campaigns::{Action, Campaign, Mode, NewCampaign, Scope, Target};
use ota_host::server::RunningServer;

/// A numeric knob from the environment, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One round's figures.
pub struct Stats {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub n: usize,
    /// CPU time the whole process (server and clients) spent per request, when the round
    /// measured it: steadier than requests/s on a shared machine, whose neighbours change
    /// throughput by 10-30% from run to run but not the work a request costs.
    pub cpu_per_request: Option<Duration>,
}

/// CPU time (user and system) this process has used so far, from `/proc/self/stat`
/// (Linux; in clock ticks of 10 ms, which a round of seconds on two cores resolves well).
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces: the
    // state is field 3, utime and stime fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

impl Stats {
    /// Requests/s and percentiles of `lat` (one entry per request) over `elapsed_secs`.
    pub fn of(mut lat: Vec<Duration>, elapsed_secs: f64) -> Stats {
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        Stats {
            rps: lat.len() as f64 / elapsed_secs,
            p50: pct(0.50),
            p99: pct(0.99),
            n: lat.len(),
            cpu_per_request: None,
        }
    }

    /// With the process's CPU time since `before` (its [`process_cpu`] when the round
    /// began) spread over the round's requests.
    fn with_cpu_since(mut self, before: Option<Duration>) -> Stats {
        if let (Some(before), Some(after)) = (before, process_cpu()) {
            self.cpu_per_request = Some(after.saturating_sub(before) / self.n.max(1) as u32);
        }
        self
    }

    pub fn print(&self, label: &str, path: &str) {
        println!(
            "{label:>14} {path:>6}: {:>7.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} requests){}",
            self.rps,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.n,
            self.cpu_per_request
                .map(|c| format!("  CPU {:.0} µs/request", c.as_secs_f64() * 1e6))
                .unwrap_or_default()
        );
    }
}

/// Every item once, `concurrency` at a time; `send` makes (and checks) one request.
pub async fn round<T, F, Fut>(items: &[T], concurrency: usize, send: F) -> Stats
where
    T: Clone + Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let cpu_before = process_cpu();
    let per = items.len().div_ceil(concurrency.max(1));
    let mut tasks = Vec::new();
    for mine in items.chunks(per.max(1)) {
        let (send, mine) = (send.clone(), mine.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(mine.len());
            for item in mine {
                let t = Instant::now();
                send(item).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    Stats::of(all, started.elapsed().as_secs_f64()).with_cpu_since(cpu_before)
}

/// Two rounds over the native and the plugin path's items, first contact then repeat poll,
/// reported with their ratios.
pub async fn first_and_repeat<T, F, Fut>(native: &[T], plugin: &[T], concurrency: usize, send: F)
where
    T: Clone + Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut rounds = Vec::new();
    for label in ["first contact", "repeat poll"] {
        let n = round(native, concurrency, send.clone()).await;
        let p = round(plugin, concurrency, send.clone()).await;
        rounds.push((label, n, p));
    }
    report(&rounds);
}

/// `concurrency` clients sending back to back for `secs`; `send` makes (and checks) one
/// request.
pub async fn for_secs<F, Fut>(secs: u64, concurrency: usize, send: F) -> Stats
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let cpu_before = process_cpu();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let send = send.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                send().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    Stats::of(all, started.elapsed().as_secs_f64()).with_cpu_since(cpu_before)
}

/// `concurrency` clients GETting `url` (with an `X-API-Key` when `key` is given) for `secs`;
/// every answer must be 200.
pub async fn get_for_secs(
    client: &reqwest::Client,
    url: &str,
    key: Option<&'static str>,
    secs: u64,
    concurrency: usize,
) -> Stats {
    let (client, url) = (client.clone(), url.to_string());
    for_secs(secs, concurrency, move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut r = client.get(&url);
            if let Some(key) = key {
                r = r.header("X-API-Key", key);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            let _ = r.bytes().await.unwrap();
        }
    })
    .await
}

/// The MD5 of no bytes: the benches' external files are never fetched.
pub const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// An online release of `version` for a product's module, its file on an external URL.
pub async fn online_release(
    s: &Services,
    tenant_id: i64,
    product_sn: &str,
    module: Module,
    identify: i64,
    version: &str,
) -> Release {
    online_patch(s, tenant_id, product_sn, module, identify, None, version).await
}

/// [`online_release`] as a delta from version `from` when given (a patch).
pub async fn online_patch(
    s: &Services,
    tenant_id: i64,
    product_sn: &str,
    module: Module,
    identify: i64,
    from: Option<&str>,
    version: &str,
) -> Release {
    let m = module.as_str();
    let stem = from.map_or_else(|| version.to_string(), |f| format!("{f}-{version}"));
    s.catalog
        .create_release(
            tenant_id,
            NewRelease {
                product_sn: product_sn.into(),
                module,
                identify,
                name: format!("{m} {stem}"),
                version: version.into(),
                from_version: from.map(str::to_string),
                payload: Payload::External {
                    url: format!("https://cdn.example/{m}-{identify}-{stem}.bin"),
                    md5: EMPTY_MD5.into(),
                    size: 4096,
                },
                status: ReleaseStatus::Online,
                description: String::new(),
                customize: String::new(),
                mac_range: vec![],
                arch: None,
            },
        )
        .await
        .unwrap()
}

/// A started automatic formal campaign bringing `release` to all of the product's devices
/// (those on `from_version` only, when given).
pub async fn running_campaign(
    s: &Services,
    tenant_id: i64,
    product_id: i64,
    release: &Release,
    name: String,
    from_version: Option<String>,
) -> Campaign {
    let new = NewCampaign {
        from_version,
        ..new_campaign(product_id, release, name, Scope::All, Mode::Auto)
    };
    let c = s
        .rollout
        .create_campaign(tenant_id, new, "bench")
        .await
        .unwrap();
    s.rollout
        .act(tenant_id, c.id, Action::Start, "bench", "")
        .await
        .unwrap()
}

/// A formal campaign of `release` for the product: no retries, a week to finish.
pub fn new_campaign(
    product_id: i64,
    release: &Release,
    name: impl Into<String>,
    scope: Scope,
    mode: Mode,
) -> NewCampaign {
    NewCampaign {
        description: String::new(),
        name: name.into(),
        target: Target {
            release_id: release.id,
            product_id,
            module: release.module.as_str().into(),
            identify: release.identify,
            version: release.version.clone(),
        },
        from_version: None,
        scope,
        mode,
        tag: "formal".into(),
        retries: 0,
        timeout_secs: 7 * 86_400,
        waves: None,
        window: None,
    }
}

/// Tenant `bench` with `products` and `api_keys` (name, key), as a twin bench provisions it.
pub fn tenant(products: &[&str], api_keys: &[(&str, &str)]) -> FileConfig {
    FileConfig {
        tenants: vec![TenantDecl {
            name: "bench".into(),
            products: products
                .iter()
                .map(|sn| ProductDecl {
                    sn: sn.to_string(),
                    name: None,
                })
                .collect(),
            api_keys: api_keys
                .iter()
                .map(|(name, key)| KeyDecl {
                    name: name.to_string(),
                    key: key.to_string(),
                })
                .collect(),
        }],
        ..Default::default()
    }
}

/// Whether `BENCH_DB=postgres` asks for PostgreSQL rather than the embedded SQLite.
pub fn on_postgres() -> bool {
    std::env::var("BENCH_DB").is_ok_and(|v| v == "postgres")
}

/// The database the benches run on, as their headers print it.
pub fn database_name() -> &'static str {
    if on_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

/// What a bench's server leaves behind until it is dropped: its temporary directory and,
/// with `BENCH_DB=postgres`, the throwaway PostgreSQL it ran on.
pub struct Scratch {
    _dir: tempfile::TempDir,
    /// Dropped after the directory: declared later.
    _postgres: Option<pg::Postgres>,
}

/// A server on 127.0.0.1:0 serving one bundled plugin (`crate_file` as built, e.g.
/// `ota_plugin_mxchip.wasm`, installed as `mount_file`); see [`start_files`].
pub async fn start(
    crate_file: &str,
    mount_file: &str,
    file: FileConfig,
) -> (RunningServer, Scratch) {
    let built = std::path::Path::new(ota_host::bundled::BUILD_DIR).join(crate_file);
    start_files(&[(built.as_path(), mount_file)], file).await
}

/// A server on 127.0.0.1:0 serving plugin files (path, name in the plugins folder), on
/// SQLite in a temporary directory or, with `BENCH_DB=postgres`, on a throwaway PostgreSQL
/// (installed and started as the tests start one).
pub async fn start_files(
    files: &[(&std::path::Path, &str)],
    mut file: FileConfig,
) -> (RunningServer, Scratch) {
    let postgres = on_postgres().then(pg::Postgres::start);
    let database = postgres.as_ref().map(|pg| pg.create_database());
    // `BENCH_LOG=sqlx::query=debug` shows every statement a request makes (measure first).
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    // The benches' clients all come from 127.0.0.1 as fast as they can: throughput, not abuse.
    file.limits.requests_per_ip_per_sec = 0;
    if let Ok(n) = std::env::var("BENCH_CPU_SLOTS") {
        file.limits.plugin_cpu_slots = n.parse().ok();
    }
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (path, name) in files {
        std::fs::copy(path, plugins.join(name)).unwrap();
    }
    let config = Config::from_parts(
        file,
        Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(dir.path().join("data")),
            plugins_dir: Some(plugins),
            database,
            ..Default::default()
        },
    )
    .unwrap();
    let server = ota_host::server::start(config, Arc::new(SystemClock))
        .await
        .unwrap();
    (
        server,
        Scratch {
            _dir: dir,
            _postgres: postgres,
        },
    )
}

/// Insert `n` devices `dev-<i>` (MAC `mac(i)` when given) into a product in bulk:
/// registration one by one is not what the benches measure. Answers the product's device
/// ids in insertion order.
pub async fn bulk_devices(
    s: &Services,
    product_id: i64,
    n: usize,
    mac: Option<fn(usize) -> String>,
) -> Vec<i64> {
    for batch in (0..n).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = batch
            .iter()
            .map(|i| match mac {
                Some(m) => format!("({product_id}, 'dev-{i}', '{}', 0)", m(*i)),
                None => format!("({product_id}, 'dev-{i}', NULL, 0)"),
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO devices (product_id, sn, mac, created_at) VALUES {}",
            values.join(",")
        ))
        .execute(s.db.pool())
        .await
        .unwrap();
    }
    sqlx::query_scalar("SELECT id FROM devices WHERE product_id = $1 ORDER BY id")
        .bind(product_id)
        .fetch_all(s.db.pool())
        .await
        .unwrap()
}

/// Serve a native twin on its own loopback port; answers its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

/// Print both paths' figures for each label and the plugin/native ratios.
pub fn report(rounds: &[(&str, Stats, Stats)]) {
    for (label, native, plugin) in rounds {
        native.print(label, "native");
        plugin.print(label, "plugin");
    }
    for (label, native, plugin) in rounds {
        let cpu = match (native.cpu_per_request, plugin.cpu_per_request) {
            (Some(n), Some(p)) => format!(
                ", CPU per request {:.2}x (+{:.0} µs)",
                p.as_secs_f64() / n.as_secs_f64(),
                (p.as_secs_f64() - n.as_secs_f64()) * 1e6
            ),
            _ => String::new(),
        };
        println!(
            "{label:>14} ratio plugin/native: throughput {:.2}, p50 latency {:.2}x{cpu}",
            plugin.rps / native.rps,
            plugin.p50.as_secs_f64() / native.p50.as_secs_f64()
        );
    }
}
