//! `wdiamond new collector|handler NAME`: a plugin project outside this
//! repository that builds with one command into a component. The SDK and
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

/// Which world the new plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reads something, publishes metrics.
    Collector,
    /// Receives metrics, writes them somewhere.
    Handler,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Collector => "collector",
            Kind::Handler => "handler",
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

fn sample_config(kind: Kind, name: &str) -> String {
    let wasm = artifact(name).display().to_string();
    match kind {
        Kind::Collector => format!(
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
             component = \"{wasm}\"\n\
             # Pin the file (`wdiamond inspect {wasm}` prints the line):\n\
             # sha256 = \"…\"\n\
             minutes = false\n\
             \n\
             # What it asks for (`wdiamond inspect` lists it); nothing else is granted.\n\
             [collectors.{name}.grants]\n\
             files = [\"/proc/uptime\"]\n"
        ),
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
pub fn create(kind: Kind, name: &str, dir: &Path) -> Result<Vec<PathBuf>, String> {
    check_name(name)?;
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
    for (rel, text) in project_files(kind, name) {
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
}
