//! Resolving a granted host name within the call's bounds.
//!
//! `getaddrinfo(3)` cannot be cancelled and waits as long as the system
//! resolver does (`options timeout:30` in `resolv.conf` or `RES_OPTIONS` is
//! an operator's choice). So a name is resolved on a thread of its own,
//! which the call waits for only until its deadline (the socket timeout,
//! cut to the run's deadline) or the agent's stop; a resolution still
//! running then is abandoned — the call returns `timed-out` — and its
//! thread ends with `getaddrinfo`, its answer dropped. Abandoned threads
//! are bounded: [`MAX_PER_PLUGIN`] resolutions of one plugin and
//! [`MAX_IN_FLIGHT`] of the whole agent at once; past either a call fails
//! at once. An address literal needs no thread.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::bindings::types::HostError;

/// Resolutions running (waited for or abandoned) in the whole agent.
pub const MAX_IN_FLIGHT: usize = 32;
/// Resolutions running for one plugin.
pub const MAX_PER_PLUGIN: usize = 4;

/// How often a waiting call looks at the agent's stop.
const STOP_POLL: Duration = Duration::from_millis(50);

fn running() -> &'static Mutex<HashMap<String, usize>> {
    static RUNNING: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// One running resolution, counted until its thread ends.
struct Slot(String);

impl Slot {
    /// Takes a place for `plugin`'s resolution, if one is free.
    fn take(plugin: &str) -> Result<Slot, HostError> {
        let mut r = running().lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = r.values().sum();
        let mine = r.get(plugin).copied().unwrap_or(0);
        if mine >= MAX_PER_PLUGIN || total >= MAX_IN_FLIGHT {
            return Err(HostError::Invalid(format!(
                "too many name resolutions still running ({mine} of this plugin's, at most {MAX_PER_PLUGIN}; {total} in the agent, at most {MAX_IN_FLIGHT}): the resolver does not answer"
            )));
        }
        *r.entry(plugin.to_string()).or_default() += 1;
        Ok(Slot(plugin.to_string()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut r = running().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = r.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.0);
            }
        }
    }
}

/// Resolutions of `plugin` running now (waited for or abandoned).
pub fn running_for(plugin: &str) -> usize {
    running()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(plugin)
        .copied()
        .unwrap_or(0)
}

/// The addresses of `host`:`port`, resolved by `deadline` at the latest
/// (then `timed-out`), or until `stopping()` says the agent stops.
pub fn resolve(
    plugin: &str,
    host: &str,
    port: u16,
    deadline: Instant,
    stopping: impl Fn() -> bool,
) -> Result<Vec<SocketAddr>, HostError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let slot = Slot::take(plugin)?;
    let (tx, rx) = mpsc::sync_channel(1);
    let name = host.to_string();
    std::thread::Builder::new()
        .name("wdiamond-resolve".into())
        .stack_size(256 << 10)
        .spawn(move || {
            let _slot = slot;
            let r = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            // The caller may be gone (abandoned at its deadline).
            let _ = tx.send(r);
        })
        .map_err(|e| HostError::Io(format!("{host}: cannot start resolving: {e}")))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stopping() {
            return Err(HostError::TimedOut);
        }
        match rx.recv_timeout(left.min(STOP_POLL)) {
            Ok(Ok(addrs)) => return Ok(addrs),
            Ok(Err(e)) => return Err(HostError::NotFound(format!("{host}: {e}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(HostError::Io(format!("{host}: resolution failed")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_need_no_thread_and_names_resolve() {
        let far = Instant::now() + Duration::from_secs(5);
        let a = resolve("t1", "127.0.0.1", 80, far, || false).unwrap();
        assert_eq!(a, vec!["127.0.0.1:80".parse().unwrap()]);
        let a = resolve("t1", "::1", 80, far, || false).unwrap();
        assert_eq!(a, vec!["[::1]:80".parse().unwrap()]);
        let a = resolve("t1", "localhost", 80, far, || false).unwrap();
        assert!(a.iter().all(|a| a.ip().is_loopback()), "{a:?}");
        // The resolving thread gives its place back as it ends.
        let t = Instant::now();
        while running_for("t1") > 0 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(running_for("t1"), 0);
    }

    #[test]
    fn a_stop_or_a_past_deadline_ends_the_wait() {
        let past = Instant::now();
        assert!(matches!(
            resolve("t2", "localhost", 80, past, || false),
            Err(HostError::TimedOut)
        ));
        let far = Instant::now() + Duration::from_secs(60);
        assert!(matches!(
            resolve("t2", "localhost", 80, far, || true),
            Err(HostError::TimedOut)
        ));
    }

    #[test]
    fn running_resolutions_are_bounded_per_plugin() {
        let slots: Vec<Slot> = (0..MAX_PER_PLUGIN)
            .map(|_| Slot::take("t3").unwrap())
            .collect();
        let far = Instant::now() + Duration::from_secs(5);
        let e = resolve("t3", "localhost", 80, far, || false).unwrap_err();
        assert!(
            matches!(e, HostError::Invalid(ref m) if m.contains("too many")),
            "{e:?}"
        );
        // Another plugin is not affected.
        assert!(resolve("t4", "localhost", 80, far, || false).is_ok());
        drop(slots);
        assert_eq!(running_for("t3"), 0);
        assert!(resolve("t3", "localhost", 80, far, || false).is_ok());
    }
}
