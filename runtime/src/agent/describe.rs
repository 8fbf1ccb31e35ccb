//! What a plugin says about itself (`describe`), checked before anything
//! else is believed: its name, version, summary, options and asks, the
//! operator's keys against its options, and the built-ins' metric paths a
//! third-party plugin may not take by its own say.

use crate::bindings::types::Description;
use crate::config::{CollectorConfig, ComponentRef, ConfigError, PluginConfig};

/// Most options a plugin may describe.
pub const MAX_OPTIONS: usize = 1000;
/// Most capabilities a plugin may ask for.
pub const MAX_CAPABILITIES: usize = 100;
/// Longest summary, bytes.
pub const MAX_SUMMARY: usize = 8192;

/// What a plugin's `describe` gave, as the agent takes it: a Python
/// script's load error (explained) or a description that does not check
/// out ([`check_description`]) is an error.
pub fn accept_description(
    d: Description,
    script: Option<&crate::plugin::python::Script>,
) -> Result<Description, String> {
    use crate::plugin::python;
    if let (Some(why), Some(s)) = (python::load_error(&d), script) {
        return Err(python::load_failure(s, why));
    }
    check_description(&d).map_err(|e| format!("it describes itself badly: {e}"))?;
    Ok(d)
}

/// Checks what a (possibly hostile) plugin said about itself.
pub fn check_description(d: &Description) -> Result<(), String> {
    let shown = |s: &str| format!("{:?}", s.chars().take(40).collect::<String>());
    // Its name is its default path, as Diamond's `path`: one segment,
    // several (`aws.s3`), or `.` (no segment of its own).
    if d.name != "." && crate::metric::check_name(&d.name).is_err() {
        return Err(format!(
            "its name {} is not a metric path: segments of letters, digits, _ - joined by `.`, or `.` alone",
            shown(&d.name)
        ));
    }
    if d.version.len() > 64 || d.version.chars().any(char::is_control) {
        return Err(format!(
            "its version {} is not a version",
            shown(&d.version)
        ));
    }
    if d.summary.len() > MAX_SUMMARY {
        return Err(format!(
            "its summary is {} bytes, more than {MAX_SUMMARY}",
            d.summary.len()
        ));
    }
    if d.options.len() > MAX_OPTIONS {
        return Err(format!(
            "it lists {} options, more than {MAX_OPTIONS}",
            d.options.len()
        ));
    }
    for o in &d.options {
        if o.key.is_empty()
            || o.key.len() > 128
            || !o
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "option key {} is not a TOML bare key",
                shown(&o.key)
            ));
        }
        if o.help.len() > 1024 {
            return Err(format!(
                "the help of option {} is longer than 1024 bytes",
                o.key
            ));
        }
    }
    if d.capabilities.len() > MAX_CAPABILITIES {
        return Err(format!(
            "it asks for {} capabilities, more than {MAX_CAPABILITIES}",
            d.capabilities.len()
        ));
    }
    Ok(())
}

pub(super) fn check_options(p: &PluginConfig, d: &Description, errors: &mut Vec<ConfigError>) {
    for (key, _) in &p.options {
        if !d.options.iter().any(|o| o.key == *key) {
            let mut known: Vec<&str> = d.options.iter().map(|o| o.key.as_str()).collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            errors.push(p.error_at(key, format!("unknown key: `{}` has no such option (its options: {known}; host keys are listed in the README)", d.name)));
        }
    }
}

/// The default metric paths of the built-in collectors (their `describe`
/// names): a component that is not built in may publish there only when
/// the operator sets `path` (a test checks the list against the built-ins).
pub const BUILTIN_PATHS: &[&str] = &[
    "cpu",
    "memory",
    "loadavg",
    "network",
    "diskspace",
    "iostat",
    "vmstat",
    "sockets",
    "tcp",
    "udp",
    "proc",
    "uptime",
    "entropy",
    "files",
    "interrupts",
    "softirq",
    "netstat",
    "redis",
    "memcached",
    "nginx",
    "zookeeper",
    "ceph",
    "postgres",
    "pgbouncer",
    "mysql",
];

/// Why a collector may not publish where its `describe` says, if it may
/// not: a third-party plugin (a `.wasm` or a script) never takes a
/// built-in's path, nor the agent's own health path (`[server]
/// health_path`, or a path under which it lies), by its own say; the
/// operator's `path`, or a tenant's prefix, settles it.
pub(super) fn reserved_path(
    c: &CollectorConfig,
    in_tenant: bool,
    default_path: &str,
    health_path: &str,
) -> Option<String> {
    let p = &c.plugin;
    if matches!(p.component, ComponentRef::Builtin(_)) || c.path.is_some() {
        return None;
    }
    let fix = format!(
        "set `path` in [{}] to say where it publishes (`path = {default_path:?}` to publish there on purpose)",
        p.section
    );
    if default_path == "." && !in_tenant {
        return Some(format!(
            "{} describes its path as \".\" (Diamond's: its metrics directly under the host name), where it could publish any path, a built-in's or the agent's own: {fix}",
            p.component
        ));
    }
    let first = default_path.split('.').next().unwrap_or_default();
    if BUILTIN_PATHS.contains(&first) {
        return Some(format!(
            "{} is not built in, but describes itself as {default_path:?}, the path of a built-in collector: {fix}",
            p.component
        ));
    }
    let under_health = !health_path.is_empty()
        && (health_path == default_path
            || health_path.starts_with(&format!("{default_path}."))
            || default_path.starts_with(&format!("{health_path}.")));
    if under_health && !in_tenant {
        return Some(format!(
            "{} describes itself as {default_path:?}, where the agent publishes its own health ([server] health_path = {health_path:?}): its metrics would pass for the agent's; {fix}",
            p.component
        ));
    }
    None
}
