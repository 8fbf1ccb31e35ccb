//! `[server]`'s keys for components installed from OCI registries:
//! `trusted_keys` (the public keys a signature must verify with),
//! `allow_unsigned` (manifest digests accepted without one), `pull`
//! (`"never"`, the default: `run` and `check` load only what `wdiamond
//! install` stored; `"missing"`: pull what is not stored, verified the same
//! way) and `[server.registries."HOST[:PORT]"]` (TLS, plain HTTP,
//! credentials for one registry).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::reader::{resolve, Reader};
use super::TlsConfig;

/// The keys of `[server.registries."HOST"]`.
pub(super) const REGISTRY_KEYS: &[&str] = &[
    "tls_ca",
    "tls_cert",
    "tls_key",
    "insecure",
    "username",
    "password",
    "auth_file",
];

/// Whether a missing component is pulled at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pull {
    /// Never: the agent does not reach the network for components.
    #[default]
    Never,
    /// What is not stored is pulled (and verified) before loading.
    Missing,
}

/// One registry's access settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistryConfig {
    /// `tls_ca`, `tls_cert`, `tls_key`.
    pub tls: TlsConfig,
    /// `insecure`: plain HTTP allowed to this registry.
    pub insecure: bool,
    /// `username`.
    pub username: Option<String>,
    /// `password` (a secret reference, usually).
    pub password: Option<String>,
    /// `auth_file`: a docker `config.json` to take credentials from.
    pub auth_file: Option<PathBuf>,
}

/// `[server]`'s OCI keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OciConfig {
    /// `trusted_keys`: PEM public keys.
    pub trusted_keys: Vec<PathBuf>,
    /// `allow_unsigned`: manifest digests accepted unsigned.
    pub allow_unsigned: Vec<String>,
    /// `pull`.
    pub pull: Pull,
    /// `[server.registries."HOST"]`, by `host[:port]`.
    pub registries: BTreeMap<String, RegistryConfig>,
}

/// Reads one of the OCI keys of `[server]`; false when `key` is not one.
pub(super) fn read_oci_key(
    r: &mut Reader<'_>,
    key: &str,
    v: &toml::Value,
    config_dir: &Path,
    oci: &mut OciConfig,
) -> bool {
    let p = ["server", key];
    match key {
        "trusted_keys" => {
            for k in r.strings(&p, v).unwrap_or_default() {
                let path = resolve(config_dir, &k);
                if let Err(e) = public_key_file(&path) {
                    r.err(&p, e);
                }
                oci.trusted_keys.push(path);
            }
        }
        "allow_unsigned" => {
            for d in r.strings(&p, v).unwrap_or_default() {
                if super::oci_reference::digest_ok(&d) {
                    oci.allow_unsigned.push(d);
                } else {
                    r.err(&p, format!("{d:?} is not a manifest digest (sha256: and 64 lowercase hex digits; `wdiamond install` prints it)"));
                }
            }
        }
        "pull" => match r.string(&p, v).as_deref() {
            Some("never") => oci.pull = Pull::Never,
            Some("missing") => oci.pull = Pull::Missing,
            Some(other) => r.err(
                &p,
                format!("{other:?} is not a pull policy: \"never\" (the default) or \"missing\""),
            ),
            None => {}
        },
        "registries" => {
            if let Some(t) = r.table(&p, v) {
                for (host, value) in t {
                    let rp = ["server", "registries", host.as_str()];
                    if let Some(t) = r.table(&rp, value) {
                        oci.registries
                            .insert(host.clone(), read_registry(r, host, t, config_dir));
                    }
                }
            }
        }
        _ => return false,
    }
    true
}

/// Whether `path` holds a PEM public key (the key itself is read where it
/// verifies: `oci::sign`).
fn public_key_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if !meta.is_file() || meta.len() > 64 << 10 {
        return Err(format!(
            "{}: not a key file (a PEM file of at most 64 KiB)",
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if !text.contains("-----BEGIN PUBLIC KEY-----") {
        return Err(format!(
            "{}: not a PEM PUBLIC KEY (the .pub file of a key pair)",
            path.display()
        ));
    }
    Ok(())
}

fn read_registry(
    r: &mut Reader<'_>,
    host: &str,
    t: &toml::Table,
    config_dir: &Path,
) -> RegistryConfig {
    let mut c = RegistryConfig::default();
    for (k, v) in t {
        let p = ["server", "registries", host, k.as_str()];
        let file = |r: &mut Reader<'_>| r.string(&p, v).map(|s| resolve(config_dir, &s));
        match k.as_str() {
            "tls_ca" => c.tls.ca = file(r),
            "tls_cert" => c.tls.cert = file(r),
            "tls_key" => c.tls.key = file(r),
            "auth_file" => c.auth_file = file(r),
            "insecure" => c.insecure = r.boolean(&p, v).unwrap_or(false),
            "username" => c.username = r.string(&p, v),
            "password" => c.password = r.string(&p, v),
            _ => r.unknown(&p, REGISTRY_KEYS),
        }
    }
    if c.username.is_some() != c.password.is_some() {
        r.err(
            &["server", "registries", host],
            "`username` and `password` go together: set both",
        );
    }
    c
}
