//! wdiamond: the Diamond metrics agent, with every collector and every
//! handler a sandboxed WebAssembly component.
//!
//! `wdiamond run conf.toml` loads collectors and handlers (WASI preview 2
//! components implementing the WIT contract in `wit/wdiamond.wit`), runs
//! each collector on Diamond's schedule under hard limits (wall-clock
//! deadline, fuel, memory), and hands the metrics, with Diamond's paths,
//! to every handler through bounded queues.
//!
//! # Layout
//! - [`config`]: the TOML configuration; strict, every error at once.
//! - [`agent`]: loading plugins, the collector and handler tasks, queues,
//!   reload and shutdown.
//! - [`plugin`]: the wasmtime engines (with and without fuel metering),
//!   the compiled-component cache, an instance with its limits, and how
//!   failures are classified.
//! - [`queue`]: a handler's bounded queue of shared columnar chunks, and its
//!   on-disk spool.
//! - [`host`]: the host side of each WIT import (files, fs-stats, process,
//!   sockets, series, log, host-info, config), one module per capability.
//! - [`grants`]: the typed, deny-by-default allow-lists those imports check.
//! - [`metric`]: Diamond's metric paths and lines, checks on guest output,
//!   filters, and the columnar [`metric::Chunk`] a run's metrics travel in.
//! - [`schedule`]: Diamond's aligned, staggered collection windows.
//! - [`stats`]: every plugin's counters (runs, failures, denials, metrics).
//! - [`hostname`]: Diamond's `hostname_method`s.
//! - [`logging`]: what of a plugin reaches the log (cut, one line,
//!   rate-limited).
//! - `bindings`: the one `bindgen!` of the WIT worlds.
#![deny(missing_docs)]

pub mod agent;
pub mod bindings;
pub mod config;
pub mod grants;
pub mod host;
pub mod hostname;
pub mod logging;
pub mod metric;
pub mod plugin;
pub mod queue;
pub mod schedule;
pub mod stats;
