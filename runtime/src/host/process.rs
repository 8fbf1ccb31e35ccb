//! `wdiamond:plugin/process`: run a granted command, never through a shell.
//!
//! The command gets an empty environment (plus a fixed `PATH`), its own
//! process group, and is killed with everything it started at its timeout.
//! Its output is capped; what is past the cap is read and discarded so the
//! command never blocks on a full pipe.
//!
//! Nothing outlives the call:
//! - **Processes.** Every command runs under a reaper: the agent's direct
//!   child, forked inside `pre_exec`, which marks itself a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`, no privilege needed), forks the command and
//!   waits. Descendants that daemonise (`setsid`, double fork) are
//!   re-parented to it, not to init. When the command exits, or the agent
//!   closes the reaper's control pipe (at the timeout, or because the agent
//!   died, even by SIGKILL), the reaper kills every descendant it has,
//!   again until none is left, and exits with the command's status.
//! - **Threads and descriptors.** One `poll(2)` loop on the calling thread
//!   writes stdin and reads stdout and stderr; the pipes are closed when
//!   the call returns, whoever else still held them.

mod hint;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
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

/// How long output may still be read after the command exited (pipes a
/// killed descendant held close at once; this only bounds the drain).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// The reaper's body, in the forked child: see the module docs. Only
/// async-signal-safe calls (the agent is multi-threaded).
///
/// # Safety
/// Must run in a freshly forked child, never in the agent itself.
unsafe fn reaper(command: libc::pid_t, control: libc::c_int) -> ! {
    // Its copies of the pipes go, so that they end with the command's.
    for fd in 0..3 {
        libc::close(fd);
    }
    libc::dup2(control, 3);
    let closed = libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
    if closed != 0 {
        for fd in 4..65536 {
            libc::close(fd);
        }
    }
    libc::fcntl(3, libc::F_SETFL, libc::O_NONBLOCK);
    let mut status: Option<libc::c_int> = None;
    let nap = libc::timespec {
        tv_sec: 0,
        tv_nsec: 2_000_000,
    };
    loop {
        let mut st = 0;
        loop {
            let r = libc::waitpid(-1, &mut st, libc::WNOHANG);
            if r <= 0 {
                break;
            }
            if r == command {
                status = Some(st);
            }
        }
        let mut b = [0u8; 1];
        let told = libc::read(3, b.as_mut_ptr().cast(), 1) == 0;
        if status.is_some() || told {
            break;
        }
        libc::nanosleep(&nap, std::ptr::null_mut());
    }
    kill_descendants();
    match status {
        Some(st) if libc::WIFEXITED(st) => libc::_exit(libc::WEXITSTATUS(st)),
        Some(st) if libc::WIFSIGNALED(st) => {
            let sig = libc::WTERMSIG(st);
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig)
        }
        _ => libc::_exit(137),
    }
}

/// Kills the reaper's children until it has none (each kill re-parents
/// the victim's own children to it), then reaps them.
///
/// # Safety
/// Only in the reaper.
unsafe fn kill_descendants() {
    let path = c"/proc/thread-self/children";
    let nap = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    for _ in 0..2000 {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        let mut buf = [0u8; 4096];
        let n = if fd >= 0 {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
            n
        } else {
            0
        };
        let mut any = false;
        let mut pid: libc::pid_t = 0;
        for &c in buf.iter().take(n.max(0) as usize) {
            if c.is_ascii_digit() {
                pid = pid * 10 + (c - b'0') as libc::pid_t;
            } else if pid > 0 {
                libc::kill(pid, libc::SIGKILL);
                any = true;
                pid = 0;
            }
        }
        if pid > 0 {
            libc::kill(pid, libc::SIGKILL);
            any = true;
        }
        let mut st = 0;
        while libc::waitpid(-1, &mut st, libc::WNOHANG) > 0 {}
        if !any {
            // Children that are dying but not yet reaped show up here too;
            // none listed and none to reap means none left.
            if libc::waitpid(-1, &mut st, libc::WNOHANG) < 0 {
                return;
            }
        }
        libc::nanosleep(&nap, std::ptr::null_mut());
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Starts `argv` under its reaper; returns the reaper's `Child` (whose
/// status is the command's) and the control pipe's write end.
fn spawn(argv: &[String], run_as: Option<(u32, u32)>) -> Result<(Child, OwnedFd), HostError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| HostError::Invalid("empty argv".into()))?;
    let (control_r, control_w) = pipe().map_err(|e| super::io_error("pipe", e))?;
    let control = control_r.as_raw_fd();
    let mut command = Command::new(program);
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the forked child and makes only
    // async-signal-safe calls; the reaper never returns.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            match libc::fork() {
                0 => Ok(()), // the command: on to exec
                -1 => Err(std::io::Error::last_os_error()),
                pid => reaper(pid, control),
            }
        });
    }
    let child = command.spawn().map_err(|e| super::io_error(program, e))?;
    drop(control_r);
    Ok((child, control_w))
}

/// One of the command's pipes in the poll loop.
struct Pipe {
    fd: Option<OwnedFd>,
    kept: Vec<u8>,
    truncated: bool,
}

impl Pipe {
    fn new(fd: Option<OwnedFd>) -> Pipe {
        if let Some(f) = &fd {
            set_nonblocking(f.as_raw_fd());
        }
        Pipe {
            fd,
            kept: Vec::new(),
            truncated: false,
        }
    }

    /// Reads what is there; closes at EOF or on an error.
    fn read(&mut self, cap: usize) {
        let Some(fd) = &self.fd else { return };
        // SAFETY: borrowed for the read only; ownership stays with `fd`.
        let mut f =
            std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) });
        let mut buf = [0u8; 16384];
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    self.fd = None;
                    return;
                }
                Ok(n) => {
                    let room = cap.saturating_sub(self.kept.len());
                    if n > room {
                        self.truncated = true;
                    }
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.fd = None;
                    return;
                }
            }
        }
    }
}

/// Runs `argv` with `stdin`, killing it and every process it started after
/// `timeout` (or as soon as `abort` says so). `Err(TimedOut)` when it had
/// to be killed.
pub fn run_command(
    argv: &[String],
    stdin: &[u8],
    timeout: Duration,
    cap: usize,
    run_as: Option<(u32, u32)>,
    abort: &dyn Fn() -> bool,
) -> Result<Output, HostError> {
    let deadline = Instant::now() + timeout;
    let (mut child, control) = spawn(argv, run_as)?;
    let mut input = child.stdin.take().map(OwnedFd::from);
    if let Some(f) = &input {
        set_nonblocking(f.as_raw_fd());
    }
    let mut out = Pipe::new(child.stdout.take().map(OwnedFd::from));
    let mut err = Pipe::new(child.stderr.take().map(OwnedFd::from));
    let mut written = 0;
    let mut status = None;
    let mut exited_at: Option<Instant> = None;
    let timed_out = loop {
        if input.is_some() && written >= stdin.len() {
            input = None; // EOF for the command
        }
        let mut fds = Vec::with_capacity(3);
        if let Some(f) = &input {
            fds.push(libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        for p in [&out, &err] {
            if let Some(f) = &p.fd {
                fds.push(libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        if status.is_none() {
            match child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    exited_at = Some(Instant::now());
                }
                Ok(None) => {}
                Err(e) => break Err(HostError::Io(format!("{}: {e}", argv[0]))),
            }
        }
        let now = Instant::now();
        if status.is_some()
            && (fds.is_empty() || exited_at.is_some_and(|t| now - t >= DRAIN_AFTER_EXIT))
        {
            break Ok(false);
        }
        if now >= deadline || abort() {
            break Ok(true);
        }
        let wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(10));
        // SAFETY: `fds` holds valid pollfds for descriptors we own.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                wait.as_millis().max(1) as i32,
            )
        };
        if let Some(f) = &input {
            // SAFETY: borrowed for the write only.
            let mut w =
                std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(f.as_raw_fd()) });
            match w.write(&stdin[written..]) {
                Ok(n) => written += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => input = None, // the command closed its stdin
            }
        }
        out.read(cap);
        err.read(cap);
    };
    // Whatever happened, the command and everything it started go: closing
    // the control pipe tells the reaper; its process group is killed too.
    drop(control);
    drop(input);
    let pgid = child.id() as i32;
    let reaped = Instant::now() + Duration::from_millis(500);
    let reaper_status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < reaped => std::thread::sleep(Duration::from_millis(1)),
            _ => break None,
        }
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if reaper_status.is_none() {
        let _ = child.wait();
    }
    let status = status.or(reaper_status);
    drop((out.fd.take(), err.fd.take()));
    match timed_out {
        Err(e) => Err(e),
        Ok(true) => Err(HostError::TimedOut),
        Ok(false) => {
            let status = status.expect("exited");
            Ok(Output {
                status: status.code(),
                signal: status.signal(),
                stdout: out.kept,
                stderr: err.kept,
                truncated: out.truncated || err.truncated,
            })
        }
    }
}

impl Host for HostState {
    fn run(&mut self, cmd: GuestCommand) -> Result<CommandOutput, HostError> {
        if let Err(d) = self.ctx.grants.check_command(&cmd.argv) {
            let hint = hint::missing_program(&cmd.argv);
            return Err(self.denied_because(d, hint.as_deref()));
        }
        let limits = &self.ctx.limits;
        let timeout = self.within_deadline(
            Duration::from_millis(cmd.timeout_ms.into()).min(limits.command_timeout),
        );
        let cap = limits.max_read_bytes as usize;
        let abort = self.abort.clone();
        let aborted = move || abort.as_ref().is_some_and(|a| *a.borrow());
        match run_command(
            &cmd.argv,
            &cmd.stdin,
            timeout,
            cap,
            self.ctx.grants.run_as,
            &aborted,
        ) {
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

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".to_string(), "-c".into(), script.into()]
    }

    fn run(argv: &[String], stdin: &[u8], t: Duration, cap: usize) -> Result<Output, HostError> {
        run_command(argv, stdin, t, cap, None, &|| false)
    }

    #[test]
    fn runs_and_captures() {
        let o = run(
            &sh("cat; echo err >&2; exit 3"),
            b"hello",
            Duration::from_secs(5),
            1024,
        )
        .unwrap();
        assert_eq!(o.stdout, b"hello");
        assert_eq!(o.stderr, b"err\n");
        assert_eq!(o.status, Some(3));
        let o = run(&sh("kill -TERM $$"), b"", Duration::from_secs(5), 1024).unwrap();
        assert_eq!((o.status, o.signal), (None, Some(libc::SIGTERM)));
    }

    #[test]
    fn kills_the_whole_group_at_the_timeout() {
        let t = Instant::now();
        let e = run(
            &sh("sleep 30 & sleep 30"),
            b"",
            Duration::from_millis(200),
            1024,
        )
        .unwrap_err();
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
        let o = run_command(
            &argv,
            b"",
            Duration::from_secs(5),
            1024,
            Some((uid, gid)),
            &|| false,
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), uid.to_string());
        assert!(crate::grants::lookup_user("no-such-user-here").is_err());
    }

    #[test]
    fn caps_output() {
        let o = run(
            &sh("head -c 100000 /dev/zero"),
            b"",
            Duration::from_secs(5),
            1000,
        )
        .unwrap();
        assert_eq!(o.stdout.len(), 1000);
        assert!(o.truncated);
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let o = run(
            &["/no/such/program".to_string()],
            b"",
            Duration::from_secs(5),
            10,
        );
        assert!(o.is_err() || o.unwrap().status == Some(127));
    }
}
