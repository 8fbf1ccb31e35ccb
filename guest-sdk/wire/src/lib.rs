//! Diamond's wire format for a metric: `str(Metric)`, the graphite
//! plaintext line `"<path> %.<precision>f <timestamp>\n"`, without a heap
//! allocation per line.
//!
//! [`push_fixed`] prints a float with `precision` decimals rounded exactly
//! as Python's `"%.Nf"` (and Rust's `{:.N}`): to the nearest decimal of the
//! exact binary value, ties to even. It does so with integer arithmetic
//! (the value's 53-bit significand times 10^N, shifted by its exponent)
//! instead of the general float formatter, which is several times slower;
//! values outside its range fall back to the standard formatter.
//!
//! [`columns`] is the shared-column rule of the WIT's metric columns.
#![deny(missing_docs)]
#![no_std]

extern crate alloc;

pub mod columns;

/// The `metric-set.series` entry of a metric named in `names` (not a
/// declared series): part of the contract both sides read.
pub const NAMED: u32 = u32::MAX;

use alloc::string::String;
use core::fmt::Write;

const POW10: [u128; 20] = {
    let mut t = [1u128; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

const DIGITS2: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal, left-padded with zeros to `min_digits`; two
/// digits per division.
fn push_u64(out: &mut String, mut v: u64, min_digits: usize) {
    let mut buf = [b'0'; 24];
    let mut i = buf.len();
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS2[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS2[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    let start = i.min(buf.len().saturating_sub(min_digits.min(buf.len())));
    push_ascii(out, &buf[start..]);
}

/// Appends bytes known to be ASCII digits without re-validating them as
/// UTF-8 (that check cost as much as the formatting).
fn push_ascii(out: &mut String, digits: &[u8]) {
    debug_assert!(digits.is_ascii());
    if digits.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8 on their own, so the String
        // stays valid UTF-8.
        unsafe { out.as_mut_vec().extend_from_slice(digits) }
    }
}

/// Like `push_u64`; 128-bit division is a slow library call on wasm, so it
/// is only used for values past `u64::MAX`.
fn push_u128(out: &mut String, v: u128, min_digits: usize) {
    if let Ok(v) = u64::try_from(v) {
        return push_u64(out, v, min_digits);
    }
    let mut v = v;
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    while v > 0 || buf.len() - i < min_digits {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    // Digits are ASCII.
    out.push_str(core::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// `round_half_even(m * 10^p * 2^e)` when every step fits in a `u64`.
fn scaled_u64(m: u64, e: i32, p: usize) -> Option<u64> {
    let n = m.checked_mul(POW10[p] as u64)?;
    if e >= 0 {
        let e = e as u32;
        return (e < 64 && n.leading_zeros() > e).then(|| n << e);
    }
    let s = (-e) as u32;
    if s >= 64 {
        return None;
    }
    let q = n >> s;
    let r = n & ((1u64 << s) - 1);
    let half = 1u64 << (s - 1);
    Some(if r > half || (r == half && q & 1 == 1) {
        q + 1
    } else {
        q
    })
}

/// Appends `value` with `precision` decimals, as Python's `"%.Nf"`.
pub fn push_fixed(out: &mut String, value: f64, precision: u8) {
    let p = precision as usize;
    if !value.is_finite() || p > 19 {
        let _ = write!(out, "{value:.p$}");
        return;
    }
    let bits = value.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    // value = m * 2^e; we want round(m * 10^p * 2^e). Most values fit
    // 64-bit arithmetic, which wasm has natively (128-bit multiplication
    // is a library call there).
    if let Some(q) = scaled_u64(m, e, p) {
        if value.is_sign_negative() {
            out.push('-');
        }
        if p == 0 {
            push_u64(out, q, 1);
        } else {
            let scale = POW10[p] as u64;
            push_u64(out, q / scale, 1);
            out.push('.');
            push_u64(out, q % scale, p);
        }
        return;
    }
    let n = m as u128 * POW10[p];
    let q = if e >= 0 {
        if e > 10 || n.leading_zeros() < e as u32 + 1 {
            let _ = write!(out, "{value:.p$}");
            return;
        }
        n << e
    } else {
        let s = (-e) as u32;
        if s >= 128 {
            0 // below half a unit of the last place: rounds to zero
        } else {
            let q = n >> s;
            let r = n & ((1u128 << s) - 1);
            let half = 1u128 << (s - 1);
            if r > half || (r == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        }
    };
    if value.is_sign_negative() {
        out.push('-');
    }
    if p == 0 {
        push_u128(out, q, 1);
    } else if let Ok(q) = u64::try_from(q) {
        let scale = POW10[p] as u64;
        push_u64(out, q / scale, 1);
        out.push('.');
        push_u64(out, q % scale, p);
    } else {
        let int = q / POW10[p];
        let dec = q % POW10[p];
        push_u128(out, int, 1);
        out.push('.');
        push_u128(out, dec, p);
    }
}

/// Appends `v` in decimal.
pub fn push_uint(out: &mut String, v: u64) {
    push_u64(out, v, 1);
}

/// Appends one graphite plaintext line.
pub fn graphite_line(out: &mut String, path: &str, value: f64, precision: u8, timestamp: u64) {
    out.push_str(path);
    out.push(' ');
    push_fixed(out, value, precision);
    out.push(' ');
    push_u64(out, timestamp, 1);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::format;

    fn fixed(v: f64, p: u8) -> String {
        let mut s = String::new();
        push_fixed(&mut s, v, p);
        s
    }

    #[test]
    fn equals_the_standard_formatter() {
        // Ties, near-ties, large, small, negative, subnormal values.
        let mut values = std::vec![
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            0.115,
            0.125,
            0.375,
            28.98,
            1e-300,
            5e-324,
            -2.675,
            1e15,
            9007199254740993.0,
            123456789.987654321,
            1e20,
            2f64.powi(60)
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_finite() {
                values.push(v);
            }
            values.push((x % 100_000_000) as f64 / 1000.0);
            values.push((x % 1000) as f64 / 8.0 - 50.0);
        }
        for v in values {
            for p in [0u8, 1, 2, 3, 6, 15] {
                assert_eq!(fixed(v, p), format!("{v:.*}", p as usize), "{v:e} at {p}");
            }
        }
    }

    #[test]
    fn lines() {
        let mut s = String::new();
        graphite_line(&mut s, "a.b", 0.115, 2, 1_700_000_000);
        assert_eq!(s, "a.b 0.12 1700000000\n");
    }
}
