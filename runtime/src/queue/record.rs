//! The spool's record format: one metric per record (path, value,
//! precision, kind, timestamp, instance, source), and its reader.

use std::sync::Arc;

use crate::bindings::types::MetricKind;
#[cfg(test)]
use crate::metric::Published;
use crate::metric::{Chunk, Source};

#[cfg(test)]
pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// One metric as a record of the earlier per-metric segments (`WDSPOOL1`,
/// still read; written by tests only).
#[cfg(test)]
pub(super) fn encode(m: &Published<'_>, out: &mut Vec<u8>) {
    put_str(out, m.path);
    out.extend_from_slice(&m.value.to_le_bytes());
    out.push(m.precision);
    out.push(matches!(m.kind, MetricKind::Counter) as u8);
    out.extend_from_slice(&m.timestamp.to_le_bytes());
    put_str(out, &m.source.host);
    out.extend_from_slice(&m.source.ttl.to_le_bytes());
    put_str(out, &m.source.collector);
    match &m.source.tenant {
        Some(t) => {
            out.push(1);
            put_str(out, t);
        }
        None => out.push(0),
    }
    match m.raw_value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
}

pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl Reader<'_> {
    pub(super) fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Appends the metric of one record to `out`; `None` if it does not parse
/// (or holds what the host would never have queued).
pub(super) fn decode(rec: &[u8], last: &mut Option<Arc<Source>>, out: &mut Chunk) -> Option<()> {
    let mut r = Reader(rec);
    let path = r.str()?;
    let value = f64::from_bits(r.u64()?);
    let precision = r.take(1)?[0];
    let kind = if r.take(1)?[0] == 1 {
        MetricKind::Counter
    } else {
        MetricKind::Gauge
    };
    let timestamp = r.u64()?;
    let host = r.str()?;
    let ttl = r.u32()?;
    let collector = r.str()?;
    let tenant = match r.take(1)?[0] {
        1 => Some(r.str()?),
        _ => None,
    };
    let raw_value = match r.take(1)?[0] {
        1 => Some(f64::from_bits(r.u64()?)),
        _ => None,
    };
    let source = Source {
        host,
        collector,
        tenant,
        ttl,
    };
    let source = match last {
        Some(s) if **s == source => s.clone(),
        _ => {
            let s = Arc::new(source);
            *last = Some(s.clone());
            s
        }
    };
    out.push(&path, value, precision, kind, timestamp, raw_value, &source)
        .ok()
}
