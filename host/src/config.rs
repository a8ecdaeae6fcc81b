//! The operator's configuration: command-line flags, `OTA_HOST_*` environment variables and
//! an optional TOML file, merged into one [`Config`] (flags and env win over the file).
//! Every field has a default, so `ota-host serve` runs with no configuration at all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The TOML file as written by the operator (all optional, kebab-case keys).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub plugins_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub public_url: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub blobs: BlobsConfig,
    #[serde(default)]
    pub logins: LoginLimits,
    #[serde(default)]
    pub secrets: SecretsConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Mounts keyed by plugin manifest name.
    #[serde(default)]
    pub plugins: BTreeMap<String, MountConfig>,
    /// Declarative provisioning, applied (idempotently) at every start.
    #[serde(default)]
    pub tenants: Vec<TenantDecl>,
    /// Operator API keys for the admin API, declared as their plaintext value.
    #[serde(default)]
    pub operator_keys: Vec<KeyDecl>,
}

/// Per-request sandbox limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Linear-memory cap per plugin instance, in MiB.
    pub memory_mib: u64,
    /// Wall-clock budget for one plugin call (manifest or handle), in milliseconds.
    pub request_timeout_ms: u64,
    /// Largest request body a plugin is handed, in bytes.
    pub max_body_bytes: usize,
    /// Plugin instances that may be alive at once (pooling allocator slots).
    pub max_instances: u32,
    /// A request head (line and headers) must arrive within this long of its first byte,
    /// and a new connection's first head within this long of the accept.
    pub header_read_timeout_ms: u64,
    /// A request body that sends nothing for this long is abandoned (408).
    pub body_idle_timeout_ms: u64,
    /// A kept-alive connection with no request for this long is closed.
    pub keep_alive_idle_ms: u64,
    /// A client that reads none of its response for this long is disconnected.
    pub send_timeout_ms: u64,
    /// Open connections over all listeners; beyond it a connection is answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_connections_per_ip: usize,
    /// Requests per second one client address may send to plugins (twice that in a burst);
    /// beyond, the dialect's "too many requests" answer. 0: no limit.
    pub requests_per_ip_per_sec: u32,
    /// A request body for a plugin must arrive whole within this long (a client trickling it
    /// byte by byte gets 408).
    pub body_timeout_ms: u64,
    /// Calls one plugin may run at once (its instances); per mount as `instances`.
    pub plugin_instances: u32,
    /// Calls of one plugin executing guest code at once [default: half the cores, at least
    /// 1]; per mount as `cpu-slots`.
    pub plugin_cpu_slots: Option<u32>,
    /// Linear memory over all live instances of one plugin, in MiB; per mount as
    /// `memory-budget-mib`.
    pub plugin_memory_budget_mib: u64,
    /// How long a call may wait for one of its plugin's instances before it is answered busy.
    pub plugin_queue_ms: u64,
    /// Connections in the database pool [default: 8 on SQLite, 16 on PostgreSQL]. On a
    /// SQLite file, as many more serve the device path's reads (`storage/reads.rs`).
    pub database_connections: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 64,
            request_timeout_ms: 2_000,
            max_body_bytes: 1 << 20,
            max_instances: 256,
            header_read_timeout_ms: 10_000,
            body_idle_timeout_ms: 15_000,
            keep_alive_idle_ms: 30_000,
            send_timeout_ms: 60_000,
            max_connections: 8_192,
            max_connections_per_ip: 1_024,
            requests_per_ip_per_sec: 500,
            body_timeout_ms: 20_000,
            plugin_instances: 64,
            plugin_cpu_slots: None,
            plugin_memory_budget_mib: 256,
            plugin_queue_ms: 250,
            database_connections: None,
        }
    }
}

/// Password and client-secret checks: each costs an Argon2 computation (~19 MiB, tens of
/// milliseconds), so they are bounded in number and rate; a flood costs the flooder time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LoginLimits {
    /// Argon2 computations at once [default: half the cores, at least 1].
    pub hash_concurrency: Option<u32>,
    /// Checks that may wait for a computation; beyond it a login is answered busy at once.
    pub hash_queue: u32,
    /// Checks one client address may have queued or running at once (so one address cannot
    /// fill the queue in front of everyone else).
    pub per_address_checks: u32,
    /// Login attempts per minute from one client address (a burst of `attempt-burst` first).
    pub attempts_per_minute: u32,
    pub attempt_burst: u32,
    /// Failed attempts from one address, or for one account, before back-off starts.
    pub free_failures: u32,
    /// The back-off doubles from one second with every further failure, up to this.
    pub max_backoff_secs: u64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            hash_concurrency: None,
            hash_queue: 32,
            per_address_checks: 4,
            attempts_per_minute: 120,
            attempt_burst: 30,
            free_failures: 5,
            max_backoff_secs: 60,
        }
    }
}

/// Sealed secrets (see `secrets`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SecretsConfig {
    /// The master key file [default: `<data-dir>/master.key`, generated on first start];
    /// `OTA_HOST_MASTER_KEY` (hex keys, comma-separated) takes precedence over any file.
    pub master_key_file: Option<PathBuf>,
}

/// Prometheus metrics (`GET /metrics`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct MetricsConfig {
    /// A listener of its own serving `/metrics` (and `/readyz`) without credentials, for a
    /// scraper on a private network. `/metrics` on the main listener, behind an operator
    /// key, stays either way.
    pub listen: Option<SocketAddr>,
}

/// The background scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SchedulerConfig {
    /// How often the scheduler looks for overdue work, in milliseconds.
    pub interval_ms: u64,
    /// An IoTStack deployment still unfinished this long after creation becomes `timeout`.
    pub deployment_timeout_secs: u64,
    /// How often where each running campaign stands is recorded for the dashboard's charts.
    pub progress_sample_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            interval_ms: 1_000,
            deployment_timeout_secs: 3_600,
            progress_sample_secs: 60,
        }
    }
}

/// The firmware file store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct BlobsConfig {
    /// Where firmware files are kept: an S3-compatible bucket (`s3://bucket/prefix`, with
    /// endpoint, region and credentials from the `AWS_*` environment), `file:///dir`, or a
    /// directory [default: `<data-dir>/blobs`]. Replicas that share a database must share
    /// this too.
    pub store: Option<String>,
    /// Options of an `s3://` store, over the `AWS_*` environment: any of `object_store`'s
    /// S3 keys (`aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_allow_http`, `aws_virtual_hosted_style_request`, ...).
    pub store_options: BTreeMap<String, String>,
    /// Largest accepted upload, in MiB.
    pub max_upload_mib: u64,
    /// Uploads streaming in at once over the host (each holds up to ~24 MiB of buffers).
    pub uploads_in_flight: usize,
    /// Uploads streaming in at once per party (an operator key, a tenant's signed forms).
    pub uploads_per_party: usize,
    /// Refuse downloads without a valid `exp` + `sig` (signed, expiring link).
    pub require_signed_urls: bool,
    /// Lifetime of the signed links the host hands out, in seconds.
    pub url_ttl_secs: u64,
    /// CORS of the OSS-compatible upload endpoint (`/oss/…`). Any origin by default: the
    /// signed policy is the authorization, and browser uploaders (plupload) run on the
    /// operator's console origin.
    pub oss_cors: CorsConfig,
    /// A listener of its own for the OSS-compatible endpoint, serving buckets path-style at
    /// its root (`POST /<bucket>`, `GET|HEAD /<bucket>/<key>`), which is where OSS SDKs such
    /// as Aliyun's `oss2` send requests for an IP endpoint. Upload forms then name it as their
    /// `host`. Unset: the endpoint is `/oss/<bucket>` on the main listener only.
    pub oss_listen: Option<std::net::SocketAddr>,
    /// The public base URL of `oss-listen` (e.g. behind a proxy); default `http://` + its
    /// bound address.
    pub oss_public_url: Option<String>,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        BlobsConfig {
            store: None,
            store_options: BTreeMap::new(),
            max_upload_mib: 1024,
            uploads_in_flight: 16,
            uploads_per_party: 4,
            require_signed_urls: false,
            url_ttl_secs: 86_400,
            oss_cors: CorsConfig {
                allow_origins: vec!["*".into()],
                allow_methods: ["GET", "HEAD", "POST"].map(String::from).to_vec(),
                expose_headers: [
                    "etag",
                    "x-oss-request-id",
                    "x-oss-hash-crc64ecma",
                    "content-md5",
                ]
                .map(String::from)
                .to_vec(),
                ..CorsConfig::default()
            },
            oss_listen: None,
            oss_public_url: None,
        }
    }
}

/// How the credentials of a plugin's requests are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// The plugin must present a credential the host verifies (API key, device secret, ...).
    #[default]
    ApiKey,
    /// `auth.anonymous()` succeeds and acts for the mount's `tenant`.
    Anonymous,
}

/// Where and how one plugin is reachable. Everything optional: by default a plugin's routes
/// are served at the root of the main listener, on any Host, requiring credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct MountConfig {
    /// Path prefix in front of the plugin's routes (e.g. `/iotstack`); empty for none.
    pub prefix: String,
    /// Only requests whose `Host` header (port ignored) equals this reach the plugin.
    pub host: Option<String>,
    /// Serve the plugin on its own listener instead of the main one.
    pub listen: Option<SocketAddr>,
    /// Credential policy.
    pub auth: AuthMode,
    /// Tenant that anonymous requests act for (required with `auth = "anonymous"`).
    pub tenant: Option<String>,
    /// Free-form settings the plugin reads through its `config` import.
    pub settings: BTreeMap<String, String>,
    /// Lifetime of access tokens the plugin's logins earn [default: 43200, 12 hours].
    pub token_ttl_secs: Option<u64>,
    /// Lifetime of refresh tokens [default: 2592000, 30 days].
    pub refresh_ttl_secs: Option<u64>,
    /// How far the timestamp of a signed request may be from the host's clock, either way
    /// [default: 900, 15 minutes].
    pub hmac_max_skew_secs: Option<u64>,
    /// Calls of this plugin at once [default: `limits.plugin-instances`].
    pub instances: Option<u32>,
    /// Calls of this plugin executing guest code at once [default: `limits.plugin-cpu-slots`].
    pub cpu_slots: Option<u32>,
    /// Linear memory over all of this plugin's instances, in MiB [default:
    /// `limits.plugin-memory-budget-mib`].
    pub memory_budget_mib: Option<u64>,
    /// Cross-origin access for browser apps on other origins (`[plugins.<name>.cors]`); none
    /// by default.
    pub cors: Option<CorsConfig>,
    /// What tells a plugin's clients apart when a canary version takes a share of its
    /// requests: `header:<name>` or `query:<name>` [default: the `Authorization` or
    /// `X-API-Key` header, else the client's address].
    pub canary_key: Option<String>,
}

/// CORS as the host answers it for one party (a plugin mount, the OSS upload endpoint): the
/// host answers preflights itself, before any plugin runs, and adds the headers to answers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CorsConfig {
    /// Origins allowed exactly (`https://console.example.com`), or `["*"]` for any.
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for.
    pub allow_methods: Vec<String>,
    /// Request headers allowed; empty allows whatever a preflight asks for.
    pub allow_headers: Vec<String>,
    /// Answer headers a page's script may read besides the safelisted ones.
    pub expose_headers: Vec<String>,
    /// How long a browser may reuse a preflight's answer, in seconds.
    pub max_age_secs: u64,
    /// Whether pages may send cookies and credentials (never together with `*`).
    pub allow_credentials: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allow_origins: Vec::new(),
            allow_methods: ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
                .map(String::from)
                .to_vec(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age_secs: 600,
            allow_credentials: false,
        }
    }
}

impl CorsConfig {
    /// Whether any origin is allowed.
    pub fn any_origin(&self) -> bool {
        self.allow_origins.iter().any(|o| o == "*")
    }

    /// Every value must be one a header can carry; `*` stands alone and never with
    /// credentials (browsers refuse that combination).
    fn check(&self, section: &str) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("{section}: {m}")));
        if self.any_origin() && (self.allow_origins.len() > 1 || self.allow_credentials) {
            return bad("\"*\" is the only origin when given, and never with credentials".into());
        }
        for o in self.allow_origins.iter().filter(|o| *o != "*") {
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && axum::http::HeaderValue::from_str(o).is_ok();
            if !ok {
                return bad(format!("origin {o:?} is not scheme://host[:port]"));
            }
        }
        for m in &self.allow_methods {
            if axum::http::Method::from_bytes(m.as_bytes()).is_err() {
                return bad(format!("{m:?} is not a method"));
            }
        }
        for h in self.allow_headers.iter().chain(&self.expose_headers) {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return bad(format!("{h:?} is not a header name"));
            }
        }
        Ok(())
    }
}

impl MountConfig {
    pub fn hmac_max_skew(&self) -> u64 {
        self.hmac_max_skew_secs.unwrap_or(900)
    }

    pub fn token_policy(&self) -> crate::auth::TokenPolicy {
        crate::auth::TokenPolicy {
            access_ttl_secs: self.token_ttl_secs.unwrap_or(43_200).max(1),
            refresh_ttl_secs: self.refresh_ttl_secs.unwrap_or(2_592_000).max(1),
        }
    }
}

/// A tenant with its products and API keys, declared in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TenantDecl {
    pub name: String,
    #[serde(default)]
    pub products: Vec<ProductDecl>,
    #[serde(default)]
    pub api_keys: Vec<KeyDecl>,
}

/// A product declared in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProductDecl {
    pub sn: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// An API key declared in the config file. Only its hash is stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeyDecl {
    pub name: String,
    pub key: String,
}

/// The fully resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub database: String,
    pub public_url: Option<String>,
    pub limits: Limits,
    pub scheduler: SchedulerConfig,
    pub blobs: BlobsConfig,
    pub logins: LoginLimits,
    pub secrets: SecretsConfig,
    pub metrics: MetricsConfig,
    pub mounts: BTreeMap<String, MountConfig>,
    pub tenants: Vec<TenantDecl>,
    pub operator_keys: Vec<KeyDecl>,
}

/// Values given on the command line or in the environment; they override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub plugins_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub config: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub blob_store: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }
}

impl Config {
    /// Merge overrides over the file (if any) over the defaults, and check the result.
    pub fn resolve(o: Overrides) -> Result<Self, ConfigError> {
        let file = match &o.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::from_parts(file, o)
    }

    pub fn from_parts(file: FileConfig, o: Overrides) -> Result<Self, ConfigError> {
        let data_dir = o
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("ota-data"));
        let plugins_dir = o
            .plugins_dir
            .or(file.plugins_dir)
            .unwrap_or_else(|| data_dir.join("plugins"));
        let database = o
            .database
            .or(file.database)
            .unwrap_or_else(|| sqlite_url(&data_dir.join("ota.db")));
        let cfg = Config {
            listen: o
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            plugins_dir,
            database,
            public_url: file.public_url.map(|u| u.trim_end_matches('/').to_string()),
            limits: file.limits,
            scheduler: file.scheduler,
            blobs: BlobsConfig {
                store: o.blob_store.or(file.blobs.store),
                ..file.blobs
            },
            logins: file.logins,
            secrets: file.secrets,
            metrics: MetricsConfig {
                listen: o.metrics_listen.or(file.metrics.listen),
            },
            mounts: file.plugins,
            tenants: file.tenants,
            operator_keys: file.operator_keys,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.limits.memory_mib == 0 || self.limits.request_timeout_ms == 0 {
            return bad("limits must be positive".into());
        }
        if self.limits.max_instances == 0 {
            return bad("limits.max-instances must be positive".into());
        }
        let l = &self.limits;
        if [
            l.header_read_timeout_ms,
            l.body_idle_timeout_ms,
            l.keep_alive_idle_ms,
            l.send_timeout_ms,
            l.body_timeout_ms,
        ]
        .contains(&0)
            || l.max_connections == 0
            || l.max_connections_per_ip == 0
        {
            return bad("limits: timeouts and connection caps must be positive".into());
        }
        self.blobs.oss_cors.check("blobs.oss-cors")?;
        if let Some(url) = &self.blobs.oss_public_url
            && (self.blobs.oss_listen.is_none()
                || !(url.starts_with("http://") || url.starts_with("https://"))
                || url.ends_with('/'))
        {
            return bad(
                "blobs.oss-public-url needs blobs.oss-listen, http:// or https://, and no \
                 trailing '/'"
                    .into(),
            );
        }
        if self.scheduler.interval_ms == 0 {
            return bad("scheduler.interval-ms must be positive".into());
        }
        if self.scheduler.progress_sample_secs == 0 {
            return bad("scheduler.progress-sample-secs must be positive".into());
        }
        for (name, m) in &self.mounts {
            if !m.prefix.is_empty() && (!m.prefix.starts_with('/') || m.prefix.ends_with('/')) {
                return bad(format!(
                    "plugins.{name}.prefix must start with '/' and not end with '/'"
                ));
            }
            if m.auth == AuthMode::Anonymous && m.tenant.is_none() {
                return bad(format!(
                    "plugins.{name}: auth = \"anonymous\" needs a tenant to act for"
                ));
            }
            if let Some(c) = &m.cors {
                c.check(&format!("plugins.{name}.cors"))?;
            }
            if let Some(k) = &m.canary_key
                && !k
                    .split_once(':')
                    .is_some_and(|(kind, n)| matches!(kind, "header" | "query") && !n.is_empty())
            {
                return bad(format!(
                    "plugins.{name}.canary-key must be header:<name> or query:<name>"
                ));
            }
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad("public-url must start with http:// or https://".into());
        }
        Ok(())
    }

    /// Where the master key file is (used unless `OTA_HOST_MASTER_KEY` is set).
    pub fn master_key_file(&self) -> PathBuf {
        self.secrets
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// Where firmware files are kept.
    pub fn blob_location(&self) -> crate::blobs::BlobLocation {
        match &self.blobs.store {
            Some(url) => crate::blobs::BlobLocation::Url {
                url: url.clone(),
                options: self.blobs.store_options.clone(),
            },
            None => crate::blobs::BlobLocation::Dir(self.data_dir.join("blobs")),
        }
    }

    /// The mount of a plugin (defaults when the operator configured none).
    pub fn mount(&self, plugin: &str) -> MountConfig {
        self.mounts.get(plugin).cloned().unwrap_or_default()
    }
}

/// The default database's URL for a SQLite file. sqlx percent-decodes the path it is given,
/// and `?` and `#` end it, so those (and `%` itself) are encoded: a data dir may hold any.
fn sqlite_url(file: &Path) -> String {
    const IN_PATH: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
    let path = file.to_string_lossy();
    format!(
        "sqlite://{}?mode=rwc",
        percent_encoding::utf8_percent_encode(&path, IN_PATH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let c = Config::from_parts(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.plugins_dir, PathBuf::from("ota-data/plugins"));
        assert!(c.database.starts_with("sqlite://"));
    }

    #[test]
    fn the_default_database_url_names_the_data_dir_file_whatever_its_name() {
        for dir in ["ota-data", "/srv/ota data", "/srv/100%/a?b#c"] {
            let o = Overrides {
                data_dir: Some(PathBuf::from(dir)),
                ..Overrides::default()
            };
            let c = Config::from_parts(FileConfig::default(), o).unwrap();
            assert_eq!(
                crate::storage::sqlite_file(&c.database),
                Some(Path::new(dir).join("ota.db")),
                "{}",
                c.database
            );
        }
    }

    #[test]
    fn file_and_overrides() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            public-url = "https://ota.example.com/"
            [limits]
            memory-mib = 32
            [plugins.iotstack]
            prefix = "/iot"
            auth = "anonymous"
            tenant = "acme"
            settings = { memory = ">= 1G" }
            [plugins.ubtech]
            token-ttl-secs = 60
            [[tenants]]
            name = "acme"
            products = [{ sn = "P1" }]
            api-keys = [{ name = "ci", key = "k" }]
            "#,
        )
        .unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::from_parts(file, o).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.public_url.as_deref(), Some("https://ota.example.com"));
        assert_eq!(c.limits.memory_mib, 32);
        assert_eq!(c.limits.request_timeout_ms, 2_000);
        assert_eq!(c.mount("iotstack").prefix, "/iot");
        assert_eq!(c.mount("other").auth, AuthMode::ApiKey);
        let tokens = c.mount("ubtech").token_policy();
        assert_eq!(
            (tokens.access_ttl_secs, tokens.refresh_ttl_secs),
            (60, 2_592_000)
        );
        assert_eq!(c.mount("other").token_policy().access_ttl_secs, 43_200);
    }

    #[test]
    fn refuses_anonymous_without_tenant() {
        let file: FileConfig = toml::from_str("[plugins.x]\nauth = \"anonymous\"").unwrap();
        assert!(Config::from_parts(file, Overrides::default()).is_err());
        assert!(toml::from_str::<FileConfig>("nonsense = 1").is_err());
    }

    #[test]
    fn canary_keys_and_blob_stores_resolve() {
        let resolve =
            |toml: &str| Config::from_parts(toml::from_str(toml).unwrap(), Overrides::default());
        assert!(resolve("[plugins.x]\ncanary-key = \"query:device_id\"").is_ok());
        assert!(resolve("[plugins.x]\ncanary-key = \"header:x-device\"").is_ok());
        for bad in ["cookie:x", "query:", "device_id"] {
            assert!(resolve(&format!("[plugins.x]\ncanary-key = \"{bad}\"")).is_err());
        }
        let c = resolve("[blobs]\nstore = \"s3://b/p\"\nstore-options = { aws_region = \"x\" }")
            .unwrap();
        assert!(matches!(
            c.blob_location(),
            crate::blobs::BlobLocation::Url { url, options } if url == "s3://b/p" && options.len() == 1
        ));
        let flag = Overrides {
            blob_store: Some("s3://other".into()),
            ..Default::default()
        };
        let c = Config::from_parts(toml::from_str("[blobs]\nstore = \"s3://b\"").unwrap(), flag)
            .unwrap();
        assert_eq!(
            c.blobs.store.as_deref(),
            Some("s3://other"),
            "the flag wins"
        );
        let c = resolve("").unwrap();
        assert_eq!(
            c.blob_location(),
            crate::blobs::BlobLocation::Dir(c.data_dir.join("blobs"))
        );
    }

    #[test]
    fn cors_values_are_checked_at_start() {
        let resolve =
            |toml: &str| Config::from_parts(toml::from_str(toml).unwrap(), Overrides::default());
        let ok = resolve(
            "[plugins.x.cors]\nallow-origins = [\"https://a.example\", \"http://b.example:8080\"]",
        )
        .unwrap();
        assert_eq!(ok.mounts["x"].cors.as_ref().unwrap().max_age_secs, 600);
        assert!(
            ok.blobs.oss_cors.any_origin(),
            "uploads from any origin by default"
        );
        for bad in [
            "[plugins.x.cors]\nallow-origins = [\"*\"]\nallow-credentials = true",
            "[plugins.x.cors]\nallow-origins = [\"*\", \"https://a.example\"]",
            "[plugins.x.cors]\nallow-origins = [\"a.example\"]",
            "[plugins.x.cors]\nallow-origins = [\"https://a.example/\"]",
            "[plugins.x.cors]\nexpose-headers = [\"bad header\"]",
            "[blobs.oss-cors]\nallow-methods = [\"NOT A METHOD\"]",
        ] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
    }
}
