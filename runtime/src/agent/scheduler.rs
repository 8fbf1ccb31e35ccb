//! The thread that starts collector runs when they are due.
//!
//! Every collector's next run is an entry in one heap, and one thread
//! sleeps until the earliest (a single futex wait with its deadline): a
//! due run wakes that thread once, which hands the run to the blocking
//! pool and goes back to sleep. The async workers take no part in it —
//! a tokio timer per collector woke a worker several times per run (the
//! timer wheel cascades a sleep of seconds through its coarser levels
//! first, and a woken worker wakes another to look for work).
//!
//! A job is a closure called on this thread when due; it must only hand
//! work off (it returns at once), and says when it is due next.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What runs when an entry is due: hands its work off and returns how long
/// until it is due again (`None`: never).
pub type Job = Box<dyn FnMut() -> Option<Duration> + Send>;

#[derive(Default)]
struct Timers {
    /// (due, id), earliest first; an id no longer in `jobs` is stale.
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    /// The jobs by id; `None` while the thread is calling it.
    jobs: HashMap<u64, Option<Job>>,
    next_id: u64,
    /// The scheduler was dropped: the thread ends.
    closed: bool,
}

struct Shared {
    timers: Mutex<Timers>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The scheduler: its thread ends when this is dropped.
pub struct Scheduler {
    shared: Arc<Shared>,
}

/// An entry of the scheduler; [`Scheduler::remove`] takes it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry(u64);

impl Scheduler {
    /// Starts the scheduler's thread.
    pub fn new() -> Scheduler {
        let shared = Arc::new(Shared {
            timers: Mutex::new(Timers::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("wdiamond-schedule".into())
            .spawn(move || run(&s))
            .expect("starting the scheduler thread");
        Scheduler { shared }
    }

    /// Calls `job` after `first`, then after each wait it returns.
    pub fn add(&self, first: Duration, job: Job) -> Entry {
        let mut t = self.shared.lock();
        let id = t.next_id;
        t.next_id += 1;
        t.jobs.insert(id, Some(job));
        let at = Instant::now() + first;
        let earliest = t.due.peek().is_none_or(|Reverse((e, _))| at < *e);
        t.due.push(Reverse((at, id)));
        if earliest {
            self.shared.wake.notify_one();
        }
        Entry(id)
    }

    /// Takes `entry` out: its job is not called again (a call already
    /// under way finishes, and is not rescheduled).
    pub fn remove(&self, entry: Entry) {
        // Its heap entry goes stale; the thread drops it when due.
        self.shared.lock().jobs.remove(&entry.0);
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

fn run(shared: &Shared) {
    let mut t = shared.lock();
    loop {
        if t.closed {
            return;
        }
        let now = Instant::now();
        let (at, id) = match t.due.peek() {
            None => {
                t = shared.wake.wait(t).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            Some(Reverse(next)) => *next,
        };
        if at > now {
            t = shared
                .wake
                .wait_timeout(t, at - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        t.due.pop();
        let Some(slot) = t.jobs.get_mut(&id) else {
            continue; // removed
        };
        let Some(mut job) = slot.take() else {
            continue;
        };
        drop(t);
        let next =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut job)).unwrap_or_else(|_| {
                tracing::error!("a collector's schedule failed (a bug): it is not run again");
                None
            });
        t = shared.lock();
        match (t.jobs.get_mut(&id), next) {
            (Some(slot), Some(wait)) => {
                *slot = Some(job);
                t.due.push(Reverse((Instant::now() + wait, id)));
            }
            (Some(_), None) => {
                t.jobs.remove(&id);
            }
            (None, _) => {} // removed while it ran
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counter() -> (Arc<AtomicUsize>, Job, Job) {
        let n = Arc::new(AtomicUsize::new(0));
        let (a, b) = (n.clone(), n.clone());
        let every_ms = Box::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
            Some(Duration::from_millis(1))
        });
        let once = Box::new(move || {
            b.fetch_add(100, Ordering::SeqCst);
            None
        });
        (n, every_ms, once)
    }

    fn wait_until(what: &str, ok: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(Instant::now() < end, "never: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn jobs_run_again_until_removed_and_once_when_they_say_so() {
        let s = Scheduler::new();
        let (n, every_ms, once) = counter();
        let e = s.add(Duration::ZERO, every_ms);
        wait_until("three runs", || n.load(Ordering::SeqCst) >= 3);
        s.remove(e);
        // A call under way when it was removed may still finish.
        std::thread::sleep(Duration::from_millis(20));
        let stopped = n.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(n.load(Ordering::SeqCst), stopped, "it ran after removal");
        s.add(Duration::ZERO, once);
        wait_until("the one-off", || n.load(Ordering::SeqCst) >= stopped + 100);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            n.load(Ordering::SeqCst),
            stopped + 100,
            "a one-off ran twice"
        );
        assert!(s.shared.lock().jobs.is_empty());
    }

    #[test]
    fn an_earlier_entry_wakes_the_thread_from_a_later_one() {
        let s = Scheduler::new();
        let (n, _, once) = counter();
        s.add(Duration::from_secs(3600), Box::new(|| None));
        s.add(Duration::ZERO, once);
        wait_until("the earlier entry's run", || {
            n.load(Ordering::SeqCst) == 100
        });
    }

    #[test]
    fn a_panicking_job_is_dropped_and_the_others_go_on() {
        let s = Scheduler::new();
        let (n, every_ms, _) = counter();
        s.add(Duration::ZERO, Box::new(|| panic!("a bug")));
        s.add(Duration::ZERO, every_ms);
        wait_until("runs after the panic", || n.load(Ordering::SeqCst) >= 3);
        wait_until("the panicking job gone", || s.shared.lock().jobs.len() == 1);
    }
}
