//! The set of loaded plugins, swapped atomically: readers (every request) take a lock-free
//! snapshot, so a request in flight keeps the plugin version it started with; writers (the
//! loader) build a new snapshot, refusing a plugin whose name or routes collide with another's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ota_route_pattern::{Segment, methods_overlap};

use super::LoadedPlugin;
use super::plugin::MountedRoute;
use crate::config::MountConfig;

/// Why a file is not serving, as operators see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadFailure {
    /// Unix milliseconds.
    pub at: i64,
    pub reason: String,
    /// Lower-case hex SHA-256 of the refused bytes (empty when the file could not be read).
    pub sha256: String,
}

/// One immutable view of what is loaded.
#[derive(Default)]
pub struct Snapshot {
    /// Loaded plugins by file.
    pub plugins: BTreeMap<PathBuf, Arc<LoadedPlugin>>,
    /// The last load error per file (cleared when the file loads or disappears).
    pub failures: BTreeMap<PathBuf, LoadFailure>,
    /// Canary versions by plugin name: each serves a share of its plugin's requests.
    pub canaries: BTreeMap<String, Canary>,
}

/// A new version of a loaded plugin serving `percent` of its requests (by a hash of who
/// asks, so each device or credential sees one version) until promoted or rolled back.
#[derive(Clone)]
pub struct Canary {
    pub plugin: Arc<LoadedPlugin>,
    pub percent: u8,
}

/// The live registry.
#[derive(Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
    // Writers are serialized so that conflict checks see every previous install.
    write: std::sync::Mutex<()>,
}

/// First path segments the host serves itself on the main listener (`/admin/...`,
/// `/install/...`, `/blobs/...`, `/oss/...`, `/healthz`, `/readyz`, `/metrics`, `/ui/...`);
/// a plugin mounted there would be shadowed, so it is refused.
pub const RESERVED_SEGMENTS: &[&str] = &[
    "admin", "install", "blobs", "oss", "healthz", "readyz", "metrics", "ui",
];

/// Whether a request path lies under a first segment the host serves itself.
fn reserved_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    RESERVED_SEGMENTS.contains(&first)
}

/// What a plugin claims, as far as conflicts go.
pub struct Claim<'a> {
    pub name: &'a str,
    pub file: &'a Path,
    pub mount: &'a MountConfig,
    pub routes: &'a [MountedRoute],
}

impl<'a> From<&'a LoadedPlugin> for Claim<'a> {
    fn from(p: &'a LoadedPlugin) -> Self {
        Claim {
            name: &p.name,
            file: &p.file,
            mount: &p.mount,
            routes: &p.routes,
        }
    }
}

/// Two mounts can receive the same request when they share a listener and their Host
/// selectors do not exclude each other (an unset selector accepts every host).
fn mounts_overlap(a: &MountConfig, b: &MountConfig) -> bool {
    let hosts = match (&a.host, &b.host) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => true,
    };
    a.listen == b.listen && hosts
}

/// Why `new` cannot be served beside `old`, if it cannot.
pub fn conflict(new: &Claim<'_>, old: &Claim<'_>) -> Option<String> {
    if new.name == old.name {
        return Some(format!(
            "plugin name {:?} is already served from {}",
            new.name,
            old.file.display()
        ));
    }
    if !mounts_overlap(new.mount, old.mount) {
        return None;
    }
    for r in new.routes {
        for o in old.routes {
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

/// Whether a route would sit under a path the host serves itself.
pub fn reserved(claim: &Claim<'_>) -> Option<String> {
    if claim.mount.listen.is_some() {
        return None; // a listener of its own has no host routes
    }
    claim
        .routes
        .iter()
        .find_map(|r| match r.pattern.segments().first() {
            Some(Segment::Literal(first)) if RESERVED_SEGMENTS.contains(&first.as_str()) => {
                Some(format!(
                    "{} {} is under the host's reserved /{first}",
                    r.method,
                    r.pattern.as_str()
                ))
            }
            _ => None,
        })
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
            canaries: cur.canaries.clone(),
        };
        f(&mut next)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Serve `plugin` for its file, replacing that file's previous version, unless it
    /// collides with a plugin from another file (then the previous version keeps serving).
    pub fn install(&self, plugin: LoadedPlugin) -> Result<(), String> {
        self.update(|s| {
            let claim = Claim::from(&plugin);
            if let Some(why) = reserved(&claim) {
                return Err(why);
            }
            for (file, other) in &s.plugins {
                if file != &plugin.file
                    && let Some(why) = conflict(&claim, &Claim::from(other.as_ref()))
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

    /// Let `plugin` (a new version of a loaded plugin of the same name) serve `percent` of
    /// that plugin's requests, replacing any canary it had.
    pub fn set_canary(&self, plugin: LoadedPlugin, percent: u8) -> Result<(), String> {
        self.update(|s| {
            if !s.plugins.values().any(|p| p.name == plugin.name) {
                return Err(format!(
                    "no version of {} serves here to run a canary beside",
                    plugin.name
                ));
            }
            s.canaries.insert(
                plugin.name.clone(),
                Canary {
                    plugin: Arc::new(plugin),
                    percent: percent.min(100),
                },
            );
            Ok(())
        })
    }

    /// Stop the canary of `name`, if it has one; answers whether it had.
    pub fn clear_canary(&self, name: &str) -> bool {
        let mut had = false;
        let _ = self.update(|s| {
            had = s.canaries.remove(name).is_some();
            Ok(())
        });
        had
    }

    /// The version that serves a request `routed` to a plugin from someone whose hash `who`
    /// computes (asked only when the plugin has a canary): the canary for hashes in its
    /// share, else the plugin itself.
    pub fn version_for(
        &self,
        routed: Arc<LoadedPlugin>,
        who: impl FnOnce() -> u64,
    ) -> Arc<LoadedPlugin> {
        let snap = self.current.load();
        match snap.canaries.get(&routed.name) {
            Some(c) if who() % 100 < u64::from(c.percent) => c.plugin.clone(),
            _ => routed,
        }
    }

    /// Record why a file was refused; whatever it served before keeps serving.
    pub fn record_failure(&self, file: &Path, failure: LoadFailure) {
        let _ = self.update(|s| {
            s.failures.insert(file.to_path_buf(), failure);
            Ok(())
        });
    }

    /// The plugin that serves a request, with the path relative to its mount: the route
    /// for its method, else a route of the path for other methods (so the client hears
    /// "method not allowed" in the dialect's own error shape rather than the host's), else
    /// the deepest fallback (`…/{*rest}`) under which the path lies. On the main listener a
    /// path under the host's reserved first segments never reaches a plugin, whatever its
    /// patterns say.
    pub fn route(
        &self,
        listener: Option<SocketAddr>,
        host: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<(Arc<LoadedPlugin>, String)> {
        if listener.is_none() && reserved_path(path) {
            return None;
        }
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
        pick(false).or_else(|| pick(true)).or_else(|| {
            candidates()
                .filter_map(|p| {
                    let rest = p.strip_prefix(path)?;
                    let depth = p.fallback_depth(method, path)?;
                    Some((depth, p, rest))
                })
                .max_by_key(|(depth, _, _)| *depth)
                .map(|(_, p, rest)| (p.clone(), rest.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use ota_route_pattern::Pattern;

    use super::*;

    fn routes(list: &[(&str, &str)], prefix: &str) -> Vec<MountedRoute> {
        list.iter()
            .map(|(m, p)| MountedRoute {
                method: m.to_string(),
                path: p.to_string(),
                pattern: Pattern::parse(p).unwrap().with_prefix(prefix),
            })
            .collect()
    }

    fn claim<'a>(name: &'a str, mount: &'a MountConfig, routes: &'a [MountedRoute]) -> Claim<'a> {
        Claim {
            name,
            file: Path::new(name),
            mount,
            routes,
        }
    }

    #[test]
    fn overlapping_routes_on_one_mount_conflict() {
        let m = MountConfig::default();
        let a = routes(&[("POST", "/api/v1/task/{id}")], "");
        let b = routes(&[("*", "/api/v1/task/list")], "");
        let c = routes(&[("GET", "/api/v1/task/{id}")], "");
        let why = conflict(&claim("b", &m, &b), &claim("a", &m, &a)).unwrap();
        assert!(why.contains("overlaps POST /api/v1/task/{id}"), "{why}");
        assert!(
            conflict(&claim("c", &m, &c), &claim("a", &m, &a)).is_none(),
            "methods differ"
        );
        assert!(
            conflict(&claim("a", &m, &c), &claim("a", &m, &b))
                .unwrap()
                .contains("name")
        );
    }

    #[test]
    fn prefixes_hosts_and_listeners_separate_mounts() {
        let plain = MountConfig::default();
        let prefixed = MountConfig {
            prefix: "/v2".into(),
            ..Default::default()
        };
        let a = routes(&[("POST", "/x")], "");
        let b = routes(&[("POST", "/x")], "/v2");
        assert!(conflict(&claim("b", &prefixed, &b), &claim("a", &plain, &a)).is_none());
        let host_a = MountConfig {
            host: Some("a.example".into()),
            ..Default::default()
        };
        let host_b = MountConfig {
            host: Some("B.example".into()),
            ..Default::default()
        };
        assert!(conflict(&claim("b", &host_b, &a), &claim("a", &host_a, &a)).is_none());
        assert!(conflict(&claim("b", &plain, &a), &claim("a", &host_a, &a)).is_some());
        let own = MountConfig {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Default::default()
        };
        assert!(conflict(&claim("b", &own, &a), &claim("a", &plain, &a)).is_none());
    }

    #[test]
    fn host_paths_are_reserved() {
        let m = MountConfig::default();
        let bad = routes(&[("GET", "/admin/x")], "");
        assert!(reserved(&claim("a", &m, &bad)).is_some());
        let ok = routes(&[("GET", "/api/admin")], "");
        assert!(reserved(&claim("a", &m, &ok)).is_none());
        let own = MountConfig {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Default::default()
        };
        assert!(reserved(&claim("a", &own, &bad)).is_none());
    }
}
