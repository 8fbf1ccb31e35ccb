//! The exposition server's open connections, and which one a new
//! connection closes when [`MAX_CONNECTIONS`] are open: the oldest that is
//! not waiting for the plugin's render.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

/// Connections open at once; the next one closes the oldest that is not
/// waiting for a render.
pub const MAX_CONNECTIONS: usize = 64;

/// An open connection: whether it waits for a render, and its task.
type Entry = (Arc<AtomicBool>, Option<AbortHandle>);

/// The open connections, oldest first (ids grow), each with whether it
/// is waiting for the plugin's render (then it is not evicted: such
/// waits are few, [`super::MAX_WAITING`], and bounded by the handler's turn).
#[derive(Default)]
pub(in crate::agent) struct Connections {
    open: Mutex<BTreeMap<u64, Entry>>,
}

impl Connections {
    /// Registers a new connection (id `id`); when [`MAX_CONNECTIONS`] are
    /// open already, first closes the oldest one not waiting for a render.
    /// Returns its "waiting for a render" flag and how many were evicted.
    pub(super) fn admit(&self, id: u64) -> (Arc<AtomicBool>, usize) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = 0;
        while open.len() >= MAX_CONNECTIONS {
            let Some(oldest) = open
                .iter()
                .find(|(_, (rendering, _))| !rendering.load(Ordering::Relaxed))
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some((_, Some(task))) = open.remove(&oldest) {
                task.abort();
            }
            evicted += 1;
        }
        let rendering = Arc::new(AtomicBool::new(false));
        open.insert(id, (rendering.clone(), None));
        (rendering, evicted)
    }

    /// Records the task serving connection `id` (so that it can be closed).
    pub(super) fn started(&self, id: u64, task: AbortHandle) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        match open.get_mut(&id) {
            Some(entry) => entry.1 = Some(task),
            // Evicted before its task was recorded.
            None => task.abort(),
        }
    }

    /// Forgets connection `id` (its task ended).
    pub(super) fn ended(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Forgets its connection when the serving task ends (or is aborted).
pub(super) struct Registered<'a>(pub(super) &'a Connections, pub(super) u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.ended(self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_connection_closes_the_oldest_one_not_rendering() {
        let c = Connections::default();
        let flags: Vec<_> = (0..MAX_CONNECTIONS as u64)
            .map(|id| c.admit(id))
            .map(|(f, evicted)| {
                assert_eq!(evicted, 0);
                f
            })
            .collect();
        // The oldest waits for a render: the second oldest goes.
        flags[0].store(true, Ordering::Relaxed);
        let (_, evicted) = c.admit(100);
        assert_eq!((evicted, c.len()), (1, MAX_CONNECTIONS));
        let open: Vec<u64> = c.open.lock().unwrap().keys().copied().collect();
        assert_eq!(&open[..2], &[0, 2]);
        assert_eq!(open.last(), Some(&100));
        // A connection that ended frees its place.
        c.ended(5);
        assert_eq!(c.admit(101).1, 0);
        // Every one rendering: nobody is evicted (the renders are bounded).
        for f in &flags {
            f.store(true, Ordering::Relaxed);
        }
        let c2 = Connections::default();
        for id in 0..MAX_CONNECTIONS as u64 {
            c2.admit(id).0.store(true, Ordering::Relaxed);
        }
        assert_eq!(c2.admit(999).1, 0);
    }
}
