//! `/admin/api/v1/tenants/{tenant}/campaigns`: create campaigns from a release, move them
//! through approval and their lifecycle (the operator key's name is the actor and the named
//! approver), add devices, and read jobs, statistics and the op log.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Operator, body_json, query};
use crate::catalog::releases::{Page, PageReq};
use crate::flows::{CampaignRequest, ScopeRequest, WaveStart, WavesRequest};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::rollout::RolloutError;
use crate::rollout::campaigns::{
    Action, CampaignFilter, CampaignPatch, CampaignStatus, JobFilter, Mode,
};
use crate::rollout::job::JobState;

pub fn router() -> Router<AppState> {
    let base = "/admin/api/v1/tenants/{tenant}/campaigns";
    Router::new()
        .route(base, get(list).post(create))
        .route(
            &format!("{base}/{{id}}"),
            get(show).patch(update).delete(remove),
        )
        .route(&format!("{base}/{{id}}/actions/{{action}}"), post(act))
        .route(
            &format!("{base}/{{id}}/devices"),
            get(listed).post(add_devices).delete(remove_devices),
        )
        .route(&format!("{base}/{{id}}/jobs"), get(jobs))
        .route(&format!("{base}/{{id}}/log"), get(log))
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
#[derive(Deserialize)]
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

#[derive(Deserialize)]
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
}

/// Waves as operators write them: an initial count or a share of the product's devices.
#[derive(Deserialize)]
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

async fn create(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
            },
            &op.name,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(campaign))))
}

/// Campaign list filters as operators write them in the query string.
#[derive(Deserialize, Default)]
struct ListFilter {
    product: Option<String>,
    name: Option<String>,
    module: Option<String>,
    tag: Option<String>,
    status: Option<CampaignStatus>,
}

async fn list(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<PageReq>, QueryRejection>,
    f: Result<Query<ListFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!(Page::of(items, page, total))))
}

async fn show(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
    let stats = st.services.rollout.stats(t.id, id).await?;
    let mut v = json!(c);
    v["stats"] = json!(stats);
    Ok(Json(v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Note {
    #[serde(default)]
    note: String,
    /// For `submit`: the only operator who may then approve or reject.
    approver: Option<String>,
}

async fn act(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id, action)): Path<(String, i64, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!(c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    name: Option<String>,
    description: Option<String>,
    retries: Option<u8>,
    timeout_secs: Option<u64>,
    tag: Option<String>,
    scope: Option<ScopeIn>,
}

async fn update(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
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
    };
    let c = st
        .services
        .rollout
        .update_campaign(t.id, id, patch, &op.name)
        .await?;
    Ok(Json(json!(c)))
}

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

async fn listed(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    st.services.rollout.campaign(t.id, id).await?;
    Ok(Json(
        json!({ "devices": st.services.rollout.listed_devices(id).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddDevices {
    devices: Vec<String>,
}

async fn add_devices(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let a: AddDevices = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
    let product = st.services.campaign_product(&c).await?;
    let ids = st.services.device_ids(t.id, &product, &a.devices).await?;
    let added = st
        .services
        .rollout
        .add_devices(t.id, id, &ids, &op.name)
        .await?;
    Ok(Json(json!({ "added": added })))
}

async fn remove_devices(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let a: AddDevices = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let c = st.services.rollout.campaign(t.id, id).await?;
    let product = st.services.campaign_product(&c).await?;
    let ids = st.services.device_ids(t.id, &product, &a.devices).await?;
    let removed = st
        .services
        .rollout
        .remove_devices(t.id, id, &ids, &op.name)
        .await?;
    Ok(Json(json!({ "removed": removed })))
}

/// Job list filters as operators write them in the query string.
#[derive(Deserialize, Default)]
struct JobQuery {
    state: Option<String>,
    device: Option<String>,
}

async fn jobs(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    q: Result<Query<PageReq>, QueryRejection>,
    f: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!(Page::of(items, page, total))))
}

async fn log(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(
        json!({ "items": st.services.rollout.campaign_log(t.id, id).await? }),
    ))
}
