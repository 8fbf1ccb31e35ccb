//! Diamond's PgbouncerCollector: `SHOW POOLS` and `SHOW STATS` of one or
//! more PgBouncers' admin consoles (`<instance>.<database>.cl_active`,
//! `<instance>.<database>.total_query_count`, ...), over PostgreSQL's
//! protocol through a granted socket.

use std::collections::BTreeMap;

use wdiamond_sdk::sql::pg::{connect_host, Login};
use wdiamond_sdk::sql::Rows;
use wdiamond_sdk::{
    export_collector, host, option, secret_option, Capability, Collector, Config, ConfigValue,
    Description, Publisher,
};

/// One PgBouncer.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The name its metrics go under.
    pub name: String,
    /// Host name or address (or a Unix socket's directory).
    pub host: String,
    /// Port.
    pub port: u16,
    /// User, if it overrides the collector's.
    pub user: Option<String>,
    /// Password, if it overrides the collector's.
    pub password: Option<String>,
}

/// Diamond's `instances` sub-section (`[collectors.pgbouncer.instances.NAME]`
/// with `host`, `port`, and optionally `user` and `password`), which reaches
/// the plugin as JSON text.
pub fn parse_instances(json: &str) -> Result<Vec<Instance>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("`instances` is not a table: {e}"))?;
    let map = v.as_object().ok_or("`instances` is not a table")?;
    let mut out = Vec::new();
    for (name, inst) in map {
        let field = |k: &str| match inst.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let host = field("host").ok_or_else(|| format!("`instances.{name}` has no `host`"))?;
        let port = field("port")
            .ok_or_else(|| format!("`instances.{name}` has no `port`"))?
            .parse::<u16>()
            .map_err(|_| format!("`instances.{name}.port` is not a port"))?;
        out.push(Instance {
            name: name.clone(),
            host,
            port,
            user: field("user").filter(|u| !u.is_empty()),
            password: field("password").filter(|p| !p.is_empty()),
        });
    }
    Ok(out)
}

/// The statistics of `SHOW POOLS` then `SHOW STATS`, by database (Diamond's
/// `_get_stats_by_database`: the `database` column names the row, `user`
/// is dropped, a later row of the same database overwrites an earlier one,
/// values that are not numbers are left out).
pub fn by_database(results: &[Rows]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for rows in results {
        for row in rows.records() {
            let Some(db) = row
                .iter()
                .find(|(k, _)| *k == "database")
                .and_then(|(_, v)| *v)
            else {
                continue;
            };
            let stats = out.entry(db.to_string()).or_default();
            for (k, v) in &row {
                if *k == "database" || *k == "user" {
                    continue;
                }
                if let Some(n) = v.and_then(|v| v.trim().parse::<f64>().ok()) {
                    stats.insert(k.to_string(), n);
                }
            }
        }
    }
    out
}

/// Diamond's `_get_metric_name`.
pub fn metric_name(instance: &str, database: &str, stat: &str) -> String {
    let name = instance.replace(['.', ':'], "_");
    format!("{}.{database}.{stat}", name.trim())
}

/// The collector's state.
pub struct Pgbouncer {
    instances: Vec<Instance>,
    user: String,
    password: Option<String>,
    timeout_ms: u32,
    /// TLS by the host after the SSLRequest (the section's `tls = true`).
    tls: bool,
}

impl Pgbouncer {
    fn stats(&self, i: &Instance) -> Result<Vec<Rows>, String> {
        let login = Login {
            user: i.user.as_deref().unwrap_or(&self.user),
            password: i.password.as_deref().or(self.password.as_deref()),
            database: "pgbouncer",
        };
        let mut c = connect_host(&i.host, i.port, &login, self.timeout_ms, self.tls)?;
        let out = vec![c.query("SHOW POOLS")?, c.query("SHOW STATS")?];
        c.close();
        Ok(out)
    }
}

impl Collector for Pgbouncer {
    fn describe() -> Description {
        Description {
            name: "pgbouncer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "PgBouncer's SHOW POOLS and SHOW STATS (Diamond's PgbouncerCollector), over PostgreSQL's protocol.".into(),
            options: vec![
                option("user", ConfigValue::Text("postgres".into()), "Username"),
                secret_option("password", ConfigValue::Text(String::new()), "Password"),
                option("instances", ConfigValue::Text(String::new()), "A sub-table of pgbouncer instances with a host and port, and optionally user and password overridden per instance ([collectors.pgbouncer.instances.NAME]); none: `host` and `port` as `default`"),
                option("host", ConfigValue::Text("localhost".into()), "The host of the `default` instance (when `instances` is not set)"),
                option("port", ConfigValue::Integer(6432), "The port of the `default` instance"),
                option("timeout", ConfigValue::Integer(10), "Seconds for one instance's whole session"),
            ],
            capabilities: vec![Capability::Connect("tcp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let instances = match config.str("instances").filter(|s| !s.trim().is_empty()) {
            Some(json) => parse_instances(&json)?,
            None => vec![Instance {
                name: "default".into(),
                host: config.text("host")?,
                port: config.port("port")?,
                user: None,
                password: None,
            }],
        };
        Ok(Pgbouncer {
            instances,
            user: config.text("user")?,
            password: config.str("password").filter(|p| !p.is_empty()),
            timeout_ms: config.timeout_ms("timeout")?,
            tls: matches!(config.get("tls"), Some(ConfigValue::Boolean(true))),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let mut failed = Vec::new();
        for i in &self.instances {
            match self.stats(i) {
                Ok(results) => {
                    for (db, stats) in by_database(&results) {
                        for (stat, v) in stats {
                            out.gauge(metric_name(&i.name, &db, &stat), v, 0);
                        }
                    }
                }
                Err(e) => {
                    host::warn(&format!("pgbouncer {}: {e}", i.name));
                    failed.push(i.name.clone());
                }
            }
        }
        if !failed.is_empty() && failed.len() == self.instances.len() {
            return Err(format!("no pgbouncer answered: {}", failed.join(", ")));
        }
        Ok(())
    }
}

export_collector!(Pgbouncer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_database_like_diamond() {
        let pools = Rows::of(
            &["database", "user", "cl_active", "pool_mode"],
            &[
                &[Some("app"), Some("a"), Some("1"), Some("session")],
                &[Some("app"), Some("b"), Some("4"), Some("session")],
            ],
        );
        let stats = Rows::of(
            &["database", "total_query_count"],
            &[&[Some("app"), Some("17")], &[Some("pgbouncer"), Some("2")]],
        );
        let m = by_database(&[pools, stats]);
        assert_eq!(m["app"]["cl_active"], 4.0);
        assert_eq!(m["app"]["total_query_count"], 17.0);
        assert!(!m["app"].contains_key("pool_mode"));
        assert!(!m["app"].contains_key("user"));
        assert_eq!(
            metric_name("db.1:6432", "app", "cl_active"),
            "db_1_6432.app.cl_active"
        );
    }

    #[test]
    fn instances_from_the_sub_table() {
        let i = parse_instances(r#"{"master":{"host":"localhost","port":6432},"replica":{"host":"h","port":"6433","password":"foobar"}}"#).unwrap();
        assert_eq!(i.len(), 2);
        assert_eq!(i[1].password.as_deref(), Some("foobar"));
        assert_eq!(i[1].port, 6433);
        assert!(parse_instances(r#"{"x":{"port":1}}"#)
            .unwrap_err()
            .contains("`instances.x` has no `host`"));
        assert!(parse_instances("[1]").is_err());
    }
}
