//! The agent: loads plugins from a [`Config`], runs every collector on its
//! schedule, routes metrics through bounded queues to every handler, and
//! handles reload and shutdown.
//!
//! One collector's failure never touches another: each runs in its own
//! task with its own store; a run that traps or overruns is logged in the
//! collector's span, counted, and the collector is re-instantiated (with
//! backoff) while all others keep their schedule.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmtime::component::Component;

use crate::bindings::collector::CollectorPlugin;
use crate::bindings::handler::HandlerPlugin;
use crate::bindings::types::{Capability, ConfigEntry, ConfigValue, Description, MetricKind};
use crate::config::{
    self, CollectorConfig, ComponentRef, ConfigError, ConfigErrors, HandlerConfig, PluginConfig,
};
use crate::host::info::wall_clock;
use crate::host::{HostFacts, PluginContext};
use crate::logging::{guest_text, Kind as LogKind};
use crate::metric::{Filter, PathBuilder, Publication};
use crate::plugin::{Failure, Instance, Metering, Runtime};
use crate::queue::{Queue, Spool};
use crate::schedule::Schedule;

/// Counters of one plugin, for logs and self-metrics.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Runs started.
    pub runs: AtomicU64,
    /// Runs that returned an error result.
    pub guest_errors: AtomicU64,
    /// Runs that trapped (any kind).
    pub failures: AtomicU64,
    /// Of those: deadline overruns.
    pub timeouts: AtomicU64,
    /// Of those: out of fuel.
    pub fuel_exhausted: AtomicU64,
    /// Of those: memory cap hit.
    pub memory_exhausted: AtomicU64,
    /// Host calls denied.
    pub denials: AtomicU64,
    /// Metrics published (collectors) or delivered (handlers).
    pub metrics: AtomicU64,
    /// Metrics rejected by the host's checks.
    pub rejected: AtomicU64,
    /// Metrics dropped (over `max_metrics`, a tenant quota, or queue overflow).
    pub dropped: AtomicU64,
    /// Runs skipped because the tenant's fuel quota was used up.
    pub quota_skips: AtomicU64,
    /// Wall-clock time of the last run, microseconds.
    pub last_duration_us: AtomicU64,
    /// Fuel used by the last run.
    pub last_fuel: AtomicU64,
    /// Largest linear memory seen, bytes.
    pub peak_memory: AtomicU64,
    /// Start times (wall clock) of the latest runs, at most 1,000.
    pub run_starts: Mutex<VecDeque<f64>>,
}

/// A tenant's quota state, shared by its collectors.
#[derive(Debug)]
pub struct Tenant {
    /// Its configuration.
    pub config: config::TenantConfig,
    window: Mutex<TenantWindow>,
}

#[derive(Debug, Default)]
struct TenantWindow {
    start: f64,
    metrics: u64,
    fuel: u64,
    warned: bool,
}

impl Tenant {
    /// A tenant with fresh quotas.
    pub fn new(config: config::TenantConfig) -> Arc<Self> {
        Arc::new(Tenant {
            config,
            window: Mutex::new(TenantWindow::default()),
        })
    }

    fn window(&self, now: f64) -> std::sync::MutexGuard<'_, TenantWindow> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.start == 0.0 || now - w.start >= self.config.interval || now < w.start {
            *w = TenantWindow {
                start: now,
                ..Default::default()
            };
        }
        w
    }

    /// The fuel left in this window (`None`: no fuel quota).
    pub fn fuel_left(&self, now: f64) -> Option<u64> {
        let max = self.config.max_fuel?;
        Some(max.saturating_sub(self.window(now).fuel))
    }

    /// Records fuel used.
    pub fn spend_fuel(&self, now: f64, fuel: u64) {
        let mut w = self.window(now);
        w.fuel = w.fuel.saturating_add(fuel);
    }

    /// How many of `n` metrics the quota lets through now; returns that
    /// and whether this is the first refusal of the window.
    pub fn take_metrics(&self, now: f64, n: u64) -> (u64, bool) {
        let Some(max) = self.config.max_metrics else {
            return (n, false);
        };
        let mut w = self.window(now);
        let ok = n.min(max.saturating_sub(w.metrics));
        w.metrics += ok;
        let first = ok < n && !std::mem::replace(&mut w.warned, true);
        (ok, first)
    }
}

impl PluginStats {
    fn record_run(&self, start: f64, usage: &crate::plugin::Usage) {
        self.last_duration_us
            .store(usage.elapsed.as_micros() as u64, Ordering::Relaxed);
        self.last_fuel.store(usage.fuel, Ordering::Relaxed);
        self.peak_memory
            .fetch_max(usage.peak_memory as u64, Ordering::Relaxed);
        let mut starts = self.run_starts.lock().unwrap_or_else(|p| p.into_inner());
        if starts.len() >= 1000 {
            starts.pop_front();
        }
        starts.push_back(start);
    }

    /// Start times of the latest runs (wall clock, seconds).
    pub fn starts(&self) -> Vec<f64> {
        self.run_starts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    fn count_failure(&self, f: &Failure) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let c = match f.kind {
            crate::plugin::FailureKind::Timeout => &self.timeouts,
            crate::plugin::FailureKind::Fuel => &self.fuel_exhausted,
            crate::plugin::FailureKind::Memory => &self.memory_exhausted,
            crate::plugin::FailureKind::Trap => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

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
    /// A configured instance.
    pub instance: Instance<CollectorPlugin>,
    /// Its tenant, if any.
    pub tenant: Option<Arc<Tenant>>,
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
    pub instance: Instance<HandlerPlugin>,
}

/// Every plugin of a configuration, loaded and configured.
pub struct Loaded {
    /// Enabled collectors.
    pub collectors: Vec<LoadedCollector>,
    /// Handlers, in `server.handlers` order.
    pub handlers: Vec<LoadedHandler>,
}

/// Most options a plugin may describe.
pub const MAX_OPTIONS: usize = 1000;
/// Most capabilities a plugin may ask for.
pub const MAX_CAPABILITIES: usize = 100;
/// Longest summary, bytes.
pub const MAX_SUMMARY: usize = 8192;

/// Checks what a (possibly hostile) plugin said about itself.
pub fn check_description(d: &Description) -> Result<(), String> {
    let shown = |s: &str| format!("{:?}", s.chars().take(40).collect::<String>());
    if crate::metric::check_name(&d.name).is_err() || d.name.contains('.') {
        return Err(format!(
            "its name {} is not a metric path segment (letters, digits, _ -)",
            shown(&d.name)
        ));
    }
    if d.version.len() > 64 || d.version.chars().any(char::is_control) {
        return Err(format!(
            "its version {} is not a version",
            shown(&d.version)
        ));
    }
    if d.summary.len() > MAX_SUMMARY {
        return Err(format!(
            "its summary is {} bytes, more than {MAX_SUMMARY}",
            d.summary.len()
        ));
    }
    if d.options.len() > MAX_OPTIONS {
        return Err(format!(
            "it lists {} options, more than {MAX_OPTIONS}",
            d.options.len()
        ));
    }
    for o in &d.options {
        if o.key.is_empty()
            || o.key.len() > 128
            || !o
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "option key {} is not a TOML bare key",
                shown(&o.key)
            ));
        }
        if o.help.len() > 1024 {
            return Err(format!(
                "the help of option {} is longer than 1024 bytes",
                o.key
            ));
        }
    }
    if d.capabilities.len() > MAX_CAPABILITIES {
        return Err(format!(
            "it asks for {} capabilities, more than {MAX_CAPABILITIES}",
            d.capabilities.len()
        ));
    }
    Ok(())
}

fn err_at(p: &PluginConfig, key: &str, message: String) -> ConfigError {
    let location = p
        .option_locations
        .get(key)
        .cloned()
        .unwrap_or_else(|| p.location.clone());
    let key = if key.is_empty() {
        p.section.clone()
    } else {
        format!("{}.{key}", p.section)
    };
    ConfigError {
        location,
        key,
        message,
    }
}

/// Fills `{key}` (or `{key|hostport}`, the `host:port` of a URL value) in a
/// capability with the plugin's config; a list value gives one capability
/// per item.
pub fn substitute(template: &str, entries: &[ConfigEntry]) -> Vec<String> {
    let Some(open) = template.find('{') else {
        return vec![template.to_string()];
    };
    let Some(close) = template[open..].find('}').map(|c| open + c) else {
        return vec![template.to_string()];
    };
    let spec = &template[open + 1..close];
    let (key, modifier) = spec.split_once('|').unwrap_or((spec, ""));
    let values: Vec<String> = match entries
        .iter()
        .rev()
        .find(|e| e.key == key)
        .map(|e| &e.value)
    {
        Some(ConfigValue::TextList(l)) => l.clone(),
        Some(v) => vec![config::value_text(v)],
        None => vec![String::new()],
    };
    let mut out = Vec::new();
    for v in values {
        let v = if modifier == "hostport" {
            url_host_port(&v)
        } else {
            v
        };
        let filled = format!("{}{}{}", &template[..open], v, &template[close + 1..]);
        out.extend(substitute(&filled, entries));
    }
    out
}

/// `host:port` of an `http://host[:port]/...` URL (port 80 by default).
fn url_host_port(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or_default();
    if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    }
}

/// Grants of a plugin: what the config says, plus, for a built-in
/// component, what it asks for in `describe` (with `{key}` filled in).
fn grants_for(
    p: &PluginConfig,
    d: &Description,
    entries: &[ConfigEntry],
) -> Result<crate::grants::Grants, String> {
    let mut g = p.grants.clone();
    let builtin = matches!(p.component, ComponentRef::Builtin(_));
    for cap in &d.capabilities {
        let (wanted, key) = match cap {
            Capability::ReadFiles(s) => (substitute(s, entries), "files"),
            Capability::FilesystemStats(s) => (substitute(s, entries), "statvfs"),
            Capability::RunCommand(s) => (substitute(s, entries), "commands"),
            Capability::Connect(s) => (substitute(s, entries), "connect"),
            Capability::WriteDirectory(k) => {
                let file = entries
                    .iter()
                    .rev()
                    .find(|e| e.key == *k)
                    .map(|e| config::value_text(&e.value))
                    .unwrap_or_default();
                let dir = Path::new(&file)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                (vec![dir.to_string_lossy().into_owned()], "directories")
            }
        };
        if !builtin {
            tracing::info!(plugin = %p.name, "asks for {key} {wanted:?}; granted only if listed in [{}.grants] {key}", p.section);
            continue;
        }
        for wanted in wanted {
            match key {
                "files" => g.files.push(wanted),
                "statvfs" => g.statvfs.push(wanted),
                "commands" => g.commands.push(vec![wanted, "**".into()]),
                "connect" => {
                    // A capability filled from a malformed value is no grant.
                    if crate::grants::parse_socket(&wanted).is_ok() {
                        g.connect.push(wanted);
                    }
                }
                _ => {
                    if !wanted.is_empty() {
                        std::fs::create_dir_all(&wanted)
                            .map_err(|e| format!("creating the directory {wanted}: {e}"))?;
                        g.directories.push(PathBuf::from(wanted));
                    }
                }
            }
        }
    }
    g.build(&p.section)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &str, v: ConfigValue) -> ConfigEntry {
        ConfigEntry {
            key: k.into(),
            value: v,
        }
    }

    #[test]
    fn capabilities_are_filled_from_config() {
        let e = vec![
            entry("host", ConfigValue::TextList(vec!["a".into(), "b".into()])),
            entry("port", ConfigValue::Integer(2003)),
            entry("url", ConfigValue::Text("http://example.com/x".into())),
        ];
        assert_eq!(
            substitute("tcp:{host}:{port}", &e),
            vec!["tcp:a:2003", "tcp:b:2003"]
        );
        assert_eq!(
            substitute("tcp:{url|hostport}", &e),
            vec!["tcp:example.com:80"]
        );
        assert_eq!(substitute("/proc/stat", &e), vec!["/proc/stat"]);
    }
}

fn option_defaults(d: &Description) -> Vec<(String, ConfigValue)> {
    d.options
        .iter()
        .map(|o| (o.key.clone(), o.default.clone()))
        .collect()
}

fn check_options(p: &PluginConfig, d: &Description, errors: &mut Vec<ConfigError>) {
    for (key, _) in &p.options {
        if !d.options.iter().any(|o| o.key == *key) {
            let mut known: Vec<&str> = d.options.iter().map(|o| o.key.as_str()).collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            errors.push(err_at(p, key, format!("unknown key: `{}` has no such option (its options: {known}; host keys are listed in the README)", d.name)));
        }
    }
}

fn context(
    name: &str,
    kind: &str,
    grants: crate::grants::Grants,
    p: &PluginConfig,
    config: Vec<ConfigEntry>,
    hostname: String,
    interval: f64,
    facts: &HostFacts,
) -> Arc<PluginContext> {
    Arc::new(PluginContext {
        name: name.to_string(),
        grants,
        limits: p.limits.clone(),
        config,
        hostname,
        interval,
        facts: facts.clone(),
        span: tracing::info_span!("plugin", kind, name = %name),
        log_limit: Default::default(),
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
        match load_collector(runtime, c, &facts, tenant, &mut errors) {
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

fn component_and_description<B>(
    runtime: &Runtime,
    p: &PluginConfig,
    metering: Metering,
    facts: &HostFacts,
    errors: &mut Vec<ConfigError>,
    instantiate: impl Fn(&Runtime, &Component, Arc<PluginContext>) -> anyhow::Result<Instance<B>>,
    describe: impl Fn(&mut Instance<B>) -> Result<Description, Failure>,
) -> Option<(Component, Description)> {
    let component = match runtime.component(&p.component, metering) {
        Ok(c) => c,
        Err(e) => {
            errors.push(err_at(p, "component", format!("{e:#}")));
            return None;
        }
    };
    let probe_ctx = context(
        &p.name,
        "probe",
        Default::default(),
        p,
        Vec::new(),
        String::new(),
        0.0,
        facts,
    );
    let described = instantiate(runtime, &component, probe_ctx)
        .map_err(|e| format!("{e:#}"))
        .and_then(|mut i| describe(&mut i).map_err(|e| e.to_string()));
    match described.and_then(|d| {
        check_description(&d)
            .map(|_| d)
            .map_err(|e| format!("it describes itself badly: {e}"))
    }) {
        Ok(d) => Some((component, d)),
        Err(e) => {
            errors.push(err_at(
                p,
                "component",
                format!("{} does not describe itself: {e}", p.component),
            ));
            None
        }
    }
}

fn load_collector(
    runtime: &Runtime,
    c: &CollectorConfig,
    facts: &HostFacts,
    tenant: Option<Arc<Tenant>>,
    errors: &mut Vec<ConfigError>,
) -> Option<LoadedCollector> {
    let p = &c.plugin;
    // Fuel is counted only where a limit needs it (see `Metering`).
    let metering = Metering::for_limit(
        p.limits.fuel.is_some() || tenant.as_ref().is_some_and(|t| t.config.max_fuel.is_some()),
    );
    let (component, description) = component_and_description(
        runtime,
        p,
        metering,
        facts,
        errors,
        Runtime::collector,
        Instance::<CollectorPlugin>::describe,
    )?;
    let before = errors.len();
    check_options(p, &description, errors);
    let entries = c.entries(&option_defaults(&description));
    let grants = match grants_for(p, &description, &entries) {
        Ok(g) => g,
        Err(e) => {
            errors.push(err_at(p, "grants", e));
            return None;
        }
    };
    if errors.len() > before {
        return None;
    }
    let hostname = match &c.hostname {
        Some(h) => Some(h.clone()),
        None => crate::hostname::resolve(c.hostname_method),
    };
    let ctx = context(
        &p.name,
        "collector",
        grants,
        p,
        entries,
        hostname.clone().unwrap_or_default(),
        c.interval,
        facts,
    );
    let instance = configured_collector(runtime, &component, ctx.clone())
        .map_err(|e| errors.push(err_at(p, "", e)))
        .ok()?;
    let default_path = if description.name.is_empty() {
        p.name.clone()
    } else {
        description.name.clone()
    };
    // A third-party plugin never takes a built-in's paths by its own say.
    if matches!(p.component, ComponentRef::File(_))
        && c.path.is_none()
        && BUILTIN_PATHS.contains(&default_path.as_str())
    {
        errors.push(err_at(
            p,
            "component",
            format!(
                "{} is not built in, but describes itself as {default_path:?}, the path of a built-in collector: set `path` in [{}] to say where it publishes (`path = {default_path:?}` to publish there on purpose)",
                p.component, p.section
            ),
        ));
        return None;
    }
    let publication = Publication {
        paths: PathBuilder::new(c, hostname.as_deref(), &default_path),
        filter: Filter::new(c),
        ttl: (c.interval * c.ttl_multiplier as f64).min(u32::MAX as f64) as u32,
        collector: p.name.clone(),
        tenant: tenant
            .as_ref()
            .map(|t| (t.config.name.clone(), t.config.prefix.clone())),
    };
    Some(LoadedCollector {
        config: c.clone(),
        description,
        component,
        ctx,
        publication,
        instance,
        tenant,
    })
}

/// Instantiates and configures a collector.
pub fn configured_collector(
    runtime: &Runtime,
    component: &Component,
    ctx: Arc<PluginContext>,
) -> Result<Instance<CollectorPlugin>, String> {
    let entries = ctx.config.clone();
    let mut i = runtime
        .collector(component, ctx)
        .map_err(|e| format!("{e:#}"))?;
    match i.configure(&entries) {
        Ok(Ok(())) => Ok(i),
        Ok(Err(msg)) => Err(format!("the plugin rejected its configuration: {msg}")),
        Err(f) => Err(format!("configure failed: {f}")),
    }
}

/// Instantiates and configures a handler.
pub fn configured_handler(
    runtime: &Runtime,
    component: &Component,
    ctx: Arc<PluginContext>,
) -> Result<Instance<HandlerPlugin>, String> {
    let entries = ctx.config.clone();
    let mut i = runtime
        .handler(component, ctx)
        .map_err(|e| format!("{e:#}"))?;
    match i.configure(&entries) {
        Ok(Ok(())) => Ok(i),
        Ok(Err(msg)) => Err(format!("the plugin rejected its configuration: {msg}")),
        Err(f) => Err(format!("configure failed: {f}")),
    }
}

fn load_handler(
    runtime: &Runtime,
    h: &HandlerConfig,
    facts: &HostFacts,
    errors: &mut Vec<ConfigError>,
) -> Option<LoadedHandler> {
    let p = &h.plugin;
    let metering = Metering::for_limit(p.limits.fuel.is_some());
    let (component, description) = component_and_description(
        runtime,
        p,
        metering,
        facts,
        errors,
        Runtime::handler,
        Instance::<HandlerPlugin>::describe,
    )?;
    let before = errors.len();
    check_options(p, &description, errors);
    let mut entries: Vec<ConfigEntry> = option_defaults(&description)
        .into_iter()
        .map(|(key, value)| ConfigEntry { key, value })
        .collect();
    for (k, v) in &p.options {
        entries.retain(|e| e.key != *k);
        entries.push(ConfigEntry {
            key: k.clone(),
            value: v.clone(),
        });
    }
    let grants = match grants_for(p, &description, &entries) {
        Ok(g) => g,
        Err(e) => {
            errors.push(err_at(p, "grants", e));
            return None;
        }
    };
    if errors.len() > before {
        return None;
    }
    let ctx = context(
        &p.name,
        "handler",
        grants,
        p,
        entries,
        crate::hostname::gethostname(),
        0.0,
        facts,
    );
    let instance = configured_handler(runtime, &component, ctx.clone())
        .map_err(|e| errors.push(err_at(p, "", e)))
        .ok()?;
    Some(LoadedHandler {
        config: h.clone(),
        description,
        component,
        ctx,
        instance,
    })
}

// ---------------------------------------------------------------------------
// Routing

/// The default metric paths of the built-in collectors (their `describe`
/// names): a component that is not built in may publish there only when
/// the operator sets `path` (a test checks the list against the built-ins).
pub const BUILTIN_PATHS: &[&str] = &[
    "cpu",
    "memory",
    "loadavg",
    "network",
    "diskspace",
    "iostat",
    "vmstat",
    "sockets",
    "tcp",
    "udp",
    "proc",
    "uptime",
    "entropy",
    "files",
    "interrupts",
    "softirq",
    "netstat",
    "redis",
    "memcached",
    "nginx",
    "ceph",
];

/// Where collectors send their metrics: the current handlers' queues.
pub type Router = Arc<RwLock<Vec<Arc<Queue>>>>;

// ---------------------------------------------------------------------------
// Tasks

fn timestamp_now(facts: &HostFacts) -> f64 {
    match &facts.now {
        Some(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        None => wall_clock(),
    }
}

/// Runs one collection on `instance` (taken and given back), publishing to
/// `router`. Returns the instance if it is still usable.
///
/// The guest's output is checked and turned into lines on the same blocking
/// thread, right after the guest returns: the columns are still in that
/// core's cache, and the async workers never run that work.
pub async fn run_collection(
    runtime: &Arc<Runtime>,
    lc: &Arc<LoadedCollectorShared>,
    instance: Option<Instance<CollectorPlugin>>,
    deadline: Duration,
    router: &Router,
    stats: &Arc<PluginStats>,
) -> Result<Option<Instance<CollectorPlugin>>, String> {
    let span = lc.ctx.span.clone();
    let mut instance = match instance {
        Some(i) => i,
        None => {
            let (rt, comp, ctx) = (runtime.clone(), lc.component.clone(), lc.ctx.clone());
            match tokio::task::spawn_blocking(move || configured_collector(&rt, &comp, ctx)).await {
                Ok(Ok(mut i)) => {
                    span.in_scope(|| tracing::info!("re-instantiated"));
                    if let Some(a) = &lc.abort {
                        i.set_abort(a.clone());
                    }
                    i
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(format!("instantiation task failed: {e}")),
            }
        }
    };
    let start = timestamp_now(&lc.ctx.facts);
    let fuel_left = lc.tenant.as_ref().and_then(|t| t.fuel_left(start));
    if fuel_left == Some(0) {
        stats.quota_skips.fetch_add(1, Ordering::Relaxed);
        span.in_scope(|| {
            tracing::warn!(
                "skipping this run: the tenant's max_fuel_per_interval is used up for this window"
            )
        });
        return Ok(Some(instance));
    }
    stats.runs.fetch_add(1, Ordering::Relaxed);
    let (shared, run_stats) = (lc.clone(), stats.clone());
    let (instance, (result, usage)) = match tokio::task::spawn_blocking(move || {
        let (r, usage) = instance.collect_with_fuel(deadline, fuel_left);
        let r = r.map(|r| {
            r.map(|set| {
                shared.ctx.span.in_scope(|| {
                    publish_run(
                        &shared,
                        set,
                        start,
                        &usage,
                        &run_stats,
                        instance.series_mut(),
                    )
                })
            })
        });
        (instance, (r, usage))
    })
    .await
    {
        Ok(x) => x,
        Err(e) => return Err(format!("collection task failed: {e}")),
    };
    stats
        .denials
        .fetch_add(usage.calls.denials, Ordering::Relaxed);
    stats.record_run(start, &usage);
    if let Some(t) = &lc.tenant {
        t.spend_fuel(start, usage.fuel);
    }
    let _g = span.enter();
    match result {
        Ok(Ok(chunk)) => {
            tracing::debug!(metrics = chunk.len(), elapsed = ?usage.elapsed, fuel = usage.fuel, "collected");
            if !chunk.is_empty() {
                let chunk = Arc::new(chunk);
                for q in router.read().unwrap_or_else(|p| p.into_inner()).iter() {
                    q.push(&chunk);
                }
            }
            Ok(Some(instance))
        }
        Ok(Err(msg)) => {
            stats.guest_errors.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = lc.ctx.log_limit.admit(LogKind::GuestError) {
                tracing::warn!(error = %guest_text(&msg), suppressed, "collection failed (the plugin returned an error)");
            }
            Ok(Some(instance))
        }
        Err(f) => {
            stats.count_failure(&f);
            if let Some(suppressed) = lc.ctx.log_limit.admit(LogKind::Failure) {
                tracing::error!(
                    failure = f.kind.as_str(),
                    suppressed,
                    "collection failed: {}; the instance is discarded and will be re-instantiated",
                    f.message
                );
            }
            Ok(None)
        }
    }
}

/// What a collector's run publishes: its metrics within `max_metrics` and
/// the tenant's quota, checked, with their paths and lines (and
/// `collector_time_ms` when asked for). Counts what was dropped or
/// rejected.
fn publish_run(
    lc: &LoadedCollectorShared,
    metrics: crate::bindings::types::MetricSet,
    start: f64,
    usage: &crate::plugin::Usage,
    stats: &PluginStats,
    series: &mut crate::series::SeriesTable,
) -> crate::metric::Chunk {
    let max = lc.ctx.limits.max_metrics as usize;
    let mut metrics = metrics;
    let count = crate::metric::count(&metrics);
    if count > max {
        let over = count - max;
        crate::metric::truncate(&mut metrics, max);
        stats.dropped.fetch_add(over as u64, Ordering::Relaxed);
        tracing::warn!(
            dropped = over,
            max_metrics = max,
            "published more metrics than [limits] max_metrics allows; the rest were dropped"
        );
    }
    if let Some(t) = &lc.tenant {
        let count = crate::metric::count(&metrics);
        let (ok, first) = t.take_metrics(start, count as u64);
        let over = count - ok as usize;
        if over > 0 {
            crate::metric::truncate(&mut metrics, ok as usize);
            stats.dropped.fetch_add(over as u64, Ordering::Relaxed);
            if first {
                tracing::warn!(tenant = %t.config.name, dropped = over, quota = ?t.config.max_metrics, "the tenant's max_metrics_per_interval is used up: dropping its metrics until the window ends");
            }
        }
    }
    let now = timestamp_now(&lc.ctx.facts);
    let mut checked = lc.publication.publish_with(metrics, now as u64, series);
    if checked.rejected > 0 {
        stats
            .rejected
            .fetch_add(checked.rejected as u64, Ordering::Relaxed);
        let reasons: Vec<String> = checked.reasons.iter().map(|r| r.to_string()).collect();
        tracing::warn!(
            rejected = checked.rejected,
            ?reasons,
            "rejected invalid metrics"
        );
    }
    if lc.measure_collector_time {
        let _ = checked.published.push(
            &lc.publication.path("collector_time_ms"),
            (usage.elapsed.as_secs_f64() * 1000.0).trunc(),
            0,
            MetricKind::Gauge,
            now as u64,
            None,
            &lc.publication.source(),
        );
    }
    stats
        .metrics
        .fetch_add(checked.published.len() as u64, Ordering::Relaxed);
    checked.published
}

/// The parts of a [`LoadedCollector`] the collector task shares.
pub struct LoadedCollectorShared {
    /// Compiled component.
    pub component: Component,
    /// Context for new instances.
    pub ctx: Arc<PluginContext>,
    /// Paths and filters.
    pub publication: Publication,
    /// `measure_collector_time`.
    pub measure_collector_time: bool,
    /// The tenant.
    pub tenant: Option<Arc<Tenant>>,
    /// The agent's abort signal, given to every new instance.
    pub abort: Option<watch::Receiver<bool>>,
}

async fn collector_task(
    runtime: Arc<Runtime>,
    lc: LoadedCollector,
    router: Router,
    mut stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    stats: Arc<PluginStats>,
) {
    let interval = lc.config.interval;
    let mut schedule = Schedule::new(interval, rand::random::<f64>(), wall_clock());
    let deadline = lc
        .config
        .plugin
        .limits
        .timeout
        .unwrap_or(schedule.default_deadline());
    let span = lc.ctx.span.clone();
    span.in_scope(|| tracing::info!(interval, stagger = schedule.stagger(), deadline = ?deadline, "scheduled"));
    let shared = Arc::new(LoadedCollectorShared {
        component: lc.component,
        ctx: lc.ctx,
        publication: lc.publication,
        measure_collector_time: lc.config.measure_collector_time,
        tenant: lc.tenant,
        abort: Some(abort.clone()),
    });
    let mut first = lc.instance;
    first.set_abort(abort);
    let mut instance = Some(first);
    let mut failures: u32 = 0;
    let mut retry_at = 0.0;
    loop {
        let (sleep, skipped) = schedule.next(wall_clock());
        if skipped > 0 {
            span.in_scope(|| {
                tracing::warn!(
                    skipped,
                    "missed collection windows (clock jump or a slow run); skipping them"
                )
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        if instance.is_none() && wall_clock() < retry_at {
            continue;
        }
        match run_collection(
            &runtime,
            &shared,
            instance.take(),
            deadline,
            &router,
            &stats,
        )
        .await
        {
            Ok(Some(i)) => {
                instance = Some(i);
                failures = 0;
            }
            other => {
                failures += 1;
                let backoff = (interval * 2f64.powi(failures as i32 - 1)).min(300.0);
                retry_at = wall_clock() + backoff - interval;
                if let Err(e) = other {
                    span.in_scope(
                        || tracing::error!(error = %e, retry_in = backoff, "cannot re-instantiate"),
                    );
                } else {
                    span.in_scope(|| {
                        tracing::info!(
                            retry_in = backoff,
                            consecutive_failures = failures,
                            "will re-instantiate"
                        )
                    });
                }
            }
        }
    }
    span.in_scope(|| tracing::info!("stopped"));
}

/// Longest a handler keeps its blocking thread delivering batch after
/// batch before the task looks at its schedule and stop signal again.
const DRAIN_SLICE: Duration = Duration::from_millis(50);

async fn handler_task(
    runtime: Arc<Runtime>,
    lh: LoadedHandler,
    queue: Arc<Queue>,
    mut stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    stats: Arc<PluginStats>,
) {
    let span = lh.ctx.span.clone();
    let batch_size = lh.config.batch_size;
    let flush_every = Duration::from_secs_f64(lh.config.flush_interval);
    let deadline = lh
        .config
        .plugin
        .limits
        .timeout
        .unwrap_or(Duration::from_secs(30));
    let (component, ctx) = (lh.component, lh.ctx);
    let retry_max = Duration::from_secs_f64(lh.config.retry_max);
    let mut first = lh.instance;
    first.set_abort(abort.clone());
    let mut instance = Some(first);
    let mut backoff = Duration::ZERO;
    let mut stopping = false;
    let mut last_flush = tokio::time::Instant::now();
    let mut dirty = false;
    loop {
        if !stopping && backoff.is_zero() && !queue.is_empty() {
            // Metrics are waiting: straight on (even a zero sleep would
            // wait for the timer's next millisecond tick).
            if stop.has_changed().unwrap_or(true) {
                stopping = true;
            }
        } else if !stopping {
            let wait = if !backoff.is_zero() {
                backoff
            } else {
                flush_every.saturating_sub(last_flush.elapsed())
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = queue.notify.notified(), if backoff.is_zero() => {}
                _ = stop.changed() => { stopping = true; }
            }
        }
        let inst = match instance.take() {
            Some(i) => i,
            None => {
                let (rt, comp, c) = (runtime.clone(), component.clone(), ctx.clone());
                let a = abort.clone();
                let made = match tokio::task::spawn_blocking(move || {
                    configured_handler(&rt, &comp, c).map(|mut i| {
                        i.set_abort(a);
                        i
                    })
                })
                .await
                {
                    Ok(made) => made,
                    Err(e) => Err(e.to_string()),
                };
                match made {
                    Ok(i) => i,
                    Err(e) => {
                        backoff = next_backoff(backoff, retry_max);
                        span.in_scope(|| tracing::error!(error = %e, retry_in = ?backoff, "cannot instantiate the handler"));
                        if stopping {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        let (taken, batch) = match queue.peek(batch_size) {
            Some((t, b)) => (Some(t), b),
            None => (None, crate::metric::Batch::default()),
        };
        let flush_due = dirty && (last_flush.elapsed() >= flush_every || stopping);
        if batch.is_empty() && !flush_due {
            instance = Some(inst);
            if stopping {
                break;
            }
            continue;
        }
        let flushing = taken.is_none();
        let (q, st) = (queue.clone(), stats.clone());
        let (inst, outcome, delivered) = match tokio::task::spawn_blocking(move || {
            let mut inst = inst;
            let Some(mut taken) = taken else {
                let r = inst.flush(deadline).0;
                return (inst, r, 0);
            };
            // Batch after batch while they succeed and metrics wait, for
            // at most DRAIN_SLICE: one hand-off to a blocking thread per
            // slice, not per batch.
            let (started, mut batch, mut delivered) = (Instant::now(), batch, 0);
            loop {
                let n = batch.len();
                let r = inst.process(batch, deadline).0;
                if !matches!(r, Ok(Ok(()))) {
                    return (inst, r, delivered);
                }
                q.commit(taken);
                st.metrics.fetch_add(n as u64, Ordering::Relaxed);
                delivered += n;
                if started.elapsed() >= DRAIN_SLICE {
                    return (inst, r, delivered);
                }
                match q.peek(batch_size) {
                    Some((t, b)) => (taken, batch) = (t, b),
                    None => return (inst, r, delivered),
                }
            }
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                span.in_scope(|| tracing::error!(error = %e, "handler task failed"));
                break;
            }
        };
        let _g = span.enter();
        if delivered > 0 {
            dirty = true;
        }
        match outcome {
            Ok(Ok(())) => {
                if flushing {
                    dirty = false;
                    last_flush = tokio::time::Instant::now();
                }
                if !backoff.is_zero() {
                    tracing::info!("delivering again");
                }
                backoff = Duration::ZERO;
                instance = Some(inst);
            }
            Ok(Err(msg)) => {
                stats.guest_errors.fetch_add(1, Ordering::Relaxed);
                backoff = next_backoff(backoff, retry_max);
                if let Some(suppressed) = ctx.log_limit.admit(LogKind::GuestError) {
                    tracing::warn!(error = %guest_text(&msg), suppressed, queued = queue.len(), retry_in = ?backoff, "handler failed; the batch is kept and retried");
                }
                instance = Some(inst);
            }
            Err(f) => {
                stats.count_failure(&f);
                backoff = next_backoff(backoff, retry_max);
                if let Some(suppressed) = ctx.log_limit.admit(LogKind::Failure) {
                    tracing::error!(failure = f.kind.as_str(), suppressed, queued = queue.len(), retry_in = ?backoff, "handler failed: {}; re-instantiating, the batch is kept", f.message);
                }
            }
        }
        if stopping && !backoff.is_zero() {
            // The backend cannot take them now: see below.
            break;
        }
    }
    // However the loop ended (backend down at shutdown, the handler not
    // instantiable, a host panic), what is still queued goes to the spool
    // for the next start, or is counted as lost: never dropped silently.
    let _g = span.enter();
    if stopping && !backoff.is_zero() {
        // Batches the handler still holds were sent but not confirmed (an
        // at-least-once sender keeps its last one until the connection
        // proves alive): they are spooled too, before the memory queue but
        // after what the spool already holds (newer metrics). At worst a
        // duplicate, delivered after newer points.
        if let Some(inst) = &instance {
            let held = inst.held_batches();
            let n: usize = held.iter().map(|b| b.len()).sum();
            for b in held {
                queue.spill(b.to_chunk(), "stopping with a sent batch not yet confirmed");
            }
            if n > 0 {
                tracing::warn!(metrics = n, "stopping while the backend is unavailable: the handler's last sent batch is kept too (it may arrive twice)");
            }
        }
    }
    let left = queue.len();
    if left > 0 {
        if queue.spill_all("stopping while the backend is unavailable") > 0 || queue.len() == left {
            tracing::warn!(
                spooled_total = queue.len(),
                "stopping; undelivered metrics stay in the spool for the next start"
            );
        } else {
            tracing::error!(
                undelivered = left,
                "stopping with metrics the handler could not deliver (set spool_dir to keep them)"
            );
        }
    }
    tracing::info!(delivered = stats.metrics.load(Ordering::Relaxed), "stopped");
}

/// How long a stop waits for in-flight collections, and then again for
/// handlers to drain, before it aborts what is still running.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Waits for `tasks` for at most [`SHUTDOWN_GRACE`]; then aborts every
/// plugin call in flight and waits for the tasks to end (an aborted call
/// returns within a few milliseconds).
async fn finish_within(
    tasks: Vec<(String, JoinHandle<()>)>,
    abort: &watch::Sender<bool>,
    kind: &str,
) {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let mut late = Vec::new();
    for (name, mut task) in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            late.push((name, task));
        }
    }
    if late.is_empty() {
        return;
    }
    let names: Vec<&str> = late.iter().map(|(n, _)| n.as_str()).collect();
    tracing::warn!(grace = ?SHUTDOWN_GRACE, stuck = ?names, "{kind}s still busy after the grace: aborting their calls");
    let _ = abort.send(true);
    for (_, task) in late {
        let _ = task.await;
    }
}

fn next_backoff(b: Duration, max: Duration) -> Duration {
    if b.is_zero() {
        Duration::from_millis(250).min(max)
    } else {
        (b * 2).min(max)
    }
}

// ---------------------------------------------------------------------------
// The supervisor

struct Running {
    fingerprint: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    stats: Arc<PluginStats>,
}

struct RunningHandler {
    running: Running,
    queue: Arc<Queue>,
}

/// What tells the agent to stop or reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Reload the configuration (SIGHUP).
    Reload,
    /// Finish in-flight work, flush, exit (SIGTERM, SIGINT).
    Shutdown,
}

/// The running agent.
pub struct Agent {
    runtime: Arc<Runtime>,
    facts: HostFacts,
    config_path: PathBuf,
    router: Router,
    collectors: HashMap<String, Running>,
    handlers: Vec<(String, RunningHandler)>,
    health: Option<JoinHandle<()>>,
    spools: HashMap<PathBuf, Arc<Spool>>,
    /// Turned true when a stop has waited [`SHUTDOWN_GRACE`]: every plugin
    /// call still in flight ends at once.
    abort: watch::Sender<bool>,
}

/// Publishes every plugin's counters as metrics: the agent's own health.
async fn health_task(
    paths: PathBuilder,
    every: Duration,
    plugins: Vec<(String, Arc<PluginStats>, Option<Arc<Queue>>)>,
    router: Router,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = wall_clock() as u64;
        let mut batch = crate::metric::Chunk::default();
        let source = Arc::new(crate::metric::Source {
            host: paths.hostname.clone(),
            collector: "wdiamond".into(),
            tenant: None,
            ttl: (every.as_secs_f64() * 2.0) as u32,
        });
        let mut put = |name: String, v: f64| {
            // Plugin names are checked at load; a value is finite.
            let _ = batch.push(
                &paths.path(&name, None),
                v,
                0,
                MetricKind::Gauge,
                now,
                None,
                &source,
            );
        };
        for (name, st, queue) in &plugins {
            let g = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
            put(format!("{name}.runs"), g(&st.runs));
            put(format!("{name}.errors"), g(&st.guest_errors));
            put(format!("{name}.failures.total"), g(&st.failures));
            put(format!("{name}.failures.timeout"), g(&st.timeouts));
            put(format!("{name}.failures.fuel"), g(&st.fuel_exhausted));
            put(format!("{name}.failures.memory"), g(&st.memory_exhausted));
            put(
                format!("{name}.failures.trap"),
                g(&st.failures) - g(&st.timeouts) - g(&st.fuel_exhausted) - g(&st.memory_exhausted),
            );
            put(format!("{name}.denials"), g(&st.denials));
            put(format!("{name}.metrics.published"), g(&st.metrics));
            put(format!("{name}.metrics.rejected"), g(&st.rejected));
            put(format!("{name}.metrics.dropped"), g(&st.dropped));
            put(format!("{name}.quota_skips"), g(&st.quota_skips));
            put(
                format!("{name}.duration_ms"),
                g(&st.last_duration_us) / 1000.0,
            );
            put(format!("{name}.fuel_used"), g(&st.last_fuel));
            put(format!("{name}.peak_memory_bytes"), g(&st.peak_memory));
            if let Some(q) = queue {
                put(format!("{name}.queued"), q.len() as f64);
            }
        }
        let batch = Arc::new(batch);
        for q in router.read().unwrap_or_else(|p| p.into_inner()).iter() {
            q.push(&batch);
        }
    }
}

fn fingerprint<T: std::fmt::Debug>(t: &T) -> String {
    format!("{t:?}")
}

/// What a reload's loading gives back.
type Reloaded = Result<Result<(config::Config, Loaded), ConfigErrors>, String>;

impl Agent {
    /// Starts every plugin of an already loaded configuration.
    pub fn start(
        runtime: Arc<Runtime>,
        facts: HostFacts,
        config_path: &Path,
        config: &config::Config,
        loaded: Loaded,
    ) -> Agent {
        let mut agent = Agent {
            runtime,
            facts,
            config_path: config_path.to_path_buf(),
            router: Arc::new(RwLock::new(Vec::new())),
            collectors: HashMap::new(),
            handlers: Vec::new(),
            health: None,
            spools: HashMap::new(),
            abort: watch::channel(false).0,
        };
        agent.apply(config, loaded);
        agent
    }

    fn apply(&mut self, config: &config::Config, loaded: Loaded) {
        // Handlers first, so collectors never publish into nothing.
        let mut new_handlers = Vec::new();
        let mut old: Vec<(String, RunningHandler)> = std::mem::take(&mut self.handlers);
        for lh in loaded.handlers {
            let name = lh.config.plugin.name.clone();
            let fp = fingerprint(&lh.config);
            if let Some(pos) = old
                .iter()
                .position(|(n, h)| *n == name && h.running.fingerprint == fp)
            {
                new_handlers.push(old.remove(pos));
                continue;
            }
            let stats = Arc::new(PluginStats::default());
            let spool = match &lh.config.spool_dir {
                Some(dir) => match self.spools.get(dir) {
                    Some(s) => Some(s.clone()),
                    None => match Spool::open(dir, lh.config.spool_max) {
                        Ok(s) => {
                            self.spools.insert(dir.clone(), s.clone());
                            Some(s)
                        }
                        Err(e) => {
                            tracing::error!(handler = %name, spool = %dir.display(), error = %e, "cannot open the spool; running without it");
                            None
                        }
                    },
                },
                None => None,
            };
            let queue = Queue::new(&name, lh.config.queue_size, stats.clone(), spool);
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(handler_task(
                self.runtime.clone(),
                lh,
                queue.clone(),
                rx,
                self.abort.subscribe(),
                stats.clone(),
            ));
            new_handlers.push((
                name,
                RunningHandler {
                    running: Running {
                        fingerprint: fp,
                        stop: tx,
                        task,
                        stats,
                    },
                    queue,
                },
            ));
        }
        *self.router.write().unwrap_or_else(|p| p.into_inner()) =
            new_handlers.iter().map(|(_, h)| h.queue.clone()).collect();
        self.handlers = new_handlers;
        // Handlers that are gone drain their queue and stop.
        for (name, h) in old {
            tracing::info!(handler = %name, "handler removed or changed: draining and stopping the old one");
            let _ = h.running.stop.send(true);
        }

        let mut keep = HashMap::new();
        for lc in loaded.collectors {
            let name = lc.config.plugin.name.clone();
            // The tenant's quotas are part of it (a fuel quota also decides
            // whether the collector's code counts fuel).
            let fp = fingerprint(&(&lc.config, lc.tenant.as_ref().map(|t| &t.config)));
            if let Some(r) = self.collectors.remove(&name) {
                if r.fingerprint == fp {
                    keep.insert(name, r);
                    continue;
                }
                tracing::info!(collector = %name, "collector configuration changed: restarting it");
                let _ = r.stop.send(true);
            }
            let stats = Arc::new(PluginStats::default());
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(collector_task(
                self.runtime.clone(),
                lc,
                self.router.clone(),
                rx,
                self.abort.subscribe(),
                stats.clone(),
            ));
            keep.insert(
                name,
                Running {
                    fingerprint: fp,
                    stop: tx,
                    task,
                    stats,
                },
            );
        }
        for (name, r) in self.collectors.drain() {
            tracing::info!(collector = %name, "collector removed or disabled: stopping it");
            let _ = r.stop.send(true);
        }
        self.collectors = keep;

        if let Some(h) = self.health.take() {
            h.abort();
        }
        if !config.server.health_path.is_empty() {
            let d = &config.defaults;
            let hostname = d
                .hostname
                .clone()
                .or_else(|| crate::hostname::resolve(d.hostname_method));
            let paths = PathBuilder::new(d, hostname.as_deref(), &config.server.health_path);
            let mut plugins: Vec<(String, Arc<PluginStats>, Option<Arc<Queue>>)> = self
                .collectors
                .iter()
                .map(|(n, r)| (format!("collectors.{n}"), r.stats.clone(), None))
                .collect();
            plugins.sort_by(|a, b| a.0.cmp(&b.0));
            for (n, h) in &self.handlers {
                plugins.push((
                    format!("handlers.{n}"),
                    h.running.stats.clone(),
                    Some(h.queue.clone()),
                ));
            }
            let every = Duration::from_secs_f64(config.server.health_interval);
            self.health = Some(tokio::spawn(health_task(
                paths,
                every,
                plugins,
                self.router.clone(),
            )));
        }
    }

    /// Re-reads the configuration; on any error the running one is kept.
    pub async fn reload(&mut self) {
        let loaded = self.load_again().await;
        self.apply_loaded(loaded);
    }

    /// Loads the configuration file again (on a blocking thread; plugins'
    /// setup calls are bounded by their deadline).
    fn load_again(&self) -> impl std::future::Future<Output = Reloaded> + 'static {
        tracing::info!(config = %self.config_path.display(), "reloading the configuration");
        let (rt, facts, path) = (
            self.runtime.clone(),
            self.facts.clone(),
            self.config_path.clone(),
        );
        let task = tokio::task::spawn_blocking(move || {
            rt.forget_compiled();
            let config = config::load(&path)?;
            let loaded = load(&rt, &config, &facts)?;
            Ok::<_, ConfigErrors>((config, loaded))
        });
        async move { task.await.map_err(|e| e.to_string()) }
    }

    fn apply_loaded(&mut self, loaded: Reloaded) {
        match loaded {
            Ok(Ok((config, loaded))) => {
                self.apply(&config, loaded);
                tracing::info!(
                    collectors = self.collectors.len(),
                    handlers = self.handlers.len(),
                    "configuration reloaded"
                );
            }
            Ok(Err(errors)) => {
                for e in &errors.0 {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    errors = errors.0.len(),
                    "the new configuration has errors; still running the previous one"
                );
            }
            Err(e) => tracing::error!(error = %e, "reload failed"),
        }
    }

    /// Stops collectors (letting in-flight runs finish for at most
    /// [`SHUTDOWN_GRACE`]), then lets every handler drain its queue and
    /// flush (again for at most [`SHUTDOWN_GRACE`]); past a grace, every
    /// plugin call still in flight is aborted (a handler's queue then goes
    /// to its spool). Bounded whatever a plugin does.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: finishing in-flight collections");
        if let Some(h) = &self.health {
            h.abort();
        }
        for r in self.collectors.values() {
            let _ = r.stop.send(true);
        }
        let collectors: Vec<(String, JoinHandle<()>)> = self
            .collectors
            .into_iter()
            .map(|(n, r)| (n, r.task))
            .collect();
        finish_within(collectors, &self.abort, "collector").await;
        tracing::info!("flushing handlers");
        for (_, h) in &self.handlers {
            let _ = h.running.stop.send(true);
        }
        let stats: Vec<(String, Arc<PluginStats>)> = self
            .handlers
            .iter()
            .map(|(n, h)| (n.clone(), h.running.stats.clone()))
            .collect();
        let handlers = self
            .handlers
            .into_iter()
            .map(|(n, h)| (n, h.running.task))
            .collect();
        finish_within(handlers, &self.abort, "handler").await;
        for (name, st) in stats {
            tracing::info!(handler = %name, delivered = st.metrics.load(Ordering::Relaxed), dropped = st.dropped.load(Ordering::Relaxed), "handler done");
        }
    }

    /// Statistics of a running collector.
    pub fn collector_stats(&self, name: &str) -> Option<Arc<PluginStats>> {
        self.collectors.get(name).map(|r| r.stats.clone())
    }

    /// Statistics of a running handler (delivered, dropped, failures).
    pub fn handler_stats(&self, name: &str) -> Option<Arc<PluginStats>> {
        self.handlers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.running.stats.clone())
    }

    /// Runs until `control` says shutdown; reloads on `Reload`.
    ///
    /// A reload loads the new configuration while the control channel is
    /// still listened to: a `Shutdown` during a slow reload (a plugin stuck
    /// in `describe` until its setup deadline) abandons the reload.
    pub async fn run(mut self, mut control: tokio::sync::mpsc::Receiver<Control>) {
        while let Some(c) = control.recv().await {
            match c {
                Control::Reload => {
                    let loading = self.load_again();
                    tokio::pin!(loading);
                    let mut stop = false;
                    let loaded = loop {
                        tokio::select! {
                            l = &mut loading => break Some(l),
                            c = control.recv() => match c {
                                Some(Control::Reload) => tracing::info!("a reload is already under way"),
                                Some(Control::Shutdown) | None => {
                                    tracing::warn!("stopping during a reload: the new configuration is not applied");
                                    stop = true;
                                    break None;
                                }
                            },
                        }
                    };
                    if let Some(l) = loaded {
                        self.apply_loaded(l);
                    }
                    if stop {
                        break;
                    }
                }
                Control::Shutdown => break,
            }
        }
        self.shutdown().await;
    }
}
