//! The same dialect in Rust and in Python, in one run: `ota-host plugin new` makes both
//! projects (two routes each), this bench builds them (cargo; componentize-py from PyPI) and
//! serves both from one server. Prints build time, component size, and per-request latency
//! and throughput of `hello` (no host call: instantiation and the guest's own work) and of
//! `devices/{product}/{sn}` (API-key check and a device lookup through the host), with the
//! Python/Rust ratios. Run: `cargo bench -p ota-host --bench plugin_langs`.
//!
//! Knobs: `BENCH_SECS` (per route and language, default 5), `BENCH_CONCURRENCY` (default 16).

mod support;

#[path = "../../tests/support/python.rs"]
mod python;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ota-host");
const KEY: &str = "bench-key-0123456789abcdef";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `plugin new` for `lang`, built; answers the component and how long the build took.
fn build(dir: &Path, name: &str, lang: &str) -> (PathBuf, Duration) {
    run(Command::new(BIN)
        .args(["plugin", "new", name, "--lang", lang])
        .current_dir(dir));
    let project = dir.join(name);
    let started = Instant::now();
    let wasm = if lang == "rust" {
        // The workspace's lock file: the same (already fetched) dependency versions.
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"),
            project.join("Cargo.lock"),
        )
        .unwrap();
        let mut cargo = Command::new(env!("CARGO"));
        for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR"] {
            cargo.env_remove(var);
        }
        run(cargo.args(["build", "--release"]).current_dir(&project));
        project.join(format!(
            "target/wasm32-wasip2/release/{}_dialect.wasm",
            name.replace('-', "_")
        ))
    } else {
        let componentize = python::componentize_py().expect("python3 is needed for this bench");
        run(Command::new(componentize)
            .args(["-d", "wit", "-w", "dialect", "componentize", "app", "-o"])
            .arg(format!("{name}.wasm"))
            .current_dir(&project));
        project.join(format!("{name}.wasm"))
    };
    (wasm, started.elapsed())
}

fn main() {
    let secs = support::env("BENCH_SECS", 5);
    let concurrency = support::env("BENCH_CONCURRENCY", 16) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (rust, rust_build) = build(dir.path(), "acme-rs", "rust");
    let (py, py_build) = build(dir.path(), "acme-py", "python");
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64 / 1e6;
    println!(
        "build: Rust {:.1} s ({:.2} MB), Python {:.1} s ({:.2} MB)",
        rust_build.as_secs_f64(),
        size(&rust),
        py_build.as_secs_f64(),
        size(&py)
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let file = support::tenant(&["P"], &[("bench", KEY)]);
        let (server, _data) =
            support::start_files(&[(&rust, "acme-rs.wasm"), (&py, "acme-py.wasm")], file).await;
        let s = &server.services;
        let tenant = s.auth.tenant("bench").await.unwrap();
        let pid = s.catalog.product(tenant.id, "P").await.unwrap().id;
        support::bulk_devices(s, pid, 1, None).await;

        let client = reqwest::Client::new();
        let base = server.url();
        println!(
            "{secs}s per route and language, {concurrency} concurrent clients (p50/p99), \
             then 1 client (p50), SQLite"
        );
        for route in ["v1/hello?name=ana", "v1/devices/P/dev-0"] {
            let rs_url = format!("{base}/acme-rs/{route}");
            let py_url = format!("{base}/acme-py/{route}");
            // Same answer from both, then warm up both.
            let a = client
                .get(&rs_url)
                .header("X-API-Key", KEY)
                .send()
                .await
                .unwrap();
            let b = client
                .get(&py_url)
                .header("X-API-Key", KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(a.status(), 200);
            let (a, b): (serde_json::Value, serde_json::Value) =
                (a.json().await.unwrap(), b.json().await.unwrap());
            assert_eq!(a, b, "Rust and Python answers differ");
            support::get_for_secs(&client, &rs_url, Some(KEY), 1, concurrency).await;
            support::get_for_secs(&client, &py_url, Some(KEY), 1, concurrency).await;
            let rs = support::get_for_secs(&client, &rs_url, Some(KEY), secs, concurrency).await;
            let py = support::get_for_secs(&client, &py_url, Some(KEY), secs, concurrency).await;
            let rs1 = support::get_for_secs(&client, &rs_url, Some(KEY), secs, 1).await;
            let py1 = support::get_for_secs(&client, &py_url, Some(KEY), secs, 1).await;
            for (lang, many, one) in [("Rust", &rs, &rs1), ("Python", &py, &py1)] {
                println!(
                    "{route:>20} {lang:>6}: {:>7.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  \
                     | 1 client p50 {:>7.3} ms",
                    many.rps,
                    many.p50.as_secs_f64() * 1e3,
                    many.p99.as_secs_f64() * 1e3,
                    one.p50.as_secs_f64() * 1e3,
                );
            }
            println!(
                "{route:>20} ratio Python/Rust: throughput {:.2}, 1-client p50 latency {:.2}x",
                py.rps / rs.rps,
                py1.p50.as_secs_f64() / rs1.p50.as_secs_f64()
            );
        }
        server.shutdown().await;
    });
}
