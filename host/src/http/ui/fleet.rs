//! Fleet pages: devices, searched as the operator types, and every tenant's releases.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::session::Session;
use super::{Tab, UiError, ok, when};
use crate::catalog::releases::{PageReq, ReleaseFilter};
use crate::http::AppState;

/// Most devices one search shows.
const DEVICES_SHOWN: i64 = 100;

/// Releases listed per tenant (newest first; the API's largest page).
const RELEASES_PER_TENANT: u32 = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/devices", get(devices))
        .route("/ui/devices/rows", get(device_rows))
        .route("/ui/releases", get(releases))
}

#[derive(Deserialize, Default)]
struct Search {
    #[serde(default)]
    q: String,
}

/// One device as listed.
struct DeviceRow {
    tenant: String,
    product: String,
    sn: String,
    name: String,
    mac: String,
    imei: String,
    group: String,
    online: String,
    created: String,
}

#[derive(Template)]
#[template(path = "ui/devices.html")]
struct DevicesPage {
    tab: Option<super::Tab>,
    operator: String,
    q: String,
    rows: Vec<DeviceRow>,
}

#[derive(Template)]
#[template(path = "ui/device_rows.html")]
struct DeviceRowsFragment {
    q: String,
    rows: Vec<DeviceRow>,
}

/// Tenant names by id.
async fn tenant_names(st: &AppState) -> Result<HashMap<i64, String>, UiError> {
    Ok(st
        .services
        .auth
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect())
}

async fn find(st: &AppState, q: &str) -> Result<Vec<DeviceRow>, UiError> {
    let tenants = tenant_names(st).await?;
    let found = st.services.catalog.search_devices(q, DEVICES_SHOWN).await?;
    Ok(found
        .into_iter()
        .map(|d| DeviceRow {
            tenant: tenants.get(&d.tenant_id).cloned().unwrap_or_default(),
            product: d.product_sn,
            sn: d.sn,
            name: d.name.unwrap_or_default(),
            mac: d.mac.unwrap_or_default(),
            imei: d.imei.unwrap_or_default(),
            group: d.group.unwrap_or_default(),
            online: when(d.online_at),
            created: when(Some(d.created_at)),
        })
        .collect())
}

async fn devices(
    Session(op): Session,
    State(st): State<AppState>,
    q: Result<Query<Search>, QueryRejection>,
) -> Result<Response, UiError> {
    let q = q.map(|Query(s)| s.q).unwrap_or_default();
    Ok(ok(&DevicesPage {
        tab: Some(Tab::Devices),
        operator: op.name,
        rows: find(&st, &q).await?,
        q,
    }))
}

async fn device_rows(
    _: Session,
    State(st): State<AppState>,
    q: Result<Query<Search>, QueryRejection>,
) -> Result<Response, UiError> {
    let q = q.map(|Query(s)| s.q).unwrap_or_default();
    Ok(ok(&DeviceRowsFragment {
        rows: find(&st, &q).await?,
        q,
    }))
}

/// One release as listed.
struct ReleaseRow {
    id: i64,
    tenant: String,
    product: String,
    module: String,
    name: String,
    version: String,
    from_version: String,
    size: u64,
    status: &'static str,
    file: String,
    created: String,
}

#[derive(Template)]
#[template(path = "ui/releases.html")]
struct ReleasesPage {
    tab: Option<Tab>,
    operator: String,
    rows: Vec<ReleaseRow>,
}

async fn releases(Session(op): Session, State(st): State<AppState>) -> Result<Response, UiError> {
    let mut rows = Vec::new();
    for t in st.services.auth.list_tenants().await? {
        let page = PageReq {
            page: 1,
            page_size: RELEASES_PER_TENANT,
            offset: None,
        };
        let listed = st
            .services
            .catalog
            .list_releases(t.id, &ReleaseFilter::default(), page)
            .await?;
        rows.extend(listed.items.into_iter().map(|r| ReleaseRow {
            id: r.id,
            tenant: t.name.clone(),
            product: r.product_sn,
            module: match r.module.as_str() {
                "sub" => format!("sub {}", r.identify),
                m => m.to_string(),
            },
            name: r.name,
            version: r.version,
            from_version: r.from_version.unwrap_or_default(),
            size: r.size,
            status: r.status.as_str(),
            file: match (r.blob_sha256, r.external_url) {
                (Some(sha), _) => format!("sha256 {}…", &sha[..sha.len().min(12)]),
                (None, Some(url)) => url,
                (None, None) => String::new(),
            },
            created: when(Some(r.created_at)),
        }));
    }
    Ok(ok(&ReleasesPage {
        tab: Some(Tab::Releases),
        operator: op.name,
        rows,
    }))
}
