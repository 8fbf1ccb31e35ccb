//! The `[handlers.NAME]` sections: the plugin settings plus the host's
//! queue, batch, flush, retry and spool keys.

use std::collections::BTreeMap;
use std::path::Path;

use super::reader::{resolve, Doc};
use super::sections::{each_host_key, read_plugin, Layers, HANDLER_KEYS};
use super::tenant::unknown_tenant;
use super::{ConfigError, HandlerConfig, Listen, Receives, TenantConfig};

/// `batch_timeout` when none is set, seconds.
pub const DEFAULT_BATCH_TIMEOUT: f64 = 1.0;

/// Largest `batch_timeout`, seconds.
pub const MAX_BATCH_TIMEOUT: f64 = 300.0;

/// Reads one handler from its layers (`[handlers.default]` first).
pub(super) fn read_handler(
    name: &str,
    layers: &Layers<'_>,
    config_dir: &Path,
    errors: &mut Vec<ConfigError>,
) -> HandlerConfig {
    let mut host = BTreeMap::new();
    let plugin = read_plugin(
        name,
        &format!("handlers.{name}"),
        layers,
        HANDLER_KEYS,
        config_dir,
        errors,
        &mut host,
    );
    let mut h = HandlerConfig {
        plugin,
        queue_size: 100_000,
        batch_size: 10_000,
        batch_timeout: DEFAULT_BATCH_TIMEOUT,
        flush_interval: 1.0,
        retry_max: 10.0,
        spool_dir: None,
        spool_max: 256 << 20,
        spool_sync: 1.0,
        receives: Receives::Host,
        max_queue_bytes: usize::MAX,
        listen: None,
    };
    let mut listen_path = None;
    each_host_key(layers, host, errors, |r, path, k, v| match k {
        "queue_size" => {
            if let Some(n) = r.count(path, v) {
                h.queue_size = (n as usize).max(1);
            }
        }
        "batch_size" => {
            if let Some(n) = r.count(path, v) {
                h.batch_size = (n as usize).max(1);
            }
        }
        "batch_timeout" => {
            if let Some(n) = r.number(path, v) {
                if (0.0..=MAX_BATCH_TIMEOUT).contains(&n) {
                    h.batch_timeout = n;
                } else {
                    r.err(path, format!("must be from 0 (deliver at once) to {MAX_BATCH_TIMEOUT} seconds, found {n}"));
                }
            }
        }
        "flush_interval" => {
            if let Some(n) = r.positive(path, v) {
                h.flush_interval = n;
            }
        }
        "retry_max" => {
            if let Some(n) = r.positive(path, v) {
                h.retry_max = n;
            }
        }
        "spool_dir" => {
            if let Some(d) = r.string(path, v) {
                h.spool_dir = Some(resolve(config_dir, &d));
            }
        }
        "tenant" | "tenants" => read_receives(r, path, k, v, &mut h.receives),
        "listen" => {
            if let Some(a) = r.string(path, v) {
                match crate::grants::parse_listen(&a) {
                    Ok(address) => {
                        h.listen = Some(Listen {
                            address,
                            path: "/metrics".into(),
                            location: r.doc.at(path),
                        })
                    }
                    Err(e) => r.err(path, e),
                }
            }
        }
        "listen_path" => {
            if let Some(p) = r.string(path, v) {
                match served_path(&p) {
                    true => listen_path = Some((p, path.join("."), r.doc.at(path))),
                    false => r.err(path, format!("{p:?} is not a path to serve: it starts with `/`, at most 256 printable characters, no `?`, `#` or spaces (e.g. \"/metrics\")")),
                }
            }
        }
        "spool_sync" => {
            if let Some(n) = r.positive(path, v) {
                h.spool_sync = n;
            }
        }
        "spool_max_mb" => {
            if let Some(n) = r.count(path, v) {
                if n == 0 {
                    r.err(path, "must be at least 1");
                }
                h.spool_max = n << 20;
            }
        }
        _ => {}
    });
    match (&mut h.listen, listen_path) {
        (Some(l), Some((p, _, _))) => l.path = p,
        (None, Some((_, key, location))) => errors.push(ConfigError {
            location,
            key,
            message: "`listen_path` is the path of the page served on `listen`, which is not set: add `listen = \"127.0.0.1:9108\"`".into(),
        }),
        _ => {}
    }
    h
}

/// Whose metrics a handler receives: `tenant = "T"` (one tenant's) or
/// `tenants = "*"` (everyone's), never both.
fn read_receives(
    r: &mut super::reader::Reader<'_>,
    path: &[&str],
    key: &str,
    v: &toml::Value,
    receives: &mut Receives,
) {
    let Some(t) = r.string(path, v) else {
        return;
    };
    if key == "tenant" {
        if *receives == Receives::All {
            r.err(path, "a handler receiving every tenant (`tenants = \"*\"`) cannot belong to one tenant: set one of `tenant` and `tenants`");
        }
        *receives = Receives::Tenant(t);
    } else if t != "*" {
        r.err(path, format!("`tenants` takes only \"*\" (every tenant's metrics, and the host's), not {t:?}; for one tenant's, set `tenant = {t:?}`"));
    } else if let Receives::Tenant(_) = receives {
        r.err(path, "a handler that belongs to a tenant (`tenant`) cannot receive every tenant: set one of `tenant` and `tenants`");
    } else {
        *receives = Receives::All;
    }
}

/// Whether `p` may be the path of a served page.
fn served_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 256
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

/// The handler instances that run: `[server] handlers`, then those the
/// tenants name, then the sections that say whose metrics they receive
/// (`tenant = "T"`, `tenants = "*"`): each once.
pub(super) fn active_handlers(
    server: &[String],
    tenants: &[TenantConfig],
    sections: &toml::Table,
) -> Vec<String> {
    let mut out = server.to_vec();
    let named = tenants.iter().flat_map(|t| t.handlers.iter().cloned());
    let receiving = sections
        .iter()
        .filter(|(name, t)| {
            *name != "default"
                && t.as_table()
                    .is_some_and(|t| t.contains_key("tenant") || t.contains_key("tenants"))
        })
        .map(|(name, _)| name.clone());
    for h in named.chain(receiving) {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// Ties handlers to tenants: one named in `[tenants.T] handlers` belongs
/// to `T` (an error if it says otherwise); a `tenant = "T"` must name a
/// defined tenant; a tenant's `max_queue_mb` and `max_spool_mb` are shared
/// evenly among its handlers.
pub(super) fn bind_tenant_handlers(
    handlers: &mut [HandlerConfig],
    server: &[String],
    tenants: &[TenantConfig],
    errors: &mut Vec<ConfigError>,
) {
    for t in tenants {
        for name in &t.handlers {
            let Some(h) = handlers.iter_mut().find(|h| h.plugin.name == *name) else {
                continue;
            };
            match &h.receives {
                // The host's handler too: taking it for the tenant would
                // silently stop the host's metrics reaching it.
                Receives::Host if server.contains(name) => errors.push(ConfigError {
                    location: t.location.clone(),
                    key: format!("tenants.{}.handlers", t.name),
                    message: format!("handler {name:?} is named here and in [server] handlers: a handler receives the host's metrics or one tenant's, not both; give the tenant a handler of its own ([handlers.{name}_{0}] with component = \"…\" and tenant = \"{0}\"), or `tenants = \"*\"` on [handlers.{name}] for everyone's", t.name),
                }),
                Receives::Host => h.receives = Receives::Tenant(t.name.clone()),
                Receives::Tenant(x) if *x == t.name => {}
                other => errors.push(ConfigError {
                    location: t.location.clone(),
                    key: format!("tenants.{}.handlers", t.name),
                    message: format!("handler {name:?} is named here, but [handlers.{name}] receives {other}: a tenant's handler receives that tenant's metrics only"),
                }),
            }
        }
    }
    for h in handlers.iter() {
        if let Receives::Tenant(t) = &h.receives {
            errors.extend(unknown_tenant(t, tenants, &h.plugin));
        }
    }
    for t in tenants {
        let n = handlers
            .iter()
            .filter(|h| h.receives == Receives::Tenant(t.name.clone()))
            .count();
        if n == 0 {
            continue;
        }
        for h in handlers
            .iter_mut()
            .filter(|h| h.receives == Receives::Tenant(t.name.clone()))
        {
            if let Some(q) = t.max_queue {
                h.max_queue_bytes = (q / n).max(1);
            }
            if let Some(s) = t.max_spool {
                h.spool_max = h.spool_max.min((s / n as u64).max(1));
            }
        }
    }
}

/// A `[handlers.NAME]` section that nothing uses ([`active_handlers`]) is
/// a mistake (a typo, or a handler the operator meant to enable).
pub(super) fn check_unused_handlers(
    doc: &Doc,
    handlers_t: &toml::Table,
    used: &[String],
    errors: &mut Vec<ConfigError>,
) {
    for key in handlers_t.keys() {
        if key != "default" && !used.contains(key) {
            errors.push(ConfigError {
                location: doc.at(&["handlers", key]),
                key: format!("handlers.{key}"),
                message: format!(
                    "configured but not used: add {key:?} to [server] handlers (or to a tenant's `handlers`, or set `tenant`/`tenants` in it), or remove the section"
                ),
            });
        }
    }
}
