//! The path a third-party author walks, exactly as the README tells it, in
//! a temporary directory outside the repository: `wdiamond new` → `cargo
//! test` → `cargo build` → `inspect` → `once` → pin → `run` (the metrics
//! arrive) → the file replaced by another build → `check` refuses it.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

/// `cargo` for the author's project, without the settings of the `cargo
/// test` running us (its target dir, flags, manifest).
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE"
            || ["RUSTFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"].contains(&key.as_str())
        {
            cmd.env_remove(&key);
        }
    }
    let out = cmd.output().expect("running cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn wdiamond(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", common::cache_dir().parent().unwrap())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `wdiamond run CONF` until `done` holds (or 60 s pass), then stops
/// it with SIGTERM; returns its log.
fn run_until(dir: &Path, conf: &str, done: impl Fn() -> bool) -> String {
    let child = Command::new(BIN)
        .args(["run", conf])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !done() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    text(&out.stderr)
}

/// Edits the sample config as the README says: a cache and an output of
/// the test's own, interval 1 (two intervals in two seconds), and the pin.
fn edit(conf: &Path, from_to: &[(&str, String)]) {
    let mut t = std::fs::read_to_string(conf).unwrap();
    for (from, to) in from_to {
        assert!(t.contains(from), "{from:?} not in {}:\n{t}", conf.display());
        t = t.replace(from, to);
    }
    std::fs::write(conf, t).unwrap();
}

fn sha256(p: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `new KIND NAME`, `cargo test`, `cargo build`: the project and its
/// component.
fn scaffold(root: &Path, kind: &str, name: &str) -> (PathBuf, PathBuf) {
    let out = wdiamond(root, &["new", kind, name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let project = root.join(name);
    let tests = cargo(&project, &["test"]);
    let t = text(&tests.stdout);
    assert!(t.contains("test result: ok. 1 passed"), "{t}");
    cargo(
        &project,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    let wasm = project.join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    assert!(wasm.exists(), "{} was not built", wasm.display());
    (project, wasm)
}

/// Rebuilds the project with a changed summary: another file.
fn rebuild(project: &Path, wasm: &Path) {
    let before = sha256(wasm);
    edit(
        &project.join("src/lib.rs"),
        &[("summary: \"", "summary: \"(v2) ".to_string())],
    );
    cargo(
        project,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    assert_ne!(sha256(wasm), before);
}

/// After a swap, `check` refuses the pinned file: exit 78, the file, line
/// and key, both digests.
fn assert_swap_refused(project: &Path, conf: &str, section: &str, pinned: &str, wasm: &Path) {
    let out = wdiamond(project, &["check", conf]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    let actual = sha256(wasm);
    assert!(
        err.contains(&format!("`{section}.sha256`"))
            && err.contains(&format!("{conf}:"))
            && err.contains(pinned)
            && err.contains(&actual),
        "{err}"
    );
    // `run` refuses it too, before anything runs.
    let out = Command::new(BIN)
        .args(["run", conf])
        .current_dir(project)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
}

#[test]
fn a_new_collector_goes_from_scaffold_to_a_pinned_run() {
    let root = tempfile::tempdir().unwrap();
    let (project, wasm) = scaffold(root.path(), "collector", "upcheck");
    let rel = "target/wasm32-wasip2/release/upcheck.wasm";

    // inspect: the world, the capability it asks for, the pin line.
    let out = wdiamond(&project, &["inspect", rel]);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let digest = sha256(&wasm);
    assert!(
        shown.contains("a collector component")
            && shown.contains("read-files /proc/uptime")
            && shown.contains(&format!("sha256 = \"{digest}\"")),
        "{shown}"
    );
    let out = wdiamond(&project, &["inspect", "--json", rel]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["world"], "collector");
    assert_eq!(j["name"], "upcheck");
    assert_eq!(j["sha256"], digest.as_str());
    assert_eq!(j["capabilities"][0]["kind"], "read-files");
    assert_eq!(j["capabilities"][0]["grant_values"][0], "\"/proc/uptime\"");
    assert_eq!(j["options"][0]["key"], "minutes");

    // once: the metric appears, twice (two runs), nothing is archived.
    let archive = root.path().join("archive.log");
    edit(
        &project.join("upcheck.toml"),
        &[
            (
                "[server]\n",
                format!("[server]\nplugin_cache_dir = {:?}\n", common::cache_dir()),
            ),
            ("\"/tmp/upcheck/archive.log\"", format!("{archive:?}")),
            (
                "interval = 10",
                "interval = 1\nhostname = \"author\"".into(),
            ),
        ],
    );
    let out = wdiamond(&project, &["once", "upcheck.toml", "--wait", "0.2"]);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        printed.matches("servers.author.upcheck.up ").count(),
        2,
        "{printed}"
    );
    assert!(!archive.exists(), "once must send nothing to a handler");

    // check before pinning: a warning that says how to pin.
    let out = wdiamond(&project, &["check", "upcheck.toml"]);
    let review = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        review.contains("not pinned") && review.contains(&format!("sha256 = \"{digest}\"")),
        "{review}"
    );
    assert!(
        review.contains("asks read-files \"/proc/uptime\": granted"),
        "{review}"
    );

    // Pin, run for two intervals: the metric is in the archive.
    edit(
        &project.join("upcheck.toml"),
        &[("# sha256 = \"…\"", format!("sha256 = \"{digest}\""))],
    );
    let out = wdiamond(&project, &["check", "upcheck.toml"]);
    assert!(
        text(&out.stdout).contains("pinned: sha256"),
        "{}",
        text(&out.stdout)
    );
    let log = run_until(&project, "upcheck.toml", || {
        std::fs::read_to_string(&archive)
            .is_ok_and(|t| t.matches("servers.author.upcheck.up ").count() >= 2)
    });
    let archived = std::fs::read_to_string(&archive).unwrap_or_default();
    assert!(
        archived.matches("servers.author.upcheck.up ").count() >= 2,
        "archive:\n{archived}\nlog:\n{log}"
    );

    // Another build in place of the pinned file: refused.
    rebuild(&project, &wasm);
    assert_swap_refused(
        &project,
        "upcheck.toml",
        "collectors.upcheck",
        &digest,
        &wasm,
    );
}

#[test]
fn a_new_handler_goes_from_scaffold_to_a_pinned_run() {
    let root = tempfile::tempdir().unwrap();
    let (project, wasm) = scaffold(root.path(), "handler", "sinkcheck");
    let rel = "target/wasm32-wasip2/release/sinkcheck.wasm";
    let out = wdiamond(&project, &["inspect", rel]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("a handler component") && shown.contains("write-directory file"),
        "{shown}"
    );
    let digest = sha256(&wasm);
    let outdir = root.path().join("out");
    let metrics = outdir.join("metrics.txt");
    edit(
        &project.join("sinkcheck.toml"),
        &[
            (
                "[server]\n",
                format!("[server]\nplugin_cache_dir = {:?}\n", common::cache_dir()),
            ),
            (
                "interval = 10",
                "interval = 1\nhostname = \"author\"".into(),
            ),
            ("\"/tmp/sinkcheck/metrics.txt\"", format!("{metrics:?}")),
            ("\"/tmp/sinkcheck\"", format!("{outdir:?}")),
            ("# sha256 = \"…\"", format!("sha256 = \"{digest}\"")),
        ],
    );
    let out = wdiamond(&project, &["check", "sinkcheck.toml"]);
    let review = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        review.contains("pinned: sha256") && review.contains("granted (directories)"),
        "{review}"
    );
    let log = run_until(&project, "sinkcheck.toml", || {
        std::fs::read_to_string(&metrics)
            .is_ok_and(|t| t.matches("servers.author.loadavg.01 ").count() >= 2)
    });
    let written = std::fs::read_to_string(&metrics).unwrap_or_default();
    assert!(
        written.matches("servers.author.loadavg.01 ").count() >= 2,
        "written:\n{written}\nlog:\n{log}"
    );
    rebuild(&project, &wasm);
    assert_swap_refused(
        &project,
        "sinkcheck.toml",
        "handlers.sinkcheck",
        &digest,
        &wasm,
    );
}

#[test]
fn a_new_exporter_goes_from_scaffold_to_a_served_page() {
    let root = tempfile::tempdir().unwrap();
    let (project, wasm) = scaffold(root.path(), "exporter", "pagecheck");
    let rel = "target/wasm32-wasip2/release/pagecheck.wasm";
    let out = wdiamond(&project, &["inspect", rel]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("(an exporter: the agent serves the page it renders on `listen`)"),
        "{shown}"
    );
    let digest = sha256(&wasm);
    let port = common::free_port();
    edit(
        &project.join("pagecheck.toml"),
        &[
            (
                "[server]\n",
                format!("[server]\nplugin_cache_dir = {:?}\n", common::cache_dir()),
            ),
            (
                "interval = 10",
                "interval = 1\nhostname = \"author\"".into(),
            ),
            (
                "listen = \"127.0.0.1:9108\"",
                format!("listen = \"127.0.0.1:{port}\""),
            ),
            (
                "listen = [\"127.0.0.1:9108\"]",
                format!("listen = [\"127.0.0.1:{port}\"]"),
            ),
            ("# sha256 = \"…\"", format!("sha256 = \"{digest}\"")),
        ],
    );
    let out = wdiamond(&project, &["check", "pagecheck.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = std::sync::Mutex::new(String::new());
    let log = run_until(&project, "pagecheck.toml", || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        let done = got.starts_with("HTTP/1.1 200") && got.contains("loadavg_01{host=\"author\"} ");
        *page.lock().unwrap() = got;
        done
    });
    let page = page.into_inner().unwrap();
    assert!(
        page.contains("# TYPE loadavg_01 gauge\nloadavg_01{host=\"author\"} "),
        "page:\n{page}\nlog:\n{log}"
    );
    rebuild(&project, &wasm);
    assert_swap_refused(
        &project,
        "pagecheck.toml",
        "handlers.pagecheck",
        &digest,
        &wasm,
    );
}

#[test]
fn a_new_python_collector_goes_from_scaffold_to_a_pinned_run() {
    let root = tempfile::tempdir().unwrap();
    let out = wdiamond(
        root.path(),
        &["new", "collector", "pyup", "--lang", "python"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let project = root.path().join("pyup");
    let script = project.join("pyup.py");

    // Its unit tests run natively, with the collector API it ships.
    let tests = Command::new("python3")
        .args(["-m", "unittest"])
        .current_dir(&project)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(tests.status.success(), "{}", text(&tests.stderr));
    assert!(
        text(&tests.stderr).contains("Ran 2 tests"),
        "{}",
        text(&tests.stderr)
    );

    let out = wdiamond(&project, &["inspect", "pyup.py"]);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let digest = sha256(&script);
    assert!(
        shown.contains("a collector component")
            && shown.contains("read-files /proc/uptime")
            && shown.contains("minutes = false")
            && shown.contains(&format!("sha256 = \"{digest}\"")),
        "{shown}"
    );

    let archive = root.path().join("archive.log");
    edit(
        &project.join("pyup.toml"),
        &[
            (
                "[server]\n",
                format!("[server]\nplugin_cache_dir = {:?}\n", common::cache_dir()),
            ),
            ("\"/tmp/pyup/archive.log\"", format!("{archive:?}")),
            (
                "interval = 10",
                "interval = 1\nhostname = \"author\"".into(),
            ),
        ],
    );
    let out = wdiamond(&project, &["once", "pyup.toml", "--wait", "0.2"]);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        printed.matches("servers.author.pyup.uptime ").count(),
        2,
        "{printed}"
    );
    assert!(!archive.exists(), "once must send nothing to a handler");

    let out = wdiamond(&project, &["check", "pyup.toml"]);
    let review = text(&out.stdout);
    assert!(
        review.contains("not pinned") && review.contains(&format!("sha256 = \"{digest}\"")),
        "{review}"
    );
    edit(
        &project.join("pyup.toml"),
        &[("# sha256 = \"…\"", format!("sha256 = \"{digest}\""))],
    );
    let log = run_until(&project, "pyup.toml", || {
        std::fs::read_to_string(&archive)
            .is_ok_and(|t| t.matches("servers.author.pyup.uptime ").count() >= 2)
    });
    let archived = std::fs::read_to_string(&archive).unwrap_or_default();
    assert!(
        archived.matches("servers.author.pyup.idle ").count() >= 2,
        "archive:\n{archived}\nlog:\n{log}"
    );

    // The script edited after pinning: refused.
    edit(&script, &[("'minutes': False", "'minutes': True".into())]);
    let out = wdiamond(&project, &["check", "pyup.toml"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("`collectors.pyup.sha256`") && err.contains(&digest),
        "{err}"
    );
}
