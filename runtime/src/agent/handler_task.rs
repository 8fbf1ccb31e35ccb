//! A handler's task: batches from its queue delivered with retries and
//! backoff, flushes, a replaced instance after a trap, scrapes of an
//! exporter's page in turn with deliveries, and at the stop what is left
//! spooled (or counted), never dropped silently.
//!
//! The loop is a [`HandlerLoop`]: its state in one struct, one method per
//! step ([`wait`](HandlerLoop::wait), [`instance`](HandlerLoop::instance),
//! [`serve`](HandlerLoop::serve), [`deliver`](HandlerLoop::deliver),
//! [`finish`](HandlerLoop::finish)), over a [`Sink`] so that its timing is
//! tested with paused tokio time (`handler_task/tests.rs`).

use super::exposition::{self, ScrapeRequest};
use super::load::LoadedHandler;
use super::outcome::{Call, CallFailed, Unsuccessful};
use super::sink::{CallResult, Sink};
use crate::logging::LogLimit;
use crate::plugin::{Handler, Runtime};
use crate::queue::Queue;
use crate::stats::PluginStats;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

mod drain;
mod scrape;

use drain::drain;
use scrape::next_scrape;
#[cfg(test)]
mod tests;

/// Longest a handler keeps its blocking thread delivering batch after
/// batch before the task looks at its schedule and stop signal again.
const DRAIN_SLICE: Duration = Duration::from_millis(50);

/// A handler's timing and sizes, from its section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Most metrics one `process` call gets (`batch`).
    pub batch_size: usize,
    /// How long the first metrics after a delivery wait for more
    /// (`batch_timeout`): the runs due meanwhile go in the same delivery,
    /// one hand-off to a blocking thread (and one plugin call) for several
    /// runs instead of one each.
    pub linger: Duration,
    /// How often a handler that delivered is flushed (`flush_interval`).
    pub flush_every: Duration,
    /// Each call's deadline (`timeout`).
    pub deadline: Duration,
    /// Longest wait between retries (`retry_max`).
    pub retry_max: Duration,
}

/// Makes a new configured instance (after one was lost), on a blocking
/// thread.
pub(crate) type Maker<S> = Arc<dyn Fn() -> Result<S, String> + Send + Sync>;

/// Runs the handler `lh` on `queue` until `stop`; `abort` cuts its calls
/// short at a forced stop.
pub(super) async fn handler_task(
    runtime: Arc<Runtime>,
    lh: LoadedHandler,
    queue: Arc<Queue>,
    stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    stats: Arc<PluginStats>,
) {
    let c = &lh.config;
    let deadline = c.plugin.limits.timeout.unwrap_or(Duration::from_secs(30));
    let settings = Settings {
        batch_size: c.batch_size,
        linger: Duration::from_secs_f64(c.batch_timeout),
        flush_every: Duration::from_secs_f64(c.flush_interval),
        deadline,
        retry_max: Duration::from_secs_f64(c.retry_max),
    };
    // An exporter's page is served by a task of its own, which hands each
    // scrape here: the plugin renders it in its turn.
    let (scrapes, server) = match c.listen.clone() {
        Some(listen) => {
            let (tx, rx) = mpsc::channel(exposition::MAX_WAITING);
            let section = c.plugin.section.clone();
            let grace = deadline + Duration::from_secs(5);
            let server = tokio::spawn(exposition::serve(listen, section, tx, grace, stop.clone()));
            (Some(rx), Some(server))
        }
        None => (None, None),
    };
    let (component, ctx) = (lh.component, lh.ctx);
    let (made_ctx, a) = (ctx.clone(), abort.clone());
    let make: Maker<_> = Arc::new(move || {
        runtime
            .configured::<Handler>(&component, made_ctx.clone())
            .map(|mut i| {
                i.set_abort(a.clone());
                i
            })
    });
    let mut first = lh.instance;
    first.set_abort(abort);
    let events = Events {
        span: ctx.span.clone(),
        limit: ctx,
    };
    let mut handler = HandlerLoop::new(settings, queue, stats, events, make, first, stop);
    handler.scrapes = scrapes;
    handler.run().await;
    if let Some(server) = server {
        server.abort();
    }
    handler.finish().await;
}

/// Where a handler's events go: its span, and its log limit.
pub(crate) struct Events {
    /// The handler's span.
    pub span: tracing::Span,
    /// Its log limit (the plugin context's, in the agent).
    pub limit: Arc<dyn AsRef<LogLimit> + Send + Sync>,
}

/// Whether the loop goes on.
enum Step {
    Next,
    Stop,
}

/// One handler's loop and its state.
pub(crate) struct HandlerLoop<S: Sink> {
    settings: Settings,
    queue: Arc<Queue>,
    stats: Arc<PluginStats>,
    events: Events,
    make: Maker<S>,
    /// The instance, while it is not lent to a blocking thread (`None`
    /// after a failure: the next turn makes a new one).
    instance: Option<S>,
    stop: watch::Receiver<bool>,
    /// Scrapes handed over by the page's server (an exporter only).
    scrapes: Option<mpsc::Receiver<ScrapeRequest>>,
    /// The scrape to serve this turn.
    scrape: Option<ScrapeRequest>,
    /// Wait before the next try (zero: none pending).
    backoff: Duration,
    stopping: bool,
    last_flush: tokio::time::Instant,
    /// Delivered since the last flush.
    dirty: bool,
    /// Whether this task ever delivered, and whether the stop's own flush
    /// was done: at the stop the handler flushes once more even when its
    /// last flush came right after its last delivery, so that a sender
    /// keeping its last batch unconfirmed (graphite) checks its connection
    /// then, and a dead peer's batch is spooled, not lost.
    delivered_any: bool,
    stop_flushed: bool,
    /// Scrapes and deliveries take turns: a client asking without pause
    /// cannot keep the queue from draining.
    rendered_last: bool,
    /// Whether the metrics waiting now already lingered.
    lingered: bool,
}

/// What a delivery hand-off came back with: the instance, the last call's
/// result, metrics delivered, and whether that call was a flush.
type Delivered<S> = (S, CallResult<()>, usize, bool);

impl<S: Sink> HandlerLoop<S> {
    /// A loop over `queue` with its first instance.
    pub(crate) fn new(
        settings: Settings,
        queue: Arc<Queue>,
        stats: Arc<PluginStats>,
        events: Events,
        make: Maker<S>,
        first: S,
        stop: watch::Receiver<bool>,
    ) -> Self {
        queue.set_full_at(settings.batch_size);
        HandlerLoop {
            settings,
            queue,
            stats,
            events,
            make,
            instance: Some(first),
            stop,
            scrapes: None,
            scrape: None,
            backoff: Duration::ZERO,
            stopping: false,
            last_flush: tokio::time::Instant::now(),
            dirty: false,
            delivered_any: false,
            stop_flushed: false,
            rendered_last: false,
            lingered: false,
        }
    }

    /// The handler's log limit.
    fn limit(&self) -> &LogLimit {
        (*self.events.limit).as_ref()
    }

    /// Turns until the stop (and what it delivers), or a broken task.
    pub(crate) async fn run(&mut self) {
        loop {
            if !self.wait().await {
                continue;
            }
            if self.scrape.is_none()
                && !self.stopping
                && (!self.rendered_last || self.queue.is_empty())
            {
                self.scrape = self.scrapes.as_mut().and_then(|r| r.try_recv().ok());
            }
            self.rendered_last = self.scrape.is_some();
            self.stats.wakeups.fetch_add(1, Ordering::Relaxed);
            let Some(inst) = self.instance().await else {
                if self.stopping {
                    break;
                }
                continue;
            };
            let step = match self.scrape.take() {
                Some(s) => self.serve(inst, s).await,
                None => self.deliver(inst).await,
            };
            if matches!(step, Step::Stop) {
                break;
            }
        }
    }

    /// Waits for work: metrics (after lingering for more), a retry or a
    /// flush due, a scrape, or the stop. `false`: new metrics arrived
    /// while idle, and the next turn lingers for more first.
    async fn wait(&mut self) -> bool {
        if self.stopping {
            return true;
        }
        let s = self.settings;
        if self.backoff.is_zero() && !self.queue.is_empty() {
            if !self.lingered && self.queue.len() < s.batch_size && !s.linger.is_zero() {
                // The first metrics after a delivery: a moment for the
                // other runs due soon; a full batch, a scrape or the stop
                // ends it.
                self.lingered = true;
                tokio::select! {
                    _ = tokio::time::sleep(s.linger) => {}
                    _ = self.queue.full.notified() => {}
                    Some(r) = next_scrape(&mut self.scrapes) => { self.scrape = Some(r); }
                    _ = self.stop.changed() => { self.stopping = true; }
                }
            }
            // Metrics are waiting: straight on (even a zero sleep would
            // wait for the timer's next millisecond tick).
            if self.stop.has_changed().unwrap_or(true) {
                self.stopping = true;
            }
            return true;
        }
        self.lingered = false;
        // Wake for a retry, a due flush, new metrics or the stop; an idle
        // handler (nothing queued, nothing to flush) has no timer at all.
        let wait = if !self.backoff.is_zero() {
            Some(self.backoff)
        } else if self.dirty {
            Some(s.flush_every.saturating_sub(self.last_flush.elapsed()))
        } else {
            None
        };
        // The spool's group sync is a deadline too (only while something
        // waits for one).
        let sync_in = self
            .queue
            .sync_due()
            .map(|t| t.saturating_duration_since(Instant::now()));
        let wait = match (wait, sync_in) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let idle = self.backoff.is_zero();
        tokio::select! {
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            _ = self.queue.notify.notified(), if idle => return false,
            Some(r) = next_scrape(&mut self.scrapes) => { self.scrape = Some(r); }
            _ = self.stop.changed() => { self.stopping = true; }
        }
        true
    }

    /// The instance for this turn: the one kept, or a new one (`None`,
    /// with a backoff, when it cannot be made).
    async fn instance(&mut self) -> Option<S> {
        if let Some(i) = self.instance.take() {
            return Some(i);
        }
        let make = self.make.clone();
        let made = tokio::task::spawn_blocking(move || make())
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match made {
            Ok(i) => Some(i),
            Err(e) => {
                self.backoff = next_backoff(self.backoff, self.settings.retry_max);
                let retry_in = self.backoff;
                self.events.span.in_scope(|| {
                    tracing::error!(error = %e, retry_in = ?retry_in, "cannot instantiate the handler")
                });
                None
            }
        }
    }

    /// Delivers what waits (and flushes when due) on `inst`, on a
    /// blocking thread.
    async fn deliver(&mut self, mut inst: S) -> Step {
        let s = self.settings;
        let sync_now = self.queue.sync_due().is_some_and(|t| t <= Instant::now());
        let taken = self.queue.peek(s.batch_size);
        let flush_due = (self.dirty && self.last_flush.elapsed() >= s.flush_every)
            || (self.stopping && (self.dirty || (self.delivered_any && !self.stop_flushed)));
        if taken.is_none() && !flush_due {
            if sync_now {
                let q = self.queue.clone();
                let _ = tokio::task::spawn_blocking(move || q.sync()).await;
            }
            self.instance = Some(inst);
            return if self.stopping {
                Step::Stop
            } else {
                Step::Next
            };
        }
        // A flush already due when the queue is drained is done in the
        // same hand-off as the delivery: one blocking hop, not two.
        let flush_after = self.last_flush.elapsed() >= s.flush_every;
        let (q, st) = (self.queue.clone(), self.stats.clone());
        inst.set_stopping(self.stopping);
        let handed = tokio::task::spawn_blocking(move || {
            if sync_now {
                q.sync();
            }
            drain(inst, &q, &st, taken, s, flush_after)
        })
        .await;
        match handed {
            Ok(delivered) => self.settle(delivered),
            Err(e) => {
                self.events
                    .span
                    .in_scope(|| tracing::error!(error = %e, "handler task failed"));
                return Step::Stop;
            }
        }
        if self.stopping && !self.backoff.is_zero() {
            // The backend cannot take them now: see `finish`.
            return Step::Stop;
        }
        Step::Next
    }

    /// Takes stock of a delivery: flush time, backoff, the instance kept
    /// or dropped, the outcome counted and logged.
    fn settle(&mut self, (inst, outcome, delivered, flushing): Delivered<S>) {
        let _g = self.events.span.enter();
        if delivered > 0 {
            self.dirty = true;
            self.delivered_any = true;
        }
        let failed = match &outcome {
            Ok(Ok(())) => {
                self.stats.succeeded();
                if flushing {
                    self.stop_flushed = self.stopping;
                    self.dirty = false;
                    self.last_flush = tokio::time::Instant::now();
                }
                if !self.backoff.is_zero() {
                    tracing::info!("delivering again");
                }
                self.backoff = Duration::ZERO;
                self.instance = Some(inst);
                return;
            }
            Ok(Err(msg)) => {
                self.instance = Some(inst);
                Unsuccessful::GuestError(msg)
            }
            Err(f) => Unsuccessful::Failure(f),
        };
        self.backoff = next_backoff(self.backoff, self.settings.retry_max);
        CallFailed {
            call: Call::Delivery,
            outcome: failed,
            retry: Some((self.queue.len(), self.backoff)),
        }
        .emit(&self.stats, self.limit());
    }

    /// After the loop: however it ended (backend down at shutdown, the
    /// handler not instantiable, a host panic), what is still queued goes
    /// to the spool for the next start, or is counted as lost: never
    /// dropped silently.
    pub(crate) async fn finish(&mut self) {
        let queue = self.queue.clone();
        {
            let _g = self.events.span.enter();
            if self.stopping && !self.backoff.is_zero() {
                self.spill_held();
            }
            let left = queue.len();
            if left > 0 {
                if queue.spill_all("stopping while the backend is unavailable") > 0 {
                    tracing::warn!(
                        spooled_total = queue.len(),
                        "stopping; undelivered metrics stay in the spool for the next start"
                    );
                } else {
                    tracing::error!(
                        undelivered = left,
                        "stopping with metrics the handler could not deliver (set spool_dir to keep them)"
                    );
                }
            }
        }
        // What was delivered, and the last writes, saved for the next start.
        if queue.spool().is_some() {
            let q = queue.clone();
            let _ = tokio::task::spawn_blocking(move || q.sync()).await;
        }
        let delivered = self.stats.metrics.load(Ordering::Relaxed);
        self.events
            .span
            .in_scope(|| tracing::info!(delivered, "stopped"));
    }

    /// Batches the handler still holds were sent but not confirmed (an
    /// at-least-once sender keeps its last one until the connection proves
    /// alive): they are spooled too, before the memory queue but after
    /// what the spool already holds (newer metrics). At worst a duplicate,
    /// delivered after newer points.
    fn spill_held(&self) {
        let Some(inst) = &self.instance else {
            return;
        };
        let held = inst.held_batches();
        let n: usize = held.iter().map(|b| b.len()).sum();
        for b in held {
            self.queue
                .spill(b.to_chunk(), "stopping with a sent batch not yet confirmed");
        }
        if n > 0 {
            tracing::warn!(metrics = n, "stopping while the backend is unavailable: the handler's last sent batch is kept too (it may arrive twice)");
        }
    }
}

/// The wait before the next try: 250 ms, doubling up to `max`.
fn next_backoff(b: Duration, max: Duration) -> Duration {
    if b.is_zero() {
        Duration::from_millis(250).min(max)
    } else {
        (b * 2).min(max)
    }
}
