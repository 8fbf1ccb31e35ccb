//! A component as an OCI artifact, in the layout the WebAssembly tooling
//! uses (the CNCF wasm OCI artifact layout, as `wkg` pushes it): an OCI
//! image manifest whose one layer is the component (`application/wasm`)
//! and whose config blob (`application/vnd.wasm.config.v0+json`) says what
//! it is, with what its `describe` says about itself under `wdiamond`.
//! What the config blob and annotations say is shown, never trusted: the
//! agent runs `describe` itself on the verified bytes.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};

use super::http::shown;
use super::reference::digest_ok;
use super::registry::digest_of;

/// OCI's image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker's schema 2 manifest (the same shape; some registries convert).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The wasm artifact's config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// A component layer.
pub const WASM_LAYER: &str = "application/wasm";
/// The older `wasm-to-oci` layer type, also read.
const WASM_LAYER_OLD: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Largest component, bytes: from a registry, and as a file
/// ([`crate::plugin::MAX_COMPONENT_FILE`] is this one bound).
pub const MAX_COMPONENT_FILE: u64 = 512 << 20;
/// Largest manifest read, bytes (containerd's bound).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Most layers a manifest may list.
const MAX_LAYERS: usize = 64;

/// An OCI descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses and checks a manifest: schema 2, digests well formed, a
    /// bounded number of layers.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            anyhow!(
                "the manifest is not an OCI image manifest: {}",
                shown(&e.to_string())
            )
        })?;
        if m.schema_version != 2 {
            bail!(
                "the manifest's schemaVersion is {}, not 2",
                m.schema_version
            );
        }
        if let Some(t) = &m.media_type {
            if t != OCI_MANIFEST && t != DOCKER_MANIFEST {
                bail!(
                    "the manifest is a {}, not an image manifest (an index or another kind is not a component)",
                    shown(t)
                );
            }
        }
        if m.layers.len() > MAX_LAYERS {
            bail!(
                "the manifest lists {} layers (at most {MAX_LAYERS})",
                m.layers.len()
            );
        }
        for d in std::iter::once(&m.config).chain(&m.layers) {
            if !digest_ok(&d.digest) {
                bail!(
                    "the manifest names a digest {:?} that is not sha256: and 64 hex digits",
                    shown(&d.digest)
                );
            }
        }
        Ok(m)
    }

    /// The component layer: exactly one `application/wasm` layer, at most
    /// `max` bytes.
    pub fn component_layer(&self, max: u64) -> anyhow::Result<&Descriptor> {
        let wasm: Vec<&Descriptor> = self
            .layers
            .iter()
            .filter(|l| l.media_type == WASM_LAYER || l.media_type == WASM_LAYER_OLD)
            .collect();
        let [layer] = wasm.as_slice() else {
            bail!(
                "the artifact holds {} layers of type {WASM_LAYER} (a component artifact holds exactly one)",
                wasm.len()
            );
        };
        if layer.size > max {
            bail!(
                "its component layer is {} MiB, more than a component may be ({} MiB)",
                layer.size >> 20,
                max >> 20
            );
        }
        Ok(layer)
    }
}

/// What `publish` writes into the config blob about the component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct About {
    /// `collector` or `handler`.
    pub world: String,
    /// The contract version it was built against.
    pub contract: String,
    /// `describe().name`.
    pub name: String,
    /// `describe().version`.
    pub version: String,
    /// `describe().summary`.
    pub summary: String,
    /// Its options, `key = default`.
    pub options: Vec<String>,
    /// What it asks for, `kind value`.
    pub asks: Vec<String>,
}

/// The config blob and the manifest of `wasm`, described by `about`.
pub fn build(wasm: &[u8], about: &About) -> (Vec<u8>, Vec<u8>) {
    let layer_digest = digest_of(wasm);
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": { "imports": [], "exports": [], "target": format!("wdiamond:plugin/{}@{}", about.world, about.contract) },
        "wdiamond": about,
    });
    let config = serde_json::to_vec(&config).expect("JSON of plain values");
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.title".to_string(),
        about.name.clone(),
    );
    annotations.insert(
        "org.opencontainers.image.version".to_string(),
        about.version.clone(),
    );
    annotations.insert(
        "org.opencontainers.image.description".to_string(),
        about.summary.clone(),
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: WASM_CONFIG.into(),
            digest: digest_of(&config),
            size: config.len() as u64,
            annotations: BTreeMap::new(),
        },
        layers: vec![Descriptor {
            media_type: WASM_LAYER.into(),
            digest: layer_digest,
            size: wasm.len() as u64,
            annotations: BTreeMap::new(),
        }],
        annotations,
    };
    let manifest = serde_json::to_vec(&manifest).expect("JSON of plain values");
    (config, manifest)
}

/// The config blob and manifest of a cosign signature: `payload` as its
/// one layer, `signature` (base64) in the layer's annotation.
pub fn signature(payload: &[u8], signature: &str) -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let mut annotations = BTreeMap::new();
    annotations.insert(
        super::sign::SIGNATURE_ANNOTATION.to_string(),
        signature.to_string(),
    );
    let m = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            digest: digest_of(&config),
            size: config.len() as u64,
            annotations: BTreeMap::new(),
        },
        layers: vec![Descriptor {
            media_type: super::sign::SIMPLE_SIGNING.into(),
            digest: digest_of(payload),
            size: payload.len() as u64,
            annotations,
        }],
        annotations: BTreeMap::new(),
    };
    (
        config,
        serde_json::to_vec(&m).expect("JSON of plain values"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_artifact_reads_back_and_bad_manifests_are_refused() {
        let about = About {
            world: "collector".into(),
            contract: "0.1.2".into(),
            name: "x".into(),
            version: "1".into(),
            summary: "s".into(),
            options: vec![],
            asks: vec![],
        };
        let (config, manifest) = build(b"\0asm", &about);
        let m = Manifest::parse(&manifest).unwrap();
        assert_eq!(m.config.digest, digest_of(&config));
        assert_eq!(m.component_layer(10).unwrap().digest, digest_of(b"\0asm"));
        assert!(m.component_layer(3).is_err());
        let two = manifest.clone().into_iter().collect::<Vec<u8>>();
        let mut two: Manifest = serde_json::from_slice(&two).unwrap();
        two.layers.push(two.layers[0].clone());
        assert!(format!("{:#}", two.component_layer(10).unwrap_err()).contains("holds 2 layers"));
        for bad in [
            &br#"{"schemaVersion":1,"config":{"mediaType":"a","digest":"sha256:00","size":1},"layers":[]}"#[..],
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
            br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"md5:00","size":1},"layers":[]}"#,
            b"garbage",
        ] {
            assert!(Manifest::parse(bad).is_err());
        }
    }
}
