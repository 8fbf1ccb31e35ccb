//! What of a plugin reaches the agent's log: guest-supplied text is cut and
//! made one line, and a plugin's repeated warnings are rate-limited.
//!
//! A hostile plugin controls many strings the host logs: its error results,
//! trap messages, the paths it asks for (shown in denials), its stdout. Each
//! goes through [`guest_text`] (at most [`MAX_GUEST_TEXT`] bytes, control
//! characters escaped, so it can neither flood the log nor forge a line),
//! and each repeated kind of warning through [`LogLimit::admit`] (at most
//! [`BURST`] lines per [`WINDOW`] per plugin and kind, [`LOG_BURST`] for the
//! `log` import; the next line admitted
//! says how many were suppressed).

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most bytes of one guest-supplied string written to the log.
pub const MAX_GUEST_TEXT: usize = 1024;
/// Lines of one kind a plugin may log per [`WINDOW`].
pub const BURST: u32 = 10;
/// Lines a plugin may write through the `log` import per [`WINDOW`].
pub const LOG_BURST: u32 = 120;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// `s` cut to at most `max` bytes (on a character boundary), marked with
/// how much was cut.
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes cut)", &s[..end], s.len() - end))
}

/// A guest-supplied string as it may appear in the log: cut to
/// [`MAX_GUEST_TEXT`] bytes and on one line (control characters escaped).
pub fn guest_text(s: &str) -> Cow<'_, str> {
    let s = cut(s, MAX_GUEST_TEXT);
    if !s.chars().any(char::is_control) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The kinds of repeated warnings limited separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A host call refused for lack of a grant.
    Denial,
    /// A guest's error result (collect, process, flush).
    GuestError,
    /// A trap, an overrun, exhausted fuel or memory.
    Failure,
    /// Lines the guest wrote to stdout or stderr.
    Output,
    /// Lines of the `log` import.
    Log,
    /// Metrics a handler's queue dropped (full, or past its spool quota).
    Drop,
}

const KINDS: usize = 6;

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// One plugin's rate limits, one window per [`Kind`].
#[derive(Debug, Default)]
pub struct LogLimit {
    windows: Mutex<[Window; KINDS]>,
}

impl AsRef<LogLimit> for LogLimit {
    fn as_ref(&self) -> &LogLimit {
        self
    }
}

impl LogLimit {
    /// Whether a line of `kind` may be logged now: `Some(n)` with the number
    /// of lines of that kind suppressed since the last one admitted, `None`
    /// when this one is suppressed (and counted).
    pub fn admit(&self, kind: Kind) -> Option<u64> {
        self.admit_at(kind, Instant::now())
    }

    fn admit_at(&self, kind: Kind, now: Instant) -> Option<u64> {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = &mut w[kind as usize];
        if w.start.is_none_or(|s| now.duration_since(s) >= WINDOW) {
            w.start = Some(now);
            w.used = 0;
        }
        let burst = if kind == Kind::Log { LOG_BURST } else { BURST };
        if w.used >= burst {
            w.suppressed += 1;
            return None;
        }
        w.used += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_text_is_cut_and_on_one_line() {
        let long = "x".repeat(32 << 20);
        let t = guest_text(&long);
        assert!(t.len() < MAX_GUEST_TEXT + 40, "{}", t.len());
        assert!(t.ends_with(&format!("({} bytes cut)", (32 << 20) - MAX_GUEST_TEXT)));
        assert_eq!(guest_text("a\nINFO forged"), "a\\nINFO forged");
        assert_eq!(guest_text("plain"), "plain");
        // A cut never splits a character.
        let e = "é".repeat(1000);
        assert!(guest_text(&e).starts_with(&"é".repeat(512)));
    }

    #[test]
    fn repeated_lines_are_limited_and_the_suppressed_counted() {
        let l = LogLimit::default();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(l.admit_at(Kind::Denial, t0), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(l.admit_at(Kind::Denial, t0), None);
        }
        // Another kind has its own window.
        assert_eq!(l.admit_at(Kind::GuestError, t0), Some(0));
        // The next window says how many were suppressed.
        assert_eq!(l.admit_at(Kind::Denial, t0 + WINDOW), Some(5));
        assert_eq!(l.admit_at(Kind::Denial, t0 + WINDOW), Some(0));
    }
}
