//! Diamond's `hosts` entries, as its memcached and zookeeper collectors
//! read them: `[alias@]host[:port]`, where an entry without a port is a
//! Unix socket path.

/// One parsed `hosts` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    /// The `alias@` part, if given.
    pub alias: Option<String>,
    /// The host without its port (or the socket path).
    pub host: String,
    /// What to connect to: `host:port`, or the socket path.
    pub address: String,
    /// A Unix socket (no port given)?
    pub unix: bool,
}

/// Parses `[alias@]host[:port]`; no (numeric) port means a Unix socket path.
pub fn parse_host_spec(spec: &str) -> HostSpec {
    let (alias, rest) = match spec.split_once('@') {
        Some((a, r)) => (Some(a.to_string()), r),
        None => (None, spec),
    };
    match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => HostSpec {
            alias,
            host: h.to_string(),
            address: format!("{h}:{p}"),
            unix: false,
        },
        _ => HostSpec {
            alias,
            host: rest.to_string(),
            address: rest.to_string(),
            unix: true,
        },
    }
}

impl HostSpec {
    /// The metric prefix Diamond's memcached collector gives the entry: its
    /// alias, else its host.
    pub fn alias_or_host(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.host)
    }
}

/// The stats to publish: those `publish` lists (in its order), or every
/// one `available` when it lists none.
pub fn wanted<'a>(publish: &[String], available: impl Iterator<Item = &'a String>) -> Vec<String> {
    if publish.is_empty() {
        available.cloned().collect()
    } else {
        publish.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_unix_and_aliases() {
        let h = parse_host_spec("localhost:11211");
        assert_eq!(h.alias, None);
        assert_eq!(
            (h.host.as_str(), h.address.as_str(), h.unix),
            ("localhost", "localhost:11211", false)
        );
        let h = parse_host_spec("c1@10.0.0.1:2181");
        assert_eq!(h.alias.as_deref(), Some("c1"));
        assert_eq!(h.address, "10.0.0.1:2181");
        let h = parse_host_spec("app@/run/zk.sock");
        assert!(h.unix);
        assert_eq!(h.address, "/run/zk.sock");
        assert!(parse_host_spec("host:port").unix);
        assert_eq!(parse_host_spec("db:11211").alias_or_host(), "db");
        let all = ["a".to_string(), "b".to_string()];
        assert_eq!(wanted(&[], all.iter()), all);
        assert_eq!(wanted(&["b".into()], all.iter()), ["b"]);
    }
}
