//! Adapters for the frozen `ota:dialect@0.1.0`: every call delegates to its 0.2 counterpart
//! and converts the values, so the two versions cannot drift apart. What 0.1 declared but
//! never implemented (`verify-hmac-sha1`, `verify-token`, `blobs.*`) keeps answering
//! `unsupported`, exactly as 0.1 plugins were built to expect.

use super::super::bindings::to_v0_1;
use super::super::bindings::v0_1::ota::dialect::{
    auth, blobs, catalog, clock, config, log, rollout, types,
};
use super::super::bindings::v0_2::ota::dialect as v2;
use super::RequestState;

type Old<T> = Result<T, types::HostError>;

fn unsupported<T>(what: &str) -> Old<T> {
    Err(types::HostError::Unsupported(format!(
        "{what} is not part of ota:dialect@0.1.0"
    )))
}

impl types::Host for RequestState {}

impl log::Host for RequestState {
    async fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => v2::log::Level::Trace,
            log::Level::Debug => v2::log::Level::Debug,
            log::Level::Info => v2::log::Level::Info,
            log::Level::Warn => v2::log::Level::Warn,
            log::Level::Error => v2::log::Level::Error,
        };
        <Self as v2::log::Host>::log(self, level, message).await
    }
}

impl clock::Host for RequestState {
    async fn now_millis(&mut self) -> u64 {
        <Self as v2::clock::Host>::now_millis(self).await
    }
}

impl config::Host for RequestState {
    async fn get(&mut self, key: String) -> Option<String> {
        <Self as v2::config::Host>::get(self, key).await
    }
}

impl auth::Host for RequestState {
    async fn anonymous(&mut self) -> Old<types::Principal> {
        <Self as v2::auth::Host>::anonymous(self)
            .await
            .map(to_v0_1::principal)
            .map_err(to_v0_1::error)
    }

    async fn verify_api_key(&mut self, key: String) -> Old<types::Principal> {
        <Self as v2::auth::Host>::verify_api_key(self, key)
            .await
            .map(to_v0_1::principal)
            .map_err(to_v0_1::error)
    }

    async fn verify_device_secret(
        &mut self,
        device_key: String,
        secret: String,
    ) -> Old<types::Principal> {
        <Self as v2::auth::Host>::verify_device_secret(self, device_key, secret)
            .await
            .map(to_v0_1::principal)
            .map_err(to_v0_1::error)
    }

    async fn verify_hmac_sha1(
        &mut self,
        _app_key: String,
        _string_to_sign: String,
        _signature: String,
        _timestamp_ms: u64,
    ) -> Old<types::Principal> {
        unsupported("auth.verify-hmac-sha1")
    }

    async fn verify_token(&mut self, _token: String) -> Old<types::Principal> {
        unsupported("auth.verify-token")
    }

    async fn current(&mut self) -> Option<types::Principal> {
        <Self as v2::auth::Host>::current(self)
            .await
            .map(to_v0_1::principal)
    }
}

fn install_config_old(c: v2::catalog::InstallConfig) -> catalog::InstallConfig {
    catalog::InstallConfig {
        software_version: c.software_version,
        os: c.os,
        cpu_arch: c.cpu_arch,
        mode: c.mode,
        password: c.password,
    }
}

impl catalog::Host for RequestState {
    async fn get_product(&mut self, sn: String) -> Old<catalog::Product> {
        <Self as v2::catalog::Host>::get_product(self, sn)
            .await
            .map(|p| catalog::Product {
                sn: p.sn,
                name: p.name,
            })
            .map_err(to_v0_1::error)
    }

    async fn register_device(
        &mut self,
        product_sn: String,
        device_sn: String,
    ) -> Old<catalog::Device> {
        <Self as v2::catalog::Host>::register_device(self, product_sn, device_sn)
            .await
            .map(|d| catalog::Device {
                product_sn: d.product_sn,
                sn: d.sn,
                // 0.1 counted seconds.
                created_at: d.created_at / 1000,
            })
            .map_err(to_v0_1::error)
    }

    async fn put_install_config(
        &mut self,
        product_sn: String,
        device_sn: String,
        config: catalog::InstallConfig,
        report_url: String,
    ) -> Old<catalog::InstallGrant> {
        let config = v2::catalog::InstallConfig {
            software_version: config.software_version,
            os: config.os,
            cpu_arch: config.cpu_arch,
            mode: config.mode,
            password: config.password,
        };
        <Self as v2::catalog::Host>::put_install_config(
            self, product_sn, device_sn, config, report_url,
        )
        .await
        .map(|g| catalog::InstallGrant {
            script_url: g.script_url,
            device_key: g.device_key,
            device_secret: g.device_secret,
        })
        .map_err(to_v0_1::error)
    }

    async fn get_install_config(
        &mut self,
        product_sn: String,
        device_sn: String,
    ) -> Old<catalog::InstallConfig> {
        <Self as v2::catalog::Host>::get_install_config(self, product_sn, device_sn)
            .await
            .map(install_config_old)
            .map_err(to_v0_1::error)
    }
}

fn status_old(s: v2::rollout::DeploymentStatus) -> rollout::DeploymentStatus {
    match s {
        v2::rollout::DeploymentStatus::Init => rollout::DeploymentStatus::Init,
        v2::rollout::DeploymentStatus::Processing => rollout::DeploymentStatus::Processing,
        v2::rollout::DeploymentStatus::Success => rollout::DeploymentStatus::Success,
        v2::rollout::DeploymentStatus::Failed => rollout::DeploymentStatus::Failed,
        v2::rollout::DeploymentStatus::Timeout => rollout::DeploymentStatus::Timeout,
    }
}

fn deployment_old(d: v2::rollout::Deployment) -> rollout::Deployment {
    rollout::Deployment {
        id: d.id,
        product_sn: d.product_sn,
        device_sn: d.device_sn,
        keep_local: d.keep_local,
        status: status_old(d.status),
        created_at: d.created_at,
        updated_at: d.updated_at,
        log: d.log,
    }
}

impl rollout::Host for RequestState {
    async fn create_deployment(
        &mut self,
        product_sn: String,
        device_sn: String,
        keep_local: bool,
    ) -> Old<rollout::Deployment> {
        <Self as v2::rollout::Host>::create_deployment(self, product_sn, device_sn, keep_local)
            .await
            .map(deployment_old)
            .map_err(to_v0_1::error)
    }

    async fn get_deployment(&mut self, id: u64) -> Old<rollout::Deployment> {
        <Self as v2::rollout::Host>::get_deployment(self, id)
            .await
            .map(deployment_old)
            .map_err(to_v0_1::error)
    }

    async fn report_deployment(
        &mut self,
        id: u64,
        status: rollout::DeploymentStatus,
        log_line: Option<String>,
    ) -> Old<rollout::Deployment> {
        let status = match status {
            rollout::DeploymentStatus::Init => v2::rollout::DeploymentStatus::Init,
            rollout::DeploymentStatus::Processing => v2::rollout::DeploymentStatus::Processing,
            rollout::DeploymentStatus::Success => v2::rollout::DeploymentStatus::Success,
            rollout::DeploymentStatus::Failed => v2::rollout::DeploymentStatus::Failed,
            rollout::DeploymentStatus::Timeout => v2::rollout::DeploymentStatus::Timeout,
        };
        <Self as v2::rollout::Host>::report_deployment(self, id, status, log_line)
            .await
            .map(deployment_old)
            .map_err(to_v0_1::error)
    }
}

impl blobs::Host for RequestState {
    async fn stat(&mut self, _id: String) -> Old<blobs::BlobInfo> {
        unsupported("blobs.stat")
    }

    async fn download_url(&mut self, _id: String, _ttl_seconds: Option<u32>) -> Old<String> {
        unsupported("blobs.download-url")
    }
}
