//! The plugin runtime: one wasmtime `Engine` (epoch interruption, pooling allocator), a
//! `Linker` with the contract's host interfaces and an empty WASI, compiled plugins kept as
//! `InstancePre`s in a hot-swappable [`Registry`], and [`Runtime::handle`], which gives every
//! request a fresh `Store` with a memory cap and a wall-clock deadline inside its plugin's
//! [`budget`]. A plugin that traps, loops or allocates without bound fails only its own
//! requests; when it cannot answer, [`Runtime::fail`] asks it for its dialect's failure answer.

pub mod bindings;
pub mod budget;
pub mod check;
pub mod contract;
pub mod fleet;
pub mod guest_output;
pub mod host;
pub mod plugin;
pub mod registry;
pub mod watcher;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    CallHook, CallHookHandler, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    Store, StoreContextMut, UpdateDeadline,
};

use crate::Services;
use crate::config::{Limits, MountConfig};
pub use bindings::{COMPONENTIZE_PY, CONTRACT};
use budget::{Budget, Shares};
pub use host::{Abort, PluginIdentity, Preauthorized, RequestState};
pub use plugin::{Instance, LoadError, LoadedPlugin, Pre};
pub use registry::Registry;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a plugin call produced no response of the plugin's own.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("plugin exceeded its {0:?} time budget")]
    Deadline(Duration),
    #[error("plugin exceeded its memory limit")]
    OutOfMemory,
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin's instances (or the host's whole pool) are in use.
    #[error("plugin busy: {0}")]
    Busy(String),
    /// A host call refused the client for too many attempts; the call was cut short.
    #[error("client rate-limited for {retry_after_secs} s")]
    RateLimited { retry_after_secs: u32 },
}

impl InvokeError {
    /// The failure clients are told about: what happened, the status, when to retry, and a
    /// sentence that names no internals.
    pub fn failure(&self) -> bindings::Failure {
        use bindings::FailureKind as K;
        let (kind, status, retry, message) = match self {
            InvokeError::Busy(_) => (
                K::Busy,
                503,
                Some(1),
                "the service is busy; retry in a moment",
            ),
            InvokeError::RateLimited { retry_after_secs } => (
                K::RateLimited,
                429,
                Some((*retry_after_secs).max(1)),
                "too many attempts; wait before trying again",
            ),
            InvokeError::Deadline(_) => (K::Timeout, 504, None, "the request took too long"),
            InvokeError::OutOfMemory | InvokeError::Trap(_) => {
                (K::Crashed, 500, None, "the request failed on the server")
            }
        };
        bindings::Failure {
            kind,
            status,
            retry_after_secs: retry,
            message: message.to_string(),
        }
    }
}

/// Where a call comes from, beside the request itself.
#[derive(Debug, Clone, Default)]
pub struct CallSite {
    /// The absolute base URL of the host as this client reaches it.
    pub host_url: String,
    /// The base URL of the OSS-compatible endpoint's own listener, when configured (buckets
    /// are `<oss_url>/<bucket>` there, else `<host_url>/oss/<bucket>`).
    pub oss_url: Option<String>,
    /// The client's address (rate limits are counted per address).
    pub client: Option<IpAddr>,
    /// A principal the host established itself before the plugin runs.
    pub preauthorized: Option<Preauthorized>,
}

/// The engine, linker and limits shared by every plugin.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RequestState>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    /// Shared with every call's state: a request clones one pointer, not each service.
    services: Arc<Services>,
    /// Budgets by plugin name: the versions of one plugin share one.
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
}

/// Holds a call's CPU turn only while its guest code runs (see [`budget`]), and cuts the
/// call short right after a host call that decided to abort it (a rate-limited login).
///
/// The host also calls into the guest to lower values (the guest's allocator, once per
/// string or list): a lowered answer of a host call makes dozens of such calls. Those inside
/// a host call are part of it, and a stretch of guest code stays open over the ones around
/// the export call, so a call reads the clock and the plugin's meter about twice per host
/// call rather than at every allocation. The epoch deadline bounds an allocator like any
/// other guest code.
struct CpuGate;

#[async_trait::async_trait]
impl CallHookHandler<RequestState> for CpuGate {
    async fn handle_call_event(
        &self,
        mut store: StoreContextMut<'_, RequestState>,
        hook: CallHook,
    ) -> wasmtime::Result<()> {
        let state = store.data_mut();
        match hook {
            CallHook::CallingHost => {
                state.in_host_call = true;
                if let Some(turn) = &state.cpu {
                    turn.give_back();
                }
            }
            CallHook::ReturningFromHost => {
                state.in_host_call = false;
                if state.abort.is_some() {
                    return Err(wasmtime::Error::new(host::Aborted));
                }
                take_turn(state.cpu.clone()).await?;
            }
            CallHook::CallingWasm | CallHook::ReturningFromWasm if state.in_host_call => {}
            CallHook::CallingWasm => take_turn(state.cpu.clone()).await?,
            // The stretch ends at the next host call or with the call's turn.
            CallHook::ReturningFromWasm => {}
        }
        Ok(())
    }
}

/// Start (or continue) the call's stretch of guest code; refused when its deadline passed
/// while it waited for a CPU slot.
async fn take_turn(turn: Option<Arc<budget::CpuTurn>>) -> wasmtime::Result<()> {
    match turn {
        Some(turn) if !turn.take().await => Err(wasmtime::Trap::Interrupt.into()),
        _ => Ok(()),
    }
}

fn engine_config(limits: &Limits, pooling: bool) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    // Epochs, not fuel: a counter bump every tick costs far less than metering every
    // instruction, and wall-clock deadlines are what operators reason about.
    cfg.epoch_interruption(true);
    // `OTA_PERFMAP=1` lists guest functions in /tmp/perf-<pid>.map, so `perf report` names
    // a plugin's own code (build it unstripped to see its symbols).
    if std::env::var_os("OTA_PERFMAP").is_some() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let slots = limits.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots);
        // A Rust wasip2 component holds a handful of core instances (the program plus
        // WASI adapter shims) but a single linear memory and one or two tables.
        pool.total_core_instances(slots * 8);
        pool.max_core_instances_per_component(16);
        pool.total_memories(slots * 2);
        pool.max_memories_per_component(2);
        pool.total_tables(slots * 4);
        pool.max_tables_per_component(4);
        pool.max_memory_size((limits.memory_mib as usize) << 20);
        // Resetting a slot with madvise costs a TLB shootdown on every core; for the first
        // pages a plugin dirties per request, restoring them in place is cheaper. With the
        // kernel's PAGEMAP_SCAN (Linux 6.7+) only the pages actually dirtied are restored,
        // which took a fresh instance + empty call from 40 to 12 µs (bench `hot_path`).
        pool.pagemap_scan(wasmtime::Enabled::Auto);
        pool.linear_memory_keep_resident(1 << 20);
        pool.table_keep_resident(64 << 10);
        pool.async_stack_keep_resident(64 << 10);
        // Memory past the resident part goes back to the OS as soon as its instance is
        // freed: batching would leave up to a batch of memory bombs' pages resident.
        pool.decommit_batch_size(1);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}

impl Runtime {
    /// Build the engine (pooling when the address space allows it) and the linker, and start
    /// the epoch ticker, which stops by itself when the engine is dropped.
    pub fn new(
        limits: Limits,
        cache_dir: Option<PathBuf>,
        services: Services,
    ) -> Result<Self, wasmtime::Error> {
        let engine = match Engine::new(&engine_config(&limits, true)) {
            Ok(e) => e,
            Err(e) => {
                // Pooling reserves address space up front; restricted environments (ulimit -v,
                // some containers) refuse it. On-demand allocation is slower but equivalent.
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                Engine::new(&engine_config(&limits, false))?
            }
        };
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("ota-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(wasmtime::Error::from)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // Both contract versions live in one linker under their versioned names; a 0.2.0
        // plugin also links against any later 0.2.x here (the linker is semver-aware).
        bindings::v0_1::Dialect::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        bindings::v0_2::Dialect::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(wasmtime::Error::from)?;
        }
        Ok(Runtime {
            engine,
            linker,
            limits,
            cache_dir,
            services: Arc::new(services),
            budgets: Mutex::new(HashMap::new()),
        })
    }

    /// The budget of the plugin called `name`, made on first use from the mount's shares.
    pub fn budget(&self, name: &str, mount: &MountConfig) -> Arc<Budget> {
        let shares = Shares::of(&self.limits, mount);
        let mut all = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(name.to_string())
            .or_insert_with(|| Budget::new(shares))
            .clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }

    /// A fresh store for one call, with the memory cap, the wall-clock deadline and (for
    /// `handle`) the CPU gate armed.
    fn store(
        &self,
        identity: Arc<PluginIdentity>,
        request_id: &str,
        site: &CallSite,
        budget: Option<&Arc<Budget>>,
        timeout: Duration,
        gated: bool,
    ) -> Store<RequestState> {
        let deadline = Instant::now() + timeout;
        let cpu = match budget {
            Some(b) if gated => Some(b.cpu_turn(tokio::time::Instant::from_std(deadline))),
            _ => None,
        };
        let state = RequestState::new(
            self.services.clone(),
            identity,
            request_id.to_string(),
            site.clone(),
            budget::MemoryLimiter::new((self.limits.memory_mib as usize) << 20, budget.cloned()),
            cpu,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        if gated {
            store.call_hook_async(CpuGate);
        }
        // At every tick: interrupt a call whose budget is spent; otherwise yield to tokio, and
        // give the CPU turn to whoever of the plugin's calls waits for it, so a spinning
        // plugin never starves other requests on this worker thread.
        store.epoch_deadline_callback(move |ctx| {
            if Instant::now() >= deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(match ctx.data().cpu.clone() {
                Some(turn) => {
                    turn.give_back();
                    UpdateDeadline::YieldCustom(
                        1,
                        Box::pin(async move {
                            tokio::task::yield_now().await;
                            turn.take().await;
                        }),
                    )
                }
                None => UpdateDeadline::Yield(1),
            })
        });
        store.set_epoch_deadline(1);
        store
    }

    fn classify(&self, e: wasmtime::Error, state: &RequestState, timeout: Duration) -> InvokeError {
        if let Some(abort) = &state.abort {
            return abort.into();
        }
        if e.downcast_ref::<budget::OutOfMemory>().is_some() {
            return InvokeError::OutOfMemory;
        }
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            if *trap == wasmtime::Trap::Interrupt {
                return InvokeError::Deadline(timeout);
            }
            return InvokeError::Trap(format!("{e:#}"));
        }
        let text = format!("{e:#}");
        if text.contains("forcing trap when growing memory")
            || text.contains("memory") && text.contains("limit")
        {
            InvokeError::OutOfMemory
        } else if text.contains("maximum concurrent") || text.contains("pooling") {
            InvokeError::Busy(text)
        } else {
            InvokeError::Trap(text)
        }
    }

    /// Run a call on a fresh instance within the plugin's budget, bounded in time even if
    /// the host side stalls.
    async fn with_instance<R>(
        &self,
        plugin: &LoadedPlugin,
        request_id: &str,
        site: &CallSite,
        call: impl AsyncFnOnce(Instance, &mut Store<RequestState>) -> wasmtime::Result<R>,
    ) -> Result<R, InvokeError> {
        let _instance = plugin.budget.admit().await.map_err(|_| {
            InvokeError::Busy(format!(
                "all {} of the plugin's instances are in use",
                plugin.budget.shares().instances
            ))
        })?;
        let timeout = self.timeout();
        let mut store = self.store(
            plugin.identity.clone(),
            request_id,
            site,
            Some(&plugin.budget),
            timeout,
            true,
        );
        let run = async {
            let began = Instant::now();
            let instance = plugin.pre.instantiate(&mut store).await?;
            self.services
                .metrics
                .instantiated(&plugin.name, began.elapsed());
            call(instance, &mut store).await
        };
        // The epoch deadline bounds guest code; this bounds host calls (a stuck database)
        // too, with a small margin so the guest's own deadline fires first when it is the
        // cause.
        let outcome = tokio::time::timeout(timeout + timeout / 20, run).await;
        store.data().forward_output();
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.classify(e, store.data(), timeout)),
            Err(_) => Err(InvokeError::Deadline(timeout)),
        }
    }

    /// Hand one request to a plugin.
    pub async fn handle(
        &self,
        plugin: &LoadedPlugin,
        req: &bindings::Request,
        site: &CallSite,
    ) -> Result<bindings::Response, InvokeError> {
        self.with_instance(plugin, &req.request_id, site, async |i, s| match i {
            Instance::V0_1(i) => Ok(bindings::to_v0_1::response(
                i.call_handle(s, &bindings::to_v0_1::request(req)).await?,
            )),
            Instance::V0_2(i, _) => i.call_handle(s, req).await,
        })
        .await
    }

    /// Ask a plugin to render a refusal the host decided on.
    pub async fn refuse(
        &self,
        plugin: &LoadedPlugin,
        req: &bindings::Request,
        reason: bindings::Refusal,
        site: &CallSite,
    ) -> Result<bindings::Response, InvokeError> {
        self.with_instance(plugin, &req.request_id, site, async |i, s| match i {
            Instance::V0_1(i) => Ok(bindings::to_v0_1::response(
                i.call_refuse(
                    s,
                    &bindings::to_v0_1::request(req),
                    bindings::to_v0_1::refusal(reason),
                )
                .await?,
            )),
            Instance::V0_2(i, _) => i.call_refuse(s, req, reason).await,
        })
        .await
    }

    /// The answer to a failed call: the plugin's own (its `fail` export, 0.2.5) when it has
    /// one and it answers within a tenth of the request deadline, else the host's JSON.
    pub async fn fail(
        &self,
        plugin: &LoadedPlugin,
        req: &bindings::Request,
        error: &InvokeError,
        site: &CallSite,
    ) -> bindings::Response {
        let failure = error.failure();
        if !plugin.pre.renders_failures() {
            return host_failure(&failure, &req.request_id);
        }
        let key = plugin::FailureKey::of(&failure, &req.path);
        if let Some(answer) = plugin.failure_answers.get(&key) {
            return answer;
        }
        if let Some(_render) = plugin.budget.admit_render() {
            let timeout = (self.timeout() / 10).max(Duration::from_millis(50));
            let mut store = self.store(
                plugin.identity.clone(),
                &req.request_id,
                site,
                Some(&plugin.budget),
                timeout,
                false,
            );
            let mut req = req.clone();
            req.body = Vec::new();
            let run = async {
                let instance = plugin.pre.instantiate(&mut store).await?;
                instance.fail(&mut store, &req, &failure).await
            };
            let outcome = tokio::time::timeout(timeout + timeout / 2, run).await;
            store.data().forward_output();
            match outcome {
                Ok(Ok(Some(r))) if (100..=599).contains(&r.status) => {
                    plugin.failure_answers.put(key, &r);
                    return r;
                }
                Ok(Ok(Some(r))) => {
                    tracing::warn!(plugin = %plugin.name, version = %plugin.version, request_id = %req.request_id, status = r.status, "the plugin's failure answer has an invalid status; the host answers instead")
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(plugin = %plugin.name, version = %plugin.version, request_id = %req.request_id, error = %self.classify(e, store.data(), timeout), "the plugin could not render its failure answer; the host answers instead")
                }
                Err(_) => {
                    tracing::warn!(plugin = %plugin.name, version = %plugin.version, request_id = %req.request_id, "the plugin's failure answer took too long; the host answers instead")
                }
            }
        }
        host_failure(&failure, &req.request_id)
    }
}

/// The host's own answer to a failure: `{"error": {"code", "message"}}` with the status and,
/// for busy and rate-limited clients, `Retry-After`.
pub fn host_failure(f: &bindings::Failure, request_id: &str) -> bindings::Response {
    use bindings::FailureKind as K;
    let code = match f.kind {
        K::Busy => "unavailable",
        K::RateLimited => "too_many_requests",
        K::Timeout | K::Crashed => "plugin_failure",
    };
    let body = serde_json::json!({ "error": {
        "code": code,
        "message": format!("{} (request {request_id})", f.message),
    }});
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(s) = f.retry_after_secs {
        headers.push(("retry-after".to_string(), s.to_string()));
    }
    bindings::Response {
        status: f.status,
        headers,
        body: body.to_string().into_bytes(),
    }
}
