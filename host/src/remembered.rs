//! Read-mostly facts kept in memory for the device hot path (running campaigns, campaign
//! attributes, offered releases): entries live for a caller-given time, and a generation
//! bumped by every invalidation keeps a read that raced a change from being stored.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Past this many entries, expired ones are swept at the next store.
const SWEEP_AT: usize = 1024;

/// Values by key, each with when it was read.
pub struct Remembered<K, V> {
    entries: HashMap<K, (Instant, V)>,
    generation: u64,
}

impl<K, V> Default for Remembered<K, V> {
    fn default() -> Self {
        Remembered {
            entries: HashMap::new(),
            generation: 0,
        }
    }
}

impl<K: Hash + Eq, V: Clone> Remembered<K, V> {
    /// The value read less than `ttl` ago, or else the generation to [`store`] a fresh read
    /// under.
    ///
    /// [`store`]: Remembered::store
    pub fn get(&self, key: &K, ttl: Duration) -> Result<V, u64> {
        match self.entries.get(key) {
            Some((at, v)) if at.elapsed() < ttl => Ok(v.clone()),
            _ => Err(self.generation),
        }
    }

    /// Keep a value read under `generation`, unless something was invalidated since.
    pub fn store(&mut self, generation: u64, key: K, value: V, ttl: Duration) {
        if generation != self.generation {
            return;
        }
        if self.entries.len() >= SWEEP_AT {
            self.entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        self.entries.insert(key, (Instant::now(), value));
    }

    /// Drop the entries `doomed` picks.
    pub fn forget(&mut self, mut doomed: impl FnMut(&K, &V) -> bool) {
        self.generation += 1;
        self.entries.retain(|k, (_, v)| !doomed(k, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_stored() {
        let mut r = Remembered::<i64, &str>::default();
        let before = r.get(&1, TTL).unwrap_err();
        r.store(before, 1, "one", TTL);
        assert_eq!(r.get(&1, TTL), Ok("one"));
        let racing = r.get(&2, TTL).unwrap_err();
        r.forget(|k, _| *k == 1);
        r.store(racing, 2, "stale", TTL);
        assert!(r.get(&1, TTL).is_err());
        assert!(r.get(&2, TTL).is_err());
        assert!(r.get(&1, Duration::ZERO).is_err());
    }
}
