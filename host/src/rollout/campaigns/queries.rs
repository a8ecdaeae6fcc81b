//! Reading a campaign's progress: statistics, job counts and lists, its attributes and op
//! log.

use super::*;

impl Rollout {
    /// Counts by job state and the version distribution of the campaign's devices.
    pub async fn stats(&self, tenant_id: i64, id: i64) -> Result<Stats, RolloutError> {
        let c = self.campaign(tenant_id, id).await?;
        self.stats_of(&c).await
    }

    /// [`Rollout::stats`] of a campaign the caller already read (and may see).
    pub async fn stats_of(&self, c: &Campaign) -> Result<Stats, RolloutError> {
        let by_state = self
            .db
            .read_all(
                sqlx::query(
                    "SELECT state, COUNT(*) FROM jobs WHERE campaign_id = $1 GROUP BY state",
                )
                .bind(c.id),
            )
            .await?;
        let versions = self
            .db
            .read_all(
                sqlx::query(
                    "SELECT COALESCE(version_after, version_before, 'unknown'), COUNT(*) FROM jobs \
                     WHERE campaign_id = $1 GROUP BY COALESCE(version_after, version_before, 'unknown')",
                )
                .bind(c.id),
            )
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

    /// Where every running or paused campaign stands, for the metrics and the dashboard:
    /// jobs by state, and the failure share as the guard counts it (failed and timed-out
    /// over finished jobs since the guard was last reset).
    pub async fn progress(&self) -> Result<Vec<Progress>, RolloutError> {
        self.progress_where("c.status IN ('running', 'paused')", &[])
            .await
    }

    /// Where each of the live campaigns `ids` stands, whatever its status (the dashboard),
    /// by id.
    pub async fn progress_of(&self, ids: &[i64]) -> Result<Vec<Progress>, RolloutError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        self.progress_where(&format!("c.id IN ({})", marks.join(", ")), ids)
            .await
    }

    /// [`Rollout::progress`] of the live campaigns matching `cond` (fixed SQL text, its
    /// `$1`, `$2`, ... bound to `binds`).
    async fn progress_where(
        &self,
        cond: &str,
        binds: &[i64],
    ) -> Result<Vec<Progress>, RolloutError> {
        let sql = format!(
            "SELECT c.id, c.tenant_id, c.name, c.status, c.max_failure_pct, j.state, COUNT(j.id), \
               SUM(CASE WHEN j.updated_at > COALESCE(c.guard_since, -1) THEN 1 ELSE 0 END) \
             FROM campaigns c LEFT JOIN jobs j ON j.campaign_id = c.id \
             WHERE c.deleted_at IS NULL AND {cond} \
             GROUP BY c.id, c.tenant_id, c.name, c.status, c.max_failure_pct, j.state \
             ORDER BY c.id"
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(self.db.pool()).await?;
        let mut out: Vec<Progress> = Vec::new();
        let (mut failing, mut finished) = (0i64, 0i64);
        for r in &rows {
            let id: i64 = r.get(0);
            if out.last().is_none_or(|p| p.id != id) {
                if let Some(p) = out.last_mut() {
                    p.failure_ratio = ratio(failing, finished);
                }
                (failing, finished) = (0, 0);
                let pct: Option<i64> = r.get(4);
                out.push(Progress {
                    id,
                    tenant_id: r.get(1),
                    name: r.get(2),
                    status: CampaignStatus::parse(&r.get::<String, _>(3)),
                    jobs: Vec::new(),
                    failure_ratio: 0.0,
                    failure_threshold: pct.map(|p| p as f64 / 100.0),
                });
            }
            let Some(state) = r.get::<Option<String>, _>(5) else {
                continue; // a campaign without jobs
            };
            let since_guard: i64 = r.get::<Option<i64>, _>(7).unwrap_or(0);
            match state.as_str() {
                "failed" | "timed-out" => {
                    (failing, finished) = (failing + since_guard, finished + since_guard)
                }
                "succeeded" => finished += since_guard,
                _ => {}
            }
            let p = out.last_mut().expect("pushed above");
            p.jobs.push((state, r.get(6)));
        }
        if let Some(p) = out.last_mut() {
            p.failure_ratio = ratio(failing, finished);
        }
        Ok(out)
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
        let mut q = sqlx::query(&sql).bind(id);
        for s in states {
            q = q.bind(s.as_str());
        }
        Ok(self.db.read_one(q).await?.get(0))
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
        let ttl = self.following.ttl();
        let generation = match self.active.0.lock().map(|m| m.attributes.get(&c.id, ttl)) {
            Ok(Ok((_, list))) => return Ok(list.as_ref().clone()),
            Ok(Err(generation)) => generation,
            Err(_) => u64::MAX,
        };
        let list = CAMPAIGN_ATTRIBUTES.read(&self.db, c.id).await?;
        if let Ok(mut m) = self.active.0.lock() {
            let entry = (c.product_id, Arc::new(list.clone()));
            m.attributes.store(generation, c.id, entry, ttl);
        }
        Ok(list)
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
        self.changed(Some(c.product_id)).await;
        self.campaign_attributes(&c).await
    }

    /// The newest `n` entries of a campaign's op log, newest first.
    pub async fn recent_log(&self, id: i64, n: i64) -> Result<Vec<LogEntry>, RolloutError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, detail FROM campaign_log WHERE campaign_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(id)
        .bind(n)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(log_entry).collect())
    }

    /// A campaign's op log, oldest first.
    pub async fn campaign_log(
        &self,
        tenant_id: i64,
        id: i64,
    ) -> Result<Vec<LogEntry>, RolloutError> {
        let c = self.campaign(tenant_id, id).await?;
        self.campaign_log_of(&c).await
    }

    /// [`Rollout::campaign_log`] of a campaign the caller already read (and may see).
    pub async fn campaign_log_of(&self, c: &Campaign) -> Result<Vec<LogEntry>, RolloutError> {
        let q = sqlx::query(
            "SELECT at, actor, action, detail FROM campaign_log WHERE campaign_id = $1 ORDER BY id",
        )
        .bind(c.id);
        Ok(self.db.read_all(q).await?.iter().map(log_entry).collect())
    }
}

/// An op log row (`at, actor, action, detail`).
fn log_entry(r: &sqlx::any::AnyRow) -> LogEntry {
    LogEntry {
        at: r.get(0),
        actor: r.get(1),
        action: r.get(2),
        detail: r.get(3),
    }
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
