//! A delivery's hand-off, on a blocking thread.

use super::{Delivered, Settings, DRAIN_SLICE};
use crate::agent::sink::Sink;
use crate::metric::Batch;
use crate::queue::{Queue, Taken};
use crate::stats::PluginStats;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// On a blocking thread: batch after batch while they succeed and metrics
/// wait, for at most [`DRAIN_SLICE`] (one hand-off per slice, not per
/// batch); then the flush when `flush_after` and the queue is drained. With
/// nothing `taken`, only the flush.
pub(super) fn drain<S: Sink>(
    mut inst: S,
    q: &Queue,
    stats: &PluginStats,
    taken: Option<(Taken, Batch)>,
    s: Settings,
    flush_after: bool,
) -> Delivered<S> {
    let Some((mut taken, mut batch)) = taken else {
        let r = inst.flush(s.deadline);
        return (inst, r, 0, true);
    };
    let (started, mut delivered) = (Instant::now(), 0);
    loop {
        let n = batch.len();
        let (r, refused) = inst.process(batch, s.deadline);
        if !matches!(r, Ok(Ok(()))) {
            return (inst, r, delivered, false);
        }
        q.commit(taken);
        // What the receiver refused for good is dropped, not delivered (it
        // may be an older batch's: never below 0).
        let refused = refused as usize;
        stats.dropped.fetch_add(refused as u64, Ordering::Relaxed);
        stats
            .metrics
            .fetch_add(n.saturating_sub(refused) as u64, Ordering::Relaxed);
        delivered += n.saturating_sub(refused);
        if started.elapsed() >= DRAIN_SLICE {
            return (inst, r, delivered, false);
        }
        match q.peek(s.batch_size) {
            Some((t, b)) => (taken, batch) = (t, b),
            None if flush_after => {
                let r = inst.flush(s.deadline);
                return (inst, r, delivered, true);
            }
            None => return (inst, r, delivered, false),
        }
    }
}
