//! The agent's own health: every plugin's counters published as metrics.

use super::collector_task::Router;
use crate::bindings::types::MetricKind;
use crate::host::info::wall_clock;
use crate::metric::PathBuilder;
use crate::queue::Queue;
use crate::stats::PluginStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Publishes every plugin's counters as metrics: the agent's own health.
pub(super) async fn health_task(
    paths: PathBuilder,
    every: Duration,
    plugins: Vec<(String, Arc<PluginStats>, Option<Arc<Queue>>)>,
    router: Router,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = wall_clock() as u64;
        let mut batch = crate::metric::Chunk::default();
        let source = Arc::new(crate::metric::Source {
            host: paths.hostname.clone(),
            collector: "wdiamond".into(),
            tenant: None,
            ttl: (every.as_secs_f64() * 2.0) as u32,
        });
        let mut put = |name: String, v: f64| {
            // Plugin names are checked at load; a value is finite.
            let _ = batch.push(
                &paths.path(&name, None),
                v,
                0,
                MetricKind::Gauge,
                now,
                None,
                &source,
            );
        };
        for (name, st, queue) in &plugins {
            let g = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
            put(format!("{name}.runs"), g(&st.runs));
            put(format!("{name}.errors"), g(&st.guest_errors));
            put(format!("{name}.failures.total"), g(&st.failures));
            put(format!("{name}.failures.timeout"), g(&st.timeouts));
            put(format!("{name}.failures.fuel"), g(&st.fuel_exhausted));
            put(format!("{name}.failures.memory"), g(&st.memory_exhausted));
            put(
                format!("{name}.failures.trap"),
                g(&st.failures) - g(&st.timeouts) - g(&st.fuel_exhausted) - g(&st.memory_exhausted),
            );
            put(format!("{name}.denials"), g(&st.denials));
            put(format!("{name}.metrics.published"), g(&st.metrics));
            put(format!("{name}.metrics.rejected"), g(&st.rejected));
            put(format!("{name}.metrics.dropped"), g(&st.dropped));
            put(format!("{name}.quota_skips"), g(&st.quota_skips));
            put(format!("{name}.schedule.skipped"), g(&st.skipped_runs));
            put(
                format!("{name}.duration_ms"),
                g(&st.last_duration_us) / 1000.0,
            );
            put(
                format!("{name}.schedule.lateness_ms"),
                g(&st.last_lateness_us) / 1000.0,
            );
            put(format!("{name}.fuel_used"), g(&st.last_fuel));
            put(format!("{name}.peak_memory_bytes"), g(&st.peak_memory));
            if let Some(q) = queue {
                put(format!("{name}.queued"), q.len() as f64);
            }
        }
        let batch = Arc::new(batch);
        // The agent's own health: the host's metrics.
        super::route::publish(&router, None, &batch);
    }
}
