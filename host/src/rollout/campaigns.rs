//! Campaigns and their jobs: a release rolled out to a product's devices, with an approval
//! workflow (draft -> pending -> running, approve/reject by a named approver), pause/resume,
//! stop and cancel, an op log of every change, device check-in ("is there an update for me?")
//! that creates the job on first contact, result reports driven through [`JobState`], and the
//! scheduler pass that times out, retries and finishes. Every transition is a conditional
//! UPDATE, so concurrent requests and several scheduler replicas apply each one once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::job::{Event, JobState};
use super::{Rollout, RolloutError};
use crate::catalog::version;
use crate::storage::attributes::AttributeTable;

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

    fn name(self) -> &'static str {
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

/// Active campaigns per product, kept so check-ins (the hot path) do not query campaigns on
/// every poll. Local changes drop the entry at once; other replicas' changes arrive through
/// the change feed (`feed.rs`), or within its short lifetime where there is none.
#[derive(Default)]
pub struct ActiveCache(pub(super) Mutex<ActiveEntries>);

/// The cached lists, and a generation bumped by every invalidation: a list read from the
/// database is stored only if no invalidation happened while it was being read, so a change
/// committed during the read cannot be hidden behind a fresh-looking stale entry.
#[derive(Default)]
pub struct ActiveEntries {
    pub(super) lists: HashMap<i64, Cached>,
    pub(super) generation: u64,
}

/// When a product's active campaigns were read, and what they were.
type Cached = (Instant, Arc<Vec<Campaign>>);

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

impl Rollout {
    /// Create a campaign in `draft`.
    pub async fn create_campaign(
        &self,
        tenant_id: i64,
        n: NewCampaign,
        actor: &str,
    ) -> Result<Campaign, RolloutError> {
        check_name(&n.name)?;
        check_description(&n.description)?;
        check_retries_timeout(n.retries, n.timeout_secs)?;
        if let Some(w) = &n.waves
            && (!(1..=10_000_000).contains(&w.initial)
                || w.step > 10_000_000
                || !(1..=366 * 86_400).contains(&w.interval_secs)
                || w.max_failure_pct.is_some_and(|p| p == 0 || p > 100))
        {
            // Bounded so that wave arithmetic in SQL can never overflow a BIGINT.
            return Err(RolloutError::Invalid(
                "waves need initial 1-10000000, step up to 10000000, interval_secs 1 s to a year \
                 and max_failure_pct 1-100"
                    .into(),
            ));
        }
        check_tag(&n.tag)?;
        if let Some(w) = n.window {
            w.check()?;
        }
        if let Some(from) = &n.from_version
            && version::compare(from, &n.target.version) != std::cmp::Ordering::Less
        {
            return Err(RolloutError::Invalid(
                "from_version must be older than the release".into(),
            ));
        }
        let (scope, group, devices) = scope_parts(&n.scope)?;
        let now = self.clock.now_millis();
        let mut tx = self.db.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (tenant_id, product_id, release_id, name, module, identify, target_version, \
               from_version, scope, scope_group, mode, tag, status, retries, timeout_secs, created_by, created_at, updated_at, \
               wave_cap, wave_step, wave_interval_secs, max_failure_pct, description, window_start, window_end) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'draft', $13, $14, $15, $16, $16, $17, $18, $19, $20, $21, $22, $23) RETURNING id",
        )
        .bind(tenant_id)
        .bind(n.target.product_id)
        .bind(n.target.release_id)
        .bind(n.name.trim())
        .bind(&n.target.module)
        .bind(n.target.identify)
        .bind(&n.target.version)
        .bind(n.from_version.as_deref())
        .bind(scope)
        .bind(group)
        .bind(if n.mode == Mode::Auto { "auto" } else { "manual" })
        .bind(&n.tag)
        .bind(n.retries as i64)
        .bind(n.timeout_secs as i64)
        .bind(actor)
        .bind(now)
        .bind(n.waves.map(|w| w.initial as i64))
        .bind(n.waves.map(|w| w.step as i64))
        .bind(n.waves.map(|w| w.interval_secs as i64))
        .bind(n.waves.and_then(|w| w.max_failure_pct.map(i64::from)))
        .bind(&n.description)
        .bind(n.window.map(|w| w.start_min as i64))
        .bind(n.window.map(|w| w.end_min as i64))
        .fetch_one(&mut *tx)
        .await?;
        for d in &devices {
            list_device(&mut tx, id, *d, n.mode == Mode::Manual, false, now).await?;
        }
        log(
            &mut tx,
            id,
            now,
            actor,
            "create",
            &format!(
                "release {} ({} devices listed)",
                n.target.release_id,
                devices.len()
            ),
        )
        .await?;
        tx.commit().await?;
        self.campaign(tenant_id, id).await
    }

    /// A campaign of the tenant.
    pub async fn campaign(&self, tenant_id: i64, id: i64) -> Result<Campaign, RolloutError> {
        let row = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| RolloutError::NotFound(format!("unknown campaign {id}")))?;
        Ok(campaign_from(&row))
    }

    /// A campaign by id alone (for flows that start from a job).
    pub async fn campaign_by_id(&self, id: i64) -> Result<Campaign, RolloutError> {
        let row = sqlx::query(&format!("SELECT {CAMPAIGN_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("unknown campaign {id}")))?;
        Ok(campaign_from(&row))
    }

    /// The tenant's live campaigns, newest first, filtered.
    pub async fn list_campaigns(
        &self,
        tenant_id: i64,
        f: &CampaignFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Campaign>, i64), RolloutError> {
        enum Bind {
            I(i64),
            S(String),
        }
        let mut cond = String::from("tenant_id = $1 AND deleted_at IS NULL");
        let mut binds: Vec<Bind> = Vec::new();
        let mut add = |sql: &str, b: Bind| {
            binds.push(b);
            cond.push_str(&sql.replace('?', &format!("${}", binds.len() + 1)));
        };
        if let Some(p) = f.product_id {
            add(" AND product_id = ?", Bind::I(p));
        }
        if let Some(n) = &f.name_contains {
            add(
                " AND LOWER(name) LIKE ? ESCAPE '\\'",
                Bind::S(super::search::like_pattern(n)),
            );
        }
        if let Some(m) = &f.module {
            add(" AND module = ?", Bind::S(m.clone()));
        }
        if let Some(i) = f.identify {
            add(" AND identify = ?", Bind::I(i));
        }
        if let Some(t) = &f.tag {
            add(" AND tag = ?", Bind::S(t.clone()));
        }
        if let Some(s) = f.status {
            add(" AND status = ?", Bind::S(s.as_str().to_string()));
        }
        let count_sql = format!("SELECT COUNT(*) FROM campaigns WHERE {cond}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(tenant_id);
        for b in &binds {
            count = match b {
                Bind::I(i) => count.bind(*i),
                Bind::S(s) => count.bind(s.clone()),
            };
        }
        let total = count.fetch_one(self.db.pool()).await?;
        let n = binds.len();
        let list_sql = format!(
            "SELECT {CAMPAIGN_COLUMNS} WHERE {cond} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            n + 2,
            n + 3
        );
        let mut q = sqlx::query(&list_sql).bind(tenant_id);
        for b in &binds {
            q = match b {
                Bind::I(i) => q.bind(*i),
                Bind::S(s) => q.bind(s.clone()),
            };
        }
        let rows = q.bind(limit).bind(offset).fetch_all(self.db.pool()).await?;
        Ok((rows.iter().map(campaign_from).collect(), total))
    }

    /// The serial numbers of a campaign's listed devices, in listing order.
    pub async fn listed_devices(&self, id: i64) -> Result<Vec<String>, RolloutError> {
        Ok(sqlx::query_scalar(
            "SELECT d.sn FROM campaign_devices cd JOIN devices d ON d.id = cd.device_id \
             WHERE cd.campaign_id = $1 ORDER BY d.id",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Change an unfinished campaign; every change is logged.
    pub async fn update_campaign(
        &self,
        tenant_id: i64,
        id: i64,
        patch: CampaignPatch,
        actor: &str,
    ) -> Result<Campaign, RolloutError> {
        let c = self.campaign(tenant_id, id).await?;
        c.check_unfinished()?;
        let name = patch.name.unwrap_or(c.name.clone());
        let description = patch.description.unwrap_or(c.description.clone());
        let retries = patch.retries.unwrap_or(c.retries as u8);
        let timeout = patch.timeout_secs.unwrap_or(c.timeout_secs as u64);
        let tag = patch.tag.unwrap_or(c.tag.clone());
        check_name(&name)?;
        check_description(&description)?;
        check_retries_timeout(retries, timeout)?;
        check_tag(&tag)?;
        let window = patch.window.or(c.window);
        if let Some(w) = window {
            w.check()?;
        }
        let scope = patch.scope.as_ref().map(scope_parts).transpose()?;
        let now = self.clock.now_millis().max(c.updated_at + 1);
        let mut tx = self.db.pool().begin().await?;
        let (scope_kind, group) = match &scope {
            Some((k, g, _)) => (k.to_string(), g.clone()),
            None => (c.scope.clone(), c.scope_group.clone()),
        };
        // Jobs before the campaign row, the lock order of the scheduler and of cancelling, so
        // the two never deadlock on PostgreSQL.
        if let Some((kind, _, devices)) = &scope {
            if *kind == "devices" {
                let keep: std::collections::HashSet<i64> = devices.iter().copied().collect();
                let listed: Vec<i64> = sqlx::query_scalar(
                    "SELECT device_id FROM campaign_devices WHERE campaign_id = $1",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                let gone: Vec<i64> = listed.into_iter().filter(|d| !keep.contains(d)).collect();
                unlist(&mut tx, id, &gone, now).await?;
                for d in devices {
                    list_device(&mut tx, id, *d, c.mode == "manual", false, now).await?;
                }
                // Devices admitted under the old scope that the new list leaves out.
                sqlx::query(&format!(
                    "UPDATE jobs SET previous_state = state, state = 'cancelled', updated_at = $1 \
                     WHERE campaign_id = $2 AND state IN {OPEN_JOB} AND device_id NOT IN \
                       (SELECT device_id FROM campaign_devices WHERE campaign_id = $2)"
                ))
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            } else {
                // Widening to a group or everyone: the list no longer matters; jobs stay.
                sqlx::query("DELETE FROM campaign_devices WHERE campaign_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Guarded by updated_at: a concurrent change (an action, another edit) wins and this
        // one is refused rather than silently merged (the transaction rolls back).
        let changed = sqlx::query(
            "UPDATE campaigns SET name = $1, description = $2, retries = $3, timeout_secs = $4, tag = $5, \
               scope = $6, scope_group = $7, updated_at = $8, window_start = $11, window_end = $12 \
             WHERE id = $9 AND updated_at = $10 AND status NOT IN ('stopped', 'finished', 'cancelled')",
        )
        .bind(name.trim())
        .bind(&description)
        .bind(retries as i64)
        .bind(timeout as i64)
        .bind(&tag)
        .bind(&scope_kind)
        .bind(group)
        .bind(now)
        .bind(id)
        .bind(c.updated_at)
        .bind(window.map(|w| w.start_min as i64))
        .bind(window.map(|w| w.end_min as i64))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(RolloutError::Conflict(format!(
                "campaign {id} changed concurrently; try again"
            )));
        }
        log(
            &mut tx,
            id,
            now,
            actor,
            "update",
            &format!(
                "name {:?}, tag {tag}, retries {retries}, timeout {timeout} s, scope {scope_kind}",
                name.trim()
            ),
        )
        .await?;
        tx.commit().await?;
        self.changed(Some(c.product_id)).await;
        self.campaign(tenant_id, id).await
    }

    /// Delete a campaign: an unfinished one is cancelled first, then it leaves every
    /// listing; its jobs and log stay for the record.
    pub async fn delete_campaign(
        &self,
        tenant_id: i64,
        id: i64,
        actor: &str,
    ) -> Result<(), RolloutError> {
        let c = self.campaign(tenant_id, id).await?;
        match self
            .act(tenant_id, id, Action::Cancel, actor, "deleted")
            .await
        {
            Ok(_) | Err(RolloutError::Conflict(_)) => {} // already final
            Err(e) => return Err(e),
        }
        let now = self.clock.now_millis();
        let mut tx = self.db.pool().begin().await?;
        let changed = sqlx::query(
            "UPDATE campaigns SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL \
             AND status IN ('stopped', 'finished', 'cancelled')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(RolloutError::Conflict(format!(
                "campaign {id} changed concurrently; try again"
            )));
        }
        log(&mut tx, id, now, actor, "delete", "").await?;
        tx.commit().await?;
        self.changed(Some(c.product_id)).await;
        Ok(())
    }

    /// Take devices off a campaign's list; their open jobs are cancelled. Returns how many
    /// were listed.
    pub async fn remove_devices(
        &self,
        tenant_id: i64,
        id: i64,
        devices: &[i64],
        actor: &str,
    ) -> Result<u64, RolloutError> {
        let c = self.campaign(tenant_id, id).await?;
        c.check_unfinished()?;
        let now = self.clock.now_millis();
        let mut tx = self.db.pool().begin().await?;
        let removed = unlist(&mut tx, id, devices, now).await?;
        log(
            &mut tx,
            id,
            now,
            actor,
            "remove-devices",
            &format!("{removed} devices removed"),
        )
        .await?;
        tx.commit().await?;
        self.changed(Some(c.product_id)).await;
        Ok(removed)
    }

    /// Withdraw some of a campaign's open jobs (their devices stay listed); answers how many
    /// were cancelled. Jobs of other campaigns and final jobs are left alone.
    pub async fn cancel_jobs(
        &self,
        tenant_id: i64,
        id: i64,
        jobs: &[i64],
        actor: &str,
    ) -> Result<u64, RolloutError> {
        self.change_jobs(tenant_id, id, jobs, actor, JobsChange::Cancel)
            .await
    }

    /// Try failed or timed-out jobs of a campaign again now (queued), whatever retries the
    /// campaign allows; answers how many were re-queued.
    pub async fn retry_jobs(
        &self,
        tenant_id: i64,
        id: i64,
        jobs: &[i64],
        actor: &str,
        may_reopen: bool,
    ) -> Result<u64, RolloutError> {
        self.change_jobs(tenant_id, id, jobs, actor, JobsChange::Retry { may_reopen })
            .await
    }

    async fn change_jobs(
        &self,
        tenant_id: i64,
        id: i64,
        jobs: &[i64],
        actor: &str,
        change: JobsChange,
    ) -> Result<u64, RolloutError> {
        let c = self.campaign(tenant_id, id).await?;
        let reopening = match change {
            JobsChange::Retry { may_reopen } => {
                c.check_reopenable(may_reopen)?;
                may_reopen
            }
            JobsChange::Cancel => {
                c.check_unfinished()?;
                false
            }
        };
        let now = self.clock.now_millis();
        let (set, from, what) = match change {
            JobsChange::Cancel => (
                "state = 'cancelled', result_text = 'cancelled by an operator'",
                OPEN_JOB,
                "cancel-jobs",
            ),
            JobsChange::Retry { .. } => (
                "state = 'queued', retry_count = retry_count + 1, deadline_at = NULL, \
                 result_code = NULL, result_text = ''",
                "('failed', 'timed-out')",
                "retry-jobs",
            ),
        };
        let mut tx = self.db.pool().begin().await?;
        let mut changed = 0;
        for job in jobs {
            changed += sqlx::query(&format!(
                "UPDATE jobs SET previous_state = state, {set}, updated_at = $1 \
                 WHERE id = $2 AND campaign_id = $3 AND kind = 'campaign' AND state IN {from}"
            ))
            .bind(now)
            .bind(job)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if reopening && changed > 0 {
            reopen(&mut tx, id, now, actor).await?;
        }
        log(
            &mut tx,
            id,
            now,
            actor,
            what,
            &format!("{changed} of {} jobs", jobs.len()),
        )
        .await?;
        tx.commit().await?;
        self.changed(Some(c.product_id)).await;
        Ok(changed)
    }

    /// The unfinished campaigns rolling out a release.
    pub async fn unfinished_for_release(
        &self,
        release_id: i64,
    ) -> Result<Vec<Campaign>, RolloutError> {
        let rows = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} WHERE release_id = $1 \
             AND status IN ('draft', 'pending', 'running', 'paused') ORDER BY id"
        ))
        .bind(release_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(campaign_from).collect())
    }

    /// A release's version changed: unfinished campaigns of it now target the new version.
    pub async fn retarget_release(
        &self,
        release_id: i64,
        version: &str,
    ) -> Result<u64, RolloutError> {
        let rows = sqlx::query(
            "UPDATE campaigns SET target_version = $1, updated_at = $2 \
             WHERE release_id = $3 AND status IN ('draft', 'pending', 'running', 'paused') RETURNING product_id",
        )
        .bind(version)
        .bind(self.clock.now_millis())
        .bind(release_id)
        .fetch_all(self.db.pool())
        .await?;
        for r in &rows {
            self.changed(Some(r.get(0))).await;
        }
        Ok(rows.len() as u64)
    }

    /// Apply an operator action; an action the current status does not allow is a conflict.
    pub async fn act(
        &self,
        tenant_id: i64,
        id: i64,
        action: Action,
        actor: &str,
        note: &str,
    ) -> Result<Campaign, RolloutError> {
        self.act_as(tenant_id, id, action, actor, note, None).await
    }

    /// Submit a campaign for approval by `approver` (only they may then approve or reject
    /// it), or by anyone when none is named.
    pub async fn submit(
        &self,
        tenant_id: i64,
        id: i64,
        actor: &str,
        approver: Option<&str>,
    ) -> Result<Campaign, RolloutError> {
        let approver = approver.map(str::trim).filter(|a| !a.is_empty());
        let note = approver
            .map(|a| format!("approver {a}"))
            .unwrap_or_default();
        self.act_as(tenant_id, id, Action::Submit, actor, &note, approver)
            .await
    }

    async fn act_as(
        &self,
        tenant_id: i64,
        id: i64,
        action: Action,
        actor: &str,
        note: &str,
        named_approver: Option<&str>,
    ) -> Result<Campaign, RolloutError> {
        let current = self.campaign(tenant_id, id).await?;
        let (from, to) = action.rule();
        if matches!(action, Action::Approve | Action::Reject) && actor.trim().is_empty() {
            return Err(RolloutError::Invalid(
                "approval needs a named approver".into(),
            ));
        }
        if matches!(action, Action::Approve | Action::Reject)
            && current.status == CampaignStatus::Pending
            && let Some(named) = &current.approver
            && named != actor
        {
            return Err(RolloutError::Forbidden(format!(
                "campaign {id} waits for approval by {named}, not {actor}"
            )));
        }
        let now = self.clock.now_millis();
        let allowed = from
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut tx = self.db.pool().begin().await?;
        // Submitting names the approver (or nobody); approving or rejecting records who did.
        let approver = match action {
            Action::Submit => named_approver,
            Action::Approve | Action::Reject => Some(actor),
            _ => None,
        };
        if action == Action::Revise {
            // Jobs before the campaign row, as for cancel. The count restarts: a revised
            // campaign is a new attempt, and its retries apply afresh.
            sqlx::query(&format!(
                "UPDATE jobs SET previous_state = state, state = 'queued', retry_count = 0, \
                   deadline_at = NULL, result_code = NULL, result_text = '', updated_at = $1 \
                 WHERE campaign_id = $2 AND kind = 'campaign' AND state IN ('failed', 'timed-out') \
                   AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $2 AND c.status IN ({allowed}))"
            ))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if action == Action::Cancel {
            // Jobs before the campaign row, the same lock order as the scheduler's pass, so
            // the two never deadlock on PostgreSQL.
            sqlx::query(&format!(
                "UPDATE jobs SET previous_state = state, state = 'cancelled', updated_at = $1 \
                 WHERE campaign_id = $2 AND state IN {OPEN_JOB} \
                   AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $2 AND c.status IN ({allowed}))"
            ))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        // Approval starts the wave clock; resuming restarts the failure guard's count.
        let changed = sqlx::query(&format!(
            "UPDATE campaigns SET status = $1, updated_at = $2, \
               approver = CASE WHEN $5 = 'submit' THEN $3 ELSE COALESCE($3, approver) END, \
               next_wave_at = CASE WHEN $1 = 'running' AND next_wave_at IS NULL \
                 THEN $2 + wave_interval_secs * 1000 ELSE next_wave_at END, \
               guard_since = CASE WHEN $5 IN ('resume', 'start') THEN $2 ELSE guard_since END \
             WHERE id = $4 AND status IN ({allowed}) \
               AND ($5 NOT IN ('approve', 'reject') OR approver IS NULL OR approver = $3)"
        ))
        .bind(to.as_str())
        .bind(now)
        .bind(approver)
        .bind(id)
        .bind(action.name())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(RolloutError::Conflict(format!(
                "cannot {} a {} campaign",
                action.name(),
                current.status.as_str()
            )));
        }
        log(&mut tx, id, now, actor, action.name(), note).await?;
        tx.commit().await?;
        self.changed(Some(current.product_id)).await;
        self.campaign(tenant_id, id).await
    }

    /// Cancel every unfinished campaign of a release (it was invalidated or deleted: it must
    /// not reach another device). Returns the cancelled campaigns' ids.
    pub async fn cancel_for_release(
        &self,
        tenant_id: i64,
        release_id: i64,
        actor: &str,
        why: &str,
    ) -> Result<Vec<i64>, RolloutError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM campaigns WHERE tenant_id = $1 AND release_id = $2 \
             AND status IN ('draft', 'pending', 'running', 'paused') ORDER BY id",
        )
        .bind(tenant_id)
        .bind(release_id)
        .fetch_all(self.db.pool())
        .await?;
        let mut cancelled = Vec::with_capacity(ids.len());
        for id in ids {
            match self.act(tenant_id, id, Action::Cancel, actor, why).await {
                Ok(_) => cancelled.push(id),
                // Finished or stopped meanwhile: nothing left to withdraw.
                Err(RolloutError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cancelled)
    }

    /// Add devices to a campaign (manual mode: they get a queued job at once).
    pub async fn add_devices(
        &self,
        tenant_id: i64,
        id: i64,
        devices: &[i64],
        actor: &str,
        may_reopen: bool,
    ) -> Result<u64, RolloutError> {
        let c = self.campaign(tenant_id, id).await?;
        c.check_reopenable(may_reopen)?;
        let now = self.clock.now_millis();
        let mut tx = self.db.pool().begin().await?;
        let mut added = 0;
        let mut open_work = false;
        for d in devices {
            let listed = list_device(&mut tx, id, *d, c.mode == "manual", true, now).await?;
            added += listed.added;
            open_work |= listed.added > 0 && listed.open_work;
        }
        // Re-checked in the transaction: the scheduler may have finished it meanwhile.
        let reopening = open_work && may_reopen;
        if reopening {
            reopen(&mut tx, id, now, actor).await?;
        }
        log(
            &mut tx,
            id,
            now,
            actor,
            "add-devices",
            &format!("{added} devices added"),
        )
        .await?;
        tx.commit().await?;
        if reopening {
            self.changed(Some(c.product_id)).await;
        }
        Ok(added)
    }

    async fn active_campaigns(&self, product_id: i64) -> Result<Arc<Vec<Campaign>>, RolloutError> {
        let generation = match self.active.0.lock() {
            Ok(m) => {
                if let Some((at, list)) = m.lists.get(&product_id)
                    && at.elapsed() < self.following.ttl()
                {
                    return Ok(list.clone());
                }
                m.generation
            }
            Err(_) => u64::MAX,
        };
        let rows = sqlx::query(&format!("SELECT {CAMPAIGN_COLUMNS} WHERE product_id = $1 AND status = 'running' AND deleted_at IS NULL ORDER BY id DESC"))
            .bind(product_id)
            .fetch_all(self.db.pool())
            .await?;
        let list = Arc::new(rows.iter().map(campaign_from).collect::<Vec<_>>());
        if let Ok(mut m) = self.active.0.lock()
            && m.generation == generation
        {
            m.lists.insert(product_id, (Instant::now(), list.clone()));
        }
        Ok(list)
    }

    /// Whether a device is on a campaign's explicit list.
    async fn listed(&self, campaign: i64, device: i64) -> Result<bool, RolloutError> {
        Ok(
            sqlx::query("SELECT 1 FROM campaign_devices WHERE campaign_id = $1 AND device_id = $2")
                .bind(campaign)
                .bind(device)
                .fetch_optional(self.db.pool())
                .await?
                .is_some(),
        )
    }

    async fn job_of(&self, campaign: i64, device: i64) -> Result<Option<Job>, RolloutError> {
        Ok(sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} WHERE campaign_id = $1 AND device_id = $2"
        ))
        .bind(campaign)
        .bind(device)
        .fetch_optional(self.db.pool())
        .await?
        .map(|r| job_from(&r)))
    }

    /// A device asks "is there an update for me?" for one module, running `current`. Answers
    /// the newest applicable running campaign's offer, creating the job on first contact.
    pub async fn check_in(
        &self,
        device: &DeviceFacts,
        module: &str,
        identify: i64,
        current: &str,
    ) -> Result<Option<Offer>, RolloutError> {
        let campaigns = self.active_campaigns(device.product_id).await?;
        for c in campaigns.iter() {
            if c.module != module || c.identify != identify {
                continue;
            }
            if version::compare(&c.target_version, current) != std::cmp::Ordering::Greater {
                // Many devices only "report" success by coming back on the new version: an
                // open job of theirs is finished here rather than left to time out. A listed
                // device that is already current counts as done, so the list can finish.
                let job = self.job_of(c.id, device.id).await?;
                if job.is_none() && c.scope == "devices" && self.listed(c.id, device.id).await? {
                    sqlx::query(
                        "INSERT INTO jobs (campaign_id, device_id, state, previous_state, retry_count, result_text, \
                           version_before, version_after, created_at, updated_at) \
                         VALUES ($1, $2, 'succeeded', 'queued', 0, 'already on the target version', $3, $3, $4, $4) \
                         ON CONFLICT (campaign_id, device_id) DO NOTHING",
                    )
                    .bind(c.id)
                    .bind(device.id)
                    .bind(current)
                    .bind(self.clock.now_millis())
                    .execute(self.db.pool())
                    .await?;
                }
                if let Some(job) = job
                    && !job.state.is_final()
                {
                    let done = self
                        .report_job(
                            job.id,
                            device.id,
                            JobState::Succeeded,
                            None,
                            "checked in on the target version",
                            Some(current),
                        )
                        .await;
                    match done {
                        Ok(_) | Err(RolloutError::Conflict(_)) => {} // a concurrent report won
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            if let Some(from) = c.from_version.as_deref()
                && version::compare(from, current) != std::cmp::Ordering::Equal
            {
                // A listed device on another version can never take this campaign: it is
                // recorded as cancelled (with why), so the list can still finish.
                if c.scope == "devices" && self.listed(c.id, device.id).await? {
                    let now = self.clock.now_millis();
                    let why = format!("runs {current}; the campaign applies only to {from}");
                    sqlx::query(
                        "INSERT INTO jobs (campaign_id, device_id, state, previous_state, retry_count, result_text, \
                           version_before, created_at, updated_at) \
                         VALUES ($1, $2, 'cancelled', 'queued', 0, $3, $4, $5, $5) \
                         ON CONFLICT (campaign_id, device_id) DO NOTHING",
                    )
                    .bind(c.id)
                    .bind(device.id)
                    .bind(&why)
                    .bind(current)
                    .bind(now)
                    .execute(self.db.pool())
                    .await?;
                    // A manual campaign queued it when it was listed: withdraw that job.
                    sqlx::query(
                        "UPDATE jobs SET previous_state = state, state = 'cancelled', result_text = $1, updated_at = $2 \
                         WHERE campaign_id = $3 AND device_id = $4 AND state = 'queued'",
                    )
                    .bind(&why)
                    .bind(now)
                    .bind(c.id)
                    .bind(device.id)
                    .execute(self.db.pool())
                    .await?;
                }
                continue;
            }
            let in_scope = match c.scope.as_str() {
                "group" => c.scope_group.is_some() && c.scope_group == device.group,
                "devices" => self.listed(c.id, device.id).await?,
                _ => true,
            };
            if !in_scope {
                continue;
            }
            let now = self.clock.now_millis();
            // Outside its maintenance window a campaign starts nothing new; a job already
            // under way is still answered, so the device keeps going.
            let window_open = c.window.is_none_or(|w| w.contains(now));
            // Repeat polls find their job with a read; only first contact takes the write lock.
            let mut job = self.job_of(c.id, device.id).await?;
            if job.is_none() && c.mode == "auto" && window_open {
                self.admit(c, device.id, current, now).await?;
                job = self.job_of(c.id, device.id).await?;
            }
            let Some(job) = job else {
                continue; // manual campaign without this device, or a full wave
            };
            let job = match job.state {
                JobState::Queued if !window_open => continue,
                JobState::Queued => {
                    // The cached campaign may be stale: notify only while it really runs.
                    let notified = sqlx::query(
                        "UPDATE jobs SET state = 'notified', previous_state = 'queued', updated_at = $1, deadline_at = $2, \
                           version_before = COALESCE(version_before, $3) WHERE id = $4 AND state = 'queued' \
                           AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = jobs.campaign_id AND c.status = 'running')",
                    )
                    .bind(now)
                    .bind(now + c.timeout_secs * 1000)
                    .bind(current)
                    .bind(job.id)
                    .execute(self.db.pool())
                    .await?
                    .rows_affected();
                    let job = self.job(job.id).await?;
                    if notified == 0 && job.state == JobState::Queued {
                        continue; // the campaign stopped running meanwhile
                    }
                    job
                }
                s if !s.is_final() => job,
                JobState::Succeeded if window_open && job.retry_count <= c.retries => {
                    // It succeeded and now reports an older version (a factory reset, a
                    // board swap): it needs the update again, so its job starts over. Each
                    // come-back counts as an attempt, so a device that keeps falling back
                    // (an A/B rollback) is offered it at most `retries` + 1 more times.
                    let mut tx = self.db.pool().begin().await?;
                    let reopened = sqlx::query(
                        "UPDATE jobs SET state = 'notified', previous_state = state, updated_at = $1, deadline_at = $2, \
                           retry_count = retry_count + 1, result_code = NULL, result_text = '', version_before = $3, \
                           version_after = NULL \
                         WHERE id = $4 AND state = 'succeeded' \
                           AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = jobs.campaign_id AND c.status = 'running')",
                    )
                    .bind(now)
                    .bind(now + c.timeout_secs * 1000)
                    .bind(current)
                    .bind(job.id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if reopened == 1 {
                        let note = format!("job {} came back on {current}: offered again", job.id);
                        log(&mut tx, c.id, now, "device", "reoffer", &note).await?;
                        tx.commit().await?;
                    } else {
                        drop(tx);
                    }
                    // A concurrent poll may have reopened it first: answer what it is now.
                    let job = self.job(job.id).await?;
                    if job.state.is_final() {
                        continue; // the campaign stopped running meanwhile
                    }
                    job
                }
                _ => continue,
            };
            return Ok(Some(Offer {
                campaign: c.clone(),
                job,
            }));
        }
        Ok(None)
    }

    /// Give a device its job in an auto campaign, within the current wave. With waves the
    /// job and the campaign's admission counter change in one transaction: the counter's
    /// row lock serializes concurrent first contacts (replicas included), so a wave never
    /// overshoots, and no first contact has to count the jobs already admitted.
    async fn admit(
        &self,
        c: &Campaign,
        device: i64,
        current: &str,
        now: i64,
    ) -> Result<(), RolloutError> {
        // The cached campaign may be stale: admit only while it really runs.
        let insert = "INSERT INTO jobs (campaign_id, device_id, state, previous_state, retry_count, result_text, \
               version_before, created_at, updated_at) \
             SELECT $1, $2, 'queued', 'queued', 0, '', $3, $4, $4 \
             WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $1 AND c.status = 'running') \
             ON CONFLICT (campaign_id, device_id) DO NOTHING";
        if c.wave_cap.is_none() {
            sqlx::query(insert)
                .bind(c.id)
                .bind(device)
                .bind(current)
                .bind(now)
                .execute(self.db.pool())
                .await?;
            return Ok(());
        }
        let mut tx = self.db.pool().begin().await?;
        let inserted = sqlx::query(insert)
            .bind(c.id)
            .bind(device)
            .bind(current)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 0 {
            return Ok(()); // already has its job
        }
        let room = sqlx::query(
            "UPDATE campaigns SET admitted = admitted + 1 \
             WHERE id = $1 AND (wave_cap IS NULL OR admitted < wave_cap)",
        )
        .bind(c.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if room == 1 {
            tx.commit().await?;
        } else {
            tx.rollback().await?; // the wave is full: this device waits for the next one
        }
        Ok(())
    }

    /// A job by id.
    pub async fn job(&self, id: i64) -> Result<Job, RolloutError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} WHERE id = $1 AND kind = 'campaign'"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| RolloutError::NotFound(format!("unknown job {id}")))?;
        Ok(job_from(&row))
    }

    /// A device reports progress or its result. Illegal transitions are refused (conflict).
    pub async fn report_job(
        &self,
        id: i64,
        device_id: i64,
        state: JobState,
        code: Option<i64>,
        text: &str,
        version_now: Option<&str>,
    ) -> Result<Job, RolloutError> {
        let job = self.job(id).await?;
        if job.device_id != device_id {
            // Another device's job is reported as unknown: ids reveal nothing.
            return Err(RolloutError::NotFound(format!("unknown job {id}")));
        }
        let next = job
            .state
            .apply(Event::Report(state))
            .map_err(|e| RolloutError::Conflict(e.to_string()))?;
        if next == job.state && next.is_final() {
            return Ok(job); // a retransmitted result
        }
        // A job that skipped `notified` (pushed, or retried) gets its deadline here.
        let changed = sqlx::query(
            "UPDATE jobs SET state = $1, previous_state = $2, result_code = COALESCE($3, result_code), \
               result_text = $4, version_after = CASE WHEN $1 = 'succeeded' THEN COALESCE($5, \
                 (SELECT c.target_version FROM campaigns c WHERE c.id = jobs.campaign_id)) \
                 ELSE version_after END, updated_at = $6, \
               deadline_at = COALESCE(deadline_at, \
                 $6 + (SELECT c.timeout_secs * 1000 FROM campaigns c WHERE c.id = jobs.campaign_id)) \
             WHERE id = $7 AND device_id = $8 AND state = $2",
        )
        .bind(next.as_str())
        .bind(job.state.as_str())
        .bind(code)
        .bind(super::truncate(text))
        .bind(version_now)
        .bind(self.clock.now_millis())
        .bind(id)
        .bind(device_id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(RolloutError::Conflict(format!(
                "job {id} changed concurrently; report again"
            )));
        }
        self.job(id).await
    }

    /// Time out overdue jobs, retry failed ones with attempts left, finish campaigns whose
    /// every job is final. Each step is one statement per row set: replica-safe.
    pub async fn tick_jobs(&self) -> Result<JobTick, RolloutError> {
        let now = self.clock.now_millis();
        let mut tick = JobTick::default();
        let mut tx = self.db.pool().begin().await?;
        tick.timed_out = sqlx::query(
            "UPDATE jobs SET previous_state = state, state = 'timed-out', updated_at = $1 \
             WHERE kind = 'campaign' AND state IN ('notified', 'downloading', 'installing') AND deadline_at <= $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tick.retried = sqlx::query(
            "UPDATE jobs SET previous_state = state, state = 'queued', retry_count = retry_count + 1, \
               deadline_at = NULL, updated_at = $1 \
             WHERE kind = 'campaign' AND state IN ('failed', 'timed-out') AND retry_count < \
               (SELECT c.retries FROM campaigns c WHERE c.id = jobs.campaign_id AND c.status = 'running')",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Guard first: a running campaign whose failure share reached its threshold pauses.
        let failing = "(SELECT COUNT(*) FROM jobs j WHERE j.campaign_id = campaigns.id AND j.state IN ('failed', 'timed-out') \
            AND j.updated_at > COALESCE(campaigns.guard_since, -1))";
        let finished = "(SELECT COUNT(*) FROM jobs j WHERE j.campaign_id = campaigns.id \
            AND j.state IN ('succeeded', 'failed', 'timed-out') AND j.updated_at > COALESCE(campaigns.guard_since, -1))";
        let paused: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE campaigns SET status = 'paused', updated_at = $1 \
             WHERE status = 'running' AND max_failure_pct IS NOT NULL AND {finished} > 0 \
               AND {failing} * 100 >= max_failure_pct * {finished} RETURNING id"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &paused {
            log(
                &mut tx,
                *id,
                now,
                "scheduler",
                "auto-pause",
                "failure rate reached the threshold",
            )
            .await?;
        }
        tick.paused = paused.len() as u64;
        let widened: Vec<i64> = sqlx::query_scalar(
            "UPDATE campaigns SET wave_cap = wave_cap + wave_step, \
               next_wave_at = $1 + wave_interval_secs * 1000, updated_at = $1 \
             WHERE status = 'running' AND wave_cap IS NOT NULL AND next_wave_at <= $1 RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &widened {
            log(
                &mut tx,
                *id,
                now,
                "scheduler",
                "widen",
                "next wave admitted",
            )
            .await?;
        }
        tick.widened = widened.len() as u64;
        let done: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE campaigns SET status = 'finished', updated_at = $1 \
             WHERE status = 'running' AND (scope = 'devices' OR mode = 'manual') \
               AND EXISTS (SELECT 1 FROM jobs j WHERE j.campaign_id = campaigns.id) \
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.campaign_id = campaigns.id AND (j.state IN {OPEN_JOB} \
                    OR (j.state IN ('failed', 'timed-out') AND j.retry_count < campaigns.retries))) \
               AND NOT EXISTS (SELECT 1 FROM campaign_devices d WHERE d.campaign_id = campaigns.id AND NOT EXISTS \
                    (SELECT 1 FROM jobs j WHERE j.campaign_id = d.campaign_id AND j.device_id = d.device_id)) \
             RETURNING id"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &done {
            log(
                &mut tx,
                *id,
                now,
                "scheduler",
                "finish",
                "every job is final",
            )
            .await?;
        }
        tx.commit().await?;
        tick.finished_campaigns = done.len() as u64;
        if !(done.is_empty() && paused.is_empty() && widened.is_empty()) {
            self.changed(None).await;
        }
        Ok(tick)
    }

    /// Counts by job state and the version distribution of the campaign's devices.
    pub async fn stats(&self, tenant_id: i64, id: i64) -> Result<Stats, RolloutError> {
        self.campaign(tenant_id, id).await?;
        let by_state =
            sqlx::query("SELECT state, COUNT(*) FROM jobs WHERE campaign_id = $1 GROUP BY state")
                .bind(id)
                .fetch_all(self.db.pool())
                .await?;
        let versions = sqlx::query(
            "SELECT COALESCE(version_after, version_before, 'unknown'), COUNT(*) FROM jobs WHERE campaign_id = $1 \
             GROUP BY COALESCE(version_after, version_before, 'unknown')",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        let map = |rows: Vec<sqlx::any::AnyRow>| -> HashMap<String, i64> {
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        let by_state = map(by_state);
        Ok(Stats {
            total: by_state.values().sum(),
            by_state,
            versions: map(versions),
        })
    }

    /// How many of a campaign's jobs are in one of `states` (all when empty); the campaign
    /// was loaded for its tenant.
    pub async fn count_jobs(&self, c: &Campaign, states: &[JobState]) -> Result<i64, RolloutError> {
        let id = c.id;
        let marks: Vec<String> = (0..states.len()).map(|i| format!("${}", i + 2)).collect();
        let filter = if states.is_empty() {
            String::new()
        } else {
            format!(" AND state IN ({})", marks.join(", "))
        };
        let sql = format!("SELECT COUNT(*) FROM jobs WHERE campaign_id = $1{filter}");
        let mut q = sqlx::query_scalar(&sql).bind(id);
        for s in states {
            q = q.bind(s.as_str());
        }
        Ok(q.fetch_one(self.db.pool()).await?)
    }

    /// A campaign's jobs, oldest first, optionally only those in one state or of one device.
    pub async fn jobs(
        &self,
        tenant_id: i64,
        id: i64,
        filter: &JobFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Job>, i64), RolloutError> {
        self.campaign(tenant_id, id).await?;
        // NULL parameters match everything, so one statement serves every filter.
        let cond =
            "campaign_id = $1 AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR device_id = $3)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM jobs WHERE {cond}"))
            .bind(id)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.device_id)
            .fetch_one(self.db.pool())
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} WHERE {cond} ORDER BY id LIMIT $4 OFFSET $5"
        ))
        .bind(id)
        .bind(filter.state.map(|s| s.as_str()))
        .bind(filter.device_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.db.pool())
        .await?;
        Ok((rows.iter().map(job_from).collect(), total))
    }

    /// A campaign's dialect-kept facts, by name (the campaign was loaded for its tenant).
    pub async fn campaign_attributes(
        &self,
        c: &Campaign,
    ) -> Result<Vec<(String, String)>, RolloutError> {
        Ok(CAMPAIGN_ATTRIBUTES.read(&self.db, c.id).await?)
    }

    /// Set (or, with `None`, remove) a campaign's attributes in one transaction, under the
    /// same naming rules as product and release attributes.
    pub async fn set_campaign_attributes(
        &self,
        tenant_id: i64,
        id: i64,
        changes: &[(String, Option<String>)],
    ) -> Result<Vec<(String, String)>, RolloutError> {
        crate::storage::attributes::check(changes).map_err(RolloutError::Invalid)?;
        let c = self.campaign(tenant_id, id).await?;
        CAMPAIGN_ATTRIBUTES.write(&self.db, id, changes).await?;
        self.campaign_attributes(&c).await
    }

    /// A campaign's op log, oldest first.
    pub async fn campaign_log(
        &self,
        tenant_id: i64,
        id: i64,
    ) -> Result<Vec<LogEntry>, RolloutError> {
        self.campaign(tenant_id, id).await?;
        let rows = sqlx::query(
            "SELECT at, actor, action, detail FROM campaign_log WHERE campaign_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| LogEntry {
                at: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                detail: r.get(3),
            })
            .collect())
    }
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
