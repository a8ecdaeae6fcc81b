//! The plugin runtime: one wasmtime `Engine` (epoch interruption, pooling allocator), a
//! `Linker` with the contract's host interfaces and an empty WASI, compiled plugins kept as
//! `InstancePre`s in a hot-swappable [`Registry`], and [`Runtime::invoke`], which gives every
//! request a fresh `Store` with a memory cap and a wall-clock deadline. A plugin that traps,
//! loops or allocates without bound fails only its own request.

pub mod bindings;
pub mod check;
pub mod host;
pub mod plugin;
pub mod registry;
pub mod watcher;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

use crate::Services;
use crate::config::Limits;
pub use host::{PluginIdentity, Preauthorized, RequestState};
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
    #[error("no free plugin instance slot: {0}")]
    Capacity(String),
}

/// The engine, linker and limits shared by every plugin.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RequestState>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    services: Services,
}

fn engine_config(limits: &Limits, pooling: bool) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    // Epochs, not fuel: a counter bump every tick costs far less than metering every
    // instruction, and wall-clock deadlines are what operators reason about.
    cfg.epoch_interruption(true);
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
        // pages a plugin touches per request, zeroing them in place is cheaper.
        pool.linear_memory_keep_resident(1 << 20);
        pool.table_keep_resident(64 << 10);
        pool.async_stack_keep_resident(64 << 10);
        // Return freed slots to the OS in batches rather than one madvise per request.
        pool.decommit_batch_size(16);
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
            services,
        })
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

    /// A fresh store for one call, with the memory cap and the wall-clock deadline armed.
    fn store(
        &self,
        identity: Arc<PluginIdentity>,
        request_id: String,
        host_url: String,
        preauthorized: Option<Preauthorized>,
    ) -> Store<RequestState> {
        let state = RequestState::new(
            self.services.clone(),
            identity,
            request_id,
            host_url,
            (self.limits.memory_mib as usize) << 20,
            preauthorized,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let deadline = Instant::now() + self.timeout();
        // Yield to tokio at every tick so a spinning plugin never starves other requests on
        // this worker thread, and interrupt it once its budget is spent.
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        store
    }

    fn classify(&self, e: wasmtime::Error) -> InvokeError {
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            if *trap == wasmtime::Trap::Interrupt {
                return InvokeError::Deadline(self.timeout());
            }
            return InvokeError::Trap(format!("{e:#}"));
        }
        let text = format!("{e:#}");
        if text.contains("forcing trap when growing memory")
            || text.contains("memory") && text.contains("limit")
        {
            InvokeError::OutOfMemory
        } else if text.contains("maximum concurrent") || text.contains("pooling") {
            InvokeError::Capacity(text)
        } else {
            InvokeError::Trap(text)
        }
    }

    /// Run a call on a fresh instance, bounded in time even if the host side stalls.
    async fn with_instance<R>(
        &self,
        plugin: &LoadedPlugin,
        request_id: &str,
        host_url: &str,
        preauthorized: Option<Preauthorized>,
        call: impl AsyncFnOnce(Instance, &mut Store<RequestState>) -> wasmtime::Result<R>,
    ) -> Result<R, InvokeError> {
        let mut store = self.store(
            plugin.identity.clone(),
            request_id.to_string(),
            host_url.to_string(),
            preauthorized,
        );
        let run = async {
            let instance = plugin.pre.instantiate(&mut store).await?;
            call(instance, &mut store).await
        };
        // The epoch deadline bounds guest code; this bounds host calls (a stuck database)
        // too, with a margin so the guest's own deadline fires first when it is the cause.
        match tokio::time::timeout(self.timeout() + Duration::from_secs(1), run).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_) => Err(InvokeError::Deadline(self.timeout())),
        }
    }

    /// Hand one request to a plugin.
    pub async fn handle(
        &self,
        plugin: &LoadedPlugin,
        req: &bindings::Request,
        host_url: &str,
    ) -> Result<bindings::Response, InvokeError> {
        self.handle_as(plugin, req, host_url, None).await
    }

    /// Hand one request to a plugin with a principal the host already established (the
    /// callback after an upload the host authorized itself): `auth.current` answers it.
    pub async fn handle_as(
        &self,
        plugin: &LoadedPlugin,
        req: &bindings::Request,
        host_url: &str,
        preauthorized: Option<Preauthorized>,
    ) -> Result<bindings::Response, InvokeError> {
        self.with_instance(
            plugin,
            &req.request_id,
            host_url,
            preauthorized,
            async |i, s| match i {
                Instance::V0_1(i) => Ok(bindings::to_v0_1::response(
                    i.call_handle(s, &bindings::to_v0_1::request(req)).await?,
                )),
                Instance::V0_2(i) => i.call_handle(s, req).await,
            },
        )
        .await
    }

    /// Ask a plugin to render a refusal the host decided on.
    pub async fn refuse(
        &self,
        plugin: &LoadedPlugin,
        req: &bindings::Request,
        reason: bindings::Refusal,
        host_url: &str,
    ) -> Result<bindings::Response, InvokeError> {
        self.with_instance(
            plugin,
            &req.request_id,
            host_url,
            None,
            async |i, s| match i {
                Instance::V0_1(i) => Ok(bindings::to_v0_1::response(
                    i.call_refuse(
                        s,
                        &bindings::to_v0_1::request(req),
                        bindings::to_v0_1::refusal(reason),
                    )
                    .await?,
                )),
                Instance::V0_2(i) => i.call_refuse(s, req, reason).await,
            },
        )
        .await
    }
}
