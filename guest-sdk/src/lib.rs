//! The small shared library of wdiamond's guest plugins.
//!
//! A collector is a type implementing [`Collector`], exported with
//! [`export_collector!`]; a handler implements [`Handler`] and is exported
//! with [`export_handler!`]; an exporter (a handler whose page the host
//! serves) also implements `Exporter` and is exported with
//! `export_exporter!`. Build the crate with exactly one of the cargo
//! features `collector`, `handler` or `exporter`.
//!
//! # Layout
//! - `bindings`: the WIT bindings of `wit/wdiamond.wit` (generated, one world).
//! - [`columns`]: the shared-column rule of `metric-set` and `metric-batch`.
//! - [`derive`]: Diamond's `Collector.derivative()`, value for value.
//! - [`units`]: Diamond's binary unit convertor (`byte_unit`).
//! - [`format`]: Diamond's graphite plaintext line.
//! - [`text`]: Python's string splitting as Diamond's collectors use it.
//! - [`config`]: typed access to the merged configuration, with Diamond's
//!   `str_to_bool` and list rules.
//! - [`host`]: thin wrappers over the host imports (files, log).
//! - [`hosts`]: Diamond's `[alias@]host[:port]` entries.
//! - [`net`]: request/response and HTTP/1.1 GET over granted sockets.
//! - [`prometheus`]: graphite paths as Prometheus series (mapping rules,
//!   snake_case, the exposition format's escaping).
//!
//! The pure modules ([`derive`], [`units`], [`format`], [`hosts`], [`prometheus`]) do not touch the bindings and
//! are unit-tested on the host target.
#![deny(missing_docs)]

pub use wdiamond_wire::columns;
pub mod derive;
pub mod format;
pub mod hosts;
pub mod prometheus;
pub mod protobuf;
pub mod text;
pub mod units;

#[cfg(any(feature = "collector", feature = "handler"))]
pub mod config;
#[cfg(any(feature = "collector", feature = "handler"))]
pub mod host;
#[cfg(any(feature = "collector", feature = "handler"))]
pub mod net;
#[cfg(feature = "sql")]
pub mod sql;

#[cfg(all(feature = "collector", feature = "handler"))]
compile_error!("enable exactly one of the features `collector` and `handler`");

/// Generated bindings of the `collector-plugin` world.
#[cfg(feature = "collector")]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "collector-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_collector_world",
        default_bindings_module: "wdiamond_sdk::bindings",
    });
}

/// Generated bindings of the `handler-plugin` world.
#[cfg(all(feature = "handler", not(feature = "exporter")))]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "handler-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_handler_world",
        default_bindings_module: "wdiamond_sdk::bindings",
    });
}

/// Generated bindings of the `exporter-plugin` world (feature `exporter`:
/// a handler whose page the host serves).
#[cfg(feature = "exporter")]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "exporter-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_exporter_world",
        default_bindings_module: "wdiamond_sdk::bindings",
    });
}

#[cfg(feature = "exporter")]
pub use bindings::exports::wdiamond::plugin::exposition::{Page, Scrape};

#[cfg(feature = "collector")]
pub use bindings::wdiamond::plugin::types::MetricSet;
#[cfg(feature = "collector")]
mod collector;
#[cfg(feature = "collector")]
pub use collector::*;
#[cfg(feature = "handler")]
mod handler;
#[cfg(any(feature = "collector", feature = "handler"))]
pub use bindings::wdiamond::plugin::types::{
    Capability, ConfigEntry, ConfigOption, ConfigValue, Description, HostError, MetricKind,
};
#[cfg(feature = "handler")]
pub use bindings::wdiamond::plugin::types::{MetricBatch, MetricSource};
#[cfg(feature = "handler")]
pub use handler::*;

#[cfg(any(feature = "collector", feature = "handler"))]
pub use config::Config;

/// A plugin's state between calls, written once for both worlds: set by
/// `configure`, lent to every later call. The export macros keep one in a
/// thread-local.
#[cfg(any(feature = "collector", feature = "handler"))]
#[doc(hidden)]
pub struct State<T>(std::cell::RefCell<Option<T>>);

#[cfg(any(feature = "collector", feature = "handler"))]
impl<T> State<T> {
    /// No state yet.
    pub const fn new() -> Self {
        State(std::cell::RefCell::new(None))
    }

    /// Builds the state from the host's merged configuration.
    pub fn configure(
        &self,
        entries: Vec<ConfigEntry>,
        build: impl FnOnce(&Config) -> Result<T, String>,
    ) -> Result<(), String> {
        let state = build(&Config::new(entries))?;
        *self.0.borrow_mut() = Some(state);
        Ok(())
    }

    /// Runs `f` on the state; an error if `configure` has not succeeded.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> Result<R, String>) -> Result<R, String> {
        let mut guard = self.0.borrow_mut();
        let state = guard
            .as_mut()
            .ok_or_else(|| "called before configure".to_string())?;
        f(state)
    }
}

/// Builds a [`Description`] option entry.
#[cfg(any(feature = "collector", feature = "handler"))]
pub fn option(key: &str, default: ConfigValue, help: &str) -> ConfigOption {
    ConfigOption {
        key: key.to_string(),
        default,
        help: help.to_string(),
    }
}

/// The mark that opens a secret option's help (see `config-option` in the WIT).
pub const SECRET_MARK: &str = "[secret] ";

/// Builds a [`Description`] option entry for a secret (a password, a
/// token): its help starts with [`SECRET_MARK`], so the host redacts its
/// value wherever it shows one, even one written in plaintext.
#[cfg(any(feature = "collector", feature = "handler"))]
pub fn secret_option(key: &str, default: ConfigValue, help: &str) -> ConfigOption {
    option(key, default, &format!("{SECRET_MARK}{help}"))
}
