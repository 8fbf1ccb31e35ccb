//! What a plugin asks for (`describe` capabilities, with `{key}` filled from
//! its config) turned into the grants it gets, beside the operator's own.

use crate::bindings::types::{Capability, ConfigEntry, ConfigValue, Description};
use crate::config;
use crate::config::{ComponentRef, PluginConfig};
use std::path::{Path, PathBuf};

/// Fills `{key}` (or `{key|hostport}`, the `host:port` of a URL value) in a
/// capability with the plugin's config; a list value gives one capability
/// per item.
pub fn substitute(template: &str, entries: &[ConfigEntry]) -> Vec<String> {
    let Some(open) = template.find('{') else {
        return vec![template.to_string()];
    };
    let Some(close) = template[open..].find('}').map(|c| open + c) else {
        return vec![template.to_string()];
    };
    let spec = &template[open + 1..close];
    let (key, modifier) = spec.split_once('|').unwrap_or((spec, ""));
    let values: Vec<String> = match entries
        .iter()
        .rev()
        .find(|e| e.key == key)
        .map(|e| &e.value)
    {
        Some(ConfigValue::TextList(l)) => l.clone(),
        Some(v) => vec![config::value_text(&v.clone().into())],
        None => vec![String::new()],
    };
    let mut out = Vec::new();
    for v in values {
        let v = if modifier == "hostport" {
            url_host_port(&v)
        } else {
            v
        };
        let filled = format!("{}{}{}", &template[..open], v, &template[close + 1..]);
        out.extend(substitute(&filled, entries));
    }
    out
}

/// `host:port` of an `http://host[:port]/...` URL (port 80 by default;
/// 443 for `https://`).
fn url_host_port(url: &str) -> String {
    let default = if url.starts_with("https://") { 443 } else { 80 };
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or_default();
    if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:{default}")
    }
}

/// The directory holding the file that config key `key` names (empty if
/// the key names none): what `write-directory(key)` asks for.
fn directory_of(key: &str, entries: &[ConfigEntry]) -> PathBuf {
    let file = entries
        .iter()
        .rev()
        .find(|e| e.key == key)
        .map(|e| config::value_text(&e.value.clone().into()))
        .unwrap_or_default();
    Path::new(&file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Whether a `run-command` capability names programs by a glob (any file
/// in a directory) rather than one program.
fn is_program_glob(program: &str) -> bool {
    program.contains(['*', '?', '['])
}

/// One capability as an operator reads it: its WIT name, what it names
/// (`{key}` unfilled), and the `[….grants]` key that grants it.
pub fn capability_parts(cap: &Capability) -> (&'static str, &str, &'static str) {
    match cap {
        Capability::ReadFiles(s) => ("read-files", s, "files"),
        Capability::FilesystemStats(s) => ("filesystem-stats", s, "statvfs"),
        Capability::RunCommand(s) => ("run-command", s, "commands"),
        Capability::Connect(s) => ("connect", s, "connect"),
        Capability::WriteDirectory(s) => ("write-directory", s, "directories"),
    }
}

/// What a capability asks for, filled from `entries`, each as the TOML
/// value an operator adds to its grants key (a command with any
/// arguments: `["/usr/bin/x", "**"]`; a directory: the one holding the
/// file the named key gives).
pub fn asked_grants(cap: &Capability, entries: &[ConfigEntry]) -> Vec<String> {
    let q = |s: &str| format!("{s:?}");
    match cap {
        Capability::ReadFiles(s) | Capability::FilesystemStats(s) | Capability::Connect(s) => {
            substitute(s, entries).iter().map(|v| q(v)).collect()
        }
        Capability::RunCommand(s) => substitute(s, entries)
            .iter()
            .map(|v| {
                if is_program_glob(v) {
                    format!("[{}]", q(v))
                } else {
                    format!("[{}, \"**\"]", q(v))
                }
            })
            .collect(),
        Capability::WriteDirectory(k) => {
            let dir = directory_of(k, entries);
            if dir.as_os_str().is_empty() {
                Vec::new()
            } else {
                vec![q(&dir.to_string_lossy())]
            }
        }
    }
}

/// Whether the operator's grants `g` already give what one asked value
/// (from [`asked_grants`], TOML-quoted) of a capability needs.
pub fn is_granted(g: &crate::grants::Grants, cap: &Capability, asked: &str) -> bool {
    let unq = |s: &str| s.trim_matches('"').to_string();
    match cap {
        Capability::ReadFiles(_) => {
            let p = unq(asked);
            g.files.iter().any(|f| f.as_str() == p)
                || g.check_read(Path::new(&p), Path::new(&p), false).is_ok()
        }
        Capability::FilesystemStats(_) => {
            let p = unq(asked);
            g.statvfs.iter().any(|f| f.as_str() == p) || g.check_statvfs(Path::new(&p)).is_ok()
        }
        Capability::RunCommand(s) => g.commands.iter().any(|c| c.program() == s.as_str()),
        Capability::Connect(_) => {
            let a = unq(asked);
            match crate::grants::parse_socket(&a) {
                Ok(crate::grants::SocketGrant::Unix(p)) => {
                    g.check_unix(Path::new(p.as_str())).is_ok()
                }
                Ok(_) => {
                    let mut parts = a.splitn(2, ':');
                    let proto = parts.next().unwrap_or_default();
                    let rest = parts.next().unwrap_or_default();
                    match rest.rsplit_once(':') {
                        Some((host, port)) => port
                            .parse::<u16>()
                            .is_ok_and(|port| g.check_connect_name(proto, host, port).is_ok()),
                        None => false,
                    }
                }
                Err(_) => false,
            }
        }
        Capability::WriteDirectory(_) => {
            let d = unq(asked);
            g.directories.iter().any(|x| x == Path::new(&d))
        }
    }
}

/// Grants of a plugin: what the config says, plus, for a built-in
/// component, what it asks for in `describe` (with `{key}` filled in).
/// Creates the directories it grants (`directories`, and those a built-in
/// asks to write in) when they are missing, as the agent's user.
pub(super) fn grants_for(
    p: &PluginConfig,
    d: &Description,
    entries: &[ConfigEntry],
) -> Result<crate::grants::Grants, String> {
    let mut g = p.grants.clone();
    let builtin = matches!(p.component, ComponentRef::Builtin(_));
    for cap in &d.capabilities {
        let (_, _, key) = capability_parts(cap);
        let wanted = match cap {
            Capability::ReadFiles(s)
            | Capability::FilesystemStats(s)
            | Capability::RunCommand(s)
            | Capability::Connect(s) => substitute(s, entries),
            Capability::WriteDirectory(k) => {
                vec![directory_of(k, entries).to_string_lossy().into_owned()]
            }
        };
        if !builtin {
            tracing::info!(plugin = %p.name, "asks for {key} {wanted:?}; granted only if listed in [{}.grants] {key}", p.section);
            continue;
        }
        for wanted in wanted {
            match cap {
                Capability::ReadFiles(_) => g.allow_files(&wanted)?,
                Capability::FilesystemStats(_) => g.allow_statvfs(&wanted)?,
                // A program glob (userscripts' `{scripts_path}/*`) runs
                // without arguments; a program by name with any.
                Capability::RunCommand(_) if is_program_glob(&wanted) => {
                    g.allow_command(&[wanted])?
                }
                Capability::RunCommand(_) => g.allow_command(&[wanted, "**".into()])?,
                Capability::Connect(_) => {
                    // A capability filled from a malformed value is no grant.
                    let _ = g.allow_connect(&wanted);
                }
                Capability::WriteDirectory(_) => {
                    if !wanted.is_empty() {
                        std::fs::create_dir_all(&wanted)
                            .map_err(|e| format!("creating the directory {wanted}: {e}"))?;
                        g.directories.push(PathBuf::from(wanted));
                    }
                }
            }
        }
    }
    // A directory the operator granted is created if missing (as the
    // agent's user), as one a built-in asks for is.
    for dir in &p.grants.directories {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "creating the granted directory {} (in `directories`): {e}",
                dir.display()
            )
        })?;
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &str, v: ConfigValue) -> ConfigEntry {
        ConfigEntry {
            key: k.into(),
            value: v,
        }
    }

    #[test]
    fn capabilities_are_filled_from_config() {
        let e = vec![
            entry("host", ConfigValue::TextList(vec!["a".into(), "b".into()])),
            entry("port", ConfigValue::Integer(2003)),
            entry("url", ConfigValue::Text("http://example.com/x".into())),
        ];
        assert_eq!(
            substitute("tcp:{host}:{port}", &e),
            vec!["tcp:a:2003", "tcp:b:2003"]
        );
        assert_eq!(
            substitute("tcp:{url|hostport}", &e),
            vec!["tcp:example.com:80"]
        );
        assert_eq!(substitute("/proc/stat", &e), vec!["/proc/stat"]);
    }
}
