//! Loading: every enabled collector and every handler compiled (or taken
//! from the cache), described, checked against its `describe`, granted what
//! it may do, and configured — the resolved plugin set the supervisor
//! starts. Every problem is a configuration error, all reported at once.

mod steps;

use super::capabilities::grants_for;
use super::describe::{check_options, reserved_path};
use super::options::{collector_host_keys, overlay};
use super::tenant::Tenant;
use crate::bindings::collector::CollectorPlugin;
use crate::bindings::types::{ConfigEntry, Description};
use crate::config;
use crate::config::ConfigValue;
use crate::config::{
    CollectorConfig, ComponentRef, ConfigError, ConfigErrors, HandlerConfig, Instancing,
    PluginConfig,
};
use crate::host::tls::TlsSettings;
use crate::host::{HostFacts, PluginContext};
use crate::metric::Publication;
use crate::plugin::Handler;
use crate::plugin::{python, Instance, Metering, Runtime, World, STATELESS_BUILTINS};
use crate::queue::Spool;
use std::collections::HashMap;
use std::sync::Arc;
use steps::{compiled, described, tls_of};
use wasmtime::component::Component;

/// A collector ready to run.
pub struct LoadedCollector {
    /// Its configuration.
    pub config: CollectorConfig,
    /// What it said about itself.
    pub description: Description,
    /// Its compiled component.
    pub component: Component,
    /// The context every instance of it gets.
    pub ctx: Arc<PluginContext>,
    /// Path building and filters.
    pub publication: Publication,
    /// A configured instance (`None` for a per-run collector: its
    /// configuration was checked on one, dropped at once).
    pub instance: Option<Instance<CollectorPlugin>>,
    /// Whether its runs keep one instance or make one each.
    pub instancing: Instancing,
    /// Its tenant, if any.
    pub tenant: Option<Arc<Tenant>>,
}

impl LoadedCollector {
    /// Its instance, made (and configured) if it holds none: a per-run
    /// collector's, or one lost to a failure.
    pub fn instance_mut(
        &mut self,
        runtime: &Runtime,
    ) -> Result<&mut Instance<CollectorPlugin>, String> {
        if self.instance.is_none() {
            self.instance =
                Some(runtime.configured::<CollectorPlugin>(&self.component, self.ctx.clone())?);
        }
        Ok(self.instance.as_mut().expect("made above"))
    }
}

/// From how many enabled collectors the stateless built-ins run per run by
/// default. Below, persistent instances cost less than the pool's code and
/// bookkeeping (about 1 MB of RSS, `scripts/footprint default --instance`);
/// above, a held instance's ~60 KB each decides (BENCHMARKS.md).
pub const PER_RUN_FROM: usize = 64;

/// How a collector's instance lives: its section's `instance`, else — when
/// the agent runs [`PER_RUN_FROM`] collectors or more (`many`) — per run
/// for a built-in that keeps no state ([`STATELESS_BUILTINS`]) and is not
/// counted in fuel (the per-run pool's engine counts none), else
/// persistent. `Err` names what does not go together.
pub fn instancing(c: &CollectorConfig, metered: bool, many: bool) -> Result<Instancing, String> {
    let stateless = matches!(&c.plugin.component, ComponentRef::Builtin(n) if STATELESS_BUILTINS.contains(&n.as_str()));
    match c.instance {
        None if many && stateless && !metered => Ok(Instancing::PerRun),
        None | Some(Instancing::Persistent) => Ok(Instancing::Persistent),
        Some(Instancing::PerRun) if matches!(c.plugin.component, ComponentRef::Python(_)) => Err(
            "`instance = \"per-run\"` is for compiled components: a Python collector's interpreter takes milliseconds to make, so it is kept from run to run; remove the line".into(),
        ),
        Some(Instancing::PerRun) if metered => Err(
            "`instance = \"per-run\"` does not go with a fuel limit (`limits.fuel` or the tenant's `max_fuel_per_interval`): a collector counted in fuel keeps its instance; remove one of the two".into(),
        ),
        Some(Instancing::PerRun) => Ok(Instancing::PerRun),
    }
}

/// A handler ready to run.
pub struct LoadedHandler {
    /// Its configuration.
    pub config: HandlerConfig,
    /// What it said about itself.
    pub description: Description,
    /// Its compiled component.
    pub component: Component,
    /// The context every instance of it gets.
    pub ctx: Arc<PluginContext>,
    /// A configured instance.
    pub instance: Instance<Handler>,
    /// Its spool, once [`open_spools`] opened it.
    pub spool: Option<Arc<Spool>>,
}

/// Opens (and locks) every handler's spool before the agent starts: a
/// spool directory another agent holds, or one that cannot be created, is
/// a configuration error naming `spool_dir` (not two agents interleaving).
/// `check` does not call it, so it works beside a running agent.
pub fn open_spools(loaded: &mut Loaded) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    for h in &mut loaded.handlers {
        match crate::queue::open_spool(&h.config) {
            None => {}
            Some(Ok(s)) => h.spool = Some(s),
            Some(Err((dir, e))) => errors.push(h.config.plugin.error_at(
                "spool_dir",
                format!("cannot open the spool {}: {e}", dir.display()),
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Every plugin of a configuration, loaded and configured.
pub struct Loaded {
    /// Enabled collectors.
    pub collectors: Vec<LoadedCollector>,
    /// Handlers, in `server.handlers` order.
    pub handlers: Vec<LoadedHandler>,
}

#[allow(clippy::too_many_arguments)]
fn context(
    name: &str,
    kind: &str,
    grants: crate::grants::Grants,
    p: &PluginConfig,
    config: Vec<ConfigEntry>,
    hostname: String,
    interval: f64,
    facts: &HostFacts,
    script: Option<Arc<python::Script>>,
    tls: Option<Arc<TlsSettings>>,
) -> Arc<PluginContext> {
    let mut grants = grants;
    if let Some(s) = &script {
        s.grant_imports(&mut grants);
    }
    let mut limits = p.limits.clone();
    if !matches!(p.component, ComponentRef::Builtin(_)) {
        // A third-party plugin's disk budget in its `directories` grants.
        limits
            .disk
            .get_or_insert(crate::host::disk::DEFAULT_DISK_MB << 20);
        limits
            .disk_files
            .get_or_insert(crate::host::disk::DEFAULT_DISK_FILES);
    }
    Arc::new(PluginContext {
        name: name.to_string(),
        grants,
        limits,
        config,
        hostname,
        interval,
        facts: facts.clone(),
        span: tracing::info_span!("plugin", kind, name = %name),
        log_limit: Default::default(),
        script,
        tls,
    })
}

/// Loads every enabled collector and every handler: compiles (or takes
/// from the cache) their components, checks their options against their
/// `describe`, grants what they may do, and configures an instance of
/// each. Every problem found is returned, as configuration errors.
pub fn load(
    runtime: &Runtime,
    config: &config::Config,
    facts: &HostFacts,
) -> Result<Loaded, ConfigErrors> {
    let many = config.collectors.iter().filter(|c| c.enabled).count() >= PER_RUN_FROM;
    // Per-run collectors hold no mappings between runs.
    let persistent = config
        .collectors
        .iter()
        .filter(|c| {
            c.enabled
                && instancing(c, c.plugin.limits.fuel.is_some(), many) != Ok(Instancing::PerRun)
        })
        .count();
    let plugins = persistent + config.handlers.len();
    if let Err(message) = crate::memory::check_mapping_room(plugins) {
        let location = config::Location {
            file: config.source.clone(),
            line: 0,
            column: 0,
        };
        let key = String::new();
        return Err(ConfigErrors(vec![ConfigError {
            location,
            key,
            message,
        }]));
    }
    let mut errors = Vec::new();
    let mut facts = facts.clone();
    if facts.fs_root.is_none() {
        facts.fs_root = config.server.host_root.clone();
    }
    let tenants: HashMap<String, Arc<Tenant>> = config
        .tenants
        .iter()
        .map(|t| (t.name.clone(), Tenant::new(t.clone())))
        .collect();
    let mut collectors = Vec::new();
    for c in config.collectors.iter().filter(|c| c.enabled) {
        let tenant = c.tenant.as_ref().and_then(|t| tenants.get(t)).cloned();
        let health = config.server.health_path.as_str();
        match load_collector(runtime, c, &facts, tenant, health, many, &mut errors) {
            Some(l) => collectors.push(l),
            None => continue,
        }
    }
    let mut handlers = Vec::new();
    for h in &config.handlers {
        if let Some(l) = load_handler(runtime, h, &facts, &mut errors) {
            handlers.push(l);
        }
    }
    if errors.is_empty() {
        Ok(Loaded {
            collectors,
            handlers,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Loads one plugin of world `W`: its compiled component, its `describe`
/// (checked), its options checked against it, its configuration
/// ([`overlay`] of `host_keys`), its grants, and a configured instance.
/// Every problem goes to `errors`.
#[allow(clippy::too_many_arguments)]
fn load_plugin<W: World>(
    runtime: &Runtime,
    p: &PluginConfig,
    metering: Metering,
    host_keys: impl FnOnce(&Description) -> Vec<(String, ConfigValue)>,
    hostname: String,
    interval: f64,
    facts: &HostFacts,
    errors: &mut Vec<ConfigError>,
) -> Option<(Component, Description, Arc<PluginContext>, Instance<W>)> {
    let (component, script) = compiled::<W>(runtime, p, metering, errors)?;
    let description = described::<W>(runtime, p, &component, &script, facts, errors)?;
    let before = errors.len();
    check_options(p, &description, errors);
    let mut host = host_keys(&description);
    let tls = tls_of(p, &mut host, errors);
    let entries = overlay(&description, host, &p.options);
    let grants = match grants_for(p, &description, &entries) {
        Ok(g) => g,
        Err(e) => {
            errors.push(p.error_at("grants", e));
            return None;
        }
    };
    if errors.len() > before {
        return None;
    }
    let ctx = context(
        &p.name,
        W::KIND,
        grants,
        p,
        entries,
        hostname,
        interval,
        facts,
        script,
        tls,
    );
    let instance = runtime
        .configured::<W>(&component, ctx.clone())
        .map_err(|e| {
            let key = named_option(&e, p).unwrap_or_default();
            errors.push(p.error_at(&key, e))
        })
        .ok()?;
    Some((component, description, ctx, instance))
}

/// The option a plugin's configuration error is about, when its message
/// names one the operator set in backquotes (`` `port` must be … ``), so
/// that the error points at that line.
fn named_option(message: &str, p: &PluginConfig) -> Option<String> {
    let rest = message.split_once('`')?.1;
    let key = rest.split_once('`')?.0;
    p.option_locations
        .contains_key(key)
        .then(|| key.to_string())
}

fn load_collector(
    runtime: &Runtime,
    c: &CollectorConfig,
    facts: &HostFacts,
    tenant: Option<Arc<Tenant>>,
    health_path: &str,
    many: bool,
    errors: &mut Vec<ConfigError>,
) -> Option<LoadedCollector> {
    let p = &c.plugin;
    // Fuel is counted only where a limit needs it (see `Metering`).
    let metered =
        p.limits.fuel.is_some() || tenant.as_ref().is_some_and(|t| t.config.max_fuel.is_some());
    let instancing = match instancing(c, metered, many) {
        Ok(i) => i,
        Err(e) => {
            errors.push(p.error_at("instance", e));
            return None;
        }
    };
    let metering = match instancing {
        Instancing::PerRun => Metering::PerRun,
        Instancing::Persistent => Metering::for_limit(metered),
    };
    let hostname = match &c.hostname {
        Some(h) => Some(h.clone()),
        None => crate::hostname::resolve(c.hostname_method),
    };
    let (component, description, ctx, instance) = load_plugin::<CollectorPlugin>(
        runtime,
        p,
        metering,
        |d| collector_host_keys(c, d),
        hostname.clone().unwrap_or_default(),
        c.interval,
        facts,
        errors,
    )?;
    let default_path = if description.name.is_empty() {
        p.name.clone()
    } else {
        description.name.clone()
    };
    if let Some(message) = reserved_path(c, tenant.is_some(), &default_path, health_path) {
        errors.push(p.error_at("component", message));
        return None;
    }
    let publication = Publication {
        paths: c.paths(hostname.as_deref(), &default_path),
        filter: c.filter(),
        ttl: (c.interval * c.ttl_multiplier as f64).min(u32::MAX as f64) as u32,
        collector: p.name.clone(),
        tenant: tenant
            .as_ref()
            .map(|t| (t.config.name.clone(), t.config.prefix.clone())),
    };
    // A per-run collector's configuration was checked on `instance`; it
    // holds no pool slot until its first run.
    let instance = (instancing == Instancing::Persistent).then_some(instance);
    Some(LoadedCollector {
        config: c.clone(),
        description,
        component,
        ctx,
        publication,
        instance,
        instancing,
        tenant,
    })
}

fn load_handler(
    runtime: &Runtime,
    h: &HandlerConfig,
    facts: &HostFacts,
    errors: &mut Vec<ConfigError>,
) -> Option<LoadedHandler> {
    let p = &h.plugin;
    let metering = Metering::for_limit(p.limits.fuel.is_some());
    let (component, description, ctx, instance) = load_plugin::<Handler>(
        runtime,
        p,
        metering,
        |_| Vec::new(),
        crate::hostname::gethostname(),
        0.0,
        facts,
        errors,
    )?;
    if let Some(e) = check_listen(h, instance.serves()) {
        errors.push(e);
        return None;
    }
    Some(LoadedHandler {
        config: h.clone(),
        description,
        component,
        ctx,
        instance,
        spool: None,
    })
}

/// An exporter is served where `listen` says, which a third-party one
/// must have granted; `listen` on a handler that serves no page is a
/// mistake.
fn check_listen(h: &HandlerConfig, serves: bool) -> Option<ConfigError> {
    let p = &h.plugin;
    let at = |l: &crate::config::Listen, message: String| ConfigError {
        location: l.location.clone(),
        key: format!("{}.listen", p.section),
        message,
    };
    match (&h.listen, serves) {
        (None, true) => Some(p.error_at("",
            format!("{} is an exporter (it renders a page for the host to serve) but has no address: add `listen = \"127.0.0.1:9108\"` (and `listen_path`, default \"/metrics\") to [{}]", p.component, p.section),
        )),
        (Some(l), false) => Some(at(
            l,
            format!("{} serves no page (it does not export `exposition`): `listen` is for an exporter such as the built-in `prometheus`", p.component),
        )),
        (Some(l), true) if !matches!(p.component, ComponentRef::Builtin(_)) => p
            .grants
            .check_listen(l.address)
            .err()
            .map(|d| at(l, d.to_string())),
        _ => None,
    }
}
