//! A tenant's quotas at run time: its fuel and metrics windows, shared by
//! its collectors.

use crate::config;
use std::sync::{Arc, Mutex};

/// A tenant's quota state, shared by its collectors.
#[derive(Debug)]
pub struct Tenant {
    /// Its configuration.
    pub config: config::TenantConfig,
    window: Mutex<TenantWindow>,
}

#[derive(Debug, Default)]
struct TenantWindow {
    start: f64,
    metrics: u64,
    fuel: u64,
    warned: bool,
}

impl Tenant {
    /// A tenant with fresh quotas.
    pub fn new(config: config::TenantConfig) -> Arc<Self> {
        Arc::new(Tenant {
            config,
            window: Mutex::new(TenantWindow::default()),
        })
    }

    fn window(&self, now: f64) -> std::sync::MutexGuard<'_, TenantWindow> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.start == 0.0 || now - w.start >= self.config.interval || now < w.start {
            *w = TenantWindow {
                start: now,
                ..Default::default()
            };
        }
        w
    }

    /// The fuel left in this window (`None`: no fuel quota).
    pub fn fuel_left(&self, now: f64) -> Option<u64> {
        let max = self.config.max_fuel?;
        Some(max.saturating_sub(self.window(now).fuel))
    }

    /// Records fuel used.
    pub fn spend_fuel(&self, now: f64, fuel: u64) {
        let mut w = self.window(now);
        w.fuel = w.fuel.saturating_add(fuel);
    }

    /// How many of `n` metrics the quota lets through now; returns that
    /// and whether this is the first refusal of the window.
    pub fn take_metrics(&self, now: f64, n: u64) -> (u64, bool) {
        let Some(max) = self.config.max_metrics else {
            return (n, false);
        };
        let mut w = self.window(now);
        let ok = n.min(max.saturating_sub(w.metrics));
        w.metrics += ok;
        let first = ok < n && !std::mem::replace(&mut w.warned, true);
        (ok, first)
    }
}
