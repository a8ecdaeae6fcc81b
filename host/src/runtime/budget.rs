//! Each plugin's share of the host, so that one plugin (or a flood aimed at it) costs only
//! itself: at most `instances` of its calls run at once (a few more wait briefly, the rest are
//! answered busy at once), at most `cpu-slots` of them execute guest code at any moment once
//! the plugin uses more than half its share of CPU (the others wait their turn at every host
//! call and every epoch tick, so a looping plugin holds one worker thread, not all), and all
//! its instances together hold at most its memory budget.
//! Budgets belong to a plugin name, so two versions serving during a hot swap share one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::{Limits, MountConfig};

/// `fail` renders that may run at once per plugin, beside its instance quota: enough to
/// answer a busy plugin's clients in its own words, too few to be a second quota.
const FAILURE_RENDERS: usize = 4;

/// How far back a plugin's guest time is measured against its share.
const CPU_WINDOW: Duration = Duration::from_millis(100);

/// What one plugin may use of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Calls (instances) at once.
    pub instances: usize,
    /// Calls executing guest code at once.
    pub cpu_slots: usize,
    /// Linear memory over all live instances, in bytes.
    pub memory_bytes: usize,
    /// How long a call may wait for one of the plugin's instances before it is busy.
    pub queue_wait: Duration,
}

impl Shares {
    /// The operator's limits, with the mount's overrides.
    pub fn of(limits: &Limits, mount: &MountConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Shares {
            instances: mount.instances.unwrap_or(limits.plugin_instances).max(1) as usize,
            cpu_slots: mount
                .cpu_slots
                .or(limits.plugin_cpu_slots)
                .map_or((cores / 2).max(1), |n| n.max(1) as usize),
            memory_bytes: (mount
                .memory_budget_mib
                .unwrap_or(limits.plugin_memory_budget_mib)
                .max(1) as usize)
                << 20,
            queue_wait: Duration::from_millis(limits.plugin_queue_ms),
        }
    }
}

/// One plugin's budget.
pub struct Budget {
    shares: Shares,
    instances: Arc<Semaphore>,
    waiting: AtomicUsize,
    renders: Arc<Semaphore>,
    cpu: Arc<Semaphore>,
    meter: CpuMeter,
    memory_used: AtomicUsize,
}

/// The guest time a plugin's calls used lately. Calls take turns only while it is over half
/// the plugin's share: handing a turn over at every host call costs more than the few
/// microseconds of guest code a well-behaved call runs between them (a fifth of the XLINK
/// check's throughput on two cores), while a looping or CPU-heavy plugin crosses the mark
/// within a window and is held to its `cpu-slots` from then on.
struct CpuMeter {
    origin: std::time::Instant,
    window: Mutex<Window>,
}

/// Guest nanoseconds in the current and the previous window.
#[derive(Default)]
struct Window {
    index: u64,
    previous_ns: u64,
    current_ns: u64,
}

impl CpuMeter {
    fn new() -> Self {
        CpuMeter {
            origin: std::time::Instant::now(),
            window: Mutex::new(Window::default()),
        }
    }

    /// Move to the window `now` lies in; answers how far into it `now` is (0..1). The caller
    /// reads the clock once and shares it (a hook runs at every host call).
    fn roll(&self, w: &mut Window, now: std::time::Instant) -> f64 {
        let len = CPU_WINDOW.as_nanos() as u64;
        let t = now.saturating_duration_since(self.origin).as_nanos() as u64;
        let index = t / len;
        if index != w.index {
            w.previous_ns = if index == w.index + 1 {
                w.current_ns
            } else {
                0
            };
            w.current_ns = 0;
            w.index = index;
        }
        (t % len) as f64 / len as f64
    }

    fn add(&self, now: std::time::Instant, used: Duration) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        self.roll(&mut w, now);
        w.current_ns += used.as_nanos() as u64;
    }

    /// Guest time over the last window: the current one, and the part of the previous one
    /// it does not yet cover.
    fn recent(&self, now: std::time::Instant) -> Duration {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let into = self.roll(&mut w, now);
        Duration::from_nanos((w.previous_ns as f64 * (1.0 - into)) as u64 + w.current_ns)
    }
}

/// Why a call got no instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every instance is in use and the queue is full or did not move in time.
    Busy,
}

impl Budget {
    pub fn new(shares: Shares) -> Arc<Self> {
        Arc::new(Budget {
            instances: Arc::new(Semaphore::new(shares.instances)),
            waiting: AtomicUsize::new(0),
            renders: Arc::new(Semaphore::new(FAILURE_RENDERS)),
            cpu: Arc::new(Semaphore::new(shares.cpu_slots)),
            meter: CpuMeter::new(),
            memory_used: AtomicUsize::new(0),
            shares,
        })
    }

    pub fn shares(&self) -> Shares {
        self.shares
    }

    /// Calls running now (instances in use).
    pub fn in_use(&self) -> usize {
        self.shares.instances - self.instances.available_permits()
    }

    /// Linear memory held by the plugin's live instances, in bytes.
    pub fn memory_used(&self) -> usize {
        self.memory_used.load(Ordering::Relaxed)
    }

    /// An instance for one call: at once when one is free, else after a short wait in a
    /// queue as long as the quota; busy when the queue is full or does not move in time.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(p) = self.instances.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.shares.instances {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Busy);
        }
        let got = tokio::time::timeout(
            self.shares.queue_wait,
            self.instances.clone().acquire_owned(),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Refused::Busy),
        }
    }

    /// A slot to render a failure in the plugin's words, if one is free (never waits).
    pub fn admit_render(&self) -> Option<OwnedSemaphorePermit> {
        self.renders.clone().try_acquire_owned().ok()
    }

    /// Take `bytes` of the memory budget; false (nothing taken) when it would overflow.
    pub fn reserve_memory(&self, bytes: usize) -> bool {
        self.memory_used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|n| *n <= self.shares.memory_bytes)
            })
            .is_ok()
    }

    pub fn release_memory(&self, bytes: usize) {
        self.memory_used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Whether the plugin's guest code used more than half its share of CPU lately.
    pub fn over_share(&self) -> bool {
        self.over_share_at(std::time::Instant::now())
    }

    fn over_share_at(&self, now: std::time::Instant) -> bool {
        self.meter.recent(now) * 2 >= CPU_WINDOW * self.shares.cpu_slots as u32
    }

    /// The CPU turn of one call, which must end by `deadline`.
    pub fn cpu_turn(self: &Arc<Self>, deadline: Instant) -> Arc<CpuTurn> {
        Arc::new(CpuTurn {
            budget: self.clone(),
            running: Mutex::new(Running::default()),
            deadline,
        })
    }
}

/// One call's use of its plugin's CPU: its guest code runs from [`CpuTurn::take`] to
/// [`CpuTurn::give_back`] (host calls and epoch ticks end a stretch), and while the plugin is
/// over its share each stretch holds one of its CPU slots, taken behind whoever waits.
pub struct CpuTurn {
    budget: Arc<Budget>,
    running: Mutex<Running>,
    deadline: Instant,
}

/// The stretch of guest code running now, if any, and its slot when it needed one.
#[derive(Default)]
struct Running {
    since: Option<std::time::Instant>,
    slot: Option<OwnedSemaphorePermit>,
}

impl CpuTurn {
    /// Start a stretch of guest code, waiting for a slot (no later than the call's deadline)
    /// if the plugin is over its share; answers whether the call may run.
    pub async fn take(&self) -> bool {
        {
            let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if r.since.is_some() {
                return true;
            }
            let now = std::time::Instant::now();
            if !self.budget.over_share_at(now) {
                r.since = Some(now);
                return true;
            }
        }
        let cpu = &self.budget.cpu;
        // A free slot needs no timer.
        let slot = match cpu.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                match tokio::time::timeout_at(self.deadline, cpu.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => return false,
                }
            }
        };
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        r.since = Some(std::time::Instant::now());
        r.slot = Some(slot);
        true
    }

    /// End the stretch: its time counts against the plugin, its slot goes to the next.
    pub fn give_back(&self) {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = r.since.take() {
            let now = std::time::Instant::now();
            self.budget
                .meter
                .add(now, now.saturating_duration_since(since));
        }
        r.slot = None;
    }
}

impl Drop for CpuTurn {
    // A call cut short inside guest code (a trap, its deadline) still used that time.
    fn drop(&mut self) {
        self.give_back();
    }
}

/// The memory cap of one instance and its plugin's budget, as wasmtime asks before memory
/// grows. What an instance took returns to the budget when its store is dropped.
pub struct MemoryLimiter {
    per_instance: usize,
    budget: Option<Arc<Budget>>,
    reserved: usize,
}

/// A memory growth the instance cap or the plugin's budget refused.
#[derive(Debug, thiserror::Error)]
#[error("plugin exceeded its memory limit")]
pub struct OutOfMemory;

impl MemoryLimiter {
    pub fn new(per_instance: usize, budget: Option<Arc<Budget>>) -> Self {
        MemoryLimiter {
            per_instance,
            budget,
            reserved: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.per_instance {
            return Err(wasmtime::Error::new(OutOfMemory));
        }
        let extra = desired.saturating_sub(current);
        if let Some(b) = &self.budget {
            if !b.reserve_memory(extra) {
                return Err(wasmtime::Error::new(OutOfMemory));
            }
            self.reserved += extra;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Table slots are bounded by the pooling allocator's table size.
        Ok(true)
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release_memory(self.reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(instances: usize) -> Shares {
        Shares {
            instances,
            cpu_slots: 1,
            memory_bytes: 10 << 20,
            queue_wait: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn a_full_quota_is_busy_after_a_short_wait() {
        let b = Budget::new(shares(2));
        let p1 = b.admit().await.unwrap();
        let _p2 = b.admit().await.unwrap();
        assert_eq!(b.in_use(), 2);
        let started = std::time::Instant::now();
        assert_eq!(b.admit().await.unwrap_err(), Refused::Busy);
        assert!(started.elapsed() >= Duration::from_millis(40));
        // A waiter gets the instance a finishing call gives back.
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.admit().await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(p1);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn the_queue_is_as_long_as_the_quota() {
        let b = Budget::new(Shares {
            queue_wait: Duration::from_secs(5),
            ..shares(1)
        });
        let _held = b.admit().await.unwrap();
        let queued = {
            let b = b.clone();
            tokio::spawn(async move { b.admit().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        assert_eq!(b.admit().await.unwrap_err(), Refused::Busy);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a full queue refuses at once"
        );
        queued.abort();
    }

    #[test]
    fn memory_comes_back_when_the_instance_goes() {
        use wasmtime::ResourceLimiter;
        let b = Budget::new(shares(4));
        let mut one = MemoryLimiter::new(8 << 20, Some(b.clone()));
        let mut two = MemoryLimiter::new(8 << 20, Some(b.clone()));
        assert!(one.memory_growing(0, 6 << 20, None).unwrap());
        assert!(
            two.memory_growing(0, 6 << 20, None).is_err(),
            "over the plugin's budget"
        );
        assert!(
            one.memory_growing(6 << 20, 9 << 20, None).is_err(),
            "over the instance cap"
        );
        assert_eq!(b.memory_used(), 6 << 20);
        drop(one);
        assert_eq!(b.memory_used(), 0);
        assert!(two.memory_growing(0, 6 << 20, None).unwrap());
    }

    #[tokio::test]
    async fn a_plugin_under_its_share_takes_no_slot() {
        let b = Budget::new(shares(4));
        let far = Instant::now() + Duration::from_secs(5);
        let (first, second) = (b.cpu_turn(far), b.cpu_turn(far));
        assert!(first.take().await);
        assert!(second.take().await, "no slot is needed under the share");
        assert_eq!(b.cpu.available_permits(), 1);
        first.give_back();
        second.give_back();
        assert!(!b.over_share());
    }

    #[tokio::test]
    async fn guest_time_over_half_the_share_brings_turns() {
        let b = Budget::new(shares(4));
        let far = Instant::now() + Duration::from_secs(5);
        let spinning = b.cpu_turn(far);
        assert!(spinning.take().await);
        std::thread::sleep(CPU_WINDOW / 2 + Duration::from_millis(5));
        spinning.give_back();
        assert!(b.over_share(), "half a window of guest time on one slot");
        assert!(spinning.take().await);
        assert_eq!(b.cpu.available_permits(), 0, "the stretch holds the slot");
        let other = b.cpu_turn(Instant::now() + Duration::from_millis(30));
        assert!(!other.take().await, "the only slot is held");
        spinning.give_back();
        // Two windows later the plugin is under its share again.
        std::thread::sleep(CPU_WINDOW * 2);
        assert!(!b.over_share());
    }

    #[tokio::test]
    async fn cpu_turns_are_bounded_by_the_deadline() {
        let b = Budget::new(shares(4));
        // A plugin that used its whole share lately: its calls take turns.
        b.meter.add(std::time::Instant::now(), CPU_WINDOW * 4);
        let far = Instant::now() + Duration::from_secs(5);
        let first = b.cpu_turn(far);
        assert!(first.take().await);
        let soon = b.cpu_turn(Instant::now() + Duration::from_millis(30));
        assert!(!soon.take().await, "the only slot is held");
        let second = b.cpu_turn(far);
        let waiting = {
            let second = second.clone();
            tokio::spawn(async move { second.take().await })
        };
        first.give_back();
        assert!(waiting.await.unwrap());
    }
}
