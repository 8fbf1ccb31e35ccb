//! Waiting for a descriptor within a call's deadline (sockets, and TLS
//! on them).

use std::time::Instant;

/// Waits until `fd` is ready for `events`, at most until `deadline`;
/// `TimedOut` past it.
pub(super) fn wait_ready(fd: i32, events: i16, deadline: Instant) -> std::io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe {
        libc::poll(
            &mut pfd,
            1,
            left.as_millis().clamp(1, i32::MAX as u128) as i32,
        )
    };
    match r {
        0 => Err(std::io::ErrorKind::TimedOut.into()),
        r if r < 0 => {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            }
        }
        _ => Ok(()),
    }
}
