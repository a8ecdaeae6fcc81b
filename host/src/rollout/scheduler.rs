//! The background scheduler: a loop that, every `interval`, applies the time-driven
//! transitions (today: deployment timeouts). Each pass is idempotent and replica-safe, so a
//! crash between passes loses nothing and two hosts on one database never double-apply.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Rollout;

/// Run one pass; returns how many objects moved.
pub async fn tick(rollout: &Rollout) -> u64 {
    match rollout.time_out_overdue().await {
        Ok(0) => 0,
        Ok(n) => {
            tracing::info!(timed_out = n, "scheduler: deployments timed out");
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "scheduler pass failed; retrying next interval");
            0
        }
    }
}

/// Run passes every `interval` until `shutdown` fires.
pub async fn run(rollout: Rollout, interval: Duration, shutdown: CancellationToken) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = timer.tick() => { tick(&rollout).await; }
            _ = shutdown.cancelled() => break,
        }
    }
}
