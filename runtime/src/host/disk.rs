//! What a plugin may write in its `directories` grants: a disk budget.
//!
//! WASI gives a plugin its granted directories read-write; without a bound
//! one run could fill the host's disk. Every WASI call that adds bytes or
//! entries there is checked against the plugin's [`Budget`] *before* it
//! happens: `disk_mb` bytes in the granted directories (files counted by
//! their size or their blocks, whichever is larger) and `disk_files`
//! entries. The use is measured by walking the directories at the first
//! write of each run (so what the plugin or anyone deleted since counts no
//! more), then every byte written (a stream write, `write` at an offset, a
//! file grown by `set-size`) and every entry created (`open-at` creating,
//! `create-directory-at`, `link-at`) is charged as it happens —
//! overwritten bytes too, until the next run's measurement. One write is
//! at most [`MAX_WRITE`] bytes (a longer one is cut short, as POSIX
//! allows). Past the budget the call fails in the guest with
//! `insufficient-space` — an error, never a trap —, counted as a denial and
//! logged once a run, naming the key to raise.
//!
//! A third-party plugin's budget defaults to [`DEFAULT_DISK_MB`] and
//! [`DEFAULT_DISK_FILES`]; a built-in (the archive handler's log) is
//! unbounded unless its section sets them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::PluginContext;

/// A third-party plugin's default `disk_mb`.
pub const DEFAULT_DISK_MB: u64 = 64;
/// A third-party plugin's default `disk_files`.
pub const DEFAULT_DISK_FILES: u64 = 1_000;
/// Most bytes one write call takes.
pub const MAX_WRITE: usize = 1 << 20;

/// A plugin's disk budget in its granted directories (shared by the WASI
/// calls of its instance and the file streams they opened).
pub struct Budget {
    ctx: Arc<PluginContext>,
    max_bytes: u64,
    max_entries: u64,
    used: AtomicU64,
    entries: AtomicU64,
    /// A new run began: measure before the next charge.
    stale: AtomicBool,
    /// Already logged this run.
    logged: AtomicBool,
    /// Calls refused since the runner last took them.
    refused: AtomicU64,
}

/// What a refused call ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// `disk_mb`.
    Bytes,
    /// `disk_files`.
    Entries,
}

impl Budget {
    /// The budget of a plugin with `directories` grants and a `disk_mb` or
    /// `disk_files` limit; `None` when it has neither.
    pub fn for_plugin(ctx: &Arc<PluginContext>) -> Option<Arc<Budget>> {
        let l = &ctx.limits;
        if ctx.grants.directories.is_empty() || (l.disk.is_none() && l.disk_files.is_none()) {
            return None;
        }
        Some(Arc::new(Budget {
            ctx: ctx.clone(),
            max_bytes: l.disk.unwrap_or(u64::MAX),
            max_entries: l.disk_files.unwrap_or(u64::MAX),
            used: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            stale: AtomicBool::new(true),
            logged: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        }))
    }

    /// A run begins: the use is measured again at its first charge.
    pub fn new_run(&self) {
        self.stale.store(true, Ordering::Relaxed);
        self.logged.store(false, Ordering::Relaxed);
    }

    /// Calls refused since the last call of this (counted as denials).
    pub fn take_refused(&self) -> u64 {
        self.refused.swap(0, Ordering::Relaxed)
    }

    fn refresh(&self) {
        if self.stale.swap(false, Ordering::Relaxed) {
            let (bytes, entries) = measure(
                &self.ctx.grants.directories,
                self.max_entries.saturating_add(1),
            );
            self.used.store(bytes, Ordering::Relaxed);
            self.entries.store(entries, Ordering::Relaxed);
        }
    }

    /// Bytes that may still be written (at most [`MAX_WRITE`] at once).
    pub fn room(&self) -> usize {
        self.refresh();
        let left = self
            .max_bytes
            .saturating_sub(self.used.load(Ordering::Relaxed));
        left.min(MAX_WRITE as u64) as usize
    }

    /// Charges `n` bytes about to be written; refused past the budget.
    pub fn charge(&self, n: u64) -> Result<(), Exceeded> {
        self.refresh();
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.max_bytes {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return Err(self.refuse(Exceeded::Bytes, n));
        }
        Ok(())
    }

    /// Counts (and logs once a run) a write refused because no room is
    /// left at all.
    pub fn exhausted(&self) {
        self.refuse(Exceeded::Bytes, 1);
    }

    /// Gives back `n` bytes charged but not written.
    pub fn refund(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
    }

    /// Charges one entry about to be created; refused past the budget.
    pub fn charge_entry(&self) -> Result<(), Exceeded> {
        self.refresh();
        let before = self.entries.fetch_add(1, Ordering::Relaxed);
        if before >= self.max_entries {
            self.entries.fetch_sub(1, Ordering::Relaxed);
            return Err(self.refuse(Exceeded::Entries, 1));
        }
        Ok(())
    }

    /// Gives back an entry charged but not created.
    pub fn refund_entry(&self) {
        let _ = self
            .entries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                Some(e.saturating_sub(1))
            });
    }

    /// Counts a refusal and logs it once a run (within the plugin's
    /// denial rate limit).
    fn refuse(&self, what: Exceeded, n: u64) -> Exceeded {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if !self.logged.swap(true, Ordering::Relaxed) {
            if let Some(suppressed) = self.ctx.log_limit.admit(crate::logging::Kind::Denial) {
                let dirs = self
                    .ctx
                    .grants
                    .directories
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let _g = self.ctx.span.enter();
                match what {
                    Exceeded::Bytes => tracing::warn!(
                        suppressed,
                        "writing {n} more bytes in {dirs} is past the plugin's disk budget ({} MiB; {} bytes in use): refused (insufficient-space); raise `disk_mb` in the plugin's [limits] if it needs more",
                        self.max_bytes >> 20,
                        self.used.load(Ordering::Relaxed)
                    ),
                    Exceeded::Entries => tracing::warn!(
                        suppressed,
                        "creating one more entry in {dirs} is past the plugin's budget of {} files and directories: refused (insufficient-space); raise `disk_files` in the plugin's [limits] if it needs more",
                        self.max_entries
                    ),
                }
            }
        }
        what
    }
}

/// Bytes and entries under `dirs` (not following links), the walk ending
/// once more than `max_entries` entries are seen.
pub fn measure(dirs: &[PathBuf], max_entries: u64) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut bytes, mut entries) = (0u64, 0u64);
    let mut todo: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = todo.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in read.flatten() {
            entries += 1;
            if entries > max_entries {
                return (bytes, entries);
            }
            let Ok(m) = e.metadata() else { continue };
            bytes = bytes.saturating_add(m.len().max(m.blocks() * 512));
            if m.is_dir() && !dirs.iter().any(|d| Path::new(d) == e.path()) {
                todo.push(e.path());
            }
        }
    }
    (bytes, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_counts_files_and_directories_and_stops_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 10_000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), b"x").unwrap();
        let (bytes, entries) = measure(&[dir.path().to_path_buf()], 100);
        assert_eq!(entries, 3);
        assert!(bytes >= 10_001, "{bytes}");
        // A sparse file counts by its size.
        let f = std::fs::File::create(dir.path().join("sparse")).unwrap();
        f.set_len(1 << 30).unwrap();
        assert!(measure(&[dir.path().to_path_buf()], 100).0 >= 1 << 30);
        for i in 0..50 {
            std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
        }
        assert_eq!(measure(&[dir.path().to_path_buf()], 10).1, 11);
    }
}
