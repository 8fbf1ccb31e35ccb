//! A Python collector's script as the host hands it to the Python runtime
//! (through the `config` import): its text, digest and import path, and the
//! reserved `config` keys that carry them. Read and checked by
//! `plugin/python.rs`.

use std::path::{Path, PathBuf};

/// The `config` key whose text value is the script's source.
pub const SCRIPT_KEY: &str = "wdiamond:script";
/// The `config` key whose text value is the script's file name (shown in
/// the script's errors and tracebacks).
pub const SCRIPT_NAME_KEY: &str = "wdiamond:script-name";
/// The `config` key whose text-list value is the granted directories
/// (`grants.directories`, preopened): the script's `open` uses the real
/// filesystem there.
pub const DIRECTORIES_KEY: &str = "wdiamond:directories";
/// The `config` key whose text-list value is the directories the script
/// imports `.py` modules from: its own, then its section's `python_path`.
pub const PYTHON_PATH_KEY: &str = "wdiamond:python-path";
/// A collector script, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Where it was read from (as configured).
    pub path: PathBuf,
    /// Its text (UTF-8).
    pub source: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Where it imports `.py` modules from: its own directory, then its
    /// section's `python_path` ([`Script::with_python_path`]).
    pub python_path: Vec<PathBuf>,
}

impl Script {
    /// The script importing from its own directory and `dirs`.
    pub fn with_python_path(mut self, dirs: &[PathBuf]) -> Script {
        let own = self.path.parent().map(Path::to_path_buf);
        self.python_path = own.into_iter().chain(dirs.iter().cloned()).collect();
        self
    }

    /// What importing needs: reading the `.py` files under each directory
    /// of its python path (nothing else there; compiled extensions never).
    pub fn grant_imports(&self, grants: &mut crate::grants::Grants) {
        for dir in &self.python_path {
            let escaped = glob::Pattern::escape(&dir.to_string_lossy());
            let escaped = escaped.trim_end_matches('/');
            // A directory whose name no glob can hold is not granted.
            let _ = grants.allow_files(&format!("{escaped}/**/*.py"));
            let _ = grants.allow_files(&format!("{escaped}/*.py"));
        }
    }
}
