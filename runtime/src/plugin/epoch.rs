//! The epoch ticker: advances every engine's epoch each [`EPOCH_TICK`]
//! while some plugin call is in flight, and never wakes while none is.
//!
//! A call's deadline is its own timer (see [`super::call::bounded`]); the
//! epoch only makes a computing guest yield, or trap past its deadline, so
//! it has nothing to do between runs — nor during a call shorter than a
//! tick, which is almost every collection. The ticker thread sleeps in a
//! `read` of a `timerfd`: the first call in flight arms the timer (one
//! syscall on the caller's thread, no wake-up of the ticker), the last one
//! out disarms it, so the ticker thread runs only when a call has lasted
//! a whole tick. One thread for the process, started on first use;
//! engines register a weak reference and drop out when gone.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use wasmtime::{Engine, EngineWeak};

use super::EPOCH_TICK;

#[derive(Default)]
struct State {
    /// Calls in flight (each holds an [`Awake`]).
    in_flight: usize,
    /// The engines to tick.
    engines: Vec<EngineWeak>,
    /// Ticks done so far.
    ticks: u64,
    /// Times the ticker thread woke (a tick, or an expiry that raced the
    /// last call's end and found nothing in flight).
    wakeups: u64,
}

struct Ticker {
    state: Mutex<State>,
    /// A `CLOCK_MONOTONIC` timerfd, armed (periodic, one tick) exactly
    /// while a call is in flight.
    timer: OwnedFd,
}

fn ticker() -> &'static Ticker {
    static TICKER: OnceLock<Ticker> = OnceLock::new();
    TICKER.get_or_init(|| {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
        assert!(
            fd >= 0,
            "creating the epoch timer (timerfd_create): {}",
            std::io::Error::last_os_error()
        );
        std::thread::Builder::new()
            .name("wdiamond-epoch".into())
            .spawn(run)
            .expect("starting the epoch thread");
        Ticker {
            state: Mutex::new(State::default()),
            // SAFETY: `fd` was just created and is owned by nobody else.
            timer: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    })
}

fn lock(t: &Ticker) -> std::sync::MutexGuard<'_, State> {
    t.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Arms the timer to expire every tick from one tick from now, or disarms
/// it. Called with the state locked, so arming and disarming never cross.
fn set_timer(t: &Ticker, on: bool) {
    let tick = libc::timespec {
        tv_sec: 0,
        tv_nsec: if on { EPOCH_TICK.as_nanos() as _ } else { 0 },
    };
    let spec = libc::itimerspec {
        it_interval: tick,
        it_value: tick,
    };
    // SAFETY: a valid timerfd and a valid itimerspec; no old value asked.
    unsafe { libc::timerfd_settime(t.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
}

fn run() {
    let t = ticker();
    loop {
        let mut expirations = 0u64;
        // SAFETY: reads the 8-byte expiration count into a u64.
        let n = unsafe {
            libc::read(
                t.timer.as_raw_fd(),
                (&mut expirations as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n != std::mem::size_of::<u64>() as isize {
            // EINTR; nothing else can fail on a valid blocking timerfd.
            continue;
        }
        let engines: Vec<Engine> = {
            let mut s = lock(t);
            s.wakeups += 1;
            if s.in_flight == 0 {
                // An expiry that raced the disarm: nothing to tick.
                continue;
            }
            s.ticks += 1;
            s.engines.retain(|w| w.upgrade().is_some());
            s.engines.iter().filter_map(EngineWeak::upgrade).collect()
        };
        for e in &engines {
            e.increment_epoch();
        }
    }
}

/// Ticks `engine`'s epoch from now on, while calls are in flight.
pub(super) fn register(engine: &Engine) {
    lock(ticker()).engines.push(engine.weak());
}

/// A call in flight: the ticker runs while one exists.
pub(super) struct Awake(());

/// Marks a call in flight until the returned guard is dropped.
pub(super) fn awake() -> Awake {
    let t = ticker();
    let mut s = lock(t);
    s.in_flight += 1;
    if s.in_flight == 1 {
        set_timer(t, true);
    }
    Awake(())
}

impl Drop for Awake {
    fn drop(&mut self) {
        let t = ticker();
        let mut s = lock(t);
        s.in_flight -= 1;
        if s.in_flight == 0 {
            set_timer(t, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(what: &str, mut ok: impl FnMut(&State) -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !ok(&lock(ticker())) {
            assert!(Instant::now() < end, "the ticker never got {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    // Other tests of this binary make no plugin calls: nothing else holds
    // an `Awake`, so the counters move only by what these tests do. They
    // share the one ticker, so they run as one test.
    #[test]
    fn the_ticker_runs_only_while_a_call_is_in_flight() {
        // A call spanning ticks is ticked.
        let guard = awake();
        let before = lock(ticker()).ticks;
        wait_for("ticking", |s| s.ticks >= before + 2);
        drop(guard);
        // Disarmed: no tick with nothing in flight, and no wake-up but
        // (at most) one expiry that raced the disarm.
        let (idle_ticks, idle_wakeups) = {
            let s = lock(ticker());
            (s.ticks, s.wakeups)
        };
        std::thread::sleep(EPOCH_TICK * 10);
        {
            let s = lock(ticker());
            assert_eq!(s.in_flight, 0);
            assert_eq!(s.ticks, idle_ticks, "it ticked with no call in flight");
            assert!(
                s.wakeups <= idle_wakeups + 1,
                "it woke {} times with no call in flight",
                s.wakeups - idle_wakeups
            );
        }
        // Calls far shorter than a tick, one after another: each arms and
        // disarms the timer, which (but for a thread descheduled a whole
        // tick inside one) never expires.
        for _ in 0..50 {
            drop(awake());
        }
        let s = lock(ticker());
        assert!(
            s.ticks - idle_ticks < 25,
            "{} of 50 short calls were ticked",
            s.ticks - idle_ticks
        );
    }
}
