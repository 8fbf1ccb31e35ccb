//! A plugin call that did not succeed, as one event (Vector's internal
//! events are the model): counted in the plugin's stats and logged within
//! its log limit, in one place. Collections, deliveries, flushes and page
//! renders all report through [`CallFailed::emit`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::logging::{guest_text, Kind, LogLimit};
use crate::plugin::Failure;
use crate::stats::PluginStats;

/// Which call failed: what its log lines say, and what the agent does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// A collector's `collect`.
    Collection,
    /// A handler's `process` or `flush`.
    Delivery,
    /// An exporter's `render`.
    Render,
    /// An exporter's page the host refused to serve (a guest error).
    Page,
}

impl Call {
    /// The line logged for a guest error.
    fn guest_error(self) -> &'static str {
        match self {
            Call::Collection => "collection failed (the plugin returned an error)",
            Call::Delivery => "handler failed; the batch is kept and retried",
            Call::Render => "rendering the page failed",
            Call::Page => "the page the handler rendered is not served",
        }
    }

    /// What the line for a failure (trap, timeout, fuel, memory) says
    /// before and after the failure's message.
    fn failure(self) -> (&'static str, &'static str) {
        match self {
            Call::Collection => (
                "collection failed",
                "the instance is discarded and will be re-instantiated",
            ),
            Call::Delivery => ("handler failed", "re-instantiating, the batch is kept"),
            Call::Render | Call::Page => {
                ("rendering the page failed", "re-instantiating the handler")
            }
        }
    }
}

/// What the call came to.
#[derive(Debug)]
pub(crate) enum Unsuccessful<'a> {
    /// The plugin returned an error (its text, as the plugin wrote it).
    GuestError(&'a str),
    /// The call trapped or ran out of time, fuel or memory: the instance
    /// is lost.
    Failure(&'a Failure),
}

/// The event: `call` came to `outcome`.
#[derive(Debug)]
pub(crate) struct CallFailed<'a> {
    /// Which call.
    pub call: Call,
    /// How it ended.
    pub outcome: Unsuccessful<'a>,
    /// For a handler: the metrics waiting in its queue, and when it tries
    /// again.
    pub retry: Option<(usize, Duration)>,
}

impl CallFailed<'_> {
    /// Counts the event in `stats` (a guest error, or the failure by its
    /// kind) and logs it, in the current span, unless `limit` suppresses
    /// it (then it is counted there, and the next line admitted says how
    /// many were).
    pub(crate) fn emit(&self, stats: &PluginStats, limit: &LogLimit) {
        if matches!(self.call, Call::Collection | Call::Delivery) {
            stats.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        }
        match self.outcome {
            Unsuccessful::GuestError(msg) => {
                stats.guest_errors.fetch_add(1, Ordering::Relaxed);
                let Some(suppressed) = limit.admit(Kind::GuestError) else {
                    return;
                };
                let (error, line) = (guest_text(msg), self.call.guest_error());
                match self.retry {
                    Some((queued, retry_in)) => {
                        tracing::warn!(error = %error, suppressed, queued, retry_in = ?retry_in, "{line}")
                    }
                    None => tracing::warn!(error = %error, suppressed, "{line}"),
                }
            }
            Unsuccessful::Failure(f) => {
                stats.count_failure(f);
                let Some(suppressed) = limit.admit(Kind::Failure) else {
                    return;
                };
                let ((what, then), failure) = (self.call.failure(), f.kind.as_str());
                match self.retry {
                    Some((queued, retry_in)) => tracing::error!(
                        failure,
                        suppressed,
                        queued,
                        retry_in = ?retry_in,
                        "{what}: {}; {then}",
                        f.message
                    ),
                    None => tracing::error!(failure, suppressed, "{what}: {}; {then}", f.message),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::FailureKind;

    #[test]
    fn each_outcome_is_counted_by_its_kind() {
        let (stats, limit) = (PluginStats::default(), LogLimit::default());
        let error = CallFailed {
            call: Call::Delivery,
            outcome: Unsuccessful::GuestError("refused"),
            retry: Some((3, Duration::from_millis(250))),
        };
        error.emit(&stats, &limit);
        let timeout = Failure {
            kind: FailureKind::Timeout,
            message: "deadline".into(),
        };
        let failed = CallFailed {
            call: Call::Collection,
            outcome: Unsuccessful::Failure(&timeout),
            retry: None,
        };
        failed.emit(&stats, &limit);
        let trap = Failure {
            kind: FailureKind::Trap,
            message: "unreachable".into(),
        };
        CallFailed {
            call: Call::Render,
            outcome: Unsuccessful::Failure(&trap),
            retry: None,
        }
        .emit(&stats, &limit);
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(get(&stats.guest_errors), 1);
        assert_eq!(get(&stats.failures), 2);
        assert_eq!(get(&stats.timeouts), 1);
    }
}
