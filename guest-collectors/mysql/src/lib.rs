//! Diamond's MySQLCollector (`mysqlstat`): `SHOW GLOBAL STATUS` (and with
//! `master`, `slave`, `innodb`: `SHOW MASTER STATUS`, `SHOW SLAVE STATUS`,
//! `SHOW ENGINE INNODB STATUS`) of one or more MySQL or MariaDB servers,
//! over their own protocol through a granted socket; counters as rates
//! (Diamond's `derivative`), its gauges as they are.

pub mod innodb;

use wdiamond_sdk::bindings::wdiamond::plugin::host_info;
use wdiamond_sdk::derive::{Derivative, Per};
use wdiamond_sdk::sql::mysql::{Client, Login};
use wdiamond_sdk::sql::{HostTransport, Rows};
use wdiamond_sdk::{
    export_collector, host, option, secret_option, Capability, Collector, Config, ConfigValue,
    Description, Publisher,
};

/// Diamond's `_GAUGE_KEYS`: published as they are; everything else is a rate.
pub const GAUGES: &[&str] = &[
    "Innodb_buffer_pool_pages_data",
    "Innodb_buffer_pool_pages_dirty",
    "Innodb_buffer_pool_pages_free",
    "Innodb_buffer_pool_pages_misc",
    "Innodb_buffer_pool_pages_total",
    "Innodb_data_pending_fsyncs",
    "Innodb_data_pending_reads",
    "Innodb_data_pending_writes",
    "Innodb_os_log_pending_fsyncs",
    "Innodb_os_log_pending_writes",
    "Innodb_page_size",
    "Innodb_row_lock_current_waits",
    "Innodb_row_lock_time",
    "Innodb_row_lock_time_avg",
    "Innodb_row_lock_time_max",
    "Key_blocks_unused",
    "Last_query_cost",
    "Max_used_connections",
    "Open_files",
    "Open_streams",
    "Open_table_definitions",
    "Open_tables",
    "Qcache_free_blocks",
    "Qcache_free_memory",
    "Qcache_queries_in_cache",
    "Qcache_total_blocks",
    "Seconds_Behind_Master",
    "Slave_open_temp_tables",
    "Threads_cached",
    "Threads_connected",
    "Threads_created",
    "Threads_running",
    "Innodb_bp_created_per_sec",
    "Innodb_bp_pages_evicted_no_access_per_sec",
    "Innodb_bp_pages_not_young_per_sec",
    "Innodb_bp_pages_read_ahead_per_sec",
    "Innodb_bp_pages_young_per_sec",
    "Innodb_bp_reads_per_sec",
    "Innodb_bp_written_per_sec",
    "Innodb_bp_add_alloc",
    "Innodb_bp_db_pages",
    "Innodb_bp_dictionary_alloc",
    "Innodb_bp_free_buffers",
    "Innodb_bp_hit_rate",
    "Innodb_bp_io_cur_pages",
    "Innodb_bp_io_sum_pages",
    "Innodb_bp_io_unzip_cur_pages",
    "Innodb_bp_io_unzip_sum_pages",
    "Innodb_bp_lru_len",
    "Innodb_bp_modified_pages",
    "Innodb_bp_not_young_hit_rate",
    "Innodb_bp_old_db_pages",
    "Innodb_bp_pending_pages",
    "Innodb_bp_pending_writes_flush_list",
    "Innodb_bp_pending_writes_lru",
    "Innodb_bp_pending_writes_single_page",
    "Innodb_bp_size",
    "Innodb_bp_total_alloc",
    "Innodb_bp_unzip_lru_len",
    "Innodb_bp_young_hit_rate",
    "Innodb_hash_searches_per_sec",
    "Innodb_io_syncs_per_sec",
    "Innodb_log_io_per_sec",
    "Innodb_non_hash_searches_per_sec",
    "Innodb_per_sec_avg",
    "Innodb_reads_per_sec",
    "Innodb_rows_deleted_per_sec",
    "Innodb_rows_inserted_per_sec",
    "Innodb_rows_read_per_sec",
    "Innodb_rows_updated_per_sec",
    "Innodb_sem_spins_per_wait_mutex",
    "Innodb_sem_spins_per_wait_rw_excl",
    "Innodb_sem_spins_per_wait_rw_shared",
    "Innodb_writes_per_sec",
    "Innodb_bytes_per_read",
    "Innodb_hash_node_heap",
    "Innodb_hash_table_size",
    "Innodb_hash_used_cells",
    "Innodb_ibuf_free_list_len",
    "Innodb_ibuf_seg_size",
    "Innodb_ibuf_size",
    "Innodb_io_ibuf_logs",
    "Innodb_io_ibuf_reads",
    "Innodb_io_ibuf_syncs",
    "Innodb_io_pending_flush_bp",
    "Innodb_io_pending_flush_log",
    "Innodb_io_pending_reads",
    "Innodb_io_pending_writes",
    "Innodb_log_pending_checkpoint_writes",
    "Innodb_log_pending_log_writes",
    "Innodb_row_queries_inside",
    "Innodb_row_queries_queue",
    "Innodb_trx_history_list_length",
    "Innodb_trx_total_lock_structs",
    "Innodb_status_process_time",
];

/// Diamond's `_IGNORE_KEYS` (of master and slave status).
const IGNORED: &[&str] = &[
    "Master_Port",
    "Master_Server_Id",
    "Last_Errno",
    "Last_IO_Errno",
    "Last_SQL_Errno",
];

/// One server of `hosts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// Host.
    pub host: String,
    /// Port (3306 when not given or not a number).
    pub port: u16,
    /// Default database (`None` in the string: none).
    pub db: Option<String>,
    /// Prefix of its metrics (`nick.`), empty for none.
    pub prefix: String,
}

/// Diamond's `hosts` entry: `user:password@host[:port]/db[/nickname]`.
pub fn parse_server(spec: &str) -> Result<Server, String> {
    let bad = || "a `hosts` entry is not user:password@host:port/db[/nickname]".to_string();
    let (user, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (password, rest) = rest.split_once('@').ok_or_else(bad)?;
    let (hostport, rest) = rest.split_once('/').ok_or_else(bad)?;
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, ""));
    let (db, nick) = rest.split_once('/').unwrap_or((rest, ""));
    Ok(Server {
        user: user.to_string(),
        password: password.to_string(),
        host: host.to_string(),
        port: port.parse().unwrap_or(3306),
        db: (db != "None").then(|| db.to_string()),
        prefix: if nick.is_empty() {
            String::new()
        } else {
            format!("{nick}.")
        },
    })
}

/// `Variable_name`/`Value` rows as numbers (the others are left out).
pub fn status(rows: &Rows) -> Vec<(String, f64)> {
    rows.records()
        .filter_map(|r| {
            let name = r.iter().find(|(k, _)| *k == "Variable_name")?.1?;
            let value = r.iter().find(|(k, _)| *k == "Value")?.1?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Every numeric column of every row (master and slave status).
pub fn columns(rows: &Rows) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for r in rows.records() {
        for (k, v) in r {
            if IGNORED.contains(&k) {
                continue;
            }
            if let Some(n) = v.and_then(|v| v.trim().parse::<f64>().ok()) {
                out.push((k.to_string(), n));
            }
        }
    }
    out
}

/// Which `SHOW GLOBAL STATUS` rows to publish: all, Diamond's string
/// (a name is published when the string contains it), or a list.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// Every row.
    All,
    /// Names the string contains.
    Text(String),
    /// Names in the list.
    List(Vec<String>),
}

impl Wanted {
    fn wants(&self, name: &str) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Text(t) => t.contains(name),
            Wanted::List(l) => l.iter().any(|n| n == name),
        }
    }
}

/// The collector's state.
pub struct Mysql {
    servers: Vec<Server>,
    publish: Wanted,
    master: bool,
    slave: bool,
    innodb: bool,
    timeout_ms: u32,
    interval: f64,
    derivative: Derivative,
    /// TLS by the host after the greeting (the section's `tls = true`).
    tls: bool,
}

impl Mysql {
    fn stats(&self, s: &Server) -> Result<Vec<(&'static str, Vec<(String, f64)>)>, String> {
        let address = format!("{}:{}", s.host, s.port);
        let t = if self.tls {
            HostTransport::open_upgradable(&address, self.timeout_ms)?
        } else {
            HostTransport::open(false, &address, self.timeout_ms)?
        };
        let login = Login {
            user: &s.user,
            password: &s.password,
            database: s.db.as_deref(),
        };
        let mut c = Client::connect(t, &login, self.tls).map_err(|e| format!("{address}: {e}"))?;
        let mut out = Vec::new();
        let query = |c: &mut Client<HostTransport>, sql: &str| match c.query(sql) {
            Ok(r) => Some(r),
            Err(e) => {
                host::warn(&format!("{address}: {sql}: {e}"));
                None
            }
        };
        out.push((
            "status",
            query(&mut c, "SHOW GLOBAL STATUS")
                .map(|r| status(&r))
                .unwrap_or_default(),
        ));
        if self.master {
            out.push((
                "master",
                query(&mut c, "SHOW MASTER STATUS")
                    .map(|r| columns(&r))
                    .unwrap_or_default(),
            ));
        }
        if self.slave {
            out.push((
                "slave",
                query(&mut c, "SHOW SLAVE STATUS")
                    .map(|r| columns(&r))
                    .unwrap_or_default(),
            ));
        }
        if self.innodb {
            let started = host_info::now();
            let mut m = query(&mut c, "SHOW ENGINE INNODB STATUS")
                .and_then(|r| {
                    let i = r.columns.iter().position(|c| c == "Status")?;
                    r.rows.first()?.get(i)?.clone()
                })
                .map(|text| innodb::parse(&text))
                .unwrap_or_default();
            m.push((
                "Innodb_status_process_time".into(),
                host_info::now() - started,
            ));
            out.push(("innodb", m));
        }
        c.close();
        Ok(out)
    }
}

impl Collector for Mysql {
    fn describe() -> Description {
        Description {
            name: "mysql".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "MySQL and MariaDB server status (Diamond's MySQLCollector), over their own protocol with mysql_native_password or caching_sha2_password.".into(),
            options: vec![
                secret_option("hosts", ConfigValue::TextList(vec![]), "List of hosts to collect from. Format is yourusername:yourpassword@host:port/db[/nickname] use db \"None\" to avoid connecting to a particular db"),
                option("publish", ConfigValue::Text(String::new()), "Which rows of 'SHOW GLOBAL STATUS' you would like to publish (a string naming them, or a list). Leave unset to publish all"),
                option("slave", ConfigValue::Boolean(false), "Collect SHOW SLAVE STATUS"),
                option("master", ConfigValue::Boolean(false), "Collect SHOW MASTER STATUS"),
                option("innodb", ConfigValue::Boolean(false), "Collect SHOW ENGINE INNODB STATUS"),
                option("host", ConfigValue::Text(String::new()), "Diamond's older form: one server's host (added to `hosts`)"),
                option("port", ConfigValue::Integer(3306), "Its port"),
                option("user", ConfigValue::Text(String::new()), "Its user"),
                secret_option("passwd", ConfigValue::Text(String::new()), "Its password"),
                option("db", ConfigValue::Text("None".into()), "Its default database (None: none)"),
                option("timeout", ConfigValue::Integer(10), "Seconds for one server's whole session"),
            ],
            capabilities: vec![Capability::Connect("tcp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let mut servers = config
            .list("hosts")
            .iter()
            .map(|h| parse_server(h))
            .collect::<Result<Vec<_>, _>>()?;
        let host = config.text("host")?;
        if !host.is_empty() {
            servers.push(Server {
                user: config.text("user")?,
                password: config.str("passwd").unwrap_or_default(),
                host,
                port: config.port("port")?,
                db: config.str("db").filter(|d| d != "None" && !d.is_empty()),
                prefix: String::new(),
            });
        }
        let publish = match config.get("publish") {
            Some(ConfigValue::TextList(l)) if !l.is_empty() => Wanted::List(l.clone()),
            Some(ConfigValue::Text(t)) if !t.is_empty() => Wanted::Text(t.clone()),
            _ => Wanted::All,
        };
        Ok(Mysql {
            servers,
            publish,
            master: config.bool("master")?,
            slave: config.bool("slave")?,
            innodb: config.bool("innodb")?,
            timeout_ms: config.timeout_ms("timeout")?,
            interval: config.f64("interval").unwrap_or(300.0),
            derivative: Derivative::for_config(config),
            tls: matches!(config.get("tls"), Some(ConfigValue::Boolean(true))),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        if self.servers.is_empty() {
            // Diamond's default: no server, nothing collected; said here.
            return Err(
                "no server to collect from: set `hosts` (user:password@host:port/db) or `host`"
                    .into(),
            );
        }
        let mut failed = 0;
        for s in &self.servers {
            let families = match self.stats(s) {
                Ok(f) => f,
                Err(e) => {
                    host::warn(&format!("Collection failed for {}{e}", s.prefix));
                    failed += 1;
                    continue;
                }
            };
            for (family, metrics) in families {
                for (name, v) in metrics {
                    if family == "status" && !self.publish.wants(&name) {
                        continue;
                    }
                    let key = format!("{}{name}", s.prefix);
                    let v = if GAUGES.contains(&name.as_str()) {
                        Some(v)
                    } else {
                        self.derivative
                            .rate_f64(&key, v, 0.0, Per::Seconds(self.interval), false)
                    };
                    if let Some(v) = v {
                        out.gauge(key, v, 0);
                    }
                }
            }
        }
        if failed > 0 && failed == self.servers.len() {
            return Err("no mysql server answered".into());
        }
        Ok(())
    }
}

export_collector!(Mysql);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_like_diamond() {
        let s = parse_server("wd:pw@db1:3307/None/primary").unwrap();
        assert_eq!(
            (
                s.user.as_str(),
                s.password.as_str(),
                s.host.as_str(),
                s.port
            ),
            ("wd", "pw", "db1", 3307)
        );
        assert_eq!((s.db, s.prefix.as_str()), (None, "primary."));
        let s = parse_server("root:@localhost/mysql").unwrap();
        assert_eq!(
            (s.port, s.db.as_deref(), s.prefix.as_str()),
            (3306, Some("mysql"), "")
        );
        assert!(parse_server("nobody").is_err());
    }

    #[test]
    fn status_rows_and_publish() {
        let rows = Rows {
            columns: vec!["Variable_name".into(), "Value".into()],
            rows: vec![
                vec![Some("Uptime".into()), Some("42".into())],
                vec![Some("Ssl_cipher".into()), Some("".into())],
            ],
        };
        assert_eq!(status(&rows), vec![("Uptime".to_string(), 42.0)]);
        assert!(Wanted::Text("Uptime Threads_connected".into()).wants("Uptime"));
        assert!(!Wanted::List(vec!["Uptime".into()]).wants("Threads"));
        let slave = Rows {
            columns: vec![
                "Master_Port".into(),
                "Seconds_Behind_Master".into(),
                "Slave_IO_Running".into(),
            ],
            rows: vec![vec![
                Some("3306".into()),
                Some("0".into()),
                Some("Yes".into()),
            ]],
        };
        assert_eq!(
            columns(&slave),
            vec![("Seconds_Behind_Master".to_string(), 0.0)]
        );
    }
}
