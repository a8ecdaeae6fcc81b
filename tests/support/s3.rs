//! A throwaway S3-compatible server for tests: `moto` in server mode (from PyPI, pinned, in
//! a venv of its own; see `python::venv`) on a free loopback port, with one bucket, stopped
//! when the [`S3`] guard drops. Anything S3 needs to know is what a real client sends.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The pinned moto from PyPI.
const MOTO: &str = "moto[server]==5.2.5";

pub struct S3 {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub bucket: String,
    http: reqwest::Client,
}

impl S3 {
    /// Start moto and create `bucket`; `None` without python3 outside CI.
    pub async fn start(bucket: &str) -> Option<S3> {
        let venv = super::python::venv("moto", &[MOTO])?;
        let port = super::free_port();
        let child = Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s3 = S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_string(),
            http: reqwest::Client::new(),
        };
        let mut up = false;
        for _ in 0..300 {
            if let Ok(r) = s3.http.put(s3.url("")).send().await {
                assert!(
                    r.status().is_success(),
                    "creating the bucket: {}",
                    r.status()
                );
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "moto did not start on {}", s3.endpoint);
        Some(s3)
    }

    fn url(&self, query: &str) -> String {
        format!("{}/{}{query}", self.endpoint, self.bucket)
    }

    /// The environment an S3 client (ota-host's `object_store`) needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Every object key in the bucket (ListObjectsV2, one page is plenty for a test).
    pub async fn keys(&self) -> Vec<String> {
        let xml = self.get("?list-type=2&max-keys=1000").await;
        elements(&xml, "Key")
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub async fn open_multipart_uploads(&self) -> usize {
        let xml = self.get("?uploads").await;
        elements(&xml, "UploadId").len()
    }

    async fn get(&self, query: &str) -> String {
        let r = self.http.get(self.url(query)).send().await.unwrap();
        assert!(r.status().is_success(), "{query}: {}", r.status());
        r.text().await.unwrap()
    }
}

/// The text of every `<name>…</name>` in `xml`.
fn elements(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
