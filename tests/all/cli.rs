//! The commands around the agent on bad and hostile input: `inspect` and
//! `once` on files that are not plugins, plugins of the wrong world or
//! contract, and a `describe` that spins or allocates without bound; pins;
//! `check`'s summary and review; where colour and JSON logs go.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

/// Runs the binary, failing the test if it has not ended in 60 s (a hang).
fn wdiamond(args: &[&str]) -> Output {
    wdiamond_env(args, &[])
}

/// [`wdiamond`] with environment variables set.
fn wdiamond_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    common::wdiamond_within(args, env, Duration::from_secs(60))
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A built guest with every `@0.1.1`-style contract version replaced
/// (same length, so the component stays well-formed).
fn with_contract(dir: &Path, guest: &str, version: &str) -> PathBuf {
    let host = wdiamond::plugin::contract::host_version().to_string();
    assert_eq!(host.len(), version.len());
    let mut bytes = std::fs::read(common::test_guest(guest)).unwrap();
    let prefix = b"wdiamond:plugin/";
    let mut i = 0;
    let mut replaced = 0;
    while let Some(at) = bytes[i..].windows(prefix.len()).position(|w| w == prefix) {
        let name = i + at + prefix.len();
        i = name;
        let Some(sign) = bytes[name..].iter().take(64).position(|&b| b == b'@') else {
            continue;
        };
        let v = name + sign + 1;
        if bytes[v..].starts_with(host.as_bytes()) {
            bytes[v..v + host.len()].copy_from_slice(version.as_bytes());
            replaced += 1;
        }
    }
    assert!(replaced > 0);
    let out = bytes;
    let p = dir.join(format!("{guest}-{version}.wasm"));
    std::fs::write(&p, out).unwrap();
    p
}

fn config(dir: &Path, body: &str) -> String {
    common::write_config(
        dir,
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n{body}",
            common::cache_dir()
        ),
    )
    .to_string_lossy()
    .into_owned()
}

#[test]
fn inspect_refuses_what_is_not_a_plugin_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"#!/bin/sh\necho hi\n").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let broken = dir.path().join("broken.wasm");
    let mut b = std::fs::read(common::test_guest("collector_loadavg")).unwrap();
    b.truncate(b.len() / 2);
    std::fs::write(&broken, b).unwrap();
    let missing = dir.path().join("missing.wasm");
    let newer = with_contract(dir.path(), "collector_loadavg", "0.9.0");
    for (file, says) in [
        (&junk, "not a WebAssembly file"),
        (&core, "core WebAssembly module, not a component"),
        (&broken, "compiling"),
        (&missing, "missing.wasm"),
        (&newer, "wdiamond:plugin@0.9.0"),
    ] {
        let o = wdiamond(&["inspect", file.to_str().unwrap()]);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{}: {e}", file.display());
        assert!(e.contains(says), "{}: {e}", file.display());
        assert!(!e.contains("panicked"), "{e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
        assert!(out(&o).is_empty());
    }
    // The contract error names both versions.
    let e = err(&wdiamond(&["inspect", newer.to_str().unwrap()]));
    assert!(
        e.contains(&format!(
            "wdiamond:plugin@{}",
            wdiamond::plugin::contract::host_version()
        )),
        "{e}"
    );
}

#[test]
fn inspect_ends_a_describe_that_spins_or_allocates_without_bound() {
    for (guest, says) in [
        ("collector_describe_spin", "timeout"),
        ("collector_describe_hog", "memory"),
        ("collector_stall", "timeout"),
    ] {
        let start = Instant::now();
        let o = wdiamond(&["inspect", common::test_guest(guest).to_str().unwrap()]);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{guest}: {e}");
        assert!(
            e.contains("describe failed") && e.contains(says),
            "{guest}: {e}"
        );
        // Bounded by the setup deadline, not by the test's own timeout.
        assert!(start.elapsed() < Duration::from_secs(55), "{guest}");
    }
}

#[test]
fn inspect_shows_a_handler_and_a_garbage_describe_is_refused() {
    let o = wdiamond(&[
        "inspect",
        "--json",
        common::test_guest("handler_graphite").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["world"], "handler");
    assert_eq!(j["name"], "graphite");
    assert!(j["capabilities"][0]["kind"] == "connect", "{j}");
    assert!(j["compiled_size"].as_u64().unwrap() > j["size"].as_u64().unwrap() / 2);
    let o = wdiamond(&[
        "inspect",
        common::test_guest("collector_bad_describe")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("describes itself badly"), "{}", err(&o));
}

#[test]
fn the_wrong_world_or_contract_is_a_config_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let handler = common::test_guest("handler_graphite");
    let conf = config(
        dir.path(),
        &format!("[collectors.x]\nenabled = true\ncomponent = {handler:?}\n"),
    );
    for cmd in ["check", "once"] {
        let o = wdiamond(&[cmd, &conf]);
        assert_eq!(o.status.code(), Some(78), "{cmd}: {}", err(&o));
        assert!(
            err(&o).contains("it is a handler component, but a collector is configured here"),
            "{}",
            err(&o)
        );
    }
    // `once` loads what `run` loads: each of these is a configuration
    // error, bounded, never a hang or a panic.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"MZ\x90\0not wasm").unwrap();
    let not_plugin = dir.path().join("not-plugin.wasm");
    let b = std::fs::read(common::test_guest("collector_loadavg")).unwrap();
    let from = b"wdiamond:plugin/collector@";
    let mut b2 = b.clone();
    let mut i = 0;
    while let Some(at) = b2[i..].windows(from.len()).position(|w| w == from) {
        b2[i + at + 16..i + at + 25].copy_from_slice(b"collectox");
        i += at + from.len();
    }
    std::fs::write(&not_plugin, b2).unwrap();
    // Compile bombs: one function larger than a plugin's function may be
    // (one of 7.6 MB took 44 s and 3.8 GB to compile), and more code in
    // all than a plugin may have; measured and refused, never compiled.
    let big_function = dir.path().join("big-function.wasm");
    std::fs::write(
        &big_function,
        wdiamond::plugin::code_bound::synthetic(1, 2 << 20),
    )
    .unwrap();
    let much_code = dir.path().join("much-code.wasm");
    std::fs::write(
        &much_code,
        wdiamond::plugin::code_bound::synthetic(200, 200 << 10),
    )
    .unwrap();
    for (file, says) in [
        (
            big_function,
            "a plugin's function may have: compiling it could take",
        ),
        (much_code, "more than 32 MiB of code"),
        (core.clone(), "core WebAssembly module"),
        (junk, "not a WebAssembly file"),
        (not_plugin.clone(), "it is not a wdiamond plugin"),
        (
            common::test_guest("collector_describe_spin"),
            "does not describe itself",
        ),
        (
            common::test_guest("collector_describe_hog"),
            "does not describe itself",
        ),
    ] {
        let conf = config(
            dir.path(),
            &format!("[collectors.x]\nenabled = true\npath = \"x\"\ncomponent = {file:?}\n"),
        );
        let o = wdiamond(&["once", &conf]);
        assert_eq!(o.status.code(), Some(78), "{}: {}", file.display(), err(&o));
        assert!(
            err(&o).contains(says) && !err(&o).contains("panicked"),
            "{}: {}",
            file.display(),
            err(&o)
        );
    }
    let o = wdiamond(&["inspect", not_plugin.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("it is not a wdiamond plugin"),
        "{}",
        err(&o)
    );

    let next_major = with_contract(dir.path(), "collector_loadavg", "1.0.0");
    let conf = config(
        dir.path(),
        &format!("[collectors.x]\nenabled = true\npath = \"x\"\ncomponent = {next_major:?}\n"),
    );
    let o = wdiamond(&["check", &conf]);
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
    let host = wdiamond::plugin::contract::host_version();
    assert!(
        err(&o).contains("wdiamond:plugin@1.0.0")
            && err(&o).contains(&format!("wdiamond:plugin@{host}"))
            && err(&o).contains("wdiamond.toml:7:"),
        "{}",
        err(&o)
    );
}

#[test]
fn a_plugin_built_against_an_older_compatible_contract_runs() {
    let host = wdiamond::plugin::contract::host_version();
    assert!(
        host.patch > 0,
        "the test needs an older patch version to build against"
    );
    let older = format!("{}.{}.{}", host.major, host.minor, host.patch - 1);
    let dir = tempfile::tempdir().unwrap();
    let wasm = with_contract(dir.path(), "collector_loadavg", &older);
    let o = wdiamond(&["inspect", wasm.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&format!("contract wdiamond:plugin@{older}")),
        "{}",
        out(&o)
    );
    let conf = config(
        dir.path(),
        &format!("[collectors.old]\nenabled = true\npath = \"old\"\nhostname = \"h\"\ncomponent = {wasm:?}\n[collectors.old.grants]\nfiles = [\"/proc/loadavg\"]\n"),
    );
    let o = wdiamond(&["once", &conf, "--wait", "0"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o).matches("servers.h.old.01 ").count(),
        2,
        "{}",
        out(&o)
    );
}

#[test]
fn once_prints_two_runs_sends_nothing_and_fails_on_a_denial() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.log");
    let misbehave = common::test_guest("collector_misbehave");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\nhostname = \"h\"\n[collectors.loadavg]\nenabled = true\n[collectors.cpu]\nenabled = true\n[collectors.shadow]\ncomponent = {misbehave:?}\nmode = \"read\"\narg = \"/etc/shadow\"\n",
            common::cache_dir()
        ),
    );
    let conf = conf.to_str().unwrap();
    // Every enabled collector: lines, twice; the disabled one not at all.
    let o = wdiamond(&["once", conf, "--wait", "0.5"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o).matches("servers.h.loadavg.01 ").count(),
        2,
        "{}",
        out(&o)
    );
    // cpu's rates need two samples: the second run has them.
    assert!(out(&o).contains("servers.h.cpu.total.idle "), "{}", out(&o));
    assert!(!archive.exists(), "once must not reach a handler");
    // JSON, one named collector.
    let o = wdiamond(&["once", conf, "loadavg", "--wait", "0", "--format", "json"]);
    assert!(o.status.success(), "{}", err(&o));
    let metrics: Vec<serde_json::Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(metrics.iter().all(|m| m["collector"] == "loadavg"));
    assert!(metrics
        .iter()
        .any(|m| m["run"] == 2 && m["path"] == "servers.h.loadavg.01"));
    // A named disabled collector runs; its denial names the line to add and fails the command.
    let o = wdiamond(&["once", conf, "shadow", "--wait", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("add \"/etc/shadow\" to [collectors.shadow.grants] files")
            && err(&o).contains("collectors.shadow: 2 of 2 runs failed; 2 host calls denied"),
        "{}",
        err(&o)
    );
    // An unknown name is a configuration error listing the known ones.
    let o = wdiamond(&["once", conf, "nosuch"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        err(&o).contains("no collector named \"nosuch\"")
            && err(&o).contains("cpu, loadavg, shadow"),
        "{}",
        err(&o)
    );
}

#[test]
fn pins_are_checked_and_bad_pins_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("up.wasm");
    std::fs::copy(common::test_guest("collector_loadavg"), &wasm).unwrap();
    let digest = wdiamond::plugin::hex_sha256(&std::fs::read(&wasm).unwrap());
    let section = |pin: &str| {
        config(
            dir.path(),
            &format!(
                "[collectors.up]\nenabled = true\npath = \"up\"\ncomponent = \"up.wasm\"\n{pin}\n"
            ),
        )
    };
    let conf = section(&format!("sha256 = \"{}\"", digest.to_uppercase()));
    let o = wdiamond(&["check", &conf]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&format!("pinned: sha256 = \"{digest}\"")),
        "{}",
        out(&o)
    );
    // A changed file (a byte past the header): refused, even though the
    // old one is in the compiled cache.
    let mut b = std::fs::read(&wasm).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    std::fs::write(&wasm, &b).unwrap();
    let o = wdiamond(&["check", &conf]);
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
    assert!(
        err(&o).contains("wdiamond.toml:8:")
            && err(&o).contains("`collectors.up.sha256`")
            && err(&o).contains(&digest),
        "{}",
        err(&o)
    );
    for (pin, says) in [
        ("sha256 = \"abc\"", "64 hex digits"),
        ("sha256 = 5", "expected a string"),
    ] {
        let o = wdiamond(&["check", &section(pin)]);
        assert_eq!(o.status.code(), Some(78), "{pin}");
        assert!(err(&o).contains(says), "{pin}: {}", err(&o));
    }
    let conf = config(
        dir.path(),
        &format!("[collectors.loadavg]\nenabled = true\nsha256 = \"{digest}\"\n"),
    );
    let o = wdiamond(&["check", &conf]);
    assert_eq!(o.status.code(), Some(78));
    assert!(err(&o).contains("built-in component"), "{}", err(&o));
}

#[test]
fn check_summarises_many_collectors_by_component() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..40 {
        body.push_str(&format!(
            "[collectors.l{i}]\nenabled = true\ncomponent = \"{}\"\n",
            if i % 4 == 0 { "uptime" } else { "loadavg" }
        ));
    }
    let o = wdiamond(&["check", &config(dir.path(), &body)]);
    assert!(o.status.success(), "{}", err(&o));
    let s = out(&o);
    assert!(s.contains("collectors: 40 enabled, by component:"), "{s}");
    assert!(
        s.contains("    30  built-in `loadavg`") && s.contains("    10  built-in `uptime`"),
        "{s}"
    );
    assert!(s.lines().count() < 8, "{s}");
    assert!(!s.contains("l39"), "{s}");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_and_json_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        dir.path(),
        "[collectors.loadavg]\nenabled = true\ninterval = 1\n",
    );
    for format in ["text", "json"] {
        let child = Command::new(BIN)
            .args(["run", &conf, "--log-format", format])
            .env_remove("NO_COLOR")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let o = child.wait_with_output().unwrap();
        let log = err(&o);
        assert!(log.contains("started"), "{log}");
        assert!(!log.contains('\x1b'), "colour codes in a pipe: {log:?}");
        if format == "json" {
            for l in log.lines() {
                let j: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                assert!(j["level"].is_string() && j["timestamp"].is_string(), "{l}");
            }
        }
    }
}

#[test]
fn new_refuses_a_bad_name_or_a_used_directory() {
    let dir = tempfile::tempdir().unwrap();
    let o = wdiamond(&[
        "new",
        "collector",
        "Bad.Name",
        "--dir",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("is not a plugin name"), "{}", err(&o));
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let o = wdiamond(&[
        "new",
        "handler",
        "ok",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("already exists and is not empty"),
        "{}",
        err(&o)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "mine"
    );
    assert!(!dir.path().join("Cargo.toml").exists());
}

#[test]
fn python_scripts_that_cannot_run_are_config_errors_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "syntax.py",
        "import diamond.collector\n\nclass C(diamond.collector.Collector)\n    pass\n",
    );
    write("empty.py", "import os\n");
    write(
        "raises.py",
        "import diamond.collector\nimport nosuchmodule\n",
    );
    write(
        "ok.py",
        "import diamond.collector\nclass OkCollector(diamond.collector.Collector):\n    def get_default_config(self):\n        c = super(OkCollector, self).get_default_config()\n        c.update({'path': 'ok', 'depth': 2})\n        return c\n    def collect(self):\n        self.publish('depth', self.config['depth'])\n",
    );
    std::fs::write(dir.path().join("binary.py"), [0xffu8, 0xfe, 0]).unwrap();
    let section = |script: &str, extra: &str| {
        config(
            dir.path(),
            &format!("[collectors.py]\nenabled = true\ncomponent = {script:?}\n{extra}"),
        )
    };
    for (script, extra, says) in [
        ("syntax.py", "", "SyntaxError: expected ':' (at "),
        ("empty.py", "", "empty.py defines no collector"),
        (
            "raises.py",
            "",
            "ModuleNotFoundError: No module named 'nosuchmodule' (at ",
        ),
        ("binary.py", "", "binary.py is not UTF-8 text"),
        ("missing.py", "", "missing.py"),
        ("ok.py", "deepth = 3\n", "its options: depth"),
    ] {
        let o = wdiamond(&["check", &section(script, extra)]);
        assert_eq!(o.status.code(), Some(78), "{script}: {}", err(&o));
        assert!(err(&o).contains(says), "{script}: {}", err(&o));
        assert!(err(&o).contains("wdiamond.toml:"), "{script}: {}", err(&o));
    }
    // A script that spins or allocates without bound while it loads: the
    // setup deadline and the memory cap end it; a config error, promptly.
    write("spin.py", "while True:\n    pass\n");
    write(
        "hog.py",
        "hoard = []\nwhile True:\n    hoard.append(bytearray(1 << 20))\n",
    );
    for script in ["spin.py", "hog.py"] {
        let start = Instant::now();
        let o = wdiamond(&["check", &section(script, "")]);
        assert_eq!(o.status.code(), Some(78), "{script}: {}", err(&o));
        assert!(
            err(&o).contains("loading the script failed"),
            "{script}: {}",
            err(&o)
        );
        assert!(start.elapsed() < Duration::from_secs(30), "{script}");
    }
    let o = wdiamond(&["check", &section("syntax.py", "")]);
    assert!(
        err(&o).contains("syntax.py:3)"),
        "the script's line: {}",
        err(&o)
    );
    assert!(err(&o).contains("`collectors.py.component`"), "{}", err(&o));

    // A working script, pinned; then changed: refused with both digests.
    let digest = wdiamond::plugin::hex_sha256(&std::fs::read(dir.path().join("ok.py")).unwrap());
    let pinned = section("ok.py", &format!("sha256 = \"{digest}\"\n"));
    let o = wdiamond(&["check", &pinned]);
    assert!(o.status.success(), "{}", err(&o));
    let o = wdiamond(&["once", &pinned]);
    assert!(out(&o).contains("servers."), "{}", out(&o));
    assert!(out(&o).contains(".ok.depth 2 "), "{}", out(&o));
    write(
        "ok.py",
        &std::fs::read_to_string(dir.path().join("ok.py"))
            .unwrap()
            .replace("'depth': 2", "'depth': 3"),
    );
    let o = wdiamond(&["check", &pinned]);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        err(&o).contains("`collectors.py.sha256`") && err(&o).contains(&digest),
        "{}",
        err(&o)
    );

    // A script as a handler: refused where it is written.
    let handler = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"py\"]\nplugin_cache_dir = {:?}\n[handlers.py]\ncomponent = \"ok.py\"\n",
            common::cache_dir()
        ),
    );
    let o = wdiamond(&["check", &handler.display().to_string()]);
    assert_eq!(o.status.code(), Some(78));
    assert!(err(&o).contains("can only be a collector"), "{}", err(&o));

    // An agent without the Python runtime says what to install.
    let o = wdiamond_env(
        &["check", &section("ok.py", "")],
        &[(
            "WDIAMOND_PYTHON_RUNTIME",
            "/nonexistent/wdiamond-python.wasm",
        )],
    );
    assert_eq!(o.status.code(), Some(78));
    assert!(
        err(&o).contains("no Python runtime") && err(&o).contains("pip install componentize-py"),
        "{}",
        err(&o)
    );

    // inspect on a script: its options; on a broken one: one line, exit 1.
    let o = wdiamond(&["inspect", &dir.path().join("ok.py").display().to_string()]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("depth = 3"), "{}", out(&o));
    let o = wdiamond(&[
        "inspect",
        &dir.path().join("syntax.py").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("SyntaxError"), "{}", err(&o));
}

/// The line (1-based) of the first line of `text` starting with `prefix`
/// after the line starting with `section`.
fn line_of(text: &str, section: &str, prefix: &str) -> usize {
    let from = text.lines().position(|l| l.starts_with(section)).unwrap();
    from + 1
        + text
            .lines()
            .skip(from)
            .position(|l| l.starts_with(prefix))
            .unwrap()
}

#[test]
fn exporter_settings_are_checked_naming_the_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let guest = common::test_guest("handler_exporter_misbehave");
    // Settings the config reader refuses, all reported at once.
    let text = format!(
        "[server]\nhandlers = [\"a\", \"b\", \"c\"]\nplugin_cache_dir = {:?}\n[handlers.a]\ncomponent = \"prometheus\"\nlisten = \":9108\"\n[handlers.b]\ncomponent = \"prometheus\"\nlisten_path = \"/m\"\n[handlers.c]\ncomponent = \"prometheus\"\nlisten = \"127.0.0.1:9\"\nlisten_path = \"metrics\"\n[handlers.c.grants]\nlisten = [\"localhost:9108\"]\n",
        common::cache_dir()
    );
    let conf = common::write_config(dir.path(), &text);
    let o = wdiamond(&["check", conf.to_str().unwrap()]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(78), "{e}");
    for (section, key, says) in [
        (
            "[handlers.a]",
            "listen",
            "write the address too, \"127.0.0.1:9108\"",
        ),
        (
            "[handlers.b]",
            "listen_path",
            "which is not set: add `listen",
        ),
        ("[handlers.c]", "listen_path", "is not a path to serve"),
        (
            "[handlers.c.grants]",
            "listen",
            "\"localhost:9108\" is not IP:PORT",
        ),
    ] {
        let at = format!("wdiamond.toml:{}:", line_of(&text, section, key));
        assert!(
            e.lines().any(|l| l.contains(&at) && l.contains(says)),
            "{section} {key}: {says:?} at {at} not in:\n{e}"
        );
    }
    // Settings that need the plugin loaded: what it serves, and grants.
    let p = common::free_port();
    let text = format!(
        "[server]\nhandlers = [\"g\", \"p\", \"x\"]\nplugin_cache_dir = {:?}\n[handlers.g]\ncomponent = \"graphite\"\nlisten = \"127.0.0.1:{p}\"\n[handlers.p]\ncomponent = \"prometheus\"\n[handlers.x]\ncomponent = {guest:?}\nlisten = \"127.0.0.1:{p}\"\n",
        common::cache_dir()
    );
    let conf = common::write_config(dir.path(), &text);
    let o = wdiamond(&["check", conf.to_str().unwrap()]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(78), "{e}");
    for (at, says) in [
        (line_of(&text, "[handlers.g]", "listen"), "serves no page".to_string()),
        (line_of(&text, "[handlers.p]", "[handlers.p]"), "add `listen = \"127.0.0.1:9108\"`".to_string()),
        (
            line_of(&text, "[handlers.x]", "listen"),
            format!("serving its page on 127.0.0.1:{p} is not granted: add \"127.0.0.1:{p}\" to [handlers.x.grants] listen"),
        ),
    ] {
        let at = format!("wdiamond.toml:{at}:");
        assert!(
            e.lines().any(|l| l.contains(&at) && l.contains(&says)),
            "{says:?} at {at} not in:\n{e}"
        );
    }
    // Granted, it checks; inspect says what it is and how to serve it.
    let text = format!("{text}[handlers.x.grants]\nlisten = [\"127.0.0.1:{p}\"]\n")
        .replace(
            "[handlers.g]\ncomponent = \"graphite\"\nlisten",
            "[handlers.g]\ncomponent = \"graphite\"\nport",
        )
        .replace(
            "[handlers.p]\ncomponent = \"prometheus\"\n",
            &format!(
                "[handlers.p]\ncomponent = \"prometheus\"\nlisten = \"127.0.0.1:{}\"\n",
                p + 1
            ),
        );
    let text = text.replace(&format!("port = \"127.0.0.1:{p}\""), "port = 2003");
    let conf = common::write_config(dir.path(), &text);
    let o = wdiamond(&["check", conf.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{text}", err(&o));
    assert!(
        out(&o).contains(&format!("serves: x on http://127.0.0.1:{p}/metrics")),
        "{}",
        out(&o)
    );
    let o = wdiamond(&["inspect", guest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("an exporter: the agent serves the page it renders on `listen`"),
        "{}",
        out(&o)
    );
    assert!(
        out(&o).contains("listen = [\"127.0.0.1:9108\"]"),
        "{}",
        out(&o)
    );
}

#[test]
fn run_writes_its_pidfile_and_a_second_agent_is_refused() {
    // Diamond's `-p`: the agent's own pid, for init scripts and
    // `kill -HUP $(cat FILE)`; before, there was no such option.
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        dir.path(),
        "[collectors.loadavg]\nenabled = true\ninterval = 1\n",
    );
    let pidfile = dir.path().join("run/wdiamond.pid");
    std::fs::create_dir(dir.path().join("run")).unwrap();
    let pid_arg = pidfile.to_str().unwrap();
    let child = Command::new(BIN)
        .args(["run", &conf, "--pidfile", pid_arg])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let pid = loop {
        if let Some(p) = wdiamond::pidfile::read_pid(&pidfile) {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no pidfile");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(pid, child.id(), "the agent's own pid");
    // A second agent with the same pidfile is refused, naming the first.
    let o = wdiamond(&["run", &conf, "--pidfile", pid_arg]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!("another wdiamond (pid {pid})")),
        "{}",
        err(&o)
    );
    assert_eq!(wdiamond::pidfile::read_pid(&pidfile), Some(pid));
    // The pid in the file reloads it, then stops it.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let log = err(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("Reload"), "the SIGHUP reloaded: {log}");
    assert!(!pidfile.exists(), "removed at the stop");
}
