//! Limits on password and client-secret checks, which cost an Argon2 computation each
//! (~19 MiB, tens of milliseconds): a bounded number run at once on the guard's own threads,
//! each holding its place until the computation really ends (a caller that gives up does not
//! free it early); a bounded number wait, and the rest are refused at once; attempts from one
//! client address are rate-limited (`governor`), and failures back off exponentially per
//! address and per account. A flood costs the flooder time, not the host memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::config::LoginLimits;

/// A failure streak is forgotten after this long without a new failure.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Past this many tracked keys, stale ones are swept on the next failure.
const SWEEP_ABOVE: usize = 4_096;

/// Why a check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many attempts; retry after this many seconds.
    Throttled(u32),
    /// Every hashing slot and waiting place is taken.
    Busy,
}

/// Whose failures back off.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Source(IpAddr),
    /// (realm, account name).
    Account(String, String),
}

#[derive(Debug, Clone, Copy)]
struct Streak {
    failures: u32,
    until: Instant,
    last: Instant,
}

/// One computation for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Checks queued or running per client address.
#[derive(Default)]
struct InFlight(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One address's place among the checks; given back when dropped (when its hash ends).
struct AddressPlace {
    all: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl InFlight {
    fn take(&self, ip: IpAddr, max: usize) -> Option<AddressPlace> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = all.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressPlace {
            all: self.0.clone(),
            ip,
        })
    }
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = all.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                all.remove(&self.ip);
            }
        }
    }
}

/// The login limits of one host process.
pub struct LoginGuard {
    /// Places for computations running or queued.
    places: Arc<Semaphore>,
    /// To the hashing threads. A few long-lived threads, not the blocking pool: each thread
    /// keeps its allocator arena, so the host holds at most one Argon2 block per thread.
    jobs: Mutex<mpsc::Sender<Job>>,
    in_flight: InFlight,
    per_address: usize,
    per_source: DefaultKeyedRateLimiter<IpAddr>,
    streaks: Mutex<HashMap<Key, Streak>>,
    free_failures: u32,
    max_backoff: Duration,
}

/// Start `n` hashing threads taking jobs from one queue; they end when the guard is dropped.
fn hashing_threads(n: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ota-hash-{i}"))
            .spawn(move || {
                loop {
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a password-hashing thread");
        }
    }
    tx
}

fn secs_ceil(d: Duration) -> u32 {
    (d.as_millis().div_ceil(1000)).clamp(1, u32::MAX as u128) as u32
}

impl LoginGuard {
    pub fn new(l: &LoginLimits) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let concurrency = l
            .hash_concurrency
            .map_or((cores / 2).max(1), |n| n.max(1) as usize);
        let per_minute = NonZeroU32::new(l.attempts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(l.attempt_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        LoginGuard {
            places: Arc::new(Semaphore::new(concurrency + l.hash_queue as usize)),
            jobs: Mutex::new(hashing_threads(concurrency)),
            in_flight: InFlight::default(),
            per_address: l.per_address_checks.max(1) as usize,
            per_source: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            streaks: Mutex::new(HashMap::new()),
            free_failures: l.free_failures,
            max_backoff: Duration::from_secs(l.max_backoff_secs.max(1)),
        }
    }

    fn streaks(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Streak>> {
        self.streaks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May `source` try `account` of `realm` now? Counts the attempt against the address's
    /// rate; refuses while the address or the account is backing off.
    pub fn admit(&self, source: Option<IpAddr>, realm: &str, account: &str) -> Result<(), Refused> {
        let now = Instant::now();
        {
            let streaks = self.streaks();
            let keys = [
                source.map(Key::Source),
                Some(Key::Account(realm.to_string(), account.to_string())),
            ];
            for key in keys.iter().flatten() {
                if let Some(s) = streaks.get(key)
                    && s.until > now
                {
                    return Err(Refused::Throttled(secs_ceil(s.until - now)));
                }
            }
        }
        if let Some(ip) = source
            && let Err(not_until) = self.per_source.check_key(&ip)
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return Err(Refused::Throttled(secs_ceil(wait)));
        }
        Ok(())
    }

    /// Record a failed check: after the free failures, each one doubles the wait (from one
    /// second, up to the maximum) for the address and for the account.
    pub fn failed(&self, source: Option<IpAddr>, realm: &str, account: &str) {
        let now = Instant::now();
        let mut streaks = self.streaks();
        if streaks.len() > SWEEP_ABOVE {
            streaks.retain(|_, s| now.duration_since(s.last) < FORGET_AFTER || s.until > now);
            self.per_source.retain_recent();
            self.per_source.shrink_to_fit();
        }
        let keys = [
            source.map(Key::Source),
            Some(Key::Account(realm.to_string(), account.to_string())),
        ];
        for key in keys.into_iter().flatten() {
            let s = streaks.entry(key).or_insert(Streak {
                failures: 0,
                until: now,
                last: now,
            });
            if now.duration_since(s.last) >= FORGET_AFTER {
                s.failures = 0;
            }
            s.failures = s.failures.saturating_add(1);
            s.last = now;
            if s.failures > self.free_failures {
                let doublings = (s.failures - self.free_failures - 1).min(30);
                let wait = Duration::from_secs(1u64 << doublings).min(self.max_backoff);
                s.until = now + wait;
            }
        }
    }

    /// Record a successful check: the account's streak ends (the address's does not, so one
    /// good account cannot launder an address's guessing).
    pub fn succeeded(&self, realm: &str, account: &str) {
        self.streaks()
            .remove(&Key::Account(realm.to_string(), account.to_string()));
    }

    /// Run an Argon2 computation on one of the guard's hashing threads: queued when a place
    /// is free (as many as the threads plus the waiting room), else refused at once. A queued
    /// computation runs to its end and holds its place until then, even if the caller stopped
    /// waiting, so giving up never lets more computations (and their memory) pile up.
    ///
    /// One client address holds at most `per-address-checks` places, so a flood from one
    /// address cannot fill the queue in front of everyone else's logins.
    pub async fn hash<T: Send + 'static>(
        &self,
        source: Option<IpAddr>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let mine = match source {
            Some(ip) => Some(
                self.in_flight
                    .take(ip, self.per_address)
                    .ok_or(Refused::Throttled(1))?,
            ),
            None => None,
        };
        let place = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Busy)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _place = (place, mine);
            let _ = tx.send(f());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| Refused::Busy)?;
        rx.await.map_err(|_| Refused::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_address_holds_only_its_share_of_the_queue() {
        let g = Arc::new(LoginGuard::new(&LoginLimits {
            hash_concurrency: Some(1),
            hash_queue: 8,
            per_address_checks: 2,
            ..Default::default()
        }));
        let flood: IpAddr = "10.0.0.9".parse().unwrap();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let mut held = Vec::new();
        for _ in 0..2 {
            let (g, hold) = (g.clone(), hold.clone());
            held.push(tokio::spawn(async move {
                g.hash(Some(flood), move || {
                    let _ = hold.lock().unwrap().recv_timeout(Duration::from_secs(5));
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(g.hash(Some(flood), || ()).await, Err(Refused::Throttled(1)));
        // Another address still gets a place (it waits behind the running one only).
        let other = {
            let g = g.clone();
            tokio::spawn(async move { g.hash(Some("10.0.0.10".parse().unwrap()), || 5).await })
        };
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert_eq!(other.await.unwrap(), Ok(5));
        for h in held {
            assert_eq!(h.await.unwrap(), Ok(()));
        }
        assert!(g.hash(Some(flood), || ()).await.is_ok(), "places come back");
    }

    fn guard(queue: u32, concurrency: u32) -> LoginGuard {
        LoginGuard::new(&LoginLimits {
            hash_concurrency: Some(concurrency),
            hash_queue: queue,
            attempts_per_minute: 600,
            attempt_burst: 5,
            free_failures: 2,
            max_backoff_secs: 8,
            per_address_checks: 8,
        })
    }

    #[test]
    fn failures_back_off_per_address_and_account() {
        let g = guard(4, 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            g.admit(Some(a), "r", "alice").unwrap();
            g.failed(Some(a), "r", "alice");
        }
        g.admit(Some(a), "r", "alice").unwrap();
        g.failed(Some(a), "r", "alice");
        assert_eq!(
            g.admit(Some(a), "r", "bob"),
            Err(Refused::Throttled(1)),
            "address backs off"
        );
        assert_eq!(
            g.admit(Some(b), "r", "alice"),
            Err(Refused::Throttled(1)),
            "account backs off"
        );
        assert!(
            g.admit(Some(b), "r", "bob").is_ok(),
            "others are not touched"
        );
        assert!(g.admit(Some(b), "other-realm", "alice").is_ok());
        // More failures double the wait, up to the maximum.
        for _ in 0..10 {
            g.failed(Some(a), "r", "alice");
        }
        assert_eq!(g.admit(Some(a), "r", "x"), Err(Refused::Throttled(8)));
        g.succeeded("r", "alice");
        assert!(
            g.admit(Some(b), "r", "alice").is_ok(),
            "success ends the account's streak"
        );
        assert!(g.admit(Some(a), "r", "x").is_err(), "but not the address's");
    }

    #[test]
    fn an_address_has_a_rate() {
        let g = guard(4, 1);
        let a: IpAddr = "10.0.0.3".parse().unwrap();
        for i in 0..5 {
            assert!(g.admit(Some(a), "r", &format!("u{i}")).is_ok());
        }
        assert!(matches!(
            g.admit(Some(a), "r", "u9"),
            Err(Refused::Throttled(_))
        ));
        assert!(
            g.admit(None, "r", "u9").is_ok(),
            "no address, no address rate"
        );
    }

    #[tokio::test]
    async fn hashing_is_bounded_and_keeps_its_slot_until_done() {
        let g = Arc::new(guard(1, 1));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let slow = {
            let g = g.clone();
            tokio::spawn(async move {
                g.hash(None, move || {
                    let _ = hold.recv_timeout(Duration::from_secs(5));
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One waits, the next is refused at once.
        let waiter = {
            let g = g.clone();
            tokio::spawn(async move { g.hash(None, || 7).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(g.hash(None, || 1).await, Err(Refused::Busy));
        // A caller that gives up does not free the slot: the computation still runs.
        slow.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "the slot is held until the hash ends"
        );
        release.send(()).unwrap();
        assert_eq!(waiter.await.unwrap(), Ok(7));
    }
}
