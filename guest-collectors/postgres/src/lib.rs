//! Diamond's PostgresqlCollector: statistics views of a PostgreSQL server
//! (`database.<db>.xact_commit`, `<db>.tables.<schema>.<table>.seq_scan`,
//! `bgwriter.buffers_alloc`, ...), over PostgreSQL's own protocol through a
//! granted socket, with SCRAM-SHA-256 or md5 authentication.

pub mod stats;

use std::collections::BTreeMap;

use wdiamond_sdk::sql::pg::{connect_host, Client, Login};
use wdiamond_sdk::sql::{HostTransport, Rows};
use wdiamond_sdk::{
    export_collector, host, option, secret_option, Capability, Collector, Config, ConfigValue,
    Description, Publisher,
};

use stats::{metrics, stat, version_number, BASIC, EXTENDED};

/// The collector's state.
pub struct Postgres {
    host: String,
    port: u16,
    dbname: String,
    user: String,
    password: Option<String>,
    underscore: bool,
    families: Vec<&'static str>,
    pg_version: Option<f64>,
    timeout_ms: u32,
    /// TLS by the host after PostgreSQL's SSLRequest (the section's `tls = true`).
    tls: bool,
}

/// The databases Diamond watches: those that take connections and are
/// not templates, `postgres` or `rdsadmin` (only `postgres` when none).
const DATABASES: &str = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate \
    AND datname NOT IN ('postgres', 'rdsadmin') ORDER BY 1";

/// Which families to run: `metrics` if set, else Diamond's `basic` or
/// `extended` set (with WalSegmentStats when `has_admin`). Unknown names
/// are an error naming them.
pub fn families(
    metrics: &[String],
    extended: bool,
    has_admin: bool,
) -> Result<Vec<&'static str>, String> {
    let mut out: Vec<&'static str> = if !metrics.is_empty() {
        let mut v = Vec::new();
        for m in metrics {
            match stat(m) {
                Some(s) => v.push(s.name),
                None => {
                    return Err(format!(
                        "`metrics`: {m:?} is not one of Diamond's families ({})",
                        stats::STATS
                            .iter()
                            .map(|s| s.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
        v
    } else if extended {
        let mut v = EXTENDED.to_vec();
        if has_admin {
            v.push("WalSegmentStats");
        }
        v
    } else {
        BASIC.to_vec()
    };
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl Postgres {
    fn connect(&self, database: &str) -> Result<Client<HostTransport>, String> {
        let login = Login {
            user: &self.user,
            password: self.password.as_deref(),
            database,
        };
        connect_host(&self.host, self.port, &login, self.timeout_ms, self.tls)
    }
}

impl Collector for Postgres {
    fn describe() -> Description {
        Description {
            name: "postgres".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "PostgreSQL statistics views (Diamond's PostgresqlCollector), over PostgreSQL's protocol with SCRAM-SHA-256 or md5.".into(),
            options: vec![
                option("host", ConfigValue::Text("localhost".into()), "Hostname, or the directory of the server's Unix socket"),
                option("port", ConfigValue::Integer(5432), "Port number"),
                option("dbname", ConfigValue::Text("postgres".into()), "DB to connect to in order to get list of DBs in PgSQL"),
                option("user", ConfigValue::Text("postgres".into()), "Username"),
                secret_option("password", ConfigValue::Text(String::new()), "Password (empty: none; Diamond's default was \"postgres\")"),
                option("password_provider", ConfigValue::Text("password".into()), "password: send `password`; pgpass: send none (trust or peer authentication)"),
                option("sslmode", ConfigValue::Text("disable".into()), "With `tls = true` in the section every session is TLS (the host verifies the server: require, verify-ca and verify-full all verify); without it, disable, allow and prefer are plaintext and the others are a configuration error"),
                option("underscore", ConfigValue::Boolean(false), "Convert _ to ."),
                option("extended", ConfigValue::Boolean(false), "Enable collection of extended database stats."),
                option("metrics", ConfigValue::TextList(vec![]), "List of enabled metrics to collect (Diamond's family names)"),
                option("pg_version", ConfigValue::Text(String::new()), "The server's version, e.g. 9.2, to pick the queries; empty: as the server reports it"),
                option("has_admin", ConfigValue::Boolean(true), "Admin privileges are required to execute some queries."),
                option("timeout", ConfigValue::Integer(10), "Seconds for one connection's whole session"),
            ],
            capabilities: vec![Capability::Connect("tcp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let password = match config.text("password_provider")?.as_str() {
            "password" => config.str("password").filter(|p| !p.is_empty()),
            "pgpass" => None,
            other => {
                return Err(format!(
                    "`password_provider`: {other:?} is not `password` or `pgpass`"
                ))
            }
        };
        let tls = matches!(config.get("tls"), Some(ConfigValue::Boolean(true)));
        match config.text("sslmode")?.as_str() {
            "disable" | "allow" | "prefer" => {}
            "require" | "verify-ca" | "verify-full" if tls => {}
            m @ ("require" | "verify-ca" | "verify-full") => {
                return Err(format!(
                    "`sslmode = {m:?}` needs TLS: set `tls = true` in this section (and `tls_ca` to the server's CA unless the system's roots sign it); the host verifies the certificate and the name"
                ))
            }
            other => return Err(format!("`sslmode`: {other:?} is not disable, allow, prefer, require, verify-ca or verify-full")),
        }
        let pg_version = match config.get("pg_version") {
            Some(ConfigValue::Float(f)) => Some(*f),
            Some(ConfigValue::Integer(i)) => Some(*i as f64),
            Some(ConfigValue::Text(t)) if !t.is_empty() => Some(
                version_number(t).ok_or_else(|| format!("`pg_version`: {t:?} is not a version"))?,
            ),
            _ => None,
        };
        Ok(Postgres {
            host: config.text("host")?,
            port: config.port("port")?,
            dbname: config.text("dbname")?,
            user: config.text("user")?,
            password,
            underscore: config.bool("underscore")?,
            families: families(
                &config.list("metrics"),
                config.bool("extended")?,
                config.bool("has_admin")?,
            )?,
            pg_version,
            timeout_ms: config.timeout_ms("timeout")?,
            tls,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let mut first = self.connect(&self.dbname)?;
        let version = self
            .pg_version
            .or_else(|| first.parameter("server_version").and_then(version_number))
            .unwrap_or(9.2);
        let mut dbs: Vec<String> = first
            .query(DATABASES)?
            .rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        first.close();
        if dbs.is_empty() {
            dbs.push("postgres".into());
        }
        let mut sessions: BTreeMap<String, Client<HostTransport>> = BTreeMap::new();
        let mut failures = 0;
        for name in &self.families {
            let s = stat(name).expect("families() checked the names");
            let targets = if s.multi_db { &dbs[..] } else { &dbs[..1] };
            for db in targets {
                if !sessions.contains_key(db) {
                    match self.connect(db) {
                        Ok(c) => {
                            sessions.insert(db.clone(), c);
                        }
                        Err(e) => {
                            host::warn(&e);
                            failures += 1;
                            continue;
                        }
                    }
                }
                let conn = sessions.get_mut(db).expect("inserted above");
                let rows: Rows = match conn.query(s.sql(version)) {
                    Ok(r) => r,
                    Err(e) => {
                        host::warn(&format!("{name} in database {db:?}: {e}"));
                        failures += 1;
                        continue;
                    }
                };
                for (metric, value) in metrics(s, db, self.underscore, &rows) {
                    out.gauge(metric, value, 0);
                }
            }
        }
        for (_, c) in sessions {
            c.close();
        }
        if failures > 0 && out.is_empty() {
            return Err(format!(
                "every query failed ({failures}); see the warnings above"
            ));
        }
        Ok(())
    }
}

export_collector!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_like_diamond() {
        assert_eq!(
            families(&[], false, true).unwrap(),
            vec!["DatabaseConnectionCount", "DatabaseStats"]
        );
        let ext = families(&[], true, true).unwrap();
        assert_eq!(ext.len(), 20);
        assert!(ext.contains(&"WalSegmentStats"));
        assert!(!families(&[], true, false)
            .unwrap()
            .contains(&"WalSegmentStats"));
        let picked = families(&["LockStats".into(), "LockStats".into()], false, true).unwrap();
        assert_eq!(picked, vec!["LockStats"]);
        assert!(families(&["Nope".into()], false, true)
            .unwrap_err()
            .contains("\"Nope\""));
    }
}
