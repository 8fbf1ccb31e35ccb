//! The spool's record of a chunk (`WDSPOOL2` segments): its columns,
//! little-endian, written and read back as they are (one copy each way,
//! nothing per metric but the bytes). What is read back is checked as a
//! chunk again ([`Chunk::from_columns`]).

use std::sync::Arc;

use super::bytes::{put_col, put_str, put_u32, Bytes};
use crate::metric::{Chunk, Columns, Source};

/// Appends `chunk`'s record to `out`.
pub(super) fn encode(chunk: &Chunk, out: &mut Vec<u8>) {
    let c = chunk.columns();
    put_u32(out, chunk.len() as u32);
    put_str(out, c.lines);
    put_col(out, c.line_ends, u32::to_le_bytes);
    put_col(out, c.path_lens, u16::to_le_bytes);
    put_col(out, c.values, f64::to_le_bytes);
    put_col(out, c.precisions, |v: u8| [v]);
    put_col(out, c.counters, |v: u8| [v]);
    put_col(out, c.timestamps, u64::to_le_bytes);
    put_col(out, c.raw_values, f64::to_le_bytes);
    put_col(out, c.source_ids, u16::to_le_bytes);
    put_u32(out, c.sources.len() as u32);
    for s in c.sources {
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

/// The chunk of a record [`encode`] wrote; `None` if it does not hold
/// together.
pub(super) fn decode(bytes: &[u8]) -> Option<Chunk> {
    let mut r = Bytes(bytes);
    let n = r.u32()? as usize;
    let mut c = Columns {
        lines: r.str()?,
        line_ends: r.col(u32::from_le_bytes)?,
        path_lens: r.col(u16::from_le_bytes)?,
        values: r.col(f64::from_le_bytes)?,
        precisions: r.col(|[b]: [u8; 1]| b)?,
        counters: r.col(|[b]: [u8; 1]| b)?,
        timestamps: r.col(u64::from_le_bytes)?,
        raw_values: r.col(f64::from_le_bytes)?,
        source_ids: r.col(u16::from_le_bytes)?,
        sources: Vec::new(),
    };
    let k = r.u32()? as usize;
    c.sources.reserve(k.min(1 << 16));
    for _ in 0..k {
        let host = r.str()?;
        let collector = r.str()?;
        let tenant = match r.u8()? {
            0 => None,
            1 => Some(r.str()?),
            _ => return None,
        };
        let ttl = r.u32()?;
        c.sources.push(Arc::new(Source {
            host,
            collector,
            tenant,
            ttl,
        }));
    }
    if !r.is_empty() || c.line_ends.len() != n {
        return None;
    }
    Chunk::from_columns(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::MetricKind;
    use crate::metric::Source;
    use std::sync::Arc;

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
        encode(&c, &mut b);
        let d = decode(&b).unwrap();
        assert_eq!(rows(&d), rows(&c));
        assert_eq!(d.lines(), c.lines());
        let mut e = Vec::new();
        encode(&Chunk::default(), &mut e);
        assert_eq!(decode(&e).unwrap().len(), 0);
    }

    #[test]
    fn what_does_not_hold_together_is_refused_without_a_panic() {
        let c = sample();
        let mut b = Vec::new();
        encode(&c, &mut b);
        // Every truncation, and every single-byte change, either decodes
        // to a chunk that holds together or is refused: never a panic.
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_none(), "cut at {cut}");
        }
        for i in 0..b.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut x = b.clone();
                x[i] ^= flip;
                if let Some(d) = decode(&x) {
                    let _ = rows(&d);
                }
            }
        }
    }
}
