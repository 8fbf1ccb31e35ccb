//! Diamond's PostgresqlCollector query families: the SQL each runs (by
//! server version), the path its rows are published under, and how rows
//! become metrics (`QueryStats.fetch`).

use wdiamond_sdk::sql::Rows;

/// One family (a `QueryStats` class of Diamond's).
pub struct Stat {
    /// Diamond's class name, as `metrics` lists it.
    pub name: &'static str,
    /// The path, with `{datname}`, `{schemaname}`, `{relname}`,
    /// `{indexrelname}`, `{funcname}` and `{metric}`.
    pub path: &'static str,
    /// Run in every database (true) or only in the first (false).
    pub multi_db: bool,
    /// `(since version, SQL)`, newest first; the first whose version the
    /// server reaches is run.
    pub queries: &'static [(f64, &'static str)],
}

impl Stat {
    /// The SQL for a server of `version` (e.g. 15.0, 9.6).
    pub fn sql(&self, version: f64) -> &'static str {
        self.queries
            .iter()
            .find(|(since, _)| version >= *since)
            .or(self.queries.last())
            .map(|(_, q)| *q)
            .unwrap_or_default()
    }
}

const ACTIVITY_STATE_96: &str = "SELECT s.state AS key, COALESCE(c.n, 0) FROM \
    (VALUES ('active'), ('waiting'), ('idle'), ('idletransaction'), ('unknown')) AS s(state) \
    LEFT JOIN (SELECT CASE WHEN wait_event IS NOT NULL THEN 'waiting' \
                           WHEN state = 'idle' THEN 'idle' \
                           WHEN state = 'idle in transaction' THEN 'idletransaction' \
                           WHEN state = 'active' THEN 'active' ELSE 'unknown' END AS state, \
                      count(*) AS n \
               FROM pg_stat_activity WHERE pid <> pg_backend_pid() GROUP BY 1) AS c \
    ON s.state = c.state ORDER BY 1";

const ACTIVITY_STATE_92: &str = "SELECT s.state AS key, COALESCE(c.n, 0) FROM \
    (VALUES ('active'), ('waiting'), ('idle'), ('idletransaction'), ('unknown')) AS s(state) \
    LEFT JOIN (SELECT CASE WHEN waiting THEN 'waiting' \
                           WHEN state = 'idle' THEN 'idle' \
                           WHEN state LIKE 'idle in transaction%' THEN 'idletransaction' \
                           WHEN state = 'disabled' THEN 'unknown' \
                           WHEN query = '<insufficient privilege>' THEN 'unknown' \
                           ELSE 'active' END AS state, \
                      count(*) AS n \
               FROM pg_stat_activity WHERE pid <> pg_backend_pid() GROUP BY 1) AS c \
    ON s.state = c.state ORDER BY 1";

/// Every family, by Diamond's class name.
pub const STATS: &[Stat] = &[
    Stat {
        name: "DatabaseStats",
        path: "database.{datname}.{metric}",
        multi_db: false,
        queries: &[(0.0, "SELECT d.datname AS datname, s.numbackends, s.xact_commit, s.xact_rollback, \
            s.blks_read, s.blks_hit, s.tup_returned, s.tup_fetched, s.tup_inserted, s.tup_updated, \
            s.tup_deleted, s.deadlocks, pg_database_size(d.datname) AS size \
            FROM pg_database d JOIN pg_stat_database s ON d.datname = s.datname \
            WHERE s.datname NOT IN ('template0', 'template1', 'postgres', 'rdsadmin')")],
    },
    Stat {
        name: "DatabaseConnectionCount",
        path: "database.{metric}.connections",
        multi_db: false,
        queries: &[(0.0, "SELECT datname, count(datname) AS connections FROM pg_stat_activity GROUP BY datname")],
    },
    Stat {
        name: "UserFunctionStats",
        path: "{datname}.functions.{funcname}.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT funcname, calls, total_time / calls AS time_per_call \
            FROM pg_stat_user_functions WHERE calls <> 0")],
    },
    Stat {
        name: "UserTableStats",
        path: "{datname}.tables.{schemaname}.{relname}.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT relname, schemaname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, \
            n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup, n_dead_tup FROM pg_stat_user_tables")],
    },
    Stat {
        name: "UserIndexStats",
        path: "{datname}.indexes.{schemaname}.{relname}.{indexrelname}.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT relname, schemaname, indexrelname, idx_scan, idx_tup_read, idx_tup_fetch \
            FROM pg_stat_user_indexes")],
    },
    Stat {
        name: "UserTableIOStats",
        path: "{datname}.tables.{schemaname}.{relname}.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT relname, schemaname, heap_blks_read, heap_blks_hit, idx_blks_read, idx_blks_hit \
            FROM pg_statio_user_tables")],
    },
    Stat {
        name: "UserIndexIOStats",
        path: "{datname}.indexes.{schemaname}.{relname}.{indexrelname}.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT relname, schemaname, indexrelname, idx_blks_read, idx_blks_hit \
            FROM pg_statio_user_indexes")],
    },
    Stat {
        name: "ConnectionStateStats",
        path: "{datname}.connections.{metric}",
        multi_db: true,
        queries: &[(9.6, ACTIVITY_STATE_96), (0.0, ACTIVITY_STATE_92)],
    },
    Stat {
        name: "LockStats",
        path: "{datname}.locks.{metric}",
        multi_db: false,
        queries: &[(0.0, "SELECT lower(mode) AS key, count(*) AS value FROM pg_locks \
            WHERE database IS NOT NULL GROUP BY mode ORDER BY 1")],
    },
    Stat {
        name: "RelationSizeStats",
        path: "{datname}.sizes.{schemaname}.{relname}.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT c.relname, n.nspname AS schemaname, pg_relation_size(c.oid) AS relsize \
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
            WHERE c.reltype <> 0 AND c.relkind <> 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')")],
    },
    Stat {
        name: "BackgroundWriterStats",
        path: "bgwriter.{metric}",
        multi_db: false,
        queries: &[
            (17.0, "SELECT c.num_timed AS checkpoints_timed, c.num_requested AS checkpoints_req, \
                c.buffers_written AS buffers_checkpoint, b.buffers_clean, b.maxwritten_clean, \
                b.buffers_alloc FROM pg_stat_bgwriter b, pg_stat_checkpointer c"),
            (0.0, "SELECT checkpoints_timed, checkpoints_req, buffers_checkpoint, buffers_clean, \
                maxwritten_clean, buffers_backend, buffers_alloc FROM pg_stat_bgwriter"),
        ],
    },
    Stat {
        name: "WalSegmentStats",
        path: "wals.{metric}",
        multi_db: false,
        queries: &[
            (10.0, "SELECT count(*) AS segments FROM pg_ls_dir('pg_wal') t(fn) WHERE fn ~ '^[0-9A-Z]{24}$'"),
            (0.0, "SELECT count(*) AS segments FROM pg_ls_dir('pg_xlog') t(fn) WHERE fn ~ '^[0-9A-Z]{24}$'"),
        ],
    },
    Stat {
        name: "TransactionCount",
        path: "transactions.{metric}",
        multi_db: false,
        queries: &[(0.0, "SELECT 'commit' AS type, sum(pg_stat_get_db_xact_commit(oid)) FROM pg_database \
            UNION ALL SELECT 'rollback', sum(pg_stat_get_db_xact_rollback(oid)) FROM pg_database")],
    },
    Stat {
        name: "IdleInTransactions",
        path: "{datname}.idle_in_tranactions.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT 'idle_in_transactions', \
            max(COALESCE(ROUND(EXTRACT(epoch FROM now() - query_start)), 0)) AS idle_in_transaction \
            FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' GROUP BY 1")],
    },
    Stat {
        name: "LongestRunningQueries",
        path: "{datname}.longest_running.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT 'query', COALESCE(max(extract(epoch FROM CURRENT_TIMESTAMP - query_start)), 0) \
            FROM pg_stat_activity WHERE state NOT LIKE 'idle%' \
            UNION ALL SELECT 'transaction', COALESCE(max(extract(epoch FROM CURRENT_TIMESTAMP - xact_start)), 0) \
            FROM pg_stat_activity")],
    },
    Stat {
        name: "UserConnectionCount",
        path: "{datname}.user_connections.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT usename, count(*) AS count FROM pg_stat_activity \
            WHERE pid <> pg_backend_pid() GROUP BY usename ORDER BY 1")],
    },
    Stat {
        name: "TableScanStats",
        path: "{datname}.scans.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT 'relname' AS relname, COALESCE(sum(seq_scan), 0) AS sequential, \
            COALESCE(sum(idx_scan), 0) AS index FROM pg_stat_user_tables")],
    },
    Stat {
        name: "TupleAccessStats",
        path: "{datname}.tuples.{metric}",
        multi_db: true,
        queries: &[(0.0, "SELECT COALESCE(sum(seq_tup_read), 0) AS seqread, COALESCE(sum(idx_tup_fetch), 0) AS idxfetch, \
            COALESCE(sum(n_tup_ins), 0) AS inserted, COALESCE(sum(n_tup_upd), 0) AS updated, \
            COALESCE(sum(n_tup_del), 0) AS deleted, COALESCE(sum(n_tup_hot_upd), 0) AS hotupdated \
            FROM pg_stat_user_tables")],
    },
    Stat {
        name: "DatabaseReplicationStats",
        path: "database.replication.{metric}",
        multi_db: false,
        queries: &[(0.0, "SELECT EXTRACT(epoch FROM current_timestamp - pg_last_xact_replay_timestamp()) AS replay_lag")],
    },
    Stat {
        name: "DatabaseXidAge",
        path: "{datname}.datfrozenxid.{metric}",
        multi_db: false,
        queries: &[(0.0, "SELECT datname, age(datfrozenxid) AS age FROM pg_database WHERE datallowconn = TRUE")],
    },
];

/// Diamond's `basic` set.
pub const BASIC: &[&str] = &["DatabaseStats", "DatabaseConnectionCount"];

/// Diamond's `extended` set (WalSegmentStats is added with `has_admin`).
pub const EXTENDED: &[&str] = &[
    "DatabaseStats",
    "DatabaseConnectionCount",
    "DatabaseReplicationStats",
    "DatabaseXidAge",
    "UserFunctionStats",
    "UserTableStats",
    "UserIndexStats",
    "UserTableIOStats",
    "UserIndexIOStats",
    "ConnectionStateStats",
    "LockStats",
    "RelationSizeStats",
    "BackgroundWriterStats",
    "TransactionCount",
    "IdleInTransactions",
    "LongestRunningQueries",
    "UserConnectionCount",
    "TableScanStats",
    "TupleAccessStats",
];

/// The family named `name`.
pub fn stat(name: &str) -> Option<&'static Stat> {
    STATS.iter().find(|s| s.name == name)
}

/// Columns that name a row rather than measure it.
const NAMING: [&str; 5] = [
    "datname",
    "schemaname",
    "relname",
    "indexrelname",
    "funcname",
];

/// Diamond's `underscore`: `_` in a database name becomes `.`.
pub fn translate(datname: &str, underscore: bool) -> String {
    if underscore {
        datname.replace('_', ".")
    } else {
        datname.to_string()
    }
}

fn fill(path: &str, fields: &[(&str, &str)]) -> String {
    let mut out = path.to_string();
    for (k, v) in fields {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// The metrics of one family's rows, fetched in database `dbname`
/// (Diamond's `fetch` and `__iter__`): a row of two columns is a
/// `metric, value` pair; a wider row gives one metric per column that does
/// not name the row. A NULL, or a value that is not a number, is left out.
/// A NULL name prints as Python's `None`, as Diamond's `%` does.
pub fn metrics(stat: &Stat, dbname: &str, underscore: bool, rows: &Rows) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let own = translate(dbname, underscore);
    let number = |v: Option<&str>| v.and_then(|v| v.trim().parse::<f64>().ok());
    for row in rows.records() {
        if row.len() == 2 {
            let metric = row[0].1.unwrap_or("None");
            if let Some(v) = number(row[1].1) {
                out.push((fill(stat.path, &[("datname", &own), ("metric", metric)]), v));
            }
            continue;
        }
        let field = |name: &str| {
            row.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.unwrap_or("None").to_string())
        };
        let datname = field("datname")
            .map(|d| translate(&d, underscore))
            .unwrap_or_else(|| own.clone());
        let names: Vec<(&str, String)> = NAMING[1..]
            .iter()
            .map(|k| (*k, field(k).unwrap_or_else(|| "None".into())))
            .collect();
        for (key, value) in &row {
            if NAMING.contains(key) {
                continue;
            }
            let Some(v) = number(*value) else { continue };
            let mut fields: Vec<(&str, &str)> = vec![("datname", &datname), ("metric", key)];
            fields.extend(names.iter().map(|(k, v)| (*k, v.as_str())));
            out.push((fill(stat.path, &fields), v));
        }
    }
    out
}

/// The server's version as Diamond's `pg_version` compares it
/// (`15.4` -> 15.4, `9.6.24` -> 9.6, `16beta1` -> 16).
pub fn version_number(server_version: &str) -> Option<f64> {
    let digits: String = server_version
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = digits.split('.').filter(|p| !p.is_empty());
    let major = parts.next()?;
    match parts.next() {
        Some(minor) => format!("{major}.{minor}").parse().ok(),
        None => major.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_like_diamond() {
        let r = Rows::of(
            &["datname", "numbackends", "size"],
            &[&[Some("my_app"), Some("3"), Some("8000")]],
        );
        let m = metrics(stat("DatabaseStats").unwrap(), "postgres", true, &r);
        assert_eq!(
            m,
            vec![
                ("database.my.app.numbackends".into(), 3.0),
                ("database.my.app.size".into(), 8000.0)
            ]
        );
        // Two columns: metric, value; a NULL name prints as None.
        let r = Rows::of(
            &["datname", "connections"],
            &[&[None, Some("0")], &[Some("app"), Some("2")]],
        );
        let m = metrics(stat("DatabaseConnectionCount").unwrap(), "app", false, &r);
        assert_eq!(
            m,
            vec![
                ("database.None.connections".into(), 0.0),
                ("database.app.connections".into(), 2.0)
            ]
        );
        // Tables: schema and relation in the path; NULLs are left out.
        let r = Rows::of(
            &["relname", "schemaname", "seq_scan", "idx_scan"],
            &[&[Some("t"), Some("public"), Some("5"), None]],
        );
        let m = metrics(stat("UserTableStats").unwrap(), "app", false, &r);
        assert_eq!(m, vec![("app.tables.public.t.seq_scan".into(), 5.0)]);
        // DatabaseXidAge's quirk: the first database's name, then the row's.
        let r = Rows::of(&["datname", "age"], &[&[Some("postgres"), Some("731")]]);
        let m = metrics(stat("DatabaseXidAge").unwrap(), "app", false, &r);
        assert_eq!(m, vec![("app.datfrozenxid.postgres".into(), 731.0)]);
    }

    #[test]
    fn every_family_is_named_once_and_the_sets_exist() {
        for (i, s) in STATS.iter().enumerate() {
            assert!(STATS[..i].iter().all(|o| o.name != s.name), "{}", s.name);
            assert!(!s.sql(15.0).is_empty());
        }
        for n in BASIC.iter().chain(EXTENDED) {
            assert!(stat(n).is_some(), "{n}");
        }
        assert_eq!(STATS.len(), EXTENDED.len() + 1); // + WalSegmentStats
    }

    #[test]
    fn versions() {
        assert_eq!(
            version_number("15.18 (Debian 15.18-0+deb12u1)"),
            Some(15.18)
        );
        assert_eq!(version_number("9.6.24"), Some(9.6));
        assert_eq!(version_number("16beta1"), Some(16.0));
        assert_eq!(version_number("x"), None);
        let s = stat("ConnectionStateStats").unwrap();
        assert!(s.sql(15.0).contains("wait_event"));
        assert!(s.sql(9.2).contains("waiting THEN"));
        assert!(stat("WalSegmentStats")
            .unwrap()
            .sql(9.4)
            .contains("pg_xlog"));
    }
}
