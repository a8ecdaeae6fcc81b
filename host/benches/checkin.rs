//! The hot path: device check-in through the host API in process. 100 000 devices of one
//! product, 10 running campaigns (one per sub-device identify), SQLite. Measures first contact
//! (creates the job) and repeat polls (job exists) separately; prints requests/s and p50/p99.
//! Run: `cargo bench -p ota-host --bench checkin` (`BENCH_DEVICES`, `BENCH_SECS` to scale).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ota_host::Services;
use ota_host::catalog::releases::Module;
use ota_host::clock::SystemClock;
use ota_host::config::{Config, FileConfig, Overrides};
use ota_host::rollout::campaigns::{Action, DeviceFacts, Mode, NewCampaign, Scope, Target};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn drive(
    s: &Services,
    devices: &[DeviceFacts],
    secs: u64,
    first_contact: bool,
) -> (f64, Duration, Duration, usize) {
    let concurrency = 16;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let chunk = devices.len() / concurrency;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let s = s.clone();
        let mine: Vec<DeviceFacts> = devices[w * chunk..(w + 1) * chunk].to_vec();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0usize;
            while Instant::now() < deadline && (!first_contact || i < mine.len()) {
                let d = &mine[i % mine.len()];
                let identify = d.id % 10;
                let t = Instant::now();
                let offer = s.rollout.check_in(d, "sub", identify, "1.0").await.unwrap();
                lat.push(t.elapsed());
                assert!(offer.is_some());
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (
        all.len() as f64 / elapsed,
        pct(&all, 0.5),
        pct(&all, 0.99),
        all.len(),
    )
}

fn main() {
    let n_devices = env("BENCH_DEVICES", 100_000) as usize;
    let secs = env("BENCH_SECS", 5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_parts(
            FileConfig::default(),
            Overrides { data_dir: Some(dir.path().to_path_buf()), ..Default::default() },
        )
        .unwrap();
        let s = Services::open(&config, Arc::new(SystemClock)).await.unwrap();
        let t = s.auth.create_tenant("bench").await.unwrap();
        let p = s.catalog.create_product(t.id, "P", "bench").await.unwrap();
        let setup = Instant::now();
        let ids = support::bulk_devices(&s, p.id, n_devices, None).await;
        for identify in 0..10 {
            let r = support::online_release(&s, t.id, "P", Module::Sub, identify, "2.0").await;
            let c = s
                .rollout
                .create_campaign(
                    t.id,
                    NewCampaign {
                        description: String::new(),
                        name: format!("c{identify}"),
                        target: Target { release_id: r.id, product_id: p.id, module: "sub".into(), identify, version: "2.0".into() },
                        from_version: None,
                        scope: Scope::All,
                        mode: Mode::Auto,
                        tag: "formal".into(),
                        retries: 0,
                        timeout_secs: 86_400,
                        waves: None,
                        window: None,
                    },
                    "bench",
                )
                .await
                .unwrap();
            s.rollout.act(t.id, c.id, Action::Submit, "bench", "").await.unwrap();
            s.rollout.act(t.id, c.id, Action::Approve, "bench", "").await.unwrap();
        }
        let devices: Vec<DeviceFacts> = ids.iter().map(|&id| DeviceFacts { id, product_id: p.id, group: None }).collect();
        println!("setup: {n_devices} devices, 10 running campaigns in {:.1}s (SQLite, 16 concurrent callers)", setup.elapsed().as_secs_f64());
        let (rps, p50, p99, n) = drive(&s, &devices, secs, true).await;
        println!("first contact (creates job): {rps:>8.0} check-ins/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({n})", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
        let (rps, p50, p99, n) = drive(&s, &devices, secs, false).await;
        println!("repeat poll (job exists):    {rps:>8.0} check-ins/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({n})", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
    });
}
