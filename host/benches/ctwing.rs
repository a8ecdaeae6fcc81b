//! Plugin path vs native handler for CTWing's task query (QueryRemoteUpgradeTask),
//! `GET /aep_upgrade_management/task?id=&productId=&MasterKey=`: the request's HMAC-SHA1
//! signature verified as the AEP SDKs sign it, the product and its `MasterKey` checked, its
//! protocol read from the product attributes, the task and its firmware loaded, how long it
//! has run (its op log) and whether it has devices (its statistics) rendered in CTWing's
//! envelope. One running manual task (as CTWing makes them: devices join through
//! `/operational`) with `BENCH_DEVICES` devices (1 000). Every request is signed when sent.
//! Prints requests/s, p50/p99 and the ratio. Run: `cargo bench -p ota-host --bench ctwing`
//! (`BENCH_DEVICES`, `BENCH_REQUESTS`, `BENCH_CONCURRENCY`, `BENCH_DB=postgres`).

mod support;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use ota_host::Services;
use ota_host::catalog::releases::Module;
use ota_host::rollout::campaigns::{Action, CampaignStatus, Mode, NewCampaign, Scope};
use serde_json::{Value, json};
use sha1::Sha1;

const APP_KEY: &str = "dAaFG7DiPt8";
const APP_SECRET: &str = "p6mYxUBsvw";
const PRODUCT: &str = "10005977";
const MASTER_KEY: &str = "mk-10005977";
const PATH: &str = "/aep_upgrade_management/task";
/// China time, the dialect's default `utc-offset-minutes`.
const OFFSET_SECS: i32 = 8 * 3600;

/// The string the AEP SDKs sign: application, timestamp, the query sorted by name, and the
/// body when it is not blank (a GET has none).
fn string_to_sign(application: &str, timestamp: &str, query: &[(String, String)]) -> Vec<u8> {
    let mut params: Vec<&(String, String)> = query.iter().collect();
    params.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = format!("application:{application}\ntimestamp:{timestamp}\n");
    for (name, value) in params {
        s.push_str(&format!("{name}:{value}\n"));
    }
    s.into_bytes()
}

fn hmac_b64(message: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `yyyy-MM-dd HH:mm:ss` in China time.
fn datetime(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap()
        .to_offset(time::UtcOffset::from_whole_seconds(OFFSET_SECS).unwrap())
        .format(&format)
        .unwrap()
}

/// `jobStatus`: 1 not started, 2 upgrading, 3 ended.
fn job_status(s: CampaignStatus) -> u8 {
    match s {
        CampaignStatus::Draft | CampaignStatus::Pending => 1,
        CampaignStatus::Running | CampaignStatus::Paused => 2,
        CampaignStatus::Stopped | CampaignStatus::Finished | CampaignStatus::Cancelled => 3,
    }
}

/// The native twin of the plugin's task query: the same checks, reads and answer.
async fn native_show(
    State(s): State<Services>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let refuse = |status: u16, msg: &str| {
        (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"code": status, "msg": msg, "result": null})),
        )
    };
    let query: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    let (Some(app), Some(timestamp), Some(signature)) = (
        header("application"),
        header("timestamp"),
        header("signature"),
    ) else {
        return refuse(401, "Unauthorized: missing signature headers");
    };
    let (Ok(millis), Ok(signature)) = (
        timestamp.parse::<i64>(),
        base64::engine::general_purpose::STANDARD.decode(signature),
    ) else {
        return refuse(401, "Unauthorized: bad timestamp or signature");
    };
    let message = string_to_sign(app, timestamp, &query);
    let Ok(id) = s
        .auth
        .verify_hmac_sha1("ctwing", app, &message, &signature, Some(millis), 900)
        .await
    else {
        return refuse(401, "Unauthorized: signature mismatch");
    };
    let tenant = id.tenant.id;
    let (Some(sn), Some(task_id)) = (q("productId"), q("id").and_then(|v| v.parse().ok())) else {
        return refuse(400, "Bad request: productId and id are required");
    };
    let Ok(product) = s.catalog.product(tenant, sn).await else {
        return refuse(404, "Not found: unknown product");
    };
    let key = header("masterkey").or_else(|| q("MasterKey"));
    if let Some(key) = key
        && s.auth.verify_product_key(product.id, key).await.is_err()
    {
        return refuse(403, "Forbidden: wrong MasterKey");
    }
    let attrs = s.catalog.product_attributes(tenant, sn).await.unwrap();
    let lwm2m = attrs
        .iter()
        .find(|(k, _)| k == "ctwing.protocol")
        .is_none_or(|(_, v)| v.eq_ignore_ascii_case("lwm2m") || v == "3");
    let Ok(c) = s.rollout.campaign(tenant, task_id).await else {
        return refuse(404, "Not found: unknown task");
    };
    if c.product_id != product.id {
        return refuse(404, "Not found: unknown task");
    }
    let r = s.catalog.release(tenant, c.release_id).await.unwrap();
    let log = s.rollout.campaign_log(tenant, c.id).await.unwrap();
    let started = log
        .iter()
        .find(|e| e.action == "start" || e.action == "approve")
        .map(|e| e.at);
    let take_time = started.map_or_else(String::new, |at| {
        let minutes = (s.clock.now_millis() - at).max(0) / 60_000;
        format!("{}时{}分", minutes / 60, minutes % 60)
    });
    let devices = s.rollout.stats(tenant, c.id).await.unwrap().total;
    (
        StatusCode::OK,
        Json(json!({"code": 0, "msg": "ok", "result": {
            "jobId": c.id,
            "productId": sn.parse::<u64>().unwrap_or(0),
            "tenantId": id.tenant.name,
            "jobName": c.name,
            "jobStatus": job_status(c.status),
            "deviceStatus": u8::from(devices > 0),
            "firmwareName": r.name,
            "outTime": if lwm2m { 0 } else { c.timeout_secs / 3600 },
            "firmwareId": r.id,
            "firmwareUrl": r.external_url.unwrap_or_default(),
            "fileName": r.name,
            "firmwareVersion": r.version,
            "jobDesc": c.description,
            "takeTime": take_time,
            "createTime": datetime(c.created_at),
            "upgradePlan": 1,
            "retryTimes": if lwm2m { c.retries } else { 0 },
            "productName": product.name,
        }})),
    )
}

/// The LWM2M product with its MasterKey, the app key, and one running manual task with
/// `devices` devices in it; answers the task's id.
async fn provision(s: &Services, devices: usize) -> i64 {
    let tenant = s.auth.tenant("bench").await.unwrap();
    s.auth
        .create_hmac_key("bench", "ctwing", Some(APP_KEY), Some(APP_SECRET))
        .await
        .unwrap();
    s.catalog
        .set_product_attributes(
            tenant.id,
            PRODUCT,
            &[("ctwing.protocol".into(), Some("lwm2m".into()))],
        )
        .await
        .unwrap();
    let p = s.catalog.product(tenant.id, PRODUCT).await.unwrap();
    s.auth
        .set_product_key(p.id, Some(MASTER_KEY), None)
        .await
        .unwrap();
    let ids = support::bulk_devices(s, p.id, devices, None).await;
    let r = support::online_release(s, tenant.id, PRODUCT, Module::Mcu, 0, "2.0").await;
    // As CreateRemoteUpgradeTask makes it: manual, devices join through /operational.
    let task = NewCampaign {
        description: "meters to 2.0".into(),
        retries: 1,
        timeout_secs: 86_400,
        ..support::new_campaign(
            p.id,
            &r,
            "北向测试",
            Scope::Devices(Vec::new()),
            Mode::Manual,
        )
    };
    let c = s
        .rollout
        .create_campaign(tenant.id, task, "bench")
        .await
        .unwrap();
    s.rollout
        .add_devices(tenant.id, c.id, &ids, "bench", false)
        .await
        .unwrap();
    s.rollout
        .act(tenant.id, c.id, Action::Start, "bench", "")
        .await
        .unwrap();
    c.id
}

/// A signed `GET /task` as the AEP SDKs send it; answers the status and body.
async fn query_task(client: &reqwest::Client, base: &str, task: i64) -> (u16, Value) {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let query = vec![
        ("id".to_string(), task.to_string()),
        ("productId".to_string(), PRODUCT.to_string()),
        ("MasterKey".to_string(), MASTER_KEY.to_string()),
    ];
    let signature = hmac_b64(&string_to_sign(APP_KEY, &timestamp, &query));
    let r = client
        .get(format!(
            "{base}{PATH}?id={task}&productId={PRODUCT}&MasterKey={MASTER_KEY}"
        ))
        .header("application", APP_KEY)
        .header("timestamp", timestamp)
        .header("signature", signature)
        .header("version", "20190615001509")
        .header("MasterKey", MASTER_KEY)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn main() {
    let devices = support::env("BENCH_DEVICES", 1_000) as usize;
    let requests = support::env("BENCH_REQUESTS", 10_000) as usize;
    let concurrency = support::env("BENCH_CONCURRENCY", 16) as usize;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let file = support::tenant(&[PRODUCT], &[]);
        let (server, _dir) = support::start("ota_plugin_ctwing.wasm", "ctwing.wasm", file).await;
        let s = server.services.clone();
        let task = provision(&s, devices).await;
        let native_base = support::serve(
            axum::Router::new()
                .route(PATH, get(native_show))
                .with_state(s.clone()),
        )
        .await;
        let client = reqwest::Client::new();
        // Same answer from both paths, byte for byte once parsed.
        let (plugin_status, a) = query_task(&client, &server.url(), task).await;
        let (native_status, b) = query_task(&client, &native_base, task).await;
        assert_eq!((plugin_status, native_status), (200, 200), "{a} {b}");
        assert_eq!(a, b, "plugin and native answers differ");

        let send = {
            let client = client.clone();
            move |base: String| {
                let client = client.clone();
                async move {
                    let (status, v) = query_task(&client, &base, task).await;
                    assert_eq!(status, 200, "{v}");
                    assert_eq!(v["result"]["deviceStatus"], 1, "{v}");
                }
            }
        };
        println!(
            "ctwing GET {PATH} (signed, MasterKey, a running task of {devices} devices), {concurrency} concurrent clients, {}",
            support::database_name()
        );
        let native = support::round(&vec![native_base; requests], concurrency, send.clone()).await;
        let plugin = support::round(&vec![server.url(); requests], concurrency, send).await;
        support::report(&[("task query", native, plugin)]);
        server.shutdown().await;
    });
}
