//! `wdiamond config`: the complete sample configuration names every
//! built-in, `check` accepts it as printed, and with every plugin switched
//! on at its printed defaults; a filter prints only what it names.

use std::process::{Command, Output};

use crate::common;

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

fn config(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("config")
        .args(args)
        .env("XDG_CACHE_HOME", common::cache_dir().parent().unwrap())
        .output()
        .unwrap()
}

fn check(dir: &std::path::Path, text: &str) -> Output {
    // The tests' component cache, so nothing compiles twice.
    let text = text.replacen(
        "# plugin_cache_dir = \"~/.cache/wdiamond\"",
        &format!("plugin_cache_dir = {:?}", common::cache_dir()),
        1,
    );
    let path = common::write_config(dir, &text);
    Command::new(BIN).arg("check").arg(&path).output().unwrap()
}

/// The sample with every `# key = value` line of the plugin sections
/// uncommented, every collector enabled, and every handler section on and
/// named in `[server] handlers`.
fn everything_on(sample: &str, handlers: &[&str]) -> String {
    let mut out = String::new();
    let mut in_plugin = false;
    for line in sample.lines() {
        let bare = line.strip_prefix("# ").unwrap_or(line);
        // (`bare`: a section header, commented out or not.)
        if line.starts_with('[') || line.starts_with("# [") {
            in_plugin = (bare.starts_with("[collectors.") && bare != "[collectors.default]")
                || (bare.starts_with("[handlers.") && bare != "[handlers.default]");
        }
        let line = if line.starts_with("handlers = ") {
            format!("handlers = {handlers:?}")
        } else if in_plugin {
            // `# key = value` (and a commented-out handler's `# # key`)
            // set; `## help` (and `# ## help`) stay comments.
            let mut set = line;
            while let Some(rest) = set.strip_prefix("# ") {
                set = rest;
            }
            set.replace("enabled = false", "enabled = true")
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn the_sample_names_every_built_in_and_check_accepts_it() {
    let o = config(&[]);
    let sample = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut handlers = Vec::new();
    for name in wdiamond::plugin::builtin_names() {
        let collector = sample.contains(&format!("\n[collectors.{name}]\nenabled = false\n"));
        let handler = sample.contains(&format!("\n# [handlers.{name}]\n"))
            || sample.contains(&format!("\n[handlers.{name}]\n"));
        assert!(collector ^ handler, "{name} in:\n{sample}");
        if handler {
            handlers.push(name);
        }
    }
    // Every option of a built-in is there with its help, e.g. cpu's.
    assert!(
        sample.contains("## Collect metrics per cpu core or just total\n# percore = true\n"),
        "{sample}"
    );
    let dir = tempfile::tempdir().unwrap();
    let o = check(dir.path(), &sample);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Every plugin on at the defaults the sample prints: the plugins take
    // them (each exporter on its own address).
    let mut on = everything_on(&sample, &handlers);
    let mut port = 9108;
    while on.contains("listen = \"127.0.0.1:9108\"") {
        port += 1;
        on = on.replacen(
            "listen = \"127.0.0.1:9108\"",
            &format!("listen = \"127.0.0.1:{port}\""),
            1,
        );
    }
    let o = check(dir.path(), &on);
    assert!(
        o.status.success(),
        "{}\n{on}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_filter_prints_only_what_it_names_and_an_unknown_name_is_refused() {
    let o = config(&["cpu", "graphite"]);
    let sample = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        sample.contains("\n[collectors.cpu]\n") && sample.contains("\n# [handlers.graphite]\n")
    );
    assert!(!sample.contains("[collectors.memory]") && !sample.contains("[handlers.statsd]"));
    // The server and default sections are always there.
    assert!(sample.contains("[server]\n") && sample.contains("[collectors.default]\n"));

    let o = config(&["cpuu"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no built-in plugin named \"cpuu\"") && err.contains("cpu, memory"),
        "{err}"
    );
}
