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
        Some(v) => vec![config::value_text(v)],
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

/// `host:port` of an `http://host[:port]/...` URL (port 80 by default).
fn url_host_port(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or_default();
    if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    }
}

/// Grants of a plugin: what the config says, plus, for a built-in
/// component, what it asks for in `describe` (with `{key}` filled in).
pub(super) fn grants_for(
    p: &PluginConfig,
    d: &Description,
    entries: &[ConfigEntry],
) -> Result<crate::grants::Grants, String> {
    let mut g = p.grants.clone();
    let builtin = matches!(p.component, ComponentRef::Builtin(_));
    for cap in &d.capabilities {
        let (wanted, key) = match cap {
            Capability::ReadFiles(s) => (substitute(s, entries), "files"),
            Capability::FilesystemStats(s) => (substitute(s, entries), "statvfs"),
            Capability::RunCommand(s) => (substitute(s, entries), "commands"),
            Capability::Connect(s) => (substitute(s, entries), "connect"),
            Capability::WriteDirectory(k) => {
                let file = entries
                    .iter()
                    .rev()
                    .find(|e| e.key == *k)
                    .map(|e| config::value_text(&e.value))
                    .unwrap_or_default();
                let dir = Path::new(&file)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                (vec![dir.to_string_lossy().into_owned()], "directories")
            }
        };
        if !builtin {
            tracing::info!(plugin = %p.name, "asks for {key} {wanted:?}; granted only if listed in [{}.grants] {key}", p.section);
            continue;
        }
        for wanted in wanted {
            match key {
                "files" => g.allow_files(&wanted)?,
                "statvfs" => g.allow_statvfs(&wanted)?,
                "commands" => g.allow_command(&[wanted, "**".into()])?,
                "connect" => {
                    // A capability filled from a malformed value is no grant.
                    let _ = g.allow_connect(&wanted);
                }
                _ => {
                    if !wanted.is_empty() {
                        std::fs::create_dir_all(&wanted)
                            .map_err(|e| format!("creating the directory {wanted}: {e}"))?;
                        g.directories.push(PathBuf::from(wanted));
                    }
                }
            }
        }
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
