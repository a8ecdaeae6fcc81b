//! The per-device job state machine every dialect is a view of. One canonical set of states,
//! the transitions between them (anything else is refused), and how each vendor names them:
//! CTWing's LWM2M codes 0-11 and T-Link 1-4, XLINK's issued/finished, UBTech's 0-3 and
//! IoTStack's init/processing/success/failed/timeout.
//!
//! ```text
//! queued -> notified -> downloading -> installing -> succeeded
//!    \__________\____________\_____________\-------> failed | cancelled | timed-out
//! failed | timed-out --(retry, while retries remain)--> queued
//! ```
//! A device may skip ahead (a report of `installing` straight after `queued` is fine) but never
//! go back, and nothing leaves `succeeded` or `cancelled`.

use serde::{Deserialize, Serialize};

/// Where one device stands in one campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Planned; the device has not been told yet.
    Queued,
    /// The device was offered the release (it polled, or was pushed).
    Notified,
    /// The device reports downloading.
    Downloading,
    /// The device reports installing.
    Installing,
    /// Finished successfully (final).
    Succeeded,
    /// Finished with an error; may be retried while retries remain.
    Failed,
    /// Withdrawn by an operator (final).
    Cancelled,
    /// No final report before the per-device timeout; may be retried while retries remain.
    TimedOut,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a job cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: &'static str,
    pub to: &'static str,
}

/// What moves a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The device reports a state (progress or result).
    Report(JobState),
    /// The device was offered the release.
    Notify,
    /// An operator withdraws the device from the campaign.
    Cancel,
    /// The scheduler found it overdue.
    Timeout,
    /// The scheduler tries a failed or timed-out job again.
    Retry,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Notified,
        JobState::Downloading,
        JobState::Installing,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Notified => "notified",
            JobState::Downloading => "downloading",
            JobState::Installing => "installing",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::TimedOut => "timed-out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        JobState::ALL.into_iter().find(|j| j.as_str() == s)
    }

    /// Position along the happy path; `None` for the end states.
    fn progress(self) -> Option<u8> {
        match self {
            JobState::Queued => Some(0),
            JobState::Notified => Some(1),
            JobState::Downloading => Some(2),
            JobState::Installing => Some(3),
            _ => None,
        }
    }

    /// No event moves the job any more except, for failed and timed-out, a retry.
    pub fn is_final(self) -> bool {
        self.progress().is_none()
    }

    /// The state `event` leads to, or why it may not happen.
    pub fn apply(self, event: Event) -> Result<JobState, IllegalTransition> {
        let refuse = |to: JobState| IllegalTransition {
            from: self.as_str(),
            to: to.as_str(),
        };
        let to = match event {
            Event::Notify => JobState::Notified,
            Event::Report(s) => s,
            Event::Cancel => JobState::Cancelled,
            Event::Timeout => JobState::TimedOut,
            Event::Retry => {
                return match self {
                    JobState::Failed | JobState::TimedOut => Ok(JobState::Queued),
                    _ => Err(refuse(JobState::Queued)),
                };
            }
        };
        let Some(from) = self.progress() else {
            // Devices retransmit their result; saying it again changes nothing.
            return match event {
                Event::Report(s)
                    if s == self && matches!(s, JobState::Succeeded | JobState::Failed) =>
                {
                    Ok(s)
                }
                _ => Err(refuse(to)),
            };
        };
        match (event, to.progress()) {
            // A device never reports "queued", "cancelled" or "timed-out": those are ours.
            (Event::Report(_), _)
                if matches!(
                    to,
                    JobState::Queued | JobState::Cancelled | JobState::TimedOut
                ) =>
            {
                Err(refuse(to))
            }
            // Forward along the path; repeating the current state is an idempotent report.
            (_, Some(p)) if p >= from => Ok(to),
            (_, Some(_)) => Err(refuse(to)),
            (_, None) => Ok(to),
        }
    }

    /// CTWing LWM2M `taskStatus` (0-11). `before` is the state the job failed from, which
    /// tells LWM2M's stage-specific failure codes apart.
    pub fn ctwing_lwm2m(self, before: JobState) -> u8 {
        match self {
            JobState::Queued => 0,
            JobState::Notified => 2,
            JobState::Downloading => 4,
            JobState::Installing => 6,
            JobState::Succeeded => 8,
            JobState::Cancelled => 10,
            JobState::Failed | JobState::TimedOut => match before {
                JobState::Queued => 1,
                JobState::Notified => 3,
                JobState::Downloading => 5,
                _ => 7,
            },
        }
    }

    /// CTWing T-Link `taskStatus`: 1 waiting, 2 upgrading, 3 succeeded, 4 failed.
    pub fn ctwing_tlink(self) -> u8 {
        match self {
            JobState::Queued | JobState::Notified => 1,
            JobState::Downloading | JobState::Installing => 2,
            JobState::Succeeded => 3,
            JobState::Failed | JobState::Cancelled | JobState::TimedOut => 4,
        }
    }

    /// XLINK's task view: `issued` until a final state, then `finished`.
    pub fn xlink(self) -> &'static str {
        if self.is_final() {
            "finished"
        } else {
            "issued"
        }
    }

    /// UBTech callback codes: 0 no status, 1 success, 2 failure, 3 not updated yet.
    pub fn ubtech(self) -> u8 {
        match self {
            JobState::Queued => 0,
            JobState::Succeeded => 1,
            JobState::Failed | JobState::Cancelled | JobState::TimedOut => 2,
            JobState::Notified | JobState::Downloading | JobState::Installing => 3,
        }
    }

    /// IoTStack deployment statuses.
    pub fn iotstack(self) -> &'static str {
        match self {
            JobState::Queued => "init",
            JobState::Notified | JobState::Downloading | JobState::Installing => "processing",
            JobState::Succeeded => "success",
            JobState::Failed | JobState::Cancelled => "failed",
            JobState::TimedOut => "timeout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JobState::*;
    use super::*;

    /// The whole transition table for device reports: (from, reported) -> allowed?
    #[test]
    fn every_report_transition_and_refusal() {
        for from in JobState::ALL {
            for to in JobState::ALL {
                let allowed = match (from, to) {
                    (Succeeded, Succeeded) | (Failed, Failed) => true, // idempotent retransmit
                    (f, _) if f.is_final() => false,
                    (_, Queued | Cancelled | TimedOut) => false,
                    (_, Succeeded | Failed) => true,
                    (f, t) => t.progress() >= f.progress(),
                };
                let got = from.apply(Event::Report(to));
                assert_eq!(got.is_ok(), allowed, "{from:?} -> {to:?}: {got:?}");
                if allowed {
                    assert_eq!(got.unwrap(), to);
                }
            }
        }
    }

    #[test]
    fn operator_and_scheduler_events() {
        for from in JobState::ALL {
            let open = !from.is_final();
            assert_eq!(from.apply(Event::Cancel).is_ok(), open, "{from:?} cancel");
            assert_eq!(from.apply(Event::Timeout).is_ok(), open, "{from:?} timeout");
            let notify_ok = open && from.progress() <= Notified.progress();
            assert_eq!(
                from.apply(Event::Notify).is_ok(),
                notify_ok,
                "{from:?} notify"
            );
            let retry_ok = matches!(from, Failed | TimedOut);
            assert_eq!(
                from.apply(Event::Retry).ok(),
                retry_ok.then_some(Queued),
                "{from:?} retry"
            );
        }
        let err = Succeeded.apply(Event::Report(Failed)).unwrap_err();
        assert_eq!(err.to_string(), "a job cannot go from succeeded to failed");
    }

    #[test]
    fn vendor_views() {
        assert_eq!(Failed.ctwing_lwm2m(Downloading), 5);
        assert_eq!(TimedOut.ctwing_lwm2m(Installing), 7);
        assert_eq!(Failed.ctwing_lwm2m(Queued), 1);
        assert_eq!(Installing.ctwing_lwm2m(Installing), 6);
        assert_eq!(Downloading.ctwing_tlink(), 2);
        assert_eq!(Notified.xlink(), "issued");
        assert_eq!(Cancelled.xlink(), "finished");
        assert_eq!(Installing.ubtech(), 3);
        assert_eq!(TimedOut.iotstack(), "timeout");
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
    }
}
