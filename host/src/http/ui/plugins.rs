//! The plugins page: what this replica loaded (version, contract, mount, load errors),
//! canaries, pushed versions, and every replica's request and server-error rates per plugin
//! version. Replicas report cumulative counts every 2 s; [`Rates`] keeps the previous report
//! this page read of each, so two reads give a rate (the table refreshes every 5 s).

use std::collections::HashMap;
use std::sync::Mutex;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::session::Session;
use super::{Tab, UiError, ok, percent, when};
use crate::http::AppState;
use crate::pushes::ReplicaReport;

/// Replicas not heard from for this long are not shown (as `GET /admin/plugins`).
const REPLICAS_WITHIN_MS: i64 = 30_000;

/// Pushed versions shown, newest first.
const PUSHES_SHOWN: usize = 30;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/plugins", get(page))
        .route("/ui/plugins/replicas", get(replicas))
}

/// Which replica (and its start, so a restart starts afresh), plugin and version a count
/// belongs to.
type Key = (String, i64, String, String);

fn key_of(r: &ReplicaReport, p: &crate::pushes::Serving) -> Key {
    (
        r.id.clone(),
        r.started_at,
        p.name.clone(),
        p.version.clone(),
    )
}

/// One report's counts of one plugin version on one replica.
#[derive(Clone, Copy)]
struct Count {
    seen_at: i64,
    requests: u64,
    server_errors: u64,
}

/// The last two different reports the dashboard read of each replica's plugin versions, so
/// a page can show rates; keys no longer reported are dropped at the next read.
#[derive(Default)]
pub struct Rates(Mutex<HashMap<Key, (Option<Count>, Count)>>);

impl Rates {
    /// Record `reports` and give, per key, requests/s and server errors/s between the last
    /// two different reports (`None` until there are two).
    fn update(&self, reports: &[ReplicaReport]) -> HashMap<Key, Option<(f64, f64)>> {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = HashMap::new();
        for r in reports {
            for p in &r.plugins {
                let key = key_of(r, p);
                let now = Count {
                    seen_at: r.seen_at,
                    requests: p.requests,
                    server_errors: p.server_errors,
                };
                let entry = seen.entry(key.clone()).or_insert((None, now));
                if now.seen_at > entry.1.seen_at {
                    *entry = (Some(entry.1), now);
                }
                let rate = entry.0.and_then(|before| {
                    let secs = (entry.1.seen_at - before.seen_at) as f64 / 1000.0;
                    (secs > 0.0 && entry.1.requests >= before.requests).then(|| {
                        (
                            (entry.1.requests - before.requests) as f64 / secs,
                            entry.1.server_errors.saturating_sub(before.server_errors) as f64
                                / secs,
                        )
                    })
                });
                out.insert(key, rate);
            }
        }
        seen.retain(|k, _| out.contains_key(k));
        out
    }
}

/// A plugin this replica serves.
struct LoadedRow {
    name: String,
    version: String,
    role: &'static str,
    contract: String,
    mount: String,
    routes: usize,
    sha: String,
    loaded: String,
    error: Option<String>,
}

/// A file this replica refused.
struct FailureRow {
    file: String,
    at: String,
    reason: String,
    serving: bool,
}

/// A pushed version.
struct PushRow {
    name: String,
    version: String,
    state: String,
    canary: String,
    by: String,
    at: String,
}

/// One plugin version on one replica.
struct ReplicaRow {
    replica: String,
    url: String,
    name: String,
    version: String,
    requests: u64,
    server_errors: u64,
    rate: String,
    error_rate: String,
    seen: String,
}

#[derive(Template)]
#[template(path = "ui/plugins.html")]
struct PluginsPage {
    tab: Option<Tab>,
    operator: String,
    loaded: Vec<LoadedRow>,
    failures: Vec<FailureRow>,
    pushes: Vec<PushRow>,
    replicas: Vec<ReplicaRow>,
}

#[derive(Template)]
#[template(path = "ui/replica_rows.html")]
struct ReplicaRowsFragment {
    replicas: Vec<ReplicaRow>,
}

fn short(sha: &str) -> String {
    sha[..sha.len().min(12)].to_string()
}

async fn replica_rows(st: &AppState) -> Result<Vec<ReplicaRow>, UiError> {
    let reports = st.services.pushes.replicas(REPLICAS_WITHIN_MS).await?;
    let rates = st.ui_rates.update(&reports);
    let mut rows = Vec::new();
    for r in &reports {
        for p in &r.plugins {
            let key = key_of(r, p);
            let (rate, error_rate) = match rates.get(&key).copied().flatten() {
                Some((req, err)) => (
                    format!("{req:.1}/s"),
                    if req > 0.0 {
                        percent(err / req)
                    } else {
                        "-".into()
                    },
                ),
                None => ("measuring".into(), "measuring".into()),
            };
            rows.push(ReplicaRow {
                replica: r.id.clone(),
                url: r.url.clone(),
                name: p.name.clone(),
                version: p.version.clone(),
                requests: p.requests,
                server_errors: p.server_errors,
                rate,
                error_rate,
                seen: when(Some(r.seen_at)),
            });
        }
    }
    Ok(rows)
}

async fn page(Session(op): Session, State(st): State<AppState>) -> Result<Response, UiError> {
    let snap = st.registry.snapshot();
    let row = |p: &crate::runtime::plugin::LoadedPlugin, role| LoadedRow {
        name: p.name.clone(),
        version: p.version.clone(),
        role,
        contract: format!("ota:dialect@{}", p.contract),
        mount: format!(
            "{}{}{}",
            p.mount.host.as_deref().unwrap_or("any host "),
            if p.mount.prefix.is_empty() {
                "/"
            } else {
                &p.mount.prefix
            },
            p.mount
                .listen
                .map(|a| format!(" on its listener {a}"))
                .unwrap_or_default()
        ),
        routes: p.routes.len(),
        sha: short(&p.hash),
        loaded: when(Some(p.loaded_at)),
        error: snap.failures.get(&p.file).map(|f| f.reason.clone()),
    };
    let mut loaded: Vec<LoadedRow> = snap.plugins.values().map(|p| row(p, "serving")).collect();
    loaded.extend(snap.canaries.values().map(|c| row(&c.plugin, "canary")));
    loaded.sort_by(|a, b| (&a.name, a.role).cmp(&(&b.name, b.role)));
    let failures = snap
        .failures
        .iter()
        .map(|(file, f)| FailureRow {
            file: file.display().to_string(),
            at: when(Some(f.at)),
            reason: f.reason.clone(),
            serving: snap.plugins.contains_key(file),
        })
        .collect();
    let mut pushed = st.services.pushes.list().await?;
    pushed.sort_by_key(|p| std::cmp::Reverse(p.id));
    let pushes = pushed
        .into_iter()
        .take(PUSHES_SHOWN)
        .map(|p| PushRow {
            canary: p
                .canary_percent
                .map(|c| format!("{c}%"))
                .unwrap_or_default(),
            name: p.name,
            version: p.version,
            state: p.state,
            by: p.pushed_by,
            at: when(Some(p.pushed_at)),
        })
        .collect();
    Ok(ok(&PluginsPage {
        tab: Some(Tab::Plugins),
        operator: op.name,
        loaded,
        failures,
        pushes,
        replicas: replica_rows(&st).await?,
    }))
}

async fn replicas(_: Session, State(st): State<AppState>) -> Result<Response, UiError> {
    Ok(ok(&ReplicaRowsFragment {
        replicas: replica_rows(&st).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pushes::Serving;

    fn report(started_at: i64, seen_at: i64, requests: u64, errors: u64) -> Vec<ReplicaReport> {
        vec![ReplicaReport {
            id: "a".into(),
            url: "http://a".into(),
            started_at,
            seen_at,
            plugins: vec![Serving {
                name: "mxchip".into(),
                version: "1.0.0".into(),
                sha256: String::new(),
                requests,
                server_errors: errors,
            }],
        }]
    }

    #[test]
    fn two_reports_apart_give_a_rate() {
        let rates = Rates::default();
        let key = |started: i64| ("a".to_string(), started, "mxchip".into(), "1.0.0".into());
        assert_eq!(rates.update(&report(0, 1_000, 10, 0))[&key(0)], None);
        // The same report read again keeps waiting for a newer one.
        assert_eq!(rates.update(&report(0, 1_000, 10, 0))[&key(0)], None);
        assert_eq!(
            rates.update(&report(0, 3_000, 30, 4))[&key(0)],
            Some((10.0, 2.0))
        );
        // Read again before the next report: the same rate.
        assert_eq!(
            rates.update(&report(0, 3_000, 30, 4))[&key(0)],
            Some((10.0, 2.0))
        );
        // A restart counts afresh, even past the old counts: no rate across it.
        assert_eq!(
            rates.update(&report(4_000, 5_000, 40, 0))[&key(4_000)],
            None
        );
        assert_eq!(
            rates.update(&report(4_000, 7_000, 50, 0))[&key(4_000)],
            Some((5.0, 0.0))
        );
        // A version no longer reported is forgotten.
        rates.update(&[]);
        assert!(rates.0.lock().unwrap().is_empty());
    }
}
