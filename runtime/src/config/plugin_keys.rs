//! Two keys of every plugin section read apart: `component` (a built-in,
//! a `.wasm` file or a Python script) and the TLS keys.

use std::path::Path;

use toml::Value;

use super::reader::{resolve, Reader};
use super::{ComponentRef, TlsConfig};

/// One of a section's TLS keys, into `tls` (and `tls_on`); whether it
/// held a value of the right type.
pub(super) fn read_tls_key(
    r: &mut Reader<'_>,
    path: &[&str],
    key: &str,
    value: &Value,
    config_dir: &Path,
    tls: &mut TlsConfig,
    tls_on: &mut Option<bool>,
) -> bool {
    if key == "tls" || key == "insecure_skip_verify" {
        let Some(b) = r.boolean(path, value) else {
            return false;
        };
        match key {
            "tls" => *tls_on = Some(b),
            _ => tls.insecure_skip_verify = b,
        }
        return true;
    }
    let Some(v) = r.string(path, value) else {
        return false;
    };
    let file = || Some(resolve(config_dir, &v));
    match key {
        "tls_ca" => tls.ca = file(),
        "tls_cert" => tls.cert = file(),
        "tls_key" => tls.key = file(),
        _ => tls.server_name = Some(v.clone()),
    }
    true
}

/// The component a section's `component` names: a Python script (a
/// collector's only), a `.wasm` file, or a built-in.
pub(super) fn component_ref(
    r: &mut Reader<'_>,
    path: &[&str],
    s: String,
    section: &str,
    config_dir: &Path,
) -> ComponentRef {
    if s.starts_with("oci://") {
        match super::oci_reference::Reference::parse(&s) {
            Ok(reference) if reference.digest.is_some() => return ComponentRef::Oci(reference),
            Ok(reference) => r.err(path, format!("{reference} names a tag, which can move: a configuration names a component by digest (`wdiamond install {reference}` prints the line, `oci://…@sha256:…`)")),
            Err(e) => r.err(path, e),
        }
        return ComponentRef::File(s.into());
    }
    if super::model::is_script(&s) {
        if section.starts_with("handlers.") {
            r.err(path, "a Python script can only be a collector: a handler's `component` is a built-in or a .wasm file".to_string());
        }
        ComponentRef::Python(resolve(config_dir, &s))
    } else if s.ends_with(".wasm") || s.contains('/') {
        ComponentRef::File(resolve(config_dir, &s))
    } else {
        ComponentRef::Builtin(s)
    }
}
