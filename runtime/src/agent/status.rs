//! The agent's status endpoint (`[server] status_listen`, off by default):
//! `GET /-/healthy`, `GET /-/ready` and `GET /metrics` (the agent's own
//! counters in Prometheus' text format), served by the exporters' bounded
//! server ([`super::exposition`]): no new parser, no new limits to get
//! wrong.
//!
//! Healthy means every running plugin has had fewer than
//! [`ALLOWED_FAILURES`] calls in a row fail (a collection, or a delivery
//! that is then retried); a plugin that has not run yet is healthy. Ready
//! means a configuration is applied and the agent is not stopping.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::exposition::{self, Reply, ScrapeRequest};
use crate::bindings::exposition::Page;
use crate::config::{Listen, StatusListen};
use crate::queue::Queue;
use crate::stats::PluginStats;

/// Calls in a row that may fail before a plugin counts as failing.
pub const ALLOWED_FAILURES: u64 = 3;

/// The paths served.
pub const PATHS: [&str; 3] = ["/-/healthy", "/-/ready", "/metrics"];

/// One running plugin, as the endpoint sees it.
#[derive(Clone)]
pub(super) struct Entry {
    /// `collectors.NAME` or `handlers.NAME`.
    pub name: String,
    /// Its counters.
    pub stats: Arc<PluginStats>,
    /// A handler's queue.
    pub queue: Option<Arc<Queue>>,
}

/// What the endpoint answers from: the running plugins and readiness,
/// updated by the agent at each (re)load and at shutdown.
#[derive(Default)]
pub(super) struct Board {
    plugins: RwLock<Vec<Entry>>,
    ready: AtomicBool,
}

impl Board {
    /// The plugins of the configuration just applied; ready from now on.
    pub fn set(&self, plugins: Vec<Entry>) {
        *self.plugins.write().unwrap_or_else(|p| p.into_inner()) = plugins;
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Not ready any more (stopping).
    pub fn stopping(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }

    fn plugins(&self) -> Vec<Entry> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The plugins failing now: name and failures in a row.
fn failing(plugins: &[Entry]) -> Vec<(String, u64)> {
    plugins
        .iter()
        .filter_map(|e| {
            let n = e.stats.consecutive_failures.load(Ordering::Relaxed);
            (n >= ALLOWED_FAILURES).then(|| (e.name.clone(), n))
        })
        .collect()
}

fn text(body: String) -> Reply {
    Reply::Page(Page {
        content_type: "text/plain; charset=utf-8".into(),
        body: body.into_bytes(),
    })
}

/// The answer to a `GET` of `path`.
pub(super) fn answer(board: &Board, path: &str) -> Reply {
    let plugins = board.plugins();
    match path {
        "/-/healthy" => {
            let bad = failing(&plugins);
            if bad.is_empty() {
                text(format!("healthy: {} plugins running\n", plugins.len()))
            } else {
                let list: Vec<String> = bad
                    .iter()
                    .map(|(n, k)| format!("{n} ({k} failures in a row)"))
                    .collect();
                Reply::Error(503, format!("failing: {}", list.join(", ")))
            }
        }
        "/-/ready" => {
            if board.ready.load(Ordering::Relaxed) {
                text("ready\n".into())
            } else {
                Reply::Error(
                    503,
                    "not ready: loading the configuration, or stopping".into(),
                )
            }
        }
        _ => Reply::Page(Page {
            content_type: "text/plain; version=0.0.4; charset=utf-8".into(),
            body: metrics(&plugins, board.ready.load(Ordering::Relaxed)).into_bytes(),
        }),
    }
}

/// A Prometheus label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The agent's counters in Prometheus' text format (0.0.4).
pub fn render_metrics(
    plugins: &[(String, Arc<PluginStats>, Option<usize>)],
    ready: bool,
) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "wdiamond_ready",
        "gauge",
        "1 once a configuration is applied, 0 while loading or stopping.",
    );
    let _ = writeln!(out, "wdiamond_ready {}", u8::from(ready));
    family(
        &mut out,
        "wdiamond_plugins_failing",
        "gauge",
        "Plugins whose last calls all failed (as /-/healthy counts them).",
    );
    let bad = plugins
        .iter()
        .filter(|(_, s, _)| s.consecutive_failures.load(Ordering::Relaxed) >= ALLOWED_FAILURES)
        .count();
    let _ = writeln!(out, "wdiamond_plugins_failing {bad}");
    type Get = fn(&PluginStats) -> u64;
    let per_plugin: [(&str, &str, &str, Get); 13] = [
        (
            "wdiamond_plugin_runs_total",
            "counter",
            "Collections started.",
            |s| s.runs.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_errors_total",
            "counter",
            "Calls that returned an error result.",
            |s| s.guest_errors.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_failures_total",
            "counter",
            "Calls that trapped or ran out of time, fuel or memory.",
            |s| s.failures.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_timeouts_total",
            "counter",
            "Calls stopped at their deadline.",
            |s| s.timeouts.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_fuel_exhausted_total",
            "counter",
            "Calls that ran out of fuel.",
            |s| s.fuel_exhausted.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_memory_exhausted_total",
            "counter",
            "Calls that hit the memory cap.",
            |s| s.memory_exhausted.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_denials_total",
            "counter",
            "Host calls denied by the grants.",
            |s| s.denials.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_metrics_total",
            "counter",
            "Metrics published (a collector) or delivered (a handler).",
            |s| s.metrics.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_metrics_rejected_total",
            "counter",
            "Metrics the host's checks rejected.",
            |s| s.rejected.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_metrics_dropped_total",
            "counter",
            "Metrics dropped (limits, quotas, a full queue).",
            |s| s.dropped.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_consecutive_failures",
            "gauge",
            "Calls in a row that failed, up to now.",
            |s| s.consecutive_failures.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_fuel_used",
            "gauge",
            "Fuel the last call used.",
            |s| s.last_fuel.load(Ordering::Relaxed),
        ),
        (
            "wdiamond_plugin_peak_memory_bytes",
            "gauge",
            "Largest linear memory seen.",
            |s| s.peak_memory.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, get) in per_plugin {
        family(&mut out, name, kind, help);
        for (plugin, stats, _) in plugins {
            let _ = writeln!(out, "{name}{{plugin=\"{}\"}} {}", label(plugin), get(stats));
        }
    }
    family(
        &mut out,
        "wdiamond_plugin_last_duration_seconds",
        "gauge",
        "Wall-clock time of the last call.",
    );
    for (plugin, stats, _) in plugins {
        let us = stats.last_duration_us.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "wdiamond_plugin_last_duration_seconds{{plugin=\"{}\"}} {}",
            label(plugin),
            us as f64 / 1e6
        );
    }
    family(
        &mut out,
        "wdiamond_handler_queued",
        "gauge",
        "Metrics a handler has queued (memory or spool).",
    );
    for (plugin, _, queued) in plugins {
        if let Some(q) = queued {
            let _ = writeln!(
                out,
                "wdiamond_handler_queued{{plugin=\"{}\"}} {q}",
                label(plugin)
            );
        }
    }
    out
}

fn metrics(plugins: &[Entry], ready: bool) -> String {
    let rows: Vec<(String, Arc<PluginStats>, Option<usize>)> = plugins
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.stats.clone(),
                e.queue.as_ref().map(|q| q.len()),
            )
        })
        .collect();
    render_metrics(&rows, ready)
}

/// Serves the endpoint on `listen` until `stop`.
pub(super) fn spawn(
    listen: &StatusListen,
    board: Arc<Board>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<ScrapeRequest>(exposition::MAX_WAITING);
    let l = Listen {
        address: listen.address,
        path: PATHS[0].into(),
        location: listen.location.clone(),
    };
    let paths = PATHS.iter().map(|p| p.to_string()).collect();
    let server = tokio::spawn(exposition::serve_paths(
        l,
        paths,
        "server".into(),
        tx,
        Duration::from_secs(5),
        stop,
    ));
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let _ = req.reply.send(answer(&board, &req.scrape.path));
        }
        let _ = server.await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, failures: u64) -> Entry {
        let stats = Arc::new(PluginStats::default());
        stats
            .consecutive_failures
            .store(failures, Ordering::Relaxed);
        stats.runs.store(7, Ordering::Relaxed);
        Entry {
            name: name.into(),
            stats,
            queue: None,
        }
    }

    #[test]
    fn healthy_ready_and_the_page() {
        let board = Board::default();
        assert!(matches!(answer(&board, "/-/ready"), Reply::Error(503, _)));
        board.set(vec![
            entry("collectors.cpu", 0),
            entry("handlers.graphite", 2),
        ]);
        assert!(matches!(answer(&board, "/-/ready"), Reply::Page(_)));
        assert!(matches!(answer(&board, "/-/healthy"), Reply::Page(_)));
        board.set(vec![
            entry("collectors.cpu", 0),
            entry("handlers.graphite", 3),
        ]);
        match answer(&board, "/-/healthy") {
            Reply::Error(503, t) => {
                assert_eq!(t, "failing: handlers.graphite (3 failures in a row)")
            }
            _ => panic!("healthy with a failing handler"),
        }
        let Reply::Page(p) = answer(&board, "/metrics") else {
            panic!()
        };
        let page = String::from_utf8(p.body).unwrap();
        assert!(
            page.contains("wdiamond_plugin_runs_total{plugin=\"collectors.cpu\"} 7\n"),
            "{page}"
        );
        assert!(page.contains("wdiamond_plugins_failing 1\n"), "{page}");
        board.stopping();
        assert!(matches!(answer(&board, "/-/ready"), Reply::Error(503, _)));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
