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
//! Floors from the top: `main.rs` (the binary; its arguments in
//! `cli/`, parsed once), the commands, each in a file
//! named after it ([`new`], [`inspect`], [`once`], [`check`]; `config`'s is
//! [`sample`]), [`agent`], [`queue`], [`plugin`],
//! [`host`], [`config`] (with [`grants`]), [`metric`]; no arrow goes back
//! up. `bindings` is the contract: its generated types (metrics,
//! descriptions, config entries) are every floor's vocabulary, and its
//! resource mapping with [`host`] (connections, batches) is the one import
//! circle, as in wasmtime-wasi. The configuration holds its own
//! [`config::ConfigValue`], converted where a plugin gets it.
//! - [`config`]: the TOML configuration; strict, every error at once:
//!   `config/reader.rs` (the span-aware reader), `sections.rs` (known keys,
//!   plugin, grants and limits, collectors), `server.rs`, `handler.rs`,
//!   `tenant.rs` (and the tenant checks), `model.rs` (the validated types),
//!   `secrets.rs` (`${VAR}` and secret references, resolved as a file is
//!   read), `registries.rs` (`[server]`'s keys for OCI registries),
//!   `oci_reference.rs` (`oci://…`), `error.rs`; `load()` orchestrates
//!   them.
//! - [`agent`]: the supervisor (start, reload, a bounded stop), and
//!   - `agent/apply.rs`: a loaded configuration applied (handlers, then
//!     collectors, then health; what did not change keeps running);
//!   - `agent/load.rs`: the resolved plugin set (describe, options,
//!     grants, TLS, configured instances; a Python script read and
//!     pinned), once per world; `agent/load/steps.rs`, its first steps
//!     (the compiled component, what it says about itself, its TLS);
//!   - `agent/describe.rs`: what a plugin says about itself, checked
//!     (and the built-ins' paths a third party may not take);
//!   - `agent/options.rs`: the one option overlay rule and a collector's
//!     host keys;
//!   - `agent/capabilities.rs`: what plugins ask for, turned into grants;
//!   - `agent/tenant.rs`: tenants' fuel and metrics windows;
//!   - `agent/collector_task.rs`, `agent/handler_task.rs`: the two tasks
//!     (a collector's runs start on the blocking pool from
//!     `agent/scheduler.rs`, the one thread that sleeps until the next
//!     run is due, by `agent/schedule.rs`, Diamond's aligned, staggered
//!     windows); a handler's loop is a state struct over a
//!     `agent/sink.rs` (so its timing is tested with paused time), with
//!     `handler_task/drain.rs` (a delivery's hand-off) and
//!     `handler_task/scrape.rs` (an exporter's page in its turn);
//!   - `agent/outcome.rs`: a call that did not succeed, one event,
//!     counted and logged in one place;
//!   - `agent/exposition.rs`: an exporter's page, served by the host over
//!     HTTP (bounded requests; the page checked), rendered in its
//!     handler's turn;
//!   - `agent/health.rs`: the agent's own health metrics.
//!   - `agent/status.rs`: `[server] status_listen`'s `/-/healthy`,
//!     `/-/ready` and `/metrics`, on the exporters' server.
//! - [`plugin`]: the wasmtime engines (with and without fuel metering), the
//!   compiled-component cache and the built-ins; `plugin/world.rs`, the two
//!   worlds behind one trait; `plugin/call.rs`, an instance and its calls,
//!   each ending at its deadline whatever the guest waits on;
//!   `plugin/epoch.rs`, the epoch ticker (a timerfd armed only while a call
//!   is in flight: it wakes only for a call longer than a tick);
//!   `plugin/python.rs`, Python collectors (the shared Python runtime
//!   component and the script each instance runs); `plugin/per_run.rs`,
//!   collectors instantiated for each run (`instance = "per-run"`) from an
//!   engine with a pooling allocator, and the built-ins that may be.
//! - [`queue`]: a handler's bounded queue of shared columnar chunks;
//!   `queue/spool.rs`, its on-disk spool, whose format lives in
//!   `queue/spool/`: `files.rs` (segments, framing, the quota), `codec.rs`
//!   (a chunk's record), `legacy.rs` (the earlier per-metric record, still
//!   read), `bytes.rs` (the bytes both are written in).
//! - [`host`]: the host side of each WIT import (files, fs-stats, process,
//!   sockets, series, batches, log, host-info, config), one module per
//!   capability; `host/tls.rs`, TLS on a plugin's TCP connections;
//!   `host/resolve.rs`, name resolution bounded by the call;
//!   `host/wasi_fs.rs`, the WASI filesystem calls the host replaces, and
//!   `host/disk.rs`, the disk budget they charge in `directories` grants.
//! - [`grants`]: the typed, deny-by-default allow-lists those imports check,
//!   parsed once at load (`grants/parse.rs`).
//! - [`metric`]: `metric/name.rs` (checks on guest output), `path.rs`
//!   (Diamond's paths), `filter.rs`, `chunk.rs` (the columnar
//!   [`metric::Chunk`] a run travels in; `chunk/columns.rs`, its columns
//!   taken apart and checked when put back), `batch.rs` (what a handler gets),
//!   `publish.rs` (a run turned into published metrics), `series.rs`
//!   (series declared once).
//! - The commands for plugin authors and operators, each on the layers
//!   above: [`new`] (`wdiamond new`: a project with the SDK and WIT
//!   shipped in the binary, from `runtime/templates/`), [`inspect`] (what a
//!   component file is and asks for), [`once`] (collectors run twice,
//!   printed, sent nowhere), [`check`] (`check`'s summary and its review
//!   of third-party plugins' asks against their grants and pins),
//!   [`sample`] (`wdiamond config`: every key and every built-in's
//!   options, from their `describe`), [`convert`] (`wdiamond convert`:
//!   Diamond's configuration as TOML, with a report; `convert/configobj.rs`
//!   reads Diamond's syntax).
//!   `plugin/contract.rs` reads a component's world and contract version
//!   and applies the compatibility rule.
//! - [`oci`]: components from OCI registries (between [`plugin`], which
//!   loads from its store, and [`host`], whose TLS it uses; the
//!   `oci://…` reference it reads is a configuration value,
//!   `config/oci_reference.rs`): `oci/http.rs` (a bounded HTTP/1.1 client over the
//!   host's TLS, with a deadline; `http/answer.rs` reads an answer within
//!   its bounds), `auth.rs` (credentials, challenges),
//!   `registry.rs` (manifests and blobs, read checked, and pushed),
//!   `artifact.rs` (the wasm artifact layout), `sign.rs` (cosign's keyed
//!   signatures), `store.rs` (the content-addressed local store),
//!   `transfer.rs` (the verified pull, the signed push); [`install`] is
//!   the `install`, `publish` and `keygen` commands on it.
//! - [`stats`]: every plugin's counters (runs, failures, denials, metrics).
//! - [`memory`]: start-up pages given back once the agent runs.
//! - [`logging`]: what of a plugin reaches the log (cut, one line,
//!   rate-limited).
//! - [`redact`]: the configuration's secrets, kept out of everything
//!   printed (the log's writer, errors, `check` and `once`).
//! - [`hostname`]: Diamond's `hostname_method`s.
//! - [`pidfile`]: `run --pidfile`.
//! - [`notify`]: systemd's readiness protocol (`Type=notify`).
//! - `bindings`: the `bindgen!` of the WIT worlds (the exporter world's
//!   `exposition` export beside the collector's and handler's).
#![deny(missing_docs)]

pub mod agent;
pub mod bindings;
pub mod check;
pub mod config;
pub mod convert;
pub mod grants;
pub mod host;
pub mod hostname;
pub mod inspect;
pub mod install;
pub mod logging;
pub mod memory;
pub mod metric;
pub mod new;
pub mod notify;
pub mod oci;
pub mod once;
pub mod pidfile;
pub mod plugin;
pub mod queue;
pub mod redact;
pub mod sample;
pub mod stats;
