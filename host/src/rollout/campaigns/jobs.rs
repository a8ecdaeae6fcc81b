//! Job reports and the scheduler's pass: timeouts, retries, the failure guard, waves and
//! finishing campaigns.

use super::*;

impl Rollout {
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
        .bind(super::super::truncate(text))
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
}
