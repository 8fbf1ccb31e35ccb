//! Shared columns, the rule of the WIT's `metric-set` and `metric-batch`
//! that the host and the guests both apply: a column holds one entry per
//! metric, or a single entry that applies to every metric.

use alloc::vec::Vec;

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

/// Appends `v` as the entry of metric `n` (the `n` before it are already
/// in the column); see [`extend_shared`].
#[inline(always)]
pub fn push_shared<T: Copy>(col: &mut Vec<T>, n: usize, v: T, same: impl Fn(T, T) -> bool) {
    extend_shared(col, n, v, 1, same);
}

/// Appends `k` entries, all `v`, to a column that describes `n` metrics:
/// it stays one shared entry while every value equals it, and becomes one
/// entry per metric at the first that differs. `same` compares entries
/// (by bits, for floats).
#[inline(always)]
pub fn extend_shared<T: Copy>(
    col: &mut Vec<T>,
    n: usize,
    v: T,
    k: usize,
    same: impl Fn(T, T) -> bool,
) {
    // The common case, inlined: still shared and the same value.
    if col.len() == 1 && n > 0 && same(col[0], v) {
        return;
    }
    extend_slow(col, n, v, k);
}

#[inline(never)]
fn extend_slow<T: Copy>(col: &mut Vec<T>, n: usize, v: T, k: usize) {
    if k == 0 {
        return;
    }
    if n == 0 {
        // One entry, shared by the `k` new metrics.
        col.clear();
        col.push(v);
        return;
    }
    expand(col, n);
    col.extend(core::iter::repeat_n(v, k));
}

/// Turns a shared column of `n` metrics into one entry per metric.
pub fn expand<T: Copy>(col: &mut Vec<T>, n: usize) {
    if col.len() == 1 && n > 1 {
        let first = col[0];
        col.resize(n, first);
    }
}

/// Makes a column a single shared entry when all its entries are equal.
pub fn share<T>(col: &mut Vec<T>, same: impl Fn(&T, &T) -> bool) {
    if col.len() > 1 && col.iter().all(|x| same(x, &col[0])) {
        col.truncate(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn shared_until_a_value_differs() {
        let eq = |a: i32, b: i32| a == b;
        let mut c = Vec::new();
        for (n, v) in [7, 7, 7].into_iter().enumerate() {
            push_shared(&mut c, n, v, eq);
        }
        assert_eq!(c, [7]);
        push_shared(&mut c, 3, 8, eq);
        push_shared(&mut c, 4, 7, eq);
        assert_eq!(c, [7, 7, 7, 8, 7]);
        assert!(fits(&c, 5) && !fits(&c, 4));
        assert_eq!((0..5).map(|i| at(&c, i)).collect::<Vec<_>>(), c);
        let one = [3];
        assert_eq!(at(&one, 4), 3);
        assert!(fits(&one, 9) && !fits(&one, 0) && fits::<u8>(&[], 0));
        // The second metric differing from the first.
        let mut c = Vec::new();
        push_shared(&mut c, 0, 1, eq);
        push_shared(&mut c, 1, 2, eq);
        assert_eq!(c, [1, 2]);
    }

    #[test]
    fn runs_of_entries_and_sharing_back() {
        let eq = |a: u8, b: u8| a == b;
        let mut c = Vec::new();
        extend_shared(&mut c, 0, 5, 3, eq);
        extend_shared(&mut c, 3, 5, 2, eq);
        assert_eq!(c, [5], "five metrics, one shared entry");
        extend_shared(&mut c, 5, 6, 2, eq);
        assert_eq!(c, [5, 5, 5, 5, 5, 6, 6]);
        let mut d = vec![4u8; 6];
        share(&mut d, |a, b| a == b);
        assert_eq!(d, [4]);
        let mut e = vec![1u8, 2];
        share(&mut e, |a, b| a == b);
        assert_eq!(e, [1, 2]);
    }
}
