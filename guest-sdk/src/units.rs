//! Diamond's binary unit convertor (`diamond.convertor.binary`), used for
//! the `byte_unit` option: values are held in bits as a float, then read out
//! in the wanted unit, with Diamond's order of float operations.

/// A unit Diamond's convertor understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Bytes (`true`) or bits.
    bytes: bool,
    /// Power of 1024 (0 for bit/byte, 1 for kilo, ...).
    power: i32,
}

const PREFIXES: [(&str, &str); 9] = [
    ("", ""),
    ("kilo", "K"),
    ("mega", "M"),
    ("giga", "G"),
    ("tera", "T"),
    ("peta", "P"),
    ("exa", "E"),
    ("zetta", "Z"),
    ("yotta", "Y"),
];

impl Unit {
    /// Parses a unit name as Diamond does: `byte`, `kilobyte`, `kB`, `KiB`,
    /// `MB`, `MiB`, `Mbyte`, `bit`, `b`, `megabit`, `Mbit`, `Mibit`, ...
    pub fn parse(name: &str) -> Option<Unit> {
        match name {
            "bit" | "b" => {
                return Some(Unit {
                    bytes: false,
                    power: 0,
                })
            }
            "byte" | "B" => {
                return Some(Unit {
                    bytes: true,
                    power: 0,
                })
            }
            "kB" => {
                return Some(Unit {
                    bytes: true,
                    power: 1,
                })
            }
            "kbit" => {
                return Some(Unit {
                    bytes: false,
                    power: 1,
                })
            }
            _ => {}
        }
        for (power, (long, short)) in PREFIXES.iter().enumerate().skip(1) {
            let power = power as i32;
            if name == format!("{long}bit")
                || name == format!("{short}bit")
                || name == format!("{short}ibit")
            {
                return Some(Unit {
                    bytes: false,
                    power,
                });
            }
            if name == format!("{long}byte")
                || name == format!("{short}B")
                || name == format!("{short}iB")
                || name == format!("{short}byte")
            {
                return Some(Unit { bytes: true, power });
            }
        }
        None
    }

    fn scale(self) -> f64 {
        1024f64.powi(self.power)
    }

    /// `value` in this unit, as bits.
    pub fn to_bits(self, value: f64) -> f64 {
        let v = value * self.scale();
        if self.bytes {
            v * 8.0
        } else {
            v
        }
    }

    /// `bits`, in this unit.
    pub fn from_bits(self, bits: f64) -> f64 {
        let v = if self.bytes { bits / 8.0 } else { bits };
        v / self.scale()
    }
}

/// Converts `value` from unit `from` to unit `to` (Diamond's
/// `binary.convert(value, oldUnit, newUnit)`).
pub fn convert(value: f64, from: Unit, to: Unit) -> f64 {
    to.from_bits(from.to_bits(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_diamond_unit_names() {
        let kb = Unit::parse("kB").unwrap();
        assert_eq!(Unit::parse("kilobyte"), Some(kb));
        assert_eq!(Unit::parse("KiB"), Some(kb));
        assert_eq!(Unit::parse("MB"), Unit::parse("megabyte"));
        assert_eq!(Unit::parse("Mbit"), Unit::parse("megabit"));
        assert_eq!(Unit::parse("furlong"), None);
    }

    #[test]
    fn converts_like_diamond() {
        let u = |s| Unit::parse(s).unwrap();
        assert_eq!(convert(49554212.0, u("kB"), u("kilobyte")), 49554212.0);
        assert_eq!(convert(1.0, u("kB"), u("byte")), 1024.0);
        assert_eq!(convert(1.0, u("byte"), u("bit")), 8.0);
        assert_eq!(convert(1048576.0, u("byte"), u("megabyte")), 1.0);
        assert_eq!(convert(2.0, u("gigabyte"), u("megabit")), 16384.0);
    }
}
