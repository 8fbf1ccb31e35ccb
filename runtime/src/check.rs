//! What `wdiamond check` tells an operator beyond "OK": a summary that
//! stays readable at 1,000 collectors, and for each plugin that is not
//! built in, what it asks for beside what the config grants (with the line
//! to add for each ask not granted) and whether its file is pinned.

use std::collections::BTreeMap;

use crate::agent::{asked_grants, capability_parts, is_granted, Loaded};
use crate::bindings::types::{ConfigEntry, Description};
use crate::config::{ComponentRef, Config, PluginConfig};
use crate::grants::Grants;
use crate::logging::guest_text;

/// Names listed one by one up to this many; past it, counts by component.
const LISTED: usize = 12;

/// The summary: how many collectors and handlers, named or counted.
pub fn summary(config: &Config, loaded: &Loaded) -> String {
    let mut out = format!("{}: OK\n", config.source.display());
    let n = loaded.collectors.len();
    if n <= LISTED {
        let names: Vec<&str> = loaded
            .collectors
            .iter()
            .map(|c| c.config.plugin.name.as_str())
            .collect();
        out.push_str(&format!(
            "  collectors: {n} enabled{}{}\n",
            if n > 0 { ": " } else { "" },
            names.join(", ")
        ));
    } else {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for c in &loaded.collectors {
            *by.entry(c.config.plugin.component.to_string()).or_default() += 1;
        }
        let mut by: Vec<(String, usize)> = by.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.push_str(&format!("  collectors: {n} enabled, by component:\n"));
        for (component, count) in by.iter().take(LISTED) {
            out.push_str(&format!("    {count:>6}  {component}\n"));
        }
        if by.len() > LISTED {
            let rest: usize = by[LISTED..].iter().map(|(_, c)| c).sum();
            out.push_str(&format!(
                "    {rest:>6}  of {} other components\n",
                by.len() - LISTED
            ));
        }
    }
    let per_run = loaded
        .collectors
        .iter()
        .filter(|c| c.instancing == crate::config::Instancing::PerRun)
        .count();
    if per_run > 0 {
        out.push_str(&format!(
            "  {per_run} of them per run (`instance`: a new instance each run, none held between)\n"
        ));
    }
    let handlers: Vec<&str> = loaded
        .handlers
        .iter()
        .map(|h| h.config.plugin.name.as_str())
        .collect();
    out.push_str(&format!(
        "  handlers: {}\n",
        if handlers.is_empty() {
            "none".to_string()
        } else {
            handlers.join(", ")
        }
    ));
    for h in &loaded.handlers {
        if let Some(l) = &h.config.listen {
            out.push_str(&format!(
                "  serves: {} on http://{}{}\n",
                h.config.plugin.name, l.address, l.path
            ));
        }
    }
    out
}

/// Whose metrics reach which handlers, by tenant (the host's own first),
/// and how many groups reach no handler at all.
pub fn routing(loaded: &Loaded) -> (String, usize) {
    let mut groups: BTreeMap<Option<String>, Vec<&str>> = BTreeMap::new();
    for c in &loaded.collectors {
        groups
            .entry(c.config.tenant.clone())
            .or_default()
            .push(c.config.plugin.name.as_str());
    }
    let mut out = String::from("  routing:\n");
    let mut nowhere = 0;
    for (tenant, names) in &groups {
        let who = match tenant {
            None => "the host's own".to_string(),
            Some(t) => format!("tenant {t}'s"),
        };
        let listed = if names.len() <= LISTED {
            names.join(", ")
        } else {
            format!("{} collectors", names.len())
        };
        let to: Vec<&str> = loaded
            .handlers
            .iter()
            .filter(|h| h.config.receives.accepts(tenant.as_deref()))
            .map(|h| h.config.plugin.name.as_str())
            .collect();
        if to.is_empty() {
            nowhere += 1;
            let fix = match tenant {
                None => "add a handler to [server] handlers".to_string(),
                Some(t) => format!(
                    "set `tenant = \"{t}\"` on a handler, or name one in [tenants.{t}] handlers"
                ),
            };
            out.push_str(&format!(
                "    {who} ({listed}) -> nowhere: warning: no handler receives them ({fix})\n"
            ));
        } else {
            out.push_str(&format!("    {who} ({listed}) -> {}\n", to.join(", ")));
        }
    }
    (out, nowhere)
}

/// The review of one third-party plugin, or `None` for a built-in one.
/// The second value is how many warnings it holds.
pub(crate) fn review_one(
    p: &PluginConfig,
    d: &Description,
    entries: &[ConfigEntry],
    grants: &Grants,
) -> Option<(String, usize)> {
    let shown = match &p.component {
        ComponentRef::Builtin(_) => return None,
        ComponentRef::File(path) | ComponentRef::Python(path) => path.display().to_string(),
        ComponentRef::Oci(r) => r.to_string(),
    };
    let mut warnings = 0;
    let mut out = format!(
        "[{}] {shown} ({} {})\n",
        p.section,
        guest_text(&d.name),
        guest_text(&d.version)
    );
    match (&p.sha256, &p.component) {
        (Some(s), _) => out.push_str(&format!("  pinned: sha256 = \"{s}\"\n")),
        (None, ComponentRef::Oci(_)) => {
            out.push_str("  pinned: by its manifest digest (installed from a registry)\n")
        }
        (None, ComponentRef::File(path) | ComponentRef::Python(path)) => {
            warnings += 1;
            let digest = match &p.component {
                ComponentRef::Python(_) => crate::plugin::python::read_script(path, None)
                    .map(|s| s.sha256)
                    .unwrap_or_else(|_| "…".into()),
                _ => crate::plugin::read_component_file(path)
                    .map(|b| crate::plugin::hex_sha256(&b))
                    .unwrap_or_else(|_| "…".into()),
            };
            out.push_str(&format!(
                "  warning: not pinned: a changed file would be loaded as it is. Add `sha256 = \"{digest}\"` to [{}] (`wdiamond inspect {}` prints it)\n",
                p.section,
                path.display()
            ));
        }
        (None, ComponentRef::Builtin(_)) => {}
    }
    if d.capabilities.is_empty() {
        out.push_str("  asks for nothing\n");
    }
    for cap in &d.capabilities {
        let (kind, value, key) = capability_parts(cap);
        let asked = asked_grants(cap, entries);
        if asked.is_empty() {
            out.push_str(&format!(
                "  asks {kind} {}: nothing to grant with this config\n",
                guest_text(value)
            ));
        }
        for a in asked {
            if is_granted(grants, cap, &a) {
                out.push_str(&format!(
                    "  asks {kind} {}: granted ({key})\n",
                    guest_text(&a)
                ));
            } else {
                warnings += 1;
                out.push_str(&format!(
                    "  warning: asks {kind} {}, not granted: add {} to [{}.grants] {key}\n",
                    guest_text(&a),
                    guest_text(&a),
                    p.section
                ));
            }
        }
    }
    Some((out, warnings))
}

/// The review of every plugin that is not built in, and how many warnings
/// it holds.
pub fn third_party(loaded: &Loaded) -> (String, usize) {
    let mut text = String::new();
    let mut warnings = 0;
    let plugins = loaded
        .collectors
        .iter()
        .map(|c| (&c.config.plugin, &c.description, &c.ctx))
        .chain(
            loaded
                .handlers
                .iter()
                .map(|h| (&h.config.plugin, &h.description, &h.ctx)),
        );
    for (p, d, ctx) in plugins {
        if let Some((t, w)) = review_one(p, d, &ctx.config, &p.grants) {
            text.push_str(&t);
            warnings += w;
        }
    }
    (text, warnings)
}
