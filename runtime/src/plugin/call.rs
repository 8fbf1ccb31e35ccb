//! Calling a plugin: one [`Instance`] (a store and a world's exports) and
//! its calls under the plugin's limits — a wall-clock deadline whatever the
//! guest waits on, fuel, memory — and how a call that did not return
//! normally is classified ([`Failure`]).

use std::time::{Duration, Instant};

use anyhow::anyhow;

use wasmtime::{Store, Trap};

use super::world::{BoxFuture, Handler};
use super::{World, EPOCH_TICK};
use crate::bindings::collector::CollectorPlugin;
use crate::bindings::exposition::{Page, Scrape};
use crate::bindings::types::{ConfigEntry, Description, MetricSet};
use crate::host::{self, HostState};
use crate::metric::Batch;

/// Why a plugin call did not return normally. A guest's own error result
/// is not a failure of this kind: it is returned as `Ok(Err(text))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The guest trapped (panic, abort, unreachable, stack overflow...).
    Trap,
    /// The run outlived its wall-clock deadline.
    Timeout,
    /// The run used up its fuel.
    Fuel,
    /// The guest hit its memory cap (and trapped because of it).
    Memory,
}

impl FailureKind {
    /// A short name for logs and self-metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Fuel => "fuel",
            FailureKind::Memory => "memory",
        }
    }
}

/// A failed plugin call: what kind, and the message (trap text and the
/// guest's last stderr lines).
#[derive(Debug, thiserror::Error)]
#[error("{} ({message})", kind.as_str())]
pub struct Failure {
    /// What happened.
    pub kind: FailureKind,
    /// Details.
    pub message: String,
}

/// Starts an instantiation's [`SETUP_DEADLINE`] (its start code runs under
/// it, as `describe` does).
pub(super) fn setup_deadline(store: &mut Store<HostState>) -> Instant {
    let at = Instant::now() + SETUP_DEADLINE;
    store.data_mut().deadline = Some(at);
    store.set_epoch_deadline(1);
    at
}

/// The result of an instantiation, its deadline cleared.
pub(super) fn instantiated<B>(
    store: &mut Store<HostState>,
    r: wasmtime::Result<B>,
) -> anyhow::Result<B> {
    store.data_mut().deadline = None;
    r.map_err(|e| match e.downcast_ref::<Stalled>() {
        Some(s) => anyhow!("instantiating: {s}"),
        None => anyhow!("instantiating: {e:#}"),
    })
}

thread_local! {
    /// The executor of plugin calls on this (blocking) thread: calls are
    /// futures (async WASI), driven here to completion or to their deadline.
    static DRIVER: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime");
}

/// Drives a plugin call's future on this thread's executor. Plugin calls
/// block their thread: the agent runs them on tokio's blocking pool; a
/// caller inside a multi-thread runtime's async context (a test, a bench)
/// gets `block_in_place` around it (a current-thread runtime cannot block).
pub(super) fn drive<F: std::future::Future>(f: F) -> F::Output {
    // The epoch ticks while this call is in flight (see `epoch`).
    let _awake = super::epoch::awake();
    let run = || DRIVER.with(|rt| rt.block_on(f));
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(run)
    } else {
        run()
    }
}

/// Why a call was cut short by the host rather than by a trap.
#[derive(Debug, thiserror::Error)]
pub enum Stalled {
    /// The deadline passed while the guest waited (in WASI or a host call).
    #[error("still blocked (in a WASI or host call) at its deadline")]
    Deadline,
    /// The agent is stopping for good.
    #[error("stopped: the agent is shutting down")]
    Aborted,
}

/// `call`, ended at `at` (with a small grace, so that a computing guest's
/// own epoch trap reports first) or when `abort` turns true.
pub(super) async fn bounded<R>(
    at: Instant,
    abort: Option<tokio::sync::watch::Receiver<bool>>,
    call: impl std::future::Future<Output = wasmtime::Result<R>>,
) -> wasmtime::Result<R> {
    let stopped = async move {
        match abort {
            Some(mut a) => {
                let _ = a.wait_for(|v| *v).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let at = tokio::time::Instant::from_std(at) + 2 * EPOCH_TICK;
    tokio::select! {
        r = call => r,
        _ = tokio::time::sleep_until(at) => Err(Stalled::Deadline.into()),
        _ = stopped => Err(Stalled::Aborted.into()),
    }
}

/// Resources one call used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Fuel consumed.
    pub fuel: u64,
    /// Largest linear memory so far, bytes.
    pub peak_memory: usize,
    /// Host-call counters of the call.
    pub calls: host::CallStats,
}

/// A running plugin: its store and its exports.
pub struct Instance<B> {
    pub(super) store: Store<HostState>,
    pub(super) bindings: B,
}

impl<B> Instance<B> {
    /// Tells the instance that the agent stops it for good (its next
    /// `flush` is its last call): `host-info.stopping` answers it.
    pub fn set_stopping(&mut self, stopping: bool) {
        self.store.data_mut().stopping = stopping;
    }

    /// Makes every later call of this instance end at once when `abort`
    /// turns true (the agent stopping for good), wherever the guest is.
    pub fn set_abort(&mut self, abort: tokio::sync::watch::Receiver<bool>) {
        self.store.data_mut().abort = Some(abort);
    }

    /// Runs `f` under the plugin's limits: `deadline` of wall-clock time and
    /// the configured fuel. The call ends at its deadline wherever the guest
    /// is: computing (an epoch trap), or waiting in WASI (the call's future
    /// is dropped); the host's own imports bound their waits by it too. A
    /// trap or an overrun becomes a [`Failure`] (the instance is then
    /// unusable and must be replaced).
    fn call<R>(
        &mut self,
        deadline: Duration,
        fuel_budget: Option<u64>,
        f: impl for<'a> FnOnce(&'a B, &'a mut Store<HostState>) -> BoxFuture<'a, wasmtime::Result<R>>,
    ) -> (Result<R, Failure>, Usage) {
        let fuel = self
            .store
            .data()
            .ctx
            .limits
            .fuel
            .unwrap_or(u64::MAX)
            .min(fuel_budget.unwrap_or(u64::MAX));
        let _ = self.store.set_fuel(fuel);
        self.store.set_epoch_deadline(1);
        let at = Instant::now() + deadline;
        let abort = self.store.data().abort.clone();
        self.store.data_mut().deadline = Some(at);
        self.store.data_mut().limiter.hit = false;
        self.store.data_mut().stats = Default::default();
        if let Some(disk) = &self.store.data().disk {
            disk.new_run();
        }
        let span = self.store.data().ctx.span.clone();
        let start = Instant::now();
        let result =
            span.in_scope(|| drive(bounded(at, abort, f(&self.bindings, &mut self.store))));
        let elapsed = start.elapsed();
        self.store.data_mut().deadline = None;
        // Writes refused past the disk budget are denials.
        if let Some(refused) = self.store.data().disk.as_ref().map(|d| d.take_refused()) {
            self.store.data_mut().stats.denials += refused;
        }
        // Unmetered engines have no fuel to read: they used none.
        let used = match self.store.get_fuel() {
            Ok(left) => fuel.saturating_sub(left),
            Err(_) => 0,
        };
        let data = self.store.data();
        let usage = Usage {
            elapsed,
            fuel: used,
            peak_memory: data.limiter.peak,
            calls: data.stats,
        };
        let output = data.output.take();
        if !output.is_empty() {
            if let Some(suppressed) = data.ctx.log_limit.admit(crate::logging::Kind::Output) {
                let text = String::from_utf8_lossy(&output);
                let _g = span.enter();
                for line in text.lines().filter(|l| !l.trim().is_empty()).take(20) {
                    tracing::info!(target: "wdiamond::guest", suppressed, "output: {}", crate::logging::guest_text(line));
                }
            }
        }
        let result = result.map_err(|e| {
            let kind = match (e.downcast_ref::<Trap>(), e.downcast_ref::<Stalled>()) {
                (Some(Trap::Interrupt), _) | (_, Some(_)) => FailureKind::Timeout,
                (Some(Trap::OutOfFuel), _) => FailureKind::Fuel,
                _ if data.limiter.hit => FailureKind::Memory,
                _ => FailureKind::Trap,
            };
            let message = match (kind, e.downcast_ref::<Stalled>()) {
                (FailureKind::Timeout, Some(s)) => format!("{s} after {deadline:.1?}"),
                (FailureKind::Timeout, None) => {
                    format!("still running after {deadline:.1?}; interrupted")
                }
                (FailureKind::Fuel, _) => format!("used all of its {fuel} fuel"),
                (FailureKind::Memory, _) => {
                    format!("hit the memory cap of {} MiB", data.ctx.limits.memory >> 20)
                }
                _ => crate::logging::guest_text(format!("{e:#}").lines().next().unwrap_or("trap"))
                    .into_owned(),
            };
            Failure { kind, message }
        });
        (result, usage)
    }
}

/// The deadline for instantiation, `describe` and `configure`.
pub const SETUP_DEADLINE: Duration = Duration::from_secs(5);

impl<W: World> Instance<W> {
    /// `describe()`.
    pub fn describe(&mut self) -> Result<Description, Failure> {
        self.call(SETUP_DEADLINE, None, |b, s| b.describe(s)).0
    }

    /// `configure(config)`.
    pub fn configure(&mut self, config: &[ConfigEntry]) -> Result<Result<(), String>, Failure> {
        let config = config.to_vec();
        self.call(SETUP_DEADLINE, None, move |b, s| {
            Box::pin(async move { b.configure(s, &config).await })
        })
        .0
    }
}

impl Instance<CollectorPlugin> {
    /// The series this instance declared (resolved by the publication
    /// that reads its runs).
    pub fn series_mut(&mut self) -> &mut crate::metric::series::SeriesTable {
        &mut self.store.data_mut().series
    }

    /// `collect()` within `deadline`.
    pub fn collect(
        &mut self,
        deadline: Duration,
    ) -> (Result<Result<MetricSet, String>, Failure>, Usage) {
        self.collect_with_fuel(deadline, None)
    }

    /// `collect()` within `deadline` and at most `fuel` (a tenant's
    /// remaining budget), besides the plugin's own fuel limit.
    pub fn collect_with_fuel(
        &mut self,
        deadline: Duration,
        fuel: Option<u64>,
    ) -> (Result<Result<MetricSet, String>, Failure>, Usage) {
        self.call(deadline, fuel, |b, s| {
            Box::pin(b.wdiamond_plugin_collector().call_collect(s))
        })
    }
}

impl Instance<Handler> {
    /// `process(batch)` within `deadline`: the handler gets a handle on
    /// the batch, which stays in the host.
    pub fn process(
        &mut self,
        batch: impl Into<Batch>,
        deadline: Duration,
    ) -> (Result<Result<(), String>, Failure>, Usage) {
        let batch = batch.into();
        self.call(deadline, None, |b, s| {
            Box::pin(async move {
                let handle = s.data_mut().hand_over(batch)?;
                b.plugin
                    .wdiamond_plugin_handler()
                    .call_process(s, handle)
                    .await
            })
        })
    }

    /// The batches the handler still holds whose metrics the host kept
    /// (its newest few), oldest first: what an at-least-once handler has
    /// sent but not yet seen confirmed.
    pub fn held_batches(&self) -> Vec<Batch> {
        self.store.data().held_batches()
    }

    /// Whether the handler is an exporter: it renders a page the host
    /// serves (`exposition.render`).
    pub fn serves(&self) -> bool {
        self.bindings.exposition.is_some()
    }

    /// `render(scrape)` within `deadline`: the page of one scrape.
    pub fn render(
        &mut self,
        scrape: &Scrape,
        deadline: Duration,
    ) -> (Result<Result<Page, String>, Failure>, Usage) {
        let scrape = scrape.clone();
        self.call(deadline, None, move |b, s| {
            Box::pin(async move {
                match &b.exposition {
                    Some(e) => e.call_render(s, &scrape).await,
                    None => Ok(Err(
                        "this handler serves no page (it does not export `exposition`)".into(),
                    )),
                }
            })
        })
    }

    /// `flush()` within `deadline`.
    pub fn flush(&mut self, deadline: Duration) -> (Result<Result<(), String>, Failure>, Usage) {
        self.call(deadline, None, |b, s| {
            Box::pin(b.plugin.wdiamond_plugin_handler().call_flush(s))
        })
    }
}
