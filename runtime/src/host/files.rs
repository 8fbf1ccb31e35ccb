//! `wdiamond:plugin/files`: read-only access to granted paths.
//!
//! A path is checked as the guest wrote it (absolute, no `..`), then opened
//! once with `O_PATH` (which neither blocks nor has a device's open side
//! effects), and what was opened is checked again: its real path (the
//! kernel's name for the descriptor, symlinks resolved) against the grants,
//! and its type. Only that descriptor is then read, so swapping a symlink
//! between the check and the read cannot lead out of the grant. Anything
//! but a regular file, a directory or a /proc or /sys pseudo-file (a FIFO,
//! a device, a socket), and the /proc files that hold secrets or block
//! ([`SENSITIVE`]), need an exact grant of their own path. Reads are
//! non-blocking and end at the run's deadline.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use super::{io_error, HostState};
use crate::bindings::files::{DirEntry, FileInfo, FileKind, Host};
use crate::bindings::types::HostError;

/// Most entries one `list-dir` returns.
pub const MAX_DIR_ENTRIES: usize = 100_000;

/// File names under /proc that only an exact grant reaches: another
/// process's (or the agent's own) environment and memory, the kernel's
/// memory and its log (which blocks and consumes messages).
pub const SENSITIVE: &[&str] = &[
    "environ", "mem", "pagemap", "auxv", "kcore", "kmsg", "kallsyms",
];

/// What was opened for a guest path, after every check.
pub struct Opened {
    /// The `O_PATH` descriptor.
    fd: OwnedFd,
    /// Its type.
    pub kind: FileKind,
    /// Its metadata.
    pub stat: libc::stat,
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

/// `open(path, O_PATH)`, following symlinks.
fn open_path(path: &Path) -> std::io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid C string; the result is checked.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn proc_fd(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The kernel's name for what `fd` refers to.
fn real_path(fd: &OwnedFd) -> std::io::Result<PathBuf> {
    std::fs::read_link(proc_fd(fd))
}

fn fstat(fd: &OwnedFd) -> std::io::Result<libc::stat> {
    // SAFETY: `fd` is open; `st` is a valid out-pointer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

fn kind_of_mode(mode: libc::mode_t) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::File,
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

fn type_name(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        _ => "not a regular file",
    }
}

impl Opened {
    /// Opens what the descriptor refers to for reading, without blocking
    /// (a FIFO's open does not wait for a writer).
    fn reopen(&self, extra: libc::c_int) -> std::io::Result<File> {
        let c = cstring(&proc_fd(&self.fd))?;
        // SAFETY: `c` is a valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY | extra,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

/// Reads at most `max` bytes (one more tells that it was longer) of `f`,
/// waiting for data no later than `deadline`. The buffer starts with room
/// for a typical /proc file (one `read` then the end, instead of a small
/// probe and several growing reads) and grows as `read_to_end` grows it
/// (nothing is zero-filled ahead).
fn read_bounded(f: &mut File, max: u64, deadline: Option<Instant>) -> Result<Vec<u8>, HostError> {
    const FIRST: u64 = 16 << 10;
    let mut buf = Vec::with_capacity((max + 1).min(FIRST) as usize);
    loop {
        let room = (max + 1).saturating_sub(buf.len() as u64);
        match f.by_ref().take(room).read_to_end(&mut buf) {
            Ok(_) if buf.len() as u64 > max => return Err(HostError::TooLarge(max)),
            Ok(_) => return Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left.is_some_and(|l| l.is_zero()) {
                    return Err(HostError::TimedOut);
                }
                let ms = left.map_or(100, |l| l.as_millis().clamp(1, 100) as i32);
                let mut pfd = libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, ms) };
            }
            Err(e) => return Err(io_error("read", e)),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(HostError::TimedOut);
        }
    }
}

impl HostState {
    /// The real filesystem path of a guest path (under `fs_root` when set).
    fn real(&self, requested: &Path) -> PathBuf {
        match &self.ctx.facts.fs_root {
            Some(r) => r.join(requested.strip_prefix("/").unwrap_or(requested)),
            None => requested.to_path_buf(),
        }
    }

    /// The guest's view of a real path (relative to `fs_root` when set).
    fn logical(&self, real: PathBuf) -> PathBuf {
        match &self.ctx.facts.fs_root {
            Some(r) => {
                let r = std::fs::canonicalize(r).unwrap_or_else(|_| r.clone());
                match real.strip_prefix(&r) {
                    Ok(rest) => Path::new("/").join(rest),
                    // A link out of the root: checked as the outside path.
                    Err(_) => real,
                }
            }
            None => real,
        }
    }

    /// Checks a guest path's form: absolute, no NUL, no `..`.
    pub(crate) fn check_form(&mut self, path: &str) -> Result<(), HostError> {
        let requested = Path::new(path);
        if !requested.is_absolute() || path.contains('\0') {
            return Err(self.failed(HostError::Invalid(format!(
                "{:?}: paths must be absolute",
                crate::logging::cut(path, 256)
            ))));
        }
        if requested.components().any(|c| c == Component::ParentDir) {
            return Err(self.failed(HostError::Invalid(format!(
                "{:?}: `..` is not allowed",
                crate::logging::cut(path, 256)
            ))));
        }
        Ok(())
    }

    /// Opens a guest path for `files` (`dir`: to list it or stat it) after
    /// every check; see the module docs.
    fn open_granted(&mut self, path: &str, dir: bool) -> Result<Opened, HostError> {
        self.check_form(path)?;
        let requested = Path::new(path);
        // The path as written first, so nothing about ungranted paths leaks.
        if let Err(d) = self.ctx.grants.check_read(requested, requested, dir) {
            return Err(self.denied(d));
        }
        self.open_checked(requested, |grants, logical| {
            grants.check_read(requested, logical, dir)
        })
    }

    /// Opens `requested` with `O_PATH` and checks what was opened: its real
    /// path with `check`, its type (only regular files, directories and
    /// /proc, /sys files without an exact grant), and /proc's [`SENSITIVE`]
    /// files (exact grant only).
    pub(crate) fn open_checked(
        &mut self,
        requested: &Path,
        check: impl Fn(&crate::grants::Grants, &Path) -> Result<(), crate::grants::Denial>,
    ) -> Result<Opened, HostError> {
        let shown = requested.display().to_string();
        let fd = open_path(&self.real(requested)).map_err(|e| self.failed(io_error(&shown, e)))?;
        let real = real_path(&fd).map_err(|e| self.failed(io_error(&shown, e)))?;
        let logical = self.logical(real);
        if let Err(d) = check(&self.ctx.grants, &logical) {
            return Err(self.denied(d));
        }
        let stat = fstat(&fd).map_err(|e| self.failed(io_error(&shown, e)))?;
        let kind = kind_of_mode(stat.st_mode);
        let pseudo = logical.starts_with("/proc") || logical.starts_with("/sys");
        let special = !matches!(kind, FileKind::File | FileKind::Directory) && !pseudo;
        let sensitive = logical.starts_with("/proc")
            && logical
                .file_name()
                .is_some_and(|n| SENSITIVE.iter().any(|s| n.as_bytes() == s.as_bytes()));
        if special || sensitive {
            let why = if special {
                type_name(stat.st_mode)
            } else {
                "a file that needs an exact grant"
            };
            if let Err(d) = self.ctx.grants.check_exact(requested, &logical, why) {
                return Err(self.denied(d));
            }
        }
        Ok(Opened { fd, kind, stat })
    }
}

impl Host for HostState {
    fn read_file(&mut self, path: String) -> Result<Vec<u8>, HostError> {
        let opened = self.open_granted(&path, false)?;
        if opened.kind == FileKind::Directory {
            return Err(self.failed(HostError::Invalid(format!(
                "{}: is a directory",
                crate::logging::cut(&path, 256)
            ))));
        }
        let max = self.ctx.limits.max_read_bytes;
        let deadline = self.call_deadline();
        let read = opened
            .reopen(0)
            .map_err(|e| io_error(&path, e))
            .and_then(|mut f| read_bounded(&mut f, max, deadline));
        read.map_err(|e| self.failed(e))
    }

    fn list_dir(&mut self, path: String) -> Result<Vec<DirEntry>, HostError> {
        let opened = self.open_granted(&path, true)?;
        if opened.kind != FileKind::Directory {
            return Err(self.failed(HostError::Invalid(format!(
                "{}: not a directory",
                crate::logging::cut(&path, 256)
            ))));
        }
        let entries = match std::fs::read_dir(proc_fd(&opened.fd)) {
            Ok(e) => e,
            Err(e) => return Err(self.failed(io_error(&path, e))),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if out.len() >= MAX_DIR_ENTRIES {
                return Err(self.failed(HostError::TooLarge(MAX_DIR_ENTRIES as u64)));
            }
            if self.call_deadline().is_some_and(|d| Instant::now() >= d) {
                return Err(self.failed(HostError::TimedOut));
            }
            let kind = entry
                .file_type()
                .map(|t| {
                    if t.is_symlink() {
                        FileKind::Symlink
                    } else if t.is_dir() {
                        FileKind::Directory
                    } else if t.is_file() {
                        FileKind::File
                    } else {
                        FileKind::Other
                    }
                })
                .unwrap_or(FileKind::Other);
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&mut self, path: String) -> Result<FileInfo, HostError> {
        // A mount point granted for statvfs may also be stat'ed (its device
        // number tells mount points apart): checked as `fs-stats` checks it.
        self.check_form(&path)?;
        let p = Path::new(&path);
        let opened = if self.ctx.grants.check_statvfs(p).is_ok() {
            self.open_checked(p, |g, logical| g.check_statvfs(logical))?
        } else {
            self.open_granted(&path, true)?
        };
        let st = &opened.stat;
        Ok(FileInfo {
            kind: opened.kind,
            size: st.st_size.max(0) as u64,
            device: st.st_dev,
            modified: st.st_mtime.max(0) as u64,
        })
    }
}

/// `statvfs` of what an `O_PATH` descriptor refers to.
pub fn fstatvfs(opened: &Opened) -> std::io::Result<libc::statvfs> {
    // SAFETY: the descriptor is open; `s` is a valid out-pointer.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(opened.fd.as_raw_fd(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s)
}

/// Opens `path` with `O_PATH` for a Unix socket connection and returns the
/// descriptor's real path with a `/proc/self/fd/N` name to connect through
/// (so the socket connected to is the one checked).
pub fn open_socket_path(path: &Path) -> std::io::Result<(OwnedFd, PathBuf, PathBuf)> {
    let fd = open_path(path)?;
    let real = real_path(&fd)?;
    let via = proc_fd(&fd);
    Ok((fd, real, via))
}
