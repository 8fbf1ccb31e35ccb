//! The one place where the WIT contract (`wit/wdiamond.wit`) becomes Rust.
//!
//! The collector world generates the shared interfaces; the handler world
//! reuses them through `with`, so both worlds see the same Rust types.

#![allow(missing_docs)]

/// Bindings of the `collector-plugin` world, and the shared interfaces.
pub mod collector {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "collector-plugin",
        additional_derives: [PartialEq],
        // Every export is called with `call_async`, so a guest blocked in
        // WASI (a clock, a stream) is a future the host can drop at its
        // deadline; our own imports stay synchronous and bound themselves.
        exports: { default: async },
        imports: {
            "wdiamond:plugin/sockets.[static]connection.open": trappable,
            "wdiamond:plugin/sockets.[method]connection.send": trappable,
            "wdiamond:plugin/sockets.[method]connection.receive": trappable,
            "wdiamond:plugin/sockets.[method]connection.set-keepalive": trappable,
            "wdiamond:plugin/sockets.[static]connection.open-plain": trappable,
            "wdiamond:plugin/sockets.[method]connection.start-tls": trappable,
            "wdiamond:plugin/sockets.[method]connection.send-lines": trappable,
            "wdiamond:plugin/sockets.[drop]connection": trappable,
            "wdiamond:plugin/batches.[method]batch.len": trappable,
            "wdiamond:plugin/batches.[method]batch.columns": trappable,
            "wdiamond:plugin/batches.[drop]batch": trappable,
        },
        with: {
            "wdiamond:plugin/sockets.connection": crate::host::sockets::Connection,
            "wdiamond:plugin/batches.batch": crate::host::batches::HeldBatch,
        },
    });
}

/// Bindings of the `handler-plugin` world.
pub mod handler {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "handler-plugin",
        exports: { default: async },
        with: {
            "wdiamond:plugin/types": crate::bindings::collector::wdiamond::plugin::types,
            "wdiamond:plugin/files": crate::bindings::collector::wdiamond::plugin::files,
            "wdiamond:plugin/fs-stats": crate::bindings::collector::wdiamond::plugin::fs_stats,
            "wdiamond:plugin/process": crate::bindings::collector::wdiamond::plugin::process,
            "wdiamond:plugin/sockets": crate::bindings::collector::wdiamond::plugin::sockets,
            "wdiamond:plugin/batches": crate::bindings::collector::wdiamond::plugin::batches,
            "wdiamond:plugin/log": crate::bindings::collector::wdiamond::plugin::log,
            "wdiamond:plugin/host-info": crate::bindings::collector::wdiamond::plugin::host_info,
            "wdiamond:plugin/config": crate::bindings::collector::wdiamond::plugin::config,
        },
    });
}

/// Bindings of the `exporter-plugin` world: only its `exposition` export
/// is used (an exporter is instantiated as a handler, and its `render` is
/// loaded beside; see `plugin::Handler`).
pub mod exporter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "exporter-plugin",
        exports: { default: async },
        with: {
            "wdiamond:plugin/types": crate::bindings::collector::wdiamond::plugin::types,
            "wdiamond:plugin/files": crate::bindings::collector::wdiamond::plugin::files,
            "wdiamond:plugin/fs-stats": crate::bindings::collector::wdiamond::plugin::fs_stats,
            "wdiamond:plugin/process": crate::bindings::collector::wdiamond::plugin::process,
            "wdiamond:plugin/sockets": crate::bindings::collector::wdiamond::plugin::sockets,
            "wdiamond:plugin/batches": crate::bindings::collector::wdiamond::plugin::batches,
            "wdiamond:plugin/log": crate::bindings::collector::wdiamond::plugin::log,
            "wdiamond:plugin/host-info": crate::bindings::collector::wdiamond::plugin::host_info,
            "wdiamond:plugin/config": crate::bindings::collector::wdiamond::plugin::config,
        },
    });
}

pub use exporter::exports::wdiamond::plugin::exposition;

pub use collector::wdiamond::plugin::{
    batches, config as wit_config, files, fs_stats, host_info, log as wit_log, process, series,
    sockets, types,
};

/// The contract's `config-value` from the configuration's.
impl From<crate::config::ConfigValue> for types::ConfigValue {
    fn from(v: crate::config::ConfigValue) -> Self {
        use crate::config::ConfigValue as C;
        match v {
            C::Text(s) => types::ConfigValue::Text(s),
            C::Integer(i) => types::ConfigValue::Integer(i),
            C::Float(f) => types::ConfigValue::Float(f),
            C::Boolean(b) => types::ConfigValue::Boolean(b),
            C::TextList(l) => types::ConfigValue::TextList(l),
        }
    }
}

/// The configuration's value from the contract's (a plugin's defaults).
impl From<types::ConfigValue> for crate::config::ConfigValue {
    fn from(v: types::ConfigValue) -> Self {
        use crate::config::ConfigValue as C;
        match v {
            types::ConfigValue::Text(s) => C::Text(s),
            types::ConfigValue::Integer(i) => C::Integer(i),
            types::ConfigValue::Float(f) => C::Float(f),
            types::ConfigValue::Boolean(b) => C::Boolean(b),
            types::ConfigValue::TextList(l) => C::TextList(l),
        }
    }
}
