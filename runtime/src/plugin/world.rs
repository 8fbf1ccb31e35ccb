//! The plugin worlds of the contract behind one trait, so that the code
//! around them (limits, deadlines, loading) is written once. An exporter is
//! a handler with one more export, so it is a [`Handler`] whose `render`
//! is there.

use wasmtime::component::{Component, Linker};
use wasmtime::Store;

use super::EngineSet;
use crate::bindings::collector::CollectorPlugin;
use crate::bindings::exposition;

/// A guest call's future, borrowing its bindings and store.
pub(crate) type BoxFuture<'a, R> = std::pin::Pin<Box<dyn std::future::Future<Output = R> + 'a>>;
use crate::bindings::handler::HandlerPlugin;
use crate::bindings::types::{ConfigEntry, Description};
use crate::host::HostState;

/// One of the plugin worlds of the contract (an exporter is a handler): how to instantiate it and
/// call what both export (`describe`, `configure`). The code around them
/// (limits, deadlines, loading) is written once for both.
pub trait World: Sized + Send + 'static {
    /// `collector` or `handler`, for logs and messages.
    const KIND: &'static str;
    /// This world's linker in an engine set.
    #[doc(hidden)]
    fn linker(set: &EngineSet) -> &Linker<HostState>;
    /// Instantiates `component` in `store`.
    #[doc(hidden)]
    fn instantiate<'a>(
        store: &'a mut Store<HostState>,
        component: &'a Component,
        linker: &'a Linker<HostState>,
    ) -> BoxFuture<'a, wasmtime::Result<Self>>;
    /// Calls `describe`.
    #[doc(hidden)]
    fn describe<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
    ) -> BoxFuture<'a, wasmtime::Result<Description>>;
    /// Calls `configure`.
    #[doc(hidden)]
    fn configure<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
        config: &'a [ConfigEntry],
    ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>>;
}

/// The `World` impl of a generated world type: `$kind` and its export
/// interface accessor.
macro_rules! world {
    ($world:ty, $kind:literal, $linker:ident, $($exports:ident).+) => {
        impl World for $world {
            const KIND: &'static str = $kind;
            fn linker(set: &EngineSet) -> &Linker<HostState> {
                &set.$linker
            }
            fn instantiate<'a>(
                store: &'a mut Store<HostState>,
                component: &'a Component,
                linker: &'a Linker<HostState>,
            ) -> BoxFuture<'a, wasmtime::Result<Self>> {
                Box::pin(<$world>::instantiate_from(store, component, linker))
            }
            fn describe<'a>(
                &'a self,
                store: &'a mut Store<HostState>,
            ) -> BoxFuture<'a, wasmtime::Result<Description>> {
                Box::pin(self.$($exports).+().call_describe(store))
            }
            fn configure<'a>(
                &'a self,
                store: &'a mut Store<HostState>,
                config: &'a [ConfigEntry],
            ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>> {
                Box::pin(self.$($exports).+().call_configure(store, config))
            }
        }
    };
}

world!(
    CollectorPlugin,
    "collector",
    collector_linker,
    wdiamond_plugin_collector
);
world!(
    Handler,
    "handler",
    handler_linker,
    plugin.wdiamond_plugin_handler
);

impl CollectorPlugin {
    async fn instantiate_from(
        store: &mut Store<HostState>,
        component: &Component,
        linker: &Linker<HostState>,
    ) -> wasmtime::Result<Self> {
        CollectorPlugin::instantiate_async(store, component, linker).await
    }
}

/// A handler's exports: the `handler` interface, and `exposition` when the
/// component is an exporter (it exports the page the host serves).
pub struct Handler {
    /// The `handler` interface.
    pub(super) plugin: HandlerPlugin,
    /// `render`, for an exporter.
    pub(super) exposition: Option<exposition::Guest>,
}

impl Handler {
    async fn instantiate_from(
        store: &mut Store<HostState>,
        component: &Component,
        linker: &Linker<HostState>,
    ) -> wasmtime::Result<Self> {
        let pre = linker.instantiate_pre(component)?;
        let instance = pre.instantiate_async(&mut *store).await?;
        let plugin = HandlerPlugin::new(&mut *store, &instance)?;
        let exposition = if super::contract::exports_exposition(component) {
            Some(exposition::GuestIndices::new(&pre)?.load(&mut *store, &instance)?)
        } else {
            None
        };
        Ok(Handler { plugin, exposition })
    }
}
