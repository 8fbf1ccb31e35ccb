//! `wdiamond:plugin/host-info`: host name, CPU count, clock, limits.

use super::HostState;
use crate::bindings::host_info::{Host, Limits};

/// Online CPUs, as Python's `multiprocessing.cpu_count()`.
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as u32
    } else {
        1
    }
}

/// Seconds since the Unix epoch.
pub fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Host for HostState {
    fn hostname(&mut self) -> String {
        self.ctx.hostname.clone()
    }

    fn cpu_count(&mut self) -> u32 {
        self.ctx.facts.cpu_count.unwrap_or_else(online_cpus)
    }

    fn now(&mut self) -> f64 {
        match &self.ctx.facts.now {
            Some(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
            None => wall_clock(),
        }
    }

    fn interval(&mut self) -> f64 {
        self.ctx.interval
    }

    fn stopping(&mut self) -> bool {
        self.stopping
    }

    fn get_limits(&mut self) -> Limits {
        let l = &self.ctx.limits;
        Limits {
            max_read_bytes: l.max_read_bytes,
            max_metrics: l.max_metrics,
            run_timeout_ms: l
                .timeout
                .map(|t| t.as_millis().min(u32::MAX as u128) as u32)
                .unwrap_or(0),
        }
    }
}
