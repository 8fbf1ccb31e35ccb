//! The protobuf wire format, the little of it metric protocols need
//! (Prometheus remote-write, OTLP): varints, field keys, length-delimited
//! and fixed 64-bit fields. Messages are built inside out: encode a
//! message's fields into a buffer, then append it to its parent with
//! [`bytes`].

/// Appends `v` as a base-128 varint (an `int64` is its two's complement:
/// `v as u64`).
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends the key of field `field` with wire type `wire` (0 varint, 1
/// fixed64, 2 length-delimited, 5 fixed32).
pub fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire)));
}

/// Appends a length-delimited field (a string, bytes, or a message).
pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a fixed 64-bit field (`fixed64`, `double` as its bits).
pub fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a varint field (`uint64`, `int64`, `bool`, an enum).
pub fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        let mut v = Vec::new();
        varint(&mut v, -1i64 as u64);
        assert_eq!(v.len(), 10);
        let mut v = Vec::new();
        bytes(&mut v, 1, b"up");
        fixed64(&mut v, 2, 1.0f64.to_bits());
        varint_field(&mut v, 3, 1);
        assert_eq!(
            v,
            [
                &[0x0a, 2][..],
                b"up",
                &[0x11],
                &1.0f64.to_le_bytes(),
                &[0x18, 1]
            ]
            .concat()
        );
    }
}
