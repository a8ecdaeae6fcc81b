//! Plugins pushed through the database reach this replica. Every [`FOLLOW_EVERY`] the
//! serving version of each pushed plugin is compared with what the plugins folder holds as
//! `<plugins>/<name>.wasm`; when it differs, the component is fetched from the blob store
//! (checked against its SHA-256), written aside and renamed into place, and loaded at once
//! (the folder watcher then sees bytes that already serve). A canary is loaded beside the
//! plugin's serving version, from the blob store, and takes its share of the requests. Every
//! [`REPORT_EVERY`] the replica reports what it serves, for `GET /admin/plugins`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use sha2::Digest;
use tokio_util::sync::CancellationToken;

use super::watcher::Loader;
use crate::pushes::{Pushed, Pushes, Serving};

/// How often the serving set is read: with the watcher's debounce and a compile, a push
/// serves everywhere within a few seconds.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// How often a replica reports what it serves.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Who this replica is, in its reports.
#[derive(Debug, Clone)]
pub struct Replica {
    pub id: String,
    pub url: String,
    pub started_at: i64,
}

/// Follow pushes and report until `shutdown`.
pub async fn follow(
    loader: Loader,
    pushes: Pushes,
    metrics: crate::metrics::Metrics,
    me: Replica,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut applied: HashMap<String, String> = HashMap::new();
    // Canaries running here: plugin name -> (sha256, percent).
    let mut canaries: HashMap<String, (String, i64)> = HashMap::new();
    let mut failing: HashMap<String, String> = HashMap::new();
    let mut last_report: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match pushes.serving().await {
            Ok(serving) => {
                let (wanted, stable): (Vec<Pushed>, Vec<Pushed>) =
                    serving.into_iter().partition(|p| p.state == "canary");
                for p in stable {
                    if applied.get(&p.name) == Some(&p.sha256) {
                        continue;
                    }
                    match apply(&loader, &pushes, &p).await {
                        Ok(()) => {
                            failing.remove(&p.name);
                            applied.insert(p.name.clone(), p.sha256.clone());
                        }
                        Err(why) => {
                            // Tried again every interval; said once per distinct reason.
                            if failing.get(&p.name) != Some(&why) {
                                tracing::warn!(plugin = %p.name, version = %p.version, reason = %why, "cannot take the pushed plugin yet");
                                failing.insert(p.name.clone(), why);
                            }
                        }
                    }
                }
                let ended: Vec<String> = canaries
                    .keys()
                    .filter(|name| !wanted.iter().any(|c| &c.name == *name))
                    .cloned()
                    .collect();
                for name in ended {
                    canaries.remove(&name);
                    if loader.registry.clear_canary(&name) {
                        tracing::info!(plugin = %name, "canary ended");
                    }
                }
                for c in wanted {
                    let percent = c.canary_percent.unwrap_or(0);
                    if canaries.get(&c.name) == Some(&(c.sha256.clone(), percent)) {
                        continue;
                    }
                    let key = format!("{} canary", c.name);
                    match start_canary(&loader, &pushes, &c, percent).await {
                        Ok(()) => {
                            failing.remove(&key);
                            canaries.insert(c.name.clone(), (c.sha256.clone(), percent));
                        }
                        Err(why) => {
                            if failing.get(&key) != Some(&why) {
                                tracing::warn!(plugin = %c.name, version = %c.version, reason = %why, "cannot start the canary yet");
                                failing.insert(key, why);
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read pushed plugins"),
        }
        if last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            let snap = loader.registry.snapshot();
            let plugins: Vec<Serving> = snap
                .plugins
                .values()
                .chain(snap.canaries.values().map(|c| &c.plugin))
                .map(|p| {
                    let (requests, server_errors) = metrics.answered(&p.name, &p.version);
                    Serving {
                        name: p.name.clone(),
                        version: p.version.clone(),
                        sha256: p.hash.clone(),
                        requests,
                        server_errors,
                    }
                })
                .collect();
            match pushes
                .report(&me.id, &me.url, me.started_at, &plugins)
                .await
            {
                Ok(()) => last_report = Some(tokio::time::Instant::now()),
                Err(e) => tracing::debug!(error = %e, "cannot report what this replica serves"),
            }
        }
    }
}

/// Put the pushed version in the plugins folder (unless it is there already) and load it.
async fn apply(loader: &Loader, pushes: &Pushes, p: &Pushed) -> Result<(), String> {
    let dir = &loader.config.plugins_dir;
    let path: PathBuf = dir.join(format!("{}.wasm", p.name));
    let on_disk = tokio::fs::read(&path)
        .await
        .ok()
        .map(|b| hex::encode(sha2::Sha256::digest(&b)));
    if on_disk.as_deref() != Some(p.sha256.as_str()) {
        let bytes = pushes.component(p).await.map_err(|e| e.to_string())?;
        // Written aside (not a `.wasm`, so the watcher ignores it), then renamed over.
        let aside = dir.join(format!(".{}.wasm.push", p.name));
        tokio::fs::write(&aside, &bytes)
            .await
            .map_err(|e| format!("writing {}: {e}", aside.display()))?;
        tokio::fs::rename(&aside, &path)
            .await
            .map_err(|e| format!("renaming into {}: {e}", path.display()))?;
    }
    loader.sync_file(&path).await;
    let snap = loader.registry.snapshot();
    let serving = snap
        .plugins
        .values()
        .any(|l| l.name == p.name && l.hash == p.sha256);
    if !serving {
        let reason = snap
            .failures
            .get(&super::watcher::canonical_file(&path))
            .map(|f| f.reason.clone())
            .unwrap_or_else(|| "it did not load".into());
        return Err(reason);
    }
    tracing::info!(plugin = %p.name, version = %p.version, sha256 = %&p.sha256[..12], "serving a pushed plugin");
    Ok(())
}

/// Load a canary from the blob store beside the plugin's serving version.
async fn start_canary(
    loader: &Loader,
    pushes: &Pushes,
    c: &Pushed,
    percent: i64,
) -> Result<(), String> {
    let bytes = pushes.component(c).await.map_err(|e| e.to_string())?;
    let label = loader
        .config
        .data_dir
        .join("canary")
        .join(format!("{}.wasm", c.name));
    let config = loader.config.clone();
    let plugin = loader
        .runtime
        .load(
            &label,
            bytes,
            |name| config.mount(name),
            loader.clock.now_millis(),
        )
        .await
        .map_err(|e| e.to_string())?;
    if plugin.name != c.name {
        return Err(format!(
            "the component is plugin {}, not {}",
            plugin.name, c.name
        ));
    }
    loader
        .registry
        .set_canary(plugin, percent.clamp(0, 100) as u8)?;
    tracing::info!(plugin = %c.name, version = %c.version, percent, "canary serving");
    Ok(())
}
