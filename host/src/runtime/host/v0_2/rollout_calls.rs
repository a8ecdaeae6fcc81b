//! `ota:dialect/rollout@0.2.x`: deployments, campaigns and their lifecycle, device lists,
//! jobs, check-in and reports, statistics, op log and job search.

use super::*;

impl rollout::Host for RequestState {
    async fn create_deployment(
        &mut self,
        product_sn: String,
        device_sn: String,
        keep_local: bool,
    ) -> Result<rollout::Deployment, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let device = self
            .services
            .catalog
            .register_device(tenant_id, &product_sn, &device_sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        let d = self
            .services
            .rollout
            .create_deployment(tenant_id, device.id, keep_local)
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_deployment(d).await
    }

    async fn get_deployment(&mut self, id: u64) -> Result<rollout::Deployment, HostError> {
        let d = self.deployment_in_scope(id).await?;
        self.wit_deployment(d).await
    }

    async fn report_deployment(
        &mut self,
        id: u64,
        status: rollout::DeploymentStatus,
        log_line: Option<String>,
    ) -> Result<rollout::Deployment, HostError> {
        let d = self.deployment_in_scope(id).await?;
        let status = match status {
            rollout::DeploymentStatus::Init => DeploymentStatus::Init,
            rollout::DeploymentStatus::Processing => DeploymentStatus::Processing,
            rollout::DeploymentStatus::Success => DeploymentStatus::Success,
            rollout::DeploymentStatus::Failed => DeploymentStatus::Failed,
            rollout::DeploymentStatus::Timeout => DeploymentStatus::Timeout,
        };
        let d = self
            .services
            .report_deployment(d.id, status, log_line.as_deref())
            .await
            .map_err(|e| self.flow_err(e))?;
        self.services
            .metrics
            .deployment_report(&self.plugin.name, status.as_str());
        self.wit_deployment(d).await
    }

    async fn next_deployment(&mut self) -> Result<Option<rollout::DeploymentOrder>, HostError> {
        let Some(device) = self.acting()?.device.clone() else {
            return Err(HostError::Forbidden(
                "only a gateway's own credentials ask for its next deployment".into(),
            ));
        };
        let Some(order) = self
            .services
            .deployment_order(&device)
            .await
            .map_err(|e| self.flow_err(e))?
        else {
            return Ok(None);
        };
        let file = order.package.map(|r| {
            let url = match (&r.blob_sha256, &r.external_url) {
                (Some(sha), _) => self.services.blobs.download_url(&self.host_url, sha, None),
                (None, url) => url.clone().unwrap_or_default(),
            };
            rollout::DeploymentPackage {
                release_id: r.id as u64,
                version: r.version,
                arch: r.arch,
                url,
                sha256: r.blob_sha256,
                md5: r.md5,
                size: r.size,
            }
        });
        Ok(Some(rollout::DeploymentOrder {
            deployment: self.wit_deployment(order.deployment).await?,
            file,
        }))
    }

    async fn create_campaign(
        &mut self,
        c: rollout::NewCampaign,
    ) -> Result<rollout::Campaign, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let actor = self.actor(c.created_by)?;
        let request = CampaignRequest {
            release_id: id_of(c.release_id, "release")?,
            name: c.name,
            description: c.description,
            from_version: c.from_version,
            scope: scope_from(c.scope),
            mode: match c.mode {
                rollout::CampaignMode::Auto => Mode::Auto,
                rollout::CampaignMode::Manual => Mode::Manual,
            },
            tag: tag_str(c.tag),
            retries: c.retries,
            timeout_secs: c.timeout_secs,
            window: c.maintenance_window.map(window_from),
            // A dialect registers the devices it names itself (register-device).
            register_devices: false,
            waves: c.waves.map(|w| WavesRequest {
                start: WaveStart::Count(w.initial),
                step: w.step,
                interval_secs: w.interval_secs,
                max_failure_pct: w.max_failure_pct,
            }),
        };
        let created = self
            .services
            .create_campaign(tenant_id, request, &actor)
            .await
            .map_err(|e| self.flow_err(e))?;
        self.wit_campaign(created).await
    }

    async fn get_campaign(&mut self, id: u64) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        self.wit_campaign(c).await
    }

    async fn list_campaigns(
        &mut self,
        filter: rollout::CampaignFilter,
        w: types::Window,
    ) -> Result<rollout::CampaignPage, HostError> {
        let (list, total) = self.campaigns_matching(filter, w).await?;
        let mut items = Vec::with_capacity(list.len());
        for c in list {
            items.push(self.wit_campaign(c).await?);
        }
        Ok(rollout::CampaignPage { total, items })
    }

    async fn get_campaign_brief(&mut self, id: u64) -> Result<rollout::CampaignBrief, HostError> {
        let c = self.campaign_in_scope(id).await?;
        self.wit_campaign_brief(c).await
    }

    async fn list_campaign_briefs(
        &mut self,
        filter: rollout::CampaignFilter,
        w: types::Window,
    ) -> Result<rollout::CampaignBriefPage, HostError> {
        let (list, total) = self.campaigns_matching(filter, w).await?;
        let mut items = Vec::with_capacity(list.len());
        for c in list {
            items.push(self.wit_campaign_brief(c).await?);
        }
        Ok(rollout::CampaignBriefPage { total, items })
    }

    async fn update_campaign(
        &mut self,
        id: u64,
        patch: rollout::CampaignPatch,
    ) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(None)?;
        let scope = match patch.scope {
            Some(s) => {
                let product = self.campaign_product_sn(&c).await?;
                Some(
                    self.services
                        .scope(c.tenant_id, &product, scope_from(s))
                        .await
                        .map_err(|e| self.flow_err(e))?,
                )
            }
            None => None,
        };
        let patch = CampaignPatch {
            name: patch.name,
            description: patch.description,
            retries: patch.retries,
            timeout_secs: patch.timeout_secs,
            tag: patch.tag.map(tag_str),
            scope,
            window: patch.maintenance_window.map(window_from),
        };
        let c = self
            .services
            .update_campaign(c.tenant_id, c.id, patch, &actor)
            .await
            .map_err(|e| self.flow_err(e))?;
        self.wit_campaign(c).await
    }

    async fn submit(
        &mut self,
        id: u64,
        approver: Option<String>,
        actor: Option<String>,
    ) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let c = self
            .services
            .rollout
            .submit(c.tenant_id, c.id, &actor, approver.as_deref())
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_campaign(c).await
    }

    async fn act(
        &mut self,
        id: u64,
        action: rollout::CampaignAction,
        actor: Option<String>,
        note: String,
    ) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let action = match action {
            rollout::CampaignAction::Submit => Action::Submit,
            rollout::CampaignAction::Approve => Action::Approve,
            rollout::CampaignAction::Reject => Action::Reject,
            rollout::CampaignAction::Start => Action::Start,
            rollout::CampaignAction::Pause => Action::Pause,
            rollout::CampaignAction::Resume => Action::Resume,
            rollout::CampaignAction::Stop => Action::Stop,
            rollout::CampaignAction::Cancel => Action::Cancel,
        };
        let c = self
            .services
            .rollout
            .act(c.tenant_id, c.id, action, &actor, &note)
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_campaign(c).await
    }

    async fn delete_campaign(&mut self, id: u64, actor: Option<String>) -> Result<(), HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        self.services
            .rollout
            .delete_campaign(c.tenant_id, c.id, &actor)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn add_devices(
        &mut self,
        id: u64,
        device_sns: Vec<String>,
        actor: Option<String>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let ids = self
            .services
            .campaign_device_ids(&c, &device_sns)
            .await
            .map_err(|e| self.flow_err(e))?;
        self.services
            .add_devices(&c, &ids, &actor)
            .await
            .map_err(|e| self.flow_err(e))
    }

    async fn remove_devices(
        &mut self,
        id: u64,
        device_sns: Vec<String>,
        actor: Option<String>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let ids = self
            .services
            .campaign_device_ids(&c, &device_sns)
            .await
            .map_err(|e| self.flow_err(e))?;
        self.services
            .rollout
            .remove_devices(c.tenant_id, c.id, &ids, &actor)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn cancel_jobs(
        &mut self,
        campaign_id: u64,
        job_ids: Vec<u64>,
        actor: Option<String>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        let actor = self.actor(actor)?;
        self.services
            .rollout
            .cancel_jobs(c.tenant_id, c.id, &job_ids_of(&job_ids), &actor)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn retry_jobs(
        &mut self,
        campaign_id: u64,
        job_ids: Vec<u64>,
        actor: Option<String>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        let actor = self.actor(actor)?;
        self.services
            .retry_jobs(&c, &job_ids_of(&job_ids), &actor)
            .await
            .map_err(|e| self.flow_err(e))
    }

    async fn list_jobs(
        &mut self,
        campaign_id: u64,
        filter: rollout::JobFilter,
        w: types::Window,
    ) -> Result<rollout::JobPage, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        let (limit, offset) = check_window(w)?;
        let device_id = match &filter.device_sn {
            Some(sn) => {
                let product = self.campaign_product_sn(&c).await?;
                match self
                    .services
                    .catalog
                    .find_device(c.tenant_id, &product, sn)
                    .await
                {
                    Ok(d) => Some(d.id),
                    // An unknown device has no jobs: an empty page, not an error.
                    Err(crate::catalog::CatalogError::NotFound(_)) => Some(-1),
                    Err(e) => return Err(self.catalog_err(e)),
                }
            }
            None => None,
        };
        let filter = JobFilter {
            state: filter.state.map(job_state_from),
            device_id,
        };
        let (list, total) = self
            .services
            .rollout
            .jobs(c.tenant_id, c.id, &filter, limit, offset)
            .await
            .map_err(|e| self.rollout_err(e))?;
        let mut items = Vec::with_capacity(list.len());
        for j in list {
            items.push(self.wit_job(j).await?);
        }
        Ok(rollout::JobPage {
            total: total.max(0) as u64,
            items,
        })
    }

    async fn check_in(
        &mut self,
        product_sn: String,
        device_sn: String,
        module: types::Module,
        identify: u32,
        current: String,
    ) -> Result<Option<rollout::Offer>, HostError> {
        self.check_product(&product_sn)?;
        let current = current.trim().to_string();
        if current.is_empty() || current.len() > 64 {
            return Err(HostError::Invalid(
                "the current version must be 1-64 characters".into(),
            ));
        }
        let device = self.contact_device(&product_sn, &device_sn).await?;
        let offer = self
            .services
            .check_in(
                &device,
                module_from(module).as_str(),
                identify as i64,
                &current,
            )
            .await
            .map_err(|e| self.flow_err(e))?;
        self.services
            .metrics
            .check_in(&self.plugin.name, offer.is_some());
        let Some(offer) = offer else {
            return Ok(None);
        };
        // The plugin's next calls are about this campaign.
        self.offered
            .insert(offer.campaign.id, offer.campaign.clone());
        // Deleting or invalidating a release cancels its campaigns, so an offer's release is
        // live; the read is still tenant-scoped and refuses deleted ones.
        let release = self
            .services
            .catalog
            .offered_release(device.tenant_id, offer.campaign.release_id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(Some(rollout::Offer {
            campaign: self.wit_campaign(offer.campaign).await?,
            job: self.wit_job(offer.job).await?,
            release: release_to(release),
        }))
    }

    async fn report_job(
        &mut self,
        job_id: u64,
        state: rollout::JobState,
        code: Option<i64>,
        text: String,
        version_now: Option<String>,
    ) -> Result<rollout::Job, HostError> {
        let a = self.acting()?;
        let (tenant_id, own) = (a.tenant_id, a.device.as_ref().map(|d| d.id));
        let not_found = || HostError::NotFound(format!("unknown job {job_id}"));
        let id = id_of(job_id, "job")?;
        let job = match self.services.rollout.job(id).await {
            Err(RolloutError::NotFound(_)) => return Err(not_found()),
            other => other.map_err(|e| self.rollout_err(e))?,
        };
        let campaign = self
            .services
            .rollout
            .campaign_by_id(job.campaign_id)
            .await
            .map_err(|e| self.rollout_err(e))?;
        // Another tenant's (or device's) job is unknown: ids reveal nothing.
        if campaign.tenant_id != tenant_id || own.is_some_and(|o| o != job.device_id) {
            return Err(not_found());
        }
        if let Some(v) = &version_now
            && (v.trim().is_empty() || v.len() > 64)
        {
            return Err(HostError::Invalid(
                "a version must be 1-64 characters".into(),
            ));
        }
        self.own_device_current = false;
        let job = self
            .services
            .report_job(
                job.id,
                job.device_id,
                job_state_from(state),
                code,
                &text,
                version_now.as_deref().map(str::trim),
            )
            .await
            .map_err(|e| self.flow_err(e))?;
        self.services
            .metrics
            .job_report(&self.plugin.name, job.state.as_str());
        self.wit_job(job).await
    }

    async fn stats(&mut self, campaign_id: u64) -> Result<rollout::CampaignStats, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        let s = self
            .services
            .rollout
            .stats_of(&c)
            .await
            .map_err(|e| self.rollout_err(e))?;
        let mut by_state: Vec<(rollout::JobState, u64)> = s
            .by_state
            .iter()
            .filter_map(|(k, v)| JobState::parse(k).map(|st| (st, *v)))
            .map(|(st, v)| (job_state_to(st), v.max(0) as u64))
            .collect();
        by_state.sort_by_key(|(st, _)| *st as u8);
        let mut versions: Vec<(String, u64)> = s
            .versions
            .into_iter()
            .map(|(k, v)| (k, v.max(0) as u64))
            .collect();
        versions.sort_by(|a, b| crate::catalog::version::compare(&a.0, &b.0));
        Ok(rollout::CampaignStats {
            total: s.total.max(0) as u64,
            by_state,
            versions,
        })
    }

    async fn campaign_log(
        &mut self,
        campaign_id: u64,
        w: types::Window,
    ) -> Result<rollout::LogPage, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        check_window(w)?;
        let all = self
            .services
            .rollout
            .campaign_log_of(&c)
            .await
            .map_err(|e| self.rollout_err(e))?;
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(w.offset.min(usize::MAX as u64) as usize)
            .take(w.limit as usize)
            .map(|e| rollout::LogEntry {
                at: ms(e.at),
                actor: e.actor,
                action: e.action,
                detail: e.detail,
            })
            .collect();
        Ok(rollout::LogPage { total, items })
    }

    async fn revise(
        &mut self,
        id: u64,
        actor: Option<String>,
    ) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let c = self
            .services
            .rollout
            .act(c.tenant_id, c.id, Action::Revise, &actor, "")
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_campaign(c).await
    }

    async fn count_jobs(
        &mut self,
        campaign_id: u64,
        states: Vec<rollout::JobState>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_readable(campaign_id).await?;
        let states: Vec<JobState> = states.into_iter().map(job_state_from).collect();
        let n = self
            .services
            .rollout
            .count_jobs(&c, &states)
            .await
            .map_err(|e| self.rollout_err(e))?;
        Ok(n.max(0) as u64)
    }

    async fn campaign_attributes(&mut self, id: u64) -> Result<Vec<(String, String)>, HostError> {
        let c = self.campaign_readable(id).await?;
        self.services
            .rollout
            .campaign_attributes(&c)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn set_campaign_attributes(
        &mut self,
        id: u64,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<Vec<(String, String)>, HostError> {
        let c = self.campaign_in_scope(id).await?;
        self.services
            .rollout
            .set_campaign_attributes(c.tenant_id, c.id, &changes)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn search_jobs(
        &mut self,
        query: rollout::JobQuery,
        w: types::Window,
    ) -> Result<rollout::JobEntryPage, HostError> {
        use crate::rollout::search::{Condition, Field, Operator, Query};
        let a = self.acting()?;
        let (tenant_id, only_device) = (a.tenant_id, a.device.as_ref().map(|d| d.id));
        let (limit, offset) = check_window(w)?;
        let field = |f: rollout::JobField| match f {
            rollout::JobField::JobId => Field::JobId,
            rollout::JobField::CampaignId => Field::CampaignId,
            rollout::JobField::DeviceId => Field::DeviceId,
            rollout::JobField::DeviceMac => Field::DeviceMac,
            rollout::JobField::DeviceSn => Field::DeviceSn,
            rollout::JobField::UpdatedAt => Field::UpdatedAt,
        };
        let q = Query {
            conditions: query
                .conditions
                .into_iter()
                .map(|c| Condition {
                    field: field(c.field),
                    operator: match c.operator {
                        rollout::JobOperator::Eq => Operator::Eq,
                        rollout::JobOperator::In => Operator::In,
                        rollout::JobOperator::Lt => Operator::Lt,
                        rollout::JobOperator::Lte => Operator::Lte,
                        rollout::JobOperator::Gt => Operator::Gt,
                        rollout::JobOperator::Gte => Operator::Gte,
                        rollout::JobOperator::Like => Operator::Like,
                    },
                    values: c.values,
                })
                .collect(),
            order: query
                .order
                .into_iter()
                .map(|o| (field(o.field), o.descending))
                .collect(),
            states: query.states.into_iter().map(job_state_from).collect(),
        };
        let (hits, total) = self
            .services
            .rollout
            .search_jobs(tenant_id, only_device, &q, limit, offset)
            .await
            .map_err(|e| self.rollout_err(e))?;
        let mut items = Vec::with_capacity(hits.len());
        for h in hits {
            let product_sn = self.product_sn(h.product_id).await?;
            let device_id = h.job.device_id.max(0) as u64;
            items.push(rollout::JobEntry {
                job: wit_job_of(h.job, h.device_sn),
                product_sn,
                device_id,
                device_mac: h.device_mac,
                module: module_str(&h.module),
                identify: h.identify.clamp(0, i64::from(u32::MAX)) as u32,
            });
        }
        Ok(rollout::JobEntryPage {
            total: total.max(0) as u64,
            items,
        })
    }
}
