//! The epoch ticker: advances every engine's epoch each [`EPOCH_TICK`]
//! while some plugin call is in flight, and sleeps (no wake-ups at all)
//! while none is.
//!
//! A call's deadline is its own timer (see [`super::call::bounded`]); the
//! epoch only makes a computing guest yield, or trap past its deadline, so
//! it has nothing to do between runs. One thread for the process, started
//! on first use; engines register a weak reference and drop out when gone.

use std::sync::{Condvar, Mutex, OnceLock};

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
    /// Whether the ticker is asleep, waiting for a call.
    parked: bool,
}

struct Ticker {
    state: Mutex<State>,
    wake: Condvar,
}

fn ticker() -> &'static Ticker {
    static TICKER: OnceLock<Ticker> = OnceLock::new();
    TICKER.get_or_init(|| {
        std::thread::Builder::new()
            .name("wdiamond-epoch".into())
            .spawn(run)
            .expect("starting the epoch thread");
        Ticker {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    })
}

fn lock(t: &Ticker) -> std::sync::MutexGuard<'_, State> {
    t.state.lock().unwrap_or_else(|p| p.into_inner())
}

fn run() {
    let t = ticker();
    loop {
        let engines: Vec<Engine> = {
            let mut s = lock(t);
            while s.in_flight == 0 {
                s.parked = true;
                s = t.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            s.parked = false;
            s.ticks += 1;
            s.engines.retain(|w| w.upgrade().is_some());
            s.engines.iter().filter_map(EngineWeak::upgrade).collect()
        };
        for e in &engines {
            e.increment_epoch();
        }
        drop(engines);
        std::thread::sleep(EPOCH_TICK);
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
        t.wake.notify_one();
    }
    Awake(())
}

impl Drop for Awake {
    fn drop(&mut self) {
        lock(ticker()).in_flight -= 1;
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

    #[test]
    fn the_ticker_runs_only_while_a_call_is_in_flight() {
        let guard = awake();
        let before = lock(ticker()).ticks;
        wait_for("ticking", |s| s.ticks >= before + 2);
        drop(guard);
        // Other tests of this binary make no plugin calls: nothing else
        // keeps it awake.
        wait_for("parked", |s| s.parked);
        let idle = lock(ticker()).ticks;
        std::thread::sleep(EPOCH_TICK * 10);
        let s = lock(ticker());
        assert!(s.parked && s.in_flight == 0);
        assert_eq!(s.ticks, idle, "it ticked with no call in flight");
    }
}
