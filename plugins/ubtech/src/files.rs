//! `/file/download` and `/file/callback`: a robot asks which files take its package to the
//! newest release, installs them, and reports each one.
//!
//! Download answers, all HTTP 200 with a valid token:
//! - `"100"`, `data` = the `;`-joined download URLs of the shortest patch chain from the
//!   robot's `version` to the release its campaign offers (or that release's full package
//!   when no chain exists), `id` = the matching `;`-joined release ids;
//! - `"100"` with `data` and `id` empty: the robot already runs the newest release, nothing
//!   to do (a robot tells this from an error by the code, and from an update by the empty
//!   `data`);
//! - `"102"`: the package or file is unknown, or the robot claims a version newer than any
//!   release;
//! - `"103"`: a newer release exists but no running campaign reaches this robot;
//! - `"104"`: the package and file exist, but have no release in this language.
//!
//! Callback `code`: `1` success (the robot's version becomes the release's; the job succeeds
//! once the campaign's target is reached, an intermediate patch marks it installing), `2`
//! failure (the job fails; the campaign's retries apply), `3` not updated yet (downloading),
//! `0` no status (notified). Reports the job's state does not allow any more are recorded
//! nowhere and still answered `"100"`: robots retransmit. A robot this server has never seen
//! (updated some other way) is registered by its callback, which answers `"101"` (created);
//! an unknown release id is `"102"`.

use ota_plugin_sdk::catalog::{self, ModuleVersion, Release, ReleaseFilter};
use ota_plugin_sdk::rollout::{self, CampaignFilter, CampaignStatus, JobState};
use ota_plugin_sdk::{HostError, Module, Request, Response, Window, auth};

use crate::errors::{Envelope, UbError};
use crate::params::Params;

const PAGE: u32 = 200;

fn respond(result: Result<Response, UbError>) -> Response {
    result.unwrap_or_else(UbError::into_response)
}

fn answer(code: &str, data: String, id: Option<String>) -> Response {
    Response::json(
        200,
        &Envelope {
            code,
            data,
            id,
            error: None,
            error_description: None,
        },
    )
}

fn ok(data: String, id: Option<String>) -> Response {
    answer("100", data, id)
}

/// The token as a query parameter (as printed) or `Authorization: Bearer`.
fn authenticate(req: &Request, p: &Params) -> Result<(), UbError> {
    let token = p
        .get("access_token")
        .or_else(|| req.bearer_token().map(str::to_string))
        .ok_or_else(|| UbError::BadToken("missing access_token".into()))?;
    auth::verify_token(&token).map_err(|e| match e {
        HostError::Unauthenticated(m) => UbError::BadToken(m),
        other => UbError::Host(other),
    })?;
    Ok(())
}

fn version_param(p: &Params, name: &'static str) -> Result<String, UbError> {
    let v = p.required(name)?;
    if v.len() > 64 || v.chars().any(char::is_control) {
        return Err(UbError::BadValue(
            name,
            "must be 1-64 printable characters".into(),
        ));
    }
    Ok(v)
}

/// The product holding one package file in one language.
pub fn product_sn(package: &str, file: &str, language: &str) -> String {
    format!("{package}:{file}:{language}")
}

fn not_found(e: &HostError) -> bool {
    matches!(e, HostError::NotFound(_))
}

/// Every live release of a product's `mcu` module, newest first.
fn releases_of(product: &str) -> Result<Vec<Release>, UbError> {
    let filter = ReleaseFilter {
        product_sn: Some(product.to_string()),
        module: Some(Module::Mcu),
        status: None,
    };
    Ok(ota_plugin_sdk::all_pages(|w| {
        catalog::list_releases(&filter, w).map(|p| (p.items, p.total))
    })?)
}

fn download_url(r: &Release) -> Result<String, UbError> {
    ota_plugin_sdk::release_url(r)?
        .ok_or_else(|| UbError::Host(HostError::Internal(format!("release {} has no file", r.id))))
}

/// `a` is a newer version than `b`, by the host's own ordering rule.
fn newer(a: &str, b: &str) -> bool {
    ota_plugin_sdk::version::compare(a, b) == std::cmp::Ordering::Greater
}

/// `GET /file/download`: see the module documentation for the answers.
pub fn download(req: &Request) -> Response {
    respond((|| {
        let p = Params::of(req);
        authenticate(req, &p)?;
        let package = p.required("package_name")?;
        let version = version_param(&p, "version")?;
        let file = p.required("file_name")?;
        let language = p.required("language")?;
        let robot_version = version_param(&p, "robot_version")?;
        let robot = p.required("robot_id")?;
        if robot.len() > 128 {
            return Err(UbError::BadValue(
                "robot_id",
                "at most 128 characters".into(),
            ));
        }

        let product = product_sn(&package, &file, &language);
        if let Err(e) = catalog::get_product(&product) {
            if !not_found(&e) {
                return Err(e.into());
            }
            let prefix = format!("{package}:{file}:");
            let other_language = catalog::list_products()?
                .iter()
                .any(|p| p.sn.starts_with(&prefix));
            return Err(if other_language {
                UbError::NoLanguage(format!("{package} {file} has no {language} release"))
            } else {
                UbError::NoVersion(format!("no package {package} with file {file}"))
            });
        }
        // First contact registers the robot; every contact records what it runs.
        catalog::report_versions(
            &product,
            &robot,
            &[
                ModuleVersion {
                    module: Module::Mcu,
                    identify: 0,
                    version: version.clone(),
                },
                ModuleVersion {
                    module: Module::Sub,
                    identify: 0,
                    version: robot_version,
                },
            ],
        )?;
        let releases: Vec<Release> = releases_of(&product)?
            .into_iter()
            .filter(|r| r.status != catalog::ReleaseStatus::Invalid)
            .collect();
        if releases.is_empty() {
            return Err(UbError::NoLanguage(format!(
                "{package} {file} has no {language} release yet"
            )));
        }
        if let Some(offer) = rollout::check_in(&product, &robot, Module::Mcu, 0, &version)? {
            let chain = catalog::upgrade_path(offer.release.id, &version)?;
            let urls = chain
                .iter()
                .map(download_url)
                .collect::<Result<Vec<_>, _>>()?;
            let ids: Vec<String> = chain.iter().map(|r| r.id.to_string()).collect();
            return Ok(ok(urls.join(";"), Some(ids.join(";"))));
        }
        let newest = releases
            .iter()
            .filter(|r| r.status == catalog::ReleaseStatus::Online)
            .map(|r| r.version.as_str())
            .fold(None::<&str>, |best, v| match best {
                Some(b) if !newer(v, b) => Some(b),
                _ => Some(v),
            });
        match newest {
            Some(n) if newer(&version, n) => Err(UbError::NoVersion(format!(
                "version {version} is newer than every release of {package} {file} ({n})"
            ))),
            Some(n) if !newer(n, &version) => Ok(ok(String::new(), Some(String::new()))),
            _ => Err(UbError::NotAllowed(format!(
                "no running campaign offers {package} {file} to robot {robot}"
            ))),
        }
    })())
}

/// The robot's unfinished job in a product, with its campaign, newest campaign first.
fn open_job(
    product: &str,
    robot: &str,
) -> Result<Option<(rollout::Campaign, rollout::Job)>, UbError> {
    let mut offset = 0u64;
    loop {
        let page = rollout::list_campaigns(
            &CampaignFilter {
                product_sn: Some(product.to_string()),
                name_contains: None,
                module: Some(Module::Mcu),
                tag: None,
                status: None,
            },
            Window {
                offset,
                limit: PAGE,
            },
        )?;
        for c in &page.items {
            if matches!(c.status, CampaignStatus::Draft | CampaignStatus::Cancelled) {
                continue;
            }
            let job = ota_plugin_sdk::device_job(c.id, robot)?;
            if let Some(job) = job.filter(|j| !j.state.is_final()) {
                return Ok(Some((c.clone(), job)));
            }
        }
        offset += page.items.len() as u64;
        if page.items.is_empty() || offset >= page.total {
            return Ok(None);
        }
    }
}

/// `POST /file/callback`: see the module documentation for the codes.
pub fn callback(req: &Request) -> Response {
    respond((|| {
        let p = Params::of(req);
        authenticate(req, &p)?;
        let ids = p.required("id")?;
        let robot = p.required("robot_id")?;
        let code: i64 = match p.required("code")?.as_str() {
            c @ ("0" | "1" | "2" | "3") => c.parse().unwrap_or(0),
            other => {
                return Err(UbError::BadValue(
                    "code",
                    format!("{other:?} is not 0, 1, 2 or 3"),
                ));
            }
        };
        // The download answer joins several ids with `;`; a robot may send them back whole.
        let mut releases = Vec::new();
        for id in ids.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let n: u64 = id
                .parse()
                .map_err(|_| UbError::NoVersion(format!("no release {id}")))?;
            releases.push(catalog::get_release(n).map_err(|e| match e {
                HostError::NotFound(_) => UbError::NoVersion(format!("no release {id}")),
                e => e.into(),
            })?);
        }
        if releases.is_empty() {
            return Err(UbError::Missing("id"));
        }
        let mut created = false;
        for release in &releases {
            // A robot updated some other way (sideloaded, another server) reports here
            // first: it is registered, and the answer says so with "101".
            match catalog::get_device(&release.product_sn, &robot) {
                Ok(_) => {}
                Err(HostError::NotFound(_)) => {
                    catalog::register_device(&release.product_sn, &robot)?;
                    created = true;
                }
                Err(e) => return Err(e.into()),
            }
            apply(release, &robot, code)?;
        }
        let code = if created { "101" } else { "100" };
        Ok(answer(code, "regisiter information".into(), None))
    })())
}

/// Move the robot's job (if it has one) by one callback.
fn apply(release: &Release, robot: &str, code: i64) -> Result<(), UbError> {
    let job = open_job(&release.product_sn, robot)?;
    let reached_target = |c: &rollout::Campaign| !newer(&c.target_version, &release.version);
    let (state, text) = match code {
        1 => match &job {
            Some((c, _)) if !reached_target(c) => (
                JobState::Installing,
                format!("release {} ({}) installed", release.id, release.version),
            ),
            _ => (
                JobState::Succeeded,
                format!("release {} ({}) installed", release.id, release.version),
            ),
        },
        2 => (JobState::Failed, format!("release {} failed", release.id)),
        3 => (JobState::Downloading, "not updated yet".to_string()),
        _ => (JobState::Notified, "no status".to_string()),
    };
    if code == 1 {
        catalog::report_versions(
            &release.product_sn,
            robot,
            &[ModuleVersion {
                module: Module::Mcu,
                identify: 0,
                version: release.version.clone(),
            }],
        )?;
    }
    let Some((_, job)) = job else { return Ok(()) };
    let version_now = (state == JobState::Succeeded).then(|| release.version.clone());
    match rollout::report_job(job.id, state, Some(code), &text, version_now.as_deref()) {
        // A report the job's state no longer allows (a retransmission, a late "no status").
        Ok(_) | Err(HostError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
