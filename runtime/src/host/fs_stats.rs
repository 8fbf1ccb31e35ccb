//! `wdiamond:plugin/fs-stats`: statvfs of granted mount points.

use std::ffi::CString;
use std::path::Path;

use super::HostState;
use crate::bindings::fs_stats::{Host, Statvfs};
use crate::bindings::types::HostError;

/// `statvfs(3)` of a real path.
pub fn statvfs(path: &Path) -> std::io::Result<Statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid C string and `s` a valid out-pointer.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(from_libc(&s))
}

fn from_libc(s: &libc::statvfs) -> Statvfs {
    Statvfs {
        bsize: s.f_bsize,
        frsize: s.f_frsize,
        blocks: s.f_blocks,
        bfree: s.f_bfree,
        bavail: s.f_bavail,
        files: s.f_files,
        ffree: s.f_ffree,
        favail: s.f_favail,
        flag: s.f_flag,
        namemax: s.f_namemax,
    }
}

impl Host for HostState {
    fn stat(&mut self, path: String) -> Result<Statvfs, HostError> {
        self.check_form(&path)?;
        let p = Path::new(&path);
        if let Err(d) = self.ctx.grants.check_statvfs(p) {
            return Err(self.denied(d));
        }
        if let Some(s) = self.ctx.facts.statvfs {
            return Ok(s);
        }
        // What is measured is what was checked: the opened descriptor's
        // real path must be granted too (a symlink cannot lead elsewhere).
        let opened = self.open_checked(p, |g, logical| g.check_statvfs(logical))?;
        match super::files::fstatvfs(&opened) {
            Ok(s) => Ok(from_libc(&s)),
            Err(e) => Err(self.failed(super::io_error(&path, e))),
        }
    }
}
