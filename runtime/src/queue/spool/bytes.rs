//! The spool's bytes: little-endian integers, length-prefixed strings and
//! columns, written and read back by both record formats.

/// Appends `v`.
pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends `s`: its length, then its bytes.
pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

/// Appends a column: its length, then its values.
pub(super) fn put_col<T: Copy, const N: usize>(
    out: &mut Vec<u8>,
    col: &[T],
    bytes: impl Fn(T) -> [u8; N],
) {
    put_u32(out, col.len() as u32);
    out.reserve(col.len() * N);
    for &v in col {
        out.extend_from_slice(&bytes(v));
    }
}

/// Reads what the `put_*` functions wrote; every read is `None` past the
/// end (never a panic).
pub(super) struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    /// A `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    /// A `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A string ([`put_str`]); `None` if it is not UTF-8.
    pub fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    /// A column ([`put_col`]).
    pub fn col<T, const N: usize>(&mut self, from: impl Fn([u8; N]) -> T) -> Option<Vec<T>> {
        let n = self.u32()? as usize;
        let raw = self.take(n.checked_mul(N)?)?;
        Some(
            raw.chunks_exact(N)
                .map(|c| from(c.try_into().expect("N bytes")))
                .collect(),
        )
    }
}
