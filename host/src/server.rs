//! Starting and stopping the whole server: data dir and plugins folder (seeded with the
//! bundled plugins on first start), database and provisioning, the plugin runtime with its
//! folder watcher, the scheduler, and one HTTP listener per distinct address. Shutdown drains
//! in-flight requests before returning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::http::conn::EdgeLimits;
use crate::http::{self, AppState, Listener};
use crate::runtime::watcher::Loader;
use crate::runtime::{Registry, Runtime};
use crate::{Services, bundled, provision, rollout};

/// How long shutdown waits for in-flight requests.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// A running server.
pub struct RunningServer {
    /// The main listener's address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// Plugin-specific listeners: (plugin name, address).
    pub plugin_listeners: Vec<(String, SocketAddr)>,
    /// The OSS-compatible endpoint's own listener (`blobs.oss-listen`), when configured.
    pub oss_addr: Option<SocketAddr>,
    /// The metrics listener (`metrics.listen`), when configured.
    pub metrics_addr: Option<SocketAddr>,
    pub services: Services,
    pub registry: Arc<Registry>,
    pub loader: Loader,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// `http://host:port` of the main listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Run one scheduler pass now (what the background loop does every interval).
    pub async fn scheduler_tick(&self) -> u64 {
        rollout::scheduler::tick(&self.services.rollout).await
    }

    /// Stop accepting, let in-flight requests finish (for at most [`DRAIN_LIMIT`]; a stalled
    /// download must not hold the process forever), stop background tasks.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let aborts: Vec<_> = self.tasks.iter().map(|t| t.abort_handle()).collect();
        let drained =
            tokio::time::timeout(DRAIN_LIMIT, futures::future::join_all(self.tasks)).await;
        if drained.is_err() {
            tracing::warn!("requests still running after {DRAIN_LIMIT:?}; aborting them");
            aborts.iter().for_each(|a| a.abort());
        }
        self.services.db.close().await;
    }

    /// A token that, once cancelled, shuts the server down (e.g. from a signal handler).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Wait until the server has been shut down via its token, then drain.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.shutdown().await;
    }
}

/// Start everything; returns once every listener is bound and every plugin file was tried.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<RunningServer> {
    std::fs::create_dir_all(&config.data_dir)?;
    if bundled::seed(&config.plugins_dir)? {
        tracing::info!(dir = %config.plugins_dir.display(), "seeded plugins folder with the bundled plugins");
    }
    let open_files = http::conn::raise_open_file_limit();
    let mut config = config;
    // Keep files for the database, plugins and blobs beside the connections.
    let reserve = 256;
    if (config.limits.max_connections as u64) + reserve > open_files {
        let fit = open_files.saturating_sub(reserve).max(16) as usize;
        tracing::warn!(
            open_files,
            configured = config.limits.max_connections,
            max_connections = fit,
            "limits.max-connections lowered to fit the open-file limit"
        );
        config.limits.max_connections = fit;
    }
    let edge = EdgeLimits::from_config(&config.limits);
    let services = Services::open(&config, clock.clone()).await?;
    provision::apply(&config, &services).await?;

    let config = Arc::new(config);
    let runtime = Arc::new(
        Runtime::new(
            config.limits.clone(),
            Some(config.data_dir.join("cache")),
            services.clone(),
        )
        .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e:#}"))?,
    );
    let registry = Arc::new(Registry::default());
    let loader = Loader {
        runtime: runtime.clone(),
        registry: registry.clone(),
        config: config.clone(),
        clock: clock.clone(),
        serial: Default::default(),
    };
    let shutdown = CancellationToken::new();
    // Whatever was started is stopped again if a later step of start-up fails.
    let guard = shutdown.clone().drop_guard();
    let mut tasks = Vec::new();
    // Watch before the initial scan so a file dropped in between is not missed.
    tasks.push(loader.clone().watch(shutdown.clone())?);
    loader.load_all().await?;

    let main = TcpListener::bind(config.listen).await?;
    let addr = main.local_addr()?;
    let oss = match config.blobs.oss_listen {
        Some(listen) => Some(TcpListener::bind(listen).await?),
        None => None,
    };
    let oss_addr = oss.as_ref().map(TcpListener::local_addr).transpose()?;
    let metrics = match config.metrics.listen {
        Some(listen) => Some(TcpListener::bind(listen).await?),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(TcpListener::local_addr).transpose()?;
    let state = AppState {
        main_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .into(),
        oss_url: oss_addr.map(|a| {
            config
                .blobs
                .oss_public_url
                .clone()
                .unwrap_or_else(|| format!("http://{a}"))
                .into()
        }),
        runtime,
        registry: registry.clone(),
        services: Arc::new(services.clone()),
        per_ip: Arc::new(http::dispatch::PerIp::new(
            config.limits.requests_per_ip_per_sec,
        )),
        cors: Arc::new(http::cors::ByMount::new(&config)),
        upload_slots: Arc::new(crate::blobs::UploadSlots::new(
            config.blobs.uploads_in_flight,
            config.blobs.uploads_per_party,
        )),
        ui_rates: Default::default(),
        config: config.clone(),
    };
    tasks.push(serve(
        main,
        http::router(state.clone(), Listener(None)),
        edge.clone(),
        shutdown.clone(),
    ));
    if let (Some(l), Some(a)) = (oss, oss_addr) {
        tasks.push(serve(
            l,
            http::oss::path_style_router(state.clone()),
            edge.clone(),
            shutdown.clone(),
        ));
        println!("OSS endpoint listening on http://{a}");
    }
    if let (Some(l), Some(a)) = (metrics, metrics_addr) {
        tasks.push(serve(
            l,
            http::metrics::open_router(state.clone()),
            edge.clone(),
            shutdown.clone(),
        ));
        println!("metrics listening on http://{a}/metrics");
    }
    let mut plugin_listeners = Vec::new();
    // Several mounts may share an address (told apart by Host): bind each address once.
    let mut bound_addrs: std::collections::BTreeMap<SocketAddr, SocketAddr> = Default::default();
    for (name, mount) in &config.mounts {
        if let Some(listen) = mount.listen {
            let bound = match bound_addrs.get(&listen) {
                Some(b) => *b,
                None => {
                    let l = TcpListener::bind(listen).await?;
                    let b = l.local_addr()?;
                    // Routing compares against the configured address, which mounts name.
                    tasks.push(serve(
                        l,
                        http::router(state.clone(), Listener(Some(listen))),
                        edge.clone(),
                        shutdown.clone(),
                    ));
                    bound_addrs.insert(listen, b);
                    b
                }
            };
            println!("plugin {name} listening on http://{bound}");
            plugin_listeners.push((name.clone(), bound));
        }
    }
    tasks.push(tokio::spawn(rollout::scheduler::run(
        services.rollout.clone(),
        Duration::from_millis(config.scheduler.interval_ms),
        Duration::from_secs(config.scheduler.progress_sample_secs),
        shutdown.clone(),
        services.metrics.clone(),
    )));
    {
        // Dead login tokens would otherwise pile up for ever; an hourly sweep is plenty.
        let auth = services.auth.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let mut timer = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = timer.tick() => match auth.prune_tokens().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(tokens = n, "pruned dead login tokens"),
                        Err(e) => tracing::warn!(error = %e, "pruning login tokens failed"),
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
        }));
    }
    {
        // Other replicas' campaign changes (PostgreSQL NOTIFY); a no-op on SQLite.
        let rollout = services.rollout.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            rollout.follow_changes(shutdown).await
        }));
    }
    {
        // Revocations made by any process (another replica, the CLI): while this follows
        // them, verified keys and tokens are served from memory.
        let auth = services.auth.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            auth.follow_revocations(shutdown).await
        }));
    }
    tasks.push(tokio::spawn(crate::runtime::fleet::follow(
        loader.clone(),
        services.pushes.clone(),
        services.metrics.clone(),
        crate::runtime::fleet::Replica {
            id: format!("{addr}/{:08x}", rand::random::<u32>()),
            url: state.main_url.to_string(),
            started_at: clock.now_millis(),
        },
        shutdown.clone(),
    )));
    println!("listening on http://{addr}");
    guard.disarm();
    Ok(RunningServer {
        addr,
        plugin_listeners,
        oss_addr,
        metrics_addr,
        services,
        registry,
        loader,
        shutdown,
        tasks,
    })
}

fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: EdgeLimits,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(http::conn::serve(listener, app, limits, shutdown))
}
