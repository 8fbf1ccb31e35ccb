//! Diamond's wire format for a metric: `str(Metric)`, the graphite
//! plaintext line `"<path> %.<precision>f <timestamp>\n"`.

/// Appends the graphite plaintext line of one metric to `out`.
///
/// The value is rounded as Python's `"%.Nf"` (exact binary value, ties to
/// even; see the `wdiamond-wire` crate), so the text equals Diamond's
/// (precision 0 included, where Diamond first applies `round()`, which
/// does not change the `%.0f` text).
pub fn graphite_line(out: &mut String, path: &str, value: f64, precision: u8, timestamp: u64) {
    wdiamond_wire::graphite_line(out, path, value, precision, timestamp);
}

/// Graphite plaintext of a batch (`path value timestamp` lines): the
/// lines the host formatted, as they are.
#[cfg(feature = "handler")]
pub fn graphite_lines(batch: &crate::Batch) -> &[u8] {
    batch.lines()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python_percent_f() {
        let mut s = String::new();
        graphite_line(&mut s, "a.b", 0.115, 2, 7);
        graphite_line(&mut s, "a.c", 28.98, 0, 7);
        graphite_line(&mut s, "a.d", 2.5, 0, 7);
        graphite_line(&mut s, "a.e", 24.0, 2, 7);
        assert_eq!(s, "a.b 0.12 7\na.c 29 7\na.d 2 7\na.e 24.00 7\n");
    }
}
