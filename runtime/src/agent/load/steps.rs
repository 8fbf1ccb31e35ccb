//! The first steps of loading a plugin: its compiled component (and a
//! Python collector's script), what it says about itself, and its TLS.

use std::sync::Arc;

use wasmtime::component::Component;

use super::context;
use crate::agent::describe::accept_description;
use crate::bindings::types::Description;
use crate::config::{ComponentRef, ConfigError, ConfigValue, PluginConfig};
use crate::host::tls::TlsSettings;
use crate::host::HostFacts;
use crate::plugin::{contract, python, ComponentError, Metering, Runtime, World};

/// A plugin's compiled component (for a Python collector, the Python
/// runtime) and its script, read and pinned; the component of world `W`.
pub(super) fn compiled<W: World>(
    runtime: &Runtime,
    p: &PluginConfig,
    metering: Metering,
    errors: &mut Vec<ConfigError>,
) -> Option<(Component, Option<Arc<python::Script>>)> {
    // A Python collector's script is read (and its pin checked) here; its
    // component is the Python runtime.
    let script = match &p.component {
        ComponentRef::Python(path) => match python::read_script(path, p.sha256.as_deref()) {
            Ok(s) => Some(Arc::new(s.with_python_path(&p.python_path))),
            Err(e) => {
                errors.push(component_error(p, e));
                return None;
            }
        },
        _ if !p.python_path.is_empty() => {
            let why = "`python_path` is for Python collectors (`component = \"FILE.py\"`)";
            errors.push(p.error_at("python_path", why.into()));
            return None;
        }
        _ => None,
    };
    let pinned = match &p.component {
        ComponentRef::Python(_) => runtime.python(metering),
        _ => runtime.component_pinned(&p.component, metering, p.sha256.as_deref()),
    };
    let component = match pinned {
        Ok(c) => c,
        Err(e) => {
            errors.push(component_error(p, e));
            return None;
        }
    };
    if let Err(e) = contract::read(&component).and_then(|c| c.expect(W::KIND)) {
        errors.push(p.error_at("component", format!("{}: {e}", p.component)));
        return None;
    }
    Some((component, script))
}

/// What a plugin says about itself, checked: its `describe` under the
/// section's grants (a Python script's load error, explained).
pub(super) fn described<W: World>(
    runtime: &Runtime,
    p: &PluginConfig,
    component: &Component,
    script: &Option<Arc<python::Script>>,
    facts: &HostFacts,
    errors: &mut Vec<ConfigError>,
) -> Option<Description> {
    // `describe` runs the script's `__init__` and `process_config`: what
    // they check (`os.access` of a granted file) the operator's grants
    // allow, and a denial names the section. (No directory: it writes
    // nothing, and a granted one is created only after.)
    let mut probe_grants = p.grants.clone();
    probe_grants.directories.clear();
    let probe = context(
        &p.name,
        "probe",
        probe_grants,
        p,
        Vec::new(),
        String::new(),
        0.0,
        facts,
        script.clone(),
        None,
    );
    let described = runtime
        .instance::<W>(component, probe)
        .map_err(|e| format!("{e:#}"))
        .and_then(|mut i| i.describe().map_err(|e| e.to_string()))
        .and_then(|d| accept_description(d, script.as_deref()));
    match described {
        Ok(d) => Some(d),
        Err(e) if script.is_some() => {
            let why = if e.starts_with(&p.component.to_string()) {
                e
            } else {
                format!("{}: loading the script failed: {e}", p.component)
            };
            errors.push(p.error_at("component", why));
            None
        }
        Err(e) => {
            let message = format!("{} does not describe itself: {e}", p.component);
            errors.push(p.error_at("component", message));
            None
        }
    }
}

/// The section's TLS settings, loaded (and `tls = true` told to the
/// plugin through `host`).
pub(super) fn tls_of(
    p: &PluginConfig,
    host: &mut Vec<(String, ConfigValue)>,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<TlsSettings>> {
    match &p.tls {
        Some(t) => match TlsSettings::load(t) {
            Ok(settings) => {
                if t.insecure_skip_verify {
                    tracing::warn!(plugin = %p.name, "insecure_skip_verify: the TLS certificates of [{}]'s backends are NOT verified; anyone on the path can read and change what it sends", p.section);
                }
                // The plugin learns that its TCP connections are TLS (an
                // HTTP handler then accepts https:// URLs).
                host.push(("tls".into(), ConfigValue::Boolean(true)));
                Some(Arc::new(settings))
            }
            Err(e) => {
                errors.push(p.error_at(e.key, e.message));
                None
            }
        },
        None => None,
    }
}

/// A component that could not be had: a pin that does not match is about
/// `sha256`, anything else about `component`.
fn component_error(p: &PluginConfig, e: ComponentError) -> ConfigError {
    match e {
        e @ ComponentError::DigestMismatch { .. } => p.error_at("sha256", e.to_string()),
        e => p.error_at("component", format!("{e:#}")),
    }
}
