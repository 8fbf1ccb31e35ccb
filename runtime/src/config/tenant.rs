//! The `[tenants.NAME]` sections, and the checks between tenants and the
//! collectors that name them (references, the quotas known at load).

use super::reader::Reader;
use super::sections::TENANT_KEYS;
use super::{CollectorConfig, ConfigError, PluginConfig, TenantConfig};

/// Reads one `[tenants.NAME]` section.
pub(super) fn read_tenant(r: &mut Reader<'_>, name: &str, t: &toml::Table) -> TenantConfig {
    let mut tc = TenantConfig {
        name: name.to_string(),
        prefix: format!("tenants.{name}"),
        max_collectors: None,
        max_memory: None,
        max_metrics: None,
        max_fuel: None,
        interval: 60.0,
        handlers: Vec::new(),
        max_queue: None,
        max_spool: None,
        location: r.doc.at(&["tenants", name]),
    };
    if crate::metric::check_name(name).is_err() || name.contains('.') {
        r.err(
            &["tenants", name],
            "a tenant name must be one metric path segment (letters, digits, _ -)",
        );
    }
    for (k, v) in t {
        let p = ["tenants", name, k.as_str()];
        match k.as_str() {
            "prefix" => {
                if let Some(s) = r.string(&p, v) {
                    if crate::metric::check_name(&s).is_err() {
                        r.err(&p, format!("{s:?} is not a valid metric path"));
                    }
                    tc.prefix = s;
                }
            }
            "max_collectors" => tc.max_collectors = r.count(&p, v),
            "max_memory_mb" => tc.max_memory = r.count(&p, v).map(|n| (n as usize) << 20),
            "max_metrics_per_interval" => tc.max_metrics = r.count(&p, v),
            "max_fuel_per_interval" => tc.max_fuel = r.count(&p, v),
            "handlers" => tc.handlers = r.strings(&p, v).unwrap_or_default(),
            "max_queue_mb" => tc.max_queue = r.count(&p, v).map(|n| (n.max(1) as usize) << 20),
            "max_spool_mb" => tc.max_spool = r.count(&p, v).map(|n| n.max(1) << 20),
            "interval" => {
                if let Some(n) = r.positive(&p, v) {
                    tc.interval = n;
                }
            }
            _ => r.unknown(&p, TENANT_KEYS),
        }
    }
    tc
}

/// The error for a plugin's `tenant = "T"` naming no defined tenant.
pub(super) fn unknown_tenant(
    t: &str,
    tenants: &[TenantConfig],
    p: &PluginConfig,
) -> Option<ConfigError> {
    if tenants.iter().any(|x| x.name == t) {
        return None;
    }
    let names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
    Some(ConfigError {
        location: p.location.clone(),
        key: format!("{}.tenant", p.section),
        message: format!(
            "no tenant {t:?} (defined: {}); add a [tenants.{t}] section",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    })
}

/// Every `tenant = "…"` names a defined tenant; a tenant's enabled
/// collectors fit its `max_collectors` and `max_memory_mb`.
pub(super) fn check_tenants(
    collectors: &[CollectorConfig],
    tenants: &[TenantConfig],
    errors: &mut Vec<ConfigError>,
) {
    for c in collectors {
        let Some(t) = &c.tenant else { continue };
        if let Some(e) = unknown_tenant(t, tenants, &c.plugin) {
            errors.push(e);
        }
    }
    for t in tenants {
        let members: Vec<&CollectorConfig> = collectors
            .iter()
            .filter(|c| c.enabled && c.tenant.as_deref() == Some(&t.name))
            .collect();
        if let Some(max) = t.max_collectors {
            if members.len() as u64 > max {
                errors.push(ConfigError {
                    location: t.location.clone(),
                    key: format!("tenants.{}.max_collectors", t.name),
                    message: format!("the tenant has {} enabled collectors ({}), more than its max_collectors = {max}", members.len(), members.iter().map(|c| c.plugin.name.as_str()).collect::<Vec<_>>().join(", ")),
                });
            }
        }
        if let Some(max) = t.max_memory {
            let sum: usize = members.iter().map(|c| c.plugin.limits.memory).sum();
            if sum > max {
                errors.push(ConfigError {
                    location: t.location.clone(),
                    key: format!("tenants.{}.max_memory_mb", t.name),
                    message: format!("its collectors' memory caps add up to {} MiB, more than max_memory_mb = {}; lower their [limits] memory_mb", sum >> 20, max >> 20),
                });
            }
        }
    }
}
