//! `ota-host plugin check` and `plugin call`: load a plugin file exactly as the server would
//! (contract version, world, manifest, routes), against a throwaway host (a temp SQLite
//! database, optionally provisioned from a TOML file), then describe it or send it one request.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{CallSite, LoadedPlugin, Runtime, bindings};
use crate::Services;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, FileConfig, Overrides};

/// One request for `plugin call`, as the command line gives it.
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    pub method: String,
    /// The path with an optional `?query`.
    pub target: String,
    /// (name, value) in order; names are lower-cased on the way in, as the server does.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

async fn boot(
    file: &Path,
    seed: Option<&Path>,
    scratch: &Path,
) -> anyhow::Result<(Runtime, LoadedPlugin)> {
    let bytes = std::fs::read(file)?;
    let clock: SharedClock = Arc::new(SystemClock);
    let file_config = match seed {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let config = Config::from_parts(
        file_config,
        Overrides {
            // A file, not `sqlite::memory:`: each pooled connection would get its own empty
            // in-memory database.
            database: Some(format!(
                "sqlite://{}?mode=rwc",
                scratch.join("check.db").display()
            )),
            data_dir: Some(scratch.to_path_buf()),
            ..Default::default()
        },
    )?;
    let services = Services::open(&config, clock.clone()).await?;
    crate::provision::apply(&config, &services).await?;
    let runtime = Runtime::new(config.limits.clone(), None, services)
        .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e:#}"))?;
    let p = runtime
        .load(file, bytes, |name| config.mount(name), clock.now_millis())
        .await
        .map_err(|e| anyhow::anyhow!("{}: refused: {e}", file.display()))?;
    Ok((runtime, p))
}

/// A scratch host's data dir: created private and unpredictably named (it holds a database a
/// plugin writes to), and removed when the check or call is done, leaving nothing behind.
fn scratch_dir(what: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("ota-plugin-{what}-"))
        .tempdir()
}

pub async fn check_file(file: &Path) -> anyhow::Result<Value> {
    let scratch = scratch_dir("check")?;
    let (_, p) = boot(file, None, scratch.path()).await?;
    Ok(json!({
        "name": p.name,
        "version": p.version,
        "vendor": p.vendor,
        "description": p.description,
        "contract": format!("ota:dialect@{}", p.contract),
        "needs": format!("ota:dialect@{}", p.needs),
        "sha256": p.hash,
        "routes": p.routes,
    }))
}

/// Send one request through the plugin, as the server would after routing it there, and
/// answer the plugin's response (or, when it fails, its failure answer). `seed` provisions
/// the scratch host like the server's `--config` file (tenants, keys, products, mounts).
pub async fn call_file(
    file: &Path,
    seed: Option<&Path>,
    req: CallRequest,
) -> anyhow::Result<bindings::Response> {
    let scratch = scratch_dir("call")?;
    let (runtime, p) = boot(file, seed, scratch.path()).await?;
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (req.target.clone(), String::new()),
    };
    // The plugin sees its path without the mount's prefix; its routes are matched with it.
    let full = format!("{}{path}", p.mount.prefix);
    if !p.matches(&req.method, &full) && p.fallback_depth(&req.method, &full).is_none() {
        anyhow::bail!(
            "no route of {} takes {} {path}; its routes: {}",
            p.name,
            req.method,
            serde_json::to_string(&p.routes)?
        );
    }
    let host_url = "http://localhost".to_string();
    let wit = bindings::Request {
        method: req.method.to_ascii_uppercase(),
        path: path.clone(),
        query,
        headers: req
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        body: req.body,
        base_url: format!("{host_url}{}", p.mount.prefix),
        host_url: host_url.clone(),
        request_id: "plugin-call".into(),
    };
    let site = CallSite {
        host_url,
        oss_url: None,
        client: None,
        preauthorized: None,
    };
    Ok(match runtime.handle(&p, &wit, &site).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(plugin = %p.name, error = %e, "plugin call failed");
            runtime.fail(&p, &wit, &e, &site).await
        }
    })
}
