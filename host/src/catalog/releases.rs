//! Firmware and software releases: one version of one module (wifi / mcu / sub-device +
//! identify) of a product, either a blob stored here or an external URL registered with its
//! md5 and size (MXChip and XLINK do this), optionally a delta from an older version.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::version;
use super::{Catalog, CatalogError};
use crate::storage::Db;

/// Which updatable part of a device a release is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    Wifi,
    Mcu,
    /// A sub-device, told apart by `identify`.
    Sub,
}

impl Module {
    pub fn as_str(self) -> &'static str {
        match self {
            Module::Wifi => "wifi",
            Module::Mcu => "mcu",
            Module::Sub => "sub",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "wifi" => Module::Wifi,
            "mcu" => Module::Mcu,
            "sub" => Module::Sub,
            _ => return None,
        })
    }
}

/// Who may receive a release: testers only, everyone, or nobody any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    Test,
    Online,
    Invalid,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Test => "test",
            ReleaseStatus::Online => "online",
            ReleaseStatus::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "test" => ReleaseStatus::Test,
            "online" => ReleaseStatus::Online,
            "invalid" => ReleaseStatus::Invalid,
            _ => return None,
        })
    }
}

/// Where a release's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A blob in this host's store (facts taken from the store).
    Blob {
        sha256: String,
        md5: String,
        size: u64,
    },
    /// A file elsewhere, registered with the facts its owner declared.
    External { url: String, md5: String, size: u64 },
}

/// The name a release gets when the operator gives none: the file's own name when one is
/// known (the uploaded file, or the last segment of its URL), since consoles show it as the
/// file name (CTWing's `fileName`); else the product and version.
pub fn default_name(product: &str, version: &str, file: Option<&str>) -> String {
    let from_file = file.and_then(|f| {
        let path = f.split(['?', '#']).next().unwrap_or_default();
        // A URL's name is in its path, never its host (`https://cdn.example.com`).
        let path = match path.split_once("://") {
            Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
            None => path,
        };
        let last = path.rsplit(['/', '\\']).next()?;
        let name = percent_encoding::percent_decode_str(last)
            .decode_utf8()
            .ok()?
            .into_owned();
        (!name.is_empty() && !name.contains(['/', '\\', ':'])).then_some(name)
    });
    from_file.unwrap_or_else(|| format!("{product} {version}"))
}

/// What an operator or a dialect provides to create a release.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub product_sn: String,
    pub module: Module,
    pub identify: i64,
    pub name: String,
    pub version: String,
    pub from_version: Option<String>,
    pub payload: Payload,
    pub status: ReleaseStatus,
    pub description: String,
    pub customize: String,
    pub mac_range: Vec<String>,
    /// The CPU architecture the file is built for; `None` when it runs on every one.
    pub arch: Option<String>,
}

/// A stored release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Release {
    pub id: i64,
    pub product_sn: String,
    pub module: Module,
    pub identify: i64,
    pub name: String,
    pub version: String,
    pub from_version: Option<String>,
    pub blob_sha256: Option<String>,
    pub external_url: Option<String>,
    pub md5: String,
    pub size: u64,
    pub status: ReleaseStatus,
    pub description: String,
    pub customize: String,
    pub mac_range: Vec<String>,
    /// The CPU architecture the file is built for (e.g. IoTStack's `x86_64`, `arm7`,
    /// `ARMv8_64`); absent when it runs on every architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Changes to a release: `None` keeps a field. A new payload replaces the file facts.
#[derive(Debug, Clone, Default)]
pub struct ReleasePatch {
    pub name: Option<String>,
    pub version: Option<String>,
    pub payload: Option<Payload>,
    pub description: Option<String>,
    pub customize: Option<String>,
    pub mac_range: Option<Vec<String>>,
}

/// Which releases to list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReleaseFilter {
    pub product: Option<String>,
    pub module: Option<Module>,
    pub status: Option<ReleaseStatus>,
}

/// A page request: 1-based `page`, `page_size` from 1 to 200 (default 20). Dialects that
/// page by offset (XLINK) set `offset`, which then replaces the page arithmetic.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct PageReq {
    pub page: u32,
    pub page_size: u32,
    #[serde(skip)]
    #[param(ignore)]
    pub offset: Option<u64>,
}

impl Default for PageReq {
    fn default() -> Self {
        PageReq {
            page: 1,
            page_size: 20,
            offset: None,
        }
    }
}

impl PageReq {
    /// Skip `offset` items, take at most `limit`.
    pub fn window(offset: u64, limit: u32) -> Self {
        PageReq {
            page: (offset / u64::from(limit.max(1))).min(u32::MAX as u64 - 1) as u32 + 1,
            page_size: limit,
            offset: Some(offset),
        }
    }

    /// `(limit, offset)` for SQL, refusing sizes outside 1-200.
    pub(crate) fn checked(self) -> Result<(i64, i64), CatalogError> {
        if self.page == 0 || self.page_size == 0 || self.page_size > 200 {
            return Err(CatalogError::Invalid(
                "page starts at 1; page_size must be 1-200".into(),
            ));
        }
        let offset = match self.offset {
            Some(o) => {
                i64::try_from(o).map_err(|_| CatalogError::Invalid("offset out of range".into()))?
            }
            None => (self.page as i64 - 1) * self.page_size as i64,
        };
        Ok((self.page_size as i64, offset))
    }
}

/// The total a page's rows already tell, if they do: a page shorter than its limit that is
/// not past the end (it has rows, or it is the first) ends the list, so counting the
/// matches would only repeat the query. A device poll that lists its product's releases
/// gets one page of a few.
pub(crate) fn total_of_short_page(rows: usize, limit: i64, offset: i64) -> Option<i64> {
    let rows = rows as i64;
    (rows < limit && (rows > 0 || offset == 0)).then_some(offset + rows)
}

/// One page of results with the total count.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
}

impl<T> Page<T> {
    /// The page `req` asked for, holding `items` out of `total`.
    pub fn of(items: Vec<T>, req: PageReq, total: i64) -> Self {
        Page {
            items,
            page: req.page,
            page_size: req.page_size,
            total,
        }
    }
}

pub(super) const COLUMNS: &str = "r.id, p.sn, r.module, r.identify, r.name, r.version, r.from_version, \
    r.blob_sha256, r.external_url, r.md5, r.size, r.status, r.description, r.customize, \
    r.mac_range, r.created_at, r.updated_at, r.arch \
    FROM releases r JOIN products p ON p.id = r.product_id";

pub(super) fn release_from(r: &sqlx::any::AnyRow) -> Release {
    Release {
        id: r.get(0),
        product_sn: r.get(1),
        module: Module::parse(&r.get::<String, _>(2)).unwrap_or(Module::Mcu),
        identify: r.get(3),
        name: r.get(4),
        version: r.get(5),
        from_version: r.get(6),
        blob_sha256: r.get(7),
        external_url: r.get(8),
        md5: r.get(9),
        size: r.get::<i64, _>(10) as u64,
        status: ReleaseStatus::parse(&r.get::<String, _>(11)).unwrap_or(ReleaseStatus::Invalid),
        description: r.get(12),
        customize: r.get(13),
        mac_range: serde_json::from_str(&r.get::<String, _>(14)).unwrap_or_default(),
        created_at: r.get(15),
        updated_at: r.get(16),
        arch: r.get(17),
    }
}

fn validate(n: &NewRelease) -> Result<(), CatalogError> {
    let bad = |m: &str| Err(CatalogError::Invalid(m.to_string()));
    if n.version.trim().is_empty() || n.version.len() > 64 {
        return bad("version must be 1-64 characters");
    }
    if n.identify < 0 {
        return bad("identify must not be negative");
    }
    if let Some(from) = &n.from_version
        && version::compare(from, &n.version) != std::cmp::Ordering::Less
    {
        return bad("from_version must be older than version");
    }
    let (md5, url) = match &n.payload {
        Payload::Blob { md5, .. } => (md5, None),
        Payload::External { md5, url, .. } => (md5, Some(url)),
    };
    if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad("md5 must be 32 hex characters");
    }
    if let Some(url) = url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return bad("an external URL must be http:// or https://");
    }
    if n.mac_range.iter().any(|m| m.trim().is_empty()) {
        return bad("mac_range entries must not be empty");
    }
    if let Some(arch) = &n.arch
        && !valid_arch(arch)
    {
        return bad("arch must be 1-32 characters of letters, digits, '_', '-' and '.'");
    }
    Ok(())
}

/// An architecture name as gateways and operators write it (`x86_64`, `ARMv8_64`, `arm7`):
/// short, and safe in a path segment and a shell word.
pub fn valid_arch(arch: &str) -> bool {
    (1..=32).contains(&arch.len())
        && arch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

impl Catalog {
    /// Create a release of an existing product; the same module + version (+ from-version,
    /// + architecture) twice is a conflict.
    pub async fn create_release(
        &self,
        tenant_id: i64,
        n: NewRelease,
    ) -> Result<Release, CatalogError> {
        validate(&n)?;
        let product = self.product(tenant_id, &n.product_sn).await?;
        let (sha, url, md5, size) = match &n.payload {
            Payload::Blob { sha256, md5, size } => (Some(sha256.clone()), None, md5, *size),
            Payload::External { url, md5, size } => (None, Some(url.clone()), md5, *size),
        };
        let now = self.clock.now_millis();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO releases (tenant_id, product_id, module, identify, name, version, from_version, \
               blob_sha256, external_url, md5, size, status, description, customize, mac_range, \
               created_at, updated_at, arch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17) \
             RETURNING id",
        )
        .bind(tenant_id)
        .bind(product.id)
        .bind(n.module.as_str())
        .bind(n.identify)
        .bind(&n.name)
        .bind(n.version.trim())
        .bind(n.from_version.as_deref())
        .bind(sha)
        .bind(url)
        .bind(md5.to_ascii_lowercase())
        .bind(size as i64)
        .bind(n.status.as_str())
        .bind(&n.description)
        .bind(&n.customize)
        .bind(serde_json::to_string(&n.mac_range).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .bind(n.arch.as_deref())
        .fetch_one(self.db.pool())
        .await
        .map_err(|e| {
            if Db::is_unique_violation(&e) {
                CatalogError::Conflict(format!(
                    "{} {} version {} of product {}{} already exists",
                    n.module.as_str(),
                    n.identify,
                    n.version,
                    n.product_sn,
                    n.arch
                        .as_deref()
                        .map(|a| format!(" for {a}"))
                        .unwrap_or_default()
                ))
            } else {
                e.into()
            }
        })?;
        self.release(tenant_id, id).await
    }

    /// A live (not deleted) release of the tenant.
    pub async fn release(&self, tenant_id: i64, id: i64) -> Result<Release, CatalogError> {
        let row = self
            .db
            .read_optional(
                sqlx::query(&format!(
                    "SELECT {COLUMNS} WHERE r.tenant_id = $1 AND r.id = $2 AND r.deleted_at IS NULL"
                ))
                .bind(tenant_id)
                .bind(id),
            )
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("unknown release {id}")))?;
        Ok(release_from(&row))
    }

    /// Live releases, newest first, filtered and paged.
    pub async fn list_releases(
        &self,
        tenant_id: i64,
        f: &ReleaseFilter,
        page: PageReq,
    ) -> Result<Page<Release>, CatalogError> {
        let (limit, offset) = page.checked()?;
        let mut cond = String::from("r.tenant_id = $1 AND r.deleted_at IS NULL");
        let mut binds: Vec<String> = Vec::new();
        for (column, value) in [
            ("p.sn", f.product.clone()),
            ("r.module", f.module.map(|m| m.as_str().to_string())),
            ("r.status", f.status.map(|s| s.as_str().to_string())),
        ] {
            if let Some(v) = value {
                binds.push(v);
                cond.push_str(&format!(" AND {column} = ${}", binds.len() + 1));
            }
        }
        let n = binds.len();
        let list_sql = format!(
            "SELECT {COLUMNS} WHERE {cond} ORDER BY r.id DESC LIMIT ${} OFFSET ${}",
            n + 2,
            n + 3
        );
        let mut q = sqlx::query(&list_sql).bind(tenant_id);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = self.db.read_all(q.bind(limit).bind(offset)).await?;
        let total = match total_of_short_page(rows.len(), limit, offset) {
            Some(total) => total,
            None => {
                let count_sql = format!(
                    "SELECT COUNT(*) FROM releases r JOIN products p ON p.id = r.product_id WHERE {cond}"
                );
                let mut count = sqlx::query(&count_sql).bind(tenant_id);
                for b in &binds {
                    count = count.bind(b);
                }
                self.db.read_one(count).await?.get::<i64, _>(0)
            }
        };
        Ok(Page::of(
            rows.iter().map(release_from).collect(),
            page,
            total,
        ))
    }

    /// Change a live release under the same rules as creation (a version clash is a
    /// conflict).
    pub async fn update_release(
        &self,
        tenant_id: i64,
        id: i64,
        patch: ReleasePatch,
    ) -> Result<Release, CatalogError> {
        let current = self.release(tenant_id, id).await?;
        let (sha, url) = (current.blob_sha256.clone(), current.external_url.clone());
        let payload = match (patch.payload, sha, url) {
            (Some(p), _, _) => p,
            (None, Some(sha256), _) => Payload::Blob {
                sha256,
                md5: current.md5.clone(),
                size: current.size,
            },
            (None, None, url) => Payload::External {
                url: url.unwrap_or_default(),
                md5: current.md5.clone(),
                size: current.size,
            },
        };
        let next = NewRelease {
            product_sn: current.product_sn.clone(),
            module: current.module,
            identify: current.identify,
            name: patch.name.unwrap_or(current.name),
            version: patch.version.unwrap_or(current.version),
            from_version: current.from_version,
            payload,
            status: current.status,
            description: patch.description.unwrap_or(current.description),
            customize: patch.customize.unwrap_or(current.customize),
            mac_range: patch.mac_range.unwrap_or(current.mac_range),
            arch: current.arch,
        };
        validate(&next)?;
        let (sha, url, md5, size) = match &next.payload {
            Payload::Blob { sha256, md5, size } => (Some(sha256.clone()), None, md5, *size),
            Payload::External { url, md5, size } => (None, Some(url.clone()), md5, *size),
        };
        // Guarded by updated_at so two concurrent edits cannot silently overwrite each other.
        let changed = sqlx::query(
            "UPDATE releases SET name = $1, version = $2, blob_sha256 = $3, external_url = $4, \
               md5 = $5, size = $6, description = $7, customize = $8, mac_range = $9, updated_at = $10 \
             WHERE tenant_id = $11 AND id = $12 AND deleted_at IS NULL AND updated_at = $13",
        )
        .bind(&next.name)
        .bind(next.version.trim())
        .bind(sha)
        .bind(url)
        .bind(md5.to_ascii_lowercase())
        .bind(size as i64)
        .bind(&next.description)
        .bind(&next.customize)
        .bind(serde_json::to_string(&next.mac_range).unwrap_or_else(|_| "[]".into()))
        .bind(self.clock.now_millis().max(current.updated_at + 1))
        .bind(tenant_id)
        .bind(id)
        .bind(current.updated_at)
        .execute(self.db.pool())
        .await
        .map_err(|e| {
            if Db::is_unique_violation(&e) {
                CatalogError::Conflict(format!(
                    "version {} of this module already exists",
                    next.version
                ))
            } else {
                e.into()
            }
        })?
        .rows_affected();
        self.offered.forget(id);
        if changed == 0 {
            return Err(CatalogError::Conflict(format!(
                "release {id} changed concurrently; try again"
            )));
        }
        self.release(tenant_id, id).await
    }

    /// Move a release to test / online / invalid.
    pub async fn set_release_status(
        &self,
        tenant_id: i64,
        id: i64,
        status: ReleaseStatus,
    ) -> Result<Release, CatalogError> {
        let changed = sqlx::query(
            "UPDATE releases SET status = $1, updated_at = $2 \
             WHERE tenant_id = $3 AND id = $4 AND deleted_at IS NULL",
        )
        .bind(status.as_str())
        .bind(self.clock.now_millis())
        .bind(tenant_id)
        .bind(id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        self.offered.forget(id);
        if changed == 0 {
            return Err(CatalogError::NotFound(format!("unknown release {id}")));
        }
        self.release(tenant_id, id).await
    }

    /// The releases that take a device from `from` to release `id`'s version, in install
    /// order: the shortest chain of usable patches, else the full release of that version.
    /// See [`plan_upgrade`] for the rules.
    pub async fn upgrade_path(
        &self,
        tenant_id: i64,
        id: i64,
        from: &str,
    ) -> Result<Vec<Release>, CatalogError> {
        let target = self.release(tenant_id, id).await?;
        if target.status == ReleaseStatus::Invalid {
            return Err(CatalogError::Conflict(format!(
                "release {id} is invalid; nothing upgrades to it"
            )));
        }
        match version::compare(from, &target.version) {
            Ordering::Equal => return Ok(Vec::new()),
            Ordering::Greater => {
                return Err(CatalogError::Invalid(format!(
                    "version {from} is newer than release {id} ({})",
                    target.version
                )));
            }
            Ordering::Less => {}
        }
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} WHERE r.tenant_id = $1 AND r.product_id =                (SELECT product_id FROM releases WHERE id = $2)              AND r.module = $3 AND r.identify = $4 AND r.deleted_at IS NULL              AND r.status <> 'invalid' ORDER BY r.id"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(target.module.as_str())
        .bind(target.identify)
        .fetch_all(self.db.pool())
        .await?;
        // A file built for another architecture never joins the chain.
        let candidates: Vec<Release> = rows
            .iter()
            .map(release_from)
            .filter(|r| r.arch.is_none() || r.arch == target.arch)
            .collect();
        plan_upgrade(&candidates, &target, from).ok_or_else(|| {
            CatalogError::NotFound(format!(
                "no patch chain from {from} to {} and no full release of it",
                target.version
            ))
        })
    }

    /// Hide a release (kept for history; its version may be released again).
    pub async fn delete_release(&self, tenant_id: i64, id: i64) -> Result<(), CatalogError> {
        let now = self.clock.now_millis();
        let changed = sqlx::query(
            "UPDATE releases SET deleted_at = $1, updated_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        self.offered.forget(id);
        if changed == 0 {
            return Err(CatalogError::NotFound(format!("unknown release {id}")));
        }
        Ok(())
    }
}

/// Plan an upgrade from version `from` to `target`'s version over `candidates` (releases of
/// the same product, module and identify). Patches (releases with a from-version) are edges
/// between versions; usable ones are `online`, or also `test` when the target is a test
/// release. The answer is the chain with the fewest patches, then the fewest bytes, then the
/// oldest releases; without a chain, a full release (no from-version) of the target version,
/// preferring the target itself. `None` when there is neither.
pub fn plan_upgrade(candidates: &[Release], target: &Release, from: &str) -> Option<Vec<Release>> {
    let usable = |r: &Release| match r.status {
        ReleaseStatus::Online => true,
        ReleaseStatus::Test => target.status == ReleaseStatus::Test,
        ReleaseStatus::Invalid => false,
    };
    let same = |a: &str, b: &str| version::compare(a, b) == Ordering::Equal;
    let patches: Vec<&Release> = candidates
        .iter()
        .filter(|r| r.from_version.is_some() && (usable(r) || r.id == target.id))
        .collect();
    // Dijkstra over versions with (patches, bytes, ids) as the cost: the graphs are a few
    // dozen releases, so a linear scan for the next node is plenty.
    type Cost = (usize, u64, Vec<i64>);
    let mut best: Vec<(String, Cost, Vec<&Release>)> =
        vec![(from.to_string(), (0, 0, vec![]), vec![])];
    let mut done: Vec<String> = Vec::new();
    loop {
        let next = best
            .iter()
            .filter(|(v, _, _)| !done.iter().any(|d| same(d, v)))
            .min_by(|a, b| a.1.cmp(&b.1))
            .cloned();
        let Some((at, cost, path)) = next else { break };
        if same(&at, &target.version) {
            return Some(path.into_iter().cloned().collect());
        }
        done.push(at.clone());
        for p in patches
            .iter()
            .filter(|p| same(p.from_version.as_deref().unwrap_or(""), &at))
        {
            // Never step past the target or backwards: a chain only climbs.
            if version::compare(&p.version, &at) != Ordering::Greater
                || version::compare(&p.version, &target.version) == Ordering::Greater
            {
                continue;
            }
            let mut ids = cost.2.clone();
            ids.push(p.id);
            let c = (cost.0 + 1, cost.1 + p.size, ids);
            let mut path = path.clone();
            path.push(*p);
            match best.iter_mut().find(|(v, _, _)| same(v, &p.version)) {
                Some(entry) if entry.1 <= c => {}
                Some(entry) => *entry = (p.version.clone(), c, path),
                None => best.push((p.version.clone(), c, path)),
            }
        }
    }
    if target.from_version.is_none() {
        return Some(vec![target.clone()]);
    }
    candidates
        .iter()
        .find(|r| r.from_version.is_none() && usable(r) && same(&r.version, &target.version))
        .map(|r| vec![r.clone()])
}

/// Release attributes: facts a dialect keeps about a release beyond the common record.
impl Catalog {
    /// A live release's attributes, by name.
    pub async fn release_attributes(
        &self,
        tenant_id: i64,
        id: i64,
    ) -> Result<Vec<(String, String)>, CatalogError> {
        let r = self.release(tenant_id, id).await?;
        Ok(super::RELEASE_ATTRIBUTES.read(&self.db, r.id).await?)
    }

    /// Set (or, with `None`, remove) attributes of a live release in one transaction, under
    /// the same naming rules as product attributes.
    pub async fn set_release_attributes(
        &self,
        tenant_id: i64,
        id: i64,
        changes: &[(String, Option<String>)],
    ) -> Result<Vec<(String, String)>, CatalogError> {
        super::check_attributes(changes)?;
        let r = self.release(tenant_id, id).await?;
        super::RELEASE_ATTRIBUTES
            .write(&self.db, r.id, changes)
            .await?;
        self.release_attributes(tenant_id, id).await
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn rel(id: i64, from: Option<&str>, to: &str, size: u64, status: ReleaseStatus) -> Release {
        Release {
            id,
            product_sn: "p".into(),
            module: Module::Mcu,
            identify: 0,
            name: "f".into(),
            version: to.into(),
            from_version: from.map(String::from),
            blob_sha256: None,
            external_url: Some(format!("http://x/{id}")),
            md5: "0".repeat(32),
            size,
            status,
            description: String::new(),
            customize: String::new(),
            mac_range: vec![],
            arch: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn ids(plan: Option<Vec<Release>>) -> Option<Vec<i64>> {
        plan.map(|p| p.into_iter().map(|r| r.id).collect())
    }

    use ReleaseStatus::{Invalid, Online, Test};

    #[test]
    fn shortest_chain_then_fewest_bytes_then_full_package() {
        let full = rel(1, None, "19", 1000, Online);
        let all = vec![
            full.clone(),
            rel(2, Some("17"), "18", 10, Online),
            rel(3, Some("18"), "19", 10, Online),
            rel(4, Some("17"), "19", 50, Online),
            rel(5, Some("16"), "17", 10, Online),
        ];
        // One direct patch beats two small ones.
        assert_eq!(ids(plan_upgrade(&all, &full, "17")), Some(vec![4]));
        // Two hops from 16: 16->17->19 (60 bytes) beats nothing shorter.
        assert_eq!(ids(plan_upgrade(&all, &full, "16")), Some(vec![5, 4]));
        assert_eq!(ids(plan_upgrade(&all, &full, "18")), Some(vec![3]));
        // A gap: nothing leaves 15, so the full package.
        assert_eq!(ids(plan_upgrade(&all, &full, "15")), Some(vec![1]));
        // Equal hop counts: fewer bytes wins.
        let tie = vec![
            full.clone(),
            rel(6, Some("10"), "12", 500, Online),
            rel(7, Some("12"), "19", 10, Online),
            rel(8, Some("10"), "11", 10, Online),
            rel(9, Some("11"), "19", 10, Online),
        ];
        assert_eq!(ids(plan_upgrade(&tie, &full, "10")), Some(vec![8, 9]));
    }

    #[test]
    fn unusable_patches_are_skipped() {
        let full = rel(1, None, "3", 100, Online);
        let all = vec![
            full.clone(),
            rel(2, Some("1"), "3", 1, Invalid),
            rel(3, Some("2"), "3", 1, Test),
            rel(4, Some("1"), "4", 1, Online),
        ];
        assert_eq!(ids(plan_upgrade(&all, &full, "1")), Some(vec![1]));
        assert_eq!(ids(plan_upgrade(&all, &full, "2")), Some(vec![1]));
        let test_target = rel(5, None, "3", 100, Test);
        let mut with = all.clone();
        with.push(test_target.clone());
        assert_eq!(ids(plan_upgrade(&with, &test_target, "2")), Some(vec![3]));
    }

    #[test]
    fn a_patch_target_needs_a_chain_or_a_full_release() {
        let patch = rel(1, Some("1"), "2", 5, Online);
        assert_eq!(
            ids(plan_upgrade(std::slice::from_ref(&patch), &patch, "1")),
            Some(vec![1])
        );
        assert_eq!(
            ids(plan_upgrade(std::slice::from_ref(&patch), &patch, "0")),
            None
        );
        let full = rel(2, None, "2", 50, Online);
        assert_eq!(
            ids(plan_upgrade(&[patch.clone(), full], &patch, "0")),
            Some(vec![2])
        );
    }
}

#[cfg(test)]
mod name_tests {
    use super::default_name;

    #[test]
    fn default_names_come_from_the_file() {
        assert_eq!(
            default_name("p", "1.0", Some("/tmp/fw_1.0.bin")),
            "fw_1.0.bin"
        );
        assert_eq!(
            default_name("p", "1.0", Some("https://cdn.example.com/a/b.bin?x=1")),
            "b.bin"
        );
        assert_eq!(
            default_name("p", "1.0", Some("https://cdn.example.com/")),
            "p 1.0"
        );
        assert_eq!(default_name("p", "1.0", Some("C:\\fw\\x.bin")), "x.bin");
        assert_eq!(
            default_name("p", "1.0", Some("https://cdn.example.com")),
            "p 1.0"
        );
        assert_eq!(
            default_name("p", "1.0", Some("https://h/%E5%B7%A5%E4%BD%9C.bin")),
            "工作.bin"
        );
        assert_eq!(default_name("p", "1.0", None), "p 1.0");
    }
}

#[cfg(test)]
mod page_tests {
    use super::total_of_short_page;

    #[test]
    fn a_short_page_tells_the_total_unless_it_is_past_the_end() {
        // First page, fewer than asked: that is all of them (none at all included).
        assert_eq!(total_of_short_page(3, 20, 0), Some(3));
        assert_eq!(total_of_short_page(0, 20, 0), Some(0));
        // A later page with rows, fewer than asked: the list ends on it.
        assert_eq!(total_of_short_page(5, 20, 40), Some(45));
        // A full page may have more after it; an empty later page may be past the end.
        assert_eq!(total_of_short_page(20, 20, 0), None);
        assert_eq!(total_of_short_page(0, 20, 40), None);
    }
}
