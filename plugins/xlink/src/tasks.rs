//! Upgrade tasks: create, list (GET and POST), show, start/stop, delete, the test → formal →
//! audit workflow, the test task's device list, its op log and its version statistics. Every
//! step checks everything it can before it changes anything, so an illegal step leaves the
//! task and its op log as they were.

use ota_plugin_sdk::catalog::{
    self, ExternalFile, NewRelease, Payload, Release, ReleaseFilter, ReleaseStatus,
};
use ota_plugin_sdk::params::Params;
use ota_plugin_sdk::rollout::{
    self, CampaignAction, CampaignFilter, CampaignMode, CampaignPatch, CampaignStatus, CampaignTag,
    NewCampaign, Scope,
};
use ota_plugin_sdk::{
    HostError, Module, Principal, Request, Response, Window, all_pages, auth, blobs,
};
use serde_json::{Value, json};

use crate::errors::{XError, done, respond};
use crate::view::{self, Task};

/// How long a device has to report after it was handed a task: a week, as field upgrades of
/// sleepy devices go.
const JOB_TIMEOUT_SECS: u64 = 7 * 86_400;

fn text_limit(p: &Params, name: &str, max: usize) -> Result<Option<String>, XError> {
    match p.text(name)? {
        Some(t) if t.chars().count() > max => Err(XError::Param(format!(
            "{name} must be at most {max} characters"
        ))),
        other => Ok(other),
    }
}

fn check_md5(name: &str, md5: &str) -> Result<String, XError> {
    ota_plugin_sdk::params::md5_hex(md5)
        .ok_or_else(|| XError::Param(format!("{name} must be 32 hex digits")))
}

fn check_url(name: &str, url: &str) -> Result<(), XError> {
    if (url.starts_with("http://") || url.starts_with("https://")) && url.len() <= 1024 {
        Ok(())
    } else {
        Err(XError::Param(format!(
            "{name} must be an http:// or https:// URL of at most 1024 characters"
        )))
    }
}

/// A size in bytes, as a number or a numeric string.
fn size(p: &Params, name: &str) -> Result<Option<u64>, XError> {
    match p.int(name)? {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        Some(n) => Err(XError::Param(format!(
            "{name} must not be negative, not {n}"
        ))),
    }
}

/// A task id from the path.
fn path_task(req: &Request) -> Result<Task, XError> {
    Task::load(Task::parse_id(req.param("task_id").unwrap_or_default())?)
}

/// The product named by `product_id`, which must exist.
fn product(p: &Params) -> Result<String, XError> {
    let sn = p.required("product_id")?;
    match catalog::get_product(&sn) {
        Ok(_) => Ok(sn),
        Err(HostError::NotFound(_)) => Err(XError::UnknownProduct(format!(
            "product {sn} does not exist"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// XLINK device ids (numbers or numeric strings) as the product's device serial numbers.
fn device_sns(product: &str, v: Option<&Value>, name: &str) -> Result<Vec<String>, XError> {
    let bad = || XError::Param(format!("{name} must be a list of device ids"));
    let items = match v {
        None => return Ok(vec![]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad()),
    };
    let mut sns = Vec::with_capacity(items.len());
    for item in items {
        let id = match item {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(bad)?;
        let d = match catalog::get_device_by_id(id) {
            Ok(d) if d.product_sn == product => d,
            Ok(_) | Err(HostError::NotFound(_)) => {
                return Err(XError::UnknownDevice(format!(
                    "device {id} does not exist in product {product}"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if !sns.contains(&d.sn) {
            sns.push(d.sn);
        }
    }
    Ok(sns)
}

/// `scope` as XLINK sends it: `{"category": 0}` for the whole product, `{"category": 1,
/// "device_list": [...]}` for listed devices.
fn scope(product: &str, v: &Value) -> Result<Scope, XError> {
    let Value::Object(m) = v else {
        return Err(XError::Param("scope must be an object".into()));
    };
    let p = Params::from_map(m.clone());
    match crate::choice(&p, "category", &[0, 1], None)? {
        0 => Ok(Scope::All),
        _ => {
            let sns = device_sns(product, p.get("device_list"), "scope.device_list")?;
            if sns.is_empty() {
                return Err(XError::Param(
                    "scope.device_list is required when scope.category is 1".into(),
                ));
            }
            Ok(Scope::Devices(sns))
        }
    }
}

/// Every live (not deleted) task of a product, newest first.
fn live_tasks(product: &str) -> Result<Vec<rollout::Campaign>, XError> {
    let filter = CampaignFilter {
        product_sn: Some(product.to_string()),
        name_contains: None,
        module: None,
        tag: None,
        status: None,
    };
    let all = all_pages(|w| rollout::list_campaigns(&filter, w).map(|p| (p.items, p.total)))?;
    Ok(all
        .into_iter()
        .filter(|c| c.status != CampaignStatus::Cancelled)
        .collect())
}

/// The product's release of this module, identify and version, if one exists.
fn find_release(
    product: &str,
    module: Module,
    identify: u32,
    version: &str,
) -> Result<Option<Release>, XError> {
    let filter = ReleaseFilter {
        product_sn: Some(product.to_string()),
        module: Some(module),
        status: None,
    };
    let all = all_pages(|w| catalog::list_releases(&filter, w).map(|p| (p.items, p.total)))?;
    Ok(all.into_iter().find(|r| {
        r.identify == identify && r.version == version && r.status != ReleaseStatus::Invalid
    }))
}

/// Where the target file is: an upload of this host (whose md5 and size must match) or an
/// external URL taken as declared.
fn payload(url: &str, md5: &str, size: u64) -> Result<Payload, XError> {
    if let Some(info) = blobs::find_url(url)? {
        if info.md5 != md5 || info.size != size {
            return Err(XError::Param(format!(
                "target_version_md5/size do not match the uploaded file ({}, {} bytes)",
                info.md5, info.size
            )));
        }
        return Ok(Payload::Blob(info.id));
    }
    Ok(Payload::External(ExternalFile {
        url: url.to_string(),
        md5: md5.to_string(),
        size,
    }))
}

/// Make a release offerable by a formal task (the host refuses a formal campaign of a test
/// release); answers whether it changed, so that a later failure can put it back.
fn ensure_online(r: &Release) -> Result<bool, XError> {
    if r.status == ReleaseStatus::Test {
        catalog::set_release_status(r.id, ReleaseStatus::Online)?;
        return Ok(true);
    }
    Ok(false)
}

pub fn create(req: &Request) -> Response {
    respond((|| {
        let member = crate::member(req)?;
        let p = crate::params(req)?;
        let product = product(&p)?;
        let name = text_limit(&p, "name", 32)?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| XError::Param("missing name".into()))?;
        let description = text_limit(&p, "description", 250)?.unwrap_or_default();
        let from = crate::required_version(&p, "from_version")?;
        let target = crate::required_version(&p, "target_version")?;
        if target <= from {
            return Err(XError::Param(
                "target_version must be greater than from_version".into(),
            ));
        }
        let from_url = p.text("from_version_url")?.unwrap_or_default();
        if !from_url.is_empty() {
            check_url("from_version_url", &from_url)?;
        }
        let from_md5 = match p.text("from_version_md5")?.filter(|m| !m.is_empty()) {
            Some(m) => check_md5("from_version_md5", &m)?,
            None => String::new(),
        };
        let from_size = size(&p, "from_version_size")?.unwrap_or(0);
        let target_url = p.required("target_version_url")?;
        check_url("target_version_url", &target_url)?;
        let target_md5 = check_md5("target_version_md5", &p.required("target_version_md5")?)?;
        let target_size = size(&p, "target_version_size")?
            .ok_or_else(|| XError::Param("missing target_version_size".into()))?;
        let module = crate::module_of(crate::choice(&p, "type", &[1, 2, 3], Some(1))?)?;
        let identify = crate::identify(&p)?;
        let task_type = crate::choice(&p, "task_type", &[0, 1], Some(0))?;
        let tag = match crate::choice(&p, "tag_type", &[0, 1], Some(0))? {
            0 => CampaignTag::Formal,
            _ => CampaignTag::Test,
        };
        let scope = match p.get("scope") {
            Some(s) => scope(&product, s)?,
            None => Scope::All,
        };
        let from_text = from.to_string();
        let target_text = target.to_string();
        if live_tasks(&product)?.iter().any(|c| {
            c.module == module
                && c.identify == identify
                && c.from_version.as_deref() == Some(&from_text)
        }) {
            return Err(XError::Duplicate(format!(
                "a task for type {}, identify {identify} and from_version {from} exists",
                crate::type_of(module)
            )));
        }
        let payload = payload(&target_url, &target_md5, target_size)?;
        // Everything is checked; the writes follow, and a failure undoes the earlier ones.
        let (release, made_release) = match find_release(&product, module, identify, &target_text)?
        {
            Some(r) if r.md5 != target_md5 => {
                return Err(XError::Param(format!(
                    "version {target} is already registered with another file (md5 {})",
                    r.md5
                )));
            }
            Some(r) => (r, false),
            None => {
                let r = catalog::create_release(&NewRelease {
                    product_sn: product.clone(),
                    module,
                    identify,
                    name: format!("{name} v{target}"),
                    version: target_text,
                    from_version: None,
                    payload,
                    status: match tag {
                        CampaignTag::Formal => ReleaseStatus::Online,
                        CampaignTag::Test => ReleaseStatus::Test,
                    },
                    description: description.clone(),
                    customize: String::new(),
                    mac_range: vec![],
                })?;
                (r, true)
            }
        };
        let put_online = match tag {
            CampaignTag::Formal if !made_release => ensure_online(&release)?,
            _ => false,
        };
        let undo_release = |e: XError| {
            if made_release {
                let _ = catalog::delete_release(release.id);
            } else if put_online {
                let _ = catalog::set_release_status(release.id, ReleaseStatus::Test);
            }
            e
        };
        let campaign = rollout::create_campaign(&NewCampaign {
            release_id: release.id,
            name,
            description,
            from_version: Some(from_text),
            scope,
            mode: CampaignMode::Auto,
            tag,
            retries: 0,
            timeout_secs: JOB_TIMEOUT_SECS,
            waves: None,
            maintenance_window: None,
            created_by: Some(member.subject.clone()),
        })
        .map_err(|e| undo_release(e.into()))?;
        // A formal task made under Api-Version 2 is "pending execution": it runs once audited.
        let audit = if tag == CampaignTag::Formal && crate::api_v2(req) {
            view::AUDIT_REQUIRED
        } else {
            ""
        };
        let attrs = [
            (view::FROM_URL, from_url),
            (view::FROM_MD5, from_md5),
            (view::FROM_SIZE, from_size.to_string()),
            (view::TARGET_URL, target_url),
            (view::TASK_TYPE, task_type.to_string()),
            (view::AUDIT, audit.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), Some(v)));
        if let Err(e) = rollout::set_campaign_attributes(campaign.id, &attrs) {
            let _ = rollout::delete_campaign(campaign.id, Some(&member.subject));
            return Err(undo_release(e.into()));
        }
        let task = Task::of(campaign, release)?;
        Ok(Response::json(200, &task.full(crate::api_v2(req))?))
    })())
}

/// One window of tasks as `offset`/`limit` ask (10 by default, at most 1000).
fn window_of(p: &Params) -> Result<(usize, usize), XError> {
    let (offset, limit) = crate::page(p, 1000)?;
    Ok((
        usize::try_from(offset).unwrap_or(usize::MAX),
        limit as usize,
    ))
}

fn full_list(tasks: Vec<rollout::Campaign>, v2: bool) -> Result<Vec<Value>, XError> {
    tasks
        .into_iter()
        .map(|c| {
            let r = catalog::get_release(c.release_id)?;
            Task::of(c, r)?.full(v2)
        })
        .collect()
}

pub fn list_get(req: &Request) -> Response {
    respond((|| {
        crate::member(req)?;
        let p = crate::params(req)?;
        let product = product(&p)?;
        let (offset, limit) = window_of(&p)?;
        let page: Vec<_> = live_tasks(&product)?
            .into_iter()
            .skip(offset)
            .take(limit)
            .collect();
        Ok(Response::json(200, &full_list(page, crate::api_v2(req))?))
    })())
}

pub fn list_post(req: &Request) -> Response {
    respond((|| {
        crate::member(req)?;
        let p = crate::params(req)?;
        let product = product(&p)?;
        let (offset, limit) = window_of(&p)?;
        let mut tasks = live_tasks(&product)?;
        if let Some(t) = p.int("type")? {
            let m = crate::module_of(t)?;
            tasks.retain(|c| c.module == m);
        }
        // Empty (`"tag_type": ""`, as the console sends an unset filter) means no filter,
        // like `"type": ""`.
        if p.int("tag_type")?.is_some() {
            let tag = match crate::choice(&p, "tag_type", &[0, 1], None)? {
                0 => CampaignTag::Formal,
                _ => CampaignTag::Test,
            };
            tasks.retain(|c| c.tag == tag);
        }
        if let Some(q) = p.get("query") {
            let Value::Object(q) = q else {
                return Err(XError::Param("query must be an object".into()));
            };
            for (field, cond) in q {
                let (op, value) = match cond {
                    Value::Object(o) if o.len() == 1 => o
                        .iter()
                        .next()
                        .map(|(k, v)| (k.as_str(), v))
                        .unwrap_or(("", &Value::Null)),
                    _ => {
                        return Err(XError::Param(format!(
                            "query.{field} must be {{\"$op\": value}}"
                        )));
                    }
                };
                let value = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(XError::Param(format!(
                            "query.{field}.{op} must be a string"
                        )));
                    }
                };
                match (field.as_str(), op) {
                    ("_id" | "id", "$eq") => tasks.retain(|c| c.id.to_string() == value.trim()),
                    ("name", "$like") => {
                        let needle = value.to_lowercase();
                        tasks.retain(|c| c.name.to_lowercase().contains(&needle));
                    }
                    ("name", "$eq") => tasks.retain(|c| c.name == value),
                    _ => {
                        return Err(XError::Param(format!(
                            "query supports _id with $eq and name with $like or $eq, not {field} {op}"
                        )));
                    }
                }
            }
        }
        if let Some(order) = p.get("order") {
            let Value::Object(o) = order else {
                return Err(XError::Param("order must be an object".into()));
            };
            for (field, dir) in o.iter().rev() {
                let desc = match dir.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("desc") => true,
                    Some("asc") => false,
                    _ => return Err(XError::Param(format!("order.{field} must be asc or desc"))),
                };
                // Stable sorts from the last key to the first: earlier keys decide, later
                // ones break ties.
                let by_name = |a: &rollout::Campaign, b: &rollout::Campaign| a.name.cmp(&b.name);
                let by_id = |a: &rollout::Campaign, b: &rollout::Campaign| a.id.cmp(&b.id);
                let cmp: &dyn Fn(&rollout::Campaign, &rollout::Campaign) -> std::cmp::Ordering =
                    match field.as_str() {
                        "name" => &by_name,
                        "create_time" | "_id" | "id" => &by_id,
                        other => return Err(XError::Param(format!("cannot order by {other}"))),
                    };
                if desc {
                    tasks.sort_by(|a, b| cmp(b, a));
                } else {
                    tasks.sort_by(|a, b| cmp(a, b));
                }
            }
        }
        let count = tasks.len();
        let page: Vec<_> = tasks.into_iter().skip(offset).take(limit).collect();
        Ok(Response::json(
            200,
            &json!({ "count": count, "list": full_list(page, crate::api_v2(req))? }),
        ))
    })())
}

pub fn show(req: &Request) -> Response {
    respond((|| {
        crate::member(req)?;
        Ok(Response::json(
            200,
            &path_task(req)?.full(crate::api_v2(req))?,
        ))
    })())
}

/// The task named in a body's `field`, which must be of the body's `product_id` when given.
fn body_task(p: &Params, field: &str) -> Result<Task, XError> {
    let task = Task::load(Task::parse_id(&p.required(field)?)?)?;
    if let Some(product) = p.text("product_id")?.filter(|s| !s.is_empty())
        && product != task.campaign.product_sn
    {
        return Err(XError::UnknownTask(format!(
            "upgrade task {} does not belong to product {product}",
            task.campaign.id
        )));
    }
    Ok(task)
}

pub fn set_status(req: &Request) -> Response {
    respond((|| {
        let member = crate::member(req)?;
        let p = crate::params(req)?;
        let task = body_task(&p, "upgrade_task_id")?;
        let want = crate::choice(&p, "status", &[0, 1], None)?;
        let c = &task.campaign;
        let action = match (want, c.status) {
            (1, CampaignStatus::Running) | (0, CampaignStatus::Draft | CampaignStatus::Paused) => {
                None
            }
            (1, CampaignStatus::Draft) if task.needs_audit() => {
                return Err(XError::State(
                    "a formal task pending execution starts once audited (submit-audit, audit)"
                        .into(),
                ));
            }
            (1, CampaignStatus::Draft) => Some(CampaignAction::Start),
            (1, CampaignStatus::Paused) => Some(CampaignAction::Resume),
            (0, CampaignStatus::Running) => Some(CampaignAction::Pause),
            (_, s) => {
                return Err(XError::State(format!(
                    "a task that is {} cannot be {}",
                    view::status_words(s),
                    if want == 1 { "started" } else { "stopped" }
                )));
            }
        };
        if let Some(a) = action {
            rollout::act(c.id, a, Some(&member.subject), "")?;
        }
        Ok(done())
    })())
}

pub fn delete(req: &Request) -> Response {
    respond((|| {
        let member = crate::member(req)?;
        let p = crate::params(req)?;
        let task = body_task(&p, "id")?;
        rollout::delete_campaign(task.campaign.id, Some(&member.subject))?;
        Ok(done())
    })())
}

pub fn product_tag(req: &Request) -> Response {
    respond((|| {
        let member = crate::member(req)?;
        let p = crate::params(req)?;
        let task = path_task(req)?;
        let c = &task.campaign;
        if c.tag != CampaignTag::Test {
            return Err(XError::State("only a test task can become formal".into()));
        }
        let revise = match c.status {
            CampaignStatus::Draft => false,
            // A finished test task is the normal way in: devices that failed the test get
            // another attempt once the formal task runs.
            CampaignStatus::Running | CampaignStatus::Paused | CampaignStatus::Finished => true,
            s => {
                return Err(XError::State(format!(
                    "a task that is {} cannot become formal",
                    view::status_words(s)
                )));
            }
        };
        let name = text_limit(&p, "name", 32)?.filter(|n| !n.is_empty());
        let description = text_limit(&p, "description", 250)?;
        let scope = match p.get("scope") {
            Some(s) => Some(scope(&c.product_sn, s)?),
            None => None,
        };
        // Back to preparation first: a failure after it leaves a test task pending execution,
        // never a formal task running unaudited.
        if revise {
            rollout::revise(c.id, Some(&member.subject))?;
        }
        rollout::set_campaign_attributes(
            c.id,
            &[(view::AUDIT.into(), Some(view::AUDIT_REQUIRED.into()))],
        )?;
        let put_online = ensure_online(&task.release)?;
        let tagged = rollout::update_campaign(
            c.id,
            &CampaignPatch {
                name,
                description,
                retries: None,
                timeout_secs: None,
                tag: Some(CampaignTag::Formal),
                scope,
                maintenance_window: None,
            },
        );
        if let Err(e) = tagged {
            if put_online {
                let _ = catalog::set_release_status(task.release.id, ReleaseStatus::Test);
            }
            return Err(e.into());
        }
        Ok(done())
    })())
}

pub fn submit_audit(req: &Request) -> Response {
    respond((|| {
        let member = crate::member(req)?;
        let p = crate::params(req)?;
        let task = path_task(req)?;
        let auditor = p.required("audit_member_id")?;
        let c = &task.campaign;
        if c.tag != CampaignTag::Formal {
            return Err(XError::State(
                "only a formal task can be submitted for audit".into(),
            ));
        }
        if c.status != CampaignStatus::Draft {
            return Err(XError::State(
                "only a task pending execution can be submitted for audit".into(),
            ));
        }
        // The auditor must be a member of the corp, else the task waits for nobody.
        if !auth::login_exists(auth::LoginKind::User, &auditor)? {
            return Err(XError::UnknownMember(format!(
                "member {auditor} does not exist"
            )));
        }
        rollout::submit(c.id, Some(&auditor), Some(&member.subject))?;
        Ok(done())
    })())
}

pub fn audit(req: &Request) -> Response {
    respond((|| {
        let member: Principal = crate::member(req)?;
        let p = crate::params(req)?;
        let task = path_task(req)?;
        let action = match crate::choice(&p, "audit_result", &[1, 2], None)? {
            1 => CampaignAction::Approve,
            _ => CampaignAction::Reject,
        };
        let c = &task.campaign;
        if c.tag != CampaignTag::Formal || c.status != CampaignStatus::Pending {
            return Err(XError::State(
                "only a formal task awaiting audit can be audited".into(),
            ));
        }
        if c.approver.as_deref() != Some(member.subject.as_str()) {
            return Err(XError::Forbidden(format!(
                "task {} waits for audit by member {}",
                c.id,
                c.approver.as_deref().unwrap_or_default()
            )));
        }
        rollout::act(c.id, action, Some(&member.subject), "")?;
        if action == CampaignAction::Approve {
            rollout::set_campaign_attributes(c.id, &[(view::AUDIT.into(), Some(String::new()))])?;
        }
        Ok(done())
    })())
}

pub fn devices(req: &Request) -> Response {
    respond((|| {
        crate::member(req)?;
        let p = crate::params(req)?;
        let task = path_task(req)?;
        let c = &task.campaign;
        if c.tag != CampaignTag::Test {
            return Err(XError::State(
                "only a test task's devices can be changed".into(),
            ));
        }
        let opt = crate::choice(&p, "opt", &[1, 2, 3], None)?;
        if p.get("device_list").is_none() {
            return Err(XError::Param("missing device_list".into()));
        }
        let given = device_sns(&c.product_sn, p.get("device_list"), "device_list")?;
        let mut list = match &c.scope {
            Scope::Devices(sns) => sns.clone(),
            _ => vec![],
        };
        match opt {
            1 => list.extend(given.into_iter().filter(|sn| !c_contains(&task, sn))),
            2 => list.retain(|sn| !given.contains(sn)),
            _ => list = given,
        }
        if list.is_empty() {
            return Err(XError::Param(
                "a test task needs at least one device".into(),
            ));
        }
        rollout::update_campaign(
            c.id,
            &CampaignPatch {
                name: None,
                description: None,
                retries: None,
                timeout_secs: None,
                tag: None,
                scope: Some(Scope::Devices(list)),
                maintenance_window: None,
            },
        )?;
        Ok(done())
    })())
}

fn c_contains(task: &Task, sn: &str) -> bool {
    matches!(&task.campaign.scope, Scope::Devices(sns) if sns.iter().any(|s| s == sn))
}

pub fn op_logs(req: &Request) -> Response {
    respond((|| {
        crate::member(req)?;
        let task = path_task(req)?;
        let entries = all_pages(|w: Window| {
            rollout::campaign_log(task.campaign.id, w).map(|p| (p.items, p.total))
        })?;
        let list: Vec<Value> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let content = if e.detail.is_empty() {
                    e.action.clone()
                } else {
                    format!("{}: {}", e.action, e.detail)
                };
                json!({
                    "id": (i + 1).to_string(),
                    "content": content,
                    "opt_id": e.actor,
                    "opt_name": e.actor,
                    "opt_account": e.actor,
                    "create_date": view::utc_time(e.at),
                })
            })
            .collect();
        Ok(Response::json(
            200,
            &json!({ "count": list.len(), "list": list }),
        ))
    })())
}

pub fn statistics(req: &Request) -> Response {
    respond((|| {
        crate::member(req)?;
        let task = path_task(req)?;
        let s = rollout::stats(task.campaign.id)?;
        let total = selected_devices(&task.campaign)?;
        let ratios: Vec<Value> = s
            .versions
            .iter()
            .map(|(v, n)| json!({ "devices": n, "firmware_version": view::number_or_text(v) }))
            .collect();
        Ok(Response::json(
            200,
            &json!({ "total": total, "ratios": ratios }),
        ))
    })())
}

/// How many devices a task selects: its device list, or the product's (or group's) devices
/// for a whole-product task, whether or not they have checked in yet.
fn selected_devices(c: &rollout::Campaign) -> Result<u64, XError> {
    let filter = |group: Option<String>| catalog::DeviceFilter {
        sn: None,
        name: None,
        imei: None,
        mac: None,
        group,
    };
    let counted = |f: catalog::DeviceFilter| -> Result<u64, XError> {
        let one = Window {
            offset: 0,
            limit: 1,
        };
        Ok(catalog::list_devices(&c.product_sn, &f, one)?.total)
    };
    match &c.scope {
        Scope::Devices(sns) => Ok(sns.len() as u64),
        Scope::All => counted(filter(None)),
        Scope::Group(g) => counted(filter(Some(g.clone()))),
    }
}
