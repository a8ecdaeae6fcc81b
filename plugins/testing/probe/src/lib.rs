//! A test-only dialect that turns `POST /probe/<call>` with a JSON body of arguments into
//! the host call of that name and answers `{"ok": result}` or `{"err": {"case", "message"}}`.
//! It authenticates first with whatever the caller sent (`x-api-key`, `x-bearer-token`, or
//! `x-device-key` + `x-device-secret`, or nothing); the grant calls need no prior login. The end-to-end tests drive the whole 0.2 contract through
//! it: real component, real linker, real adapters, real database.

use ota_plugin_sdk::{
    Dialect, HostError, Refusal, Request, Response, Router, Window, auth, blobs, catalog, dialect,
    rollout,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

struct Probe;

fn err(e: HostError) -> Value {
    let case = match &e {
        HostError::Unauthenticated(_) => "unauthenticated",
        HostError::Forbidden(_) => "forbidden",
        HostError::NotFound(_) => "not-found",
        HostError::Conflict(_) => "conflict",
        HostError::Invalid(_) => "invalid",
        HostError::Unsupported(_) => "unsupported",
        HostError::Internal(_) => "internal",
    };
    json!({ "err": { "case": case, "message": e.message() } })
}

fn done<T: serde::Serialize>(r: Result<T, HostError>) -> Value {
    match r {
        Ok(v) => json!({ "ok": v }),
        Err(e) => err(e),
    }
}

fn args<T: DeserializeOwned>(body: &Value) -> Result<T, Value> {
    serde_json::from_value(body.clone())
        .map_err(|e| json!({ "err": { "case": "bad-arguments", "message": e.to_string() } }))
}

/// Declares the argument struct of one call and parses the body into it.
macro_rules! take {
    ($body:expr, { $($name:ident : $ty:ty),* $(,)? }) => {{
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct A { $($name: $ty),* }
        match args::<A>($body) {
            Ok(a) => a,
            Err(e) => return e,
        }
    }};
}

fn login(req: &Request) -> Result<(), HostError> {
    if let Some(key) = req.header("x-api-key") {
        auth::verify_api_key(key).map(|_| ())
    } else if let Some(token) = req.header("x-bearer-token") {
        auth::verify_token(token).map(|_| ())
    } else if let (Some(k), Some(s)) = (req.header("x-device-key"), req.header("x-device-secret")) {
        auth::verify_device_secret(k, s).map(|_| ())
    } else {
        auth::anonymous().map(|_| ())
    }
}

fn call(name: &str, b: &Value) -> Value {
    match name {
        "get-product" => {
            let a = take!(b, { sn: String });
            done(catalog::get_product(&a.sn))
        }
        "list-products" => done(catalog::list_products()),
        "register-device" => {
            let a = take!(b, { product_sn: String, device_sn: String });
            done(catalog::register_device(&a.product_sn, &a.device_sn))
        }
        "get-device" => {
            let a = take!(b, { product_sn: String, device_sn: String });
            done(catalog::get_device(&a.product_sn, &a.device_sn))
        }
        "get-device-by-id" => {
            let a = take!(b, { id: u64 });
            done(catalog::get_device_by_id(a.id))
        }
        "update-device" => {
            let a =
                take!(b, { product_sn: String, device_sn: String, patch: catalog::DevicePatch });
            done(catalog::update_device(
                &a.product_sn,
                &a.device_sn,
                &a.patch,
            ))
        }
        "list-devices" => {
            let a = take!(b, { product_sn: String, filter: catalog::DeviceFilter, window: Window });
            done(catalog::list_devices(&a.product_sn, &a.filter, a.window))
        }
        "report-versions" => {
            let a = take!(b, { product_sn: String, device_sn: String, versions: Vec<catalog::ModuleVersion> });
            done(catalog::report_versions(
                &a.product_sn,
                &a.device_sn,
                &a.versions,
            ))
        }
        "put-install-config" => {
            let a = take!(b, { product_sn: String, device_sn: String, config: catalog::InstallConfig, report_url: String });
            done(catalog::put_install_config(
                &a.product_sn,
                &a.device_sn,
                &a.config,
                &a.report_url,
            ))
        }
        "create-release" => {
            let a = take!(b, { release: catalog::NewRelease });
            done(catalog::create_release(&a.release))
        }
        "get-release" => {
            let a = take!(b, { id: u64 });
            done(catalog::get_release(a.id))
        }
        "list-releases" => {
            let a = take!(b, { filter: catalog::ReleaseFilter, window: Window });
            done(catalog::list_releases(&a.filter, a.window))
        }
        "update-release" => {
            let a = take!(b, { id: u64, patch: catalog::ReleasePatch });
            done(catalog::update_release(a.id, &a.patch))
        }
        "set-release-status" => {
            let a = take!(b, { id: u64, status: catalog::ReleaseStatus });
            done(catalog::set_release_status(a.id, a.status))
        }
        "delete-release" => {
            let a = take!(b, { id: u64 });
            done(catalog::delete_release(a.id))
        }
        "product-attributes" => {
            let a = take!(b, { sn: String });
            done(catalog::product_attributes(&a.sn))
        }
        "verify-product-key" => {
            let a = take!(b, { product_sn: String, key: String });
            done(auth::verify_product_key(&a.product_sn, &a.key))
        }
        "cancel-jobs" => {
            let a = take!(b, { campaign_id: u64, job_ids: Vec<u64>, actor: Option<String> });
            done(rollout::cancel_jobs(
                a.campaign_id,
                &a.job_ids,
                a.actor.as_deref(),
            ))
        }
        "retry-jobs" => {
            let a = take!(b, { campaign_id: u64, job_ids: Vec<u64>, actor: Option<String> });
            done(rollout::retry_jobs(
                a.campaign_id,
                &a.job_ids,
                a.actor.as_deref(),
            ))
        }
        "upgrade-path" => {
            let a = take!(b, { id: u64, from_version: String });
            done(catalog::upgrade_path(a.id, &a.from_version))
        }
        "create-campaign" => {
            let a = take!(b, { campaign: rollout::NewCampaign });
            done(rollout::create_campaign(&a.campaign))
        }
        "get-campaign" => {
            let a = take!(b, { id: u64 });
            done(rollout::get_campaign(a.id))
        }
        "list-campaigns" => {
            let a = take!(b, { filter: rollout::CampaignFilter, window: Window });
            done(rollout::list_campaigns(&a.filter, a.window))
        }
        "device-id" => {
            let a = take!(b, { product_sn: String, device_sn: String });
            done(catalog::device_id(&a.product_sn, &a.device_sn))
        }
        "get-campaign-brief" => {
            let a = take!(b, { id: u64 });
            done(rollout::get_campaign_brief(a.id))
        }
        "list-campaign-briefs" => {
            let a = take!(b, { filter: rollout::CampaignFilter, window: Window });
            done(rollout::list_campaign_briefs(&a.filter, a.window))
        }
        "update-campaign" => {
            let a = take!(b, { id: u64, patch: rollout::CampaignPatch });
            done(rollout::update_campaign(a.id, &a.patch))
        }
        "submit" => {
            let a = take!(b, { id: u64, approver: Option<String>, actor: Option<String> });
            done(rollout::submit(
                a.id,
                a.approver.as_deref(),
                a.actor.as_deref(),
            ))
        }
        "act" => {
            let a = take!(b, { id: u64, action: rollout::CampaignAction, actor: Option<String>, note: String });
            done(rollout::act(a.id, a.action, a.actor.as_deref(), &a.note))
        }
        "delete-campaign" => {
            let a = take!(b, { id: u64, actor: Option<String> });
            done(rollout::delete_campaign(a.id, a.actor.as_deref()))
        }
        "add-devices" => {
            let a = take!(b, { id: u64, device_sns: Vec<String>, actor: Option<String> });
            done(rollout::add_devices(
                a.id,
                &a.device_sns,
                a.actor.as_deref(),
            ))
        }
        "remove-devices" => {
            let a = take!(b, { id: u64, device_sns: Vec<String>, actor: Option<String> });
            done(rollout::remove_devices(
                a.id,
                &a.device_sns,
                a.actor.as_deref(),
            ))
        }
        "list-jobs" => {
            let a = take!(b, { campaign_id: u64, filter: rollout::JobFilter, window: Window });
            done(rollout::list_jobs(a.campaign_id, &a.filter, a.window))
        }
        "check-in" => {
            let a = take!(b, { product_sn: String, device_sn: String, module: ota_plugin_sdk::Module, identify: u32, current: String });
            done(rollout::check_in(
                &a.product_sn,
                &a.device_sn,
                a.module,
                a.identify,
                &a.current,
            ))
        }
        "report-job" => {
            let a = take!(b, { job_id: u64, state: rollout::JobState, code: Option<i64>, text: String, version_now: Option<String> });
            done(rollout::report_job(
                a.job_id,
                a.state,
                a.code,
                &a.text,
                a.version_now.as_deref(),
            ))
        }
        "stats" => {
            let a = take!(b, { campaign_id: u64 });
            done(rollout::stats(a.campaign_id))
        }
        "campaign-log" => {
            let a = take!(b, { campaign_id: u64, window: Window });
            done(rollout::campaign_log(a.campaign_id, a.window))
        }
        "stat" => {
            let a = take!(b, { id: String });
            done(blobs::stat(&a.id))
        }
        "download-url" => {
            let a = take!(b, { id: String, ttl_seconds: Option<u32> });
            done(blobs::download_url(&a.id, a.ttl_seconds))
        }
        "post-policy" => {
            let a = take!(b, { dir: String, max_bytes: u64, ttl_seconds: u32, callback: Option<blobs::UploadCallback> });
            done(blobs::post_policy(
                &a.dir,
                a.max_bytes,
                a.ttl_seconds,
                a.callback.as_ref(),
            ))
        }
        "get-object" => {
            let a = take!(b, { key: String });
            done(blobs::get_object(&a.key))
        }
        "find-url" => {
            let a = take!(b, { url: String });
            done(blobs::find_url(&a.url))
        }
        "release-attributes" => {
            let a = take!(b, { id: u64 });
            done(catalog::release_attributes(a.id))
        }
        "set-release-attributes" => {
            let a = take!(b, { id: u64, changes: Vec<(String, Option<String>)> });
            done(catalog::set_release_attributes(a.id, &a.changes))
        }
        "revise" => {
            let a = take!(b, { id: u64, actor: Option<String> });
            done(rollout::revise(a.id, a.actor.as_deref()))
        }
        "campaign-attributes" => {
            let a = take!(b, { id: u64 });
            done(rollout::campaign_attributes(a.id))
        }
        "set-campaign-attributes" => {
            let a = take!(b, { id: u64, changes: Vec<(String, Option<String>)> });
            done(rollout::set_campaign_attributes(a.id, &a.changes))
        }
        "count-jobs" => {
            let a = take!(b, { campaign_id: u64, states: Vec<rollout::JobState> });
            done(rollout::count_jobs(a.campaign_id, &a.states))
        }
        "search-jobs" => {
            let a = take!(b, { query: rollout::JobQuery, window: Window });
            done(rollout::search_jobs(&a.query, a.window))
        }
        other => json!({ "err": { "case": "no-such-call", "message": other } }),
    }
}

fn grant(name: &str, b: &Value) -> Option<Value> {
    let answer = |r: Result<auth::TokenGrant, auth::GrantError>| match r {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "err": e }),
    };
    Some(match name {
        "password-grant" => {
            #[derive(Deserialize)]
            struct A {
                client: Option<auth::ClientCredentials>,
                username: String,
                password: String,
            }
            match args::<A>(b) {
                Ok(a) => answer(auth::password_grant(
                    a.client.as_ref(),
                    &a.username,
                    &a.password,
                )),
                Err(e) => e,
            }
        }
        "device-login" => {
            #[derive(Deserialize)]
            struct A {
                product_sn: String,
                mac: String,
                product_key: String,
            }
            match args::<A>(b) {
                Ok(a) => answer(auth::device_login(&a.product_sn, &a.mac, &a.product_key)),
                Err(e) => e,
            }
        }
        "refresh-grant" => {
            #[derive(Deserialize)]
            struct A {
                client: Option<auth::ClientCredentials>,
                refresh_token: String,
            }
            match args::<A>(b) {
                Ok(a) => answer(auth::refresh_grant(a.client.as_ref(), &a.refresh_token)),
                Err(e) => e,
            }
        }
        "verify-hmac-sha1" => {
            #[derive(Deserialize)]
            struct A {
                key_id: String,
                message: String,
                signature: Vec<u8>,
                timestamp_millis: Option<u64>,
            }
            match args::<A>(b) {
                Ok(a) => done(auth::verify_hmac_sha1(
                    &a.key_id,
                    a.message.as_bytes(),
                    &a.signature,
                    a.timestamp_millis,
                )),
                Err(e) => e,
            }
        }
        "revoke-token" => {
            #[derive(Deserialize)]
            struct A {
                token: String,
            }
            match args::<A>(b) {
                Ok(a) => done(auth::revoke_token(&a.token)),
                Err(e) => e,
            }
        }
        _ => return None,
    })
}

fn probe(req: &Request) -> Response {
    let name = req.param("call").unwrap_or_default().to_string();
    let body: Value = if req.body().is_empty() {
        json!({})
    } else {
        match req.json() {
            Ok(v) => v,
            Err(e) => return Response::json(400, &json!({ "err": e.to_string() })),
        }
    };
    // The grants establish the principal themselves; they run before any other login.
    if let Some(answer) = grant(&name, &body) {
        return Response::json(200, &answer);
    }
    if let Err(e) = login(req) {
        return Response::json(200, &err(e));
    }
    Response::json(200, &call(&name, &body))
}

impl Dialect for Probe {
    const NAME: &'static str = "probe";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "Test";
    const DESCRIPTION: &'static str = "every host call of the contract, over HTTP";

    fn router() -> Router {
        Router::new().post("/probe/{call}", probe)
    }

    fn refuse(_: &Request, _: Refusal) -> Response {
        Response::json(413, &json!({ "err": "too large" }))
    }
}

dialect!(Probe);
