//! What a queue gives the handler that replaces it at a reload: its spool
//! (the same directory: nothing moves), or what its memory holds and what
//! it spills later, so a backlog queued while deliveries failed is not
//! lost with the old handler.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Queue;
use crate::metric::Chunk;

impl Queue {
    /// Hands the spool to the handler replacing this one (same spool):
    /// this queue then holds nothing to deliver.
    pub fn hand_over(&self) {
        self.handed_over.store(true, Ordering::Relaxed);
        let mut q = self.lock();
        let n = q.len;
        q.drop_front(n);
    }

    /// Hands what this memory queue holds to `successor`, the queue of
    /// the handler replacing this one (a reload that changed it), oldest
    /// first, and what it spills later (a sent batch not yet confirmed) too:
    /// a backlog queued while deliveries failed is not lost with the old
    /// handler. Returns how many metrics moved.
    pub fn hand_over_to(&self, successor: &Arc<Queue>) -> usize {
        *self.successor.lock().unwrap_or_else(|p| p.into_inner()) = Some(successor.clone());
        self.handed_over.store(true, Ordering::Relaxed);
        let (chunks, offset) = {
            let mut q = self.lock();
            let n = q.len;
            let taken = (q.chunks.clone(), q.offset);
            q.drop_front(n);
            taken
        };
        let mut moved = 0;
        for (i, c) in chunks.into_iter().enumerate() {
            let c = if i == 0 && offset > 0 {
                let mut rest = Chunk::default();
                rest.extend_range(&c, offset..c.len());
                Arc::new(rest)
            } else {
                c
            };
            moved += c.len();
            successor.push(&c);
        }
        moved
    }

    pub(super) fn successor(&self) -> Option<Arc<Queue>> {
        if !self.handed_over.load(Ordering::Relaxed) {
            return None;
        }
        self.successor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
