//! The database collectors against Debian's real servers with passwords
//! on: PostgreSQL (SCRAM-SHA-256 and md5), PgBouncer (SCRAM), MariaDB
//! (mysql_native_password), each password from a secret reference (or
//! written in plaintext under an option the collector marks secret) and
//! found in no output, log, archive or spool file of the runs; TLS by the
//! host; and database "servers" that lie, stall or announce 4 GiB.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::databases::{self, MY_PASSWORD, PGB_PASSWORD, PG_MD5_PASSWORD, PG_PASSWORD};
use crate::common::{self};

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(crate) fn wdiamond(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("WD_TEST_PG_MD5", PG_MD5_PASSWORD)
        .env("WD_TEST_PGB", PGB_PASSWORD)
        .env(
            "WD_TEST_MY_DSN",
            format!("wd:{MY_PASSWORD}@127.0.0.1:{{port}}/None/main"),
        );
    c
}

/// `check`, `once` and a few seconds of `run` (log at debug, an archive
/// and a spool): every output, and the files under `dir` but `keep`.
/// Asserts none holds any of `secrets`; returns `once`'s stdout.
fn run_everywhere(dir: &Path, conf: &Path, env: &[(&str, String)], secrets: &[&str]) -> String {
    let conf = conf.to_str().unwrap();
    let with_env = |args: &[&str]| {
        let mut c = wdiamond(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };
    let mut seen = Vec::new();
    let o = with_env(&["check", conf]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    seen.push(("check", text(&o)));
    let o = with_env(&["inspect", conf]).output().unwrap();
    seen.push(("inspect", text(&o)));
    let once = with_env(&["once", conf, "--wait", "1.2"]).output().unwrap();
    seen.push(("once", text(&once)));
    let o = common::run_then_stop(
        with_env(&["run", conf, "--log-level", "debug"]),
        Duration::from_millis(3500),
    );
    assert!(o.status.success(), "{}", text(&o));
    seen.push(("run", text(&o)));
    for (what, out) in &seen {
        for s in secrets {
            assert!(!out.contains(s), "{what} shows a secret: {out}");
        }
    }
    let skip = |p: &Path| p.to_string_lossy().ends_with(".pass") || p.ends_with("wdiamond.toml");
    for s in secrets {
        let holding = common::files_holding(dir, s, skip);
        assert_eq!(holding, Vec::<String>::new(), "files holding a secret");
    }
    let files = common::files_holding(dir, "", skip).len();
    assert!(
        files >= 2,
        "no archive or spool was written under {}",
        dir.display()
    );
    let archive = std::fs::read_to_string(dir.join("archive.log")).unwrap_or_default();
    assert!(!archive.is_empty(), "the agent archived nothing");
    String::from_utf8_lossy(&once.stdout).into_owned()
}

fn header(dir: &Path) -> String {
    format!(
        "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n\n[handlers.archive]\nlog_file = {:?}\nspool_dir = {:?}\n\n[collectors.default]\ninterval = 1\nhostname = \"db\"\n\n",
        common::cache_dir(),
        dir.join("archive.log"),
        dir.join("spool"),
    )
}

/// The value of metric `name` in `once` output.
pub(crate) fn value(out: &str, name: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.strip_prefix(&format!("{name} ")))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .last()
}

#[test]
fn postgres_with_scram_and_md5_passwords_from_secrets() {
    let pg = databases::postgres();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pg.pass"), format!("{PG_PASSWORD}\n")).unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "{}[collectors.postgres]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"wd\"\npassword = {{ secret = \"file:pg.pass\" }}\nextended = true\n\n\
             [collectors.pgmd5]\nenabled = true\ncomponent = \"postgres\"\npath = \"pgmd5\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"wd_md5\"\npassword = {{ secret = \"env:WD_TEST_PG_MD5\" }}\n\n\
             [collectors.pgplain]\nenabled = true\ncomponent = \"postgres\"\npath = \"pgplain\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"wd\"\npassword = \"{PG_PASSWORD}\"\nmetrics = [\"LockStats\"]\n",
            header(dir.path()),
            port = pg.port,
        ),
    );
    let out = run_everywhere(dir.path(), &conf, &[], &[PG_PASSWORD, PG_MD5_PASSWORD]);
    let p = "servers.db.postgres";
    // Diamond's names, and values PostgreSQL itself gives.
    assert_eq!(
        value(&out, &format!("{p}.app.tables.public.t.n_live_tup")),
        Some(100.0),
        "{out}"
    );
    assert_eq!(
        value(&out, &format!("{p}.app.sizes.public.t.relsize")),
        Some(8192.0),
        "{out}"
    );
    assert!(
        value(&out, &format!("{p}.app.indexes.public.t.t_pkey.idx_scan")).unwrap() >= 1.0,
        "{out}"
    );
    for name in [
        "database.app.numbackends",
        "database.app.xact_commit",
        "database.app.size",
        "database.app.connections",
        "bgwriter.buffers_alloc",
        "transactions.commit",
        "app.connections.idle",
        "app.tuples.inserted",
        "app.scans.index",
        "app.longest_running.query",
        "app.datfrozenxid.app",
    ] {
        assert!(
            value(&out, &format!("{p}.{name}")).is_some(),
            "no {p}.{name} in {out}"
        );
    }
    // Every name is under one of Diamond's families' paths; `postgres`
    // itself is left out of the database statistics, as Diamond does.
    for line in out.lines().filter(|l| l.starts_with("servers.db.")) {
        let name = line.split(' ').next().unwrap();
        let rest = name.splitn(4, '.').nth(3).unwrap();
        assert!(
            ["database.", "app.", "bgwriter.", "transactions."]
                .iter()
                .any(|f| rest.starts_with(f)),
            "{name} is not one of Diamond's paths"
        );
        assert!(!rest.starts_with("database.postgres."), "{name}");
    }
    assert!(
        value(&out, "servers.db.pgmd5.database.app.size").is_some(),
        "md5 login: {out}"
    );
    assert!(
        out.contains("servers.db.pgplain.app.locks."),
        "plaintext password: {out}"
    );

    // A wrong password: the server's own words, nothing else stops.
    let conf = common::write_config(
        dir.path(),
        &format!(
            "{}[collectors.postgres]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\nuser = \"wd\"\npassword = \"wrong-Password-99\"\n\n[collectors.loadavg]\nenabled = true\n",
            header(dir.path()),
            pg.port
        ),
    );
    let o = wdiamond(&["once", conf.to_str().unwrap()])
        .output()
        .unwrap();
    let all = text(&o);
    assert!(
        all.contains("password authentication failed for user \"wd\" (SQLSTATE 28P01)"),
        "{all}"
    );
    assert!(all.contains("servers.db.loadavg.01 "), "{all}");
    assert!(!all.contains("wrong-Password-99"), "{all}");
}

#[test]
fn pgbouncer_admin_console_with_scram() {
    let pg = databases::postgres();
    let (_pgb, port, _pgb_dir) = databases::pgbouncer(&pg);
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "{}[collectors.pgbouncer]\nenabled = true\nuser = \"wd_stats\"\n\n[collectors.pgbouncer.instances.main]\nhost = \"127.0.0.1\"\nport = {port}\npassword = {{ secret = \"env:WD_TEST_PGB\" }}\n\n[collectors.pgbouncer.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n",
            header(dir.path()),
        ),
    );
    let out = run_everywhere(dir.path(), &conf, &[], &[PGB_PASSWORD]);
    let p = "servers.db.pgbouncer.main.pgbouncer";
    assert!(
        value(&out, &format!("{p}.cl_active")).unwrap() >= 1.0,
        "{out}"
    );
    assert!(
        value(&out, &format!("{p}.total_query_count")).unwrap() >= 1.0,
        "{out}"
    );
    assert!(value(&out, &format!("{p}.sv_idle")).is_some(), "{out}");
    assert!(
        !out.contains(".user ") && !out.contains(".pool_mode "),
        "{out}"
    );
}

#[test]
fn mariadb_status_and_innodb_with_a_native_password() {
    let (_db, port, _db_dir) = databases::mariadb();
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "{}[collectors.mysql]\nenabled = true\nhosts = [{{ secret = \"env:WD_TEST_MY_DSN\" }}]\ninnodb = true\n\n[collectors.mysql.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n\n\
             [collectors.mysql2]\nenabled = true\ncomponent = \"mysql\"\npath = \"mysql2\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"wd\"\npasswd = \"{MY_PASSWORD}\"\npublish = \"Threads_connected Uptime\"\n",
            header(dir.path()),
        ),
    );
    let dsn = format!("wd:{MY_PASSWORD}@127.0.0.1:{port}/None/main");
    let out = run_everywhere(
        dir.path(),
        &conf,
        &[("WD_TEST_MY_DSN", dsn)],
        &[MY_PASSWORD],
    );
    let p = "servers.db.mysql.main";
    assert!(
        value(&out, &format!("{p}.Threads_connected")).unwrap() >= 1.0,
        "{out}"
    );
    assert!(
        value(&out, &format!("{p}.Innodb_bp_size")).unwrap() > 0.0,
        "{out}"
    );
    assert!(
        value(&out, &format!("{p}.Innodb_status_process_time")).is_some(),
        "{out}"
    );
    // Counters are rates from the second run on (Diamond's derivative).
    assert!(value(&out, &format!("{p}.Questions")).is_some(), "{out}");
    let mine: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("servers.db.mysql2."))
        .collect();
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.db.mysql2.Threads_connected ")),
        "{out}"
    );
    assert!(
        mine.iter()
            .all(|l| l.contains(".Threads_connected ") || l.contains(".Uptime ")),
        "{mine:?}"
    );

    // A wrong password: MariaDB's error, the agent goes on.
    let conf = common::write_config(
        dir.path(),
        &format!(
            "{}[collectors.mysql]\nenabled = true\nhosts = [\"wd:wrong-Password-98@127.0.0.1:{port}/None\"]\n\n[collectors.mysql.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n",
            header(dir.path()),
        ),
    );
    let o = wdiamond(&["once", conf.to_str().unwrap()])
        .output()
        .unwrap();
    let all = text(&o);
    assert!(
        all.contains("ERROR 1045 (28000): Access denied for user 'wd'@'localhost'"),
        "{all}"
    );
    assert!(!all.contains("wrong-Password-98"), "{all}");
}

/// A "database" on a free port that answers each connection with `reply`
/// (then holds it open without a word more).
fn liar(reply: &'static [u8]) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 512];
            s.set_read_timeout(Some(Duration::from_millis(200))).ok();
            if reply.first() != Some(&10) && !reply.starts_with(b"\x0a\x00") {
                let _ = s.read(&mut buf); // PostgreSQL's client speaks first
            }
            let _ = s.write_all(reply);
            held.push(s);
        }
    });
    port
}

#[test]
fn database_servers_that_lie_stall_or_announce_4_gib_get_clear_errors_in_time() {
    let huge = liar(b"R\xff\xff\xff\xff");
    let garbage = liar(b"\x16\x03\x01\x02\x00 TLS or anything else");
    let stall = liar(b"");
    let my_huge = liar(b"\xff\xff\xff\x00");
    let dir = tempfile::tempdir().unwrap();
    let mut conf = format!(
        "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\n[collectors.default]\nhostname = \"h\"\n\n[collectors.loadavg]\nenabled = true\n",
        common::cache_dir()
    );
    for (name, component, port) in [
        ("pghuge", "postgres", huge),
        ("pggarbage", "postgres", garbage),
        ("pgstall", "postgres", stall),
        ("myhuge", "mysql", my_huge),
        ("mystall", "mysql", stall),
    ] {
        let who = if component == "mysql" {
            format!("hosts = [\"wd:x@127.0.0.1:{port}/None\"]\n[collectors.{name}.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n")
        } else {
            format!("host = \"127.0.0.1\"\nport = {port}\n")
        };
        conf += &format!("\n[collectors.{name}]\nenabled = true\ncomponent = \"{component}\"\npath = \"{name}\"\ntimeout = 2\n{who}");
    }
    let conf = common::write_config(dir.path(), &conf);
    let start = Instant::now();
    let o = wdiamond(&["once", conf.to_str().unwrap()])
        .output()
        .unwrap();
    let all = text(&o);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        all.contains("announced a message of 4294967295 bytes"),
        "{all}"
    );
    assert!(
        all.contains("does not speak PostgreSQL's protocol"),
        "{all}"
    );
    assert!(
        all.contains("announced a packet of 16777215 bytes"),
        "{all}"
    );
    // The stalled sessions end at their timeout, named.
    assert!(
        all.matches("timed out").count() + all.matches("timeout passed").count() >= 2,
        "{all}"
    );
    assert!(all.contains("servers.h.loadavg.01 "), "{all}");
}

/// CPU (user + system) of process `pid` so far, in seconds.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The agent's CPU per run of the config's collectors at interval 1, over
/// `runs` runs after a warm-up, less the same agent with none enabled.
fn agent_cpu_per_run(dir: &Path, body: &str, runs: u32) -> f64 {
    let measure = |body: &str| {
        let conf = common::write_config(dir, &format!("[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\n[collectors.default]\ninterval = 1\nhostname = \"b\"\n\n{body}", common::cache_dir()));
        let mut child = wdiamond(&["run", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let before = cpu_of(child.id());
        std::thread::sleep(Duration::from_secs(runs.into()));
        let used = cpu_of(child.id()) - before;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap();
        used / f64::from(runs)
    };
    measure(body) - measure("")
}

/// CPU of the children this process has waited for, so far.
fn children_cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// BENCHMARKS.md: the database collectors' CPU per run beside the servers'
/// own command-line clients doing the same queries with the same logins
/// (`psql` over libpq, `mariadb` over libmariadb: the native floor).
/// `cargo test --release --test all -- --ignored --nocapture databases::cpu_per_run`
#[test]
#[ignore]
fn cpu_per_run_beside_the_native_clients() {
    let runs = 20;
    let dir = tempfile::tempdir().unwrap();
    let pg = databases::postgres();
    let pg_body = |extended: bool| {
        format!("[collectors.postgres]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\nuser = \"wd\"\npassword = \"{PG_PASSWORD}\"\nextended = {extended}\n", pg.port)
    };
    for extended in [false, true] {
        let ours = agent_cpu_per_run(dir.path(), &pg_body(extended), runs);
        // psql: the database list from `postgres`, then each family's
        // query in `app` (one session each, as the collector has).
        let before = children_cpu();
        for _ in 0..runs {
            for (db, q) in [
                (
                    "postgres",
                    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate",
                ),
                (
                    "app",
                    if extended {
                        "SELECT * FROM pg_stat_database; SELECT * FROM pg_stat_activity; SELECT * FROM pg_stat_user_tables; SELECT * FROM pg_stat_user_indexes; SELECT * FROM pg_statio_user_tables; SELECT * FROM pg_statio_user_indexes; SELECT * FROM pg_locks; SELECT * FROM pg_stat_bgwriter; SELECT * FROM pg_class"
                    } else {
                        "SELECT * FROM pg_stat_database; SELECT datname, count(*) FROM pg_stat_activity GROUP BY 1"
                    },
                ),
            ] {
                let o = Command::new("psql")
                    .args([
                        "-X",
                        "-q",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &pg.port.to_string(),
                        "-U",
                        "wd",
                        "-d",
                        db,
                        "-c",
                        q,
                    ])
                    .env("PGPASSWORD", PG_PASSWORD)
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                assert!(o.success());
            }
        }
        let psql = (children_cpu() - before) / f64::from(runs);
        println!(
            "postgres extended={extended}: wdiamond {:.2} ms per run, psql {:.2} ms",
            ours * 1e3,
            psql * 1e3
        );
    }
    let (_db, port, _d) = databases::mariadb();
    let body = format!("[collectors.mysql]\nenabled = true\nhosts = [\"wd:{MY_PASSWORD}@127.0.0.1:{port}/None\"]\ninnodb = true\n[collectors.mysql.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n");
    let ours = agent_cpu_per_run(dir.path(), &body, runs);
    let before = children_cpu();
    for _ in 0..runs {
        let o = Command::new("mariadb")
            .args([
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "-u",
                "wd",
                &format!("-p{MY_PASSWORD}"),
                "-e",
                "SHOW GLOBAL STATUS; SHOW ENGINE INNODB STATUS",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(o.success());
    }
    let native = (children_cpu() - before) / f64::from(runs);
    println!(
        "mysql innodb=true: wdiamond {:.2} ms per run, mariadb client {:.2} ms",
        ours * 1e3,
        native * 1e3
    );
}

#[test]
fn tls_to_postgres_and_mariadb_is_the_hosts_after_their_own_requests() {
    let certs = databases::certs();
    let pg = databases::postgres_with(Some(&certs));
    let (_db, my_port, _my_dir) = databases::mariadb_with(Some(&certs));
    let dir = tempfile::tempdir().unwrap();
    let ca = certs.file("ca.pem");
    let section = |name: &str, component: &str, tls: &str, who: &str| {
        format!("\n[collectors.{name}]\nenabled = true\ncomponent = \"{component}\"\npath = \"{name}\"\ntimeout = 5\n{tls}{who}")
    };
    let pg_who = format!("host = \"127.0.0.1\"\nport = {}\nuser = \"wd_tls\"\npassword = \"{PG_PASSWORD}\"\nsslmode = \"verify-full\"\n", pg.port);
    let my_who = |n: &str| {
        format!("hosts = [\"wd_tls:{MY_PASSWORD}@127.0.0.1:{my_port}/None\"]\n[collectors.{n}.grants]\nconnect = [\"tcp:127.0.0.1:{my_port}\"]\n")
    };
    let with_ca = format!("tls = true\ntls_ca = {ca:?}\n");
    let mut conf = format!(
        "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\n[collectors.default]\nhostname = \"t\"\n",
        common::cache_dir()
    );
    conf += &section("pgtls", "postgres", &with_ca, &pg_who);
    // The system's roots do not know the test CA: refused, saying why.
    conf += &section("pgnoca", "postgres", "tls = true\n", &pg_who);
    // Without TLS, the server's own rule refuses the role.
    conf += &section(
        "pgplain",
        "postgres",
        "",
        &pg_who.replace("verify-full", "prefer"),
    );
    conf += &section("mytls", "mysql", &with_ca, &my_who("mytls"));
    conf += &section("myplain", "mysql", "", &my_who("myplain"));
    let conf = common::write_config(dir.path(), &conf);
    let o = wdiamond(&["once", conf.to_str().unwrap()])
        .output()
        .unwrap();
    let all = text(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    let pg_log = std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default();
    assert!(
        value(&out, "servers.t.pgtls.database.app.size").is_some(),
        "{all}\npostgres.log:\n{pg_log}"
    );
    assert!(
        value(&out, "servers.t.mytls.Threads_connected").is_some(),
        "{all}"
    );
    assert!(
        !out.contains("servers.t.pgnoca.")
            && !out.contains("servers.t.pgplain.")
            && !out.contains("servers.t.myplain."),
        "{all}"
    );
    assert!(all.contains("TLS with 127.0.0.1"), "{all}");
    assert!(
        all.contains("no encryption") || all.contains("pg_hba.conf rejects"),
        "{all}"
    );
    assert!(all.contains("Access denied for user 'wd_tls'"), "{all}");
    assert!(
        !all.contains(PG_PASSWORD) && !all.contains(MY_PASSWORD),
        "{all}"
    );
    // sslmode = require without `tls = true` is a configuration error.
    let bad = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.postgres]\nenabled = true\nsslmode = \"require\"\n",
            common::cache_dir()
        ),
    );
    let o = wdiamond(&["check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(
        text(&o).contains("needs TLS: set `tls = true` in this section"),
        "{}",
        text(&o)
    );
}
