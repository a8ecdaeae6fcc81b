//! Progress over time: the scheduler samples where every running or paused campaign stands
//! (jobs by state, the guard's failure share) once per `scheduler.progress-sample-secs`
//! period of the shared clock, and the dashboard charts the samples. Every replica samples;
//! a unique (campaign, period start) keeps one row per period.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;

/// Where one campaign stood at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Unix milliseconds.
    pub at: i64,
    /// Jobs by state (the states it had).
    pub counts: BTreeMap<String, i64>,
    /// Failed and timed-out over finished jobs since the guard was last reset.
    pub failure_ratio: f64,
}

impl Rollout {
    /// Record a sample of every running or paused campaign, once per period of length
    /// `every` (called on every scheduler pass, it reads the jobs only when a new period has
    /// begun); returns how many were written.
    pub async fn sample_progress(&self, every: Duration) -> Result<u64, RolloutError> {
        let period = (every.as_millis() as i64).max(1);
        let now = self.clock.now_millis().div_euclid(period);
        if self.sampled_period.swap(now, Ordering::Relaxed) == now {
            return Ok(0);
        }
        // Stamped with the period's start, so two replicas' samples of one period collide
        // on the unique (campaign, at) and one is kept.
        let at = now * period;
        let mut written = 0;
        for p in self.progress().await? {
            let counts: BTreeMap<&str, i64> =
                p.jobs.iter().map(|(s, n)| (s.as_str(), *n)).collect();
            let counts = serde_json::to_string(&counts).expect("plain data serializes");
            written += sqlx::query(
                "INSERT INTO campaign_samples (campaign_id, at, counts, failure_ratio) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id, at) DO NOTHING",
            )
            .bind(p.id)
            .bind(at)
            .bind(counts)
            .bind(p.failure_ratio)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        }
        Ok(written)
    }

    /// A campaign's samples, oldest first, thinned evenly in the database to at most
    /// `max_points` (every n-th counted back from the newest, which is always kept).
    pub async fn samples(&self, id: i64, max_points: i64) -> Result<Vec<Sample>, RolloutError> {
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM campaign_samples WHERE campaign_id = $1")
                .bind(id)
                .fetch_one(self.db.pool())
                .await?;
        let step = (total + max_points.max(1) - 1) / max_points.max(1);
        let rows = sqlx::query(
            "SELECT at, counts, failure_ratio FROM ( \
               SELECT at, counts, failure_ratio, ROW_NUMBER() OVER (ORDER BY at DESC) - 1 AS back \
               FROM campaign_samples WHERE campaign_id = $1) s \
             WHERE back % $2 = 0 ORDER BY at",
        )
        .bind(id)
        .bind(step.max(1))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Sample {
                at: r.get(0),
                counts: serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                failure_ratio: r.get(2),
            })
            .collect())
    }
}
