//! Rollouts: campaigns and per-device jobs (`campaigns`, `job`); IoTStack-style deployments
//! of the edge services onto a gateway, which are jobs of kind `deployment` (no campaign,
//! their event history doubles as their log); and the scheduler pass that applies every
//! time-driven transition. Every transition is one conditional UPDATE, so concurrent
//! reporters and scheduler replicas never apply it twice.

use std::time::Duration;

use sqlx::Row;

use crate::clock::SharedClock;
use crate::storage::Db;
use job::JobState;

pub mod campaigns;
pub mod feed;
pub mod job;
pub mod scheduler;
pub mod search;

/// Why a rollout operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The actor may not do this (e.g. approve a campaign submitted to someone else).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// Where a deployment stands; `Success`, `Failed` and `Timeout` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    Init,
    Processing,
    Success,
    Failed,
    Timeout,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Init => "init",
            DeploymentStatus::Processing => "processing",
            DeploymentStatus::Success => "success",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Timeout => "timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "init" => DeploymentStatus::Init,
            "processing" => DeploymentStatus::Processing,
            "success" => DeploymentStatus::Success,
            "failed" => DeploymentStatus::Failed,
            "timeout" => DeploymentStatus::Timeout,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Success | DeploymentStatus::Failed | DeploymentStatus::Timeout
        )
    }
}

/// One entry of a deployment's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeploymentEvent {
    pub at: i64,
    pub status: DeploymentStatus,
    pub message: String,
}

/// A deployment with its full history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Deployment {
    pub id: i64,
    pub tenant_id: i64,
    pub device_id: i64,
    pub keep_local: bool,
    pub status: DeploymentStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub deadline_at: i64,
    /// The release it installs, once the gateway's agent has asked (see
    /// [`Rollout::pin_release`]).
    pub release_id: Option<i64>,
    pub events: Vec<DeploymentEvent>,
}

/// Longest stored log line, in bytes; longer reports are cut (on a character boundary).
pub const MAX_LOG_LINE: usize = 4096;
/// Most history lines rendered into a deployment's log; older ones are summarized.
pub const MAX_LOG_LINES: usize = 200;

impl Deployment {
    /// The history as IoTStack's `Log` string: one `[unix-seconds] status: message` per line,
    /// the newest [`MAX_LOG_LINES`] of them.
    pub fn log(&self) -> String {
        let skip = self.events.len().saturating_sub(MAX_LOG_LINES);
        let mut lines: Vec<String> = Vec::with_capacity(self.events.len() - skip + 1);
        if skip > 0 {
            lines.push(format!("({skip} earlier lines omitted)"));
        }
        lines.extend(
            self.events[skip..]
                .iter()
                .map(|e| format!("[{}] {}: {}", e.at / 1000, e.status.as_str(), e.message)),
        );
        lines.join("\n")
    }
}

fn truncate(line: &str) -> &str {
    if line.len() <= MAX_LOG_LINE {
        return line;
    }
    let mut end = MAX_LOG_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// The rollout service.
#[derive(Clone)]
pub struct Rollout {
    db: Db,
    clock: SharedClock,
    deployment_timeout: Duration,
    active: std::sync::Arc<campaigns::ActiveCache>,
    following: std::sync::Arc<feed::Following>,
    /// The sampling period last sampled (see `campaigns/samples.rs`).
    sampled_period: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// Open deployment jobs: created (init) or reported in progress (processing).
const OPEN: &str = "('queued', 'installing')";

/// A deployment's status as its job state, and back.
fn job_state(status: DeploymentStatus) -> JobState {
    match status {
        DeploymentStatus::Init => JobState::Queued,
        DeploymentStatus::Processing => JobState::Installing,
        DeploymentStatus::Success => JobState::Succeeded,
        DeploymentStatus::Failed => JobState::Failed,
        DeploymentStatus::Timeout => JobState::TimedOut,
    }
}

fn deployment_status(state: &str) -> DeploymentStatus {
    DeploymentStatus::parse(
        JobState::parse(state)
            .unwrap_or(JobState::Failed)
            .iotstack(),
    )
    .unwrap_or(DeploymentStatus::Failed)
}

impl Rollout {
    pub fn new(db: Db, clock: SharedClock, deployment_timeout: Duration) -> Self {
        Rollout {
            db,
            clock,
            deployment_timeout,
            active: Default::default(),
            following: Default::default(),
            sampled_period: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
        }
    }

    /// The deployment timeout in milliseconds. A deployment is due by its creation plus the
    /// timeout this host runs with *now*: an operator who changes `deployment-timeout-secs`
    /// moves the deadline of every open deployment too, not only of new ones.
    fn timeout_ms(&self) -> i64 {
        self.deployment_timeout.as_millis() as i64
    }

    /// Create a deployment: a job of kind `deployment` in `queued` (IoTStack's `init`), due by
    /// now + the configured timeout.
    pub async fn create_deployment(
        &self,
        tenant_id: i64,
        device_id: i64,
        keep_local: bool,
    ) -> Result<Deployment, RolloutError> {
        let now = self.clock.now_millis();
        let deadline = now + self.timeout_ms();
        let mut tx = self.db.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (kind, tenant_id, device_id, keep_local, state, previous_state, retry_count, \
               result_text, created_at, updated_at, deadline_at) \
             VALUES ('deployment', $1, $2, $3, 'queued', 'queued', 0, '', $4, $4, $5) RETURNING id",
        )
        .bind(tenant_id)
        .bind(device_id)
        .bind(keep_local as i64)
        .bind(now)
        .bind(deadline)
        .fetch_one(&mut *tx)
        .await?;
        let message = format!("deployment created (KeepLocal={keep_local})");
        Self::append(&mut tx, id, now, JobState::Queued, &message).await?;
        tx.commit().await?;
        self.deployment(id).await
    }

    /// Add a line to a job's history.
    async fn append(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: i64,
        at: i64,
        state: JobState,
        message: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO job_events (job_id, at, state, message) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(at)
            .bind(state.as_str())
            .bind(message)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A deployment with its history.
    pub async fn deployment(&self, id: i64) -> Result<Deployment, RolloutError> {
        let not_found = || RolloutError::NotFound(format!("unknown deployment {id}"));
        let row = self.db.read_optional(sqlx::query(
            "SELECT id, tenant_id, device_id, keep_local, state, created_at, updated_at, deadline_at, \
               release_id \
             FROM jobs WHERE id = $1 AND kind = 'deployment'",
        )
        .bind(id)
        )
        .await?
        .ok_or_else(not_found)?;
        let events = self
            .db
            .read_all(
                sqlx::query(
                    "SELECT at, state, message FROM job_events WHERE job_id = $1 ORDER BY id",
                )
                .bind(id),
            )
            .await?
            .iter()
            .map(|r| DeploymentEvent {
                at: r.get(0),
                status: deployment_status(&r.get::<String, _>(1)),
                message: r.get(2),
            })
            .collect();
        let status = deployment_status(&row.get::<String, _>(4));
        let created_at: i64 = row.get(5);
        Ok(Deployment {
            id: row.get(0),
            tenant_id: row.get(1),
            device_id: row.get(2),
            keep_local: row.get::<Option<i64>, _>(3).unwrap_or(0) != 0,
            created_at,
            updated_at: row.get(6),
            // Open: due by the current timeout; final: the deadline it had.
            deadline_at: if status.is_final() {
                row.get::<Option<i64>, _>(7).unwrap_or(0)
            } else {
                created_at + self.timeout_ms()
            },
            release_id: row.get(8),
            status,
            events,
        })
    }

    /// The oldest open deployment of a device that is still before its deadline: what the
    /// gateway's agent works on next.
    pub async fn next_deployment(
        &self,
        device_id: i64,
    ) -> Result<Option<Deployment>, RolloutError> {
        let id: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM jobs WHERE device_id = $1 AND kind = 'deployment' AND state IN {OPEN} \
               AND created_at + $2 > $3 ORDER BY id LIMIT 1"
        ))
        .bind(device_id)
        .bind(self.timeout_ms())
        .bind(self.clock.now_millis())
        .fetch_optional(self.db.pool())
        .await?;
        match id {
            Some(id) => Ok(Some(self.deployment(id).await?)),
            None => Ok(None),
        }
    }

    /// Fix the release an open deployment installs, unless one is fixed already: the first
    /// agent request that finds a release decides, so a retried or concurrent poll never
    /// switches the file under a running install. Answers the deployment as stored.
    pub async fn pin_release(&self, id: i64, release_id: i64) -> Result<Deployment, RolloutError> {
        sqlx::query(&format!(
            "UPDATE jobs SET release_id = $1 \
             WHERE id = $2 AND kind = 'deployment' AND release_id IS NULL AND state IN {OPEN}"
        ))
        .bind(release_id)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        self.deployment(id).await
    }

    /// Apply a progress report. Only `processing`, `success` and `failed` may be reported, and
    /// only while the deployment is open.
    pub async fn report(
        &self,
        id: i64,
        status: DeploymentStatus,
        line: Option<&str>,
    ) -> Result<Deployment, RolloutError> {
        if matches!(status, DeploymentStatus::Init | DeploymentStatus::Timeout) {
            return Err(RolloutError::Invalid(format!(
                "status {} is set by the host, not reported",
                status.as_str()
            )));
        }
        let state = job_state(status);
        let now = self.clock.now_millis();
        let mut tx = self.db.pool().begin().await?;
        // Write first (so SQLite takes the write lock at once) and only while still open.
        // A report after the deadline loses to the timeout even if the scheduler has not run.
        let changed = sqlx::query(&format!(
            "UPDATE jobs SET previous_state = state, state = $1, updated_at = $2, \
               deadline_at = created_at + $4 \
             WHERE id = $3 AND kind = 'deployment' AND state IN {OPEN} AND created_at + $4 > $2"
        ))
        .bind(state.as_str())
        .bind(now)
        .bind(id)
        .bind(self.timeout_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            drop(tx);
            let current = self.deployment(id).await?;
            return Err(RolloutError::Conflict(if current.status.is_final() {
                format!("deployment {id} is already {}", current.status.as_str())
            } else {
                format!("deployment {id} passed its deadline; it is timing out")
            }));
        }
        let message = truncate(line.unwrap_or("status reported"));
        Self::append(&mut tx, id, now, state, message).await?;
        tx.commit().await?;
        self.deployment(id).await
    }

    /// Move every open deployment past its deadline to `timeout`. Returns how many moved.
    /// Safe to run concurrently on several replicas: each row moves in exactly one UPDATE.
    pub async fn time_out_overdue(&self) -> Result<u64, RolloutError> {
        let now = self.clock.now_millis();
        let mut tx = self.db.pool().begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE jobs SET previous_state = state, state = 'timed-out', updated_at = $1, \
               deadline_at = created_at + $2 \
             WHERE kind = 'deployment' AND state IN {OPEN} AND created_at + $2 <= $1 RETURNING id"
        ))
        .bind(now)
        .bind(self.timeout_ms())
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            Self::append(
                &mut tx,
                *id,
                now,
                JobState::TimedOut,
                "no final report before the deadline",
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let s = "é".repeat(MAX_LOG_LINE);
        let cut = truncate(&s);
        assert!(cut.len() <= MAX_LOG_LINE && cut.len() > MAX_LOG_LINE - 2);
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            DeploymentStatus::Init,
            DeploymentStatus::Processing,
            DeploymentStatus::Success,
            DeploymentStatus::Failed,
            DeploymentStatus::Timeout,
        ] {
            assert_eq!(DeploymentStatus::parse(s.as_str()), Some(s));
        }
        assert!(DeploymentStatus::Timeout.is_final());
        assert!(!DeploymentStatus::Processing.is_final());
        assert_eq!(DeploymentStatus::parse("done"), None);
    }
}
