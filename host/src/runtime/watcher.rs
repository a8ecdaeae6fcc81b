//! Hot loading: the plugins folder is watched with `notify`; each change to a `*.wasm` file is
//! debounced, then the file is loaded off the request path and swapped into the [`Registry`]
//! (or removed from it). A file that fails any step is logged with its reason and recorded for
//! `GET /admin/plugins`, and the version that was serving keeps serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::registry::LoadFailure;
use super::{Registry, Runtime};
use crate::clock::SharedClock;
use crate::config::Config;

/// Writers (cp, editors, rsync) touch a file several times; act once it has been quiet.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Loads plugin files into the registry.
#[derive(Clone)]
pub struct Loader {
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    /// One load at a time: the start-up scan and watcher events may name the same file, and
    /// the last bytes read must be the ones that end up serving.
    pub serial: Arc<tokio::sync::Mutex<()>>,
}

/// The prefix of a refusal that may clear when another file changes.
const CONFLICT: &str = "route conflict: ";

fn is_plugin_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
}

impl Loader {
    /// (Re)load one file, or drop it from the registry when it no longer exists. When that
    /// changes what is served, files refused for a conflict are tried again (e.g. a plugin
    /// moved to a new file name: the new file loads once the old one is gone).
    pub async fn sync_file(&self, path: &Path) {
        let _one_at_a_time = self.serial.lock().await;
        if self.sync_one(path).await {
            let blocked: Vec<PathBuf> = self
                .registry
                .snapshot()
                .failures
                .iter()
                .filter(|(p, f)| p.as_path() != path && f.reason.starts_with(CONFLICT))
                .map(|(p, _)| p.clone())
                .collect();
            for p in blocked {
                self.sync_one(&p).await;
            }
        }
    }

    /// Returns whether the set of served plugins changed.
    async fn sync_one(&self, path: &Path) -> bool {
        let bytes = match tokio::fs::read(path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(old) = self.registry.remove(path) {
                    tracing::info!(file = %path.display(), plugin = %old.name, "plugin unloaded (file removed)");
                    return true;
                }
                return false;
            }
            Err(e) => {
                self.refuse(path, format!("cannot read file: {e}"));
                return false;
            }
        };
        if let Some(cur) = self.registry.snapshot().plugins.get(path) {
            use sha2::Digest;
            if cur.hash == hex::encode(sha2::Sha256::digest(&bytes)) {
                return false; // touched, not changed
            }
        }
        let config = self.config.clone();
        let loaded = self
            .runtime
            .load(
                path,
                bytes,
                |name| config.mount(name),
                self.clock.now_millis(),
            )
            .await;
        match loaded {
            Ok(plugin) => {
                let (name, version, hash) = (
                    plugin.name.clone(),
                    plugin.version.clone(),
                    plugin.hash.clone(),
                );
                let routes = plugin.routes.len();
                let prefix = plugin.mount.prefix.clone();
                match self.registry.install(plugin) {
                    Ok(()) => {
                        println!(
                            "loaded plugin {name} {version} from {} ({routes} routes{})",
                            path.display(),
                            if prefix.is_empty() {
                                String::new()
                            } else {
                                format!(" under {prefix}")
                            }
                        );
                        tracing::info!(file = %path.display(), plugin = %name, version = %version, hash = %&hash[..12], "plugin loaded");
                        true
                    }
                    Err(why) => {
                        self.refuse(path, format!("{CONFLICT}{why}"));
                        false
                    }
                }
            }
            Err(e) => {
                self.refuse(path, e.to_string());
                false
            }
        }
    }

    fn refuse(&self, path: &Path, reason: String) {
        tracing::error!(file = %path.display(), %reason, "plugin refused; previous version (if any) keeps serving");
        self.registry.record_failure(
            path,
            LoadFailure {
                at: self.clock.now_millis(),
                reason,
            },
        );
    }

    /// Load every `*.wasm` in the folder, in name order.
    pub async fn load_all(&self) -> std::io::Result<()> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.config.plugins_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_plugin_file(p))
            .collect();
        files.sort();
        for f in files {
            self.sync_file(&f).await;
        }
        Ok(())
    }

    /// Watch the folder until `shutdown`. The watcher is set up before this returns, so
    /// changes made after `watch` returns are never missed.
    pub fn watch(self, shutdown: CancellationToken) -> notify::Result<tokio::task::JoinHandle<()>> {
        let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(event) = res {
                    for p in event.paths {
                        if is_plugin_file(&p) {
                            let _ = tx.send(p);
                        }
                    }
                }
            })?;
        // Watching the folder (not the files) sees atomic renames and new files alike.
        watcher.watch(&self.config.plugins_dir, RecursiveMode::NonRecursive)?;
        Ok(tokio::spawn(async move {
            let _watcher = watcher; // dropped (and stopped) with this task
            let mut pending: HashMap<PathBuf, tokio::time::Instant> = HashMap::new();
            loop {
                let next_due = pending.values().min().copied();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    Some(path) = rx.recv() => {
                        pending.insert(path, tokio::time::Instant::now() + DEBOUNCE);
                    }
                    _ = async { tokio::time::sleep_until(next_due.unwrap_or_else(tokio::time::Instant::now)).await }, if next_due.is_some() => {
                        let now = tokio::time::Instant::now();
                        let due: Vec<PathBuf> = pending.iter().filter(|(_, t)| **t <= now).map(|(p, _)| p.clone()).collect();
                        for p in due {
                            pending.remove(&p);
                            self.sync_file(&p).await;
                        }
                    }
                }
            }
        }))
    }
}
