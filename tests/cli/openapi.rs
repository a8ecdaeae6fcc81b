//! The admin API against its own OpenAPI document: `tests/schemathesis/run.sh` fuzzes every
//! documented operation with schemathesis (installed into a venv under `target/` when
//! missing) against this build's binary, with a few examples per operation and a fixed seed
//! so that it fits in CI and repeats. It needs python3 with venv and pip, and fails without
//! them rather than skipping: a document nobody checks drifts from the routes.

use std::time::Duration;

/// The seed of the suite's run (1,855 cases then, all passing).
const SEED: &str = "208400137987468173310493410171531601385";

#[test]
fn schemathesis_finds_nothing_undocumented() {
    let printed = super::run_script(
        "tests/schemathesis/run.sh",
        &[
            ("SCHEMATHESIS_MAX_EXAMPLES", "5"),
            // A fixed seed keeps the suite repeatable; run.sh without one explores new cases.
            ("SCHEMATHESIS_SEED", SEED),
        ],
        // Enough to create the venv and install schemathesis on a first run, then fuzz.
        Duration::from_secs(600),
    );
    assert!(printed.contains("Schemathesis v"), "{printed}");
}
