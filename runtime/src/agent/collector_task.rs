//! A collector: its schedule (kept by the [`Scheduler`]'s thread), one run
//! after another on the blocking pool, each run's output checked and
//! published to every handler's queue on the run's own thread, and a
//! failed instance replaced with backoff.

use super::load::LoadedCollector;
use super::outcome::{Call, CallFailed, Unsuccessful};
use super::schedule::Schedule;
use super::scheduler::Scheduler;
use super::tenant::Tenant;
use crate::bindings::collector::CollectorPlugin;
use crate::bindings::types::MetricKind;
use crate::config::Instancing;
use crate::host::info::wall_clock;
use crate::host::{HostFacts, PluginContext};
use crate::logging::Kind as LogKind;
use crate::metric::Publication;
use crate::plugin::{CollectorPre, Instance, Runtime};
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
pub async fn run_collection(
    runtime: &Arc<Runtime>,
    lc: &Arc<LoadedCollectorShared>,
    instance: Option<Instance<CollectorPlugin>>,
    due: f64,
    deadline: Duration,
    router: &Router,
    stats: &Arc<PluginStats>,
) -> Result<Option<Instance<CollectorPlugin>>, String> {
    let (rt, lc, router, stats) = (runtime.clone(), lc.clone(), router.clone(), stats.clone());
    tokio::task::spawn_blocking(move || {
        let _g = lc.ctx.span.enter();
        collect_once(&rt, &lc, instance, due, deadline, &router, &stats)
    })
    .await
    .unwrap_or_else(|e| Err(format!("collection task failed: {e}")))
}

/// One collection, on the calling (blocking) thread from start to end:
/// the instance (re-instantiated if the last run lost it), the tenant's
/// fuel, the call, the output checked and turned into lines while the
/// columns are still in this core's cache, and the chunk queued for every
/// handler it reaches. Returns the instance if it is still usable. Called
/// in the collector's span.
fn collect_once(
    runtime: &Runtime,
    lc: &LoadedCollectorShared,
    instance: Option<Instance<CollectorPlugin>>,
    due: f64,
    deadline: Duration,
    router: &Router,
    stats: &PluginStats,
) -> Result<Option<Instance<CollectorPlugin>>, String> {
    let mut instance = match instance {
        Some(i) => i,
        None => {
            let mut i = match &lc.pre {
                // A per-run collector's instance of this run.
                Some(pre) => runtime.configured_from(pre, lc.ctx.clone())?,
                None => {
                    let i = runtime.configured::<CollectorPlugin>(&lc.component, lc.ctx.clone())?;
                    tracing::info!("re-instantiated");
                    i
                }
            };
            if let Some(a) = &lc.abort {
                i.set_abort(a.clone());
            }
            i
        }
    };
    let start = timestamp_now(&lc.ctx.facts);
    let fuel_left = lc.tenant.as_ref().and_then(|t| t.fuel_left(start));
    if fuel_left == Some(0) {
        stats.quota_skips.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "skipping this run: the tenant's max_fuel_per_interval is used up for this window"
        );
        return Ok(Some(instance));
    }
    stats.runs.fetch_add(1, Ordering::Relaxed);
    let late = (wall_clock() - due).max(0.0) * 1e6;
    stats.last_lateness_us.store(late as u64, Ordering::Relaxed);
    let (result, usage) = instance.collect_with_fuel(deadline, fuel_left);
    stats
        .denials
        .fetch_add(usage.calls.denials, Ordering::Relaxed);
    stats.record_run(start, &usage);
    if let Some(t) = &lc.tenant {
        t.spend_fuel(start, usage.fuel);
    }
    match result {
        Ok(Ok(set)) => {
            stats.succeeded();
            let chunk = publish_run(lc, set, start, &usage, stats, instance.series_mut());
            tracing::debug!(metrics = chunk.len(), elapsed = ?usage.elapsed, fuel = usage.fuel, "collected");
            if !chunk.is_empty() {
                let chunk = Arc::new(chunk);
                let tenant = lc.publication.tenant.as_ref().map(|(t, _)| t.as_str());
                super::route::publish(router, tenant, &chunk);
            }
            Ok(Some(instance))
        }
        Ok(Err(msg)) => {
            failed(Unsuccessful::GuestError(&msg)).emit(stats, &lc.ctx.log_limit);
            Ok(Some(instance))
        }
        Err(f) => {
            failed(Unsuccessful::Failure(&f)).emit(stats, &lc.ctx.log_limit);
            Ok(None)
        }
    }
}

/// A collection that came to `outcome`.
fn failed(outcome: Unsuccessful<'_>) -> CallFailed<'_> {
    CallFailed {
        call: Call::Collection,
        outcome,
        retry: None,
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
    /// A loaded collector as its runs share it, and its first instance
    /// (none for a per-run collector, whose imports are resolved here once).
    pub fn split(
        lc: LoadedCollector,
        runtime: &Runtime,
        abort: Option<watch::Receiver<bool>>,
    ) -> (
        Arc<LoadedCollectorShared>,
        Option<Instance<CollectorPlugin>>,
    ) {
        let pre = match lc.instancing {
            Instancing::Persistent => None,
            Instancing::PerRun => match runtime.collector_pre(&lc.component) {
                Ok(pre) => Some(pre),
                Err(e) => {
                    // Instantiated the ordinary way each run.
                    tracing::warn!(error = %e, "cannot resolve the imports once; instantiating in full at each run");
                    None
                }
            },
        };
        let shared = Arc::new(LoadedCollectorShared {
            per_run: lc.instancing == Instancing::PerRun,
            pre,
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
    /// A new instance for each run, dropped after it.
    pub per_run: bool,
    /// A per-run collector's component with its imports resolved.
    pub pre: Option<CollectorPre>,
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

/// What a collector's runs carry from one to the next: the instance (none
/// after a failure, until re-instantiated) and the backoff of failed
/// re-instantiations. A run owns it while it is in flight.
struct RunState {
    instance: Option<Instance<CollectorPlugin>>,
    failures: u32,
    /// Wall-clock time before which no re-instantiation is tried.
    retry_at: f64,
}

/// A collector's runs, as its schedule and its stop share them: what every
/// run needs, and the state between runs, locked by the run in flight (a
/// due run that cannot lock it skips its window; the stop waits for it).
struct Runs {
    runtime: Arc<Runtime>,
    lc: Arc<LoadedCollectorShared>,
    router: Router,
    stats: Arc<PluginStats>,
    deadline: Duration,
    interval: f64,
    state: Arc<tokio::sync::Mutex<RunState>>,
}

impl Runs {
    /// Runs one collection due at `due` (or skips it while the backoff
    /// lasts) on the calling blocking thread, with the state the last run
    /// left, and keeps the backoff from its outcome. The instance is taken
    /// out for the call: a panic on the way leaves none, and the next run
    /// re-instantiates.
    fn run(&self, s: &mut RunState, due: f64) {
        let _g = self.lc.ctx.span.enter();
        if s.instance.is_some() || wall_clock() >= s.retry_at {
            let outcome = collect_once(
                &self.runtime,
                &self.lc,
                s.instance.take(),
                due,
                self.deadline,
                &self.router,
                &self.stats,
            );
            self.backoff(s, outcome);
        }
    }

    fn backoff(
        &self,
        s: &mut RunState,
        outcome: Result<Option<Instance<CollectorPlugin>>, String>,
    ) {
        let interval = self.interval;
        match outcome {
            Ok(Some(i)) => {
                // A per-run collector's instance ends with its run.
                s.instance = (!self.lc.per_run).then_some(i);
                s.failures = 0;
            }
            other => {
                s.failures += 1;
                let backoff = (interval * 2f64.powi(s.failures as i32 - 1)).min(300.0);
                s.retry_at = wall_clock() + backoff - interval;
                match other {
                    Err(e) => {
                        tracing::error!(error = %e, retry_in = backoff, "cannot re-instantiate")
                    }
                    _ => tracing::info!(
                        retry_in = backoff,
                        consecutive_failures = s.failures,
                        "will re-instantiate"
                    ),
                }
            }
        }
    }
}

/// A collector: its runs started by the [`Scheduler`]'s thread when due,
/// each on the blocking pool with the collector's [`RunState`] locked, not
/// waited for — everything after the call (checks, publishing, logging,
/// backoff) happens on that thread. A run costs one wake-up of the
/// scheduler's thread and one of a blocking thread; no async worker. A
/// run still going when the next is due makes that window skipped. This
/// task only waits for the stop, then for a run in flight.
pub(super) async fn collector_task(
    runtime: Arc<Runtime>,
    lc: Box<LoadedCollector>,
    router: Router,
    mut stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    stats: Arc<PluginStats>,
    scheduler: Arc<Scheduler>,
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
    let (shared, mut first) = LoadedCollectorShared::split(*lc, &runtime, Some(abort.clone()));
    if let Some(first) = &mut first {
        first.set_abort(abort);
    }
    let runs = Arc::new(Runs {
        runtime,
        lc: shared,
        router,
        stats,
        deadline,
        interval,
        state: Arc::new(tokio::sync::Mutex::new(RunState {
            instance: first,
            failures: 0,
            retry_at: 0.0,
        })),
    });
    let blocking = tokio::runtime::Handle::current();
    let (first_wait, _) = schedule.next(wall_clock());
    let mut due = wall_clock() + first_wait.as_secs_f64();
    let r = runs.clone();
    let job = move || {
        let _g = r.lc.ctx.span.enter();
        match r.state.clone().try_lock_owned() {
            Ok(mut state) => {
                let (run, at) = (r.clone(), due);
                blocking.spawn_blocking(move || run.run(&mut state, at));
            }
            Err(_) => {
                // A run stuck in the host past its deadline (a hung mount
                // under statvfs) skips window after window: logged within
                // the plugin's log limit, counted.
                r.stats.skipped_runs.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = r.lc.ctx.log_limit.admit(LogKind::Failure) {
                    tracing::warn!(
                        suppressed,
                        "the last run is still going at the next window (a slow run); skipping this one"
                    );
                }
            }
        }
        let (wait, skipped) = schedule.next(wall_clock());
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "missed collection windows (clock jump or a slow run); skipping them"
            );
        }
        due = wall_clock() + wait.as_secs_f64();
        Some(wait)
    };
    let entry = scheduler.add(first_wait, Box::new(job));
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    scheduler.remove(entry);
    // A run in flight at the stop finishes (the agent's grace, then its
    // abort, bound it).
    drop(runs.state.lock().await);
    span.in_scope(|| tracing::info!("stopped"));
}
