//! Prometheus remote-write 1.0's `WriteRequest`, encoded by hand (four
//! messages; no generated code): `WriteRequest { repeated TimeSeries
//! timeseries = 1; }`, `TimeSeries { repeated Label labels = 1; repeated
//! Sample samples = 2; }`, `Label { string name = 1; string value = 2; }`,
//! `Sample { double value = 1; int64 timestamp = 2; }` (milliseconds).

use wdiamond_sdk::protobuf::{bytes, fixed64, varint_field};

/// One series: its labels (with `__name__`, sorted by name) and samples
/// (sorted by time).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Label pairs, sorted by name.
    pub labels: Vec<(String, String)>,
    /// `(value, timestamp in ms)`, sorted by timestamp.
    pub samples: Vec<(f64, i64)>,
}

/// The `labels` fields of a `TimeSeries` (encoded once per series and
/// kept: a series' labels do not change between batches).
pub fn labels(labels: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut item = Vec::new();
    for (name, value) in labels {
        item.clear();
        bytes(&mut item, 1, name.as_bytes());
        bytes(&mut item, 2, value.as_bytes());
        bytes(&mut out, 1, &item);
    }
    out
}

/// Appends one `timeseries` field: its encoded `labels` and `samples`.
pub fn timeseries(out: &mut Vec<u8>, labels: &[u8], samples: &[(f64, i64)]) {
    let mut ts = Vec::with_capacity(labels.len() + samples.len() * 22);
    ts.extend_from_slice(labels);
    let mut item = Vec::with_capacity(20);
    for (value, t) in samples {
        item.clear();
        fixed64(&mut item, 1, value.to_bits());
        varint_field(&mut item, 2, *t as u64);
        bytes(&mut ts, 2, &item);
    }
    bytes(out, 1, &ts);
}

/// The encoded `WriteRequest` of `series`.
pub fn write_request(series: &[Series]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in series {
        timeseries(&mut out, &labels(&s.labels), &s.samples);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_wire_format() {
        let s = Series {
            labels: vec![("__name__".into(), "up".into())],
            samples: vec![(1.0, 1000)],
        };
        let b = write_request(&[s]);
        // timeseries(1): len, label(1): len, name(1) "__name__", value(2) "up",
        // sample(2): len, value(1) 1.0 as fixed64, timestamp(2) varint 1000.
        let label = [&[0x0a, 8][..], b"__name__", &[0x12, 2], b"up"].concat();
        let sample = [&[0x09][..], &1.0f64.to_le_bytes(), &[0x10, 0xe8, 0x07]].concat();
        let ts = [
            &[0x0a, label.len() as u8][..],
            &label,
            &[0x12, sample.len() as u8],
            &sample,
        ]
        .concat();
        assert_eq!(b, [&[0x0a, ts.len() as u8][..], &ts].concat());
    }
}
