//! A real ota-host, in-process, for a dialect plugin's own `cargo test`: the server the
//! operators run (routing, reserved paths, CORS, budgets, the plugin runtime), on
//! `127.0.0.1:0` with a throwaway SQLite database, serving the plugin files you name, provisioned
//! from the same TOML as the server's `--config` (tenants, products, API keys, mounts). Tests
//! then speak HTTP to it, exactly as the vendor's clients will.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let host = ota_plugin_testkit::TestHost::builder()
//!     .plugin("target/wasm32-wasip2/release/acme_ota_dialect.wasm")
//!     .seed(r#"
//!         [[tenants]]
//!         name = "acme"
//!         products = [{ sn = "P" }]
//!         api-keys = [{ name = "dev", key = "dev-key-0123456789abcdef0123" }]
//!     "#)
//!     .start()
//!     .await?;
//! let answer = host.get("/acme-ota/v1/hello?name=ana").send().await?;
//! assert_eq!(answer.status(), 200);
//! host.clock().advance_secs(3600); // an hour later, for tokens and deadlines
//! host.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The host is the one this crate was built with (`ota-plugin-testkit 0.2.8` speaks
//! `ota:dialect@0.2.8`), so a plugin that needs a newer contract is refused at `start`, with
//! the reason.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use ota_host::clock::ManualClock;
use ota_host::config::{Config, FileConfig, Overrides};
use ota_host::server::RunningServer;

/// 2023-11-14T22:13:20Z: where the test clock starts unless told otherwise.
pub const DEFAULT_START_MILLIS: i64 = 1_700_000_000_000;

/// What to serve and how to provision it; [`TestHost::builder`] makes one.
#[derive(Debug, Default)]
pub struct Builder {
    plugins: Vec<PathBuf>,
    seed: String,
    start_millis: Option<i64>,
}

impl Builder {
    /// Serve this plugin file (a component built against `ota:dialect`); call once per file.
    pub fn plugin(mut self, file: impl Into<PathBuf>) -> Self {
        self.plugins.push(file.into());
        self
    }

    /// Provision the host from this TOML, in the server's `--config` format. Called again,
    /// the texts are joined.
    pub fn seed(mut self, toml: &str) -> Self {
        self.seed.push_str(toml);
        self.seed.push('\n');
        self
    }

    /// Start the test clock at this Unix time in milliseconds.
    pub fn start_at_millis(mut self, millis: i64) -> Self {
        self.start_millis = Some(millis);
        self
    }

    /// Boot the host. Fails when the seed does not parse, or when the server would refuse a
    /// plugin (naming the file and why: a contract it lacks, a reserved or conflicting route).
    pub async fn start(self) -> anyhow::Result<TestHost> {
        if self.plugins.is_empty() {
            bail!("no plugin to serve: call .plugin(path) at least once");
        }
        let mut file: FileConfig = toml::from_str(&self.seed).context("the seed TOML")?;
        // Tests send fast from one address: that is not a flood.
        file.limits.requests_per_ip_per_sec = 0;
        let dir = tempfile::Builder::new()
            .prefix("ota-plugin-testkit-")
            .tempdir()?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins)?;
        for (i, path) in self.plugins.iter().enumerate() {
            let name = path
                .file_name()
                .with_context(|| format!("{} names no file", path.display()))?;
            // Numbered, so two builds with one file name can both be served.
            let copy = plugins.join(format!("{i}-{}", name.to_string_lossy()));
            std::fs::copy(path, &copy).with_context(|| format!("reading {}", path.display()))?;
        }
        let config = Config::from_parts(
            file,
            Overrides {
                listen: Some("127.0.0.1:0".parse()?),
                data_dir: Some(dir.path().join("data")),
                plugins_dir: Some(plugins),
                ..Default::default()
            },
        )?;
        let clock = ManualClock::new(self.start_millis.unwrap_or(DEFAULT_START_MILLIS));
        let server = ota_host::server::start(config, clock.clone()).await?;
        let refused: Vec<String> = server
            .registry
            .snapshot()
            .failures
            .iter()
            .map(|(file, f)| format!("{}: {}", file.display(), f.reason))
            .collect();
        if !refused.is_empty() {
            server.shutdown().await;
            bail!("the host refused: {}", refused.join("; "));
        }
        Ok(TestHost {
            server,
            clock,
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }
}

/// A running host; dropped or [`shut down`](TestHost::shutdown), it leaves nothing behind.
pub struct TestHost {
    server: RunningServer,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestHost {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The absolute URL of `path` (with its query) on the host.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A request to `path` on the host, to finish with headers and a body and `send()`.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    /// The host's clock: it moves only when a test says so.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The host's own services, to set up what the seed cannot say (releases, campaigns,
    /// devices) or to check what a request changed.
    pub fn services(&self) -> &ota_host::Services {
        &self.server.services
    }

    /// One pass of the rollout scheduler (deadlines, waves, retries), as its timer would run.
    pub async fn scheduler_tick(&self) -> u64 {
        self.server.scheduler_tick().await
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    /// The testkit's version is the contract of the host it serves, like the SDK's.
    #[test]
    fn the_testkit_version_is_the_hosts_contract() {
        assert_eq!(env!("CARGO_PKG_VERSION"), ota_host::runtime::CONTRACT);
    }
}
