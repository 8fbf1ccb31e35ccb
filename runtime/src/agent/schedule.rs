//! Diamond's collection schedule: windows aligned to the interval, each
//! collector offset by a random stagger; after a clock jump or an overlong
//! run the missed windows are skipped, not replayed. Every window from the
//! start on gets a run: a start past the stagger point runs at once, and
//! the next run is the next window's, at the stagger.

use std::time::Duration;

/// The schedule of one collector, in wall-clock seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    interval: f64,
    stagger: f64,
    next_window: f64,
}

impl Schedule {
    /// `random` in [0, 1) picks the stagger in [0, interval - 1), as
    /// Diamond's `random.uniform(0, interval - 1)`.
    pub fn new(interval: f64, random: f64, now: f64) -> Self {
        Schedule {
            interval,
            stagger: random * (interval - 1.0).max(0.0),
            next_window: (now / interval).floor() * interval,
        }
    }

    /// The stagger, seconds.
    pub fn stagger(&self) -> f64 {
        self.stagger
    }

    /// Diamond's run budget: what is left of the window after the
    /// stagger, at least one second.
    pub fn default_deadline(&self) -> Duration {
        Duration::from_secs_f64((self.interval - self.stagger).max(1.0))
    }

    /// How long to wait before the next run, and how many windows were
    /// missed (then the run is now, and the schedule realigns from now).
    pub fn next(&mut self, now: f64) -> (Duration, u64) {
        let target = self.next_window + self.stagger;
        let wait = target - now;
        if wait > self.interval + self.stagger + 1.0 {
            // The clock jumped backwards: realign instead of sleeping it off.
            self.next_window = (now / self.interval).floor() * self.interval;
            return self.next(now);
        }
        if wait >= 0.0 {
            self.next_window += self.interval;
            return (Duration::from_secs_f64(wait), 0);
        }
        // Late (the first run after the stagger point, or after a long
        // run): run now, and the next run in the next window at the
        // stagger — never a whole interval after now, which would leave the
        // next window empty.
        let skipped = ((now - target) / self.interval).floor() as u64;
        self.next_window = (now / self.interval).floor() * self.interval + self.interval;
        (Duration::ZERO, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_windows_plus_stagger() {
        let mut s = Schedule::new(10.0, 0.5, 1003.0);
        assert_eq!(s.stagger(), 4.5);
        assert_eq!(s.default_deadline(), Duration::from_secs_f64(5.5));
        assert_eq!(s.next(1003.0), (Duration::from_secs_f64(1.5), 0));
        assert_eq!(s.next(1004.5), (Duration::from_secs_f64(10.0), 0));
        assert_eq!(s.next(1014.6), (Duration::from_secs_f64(9.9), 0));
    }

    #[test]
    fn missed_windows_are_skipped_not_replayed() {
        let mut s = Schedule::new(10.0, 0.0, 1000.0);
        assert_eq!(s.next(1000.0), (Duration::ZERO, 0));
        // The clock jumps an hour forward: one run now, then every 10 s.
        let (wait, skipped) = s.next(4600.0);
        assert_eq!((wait, skipped), (Duration::ZERO, 359));
        assert_eq!(s.next(4600.5).0, Duration::from_secs_f64(9.5));
    }

    #[test]
    fn a_backward_jump_does_not_sleep_it_off() {
        let mut s = Schedule::new(10.0, 0.0, 5000.0);
        s.next(5000.0);
        let (wait, _) = s.next(1000.0);
        assert!(wait <= Duration::from_secs(10), "{wait:?}");
    }

    #[test]
    fn a_late_start_leaves_no_window_empty() {
        // Interval 5 (a carbon step of 5 s), stagger 1.2, started at
        // 1004.9: the run at once is window 1000's; the next is window
        // 1005's at 1006.2. Before, it came at 1011.1 and window 1005 was
        // empty.
        let mut s = Schedule::new(5.0, 0.3, 1004.9);
        assert!((s.stagger() - 1.2).abs() < 1e-9);
        assert_eq!(s.next(1004.9), (Duration::ZERO, 0));
        let wait = s.next(1004.9).0.as_secs_f64();
        assert!((wait - 1.3).abs() < 1e-9, "{wait}");
    }

    #[test]
    fn every_window_from_the_start_gets_one_run() {
        // Any start time and stagger, runs taking no time: the run times
        // fall one in each window.
        for (i, random) in [0.0, 0.1, 0.37, 0.5, 0.83, 0.99].into_iter().enumerate() {
            for start in [1000.0, 1000.01, 1002.5, 1003.99, 1004.5, 1004.999] {
                let interval = 5.0 + i as f64 % 2.0 * 5.0;
                let mut s = Schedule::new(interval, random, start);
                let mut now = start;
                let mut windows = Vec::new();
                for _ in 0..6 {
                    let (wait, skipped) = s.next(now);
                    assert_eq!(skipped, 0);
                    now += wait.as_secs_f64();
                    windows.push((now / interval).floor() as i64);
                }
                let first = (start / interval).floor() as i64;
                let want: Vec<i64> = (first..first + 6).collect();
                assert_eq!(
                    windows, want,
                    "interval {interval} stagger {random} start {start}"
                );
            }
        }
    }

    #[test]
    fn deadline_is_at_least_one_second() {
        let s = Schedule::new(1.0, 0.9, 0.0);
        assert_eq!(s.default_deadline(), Duration::from_secs(1));
    }
}
