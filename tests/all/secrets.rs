//! Secrets and the environment in the configuration, against a real
//! redis-server with a password: the password comes from a secret file
//! (`auth = { secret = "file:redis.pass" }`), the port from `${VAR}`. It
//! reaches redis (the metrics arrive, which needs AUTH) and no output
//! shows it: `check`, `once`, the agent's log as text and as JSON, a
//! plugin's rejection quoting it, a denial naming it (a plugin that tries
//! to open its secret as a file), the archive and the spool.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{self, servers};

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");
const SECRET: &str = "wd-Secret-7f3a9c";

fn wdiamond(args: &[&str], port: u16) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("WD_TEST_REDIS_PORT", port.to_string())
        .env("WD_TEST_LEAK", SECRET)
        .env_remove("WD_TEST_REDIS_HOST")
        .env_remove("WD_TEST_NOT_SET");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir` (the archive, the spool) holding the secret.
fn files_holding_the_secret(dir: &Path) -> Vec<String> {
    common::files_holding(dir, SECRET, |p| p.ends_with("redis.pass"))
}

#[test]
fn a_redis_password_from_a_secret_file_reaches_redis_and_no_output() {
    let (_redis, port) = servers::redis_with(&["--requirepass", SECRET]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("redis.pass"), format!("{SECRET}\n")).unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {cache:?}\n\n[handlers.archive]\nlog_file = {archive:?}\nspool_dir = {spool:?}\n\n[collectors.default]\ninterval = 1\nhostname = \"sec\"\n\n[collectors.redis]\nenabled = true\nhost = \"${{WD_TEST_REDIS_HOST:-127.0.0.1}}\"\nport = \"${{WD_TEST_REDIS_PORT}}\"\nauth = {{ secret = \"file:redis.pass\" }}\n\n[collectors.leaky]\nenabled = true\ncomponent = {leaky:?}\nmode = \"read\"\narg = {{ secret = \"env:WD_TEST_LEAK\" }}\n",
            cache = common::cache_dir(),
            archive = dir.path().join("archive.log"),
            spool = dir.path().join("spool"),
            leaky = common::test_guest("collector_misbehave"),
        ),
    );
    let conf = conf.to_str().unwrap();
    let redis_metric = format!(".redis.{port}.clients.connected ");

    // `check`: the configuration loads, nothing printed shows the secret.
    let o = wdiamond(&["check", conf], port).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(SECRET), "{}", text(&o));

    // `once`, text and JSON logs: redis answered (AUTH worked); the
    // plugin that opens its secret as a file is denied, and the denial
    // shows `[secret]`.
    for format in ["text", "json"] {
        let o = wdiamond(
            &["once", conf, "--wait", "0.5", "--log-format", format],
            port,
        )
        .output()
        .unwrap();
        let all = text(&o);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&redis_metric),
            "{all}"
        );
        assert!(!all.contains(SECRET), "{format}: {all}");
        assert!(all.contains("[secret]"), "{format}: no denial shown: {all}");
    }

    // The agent: its log at debug, the archive and the spool.
    let o = common::run_then_stop(
        wdiamond(&["run", conf, "--log-level", "debug"], port),
        Duration::from_millis(3500),
    );
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    assert!(log.contains("[secret]"), "{log}");
    let archive = std::fs::read_to_string(dir.path().join("archive.log")).unwrap();
    assert!(archive.contains(&redis_metric), "{archive}");
    assert_eq!(files_holding_the_secret(dir.path()), Vec::<String>::new());
}

#[test]
fn errors_about_secrets_and_variables_name_the_line_and_never_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| {
        let conf = common::write_config(
            dir.path(),
            &format!(
                "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\n[collectors.redis]\nenabled = true\n{body}",
                common::cache_dir()
            ),
        );
        let o = wdiamond(&["check", conf.to_str().unwrap()], 6379)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(78), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // A plugin rejecting a secret quotes it: shown as `[secret]`.
    let err = check("port = { secret = \"env:WD_TEST_LEAK\" }\n");
    assert!(
        err.contains("wdiamond.toml:7:1: `collectors.redis.port`") && err.contains("[secret]"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
    // An unset variable without a default, a missing secret file, a
    // secret that is not a reference.
    let err = check("host = \"${WD_TEST_NOT_SET}\"\n");
    assert!(
        err.contains("wdiamond.toml:7:1: `collectors.redis.host`: the environment variable WD_TEST_NOT_SET is not set"),
        "{err}"
    );
    let err = check("auth = { secret = \"file:nope.pass\" }\n");
    assert!(
        err.contains("`collectors.redis.auth`: cannot read the secret file")
            && err.contains("nope.pass"),
        "{err}"
    );
    let err = check("auth = { secret = \"vault:x\" }\n");
    assert!(
        err.contains("`collectors.redis.auth`: a secret is"),
        "{err}"
    );
}
