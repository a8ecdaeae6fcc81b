//! Campaigns and their jobs: a release rolled out to a product's devices, with an approval
//! workflow (draft -> pending -> running, approve/reject by a named approver), pause/resume,
//! stop and cancel, an op log of every change, device check-in ("is there an update for me?")
//! that creates the job on first contact, result reports driven through [`JobState`], and the
//! scheduler pass that times out, retries and finishes. Every transition is a conditional
//! UPDATE, so concurrent requests and several scheduler replicas apply each one once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::job::{Event, JobState};
use super::{Rollout, RolloutError};
use crate::catalog::version;
use crate::remembered::Remembered;
use crate::storage::attributes::AttributeTable;

// The service's methods, by concern.
mod checkin;
mod jobs;
mod lifecycle;
mod queries;
mod samples;

pub use samples::Sample;

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Draft,
    Pending,
    Running,
    Paused,
    Stopped,
    Finished,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Pending => "pending",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Stopped => "stopped",
            CampaignStatus::Finished => "finished",
            CampaignStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "draft" => CampaignStatus::Draft,
            "pending" => CampaignStatus::Pending,
            "running" => CampaignStatus::Running,
            "paused" => CampaignStatus::Paused,
            "stopped" => CampaignStatus::Stopped,
            "finished" => CampaignStatus::Finished,
            _ => CampaignStatus::Cancelled,
        }
    }
}

/// What an operator does to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// draft -> pending (asks for approval).
    Submit,
    /// pending -> running, by a named approver.
    Approve,
    /// pending -> draft, by a named approver.
    Reject,
    /// draft | paused -> running without approval (for dialects with no approval step).
    Start,
    /// running -> paused: no new offers, reports still accepted.
    Pause,
    /// paused -> running.
    Resume,
    /// running | paused -> stopped (final; open jobs stay as they are).
    Stop,
    /// any unfinished status -> cancelled (final; open jobs are cancelled).
    Cancel,
    /// running | paused | finished -> draft: back to preparation (e.g. a test campaign
    /// turning formal must be approved again); jobs under way keep going, and failed or
    /// timed-out jobs are queued again, so the devices they stranded get another attempt
    /// once it runs.
    Revise,
}

impl Action {
    /// Whether a campaign in `status` allows this action.
    pub fn allowed_in(self, status: CampaignStatus) -> bool {
        self.rule().0.contains(&status.as_str())
    }

    fn rule(self) -> (&'static [&'static str], CampaignStatus) {
        match self {
            Action::Submit => (&["draft"], CampaignStatus::Pending),
            Action::Approve => (&["pending"], CampaignStatus::Running),
            Action::Reject => (&["pending"], CampaignStatus::Draft),
            Action::Start => (&["draft", "paused"], CampaignStatus::Running),
            Action::Pause => (&["running"], CampaignStatus::Paused),
            Action::Resume => (&["paused"], CampaignStatus::Running),
            Action::Stop => (&["running", "paused"], CampaignStatus::Stopped),
            Action::Cancel => (
                &["draft", "pending", "running", "paused"],
                CampaignStatus::Cancelled,
            ),
            Action::Revise => (&["running", "paused", "finished"], CampaignStatus::Draft),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Start => "start",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Stop => "stop",
            Action::Cancel => "cancel",
            Action::Revise => "revise",
        }
    }
}

/// Which devices a campaign reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
pub enum Scope {
    /// Every device of the product.
    All,
    /// Only these devices (ids).
    Devices(Vec<i64>),
    /// Devices of this group.
    Group(String),
}

/// Device pull (`auto`) or operator-chosen devices (`manual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Auto,
    Manual,
}

/// The release a campaign rolls out, as the catalog knows it.
#[derive(Debug, Clone)]
pub struct Target {
    pub release_id: i64,
    pub product_id: i64,
    pub module: String,
    pub identify: i64,
    pub version: String,
}

/// Staged rollout: start with `initial` devices, admit `step` more every `interval_secs` while
/// the share of failed and timed-out jobs among finished ones stays under `max_failure_pct`;
/// reaching it pauses the campaign (an operator may resume it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waves {
    pub initial: u64,
    pub step: u64,
    pub interval_secs: u64,
    pub max_failure_pct: Option<u8>,
}

/// What an operator asks for.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub description: String,
    pub target: Target,
    /// Only devices currently on this version (any when `None`).
    pub from_version: Option<String>,
    pub scope: Scope,
    pub mode: Mode,
    /// `test` or `formal`.
    pub tag: String,
    /// 0-3 further attempts after a failure or timeout.
    pub retries: u8,
    /// How long a notified device has to report a final result.
    pub timeout_secs: u64,
    /// Staged rollout; `None` admits every device at once.
    pub waves: Option<Waves>,
    /// Offer only inside this daily window (UTC); `None` for any time.
    pub window: Option<MaintenanceWindow>,
}

/// A daily window, in minutes after midnight UTC, in which devices are offered updates. An
/// `end` before `start` spans midnight (22:00-04:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaintenanceWindow {
    pub start_min: u16,
    pub end_min: u16,
}

impl MaintenanceWindow {
    /// Whether `now_millis` (Unix milliseconds) lies inside the window.
    pub fn contains(self, now_millis: i64) -> bool {
        let minute = (now_millis.div_euclid(60_000)).rem_euclid(1_440) as u16;
        if self.start_min <= self.end_min {
            (self.start_min..self.end_min).contains(&minute)
        } else {
            minute >= self.start_min || minute < self.end_min
        }
    }

    fn check(self) -> Result<(), RolloutError> {
        if self.start_min >= 1_440 || self.end_min >= 1_440 || self.start_min == self.end_min {
            return Err(RolloutError::Invalid(
                "a maintenance window needs two different minutes of the day (0-1439)".into(),
            ));
        }
        Ok(())
    }
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Campaign {
    pub id: i64,
    pub tenant_id: i64,
    pub product_id: i64,
    pub release_id: i64,
    pub name: String,
    pub description: String,
    pub module: String,
    pub identify: i64,
    pub target_version: String,
    pub from_version: Option<String>,
    pub scope: String,
    pub scope_group: Option<String>,
    pub mode: String,
    pub tag: String,
    pub status: CampaignStatus,
    pub approver: Option<String>,
    pub retries: i64,
    pub timeout_secs: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Devices admitted so far (`None`: no waves, everyone).
    pub wave_cap: Option<i64>,
    pub wave_step: Option<i64>,
    pub wave_interval_secs: Option<i64>,
    pub next_wave_at: Option<i64>,
    pub max_failure_pct: Option<i64>,
    /// Daily offer window (UTC), if any.
    pub window: Option<MaintenanceWindow>,
}

impl Campaign {
    /// Refuse changes to a campaign that is stopped, finished or cancelled.
    fn check_unfinished(&self) -> Result<(), RolloutError> {
        if matches!(
            self.status,
            CampaignStatus::Stopped | CampaignStatus::Finished | CampaignStatus::Cancelled
        ) {
            return Err(RolloutError::Conflict(format!(
                "campaign {} is {}",
                self.id,
                self.status.as_str()
            )));
        }
        Ok(())
    }

    /// Adding devices or retrying jobs gives a finished campaign more work: it runs again,
    /// when `may_reopen` (its release is still offered; the caller asks the catalog).
    /// Stopped and cancelled campaigns stay as they are.
    fn check_reopenable(&self, may_reopen: bool) -> Result<(), RolloutError> {
        if self.status == CampaignStatus::Finished {
            if may_reopen {
                return Ok(());
            }
            return Err(RolloutError::Conflict(format!(
                "campaign {} is finished and its release is no longer offered",
                self.id
            )));
        }
        self.check_unfinished()
    }
}

/// Set a finished campaign running again (inside the caller's transaction); a no-op for a
/// campaign in any other status.
async fn reopen(tx: &mut Tx<'_>, campaign: i64, now: i64, actor: &str) -> Result<(), sqlx::Error> {
    let reopened = sqlx::query(
        "UPDATE campaigns SET status = 'running', updated_at = $1 \
         WHERE id = $2 AND status = 'finished' AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(campaign)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if reopened == 1 {
        log(
            tx,
            campaign,
            now,
            actor,
            "reopen",
            "new work for a finished campaign",
        )
        .await?;
    }
    Ok(())
}

/// One device in one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: i64,
    pub campaign_id: i64,
    pub device_id: i64,
    pub state: JobState,
    pub previous_state: JobState,
    pub retry_count: i64,
    pub result_code: Option<i64>,
    pub result_text: String,
    pub version_before: Option<String>,
    pub version_after: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deadline_at: Option<i64>,
}

/// Changes to an unfinished campaign: `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub retries: Option<u8>,
    pub timeout_secs: Option<u64>,
    pub tag: Option<String>,
    /// Replaces the scope; a device list replaces the listed devices as a whole.
    pub scope: Option<Scope>,
    /// Sets (never clears) the maintenance window.
    pub window: Option<MaintenanceWindow>,
}

/// Which campaigns to list: every given field must match.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CampaignFilter {
    pub product_id: Option<i64>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    pub module: Option<String>,
    pub identify: Option<i64>,
    pub tag: Option<String>,
    pub status: Option<CampaignStatus>,
}

/// Which jobs of a campaign to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub device_id: Option<i64>,
}

/// An entry of a campaign's op log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// What a checking-in device should install.
#[derive(Debug, Clone)]
pub struct Offer {
    pub campaign: Campaign,
    pub job: Job,
}

/// The device facts check-in needs (from the catalog).
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    pub id: i64,
    pub product_id: i64,
    pub group: Option<String>,
}

/// Per-campaign counts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub by_state: HashMap<String, i64>,
    /// Current version of the campaign's devices (after, when known, else before).
    pub versions: HashMap<String, i64>,
    pub total: i64,
}

/// Where a running or paused campaign stands (see [`Rollout::progress`]).
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub id: i64,
    pub tenant_id: i64,
    pub name: String,
    pub status: CampaignStatus,
    /// Jobs by state (the states it has).
    pub jobs: Vec<(String, i64)>,
    /// Failed and timed-out jobs over finished ones since the guard was last reset.
    pub failure_ratio: f64,
    /// The share at which the campaign pauses itself, if it has a failure guard.
    pub failure_threshold: Option<f64>,
}

/// What the scheduler pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobTick {
    pub timed_out: u64,
    pub retried: u64,
    pub finished_campaigns: u64,
    /// Campaigns paused by their failure guard.
    pub paused: u64,
    /// Campaigns that admitted their next wave.
    pub widened: u64,
}

/// Active campaigns per product and campaign attributes, kept so check-ins (the hot path) do
/// not query them on every poll. Local changes drop the entry at once; other replicas'
/// changes arrive through the change feed (`feed.rs`), or within its short lifetime where
/// there is none.
#[derive(Default)]
pub struct ActiveCache(pub(super) Mutex<ActiveEntries>);

/// The cached lists (see [`Remembered`] for how a change committed during a read is kept
/// from hiding behind a fresh-looking stale entry).
#[derive(Default)]
pub struct ActiveEntries {
    pub(super) lists: Remembered<i64, Arc<Vec<Campaign>>>,
    /// Campaign attributes by campaign id, with the campaign's product: a dialect reads them
    /// on every check (XLINK's from-version file), and they change with the campaign, so
    /// they are dropped with its product's list.
    pub(super) attributes: Remembered<i64, (i64, Attributes)>,
}

/// A campaign's attributes as (name, value), sorted by name.
pub(super) type Attributes = Arc<Vec<(String, String)>>;

const CAMPAIGN_COLUMNS: &str = "id, tenant_id, product_id, release_id, name, module, identify, \
    target_version, from_version, scope, scope_group, mode, tag, status, approver, retries, \
    timeout_secs, created_by, created_at, updated_at, wave_cap, wave_step, wave_interval_secs, \
    next_wave_at, max_failure_pct, description, window_start, window_end FROM campaigns";

const JOB_COLUMNS: &str = "id, campaign_id, device_id, state, previous_state, retry_count, \
    result_code, result_text, version_before, version_after, created_at, updated_at, deadline_at \
    FROM jobs";

/// Campaign attributes (dialect-kept facts such as XLINK's from-version file).
const CAMPAIGN_ATTRIBUTES: AttributeTable = AttributeTable {
    table: "campaign_attributes",
    owner: "campaign_id",
};

const OPEN_JOB: &str = "('queued', 'notified', 'downloading', 'installing')";

/// What an actor does to chosen jobs of a campaign.
enum JobsChange {
    Cancel,
    /// Retry; a finished campaign may run again when `may_reopen`.
    Retry {
        may_reopen: bool,
    },
}

fn campaign_from(r: &sqlx::any::AnyRow) -> Campaign {
    Campaign {
        id: r.get(0),
        tenant_id: r.get(1),
        product_id: r.get(2),
        release_id: r.get(3),
        name: r.get(4),
        module: r.get(5),
        identify: r.get(6),
        target_version: r.get(7),
        from_version: r.get(8),
        scope: r.get(9),
        scope_group: r.get(10),
        mode: r.get(11),
        tag: r.get(12),
        status: CampaignStatus::parse(&r.get::<String, _>(13)),
        approver: r.get(14),
        retries: r.get(15),
        timeout_secs: r.get(16),
        created_by: r.get(17),
        created_at: r.get(18),
        updated_at: r.get(19),
        wave_cap: r.get(20),
        wave_step: r.get(21),
        wave_interval_secs: r.get(22),
        next_wave_at: r.get(23),
        max_failure_pct: r.get(24),
        description: r.get(25),
        window: match (r.get::<Option<i64>, _>(26), r.get::<Option<i64>, _>(27)) {
            (Some(start), Some(end)) => Some(MaintenanceWindow {
                start_min: start.clamp(0, 1_439) as u16,
                end_min: end.clamp(0, 1_439) as u16,
            }),
            _ => None,
        },
    }
}

pub(crate) fn job_from(r: &sqlx::any::AnyRow) -> Job {
    let state = |i| JobState::parse(&r.get::<String, _>(i)).unwrap_or(JobState::Failed);
    Job {
        id: r.get(0),
        campaign_id: r.get(1),
        device_id: r.get(2),
        state: state(3),
        previous_state: state(4),
        retry_count: r.get(5),
        result_code: r.get(6),
        result_text: r.get(7),
        version_before: r.get(8),
        version_after: r.get(9),
        created_at: r.get(10),
        updated_at: r.get(11),
        deadline_at: r.get(12),
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

async fn log(
    tx: &mut Tx<'_>,
    campaign: i64,
    at: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO campaign_log (campaign_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(campaign)
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What listing a device did.
#[derive(Debug, Default, Clone, Copy)]
struct Listed {
    /// Newly listed, or its cancelled job revived.
    added: u64,
    /// The device has work left in the campaign (an open job, or none yet).
    open_work: bool,
}

/// Put a device on a campaign's list; in manual mode the operator's choice also queues its
/// job at once. With `revive` (an operator adding devices), a cancelled job of the device
/// is queued again; edits of a campaign's scope never revive.
async fn list_device(
    tx: &mut Tx<'_>,
    campaign: i64,
    device: i64,
    manual: bool,
    revive: bool,
    now: i64,
) -> Result<Listed, sqlx::Error> {
    let newly = sqlx::query(
        "INSERT INTO campaign_devices (campaign_id, device_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(campaign)
    .bind(device)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    // Listed again after being taken off (or, with `revive`, added again after a cancel):
    // the withdrawn job becomes live again.
    let revived = if newly == 1 || revive {
        sqlx::query(
            "UPDATE jobs SET previous_state = state, state = 'queued', deadline_at = NULL, \
               result_code = NULL, result_text = '', updated_at = $1 \
             WHERE campaign_id = $2 AND device_id = $3 AND state = 'cancelled'",
        )
        .bind(now)
        .bind(campaign)
        .bind(device)
        .execute(&mut **tx)
        .await?
        .rows_affected()
    } else {
        0
    };
    if manual {
        sqlx::query(
            "INSERT INTO jobs (campaign_id, device_id, state, previous_state, retry_count, result_text, created_at, updated_at) \
             VALUES ($1, $2, 'queued', 'queued', 0, '', $3, $3) ON CONFLICT (campaign_id, device_id) DO NOTHING",
        )
        .bind(campaign)
        .bind(device)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM jobs WHERE campaign_id = $1 AND device_id = $2")
            .bind(campaign)
            .bind(device)
            .fetch_optional(&mut **tx)
            .await?;
    let open_work = state
        .as_deref()
        .and_then(JobState::parse)
        .is_none_or(|s| !s.is_final());
    Ok(Listed {
        added: newly.max(revived),
        open_work,
    })
}

fn check_name(name: &str) -> Result<(), RolloutError> {
    if name.trim().is_empty() || name.len() > 128 {
        return Err(RolloutError::Invalid(
            "name must be 1-128 characters".into(),
        ));
    }
    Ok(())
}

fn check_retries_timeout(retries: u8, timeout_secs: u64) -> Result<(), RolloutError> {
    if retries > 3 {
        return Err(RolloutError::Invalid("retries must be 0-3".into()));
    }
    if timeout_secs == 0 || timeout_secs > 30 * 86_400 {
        return Err(RolloutError::Invalid(
            "timeout must be 1 s to 30 days".into(),
        ));
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), RolloutError> {
    if !matches!(tag, "test" | "formal") {
        return Err(RolloutError::Invalid("tag must be test or formal".into()));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), RolloutError> {
    if d.len() > 1024 {
        return Err(RolloutError::Invalid(
            "description must be at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// A scope as stored: its kind, its group and its device list.
fn scope_parts(scope: &Scope) -> Result<(&'static str, Option<String>, Vec<i64>), RolloutError> {
    Ok(match scope {
        Scope::All => ("all", None, Vec::new()),
        Scope::Group(g) if !g.trim().is_empty() => ("group", Some(g.clone()), Vec::new()),
        Scope::Group(_) => return Err(RolloutError::Invalid("group must not be empty".into())),
        Scope::Devices(d) => ("devices", None, d.clone()),
    })
}

/// Take devices off a campaign's list and cancel their open jobs. Returns how many were
/// listed.
async fn unlist(
    tx: &mut Tx<'_>,
    campaign: i64,
    devices: &[i64],
    now: i64,
) -> Result<u64, sqlx::Error> {
    let mut removed = 0;
    for d in devices {
        removed +=
            sqlx::query("DELETE FROM campaign_devices WHERE campaign_id = $1 AND device_id = $2")
                .bind(campaign)
                .bind(d)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        sqlx::query(&format!(
            "UPDATE jobs SET previous_state = state, state = 'cancelled', updated_at = $1 \
             WHERE campaign_id = $2 AND device_id = $3 AND state IN {OPEN_JOB}"
        ))
        .bind(now)
        .bind(campaign)
        .bind(d)
        .execute(&mut **tx)
        .await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::MaintenanceWindow;

    fn at(h: i64, m: i64) -> i64 {
        // 2023-11-15, h:m UTC.
        const MIDNIGHT: i64 = 1_700_006_400_000;
        MIDNIGHT + (h * 60 + m) * 60_000
    }

    #[test]
    fn a_window_within_a_day() {
        let w = MaintenanceWindow {
            start_min: 60,
            end_min: 120,
        };
        assert!(!w.contains(at(0, 59)));
        assert!(w.contains(at(1, 0)));
        assert!(w.contains(at(1, 59)));
        assert!(!w.contains(at(2, 0)), "the end is exclusive");
    }

    #[test]
    fn a_window_across_midnight() {
        let w = MaintenanceWindow {
            start_min: 22 * 60,
            end_min: 4 * 60,
        };
        assert!(w.contains(at(23, 30)));
        assert!(w.contains(at(0, 0)));
        assert!(w.contains(at(3, 59)));
        assert!(!w.contains(at(4, 0)));
        assert!(!w.contains(at(12, 0)));
        assert!(
            MaintenanceWindow {
                start_min: 5,
                end_min: 5
            }
            .check()
            .is_err()
        );
        assert!(
            MaintenanceWindow {
                start_min: 0,
                end_min: 1_440
            }
            .check()
            .is_err()
        );
    }
}
