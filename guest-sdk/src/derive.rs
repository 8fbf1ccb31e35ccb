//! Diamond's `Collector.derivative()`, reproduced value for value.
//!
//! Diamond keeps the previous sample of every counter per metric path and
//! returns `float(new - old) / interval`; the first sample returns 0, a
//! counter that went backwards is treated as a rollover at `max_value`, and a
//! negative result becomes 0 unless negatives are allowed.
//!
//! That first 0 is not a measurement: every backend shows a fake 0 % idle
//! (or 0 bytes/s) point at each start. So a first sample gives `None` —
//! the collector publishes nothing for it, as Telegraf and collectd do —
//! unless the collector's section sets the host key `publish_first_rate =
//! true` (Diamond's 0; [`Derivative::for_config`]). Counters are
//! integers in Diamond (Python ints), so samples are kept as `i128` here and
//! the subtraction is exact before the one conversion to `f64`.

use std::collections::HashMap;

/// Diamond's `MAX_COUNTER` on a 64-bit platform: `2**64 - 1`.
pub const MAX_COUNTER: i128 = u64::MAX as i128;

/// How to divide the change: Diamond's `time_delta` and `interval` arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Per {
    /// Divide by this many seconds (the configured interval, or a measured
    /// elapsed time).
    Seconds(f64),
    /// `time_delta=False`: the raw change.
    Sample,
}

/// Previous samples of every counter of one collector instance.
#[derive(Default, Debug)]
pub struct Derivative {
    last: HashMap<String, i128>,
    last_f64: HashMap<String, f64>,
    /// A first sample gives `Some(0.0)` (Diamond's), not `None`.
    publish_first: bool,
}

/// The host key that keeps Diamond's first 0.
pub const PUBLISH_FIRST_RATE: &str = "publish_first_rate";

impl Derivative {
    /// An empty set: every counter's first sample yields `None`.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set whose first samples yield `Some(0.0)`, as Diamond.
    pub fn diamond() -> Self {
        Derivative {
            publish_first: true,
            ..Self::default()
        }
    }

    /// An empty set as the collector's configuration says: Diamond's first
    /// 0 when `publish_first_rate` is true, else nothing (also when the
    /// host is older and passes no such key).
    #[cfg(any(feature = "collector", feature = "handler"))]
    pub fn for_config(config: &crate::Config) -> Self {
        match config.get(PUBLISH_FIRST_RATE) {
            Some(crate::ConfigValue::Boolean(true)) => Self::diamond(),
            _ => Self::new(),
        }
    }

    /// What a first sample yields.
    fn first(&self) -> Option<f64> {
        self.publish_first.then_some(0.0)
    }

    /// The rate of counter `key`, now at `new`; `None` for a first sample
    /// (see the module docs).
    ///
    /// `max_value` is where the counter wraps (0: no rollover handling, as
    /// Diamond's default), `per` what to divide by, `allow_negative` whether
    /// a negative change is kept.
    pub fn rate(
        &mut self,
        key: &str,
        new: i128,
        max_value: i128,
        per: Per,
        allow_negative: bool,
    ) -> Option<f64> {
        let previous = match self.last.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, new)),
            None => {
                self.last.insert(key.to_string(), new);
                None
            }
        };
        let Some(mut old) = previous else {
            return self.first();
        };
        if new < old {
            old -= max_value;
        }
        let dx = (new - old) as f64;
        let dy = match per {
            Per::Seconds(s) => s,
            Per::Sample => 1.0,
        };
        let result = dx / dy;
        Some(if result < 0.0 && !allow_negative {
            0.0
        } else {
            result
        })
    }

    /// The same for a counter Diamond holds as a float (e.g. diskusage's
    /// `float(column)`): the subtraction is a float subtraction.
    pub fn rate_f64(
        &mut self,
        key: &str,
        new: f64,
        max_value: f64,
        per: Per,
        allow_negative: bool,
    ) -> Option<f64> {
        let previous = match self.last_f64.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, new)),
            None => {
                self.last_f64.insert(key.to_string(), new);
                None
            }
        };
        let Some(mut old) = previous else {
            return self.first();
        };
        if new < old {
            old -= max_value;
        }
        let dy = match per {
            Per::Seconds(s) => s,
            Per::Sample => 1.0,
        };
        let result = (new - old) / dy;
        Some(if result < 0.0 && !allow_negative {
            0.0
        } else {
            result
        })
    }

    /// Forget every previous sample (as a restarted Diamond collector).
    pub fn clear(&mut self) {
        self.last.clear();
        self.last_f64.clear();
    }
}

/// Parses a counter field the way Python's `int()` / `long()` does for the
/// decimal text found in /proc (surrounding whitespace, optional sign).
pub fn parse_counter(text: &str) -> Option<i128> {
    text.trim().parse::<i128>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_is_none_then_rate_per_interval() {
        let mut d = Derivative::new();
        let mut rate = |v| d.rate("a", v, MAX_COUNTER, Per::Seconds(10.0), false);
        assert_eq!(rate(100), None);
        assert_eq!(rate(150), Some(5.0));
        assert_eq!(rate(150), Some(0.0));
        // Diamond's: the first sample is 0.
        let mut d = Derivative::diamond();
        assert_eq!(d.rate("a", 100, MAX_COUNTER, Per::Sample, false), Some(0.0));
        assert_eq!(d.rate_f64("b", 1.0, 0.0, Per::Sample, false), Some(0.0));
    }

    #[test]
    fn rollover_wraps_at_max_value() {
        let mut d = Derivative::new();
        d.rate("c", 10, 0, Per::Sample, false);
        // max_value 0: a counter going backwards gives a negative change -> 0
        assert_eq!(d.rate("c", 5, 0, Per::Sample, false), Some(0.0));
        assert_eq!(d.rate("c", 1, 0, Per::Sample, true), Some(-4.0));
        let mut d = Derivative::new();
        d.rate("c", 250, 256, Per::Sample, false);
        assert_eq!(d.rate("c", 4, 256, Per::Sample, false), Some(10.0));
    }

    #[test]
    fn large_counters_subtract_exactly() {
        let mut d = Derivative::new();
        let big = (1i128 << 62) + 1;
        d.rate("x", big, MAX_COUNTER, Per::Sample, false);
        assert_eq!(
            d.rate("x", big + 3, MAX_COUNTER, Per::Sample, false),
            Some(3.0)
        );
    }

    #[test]
    fn float_counters() {
        let mut d = Derivative::new();
        assert_eq!(d.rate_f64("f", 1.5, 0.0, Per::Sample, false), None);
        assert_eq!(d.rate_f64("f", 4.0, 0.0, Per::Sample, false), Some(2.5));
        assert_eq!(d.rate_f64("f", 3.0, 0.0, Per::Sample, false), Some(0.0));
    }

    #[test]
    fn parse_counter_like_python_int() {
        assert_eq!(parse_counter(" 42\n"), Some(42));
        assert_eq!(parse_counter("-3"), Some(-3));
        assert_eq!(parse_counter("x"), None);
        assert_eq!(parse_counter(""), None);
        assert_eq!(
            parse_counter("18446744073709551615"),
            Some(u64::MAX as i128)
        );
    }
}
