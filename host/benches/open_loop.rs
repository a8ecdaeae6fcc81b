//! A fleet polling at a fixed rate, open loop: `BENCH_DEVICES` MXChip devices (default
//! 100 000) check for firmware through the real plugin at `BENCH_RATE` requests/s in all
//! (default 2 000, each device about every 50 s) for `BENCH_SECS` (default 60). Request k is
//! due at start + k/rate and is sent then whether or not earlier ones have answered, and its
//! latency is counted from that due time, so a stall shows up in every request it delays
//! (no coordinated omission). `BENCH_OUTDATED_PCT` percent of the devices (default 1) run old
//! firmware and are offered the campaigns; the rest are up to date, as most of a fleet is.
//! With `BENCH_WARM=1` every device first makes its first contact (32 at a time, not
//! measured), so the run sees a fleet the server already knows rather than launch day.
//!
//! Prints the achieved rate, p50/p99/p99.9/max from the due time, errors, and the process's
//! resident memory after setup and at its peak (server and load generator together). Run:
//! `cargo bench -p ota-host --bench open_loop`; `BENCH_DB=postgres` runs it on a throwaway
//! PostgreSQL (as the tests start one).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::mxchip::{NEWEST, TOKEN};

/// The most requests in flight before the generator counts new ones as errors instead of
/// sending them: past this the server is not keeping up by any measure.
const MAX_IN_FLIGHT: u64 = 20_000;

/// A line of `/proc/self/status` (`VmRSS`, `VmHWM`) in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let n = support::env("BENCH_DEVICES", 100_000) as usize;
    let rate = support::env("BENCH_RATE", 2_000).max(1);
    let secs = support::env("BENCH_SECS", 60);
    let outdated_pct = support::env("BENCH_OUTDATED_PCT", 1) as usize;
    let warm = support::env("BENCH_WARM", 0) == 1;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let built =
            std::path::Path::new(ota_host::bundled::BUILD_DIR).join("ota_plugin_mxchip.wasm");
        let file = support::tenant(&["P"], &[("console", TOKEN)]);
        let (server, scratch) = support::start_files(&[(built.as_path(), "mxchip.wasm")], file).await;
        let s = server.services.clone();
        let setup = Instant::now();
        let tenant = s.auth.tenant("bench").await.unwrap();
        support::mxchip::provision(&s, tenant.id, "P").await;
        let pid = s.catalog.product(tenant.id, "P").await.unwrap().id;
        support::bulk_devices(&s, pid, n, None).await;
        // Devices in a scattered order, as a real fleet's polls arrive.
        // 2,654,435,761 is prime, so k -> i visits every device once per n requests.
        let base = server.url();
        let url = move |k: u64| {
            let i = (k.wrapping_mul(2_654_435_761) % n as u64) as usize;
            let (mcu, wifi) = if i % 100 < outdated_pct {
                ("1.0.0", "2.9.0")
            } else {
                NEWEST
            };
            format!(
                "{base}/api/v1/ota/device/?product_id=P&wifi_version={wifi}&mcu_version={mcu}&device_id=dev-{i}"
            )
        };
        let rss_after_setup = status_mib("VmRSS");
        println!(
            "setup: {n} devices, 4 running campaigns, {}% outdated, in {:.1}s ({})",
            outdated_pct,
            setup.elapsed().as_secs_f64(),
            support::database_name()
        );

        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(4_096)
            .build()
            .unwrap();
        if warm {
            let started = Instant::now();
            let all: Vec<u64> = (0..n as u64).collect();
            let send = {
                let client = client.clone();
                let url = url.clone();
                move |k: u64| {
                    let (client, url) = (client.clone(), url(k));
                    async move {
                        let r = support::mxchip::check(&client, url)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200);
                    }
                }
            };
            support::round(&all, 32, send).await;
            println!(
                "warm-up: every device's first contact in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        let in_flight = Arc::new(AtomicU64::new(0));
        let offers = Arc::new(AtomicU64::new(0));
        let total = rate * secs;
        let started = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(total as usize);
        let mut refused_by_generator = 0u64;
        for k in 0..total {
            let due = started + Duration::from_nanos(k * 1_000_000_000 / rate);
            tokio::time::sleep_until(due).await;
            if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                refused_by_generator += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, url, in_flight, offers) =
                (client.clone(), url(k), in_flight.clone(), offers.clone());
            tasks.push(tokio::spawn(async move {
                let r = support::mxchip::check(&client, url)
                    .send()
                    .await;
                let outcome = match r {
                    Ok(r) if r.status() == 200 => match r.json::<Value>().await {
                        Ok(v) if v["meta"]["code"] == 0 => {
                            if v["data"]["need_ota"] == true {
                                offers.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(())
                        }
                        Ok(v) => Err(format!("code {}", v["meta"]["code"])),
                        Err(e) => Err(format!("body: {e}")),
                    },
                    Ok(r) => Err(format!("status {}", r.status().as_u16())),
                    Err(e) => Err(format!("transport: {e}")),
                };
                in_flight.fetch_sub(1, Ordering::Relaxed);
                (outcome, due.elapsed())
            }));
        }
        let mut latencies = Vec::with_capacity(tasks.len());
        let mut errors = refused_by_generator;
        let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
        for t in tasks {
            match t.await.unwrap() {
                (Ok(()), latency) => latencies.push(latency),
                (Err(kind), _) => {
                    errors += 1;
                    *kinds.entry(kind).or_default() += 1;
                }
            }
        }
        if refused_by_generator > 0 {
            kinds.insert(
                format!("not sent: {MAX_IN_FLIGHT} in flight"),
                refused_by_generator,
            );
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "mxchip GET /api/v1/ota/device/, open loop at {rate} req/s for {secs}s over {n} {} devices",
            if warm { "known" } else { "new" }
        );
        println!(
            "  sent {total}, answered 200 {} ({:.0} req/s achieved), offers {}, errors {errors}",
            latencies.len(),
            latencies.len() as f64 / elapsed,
            offers.load(Ordering::Relaxed)
        );
        for (kind, count) in &kinds {
            println!("    error {kind}: {count}");
        }
        println!(
            "  latency from due time: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(percentile(&latencies, 0.999)),
            ms(latencies.last().copied().unwrap_or_default())
        );
        println!(
            "  resident memory: {:.0} MiB after setup, {:.0} MiB peak (server and load generator)",
            rss_after_setup,
            status_mib("VmHWM")
        );
        server.shutdown().await;
        drop(scratch);
    });
}
