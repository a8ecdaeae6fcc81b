//! The catalog: products (created by operators), devices (registered on first contact, with
//! the version each module runs), firmware releases, and what a gateway installs (IoTStack's
//! reinstall configuration). Every lookup is scoped to a tenant, so one tenant can never name
//! another's product, device or release.

pub mod releases;
pub mod version;

use sqlx::Row;

use crate::clock::SharedClock;
use crate::storage::Db;

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// A product of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Product {
    pub id: i64,
    pub tenant_id: i64,
    pub sn: String,
    pub name: String,
    pub created_at: i64,
}

/// A device with the identifiers dialects name it by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    pub id: i64,
    pub tenant_id: i64,
    pub product_sn: String,
    pub sn: String,
    pub created_at: i64,
}

/// How a gateway installs the edge software.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallConfig {
    pub software_version: String,
    pub os: String,
    pub cpu_arch: String,
    pub mode: String,
    pub password: String,
}

/// An install configuration with where its gateway reports progress.
#[derive(Debug, Clone)]
pub struct StoredInstall {
    pub config: InstallConfig,
    pub report_url: String,
    pub updated_at: i64,
}

/// The catalog service.
#[derive(Clone)]
pub struct Catalog {
    db: Db,
    clock: SharedClock,
}

fn check_sn(what: &str, sn: &str) -> Result<(), CatalogError> {
    if sn.is_empty() || sn.len() > 128 || sn.chars().any(char::is_control) {
        return Err(CatalogError::Invalid(format!(
            "{what} serial number must be 1-128 printable characters"
        )));
    }
    Ok(())
}

const DEVICE_COLUMNS: &str = "d.id, p.tenant_id, p.sn, d.sn, d.created_at FROM devices d JOIN products p ON p.id = d.product_id";

fn device_from(r: &sqlx::any::AnyRow) -> Device {
    Device {
        id: r.get(0),
        tenant_id: r.get(1),
        product_sn: r.get(2),
        sn: r.get(3),
        created_at: r.get(4),
    }
}

impl Catalog {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Catalog { db, clock }
    }

    /// Create a product; its serial number must be new within the tenant.
    pub async fn create_product(
        &self,
        tenant_id: i64,
        sn: &str,
        name: &str,
    ) -> Result<Product, CatalogError> {
        check_sn("product", sn)?;
        let now = self.clock.now_millis();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO products (tenant_id, sn, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(tenant_id)
        .bind(sn)
        .bind(name)
        .bind(now)
        .fetch_one(self.db.pool())
        .await
        .map_err(|e| {
            if Db::is_unique_violation(&e) {
                CatalogError::Conflict(format!("product {sn:?} already exists"))
            } else {
                e.into()
            }
        })?;
        Ok(Product {
            id,
            tenant_id,
            sn: sn.to_string(),
            name: name.to_string(),
            created_at: now,
        })
    }

    /// The product, created if missing (declarative provisioning).
    pub async fn ensure_product(
        &self,
        tenant_id: i64,
        sn: &str,
        name: &str,
    ) -> Result<Product, CatalogError> {
        match self.product(tenant_id, sn).await {
            Err(CatalogError::NotFound(_)) => {
                match self.create_product(tenant_id, sn, name).await {
                    Err(CatalogError::Conflict(_)) => self.product(tenant_id, sn).await,
                    other => other,
                }
            }
            other => other,
        }
    }

    pub async fn product(&self, tenant_id: i64, sn: &str) -> Result<Product, CatalogError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, sn, name, created_at FROM products WHERE tenant_id = $1 AND sn = $2",
        )
        .bind(tenant_id)
        .bind(sn)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| CatalogError::NotFound(format!("unknown product {sn:?}")))?;
        Ok(Product {
            id: row.get(0),
            tenant_id: row.get(1),
            sn: row.get(2),
            name: row.get(3),
            created_at: row.get(4),
        })
    }

    pub async fn list_products(&self, tenant_id: i64) -> Result<Vec<Product>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, sn, name, created_at FROM products WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Product {
                id: r.get(0),
                tenant_id: r.get(1),
                sn: r.get(2),
                name: r.get(3),
                created_at: r.get(4),
            })
            .collect())
    }

    /// Register a device of an existing product; an existing device is returned as is.
    pub async fn register_device(
        &self,
        tenant_id: i64,
        product_sn: &str,
        device_sn: &str,
    ) -> Result<Device, CatalogError> {
        check_sn("device", device_sn)?;
        let product = self.product(tenant_id, product_sn).await?;
        // ON CONFLICT makes first contact from two replicas (or two requests) converge.
        sqlx::query(
            "INSERT INTO devices (product_id, sn, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (product_id, sn) DO NOTHING",
        )
        .bind(product.id)
        .bind(device_sn)
        .bind(self.clock.now_millis())
        .execute(self.db.pool())
        .await?;
        self.find_device(tenant_id, product_sn, device_sn).await
    }

    /// A device by its product and serial number.
    pub async fn find_device(
        &self,
        tenant_id: i64,
        product_sn: &str,
        device_sn: &str,
    ) -> Result<Device, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} WHERE p.tenant_id = $1 AND p.sn = $2 AND d.sn = $3"
        ))
        .bind(tenant_id)
        .bind(product_sn)
        .bind(device_sn)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| {
            CatalogError::NotFound(format!(
                "unknown device {device_sn:?} of product {product_sn:?}"
            ))
        })?;
        Ok(device_from(&row))
    }

    /// A device by its id.
    pub async fn device(&self, id: i64) -> Result<Device, CatalogError> {
        let row = sqlx::query(&format!("SELECT {DEVICE_COLUMNS} WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("unknown device {id}")))?;
        Ok(device_from(&row))
    }

    /// Record the version a device runs for one module (and that it was just seen online).
    pub async fn set_module_version(
        &self,
        device_id: i64,
        module: &str,
        identify: i64,
        version: &str,
    ) -> Result<(), CatalogError> {
        if releases::Module::parse(module).is_none() {
            return Err(CatalogError::Invalid(format!("unknown module {module:?}")));
        }
        let now = self.clock.now_millis();
        sqlx::query(
            "INSERT INTO device_modules (device_id, module, identify, version, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, module, identify) \
             DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind(device_id)
        .bind(module)
        .bind(identify)
        .bind(version)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        sqlx::query("UPDATE devices SET online_at = $1 WHERE id = $2")
            .bind(now)
            .bind(device_id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The versions a device runs, as (module, identify, version).
    pub async fn module_versions(
        &self,
        device_id: i64,
    ) -> Result<Vec<(String, i64, String)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT module, identify, version FROM device_modules WHERE device_id = $1 ORDER BY module, identify",
        )
        .bind(device_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// The group a device belongs to, if any.
    pub async fn device_group(&self, device_id: i64) -> Result<Option<String>, CatalogError> {
        Ok(
            sqlx::query_scalar("SELECT group_name FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(self.db.pool())
                .await?
                .flatten(),
        )
    }

    /// How many devices a product has.
    pub async fn count_devices(&self, product_id: i64) -> Result<i64, CatalogError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE product_id = $1")
                .bind(product_id)
                .fetch_one(self.db.pool())
                .await?,
        )
    }

    /// A product's devices, oldest first, paged.
    pub async fn list_devices(
        &self,
        tenant_id: i64,
        product_sn: &str,
        page: releases::PageReq,
    ) -> Result<releases::Page<Device>, CatalogError> {
        let product = self.product(tenant_id, product_sn).await?;
        let (limit, offset) = page.checked()?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE product_id = $1")
            .bind(product.id)
            .fetch_one(self.db.pool())
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} WHERE d.product_id = $1 ORDER BY d.id LIMIT $2 OFFSET $3"
        ))
        .bind(product.id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.db.pool())
        .await?;
        Ok(releases::Page::of(
            rows.iter().map(device_from).collect(),
            page,
            total,
        ))
    }

    /// Create or replace a device's install configuration.
    pub async fn put_install_config(
        &self,
        device_id: i64,
        c: &InstallConfig,
        report_url: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO install_configs \
               (device_id, software_version, os, cpu_arch, mode, password, report_url, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (device_id) DO UPDATE SET software_version = excluded.software_version, \
               os = excluded.os, cpu_arch = excluded.cpu_arch, mode = excluded.mode, \
               password = excluded.password, report_url = excluded.report_url, \
               updated_at = excluded.updated_at",
        )
        .bind(device_id)
        .bind(&c.software_version)
        .bind(&c.os)
        .bind(&c.cpu_arch)
        .bind(&c.mode)
        .bind(&c.password)
        .bind(report_url)
        .bind(self.clock.now_millis())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// A device's install configuration, if one was stored.
    pub async fn install_config(
        &self,
        device_id: i64,
    ) -> Result<Option<StoredInstall>, CatalogError> {
        let row = sqlx::query(
            "SELECT software_version, os, cpu_arch, mode, password, report_url, updated_at \
             FROM install_configs WHERE device_id = $1",
        )
        .bind(device_id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| StoredInstall {
            config: InstallConfig {
                software_version: r.get(0),
                os: r.get(1),
                cpu_arch: r.get(2),
                mode: r.get(3),
                password: r.get(4),
            },
            report_url: r.get(5),
            updated_at: r.get(6),
        }))
    }
}
