//! A verified pull and a signed push: the order of checks is the security
//! of the store. A pull resolves a tag once to a digest, reads everything
//! else by that digest, checks the manifest, verifies its signature (or
//! its digest's place on the operator's allow-list) *before* the component
//! is downloaded, checks the component's digest and size, and only then
//! stores it; nothing unverified reaches the store or the compiler.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::artifact::{self, About, Manifest, MAX_COMPONENT_FILE, MAX_MANIFEST};
use super::auth::{default_auth_files, from_auth_file, Credentials};
use super::http::Transport;
use super::reference::Reference;
use super::registry::Registry;
use super::sign::{self, PrivateKey, PublicKey};
use super::store::Store;
use crate::config::{OciConfig, RegistryConfig};

/// Largest signature manifest, bytes.
const MAX_SIGNATURE_MANIFEST: u64 = 1 << 20;
/// Most signatures looked at.
const MAX_SIGNATURES: usize = 16;

/// How one registry is reached.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Its settings.
    pub registry: RegistryConfig,
    /// How long the whole operation may take.
    pub timeout: Duration,
}

impl Access {
    /// The settings `oci` has for `registry`, with `timeout`.
    pub fn from_config(oci: &OciConfig, registry: &str, timeout: Duration) -> Access {
        Access {
            registry: oci.registries.get(registry).cloned().unwrap_or_default(),
            timeout,
        }
    }

    fn transport(&self) -> anyhow::Result<Transport> {
        let tls = crate::host::tls::TlsSettings::load(&self.registry.tls)
            .map_err(|e| anyhow!("{}: {}", e.key, e.message))?;
        Ok(Transport {
            tls: tls.client_config(),
            insecure: self.registry.insecure,
            deadline: Instant::now() + self.timeout,
            timeout: self.timeout,
        })
    }

    fn credentials(&self, registry: &str) -> anyhow::Result<Option<Credentials>> {
        if let (Some(u), Some(p)) = (&self.registry.username, &self.registry.password) {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        if let Some(f) = &self.registry.auth_file {
            return from_auth_file(f, registry, self.timeout);
        }
        for f in default_auth_files() {
            if f.exists() {
                if let Some(c) = from_auth_file(&f, registry, self.timeout)? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    fn connect(&self, r: &Reference, push: bool) -> anyhow::Result<Registry> {
        let (access, registry) = (self.clone(), r.registry.clone());
        let source = Box::new(move || access.credentials(&registry));
        Registry::connect(r, self.transport()?, source, push)
    }
}

/// What a signature must verify with, or which digests need none.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Trusted public keys.
    pub keys: Vec<PublicKey>,
    /// Manifest digests accepted unsigned.
    pub allow_unsigned: Vec<String>,
}

impl Trust {
    /// The keys of `[server] trusted_keys` and `extra`, and the
    /// allow-list of `[server] allow_unsigned` and `allow`.
    pub fn load(oci: &OciConfig, extra: &[PathBuf], allow: &[String]) -> anyhow::Result<Trust> {
        let keys = oci
            .trusted_keys
            .iter()
            .chain(extra)
            .map(|p| PublicKey::read(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut allow_unsigned = oci.allow_unsigned.clone();
        allow_unsigned.extend(allow.iter().cloned());
        Ok(Trust {
            keys,
            allow_unsigned,
        })
    }
}

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The component's place, by digest.
    pub reference: Reference,
    /// The component's SHA-256, hex (its `sha256` pin).
    pub sha256: String,
    /// The key whose signature verified, or `None` when the digest was on
    /// the allow-list.
    pub signed_by: Option<String>,
}

/// Pulls `r` into `store`, verified (see the module's docs).
pub fn pull(
    r: &Reference,
    access: &Access,
    trust: &Trust,
    store: &Store,
) -> anyhow::Result<Pulled> {
    let registry = access.connect(r, false)?;
    let fetched = registry
        .manifest(r.manifest_key(), MAX_MANIFEST)?
        .ok_or_else(|| anyhow!("{r}: no such manifest in the registry"))?;
    let digest = fetched.digest;
    let by_digest = r.by_digest(&digest);
    let manifest = Manifest::parse(&fetched.bytes).with_context(|| by_digest.to_string())?;
    let layer = manifest
        .component_layer(MAX_COMPONENT_FILE)
        .with_context(|| by_digest.to_string())?
        .clone();
    let signed_by = match verify_signatures(&registry, &digest, &trust.keys) {
        Ok(key) => Some(key),
        Err(why) if trust.allow_unsigned.contains(&digest) => {
            tracing::warn!(reference = %by_digest, reason = %why, "installing without a verified signature: its digest is on the allow-list");
            None
        }
        Err(why) => bail!(
            "{by_digest}: refused: {why}. Trust its author's public key ([server] trusted_keys, or --trusted-key), or allow this digest unsigned ([server] allow_unsigned = [\"{digest}\"], or --allow-unsigned {digest})"
        ),
    };
    let wasm = registry.blob(&layer.digest, layer.size, MAX_COMPONENT_FILE)?;
    store.put(&layer.digest, &wasm)?;
    store.put(&digest, &fetched.bytes)?;
    Ok(Pulled {
        reference: by_digest,
        sha256: layer.digest.trim_start_matches("sha256:").to_string(),
        signed_by,
    })
}

/// The name of the trusted key whose signature of `digest` verifies, or
/// why none does.
fn verify_signatures(
    registry: &Registry,
    digest: &str,
    keys: &[PublicKey],
) -> Result<String, String> {
    let tag = sign::signature_tag(digest);
    let fetched = match registry.manifest(&tag, MAX_SIGNATURE_MANIFEST) {
        Ok(Some(f)) => f,
        Ok(None) => return Err(format!("it is not signed (no {tag} in the repository)")),
        Err(e) => return Err(format!("its signatures cannot be read: {e:#}")),
    };
    let m = Manifest::parse(&fetched.bytes)
        .map_err(|e| format!("its signature manifest {tag}: {e:#}"))?;
    if keys.is_empty() {
        return Err("it is signed, but no key is trusted".into());
    }
    let mut reasons = Vec::new();
    for layer in m
        .layers
        .iter()
        .filter(|l| l.media_type == sign::SIMPLE_SIGNING)
        .take(MAX_SIGNATURES)
    {
        let Some(sig) = layer.annotations.get(sign::SIGNATURE_ANNOTATION) else {
            reasons.push("a signature layer without its signature annotation".to_string());
            continue;
        };
        let payload = match registry.blob(&layer.digest, layer.size, sign::MAX_PAYLOAD) {
            Ok(p) => p,
            Err(e) => {
                reasons.push(format!("{e:#}"));
                continue;
            }
        };
        match sign::verify(keys, &payload, sig, digest) {
            Ok(key) => return Ok(key),
            Err(why) => reasons.push(why),
        }
    }
    if reasons.is_empty() {
        return Err(format!("{tag} holds no cosign signature"));
    }
    reasons.dedup();
    Err(format!(
        "its signature does not verify: {}",
        reasons.join("; ")
    ))
}

/// What a push made.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: String,
    /// The signature's tag, when signed.
    pub signature: Option<String>,
}

/// Pushes `wasm` (described by `about`) to `r`'s tag, and with `key` its
/// signature.
pub fn push(
    r: &Reference,
    access: &Access,
    wasm: &[u8],
    about: &About,
    key: Option<&PrivateKey>,
) -> anyhow::Result<Pushed> {
    let tag = r
        .tag
        .as_deref()
        .ok_or_else(|| anyhow!("{r}: publish to a tag (oci://HOST/REPO:TAG)"))?;
    let registry = access.connect(r, true)?;
    let (config, manifest) = artifact::build(wasm, about);
    registry.push_blob(wasm)?;
    registry.push_blob(&config)?;
    let digest = registry.put_manifest(tag, artifact::OCI_MANIFEST, &manifest)?;
    let signature = match key {
        None => None,
        Some(k) => {
            let payload = sign::payload(&r.repository_path(), &digest);
            let (config, manifest) = artifact::signature(&payload, &k.sign(&payload)?);
            registry.push_blob(&payload)?;
            registry.push_blob(&config)?;
            let tag = sign::signature_tag(&digest);
            registry.put_manifest(&tag, artifact::OCI_MANIFEST, &manifest)?;
            Some(tag)
        }
    };
    Ok(Pushed { digest, signature })
}

/// Pulls what `config`'s components name and the store lacks, or holds
/// damaged (for `[server] pull = "missing"`): `(section, error)` for each
/// that failed.
pub fn pull_missing(
    sections: &[(String, Reference)],
    oci: &OciConfig,
    store: &Store,
    timeout: Duration,
) -> Vec<(String, String)> {
    let trust = match Trust::load(oci, &[], &[]) {
        Ok(t) => Arc::new(t),
        Err(e) => return vec![("server.trusted_keys".into(), format!("{e:#}"))],
    };
    let mut failed = Vec::new();
    for (section, r) in sections {
        if store.has(r) {
            continue;
        }
        let access = Access::from_config(oci, &r.registry, timeout);
        match pull(r, &access, &trust, store) {
            Ok(p) => {
                tracing::info!(reference = %p.reference, signed_by = ?p.signed_by, "pulled a missing component")
            }
            Err(e) => failed.push((section.clone(), format!("{e:#}"))),
        }
    }
    failed
}
