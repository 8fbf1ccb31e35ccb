//! Python collectors: a Diamond-style `.py` script run by one Python runtime
//! component (CPython built into a component by componentize-py, from
//! `python/runtime/`).
//!
//! A collector section names its script (`component = "mine.py"`, pinned
//! by `sha256` like a `.wasm` file). Every Python collector is an instance
//! of the same runtime component, compiled once and cached; the script is
//! the instance's: the host hands it over through the `config` import
//! ([`SCRIPT_KEY`], [`SCRIPT_NAME_KEY`]), and the runtime executes it in the
//! instance. So each Python collector has its own interpreter state, under
//! the same deadline, fuel, memory cap and grants as any plugin, and the
//! compiled interpreter is shared.
//!
//! The runtime is a file beside the agent (it is ~24 MB; the binary stays
//! small): [`runtime_path`] says where it is looked for. An agent built
//! without componentize-py has none, and a Python collector is then a
//! configuration error that says what to install ([`not_installed`]).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};

use super::{hex_sha256, ComponentError};
use crate::bindings::types::Description;
pub use crate::config::is_script;
pub use crate::host::script::{
    Script, DIRECTORIES_KEY, PYTHON_PATH_KEY, SCRIPT_KEY, SCRIPT_NAME_KEY,
};

/// What the runtime's `describe` puts before the reason when the script
/// cannot be loaded (the rest of its summary is the error).
pub const ERROR_MARK: &str = "wdiamond-python: ";
/// The runtime component's file name.
pub const RUNTIME_FILE: &str = "wdiamond-python.wasm";
/// Largest script the agent reads.
pub const MAX_SCRIPT_BYTES: u64 = 1 << 20;
/// The componentize-py release the runtime is built and tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Reads the script at `path` (at most [`MAX_SCRIPT_BYTES`], UTF-8) and
/// checks it against the pinned digest `pin`.
pub fn read_script(path: &Path, pin: Option<&str>) -> Result<Script, ComponentError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("reading {shown}"))?;
    if !meta.is_file() {
        return Err(anyhow!("{shown} is not a regular file").into());
    }
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).with_context(|| format!("reading {shown}"))?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_SCRIPT_BYTES + 1),
        &mut bytes,
    )
    .with_context(|| format!("reading {shown}"))?;
    if bytes.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(anyhow!(
            "{shown} is larger than a collector script may be ({} KiB)",
            MAX_SCRIPT_BYTES >> 10
        )
        .into());
    }
    let sha256 = hex_sha256(&bytes);
    if let Some(p) = pin {
        if p != sha256 {
            return Err(ComponentError::DigestMismatch {
                path: shown.to_string(),
                expected: p.to_string(),
                actual: sha256,
            });
        }
    }
    let source = String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "{shown} is not UTF-8 text (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(Script {
        path: path.to_path_buf(),
        source,
        sha256,
        python_path: Vec::new(),
    })
}

/// Where the runtime is looked for: `$WDIAMOND_PYTHON_RUNTIME` only, when
/// it is set; else [`RUNTIME_FILE`] beside the agent's executable, then
/// the one this build made (when componentize-py was there at build time).
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("WDIAMOND_PYTHON_RUNTIME") {
        return vec![PathBuf::from(p)];
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(RUNTIME_FILE));
    }
    let built = env!("WDIAMOND_PYTHON_BUILT");
    if !built.is_empty() {
        out.push(PathBuf::from(built));
    }
    out
}

/// The runtime component's file, if there is one.
pub fn runtime_path() -> Option<PathBuf> {
    candidates().into_iter().find(|p| p.is_file())
}

/// The error for a Python collector on an agent without the runtime.
pub fn not_installed() -> String {
    let looked: Vec<String> = candidates()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(
        "this is a Python collector, but this agent has no Python runtime (looked for {}): \
         install componentize-py (`pip install {COMPONENTIZE_PY}`) and build the agent again \
         (`WDIAMOND_PYTHON=1 cargo build --release`), or put {RUNTIME_FILE} beside the wdiamond \
         binary",
        if looked.is_empty() {
            RUNTIME_FILE.to_string()
        } else {
            looked.join(", ")
        }
    )
}

/// The reason a script could not be loaded, when the runtime's `describe`
/// says so.
pub fn load_error(d: &Description) -> Option<&str> {
    d.summary.strip_prefix(ERROR_MARK)
}

/// Why `script` could not be loaded, for the operator (from its
/// runtime's [`load_error`]): at most 2,000 characters, and when the script
/// imports a module that Diamond's layout keeps in a sibling collector's
/// directory (`cephstats` importing `ceph`), the `python_path` line that
/// lets it import that module.
pub fn load_failure(script: &Script, why: &str) -> String {
    let mut text: String = why.chars().take(2000).collect();
    if let Some(hint) = sibling_hint(script, why) {
        text.push_str(&hint);
    }
    text
}

/// Diamond put every collector's directory on its import path; here a
/// script imports from its own directory and its `python_path` only.
fn sibling_hint(script: &Script, why: &str) -> Option<String> {
    let rest = why.split("ModuleNotFoundError: No module named '").nth(1)?;
    let module = rest.split(['\'', '.']).next()?;
    if module.is_empty()
        || !module
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    let dir = script.path.parent()?.parent()?.join(module);
    let file = dir.join(format!("{module}.py"));
    if !file.is_file() || script.python_path.contains(&dir) {
        return None;
    }
    Some(format!(
        "; Diamond's collector module `{module}` is {}: add `python_path = [{:?}]` to this \
         collector's section (Diamond put every collector's directory on the import path; \
         here each is granted by name, its .py files then readable to this script)",
        file.display(),
        dir.display().to_string()
    ))
}
