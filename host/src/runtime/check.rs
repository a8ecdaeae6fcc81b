//! `ota-host plugin check`: load a plugin file exactly as the server would (contract version,
//! world, manifest, routes), against a throwaway in-memory database, and describe it.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Runtime;
use crate::Services;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, FileConfig, Limits, Overrides};

pub async fn check_file(file: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(file)?;
    let clock: SharedClock = Arc::new(SystemClock);
    // A throwaway data dir: checking a file must leave nothing behind.
    let scratch = std::env::temp_dir().join(format!("ota-plugin-check-{}", std::process::id()));
    let result = check(file, bytes, clock, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn check(
    file: &Path,
    bytes: Vec<u8>,
    clock: SharedClock,
    scratch: &Path,
) -> anyhow::Result<Value> {
    let config = Config::from_parts(
        FileConfig::default(),
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
    std::fs::create_dir_all(scratch)?;
    let services = Services::open(&config, clock.clone()).await?;
    let runtime = Runtime::new(Limits::default(), None, services)
        .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e:#}"))?;
    let p = runtime
        .load(file, bytes, |_| Default::default(), clock.now_millis())
        .await
        .map_err(|e| anyhow::anyhow!("{}: refused: {e}", file.display()))?;
    Ok(json!({
        "name": p.name,
        "version": p.version,
        "vendor": p.vendor,
        "description": p.description,
        "contract": format!("ota:dialect@{}", p.contract),
        "sha256": p.hash,
        "routes": p.routes,
    }))
}
