//! A component file read within bounds: its size (at most
//! [`MAX_COMPONENT_FILE`], checked before and while it is read) and its
//! header (a component, not a core module or anything else), before a
//! compiler sees it.

use std::path::Path;

use anyhow::{anyhow, Context};

use super::contract;

/// Largest component file read, bytes: an 18 MB Python runtime fits many
/// times over; a plugin path pointing at a disk image does not. The same
/// bound holds a registry's component (defined there, the lower floor).
pub const MAX_COMPONENT_FILE: u64 = crate::oci::artifact::MAX_COMPONENT_FILE;

/// Reads a component file, checking its size and its header (a component,
/// not a core module or anything else) before a compiler sees it.
pub fn read_component_file(p: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
    if !meta.is_file() {
        return Err(anyhow!("{} is not a regular file", p.display()));
    }
    if meta.len() > MAX_COMPONENT_FILE {
        return Err(anyhow!(
            "{} is {} MiB, more than a component may be ({} MiB)",
            p.display(),
            meta.len() >> 20,
            MAX_COMPONENT_FILE >> 20
        ));
    }
    let mut b = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?,
            MAX_COMPONENT_FILE + 1,
        ),
        &mut b,
    )
    .with_context(|| format!("reading {}", p.display()))?;
    if b.len() as u64 > MAX_COMPONENT_FILE {
        return Err(anyhow!(
            "{} grew past {} MiB while read",
            p.display(),
            MAX_COMPONENT_FILE >> 20
        ));
    }
    contract::check_component_bytes(&b).map_err(|e| anyhow!("{}: {e}", p.display()))?;
    Ok(b)
}
