//! `wdiamond new collector|handler NAME [--lang rust|python]`: a plugin
//! project outside this repository that builds with one command into a
//! component (or, for Python, is a script the agent's Python runtime runs). The SDK and
//! the WIT ship inside the binary and are written into the project, so it
//! builds with only the Rust toolchain and crates.io (its `Cargo.lock` pins
//! the versions this agent was tested with).

use std::path::{Path, PathBuf};

mod files {
    include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));
}

const CARGO_TOML: &str = include_str!("../templates/common/Cargo.toml");
const GITIGNORE: &str = include_str!("../templates/common/gitignore");
const COLLECTOR_LIB: &str = include_str!("../templates/collector/lib.rs");
const HANDLER_LIB: &str = include_str!("../templates/handler/lib.rs");
const EXPORTER_LIB: &str = include_str!("../templates/exporter/lib.rs");
const PYTHON_COLLECTOR: &str = include_str!("../templates/python/collector.py");
const PYTHON_TEST: &str = include_str!("../templates/python/test_collector.py");

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A Rust crate built into a component with the SDK.
    Rust,
    /// A Diamond-style Python script run by the agent's Python runtime
    /// (collectors only).
    Python,
}

/// The Python module name of a plugin name (`-` is not allowed there).
pub fn python_module(name: &str) -> String {
    name.replace('-', "_")
}

/// The script a Python project's collector is, relative to the project.
pub fn python_script(name: &str) -> PathBuf {
    PathBuf::from(format!("{}.py", python_module(name)))
}

/// `my-uptime_2` -> `MyUptime2`: the collector's class name.
fn class_name(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The files of a new Python collector project.
pub fn python_project_files(name: &str) -> Vec<(PathBuf, String)> {
    let module = python_module(name);
    let script = python_script(name).display().to_string();
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{module}}", &module)
            .replace("{{class}}", &class_name(name))
    };
    let mut out = vec![
        (PathBuf::from(&script), fill(PYTHON_COLLECTOR)),
        (PathBuf::from(format!("test_{module}.py")), fill(PYTHON_TEST)),
        (PathBuf::from(".gitignore"), "__pycache__/\n".to_string()),
        (
            PathBuf::from("README.md"),
            format!(
                "# {name}\n\
                 A wdiamond collector in Python, in Diamond's style (`import diamond.collector`): the agent runs `{script}` in its sandboxed Python runtime.\n\
                 Test: `python3 -m unittest` (`wdiamond-python/` is the collector API, for the tests; the agent has its own).\n\
                 Try it: `wdiamond inspect {script}`, then `wdiamond once {name}.toml`; pin it with the `sha256` line `inspect` prints, and `wdiamond run {name}.toml`.\n"
            ),
        ),
        (
            PathBuf::from(format!("{name}.toml")),
            collector_config(name, &script, "script"),
        ),
    ];
    for (path, text) in files::PYTHON_SDK_FILES {
        out.push((PathBuf::from(path), text.to_string()));
    }
    out
}

/// Which world the new plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reads something, publishes metrics.
    Collector,
    /// Receives metrics, writes them somewhere.
    Handler,
    /// A handler whose page the agent serves (the `exporter-plugin` world).
    Exporter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Collector => "collector",
            Kind::Handler => "handler",
            Kind::Exporter => "exporter",
        }
    }
}

/// Checks a plugin name: a cargo package name that is also a metric path
/// segment and a TOML bare key.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a plugin name: use lowercase letters, digits, `_` and `-`, starting with a letter (at most 64)"))
    }
}

/// The file the build produces, relative to the project.
pub fn artifact(name: &str) -> PathBuf {
    Path::new("target/wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")))
}

fn readme(kind: Kind, name: &str) -> String {
    let wasm = artifact(name).display().to_string();
    format!(
        "# {name}\n\
         A wdiamond {k}: a sandboxed WebAssembly component (the SDK and the WIT contract it implements are in `wdiamond-sdk/` and `wit/`).\n\
         Build: `cargo build --release --target wasm32-wasip2` (once: `rustup target add wasm32-wasip2`); test: `cargo test`.\n\
         Try it: `wdiamond inspect {wasm}`, then `wdiamond once {name}.toml`; pin it with the `sha256` line `inspect` prints, and `wdiamond run {name}.toml`.\n",
        k = kind.as_str()
    )
}

/// A new collector's sample configuration: it alone, archived, its
/// `component` (a `.wasm` file or a Python script: `what` says which).
fn collector_config(name: &str, component: &str, what: &str) -> String {
    format!(
        "# Runs {name} alone, its metrics archived to /tmp/{name}/archive.log:\n\
         # `wdiamond once {name}.toml` prints what it publishes, `wdiamond run {name}.toml` runs it.\n\
         # Copy the [collectors.{name}] sections into your own configuration to deploy it.\n\
         [server]\n\
         handlers = [\"archive\"]\n\
         \n\
         [handlers.archive]\n\
         log_file = \"/tmp/{name}/archive.log\"\n\
         \n\
         [collectors.{name}]\n\
         enabled = true\n\
         interval = 10\n\
         component = \"{component}\"\n\
         # Pin the {what} (`wdiamond inspect {component}` prints the line):\n\
         # sha256 = \"…\"\n\
         minutes = false\n\
         \n\
         # What it asks for (`wdiamond inspect` lists it); nothing else is granted.\n\
         [collectors.{name}.grants]\n\
         files = [\"/proc/uptime\"]\n"
    )
}

fn sample_config(kind: Kind, name: &str) -> String {
    let wasm = artifact(name).display().to_string();
    match kind {
        Kind::Collector => collector_config(name, &wasm, "file"),
        Kind::Handler => format!(
            "# The built-in loadavg collector, its metrics written by {name} to /tmp/{name}/metrics.txt:\n\
             # `wdiamond run {name}.toml`. Copy the [handlers.{name}] sections (and the\n\
             # `handlers` line) into your own configuration to deploy it.\n\
             [server]\n\
             handlers = [\"{name}\"]\n\
             \n\
             [collectors.loadavg]\n\
             enabled = true\n\
             interval = 10\n\
             \n\
             [handlers.{name}]\n\
             component = \"{wasm}\"\n\
             # Pin the file (`wdiamond inspect {wasm}` prints the line):\n\
             # sha256 = \"…\"\n\
             file = \"/tmp/{name}/metrics.txt\"\n\
             \n\
             # What it asks for (`wdiamond inspect` lists it); nothing else is granted.\n\
             [handlers.{name}.grants]\n\
             directories = [\"/tmp/{name}\"]\n"
        ),
        Kind::Exporter => format!(
            "# The built-in loadavg collector, its metrics served by {name} as a page:\n\
             # `wdiamond run {name}.toml`, then `curl http://127.0.0.1:9108/metrics`.\n\
             # Copy the [handlers.{name}] sections (and the `handlers` line) into your\n\
             # own configuration to deploy it.\n\
             [server]\n\
             handlers = [\"{name}\"]\n\
             \n\
             [collectors.loadavg]\n\
             enabled = true\n\
             interval = 10\n\
             \n\
             [handlers.{name}]\n\
             component = \"{wasm}\"\n\
             # Pin the file (`wdiamond inspect {wasm}` prints the line):\n\
             # sha256 = \"…\"\n\
             # Where the agent serves the page it renders:\n\
             listen = \"127.0.0.1:9108\"\n\
             listen_path = \"/metrics\"\n\
             \n\
             # The agent may serve it there; nothing else is granted.\n\
             [handlers.{name}.grants]\n\
             listen = [\"127.0.0.1:9108\"]\n"
        ),
    }
}

/// The files of a new project: (relative path, contents).
pub fn project_files(kind: Kind, name: &str) -> Vec<(PathBuf, String)> {
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{kind}}", kind.as_str())
    };
    let mut out = vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (PathBuf::from(".gitignore"), GITIGNORE.to_string()),
        (
            PathBuf::from("src/lib.rs"),
            fill(match kind {
                Kind::Collector => COLLECTOR_LIB,
                Kind::Handler => HANDLER_LIB,
                Kind::Exporter => EXPORTER_LIB,
            }),
        ),
        (PathBuf::from("README.md"), readme(kind, name)),
        (
            PathBuf::from(format!("{name}.toml")),
            sample_config(kind, name),
        ),
    ];
    for (path, text) in files::SDK_FILES {
        match *path {
            // The SDK's lock pins what it was tested with: the project's.
            "wdiamond-sdk/Cargo.lock" => out.push((PathBuf::from("Cargo.lock"), text.to_string())),
            p if p.ends_with("Cargo.lock") => {}
            // The wire crate is standalone in this repository; in a project
            // it is part of the project's workspace.
            p if p.ends_with("Cargo.toml") => out.push((
                PathBuf::from(p),
                text.lines()
                    .filter(|l| l.trim() != "[workspace]")
                    .map(|l| format!("{l}\n"))
                    .collect(),
            )),
            p => out.push((PathBuf::from(p), text.to_string())),
        }
    }
    out
}

/// Writes a new project named `name` into `dir` (which must not exist, or
/// be empty). Returns what was written.
pub fn create(kind: Kind, lang: Lang, name: &str, dir: &Path) -> Result<Vec<PathBuf>, String> {
    check_name(name)?;
    if lang == Lang::Python && kind != Kind::Collector {
        return Err("a Python plugin can only be a collector (handlers are Rust, or any language that builds a component)".into());
    }
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(format!(
                "{} already exists and is not empty: choose another NAME or --dir",
                dir.display()
            ));
        }
    }
    let mut written = Vec::new();
    let files = match lang {
        Lang::Rust => project_files(kind, name),
        Lang::Python => python_project_files(name),
    };
    for (rel, text) in files {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        written.push(rel);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-uptime_2").is_ok());
        for bad in ["", "Up", "2up", "a.b", "a b", "../x", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_project_carries_the_sdk_and_the_contract() {
        let files = project_files(Kind::Collector, "up");
        let has = |p: &str| files.iter().any(|(f, _)| f == Path::new(p));
        for p in [
            "Cargo.toml",
            "Cargo.lock",
            "src/lib.rs",
            "README.md",
            "up.toml",
            "wit/wdiamond.wit",
            "wdiamond-sdk/Cargo.toml",
            "wdiamond-sdk/src/lib.rs",
            "wdiamond-sdk/wire/Cargo.toml",
        ] {
            assert!(has(p), "{p} missing");
        }
        let text = |p: &str| &files.iter().find(|(f, _)| f == Path::new(p)).unwrap().1;
        assert!(text("Cargo.toml").contains("features = [\"collector\"]"));
        assert!(text("Cargo.toml").contains("crate-type = [\"cdylib\", \"rlib\"]"));
        assert!(!text("wdiamond-sdk/wire/Cargo.toml").contains("[workspace]"));
        assert!(text("src/lib.rs").contains("name: \"up\".into()"));
        assert_eq!(text("README.md").lines().count(), 4);
    }

    #[test]
    fn a_python_project_carries_the_python_sdk() {
        let files = python_project_files("my-up");
        let text = |p: &str| &files.iter().find(|(f, _)| f == Path::new(p)).unwrap().1;
        assert!(text("my_up.py").contains("class MyUpCollector(diamond.collector.Collector)"));
        assert!(text("my_up.py").contains("'path': 'my-up'"));
        assert!(text("test_my_up.py").contains("from my_up import parse_uptime"));
        assert!(text("my-up.toml").contains("component = \"my_up.py\""));
        assert!(text("wdiamond-python/diamond/collector.py").contains("Collector"));
        assert!(text("wdiamond-python/wdiamond/collector.py").contains("def derivative"));
        assert_eq!(text("README.md").lines().count(), 4);
    }
}
