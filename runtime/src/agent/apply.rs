//! Applying a loaded configuration to the running agent (at the start
//! and at each reload): handlers first, so that collectors never publish
//! into nothing, then collectors, then the health task. What did not
//! change keeps running untouched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::collector_task::collector_task;
use super::handler_task::handler_task;
use super::health::health_task;
use super::load::{LoadedCollector, LoadedHandler};
use super::route::Route;
use super::{Agent, CollectorIdentity, Loaded, Running, RunningHandler};
use crate::config;
use crate::queue::Queue;
use crate::stats::PluginStats;

impl Agent {
    /// Applies a loaded configuration: handlers first (so collectors never
    /// publish into nothing), then collectors, then the health task.
    pub(super) fn apply(&mut self, config: &config::Config, loaded: Loaded) {
        self.apply_handlers(loaded.handlers);
        self.apply_collectors(loaded.collectors);
        self.restart_health(config);
        self.update_status(config);
    }

    /// Keeps the handlers whose section did not change, starts the new and
    /// changed ones, retires the others (their queue or spool handed to a
    /// successor, else drained), and routes to the new set.
    fn apply_handlers(&mut self, loaded: Vec<LoadedHandler>) {
        let mut new_handlers = Vec::new();
        let mut old: Vec<(String, RunningHandler)> = std::mem::take(&mut self.handlers);
        for lh in loaded {
            let same = |(n, h): &(String, RunningHandler)| {
                *n == lh.config.plugin.name && h.running.config == lh.config
            };
            match old.iter().position(same) {
                Some(pos) => new_handlers.push(old.remove(pos)),
                None => new_handlers.push(self.start_handler(lh)),
            }
        }
        retire_handlers(old, &new_handlers);
        // Routed only now: what the old handlers held goes first.
        *self.router.write().unwrap_or_else(|p| p.into_inner()) = new_handlers
            .iter()
            .map(|(n, h)| Route {
                handler: n.clone(),
                queue: h.queue.clone(),
                receives: h.running.config.receives.clone(),
            })
            .collect();
        self.handlers = new_handlers;
    }

    /// Starts handler `lh`: its spool, its queue, its task.
    fn start_handler(&mut self, lh: LoadedHandler) -> (String, RunningHandler) {
        let name = lh.config.plugin.name.clone();
        let stats = Arc::new(PluginStats::default());
        let spool = match lh
            .spool
            .clone()
            .map(Ok)
            .or_else(|| crate::queue::open_spool(&lh.config))
        {
            Some(Ok(s)) => {
                if let Some(dir) = lh.config.spool_path() {
                    self.spools.insert(dir, s.clone());
                }
                Some(s)
            }
            Some(Err((dir, e))) => {
                tracing::error!(handler = %name, spool = %dir.display(), error = %e, "cannot open the spool; running without it");
                None
            }
            None => None,
        };
        let queue = Queue::bounded(
            &name,
            lh.config.queue_size,
            lh.config.max_queue_bytes,
            stats.clone(),
            spool,
        );
        let (tx, rx) = watch::channel(false);
        let handler_config = lh.config.clone();
        let task = tokio::spawn(handler_task(
            self.runtime.clone(),
            lh,
            queue.clone(),
            rx,
            self.abort_handlers.subscribe(),
            stats.clone(),
        ));
        (
            name,
            RunningHandler {
                running: Running {
                    config: handler_config,
                    stop: tx,
                    task,
                    stats,
                },
                queue,
            },
        )
    }

    /// Keeps the collectors whose section (and tenant) did not change,
    /// (re)starts the others, stops the ones gone.
    fn apply_collectors(&mut self, loaded: Vec<LoadedCollector>) {
        let mut keep = HashMap::new();
        for lc in loaded {
            let name = lc.config.plugin.name.clone();
            // The tenant's quotas are part of it (a fuel quota also decides
            // whether the collector's code counts fuel).
            let identity: CollectorIdentity = Box::new((
                lc.config.clone(),
                lc.tenant.as_ref().map(|t| t.config.clone()),
            ));
            if let Some(r) = self.collectors.remove(&name) {
                if r.config == identity {
                    keep.insert(name, r);
                    continue;
                }
                tracing::info!(collector = %name, "collector configuration changed: restarting it");
                let _ = r.stop.send(true);
            }
            let stats = Arc::new(PluginStats::default());
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(collector_task(
                self.runtime.clone(),
                Box::new(lc),
                self.router.clone(),
                rx,
                self.abort_collectors.subscribe(),
                stats.clone(),
                self.scheduler.clone(),
            ));
            keep.insert(
                name,
                Running {
                    config: identity,
                    stop: tx,
                    task,
                    stats,
                },
            );
        }
        for (name, r) in self.collectors.drain() {
            tracing::info!(collector = %name, "collector removed or disabled: stopping it");
            let _ = r.stop.send(true);
        }
        self.collectors = keep;
    }

    /// The status endpoint: the new set of plugins, and its server
    /// (re)started when `status_listen` changed.
    fn update_status(&mut self, config: &config::Config) {
        let mut plugins: Vec<super::status::Entry> = self
            .collectors
            .iter()
            .map(|(n, r)| super::status::Entry {
                name: format!("collectors.{n}"),
                stats: r.stats.clone(),
                queue: None,
            })
            .collect();
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        for (n, h) in &self.handlers {
            plugins.push(super::status::Entry {
                name: format!("handlers.{n}"),
                stats: h.running.stats.clone(),
                queue: Some(h.queue.clone()),
            });
        }
        self.board.set(plugins);
        let wanted = config.server.status_listen.as_ref();
        if self.status.as_ref().map(|s| s.0) == wanted.map(|w| w.address) {
            return;
        }
        if let Some((_, stop, _)) = self.status.take() {
            let _ = stop.send(true);
        }
        if let Some(w) = wanted {
            let (stop, rx) = watch::channel(false);
            let task = super::status::spawn(w, self.board.clone(), rx);
            self.status = Some((w.address, stop, task));
        }
    }

    /// The agent's own health metrics, restarted with the new set.
    fn restart_health(&mut self, config: &config::Config) {
        if let Some(h) = self.health.take() {
            h.abort();
        }
        if !config.server.health_path.is_empty() {
            let d = &config.defaults;
            let hostname = d
                .hostname
                .clone()
                .or_else(|| crate::hostname::resolve(d.hostname_method));
            let paths = d.paths(hostname.as_deref(), &config.server.health_path);
            let mut plugins: Vec<(String, Arc<PluginStats>, Option<Arc<Queue>>)> = self
                .collectors
                .iter()
                .map(|(n, r)| (format!("collectors.{n}"), r.stats.clone(), None))
                .collect();
            plugins.sort_by(|a, b| a.0.cmp(&b.0));
            for (n, h) in &self.handlers {
                plugins.push((
                    format!("handlers.{n}"),
                    h.running.stats.clone(),
                    Some(h.queue.clone()),
                ));
            }
            let every = Duration::from_secs_f64(config.server.health_interval);
            self.health = Some(tokio::spawn(health_task(
                paths,
                every,
                plugins,
                self.router.clone(),
            )));
        }
    }
}

/// Handlers that are gone drain their queue and stop; a changed one's
/// queue (memory) or spool goes to its successor in `new`.
fn retire_handlers(old: Vec<(String, RunningHandler)>, new: &[(String, RunningHandler)]) {
    for (name, h) in old {
        let shared = h.queue.spool().is_some_and(|s| {
            new.iter()
                .any(|(_, n)| n.queue.spool().is_some_and(|t| Arc::ptr_eq(s, t)))
        });
        let successor = new
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, n)| n.queue.clone());
        if shared {
            // Everything it queued is in the spool, which its successor
            // delivers: it stops without delivering (no duplicates).
            tracing::info!(handler = %name, "handler changed: the new one takes over its spool; stopping the old one");
            h.queue.hand_over();
        } else if let (Some(next), None) = (successor, h.queue.spool()) {
            // Its memory queue goes to its successor, before anything new.
            let moved = h.queue.hand_over_to(&next);
            tracing::info!(handler = %name, moved, "handler changed: the new one takes over its queue; stopping the old one");
        } else {
            tracing::info!(handler = %name, "handler removed or changed: draining and stopping the old one");
        }
        let _ = h.running.stop.send(true);
    }
}
