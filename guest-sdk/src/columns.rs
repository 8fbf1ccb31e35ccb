//! Shared columns (see `metric-set` in the WIT): a column holds one entry
//! per metric, or a single entry that applies to every metric.

/// Appends `v` as the entry of metric `n` (the `n` before it are already
/// in the column): the column stays a single shared entry while every
/// value equals it, and becomes one entry per metric at the first that
/// differs. `same` compares entries (by bits, for floats).
pub fn push_shared<T: Copy>(col: &mut Vec<T>, n: usize, v: T, same: impl Fn(T, T) -> bool) {
    if col.len() == 1 && n >= 1 {
        if same(col[0], v) {
            return;
        }
        let first = col[0];
        col.resize(n, first);
    }
    col.push(v);
}

/// Entry `i` of a column that may be shared.
#[inline]
pub fn at<T: Copy>(col: &[T], i: usize) -> T {
    col[if col.len() == 1 { 0 } else { i }]
}

/// Whether a column fits `n` metrics: one entry each, or one shared (none
/// when there are no metrics).
pub fn fits<T>(col: &[T], n: usize) -> bool {
    col.len() == n || (col.len() == 1 && n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_until_a_value_differs() {
        let mut c = Vec::new();
        for (n, v) in [7, 7, 7].into_iter().enumerate() {
            push_shared(&mut c, n, v, |a, b| a == b);
        }
        assert_eq!(c, [7]);
        push_shared(&mut c, 3, 8, |a, b| a == b);
        push_shared(&mut c, 4, 7, |a, b| a == b);
        assert_eq!(c, [7, 7, 7, 8, 7]);
        assert!(fits(&c, 5) && !fits(&c, 4));
        assert_eq!((0..5).map(|i| at(&c, i)).collect::<Vec<_>>(), c);
        let one = [3];
        assert_eq!(at(&one, 4), 3);
        assert!(fits(&one, 9) && !fits(&one, 0) && fits::<u8>(&[], 0));
        // The second metric differing from the first.
        let mut c = Vec::new();
        push_shared(&mut c, 0, 1, |a, b| a == b);
        push_shared(&mut c, 1, 2, |a, b| a == b);
        assert_eq!(c, [1, 2]);
    }
}
