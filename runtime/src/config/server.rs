//! The `[server]` section and the per-collector files of
//! `collectors_config_path`.

use std::path::{Path, PathBuf};

use super::reader::{read_file, resolve, Doc, Reader};
use super::sections::SERVER_KEYS;
use super::{ConfigError, ServerConfig};

/// Reads `[server]` into `server`; relative paths are relative to the
/// config file's directory.
pub(super) fn read_server(
    r: &mut Reader<'_>,
    t: &toml::Table,
    config_dir: &Path,
    server: &mut ServerConfig,
) {
    let resolve = |p: &str| resolve(config_dir, p);
    for (k, v) in t {
        let p = ["server", k.as_str()];
        match k.as_str() {
            "handlers" => {
                if let Some(h) = r.strings(&p, v) {
                    server.handlers = h;
                }
            }
            "collectors_config_path" => {
                server.collectors_config_path = r.string(&p, v).map(|s| resolve(&s))
            }
            "plugin_cache_dir" => {
                if let Some(s) = r.string(&p, v) {
                    server.plugin_cache_dir = resolve(&s);
                }
            }
            "host_root" => server.host_root = r.string(&p, v).map(|s| resolve(&s)),
            "health_path" => {
                if let Some(h) = r.string(&p, v) {
                    if !h.is_empty() && crate::metric::check_name(&h).is_err() {
                        r.err(&p, format!("{h:?} is not a valid metric path"));
                    }
                    server.health_path = h;
                }
            }
            "status_listen" => {
                if let Some(a) = r.string(&p, v) {
                    match crate::grants::parse_listen(&a) {
                        Ok(address) => {
                            server.status_listen = Some(super::StatusListen {
                                address,
                                location: r.doc.at(&p),
                            })
                        }
                        Err(e) => r.err(&p, e),
                    }
                }
            }
            "health_interval" => {
                if let Some(n) = r.positive(&p, v) {
                    server.health_interval = n;
                }
            }
            k if super::registries::read_oci_key(r, k, v, config_dir, &mut server.oci) => {}
            _ => r.unknown(&p, SERVER_KEYS),
        }
    }
}

/// The `NAME.toml` files of `collectors_config_path`, sorted, each with the
/// collector name it configures.
pub(super) fn read_collector_files(
    dir: &Path,
    doc: &Doc,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Doc)> {
    let mut extra_docs = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            for f in files {
                let name = f
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if let Some(d) = read_file(&f, errors) {
                    extra_docs.push((name, d));
                }
            }
        }
        Err(e) => errors.push(ConfigError {
            location: doc.at(&["server", "collectors_config_path"]),
            key: "server.collectors_config_path".into(),
            message: format!("cannot read the directory {}: {e}", dir.display()),
        }),
    }
    extra_docs
}
