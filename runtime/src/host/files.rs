//! `wdiamond:plugin/files`: read-only access to granted paths.
//!
//! A path is checked twice: as the guest wrote it (absolute, no `..`), and
//! after canonicalisation, so a symlink cannot lead out of the grant.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::{io_error, HostState};
use crate::bindings::files::{DirEntry, FileInfo, FileKind, Host};
use crate::bindings::types::HostError;

/// Most entries one `list-dir` returns.
pub const MAX_DIR_ENTRIES: usize = 100_000;

impl HostState {
    /// Validates a guest path and maps it onto the real filesystem
    /// (under `fs_root` when set). Returns (requested, real, canonical
    /// relative to the root) after the grant checks.
    fn resolve(&mut self, path: &str, dir: bool) -> Result<PathBuf, HostError> {
        let requested = Path::new(path);
        if !requested.is_absolute() || path.contains('\0') {
            return Err(self.failed(HostError::Invalid(format!(
                "{path:?}: paths must be absolute"
            ))));
        }
        if requested.components().any(|c| c == Component::ParentDir) {
            return Err(self.failed(HostError::Invalid(format!("{path:?}: `..` is not allowed"))));
        }
        // The lexical check first, so nothing about ungranted paths leaks.
        if let Err(d) = self.ctx.grants.check_read(requested, requested, dir) {
            return Err(self.denied(d));
        }
        let root = self.ctx.facts.fs_root.clone();
        let real = match &root {
            Some(r) => r.join(requested.strip_prefix("/").unwrap_or(requested)),
            None => requested.to_path_buf(),
        };
        let canonical = std::fs::canonicalize(&real).map_err(|e| io_error(path, e));
        let canonical = match canonical {
            Ok(c) => c,
            Err(e) => return Err(self.failed(e)),
        };
        let logical = match &root {
            Some(r) => {
                let r = std::fs::canonicalize(r).unwrap_or_else(|_| r.clone());
                match canonical.strip_prefix(&r) {
                    Ok(rest) => Path::new("/").join(rest),
                    // A link out of the root: check it as the outside path.
                    Err(_) => canonical.clone(),
                }
            }
            None => canonical.clone(),
        };
        if let Err(d) = self.ctx.grants.check_read(requested, &logical, dir) {
            return Err(self.denied(d));
        }
        Ok(canonical)
    }
}

fn kind_of(t: std::fs::FileType) -> FileKind {
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

impl Host for HostState {
    fn read_file(&mut self, path: String) -> Result<Vec<u8>, HostError> {
        let real = self.resolve(&path, false)?;
        let max = self.ctx.limits.max_read_bytes;
        let mut buf = Vec::new();
        let read = std::fs::File::open(&real).and_then(|f| f.take(max + 1).read_to_end(&mut buf));
        match read {
            Ok(n) if n as u64 > max => Err(self.failed(HostError::TooLarge(max))),
            Ok(_) => Ok(buf),
            Err(e) => Err(self.failed(io_error(&path, e))),
        }
    }

    fn list_dir(&mut self, path: String) -> Result<Vec<DirEntry>, HostError> {
        let real = self.resolve(&path, true)?;
        let entries = match std::fs::read_dir(&real) {
            Ok(e) => e,
            Err(e) => return Err(self.failed(io_error(&path, e))),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if out.len() >= MAX_DIR_ENTRIES {
                return Err(self.failed(HostError::TooLarge(MAX_DIR_ENTRIES as u64)));
            }
            let kind = entry.file_type().map(kind_of).unwrap_or(FileKind::Other);
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&mut self, path: String) -> Result<FileInfo, HostError> {
        use std::os::unix::fs::MetadataExt;
        // A mount point granted for statvfs may also be stat'ed (its device
        // number tells mount points apart).
        let p = Path::new(&path);
        let real = if p.is_absolute() && self.ctx.grants.check_statvfs(p).is_ok() {
            match &self.ctx.facts.fs_root {
                Some(r) => r.join(p.strip_prefix("/").unwrap_or(p)),
                None => p.to_path_buf(),
            }
        } else {
            self.resolve(&path, true)?
        };
        match std::fs::metadata(&real) {
            Ok(m) => Ok(FileInfo {
                kind: kind_of(m.file_type()),
                size: m.len(),
                device: m.dev(),
                modified: m.mtime().max(0) as u64,
            }),
            Err(e) => Err(self.failed(io_error(&path, e))),
        }
    }
}
