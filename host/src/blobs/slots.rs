//! A budget on uploads in flight. Each streaming upload holds up to ~24 MiB of buffers (one
//! 8 MiB part being filled and two being sent), so their number is bounded over the host
//! and per party (an operator key, a tenant's signed form): a flood of uploads from one
//! party is refused at once, before its body is read, and never costs anyone else memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why an upload was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefused {
    #[error("this party already has {0} uploads in flight; retry when one has finished")]
    Party(usize),
    #[error("the host already has {0} uploads in flight; retry shortly")]
    Host(usize),
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_party: HashMap<String, usize>,
}

/// The host's upload budget (`blobs.uploads-in-flight`, `blobs.uploads-per-party`).
pub struct UploadSlots {
    host: usize,
    per_party: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One upload's place in the budget, given back when dropped (the upload ended, however).
pub struct Slot {
    party: String,
    counts: Arc<Mutex<Counts>>,
}

impl UploadSlots {
    pub fn new(host: usize, per_party: usize) -> Self {
        UploadSlots {
            host: host.max(1),
            per_party: per_party.max(1),
            counts: Default::default(),
        }
    }

    /// A place for one upload of `party`, or why there is none.
    pub fn take(&self, party: &str) -> Result<Slot, SlotRefused> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.by_party.get(party).copied().unwrap_or(0);
        if mine >= self.per_party {
            return Err(SlotRefused::Party(self.per_party));
        }
        if c.total >= self.host {
            return Err(SlotRefused::Host(self.host));
        }
        c.total += 1;
        *c.by_party.entry(party.to_string()).or_insert(0) += 1;
        Ok(Slot {
            party: party.to_string(),
            counts: self.counts.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.by_party.get_mut(&self.party) {
            *n -= 1;
            if *n == 0 {
                // Parties come and go: only those with an upload in flight are kept.
                c.by_party.remove(&self.party);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_and_the_host_are_bounded_and_places_come_back() {
        let slots = UploadSlots::new(3, 2);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert_eq!(slots.take("a").err(), Some(SlotRefused::Party(2)));
        let _b1 = slots.take("b").unwrap();
        assert_eq!(slots.take("c").err(), Some(SlotRefused::Host(3)));
        drop(a1);
        let _c1 = slots.take("c").unwrap();
        assert_eq!(slots.take("a").err(), Some(SlotRefused::Host(3)));
        drop(_c1);
        drop(_b1);
        drop(_a2);
        assert!(slots.counts.lock().unwrap().by_party.is_empty());
        assert_eq!(slots.counts.lock().unwrap().total, 0);
    }
}
