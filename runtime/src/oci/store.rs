//! The local store of installed components, content-addressed under the
//! plugin cache (`oci/blobs/sha256/<hex>`, as an OCI image layout keeps
//! blobs): a manifest and its component layer, each written only after its
//! digest was checked and its signature verified, and read back checked
//! again. A configuration's `component = "oci://…@sha256:…"` loads from
//! here; a digest names the same bytes for ever, so nothing changes under
//! a running agent.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use super::artifact::{Manifest, MAX_COMPONENT_FILE, MAX_MANIFEST};
use super::reference::Reference;
use super::registry::digest_of;

/// The store under a plugin cache.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of the plugin cache `cache_dir`.
    pub fn new(cache_dir: &Path) -> Store {
        Store {
            dir: cache_dir.join("oci"),
        }
    }

    /// Where the blob `digest` is kept.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Keeps `bytes` as the blob `digest` (checked first).
    pub fn put(&self, digest: &str, bytes: &[u8]) -> anyhow::Result<()> {
        if digest_of(bytes) != digest {
            bail!("refusing to store bytes that are not {digest}");
        }
        let path = self.blob_path(digest);
        let parent = path.parent().expect("a blob path has a parent");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The blob `digest`, checked, if it is stored (at most `max` bytes).
    pub fn get(&self, digest: &str, max: u64) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
        };
        if !meta.is_file() || meta.len() > max {
            bail!(
                "{} is not a stored blob (remove it and install again)",
                path.display()
            );
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if digest_of(&bytes) != digest {
            bail!(
                "the stored copy of {digest} ({}) is damaged: remove it and run `wdiamond install` again",
                path.display()
            );
        }
        Ok(Some(bytes))
    }

    /// Whether `r`'s manifest and component are stored, whole (both read
    /// and checked against their digests).
    pub fn has(&self, r: &Reference) -> bool {
        self.component(r).is_ok()
    }

    /// The stored component of `r` (which names a digest): its bytes and
    /// their SHA-256 in hex. The error says how to get it there.
    pub fn component(&self, r: &Reference) -> anyhow::Result<(Vec<u8>, String)> {
        let digest = r
            .digest
            .as_deref()
            .ok_or_else(|| anyhow!("{r} names no digest"))?;
        let manifest = self.get(digest, MAX_MANIFEST)?.ok_or_else(|| {
            anyhow!("{r} is not installed: run `wdiamond install {r}` (or set [server] pull = \"missing\")")
        })?;
        let m = Manifest::parse(&manifest)?;
        let layer = m.component_layer(MAX_COMPONENT_FILE)?;
        let wasm = self.get(&layer.digest, MAX_COMPONENT_FILE)?.ok_or_else(|| {
            anyhow!("{r}: its component layer is missing from the store: run `wdiamond install {r}` again")
        })?;
        let hex = layer.digest.trim_start_matches("sha256:").to_string();
        Ok((wasm, hex))
    }
}
