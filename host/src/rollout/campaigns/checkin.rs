//! Admission and check-in: which running campaign offers a device what, first contact
//! within a wave, and devices that come back on an older version.

use super::*;

impl Rollout {
    pub(super) async fn active_campaigns(
        &self,
        product_id: i64,
    ) -> Result<Arc<Vec<Campaign>>, RolloutError> {
        let ttl = self.following.ttl();
        let generation = match self.active.0.lock().map(|m| m.lists.get(&product_id, ttl)) {
            Ok(Ok(list)) => return Ok(list),
            Ok(Err(generation)) => generation,
            Err(_) => u64::MAX,
        };
        let rows = self.db.read_all(sqlx::query(&format!("SELECT {CAMPAIGN_COLUMNS} WHERE product_id = $1 AND status = 'running' AND deleted_at IS NULL ORDER BY id DESC"))
            .bind(product_id))
            .await?;
        let list = Arc::new(rows.iter().map(campaign_from).collect::<Vec<_>>());
        if let Ok(mut m) = self.active.0.lock() {
            m.lists.store(generation, product_id, list.clone(), ttl);
        }
        Ok(list)
    }

    /// Whether a device is on a campaign's explicit list.
    pub(super) async fn listed(&self, campaign: i64, device: i64) -> Result<bool, RolloutError> {
        Ok(self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT 1 FROM campaign_devices WHERE campaign_id = $1 AND device_id = $2",
                )
                .bind(campaign)
                .bind(device),
            )
            .await?
            .is_some())
    }

    pub(super) async fn job_of(
        &self,
        campaign: i64,
        device: i64,
    ) -> Result<Option<Job>, RolloutError> {
        Ok(self
            .db
            .read_optional(
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} WHERE campaign_id = $1 AND device_id = $2"
                ))
                .bind(campaign)
                .bind(device),
            )
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
    pub(super) async fn admit(
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
        let row = self
            .db
            .read_optional(
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} WHERE id = $1 AND kind = 'campaign'"
                ))
                .bind(id),
            )
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("unknown job {id}")))?;
        Ok(job_from(&row))
    }
}
