//! `wdiamond convert DIAMOND.conf`: Diamond's configuration as wdiamond's
//! TOML, read as Diamond reads it (configobj: [`configobj`]), with a report
//! of everything not carried over or changed, each with its file and line.
//!
//! - `[server]`: `handlers` (class paths) become built-in handler names;
//!   `collectors_config_path` and `handlers_config_path` (`NAME.conf` per
//!   class) are read and merged over the main file's sections, as Diamond
//!   merges them; `collectors_path` is where scripts of collectors that are
//!   not built in are looked for; the rest (`user`, `pid_file`, …) is
//!   reported.
//! - `[handlers]`: each enabled handler with a built-in equivalent, its
//!   `[[default]]` merged under it, its options checked against the
//!   built-in's `describe`; defined but not enabled ones are reported.
//! - `[collectors]`: `[[default]]` becomes `[collectors.default]`; each
//!   `[[Class]]` (and `[[Class name]]`, a second instance) becomes its
//!   built-in, or else the Diamond script defining the class under
//!   `collectors_path`, run by the Python runtime with the grants its
//!   options imply (`host`/`port` -> `connect`), written out for review.
//! - Logging sections are reported: wdiamond logs to stderr (`--log-level`).

pub mod configobj;
mod tables;
mod values;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use configobj::{Section, Value};
pub use tables::{COLLECTORS, HANDLERS};
use tables::{COLLECTOR_HOST_KEYS, DIAMOND_ONLY};
use values::{guess, kind_of, quote, toml_of, Kind};

use crate::plugin::Runtime;

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// The file it is about.
    pub file: PathBuf,
    /// Its line (0: the file as a whole).
    pub line: usize,
    /// What happened.
    pub text: String,
    /// Whether something was not carried over (exit status 1).
    pub lost: bool,
}

/// What `convert` gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// The TOML configuration.
    pub toml: String,
    /// What was changed or not carried over, in file order.
    pub notes: Vec<Note>,
}

/// Why nothing could be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The file cannot be read.
    #[error("{0}: {1}")]
    Read(String, std::io::Error),
    /// The file is not configobj.
    #[error("{0}: {1}")]
    Syntax(String, configobj::SyntaxError),
}

fn read(path: &Path) -> Result<Section, ConvertError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConvertError::Read(path.display().to_string(), e))?;
    configobj::parse(&text).map_err(|e| ConvertError::Syntax(path.display().to_string(), e))
}

struct Ctx<'a> {
    runtime: &'a Runtime,
    /// The Diamond configuration's directory: relative paths are made
    /// absolute against it.
    dir: PathBuf,
    notes: Vec<Note>,
    out: String,
}

impl Ctx<'_> {
    fn note(&mut self, file: &Path, line: usize, lost: bool, text: String) {
        self.notes.push(Note {
            file: file.to_path_buf(),
            line,
            text,
            lost,
        });
    }

    /// The options a built-in takes, with their kinds.
    fn options(&self, builtin: &str) -> Vec<(String, Kind)> {
        crate::inspect::inspect_builtin(self.runtime, builtin)
            .map(|i| {
                i.options
                    .iter()
                    .map(|o| (o.key.clone(), kind_of(&o.default)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes `entries` (from `file`) that `known` takes; reports the rest.
    fn write_entries(
        &mut self,
        what: &str,
        entries: &[(PathBuf, configobj::Entry)],
        known: &[(String, Kind)],
    ) {
        for (f, e) in entries {
            if let Some((_, why)) = DIAMOND_ONLY.iter().find(|(k, _)| *k == e.key) {
                self.note(
                    f,
                    e.line,
                    false,
                    format!("{what}: `{}` is not carried over: {why}", e.key),
                );
                continue;
            }
            let mut value = e.value.clone();
            if let Value::Text(t) = &e.value {
                let path_like = ["_file", "_path", "_dir"]
                    .iter()
                    .any(|s| e.key.ends_with(s));
                let windows = t.as_bytes().get(1) == Some(&b':') || t.contains('\\');
                if path_like && windows {
                    self.note(
                        f,
                        e.line,
                        true,
                        format!("{what}: `{}` {t:?} is a Windows path; not carried over (the plugin's default stands)", e.key),
                    );
                    continue;
                }
                if path_like && !t.is_empty() && !t.contains("://") && !Path::new(t).is_absolute() {
                    let abs = self.dir.join(t).display().to_string();
                    self.note(
                        f,
                        e.line,
                        false,
                        format!("{what}: `{}` {t:?} is relative: written as {abs:?}", e.key),
                    );
                    value = Value::Text(abs);
                }
            }
            match known.iter().find(|(k, _)| *k == e.key) {
                Some((_, kind)) => match toml_of(&value, *kind) {
                    Some(v) => {
                        let _ = writeln!(self.out, "{} = {v}", e.key);
                    }
                    None => self.note(
                        f,
                        e.line,
                        true,
                        format!(
                            "{what}: `{}` is not a {kind:?} value; not carried over",
                            e.key
                        ),
                    ),
                },
                None => self.note(
                    f,
                    e.line,
                    true,
                    format!(
                        "{what}: `{}` has no equivalent here; not carried over",
                        e.key
                    ),
                ),
            }
        }
    }
}

/// The entries of `section`, then of `NAME.conf` in `dir` (which override
/// them, as Diamond merges them), each with its file.
fn merged(
    file: &Path,
    section: Option<&Section>,
    dir: Option<&Path>,
    class: &str,
    ctx: &mut Ctx<'_>,
) -> Vec<(PathBuf, configobj::Entry)> {
    let mut out: Vec<(PathBuf, configobj::Entry)> = section
        .map(|s| {
            s.entries
                .iter()
                .map(|e| (file.to_path_buf(), e.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(d) = dir {
        let extra = d.join(format!("{class}.conf"));
        if extra.is_file() {
            match read(&extra) {
                Ok(s) => {
                    for e in s.entries {
                        out.retain(|(_, o)| o.key != e.key);
                        out.push((extra.clone(), e));
                    }
                }
                Err(e) => ctx.note(&extra, 0, true, format!("not read: {e}")),
            }
        }
    }
    out
}

/// The Diamond script under `dir` that defines `class`.
fn find_script(dir: &Path, class: &str) -> Option<PathBuf> {
    let needle = format!("class {class}(");
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            seen += 1;
            if seen > 20_000 {
                return None;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "py")
                && std::fs::read_to_string(&p).is_ok_and(|t| t.contains(&needle))
            {
                return Some(p);
            }
        }
    }
    None
}

/// A section name for `[[Class instance]]`: the built-in's (or the
/// class's) name, then the instance's, in lowercase letters, digits and `_`.
fn section_name(base: &str, instance: Option<&str>) -> String {
    let raw = match instance {
        Some(i) => format!("{base}_{i}"),
        None => base.to_string(),
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Converts the Diamond configuration at `path`.
pub fn convert(runtime: &Runtime, path: &Path) -> Result<Conversion, ConvertError> {
    let root = read(path)?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let resolve = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            dir.join(p)
        }
    };
    let mut ctx = Ctx {
        runtime,
        dir: dir.clone(),
        notes: Vec::new(),
        out: format!(
            "# Converted by `wdiamond convert` from {}.\n# Review it (and the report on stderr), then `wdiamond check` it.\n\n",
            path.display()
        ),
    };
    let empty = Section::default();
    let server = root.section("server").unwrap_or(&empty);
    let collectors_path = resolve(
        &server
            .text("collectors_path")
            .unwrap_or_else(|| "/usr/share/diamond/collectors/".into()),
    );
    let collectors_config = server
        .text("collectors_config_path")
        .filter(|s| !s.is_empty())
        .map(|s| resolve(&s));
    let handlers_config = server
        .text("handlers_config_path")
        .filter(|s| !s.is_empty())
        .map(|s| resolve(&s));

    // [server]
    let mut enabled: Vec<(String, &'static str)> = Vec::new();
    for class_path in server.list("handlers") {
        let class = class_path
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        match HANDLERS.iter().find(|(c, _)| *c == class) {
            Some((_, ours)) => enabled.push((class, ours)),
            None => {
                let line = server.entry("handlers").map_or(0, |e| e.line);
                ctx.note(
                    path,
                    line,
                    true,
                    format!("handler {class_path} has no built-in equivalent; not carried over"),
                );
            }
        }
    }
    let names: Vec<String> = enabled.iter().map(|(_, o)| quote(o)).collect();
    let _ = writeln!(ctx.out, "[server]\nhandlers = [{}]", names.join(", "));
    for e in &server.entries {
        match e.key.as_str() {
            "handlers" | "collectors_path" | "collectors_config_path" | "handlers_config_path" => {}
            k => match DIAMOND_ONLY.iter().find(|(d, _)| *d == k) {
                Some((_, why)) => ctx.note(
                    path,
                    e.line,
                    false,
                    format!("[server] `{k}` is not carried over: {why}"),
                ),
                None => ctx.note(
                    path,
                    e.line,
                    true,
                    format!("[server] `{k}` has no equivalent here; not carried over"),
                ),
            },
        }
    }
    if collectors_config.is_some() {
        ctx.note(
            path,
            server.entry("collectors_config_path").map_or(0, |e| e.line),
            false,
            "collectors_config_path: its NAME.conf files are merged into this one file".into(),
        );
    }

    // [handlers]
    let handlers = root.section("handlers").unwrap_or(&empty);
    let handler_default = handlers.section("default");
    for s in &handlers.sections {
        if s.name == "default" {
            continue;
        }
        if !enabled.iter().any(|(c, _)| *c == s.name) {
            ctx.note(
                path,
                s.line,
                false,
                format!(
                    "[[{}]] is defined but not in [server] handlers; left out",
                    s.name
                ),
            );
        }
    }
    for (class, ours) in &enabled {
        let mut entries = merged(path, handler_default, None, class, &mut ctx);
        for (f, e) in merged(
            path,
            handlers.section(class),
            handlers_config.as_deref(),
            class,
            &mut ctx,
        ) {
            entries.retain(|(_, o)| o.key != e.key);
            entries.push((f, e));
        }
        let mut known = ctx.options(ours);
        known.extend(
            ["queue_size", "batch_size", "flush_interval", "retry_max"]
                .map(|k| (k.to_string(), Kind::Number)),
        );
        known.push(("spool_dir".into(), Kind::Text));
        // A handler is on by being in [server] handlers (Diamond's
        // Windows example also writes `enabled` in its sections).
        entries.retain(|(f, e)| {
            if e.key == "enabled" {
                ctx.notes.push(Note {
                    file: f.clone(),
                    line: e.line,
                    text: format!("[[{class}]]: `enabled` is left out: a handler is on when [server] handlers names it"),
                    lost: false,
                });
            }
            e.key != "enabled"
        });
        let _ = writeln!(ctx.out, "\n[handlers.{ours}]");
        ctx.write_entries(&format!("[[{class}]]"), &entries, &known);
    }
    for e in &handlers.entries {
        ctx.note(
            path,
            e.line,
            false,
            format!(
                "[handlers] `{}` is Python logging's; wdiamond logs to stderr (`--log-level`)",
                e.key
            ),
        );
    }

    // [collectors]
    let collectors = root.section("collectors").unwrap_or(&empty);
    let host_keys: Vec<(String, Kind)> = COLLECTOR_HOST_KEYS
        .iter()
        .map(|(k, t)| (k.to_string(), *t))
        .collect();
    if let Some(d) = collectors.section("default") {
        let entries = merged(
            path,
            Some(d),
            collectors_config.as_deref(),
            "default",
            &mut ctx,
        );
        let _ = writeln!(ctx.out, "\n[collectors.default]");
        ctx.write_entries("[[default]]", &entries, &host_keys);
    }
    for s in &collectors.sections {
        if s.name == "default" {
            continue;
        }
        let (class, instance) = match s.name.split_once(' ') {
            Some((c, i)) => (c.to_string(), Some(i.trim().to_string())),
            None => (s.name.clone(), None),
        };
        let entries = merged(
            path,
            Some(s),
            collectors_config.as_deref(),
            &s.name,
            &mut ctx,
        );
        let what = format!("[[{}]]", s.name);
        if let Some((_, ours)) = COLLECTORS.iter().find(|(c, _)| *c == class) {
            let name = section_name(ours, instance.as_deref());
            let _ = writeln!(ctx.out, "\n[collectors.{name}]");
            if instance.is_some() {
                let _ = writeln!(ctx.out, "component = {}", quote(ours));
                if !entries.iter().any(|(_, e)| e.key == "path") {
                    let _ = writeln!(
                        ctx.out,
                        "path = {}",
                        quote(&format!(
                            "{ours}.{}",
                            instance.as_deref().unwrap_or_default()
                        ))
                    );
                    ctx.note(path, s.line, false, format!("{what}: a second instance publishes under `{ours}.{}` here (set `path` to choose)", instance.as_deref().unwrap_or_default()));
                }
            }
            let mut known = ctx.options(ours);
            known.extend(host_keys.iter().cloned());
            ctx.write_entries(&what, &entries, &known);
            continue;
        }
        match find_script(&collectors_path, &class) {
            Some(script) => {
                let name = section_name(&class.trim_end_matches("Collector").to_ascii_lowercase(), instance.as_deref());
                let _ = writeln!(ctx.out, "\n[collectors.{name}]\ncomponent = {}", quote(&script.display().to_string()));
                for (f, e) in &entries {
                    if let Some((_, why)) = DIAMOND_ONLY.iter().find(|(k, _)| *k == e.key) {
                        ctx.note(f, e.line, false, format!("{what}: `{}` is not carried over: {why}", e.key));
                        continue;
                    }
                    let _ = writeln!(ctx.out, "{} = {}", e.key, guess(&e.value));
                }
                let host = entries.iter().rev().find(|(_, e)| e.key == "host").map(|(_, e)| guess(&e.value));
                let port = entries.iter().rev().find(|(_, e)| e.key == "port").map(|(_, e)| guess(&e.value));
                let mut connect = Vec::new();
                if let (Some(h), Some(p)) = (host, port) {
                    connect.push(quote(&format!("tcp:{}:{}", h.trim_matches('"'), p.trim_matches('"'))));
                }
                let _ = writeln!(ctx.out, "[collectors.{name}.grants]\nconnect = [{}]", connect.join(", "));
                ctx.note(path, s.line, false, format!("{what}: no built-in; runs Diamond's script {} under the Python runtime: review its grants (only what its host and port imply is granted)", script.display()));
            }
            None => ctx.note(path, s.line, true, format!("{what}: no built-in, and no script defining {class} under {} (collectors_path); not carried over", collectors_path.display())),
        }
    }
    for s in &root.sections {
        if !["server", "handlers", "collectors"].contains(&s.name.as_str()) {
            ctx.note(path, s.line, false, format!("[{}] is Python logging's; wdiamond logs to stderr (`--log-level`, `--log-format json`)", s.name));
        }
    }
    ctx.notes
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(Conversion {
        toml: ctx.out,
        notes: ctx.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_sections_are_named_safely() {
        assert_eq!(section_name("mysql", Some("db-2")), "mysql_db_2");
        assert_eq!(section_name("foo", None), "foo");
    }
}
