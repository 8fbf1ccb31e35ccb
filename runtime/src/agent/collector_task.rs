//! A collector's task: its schedule, one run after another on the blocking
//! pool, the run's output checked and published to every handler's queue,
//! and a failed instance replaced with backoff.

use super::load::{configured_collector, LoadedCollector};
use super::tenant::Tenant;
use crate::bindings::collector::CollectorPlugin;
use crate::bindings::types::MetricKind;
use crate::host::info::wall_clock;
use crate::host::{HostFacts, PluginContext};
use crate::logging::guest_text;
use crate::logging::Kind as LogKind;
use crate::metric::Publication;
use crate::plugin::{Instance, Runtime};
use crate::schedule::Schedule;
use crate::stats::PluginStats;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use wasmtime::component::Component;

pub use super::route::Router;

fn timestamp_now(facts: &HostFacts) -> f64 {
    match &facts.now {
        Some(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        None => wall_clock(),
    }
}

/// Runs one collection on `instance` (taken and given back), publishing to
/// `router`. `due` is when the run was scheduled (wall clock): how late it
/// starts is recorded. Returns the instance if it is still usable.
///
/// The guest's output is checked and turned into lines on the same blocking
/// thread, right after the guest returns: the columns are still in that
/// core's cache, and the async workers never run that work.
pub async fn run_collection(
    runtime: &Arc<Runtime>,
    lc: &Arc<LoadedCollectorShared>,
    instance: Option<Instance<CollectorPlugin>>,
    due: f64,
    deadline: Duration,
    router: &Router,
    stats: &Arc<PluginStats>,
) -> Result<Option<Instance<CollectorPlugin>>, String> {
    let span = lc.ctx.span.clone();
    let mut instance = match instance {
        Some(i) => i,
        None => {
            let (rt, comp, ctx) = (runtime.clone(), lc.component.clone(), lc.ctx.clone());
            match tokio::task::spawn_blocking(move || configured_collector(&rt, &comp, ctx)).await {
                Ok(Ok(mut i)) => {
                    span.in_scope(|| tracing::info!("re-instantiated"));
                    if let Some(a) = &lc.abort {
                        i.set_abort(a.clone());
                    }
                    i
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(format!("instantiation task failed: {e}")),
            }
        }
    };
    let start = timestamp_now(&lc.ctx.facts);
    let fuel_left = lc.tenant.as_ref().and_then(|t| t.fuel_left(start));
    if fuel_left == Some(0) {
        stats.quota_skips.fetch_add(1, Ordering::Relaxed);
        span.in_scope(|| {
            tracing::warn!(
                "skipping this run: the tenant's max_fuel_per_interval is used up for this window"
            )
        });
        return Ok(Some(instance));
    }
    stats.runs.fetch_add(1, Ordering::Relaxed);
    let (shared, run_stats) = (lc.clone(), stats.clone());
    let (instance, (result, usage)) = match tokio::task::spawn_blocking(move || {
        let late = (wall_clock() - due).max(0.0) * 1e6;
        run_stats
            .last_lateness_us
            .store(late as u64, Ordering::Relaxed);
        let (r, usage) = instance.collect_with_fuel(deadline, fuel_left);
        let r = r.map(|r| {
            r.map(|set| {
                shared.ctx.span.in_scope(|| {
                    publish_run(
                        &shared,
                        set,
                        start,
                        &usage,
                        &run_stats,
                        instance.series_mut(),
                    )
                })
            })
        });
        (instance, (r, usage))
    })
    .await
    {
        Ok(x) => x,
        Err(e) => return Err(format!("collection task failed: {e}")),
    };
    stats
        .denials
        .fetch_add(usage.calls.denials, Ordering::Relaxed);
    stats.record_run(start, &usage);
    if let Some(t) = &lc.tenant {
        t.spend_fuel(start, usage.fuel);
    }
    let _g = span.enter();
    match result {
        Ok(Ok(chunk)) => {
            tracing::debug!(metrics = chunk.len(), elapsed = ?usage.elapsed, fuel = usage.fuel, "collected");
            if !chunk.is_empty() {
                let chunk = Arc::new(chunk);
                let tenant = lc.publication.tenant.as_ref().map(|(t, _)| t.as_str());
                super::route::publish(router, tenant, &chunk);
            }
            Ok(Some(instance))
        }
        Ok(Err(msg)) => {
            stats.guest_errors.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = lc.ctx.log_limit.admit(LogKind::GuestError) {
                tracing::warn!(error = %guest_text(&msg), suppressed, "collection failed (the plugin returned an error)");
            }
            Ok(Some(instance))
        }
        Err(f) => {
            stats.count_failure(&f);
            if let Some(suppressed) = lc.ctx.log_limit.admit(LogKind::Failure) {
                tracing::error!(
                    failure = f.kind.as_str(),
                    suppressed,
                    "collection failed: {}; the instance is discarded and will be re-instantiated",
                    f.message
                );
            }
            Ok(None)
        }
    }
}

/// What a collector's run publishes: its metrics within `max_metrics` and
/// the tenant's quota, checked, with their paths and lines (and
/// `collector_time_ms` when asked for). Counts what was dropped or
/// rejected.
fn publish_run(
    lc: &LoadedCollectorShared,
    metrics: crate::bindings::types::MetricSet,
    start: f64,
    usage: &crate::plugin::Usage,
    stats: &PluginStats,
    series: &mut crate::metric::series::SeriesTable,
) -> crate::metric::Chunk {
    let max = lc.ctx.limits.max_metrics as usize;
    let mut metrics = metrics;
    let count = crate::metric::count(&metrics);
    if count > max {
        let over = count - max;
        crate::metric::truncate(&mut metrics, max);
        stats.dropped.fetch_add(over as u64, Ordering::Relaxed);
        tracing::warn!(
            dropped = over,
            max_metrics = max,
            "published more metrics than [limits] max_metrics allows; the rest were dropped"
        );
    }
    if let Some(t) = &lc.tenant {
        let count = crate::metric::count(&metrics);
        let (ok, first) = t.take_metrics(start, count as u64);
        let over = count - ok as usize;
        if over > 0 {
            crate::metric::truncate(&mut metrics, ok as usize);
            stats.dropped.fetch_add(over as u64, Ordering::Relaxed);
            if first {
                tracing::warn!(tenant = %t.config.name, dropped = over, quota = ?t.config.max_metrics, "the tenant's max_metrics_per_interval is used up: dropping its metrics until the window ends");
            }
        }
    }
    let now = timestamp_now(&lc.ctx.facts);
    let mut checked = lc.publication.publish_with(metrics, now as u64, series);
    if checked.rejected > 0 {
        stats
            .rejected
            .fetch_add(checked.rejected as u64, Ordering::Relaxed);
        let reasons: Vec<String> = checked.reasons.iter().map(|r| r.to_string()).collect();
        tracing::warn!(
            rejected = checked.rejected,
            ?reasons,
            "rejected invalid metrics"
        );
    }
    if lc.measure_collector_time {
        let _ = checked.published.push(
            &lc.publication.path("collector_time_ms"),
            (usage.elapsed.as_secs_f64() * 1000.0).trunc(),
            0,
            MetricKind::Gauge,
            now as u64,
            None,
            &lc.publication.source(),
        );
    }
    stats
        .metrics
        .fetch_add(checked.published.len() as u64, Ordering::Relaxed);
    checked.published
}

impl LoadedCollectorShared {
    /// A loaded collector as its runs share it, and its first instance.
    pub fn split(
        lc: LoadedCollector,
        abort: Option<watch::Receiver<bool>>,
    ) -> (Arc<LoadedCollectorShared>, Instance<CollectorPlugin>) {
        let shared = Arc::new(LoadedCollectorShared {
            component: lc.component,
            ctx: lc.ctx,
            publication: lc.publication,
            measure_collector_time: lc.config.measure_collector_time,
            tenant: lc.tenant,
            abort,
        });
        (shared, lc.instance)
    }
}

/// The parts of a [`LoadedCollector`] the collector task shares.
pub struct LoadedCollectorShared {
    /// Compiled component.
    pub component: Component,
    /// Context for new instances.
    pub ctx: Arc<PluginContext>,
    /// Paths and filters.
    pub publication: Publication,
    /// `measure_collector_time`.
    pub measure_collector_time: bool,
    /// The tenant.
    pub tenant: Option<Arc<Tenant>>,
    /// The agent's abort signal, given to every new instance.
    pub abort: Option<watch::Receiver<bool>>,
}

pub(super) async fn collector_task(
    runtime: Arc<Runtime>,
    lc: LoadedCollector,
    router: Router,
    mut stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    stats: Arc<PluginStats>,
) {
    let interval = lc.config.interval;
    let mut schedule = Schedule::new(interval, rand::random::<f64>(), wall_clock());
    let deadline = lc
        .config
        .plugin
        .limits
        .timeout
        .unwrap_or(schedule.default_deadline());
    let span = lc.ctx.span.clone();
    span.in_scope(|| tracing::info!(interval, stagger = schedule.stagger(), deadline = ?deadline, "scheduled"));
    let (shared, mut first) = LoadedCollectorShared::split(lc, Some(abort.clone()));
    first.set_abort(abort);
    let mut instance = Some(first);
    let mut failures: u32 = 0;
    let mut retry_at = 0.0;
    loop {
        let (sleep, skipped) = schedule.next(wall_clock());
        if skipped > 0 {
            span.in_scope(|| {
                tracing::warn!(
                    skipped,
                    "missed collection windows (clock jump or a slow run); skipping them"
                )
            });
        }
        let due = wall_clock() + sleep.as_secs_f64();
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        if instance.is_none() && wall_clock() < retry_at {
            continue;
        }
        match run_collection(
            &runtime,
            &shared,
            instance.take(),
            due,
            deadline,
            &router,
            &stats,
        )
        .await
        {
            Ok(Some(i)) => {
                instance = Some(i);
                failures = 0;
            }
            other => {
                failures += 1;
                let backoff = (interval * 2f64.powi(failures as i32 - 1)).min(300.0);
                retry_at = wall_clock() + backoff - interval;
                if let Err(e) = other {
                    span.in_scope(
                        || tracing::error!(error = %e, retry_in = backoff, "cannot re-instantiate"),
                    );
                } else {
                    span.in_scope(|| {
                        tracing::info!(
                            retry_in = backoff,
                            consecutive_failures = failures,
                            "will re-instantiate"
                        )
                    });
                }
            }
        }
    }
    span.in_scope(|| tracing::info!("stopped"));
}
