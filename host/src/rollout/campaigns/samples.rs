//! Progress over time: the scheduler samples where every running or paused campaign stands
//! (jobs by state, the guard's failure share) every `scheduler.progress-sample-secs`, and
//! the dashboard charts the samples. Replicas sharing a database sample in turn, not each.

use std::collections::BTreeMap;
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
    /// Record a sample of every running or paused campaign not yet sampled (by any replica)
    /// in the current period of length `every`; returns how many were written.
    pub async fn sample_progress(&self, every: Duration) -> Result<u64, RolloutError> {
        let period = (every.as_millis() as i64).max(1);
        // Stamped with the period's start, so two replicas' samples of one period collide
        // on the unique (campaign, at) and one is kept.
        let at = self.clock.now_millis().div_euclid(period) * period;
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

    /// A campaign's samples, oldest first, thinned evenly to at most `max_points` (the last
    /// one always kept).
    pub async fn samples(&self, id: i64, max_points: usize) -> Result<Vec<Sample>, RolloutError> {
        let rows = sqlx::query(
            "SELECT at, counts, failure_ratio FROM campaign_samples WHERE campaign_id = $1 \
             ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(thin(rows, max_points)
            .iter()
            .map(|r| Sample {
                at: r.get(0),
                counts: serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                failure_ratio: r.get(2),
            })
            .collect())
    }
}

/// Every n-th item, counted back from the last, so at most `max` remain and the newest is
/// among them.
fn thin<T>(items: Vec<T>, max: usize) -> Vec<T> {
    let step = items.len().div_ceil(max.max(1)).max(1);
    let last = items.len().saturating_sub(1);
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (last - i).is_multiple_of(step))
        .map(|(_, item)| item)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_newest_and_at_most_max() {
        let idx = |n: usize, max: usize| thin((0..n).collect::<Vec<_>>(), max);
        assert_eq!(idx(5, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(idx(10, 5), vec![1, 3, 5, 7, 9]);
        assert!(idx(1000, 300).len() <= 300);
        assert_eq!(idx(1000, 300).last(), Some(&999));
        assert!(idx(0, 5).is_empty());
    }
}
