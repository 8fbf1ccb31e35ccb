//! `run --pidfile PATH`: the agent's own process id in a file, for init
//! scripts and `kill -HUP "$(cat PATH)"` outside systemd (Diamond's `-p`).
//! Written by the agent itself once its signal handlers are installed (so
//! `cd dir && nohup wdiamond … &` records the agent, not a shell, and a
//! SIGHUP sent as soon as the file exists reloads); refused while another
//! live wdiamond holds the file; removed at a clean stop if it still names
//! this process.

use std::path::{Path, PathBuf};

/// The pidfile of a running agent; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

/// Why the pidfile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// Another live wdiamond holds it.
    #[error("{}: another wdiamond (pid {pid}) runs with this pidfile: stop it first (or remove the file if that process is not wdiamond)", path.display())]
    Running {
        /// The pidfile.
        path: PathBuf,
        /// The process it names.
        pid: u32,
    },
    /// It could not be written.
    #[error("{}: cannot write the pidfile: {source}", path.display())]
    Io {
        /// The pidfile.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The process id a pidfile holds, if it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live wdiamond process (its command line names
/// wdiamond; a recycled id of another program is a stale file).
fn is_wdiamond(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => cmd.windows(8).any(|w| w == b"wdiamond"),
        // No /proc to ask: take it for one.
        Err(_) => true,
    }
}

impl PidFile {
    /// Writes this process's id to `path` (atomically: a temporary file
    /// renamed over it), unless a live wdiamond other than this process
    /// holds it.
    pub fn create(path: &Path) -> Result<PidFile, PidFileError> {
        let pid = std::process::id();
        if let Some(other) = read_pid(path) {
            if other != pid && is_wdiamond(other) {
                return Err(PidFileError::Running {
                    path: path.to_path_buf(),
                    pid: other,
                });
            }
        }
        let io = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{pid}.tmp"));
        std::fs::write(&tmp, format!("{pid}\n")).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }

    /// The pidfile's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn written_removed_and_refused_while_another_agent_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wdiamond.pid");
        {
            let f = PidFile::create(&path).unwrap();
            assert_eq!(read_pid(f.path()), Some(std::process::id()));
            // Taken again by the same process (a restart in place): fine.
            assert!(PidFile::create(&path).is_ok());
        }
        assert!(!path.exists(), "removed at the stop");
        // A live process whose command line names wdiamond holds it.
        let mut other = Command::new("bash")
            .args(["-c", "exec -a wdiamond-test sleep 30"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::fs::write(&path, format!("{}\n", other.id())).unwrap();
        let e = PidFile::create(&path).unwrap_err();
        assert!(
            matches!(e, PidFileError::Running { pid, .. } if pid == other.id()),
            "{e}"
        );
        assert!(e.to_string().contains("another wdiamond"), "{e}");
        other.kill().unwrap();
        other.wait().unwrap();
        // Its process gone: a stale file, taken over.
        let f = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(f.path()), Some(std::process::id()));
        drop(f);
        // A live process that is not wdiamond (a recycled id): stale too.
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&path, format!("{}\n", sleeper.id())).unwrap();
        assert!(PidFile::create(&path).is_ok());
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }
}
