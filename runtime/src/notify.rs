//! systemd's readiness protocol (`sd_notify`): one datagram per state to
//! the socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an
//! abstract socket). Without the variable (not started by systemd with
//! `Type=notify`) every call does nothing. Failures are ignored: a service
//! manager that cannot be told is not a reason to stop collecting.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (`READY=1`, ...) to `$NOTIFY_SOCKET`; whether it went.
pub fn notify(state: &str) -> bool {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let bytes = target.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&target))
    };
    sent.is_ok()
}

/// The configuration is loaded and the agent runs.
pub fn ready() {
    notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS=collecting",
        std::process::id()
    ));
}

/// A reload starts (`RELOADING=1` with the monotonic clock, as
/// `Type=notify-reload` wants it); [`ready`] follows when it is over.
pub fn reloading() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000;
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration"
    ));
}

/// The agent is stopping.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping: draining the handlers");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_the_socket_and_nothing_happens_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        // The variable is the process's: this test is the only one to set it.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1"));
        stopping();
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        assert!(!notify("READY=1"));
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let n = server.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"STOPPING=1\n"));
    }
}
