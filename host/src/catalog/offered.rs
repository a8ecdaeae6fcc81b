//! The releases running campaigns offer, kept in memory for the check-in hot path: every
//! device poll that gets an offer answers its release's URL, md5 and size, and those change
//! only when an operator edits the release.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::releases::Release;
use super::{Catalog, CatalogError};

/// How long a remembered release is served. This process drops one at once when it changes
/// it; an edit made by another process (a replica, the CLI) shows within this long.
/// Invalidating or deleting a release cancels its campaigns, which every replica hears at
/// once through the campaign feed, so a withdrawn release is never offered from here.
pub const OFFERED_TTL: Duration = Duration::from_secs(2);

/// Past this many remembered releases, expired ones are swept at the next store.
const SWEEP_AT: usize = 1024;

/// Releases by id, and a generation bumped by every local change: a release read while it
/// was being changed is not stored, so the change cannot hide behind a fresh-looking entry.
#[derive(Default)]
pub struct OfferedReleases(Mutex<Entries>);

#[derive(Default)]
struct Entries {
    /// By id: when read, the tenant it belongs to, and the release.
    releases: HashMap<i64, (Instant, i64, Release)>,
    generation: u64,
}

impl OfferedReleases {
    /// This process changed release `id`.
    pub(super) fn forget(&self, id: i64) {
        if let Ok(mut e) = self.0.lock() {
            e.generation += 1;
            e.releases.remove(&id);
        }
    }
}

impl Catalog {
    /// A live release of the tenant, as [`Catalog::release`], remembered for
    /// [`OFFERED_TTL`]: for answering check-ins, not for editing.
    pub async fn offered_release(&self, tenant_id: i64, id: i64) -> Result<Release, CatalogError> {
        let generation = match self.offered.0.lock() {
            Ok(e) => {
                if let Some((at, tenant, r)) = e.releases.get(&id)
                    && *tenant == tenant_id
                    && at.elapsed() < OFFERED_TTL
                {
                    return Ok(r.clone());
                }
                e.generation
            }
            Err(_) => u64::MAX,
        };
        let r = self.release(tenant_id, id).await?;
        if let Ok(mut e) = self.offered.0.lock()
            && e.generation == generation
        {
            if e.releases.len() >= SWEEP_AT {
                e.releases
                    .retain(|_, (at, _, _)| at.elapsed() < OFFERED_TTL);
            }
            e.releases
                .insert(id, (Instant::now(), tenant_id, r.clone()));
        }
        Ok(r)
    }
}
