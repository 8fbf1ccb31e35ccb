//! The agent: loads plugins from a [`Config`], runs every collector on its
//! schedule, routes metrics through bounded queues to every handler, and
//! handles reload and shutdown.
//!
//! One collector's failure never touches another: each runs in its own
//! task with its own store; a run that traps or overruns is logged in the
//! collector's span, counted, and the collector is re-instantiated (with
//! backoff) while all others keep their schedule.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{self, ConfigErrors};
use crate::host::HostFacts;
use crate::plugin::Runtime;
use crate::queue::{Queue, Spool};

mod apply;
mod capabilities;
mod collector_task;
mod describe;
mod exposition;
mod handler_task;
mod health;
mod load;
mod options;
mod outcome;
mod route;
mod schedule;
mod scheduler;
pub mod signals;
mod sink;
mod status;
mod tenant;

pub use crate::stats::PluginStats;
pub use capabilities::{asked_grants, capability_parts, is_granted, substitute};
pub use collector_task::{run_collection, LoadedCollectorShared};
pub use describe::{
    accept_description, check_description, BUILTIN_PATHS, MAX_CAPABILITIES, MAX_OPTIONS,
    MAX_SUMMARY,
};
pub use load::{load, open_spools, Loaded, LoadedCollector, LoadedHandler, PER_RUN_FROM};
pub use options::overlay;
pub use route::{publish, reached, to_all, Route, Router};
pub use tenant::Tenant;

/// How long a stop waits for in-flight collections, and then again for
/// handlers to drain, before it aborts what is still running.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Threads of the blocking pool that runs plugin calls, for `cores` cores:
/// four per core, at least eight. A call blocks its thread for at most its
/// deadline, so a full pool delays runs, never loses them.
pub fn blocking_threads(cores: usize) -> usize {
    (4 * cores).max(8)
}

/// Waits for `tasks` for at most [`SHUTDOWN_GRACE`]; then aborts every
/// plugin call in flight and waits for the tasks to end (an aborted call
/// returns within a few milliseconds).
async fn finish_within(
    tasks: Vec<(String, JoinHandle<()>)>,
    abort: &watch::Sender<bool>,
    kind: &str,
) {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let mut late = Vec::new();
    for (name, mut task) in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            late.push((name, task));
        }
    }
    if late.is_empty() {
        return;
    }
    let names: Vec<&str> = late.iter().map(|(n, _)| n.as_str()).collect();
    tracing::warn!(grace = ?SHUTDOWN_GRACE, stuck = ?names, "{kind}s still busy after the grace: aborting their calls");
    let _ = abort.send(true);
    for (_, task) in late {
        let _ = task.await;
    }
}

/// A running plugin: the configuration it was started with (a reload
/// restarts it only when that changed), its stop signal and its task.
struct Running<C> {
    config: C,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    stats: Arc<PluginStats>,
}

struct RunningHandler {
    running: Running<config::HandlerConfig>,
    queue: Arc<Queue>,
}

/// What tells the agent to stop or reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Reload the configuration (SIGHUP).
    Reload,
    /// Finish in-flight work, flush, exit (SIGTERM, SIGINT).
    Shutdown,
}

/// The running agent.
pub struct Agent {
    runtime: Arc<Runtime>,
    facts: HostFacts,
    config_path: PathBuf,
    router: Router,
    collectors: HashMap<String, Running<CollectorIdentity>>,
    handlers: Vec<(String, RunningHandler)>,
    health: Option<JoinHandle<()>>,
    /// What the status endpoint answers from.
    board: Arc<status::Board>,
    /// The status endpoint: its address, stop signal and task.
    status: Option<(std::net::SocketAddr, watch::Sender<bool>, JoinHandle<()>)>,
    spools: HashMap<PathBuf, Arc<Spool>>,
    /// Turned true when a stop has waited [`SHUTDOWN_GRACE`] for the
    /// collectors: every collector call still in flight ends at once.
    abort_collectors: watch::Sender<bool>,
    /// The same for handlers, after their own grace to drain (apart, so
    /// that stuck collectors do not cut the handlers' delivery short).
    abort_handlers: watch::Sender<bool>,
    /// Starts collector runs when they are due.
    scheduler: Arc<scheduler::Scheduler>,
}

/// What identifies a running collector: its configuration and its
/// tenant's quotas (a fuel quota also decides whether its code counts fuel).
/// A running collector's section and tenant, compared at a reload (boxed:
/// one per collector, read only then).
type CollectorIdentity = Box<(config::CollectorConfig, Option<config::TenantConfig>)>;

/// What a reload's loading gives back.
type Reloaded = Result<Result<(config::Config, Loaded), ConfigErrors>, String>;

impl Agent {
    /// Starts every plugin of an already loaded configuration.
    pub fn start(
        runtime: Arc<Runtime>,
        facts: HostFacts,
        config_path: &Path,
        config: &config::Config,
        loaded: Loaded,
    ) -> Agent {
        let mut agent = Agent {
            runtime,
            facts,
            config_path: config_path.to_path_buf(),
            router: Arc::new(RwLock::new(Vec::new())),
            collectors: HashMap::new(),
            handlers: Vec::new(),
            health: None,
            board: Arc::new(status::Board::default()),
            status: None,
            spools: HashMap::new(),
            abort_collectors: watch::channel(false).0,
            abort_handlers: watch::channel(false).0,
            scheduler: Arc::new(scheduler::Scheduler::new()),
        };
        agent.apply(config, loaded);
        agent
    }

    /// Re-reads the configuration; on any error the running one is kept.
    pub async fn reload(&mut self) {
        let loaded = self.load_again().await;
        self.apply_loaded(loaded);
    }

    /// Loads the configuration file again (on a blocking thread; plugins'
    /// setup calls are bounded by their deadline).
    fn load_again(&self) -> impl std::future::Future<Output = Reloaded> + 'static {
        tracing::info!(config = %self.config_path.display(), "reloading the configuration");
        let (rt, facts, path) = (
            self.runtime.clone(),
            self.facts.clone(),
            self.config_path.clone(),
        );
        let task = tokio::task::spawn_blocking(move || {
            rt.forget_compiled();
            let config = config::load(&path)?;
            let loaded = load(&rt, &config, &facts)?;
            Ok::<_, ConfigErrors>((config, loaded))
        });
        async move { task.await.map_err(|e| e.to_string()) }
    }

    fn apply_loaded(&mut self, loaded: Reloaded) {
        match loaded {
            Ok(Ok((config, loaded))) => {
                self.apply(&config, loaded);
                crate::memory::release_startup_pages();
                tracing::info!(
                    collectors = self.collectors.len(),
                    handlers = self.handlers.len(),
                    "configuration reloaded"
                );
            }
            Ok(Err(errors)) => {
                for e in &errors.0 {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    errors = errors.0.len(),
                    "the new configuration has errors; still running the previous one"
                );
            }
            Err(e) => tracing::error!(error = %e, "reload failed"),
        }
    }

    /// Stops collectors (letting in-flight runs finish for at most
    /// [`SHUTDOWN_GRACE`]), then lets every handler drain its queue and
    /// flush (again for at most [`SHUTDOWN_GRACE`]); past a grace, every
    /// plugin call still in flight is aborted (a handler's queue then goes
    /// to its spool). Bounded whatever a plugin does.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: finishing in-flight collections");
        self.board.stopping();
        if let Some(h) = &self.health {
            h.abort();
        }
        for r in self.collectors.values() {
            let _ = r.stop.send(true);
        }
        let collectors: Vec<(String, JoinHandle<()>)> = self
            .collectors
            .into_iter()
            .map(|(n, r)| (n, r.task))
            .collect();
        finish_within(collectors, &self.abort_collectors, "collector").await;
        tracing::info!("flushing handlers");
        for (_, h) in &self.handlers {
            let _ = h.running.stop.send(true);
        }
        let stats: Vec<(String, Arc<PluginStats>)> = self
            .handlers
            .iter()
            .map(|(n, h)| (n.clone(), h.running.stats.clone()))
            .collect();
        let handlers = self
            .handlers
            .into_iter()
            .map(|(n, h)| (n, h.running.task))
            .collect();
        finish_within(handlers, &self.abort_handlers, "handler").await;
        for (name, st) in stats {
            tracing::info!(handler = %name, delivered = st.metrics.load(Ordering::Relaxed), dropped = st.dropped.load(Ordering::Relaxed), "handler done");
        }
        if let Some((_, stop, task)) = self.status {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }

    /// Statistics of a running collector.
    pub fn collector_stats(&self, name: &str) -> Option<Arc<PluginStats>> {
        self.collectors.get(name).map(|r| r.stats.clone())
    }

    /// Metrics a running handler still has queued (memory, or spool).
    pub fn handler_queue_len(&self, name: &str) -> Option<usize> {
        self.handlers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.queue.len())
    }

    /// Statistics of a running handler (delivered, dropped, failures).
    pub fn handler_stats(&self, name: &str) -> Option<Arc<PluginStats>> {
        self.handlers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.running.stats.clone())
    }

    /// Runs until `control` says shutdown; reloads on `Reload`.
    ///
    /// A reload loads the new configuration while the control channel is
    /// still listened to: a `Shutdown` during a slow reload (a plugin stuck
    /// in `describe` until its setup deadline) abandons the reload.
    pub async fn run(mut self, mut control: tokio::sync::mpsc::Receiver<Control>) {
        while let Some(c) = control.recv().await {
            match c {
                Control::Reload => {
                    crate::notify::reloading();
                    let loading = self.load_again();
                    tokio::pin!(loading);
                    let mut stop = false;
                    let loaded = loop {
                        tokio::select! {
                            l = &mut loading => break Some(l),
                            c = control.recv() => match c {
                                Some(Control::Reload) => tracing::info!("a reload is already under way"),
                                Some(Control::Shutdown) | None => {
                                    tracing::warn!("stopping during a reload: the new configuration is not applied");
                                    stop = true;
                                    break None;
                                }
                            },
                        }
                    };
                    if let Some(l) = loaded {
                        self.apply_loaded(l);
                    }
                    if stop {
                        break;
                    }
                    // The running configuration (the new one, or the old
                    // one kept after errors) is what the agent runs.
                    crate::notify::ready();
                }
                Control::Shutdown => break,
            }
        }
        crate::notify::stopping();
        self.shutdown().await;
    }
}
