//! Campaign pages: every tenant's campaigns with their progress, and one campaign with its
//! jobs by state, waves, failure share against its guard, a chart of both over time (the
//! scheduler's samples plus this moment) and the lifecycle actions.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::session::Session;
use super::{Tab, UiError, ok, percent, when};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::rollout::campaigns::{Action, Campaign, CampaignFilter, CampaignStatus, Progress};
use crate::rollout::job::JobState;

/// Campaigns listed per tenant (newest first).
const PER_TENANT: i64 = 100;

/// Op log entries a campaign's page shows.
const LOG_SHOWN: i64 = 20;

/// Most points a chart draws; longer histories are thinned evenly.
const CHART_POINTS: i64 = 600;

/// The actions the dashboard offers, in button order; only those the status allows show.
const ACTIONS: &[Action] = &[
    Action::Approve,
    Action::Reject,
    Action::Start,
    Action::Pause,
    Action::Resume,
    Action::Stop,
    Action::Cancel,
];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/campaigns", get(list))
        .route("/ui/campaigns/rows", get(rows))
        .route("/ui/campaigns/{id}", get(show))
        .route("/ui/campaigns/{id}/panel", get(panel))
        .route("/ui/campaigns/{id}/series", get(series))
        .route("/ui/campaigns/{id}/actions/{action}", post(act))
}

/// One state's share of a progress bar, drawn as an SVG rectangle on a 0-100 axis (SVG
/// attributes, not inline styles, which the dashboard's CSP refuses).
struct Bar {
    state: &'static str,
    count: i64,
    x: String,
    width: String,
}

/// Where a campaign stands, as the pages show it.
struct Standing {
    total: i64,
    /// Every job state in order, with its count (zero included).
    counts: Vec<(&'static str, i64)>,
    bars: Vec<Bar>,
    /// Succeeded over all jobs.
    done: String,
    failure: String,
    threshold: Option<String>,
    /// The failure share has reached the guard's threshold.
    over: bool,
}

impl Standing {
    fn of(p: Option<&Progress>) -> Standing {
        let by_state: HashMap<&str, i64> = p
            .map(|p| p.jobs.iter().map(|(s, n)| (s.as_str(), *n)).collect())
            .unwrap_or_default();
        let total: i64 = by_state.values().sum();
        let counts: Vec<(&'static str, i64)> = JobState::ALL
            .iter()
            .map(|s| (s.as_str(), by_state.get(s.as_str()).copied().unwrap_or(0)))
            .collect();
        let share = |n: i64| {
            if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            }
        };
        let mut x = 0.0;
        let bars = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|&(state, count)| {
                let width = share(count) * 100.0;
                let bar = Bar {
                    state,
                    count,
                    x: format!("{x:.3}"),
                    width: format!("{width:.3}"),
                };
                x += width;
                bar
            })
            .collect();
        let (ratio, threshold) = p
            .map(|p| (p.failure_ratio, p.failure_threshold))
            .unwrap_or((0.0, None));
        Standing {
            total,
            done: percent(share(by_state.get("succeeded").copied().unwrap_or(0))),
            counts,
            bars,
            failure: percent(ratio),
            threshold: threshold.map(percent),
            over: threshold.is_some_and(|t| ratio >= t),
        }
    }
}

/// One campaign in the list.
struct Row {
    id: i64,
    name: String,
    tenant: String,
    status: &'static str,
    target_version: String,
    updated: String,
    standing: Standing,
}

#[derive(Template)]
#[template(path = "ui/campaigns.html")]
struct ListPage {
    tab: Option<Tab>,
    operator: String,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "ui/campaign_rows.html")]
struct RowsFragment {
    rows: Vec<Row>,
}

/// Every tenant's newest campaigns with where they stand.
async fn all_rows(st: &AppState) -> Result<Vec<Row>, UiError> {
    let mut rows = Vec::new();
    for t in st.services.auth.list_tenants().await? {
        let (campaigns, _) = st
            .services
            .rollout
            .list_campaigns(t.id, &CampaignFilter::default(), PER_TENANT, 0)
            .await?;
        let ids: Vec<i64> = campaigns.iter().map(|c| c.id).collect();
        let progress: HashMap<i64, Progress> = st
            .services
            .rollout
            .progress_of(&ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        rows.extend(campaigns.into_iter().map(|c| Row {
            standing: Standing::of(progress.get(&c.id)),
            id: c.id,
            tenant: t.name.clone(),
            status: c.status.as_str(),
            target_version: c.target_version,
            updated: when(Some(c.updated_at)),
            name: c.name,
        }));
    }
    // Running work first, then the rest, newest first within each.
    rows.sort_by_key(|r| (!matches!(r.status, "running" | "paused"), -r.id));
    Ok(rows)
}

async fn list(Session(op): Session, State(st): State<AppState>) -> Result<Response, UiError> {
    Ok(ok(&ListPage {
        tab: Some(Tab::Campaigns),
        operator: op.name,
        rows: all_rows(&st).await?,
    }))
}

async fn rows(_: Session, State(st): State<AppState>) -> Result<Response, UiError> {
    Ok(ok(&RowsFragment {
        rows: all_rows(&st).await?,
    }))
}

/// One line of the op log.
struct LogRow {
    at: String,
    actor: String,
    action: String,
    detail: String,
}

/// The part of a campaign's page that refreshes itself and that actions answer with.
struct Panel {
    id: i64,
    status: &'static str,
    standing: Standing,
    /// How far the waves have come, when the campaign has waves.
    waves: Option<String>,
    /// (action, label) of each action the status allows.
    actions: Vec<(&'static str, &'static str)>,
    /// The outcome of the action just taken: (is it an error, message).
    flash: Option<(bool, String)>,
    log: Vec<LogRow>,
}

#[derive(Template)]
#[template(path = "ui/campaign.html")]
struct CampaignPage {
    tab: Option<Tab>,
    operator: String,
    c: Campaign,
    tenant: String,
    release: String,
    timeout: String,
    window: Option<String>,
    panel: Panel,
}

#[derive(Template)]
#[template(path = "ui/campaign_panel.html")]
struct PanelFragment {
    panel: Panel,
}

fn label(a: Action) -> &'static str {
    match a {
        Action::Submit => "Submit",
        Action::Approve => "Approve",
        Action::Reject => "Reject",
        Action::Start => "Start",
        Action::Pause => "Pause",
        Action::Resume => "Resume",
        Action::Stop => "Stop",
        Action::Cancel => "Cancel",
        Action::Revise => "Revise",
    }
}

async fn load_panel(
    st: &AppState,
    c: &Campaign,
    flash: Option<(bool, String)>,
) -> Result<Panel, UiError> {
    let progress = st.services.rollout.progress_of(&[c.id]).await?;
    let standing = Standing::of(progress.first());
    let waves = c.wave_cap.map(|cap| {
        let mut w = format!(
            "{} of at most {cap} devices admitted so far",
            standing.total.min(cap)
        );
        if let (Some(step), Some(secs)) = (c.wave_step, c.wave_interval_secs) {
            w.push_str(&format!("; +{step} every {secs} s"));
        }
        if let Some(next) = c
            .next_wave_at
            .filter(|_| c.status == CampaignStatus::Running)
        {
            w.push_str(&format!("; next wave {} UTC", when(Some(next))));
        }
        w
    });
    let log = st
        .services
        .rollout
        .recent_log(c.id, LOG_SHOWN)
        .await?
        .into_iter()
        .map(|e| LogRow {
            at: when(Some(e.at)),
            actor: e.actor,
            action: e.action,
            detail: e.detail,
        })
        .collect();
    Ok(Panel {
        id: c.id,
        status: c.status.as_str(),
        standing,
        waves,
        actions: ACTIONS
            .iter()
            .filter(|a| a.allowed_in(c.status))
            .map(|a| (a.name(), label(*a)))
            .collect(),
        flash,
        log,
    })
}

async fn show(
    Session(op): Session,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let c = st.services.rollout.live_campaign(id).await?;
    let tenant = st.services.auth.tenant_by_id(c.tenant_id).await?.name;
    let release = match st.services.catalog.release(c.tenant_id, c.release_id).await {
        Ok(r) => format!("{} {} (#{})", r.name, r.version, r.id),
        Err(_) => format!("#{} (deleted)", c.release_id),
    };
    let panel = load_panel(&st, &c, None).await?;
    Ok(ok(&CampaignPage {
        tab: Some(Tab::Campaigns),
        operator: op.name,
        tenant,
        release,
        timeout: format!("{} s, {} retries", c.timeout_secs, c.retries),
        window: c
            .window
            .map(|w| format!("{}-{} UTC", hh_mm(w.start_min), hh_mm(w.end_min))),
        c,
        panel,
    }))
}

/// Minutes after midnight as `HH:MM`.
fn hh_mm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

async fn panel(
    _: Session,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let c = st.services.rollout.live_campaign(id).await?;
    Ok(ok(&PanelFragment {
        panel: load_panel(&st, &c, None).await?,
    }))
}

/// Apply an action as the logged-in operator and answer with the refreshed panel, the
/// outcome (or why the action was refused) on top of it.
async fn act(
    Session(op): Session,
    State(st): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
) -> Result<Response, UiError> {
    let action = ACTIONS
        .iter()
        .copied()
        .find(|a| a.name() == action)
        .ok_or_else(|| ApiError::NotFound(format!("no action {action:?}")))?;
    let c = st.services.rollout.live_campaign(id).await?;
    let outcome = st
        .services
        .rollout
        .act(c.tenant_id, id, action, &op.name, "from the dashboard")
        .await;
    let (c, flash) = match outcome {
        Ok(c) => {
            let done = format!(
                "{} by {}: now {}.",
                label(action),
                op.name,
                c.status.as_str()
            );
            (c, (false, done))
        }
        Err(e) => {
            let e = ApiError::from(e);
            if matches!(e, ApiError::Internal(_)) {
                return Err(UiError(e));
            }
            (c, (true, format!("{} refused: {e}", label(action))))
        }
    };
    Ok(ok(&PanelFragment {
        panel: load_panel(&st, &c, Some(flash)).await?,
    }))
}

/// The chart's data: sample times (Unix seconds) with jobs by state and the failure share,
/// this moment appended, and the guard's threshold.
async fn series(
    _: Session,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let c = st.services.rollout.live_campaign(id).await?;
    let mut samples = st.services.rollout.samples(id, CHART_POINTS).await?;
    if let Some(now) = st.services.rollout.progress_of(&[id]).await?.pop() {
        samples.push(crate::rollout::campaigns::Sample {
            at: st.services.clock.now_millis(),
            counts: now.jobs.into_iter().collect(),
            failure_ratio: now.failure_ratio,
        });
    }
    let t: Vec<f64> = samples.iter().map(|s| s.at as f64 / 1000.0).collect();
    let states: Vec<_> = JobState::ALL
        .iter()
        .map(|s| s.as_str())
        .filter(|s| samples.iter().any(|x| x.counts.contains_key(*s)))
        .map(|s| {
            let values: Vec<i64> = samples
                .iter()
                .map(|x| x.counts.get(s).copied().unwrap_or(0))
                .collect();
            json!({ "name": s, "values": values })
        })
        .collect();
    let failure: Vec<f64> = samples.iter().map(|s| s.failure_ratio).collect();
    let threshold = c.max_failure_pct.map(|p| p as f64 / 100.0);
    Ok(Json(json!({
        "t": t,
        "states": states,
        "failure": failure,
        "threshold": threshold,
    }))
    .into_response())
}
