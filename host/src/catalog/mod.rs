//! The catalog: products (created by operators), devices (registered on first contact, with
//! the version each module runs), firmware releases, and what a gateway installs (IoTStack's
//! reinstall configuration). Every lookup is scoped to a tenant, so one tenant can never name
//! another's product, device or release.

pub mod known;
pub mod offered;
pub mod packages;
pub mod releases;
/// The one version ordering rule (a crate of its own so that the guest SDK shares it).
pub use ota_version_order as version;

use sqlx::Row;

use crate::clock::SharedClock;
use crate::storage::Db;
use crate::storage::attributes::AttributeTable;

/// How stale a device's `online_at` may get before a contact refreshes it.
const ONLINE_RESOLUTION_MILLIS: i64 = 60_000;

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: i64,
    pub tenant_id: i64,
    pub sn: String,
    pub name: String,
    pub created_at: i64,
}

/// A device with the identifiers dialects name it by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Device {
    pub id: i64,
    pub tenant_id: i64,
    /// Kept so a check-in need not look the product up again; dialects name it by `product_sn`.
    #[serde(skip)]
    pub product_id: i64,
    pub product_sn: String,
    pub sn: String,
    pub created_at: i64,
    pub name: Option<String>,
    pub imei: Option<String>,
    pub mac: Option<String>,
    pub group: Option<String>,
    pub online_at: Option<i64>,
    pub offline_at: Option<i64>,
}

/// Facts to set on a device: `None` keeps a field, `Some("")` clears it.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    pub name: Option<String>,
    pub imei: Option<String>,
    pub mac: Option<String>,
    pub group: Option<String>,
}

/// Which devices to list: every given field must match exactly.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceFilter {
    pub sn: Option<String>,
    pub name: Option<String>,
    pub imei: Option<String>,
    pub mac: Option<String>,
    pub group: Option<String>,
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
    offered: std::sync::Arc<offered::OfferedReleases>,
    products: std::sync::Arc<known::KnownProducts>,
}

fn check_sn(what: &str, sn: &str) -> Result<(), CatalogError> {
    if sn.is_empty() || sn.len() > 128 || sn.chars().any(char::is_control) {
        return Err(CatalogError::Invalid(format!(
            "{what} serial number must be 1-128 printable characters"
        )));
    }
    Ok(())
}

const PRODUCT_COLUMNS: &str = "id, tenant_id, sn, name, created_at FROM products";

fn product_from(r: &sqlx::any::AnyRow) -> Product {
    Product {
        id: r.get(0),
        tenant_id: r.get(1),
        sn: r.get(2),
        name: r.get(3),
        created_at: r.get(4),
    }
}

const DEVICE_COLUMNS: &str = "d.id, p.tenant_id, p.sn, d.sn, d.created_at, d.name, d.imei, \
    d.mac, d.group_name, d.online_at, d.offline_at, d.product_id \
    FROM devices d JOIN products p ON p.id = d.product_id";

fn device_from(r: &sqlx::any::AnyRow) -> Device {
    Device {
        id: r.get(0),
        tenant_id: r.get(1),
        product_sn: r.get(2),
        sn: r.get(3),
        created_at: r.get(4),
        name: r.get(5),
        imei: r.get(6),
        mac: r.get(7),
        group: r.get(8),
        online_at: r.get(9),
        offline_at: r.get(10),
        product_id: r.get(11),
    }
}

/// A patch value as stored: `None` keeps the column (NULL bind + COALESCE), `Some("")`
/// clears it, anything else is trimmed and kept.
fn patch_value(v: &Option<String>, what: &str) -> Result<(bool, Option<String>), CatalogError> {
    match v {
        None => Ok((false, None)),
        Some(s) if s.trim().is_empty() => Ok((true, None)),
        Some(s) if s.len() > 128 || s.chars().any(char::is_control) => Err(CatalogError::Invalid(
            format!("{what} must be at most 128 printable characters"),
        )),
        Some(s) => Ok((true, Some(s.trim().to_string()))),
    }
}

impl Catalog {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Catalog {
            db,
            clock,
            offered: Default::default(),
            products: Default::default(),
        }
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
        let p = Product {
            id,
            tenant_id,
            sn: sn.to_string(),
            name: name.to_string(),
            created_at: now,
        };
        self.products.keep(&p);
        Ok(p)
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

    /// The tenant's product `sn` (from memory after the first read: see [`known`]).
    pub async fn product(&self, tenant_id: i64, sn: &str) -> Result<Product, CatalogError> {
        if let Some(p) = self.products.by_sn(tenant_id, sn) {
            return Ok(p);
        }
        let sql = format!("SELECT {PRODUCT_COLUMNS} WHERE tenant_id = $1 AND sn = $2");
        let row = self
            .db
            .read_optional(sqlx::query(&sql).bind(tenant_id).bind(sn))
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("unknown product {sn:?}")))?;
        let p = product_from(&row);
        self.products.keep(&p);
        Ok(p)
    }

    /// A product's operator-set attributes, sorted by name.
    pub async fn product_attributes(
        &self,
        tenant_id: i64,
        sn: &str,
    ) -> Result<Vec<(String, String)>, CatalogError> {
        let p = self.product(tenant_id, sn).await?;
        self.attributes_of_product(&p).await
    }

    /// [`Catalog::product_attributes`] of a product the caller already read.
    pub async fn attributes_of_product(
        &self,
        p: &Product,
    ) -> Result<Vec<(String, String)>, CatalogError> {
        Ok(PRODUCT_ATTRIBUTES.read(&self.db, p.id).await?)
    }

    /// Set (or, with `None`, remove) product attributes in one transaction (see
    /// [`check_attributes`] for the rules).
    pub async fn set_product_attributes(
        &self,
        tenant_id: i64,
        sn: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<Vec<(String, String)>, CatalogError> {
        check_attributes(changes)?;
        let p = self.product(tenant_id, sn).await?;
        PRODUCT_ATTRIBUTES.write(&self.db, p.id, changes).await?;
        self.product_attributes(tenant_id, sn).await
    }

    /// A product by its id (for flows that start from a campaign or a job).
    pub async fn product_by_id(&self, id: i64) -> Result<Product, CatalogError> {
        if let Some(p) = self.products.by_id(id) {
            return Ok(p);
        }
        let row = self
            .db
            .read_optional(sqlx::query(&format!("SELECT {PRODUCT_COLUMNS} WHERE id = $1")).bind(id))
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("unknown product {id}")))?;
        let p = product_from(&row);
        self.products.keep(&p);
        Ok(p)
    }

    pub async fn list_products(&self, tenant_id: i64) -> Result<Vec<Product>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {PRODUCT_COLUMNS} WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(product_from).collect())
    }

    /// Register a device of an existing product; an existing device is returned as is.
    pub async fn register_device(
        &self,
        tenant_id: i64,
        product_sn: &str,
        device_sn: &str,
    ) -> Result<Device, CatalogError> {
        check_sn("device", device_sn)?;
        // Known devices are the common case: find them without taking the write lock.
        match self.find_device(tenant_id, product_sn, device_sn).await {
            Err(CatalogError::NotFound(_)) => {}
            found => return found,
        }
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
        let row = self
            .db
            .read_optional(
                sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} WHERE p.tenant_id = $1 AND p.sn = $2 AND d.sn = $3"
                ))
                .bind(tenant_id)
                .bind(product_sn)
                .bind(device_sn),
            )
            .await?
            .ok_or_else(|| {
                CatalogError::NotFound(format!(
                    "unknown device {device_sn:?} of product {product_sn:?}"
                ))
            })?;
        Ok(device_from(&row))
    }

    /// Every tenant's product with this serial number (serial numbers are unique only per
    /// tenant), for logins that name a product before any tenant is known.
    pub async fn products_with_sn(&self, sn: &str) -> Result<Vec<Product>, CatalogError> {
        let rows = self
            .db
            .read_all(
                sqlx::query(&format!(
                    "SELECT {PRODUCT_COLUMNS} WHERE sn = $1 ORDER BY id"
                ))
                .bind(sn),
            )
            .await?;
        Ok(rows.iter().map(product_from).collect())
    }

    /// The product's device with exactly this MAC address, else one registered with the MAC
    /// as its serial number and its MAC (a device login's first contact).
    pub async fn device_by_mac(
        &self,
        product: &Product,
        mac: &str,
    ) -> Result<Device, CatalogError> {
        let found = self.db.read_optional(sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} WHERE d.product_id = $1 AND d.mac = $2 ORDER BY d.id LIMIT 1"
        ))
        .bind(product.id)
        .bind(mac)
        )
        .await?;
        if let Some(row) = found {
            return Ok(device_from(&row));
        }
        // A device already named by this MAC keeps the MAC it has.
        match self.find_device(product.tenant_id, &product.sn, mac).await {
            Ok(d) if d.mac.as_deref().is_some_and(|m| !m.is_empty() && m != mac) => {
                return Err(CatalogError::Conflict(format!(
                    "device {mac} of product {} has MAC {}",
                    product.sn,
                    d.mac.unwrap_or_default()
                )));
            }
            Ok(_) | Err(CatalogError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let patch = DevicePatch {
            mac: Some(mac.to_string()),
            ..DevicePatch::default()
        };
        self.update_device(product.tenant_id, &product.sn, mac, &patch)
            .await
    }

    /// A device by its id.
    pub async fn device(&self, id: i64) -> Result<Device, CatalogError> {
        let row = self
            .db
            .read_optional(
                sqlx::query(&format!("SELECT {DEVICE_COLUMNS} WHERE d.id = $1")).bind(id),
            )
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
        // Devices poll with the version they already reported: read first, so a repeat poll
        // writes nothing (on SQLite every write statement queues behind the one writer).
        let known = self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT m.version, d.online_at FROM devices d LEFT JOIN device_modules m \
                     ON m.device_id = d.id AND m.module = $2 AND m.identify = $3 WHERE d.id = $1",
                )
                .bind(device_id)
                .bind(module)
                .bind(identify),
            )
            .await?;
        let (stored, online_at): (Option<String>, Option<i64>) =
            known.map(|r| (r.get(0), r.get(1))).unwrap_or_default();
        if stored.as_deref() != Some(version) {
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
        }
        // "Last seen" to the minute is all anyone reads from it.
        if online_at.is_none_or(|t| now - t >= ONLINE_RESOLUTION_MILLIS || now < t) {
            sqlx::query("UPDATE devices SET online_at = $1 WHERE id = $2")
                .bind(now)
                .bind(device_id)
                .execute(self.db.pool())
                .await?;
        }
        Ok(())
    }

    /// The versions a device runs, as (module, identify, version).
    pub async fn module_versions(
        &self,
        device_id: i64,
    ) -> Result<Vec<(String, i64, String)>, CatalogError> {
        let rows = self.db.read_all(sqlx::query(
            "SELECT module, identify, version FROM device_modules WHERE device_id = $1 ORDER BY module, identify",
        )
        .bind(device_id)
        )
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

    /// How many of a product's devices last reported exactly `version` for a module.
    pub async fn count_devices_on(
        &self,
        tenant_id: i64,
        product_sn: &str,
        module: releases::Module,
        identify: i64,
        version: &str,
    ) -> Result<u64, CatalogError> {
        let product = self.product(tenant_id, product_sn).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM device_modules m JOIN devices d ON d.id = m.device_id \
             WHERE d.product_id = $1 AND m.module = $2 AND m.identify = $3 AND m.version = $4",
        )
        .bind(product.id)
        .bind(module.as_str())
        .bind(identify)
        .bind(version)
        .fetch_one(self.db.pool())
        .await?;
        Ok(n.max(0) as u64)
    }

    /// Set a device's name, IMEI, MAC or group, registering it on first contact.
    pub async fn update_device(
        &self,
        tenant_id: i64,
        product_sn: &str,
        device_sn: &str,
        patch: &DevicePatch,
    ) -> Result<Device, CatalogError> {
        let device = self
            .register_device(tenant_id, product_sn, device_sn)
            .await?;
        let mut sets = Vec::new();
        let mut binds = Vec::new();
        for (column, value) in [
            ("name", &patch.name),
            ("imei", &patch.imei),
            ("mac", &patch.mac),
            ("group_name", &patch.group),
        ] {
            let (set, v) = patch_value(value, column)?;
            if set {
                binds.push(v);
                sets.push(format!("{column} = ${}", binds.len()));
            }
        }
        if !sets.is_empty() {
            let sql = format!(
                "UPDATE devices SET {} WHERE id = ${}",
                sets.join(", "),
                binds.len() + 1
            );
            let mut q = sqlx::query(&sql);
            for b in binds {
                q = q.bind(b);
            }
            q.bind(device.id).execute(self.db.pool()).await?;
        }
        self.device(device.id).await
    }

    /// A product's devices, oldest first, filtered (exact matches) and paged.
    pub async fn list_devices(
        &self,
        tenant_id: i64,
        product_sn: &str,
        filter: &DeviceFilter,
        page: releases::PageReq,
    ) -> Result<releases::Page<Device>, CatalogError> {
        let product = self.product(tenant_id, product_sn).await?;
        let (limit, offset) = page.checked()?;
        let mut cond = String::from("d.product_id = $1");
        let mut binds: Vec<&str> = Vec::new();
        for (column, value) in [
            ("d.sn", &filter.sn),
            ("d.name", &filter.name),
            ("d.imei", &filter.imei),
            ("d.mac", &filter.mac),
            ("d.group_name", &filter.group),
        ] {
            if let Some(v) = value {
                binds.push(v);
                cond.push_str(&format!(" AND {column} = ${}", binds.len() + 1));
            }
        }
        let count_sql = format!("SELECT COUNT(*) FROM devices d WHERE {cond}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(product.id);
        for b in &binds {
            count = count.bind(*b);
        }
        let total = count.fetch_one(self.db.pool()).await?;
        let n = binds.len();
        let list_sql = format!(
            "SELECT {DEVICE_COLUMNS} WHERE {cond} ORDER BY d.id LIMIT ${} OFFSET ${}",
            n + 2,
            n + 3
        );
        let mut q = sqlx::query(&list_sql).bind(product.id);
        for b in &binds {
            q = q.bind(*b);
        }
        let rows = q.bind(limit).bind(offset).fetch_all(self.db.pool()).await?;
        Ok(releases::Page::of(
            rows.iter().map(device_from).collect(),
            page,
            total,
        ))
    }

    /// Devices of any tenant whose serial number, name, IMEI or MAC contains `text` (case
    /// does not matter), newest first, at most `limit` (the dashboard's device search).
    pub async fn search_devices(
        &self,
        text: &str,
        limit: i64,
    ) -> Result<Vec<Device>, CatalogError> {
        let pattern = crate::rollout::search::like_pattern(text.trim());
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} WHERE LOWER(d.sn) LIKE $1 ESCAPE '\\' \
               OR LOWER(COALESCE(d.name, '')) LIKE $1 ESCAPE '\\' \
               OR LOWER(COALESCE(d.imei, '')) LIKE $1 ESCAPE '\\' \
               OR LOWER(COALESCE(d.mac, '')) LIKE $1 ESCAPE '\\' \
             ORDER BY d.id DESC LIMIT $2"
        ))
        .bind(pattern)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(device_from).collect())
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
        let row = self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT software_version, os, cpu_arch, mode, password, report_url, updated_at \
             FROM install_configs WHERE device_id = $1",
                )
                .bind(device_id),
            )
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

/// Product attributes (operator-set facts such as CTWing's protocol), owned by the catalog.
pub(crate) const PRODUCT_ATTRIBUTES: AttributeTable = AttributeTable {
    table: "product_attributes",
    owner: "product_id",
};

/// Release attributes (dialect-kept facts such as MXChip's free-text size).
pub(crate) const RELEASE_ATTRIBUTES: AttributeTable = AttributeTable {
    table: "release_attributes",
    owner: "release_id",
};

/// The attribute rules of [`crate::storage::attributes::check`], as a catalog error.
pub(crate) fn check_attributes(changes: &[(String, Option<String>)]) -> Result<(), CatalogError> {
    crate::storage::attributes::check(changes).map_err(CatalogError::Invalid)
}
