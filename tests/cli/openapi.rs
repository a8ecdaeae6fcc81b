//! The admin API against its own OpenAPI document: `tests/schemathesis/run.sh` fuzzes every
//! documented operation with schemathesis (installed into a venv under `target/` when
//! missing) against this build's binary, with a few examples per operation and a fixed seed
//! so that it fits in CI and repeats. It needs python3 with venv and pip, and fails without
//! them rather than skipping: a document nobody checks drifts from the routes.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The seed of the suite's run (1,855 cases then, all passing).
const SEED: &str = "208400137987468173310493410171531601385";

/// Enough to create the venv and install schemathesis on a first run, then fuzz.
const BUDGET: Duration = Duration::from_secs(600);

#[test]
fn schemathesis_finds_nothing_undocumented() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/schemathesis/run.sh");
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("bash")
        .arg(&script)
        .env("OTA_HOST_BIN", super::BIN)
        .env("SCHEMATHESIS_MAX_EXAMPLES", "5")
        // A fixed seed keeps the suite repeatable; run.sh without one explores new cases.
        .env("SCHEMATHESIS_SEED", SEED)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        // A group of its own, so that running out of time ends the server and schemathesis
        // with the script.
        .process_group(0)
        .spawn()
        .expect("bash runs tests/schemathesis/run.sh");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > BUDGET {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(s) => assert!(s.success(), "run.sh failed ({s}):\n{printed}"),
        None => panic!("run.sh took over {BUDGET:?}:\n{printed}"),
    }
    assert!(printed.contains("Schemathesis v"), "{printed}");
}
