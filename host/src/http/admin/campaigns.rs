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

use super::{Items, Operator, Paging, body_json, query};
use crate::catalog::releases::Page;
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
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, update_campaign, delete_campaign))
        .routes(routes!(act_on_campaign))
        .routes(routes!(
            list_campaign_devices,
            add_campaign_devices,
            remove_campaign_devices
        ))
        .routes(routes!(list_campaign_jobs))
        .routes(routes!(get_campaign_log))
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
    /// Every device of the product.
    All,
    /// These devices (serial numbers).
    Devices(Vec<String>),
    /// The devices of this group (not blank).
    Group(GroupName),
}

/// A device group's name: not blank.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(
    pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)]
struct GroupName(String);

impl From<ScopeIn> for ScopeRequest {
    fn from(s: ScopeIn) -> Self {
        match s {
            ScopeIn::All => ScopeRequest::All,
            ScopeIn::Devices(d) => ScopeRequest::Devices(d),
            ScopeIn::Group(GroupName(g)) => ScopeRequest::Group(g),
        }
    }
}

/// A new campaign, made from a release; it starts as a draft.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateCampaign {
    /// 1-128 characters, not blank.
    #[schema(
        max_length = 128,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: String,
    /// At most 1024 characters.
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    release_id: i64,
    /// Only devices on this version (older than the release's); a delta release sets it.
    from_version: Option<String>,
    scope: ScopeIn,
    /// Register the scope's devices the product does not know yet (they have not checked
    /// in) instead of refusing (404) [default: false, so a mistyped serial number is caught].
    #[serde(default)]
    register_devices: bool,
    mode: Mode,
    /// `test` or `formal` [default: `formal`]; a test release only for `test`.
    #[serde(default = "formal")]
    #[schema(pattern = "^(test|formal)$")]
    tag: String,
    /// Further attempts after a failure or timeout, 0-3.
    #[serde(default)]
    #[schema(maximum = 3)]
    retries: u8,
    /// How long a notified device has to finish, 1 s to 30 days [default: a day].
    #[serde(default = "one_day")]
    #[schema(minimum = 1, maximum = 2_592_000)]
    timeout_secs: u64,
    waves: Option<WavesIn>,
    maintenance_window: Option<WindowIn>,
}

/// A daily window in UTC as operators write it: `{"start": "22:00", "end": "04:00"}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WindowIn {
    /// `HH:MM`, UTC.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    start: String,
    /// `HH:MM`, UTC; before `start` spans midnight, never equal to it.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    end: String,
}

impl WindowIn {
    fn parse(&self) -> Result<MaintenanceWindow, ApiError> {
        // Exactly `HH:MM`, as documented: the document's pattern and this agree.
        let minute = |s: &str| -> Option<u16> {
            let (h, m) = s.split_once(':')?;
            let digits = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
            if !(digits(h) && digits(m)) {
                return None;
            }
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
    /// Devices in the first wave, 1-10000000 (or give `initial_percent`).
    #[schema(minimum = 1, maximum = 10_000_000)]
    initial: Option<u64>,
    /// The first wave as a share of the product's devices, 1-100 (or give `initial`).
    #[schema(minimum = 1, maximum = 100)]
    initial_percent: Option<u8>,
    /// Devices admitted per later wave, up to 10000000.
    #[schema(maximum = 10_000_000)]
    step: u64,
    /// Seconds between waves, 1 s to a year.
    #[schema(minimum = 1, maximum = 31_622_400)]
    interval_secs: u64,
    /// Pause when failed and timed-out jobs reach this share of finished ones, 1-100.
    #[schema(minimum = 1, maximum = 100)]
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
    operation_id = "create_campaign", params(("tenant" = String, Path)), request_body = CreateCampaign,
    responses((status = 201, body = Campaign),
        (status = 400, description = "waves without exactly one of initial or initial_percent, a from_version \
            the release cannot start from, or a window whose start and end are equal", body = ErrorBody),
        (status = 404, description = "unknown tenant, release or device", body = ErrorBody),
        (status = 409, description = "the release cannot be used so", body = ErrorBody)))]
async fn create_campaign(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let c: CreateCampaign = body_json(&body)?;
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
                register_devices: c.register_devices,
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
    operation_id = "list_campaigns", params(("tenant" = String, Path), Paging, ListFilter),
    responses((status = 200, body = Page<Campaign>), (status = 404, description = "unknown tenant or product", body = ErrorBody)))]
async fn list_campaigns(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<Paging>, QueryRejection>,
    f: Result<Query<ListFilter>, QueryRejection>,
) -> Result<Json<Page<Campaign>>, ApiError> {
    let page = query(q)?.req()?;
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
    operation_id = "get_campaign", params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = CampaignDetail), (status = 404, description = "unknown tenant or campaign", body = ErrorBody)))]
async fn get_campaign(
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
    /// Why, for the op log.
    #[serde(default)]
    note: String,
    /// For `submit` only: the only operator who may then approve or reject.
    approver: Option<String>,
}

/// Move a campaign through its lifecycle: `submit` (optionally naming the only `approver`),
/// `approve`/`reject` (by the approver), `start` (without approval), `pause`, `resume`,
/// `stop`, `cancel`. An action the current status does not allow is a conflict.
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/actions/{action}", tag = "campaigns",
    operation_id = "act_on_campaign",
    params(("tenant" = String, Path), ("id" = i64, Path), ("action" = Action, Path)),
    request_body(content = Option<Note>, description = "optional"),
    responses((status = 200, body = Campaign),
        (status = 400, description = "an approver named by another action than submit", body = ErrorBody),
        (status = 403, description = "not the named approver", body = ErrorBody),
        (status = 404, description = "unknown tenant, campaign or action", body = ErrorBody),
        (status = 409, description = "the campaign's status does not allow the action", body = ErrorBody)))]
async fn act_on_campaign(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id, action)): Path<(String, i64, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Campaign>, ApiError> {
    let action: Action = serde_json::from_value(json!(action))
        .map_err(|_| ApiError::NotFound(format!("no action {action:?}")))?;
    // The body is optional: none, or `null`, is an empty note.
    let note: Note = if body.is_empty() {
        Note::default()
    } else {
        body_json::<Option<Note>>(&body)?.unwrap_or_default()
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
struct PatchCampaign {
    /// 1-128 characters, not blank.
    #[schema(
        max_length = 128,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: Option<String>,
    /// At most 1024 characters.
    #[schema(max_length = 1024)]
    description: Option<String>,
    /// 0-3.
    #[schema(maximum = 3)]
    retries: Option<u8>,
    /// 1 s to 30 days.
    #[schema(minimum = 1, maximum = 2_592_000)]
    timeout_secs: Option<u64>,
    /// `test` or `formal`.
    #[schema(pattern = "^(test|formal)$")]
    tag: Option<String>,
    scope: Option<ScopeIn>,
    maintenance_window: Option<WindowIn>,
}

/// Change an unfinished campaign.
#[utoipa::path(patch, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}", tag = "campaigns",
    operation_id = "update_campaign", params(("tenant" = String, Path), ("id" = i64, Path)),
    request_body = PatchCampaign,
    responses((status = 200, body = Campaign),
        (status = 400, description = "a window whose start and end are equal", body = ErrorBody),
        (status = 404, description = "unknown tenant, campaign or device", body = ErrorBody),
        (status = 409, description = "the campaign is stopped, finished or cancelled", body = ErrorBody)))]
async fn update_campaign(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Campaign>, ApiError> {
    let p: PatchCampaign = body_json(&body)?;
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
    operation_id = "delete_campaign", params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 204, description = "deleted"), (status = 404, description = "unknown tenant or campaign", body = ErrorBody)))]
async fn delete_campaign(
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
    operation_id = "list_campaign_devices", params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Listed), (status = 404, description = "unknown tenant or campaign", body = ErrorBody)))]
async fn list_campaign_devices(
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
struct DeviceList {
    devices: Vec<String>,
}

/// Put devices on the list (manual campaigns queue them at once).
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/devices", tag = "campaigns",
    operation_id = "add_campaign_devices", params(("tenant" = String, Path), ("id" = i64, Path)),
    request_body = DeviceList,
    responses((status = 200, body = Changed), (status = 404, description = "unknown tenant, campaign or device", body = ErrorBody),
        (status = 409, description = "the campaign cannot take more devices", body = ErrorBody)))]
async fn add_campaign_devices(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Changed>, ApiError> {
    let a: DeviceList = body_json(&body)?;
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
    operation_id = "remove_campaign_devices", params(("tenant" = String, Path), ("id" = i64, Path)),
    request_body = DeviceList,
    responses((status = 200, body = Changed), (status = 404, description = "unknown tenant, campaign or device", body = ErrorBody)))]
async fn remove_campaign_devices(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Changed>, ApiError> {
    let a: DeviceList = body_json(&body)?;
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
    state: Option<JobState>,
    /// Device serial number.
    device: Option<String>,
}

/// The campaign's jobs, oldest first.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/jobs", tag = "campaigns",
    operation_id = "list_campaign_jobs",
    params(("tenant" = String, Path), ("id" = i64, Path), Paging, JobQuery),
    responses((status = 200, body = Page<Job>), (status = 404, description = "unknown tenant, campaign or device", body = ErrorBody)))]
async fn list_campaign_jobs(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    q: Result<Query<Paging>, QueryRejection>,
    f: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Json<Page<Job>>, ApiError> {
    let page = query(q)?.req()?;
    let f = query(f)?;
    let (limit, offset) = page.checked()?;
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
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
    let filter = JobFilter {
        state: f.state,
        device_id,
    };
    let (items, total) = st
        .services
        .rollout
        .jobs(t.id, id, &filter, limit, offset)
        .await?;
    Ok(Json(Page::of(items, page, total)))
}

/// The campaign's op log: every change, who made it and when.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/campaigns/{id}/log", tag = "campaigns",
    operation_id = "get_campaign_log", params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Items<LogEntry>), (status = 404, description = "unknown tenant or campaign", body = ErrorBody)))]
async fn get_campaign_log(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<Items<LogEntry>>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(Items {
        items: st.services.rollout.campaign_log(t.id, id).await?,
    }))
}
