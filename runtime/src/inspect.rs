//! `wdiamond inspect FILE.wasm`: what a component file is and asks for,
//! before anyone runs it — its world and contract version, its `describe`
//! (run under the same limits as any call, with nothing granted), its
//! imports, digest and sizes, and the lines that pin and grant it.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::agent::{accept_description, asked_grants, capability_parts, overlay};
use crate::bindings::collector::CollectorPlugin;
use crate::bindings::types::{ConfigValue, Description};
use crate::config::{ComponentRef, Limits};
use crate::grants::Grants;
use crate::host::PluginContext;
use crate::logging::guest_text;
use crate::plugin::Handler;
use crate::plugin::{contract, hex_sha256, python, read_component_file, Metering, Runtime, World};

/// One option of the plugin, as `describe` gives it.
#[derive(Debug, Clone, Serialize)]
pub struct OptionDoc {
    /// The key.
    pub key: String,
    /// Its default, as a TOML value.
    pub default: String,
    /// Help text.
    pub help: String,
}

/// One capability the plugin asks for.
#[derive(Debug, Clone, Serialize)]
pub struct Ask {
    /// Its WIT name (`read-files`, `connect`, …).
    pub kind: &'static str,
    /// What it names, `{key}` unfilled.
    pub value: String,
    /// The grants key that grants it.
    pub grants_key: &'static str,
    /// The values to add there, filled with the option defaults.
    pub grant_values: Vec<String>,
}

/// What `inspect` found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The file.
    pub file: String,
    /// `collector` or `handler`.
    pub world: &'static str,
    /// Whether it is an exporter (a handler whose page the agent serves).
    pub serves: bool,
    /// The contract version it was built against.
    pub contract: String,
    /// This agent's contract version.
    pub agent_contract: String,
    /// `describe().name`.
    pub name: String,
    /// `describe().version`.
    pub version: String,
    /// `describe().summary`.
    pub summary: String,
    /// Its options.
    pub options: Vec<OptionDoc>,
    /// What it asks for.
    pub capabilities: Vec<Ask>,
    /// Every import.
    pub imports: Vec<String>,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// File size, bytes.
    pub size: u64,
    /// Compiled size, bytes (what the cache keeps and the agent maps).
    pub compiled_size: u64,
}

/// A config value as written in TOML.
pub fn toml_value(v: &ConfigValue) -> String {
    match v {
        ConfigValue::Text(s) => format!("{s:?}"),
        ConfigValue::Integer(i) => i.to_string(),
        ConfigValue::Float(f) if f.fract() == 0.0 && f.is_finite() => format!("{f:.1}"),
        ConfigValue::Float(f) => f.to_string(),
        ConfigValue::Boolean(b) => b.to_string(),
        ConfigValue::TextList(l) => format!(
            "[{}]",
            l.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A context with nothing granted (but a script's imports of `.py` files
/// beside it) and the default limits: what `describe` runs under.
fn probe(name: &str, script: Option<Arc<python::Script>>) -> Arc<PluginContext> {
    let mut grants = Grants::for_section("inspect");
    if let Some(s) = &script {
        s.grant_imports(&mut grants);
    }
    Arc::new(PluginContext {
        name: name.to_string(),
        grants,
        limits: Limits::default(),
        config: Vec::new(),
        hostname: String::new(),
        interval: 0.0,
        facts: Default::default(),
        span: tracing::info_span!("plugin", kind = "inspect", name = %name),
        log_limit: Default::default(),
        script,
        tls: None,
    })
}

fn describe_as<W: World>(
    runtime: &Runtime,
    c: &wasmtime::component::Component,
    script: Option<Arc<python::Script>>,
) -> Result<Description, String> {
    let mut i = runtime
        .instance::<W>(c, probe("inspect", script))
        .map_err(|e| format!("it cannot be instantiated: {e:#}"))?;
    i.describe()
        .map_err(|e| format!("its describe failed: {e}"))
}

/// Inspects the component file at `path`, compiling it with `runtime`.
pub fn inspect(runtime: &Runtime, path: &Path) -> Result<Inspection, String> {
    let shown = path.display();
    // A Python collector script: its own digest and size; the component
    // is the Python runtime that runs it.
    let (sha256, size, component, script) = if python::is_script(&path.to_string_lossy()) {
        let script = python::read_script(path, None)
            .map_err(|e| format!("{e:#}"))?
            .with_python_path(&[]);
        let component = runtime
            .python(Metering::None)
            .map_err(|e| format!("{shown}: {e:#}"))?;
        let (sha256, size) = (script.sha256.clone(), script.source.len() as u64);
        (sha256, size, component, Some(Arc::new(script)))
    } else {
        let bytes = read_component_file(path).map_err(|e| format!("{e:#}"))?;
        let sha256 = hex_sha256(&bytes);
        let size = bytes.len() as u64;
        drop(bytes);
        let component = runtime
            .component(&ComponentRef::File(path.to_path_buf()), Metering::None)
            .map_err(|e| format!("{e:#}"))?;
        (sha256, size, component, None)
    };
    described(
        runtime,
        &shown.to_string(),
        &component,
        script,
        sha256,
        size,
    )
}

/// What the component file at `path` describes itself as (run as
/// [`inspect`] runs it).
pub fn description(runtime: &Runtime, path: &Path) -> Result<Description, String> {
    let component = runtime
        .component(&ComponentRef::File(path.to_path_buf()), Metering::None)
        .map_err(|e| format!("{e:#}"))?;
    let c = contract::read(&component).map_err(|e| format!("{}: {e}", path.display()))?;
    match c.world {
        "collector" => describe_as::<CollectorPlugin>(runtime, &component, None),
        _ => describe_as::<Handler>(runtime, &component, None),
    }
    .and_then(|d| accept_description(d, None))
}

/// Inspects the built-in component `name`.
pub fn inspect_builtin(runtime: &Runtime, name: &str) -> Result<Inspection, String> {
    let r = ComponentRef::Builtin(name.to_string());
    let component = runtime
        .component(&r, Metering::None)
        .map_err(|e| format!("{e:#}"))?;
    let sha256 = crate::plugin::builtin_digest(name).unwrap_or_default();
    described(runtime, name, &component, None, sha256.to_string(), 0)
}

/// What a compiled component (and its script, for a Python collector)
/// describes itself as, shown as `shown`.
fn described(
    runtime: &Runtime,
    shown: &str,
    component: &wasmtime::component::Component,
    script: Option<Arc<python::Script>>,
    sha256: String,
    size: u64,
) -> Result<Inspection, String> {
    let c = contract::read(component).map_err(|e| format!("{shown}: {e}"))?;
    let d = match c.world {
        "collector" => describe_as::<CollectorPlugin>(runtime, component, script.clone()),
        _ => describe_as::<Handler>(runtime, component, script.clone()),
    }
    .and_then(|d| accept_description(d, script.as_deref()))
    .map_err(|e| {
        // A script's load error starts with the script's path already.
        if e.starts_with(shown) {
            e
        } else {
            format!("{shown}: {e}")
        }
    })?;
    let compiled_size = component.serialize().map(|b| b.len() as u64).unwrap_or(0);
    // What `configure` would get with no host keys and no options.
    let defaults = overlay(&d, Vec::new(), &[]);
    let capabilities = d
        .capabilities
        .iter()
        .map(|cap| {
            let (kind, value, grants_key) = capability_parts(cap);
            Ask {
                kind,
                value: value.to_string(),
                grants_key,
                grant_values: asked_grants(cap, &defaults),
            }
        })
        .collect();
    Ok(Inspection {
        file: shown.to_string(),
        world: c.world,
        serves: c.serves,
        contract: c.version.to_string(),
        agent_contract: contract::host_version().to_string(),
        options: d
            .options
            .iter()
            .map(|o| OptionDoc {
                key: o.key.clone(),
                default: toml_value(&o.default),
                help: o.help.clone(),
            })
            .collect(),
        name: d.name,
        version: d.version,
        summary: d.summary,
        capabilities,
        imports: c.imports,
        sha256,
        size,
        compiled_size,
    })
}

impl Inspection {
    /// The sample config section that loads it, pinned, with its grants.
    pub fn section(&self) -> String {
        self.section_named(&self.name)
    }

    /// [`Inspection::section`], as `[…s.NAME]`.
    pub fn section_named(&self, name: &str) -> String {
        let mut out = format!(
            "[{}s.{}]\ncomponent = {:?}\nsha256 = \"{}\"\n",
            self.world, name, self.file, self.sha256
        );
        if self.world == "collector" {
            out.push_str("enabled = true\n");
        }
        let mut keys: Vec<(&str, Vec<&str>)> = Vec::new();
        if self.serves {
            out.push_str("listen = \"127.0.0.1:9108\"\nlisten_path = \"/metrics\"\n");
            keys.push(("listen", vec!["\"127.0.0.1:9108\""]));
        }
        for a in &self.capabilities {
            let slot = match keys.iter_mut().find(|(k, _)| *k == a.grants_key) {
                Some(s) => s,
                None => {
                    keys.push((a.grants_key, Vec::new()));
                    keys.last_mut().unwrap()
                }
            };
            slot.1.extend(a.grant_values.iter().map(String::as_str));
        }
        if !keys.is_empty() {
            out.push_str(&format!("\n[{}s.{}.grants]\n", self.world, name));
            for (k, v) in keys {
                out.push_str(&format!("{k} = [{}]\n", v.join(", ")));
            }
        }
        out
    }

    /// The report a person reads (guest strings escaped).
    pub fn text(&self) -> String {
        let g = |s: &str| guest_text(s).into_owned();
        let mut out = String::new();
        out.push_str(&format!(
            "{}: a {} component{}, contract wdiamond:plugin@{} (this agent: @{})\n",
            self.file,
            self.world,
            if self.serves {
                " (an exporter: the agent serves the page it renders on `listen`)"
            } else {
                ""
            },
            self.contract,
            self.agent_contract
        ));
        out.push_str(&format!(
            "  name      {} {}\n",
            g(&self.name),
            g(&self.version)
        ));
        out.push_str(&format!("  summary   {}\n", g(&self.summary)));
        out.push_str(&format!(
            "  sha256    {}\n  size      {} bytes (compiled: {} bytes)\n",
            self.sha256, self.size, self.compiled_size
        ));
        out.push_str("  options\n");
        if self.options.is_empty() {
            out.push_str("    (none)\n");
        }
        for o in &self.options {
            out.push_str(&format!(
                "    {} = {}    # {}\n",
                g(&o.key),
                g(&o.default),
                g(&o.help)
            ));
        }
        out.push_str("  asks for (granted only if the config lists it)\n");
        if self.capabilities.is_empty() {
            out.push_str("    (nothing)\n");
        }
        for a in &self.capabilities {
            out.push_str(&format!(
                "    {} {}  ->  grants.{} += [{}]\n",
                a.kind,
                g(&a.value),
                a.grants_key,
                g(&a.grant_values.join(", "))
            ));
        }
        out.push_str("  imports\n");
        for i in &self.imports {
            out.push_str(&format!("    {}\n", g(i)));
        }
        out.push_str("\nTo run it, pinned (add to the config):\n\n");
        for l in self.section().lines() {
            out.push_str(&format!("  {}\n", g(l)));
        }
        out
    }
}
