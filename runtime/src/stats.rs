//! Counters of one plugin (runs, failures by kind, denials, metrics), shared
//! by its tasks, its queue and the health task; read for logs and
//! self-metrics.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::plugin::Failure;

/// Counters of one plugin, for logs and self-metrics.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Runs started.
    pub runs: AtomicU64,
    /// Runs that returned an error result.
    pub guest_errors: AtomicU64,
    /// Runs that trapped (any kind).
    pub failures: AtomicU64,
    /// Of those: deadline overruns.
    pub timeouts: AtomicU64,
    /// Of those: out of fuel.
    pub fuel_exhausted: AtomicU64,
    /// Of those: memory cap hit.
    pub memory_exhausted: AtomicU64,
    /// Host calls denied.
    pub denials: AtomicU64,
    /// Metrics published (collectors) or delivered (handlers).
    pub metrics: AtomicU64,
    /// Metrics rejected by the host's checks.
    pub rejected: AtomicU64,
    /// Metrics dropped (over `max_metrics`, a tenant quota, or queue overflow).
    pub dropped: AtomicU64,
    /// Runs skipped because the tenant's fuel quota was used up.
    pub quota_skips: AtomicU64,
    /// Runs skipped because the previous one was still going when they
    /// were due (a collector).
    pub skipped_runs: AtomicU64,
    /// Wall-clock time of the last run, microseconds.
    pub last_duration_us: AtomicU64,
    /// How late the last run started after its scheduled time (timer and
    /// blocking-pool queueing), microseconds.
    pub last_lateness_us: AtomicU64,
    /// Fuel used by the last run.
    pub last_fuel: AtomicU64,
    /// Largest linear memory seen, bytes.
    pub peak_memory: AtomicU64,
    /// Times the plugin's task woke up (a handler: to deliver, flush,
    /// retry or stop); an idle task does not wake.
    pub wakeups: AtomicU64,
    /// Start times (wall clock) of the latest runs, at most 1,000.
    pub run_starts: Mutex<VecDeque<f64>>,
    /// Calls in a row that failed (a collection, or a delivery retried),
    /// up to now: back to 0 at the next success.
    pub consecutive_failures: AtomicU64,
}

impl PluginStats {
    pub(crate) fn record_run(&self, start: f64, usage: &crate::plugin::Usage) {
        self.last_duration_us
            .store(usage.elapsed.as_micros() as u64, Ordering::Relaxed);
        self.last_fuel.store(usage.fuel, Ordering::Relaxed);
        self.peak_memory
            .fetch_max(usage.peak_memory as u64, Ordering::Relaxed);
        let mut starts = self.run_starts.lock().unwrap_or_else(|p| p.into_inner());
        if starts.len() >= 1000 {
            starts.pop_front();
        }
        starts.push_back(start);
    }

    /// A call succeeded: the run of failures is over.
    pub(crate) fn succeeded(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Start times of the latest runs (wall clock, seconds).
    pub fn starts(&self) -> Vec<f64> {
        self.run_starts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    pub(crate) fn count_failure(&self, f: &Failure) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let c = match f.kind {
            crate::plugin::FailureKind::Timeout => &self.timeouts,
            crate::plugin::FailureKind::Fuel => &self.fuel_exhausted,
            crate::plugin::FailureKind::Memory => &self.memory_exhausted,
            crate::plugin::FailureKind::Trap => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}
