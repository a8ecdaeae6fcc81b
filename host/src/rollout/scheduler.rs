//! The background scheduler: a loop that, every `interval`, applies the time-driven
//! transitions (deployment and job timeouts, retries, wave widening, the failure guard,
//! finishing campaigns). Each pass is idempotent and replica-safe, so a
//! crash between passes loses nothing and two hosts on one database never double-apply.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Rollout;

/// Run one pass; returns how many objects moved.
pub async fn tick(rollout: &Rollout) -> u64 {
    pass(rollout).await.iter().map(|(_, n)| n).sum()
}

/// Run one pass; returns how many objects of each kind moved.
async fn pass(rollout: &Rollout) -> [(&'static str, u64); 6] {
    let deployments = match rollout.time_out_overdue().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "scheduler: deployment pass failed; retrying next interval");
            0
        }
    };
    let jobs = match rollout.tick_jobs().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "scheduler: job pass failed; retrying next interval");
            Default::default()
        }
    };
    let moved = deployments
        + jobs.timed_out
        + jobs.retried
        + jobs.finished_campaigns
        + jobs.paused
        + jobs.widened;
    if moved > 0 {
        tracing::info!(
            deployments_timed_out = deployments,
            jobs_timed_out = jobs.timed_out,
            jobs_retried = jobs.retried,
            campaigns_finished = jobs.finished_campaigns,
            campaigns_paused = jobs.paused,
            campaigns_widened = jobs.widened,
            "scheduler pass"
        );
    }
    [
        ("deployments_timed_out", deployments),
        ("jobs_timed_out", jobs.timed_out),
        ("jobs_retried", jobs.retried),
        ("campaigns_finished", jobs.finished_campaigns),
        ("campaigns_paused", jobs.paused),
        ("campaigns_widened", jobs.widened),
    ]
}

/// Run passes every `interval` until `shutdown` fires, each one timed and counted, and
/// sample campaign progress every `sample_every` (the dashboard's charts).
pub async fn run(
    rollout: Rollout,
    interval: Duration,
    sample_every: Duration,
    shutdown: CancellationToken,
    metrics: crate::metrics::Metrics,
) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = timer.tick() => {
                let began = std::time::Instant::now();
                let moved = pass(&rollout).await;
                metrics.scheduler_pass(began.elapsed(), &moved);
                // A no-op until the next sampling period begins.
                if let Err(e) = rollout.sample_progress(sample_every).await {
                    tracing::warn!(error = %e, "scheduler: progress sample failed");
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
}
