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
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::config::ComponentRef;
use crate::host::{self, GuestOutput, HostState, Limiter, PluginContext};

mod call;
pub mod code_bound;
mod component_file;
pub mod contract;
mod epoch;
mod per_run;
pub mod python;
mod world;

pub use component_file::{read_component_file, MAX_COMPONENT_FILE};

pub use call::{Failure, FailureKind, Instance, Stalled, Usage, SETUP_DEADLINE};
pub use per_run::{CollectorPre, STATELESS_BUILTINS};
pub use world::{Handler, World};

use call::{bounded, drive, instantiated, setup_deadline};

/// One epoch tick: deadlines are counted in these.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The built-in components, embedded at build time.
mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

/// Names of the built-in components.
pub fn builtin_names() -> Vec<&'static str> {
    builtin::BUILTINS.iter().map(|(n, _, _)| *n).collect()
}

/// The SHA-256 of built-in component `name` (computed at build time).
pub fn builtin_digest(name: &str) -> Option<&'static str> {
    builtin::BUILTINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, d)| *d)
}

/// Directory holding the guests built with this binary, test-only ones too.
pub fn guest_wasm_dir() -> &'static Path {
    Path::new(env!("WDIAMOND_GUEST_WASM_DIR"))
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
    /// No fuel counting, and the instances come from the per-run pool: a
    /// collector instantiated for each run and dropped after it
    /// (`instance = "per-run"`, see [`per_run`]).
    PerRun,
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

/// One wasmtime engine and the linkers of the collector and handler worlds
/// for it (an exporter links as a handler).
#[doc(hidden)]
pub struct EngineSet {
    engine: Engine,
    collector_linker: Linker<HostState>,
    handler_linker: Linker<HostState>,
}

impl EngineSet {
    fn new(
        fuel: bool,
        pool: Option<wasmtime::PoolingAllocationConfig>,
    ) -> anyhow::Result<EngineSet> {
        let mut c = wasmtime::Config::new();
        c.epoch_interruption(true);
        c.consume_fuel(fuel);
        c.max_wasm_stack(1 << 20);
        if let Some(pool) = pool {
            c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
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
    /// The engine of per-run collectors, made when the first one loads
    /// (its pool reserves address space); the unmetered one if the pool
    /// could not be had.
    per_run: std::sync::OnceLock<Option<EngineSet>>,
    cache_dir: PathBuf,
    compiled: Mutex<HashMap<(ComponentRef, Metering), (Component, String)>>,
    /// Held while the Python runtime is had: many Python collectors loaded
    /// at once wait for one compile (~15 s of every core when the cache is
    /// cold) instead of each starting its own.
    python_once: Mutex<()>,
}

/// Why a component could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The file is not the one pinned by `sha256`.
    #[error("{path}: its SHA-256 is {actual}, but `sha256` pins {expected}: the file changed since it was pinned. If the new file is trusted, run `wdiamond inspect {path}` and set `sha256 = \"{actual}\"`")]
    DigestMismatch {
        /// The file.
        path: String,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// Anything else (unreadable, not a component, does not compile).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Runtime {
    /// Builds the engines (epoch interruption on both, fuel on one; see
    /// [`Metering`]) and registers them with the epoch ticker (which runs
    /// only while a call is in flight). Compiled
    /// components are cached in `cache_dir`.
    pub fn new(cache_dir: &Path) -> anyhow::Result<Arc<Self>> {
        let metered = EngineSet::new(true, None)?;
        let unmetered = EngineSet::new(false, None)?;
        epoch::register(&metered.engine);
        epoch::register(&unmetered.engine);
        Ok(Arc::new(Runtime {
            metered,
            unmetered,
            per_run: std::sync::OnceLock::new(),
            cache_dir: cache_dir.to_path_buf(),
            compiled: Mutex::new(HashMap::new()),
            python_once: Mutex::new(()),
        }))
    }

    fn engines(&self, m: Metering) -> &EngineSet {
        match m {
            Metering::Fuel => &self.metered,
            Metering::None => &self.unmetered,
            Metering::PerRun => self.per_run_engines(),
        }
    }

    /// The engine set a component was compiled for.
    fn engines_of(&self, c: &Component) -> &EngineSet {
        if Engine::same(c.engine(), &self.metered.engine) {
            &self.metered
        } else if Engine::same(c.engine(), &self.unmetered.engine) {
            &self.unmetered
        } else {
            self.per_run_engines()
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
        Ok(self.component_pinned(r, metering, None)?)
    }

    /// [`Runtime::component`], with the file's SHA-256 checked against
    /// `pin` (lowercase hex) before it is compiled or taken from a cache:
    /// a swapped file is never loaded.
    pub fn component_pinned(
        &self,
        r: &ComponentRef,
        metering: Metering,
        pin: Option<&str>,
    ) -> Result<Component, ComponentError> {
        let own = matches!(r, ComponentRef::Builtin(_));
        self.load(r, metering, pin, own)
    }

    /// [`Runtime::component_pinned`]; `own`: the agent's own component (a
    /// built-in, the Python runtime), compiled without the bounds a third
    /// party's code is measured against first ([`code_bound`]).
    fn load(
        &self,
        r: &ComponentRef,
        metering: Metering,
        pin: Option<&str>,
        own: bool,
    ) -> Result<Component, ComponentError> {
        let key = (r.clone(), metering);
        let pinned = |digest: &str| match pin {
            Some(p) if p != digest => Err(ComponentError::DigestMismatch {
                path: r.to_string(),
                expected: p.to_string(),
                actual: digest.to_string(),
            }),
            _ => Ok(()),
        };
        if let Some((c, digest)) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            pinned(digest)?;
            return Ok(c.clone());
        }
        if let ComponentRef::Python(script) = r {
            // The script is pinned; the runtime is the agent's own.
            python::read_script(script, pin)?;
            return self.python(metering);
        }
        // A built-in's digest was computed at build time: on a cache hit
        // its embedded bytes are never read (nor paged in).
        let (digest, bytes): (String, std::borrow::Cow<'static, [u8]>) = match r {
            ComponentRef::Builtin(name) => builtin::BUILTINS
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, b, d)| Ok::<_, anyhow::Error>((d.to_string(), inflate(b)?.into())))
                .ok_or_else(|| {
                    anyhow!(
                        "no built-in component named {name:?} (built-ins: {})",
                        builtin_names().join(", ")
                    )
                })??,
            ComponentRef::File(p) => {
                let b = read_component_file(p)?;
                (hex_sha256(&b), b.into())
            }
            // From the store, checked against its digest as it is read.
            ComponentRef::Oci(reference) => {
                let (b, hex) = crate::oci::Store::new(&self.cache_dir).component(reference)?;
                (hex, b.into())
            }
            ComponentRef::Python(_) => unreachable!("handled above"),
        };
        pinned(&digest)?;
        let component = self
            .compile_cached(&self.engines(metering).engine, &digest, &bytes, !own)
            .with_context(|| format!("loading {r}"))?;
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (component.clone(), digest));
        Ok(component)
    }

    /// The Python runtime component, which runs every Python collector
    /// (see [`python`]): compiled once and cached like any component.
    pub fn python(&self, metering: Metering) -> Result<Component, ComponentError> {
        let path = python::runtime_path().ok_or_else(|| anyhow!(python::not_installed()))?;
        let _one = self.python_once.lock().unwrap_or_else(|p| p.into_inner());
        self.load(&ComponentRef::File(path), metering, None, true)
    }

    fn compile_cached(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
        bounded: bool,
    ) -> anyhow::Result<Component> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let mut sha = Sha256::new();
        sha.update(h.finish().to_le_bytes());
        sha.update(env!("CARGO_PKG_VERSION").as_bytes());
        sha.update(digest.as_bytes());
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
        if bounded {
            code_bound::check(wasm).map_err(anyhow::Error::msg)?;
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
        let disk = crate::host::disk::Budget::for_plugin(&ctx);
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
            disk,
            stopping: false,
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
        let i = self
            .instance::<W>(component, ctx)
            .map_err(|e| format!("{e:#}"))?;
        configure_instance(i, &entries)
    }
}

/// `configure` called on a new instance: the instance, or why not.
fn configure_instance<W: World>(
    mut i: Instance<W>,
    entries: &[crate::bindings::types::ConfigEntry],
) -> Result<Instance<W>, String> {
    match i.configure(entries) {
        Ok(Ok(())) => Ok(i),
        Ok(Err(msg)) => Err(format!("the plugin rejected its configuration: {msg}")),
        Err(f) => Err(format!("configure failed: {f}")),
    }
}

/// A built-in component's wasm, from the deflated bytes embedded in the
/// binary (only a compile reads them: a warm cache never does).
fn inflate(deflated: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut wasm = Vec::with_capacity(deflated.len() * 3);
    std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(deflated), &mut wasm)
        .context("inflating an embedded built-in component")?;
    Ok(wasm)
}

/// The SHA-256 of `bytes`, in hex.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Most bytes the host lifts out of a plugin in one call: its memory cap
/// (at least 1 MiB).
pub fn max_lifted(memory: usize) -> usize {
    memory.max(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_builtin_inflates_to_the_component_its_digest_names() {
        assert!(builtin::BUILTINS.len() >= 30);
        for (name, deflated, digest) in builtin::BUILTINS {
            let wasm = inflate(deflated).unwrap();
            assert_eq!(hex_sha256(&wasm), *digest, "{name}");
            contract::check_component_bytes(&wasm).unwrap();
            assert!(deflated.len() < wasm.len(), "{name}");
        }
    }
}
