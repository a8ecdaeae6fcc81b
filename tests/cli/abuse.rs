//! What a login flood costs a real server process: its peak resident memory (`VmHWM`) stays
//! bounded however many bad logins arrive at once, because Argon2 runs on a few threads of
//! the host's own with a bounded queue and floods are throttled before hashing; an honest
//! robot from another address logs in meanwhile. Bounded in count and time.

use std::sync::Arc;

use super::{ota, serve};

/// A process's resident memory now and at its peak, in MiB.
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_leaves_the_server_small() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(ota(&data, &["tenant", "create", "acme"]).0);
    for args in [
        &["--kind", "client", "mobile_1", "--secret", "secret_1"][..],
        &["aa", "--secret", "aa"][..],
    ] {
        let mut all = vec!["login", "create", "--tenant", "acme", "--realm", "ubtech"];
        all.extend_from_slice(args);
        let (ok, _, err) = ota(&data, &all);
        assert!(ok, "{err}");
    }
    let (mut child, url, _) = serve(&data);
    let pid = child.id();
    // Warm up: the first requests load what every later one reuses, and one wave at the
    // flood's concurrency sizes the connection, instance and allocator pools once; what is
    // measured is what a flood costs beyond that (VmHWM is the peak since start).
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let _ = http.get(format!("{url}/oauth/token")).send().await.unwrap();
    }
    let wave: Vec<_> = (0..150)
        .map(|i| {
            let http = http.clone();
            let url = format!(
                "{url}/oauth/token?client_id=w{i}&client_secret=s&grant_type=password&username=w{i}&password=p"
            );
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for w in wave {
        w.await.unwrap();
    }
    // The warm-up's failures back the address off; let that pass before the flood.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (_, before) = memory_mib(pid);

    // 600 bad logins over 150 connections at once, all from 127.0.0.1, each a new client id
    // and user (nothing for a cache to absorb).
    let gate = Arc::new(tokio::sync::Semaphore::new(150));
    let flood: Vec<_> = (0..600)
        .map(|i| {
            let (http, gate) = (http.clone(), gate.clone());
            let url = format!(
                "{url}/oauth/token?client_id=c{i}&client_secret=s&grant_type=password&username=u{i}&password=p"
            );
            tokio::spawn(async move {
                let _turn = gate.acquire().await.unwrap();
                http.get(url).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let robot = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = robot
        .get(format!(
            "{url}/oauth/token?client_id=mobile_1&client_secret=secret_1&grant_type=password&username=aa&password=aa"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the honest login during the flood");
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for f in flood {
        *statuses.entry(f.await.unwrap()).or_default() += 1;
    }
    assert!(
        statuses.keys().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    let (_, peak) = memory_mib(pid);
    assert!(
        peak.saturating_sub(before) < 128,
        "the flood took the server from {before} MiB to a peak of {peak} MiB ({statuses:?})"
    );
    let _ = child.kill();
    let _ = child.wait();
}
