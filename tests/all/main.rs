//! wdiamond's integration tests, one binary with a module per area (as
//! wasmtime's `tests/all`): the agent as a whole, each plugin world against
//! real servers, the sandbox against hostile guests, Diamond's own files.
//! Helpers and the real backends the tests start live in [`common`].
//!
//! Run one area with `cargo test --release --test all -- sandbox::`.

mod common;

/// The agent end to end: the real binary, bad configs, misbehaving guests.
mod agent;
/// Scaffolding a plugin with `wdiamond new` up to a pinned run.
mod author;
/// The commands around the agent (`check`, `inspect`, `once`, `new`) on bad and hostile input.
mod cli;
/// Diamond compatibility: names, paths and values on Diamond's fixtures.
mod compat;
/// Config errors: each `.toml` under `config_errors/` against its expected report, whole.
mod config_errors;
/// `wdiamond config`: the complete sample configuration, checked.
mod config_sample;
/// `wdiamond convert`: Diamond's configuration (its example, and each rule) as TOML that `check` accepts.
mod convert;
/// The database collectors (PostgreSQL, PgBouncer, MariaDB) against real servers, with secrets and TLS.
mod databases;
/// Delivery: the spool, crashes, restarts, reloads; nothing lost.
mod delivery;
/// Diamond's released collector scripts, unchanged.
mod diamond_scripts;
/// A fleet behind carbon-c-relay.
mod fleet;
/// Property tests of the config loader and the metric checks.
mod fuzz;
/// Handler batches and their timeouts.
mod handler_batches;
/// Each handler against its real backend.
mod handlers;
mod instancing;
/// The standard collectors on this machine's own /proc and /sys.
mod live;
/// Publishing to and installing from a real OCI registry; signatures; hostile registries.
mod oci;
/// The Debian package and its systemd unit, installed into a scratch root and run there.
mod package;
/// Tenants and routing.
mod routing;
/// Hostile guests beside a well-behaved neighbour.
mod sandbox;
/// Schedules: an overrun skips windows and never delays its neighbours.
mod schedule;
/// Secrets and `${VAR}` in the configuration, never shown.
mod secrets;
/// Service collectors against real servers.
mod services;
/// userscripts: a directory's scripts run, and only they.
mod userscripts;
