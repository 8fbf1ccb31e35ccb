//! The exposition server's open connections, and which one makes room
//! when [`MAX_CONNECTIONS`] are open: the oldest that has had its first
//! read and is not waiting for the plugin's render.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// Connections open at once; the next one closes the oldest that may be
/// closed ([`Phase::Open`]), or waits in the kernel's backlog until one may.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a new connection's first read may wait before the connection
/// may be closed to make room: a scraper sends its head with its connect,
/// so its first read finds it, however many slow clients churn.
pub const FIRST_READ_GRACE: Duration = Duration::from_millis(250);

/// Where a connection is, as far as making room goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Phase {
    /// Accepted; its first read has not found data yet, for at most
    /// [`FIRST_READ_GRACE`]: never closed.
    New = 0,
    /// A head still trickling in, an idle client, a response being
    /// written: the oldest such is closed to make room.
    Open = 1,
    /// Waiting for the plugin's render: never closed (such waits are few,
    /// [`super::MAX_WAITING`], and bounded by the handler's turn).
    Rendering = 2,
}

/// One connection's phase, shared by its task and the registry.
#[derive(Debug)]
pub(super) struct Slot {
    phase: AtomicU8,
    changed: Arc<Notify>,
}

impl Slot {
    /// Moves the connection to `phase`; a move to [`Phase::Open`] wakes an
    /// accept loop waiting for room.
    pub(super) fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
        if phase == Phase::Open {
            self.changed.notify_one();
        }
    }

    fn closable(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == Phase::Open as u8
    }
}

/// An open connection: its phase, and its task.
type Entry = (Arc<Slot>, Option<AbortHandle>);

/// The open connections, oldest first (ids grow).
#[derive(Default)]
pub(in crate::agent) struct Connections {
    open: Mutex<BTreeMap<u64, Entry>>,
    /// Told when a connection ends or becomes closable.
    changed: Arc<Notify>,
}

impl Connections {
    /// Makes room for one more connection: `Some(closed)` when fewer than
    /// [`MAX_CONNECTIONS`] are open (after closing `closed` of the oldest
    /// closable ones), `None` when every one is new or rendering — then
    /// [`Connections::changed`] tells when to try again.
    pub(super) fn make_room(&self) -> Option<usize> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = 0;
        while open.len() >= MAX_CONNECTIONS {
            let oldest = open
                .iter()
                .find(|(_, (slot, _))| slot.closable())
                .map(|(id, _)| *id)?;
            if let Some((_, Some(task))) = open.remove(&oldest) {
                task.abort();
            }
            closed += 1;
        }
        Some(closed)
    }

    /// Waits until a connection ends or becomes closable (or a permit
    /// left by an earlier change).
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Registers a new connection (id `id`), in [`Phase::New`].
    pub(super) fn admit(&self, id: u64) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            phase: AtomicU8::new(Phase::New as u8),
            changed: self.changed.clone(),
        });
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.insert(id, (slot.clone(), None));
        slot
    }

    /// Records the task serving connection `id` (so that it can be closed).
    pub(super) fn started(&self, id: u64, task: AbortHandle) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        match open.get_mut(&id) {
            Some(entry) => entry.1 = Some(task),
            // Ended before its task was recorded.
            None => task.abort(),
        }
    }

    /// Forgets connection `id` (its task ended).
    pub(super) fn ended(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.changed.notify_one();
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
    fn room_is_made_by_closing_the_oldest_open_connection_only() {
        let c = Connections::default();
        let slots: Vec<_> = (0..MAX_CONNECTIONS as u64)
            .map(|id| {
                assert_eq!(c.make_room(), Some(0));
                c.admit(id)
            })
            .collect();
        // Every one new (its first read pending): no room, nobody closed.
        assert_eq!(c.make_room(), None);
        assert_eq!(c.len(), MAX_CONNECTIONS);
        // The oldest renders, the next two are open: the second goes.
        slots[0].set(Phase::Rendering);
        slots[1].set(Phase::Open);
        slots[2].set(Phase::Open);
        assert_eq!(c.make_room(), Some(1));
        c.admit(100);
        let open: Vec<u64> = c.open.lock().unwrap().keys().copied().collect();
        assert_eq!(&open[..3], &[0, 2, 3]);
        assert_eq!(open.last(), Some(&100));
        // A connection that ended frees its place.
        c.ended(5);
        assert_eq!(c.make_room(), Some(0));
        c.admit(101);
        // Rendering and new ones are never closed.
        for s in &slots {
            s.set(Phase::Rendering);
        }
        assert_eq!(c.make_room(), None);
    }

    #[tokio::test]
    async fn a_waiting_accept_loop_is_told_when_a_connection_becomes_closable() {
        let c = Arc::new(Connections::default());
        let slots: Vec<_> = (0..MAX_CONNECTIONS as u64).map(|id| c.admit(id)).collect();
        // Drain the permits the admissions left.
        while tokio::time::timeout(Duration::from_millis(1), c.changed())
            .await
            .is_ok()
        {}
        assert_eq!(c.make_room(), None);
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move {
                c.changed().await;
                c.make_room()
            })
        };
        tokio::task::yield_now().await;
        slots[7].set(Phase::Open);
        assert_eq!(waiter.await.unwrap(), Some(1));
    }
}
