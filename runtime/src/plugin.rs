//! Components and their instances: the wasmtime engine, the on-disk cache
//! of compiled components, and one [`Instance`] per running plugin with its
//! limits (epoch deadline, fuel, memory).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::bindings::collector::CollectorPlugin;
use crate::bindings::handler::HandlerPlugin;
use crate::bindings::types::{ConfigEntry, Description, MetricSet};
use crate::config::ComponentRef;
use crate::host::{self, GuestOutput, HostState, Limiter, PluginContext};
use crate::metric::Batch;

/// One epoch tick: deadlines are counted in these.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The built-in components, embedded at build time.
mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

/// Names of the built-in components.
pub fn builtin_names() -> Vec<&'static str> {
    builtin::BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// Directory holding the guests built with this binary, test-only ones too.
pub fn guest_wasm_dir() -> &'static Path {
    Path::new(env!("WDIAMOND_GUEST_WASM_DIR"))
}

/// Why a plugin call did not return normally. A guest's own error result
/// is not a failure of this kind: it is returned as `Ok(Err(text))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The guest trapped (panic, abort, unreachable, stack overflow...).
    Trap,
    /// The run outlived its wall-clock deadline.
    Timeout,
    /// The run used up its fuel.
    Fuel,
    /// The guest hit its memory cap (and trapped because of it).
    Memory,
}

impl FailureKind {
    /// A short name for logs and self-metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Fuel => "fuel",
            FailureKind::Memory => "memory",
        }
    }
}

/// A failed plugin call: what kind, and the message (trap text and the
/// guest's last stderr lines).
#[derive(Debug, thiserror::Error)]
#[error("{} ({message})", kind.as_str())]
pub struct Failure {
    /// What happened.
    pub kind: FailureKind,
    /// Details.
    pub message: String,
}

/// Whether a plugin's code counts fuel.
///
/// Fuel metering makes guest code ~15–30 % slower (measured, BENCHMARKS.md),
/// so only plugins with a fuel limit (their own `limits.fuel` or their
/// tenant's `max_fuel_per_interval`) are compiled with it; the others are
/// bounded by their epoch deadline and memory cap, which every plugin has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metering {
    /// Fuel is counted (and limits can stop the run).
    Fuel,
    /// No fuel counting; `Usage::fuel` is 0.
    None,
}

impl Metering {
    /// Fuel is counted only for a plugin under some fuel limit.
    pub fn for_limit(fuel_limited: bool) -> Metering {
        if fuel_limited {
            Metering::Fuel
        } else {
            Metering::None
        }
    }
}

/// One wasmtime engine and the linkers of both worlds for it.
#[doc(hidden)]
pub struct EngineSet {
    engine: Engine,
    collector_linker: Linker<HostState>,
    handler_linker: Linker<HostState>,
}

impl EngineSet {
    fn new(fuel: bool) -> anyhow::Result<EngineSet> {
        let mut c = wasmtime::Config::new();
        c.epoch_interruption(true);
        c.consume_fuel(fuel);
        c.max_wasm_stack(1 << 20);
        let engine = Engine::new(&c).map_err(|e| anyhow!("creating the wasm engine: {e}"))?;
        let mut collector_linker = Linker::new(&engine);
        host::add_collector_imports(&mut collector_linker)
            .map_err(|e| anyhow!("linking collector imports: {e}"))?;
        let mut handler_linker = Linker::new(&engine);
        host::add_handler_imports(&mut handler_linker)
            .map_err(|e| anyhow!("linking handler imports: {e}"))?;
        Ok(EngineSet {
            engine,
            collector_linker,
            handler_linker,
        })
    }
}

/// The engines, the linkers and the compiled components, shared by all
/// plugins. Cheap to share behind an `Arc`.
pub struct Runtime {
    metered: EngineSet,
    unmetered: EngineSet,
    cache_dir: PathBuf,
    compiled: Mutex<HashMap<(ComponentRef, Metering), Component>>,
}

impl Runtime {
    /// Builds the engines (epoch interruption on both, fuel on one; see
    /// [`Metering`]) and starts the epoch ticker thread. Compiled
    /// components are cached in `cache_dir`.
    pub fn new(cache_dir: &Path) -> anyhow::Result<Arc<Self>> {
        let metered = EngineSet::new(true)?;
        let unmetered = EngineSet::new(false)?;
        let weak = [metered.engine.weak(), unmetered.engine.weak()];
        std::thread::Builder::new()
            .name("wdiamond-epoch".into())
            .spawn(move || loop {
                let mut alive = false;
                for w in &weak {
                    if let Some(engine) = w.upgrade() {
                        engine.increment_epoch();
                        alive = true;
                    }
                }
                if !alive {
                    break;
                }
                std::thread::sleep(EPOCH_TICK);
            })
            .context("starting the epoch thread")?;
        Ok(Arc::new(Runtime {
            metered,
            unmetered,
            cache_dir: cache_dir.to_path_buf(),
            compiled: Mutex::new(HashMap::new()),
        }))
    }

    fn engines(&self, m: Metering) -> &EngineSet {
        match m {
            Metering::Fuel => &self.metered,
            Metering::None => &self.unmetered,
        }
    }

    /// The engine set a component was compiled for.
    fn engines_of(&self, c: &Component) -> &EngineSet {
        if Engine::same(c.engine(), &self.metered.engine) {
            &self.metered
        } else {
            &self.unmetered
        }
    }

    /// Forgets the in-memory compiled components (a reload re-reads the
    /// `.wasm` files; unchanged ones come back from the disk cache).
    pub fn forget_compiled(&self) {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The compiled component for `r`: from memory, else from the disk
    /// cache (keyed by the engine's compatibility hash and the wasm bytes'
    /// SHA-256), else compiled and cached.
    pub fn component(&self, r: &ComponentRef, metering: Metering) -> anyhow::Result<Component> {
        let key = (r.clone(), metering);
        if let Some(c) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let bytes: std::borrow::Cow<'static, [u8]> = match r {
            ComponentRef::Builtin(name) => builtin::BUILTINS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| std::borrow::Cow::Borrowed(*b))
                .ok_or_else(|| {
                    anyhow!(
                        "no built-in component named {name:?} (built-ins: {})",
                        builtin_names().join(", ")
                    )
                })?,
            ComponentRef::File(p) => std::fs::read(p)
                .with_context(|| format!("reading {}", p.display()))?
                .into(),
        };
        let component = self
            .compile_cached(&self.engines(metering).engine, &bytes)
            .with_context(|| format!("loading {r}"))?;
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, component.clone());
        Ok(component)
    }

    fn compile_cached(&self, engine: &Engine, wasm: &[u8]) -> anyhow::Result<Component> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let mut sha = Sha256::new();
        sha.update(h.finish().to_le_bytes());
        sha.update(env!("CARGO_PKG_VERSION").as_bytes());
        sha.update(wasm);
        let key: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let path = self.cache_dir.join(format!("{key}.cwasm"));
        if path.exists() {
            // SAFETY: the cache directory is the agent's own; the artifact
            // was written by `Component::serialize` of a compatible engine
            // (the key includes the engine's compatibility hash), and
            // wasmtime checks its header before use.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable cached component; recompiling")
                }
            }
        }
        let component = Component::new(engine, wasm).map_err(|e| anyhow!("compiling: {e:#}"))?;
        match component.serialize() {
            Ok(bytes) => {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let written = std::fs::create_dir_all(&self.cache_dir)
                    .and_then(|_| std::fs::write(&tmp, bytes))
                    .and_then(|_| std::fs::rename(&tmp, &path));
                if let Err(e) = written {
                    tracing::warn!(dir = %self.cache_dir.display(), error = %e, "cannot write the component cache; components will be recompiled at every start");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialize a compiled component"),
        }
        Ok(component)
    }

    fn store(&self, engine: &Engine, ctx: Arc<PluginContext>) -> anyhow::Result<Store<HostState>> {
        let output = GuestOutput::default();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.clone()).stderr(output.clone());
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // Blocking WASI calls (files in a `directories` grant) wait in a
        // future on another thread, which the deadline can drop.
        wasi.allow_blocking_current_thread(false);
        for dir in &ctx.grants.directories {
            wasi.preopened_dir(dir, dir.to_string_lossy(), FsPerms::ReadWrite)
                .map_err(|e| anyhow!("opening granted directory {}: {e}", dir.display()))?;
        }
        let memory = ctx.limits.memory;
        let state = HostState {
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            limiter: Limiter::new(memory),
            ctx,
            stats: Default::default(),
            output,
            sockets_open: 0,
            series: Default::default(),
            held: Default::default(),
            deadline: None,
            abort: None,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        // What the host lifts out of the guest in one call (results,
        // arguments: strings, lists) is bounded by the plugin's own memory
        // cap, not wasmtime's 128 MiB default: aliased strings cannot make
        // the host hold more than the guest could.
        store.set_hostcall_fuel(max_lifted(memory));
        let _ = store.set_fuel(u64::MAX);
        // Each epoch tick, a running guest yields to the call's future (so
        // its deadline and the agent's stop are noticed even while it
        // computes), and traps once the deadline has passed.
        store.epoch_deadline_callback(|ctx| {
            Ok(match ctx.data().deadline {
                Some(d) if Instant::now() < d => UpdateDeadline::Yield(1),
                _ => UpdateDeadline::Interrupt,
            })
        });
        store.set_epoch_deadline(1);
        Ok(store)
    }

    /// Instantiates a component of world `W` (its start code runs under
    /// the setup deadline).
    pub fn instance<W: World>(
        &self,
        component: &Component,
        ctx: Arc<PluginContext>,
    ) -> anyhow::Result<Instance<W>> {
        let set = self.engines_of(component);
        let mut store = self.store(&set.engine, ctx)?;
        let at = setup_deadline(&mut store);
        let r = drive(bounded(
            at,
            None,
            W::instantiate(&mut store, component, W::linker(set)),
        ));
        let bindings = instantiated(&mut store, r)?;
        Ok(Instance { store, bindings })
    }

    /// Instantiates a component of world `W` and configures it with its
    /// context's config: a plugin ready to run.
    pub fn configured<W: World>(
        &self,
        component: &Component,
        ctx: Arc<PluginContext>,
    ) -> Result<Instance<W>, String> {
        let entries = ctx.config.clone();
        let mut i = self
            .instance::<W>(component, ctx)
            .map_err(|e| format!("{e:#}"))?;
        match i.configure(&entries) {
            Ok(Ok(())) => Ok(i),
            Ok(Err(msg)) => Err(format!("the plugin rejected its configuration: {msg}")),
            Err(f) => Err(format!("configure failed: {f}")),
        }
    }

    /// Instantiates a collector component.
    pub fn collector(
        &self,
        component: &Component,
        ctx: Arc<PluginContext>,
    ) -> anyhow::Result<Instance<CollectorPlugin>> {
        self.instance(component, ctx)
    }

    /// Instantiates a handler component.
    pub fn handler(
        &self,
        component: &Component,
        ctx: Arc<PluginContext>,
    ) -> anyhow::Result<Instance<HandlerPlugin>> {
        self.instance(component, ctx)
    }
}

/// One of the two plugin worlds of the contract: how to instantiate it and
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
    ($world:ty, $kind:literal, $linker:ident, $exports:ident) => {
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
                Box::pin(<$world>::instantiate_async(store, component, linker))
            }
            fn describe<'a>(
                &'a self,
                store: &'a mut Store<HostState>,
            ) -> BoxFuture<'a, wasmtime::Result<Description>> {
                Box::pin(self.$exports().call_describe(store))
            }
            fn configure<'a>(
                &'a self,
                store: &'a mut Store<HostState>,
                config: &'a [ConfigEntry],
            ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>> {
                Box::pin(self.$exports().call_configure(store, config))
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
    HandlerPlugin,
    "handler",
    handler_linker,
    wdiamond_plugin_handler
);

/// Most bytes the host lifts out of a plugin in one call: its memory cap
/// (at least 1 MiB).
pub fn max_lifted(memory: usize) -> usize {
    memory.max(1 << 20)
}

type BoxFuture<'a, R> = std::pin::Pin<Box<dyn std::future::Future<Output = R> + 'a>>;

/// Starts an instantiation's [`SETUP_DEADLINE`] (its start code runs under
/// it, as `describe` does).
fn setup_deadline(store: &mut Store<HostState>) -> Instant {
    let at = Instant::now() + SETUP_DEADLINE;
    store.data_mut().deadline = Some(at);
    store.set_epoch_deadline(1);
    at
}

/// The result of an instantiation, its deadline cleared.
fn instantiated<B>(store: &mut Store<HostState>, r: wasmtime::Result<B>) -> anyhow::Result<B> {
    store.data_mut().deadline = None;
    r.map_err(|e| match e.downcast_ref::<Stalled>() {
        Some(s) => anyhow!("instantiating: {s}"),
        None => anyhow!("instantiating: {e:#}"),
    })
}

thread_local! {
    /// The executor of plugin calls on this (blocking) thread: calls are
    /// futures (async WASI), driven here to completion or to their deadline.
    static DRIVER: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime");
}

/// Drives a plugin call's future on this thread's executor. Plugin calls
/// block their thread: the agent runs them on tokio's blocking pool; a
/// caller inside a multi-thread runtime's async context (a test, a bench)
/// gets `block_in_place` around it (a current-thread runtime cannot block).
fn drive<F: std::future::Future>(f: F) -> F::Output {
    let run = || DRIVER.with(|rt| rt.block_on(f));
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(run)
    } else {
        run()
    }
}

/// Why a call was cut short by the host rather than by a trap.
#[derive(Debug, thiserror::Error)]
pub enum Stalled {
    /// The deadline passed while the guest waited (in WASI or a host call).
    #[error("still blocked (in a WASI or host call) at its deadline")]
    Deadline,
    /// The agent is stopping for good.
    #[error("stopped: the agent is shutting down")]
    Aborted,
}

/// `call`, ended at `at` (with a small grace, so that a computing guest's
/// own epoch trap reports first) or when `abort` turns true.
async fn bounded<R>(
    at: Instant,
    abort: Option<tokio::sync::watch::Receiver<bool>>,
    call: impl std::future::Future<Output = wasmtime::Result<R>>,
) -> wasmtime::Result<R> {
    let stopped = async move {
        match abort {
            Some(mut a) => {
                let _ = a.wait_for(|v| *v).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let at = tokio::time::Instant::from_std(at) + 2 * EPOCH_TICK;
    tokio::select! {
        r = call => r,
        _ = tokio::time::sleep_until(at) => Err(Stalled::Deadline.into()),
        _ = stopped => Err(Stalled::Aborted.into()),
    }
}

/// Resources one call used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Fuel consumed.
    pub fuel: u64,
    /// Largest linear memory so far, bytes.
    pub peak_memory: usize,
    /// Host-call counters of the call.
    pub calls: host::CallStats,
}

/// A running plugin: its store and its exports.
pub struct Instance<B> {
    store: Store<HostState>,
    bindings: B,
}

impl<B> Instance<B> {
    /// Makes every later call of this instance end at once when `abort`
    /// turns true (the agent stopping for good), wherever the guest is.
    pub fn set_abort(&mut self, abort: tokio::sync::watch::Receiver<bool>) {
        self.store.data_mut().abort = Some(abort);
    }

    /// Runs `f` under the plugin's limits: `deadline` of wall-clock time and
    /// the configured fuel. The call ends at its deadline wherever the guest
    /// is: computing (an epoch trap), or waiting in WASI (the call's future
    /// is dropped); the host's own imports bound their waits by it too. A
    /// trap or an overrun becomes a [`Failure`] (the instance is then
    /// unusable and must be replaced).
    fn call<R>(
        &mut self,
        deadline: Duration,
        fuel_budget: Option<u64>,
        f: impl for<'a> FnOnce(&'a B, &'a mut Store<HostState>) -> BoxFuture<'a, wasmtime::Result<R>>,
    ) -> (Result<R, Failure>, Usage) {
        let fuel = self
            .store
            .data()
            .ctx
            .limits
            .fuel
            .unwrap_or(u64::MAX)
            .min(fuel_budget.unwrap_or(u64::MAX));
        let _ = self.store.set_fuel(fuel);
        self.store.set_epoch_deadline(1);
        let at = Instant::now() + deadline;
        let abort = self.store.data().abort.clone();
        self.store.data_mut().deadline = Some(at);
        self.store.data_mut().limiter.hit = false;
        self.store.data_mut().stats = Default::default();
        let span = self.store.data().ctx.span.clone();
        let start = Instant::now();
        let result =
            span.in_scope(|| drive(bounded(at, abort, f(&self.bindings, &mut self.store))));
        let elapsed = start.elapsed();
        self.store.data_mut().deadline = None;
        // Unmetered engines have no fuel to read: they used none.
        let used = match self.store.get_fuel() {
            Ok(left) => fuel.saturating_sub(left),
            Err(_) => 0,
        };
        let data = self.store.data();
        let usage = Usage {
            elapsed,
            fuel: used,
            peak_memory: data.limiter.peak,
            calls: data.stats,
        };
        let output = data.output.take();
        if !output.is_empty() {
            if let Some(suppressed) = data.ctx.log_limit.admit(crate::logging::Kind::Output) {
                let text = String::from_utf8_lossy(&output);
                let _g = span.enter();
                for line in text.lines().filter(|l| !l.trim().is_empty()).take(20) {
                    tracing::info!(target: "wdiamond::guest", suppressed, "output: {}", crate::logging::guest_text(line));
                }
            }
        }
        let result = result.map_err(|e| {
            let kind = match (e.downcast_ref::<Trap>(), e.downcast_ref::<Stalled>()) {
                (Some(Trap::Interrupt), _) | (_, Some(_)) => FailureKind::Timeout,
                (Some(Trap::OutOfFuel), _) => FailureKind::Fuel,
                _ if data.limiter.hit => FailureKind::Memory,
                _ => FailureKind::Trap,
            };
            let message = match (kind, e.downcast_ref::<Stalled>()) {
                (FailureKind::Timeout, Some(s)) => format!("{s} after {deadline:.1?}"),
                (FailureKind::Timeout, None) => {
                    format!("still running after {deadline:.1?}; interrupted")
                }
                (FailureKind::Fuel, _) => format!("used all of its {fuel} fuel"),
                (FailureKind::Memory, _) => {
                    format!("hit the memory cap of {} MiB", data.ctx.limits.memory >> 20)
                }
                _ => crate::logging::guest_text(format!("{e:#}").lines().next().unwrap_or("trap"))
                    .into_owned(),
            };
            Failure { kind, message }
        });
        (result, usage)
    }
}

/// The deadline for instantiation, `describe` and `configure`.
pub const SETUP_DEADLINE: Duration = Duration::from_secs(5);

impl<W: World> Instance<W> {
    /// `describe()`.
    pub fn describe(&mut self) -> Result<Description, Failure> {
        self.call(SETUP_DEADLINE, None, |b, s| b.describe(s)).0
    }

    /// `configure(config)`.
    pub fn configure(&mut self, config: &[ConfigEntry]) -> Result<Result<(), String>, Failure> {
        let config = config.to_vec();
        self.call(SETUP_DEADLINE, None, move |b, s| {
            Box::pin(async move { b.configure(s, &config).await })
        })
        .0
    }
}

impl Instance<CollectorPlugin> {
    /// The series this instance declared (resolved by the publication
    /// that reads its runs).
    pub fn series_mut(&mut self) -> &mut crate::series::SeriesTable {
        &mut self.store.data_mut().series
    }

    /// `collect()` within `deadline`.
    pub fn collect(
        &mut self,
        deadline: Duration,
    ) -> (Result<Result<MetricSet, String>, Failure>, Usage) {
        self.collect_with_fuel(deadline, None)
    }

    /// `collect()` within `deadline` and at most `fuel` (a tenant's
    /// remaining budget), besides the plugin's own fuel limit.
    pub fn collect_with_fuel(
        &mut self,
        deadline: Duration,
        fuel: Option<u64>,
    ) -> (Result<Result<MetricSet, String>, Failure>, Usage) {
        self.call(deadline, fuel, |b, s| {
            Box::pin(b.wdiamond_plugin_collector().call_collect(s))
        })
    }
}

impl Instance<HandlerPlugin> {
    /// `process(batch)` within `deadline`: the handler gets a handle on
    /// the batch, which stays in the host.
    pub fn process(
        &mut self,
        batch: impl Into<Batch>,
        deadline: Duration,
    ) -> (Result<Result<(), String>, Failure>, Usage) {
        let batch = batch.into();
        self.call(deadline, None, |b, s| {
            Box::pin(async move {
                let handle = s.data_mut().hand_over(batch)?;
                b.wdiamond_plugin_handler().call_process(s, handle).await
            })
        })
    }

    /// The batches the handler still holds whose metrics the host kept
    /// (its newest few), oldest first: what an at-least-once handler has
    /// sent but not yet seen confirmed.
    pub fn held_batches(&self) -> Vec<Batch> {
        self.store.data().held_batches()
    }

    /// `flush()` within `deadline`.
    pub fn flush(&mut self, deadline: Duration) -> (Result<Result<(), String>, Failure>, Usage) {
        self.call(deadline, None, |b, s| {
            Box::pin(b.wdiamond_plugin_handler().call_flush(s))
        })
    }
}
