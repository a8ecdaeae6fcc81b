//! What a plugin author reads in the server's log when their plugin misbehaves: a panic's
//! message and place, an invalid status, dropped headers and whatever the guest printed, each
//! tagged with the plugin, its version and the request id the client was given.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::BIN;

struct Server {
    child: std::process::Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `ota-host serve` with the misbehaving test plugin in its folder, log captured.
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(
            std::path::Path::new(ota_host::bundled::BUILD_DIR).join("ota_plugin_misbehave.wasm"),
            plugins.join("misbehave.wasm"),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = super::capture_stderr(&mut child);
        let (url, _) = super::listening(&mut child);
        Server {
            child,
            url,
            log,
            _dir: dir,
        }
    }

    /// GET a path; answers the status, the request id the client was given, and the body.
    async fn get(&self, path: &str) -> (u16, String, reqwest::header::HeaderMap, String) {
        let r = reqwest::get(format!("{}{path}", self.url)).await.unwrap();
        let status = r.status().as_u16();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let headers = r.headers().clone();
        (status, id, headers, r.text().await.unwrap())
    }

    /// The log lines of one request that contain `needle`, waiting up to 5 s for the first.
    async fn lines(&self, request_id: &str, needle: &str) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let found: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(request_id) && l.contains(needle))
                .cloned()
                .collect();
            if !found.is_empty() || Instant::now() > end {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every line must name the plugin and its version.
fn tagged(lines: &[String]) -> bool {
    lines
        .iter()
        .all(|l| l.contains("misbehave") && l.contains("version=0.1.0"))
}

#[tokio::test]
async fn a_plugins_mistakes_reach_the_log_with_plugin_version_and_request_id() {
    let s = Server::start();

    let (status, id, _, _) = s.get("/misbehave/panic").await;
    assert_eq!(status, 500);
    let panic = s.lines(&id, "the flux capacitor is empty").await;
    assert!(
        panic.iter().any(|l| l.contains("ERROR")
            && l.contains("panicked at plugins/testing/misbehave/src/lib.rs:")),
        "no panic line for {id}: {:#?}",
        s.log.lock().unwrap()
    );
    assert!(tagged(&panic), "{panic:#?}");

    let (status, id, _, _) = s.get("/misbehave/malformed").await;
    assert_eq!(status, 500, "status 999 cannot be sent");
    let invalid = s.lines(&id, "invalid HTTP status").await;
    assert!(
        invalid.iter().any(|l| l.contains("status=999")),
        "{invalid:#?}"
    );
    assert!(tagged(&invalid), "{invalid:#?}");

    let (status, id, headers, _) = s.get("/misbehave/malformed?headers").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-good"], "kept");
    let dropped = s.lines(&id, "dropped a response header").await;
    assert!(
        dropped
            .iter()
            .any(|l| l.contains("bad name") && l.contains("invalid header name")),
        "{dropped:#?}"
    );
    assert!(
        dropped
            .iter()
            .any(|l| l.contains("x-bad-value") && l.contains("invalid header value")),
        "{dropped:#?}"
    );
    assert!(tagged(&dropped), "{dropped:#?}");

    let (status, id, _, body) = s.get("/misbehave/print").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "printed"),
        "printing never fails"
    );
    let out = s.lines(&id, "guest: hello from stdout").await;
    assert!(out.iter().any(|l| l.contains("stream=stdout")), "{out:#?}");
    let err = s.lines(&id, "guest: warning from stderr").await;
    assert!(err.iter().any(|l| l.contains("WARN")), "{err:#?}");
    assert!(tagged(&err), "{err:#?}");
    let noise = s.lines(&id, "noise line").await.len();
    assert!(
        (1..64).contains(&noise),
        "at most 64 lines per stream: {noise}"
    );
    let cut = s.lines(&id, "dropped_bytes=").await;
    assert!(!cut.is_empty(), "the cut is said");
}
