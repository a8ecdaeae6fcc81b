//! A campaign's life: creation, reading and listing, edits, device lists, the actions
//! (submit, approve, start, pause, stop, cancel, revise) and operator job control.

use super::*;

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
        let sql = format!(
            "SELECT {CAMPAIGN_COLUMNS} WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
        );
        let row = self
            .db
            .read_optional(sqlx::query(&sql).bind(tenant_id).bind(id))
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("unknown campaign {id}")))?;
        Ok(campaign_from(&row))
    }

    /// A campaign by id alone (for flows that start from a job).
    pub async fn campaign_by_id(&self, id: i64) -> Result<Campaign, RolloutError> {
        let row = self
            .db
            .read_optional(
                sqlx::query(&format!("SELECT {CAMPAIGN_COLUMNS} WHERE id = $1")).bind(id),
            )
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("unknown campaign {id}")))?;
        Ok(campaign_from(&row))
    }

    /// A campaign not deleted, by id alone, whatever its tenant (the operators' dashboard).
    pub async fn live_campaign(&self, id: i64) -> Result<Campaign, RolloutError> {
        let row = self
            .db
            .read_optional(
                sqlx::query(&format!(
                    "SELECT {CAMPAIGN_COLUMNS} WHERE id = $1 AND deleted_at IS NULL"
                ))
                .bind(id),
            )
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
                Bind::S(super::super::search::like_pattern(n)),
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

    /// How many devices a campaign's scope lists.
    pub async fn count_listed(&self, id: i64) -> Result<u64, RolloutError> {
        let q =
            sqlx::query("SELECT COUNT(*) FROM campaign_devices WHERE campaign_id = $1").bind(id);
        let n: i64 = self.db.read_one(q).await?.get(0);
        Ok(n.max(0) as u64)
    }

    /// The serial numbers of a campaign's listed devices, in listing order.
    pub async fn listed_devices(&self, id: i64) -> Result<Vec<String>, RolloutError> {
        let q = sqlx::query(
            "SELECT d.sn FROM campaign_devices cd JOIN devices d ON d.id = cd.device_id \
             WHERE cd.campaign_id = $1 ORDER BY d.id",
        )
        .bind(id);
        Ok(self
            .db
            .read_all(q)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
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

    pub(super) async fn change_jobs(
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

    pub(super) async fn act_as(
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
}
