//! `wdiamond:plugin/process`: run a granted command, never through a shell.
//!
//! The command gets an empty environment (plus a fixed `PATH`), its own
//! process group, and is killed with that whole group at its timeout. Its
//! output is capped; what is past the cap is read and discarded so the
//! command never blocks on a full pipe.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::HostState;
use crate::bindings::process::{Command as GuestCommand, CommandOutput, Host};
use crate::bindings::types::HostError;

/// Output of [`run_command`].
#[derive(Debug)]
pub struct Output {
    /// Exit status, if it exited.
    pub status: Option<i32>,
    /// Signal, if one ended it.
    pub signal: Option<i32>,
    /// Standard output, capped.
    pub stdout: Vec<u8>,
    /// Standard error, capped.
    pub stderr: Vec<u8>,
    /// Whether either was capped.
    pub truncated: bool,
}

fn capped_reader(
    mut r: impl Read + Send + 'static,
    cap: usize,
) -> std::thread::JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        let mut truncated = false;
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    if n > room {
                        truncated = true;
                    }
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        (kept, truncated)
    })
}

/// Runs `argv` with `stdin`, killing its process group after `timeout`.
/// `Err(TimedOut)` when it had to be killed.
pub fn run_command(
    argv: &[String],
    stdin: &[u8],
    timeout: Duration,
    cap: usize,
    run_as: Option<(u32, u32)>,
) -> Result<Output, HostError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| HostError::Invalid("empty argv".into()))?;
    let mut command = Command::new(program);
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
    let mut child = command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| super::io_error(program, e))?;
    let pgid = child.id() as i32;
    let out = capped_reader(child.stdout.take().expect("piped"), cap);
    let err = capped_reader(child.stderr.take().expect("piped"), cap);
    if let Some(mut w) = child.stdin.take() {
        let data = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(HostError::Io(format!("{program}: {e}"))),
        }
    };
    // Kill the whole group either way: a finished command may have left
    // children behind that still hold the pipes open.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let Some(status) = status else {
        let _ = child.wait();
        return Err(HostError::TimedOut);
    };
    let (stdout, t1) = out.join().unwrap_or_default();
    let (stderr, t2) = err.join().unwrap_or_default();
    Ok(Output {
        status: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        truncated: t1 || t2,
    })
}

impl Host for HostState {
    fn run(&mut self, cmd: GuestCommand) -> Result<CommandOutput, HostError> {
        if let Err(d) = self.ctx.grants.check_command(&cmd.argv) {
            return Err(self.denied(d));
        }
        let limits = &self.ctx.limits;
        let timeout = self.within_deadline(
            Duration::from_millis(cmd.timeout_ms.into()).min(limits.command_timeout),
        );
        let cap = limits.max_read_bytes as usize;
        match run_command(&cmd.argv, &cmd.stdin, timeout, cap, self.ctx.grants.run_as) {
            Ok(o) => Ok(CommandOutput {
                status: o.status,
                signal: o.signal,
                stdout: o.stdout,
                stderr: o.stderr,
                truncated: o.truncated,
            }),
            Err(e) => Err(self.failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_captures() {
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "cat; echo err >&2; exit 3".into(),
        ];
        let o = run_command(&argv, b"hello", Duration::from_secs(5), 1024, None).unwrap();
        assert_eq!(o.stdout, b"hello");
        assert_eq!(o.stderr, b"err\n");
        assert_eq!(o.status, Some(3));
    }

    #[test]
    fn kills_the_whole_group_at_the_timeout() {
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "sleep 30 & sleep 30".into(),
        ];
        let t = Instant::now();
        let e = run_command(&argv, b"", Duration::from_millis(200), 1024, None).unwrap_err();
        assert_eq!(e, HostError::TimedOut);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn runs_as_another_user() {
        let (uid, gid) = crate::grants::lookup_user("nobody").unwrap();
        let argv = vec!["/usr/bin/id".to_string(), "-u".into()];
        let o = run_command(&argv, b"", Duration::from_secs(5), 1024, Some((uid, gid))).unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), uid.to_string());
        assert!(crate::grants::lookup_user("no-such-user-here").is_err());
    }

    #[test]
    fn caps_output() {
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "head -c 100000 /dev/zero".into(),
        ];
        let o = run_command(&argv, b"", Duration::from_secs(5), 1000, None).unwrap();
        assert_eq!(o.stdout.len(), 1000);
        assert!(o.truncated);
    }
}
