//! The releases running campaigns offer, kept in memory for the check-in hot path: every
//! device poll that gets an offer answers its release's URL, md5 and size, and those change
//! only when an operator edits the release.

use std::sync::Mutex;
use std::time::Duration;

use super::releases::Release;
use super::{Catalog, CatalogError};
use crate::remembered::Remembered;

/// How long a remembered release is served. This process drops one at once when it changes
/// it; an edit made by another process (a replica, the CLI) shows within this long.
/// Invalidating or deleting a release cancels its campaigns, which every replica hears at
/// once through the campaign feed, so a withdrawn release is never offered from here.
pub const OFFERED_TTL: Duration = Duration::from_secs(2);

/// Releases by id, with the tenant each belongs to.
#[derive(Default)]
pub struct OfferedReleases(Mutex<Remembered<i64, (i64, Release)>>);

impl OfferedReleases {
    /// This process changed release `id`.
    pub(super) fn forget(&self, id: i64) {
        if let Ok(mut r) = self.0.lock() {
            r.forget(|k, _| *k == id);
        }
    }
}

impl Catalog {
    /// A live release of the tenant, as [`Catalog::release`], remembered for
    /// [`OFFERED_TTL`]: for answering check-ins, not for editing.
    pub async fn offered_release(&self, tenant_id: i64, id: i64) -> Result<Release, CatalogError> {
        let generation = match self.offered.0.lock().map(|r| r.get(&id, OFFERED_TTL)) {
            Ok(Ok((tenant, r))) if tenant == tenant_id => return Ok(r),
            // Another tenant's id: read (and refused) below, never stored over the owner's.
            Ok(Ok(_)) => u64::MAX,
            Ok(Err(generation)) => generation,
            Err(_) => u64::MAX,
        };
        let r = self.release(tenant_id, id).await?;
        if let Ok(mut remembered) = self.offered.0.lock() {
            remembered.store(generation, id, (tenant_id, r.clone()), OFFERED_TTL);
        }
        Ok(r)
    }
}
