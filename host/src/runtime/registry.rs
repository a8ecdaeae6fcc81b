//! The set of loaded plugins, swapped atomically: readers (every request) take a lock-free
//! snapshot, so a request in flight keeps the plugin version it started with; writers (the
//! loader) build a new snapshot, refusing a plugin whose name or routes collide with another's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ota_route_pattern::methods_overlap;

use super::LoadedPlugin;

/// Why a file is not serving, as operators see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadFailure {
    /// Unix milliseconds.
    pub at: i64,
    pub reason: String,
}

/// One immutable view of what is loaded.
#[derive(Default)]
pub struct Snapshot {
    /// Loaded plugins by file.
    pub plugins: BTreeMap<PathBuf, Arc<LoadedPlugin>>,
    /// The last load error per file (cleared when the file loads or disappears).
    pub failures: BTreeMap<PathBuf, LoadFailure>,
}

/// The live registry.
#[derive(Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
    // Writers are serialized so that conflict checks see every previous install.
    write: std::sync::Mutex<()>,
}

/// Two mounts can receive the same request when they share a listener and their Host
/// selectors do not exclude each other (an unset selector accepts every host).
fn mounts_overlap(a: &LoadedPlugin, b: &LoadedPlugin) -> bool {
    let hosts = match (&a.mount.host, &b.mount.host) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => true,
    };
    a.mount.listen == b.mount.listen && hosts
}

fn conflict(new: &LoadedPlugin, old: &LoadedPlugin) -> Option<String> {
    if new.name == old.name {
        return Some(format!(
            "plugin name {:?} is already served from {}",
            new.name,
            old.file.display()
        ));
    }
    if !mounts_overlap(new, old) {
        return None;
    }
    for r in &new.routes {
        for o in &old.routes {
            if methods_overlap(&r.method, &o.method) && r.pattern.overlaps(&o.pattern) {
                return Some(format!(
                    "{} {} overlaps {} {} of plugin {:?} ({})",
                    r.method,
                    r.pattern.as_str(),
                    o.method,
                    o.pattern.as_str(),
                    old.name,
                    old.file.display()
                ));
            }
        }
    }
    None
}

impl Registry {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    fn update(&self, f: impl FnOnce(&mut Snapshot) -> Result<(), String>) -> Result<(), String> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.current.load();
        let mut next = Snapshot {
            plugins: cur.plugins.clone(),
            failures: cur.failures.clone(),
        };
        f(&mut next)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Serve `plugin` for its file, replacing that file's previous version, unless it
    /// collides with a plugin from another file (then the previous version keeps serving).
    pub fn install(&self, plugin: LoadedPlugin) -> Result<(), String> {
        self.update(|s| {
            for (file, other) in &s.plugins {
                if file != &plugin.file
                    && let Some(why) = conflict(&plugin, other)
                {
                    return Err(why);
                }
            }
            s.failures.remove(&plugin.file);
            s.plugins.insert(plugin.file.clone(), Arc::new(plugin));
            Ok(())
        })
    }

    /// Stop serving a file's plugin (the file was removed).
    pub fn remove(&self, file: &Path) -> Option<Arc<LoadedPlugin>> {
        let mut removed = None;
        let _ = self.update(|s| {
            removed = s.plugins.remove(file);
            s.failures.remove(file);
            Ok(())
        });
        removed
    }

    /// Record why a file was refused; whatever it served before keeps serving.
    pub fn record_failure(&self, file: &Path, failure: LoadFailure) {
        let _ = self.update(|s| {
            s.failures.insert(file.to_path_buf(), failure);
            Ok(())
        });
    }

    /// The plugin that serves a request, with the path relative to its mount. A plugin that
    /// claims the path only for other methods still gets the request, so the client hears
    /// "method not allowed" in the dialect's own error shape rather than the host's.
    pub fn route(
        &self,
        listener: Option<SocketAddr>,
        host: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<(Arc<LoadedPlugin>, String)> {
        let snap = self.current.load();
        let candidates = || {
            snap.plugins.values().filter(|p| {
                p.mount.listen == listener
                    && p.mount
                        .host
                        .as_ref()
                        .is_none_or(|want| host.is_some_and(|h| h.eq_ignore_ascii_case(want)))
            })
        };
        let pick = |any_method: bool| {
            candidates().find_map(|p| {
                let rest = p.strip_prefix(path)?;
                p.matches(if any_method { "*" } else { method }, path)
                    .then(|| (p.clone(), rest.to_string()))
            })
        };
        pick(false).or_else(|| pick(true))
    }
}
