//! Diamond's RedisCollector: `INFO` (and `CONFIG GET maxmemory`) of one or
//! more Redis servers over a granted socket, with Diamond's metric names
//! (`<nick>.clients.connected`, `<nick>.memory.internal_view`, `<nick>.db0.keys`, ...).

use std::collections::BTreeMap;

use wdiamond_sdk::bindings::wdiamond::plugin::host_info;
use wdiamond_sdk::bindings::wdiamond::plugin::sockets::Protocol;
use wdiamond_sdk::net::exchange;
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

/// Diamond's `_KEYS`: metric name -> INFO field.
pub const KEYS: [(&str, &str); 26] = [
    ("clients.blocked", "blocked_clients"),
    ("clients.connected", "connected_clients"),
    ("clients.longest_output_list", "client_longest_output_list"),
    ("cpu.parent.sys", "used_cpu_sys"),
    ("cpu.children.sys", "used_cpu_sys_children"),
    ("cpu.parent.user", "used_cpu_user"),
    ("cpu.children.user", "used_cpu_user_children"),
    ("hash_max_zipmap.entries", "hash_max_zipmap_entries"),
    ("hash_max_zipmap.value", "hash_max_zipmap_value"),
    ("keys.evicted", "evicted_keys"),
    ("keys.expired", "expired_keys"),
    ("keyspace.hits", "keyspace_hits"),
    ("keyspace.misses", "keyspace_misses"),
    ("last_save.changes_since", "changes_since_last_save"),
    ("last_save.time", "last_save_time"),
    ("memory.internal_view", "used_memory"),
    ("memory.external_view", "used_memory_rss"),
    ("memory.fragmentation_ratio", "mem_fragmentation_ratio"),
    ("process.commands_processed", "total_commands_processed"),
    ("process.connections_received", "total_connections_received"),
    ("process.uptime", "uptime_in_seconds"),
    ("pubsub.channels", "pubsub_channels"),
    ("pubsub.patterns", "pubsub_patterns"),
    (
        "replication.master_sync_in_progress",
        "master_sync_in_progress",
    ),
    ("slaves.connected", "connected_slaves"),
    ("slaves.last_io", "master_last_io_seconds_ago"),
];
/// Diamond's `_RENAMED_KEYS` (Redis 2.6+ names).
pub const RENAMED: [(&str, &str); 2] = [
    ("last_save.changes_since", "rdb_changes_since_last_save"),
    ("last_save.time", "rdb_last_save_time"),
];

/// An INFO value as redis-py parses it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number, with the decimals Diamond would print (`_precision`).
    Number(f64, u8),
    /// `k=v,k=v` (e.g. `db0`).
    Dict(Vec<(String, Value)>),
    /// Anything else.
    Text(String),
}

fn value(text: &str) -> Value {
    if text.contains(',') && text.contains('=') {
        return Value::Dict(
            text.split(',')
                .filter_map(|item| {
                    item.rsplit_once('=')
                        .map(|(k, v)| (k.to_string(), value(v)))
                })
                .collect(),
        );
    }
    if text.contains('.') {
        if let Ok(f) = text.parse::<f64>() {
            // Python's str(float) decides the precision.
            let shown = format!("{f:?}");
            let p = shown.rfind('.').map(|i| shown.len() - i - 1).unwrap_or(0);
            return Value::Number(f, p.min(15) as u8);
        }
    } else if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i as f64, 0);
    }
    Value::Text(text.to_string())
}

/// Parses the INFO text (redis-py's `parse_info`).
pub fn parse_info(text: &str) -> BTreeMap<String, Value> {
    let mut info = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            info.insert(k.to_string(), value(v.trim_end()));
        }
    }
    info
}

/// Diamond's metrics of one instance: `(name, value, precision)`.
pub fn compute(
    nick: &str,
    info: &BTreeMap<String, Value>,
    maxmemory: Option<f64>,
    now: f64,
    databases: u32,
) -> Vec<(String, f64, u8)> {
    let mut data: BTreeMap<String, (f64, u8)> = BTreeMap::new();
    if let Some(Value::Text(role)) = info.get("role") {
        if role == "master" {
            data.insert("replication.master".into(), (1.0, 0));
            data.insert("replication.master_sync_in_progress".into(), (0.0, 0));
        } else {
            data.insert("replication.master".into(), (0.0, 0));
        }
    }
    if let (Some(max), Some(Value::Number(used, _))) = (maxmemory, info.get("used_memory")) {
        let pct = if max == 0.0 {
            0.0
        } else {
            (used / max * 100.0 * 100.0).round() / 100.0
        };
        data.insert("memory.used_percent".into(), (pct, 2));
    }
    for (key, field) in KEYS.iter().chain(RENAMED.iter()) {
        if let Some(Value::Number(v, p)) = info.get(*field) {
            data.insert(key.to_string(), (*v, *p));
        }
    }
    for n in 0..databases {
        let db = format!("db{n}");
        if let Some(Value::Dict(fields)) = info.get(&db) {
            for (k, v) in fields {
                if let Value::Number(v, p) = v {
                    data.insert(format!("{db}.{k}"), (*v, *p));
                }
            }
        }
    }
    for key in ["last_save_time", "rdb_last_save_time"] {
        if let Some(Value::Number(t, _)) = info.get(key) {
            data.insert("last_save.time_since".into(), (now.trunc() - t, 0));
        }
    }
    data.into_iter()
        .map(|(k, (v, p))| (format!("{nick}.{k}"), v, p))
        .collect()
}

/// One configured server.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Metric name prefix (Diamond: the port unless `nick@` is given).
    pub nick: String,
    /// `host:port`, or a socket path.
    pub address: String,
    /// Unix socket?
    pub unix: bool,
    /// AUTH password.
    pub auth: Option<String>,
}

/// Diamond's `instances` syntax: `[nick@]host:port[/auth]` or
/// `[nick@]unix:/path` (a socket's password comes from `auth`).
pub fn parse_instance(spec: &str) -> Result<Instance, String> {
    let (nick, rest) = match spec.split_once('@') {
        Some((n, r)) => (Some(n.to_string()), r),
        None => (None, spec),
    };
    if let Some(path) = rest.strip_prefix("unix:") {
        let nick =
            nick.unwrap_or_else(|| path.rsplit('/').next().unwrap_or("redis").replace('.', "_"));
        return Ok(Instance {
            nick,
            address: path.to_string(),
            unix: true,
            auth: None,
        });
    }
    let (hostport, auth) = match rest.split_once('/') {
        Some((h, a)) => (h, Some(a.to_string())),
        None => (rest, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some(("", p)) => ("localhost", p),
        Some((h, p)) => (h, p),
        None => (hostport, "6379"),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("bad port in redis instance {spec:?}"))?;
    Ok(Instance {
        nick: nick.unwrap_or_else(|| port.to_string()),
        address: format!("{host}:{port}"),
        unix: false,
        auth,
    })
}

fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Whether `buf` holds one complete RESP reply.
pub fn resp_complete(buf: &[u8]) -> bool {
    resp_end(buf, 0).is_some()
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn resp_end(buf: &[u8], at: usize) -> Option<usize> {
    let kind = *buf.get(at)?;
    let eol = line_end(buf, at)?;
    let head = std::str::from_utf8(&buf[at + 1..eol]).ok()?;
    match kind {
        b'+' | b'-' | b':' => Some(eol + 2),
        b'$' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(eol + 2);
            }
            let end = eol + 2 + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = head.parse().ok()?;
            let mut pos = eol + 2;
            for _ in 0..n.max(0) {
                pos = resp_end(buf, pos)?;
            }
            Some(pos)
        }
        _ => None,
    }
}

/// The strings of a RESP reply (bulk strings, simple strings, array items).
pub fn resp_strings(buf: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    fn walk(buf: &[u8], pos: &mut usize, out: &mut Vec<String>) -> Result<(), String> {
        let kind = *buf.get(*pos).ok_or("truncated reply")?;
        let eol = line_end(buf, *pos).ok_or("truncated reply")?;
        let head = String::from_utf8_lossy(&buf[*pos + 1..eol]).into_owned();
        *pos = eol + 2;
        match kind {
            b'+' | b':' => out.push(head),
            b'-' => return Err(format!("redis error: {head}")),
            b'$' => {
                let n: i64 = head.parse().map_err(|_| "bad bulk length")?;
                if n >= 0 {
                    let n = n as usize;
                    let s = buf.get(*pos..*pos + n).ok_or("truncated bulk string")?;
                    out.push(String::from_utf8_lossy(s).into_owned());
                    *pos += n + 2;
                }
            }
            b'*' => {
                let n: i64 = head.parse().map_err(|_| "bad array length")?;
                for _ in 0..n.max(0) {
                    walk(buf, pos, out)?;
                }
            }
            _ => {
                return Err(format!(
                    "not a redis reply: {:?}",
                    String::from_utf8_lossy(&buf[..buf.len().min(40)])
                ))
            }
        }
        Ok(())
    }
    walk(buf, &mut pos, &mut out)?;
    Ok(out)
}

/// The collector's state.
pub struct Redis {
    instances: Vec<Instance>,
    timeout_ms: u32,
    databases: u32,
}

impl Redis {
    fn command(&self, i: &Instance, args: &[&str]) -> Result<Vec<String>, String> {
        let proto = if i.unix {
            Protocol::Unix
        } else {
            Protocol::Tcp
        };
        let mut req = Vec::new();
        let mut replies = 1;
        if let Some(a) = &i.auth {
            req.extend(resp_command(&["AUTH", a]));
            replies += 1;
        }
        req.extend(resp_command(args));
        let raw = exchange(proto, &i.address, &req, self.timeout_ms, |b| {
            let mut pos = 0;
            for _ in 0..replies {
                match resp_end(b, pos) {
                    Some(p) => pos = p,
                    None => return false,
                }
            }
            true
        })?;
        let mut pos = 0;
        if i.auth.is_some() {
            let end = resp_end(&raw, 0).ok_or("truncated AUTH reply")?;
            resp_strings(&raw[..end])?;
            pos = end;
        }
        resp_strings(&raw[pos..])
    }
}

impl Collector for Redis {
    fn describe() -> Description {
        Description {
            name: "redis".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Redis INFO statistics (Diamond's RedisCollector).".into(),
            options: vec![
                option("host", ConfigValue::Text("localhost".into()), "Hostname to collect from"),
                option("port", ConfigValue::Integer(6379), "Port number to collect from"),
                option("timeout", ConfigValue::Integer(5), "Socket timeout, seconds"),
                option("db", ConfigValue::Integer(0), "Accepted for compatibility (INFO covers every database)"),
                option("auth", ConfigValue::Text(String::new()), "Password (empty: none)"),
                option("databases", ConfigValue::Integer(16), "how many database instances to collect"),
                option("instances", ConfigValue::TextList(vec![]), "Redis addresses, [nick@]host:port[/auth] or [nick@]unix:/path; empty: host and port"),
            ],
            capabilities: vec![Capability::Connect("tcp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let mut specs = config.list("instances");
        if specs.is_empty() {
            let host = config.text("host")?;
            let port = config.port("port")?;
            let auth = config.str("auth").filter(|a| !a.is_empty());
            specs.push(match auth {
                Some(a) => format!("{host}:{port}/{a}"),
                None => format!("{host}:{port}"),
            });
        }
        let instances = specs
            .iter()
            .map(|s| parse_instance(s))
            .collect::<Result<_, _>>()?;
        Ok(Redis {
            instances,
            timeout_ms: config.timeout_ms("timeout")?,
            databases: config.f64("databases")?.clamp(0.0, 100_000.0) as u32,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let mut failed = Vec::new();
        for i in &self.instances {
            let info = match self.command(i, &["INFO"]) {
                Ok(r) => parse_info(&r.concat()),
                Err(e) => {
                    host::warn(&format!("redis {}: {e}", i.address));
                    failed.push(i.address.clone());
                    continue;
                }
            };
            let maxmemory = match self.command(i, &["CONFIG", "GET", "maxmemory"]) {
                Ok(r) if r.len() == 2 && r[0] == "maxmemory" => r[1].parse().ok(),
                _ => None,
            };
            for (name, v, p) in compute(&i.nick, &info, maxmemory, host_info::now(), self.databases)
            {
                out.gauge(name, v, p);
            }
        }
        if !failed.is_empty() && failed.len() == self.instances.len() {
            return Err(format!("no redis instance answered: {}", failed.join(", ")));
        }
        Ok(())
    }
}

export_collector!(Redis);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info_like_redis_py() {
        let info = parse_info("# Server\r\nredis_version:7.0.15\r\nrole:master\r\nused_memory:1000\r\nmem_fragmentation_ratio:1.50\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n");
        assert_eq!(info["used_memory"], Value::Number(1000.0, 0));
        assert_eq!(info["mem_fragmentation_ratio"], Value::Number(1.5, 1));
        assert_eq!(info["redis_version"], Value::Text("7.0.15".into()));
        let m = compute("6379", &info, Some(4000.0), 100.0, 16);
        assert!(m.contains(&("6379.db0.keys".into(), 3.0, 0)));
        assert!(m.contains(&("6379.memory.used_percent".into(), 25.0, 2)));
        assert!(m.contains(&("6379.replication.master".into(), 1.0, 0)));
    }

    #[test]
    fn instances_like_diamond() {
        assert_eq!(parse_instance("localhost:6380").unwrap().nick, "6380");
        let i = parse_instance("cache@10.0.0.1:7000/secret").unwrap();
        assert_eq!(
            (i.nick.as_str(), i.address.as_str(), i.auth.as_deref()),
            ("cache", "10.0.0.1:7000", Some("secret"))
        );
        assert_eq!(parse_instance(":7001").unwrap().address, "localhost:7001");
    }

    #[test]
    fn resp_replies() {
        assert!(!resp_complete(b"$5\r\nhel"));
        assert!(resp_complete(b"$5\r\nhello\r\n"));
        assert_eq!(
            resp_strings(b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n").unwrap(),
            vec!["maxmemory", "0"]
        );
        assert!(resp_strings(b"-ERR nope\r\n").is_err());
    }
}
