//! Hot loading: the plugins folder is watched with `notify`; each change to the *content* of a
//! `*.wasm` file (created, written and closed, renamed, removed; never a mere open or read) is
//! debounced, then the file is loaded off the request path and swapped into the [`Registry`]
//! (or removed from it). Files are keyed by canonical path, so a relative plugins folder and
//! the absolute paths the watcher reports name the same file. A file that fails any step is
//! logged once per version (its content hash), recorded for `GET /admin/plugins`, and not
//! tried again until its content changes; the version that was serving keeps serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use sha2::Digest;
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

/// Whether an event may have changed what a file holds. Opens, reads, closes after reading
/// and metadata changes (`touch`, `chmod`) cannot; reacting to them would make the loader's
/// own read of a file a new event, a loop.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// The key a file is known by: its folder resolved to a canonical absolute path, the file
/// name kept (a symlinked plugin file stays its own entry). A folder that cannot be resolved
/// (it was just removed) leaves the path as given.
pub fn canonical_file(path: &Path) -> PathBuf {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_path_buf();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::canonicalize(dir) {
        Ok(d) => d.join(name),
        Err(_) => path.to_path_buf(),
    }
}

impl Loader {
    /// (Re)load one file, or drop it from the registry when it no longer exists. When that
    /// changes what is served, files refused for a conflict are tried again (e.g. a plugin
    /// moved to a new file name: the new file loads once the old one is gone).
    pub async fn sync_file(&self, path: &Path) {
        let path = &canonical_file(path);
        let _one_at_a_time = self.serial.lock().await;
        if self.sync_one(path, false).await {
            let blocked: Vec<PathBuf> = self
                .registry
                .snapshot()
                .failures
                .iter()
                .filter(|(p, f)| p.as_path() != path && f.reason.starts_with(CONFLICT))
                .map(|(p, _)| p.clone())
                .collect();
            for p in blocked {
                self.sync_one(&p, true).await;
            }
        }
    }

    /// Returns whether the set of served plugins changed. A version refused before is tried
    /// again only when `retry` (what is served changed, so a conflict may have cleared).
    async fn sync_one(&self, path: &Path, retry: bool) -> bool {
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
                self.refuse(path, "", format!("cannot read file: {e}"));
                return false;
            }
        };
        let hash = hex::encode(sha2::Sha256::digest(&bytes));
        let snapshot = self.registry.snapshot();
        if snapshot
            .plugins
            .get(path)
            .is_some_and(|cur| cur.hash == hash)
        {
            return false; // rewritten with the same bytes
        }
        if !retry
            && snapshot
                .failures
                .get(path)
                .is_some_and(|f| f.sha256 == hash)
        {
            return false; // this version was refused already; wait for new content
        }
        drop(snapshot);
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
                        self.refuse(path, &hash, format!("{CONFLICT}{why}"));
                        false
                    }
                }
            }
            Err(e) => {
                self.refuse(path, &hash, e.to_string());
                false
            }
        }
    }

    /// Record a refusal; one ERROR line per refused version (a retry of the same bytes that
    /// fails again, for the same or another reason, is not news worth an ERROR).
    fn refuse(&self, path: &Path, sha256: &str, reason: String) {
        let previous = self.registry.snapshot().failures.get(path).cloned();
        match previous {
            Some(p) if p.sha256 == sha256 && !sha256.is_empty() => {
                if p.reason != reason {
                    tracing::warn!(file = %path.display(), %reason, "plugin still refused");
                }
            }
            _ => {
                tracing::error!(file = %path.display(), %reason, "plugin refused; previous version (if any) keeps serving")
            }
        }
        self.registry.record_failure(
            path,
            LoadFailure {
                at: self.clock.now_millis(),
                reason,
                sha256: sha256.to_string(),
            },
        );
    }

    /// Load every `*.wasm` in the folder, in name order.
    pub async fn load_all(&self) -> std::io::Result<()> {
        let dir = std::fs::canonicalize(&self.config.plugins_dir)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
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
                if let Ok(event) = res
                    && changes_content(&event.kind)
                {
                    for p in event.paths {
                        if is_plugin_file(&p) {
                            let _ = tx.send(p);
                        }
                    }
                }
            })?;
        // Watching the folder (not the files) sees atomic renames and new files alike.
        let dir = std::fs::canonicalize(&self.config.plugins_dir)?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(tokio::spawn(async move {
            let _watcher = watcher; // dropped (and stopped) with this task
            let mut pending: HashMap<PathBuf, tokio::time::Instant> = HashMap::new();
            loop {
                let next_due = pending.values().min().copied();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    Some(path) = rx.recv() => {
                        pending.insert(canonical_file(&path), tokio::time::Instant::now() + DEBOUNCE);
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
