//! `wdiamond config`: a complete, commented sample configuration (as
//! `telegraf config` prints): every server key, every host key of a
//! collector and of a handler, and every built-in plugin with each of its
//! options, its default and its help, taken from the plugin's own
//! `describe`. `wdiamond check` accepts it as it is.
//!
//! The comment style: `## ` starts help text, `# ` a setting left at its
//! default (remove the `# ` to set it). Collectors are all present and
//! disabled; handlers other than `archive` (the default) are commented out
//! whole, since a handler section no one uses is a configuration error.

use std::fmt::Write as _;

use crate::inspect::{inspect_builtin, Inspection};
use crate::plugin::{builtin_names, Runtime};

/// A host key: its name, its default as TOML (or, for a key unset by
/// default, an example), and what it does.
type HostKey = (&'static str, &'static str, &'static str);

/// `[server]`.
const SERVER: &[HostKey] = &[
    ("collectors_config_path", "\"/etc/wdiamond/collectors\"", "A directory of NAME.toml files, one per collector, each overriding its [collectors.NAME]. Unset by default; for example:"),
    ("plugin_cache_dir", "\"~/.cache/wdiamond\"", "Where compiled components are kept (default: $XDG_CACHE_HOME/wdiamond or ~/.cache/wdiamond)."),
    ("host_root", "\"/host\"", "Read /proc and /sys under this directory instead (an agent in a container watching its host). Unset by default; for example:"),
    ("health_path", "\"wdiamond\"", "Publish every plugin's health counters (runs, errors, timeouts, denials, fuel, memory) under this path. Unset by default; for example:"),
    ("health_interval", "10", "Seconds between two health publications."),
    ("status_listen", "\"127.0.0.1:9109\"", "Serve GET /-/healthy, /-/ready and /metrics (the agent's own counters, Prometheus text) on this address. Unset by default; for example:"),
    ("trusted_keys", "[\"/etc/wdiamond/keys/author.pub\"]", "Public keys (PEM, ECDSA P-256, as `wdiamond keygen` or cosign write them) whose signature a component from a registry (`component = \"oci://…@sha256:…\"`) must carry; `wdiamond install` and pulls refuse anything else. Unset by default; for example:"),
    ("allow_unsigned", "[\"sha256:<the manifest digest `wdiamond install` prints>\"]", "Manifest digests installed and pulled without a trusted signature. Unset by default; for example:"),
    ("pull", "\"never\"", "\"never\": run and check load registry components only from the local store (`wdiamond install` fills it); \"missing\": pull what is not stored, verified as install verifies. Registries are set in [server.registries.\"HOST[:PORT]\"]: tls_ca, tls_cert, tls_key, insecure (plain HTTP to a host that is not this machine), username and password (a secret reference), auth_file (a docker config.json)."),
];

/// `[collectors.default]`, merged under every `[collectors.NAME]`.
const COLLECTOR: &[HostKey] = &[
    ("interval", "300", "Seconds between collections."),
    ("path_prefix", "\"servers\"", "First part of every metric path."),
    ("path_suffix", "\"\"", "Added after the host name."),
    ("instance_prefix", "\"instances\"", "Prefix of metrics published with an instance."),
    ("hostname", "\"myhost\"", "Use this host name. Unset by default; for example:"),
    ("hostname_method", "\"smart\"", "Diamond's: smart, fqdn_short, fqdn, fqdn_rev, uname_short, uname_rev, hostname, hostname_short, hostname_rev, none."),
    ("metrics_whitelist", "'^total\\.'", "A regex matched at the start of each metric name: only matching metrics are published (it wins over the blacklist). Unset by default; for example:"),
    ("metrics_blacklist", "'^cpu[0-9]+\\.'", "A regex matched at the start of each metric name: matching metrics are not published. Unset by default; for example:"),
    ("byte_unit", "[\"byte\"]", "Units for byte values (\"kilobyte\", [\"bit\", \"megabyte\"], ...)."),
    ("measure_collector_time", "false", "Also publish collector_time_ms."),
    ("publish_first_rate", "false", "A counter's first sample has no rate: nothing is published for it; true publishes Diamond's 0."),
    ("ttl_multiplier", "2", "A metric's ttl is this times the interval."),
    ("tenant", "\"acme\"", "The [tenants.NAME] a collector belongs to. Unset by default; for example:"),
];

/// Keys of a plugin's own section only (not of `[….default]`).
const SECTION_ONLY: &[HostKey] = &[
    ("component", "\"/opt/wdiamond/plugin.wasm\"", "A built-in's name, a path to a .wasm component, a Python collector script (.py), or a component installed from a registry by digest (oci://HOST/REPO@sha256:…); default: the section's name. Unset by default; for example:"),
    ("sha256", "\"the 64 hex digits `wdiamond inspect` prints\"", "Pin a component file or script to its SHA-256 (`wdiamond inspect FILE` prints the line). Unset by default; for example:"),
];

/// The TLS keys of every plugin section, collector or handler.
const TLS: &[HostKey] = &[
    ("tls", "false", "Every TCP connection of the plugin is TLS, done by the host, verifying the server's certificate."),
    ("tls_ca", "\"/etc/wdiamond/ca.pem\"", "Trust only these CAs (PEM file). Unset by default; for example:"),
    ("tls_cert", "\"/etc/wdiamond/client.pem\"", "A client certificate (PEM), for mutual TLS; needs tls_key. Unset by default; for example:"),
    ("tls_key", "\"/etc/wdiamond/client.key\"", "The client certificate's key (PEM). Unset by default; for example:"),
    ("tls_server_name", "\"carbon.example.org\"", "The name to verify and to send (SNI); default: the connected host. Unset by default; for example:"),
    ("insecure_skip_verify", "false", "Accept any certificate (logged as a warning at every start)."),
];

/// `[handlers.default]`, merged under every `[handlers.NAME]`.
const HANDLER: &[HostKey] = &[
    ("queue_size", "100000", "Metrics buffered in memory."),
    ("batch_size", "10000", "Metrics per delivery."),
    ("batch_timeout", "1", "Seconds the first metrics queued after a delivery wait for more (0: deliver each run at once)."),
    ("flush_interval", "1", "Seconds between flushes."),
    ("retry_max", "10", "Longest wait between retries, seconds."),
    ("spool_dir", "\"/var/lib/wdiamond/spool\"", "A write-ahead spool in spool_dir/NAME: what could not be delivered survives restarts. Unset by default; for example:"),
    ("spool_max_mb", "256", "Most disk the spool holds (the oldest segments go first)."),
    ("spool_sync", "1", "Seconds between group fsyncs of the spool."),
];

/// `[….grants]`: nothing is granted unless listed (a built-in gets what
/// its describe asks for).
const GRANTS: &[HostKey] = &[
    (
        "files",
        "[]",
        "Files it may read (absolute paths; * within a segment, ** across).",
    ),
    ("statvfs", "[]", "Mount points whose usage it may read."),
    (
        "commands",
        "[]",
        "Commands it may run, each an argv pattern: [\"/usr/bin/x\", \"**\"].",
    ),
    (
        "connect",
        "[]",
        "Where it may connect: \"tcp:HOST:PORT\", \"udp:HOST:PORT\", \"unix:/PATH\".",
    ),
    ("directories", "[]", "Directories it may write in."),
    (
        "listen",
        "[]",
        "Addresses an exporter may serve its page on.",
    ),
    (
        "run_as",
        "\"nobody\"",
        "The user its commands run as. Unset by default; for example:",
    ),
];

/// `[….limits]`.
const LIMITS: &[HostKey] = &[
    ("timeout", "5", "Seconds one run may take (default: what is left of the interval, at least 1 s). Unset by default; for example:"),
    ("fuel", "100000000", "Wasm instructions (roughly) per run (default: unlimited). Unset by default; for example:"),
    ("memory_mb", "64", "Each linear memory, MiB."),
    ("max_metrics", "100000", "Metrics per run (the rest dropped, counted)."),
    ("max_read_bytes", "8388608", "Bytes of one file read or command output."),
    ("command_timeout", "10", "Seconds a command may run."),
    ("socket_timeout", "10", "Seconds a connect, send or receive may wait."),
    ("disk_mb", "64", "MiB it may hold in its directories (64 for a .wasm or a script; unbounded for a built-in). Unset by default; for example:"),
    ("disk_files", "1000", "Entries it may hold in its directories. Unset by default; for example:"),
];

/// Why `config` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A name that is no built-in.
    #[error("no built-in plugin named {0:?} (built-ins: {1})")]
    Unknown(String, String),
    /// A built-in that could not describe itself.
    #[error("{0}")]
    Describe(String),
}

/// The sample configuration: the server and default sections, then every
/// built-in (or only those in `only`).
pub fn sample(runtime: &Runtime, only: &[String]) -> Result<String, SampleError> {
    let all = builtin_names();
    if let Some(bad) = only.iter().find(|n| !all.contains(&n.as_str())) {
        return Err(SampleError::Unknown(bad.clone(), all.join(", ")));
    }
    // Each built-in under its own name (a plugin may describe itself
    // under another: diskusage is Diamond's `iostat`).
    let plugins: Vec<(&str, Inspection)> = all
        .iter()
        .filter(|n| only.is_empty() || only.iter().any(|o| o == *n))
        .map(|n| {
            inspect_builtin(runtime, n)
                .map(|i| (*n, i))
                .map_err(SampleError::Describe)
        })
        .collect::<Result<_, _>>()?;
    let mut out = String::from(
        "# wdiamond: a complete sample configuration, from `wdiamond config`.\n\
         # `## ` starts help text; `# key = value` is a setting at its default:\n\
         # remove the `# ` to change it. `wdiamond check FILE` validates a file.\n\n",
    );
    out.push_str(
        "[server]\n## Handler instances the host's metrics go to.\nhandlers = [\"archive\"]\n",
    );
    keys(&mut out, SERVER);
    out.push_str("\n[collectors.default]\n## Merged under every [collectors.NAME]; a NAME.toml in collectors_config_path overrides both.\n");
    keys(&mut out, COLLECTOR);
    keys(&mut out, TLS);
    out.push_str("## In a [collectors.NAME] or [handlers.NAME] section only:\n");
    for (key, value, help) in SECTION_ONLY {
        let help = help.trim_end_matches(" Unset by default; for example:");
        help_lines(&mut out, "", &format!("{key} = {value}: {help}"));
    }
    out.push_str("\n## What a plugin may touch, fail-closed, usually per plugin: [collectors.NAME.grants]\n## (or [handlers.NAME.grants]); here, every collector's.\n# [collectors.default.grants]\n");
    keys(&mut out, GRANTS);
    out.push_str("\n## Limits, per plugin ([collectors.NAME.limits], [handlers.NAME.limits]) or here for every collector.\n# [collectors.default.limits]\n");
    keys(&mut out, LIMITS);
    out.push_str("\n## Merged under every [handlers.NAME]; the TLS keys, grants and limits above apply to handlers too.\n# [handlers.default]\n");
    keys(&mut out, HANDLER);
    for (name, p) in plugins.iter().filter(|(_, p)| p.world == "collector") {
        out.push('\n');
        help_lines(&mut out, "", &heading(name, p));
        let _ = write!(out, "[collectors.{name}]\nenabled = false\n");
        options(&mut out, "", p);
    }
    for (name, p) in plugins.iter().filter(|(_, p)| p.world == "handler") {
        // A handler section is used, or it is an error: all but the
        // default `archive` are left commented out.
        let off = if *name == "archive" { "" } else { "# " };
        out.push('\n');
        help_lines(&mut out, "", &heading(name, p));
        let _ = writeln!(out, "{off}[handlers.{name}]");
        if p.serves {
            let _ = writeln!(
                out,
                "{off}## The address the agent serves the page on (IP:PORT), and its path."
            );
            let _ = writeln!(
                out,
                "{off}# listen = \"127.0.0.1:9108\"\n{off}# listen_path = \"/metrics\""
            );
        }
        options(&mut out, off, p);
    }
    Ok(out)
}

/// What a built-in's section starts with: its name, version and summary.
fn heading(name: &str, p: &Inspection) -> String {
    let also = if p.name != name {
        format!(" (its metrics under `{}`)", p.name)
    } else {
        String::new()
    };
    format!("{name} {}{also}: {}", p.version, p.summary)
}

/// Host keys, each with its help, commented out at its default (or an
/// example).
fn keys(out: &mut String, keys: &[HostKey]) {
    for (key, value, help) in keys {
        help_lines(out, "", help);
        let _ = writeln!(out, "# {key} = {value}");
    }
}

/// A plugin's options, each with its help, at its default.
fn options(out: &mut String, off: &str, p: &Inspection) {
    for o in &p.options {
        help_lines(out, off, &o.help);
        let _ = writeln!(out, "{off}# {} = {}", o.key, o.default);
    }
}

fn help_lines(out: &mut String, off: &str, help: &str) {
    for line in help.lines().filter(|l| !l.trim().is_empty()) {
        // A plugin's help is its author's text: one line each, printable.
        let line = crate::logging::guest_text(line.trim());
        let _ = writeln!(out, "{off}## {line}");
    }
}
