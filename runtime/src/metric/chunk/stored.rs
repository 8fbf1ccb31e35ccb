//! A chunk as the spool stores it: its columns, little-endian, written and
//! read back as they are (one copy each way, nothing per metric but the
//! bytes). Read back, every invariant of [`Chunk`] is checked again: a
//! record that passed its checksum but does not hold together is refused,
//! never a panic later.

use std::sync::Arc;

use wdiamond_wire::columns::fits;

use super::{Chunk, Source};
use crate::metric::name::ALLOWED;

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

/// Writes a column: its length, then its values.
fn put_col<T: Copy, const N: usize>(out: &mut Vec<u8>, col: &[T], bytes: impl Fn(T) -> [u8; N]) {
    put_u32(out, col.len() as u32);
    out.reserve(col.len() * N);
    for &v in col {
        out.extend_from_slice(&bytes(v));
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn col<T, const N: usize>(&mut self, from: impl Fn([u8; N]) -> T) -> Option<Vec<T>> {
        let n = self.u32()? as usize;
        let raw = self.take(n.checked_mul(N)?)?;
        Some(
            raw.chunks_exact(N)
                .map(|c| from(c.try_into().expect("N bytes")))
                .collect(),
        )
    }
}

impl Chunk {
    /// Appends the chunk's columns to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.len() as u32);
        put_str(out, &self.lines);
        put_col(out, &self.line_ends, u32::to_le_bytes);
        put_col(out, &self.path_lens, u16::to_le_bytes);
        put_col(out, &self.values, f64::to_le_bytes);
        put_col(out, &self.precisions, |v: u8| [v]);
        put_col(out, &self.counters, |v: u8| [v]);
        put_col(out, &self.timestamps, u64::to_le_bytes);
        put_col(out, &self.raw_values, f64::to_le_bytes);
        put_col(out, &self.source_ids, u16::to_le_bytes);
        put_u32(out, self.sources.len() as u32);
        for s in &self.sources {
            put_str(out, &s.host);
            put_str(out, &s.collector);
            match &s.tenant {
                Some(t) => {
                    out.push(1);
                    put_str(out, t);
                }
                None => out.push(0),
            }
            put_u32(out, s.ttl);
        }
    }

    /// A chunk from what [`Chunk::encode`] wrote; `None` if it does not
    /// hold together.
    pub fn decode(bytes: &[u8]) -> Option<Chunk> {
        let mut r = In(bytes);
        let n = r.u32()? as usize;
        let lines = r.str()?;
        let line_ends: Vec<u32> = r.col(u32::from_le_bytes)?;
        let path_lens: Vec<u16> = r.col(u16::from_le_bytes)?;
        let values: Vec<f64> = r.col(f64::from_le_bytes)?;
        let precisions: Vec<u8> = r.col(|[b]: [u8; 1]| b)?;
        let counters: Vec<u8> = r.col(|[b]: [u8; 1]| b)?;
        let timestamps: Vec<u64> = r.col(u64::from_le_bytes)?;
        let raw_values: Vec<f64> = r.col(f64::from_le_bytes)?;
        let source_ids: Vec<u16> = r.col(u16::from_le_bytes)?;
        let k = r.u32()? as usize;
        let mut sources = Vec::with_capacity(k.min(1 << 16));
        for _ in 0..k {
            let host = r.str()?;
            let collector = r.str()?;
            let tenant = match r.take(1)?[0] {
                0 => None,
                1 => Some(r.str()?),
                _ => return None,
            };
            let ttl = r.u32()?;
            sources.push(Arc::new(Source {
                host,
                collector,
                tenant,
                ttl,
            }));
        }
        if !r.0.is_empty() || line_ends.len() != n || path_lens.len() != n || values.len() != n {
            return None;
        }
        if n > 0
            && !(fits(&precisions, n)
                && fits(&counters, n)
                && fits(&timestamps, n)
                && fits(&raw_values, n)
                && fits(&source_ids, n))
        {
            return None;
        }
        // Lines: increasing ends, the last at the end; each starting with
        // a path of allowed bytes.
        let mut start = 0usize;
        for (i, &end) in line_ends.iter().enumerate() {
            let end = end as usize;
            let path = path_lens[i] as usize;
            if end < start || end > lines.len() || path == 0 || start + path > end {
                return None;
            }
            if !lines.as_bytes()[start..start + path]
                .iter()
                .all(|&b| ALLOWED[b as usize])
            {
                return None;
            }
            start = end;
        }
        if start != lines.len()
            || source_ids.iter().any(|&s| s as usize >= sources.len())
            || counters.iter().any(|&c| c > 1)
        {
            return None;
        }
        Some(Chunk {
            lines,
            line_ends,
            path_lens,
            values,
            precisions,
            counters,
            timestamps,
            raw_values,
            source_ids,
            sources,
            stamp: (u64::MAX, String::new()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::MetricKind;

    fn sample() -> Chunk {
        let a = Arc::new(Source {
            host: "h".into(),
            collector: "c".into(),
            tenant: Some("t".into()),
            ttl: 20,
        });
        let b = Arc::new(Source {
            host: "h".into(),
            collector: "d".into(),
            tenant: None,
            ttl: 20,
        });
        let mut c = Chunk::default();
        for i in 0..50u64 {
            c.push(
                &format!("a.b.m{i}"),
                i as f64 / 3.0,
                (i % 3) as u8,
                if i % 4 == 0 {
                    MetricKind::Counter
                } else {
                    MetricKind::Gauge
                },
                1000 + i / 10,
                (i % 5 == 0).then_some(i as f64),
                if i < 30 { &a } else { &b },
            )
            .unwrap();
        }
        c
    }

    fn rows(c: &Chunk) -> Vec<String> {
        c.iter().map(|m| format!("{m:?}")).collect()
    }

    #[test]
    fn a_chunk_comes_back_as_it_was() {
        let c = sample();
        let mut b = Vec::new();
        c.encode(&mut b);
        let d = Chunk::decode(&b).unwrap();
        assert_eq!(rows(&d), rows(&c));
        assert_eq!(d.lines(), c.lines());
        let mut e = Vec::new();
        Chunk::default().encode(&mut e);
        assert_eq!(Chunk::decode(&e).unwrap().len(), 0);
    }

    #[test]
    fn what_does_not_hold_together_is_refused_without_a_panic() {
        let c = sample();
        let mut b = Vec::new();
        c.encode(&mut b);
        // Every truncation, and every single-byte change, either decodes
        // to a chunk that holds together or is refused: never a panic.
        for cut in 0..b.len() {
            assert!(Chunk::decode(&b[..cut]).is_none(), "cut at {cut}");
        }
        for i in 0..b.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut x = b.clone();
                x[i] ^= flip;
                if let Some(d) = Chunk::decode(&x) {
                    let _ = rows(&d);
                }
            }
        }
    }
}
