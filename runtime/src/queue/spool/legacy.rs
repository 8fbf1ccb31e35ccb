//! The spool's earlier record format (`WDSPOOL1` segments: one metric
//! per record), still read so that a spool written by an earlier version is
//! delivered after an upgrade; never written but by tests.

use std::sync::Arc;

#[cfg(test)]
use super::bytes::put_str;
use super::bytes::Bytes;
use crate::bindings::types::MetricKind;
#[cfg(test)]
use crate::metric::Published;
use crate::metric::{Chunk, Source};

/// One metric as a `WDSPOOL1` record.
#[cfg(test)]
pub(crate) fn encode(m: &Published<'_>, out: &mut Vec<u8>) {
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

/// Appends the metric of one record to `out`; `None` if it does not parse
/// (or holds what the host would never have queued).
pub(super) fn decode(rec: &[u8], last: &mut Option<Arc<Source>>, out: &mut Chunk) -> Option<()> {
    let mut r = Bytes(rec);
    let path = r.str()?;
    let value = f64::from_bits(r.u64()?);
    let precision = r.u8()?;
    let kind = if r.u8()? == 1 {
        MetricKind::Counter
    } else {
        MetricKind::Gauge
    };
    let timestamp = r.u64()?;
    let host = r.str()?;
    let ttl = r.u32()?;
    let collector = r.str()?;
    let tenant = match r.u8()? {
        1 => Some(r.str()?),
        _ => None,
    };
    let raw_value = match r.u8()? {
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
