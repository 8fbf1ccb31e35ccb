//! The validated configuration: server, plugins (collectors, handlers),
//! their grants and limits, tenants.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use super::ConfigValue;
use super::{ConfigError, Location};
use crate::grants::Grants;
use crate::hostname::HostnameMethod;

/// Per-plugin limits (`[collectors.NAME.limits]`, `[handlers.NAME.limits]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock budget of one run; `None`: Diamond's (what is left of
    /// the interval after the stagger, at least 1 s).
    pub timeout: Option<Duration>,
    /// Fuel (roughly, wasm instructions) per run; `None`: unlimited.
    pub fuel: Option<u64>,
    /// Linear memory cap, bytes.
    pub memory: usize,
    /// Most metrics one run may publish.
    pub max_metrics: u32,
    /// Most bytes one file read, command output or stream returns.
    pub max_read_bytes: u64,
    /// Longest a command may run.
    pub command_timeout: Duration,
    /// Longest a socket connect, send or receive may wait.
    pub socket_timeout: Duration,
    /// Most bytes in its `directories` grants (`disk_mb`); `None`:
    /// unbounded (a built-in's default; see `host::disk`).
    pub disk: Option<u64>,
    /// Most files and directories in its `directories` grants
    /// (`disk_files`); `None`: unbounded.
    pub disk_files: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: None,
            fuel: None,
            memory: 64 << 20,
            max_metrics: 100_000,
            max_read_bytes: 8 << 20,
            command_timeout: Duration::from_secs(10),
            socket_timeout: Duration::from_secs(10),
            disk: None,
            disk_files: None,
        }
    }
}

/// TLS on a plugin's TCP connections (`tls = true` and Telegraf's
/// `tls_*` keys), done by the host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    /// `tls_ca`: trust these CAs (PEM) instead of the compiled-in and
    /// system roots.
    pub ca: Option<PathBuf>,
    /// `tls_cert`: a client certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// `tls_key`: its private key (PEM).
    pub key: Option<PathBuf>,
    /// `tls_server_name`: the name verified and sent (SNI) instead of the
    /// connected host.
    pub server_name: Option<String>,
    /// `insecure_skip_verify`: accept any certificate.
    pub insecure_skip_verify: bool,
}

/// Whether a configured component names a Python script
/// ([`ComponentRef::Python`]).
pub fn is_script(name: &str) -> bool {
    name.ends_with(".py")
}

/// Which component implements a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentRef {
    /// One shipped inside the binary, by name.
    Builtin(String),
    /// A `.wasm` file.
    File(PathBuf),
    /// A Python collector script (`.py`), run by the Python runtime
    /// component (`plugin::python`).
    Python(PathBuf),
    /// A component installed from an OCI registry, by digest
    /// (`oci://HOST/REPO@sha256:…`), loaded from the local store.
    Oci(super::oci_reference::Reference),
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentRef::Builtin(n) => write!(f, "built-in `{n}`"),
            ComponentRef::File(p) | ComponentRef::Python(p) => write!(f, "{}", p.display()),
            ComponentRef::Oci(r) => write!(f, "{r}"),
        }
    }
}

/// Settings shared by collectors and handlers.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Instance name: the `NAME` of `[collectors.NAME]`.
    pub name: String,
    /// `collectors.NAME` or `handlers.NAME`.
    pub section: String,
    /// The component.
    pub component: ComponentRef,
    /// `sha256`: the digest a `component` file (or script) must have.
    pub sha256: Option<String>,
    /// Grants as configured, parsed (capabilities are added at load).
    pub grants: Grants,
    /// Limits.
    pub limits: Limits,
    /// TLS on its TCP connections (`tls = true`).
    pub tls: Option<TlsConfig>,
    /// The plugin's own keys, in file order.
    pub options: Vec<(String, ConfigValue)>,
    /// Where each of those keys (and `component`, `sha256`) was written.
    pub option_locations: HashMap<String, Location>,
    /// `python_path` (a Python collector's): directories it imports `.py`
    /// modules and packages from, beside its own directory.
    pub python_path: Vec<PathBuf>,
    /// Where the section starts.
    pub location: Location,
}

impl PluginConfig {
    /// An error about this plugin's `key` (its section when empty), at the
    /// line that sets it, or else at its section's.
    pub fn error_at(&self, key: &str, message: String) -> ConfigError {
        let location = self
            .option_locations
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.location.clone());
        let key = if key.is_empty() {
            self.section.clone()
        } else {
            format!("{}.{key}", self.section)
        };
        ConfigError {
            location,
            key,
            message,
        }
    }
}

/// One collector instance.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// Common plugin settings.
    pub plugin: PluginConfig,
    /// `enabled`.
    pub enabled: bool,
    /// `interval`, seconds.
    pub interval: f64,
    /// `path`: the metric path segment (default: the plugin's name).
    pub path: Option<String>,
    /// `path_prefix` (default `servers`).
    pub path_prefix: String,
    /// `path_suffix`.
    pub path_suffix: String,
    /// `instance_prefix` (default `instances`).
    pub instance_prefix: String,
    /// `hostname`: overrides the method.
    pub hostname: Option<String>,
    /// `hostname_method`.
    pub hostname_method: HostnameMethod,
    /// `metrics_whitelist`.
    pub whitelist: Option<MetricFilter>,
    /// `metrics_blacklist`.
    pub blacklist: Option<MetricFilter>,
    /// `byte_unit` as configured (`None`: the plugin's default, else `byte`).
    pub byte_unit: Option<Vec<String>>,
    /// `measure_collector_time`: publish `collector_time_ms`.
    pub measure_collector_time: bool,
    /// `publish_first_rate`: a counter's first sample gives Diamond's 0
    /// (default: nothing is published for it).
    pub publish_first_rate: bool,
    /// `ttl_multiplier`: a metric's ttl is this times the interval.
    pub ttl_multiplier: u32,
    /// `tenant`: the tenant it belongs to.
    pub tenant: Option<String>,
    /// `instance`: whether its instance lives from run to run (default:
    /// per run for the built-ins that keep no state, see
    /// [`CollectorConfig::instancing`]).
    pub instance: Option<Instancing>,
}

/// How long a collector's instance lives (`instance = "persistent"` or
/// `"per-run"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instancing {
    /// One instance from run to run: what it keeps (previous counter
    /// samples) lives until it is restarted.
    Persistent,
    /// A new instance for each run, dropped after it: nothing is held
    /// between runs, for collectors that keep nothing.
    PerRun,
}

impl Instancing {
    /// The values `instance` takes.
    pub const NAMES: &'static str = "\"persistent\", \"per-run\"";

    /// The value of `instance = "..."`.
    pub fn parse(s: &str) -> Option<Instancing> {
        match s {
            "persistent" => Some(Instancing::Persistent),
            "per-run" => Some(Instancing::PerRun),
            _ => None,
        }
    }
}

/// A compiled `metrics_whitelist` / `metrics_blacklist` regex (compared
/// by its text, so a reload can tell whether it changed).
#[derive(Debug, Clone)]
pub struct MetricFilter(pub Regex);

impl PartialEq for MetricFilter {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Whose metrics a handler receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receives {
    /// The host's own (collectors without a tenant): the default.
    Host,
    /// One tenant's only (`tenant = "NAME"` on the handler, or the handler
    /// named in `[tenants.NAME] handlers`).
    Tenant(String),
    /// The host's and every tenant's (`tenants = "*"`).
    All,
}

impl Receives {
    /// Whether a metric of `tenant` (`None`: the host's own) reaches a
    /// handler receiving `self`.
    pub fn accepts(&self, tenant: Option<&str>) -> bool {
        match (self, tenant) {
            (Receives::All, _) => true,
            (Receives::Host, None) => true,
            (Receives::Tenant(t), Some(x)) => t == x,
            _ => false,
        }
    }
}

impl fmt::Display for Receives {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Receives::Host => write!(f, "the host's own metrics"),
            Receives::Tenant(t) => write!(f, "tenant {t}'s metrics only"),
            Receives::All => write!(f, "every tenant's metrics and the host's"),
        }
    }
}

/// One handler instance.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerConfig {
    /// Common plugin settings.
    pub plugin: PluginConfig,
    /// Most metrics held in the handler's queue; past it the oldest batches
    /// are dropped (counted and logged).
    pub queue_size: usize,
    /// Most metrics handed to one `process` call.
    pub batch_size: usize,
    /// `batch_timeout`: how long, seconds, the first metrics queued after a
    /// delivery wait for more before they are delivered (a full batch goes
    /// at once). Runs due close together then share one delivery.
    pub batch_timeout: f64,
    /// How often `flush` is called, seconds.
    pub flush_interval: f64,
    /// Longest wait between retries of a failed batch, seconds.
    pub retry_max: f64,
    /// `spool_dir`: a write-ahead spool of everything queued for the
    /// handler, in the subdirectory named after the handler.
    pub spool_dir: Option<PathBuf>,
    /// `spool_max_mb`: bound of the spool, bytes.
    pub spool_max: u64,
    /// `spool_sync`: the longest, seconds, what is written to the spool
    /// waits for its group fsync (what a power loss may cost).
    pub spool_sync: f64,
    /// Whose metrics it receives.
    pub receives: Receives,
    /// Most bytes its memory queue holds (a tenant's `max_queue_mb`,
    /// shared among the tenant's handlers); `usize::MAX`: no bound but
    /// `queue_size`.
    pub max_queue_bytes: usize,
    /// `listen` (and `listen_path`): where the host serves an exporter's
    /// page.
    pub listen: Option<Listen>,
}

/// Where the host serves an exporter's page (`listen`, `listen_path`).
#[derive(Debug, Clone, PartialEq)]
pub struct Listen {
    /// `listen`: the address bound.
    pub address: std::net::SocketAddr,
    /// `listen_path`: the one path served (default `/metrics`).
    pub path: String,
    /// Where `listen` is written.
    pub location: Location,
}

impl HandlerConfig {
    /// The handler's own spool directory: `spool_dir/NAME`.
    pub fn spool_path(&self) -> Option<PathBuf> {
        self.spool_dir.as_ref().map(|d| d.join(&self.plugin.name))
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `handlers`: the handler instances metrics go to.
    pub handlers: Vec<String>,
    /// `collectors_config_path`: a directory of `NAME.toml` files.
    pub collectors_config_path: Option<PathBuf>,
    /// `plugin_cache_dir`: where compiled components are kept.
    pub plugin_cache_dir: PathBuf,
    /// `host_root`: read /proc and /sys under this directory (for an agent
    /// in a container with the host's filesystem mounted there).
    pub host_root: Option<PathBuf>,
    /// `health_path`: publish every plugin's health counters under
    /// `<path_prefix>.<hostname>.<health_path>` (empty: off).
    pub health_path: String,
    /// `health_interval`: seconds between health publications.
    pub health_interval: f64,
    /// `status_listen`: where the agent serves `/-/healthy`, `/-/ready`
    /// and `/metrics` (off when unset).
    pub status_listen: Option<StatusListen>,
    /// `trusted_keys`, `allow_unsigned`, `pull`, `[server.registries]`:
    /// components from OCI registries.
    pub oci: super::OciConfig,
}

/// `[server] status_listen`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusListen {
    /// The address bound.
    pub address: std::net::SocketAddr,
    /// Where it is written.
    pub location: Location,
}

/// `[tenants.NAME]`: a group of collectors under quotas and a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// The tenant's name.
    pub name: String,
    /// Every metric of the tenant's collectors is published under this
    /// prefix, whatever the guest sends (default `tenants.<name>`).
    pub prefix: String,
    /// Most enabled collectors.
    pub max_collectors: Option<u64>,
    /// Most memory: the sum of its collectors' `memory_mb` caps, bytes.
    pub max_memory: Option<usize>,
    /// Most metrics published per quota window (the rest dropped, counted).
    pub max_metrics: Option<u64>,
    /// Most fuel per quota window (runs past it are skipped, counted).
    pub max_fuel: Option<u64>,
    /// The quota window, seconds.
    pub interval: f64,
    /// `handlers`: the handlers that belong to the tenant (they receive its
    /// metrics only, and run whether or not `[server] handlers` names them).
    pub handlers: Vec<String>,
    /// `max_queue_mb`: most memory its handlers' queues hold, together.
    pub max_queue: Option<usize>,
    /// `max_spool_mb`: most disk its handlers' spools hold, together.
    pub max_spool: Option<u64>,
    /// Where the section starts.
    pub location: Location,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main file.
    pub source: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// Every collector instance (enabled or not), by name.
    pub collectors: Vec<CollectorConfig>,
    /// The handler instances that run: those `server.handlers` names, in
    /// that order, then those tenants name.
    pub handlers: Vec<HandlerConfig>,
    /// Tenants, by name.
    pub tenants: Vec<TenantConfig>,
    /// `[collectors.default]` alone, as a collector: the path prefix and host
    /// name used for health metrics.
    pub defaults: CollectorConfig,
}

// ---------------------------------------------------------------------------
// Parsing with spans
