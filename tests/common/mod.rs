//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wdiamond::plugin::Runtime;

pub mod carbon;

/// One engine for the whole test binary (components compile once).
pub fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(&cache_dir()).expect("runtime"))
        .clone()
}

/// The compiled-component cache used by tests.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdiamond-cache")
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Writes `text` as a config file in `dir`.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("wdiamond.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A test-only guest built alongside the binary.
pub fn test_guest(name: &str) -> PathBuf {
    wdiamond::plugin::guest_wasm_dir().join(format!("{name}.wasm"))
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
