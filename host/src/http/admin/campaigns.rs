//! `/admin/api/v1/tenants/{tenant}/campaigns`: create campaigns from a release, move them
//! through approval and their lifecycle (the operator key's name is the actor and the named
//! approver), add devices, and read jobs, statistics and the op log.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Items, Operator, body_json, query};
use crate::catalog::releases::{Page, PageReq};
use crate::flows::{CampaignRequest, ScopeRequest, WaveStart, WavesRequest};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::rollout::RolloutError;
use crate::rollout::campaigns::{
    Action, CampaignFilter, CampaignPatch, CampaignStatus, JobFilter, Mode,
};
use crate::rollout::campaigns::{Campaign, Job, LogEntry, MaintenanceWindow, Stats};
use crate::rollout::job::JobState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(act))
        .routes(routes!(listed, add_devices, remove_devices))
        .routes(routes!(jobs))
        .routes(routes!(log))
}

/// A campaign with its per-state counts and version distribution.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct CampaignDetail {
    #[serde(flatten)]
    campaign: Campaign,
    stats: Stats,
}

/// The serial numbers on a campaign's device list.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Listed {
    devices: Vec<String>,
}

/// How many devices a list change touched.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Changed {
    #[serde(skip_serializing_if = "Option::is_none")]
    added: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<u64>,
}

impl From<RolloutError> for ApiError {
    fn from(e: RolloutError) -> Self {
        match e {
            RolloutError::NotFound(m) => ApiError::NotFound(m),
            RolloutError::Conflict(m) => ApiError::Conflict(m),
            RolloutError::Invalid(m) => ApiError::BadRequest(m),
            RolloutError::Forbidden(m) => ApiError::Forbidden(m),
            RolloutError::Storage(e) => ApiError::Internal(e.to_string()),
        }
    }
}

/// Scope as operators write it: device serial numbers rather than ids.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
enum ScopeIn {
    All,
    Devices(Vec<String>),
    Group(String),
}

impl From<ScopeIn> for ScopeRequest {
    fn from(s: ScopeIn) -> Self {
        match s {
            ScopeIn::All => ScopeRequest::All,
            ScopeIn::Devices(d) => ScopeRequest::Devices(d),
            ScopeIn::Group(g) => ScopeRequest::Group(g),
        }
    }
}

/// A new campaign, made from a release; it starts as a draft.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
    #[serde(default)]
    description: String,
    release_id: i64,
    from_version: Option<String>,
    scope: ScopeIn,
    mode: Mode,
    #[serde(default = "formal")]
    tag: String,
    #[serde(default)]
    retries: u8,
    #[serde(default = "one_day")]
    timeout_secs: u64,
    waves: Option<WavesIn>,
    maintenance_window: Option<WindowIn>,
}

/// A daily window in UTC as operators write it: `{"start": "22:00", "end": "04:00"}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WindowIn {
    start: String,
    end: String,
}

impl WindowIn {
    fn parse(&self) -> Result<MaintenanceWindow, ApiError> {
        let minute = |s: &str| -> Option<u16> {
            let (h, m) = s.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        match (minute(&self.start), minute(&self.end)) {
            (Some(start_min), Some(end_min)) => Ok(MaintenanceWindow { start_min, end_min }),
            _ => Err(ApiError::BadRequest(
                "a maintenance window is {\"start\": \"HH:MM\", \"end\": \"HH:MM\"} in UTC".into(),
            )),
        }
    }
}

/// Waves as operators write them: an initial count or a share of the product's devices.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WavesIn {
    initial: Option<u64>,
    initial_percent: Option<u8>,
    step: u64,
    interval_secs: u64,
    max_failure_pct: Option<u8>,
}

fn formal() -> String {
    "formal".into()
}

fn one_day() -> u64 {
    86_400
}

/// Create a campaign from a release (a test release only for `tag: test`; a delta pins the
/// from-version; a wave share becomes a device count now).
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/campaigns", tag = "campaigns",
    params(("tenant" = String, Path)), request_body = Create,
    responses((status = 201, body = Campaign), (status = 400, body = ErrorBody),
        (status = 404, description = "unknown tenant, release or device", body = ErrorBody),
        (status = 409, description = "the release cannot be used so", body = ErrorBody)))]
async fn create(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let c: Create = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let waves = match c.waves {
        None => None,
        Some(w) => Some(WavesRequest {
            start: match (w.initial, w.initial_percent) {
                (Some(n), None) => WaveStart::Count(n),
                (None, Some(p)) => WaveStart::Percent(p),
                _ => {
                    return Err(ApiError::BadRequest(
                        "waves need exactly one of initial or initial_percent (1-100)".into(),
                    ));
                }
            },
            step: w.step,
            interval_secs: w.interval_secs,
            max_failure_pct: w.max_failure_pct,
        }),
    };
    let campaign = st
        .services
        .create_campaign(
            t.id,
            CampaignRequest {
                release_id: c.release_id,
                name: c.name,
                description: c.description,
                from_version: c.from_version,
                scope: c.scope.into(),
                mode: c.mode,
                tag: c.tag,
                retries: c.retries,
                timeout_secs: c.timeout_secs,
                waves,
                window: c
                    .maintenance_window
                    .as_ref()
                    .map(WindowIn::parse)
                    .transpose()?,
            },
            &op.name,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

/// Campaign list filters as operators write them in the query string.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListFilter {
    /// Product serial number.
    product: Option<String>,
    name: Option<String>,
    module: Option<String>,
    tag: Option<String>,
    status: Option<CampaignStatus>,
}

/// The tenant's campaigns, newest first (`name` matches a case-insensitive substring).
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/campaigns", tag = "campaigns",
    params(("tenant" = String, Path), PageReq, ListFilter),
    responses((status = 200, body = Page<Campaign>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<PageReq>, QueryRejection>,
    f: Result<Query<ListFilter>, QueryRejection>,
) -> Result<Json<Page<Campaign>>, ApiError> {
    let page = query(q)?;
    let f = query(f)?;
    let (limit, offset) = page.checked()?;
    let t = st.services.auth.tenant(&tenant).await?;
    let product_id = match &f.product {
        Some(sn) => Some(st.services.catalog.product(t.id, sn).await?.id),
        None => None,
    };
    let filter = CampaignFilter {
        product_id,
        name_contains: f.name,
        module: f.module,
        identify: None,
        tag: f.tag,
        status: f.status,
    };
    let (items, total) = st
        .services
        .rollout
        .list_campaigns(t.id, &filter, limit, offset)
        .await?;
    Ok(Json(Page::of(items, page, total)))
}

/// One campaign with its statistics.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = CampaignDetail), (status = 404, body = ErrorBody)))]
async fn show(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<CampaignDetail>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
    let stats = st.services.rollout.stats(t.id, id).await?;
    Ok(Json(CampaignDetail { campaign: c, stats }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Note {
    #[serde(default)]
    note: String,
    /// For `submit`: the only operator who may then approve or reject.
    approver: Option<String>,
}

/// Move a campaign through its lifecycle: `submit` (optionally naming the only `approver`),
/// `approve`/`reject` (by the approver), `start` (without approval), `pause`, `resume`,
/// `stop`, `cancel`. An action the current status does not allow is a conflict.
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/actions/{action}", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path), ("action" = Action, Path)),
    request_body(content = Option<Note>, description = "optional"),
    responses((status = 200, body = Campaign), (status = 403, description = "not the named approver", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn act(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id, action)): Path<(String, i64, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Campaign>, ApiError> {
    let action: Action = serde_json::from_value(json!(action))
        .map_err(|_| ApiError::NotFound(format!("no action {action:?}")))?;
    let note: Note = if body.is_empty() {
        Note::default()
    } else {
        body_json(&body)?
    };
    let t = st.services.auth.tenant(&tenant).await?;
    let c = match (action, note.approver.as_deref()) {
        (Action::Submit, approver) => {
            st.services
                .rollout
                .submit(t.id, id, &op.name, approver)
                .await?
        }
        (_, Some(_)) => {
            return Err(ApiError::BadRequest("only submit names an approver".into()));
        }
        (action, None) => {
            st.services
                .rollout
                .act(t.id, id, action, &op.name, &note.note)
                .await?
        }
    };
    Ok(Json(c))
}

/// Changes to an unfinished campaign; omitted fields keep their value; a device list scope
/// replaces the list.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Patch {
    name: Option<String>,
    description: Option<String>,
    retries: Option<u8>,
    timeout_secs: Option<u64>,
    tag: Option<String>,
    scope: Option<ScopeIn>,
    maintenance_window: Option<WindowIn>,
}

#[utoipa::path(patch, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path)), request_body = Patch,
    responses((status = 200, body = Campaign), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn update(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Campaign>, ApiError> {
    let p: Patch = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
    let scope = match p.scope {
        Some(s) => {
            let product = st.services.campaign_product(&c).await?;
            Some(st.services.scope(t.id, &product, s.into()).await?)
        }
        None => None,
    };
    let patch = CampaignPatch {
        name: p.name,
        description: p.description,
        retries: p.retries,
        timeout_secs: p.timeout_secs,
        tag: p.tag,
        scope,
        window: p
            .maintenance_window
            .as_ref()
            .map(WindowIn::parse)
            .transpose()?,
    };
    let c = st
        .services
        .update_campaign(t.id, id, patch, &op.name)
        .await?;
    Ok(Json(c))
}

/// Delete a campaign: an unfinished one is cancelled first; its jobs stay for the record.
#[utoipa::path(delete, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
async fn remove(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    st.services
        .rollout
        .delete_campaign(t.id, id, &op.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The campaign's device list.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/devices", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Listed), (status = 404, body = ErrorBody)))]
async fn listed(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<Listed>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    st.services.rollout.campaign(t.id, id).await?;
    Ok(Json(Listed {
        devices: st.services.rollout.listed_devices(id).await?,
    }))
}

/// Device serial numbers of the campaign's product.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddDevices {
    devices: Vec<String>,
}

/// Put devices on the list (manual campaigns queue them at once).
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/devices", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path)), request_body = AddDevices,
    responses((status = 200, body = Changed), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_devices(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Changed>, ApiError> {
    let a: AddDevices = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
    let ids = st.services.campaign_device_ids(&c, &a.devices).await?;
    let added = st.services.add_devices(&c, &ids, &op.name).await?;
    Ok(Json(Changed {
        added: Some(added),
        removed: None,
    }))
}

/// Take devices off the list; their open jobs are cancelled.
#[utoipa::path(delete, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/devices", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path)), request_body = AddDevices,
    responses((status = 200, body = Changed), (status = 404, body = ErrorBody)))]
async fn remove_devices(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Changed>, ApiError> {
    let a: AddDevices = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
    let ids = st.services.campaign_device_ids(&c, &a.devices).await?;
    let removed = st
        .services
        .rollout
        .remove_devices(t.id, id, &ids, &op.name)
        .await?;
    Ok(Json(Changed {
        added: None,
        removed: Some(removed),
    }))
}

/// Job list filters as operators write them in the query string.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct JobQuery {
    /// A job state (`queued` ... `timed-out`).
    state: Option<String>,
    device: Option<String>,
}

/// The campaign's jobs, oldest first.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/jobs", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path), PageReq, JobQuery),
    responses((status = 200, body = Page<Job>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn jobs(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    q: Result<Query<PageReq>, QueryRejection>,
    f: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Json<Page<Job>>, ApiError> {
    let page = query(q)?;
    let f = query(f)?;
    let (limit, offset) = page.checked()?;
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
    let state = match f.state.as_deref() {
        None => None,
        Some(s) => Some(
            JobState::parse(s)
                .ok_or_else(|| ApiError::BadRequest(format!("unknown state {s:?}")))?,
        ),
    };
    let device_id = match &f.device {
        Some(sn) => {
            let product = st.services.campaign_product(&c).await?;
            Some(
                st.services
                    .catalog
                    .find_device(t.id, &product, sn)
                    .await?
                    .id,
            )
        }
        None => None,
    };
    let filter = JobFilter { state, device_id };
    let (items, total) = st
        .services
        .rollout
        .jobs(t.id, id, &filter, limit, offset)
        .await?;
    Ok(Json(Page::of(items, page, total)))
}

/// The campaign's op log: every change, who made it and when.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/log", tag = "campaigns",
    params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Items<LogEntry>), (status = 404, body = ErrorBody)))]
async fn log(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<Items<LogEntry>>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(Items {
        items: st.services.rollout.campaign_log(t.id, id).await?,
    }))
}
