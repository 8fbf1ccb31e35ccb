//! The command line: its commands and arguments, parsed once by clap in
//! `main` (the binary's alone; the library never sees them).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod registry;

/// The whole command line.
#[derive(Parser)]
#[command(
    name = "wdiamond",
    version,
    about = "The Diamond metrics agent, with every collector and handler a sandboxed WebAssembly component"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the agent in the foreground.
    Run {
        /// The configuration file.
        config: PathBuf,
        /// Write the agent's process id to this file once it runs (and its
        /// signal handlers are in place); refused while another live
        /// wdiamond holds it; removed at a clean stop.
        #[arg(long)]
        pidfile: Option<PathBuf>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Validate the configuration (loading every plugin), review what
    /// third-party plugins ask for against what they are granted, and exit.
    Check {
        /// The configuration file.
        config: PathBuf,
    },
    /// Write a new plugin project (SDK and WIT included) that builds into a
    /// component with `cargo build --release --target wasm32-wasip2`.
    New {
        /// `collector`, `handler` or `exporter` (a handler whose page the
        /// agent serves, e.g. for Prometheus).
        #[arg(value_enum)]
        kind: NewKind,
        /// The plugin's name (lowercase letters, digits, `_`, `-`).
        name: String,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// `rust` (a component built with the SDK) or `python` (a
        /// Diamond-style script; collectors only).
        #[arg(long, value_enum, default_value = "rust")]
        lang: NewLang,
    },
    /// Print a complete, commented sample configuration: every server and
    /// host key, every built-in plugin (or only those named) with each
    /// option, its default and its help; `check` accepts it as it is.
    Config {
        /// Built-in plugins to include (default: all of them).
        plugins: Vec<String>,
    },
    /// Convert Diamond's configuration (diamond.conf, with its
    /// collectors_config_path files) into wdiamond's TOML; what could not
    /// be carried over or was changed is reported on stderr with its line.
    /// Exit 0: all carried over; 1: something was not; 78: unreadable.
    Convert {
        /// Diamond's configuration file.
        file: std::path::PathBuf,
        /// Write the TOML here (default: stdout).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Show what a component file is and asks for: world, contract
    /// version, describe (options, capabilities), imports, sha256, sizes.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Push a component to an OCI registry (a `.wasm` layer, its describe
    /// in the config blob) and, with --key, sign it in cosign's format.
    Publish(registry::PublishArgs),
    /// Pull a component from an OCI registry by digest, verify its
    /// signature against the trusted keys, store it, and print the config
    /// section that loads it (what it asks for beside what it is granted).
    Install(registry::InstallArgs),
    /// Write a signing key pair, PREFIX.key (private, mode 0600) and
    /// PREFIX.pub (what operators trust): ECDSA P-256, cosign's default.
    Keygen {
        /// Path prefix of the two files.
        #[arg(default_value = "wdiamond")]
        prefix: PathBuf,
    },
    /// Run collectors twice, --wait apart, and print what they publish;
    /// nothing is sent to any handler. Exits non-zero when a run failed or
    /// a host call was denied.
    Once {
        /// The configuration file.
        config: PathBuf,
        /// The collectors to run (default: every enabled one).
        collectors: Vec<String>,
        /// Seconds between the two runs (counters need two for a rate).
        #[arg(long, default_value_t = 1.0)]
        wait: f64,
        /// How to print the metrics.
        #[arg(long, value_enum, default_value = "lines")]
        format: wdiamond::once::Format,
        #[command(flatten)]
        log: LogArgs,
    },
}

/// The kind of plugin `new` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NewKind {
    Collector,
    Handler,
    Exporter,
}

/// The language `new` writes the plugin in.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NewLang {
    Rust,
    Python,
}

/// How the agent logs.
#[derive(clap::Args)]
pub struct LogArgs {
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log lines as text (coloured only on a terminal, never with NO_COLOR
    /// set) or as one JSON object per line, for log shippers.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The log lines' format.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
