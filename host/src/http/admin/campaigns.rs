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
use crate::catalog::releases::{Page, PageReq, ReleaseStatus};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::rollout::RolloutError;
use crate::rollout::campaigns::{Action, Mode, NewCampaign, Scope, Target, Waves};

pub fn router() -> Router<AppState> {
    let base = "/admin/api/v1/tenants/{tenant}/campaigns";
    Router::new()
        .route(base, get(list).post(create))
        .route(&format!("{base}/{{id}}"), get(show))
        .route(&format!("{base}/{{id}}/actions/{{action}}"), post(act))
        .route(&format!("{base}/{{id}}/devices"), post(add_devices))
        .route(&format!("{base}/{{id}}/jobs"), get(jobs))
        .route(&format!("{base}/{{id}}/log"), get(log))
}

impl From<RolloutError> for ApiError {
    fn from(e: RolloutError) -> Self {
        match e {
            RolloutError::NotFound(m) => ApiError::NotFound(m),
            RolloutError::Conflict(m) => ApiError::Conflict(m),
            RolloutError::Invalid(m) => ApiError::BadRequest(m),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
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

async fn device_ids(
    st: &AppState,
    tenant: i64,
    product: &str,
    sns: &[String],
) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::with_capacity(sns.len());
    for sn in sns {
        ids.push(
            st.services
                .catalog
                .find_device(tenant, product, sn)
                .await?
                .id,
        );
    }
    Ok(ids)
}

async fn create(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c: Create = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let release = st.services.catalog.release(t.id, c.release_id).await?;
    let product = st
        .services
        .catalog
        .product(t.id, &release.product_sn)
        .await?;
    match (release.status, c.tag.as_str()) {
        (ReleaseStatus::Invalid, _) => {
            return Err(ApiError::Conflict(format!(
                "release {} is invalid",
                release.id
            )));
        }
        (ReleaseStatus::Test, "formal") => {
            return Err(ApiError::Conflict(format!(
                "release {} is a test release; use tag \"test\" or put it online first",
                release.id
            )));
        }
        _ => {}
    }
    // A delta applies only to the version it was built from.
    let from_version = match (&release.from_version, c.from_version) {
        (Some(base), None) => Some(base.clone()),
        (Some(base), Some(asked)) if *base != asked => {
            return Err(ApiError::BadRequest(format!(
                "release {} is a delta from {base}, not from {asked}",
                release.id
            )));
        }
        (_, asked) => asked,
    };
    let scope = match c.scope {
        ScopeIn::All => Scope::All,
        ScopeIn::Group(g) => Scope::Group(g),
        ScopeIn::Devices(sns) => Scope::Devices(device_ids(&st, t.id, &product.sn, &sns).await?),
    };
    let waves = match c.waves {
        None => None,
        Some(w) => {
            let initial = match (w.initial, w.initial_percent) {
                (Some(n), None) => n,
                (None, Some(p)) if (1..=100).contains(&p) => {
                    let devices = st.services.catalog.count_devices(product.id).await?;
                    (devices as u64 * p as u64).div_ceil(100).max(1)
                }
                _ => {
                    return Err(ApiError::BadRequest(
                        "waves need exactly one of initial or initial_percent (1-100)".into(),
                    ));
                }
            };
            Some(Waves {
                initial,
                step: w.step,
                interval_secs: w.interval_secs,
                max_failure_pct: w.max_failure_pct,
            })
        }
    };
    let campaign = st
        .services
        .rollout
        .create_campaign(
            t.id,
            NewCampaign {
                name: c.name,
                target: Target {
                    release_id: release.id,
                    product_id: product.id,
                    module: release.module.as_str().to_string(),
                    identify: release.identify,
                    version: release.version,
                },
                from_version,
                scope,
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

async fn list(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<PageReq>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = query(q)?;
    let (limit, offset) = page.checked()?;
    let t = st.services.auth.tenant(&tenant).await?;
    let (items, total) = st
        .services
        .rollout
        .list_campaigns(t.id, limit, offset)
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
struct Note {
    #[serde(default)]
    note: String,
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
    let c = st
        .services
        .rollout
        .act(t.id, id, action, &op.name, &note.note)
        .await?;
    Ok(Json(json!(c)))
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
    let release = st.services.catalog.release(t.id, c.release_id).await?;
    let ids = device_ids(&st, t.id, &release.product_sn, &a.devices).await?;
    let added = st
        .services
        .rollout
        .add_devices(t.id, id, &ids, &op.name)
        .await?;
    Ok(Json(json!({ "added": added })))
}

async fn jobs(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    q: Result<Query<PageReq>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = query(q)?;
    let (limit, offset) = page.checked()?;
    let t = st.services.auth.tenant(&tenant).await?;
    let (items, total) = st.services.rollout.jobs(t.id, id, limit, offset).await?;
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
