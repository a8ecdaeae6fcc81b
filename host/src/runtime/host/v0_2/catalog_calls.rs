//! `ota:dialect/catalog@0.2.x`: products, devices and their versions, install
//! configurations, releases and their dialect-kept attributes.

use super::*;

impl catalog::Host for RequestState {
    async fn get_product(&mut self, sn: String) -> Result<catalog::Product, HostError> {
        let tenant_id = self.check_product(&sn)?;
        let p = self.tenant_product(tenant_id, &sn).await?;
        Ok(catalog::Product {
            id: p.id as u64,
            sn: p.sn,
            name: p.name,
            created_at: ms(p.created_at),
        })
    }

    async fn list_products(&mut self) -> Result<Vec<catalog::Product>, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let list = self
            .services
            .catalog
            .list_products(tenant_id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(list
            .into_iter()
            .map(|p| catalog::Product {
                id: p.id as u64,
                sn: p.sn,
                name: p.name,
                created_at: ms(p.created_at),
            })
            .collect())
    }

    async fn register_device(
        &mut self,
        product_sn: String,
        device_sn: String,
    ) -> Result<catalog::Device, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let d = self
            .services
            .catalog
            .register_device(tenant_id, &product_sn, &device_sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.wit_device(d).await
    }

    async fn get_device(
        &mut self,
        product_sn: String,
        device_sn: String,
    ) -> Result<catalog::Device, HostError> {
        let d = self.device_in_scope(&product_sn, &device_sn).await?;
        // A device principal's copy is stale once this request checked in or reported (its
        // online time moved); a tenant's lookup was just read.
        let own = self.acting.as_ref().and_then(|a| a.device.as_ref());
        let d = if own.is_some() && !self.own_device_current {
            self.services
                .catalog
                .device(d.id)
                .await
                .map_err(|e| self.catalog_err(e))?
        } else {
            d
        };
        self.wit_device(d).await
    }

    async fn device_id(&mut self, product_sn: String, device_sn: String) -> Result<u64, HostError> {
        // An id never changes: a device principal's own comes from memory.
        Ok(self.device_in_scope(&product_sn, &device_sn).await?.id as u64)
    }

    async fn get_device_by_id(&mut self, id: u64) -> Result<catalog::Device, HostError> {
        let a = self.acting()?;
        let not_found = || HostError::NotFound(format!("unknown device {id}"));
        let (tenant_id, own) = (a.tenant_id, a.device.as_ref().map(|d| d.id));
        let id = id_of(id, "device")?;
        let d = match self.services.catalog.device(id).await {
            Err(crate::catalog::CatalogError::NotFound(_)) => return Err(not_found()),
            other => other.map_err(|e| self.catalog_err(e))?,
        };
        // Another tenant's (or device's) id is unknown, not forbidden: ids reveal nothing.
        if d.tenant_id != tenant_id || own.is_some_and(|o| o != d.id) {
            return Err(not_found());
        }
        self.wit_device(d).await
    }

    async fn update_device(
        &mut self,
        product_sn: String,
        device_sn: String,
        patch: catalog::DevicePatch,
    ) -> Result<catalog::Device, HostError> {
        // A contacted device's group may change here.
        self.contacted.clear();
        let tenant_id = self.acting_tenant()?.tenant_id;
        let patch = DevicePatch {
            name: patch.name,
            imei: patch.imei,
            mac: patch.mac,
            group: patch.group,
        };
        let d = self
            .services
            .catalog
            .update_device(tenant_id, &product_sn, &device_sn, &patch)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.wit_device(d).await
    }

    async fn count_devices_on(
        &mut self,
        product_sn: String,
        module: types::Module,
        identify: u32,
        version: String,
    ) -> Result<u64, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        self.services
            .catalog
            .count_devices_on(
                tenant_id,
                &product_sn,
                module_from(module),
                identify.into(),
                &version,
            )
            .await
            .map_err(|e| self.catalog_err(e))
    }

    async fn list_devices(
        &mut self,
        product_sn: String,
        filter: catalog::DeviceFilter,
        w: types::Window,
    ) -> Result<catalog::DevicePage, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        check_window(w)?;
        let filter = DeviceFilter {
            sn: filter.sn,
            name: filter.name,
            imei: filter.imei,
            mac: filter.mac,
            group: filter.group,
        };
        let page = self
            .services
            .catalog
            .list_devices(tenant_id, &product_sn, &filter, window(w))
            .await
            .map_err(|e| self.catalog_err(e))?;
        let mut items = Vec::with_capacity(page.items.len());
        for d in page.items {
            items.push(self.wit_device(d).await?);
        }
        Ok(catalog::DevicePage {
            total: page.total.max(0) as u64,
            items,
        })
    }

    async fn report_versions(
        &mut self,
        product_sn: String,
        device_sn: String,
        versions: Vec<catalog::ModuleVersion>,
    ) -> Result<catalog::Device, HostError> {
        self.check_product(&product_sn)?;
        let device = self.contact_device(&product_sn, &device_sn).await?;
        for v in &versions {
            if v.version.trim().is_empty() || v.version.len() > 64 {
                return Err(HostError::Invalid(
                    "a version must be 1-64 characters".into(),
                ));
            }
        }
        for v in versions {
            self.services
                .catalog
                .set_module_version(
                    device.id,
                    module_from(v.module).as_str(),
                    v.identify as i64,
                    v.version.trim(),
                )
                .await
                .map_err(|e| self.catalog_err(e))?;
        }
        let d = self
            .services
            .catalog
            .device(device.id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.wit_device(d).await
    }

    async fn put_install_config(
        &mut self,
        product_sn: String,
        device_sn: String,
        config: catalog::InstallConfig,
        report_url: String,
    ) -> Result<catalog::InstallGrant, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        if !(report_url.starts_with("http://") || report_url.starts_with("https://")) {
            return Err(HostError::Invalid(
                "report-url must be an absolute http(s) URL".into(),
            ));
        }
        let c = &self.services.catalog;
        let device = c
            .register_device(tenant_id, &product_sn, &device_sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        let config = InstallConfig {
            software_version: config.software_version,
            os: config.os,
            cpu_arch: config.cpu_arch,
            mode: config.mode,
            password: config.password,
        };
        c.put_install_config(device.id, &config, &report_url)
            .await
            .map_err(|e| self.catalog_err(e))?;
        let grant = self
            .services
            .auth
            .issue_device_secret(device.id)
            .await
            .map_err(|e| self.auth_err(e))?;
        Ok(catalog::InstallGrant {
            script_url: format!(
                "{}/install/{}/iot_edge_process.sh",
                self.host_url, grant.device_key
            ),
            device_key: grant.device_key,
            device_secret: grant.device_secret,
        })
    }

    async fn get_install_config(
        &mut self,
        product_sn: String,
        device_sn: String,
    ) -> Result<catalog::InstallConfig, HostError> {
        let missing = || {
            HostError::NotFound(format!(
                "gateway {device_sn:?} of product {product_sn:?} has no install configuration"
            ))
        };
        let device = match self.device_in_scope(&product_sn, &device_sn).await {
            Err(HostError::NotFound(_)) => return Err(missing()),
            other => other?,
        };
        let stored = self
            .services
            .catalog
            .install_config(device.id)
            .await
            .map_err(|e| self.catalog_err(e))?
            .ok_or_else(missing)?;
        let c = stored.config;
        Ok(catalog::InstallConfig {
            software_version: c.software_version,
            os: c.os,
            cpu_arch: c.cpu_arch,
            mode: c.mode,
            password: c.password,
        })
    }

    async fn create_release(
        &mut self,
        r: catalog::NewRelease,
    ) -> Result<catalog::Release, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let payload = self
            .services
            .payload(payload_from(r.payload))
            .await
            .map_err(|e| self.flow_err(e))?;
        let release = self
            .services
            .catalog
            .create_release(
                tenant_id,
                NewRelease {
                    product_sn: r.product_sn,
                    module: module_from(r.module),
                    identify: r.identify as i64,
                    name: r.name,
                    version: r.version,
                    from_version: r.from_version,
                    payload,
                    status: status_from(r.status),
                    description: r.description,
                    customize: r.customize,
                    mac_range: r.mac_range,
                    arch: None,
                },
            )
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(release_to(release))
    }

    async fn get_release(&mut self, id: u64) -> Result<catalog::Release, HostError> {
        let a = self.acting()?;
        let (tenant_id, own_product) =
            (a.tenant_id, a.device.as_ref().map(|d| d.product_sn.clone()));
        let r = self
            .services
            .catalog
            .release(tenant_id, id_of(id, "release")?)
            .await
            .map_err(|e| self.catalog_err(e))?;
        if own_product.is_some_and(|p| p != r.product_sn) {
            return Err(HostError::NotFound(format!("unknown release {id}")));
        }
        Ok(release_to(r))
    }

    async fn list_releases(
        &mut self,
        filter: catalog::ReleaseFilter,
        w: types::Window,
    ) -> Result<catalog::ReleasePage, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        check_window(w)?;
        let filter = crate::catalog::releases::ReleaseFilter {
            product: filter.product_sn,
            module: filter.module.map(module_from),
            status: filter.status.map(status_from),
        };
        let page = self
            .services
            .catalog
            .list_releases(tenant_id, &filter, window(w))
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(catalog::ReleasePage {
            total: page.total.max(0) as u64,
            items: page.items.into_iter().map(release_to).collect(),
        })
    }

    async fn update_release(
        &mut self,
        id: u64,
        patch: catalog::ReleasePatch,
    ) -> Result<catalog::Release, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let payload = match patch.payload {
            Some(p) => Some(
                self.services
                    .payload(payload_from(p))
                    .await
                    .map_err(|e| self.flow_err(e))?,
            ),
            None => None,
        };
        let patch = ReleasePatch {
            name: patch.name,
            version: patch.version,
            payload,
            description: patch.description,
            customize: patch.customize,
            mac_range: patch.mac_range,
        };
        let r = self
            .services
            .update_release(tenant_id, id_of(id, "release")?, patch)
            .await
            .map_err(|e| self.flow_err(e))?;
        Ok(release_to(r))
    }

    async fn set_release_status(
        &mut self,
        id: u64,
        status: catalog::ReleaseStatus,
    ) -> Result<catalog::Release, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let actor = self.actor(None)?;
        let (r, _) = self
            .services
            .set_release_status(
                tenant_id,
                id_of(id, "release")?,
                status_from(status),
                &actor,
            )
            .await
            .map_err(|e| self.flow_err(e))?;
        Ok(release_to(r))
    }

    async fn delete_release(&mut self, id: u64) -> Result<(), HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let actor = self.actor(None)?;
        self.services
            .delete_release(tenant_id, id_of(id, "release")?, &actor)
            .await
            .map_err(|e| self.flow_err(e))?;
        Ok(())
    }

    async fn upgrade_path(
        &mut self,
        id: u64,
        from_version: String,
    ) -> Result<Vec<catalog::Release>, HostError> {
        // The target must be visible to the principal (a device sees its own product only).
        let target = self.get_release(id).await?;
        let tenant_id = self.acting()?.tenant_id;
        let path = self
            .services
            .catalog
            .upgrade_path(tenant_id, target.id as i64, &from_version)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(path.into_iter().map(release_to).collect())
    }

    async fn product_attributes(&mut self, sn: String) -> Result<Vec<(String, String)>, HostError> {
        let tenant_id = self.check_product(&sn)?;
        let p = self.tenant_product(tenant_id, &sn).await?;
        self.services
            .catalog
            .attributes_of_product(&p)
            .await
            .map_err(|e| self.catalog_err(e))
    }

    async fn release_attributes(&mut self, id: u64) -> Result<Vec<(String, String)>, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        self.services
            .catalog
            .release_attributes(tenant_id, id_of(id, "release")?)
            .await
            .map_err(|e| self.catalog_err(e))
    }

    async fn set_release_attributes(
        &mut self,
        id: u64,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<Vec<(String, String)>, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        self.services
            .catalog
            .set_release_attributes(tenant_id, id_of(id, "release")?, &changes)
            .await
            .map_err(|e| self.catalog_err(e))
    }
}
