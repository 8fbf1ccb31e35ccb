//! The host side of the WIT imports: one module per capability, each an
//! `impl Host for HostState`, each checking [`Grants`] first (fail-closed)
//! where it touches anything outside the agent.
//!
//! [`HostState`] is the `T` of every plugin's `Store<T>`.

pub mod batches;
pub mod config;
pub mod disk;
pub mod files;
pub mod fs_stats;
pub mod info;
pub mod log;
mod output;
mod poll;
pub mod process;
pub mod resolve;
pub mod script;
pub mod series;
pub mod sockets;
pub mod tls;
mod wasi_fs;

pub use output::{GuestOutput, MAX_GUEST_OUTPUT};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::fs_stats::Statvfs;
use crate::bindings::types::{ConfigEntry, HostError};
use crate::config::Limits;
use crate::grants::{Denial, Grants};

/// Facts the host reports instead of the real machine's: for tests that
/// replay Diamond's fixtures, and for agents that read a host's /proc from
/// inside a container (`fs_root`).
#[derive(Clone, Default)]
pub struct HostFacts {
    /// Prefix every absolute guest path with this directory.
    pub fs_root: Option<PathBuf>,
    /// Report this CPU count.
    pub cpu_count: Option<u32>,
    /// Report this wall-clock time (settable between runs).
    pub now: Option<Arc<Mutex<f64>>>,
    /// Report these statvfs values for every path.
    pub statvfs: Option<Statvfs>,
}

impl std::fmt::Debug for HostFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFacts")
            .field("fs_root", &self.fs_root)
            .field("cpu_count", &self.cpu_count)
            .finish_non_exhaustive()
    }
}

/// What every host call of one plugin needs to know; shared, immutable.
pub struct PluginContext {
    /// The plugin's instance name (`cpu`, `db2`).
    pub name: String,
    /// What it may touch.
    pub grants: Grants,
    /// Its limits.
    pub limits: Limits,
    /// Its merged configuration, as handed to `configure`.
    pub config: Vec<ConfigEntry>,
    /// The resolved host name.
    pub hostname: String,
    /// The collection interval in seconds (handlers: 0).
    pub interval: f64,
    /// Facts overriding the real machine's.
    pub facts: HostFacts,
    /// The plugin's tracing span: every log line of it goes there.
    pub span: tracing::Span,
    /// Rate limits of this plugin's repeated warnings (shared by all its
    /// instances).
    pub log_limit: crate::logging::LogLimit,
    /// A Python collector's script, which the Python runtime reads through
    /// the `config` import (`plugin::python`); `None` for other plugins.
    pub script: Option<Arc<script::Script>>,
    /// TLS on its TCP connections (`tls = true`), done by the host.
    pub tls: Option<Arc<tls::TlsSettings>>,
}

impl AsRef<crate::logging::LogLimit> for PluginContext {
    fn as_ref(&self) -> &crate::logging::LogLimit {
        &self.log_limit
    }
}

/// Counters of one plugin run, read and reset by the runner.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallStats {
    /// Host calls refused for lack of a grant.
    pub denials: u64,
    /// Host calls that failed otherwise.
    pub host_errors: u64,
    /// Log lines dropped past the per-run cap.
    pub logs_dropped: u64,
    /// Log lines written.
    pub logs: u64,
    /// Metrics of batches the handler said the receiver refused for good
    /// (`batch.refuse`): dropped, not delivered.
    pub refused: u64,
}

/// How long before the run's deadline a waiting host call gives up.
pub const HOST_CALL_MARGIN: std::time::Duration = std::time::Duration::from_millis(50);

/// The `T` of a plugin's `Store<T>`.
pub struct HostState {
    /// WASI context: no environment, no inherited stdio, no sockets; only
    /// the directories of `grants.directories` preopened.
    pub wasi: WasiCtx,
    /// Resources (WASI streams, our sockets).
    pub table: ResourceTable,
    /// Memory, table and instance caps.
    pub limiter: Limiter,
    /// The plugin's context.
    pub ctx: Arc<PluginContext>,
    /// Counters of the current run.
    pub stats: CallStats,
    /// The guest's stdout and stderr (panic messages), logged after a run.
    pub output: GuestOutput,
    /// Open `connection` resources.
    pub sockets_open: usize,
    /// Series the (collector) instance declared.
    pub series: crate::metric::series::SeriesTable,
    /// `batch` handles the (handler) instance holds, oldest first (reps).
    pub held: std::collections::VecDeque<u32>,
    /// When the current run's wall-clock budget ends: host calls (commands,
    /// sockets) never wait past it, since epochs do not interrupt the host.
    pub deadline: Option<std::time::Instant>,
    /// Set when the agent stops for good: a waiting host call returns.
    pub abort: Option<tokio::sync::watch::Receiver<bool>>,
    /// What it may still write in its `directories` grants (`None`: no
    /// grant, or no limit).
    pub disk: Option<Arc<disk::Budget>>,
    /// The agent is stopping this (handler) instance for good: what
    /// `host-info.stopping` answers.
    pub stopping: bool,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// `wanted`, cut to what is left of the run's deadline less
    /// [`HOST_CALL_MARGIN`] (at least 1 ms): a host call that gives up at
    /// the deadline leaves the guest time to see its `timed-out`.
    pub fn within_deadline(&self, wanted: std::time::Duration) -> std::time::Duration {
        match self.deadline {
            Some(d) => wanted
                .min(
                    d.saturating_duration_since(std::time::Instant::now())
                        .saturating_sub(HOST_CALL_MARGIN),
                )
                .max(std::time::Duration::from_millis(1)),
            None => wanted,
        }
    }

    /// When a waiting host call must give up: the run's deadline less
    /// [`HOST_CALL_MARGIN`] (`None` outside a run).
    pub fn call_deadline(&self) -> Option<std::time::Instant> {
        self.deadline
            .map(|d| d.checked_sub(HOST_CALL_MARGIN).unwrap_or(d))
    }

    /// Whether the agent is stopping for good (host calls give up).
    pub fn aborted(&self) -> bool {
        self.abort.as_ref().is_some_and(|a| *a.borrow())
    }

    /// Records a denial (counted; logged in the plugin's span, rate-limited
    /// per plugin, guest-chosen parts cut) and turns it into the guest's
    /// error result.
    pub fn denied(&mut self, d: Denial) -> HostError {
        self.denied_because(d, None)
    }

    /// [`HostState::denied`], with a `hint` for the operator's log only
    /// (never the guest's error: what the host knows stays the host's).
    pub fn denied_because(&mut self, d: Denial, hint: Option<&str>) -> HostError {
        self.stats.denials += 1;
        let text = d.to_string();
        if let Some(suppressed) = self.ctx.log_limit.admit(crate::logging::Kind::Denial) {
            let _g = self.ctx.span.enter();
            match hint {
                Some(hint) => {
                    tracing::warn!(denial = %crate::logging::guest_text(&text), hint, suppressed, "host call denied")
                }
                None => {
                    tracing::warn!(denial = %crate::logging::guest_text(&text), suppressed, "host call denied")
                }
            }
        }
        HostError::Denied(crate::logging::cut(&text, crate::logging::MAX_GUEST_TEXT).into_owned())
    }

    /// Counts a failed host call and passes the error through.
    pub fn failed(&mut self, e: HostError) -> HostError {
        self.stats.host_errors += 1;
        e
    }
}

/// Links WASI p2 for async calls: a guest waiting in `wasi:io/poll` (a
/// sleep, a stream) then waits in a future that the host drops at the
/// call's deadline, instead of blocking the host thread. The filesystem
/// calls that could escape or fill a `directories` grant are replaced
/// ([`wasi_fs`]).
fn add_wasi(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasi_fs::shadow(linker)
}

/// Adds WASI p2 and every wdiamond import of the collector world.
pub fn add_collector_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    add_wasi(linker)?;
    crate::bindings::collector::CollectorPlugin::add_to_linker::<
        _,
        wasmtime::component::HasSelf<HostState>,
    >(linker, |s| s)
}

/// Adds WASI p2 and every wdiamond import of the handler world.
pub fn add_handler_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    add_wasi(linker)?;
    crate::bindings::handler::HandlerPlugin::add_to_linker::<
        _,
        wasmtime::component::HasSelf<HostState>,
    >(linker, |s| s)
}

impl crate::bindings::types::Host for HostState {}

/// Maps an `io::Error` to the guest's error type.
pub fn io_error(path: &str, e: std::io::Error) -> HostError {
    match e.kind() {
        std::io::ErrorKind::NotFound => HostError::NotFound(path.to_string()),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => HostError::TimedOut,
        _ => HostError::Io(format!("{path}: {e}")),
    }
}

/// The store's resource limiter: caps each linear memory and table, and
/// remembers whether a cap was hit (so a trap after it is reported as a
/// memory failure) and the peak memory.
#[derive(Debug, Clone)]
pub struct Limiter {
    /// Cap of each linear memory, bytes.
    pub memory: usize,
    /// Whether a grow was refused since the last reset.
    pub hit: bool,
    /// Largest memory size seen, bytes.
    pub peak: usize,
}

/// Most table elements.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

impl Limiter {
    /// A limiter with this memory cap.
    pub fn new(memory: usize) -> Self {
        Limiter {
            memory,
            hit: false,
            peak: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory && maximum.is_none_or(|m| desired <= m);
        if ok {
            self.peak = self.peak.max(desired);
        } else {
            self.hit = true;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        8
    }
}
