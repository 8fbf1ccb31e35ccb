//! The `wdiamond` command: a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use wdiamond::agent::{self, Agent};
use wdiamond::host::HostFacts;
use wdiamond::plugin::Runtime;
use wdiamond::redact::redact;

mod cli;

use cli::{registry, Cli, Command, LogArgs, LogFormat, NewKind, NewLang};

/// `sysexits.h`'s EX_CONFIG: the configuration is wrong.
const EX_CONFIG: u8 = 78;

/// Colour only for a terminal, and never when `NO_COLOR` is set
/// (<https://no-color.org>).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("--log-level {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(wdiamond::redact::Stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    Ok(())
}

fn load(
    path: &std::path::Path,
) -> Result<(wdiamond::config::Config, Arc<Runtime>, agent::Loaded), ExitCode> {
    let report = |errors: &wdiamond::config::ConfigErrors| {
        eprint!("{errors}");
        ExitCode::from(EX_CONFIG)
    };
    let config = wdiamond::config::load(path).map_err(|e| report(&e))?;
    registry::pull_missing(&config)?;
    let runtime = runtime(&config.server.plugin_cache_dir)?;
    let loaded = agent::load(&runtime, &config, &HostFacts::default()).map_err(|e| report(&e))?;
    Ok((config, runtime, loaded))
}

fn runtime(cache: &std::path::Path) -> Result<Arc<Runtime>, ExitCode> {
    Runtime::new(cache).map_err(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

/// The async runtime of `run` and `once`. Plugin calls run on the
/// blocking pool (their host calls may block up to the run's deadline): a
/// few threads per core, not one per concurrent run; a run past them waits
/// its turn. Kept alive longer than the default interval, so that
/// collections every 10 s reuse them instead of starting new ones. One
/// async worker: the async side only waits (signals, stops, handler
/// queues, scrapes) and hands work to the pool; a second worker only woke
/// the first to look for work (BENCHMARKS.md, "Footprint").
fn tokio_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // One malloc arena per pair of threads at most, not one per blocking
    // thread that ever allocated: each arena keeps its own touched pages.
    // SAFETY: mallopt only sets an allocator parameter (under the
    // allocator's own lock).
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .max_blocking_threads(wdiamond::agent::blocking_threads(cores))
        .thread_keep_alive(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| {
            eprintln!("error: starting the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::New {
            kind,
            name,
            dir,
            lang,
        } => new(kind, &name, dir, lang),
        Command::Config { plugins } => sample(&plugins),
        Command::Convert { file, output } => convert(&file, output.as_deref()),
        Command::Inspect { file, json } => inspect(&file, json),
        Command::Publish(args) => {
            let _ = init_logging("warn", LogFormat::Text);
            registry::publish(&args)
        }
        Command::Install(args) => {
            let _ = init_logging("warn", LogFormat::Text);
            registry::install(&args)
        }
        Command::Keygen { prefix } => registry::keygen(&prefix),
        Command::Once {
            config,
            collectors,
            wait,
            format,
            log,
        } => once(&config, &collectors, wait, format, &log),
        Command::Run {
            config,
            pidfile,
            log,
        } => run(&config, pidfile.as_deref(), &log),
    };
    result.unwrap_or_else(|code| code)
}

fn check(config: &std::path::Path) -> Result<ExitCode, ExitCode> {
    let _ = init_logging("warn", LogFormat::Text);
    let (c, _, loaded) = load(config)?;
    print!("{}", redact(&wdiamond::check::summary(&c, &loaded)));
    let (routes, nowhere) = wdiamond::check::routing(&loaded);
    print!("{}", redact(&routes));
    let (review, warnings) = wdiamond::check::third_party(&loaded);
    let warnings = warnings + nowhere;
    if !review.is_empty() {
        println!("\nPlugins that are not built in (what they ask for, what they are granted):");
        print!("{}", redact(&review));
    }
    if warnings > 0 {
        eprintln!("{}: {warnings} warning(s) above", config.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn new(
    kind: NewKind,
    name: &str,
    dir: Option<PathBuf>,
    lang: NewLang,
) -> Result<ExitCode, ExitCode> {
    use wdiamond::new::{Kind, Lang};
    let kind = match kind {
        NewKind::Collector => Kind::Collector,
        NewKind::Handler => Kind::Handler,
        NewKind::Exporter => Kind::Exporter,
    };
    let lang = match lang {
        NewLang::Rust => Lang::Rust,
        NewLang::Python => Lang::Python,
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    wdiamond::new::create(kind, lang, name, &dir).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    if lang == Lang::Python {
        println!(
            "wrote {d}/ (a Python collector, Diamond-style)\n\n  cd {d}\n  python3 -m unittest\n  wdiamond inspect {s}\n  wdiamond once {name}.toml\n",
            d = dir.display(),
            s = wdiamond::new::python_script(name).display(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let wasm = wdiamond::new::artifact(name);
    println!(
        "wrote {d}/ (a {k}, with the wdiamond SDK and the WIT contract)\n\n  cd {d}\n  cargo test\n  cargo build --release --target wasm32-wasip2\n  wdiamond inspect {w}\n  wdiamond once {name}.toml\n",
        d = dir.display(),
        k = match kind {
            wdiamond::new::Kind::Collector => "collector",
            wdiamond::new::Kind::Handler => "handler",
            wdiamond::new::Kind::Exporter => "exporter (a handler whose page the agent serves)",
        },
        w = wasm.display(),
    );
    Ok(ExitCode::SUCCESS)
}

fn convert(file: &std::path::Path, output: Option<&std::path::Path>) -> Result<ExitCode, ExitCode> {
    let _ = init_logging("error", LogFormat::Text);
    let runtime = runtime(&wdiamond::config::default_cache_dir())?;
    let c = match wdiamond::convert::convert(&runtime, file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(EX_CONFIG));
        }
    };
    match output {
        Some(o) => {
            if let Err(e) = std::fs::write(o, &c.toml) {
                eprintln!("error: writing {}: {e}", o.display());
                return Err(ExitCode::FAILURE);
            }
        }
        None => print!("{}", c.toml),
    }
    for n in &c.notes {
        let mark = if n.lost { "not carried over: " } else { "" };
        eprintln!("{}:{}: {mark}{}", n.file.display(), n.line, n.text);
    }
    let lost = c.notes.iter().filter(|n| n.lost).count();
    eprintln!(
        "converted {}: {} note(s), {lost} thing(s) not carried over",
        file.display(),
        c.notes.len()
    );
    Ok(if lost > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn sample(plugins: &[String]) -> Result<ExitCode, ExitCode> {
    let _ = init_logging("error", LogFormat::Text);
    let runtime = runtime(&wdiamond::config::default_cache_dir())?;
    match wdiamond::sample::sample(&runtime, plugins) {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ wdiamond::sample::SampleError::Unknown(..)) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn inspect(file: &std::path::Path, json: bool) -> Result<ExitCode, ExitCode> {
    let _ = init_logging("error", LogFormat::Text);
    let runtime = runtime(&wdiamond::config::default_cache_dir())?;
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    match wdiamond::inspect::inspect(&runtime, &file) {
        Ok(i) if json => {
            println!("{}", serde_json::to_string_pretty(&i).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Ok(i) => {
            print!("{}", i.text());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn once(
    config: &std::path::Path,
    names: &[String],
    wait: f64,
    format: wdiamond::once::Format,
    log: &LogArgs,
) -> Result<ExitCode, ExitCode> {
    let level = if log.log_level == "info" {
        "warn"
    } else {
        log.log_level.as_str()
    };
    if let Err(e) = init_logging(level, log.log_format) {
        eprintln!("error: {e:#}");
        return Err(ExitCode::from(2));
    }
    if !(0.0..=3600.0).contains(&wait) {
        eprintln!("error: --wait {wait}: give 0 to 3600 seconds");
        return Err(ExitCode::from(2));
    }
    let report = |errors: &wdiamond::config::ConfigErrors| {
        eprint!("{errors}");
        ExitCode::from(EX_CONFIG)
    };
    let c = wdiamond::config::load(config).map_err(|e| report(&e))?;
    let c = wdiamond::once::select(&c, names).map_err(|e| report(&e))?;
    registry::pull_missing(&c)?;
    let runtime = runtime(&c.server.plugin_cache_dir)?;
    let rt = tokio_runtime()?;
    let outcomes = rt.block_on(async {
        // What plugins publish, line by line, never showing a secret.
        let mut out = wdiamond::redact::Lines::new(std::io::stdout().lock());
        wdiamond::once::run(
            runtime,
            &c,
            std::time::Duration::from_secs_f64(wait),
            format,
            &mut out,
        )
        .await
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    let outcomes = outcomes.map_err(|e| report(&e))?;
    let (text, ok) = wdiamond::once::summary(&outcomes);
    eprint!("{}", redact(&text));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run(
    config: &std::path::Path,
    pidfile: Option<&std::path::Path>,
    log: &LogArgs,
) -> Result<ExitCode, ExitCode> {
    if let Err(e) = init_logging(&log.log_level, log.log_format) {
        eprintln!("error: {e:#}");
        return Err(ExitCode::from(2));
    }
    let rt = tokio_runtime()?;
    let code = rt.block_on(async move {
        // Signal handlers first: a SIGHUP sent as soon as the pidfile
        // exists must reload, not kill.
        let Some(signals) = agent::signals::Signals::install() else {
            eprintln!("error: cannot install the signal handlers");
            return ExitCode::FAILURE;
        };
        let (c, runtime, mut loaded) = match tokio::task::block_in_place(|| load(config)) {
            Ok(x) => x,
            Err(code) => return code,
        };
        if let Err(e) = agent::open_spools(&mut loaded) {
            eprint!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
        // Where each plugin may write (its `directories` grant).
        let writers = loaded
            .collectors
            .iter()
            .map(|c| &c.ctx)
            .chain(loaded.handlers.iter().map(|h| &h.ctx));
        for ctx in writers {
            for dir in &ctx.grants.directories {
                tracing::info!(plugin = %ctx.name, "may write in {}", dir.display());
            }
        }
        let _pidfile = match pidfile.map(wdiamond::pidfile::PidFile::create).transpose() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(config = %config.display(), collectors = loaded.collectors.len(), handlers = loaded.handlers.len(), pid = std::process::id(), "wdiamond {} started", env!("CARGO_PKG_VERSION"));
        let agent = Agent::start(runtime, HostFacts::default(), config, &c, loaded);
        let released = wdiamond::memory::release_startup_pages();
        tracing::debug!(mapped = released, "start-up pages released");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(signals.forward(tx));
        wdiamond::notify::ready();
        agent.run(rx).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    });
    // A reload abandoned at the stop may still be in a plugin's
    // setup call (bounded by its deadline): do not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(code)
}
