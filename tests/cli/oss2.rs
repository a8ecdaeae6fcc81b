//! Aliyun's own OSS SDK, `oss2`, unmodified against the OSS-compatible endpoint:
//! `tests/oss2/run.sh` installs it (pinned, into a venv under `target/` when missing),
//! starts this build's binary with the OSS listener, uploads as the console's browser form
//! does and reads the object back through oss2 (GET with its CRC-64 check, HEAD, meta,
//! Range, resumable download). It needs python3 with venv and pip, and fails without them
//! rather than skipping: the SDK is the judge of the wire.

use std::time::Duration;

#[test]
fn oss2_uploads_and_downloads_unmodified() {
    // Enough to create the venv and install oss2 on a first run, then talk to the server.
    let printed = super::run_script("tests/oss2/run.sh", &[], Duration::from_secs(300));
    assert!(printed.contains("resumable download: ok"), "{printed}");
}
