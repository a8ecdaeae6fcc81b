//! Test support for the end-to-end suite: boot the real server in-process on `127.0.0.1:0`
//! with real plugin components from the build, a provisioned tenant and keys, and a manual
//! clock; then speak real HTTP to it. `pg` starts a throwaway PostgreSQL for the same tests.

pub mod browser;
pub mod pg;
pub mod prometheus;
pub mod python;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ota_host::clock::ManualClock;
use ota_host::config::{Config, FileConfig, KeyDecl, Overrides, ProductDecl, TenantDecl};
use ota_host::server::{self, RunningServer};
use serde_json::Value;
use tempfile::TempDir;

pub const TENANT: &str = "acme";
pub const PRODUCT: &str = "fqhmuglv1fybql33";
pub const API_KEY: &str = "acme-test-key-0123456789abcdef";
pub const OTHER_TENANT_KEY: &str = "globex-test-key-0123456789abcdef";
pub const OPERATOR_KEY: &str = "operator-test-key-0123456789abcdef";
/// 2023-11-14T22:13:20Z, where every test clock starts.
pub const T0_MILLIS: i64 = 1_700_000_000_000;

/// The component the build produced for a plugin crate (`iotstack`, `misbehave`, ...).
pub fn built_plugin(name: &str) -> PathBuf {
    let file = format!("ota_plugin_{}.wasm", name.replace('-', "_"));
    let path = Path::new(ota_host::bundled::BUILD_DIR).join(file);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// How to start a test server.
pub struct Options {
    /// (file name in the plugins folder, built plugin name).
    pub plugins: Vec<(&'static str, &'static str)>,
    /// Database URL; `None` for a SQLite file in the temp dir.
    pub database: Option<String>,
    /// Last-minute changes to the file configuration.
    pub configure: Box<dyn FnOnce(&mut FileConfig)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            plugins: vec![("iotstack.wasm", "iotstack")],
            database: None,
            configure: Box::new(|_| {}),
        }
    }
}

/// A running server with its temp dir, clock and an HTTP client.
pub struct TestServer {
    pub server: RunningServer,
    pub dir: TempDir,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
}

/// The provisioning every test server starts with.
pub fn base_config() -> FileConfig {
    let mut file = FileConfig {
        tenants: vec![
            TenantDecl {
                name: TENANT.into(),
                products: vec![ProductDecl {
                    sn: PRODUCT.into(),
                    name: Some("Edge gateway".into()),
                }],
                api_keys: vec![KeyDecl {
                    name: "test".into(),
                    key: API_KEY.into(),
                }],
            },
            TenantDecl {
                name: "globex".into(),
                products: vec![ProductDecl {
                    sn: PRODUCT.into(),
                    name: None,
                }],
                api_keys: vec![KeyDecl {
                    name: "globex".into(),
                    key: OTHER_TENANT_KEY.into(),
                }],
            },
        ],
        operator_keys: vec![KeyDecl {
            name: "ops".into(),
            key: OPERATOR_KEY.into(),
        }],
        ..Default::default()
    };
    file.limits.request_timeout_ms = 1_000;
    file.limits.memory_mib = 32;
    file
}

impl TestServer {
    pub async fn start(opts: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        for (file, name) in &opts.plugins {
            std::fs::copy(built_plugin(name), plugins.join(file)).unwrap();
        }
        let mut file = base_config();
        (opts.configure)(&mut file);
        let config = Config::from_parts(
            file,
            Overrides {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                data_dir: Some(dir.path().join("data")),
                plugins_dir: Some(plugins),
                database: opts.database,
                ..Default::default()
            },
        )
        .unwrap();
        let clock = ManualClock::new(T0_MILLIS);
        let server = server::start(config, clock.clone()).await.unwrap();
        TestServer {
            server,
            dir,
            clock,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// POST a raw body with an optional API key; answers status and JSON body.
    pub async fn post(&self, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {text:?}"));
        (status, value)
    }

    /// GET with the operator key; answers status and JSON body.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(OPERATOR_KEY)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// An admin API call as the operator: status and JSON body (`null` when there is none).
pub async fn admin(
    t: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = t
        .http
        .request(method, t.url(path))
        .bearer_auth(OPERATOR_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Poll `check` every 50 ms until it is true or `limit` passes; answers whether it became true.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback port free right now (for a server that must be told its port up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
