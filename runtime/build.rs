//! Builds the guest workspaces (`guest-collectors/`, `guest-handlers/`) for
//! `wasm32-wasip2` and generates `builtin.rs`, which embeds the built-in
//! components in the binary; builds the Python runtime component
//! (`python/runtime/`) when componentize-py is installed.
//!
//! The nested cargo uses its own target dir (`target/guests`), so it never
//! waits on the lock of the outer build. Set `WDIAMOND_GUESTS_DIR` to a
//! folder of prebuilt `.wasm` files to skip the nested build.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Built-in plugin name, guest workspace, and the artifact it produces.
const BUILTINS: &[(&str, &str, &str)] = &[
    ("cpu", "guest-collectors", "collector_cpu"),
    ("memory", "guest-collectors", "collector_memory"),
    ("loadavg", "guest-collectors", "collector_loadavg"),
    ("network", "guest-collectors", "collector_network"),
    ("diskspace", "guest-collectors", "collector_diskspace"),
    ("diskusage", "guest-collectors", "collector_diskusage"),
    ("vmstat", "guest-collectors", "collector_vmstat"),
    ("sockstat", "guest-collectors", "collector_sockstat"),
    ("tcp", "guest-collectors", "collector_tcp"),
    ("udp", "guest-collectors", "collector_udp"),
    ("proc", "guest-collectors", "collector_proc"),
    ("uptime", "guest-collectors", "collector_uptime"),
    ("entropy", "guest-collectors", "collector_entropy"),
    ("filestat", "guest-collectors", "collector_filestat"),
    ("interrupt", "guest-collectors", "collector_interrupt"),
    ("softirq", "guest-collectors", "collector_softirq"),
    ("netstat", "guest-collectors", "collector_netstat"),
    ("redis", "guest-collectors", "collector_redis"),
    ("memcached", "guest-collectors", "collector_memcached"),
    ("nginx", "guest-collectors", "collector_nginx"),
    ("zookeeper", "guest-collectors", "collector_zookeeper"),
    ("ceph", "guest-collectors", "collector_ceph"),
    ("postgres", "guest-collectors", "collector_postgres"),
    ("pgbouncer", "guest-collectors", "collector_pgbouncer"),
    ("mysql", "guest-collectors", "collector_mysql"),
    ("userscripts", "guest-collectors", "collector_userscripts"),
    ("archive", "guest-handlers", "handler_archive"),
    ("graphite", "guest-handlers", "handler_graphite"),
    (
        "graphite_pickle",
        "guest-handlers",
        "handler_graphite_pickle",
    ),
    ("multigraphite", "guest-handlers", "handler_multigraphite"),
    ("statsd", "guest-handlers", "handler_statsd"),
    ("httppost", "guest-handlers", "handler_httppost"),
    ("influxdb", "guest-handlers", "handler_influxdb"),
    ("opentsdb", "guest-handlers", "handler_opentsdb"),
    ("nats", "guest-handlers", "handler_nats"),
    ("mqtt", "guest-handlers", "handler_mqtt"),
    ("prometheus", "guest-handlers", "handler_prometheus"),
    (
        "prometheus_remote_write",
        "guest-handlers",
        "handler_prometheus_remote_write",
    ),
    ("otlp", "guest-handlers", "handler_otlp"),
];

/// The packages of `guest-handlers/` that are exporters (the SDK's feature
/// `exporter`), built apart from the other handlers.
const EXPORTERS: &[&str] = &["handler-prometheus", "handler-exporter-misbehave"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    for dir in ["guest-collectors", "guest-handlers", "guest-sdk", "wit"] {
        watch(&root.join(dir));
    }
    println!("cargo:rerun-if-env-changed=WDIAMOND_GUESTS_DIR");

    let wasm_dir = match std::env::var_os("WDIAMOND_GUESTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let target_dir = root.join("target").join("guests");
            build_workspace(&root.join("guest-collectors"), &target_dir, &[]);
            // Exporters build the SDK with feature `exporter` (the exporter
            // world's bindings): apart from the handlers, since cargo would
            // otherwise unify the feature into every handler's SDK.
            let mut handlers = vec!["--workspace".to_string()];
            for e in EXPORTERS {
                handlers.extend(["--exclude".to_string(), e.to_string()]);
            }
            build_workspace(&root.join("guest-handlers"), &target_dir, &handlers);
            let exporters: Vec<String> = EXPORTERS
                .iter()
                .flat_map(|e| ["-p".to_string(), e.to_string()])
                .collect();
            build_workspace(&root.join("guest-handlers"), &target_dir, &exporters);
            target_dir.join("wasm32-wasip2").join("release")
        }
    };

    // The SHA-256 of each component is computed here, once: the agent keys
    // its compiled cache by it, so a start with a warm cache never reads
    // (and so never pages in) the embedded wasm bytes.
    // Embedded deflated: the binary carries 2 MB instead of 5 MB of wasm,
    // inflated only when a component is compiled (a cold cache).
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let mut src = String::from(
        "/// The built-in components: (name, deflated wasm bytes, SHA-256 of the wasm bytes in hex).\n\
         pub static BUILTINS: &[(&str, &[u8], &str)] = &[\n",
    );
    for (name, _, artifact) in BUILTINS {
        let path = wasm_dir.join(format!("{artifact}.wasm"));
        assert!(path.exists(), "guest artifact missing: {}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let deflated = out_dir.join(format!("{artifact}.wasm.deflate"));
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &bytes).unwrap();
        std::fs::write(&deflated, z.finish().unwrap()).unwrap();
        src.push_str(&format!(
            "    ({name:?}, include_bytes!({:?}), {digest:?}),\n",
            deflated.display().to_string()
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin.rs");
    std::fs::write(out, src).unwrap();
    write_sdk_files(&root);
    let python = build_python(&root).unwrap_or_default();
    println!("cargo:rustc-env=WDIAMOND_PYTHON_BUILT={}", python.display());
    // Tests find the test-only guests (e.g. collector_misbehave.wasm) here.
    println!(
        "cargo:rustc-env=WDIAMOND_GUEST_WASM_DIR={}",
        wasm_dir.display()
    );
}

/// Generates `sdk_files.rs`: the SDK's sources and the WIT, which
/// `wdiamond new` writes into a new plugin project (so that it builds
/// without this repository). Paths are relative to the project.
fn write_sdk_files(root: &Path) {
    let mut files = Vec::new();
    collect_files(&root.join("guest-sdk"), &root.join("guest-sdk"), &mut files);
    files.sort();
    let mut src = String::from(
        "/// The SDK's files: (path in a new project, contents).\n\
         pub static SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for rel in files {
        let abs = root.join("guest-sdk").join(&rel);
        src.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            format!("wdiamond-sdk/{}", rel.display()),
            abs.display().to_string()
        ));
    }
    src.push_str(&format!(
        "    (\"wit/wdiamond.wit\", include_str!({:?})),\n];\n",
        root.join("wit/wdiamond.wit").display().to_string()
    ));
    // The Python SDK (the runtime's `wdiamond` and `diamond` packages), for
    // a Python project's native tests.
    src.push_str(
        "/// The Python SDK's files: (path in a new Python project, contents).\n\
         pub static PYTHON_SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for package in ["wdiamond", "diamond"] {
        let dir = root.join("python").join("runtime").join(package);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .collect();
        names.sort();
        for n in names {
            src.push_str(&format!(
                "    ({:?}, include_str!({:?})),\n",
                format!("wdiamond-python/{package}/{n}"),
                dir.join(&n).display().to_string()
            ));
        }
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("sdk_files.rs");
    std::fs::write(out, src).unwrap();
}

/// The SDK's manifests, lock and Rust sources under `dir` (no build output).
fn collect_files(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == "target" {
            continue;
        }
        if path.is_dir() {
            collect_files(base, &path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "toml" || e == "lock")
        {
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
        }
    }
}

/// Builds the Python runtime component (`python/runtime/`, the
/// `collector-plugin` world) with componentize-py into
/// `target/python/wdiamond-python.wasm`, when componentize-py is installed
/// (`$COMPONENTIZE_PY`, else on the PATH). Without it the agent builds
/// anyway and a Python collector is a configuration error saying what to
/// install. `WDIAMOND_PYTHON=1` makes a missing componentize-py an error
/// (and, set or changed, reruns this script); `WDIAMOND_PYTHON=0` skips it.
fn build_python(root: &Path) -> Option<PathBuf> {
    let sources = root.join("python").join("runtime");
    watch(&sources);
    println!("cargo:rerun-if-env-changed=WDIAMOND_PYTHON");
    println!("cargo:rerun-if-env-changed=COMPONENTIZE_PY");
    let wanted = std::env::var("WDIAMOND_PYTHON").unwrap_or_default();
    if wanted == "0" {
        return None;
    }
    let tool = std::env::var("COMPONENTIZE_PY").unwrap_or_else(|_| "componentize-py".into());
    let found = Command::new(&tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if wanted == "1" {
            panic!(
                "WDIAMOND_PYTHON=1, but {tool} does not run: pip install componentize-py==0.25.1"
            );
        }
        println!(
            "cargo:warning=componentize-py not found: this agent is built without the Python runtime (Python collectors will be refused; pip install componentize-py==0.25.1, then WDIAMOND_PYTHON=1 cargo build)"
        );
        return None;
    }
    let out_dir = root.join("target").join("python");
    let out = out_dir.join("wdiamond-python.wasm");
    let wit = root.join("wit").join("wdiamond.wit");
    let built = std::fs::metadata(&out).and_then(|m| m.modified()).ok();
    let newest =
        newest_mtime(&sources).max(std::fs::metadata(&wit).and_then(|m| m.modified()).ok());
    if built.is_some() && built >= newest {
        return Some(out);
    }
    std::fs::create_dir_all(&out_dir).unwrap();
    let tmp = out_dir.join("wdiamond-python.wasm.tmp");
    let status = Command::new(&tool)
        .arg("-q")
        .arg("-d")
        .arg(&wit)
        .arg("-w")
        .arg("collector-plugin")
        .arg("componentize")
        .arg("app")
        .arg("-p")
        .arg(&sources)
        .arg("-o")
        .arg(&tmp)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    if !status.success() {
        panic!(
            "building the Python runtime ({}) with {tool} failed ({status})",
            sources.display()
        );
    }
    std::fs::rename(&tmp, &out).unwrap();
    Some(out)
}

/// The latest modification time of the files under `dir` (bytecode caches
/// left out).
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if entry.file_name() == "__pycache__" {
            continue;
        }
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

fn build_workspace(ws: &Path, target_dir: &Path, packages: &[String]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg("wasm32-wasip2")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .args(packages);
    // Do not leak the outer build's settings into the guest build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE"
            || key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
        {
            cmd.env_remove(&key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for {}: {e}", ws.display()));
    if !status.success() {
        panic!(
            "building the guests in {} failed ({status}). Is the target installed? \
             Run: rustup target add wasm32-wasip2",
            ws.display()
        );
    }
}

fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "__pycache__" {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
