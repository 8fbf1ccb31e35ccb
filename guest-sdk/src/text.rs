//! Python's string splitting, as Diamond's collectors use it.

/// Python's `str.split(None, maxsplit)`: split on runs of whitespace at
/// most `maxsplit` times; the last piece keeps its inner whitespace.
pub fn split_max(s: &str, maxsplit: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        if out.len() == maxsplit {
            out.push(rest.trim_end());
            break;
        }
        match rest.find(char::is_whitespace) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = rest[i..].trim_start();
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

/// Python's `str.split()` of one line into `header: value value ...`
/// tables such as /proc/net/snmp: the first line starting with `prefix`
/// and the line after it, zipped (the label column skipped).
pub fn header_table(text: &str, prefix: &str) -> Option<Vec<(String, String)>> {
    let mut lines = text.split_inclusive('\n');
    let header = lines.find(|l| l.starts_with(prefix))?;
    let data = lines.next()?;
    let h: Vec<&str> = header.split_whitespace().collect();
    let d: Vec<&str> = data.split_whitespace().collect();
    Some(
        h.iter()
            .zip(&d)
            .skip(1)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_max_like_python() {
        assert_eq!(split_max("  a  b c d ", 2), vec!["a", "b", "c d"]);
        assert_eq!(split_max("a b", 5), vec!["a", "b"]);
        assert_eq!(split_max("   ", 1), Vec::<&str>::new());
    }

    #[test]
    fn header_tables() {
        let t = "Ip: a b\nIp: 1 2\nTcp: X Y\nTcp: 5 6\n";
        assert_eq!(
            header_table(t, "Tcp"),
            Some(vec![("X".into(), "5".into()), ("Y".into(), "6".into())])
        );
        assert_eq!(header_table("Tcp: X", "Tcp"), None);
    }
}
