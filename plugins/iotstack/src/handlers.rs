//! One function per IoTStack endpoint: authenticate, read the body, call the host, render.
//!
//! Credentials (the spec names none; the operator chooses per mount): `X-API-Key: <key>` or
//! `Authorization: Bearer <key>` for a tenant API key, `Authorization: Basic <key:secret>` for
//! the per-gateway credentials handed out in `DownloadCmd`, or nothing where the operator made
//! the mount anonymous.

use ota_plugin_sdk::catalog::{self, InstallConfig};
use ota_plugin_sdk::rollout::{self, Deployment, DeploymentStatus};
use ota_plugin_sdk::{Principal, Request, Response, auth, config};
use serde_json::json;

use crate::errors::{ApiError, ok};
use crate::fields::{Body, one_of};

const OSES: &[&str] = &["linux"];
const ARCHES: &[&str] = &["x86_64", "arm7", "ARMv8_64"];
const MODES: &[&str] = &["native"];
const DEFAULT_PASSWORD: &str = "iotstack";
/// Used when the operator sets no `memory` / `ram` plugin setting.
const DEFAULT_REQUIREMENT: &str = ">= 128M";

fn authenticate(req: &Request) -> Result<Principal, ApiError> {
    let principal = if let Some(key) = req.header("x-api-key") {
        auth::verify_api_key(key.trim())
    } else if let Some(token) = req.bearer_token() {
        auth::verify_api_key(token)
    } else if let Some((key, secret)) = req.basic_auth() {
        auth::verify_device_secret(&key, &secret)
    } else {
        auth::anonymous()
    };
    Ok(principal?)
}

fn requirement(key: &str) -> String {
    config::get(key).unwrap_or_else(|| DEFAULT_REQUIREMENT.to_string())
}

/// A version the install script can keep in a folder of that name.
fn installable_version(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// Quote a shell word only when it needs it, so ordinary commands read like the spec's.
fn sh_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:=@+,%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub fn reinstall_create(req: &Request) -> Result<Response, ApiError> {
    authenticate(req)?;
    let body = Body::parse(req.body())?;
    let gateway_sn = body.string("GatewaySN")?;
    let product_sn = body.string("ProductSN")?;
    let version = body.string("SoftwareVersion")?;
    // The installer keeps each version in a folder of that name.
    if !installable_version(&version) {
        return Err(ApiError::BadValue(
            "SoftwareVersion",
            "must be up to 64 letters, digits, '.', '_', '+' or '-', not starting with '.'".into(),
        ));
    }
    let os = one_of("OS", &body.string("OS")?, OSES)?;
    let arch = one_of("CPUArch", &body.string("CPUArch")?, ARCHES)?;
    let mode = match body.opt_string("Mode")? {
        Some(m) => one_of("Mode", &m, MODES)?,
        None => MODES[0],
    };
    let password = body
        .opt_string("Password")?
        .unwrap_or_else(|| DEFAULT_PASSWORD.to_string());
    let config = InstallConfig {
        software_version: version.clone(),
        os: os.to_string(),
        cpu_arch: arch.to_string(),
        mode: mode.to_string(),
        password: password.clone(),
    };
    let report_url = format!("{}/api/v1/deployment/report", req.base_url());
    let grant = catalog::put_install_config(&product_sn, &gateway_sn, &config, &report_url)?;
    let script = "iot_edge_process.sh";
    let download_cmd = format!(
        "wget -O {script} {url} && chmod +x {script} && ./{script} --install {arch} {ver} sh \
         && ./{script} --config {product} {sn} {secret} {pw} && ./{script} --start",
        url = sh_quote(&grant.script_url),
        ver = sh_quote(&version),
        product = sh_quote(&product_sn),
        sn = sh_quote(&gateway_sn),
        secret = sh_quote(&grant.device_secret),
        pw = sh_quote(&password),
    );
    Ok(ok(json!({
        "CPUArch": arch,
        "DownloadCmd": download_cmd,
        "Memory": requirement("memory"),
        "Mode": mode,
        "OS": os,
        "Password": password,
        "RAM": requirement("ram"),
        "SoftwareVersion": version,
        // The spec's example answer names the version `Version`; its table says
        // `SoftwareVersion`. Clients read either, so both are sent.
        "Version": version,
    })))
}

pub fn reinstall_info(req: &Request) -> Result<Response, ApiError> {
    authenticate(req)?;
    let body = Body::parse(req.body())?;
    let gateway_sn = body.string("GatewaySN")?;
    let product_sn = body.string("ProductSN")?;
    let c = catalog::get_install_config(&product_sn, &gateway_sn)?;
    Ok(ok(json!({
        "DownloadInfo": {
            "CPUArch": c.cpu_arch,
            "SoftwareVersion": c.software_version,
            "OS": c.os,
            "RAM": requirement("ram"),
            "Memory": requirement("memory"),
            "Mode": c.mode,
            "Password": c.password,
        }
    })))
}

pub fn deployment_create(req: &Request) -> Result<Response, ApiError> {
    authenticate(req)?;
    let body = Body::parse(req.body())?;
    let product_sn = body.string("ProductSN")?;
    let device_sn = body.string("DeviceSN")?;
    let keep_local = body.opt_bool("KeepLocal")?.unwrap_or(false);
    let d = rollout::create_deployment(&product_sn, &device_sn, keep_local)?;
    Ok(ok(json!({ "DeploymentID": d.id })))
}

fn status_name(s: DeploymentStatus) -> &'static str {
    match s {
        DeploymentStatus::Init => "init",
        DeploymentStatus::Processing => "processing",
        DeploymentStatus::Success => "success",
        DeploymentStatus::Failed => "failed",
        DeploymentStatus::Timeout => "timeout",
    }
}

fn deployment_data(d: Deployment) -> serde_json::Value {
    json!({
        "DeploymentID": d.id,
        "Status": status_name(d.status),
        "CreateTime": d.created_at,
        "LastModifiedTime": d.updated_at,
        "Log": d.log,
        "KeepLocal": d.keep_local,
    })
}

pub fn deployment_info(req: &Request) -> Result<Response, ApiError> {
    authenticate(req)?;
    let body = Body::parse(req.body())?;
    let id = body.id("DeploymentID")?;
    Ok(ok(deployment_data(rollout::get_deployment(id)?)))
}

/// Our extension for the gateway side (the spec has none): the agent the install script
/// starts asks here, with its own Basic credentials, what to install next. `Data` is `{}`
/// when nothing is open, else the deployment (as `deployment/info` answers it, without `Log`)
/// plus the file:
/// `SoftwareVersion`, `CPUArch` (absent for a file built for every architecture), `URL`,
/// `SHA256` (absent for an external file), `MD5` and `Size`; a deployment without a file to
/// install (none uploaded for the gateway's architecture) has none of these. Asking changes
/// nothing; the agent reports through `deployment/report`. Any body is ignored.
pub fn deployment_poll(req: &Request) -> Result<Response, ApiError> {
    authenticate(req)?;
    let Some(order) = rollout::next_deployment()? else {
        return Ok(ok(json!({})));
    };
    let mut data = deployment_data(order.deployment);
    // The agent needs no history, and a long one only slows a shell's parsing.
    if let Some(d) = data.as_object_mut() {
        d.remove("Log");
    }
    if let Some(p) = order.file {
        data["SoftwareVersion"] = json!(p.version);
        if let Some(arch) = p.arch {
            data["CPUArch"] = json!(arch);
        }
        data["URL"] = json!(p.url);
        if let Some(sha) = p.sha256 {
            data["SHA256"] = json!(sha);
        }
        data["MD5"] = json!(p.md5);
        data["Size"] = json!(p.size);
    }
    Ok(ok(data))
}

/// Our extension for the gateway side (the spec has no progress call): the install script
/// posts `{"DeploymentID", "Status": "processing"|"success"|"failed", "Log"}` here with its
/// own Basic credentials. `init` and `timeout` are the host's to set, never a client's.
pub fn deployment_report(req: &Request) -> Result<Response, ApiError> {
    authenticate(req)?;
    let body = Body::parse(req.body())?;
    let id = body.id("DeploymentID")?;
    let status = match one_of(
        "Status",
        &body.string("Status")?,
        &["processing", "success", "failed"],
    )? {
        "processing" => DeploymentStatus::Processing,
        "success" => DeploymentStatus::Success,
        _ => DeploymentStatus::Failed,
    };
    let log = body.opt_string("Log")?;
    let d = rollout::report_deployment(id, status, log.as_deref())?;
    Ok(ok(deployment_data(d)))
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("abc-1.0"), "abc-1.0");
        assert_eq!(sh_quote("http://h:1/x.sh"), "http://h:1/x.sh");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(sh_quote(""), "''");
    }
}
