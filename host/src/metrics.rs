//! Prometheus metrics. What the host counts as it happens (plugin requests and their latency,
//! instantiation, failures, check-ins, job reports, scheduler passes, blob bytes) lives here;
//! what is read at scrape time (campaign progress, pool use, loaded plugins, caches) is handed
//! in by the caller as a [`Scrape`] and rendered beside it. One registry per server, so
//! several servers in one process (tests, benches) never share counters.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::rollout::campaigns::Progress;

/// The `Content-Type` of what [`Metrics::render`] writes (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One plugin request, as answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    plugin: String,
    version: String,
    /// The route pattern that matched (`/api/v1/task/{id}`), never the raw path: the
    /// series stay bounded whatever clients send.
    route: String,
    status: u16,
}

/// A plugin version's answers, server errors apart (kept for the replica reports, not
/// exported: `plugin_requests` has the detail).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    version: String,
    server_error: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    plugin: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckInLabels {
    dialect: String,
    offered: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReportLabels {
    dialect: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MovedLabels {
    kind: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

fn instantiate_histogram() -> Histogram {
    // 5 µs .. about 40 ms.
    Histogram::new(exponential_buckets(0.000_005, 2.0, 14))
}

/// What a failed plugin call cost the request, as the `kind` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Trap,
    Timeout,
    Memory,
    /// All of the plugin's instances were in use (its quota).
    Busy,
    /// The client's address was over its request rate.
    RateLimited,
    BodyTooLarge,
    /// The body did not arrive in time, or the client went away.
    BodyNotReceived,
}

impl FailureKind {
    fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::Busy => "busy",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::BodyTooLarge => "body_too_large",
            FailureKind::BodyNotReceived => "body_not_received",
        }
    }
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    outcomes: Family<OutcomeLabels, Counter>,
    latency: Histograms<PluginLabels>,
    instantiate: Histograms<PluginLabels>,
    failures: Family<FailureLabels, Counter>,
    check_ins: Family<CheckInLabels, Counter>,
    job_reports: Family<ReportLabels, Counter>,
    deployment_reports: Family<ReportLabels, Counter>,
    scheduler_passes: Histogram,
    scheduler_moved: Family<MovedLabels, Counter>,
    blob_bytes: Counter,
    /// When the last scheduler pass ended.
    last_pass: Mutex<Option<Instant>>,
    started: Instant,
}

/// The server's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ota");
        let requests = Family::default();
        registry.register(
            "plugin_requests",
            "Requests answered through a plugin, by plugin, version, matched route and status",
            requests.clone(),
        );
        let latency: Histograms<PluginLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "plugin_request_duration_seconds",
            "Time from a plugin request's arrival to its answer",
            latency.clone(),
        );
        let instantiate: Histograms<PluginLabels> =
            Family::new_with_constructor(instantiate_histogram);
        registry.register(
            "plugin_instantiate_seconds",
            "Time to make a fresh plugin instance for one call",
            instantiate.clone(),
        );
        let failures = Family::default();
        registry.register(
            "plugin_failures",
            "Plugin requests that failed or were refused, by kind: trap, timeout, memory, busy \
             (the plugin's instance quota), rate_limited (the client's), body_too_large, \
             body_not_received",
            failures.clone(),
        );
        let check_ins = Family::default();
        registry.register(
            "check_ins",
            "Device check-ins through a dialect, by whether an update was offered",
            check_ins.clone(),
        );
        let job_reports = Family::default();
        registry.register(
            "job_reports",
            "Campaign job reports through a dialect, by the state reported",
            job_reports.clone(),
        );
        let deployment_reports = Family::default();
        registry.register(
            "deployment_reports",
            "Deployment reports through a dialect, by the status reported",
            deployment_reports.clone(),
        );
        let scheduler_passes = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "scheduler_pass_duration_seconds",
            "How long one scheduler pass took",
            scheduler_passes.clone(),
        );
        let scheduler_moved = Family::default();
        registry.register(
            "scheduler_moved",
            "Objects the scheduler moved, by kind",
            scheduler_moved.clone(),
        );
        let blob_bytes = Counter::default();
        registry.register(
            "blob_served_bytes",
            "Bytes of firmware files sent to clients",
            blob_bytes.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            requests,
            outcomes: Family::default(),
            latency,
            instantiate,
            failures,
            check_ins,
            job_reports,
            deployment_reports,
            scheduler_passes,
            scheduler_moved,
            blob_bytes,
            last_pass: Mutex::new(None),
            started: Instant::now(),
        }))
    }

    /// A plugin request was answered.
    pub fn request(&self, plugin: &str, version: &str, route: &str, status: u16, took: Duration) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                plugin: plugin.into(),
                version: version.into(),
                route: route.into(),
                status,
            })
            .inc();
        self.0
            .outcomes
            .get_or_create(&OutcomeLabels {
                plugin: plugin.into(),
                version: version.into(),
                server_error: status >= 500,
            })
            .inc();
        self.0
            .latency
            .get_or_create(&PluginLabels {
                plugin: plugin.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// Requests a plugin version answered since start, and how many of them were server
    /// errors (5xx).
    pub fn answered(&self, plugin: &str, version: &str) -> (u64, u64) {
        let count = |server_error| {
            self.0
                .outcomes
                .get(&OutcomeLabels {
                    plugin: plugin.into(),
                    version: version.into(),
                    server_error,
                })
                .map_or(0, |c| c.get())
        };
        let errors = count(true);
        (count(false) + errors, errors)
    }

    /// A fresh instance of `plugin` took `took` to make.
    pub fn instantiated(&self, plugin: &str, took: Duration) {
        self.0
            .instantiate
            .get_or_create(&PluginLabels {
                plugin: plugin.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// A plugin request failed or was refused.
    pub fn failure(&self, plugin: &str, kind: FailureKind) {
        self.0
            .failures
            .get_or_create(&FailureLabels {
                plugin: plugin.into(),
                kind: kind.as_str(),
            })
            .inc();
    }

    /// A device checked in through `dialect`.
    pub fn check_in(&self, dialect: &str, offered: bool) {
        self.0
            .check_ins
            .get_or_create(&CheckInLabels {
                dialect: dialect.into(),
                offered: if offered { "true" } else { "false" },
            })
            .inc();
    }

    /// A device reported a job's state through `dialect`.
    pub fn job_report(&self, dialect: &str, state: &str) {
        self.0
            .job_reports
            .get_or_create(&ReportLabels {
                dialect: dialect.into(),
                state: state.into(),
            })
            .inc();
    }

    /// A device reported a deployment's status through `dialect`.
    pub fn deployment_report(&self, dialect: &str, status: &str) {
        self.0
            .deployment_reports
            .get_or_create(&ReportLabels {
                dialect: dialect.into(),
                state: status.into(),
            })
            .inc();
    }

    /// A scheduler pass ended after `took`, having moved `moved` objects of each kind.
    pub fn scheduler_pass(&self, took: Duration, moved: &[(&'static str, u64)]) {
        self.0.scheduler_passes.observe(took.as_secs_f64());
        for (kind, n) in moved.iter().filter(|(_, n)| *n > 0) {
            self.0
                .scheduler_moved
                .get_or_create(&MovedLabels { kind })
                .inc_by(*n);
        }
        *self.0.last_pass.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Bytes of a firmware file went to a client.
    pub fn blob_bytes_served(&self, n: u64) {
        self.0.blob_bytes.inc_by(n);
    }

    /// The counters, then the facts read for this scrape, in Prometheus text format.
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.0.registry);
        let since_pass = self
            .0
            .last_pass
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(self.0.started)
            .elapsed();
        let _ = prometheus_client::encoding::prometheus_text::encode(
            &mut out,
            &scrape.registry(since_pass),
        );
        out
    }
}

/// A loaded plugin, read at scrape time.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    pub contract: String,
    /// A canary beside the plugin's serving version.
    pub canary: bool,
    /// Calls running now, and the plugin's instance quota.
    pub in_use: u32,
    pub instances: u32,
}

/// What is read fresh for every scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Running and paused campaigns, and the names of tenants by id.
    pub campaigns: Vec<Progress>,
    pub tenants: std::collections::HashMap<i64, String>,
    pub plugins: Vec<LoadedPlugin>,
    /// Plugin files refused at their last load.
    pub plugin_load_failures: usize,
    /// Database connections open and idle, and the pool's cap.
    pub db_open: u32,
    pub db_idle: u32,
    pub db_max: u32,
    /// Verified credentials served from memory and read from the database.
    pub auth_cache_hits: u64,
    pub auth_cache_misses: u64,
    /// SQLite reads answered on the calling thread and handed to the pool (`None` on
    /// PostgreSQL, which has no such path).
    pub db_fast_reads: Option<(u64, u64)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignLabels {
    campaign: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignStateLabels {
    campaign: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignInfoLabels {
    campaign: String,
    tenant: String,
    name: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginInfoLabels {
    plugin: String,
    version: String,
    contract: String,
    /// `serving`, or `canary` for a version taking a share of the plugin's requests.
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

impl Scrape {
    /// A throwaway registry holding this scrape's facts (so concurrent scrapes never see
    /// each other's half-written gauges).
    fn registry(&self, since_pass: Duration) -> Registry {
        let mut r = Registry::with_prefix("ota");
        let jobs = Family::<CampaignStateLabels, Gauge>::default();
        let info = Family::<CampaignInfoLabels, Gauge>::default();
        let ratio = Family::<CampaignLabels, FloatGauge>::default();
        let threshold = Family::<CampaignLabels, FloatGauge>::default();
        for c in &self.campaigns {
            let campaign = c.id.to_string();
            for (state, n) in &c.jobs {
                jobs.get_or_create(&CampaignStateLabels {
                    campaign: campaign.clone(),
                    state: state.clone(),
                })
                .set(*n);
            }
            let tenant = self.tenants.get(&c.tenant_id).cloned();
            info.get_or_create(&CampaignInfoLabels {
                campaign: campaign.clone(),
                tenant: tenant.unwrap_or_else(|| c.tenant_id.to_string()),
                name: c.name.clone(),
                status: c.status.as_str().to_string(),
            })
            .set(1);
            let key = CampaignLabels { campaign };
            ratio.get_or_create(&key).set(c.failure_ratio);
            if let Some(t) = c.failure_threshold {
                threshold.get_or_create(&key).set(t);
            }
        }
        r.register(
            "campaign_jobs",
            "Jobs of each running or paused campaign, by state",
            jobs,
        );
        r.register(
            "campaign_info",
            "Running and paused campaigns: tenant, name and status (always 1)",
            info,
        );
        r.register(
            "campaign_failure_ratio",
            "Failed and timed-out jobs over finished ones, as the failure guard counts them",
            ratio,
        );
        r.register(
            "campaign_failure_threshold_ratio",
            "The failure ratio at which the campaign pauses itself",
            threshold,
        );

        let plugins = Family::<PluginInfoLabels, Gauge>::default();
        let in_use = Family::<PluginLabels, Gauge>::default();
        let quota = Family::<PluginLabels, Gauge>::default();
        for p in &self.plugins {
            plugins
                .get_or_create(&PluginInfoLabels {
                    plugin: p.name.clone(),
                    version: p.version.clone(),
                    contract: p.contract.clone(),
                    role: if p.canary { "canary" } else { "serving" },
                })
                .set(1);
            if p.canary {
                continue; // its instances are the plugin's, counted once
            }
            let key = PluginLabels {
                plugin: p.name.clone(),
            };
            in_use.get_or_create(&key).set(i64::from(p.in_use));
            quota.get_or_create(&key).set(i64::from(p.instances));
        }
        r.register(
            "plugin_info",
            "Loaded plugins and canaries: version, contract and role (always 1)",
            plugins,
        );
        r.register(
            "plugin_instances_in_use",
            "Calls of the plugin running now",
            in_use,
        );
        r.register(
            "plugin_instances_quota",
            "Calls the plugin may run at once",
            quota,
        );
        let failures = Gauge::<i64>::default();
        failures.set(self.plugin_load_failures as i64);
        r.register(
            "plugin_load_failures",
            "Plugin files refused at their last load",
            failures,
        );

        let db = Family::<StateLabels, Gauge>::default();
        db.get_or_create(&StateLabels { state: "idle" })
            .set(i64::from(self.db_idle));
        db.get_or_create(&StateLabels { state: "in_use" })
            .set(i64::from(self.db_open.saturating_sub(self.db_idle)));
        r.register("db_connections", "Database pool connections, by state", db);
        let db_max = Gauge::<i64>::default();
        db_max.set(i64::from(self.db_max));
        r.register(
            "db_connections_max",
            "The database pool's connection cap",
            db_max,
        );

        let auth = Family::<ResultLabels, Counter>::default();
        auth.get_or_create(&ResultLabels { result: "hit" })
            .inc_by(self.auth_cache_hits);
        auth.get_or_create(&ResultLabels { result: "miss" })
            .inc_by(self.auth_cache_misses);
        r.register(
            "auth_cache_lookups",
            "Verified API keys and access tokens: served from memory (hit) or read (miss)",
            auth,
        );
        if let Some((answered, to_pool)) = self.db_fast_reads {
            let reads = Family::<ResultLabels, Counter>::default();
            reads
                .get_or_create(&ResultLabels { result: "answered" })
                .inc_by(answered);
            reads
                .get_or_create(&ResultLabels { result: "to_pool" })
                .inc_by(to_pool);
            r.register(
                "db_fast_reads",
                "SQLite reads run on the calling thread: answered there, or handed to the pool \
                 (a busy file, a statement over its time budget, an error)",
                reads,
            );
        }

        let lag = FloatGauge::default();
        lag.set(since_pass.as_secs_f64());
        r.register(
            "scheduler_seconds_since_pass",
            "Time since the scheduler last finished a pass (it runs every scheduler.interval-ms)",
            lag,
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_scrape_facts_render_as_prometheus_text() {
        let m = Metrics::new();
        m.request(
            "xlink",
            "1.0.0",
            "/v2/upgrade/{id}",
            200,
            Duration::from_millis(3),
        );
        m.request(
            "xlink",
            "1.0.0",
            "/v2/upgrade/{id}",
            200,
            Duration::from_millis(4),
        );
        m.request(
            "xlink",
            "1.0.0",
            "/v2/upgrade/{id}",
            503,
            Duration::from_millis(1),
        );
        m.request(
            "xlink",
            "2.0.0",
            "/v2/upgrade/{id}",
            404,
            Duration::from_millis(1),
        );
        assert_eq!(m.answered("xlink", "1.0.0"), (3, 1));
        assert_eq!(m.answered("xlink", "2.0.0"), (1, 0));
        assert_eq!(m.answered("ctwing", "1.0.0"), (0, 0));
        m.failure("xlink", FailureKind::Busy);
        m.check_in("xlink", true);
        let text = m.render(&Scrape {
            campaigns: vec![Progress {
                id: 7,
                tenant_id: 1,
                name: "spring".into(),
                status: crate::rollout::campaigns::CampaignStatus::Running,
                jobs: vec![("queued".into(), 5), ("failed".into(), 1)],
                failure_ratio: 0.25,
                failure_threshold: Some(0.1),
            }],
            tenants: [(1, "acme".to_string())].into(),
            db_fast_reads: Some((12, 1)),
            ..Default::default()
        });
        for line in [
            "ota_campaign_info{campaign=\"7\",tenant=\"acme\",name=\"spring\",status=\"running\"} 1",
            "ota_plugin_requests_total{plugin=\"xlink\",version=\"1.0.0\",route=\"/v2/upgrade/{id}\",status=\"200\"} 2",
            "ota_plugin_request_duration_seconds_count{plugin=\"xlink\"} 4",
            "ota_plugin_failures_total{plugin=\"xlink\",kind=\"busy\"} 1",
            "ota_check_ins_total{dialect=\"xlink\",offered=\"true\"} 1",
            "ota_campaign_jobs{campaign=\"7\",state=\"queued\"} 5",
            "ota_campaign_failure_ratio{campaign=\"7\"} 0.25",
            "ota_campaign_failure_threshold_ratio{campaign=\"7\"} 0.1",
            "ota_db_fast_reads_total{result=\"answered\"} 12",
            "ota_db_fast_reads_total{result=\"to_pool\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
