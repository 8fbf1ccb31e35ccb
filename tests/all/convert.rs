//! `wdiamond convert`: Diamond's own example configuration (from its PyPI
//! release, fetched by the tests) and a configuration of ours covering
//! each rule become TOML that `wdiamond check` accepts, with a report of
//! what was not carried over, each with its file and line; exit 0 / 1 / 78.

use std::path::Path;
use std::process::{Command, Output};

use crate::common;

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

fn wdiamond(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("XDG_CACHE_HOME", common::cache_dir().parent().unwrap())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Converts `conf` into `out` and checks the result: the report.
fn convert_and_check(conf: &Path, out: &Path, expect: i32) -> String {
    let o = wdiamond(&[
        "convert",
        conf.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let report = stderr(&o);
    assert_eq!(o.status.code(), Some(expect), "{report}");
    let toml = std::fs::read_to_string(out).unwrap();
    let c = wdiamond(&["check", out.to_str().unwrap()]);
    assert!(
        c.status.success(),
        "check refused the conversion:\n{}\n{toml}",
        stderr(&c)
    );
    report
}

#[test]
fn diamonds_example_configuration_converts_and_checks() {
    let unpacked = common::diamond::pypi("diamond", common::diamond::VERSION);
    let example = [
        "etc/diamond/diamond.conf.example",
        "diamond-4.0.515/conf/diamond.conf.example",
    ]
    .iter()
    .map(|p| unpacked.join(p))
    .find(|p| p.is_file())
    .expect("diamond.conf.example in Diamond's release");
    let dir = tempfile::tempdir().unwrap();
    // Its archive in a temp dir rather than /var/log/diamond (check
    // creates the directories handlers may write in).
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("/var/log/diamond", &dir.path().display().to_string());
    let conf = dir.path().join("diamond.conf");
    std::fs::write(&conf, &text).unwrap();
    let out = dir.path().join("wdiamond.toml");
    // Everything it sets has a place here or a reason not to: exit 0.
    let report = convert_and_check(&conf, &out, 0);
    let toml = std::fs::read_to_string(&out).unwrap();
    for want in [
        "handlers = [\"graphite\", \"archive\"]\n",
        "[handlers.graphite]\nhost = \"127.0.0.1\"\nport = 2003\ntimeout = 15\nbatch = 1\n",
        "[handlers.archive]\nlog_file = ",
        "days = 7\n",
        "[collectors.cpu]\nenabled = true\n",
        "[collectors.vmstat]\nenabled = true\n",
    ] {
        assert!(toml.contains(want), "{want:?} not in:\n{toml}");
    }
    let line = |needle: &str| {
        text.lines()
            .position(|l| l.trim_start().starts_with(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle} not in the example"))
    };
    for want in [
        format!(
            "diamond.conf:{}: [server] `pid_file` is not carried over",
            line("pid_file")
        ),
        format!(
            "diamond.conf:{}: [[MySQLHandler]] is defined but not in [server] handlers",
            line("[[MySQLHandler]]")
        ),
        format!(
            "diamond.conf:{}: [loggers] is Python logging's",
            line("[loggers]")
        ),
    ] {
        assert!(
            report.contains(&want),
            "{want:?} not in the report:\n{report}"
        );
    }
}

/// Diamond's Windows example: its archive path is a Windows one (not
/// carried over: exit 1), everything else converts, and check accepts it.
#[test]
fn diamonds_windows_example_converts_and_checks() {
    let unpacked = common::diamond::pypi("diamond", common::diamond::VERSION);
    let example = unpacked.join("etc/diamond/diamond.conf.example.windows");
    assert!(
        example.is_file(),
        "{} is not in Diamond's release",
        example.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("diamond.conf");
    std::fs::copy(&example, &conf).unwrap();
    let out = dir.path().join("wdiamond.toml");
    let report = convert_and_check(&conf, &out, 1);
    assert!(
        report.contains("is a Windows path; not carried over"),
        "{report}"
    );
    assert!(
        report.contains("`enabled` is left out: a handler is on when [server] handlers names it"),
        "{report}"
    );
    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(
        toml.contains("[collectors.cpu]\nenabled = true\n"),
        "{toml}"
    );
}

#[test]
fn each_rule_of_the_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("collectors")).unwrap();
    std::fs::create_dir_all(d.join("scripts/foo")).unwrap();
    std::fs::write(d.join("collectors/CPUCollector.conf"), "percore = True\n").unwrap();
    std::fs::write(
        d.join("scripts/foo/foo.py"),
        "import diamond.collector\n\n\nclass FooCollector(diamond.collector.Collector):\n    def get_default_config(self):\n        config = super(FooCollector, self).get_default_config()\n        config.update({'path': 'foo', 'host': 'localhost', 'port': 1})\n        return config\n\n    def collect(self):\n        self.publish('up', 1)\n",
    )
    .unwrap();
    let conf = d.join("diamond.conf");
    std::fs::write(
        &conf,
        "[server]\nhandlers = diamond.handler.archive.ArchiveHandler, diamond.handler.zmq.ZmqHandler\nuser = diamond\npid_file = diamond.pid\ncollectors_path = scripts\ncollectors_config_path = collectors\n\n[handlers]\n[[default]]\ndays = 3\n[[ArchiveHandler]]\nlog_file = archive.log\n[[GraphiteHandler]]\nhost = graphite.internal\n\n[collectors]\n[[default]]\ninterval = 30\nhostname_method = fqdn\nsplay = 1\n[[CPUCollector]]\nenabled = True\npercore = False\n[[NetworkCollector]]\nenabled = True\ninterfaces = eth, bond\n[[MySQLCollector db2]]\nenabled = True\nhosts = u:p@127.0.0.1:3307/None,\n[[FooCollector]]\nenabled = True\nhost = 127.0.0.1\nport = 9999\n[[NoSuchCollector]]\nenabled = True\n[[MemoryCollector]]\nenabled = True\nbogus_option = 1\n",
    )
    .unwrap();
    let out = d.join("wdiamond.toml");
    let report = convert_and_check(&conf, &out, 1);
    let toml = std::fs::read_to_string(&out).unwrap();
    let script = d.join("scripts/foo/foo.py");
    for want in [
        "handlers = [\"archive\"]\n".to_string(),
        format!("[handlers.archive]\ndays = 3\nlog_file = {:?}\n", d.join("archive.log").display().to_string()),
        "[collectors.default]\ninterval = 30\nhostname_method = \"fqdn\"\n".into(),
        // CPUCollector.conf overrides the main file, as Diamond merges.
        "[collectors.cpu]\nenabled = true\npercore = true\n".into(),
        "interfaces = [\"eth\", \"bond\"]\n".into(),
        "[collectors.mysql_db2]\ncomponent = \"mysql\"\npath = \"mysql.db2\"\nenabled = true\nhosts = [\"u:p@127.0.0.1:3307/None\"]\n".into(),
        format!("[collectors.foo]\ncomponent = {:?}\nenabled = true\nhost = \"127.0.0.1\"\nport = 9999\n[collectors.foo.grants]\nconnect = [\"tcp:127.0.0.1:9999\"]\n", script.display().to_string()),
    ] {
        assert!(toml.contains(&want), "{want:?} not in:\n{toml}");
    }
    assert!(
        !toml.contains("nosuch") && !toml.contains("bogus") && !toml.contains("splay"),
        "{toml}"
    );
    for want in [
        "diamond.conf:2: not carried over: handler diamond.handler.zmq.ZmqHandler has no built-in equivalent",
        "diamond.conf:3: [server] `user` is not carried over",
        "diamond.conf:12: [[ArchiveHandler]]: `log_file` \"archive.log\" is relative: written as",
        "diamond.conf:13: [[GraphiteHandler]] is defined but not in [server] handlers",
        "diamond.conf:20: [[default]]: `splay` is not carried over",
        "[[FooCollector]]: no built-in; runs Diamond's script",
        "diamond.conf:34: not carried over: [[NoSuchCollector]]: no built-in",
        "diamond.conf:38: not carried over: [[MemoryCollector]]: `bogus_option` has no equivalent here",
    ] {
        assert!(report.contains(want), "{want:?} not in the report:\n{report}");
    }

    // Nothing lost: exit 0. Not configobj: exit 78 with the line.
    std::fs::write(&conf, "[server]\nhandlers = diamond.handler.archive.ArchiveHandler\n[handlers]\n[[ArchiveHandler]]\nlog_file = a.log\n").unwrap();
    convert_and_check(&conf, &out, 0);
    std::fs::write(&conf, "[server]\nhandlers = x\n[collectors\n").unwrap();
    let o = wdiamond(&["convert", conf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("diamond.conf: line 3: "),
        "{}",
        stderr(&o)
    );
}
