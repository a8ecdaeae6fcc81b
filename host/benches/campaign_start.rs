//! Starting a campaign over a large fleet: 1 000 000 devices of one product on SQLite, a
//! campaign of scope "all" whose first wave is 5 % of the fleet. Measures the time to plan
//! it (create: the wave share is counted in the database; start: one row changes) and the
//! process's peak extra memory while doing so, sampled every millisecond. Jobs are created
//! when devices check in, so nothing here may grow with the fleet; the first wave's
//! admissions are then timed too. Run: `cargo bench -p ota-host --bench campaign_start`
//! (`BENCH_DEVICES` to scale).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ota_host::Services;
use ota_host::catalog::releases::Module;
use ota_host::clock::SystemClock;
use ota_host::config::{Config, FileConfig, Overrides};
use ota_host::flows::{CampaignRequest, ScopeRequest, WaveStart, WavesRequest};
use ota_host::rollout::campaigns::{Action, DeviceFacts, Mode};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Samples RSS every millisecond until stopped; answers the peak.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        Sampler { stop, peak, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed).max(rss())
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let n = env("BENCH_DEVICES", 1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_parts(
            FileConfig::default(),
            Overrides {
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        )
        .unwrap();
        let s = Services::open(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        let t = s.auth.create_tenant("bench").await.unwrap();
        let p = s.catalog.create_product(t.id, "P", "bench").await.unwrap();

        // Seeding is setup, not what is measured: one statement generates the fleet.
        let seeded = Instant::now();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
             INSERT INTO devices (product_id, sn, created_at) SELECT $2, 'dev-' || i, 0 FROM n",
        )
        .bind(n as i64)
        .bind(p.id)
        .execute(s.db.pool())
        .await
        .unwrap();
        println!(
            "seeded {n} devices in {:.1} s",
            seeded.elapsed().as_secs_f64()
        );

        let r = support::online_release(&s, t.id, "P", Module::Mcu, 0, "2.0").await;

        let baseline = rss();
        let sampler = Sampler::start();
        let planned = Instant::now();
        let c = s
            .create_campaign(
                t.id,
                CampaignRequest {
                    release_id: r.id,
                    name: "all devices".into(),
                    description: String::new(),
                    from_version: None,
                    scope: ScopeRequest::All,
                    mode: Mode::Auto,
                    tag: "formal".into(),
                    retries: 1,
                    timeout_secs: 3_600,
                    waves: Some(WavesRequest {
                        start: WaveStart::Percent(5),
                        step: n / 10,
                        interval_secs: 3_600,
                        max_failure_pct: Some(10),
                    }),
                    window: None,
                    register_devices: false,
                },
                "bench",
            )
            .await
            .unwrap();
        let c = s
            .rollout
            .act(t.id, c.id, Action::Start, "bench", "")
            .await
            .unwrap();
        let plan_time = planned.elapsed();
        let peak = sampler.finish();
        println!(
            "planned and started over {n} devices in {:.1} ms; first wave {} devices; \
             peak extra memory {:.1} MiB (baseline RSS {:.1} MiB)",
            plan_time.as_secs_f64() * 1e3,
            c.wave_cap.unwrap_or(0),
            mib(peak.saturating_sub(baseline)),
            mib(baseline),
        );

        // The first wave fills as devices check in: time a slice of first contacts.
        let sample = 10_000.min(n) as i64;
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM devices WHERE product_id = $1 ORDER BY id LIMIT $2")
                .bind(p.id)
                .bind(sample)
                .fetch_all(s.db.pool())
                .await
                .unwrap();
        let admitted = Instant::now();
        for id in &ids {
            let facts = DeviceFacts {
                id: *id,
                product_id: p.id,
                group: None,
            };
            assert!(
                s.rollout
                    .check_in(&facts, "mcu", 0, "1.0")
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        let secs = admitted.elapsed().as_secs_f64();
        println!(
            "first contacts: {} in {:.2} s ({:.0}/s, one task)",
            ids.len(),
            secs,
            ids.len() as f64 / secs
        );
        let stats = s.rollout.stats(t.id, c.id).await.unwrap();
        println!("jobs after the sample: {}", stats.total);
    });
}
