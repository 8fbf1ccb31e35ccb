//! Collectors instantiated for each run and dropped after it
//! (`instance = "per-run"`).
//!
//! A collector that keeps nothing between runs (no counter to take a rate
//! of) needs no instance between them. Held, an instance costs its store,
//! its linear memory's touched pages, its fiber stack and its data image —
//! about 60 KB each, which decides how many collectors a shared host can
//! run (`scripts/footprint`, BENCHMARKS.md). Per run, it costs an
//! instantiation instead, made cheap by two things:
//! - a pooling allocator of its own engine: linear memories, tables and
//!   fiber stacks are reserved once and reused, a slot keeping its data
//!   image mapped (reset copy-on-write), so a run maps and unmaps nothing;
//! - the component's imports resolved once ([`CollectorPre`]).
//!
//! The pool holds [`pool_slots`] instances at once: a run holds one while
//! it is on a blocking thread, and the agent has fewer of those. The pool
//! is reserved (address space only) when the first per-run collector
//! loads; if it cannot be, per-run instances come from the ordinary
//! allocator, which works the same, slower.

use std::sync::Arc;

use wasmtime::PoolingAllocationConfig;

use super::call::{bounded, drive, instantiated, setup_deadline};
use super::{epoch, EngineSet, Instance, Runtime};
use crate::bindings::collector::{CollectorPlugin, CollectorPluginPre};
use crate::host::{HostState, PluginContext};

/// A collector component with its imports resolved: what a per-run
/// collector is instantiated from at each run.
pub type CollectorPre = CollectorPluginPre<HostState>;

/// The built-in collectors that keep nothing between runs: in an agent of
/// many collectors ([`crate::agent::PER_RUN_FROM`]) they run per run unless
/// their section says `instance = "persistent"` (the compat suite runs
/// each per run against Diamond's figures). The others take rates of
/// counters.
pub const STATELESS_BUILTINS: &[&str] = &[
    "loadavg",
    "memory",
    "diskspace",
    "uptime",
    "entropy",
    "sockstat",
    "filestat",
    "netstat",
];

/// Instances the per-run pool holds at once: several times the agent's
/// blocking threads (`agent::blocking_threads`), which bound the runs in
/// flight, with room for the describe and configure of a reload.
pub fn pool_slots() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    (16 * cores).clamp(64, 1024)
}

/// The pool: per slot one component instance of up to 16 core instances,
/// 2 memories and 4 tables (a Rust component has 1 memory and a few
/// shims). Pages a run touches are kept resident in the slot (up to 64 KiB
/// of linear memory) rather than unmapped and faulted in again.
fn pool() -> PoolingAllocationConfig {
    let slots = pool_slots();
    let mut p = PoolingAllocationConfig::new();
    p.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .max_core_instances_per_component(16)
        .total_memories(slots * 2)
        .max_memories_per_component(2)
        .total_tables(slots * 4)
        .max_tables_per_component(4)
        .total_stacks(slots)
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    p
}

impl Runtime {
    /// The per-run engine set, made (and its pool reserved) on first use.
    pub(super) fn per_run_engines(&self) -> &EngineSet {
        self.per_run
            .get_or_init(|| match EngineSet::new(false, Some(pool())) {
                Ok(set) => {
                    epoch::register(&set.engine);
                    Some(set)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reserve the per-run instance pool; per-run collectors are instantiated without it");
                    None
                }
            })
            .as_ref()
            .unwrap_or(&self.unmetered)
    }

    /// `component`'s imports resolved against the collector world, once.
    pub fn collector_pre(
        &self,
        component: &wasmtime::component::Component,
    ) -> anyhow::Result<CollectorPre> {
        let set = self.engines_of(component);
        let pre = set
            .collector_linker
            .instantiate_pre(component)
            .map_err(|e| anyhow::anyhow!("resolving imports: {e}"))?;
        CollectorPre::new(pre).map_err(|e| anyhow::anyhow!("resolving exports: {e}"))
    }

    /// A configured instance from `pre` (its start code under the setup
    /// deadline, then `configure` with the context's config).
    pub fn configured_from(
        &self,
        pre: &CollectorPre,
        ctx: Arc<PluginContext>,
    ) -> Result<Instance<CollectorPlugin>, String> {
        let entries = ctx.config.clone();
        let mut store = self
            .store(pre.engine(), ctx)
            .map_err(|e| format!("{e:#}"))?;
        let at = setup_deadline(&mut store);
        let r = drive(bounded(at, None, pre.instantiate_async(&mut store)));
        let bindings = instantiated(&mut store, r).map_err(|e| format!("{e:#}"))?;
        super::configure_instance(Instance { store, bindings }, &entries)
    }
}
