//! Turning a `.wasm` file into a servable plugin, off the request path: hash it, compile it
//! (or reuse the compiled artifact cached under its hash), check which contract version it was
//! built against *before* instantiating anything, link it, call its manifest on a fresh
//! instance and validate every route. Any failing step refuses the file with a reason.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ota_route_pattern::Pattern;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex};

use super::bindings;
use super::{InvokeError, PluginIdentity, RequestState, Runtime};
use crate::config::MountConfig;

/// A compiled, linked plugin of one contract version, ready to instantiate per call.
pub enum Pre {
    V0_1(bindings::v0_1::DialectPre<RequestState>),
    /// 0.2.x, with the `fail` export of plugins that have one (0.2.5 on).
    V0_2 {
        pre: wasmtime::component::InstancePre<RequestState>,
        indices: bindings::v0_2::DialectIndices,
        fail: Option<ComponentExportIndex>,
    },
}

/// One instance of a plugin, for one call.
pub enum Instance {
    V0_1(bindings::v0_1::Dialect),
    V0_2(bindings::v0_2::Dialect, Option<wasmtime::component::Func>),
}

impl Pre {
    /// A fresh instance in `store`.
    pub async fn instantiate(
        &self,
        store: &mut wasmtime::Store<RequestState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(p) => Instance::V0_1(p.instantiate_async(store).await?),
            Pre::V0_2 { pre, indices, fail } => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let dialect = indices.load(&mut *store, &instance)?;
                let fail = fail
                    .as_ref()
                    .and_then(|i| instance.get_func(&mut *store, i));
                Instance::V0_2(dialect, fail)
            }
        })
    }

    /// Whether the plugin answers the host's failures in its own words (`fail`, 0.2.5).
    pub fn renders_failures(&self) -> bool {
        matches!(self, Pre::V0_2 { fail: Some(_), .. })
    }
}

impl Instance {
    /// The plugin's answer to a failure, when it exports `fail`.
    pub async fn fail(
        &self,
        store: &mut wasmtime::Store<RequestState>,
        req: &bindings::Request,
        failure: &bindings::Failure,
    ) -> wasmtime::Result<Option<bindings::Response>> {
        let Instance::V0_2(_, Some(f)) = self else {
            return Ok(None);
        };
        let typed =
            f.typed::<(&bindings::Request, &bindings::Failure), (bindings::Response,)>(&*store)?;
        let (r,) = typed.call_async(store, (req, failure)).await?;
        Ok(Some(r))
    }
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "*",
];

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a WebAssembly component: {0}")]
    NotComponent(String),
    #[error("{0}")]
    UnsupportedContract(String),
    #[error("does not implement the ota:dialect world: {0}")]
    WrongWorld(String),
    #[error("manifest call failed: {0}")]
    ManifestCall(#[from] InvokeError),
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("route conflict: {0}")]
    Conflict(String),
}

/// A route as the manifest declared it, and as mounted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MountedRoute {
    pub method: String,
    /// The pattern the plugin declared.
    pub path: String,
    /// The pattern clients reach it at (mount prefix included).
    #[serde(skip)]
    pub pattern: Pattern,
}

/// What a failure answer depends on: the failure and the path (the contract lets the host
/// reuse an answer for the same kind, status and retry time on the same path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FailureKey {
    kind: u8,
    status: u16,
    retry_after_secs: Option<u32>,
    path: String,
}

impl FailureKey {
    pub fn of(f: &bindings::Failure, path: &str) -> Self {
        FailureKey {
            kind: f.kind as u8,
            status: f.status,
            retry_after_secs: f.retry_after_secs,
            path: path.to_string(),
        }
    }
}

/// A plugin version's failure answers, so that a flood of busy or throttled requests costs
/// a lookup, not an instance each. Bounded: emptied when full (paths are the client's to
/// choose).
#[derive(Default)]
pub struct FailureAnswers(
    std::sync::Mutex<std::collections::HashMap<FailureKey, bindings::Response>>,
);

impl FailureAnswers {
    const MAX: usize = 256;

    pub fn get(&self, key: &FailureKey) -> Option<bindings::Response> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    pub fn put(&self, key: FailureKey, answer: &bindings::Response) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= Self::MAX {
            all.clear();
        }
        all.insert(key, answer.clone());
    }
}

/// A plugin ready to serve: immutable; a new file version is a new `LoadedPlugin`.
pub struct LoadedPlugin {
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    pub vendor: String,
    pub description: String,
    /// The `ota:dialect` package version the plugin was built against.
    pub contract: String,
    /// The lowest host contract that has every function it calls (see `contract::needs`).
    pub needs: String,
    /// Lower-case hex SHA-256 of the file.
    pub hash: String,
    /// When this version was loaded, Unix milliseconds.
    pub loaded_at: i64,
    pub mount: MountConfig,
    pub routes: Vec<MountedRoute>,
    pub identity: Arc<PluginIdentity>,
    pub pre: Pre,
    /// The plugin's share of the host (shared with its other versions).
    pub budget: Arc<super::budget::Budget>,
    /// Its failure answers so far.
    pub failure_answers: FailureAnswers,
}

impl LoadedPlugin {
    /// Whether a route that is not a fallback claims this method (`*`: any method) and full
    /// request path.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.routes.iter().any(|r| {
            !r.pattern.is_fallback()
                && ota_route_pattern::methods_overlap(&r.method, method)
                && r.pattern.matches(path).is_some()
        })
    }

    /// The pattern of the route that serves this method and full request path, as the
    /// metrics name it: a route for the method, else one for any method (the plugin then
    /// answers "method not allowed"), else the deepest fallback, else `unmatched`.
    pub fn route_label(&self, method: &str, path: &str) -> &str {
        let claims = |method: &str, fallback: bool| {
            self.routes.iter().find(|r| {
                r.pattern.is_fallback() == fallback
                    && ota_route_pattern::methods_overlap(&r.method, method)
                    && r.pattern.matches(path).is_some()
            })
        };
        claims(method, false)
            .or_else(|| claims("*", false))
            .or_else(|| {
                self.routes
                    .iter()
                    .filter(|r| {
                        ota_route_pattern::methods_overlap(&r.method, method)
                            && r.pattern.matches(path).is_some()
                    })
                    .max_by_key(|r| r.pattern.fallback_depth())
            })
            .map_or("unmatched", |r| r.pattern.as_str())
    }

    /// The depth of the deepest fallback route (`…/{*rest}`) that claims this method and
    /// full request path, if any.
    pub fn fallback_depth(&self, method: &str, path: &str) -> Option<usize> {
        self.routes
            .iter()
            .filter(|r| {
                ota_route_pattern::methods_overlap(&r.method, method)
                    && r.pattern.matches(path).is_some()
            })
            .filter_map(|r| r.pattern.fallback_depth())
            .max()
    }

    /// Whether a request path lies under this plugin's mount prefix at all.
    pub fn strip_prefix<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.mount.prefix.is_empty() {
            return Some(path);
        }
        let rest = path.strip_prefix(self.mount.prefix.as_str())?;
        rest.starts_with('/').then_some(rest)
    }
}

/// A plugin (manifest) name: 1-64 characters of `[a-z0-9-]`; also the realm of its logins.
pub fn valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Runtime {
    fn cache_path(&self, hash: &str) -> Option<PathBuf> {
        // Compiled code is only valid for the same wasmtime build and settings.
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let dir = self.cache_dir.as_ref()?;
        Some(dir.join(format!("{hash}-{:016x}.cwasm", h.finish())))
    }

    /// Compile, or reuse the cached artifact for these exact bytes.
    async fn compile(&self, bytes: Arc<Vec<u8>>, hash: &str) -> Result<Component, LoadError> {
        let cache = self.cache_path(hash);
        if let Some(path) = &cache
            && path.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of this same engine
            // configuration (the compatibility hash is in its name) into the host's own
            // data directory; wasmtime re-checks its header on load.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled-plugin cache entry")
                }
            }
        }
        let engine = self.engine.clone();
        let component =
            tokio::task::spawn_blocking(move || Component::new(&engine, bytes.as_slice()))
                .await
                .map_err(|e| LoadError::NotComponent(e.to_string()))?
                .map_err(|e| LoadError::NotComponent(format!("{e:#}")))?;
        if let Some(path) = cache {
            match component.serialize() {
                Ok(blob) => {
                    let tmp = path.with_extension("tmp");
                    let written =
                        std::fs::write(&tmp, blob).and_then(|_| std::fs::rename(&tmp, &path));
                    if let Err(e) = written {
                        tracing::warn!(path = %path.display(), error = %e, "could not cache compiled plugin");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not serialize compiled plugin"),
            }
        }
        Ok(component)
    }

    /// Load one plugin file. `mount_for` gives the operator's mount for a manifest name.
    pub async fn load(
        &self,
        file: &Path,
        bytes: Vec<u8>,
        mount_for: impl Fn(&str) -> MountConfig,
        now_millis: i64,
    ) -> Result<LoadedPlugin, LoadError> {
        let hash = hex::encode(Sha256::digest(&bytes));
        let component = self.compile(Arc::new(bytes), &hash).await?;
        let needs = super::contract::needs(&self.engine, &component)?;
        let contract = needs.built.clone();
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let wrong = |e: wasmtime::Error| LoadError::WrongWorld(format!("{e:#}"));
        let pre = if contract.starts_with("0.1.") {
            Pre::V0_1(bindings::v0_1::DialectPre::new(instance_pre).map_err(wrong)?)
        } else {
            Pre::V0_2 {
                indices: bindings::v0_2::DialectIndices::new(&instance_pre).map_err(wrong)?,
                fail: component.get_export_index(None, "fail"),
                pre: instance_pre,
            }
        };

        let probe = Arc::new(PluginIdentity {
            name: file.display().to_string(),
            version: "?".into(),
            auth: Default::default(),
            tenant: None,
            settings: Default::default(),
            tokens: MountConfig::default().token_policy(),
            hmac_max_skew_secs: MountConfig::default().hmac_max_skew(),
        });
        let manifest = self.manifest(&pre, probe).await?;
        if !valid_plugin_name(&manifest.name) {
            return Err(LoadError::Manifest(format!(
                "name {:?} must be 1-64 characters of [a-z0-9-]",
                manifest.name
            )));
        }
        if manifest.version.trim().is_empty() {
            return Err(LoadError::Manifest("version is empty".into()));
        }
        if manifest.routes.is_empty() {
            return Err(LoadError::Manifest("declares no routes".into()));
        }
        let mount = mount_for(&manifest.name);
        let mut routes = Vec::with_capacity(manifest.routes.len());
        for r in &manifest.routes {
            let method = r.method.to_ascii_uppercase();
            if !METHODS.contains(&method.as_str()) {
                return Err(LoadError::Manifest(format!(
                    "route {} has unknown method {:?}",
                    r.path, r.method
                )));
            }
            let pattern =
                Pattern::parse(&r.path).map_err(|e| LoadError::Manifest(e.to_string()))?;
            routes.push(MountedRoute {
                method,
                path: r.path.clone(),
                pattern: pattern.with_prefix(&mount.prefix),
            });
        }
        let identity = Arc::new(PluginIdentity {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            auth: mount.auth,
            tenant: mount.tenant.clone(),
            settings: mount.settings.clone(),
            tokens: mount.token_policy(),
            hmac_max_skew_secs: mount.hmac_max_skew(),
        });
        let budget = self.budget(&manifest.name, &mount);
        Ok(LoadedPlugin {
            budget,
            failure_answers: FailureAnswers::default(),
            file: file.to_path_buf(),
            name: manifest.name,
            version: manifest.version,
            vendor: manifest.vendor,
            description: manifest.description,
            contract,
            needs: needs.lowest,
            hash,
            loaded_at: now_millis,
            mount,
            routes,
            identity,
            pre,
        })
    }

    async fn manifest(
        &self,
        pre: &Pre,
        identity: Arc<PluginIdentity>,
    ) -> Result<bindings::Manifest, InvokeError> {
        let timeout = self.timeout();
        let mut store = self.store(identity, "load", &Default::default(), None, timeout, false);
        let run = async {
            match pre.instantiate(&mut store).await? {
                Instance::V0_1(i) => Ok(bindings::to_v0_1::manifest(
                    i.call_manifest(&mut store).await?,
                )),
                Instance::V0_2(i, _) => i.call_manifest(&mut store).await,
            }
        };
        let result = run.await;
        store.data().forward_output();
        result.map_err(|e| self.classify(e, store.data(), timeout))
    }
}
