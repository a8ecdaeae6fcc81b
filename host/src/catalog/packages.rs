//! Which release a gateway installs: the full release of its product's main module built for
//! its CPU architecture (or for every one). IoTStack's installer (`--install ARCH VERSION`) and the
//! deployments its agent picks up both ask here, so the two never disagree.

use std::cmp::Ordering;

use super::releases::{COLUMNS, Module, Release, ReleaseStatus, release_from};
use super::version;
use super::{Catalog, CatalogError};

/// What a gateway asks for.
#[derive(Debug, Clone, Copy)]
pub struct PackageQuery<'a> {
    /// The updatable part the file is for: a gateway's software is its main module (`mcu`,
    /// sub-device 0); a `wifi` or sub-device release of the same product is never installed
    /// as the gateway's software.
    pub module: Module,
    /// The sub-device (`identify`) when `module` is `sub`, else 0.
    pub identify: i64,
    /// The gateway's CPU architecture; `None` (unknown) finds only files for every one.
    pub arch: Option<&'a str>,
    /// One version (compared by the version rule, so `1.0` finds `1`); `None` for the newest.
    pub version: Option<&'a str>,
}

impl Default for PackageQuery<'_> {
    /// The gateway's main module, newest version, no architecture, online releases only.
    fn default() -> Self {
        PackageQuery {
            module: Module::Mcu,
            identify: 0,
            arch: None,
            version: None,
        }
    }
}

/// The release `q` picks among `candidates` (full releases of one product): of the asked
/// module, online (`test` releases reach only the devices a test campaign names), built for the
/// architecture (case-insensitively) or for every one, of the asked version or else the newest. At one version a file built for the architecture beats one
/// built for every architecture, then the later upload wins.
pub fn choose(candidates: Vec<Release>, q: &PackageQuery<'_>) -> Option<Release> {
    candidates
        .into_iter()
        .filter(|r| r.from_version.is_none())
        .filter(|r| r.module == q.module && r.identify == q.identify)
        .filter(|r| r.status == ReleaseStatus::Online)
        .filter(|r| match (&r.arch, q.arch) {
            (None, _) => true,
            (Some(built), Some(want)) => built.eq_ignore_ascii_case(want),
            (Some(_), None) => false,
        })
        .filter(|r| {
            q.version
                .is_none_or(|v| version::compare(&r.version, v) == Ordering::Equal)
        })
        .max_by(|a, b| {
            version::compare(&a.version, &b.version)
                .then(a.arch.is_some().cmp(&b.arch.is_some()))
                .then(a.id.cmp(&b.id))
        })
}

impl Catalog {
    /// The release a gateway of `product_sn` installs for `q` (see [`choose`]), if any.
    pub async fn package(
        &self,
        tenant_id: i64,
        product_sn: &str,
        q: &PackageQuery<'_>,
    ) -> Result<Option<Release>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} WHERE r.tenant_id = $1 AND p.sn = $2 AND r.deleted_at IS NULL \
               AND r.from_version IS NULL AND r.status <> 'invalid'"
        ))
        .bind(tenant_id)
        .bind(product_sn)
        .fetch_all(self.db.pool())
        .await?;
        Ok(choose(rows.iter().map(release_from).collect(), q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Module::{Mcu, Sub, Wifi};

    fn release(id: i64, version: &str, arch: Option<&str>, status: ReleaseStatus) -> Release {
        Release {
            id,
            product_sn: "gw".into(),
            module: Mcu,
            identify: 0,
            name: format!("gw {version}"),
            version: version.into(),
            from_version: None,
            blob_sha256: Some("0".repeat(64)),
            external_url: None,
            md5: "0".repeat(32),
            size: 1,
            status,
            description: String::new(),
            customize: String::new(),
            mac_range: Vec::new(),
            arch: arch.map(str::to_string),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn pick(all: &[Release], q: PackageQuery<'_>) -> Option<i64> {
        choose(all.to_vec(), &q).map(|r| r.id)
    }

    #[test]
    fn newest_for_the_architecture_or_for_every_one() {
        use ReleaseStatus::*;
        let all = [
            release(1, "1.0", Some("x86_64"), Online),
            release(2, "1.0", Some("arm7"), Online),
            release(3, "1.1", Some("arm7"), Online),
            release(4, "1.2", None, Online),
            release(5, "2.0", Some("x86_64"), Test),
            release(6, "3.0", Some("x86_64"), Invalid),
        ];
        let x86 = |version| PackageQuery {
            arch: Some("X86_64"),
            version,
            ..Default::default()
        };
        assert_eq!(pick(&all, x86(None)), Some(4));
        assert_eq!(pick(&all, x86(Some("1"))), Some(1));
        assert_eq!(pick(&all, x86(Some("1.1"))), None);
        assert_eq!(
            pick(&all, x86(Some("2.0"))),
            None,
            "test releases are not installs"
        );
        assert_eq!(pick(&all, x86(Some("3.0"))), None);
        let arm = PackageQuery {
            arch: Some("arm7"),
            ..Default::default()
        };
        assert_eq!(pick(&all, arm), Some(4));
        // An unknown architecture gets only files built for every one.
        assert_eq!(pick(&all[..3], PackageQuery::default()), None);
        assert_eq!(pick(&all, PackageQuery::default()), Some(4));
    }

    #[test]
    fn at_one_version_the_architecture_build_wins() {
        use ReleaseStatus::Online;
        let all = [
            release(1, "1.0", Some("x86_64"), Online),
            release(2, "1.0", None, Online),
        ];
        let q = PackageQuery {
            arch: Some("x86_64"),
            ..Default::default()
        };
        assert_eq!(pick(&all, q), Some(1));
        let patch = Release {
            from_version: Some("0.9".into()),
            ..release(3, "1.1", Some("x86_64"), Online)
        };
        assert_eq!(pick(&[patch], q), None, "a patch is not an install");
    }

    #[test]
    fn only_the_asked_module_counts() {
        use ReleaseStatus::Online;
        let module = |id, version, module, identify| Release {
            module,
            identify,
            ..release(id, version, None, Online)
        };
        let all = [
            module(1, "1.0", Mcu, 0),
            module(2, "9.0", Wifi, 0),
            module(3, "8.0", Sub, 2),
        ];
        assert_eq!(pick(&all, PackageQuery::default()), Some(1));
        let sub = |identify| PackageQuery {
            module: Sub,
            identify,
            ..Default::default()
        };
        assert_eq!(pick(&all, sub(2)), Some(3));
        assert_eq!(pick(&all, sub(1)), None);
    }
}
