//! `wdiamond once CONF [COLLECTOR...]`: run collectors twice, `--wait`
//! apart (so counters have a rate), print what they publish, and send
//! nothing anywhere (Telegraf's `--test`; Diamond's `-r`). Each run is a
//! real run: the same grants, limits, paths and filters as `run`.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::agent::{self, run_collection, LoadedCollectorShared, PluginStats};
use crate::config::{Config, ConfigError, ConfigErrors, Location};
use crate::host::info::wall_clock;
use crate::host::HostFacts;
use crate::metric::Chunk;
use crate::plugin::Runtime;
use crate::queue::Queue;

/// How `once` prints metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Diamond's lines: `path value timestamp`.
    Lines,
    /// One JSON object per metric and line.
    Json,
}

/// One metric as `--format json` prints it.
#[derive(Serialize)]
struct JsonMetric<'a> {
    collector: &'a str,
    run: u32,
    path: &'a str,
    value: f64,
    precision: u8,
    kind: &'static str,
    timestamp: u64,
}

/// How one collector's runs went.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// The collector.
    pub name: String,
    /// Metrics printed, both runs.
    pub metrics: u64,
    /// Runs that failed (an error returned, a trap, a limit, no instance).
    pub failed: u64,
    /// Host calls refused for lack of a grant.
    pub denials: u64,
}

/// Keeps only the collectors named (all enabled ones when none is), and no
/// handler. A named collector runs even when `enabled = false`; an unknown
/// name is a configuration error listing the known ones.
pub fn select(config: &Config, names: &[String]) -> Result<Config, ConfigErrors> {
    let mut c = config.clone();
    c.handlers.clear();
    c.server.handlers.clear();
    if names.is_empty() {
        return Ok(c);
    }
    let mut errors = Vec::new();
    for n in names {
        if !c.collectors.iter().any(|x| x.plugin.name == *n) {
            let mut known: Vec<&str> = c
                .collectors
                .iter()
                .map(|x| x.plugin.name.as_str())
                .collect();
            known.sort_unstable();
            errors.push(ConfigError {
                location: Location {
                    file: config.source.clone(),
                    line: 0,
                    column: 0,
                },
                key: format!("collectors.{n}"),
                message: format!(
                    "no collector named {n:?} in the configuration (its collectors: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    for x in &mut c.collectors {
        x.enabled = names.contains(&x.plugin.name);
    }
    Ok(c)
}

fn print(
    out: &mut dyn Write,
    chunk: &Chunk,
    name: &str,
    run: u32,
    format: Format,
) -> std::io::Result<()> {
    match format {
        Format::Lines => out.write_all(chunk.lines().as_bytes()),
        Format::Json => {
            for m in chunk.iter() {
                let j = JsonMetric {
                    collector: name,
                    run,
                    path: m.path,
                    value: m.value,
                    precision: m.precision,
                    kind: match m.kind {
                        crate::bindings::types::MetricKind::Gauge => "gauge",
                        crate::bindings::types::MetricKind::Counter => "counter",
                    },
                    timestamp: m.timestamp,
                };
                serde_json::to_writer(&mut *out, &j)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
    }
}

/// Loads `config` (already [`select`]ed) and runs each collector twice,
/// `wait` apart, printing to `out`. Returns each collector's outcome.
pub async fn run(
    runtime: Arc<Runtime>,
    config: &Config,
    wait: Duration,
    format: Format,
    out: &mut dyn Write,
) -> Result<Vec<Outcome>, ConfigErrors> {
    let loaded = {
        let rt = runtime.clone();
        tokio::task::block_in_place(|| agent::load(&rt, config, &HostFacts::default()))?
    };
    let mut jobs = Vec::new();
    for lc in loaded.collectors {
        let stats = Arc::new(PluginStats::default());
        let queue = Queue::new(&lc.config.plugin.name, usize::MAX / 4, stats.clone(), None);
        let router = agent::to_all(vec![(lc.config.plugin.name.clone(), queue.clone())]);
        let deadline = lc
            .config
            .plugin
            .limits
            .timeout
            .unwrap_or(Duration::from_secs_f64(lc.config.interval.max(1.0)));
        let name = lc.config.plugin.name.clone();
        let (shared, instance) = LoadedCollectorShared::split(lc, &runtime, None);
        jobs.push((name, shared, instance, stats, queue, router, deadline));
    }
    let mut outcomes: Vec<Outcome> = jobs
        .iter()
        .map(|j| Outcome {
            name: j.0.clone(),
            ..Default::default()
        })
        .collect();
    for run in 1..=2u32 {
        if run == 2 && !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        for (j, o) in jobs.iter_mut().zip(outcomes.iter_mut()) {
            let (name, shared, instance, stats, queue, router, deadline) = j;
            let before =
                stats.guest_errors.load(Ordering::Relaxed) + stats.failures.load(Ordering::Relaxed);
            match run_collection(
                &runtime,
                shared,
                instance.take(),
                wall_clock(),
                *deadline,
                router,
                stats,
            )
            .await
            {
                // A per-run collector's instance ends with its run.
                Ok(Some(i)) => *instance = (!shared.per_run).then_some(i),
                Ok(None) => {}
                Err(e) => {
                    shared
                        .ctx
                        .span
                        .in_scope(|| tracing::error!(error = %e, "cannot instantiate"));
                    o.failed += 1;
                }
            }
            let after =
                stats.guest_errors.load(Ordering::Relaxed) + stats.failures.load(Ordering::Relaxed);
            o.failed += after - before;
            o.denials = stats.denials.load(Ordering::Relaxed);
            while let Some((taken, batch)) = queue.peek(usize::MAX / 4) {
                let chunk = batch.to_chunk();
                o.metrics += chunk.len() as u64;
                let _ = print(out, &chunk, name, run, format);
                queue.commit(taken);
            }
            let _ = out.flush();
        }
    }
    Ok(outcomes)
}

/// The lines `once` ends with on stderr, and whether everything went well.
pub fn summary(outcomes: &[Outcome]) -> (String, bool) {
    let mut text = String::new();
    let mut ok = true;
    for o in outcomes {
        let mut problems = Vec::new();
        if o.failed > 0 {
            problems.push(format!("{} of 2 runs failed", o.failed));
        }
        if o.denials > 0 {
            problems.push(format!(
                "{} host calls denied (each denial above names the grant line to add)",
                o.denials
            ));
        }
        if problems.is_empty() {
            text.push_str(&format!(
                "collectors.{}: ok, {} metrics\n",
                o.name, o.metrics
            ));
        } else {
            ok = false;
            text.push_str(&format!(
                "collectors.{}: {}; {} metrics\n",
                o.name,
                problems.join("; "),
                o.metrics
            ));
        }
    }
    if outcomes.is_empty() {
        text.push_str("no collector is enabled: name one (`wdiamond once CONF NAME`) or set `enabled = true`\n");
        ok = false;
    }
    (text, ok)
}
