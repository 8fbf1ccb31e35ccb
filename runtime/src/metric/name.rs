//! Diamond's rules for metric names and values, checked on everything a
//! guest publishes: the characters and length of a name, finite values, the
//! precision.

/// Longest metric name accepted from a guest, bytes.
pub const MAX_NAME: usize = 255;
/// Most decimals accepted.
pub const MAX_PRECISION: u8 = 15;

/// Why a guest's metric was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Empty, too long, a bad character, or an empty path segment.
    #[error("bad name {0}")]
    Name(String),
    /// NaN or infinite.
    #[error("value of {0} is not finite")]
    Value(String),
    /// More decimals than [`MAX_PRECISION`].
    #[error("precision of {0} is over {MAX_PRECISION}")]
    Precision(String),
    /// The columns do not agree.
    #[error("malformed metric set: {0}")]
    Malformed(String),
}

/// Bytes allowed in a name: ASCII letters, digits and `_-:#@%+=()[],.`.
pub(super) const ALLOWED: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric();
        c += 1;
    }
    let extra = b"_-:#@%+=()[],.";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// A shortened, printable rendering of an untrusted name for logs.
pub(super) fn shown(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    let mut s: String = name.chars().take(80).collect();
    if name.chars().count() > 80 {
        s.push('…');
    }
    format!("{s:?}")
}

/// Checks a name (or an instance) from a guest: 1 to [`MAX_NAME`]
/// allowed bytes, no empty `.`-separated segment. One pass, no allocation.
pub fn check_name_bytes(name: &[u8]) -> Result<&str, Rejection> {
    let mut ok = !name.is_empty() && name.len() <= MAX_NAME;
    // The byte before the current one; '.' first, so a leading dot fails.
    let mut prev = b'.';
    for &b in name {
        ok &= ALLOWED[b as usize] & !(b == b'.' && prev == b'.');
        prev = b;
    }
    ok &= prev != b'.';
    match std::str::from_utf8(name) {
        Ok(s) if ok => Ok(s),
        _ => Err(Rejection::Name(shown(name))),
    }
}

/// Checks a metric's value (finite) and precision (at most
/// [`MAX_PRECISION`]); `what` names the metric in the rejection.
pub(crate) fn check_value(
    value: f64,
    precision: u8,
    what: impl Fn() -> String,
) -> Result<(), Rejection> {
    if !value.is_finite() {
        Err(Rejection::Value(what()))
    } else if precision > MAX_PRECISION {
        Err(Rejection::Precision(what()))
    } else {
        Ok(())
    }
}

/// Checks a name (or an instance) from a guest.
pub fn check_name(name: &str) -> Result<(), Rejection> {
    check_name_bytes(name.as_bytes()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("cpu0.idle").is_ok());
        assert!(check_name("IO-APIC-edge.timer.0.CPU0").is_ok());
        assert!(check_name("has space").is_err());
        assert!(check_name("new\nline").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name(&"x".repeat(10_000)).is_err());
        assert!(check_name("").is_err());
    }
}
