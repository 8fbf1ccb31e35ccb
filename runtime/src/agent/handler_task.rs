//! A handler's task: batches from its queue delivered with retries and
//! backoff, flushes, a replaced instance after a trap, and at the stop what
//! is left spooled (or counted), never dropped silently.

use super::exposition::{self, Reply, ScrapeRequest};
use super::load::{configured_handler, LoadedHandler};
use crate::logging::guest_text;
use crate::logging::Kind as LogKind;
use crate::plugin::Runtime;
use crate::queue::Queue;
use crate::stats::PluginStats;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Longest a handler keeps its blocking thread delivering batch after
/// batch before the task looks at its schedule and stop signal again.
const DRAIN_SLICE: Duration = Duration::from_millis(50);

pub(super) async fn handler_task(
    runtime: Arc<Runtime>,
    lh: LoadedHandler,
    queue: Arc<Queue>,
    mut stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    stats: Arc<PluginStats>,
) {
    let span = lh.ctx.span.clone();
    let batch_size = lh.config.batch_size;
    // How long the first metrics after a delivery wait for more
    // (`batch_timeout`): the runs due meanwhile go in the same delivery,
    // one hand-off to a blocking thread (and one plugin call) for several
    // runs instead of one each.
    let linger = Duration::from_secs_f64(lh.config.batch_timeout);
    queue.set_full_at(batch_size);
    let flush_every = Duration::from_secs_f64(lh.config.flush_interval);
    let deadline = lh
        .config
        .plugin
        .limits
        .timeout
        .unwrap_or(Duration::from_secs(30));
    let (component, ctx) = (lh.component, lh.ctx);
    let retry_max = Duration::from_secs_f64(lh.config.retry_max);
    let mut first = lh.instance;
    first.set_abort(abort.clone());
    let mut instance = Some(first);
    let mut backoff = Duration::ZERO;
    let mut stopping = false;
    let mut last_flush = tokio::time::Instant::now();
    let mut dirty = false;
    // Whether this task ever delivered, and whether the stop's own flush
    // was done: at the stop the handler flushes once more even when its
    // last flush came right after its last delivery, so that a sender
    // keeping its last batch unconfirmed (graphite) checks its connection
    // then, and a dead peer's batch is spooled, not lost.
    let (mut delivered_any, mut stop_flushed) = (false, false);
    // An exporter's page is served by a task of its own, which hands each
    // scrape here: the plugin renders it in its turn.
    let (mut scrapes, server) = match lh.config.listen.clone() {
        Some(listen) => {
            let (tx, rx) = mpsc::channel(exposition::MAX_WAITING);
            let server = tokio::spawn(exposition::serve(
                listen,
                lh.config.plugin.section.clone(),
                tx,
                deadline + Duration::from_secs(5),
                stop.clone(),
            ));
            (Some(rx), Some(server))
        }
        None => (None, None),
    };
    let mut scrape: Option<ScrapeRequest> = None;
    // Scrapes and deliveries take turns: a client asking without pause
    // cannot keep the queue from draining.
    let mut rendered_last = false;
    let mut lingered = false;
    loop {
        if !stopping && backoff.is_zero() && !queue.is_empty() {
            if !lingered && queue.len() < batch_size && !linger.is_zero() {
                // The first metrics after a delivery: a moment for the
                // other runs due soon (see `linger`); a full batch, a
                // scrape or the stop ends it.
                lingered = true;
                tokio::select! {
                    _ = tokio::time::sleep(linger) => {}
                    _ = queue.full.notified() => {}
                    Some(s) = next_scrape(&mut scrapes) => { scrape = Some(s); }
                    _ = stop.changed() => { stopping = true; }
                }
            }
            // Metrics are waiting: straight on (even a zero sleep would
            // wait for the timer's next millisecond tick).
            if stop.has_changed().unwrap_or(true) {
                stopping = true;
            }
        } else if !stopping {
            lingered = false;
            // Wake for a retry, a due flush, new metrics or the stop; an idle
            // handler (nothing queued, nothing to flush) has no timer at all.
            let wait = if !backoff.is_zero() {
                Some(backoff)
            } else if dirty {
                Some(flush_every.saturating_sub(last_flush.elapsed()))
            } else {
                None
            };
            // The spool's group sync is a deadline too (only while
            // something waits for one).
            let sync_in = queue
                .sync_due()
                .map(|t| t.saturating_duration_since(Instant::now()));
            let wait = match (wait, sync_in) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
                _ = queue.notify.notified(), if backoff.is_zero() => {
                    // New metrics: back to the top, which lingers first.
                    continue;
                }
                Some(s) = next_scrape(&mut scrapes) => { scrape = Some(s); }
                _ = stop.changed() => { stopping = true; }
            }
        }
        if scrape.is_none() && !stopping && (!rendered_last || queue.is_empty()) {
            scrape = scrapes.as_mut().and_then(|r| r.try_recv().ok());
        }
        rendered_last = scrape.is_some();
        stats.wakeups.fetch_add(1, Ordering::Relaxed);
        let mut inst = match instance.take() {
            Some(i) => i,
            None => {
                let (rt, comp, c) = (runtime.clone(), component.clone(), ctx.clone());
                let a = abort.clone();
                let made = match tokio::task::spawn_blocking(move || {
                    configured_handler(&rt, &comp, c).map(|mut i| {
                        i.set_abort(a);
                        i
                    })
                })
                .await
                {
                    Ok(made) => made,
                    Err(e) => Err(e.to_string()),
                };
                match made {
                    Ok(i) => i,
                    Err(e) => {
                        backoff = next_backoff(backoff, retry_max);
                        span.in_scope(|| tracing::error!(error = %e, retry_in = ?backoff, "cannot instantiate the handler"));
                        if stopping {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        if let Some(s) = scrape.take() {
            // A scrape: the page, rendered between deliveries.
            match tokio::task::spawn_blocking(move || {
                let mut inst = inst;
                let r = inst.render(&s.scrape, deadline).0;
                (inst, r, s.reply)
            })
            .await
            {
                Ok((inst, r, reply)) => {
                    let (inst, answer) = rendered(inst, r, &stats, &ctx, &span);
                    let _ = reply.send(answer);
                    instance = inst;
                }
                Err(e) => {
                    span.in_scope(|| tracing::error!(error = %e, "handler task failed"));
                    break;
                }
            }
            continue;
        }
        let sync_now = queue.sync_due().is_some_and(|t| t <= Instant::now());
        let (taken, batch) = match queue.peek(batch_size) {
            Some((t, b)) => (Some(t), b),
            None => (None, crate::metric::Batch::default()),
        };
        let flush_due = (dirty && last_flush.elapsed() >= flush_every)
            || (stopping && (dirty || (delivered_any && !stop_flushed)));
        if batch.is_empty() && !flush_due {
            if sync_now {
                let q = queue.clone();
                let _ = tokio::task::spawn_blocking(move || q.sync()).await;
            }
            instance = Some(inst);
            if stopping {
                break;
            }
            continue;
        }
        // A flush already due when the queue is drained is done in the
        // same hand-off as the delivery: one blocking hop, not two.
        let flush_after = last_flush.elapsed() >= flush_every;
        let (q, st) = (queue.clone(), stats.clone());
        inst.set_stopping(stopping);
        let (inst, outcome, delivered, flushing) = match tokio::task::spawn_blocking(move || {
            if sync_now {
                q.sync();
            }
            let mut inst = inst;
            let Some(mut taken) = taken else {
                let r = inst.flush(deadline).0;
                return (inst, r, 0, true);
            };
            // Batch after batch while they succeed and metrics wait, for
            // at most DRAIN_SLICE: one hand-off to a blocking thread per
            // slice, not per batch.
            let (started, mut batch, mut delivered) = (Instant::now(), batch, 0);
            loop {
                let n = batch.len();
                let (r, usage) = inst.process(batch, deadline);
                if !matches!(r, Ok(Ok(()))) {
                    return (inst, r, delivered, false);
                }
                q.commit(taken);
                // What the receiver refused for good is dropped, not
                // delivered (it may be an older batch's: never below 0).
                let refused = usage.calls.refused as usize;
                st.dropped.fetch_add(refused as u64, Ordering::Relaxed);
                st.metrics
                    .fetch_add(n.saturating_sub(refused) as u64, Ordering::Relaxed);
                delivered += n.saturating_sub(refused);
                if started.elapsed() >= DRAIN_SLICE {
                    return (inst, r, delivered, false);
                }
                match q.peek(batch_size) {
                    Some((t, b)) => (taken, batch) = (t, b),
                    None if flush_after => {
                        let r = inst.flush(deadline).0;
                        return (inst, r, delivered, true);
                    }
                    None => return (inst, r, delivered, false),
                }
            }
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                span.in_scope(|| tracing::error!(error = %e, "handler task failed"));
                break;
            }
        };
        let _g = span.enter();
        if delivered > 0 {
            dirty = true;
            delivered_any = true;
        }
        match outcome {
            Ok(Ok(())) => {
                if flushing {
                    stop_flushed = stopping;
                    dirty = false;
                    last_flush = tokio::time::Instant::now();
                }
                if !backoff.is_zero() {
                    tracing::info!("delivering again");
                }
                backoff = Duration::ZERO;
                instance = Some(inst);
            }
            Ok(Err(msg)) => {
                stats.guest_errors.fetch_add(1, Ordering::Relaxed);
                backoff = next_backoff(backoff, retry_max);
                if let Some(suppressed) = ctx.log_limit.admit(LogKind::GuestError) {
                    tracing::warn!(error = %guest_text(&msg), suppressed, queued = queue.len(), retry_in = ?backoff, "handler failed; the batch is kept and retried");
                }
                instance = Some(inst);
            }
            Err(f) => {
                stats.count_failure(&f);
                backoff = next_backoff(backoff, retry_max);
                if let Some(suppressed) = ctx.log_limit.admit(LogKind::Failure) {
                    tracing::error!(failure = f.kind.as_str(), suppressed, queued = queue.len(), retry_in = ?backoff, "handler failed: {}; re-instantiating, the batch is kept", f.message);
                }
            }
        }
        if stopping && !backoff.is_zero() {
            // The backend cannot take them now: see below.
            break;
        }
    }
    if let Some(server) = server {
        server.abort();
    }
    // However the loop ended (backend down at shutdown, the handler not
    // instantiable, a host panic), what is still queued goes to the spool
    // for the next start, or is counted as lost: never dropped silently.
    let _g = span.enter();
    if stopping && !backoff.is_zero() {
        // Batches the handler still holds were sent but not confirmed (an
        // at-least-once sender keeps its last one until the connection
        // proves alive): they are spooled too, before the memory queue but
        // after what the spool already holds (newer metrics). At worst a
        // duplicate, delivered after newer points.
        if let Some(inst) = &instance {
            let held = inst.held_batches();
            let n: usize = held.iter().map(|b| b.len()).sum();
            for b in held {
                queue.spill(b.to_chunk(), "stopping with a sent batch not yet confirmed");
            }
            if n > 0 {
                tracing::warn!(metrics = n, "stopping while the backend is unavailable: the handler's last sent batch is kept too (it may arrive twice)");
            }
        }
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
    // What was delivered, and the last writes, saved for the next start.
    if queue.spool().is_some() {
        let q = queue.clone();
        let _ = tokio::task::spawn_blocking(move || q.sync()).await;
    }
    tracing::info!(delivered = stats.metrics.load(Ordering::Relaxed), "stopped");
}

/// The next scrape waiting, if this handler serves a page (else never).
async fn next_scrape(scrapes: &mut Option<mpsc::Receiver<ScrapeRequest>>) -> Option<ScrapeRequest> {
    match scrapes {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// What a `render` call gives the client, counted as any call is; a
/// failed instance is dropped (the next turn makes a new one).
fn rendered(
    inst: crate::plugin::Instance<crate::plugin::Handler>,
    r: Result<Result<crate::bindings::exposition::Page, String>, crate::plugin::Failure>,
    stats: &PluginStats,
    ctx: &crate::host::PluginContext,
    span: &tracing::Span,
) -> (
    Option<crate::plugin::Instance<crate::plugin::Handler>>,
    Reply,
) {
    let _g = span.enter();
    match r {
        Ok(Ok(page)) => match exposition::check_page(&page) {
            Ok(()) => (Some(inst), Reply::Page(page)),
            Err(why) => {
                stats.guest_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = ctx.log_limit.admit(LogKind::GuestError) {
                    tracing::warn!(
                        suppressed,
                        "the page the handler rendered is not served: {why}"
                    );
                }
                (
                    Some(inst),
                    Reply::Error(500, format!("the exporter's page is refused: {why}")),
                )
            }
        },
        Ok(Err(msg)) => {
            stats.guest_errors.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = ctx.log_limit.admit(LogKind::GuestError) {
                tracing::warn!(error = %guest_text(&msg), suppressed, "rendering the page failed");
            }
            (Some(inst), Reply::Error(500, exposition::error_body(&msg)))
        }
        Err(f) => {
            stats.count_failure(&f);
            if let Some(suppressed) = ctx.log_limit.admit(LogKind::Failure) {
                tracing::error!(
                    failure = f.kind.as_str(),
                    suppressed,
                    "rendering the page failed: {}; re-instantiating the handler",
                    f.message
                );
            }
            (
                None,
                Reply::Error(
                    503,
                    format!("the exporter failed ({}); try again", f.kind.as_str()),
                ),
            )
        }
    }
}

fn next_backoff(b: Duration, max: Duration) -> Duration {
    if b.is_zero() {
        Duration::from_millis(250).min(max)
    } else {
        (b * 2).min(max)
    }
}
