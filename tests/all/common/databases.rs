//! Debian's PostgreSQL, PgBouncer and MariaDB, started on free ports on
//! 127.0.0.1 in temp dirs with passwords on, and stopped when their handle
//! is dropped. PostgreSQL and PgBouncer refuse to run as root: under root
//! they run as the `postgres` user the PostgreSQL package creates.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{self, Killed};

/// The password of role `wd` (SCRAM-SHA-256).
pub const PG_PASSWORD: &str = "pg-Scram-Secret-41";
/// The password of role `wd_md5` (stored and checked as md5).
pub const PG_MD5_PASSWORD: &str = "pg-Md5-Secret-42";
/// The password of PgBouncer's stats user `wd_stats`.
pub const PGB_PASSWORD: &str = "pgb-Stats-Secret-43";
/// The password of MariaDB's user `wd`@`127.0.0.1`.
pub const MY_PASSWORD: &str = "my-Native-Secret-44";

/// The `postgres` user's uid and gid, when the tests run as root.
fn postgres_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("no postgres user (.ci/run installs postgresql, which creates it)");
    let f: Vec<&str> = line.split(':').collect();
    Some((f[2].parse().unwrap(), f[3].parse().unwrap()))
}

/// A temp dir the server's user owns.
fn server_dir(user: Option<(u32, u32)>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    dir
}

fn write_owned(path: &Path, text: &str, user: Option<(u32, u32)>) {
    std::fs::write(path, text).unwrap();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

fn as_user(c: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    c
}

/// PostgreSQL's server programs (`/usr/lib/postgresql/<newest>/bin`).
fn pg_bin(program: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (.ci/run installs it: apt-get install postgresql)")
        .flatten()
        .map(|e| e.path().join("bin").join(program))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .unwrap_or_else(|| panic!("no {program} under /usr/lib/postgresql"))
}

fn run_ok(c: &mut Command, what: &str) {
    let o = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A running PostgreSQL with roles `wd` (SCRAM) and `wd_md5` (md5), a
/// database `app` holding table `t` (100 rows, an index scanned once).
pub struct Postgres {
    _server: Killed,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (data, socket, log).
    pub dir: tempfile::TempDir,
}

impl Postgres {
    /// Runs SQL as the superuser over the Unix socket (trusted there).
    pub fn psql(&self, database: &str, sql: &str) {
        run_ok(
            Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(self.dir.path())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    database,
                    "-c",
                    sql,
                ]),
            &format!("psql {sql:?}"),
        );
    }
}

/// Starts PostgreSQL: SCRAM for everyone over TCP but `wd_md5` (md5),
/// trust for `postgres` on the Unix socket.
pub fn postgres() -> Postgres {
    postgres_with(None)
}

/// A CA and a server certificate for 127.0.0.1 and `localhost` it signs
/// (`ca.pem`, `server.pem`, `server.key`), made by openssl.
pub struct Certs {
    /// Where the files are.
    pub dir: tempfile::TempDir,
}

impl Certs {
    /// The path of one of the files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Makes [`Certs`]; the server's key readable by the server's user only.
pub fn certs() -> Certs {
    let dir = server_dir(postgres_user());
    let d = dir.path();
    let openssl = |args: &[&str]| {
        run_ok(
            Command::new("openssl").args(args).current_dir(d),
            &format!("openssl {args:?}"),
        )
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=wdiamond db test ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&ca);
    std::fs::write(d.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&req);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    let user = postgres_user();
    for f in ["server.key", "server.pem", "ca.pem"] {
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(d.join(f), Some(uid), Some(gid)).unwrap();
        }
    }
    std::fs::set_permissions(
        d.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    Certs { dir }
}

/// [`postgres`], with TLS on when `certs` are given; role `wd_tls`
/// (SCRAM, password [`PG_PASSWORD`]) may log in over TLS only.
pub fn postgres_with(certs: Option<&Certs>) -> Postgres {
    let user = postgres_user();
    let dir = server_dir(user);
    let data = dir.path().join("data");
    let pwfile = dir.path().join("initpw");
    write_owned(&pwfile, "unused-superuser-password\n", user);
    run_ok(
        as_user(&mut Command::new(pg_bin("initdb")), user)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
                "--pwfile",
            ])
            .arg(&pwfile),
        "initdb",
    );
    write_owned(
        &data.join("pg_hba.conf"),
        "local all postgres trust\nhostnossl all wd_tls 127.0.0.1/32 reject\nhost all wd_md5 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n",
        user,
    );
    let port = common::free_port();
    let mut tls = Vec::new();
    if let Some(c) = certs {
        tls = vec![
            "-c".to_string(),
            "ssl=on".to_string(),
            "-c".to_string(),
            format!("ssl_cert_file={}", c.file("server.pem").display()),
            "-c".to_string(),
            format!("ssl_key_file={}", c.file("server.key").display()),
        ];
    }
    let child = as_user(&mut Command::new(pg_bin("postgres")), user)
        .arg("-D")
        .arg(&data)
        .args(&tls)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-k",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("postgres.log")).unwrap())
        .spawn()
        .unwrap();
    let server = Killed(child);
    common::wait_listening(port, Duration::from_secs(30), "postgres");
    let pg = Postgres {
        _server: server,
        port,
        dir,
    };
    // The socket appears just after the TCP port; psql retries are cheap.
    for attempt in 0.. {
        let ok = Command::new("psql")
            .args(["-X", "-q", "-h"])
            .arg(pg.dir.path())
            .args(["-p", &port.to_string(), "-U", "postgres", "-c", "SELECT 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if ok {
            break;
        }
        assert!(attempt < 100, "postgres does not answer psql");
        std::thread::sleep(Duration::from_millis(100));
    }
    pg.psql("postgres", &format!("SET password_encryption = 'md5'; CREATE ROLE wd_md5 LOGIN PASSWORD '{PG_MD5_PASSWORD}'"));
    pg.psql(
        "postgres",
        &format!("CREATE ROLE wd LOGIN PASSWORD '{PG_PASSWORD}' IN ROLE pg_monitor"),
    );
    pg.psql(
        "postgres",
        &format!("CREATE ROLE wd_tls LOGIN PASSWORD '{PG_PASSWORD}' IN ROLE pg_monitor"),
    );
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g; ANALYZE t; SET enable_seqscan = off; SELECT v FROM t WHERE id = 5",
    );
    pg
}

/// A PgBouncer in front of `pg` (database `app`), SCRAM for its stats user
/// `wd_stats`; its handle and port.
pub fn pgbouncer(pg: &Postgres) -> (Killed, u16, tempfile::TempDir) {
    let user = postgres_user();
    let dir = server_dir(user);
    let port = common::free_port();
    let users = dir.path().join("users.txt");
    write_owned(&users, &format!("\"wd_stats\" \"{PGB_PASSWORD}\"\n"), user);
    let ini = dir.path().join("pgbouncer.ini");
    write_owned(
        &ini,
        &format!(
            "[databases]\napp = host=127.0.0.1 port={} dbname=app\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {}\nstats_users = wd_stats\nlogfile = {}\n",
            pg.port,
            users.display(),
            dir.path().join("pgbouncer.log").display()
        ),
        user,
    );
    let program = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("pgbouncer is not installed (.ci/run installs it: apt-get install pgbouncer)");
    let child = as_user(&mut Command::new(program), user)
        .arg(&ini)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Killed(child);
    common::wait_listening(port, Duration::from_secs(20), "pgbouncer");
    (server, port, dir)
}

/// A MariaDB with user `wd`@`127.0.0.1` (mysql_native_password, PROCESS
/// and REPLICATION CLIENT); its handle and port.
pub fn mariadb() -> (Killed, u16, tempfile::TempDir) {
    mariadb_with(None)
}

/// [`mariadb`], with TLS on when `certs` are given; user `wd_tls`
/// (password [`MY_PASSWORD`]) must use it (`REQUIRE SSL`).
pub fn mariadb_with(certs: Option<&Certs>) -> (Killed, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sock = dir.path().join("sock");
    run_ok(
        Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display())),
        "mariadb-install-db",
    );
    let port = common::free_port();
    let program = ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mariadbd is not installed (.ci/run installs it: apt-get install mariadb-server)");
    let child = Command::new(program)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!(
            "--log-error={}",
            dir.path().join("error.log").display()
        ))
        .args([
            "--bind-address=127.0.0.1",
            "--user=root",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
        ])
        .args(
            certs
                .map(|c| {
                    vec![
                        format!("--ssl-cert={}", c.file("server.pem").display()),
                        format!("--ssl-key={}", c.file("server.key").display()),
                        format!("--ssl-ca={}", c.file("ca.pem").display()),
                    ]
                })
                .unwrap_or_default(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Killed(child);
    common::wait_listening(port, Duration::from_secs(30), "mariadbd");
    run_ok(
        Command::new("mariadb")
            .args(["--no-defaults", "-u", "root", "-S"])
            .arg(&sock)
            .args([
                "-e",
                &format!("CREATE USER 'wd'@'127.0.0.1' IDENTIFIED BY '{MY_PASSWORD}'; GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'wd'@'127.0.0.1'; CREATE USER 'wd_tls'@'127.0.0.1' IDENTIFIED BY '{MY_PASSWORD}' REQUIRE SSL; GRANT PROCESS ON *.* TO 'wd_tls'@'127.0.0.1'"),
            ]),
        "mariadb (creating the user)",
    );
    (server, port, dir)
}
