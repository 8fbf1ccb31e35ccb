//! The `wdiamond` command: a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wdiamond::agent::{self, Agent, Control};
use wdiamond::host::HostFacts;
use wdiamond::plugin::Runtime;

/// `sysexits.h`'s EX_CONFIG: the configuration is wrong.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "wdiamond",
    version,
    about = "The Diamond metrics agent, with every collector and handler a sandboxed WebAssembly component"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent in the foreground.
    Run {
        /// The configuration file.
        config: PathBuf,
        /// Log level (error, warn, info, debug, trace) or a tracing filter.
        #[arg(long, default_value = "info")]
        log_level: String,
    },
    /// Validate the configuration (loading every plugin) and exit.
    Check {
        /// The configuration file.
        config: PathBuf,
    },
}

fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("--log-level {level:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

fn load(
    path: &PathBuf,
) -> Result<(wdiamond::config::Config, Arc<Runtime>, agent::Loaded), ExitCode> {
    let report = |errors: &wdiamond::config::ConfigErrors| {
        eprint!("{errors}");
        ExitCode::from(EX_CONFIG)
    };
    let config = wdiamond::config::load(path).map_err(|e| report(&e))?;
    let runtime = Runtime::new(&config.server.plugin_cache_dir).map_err(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })?;
    let loaded = agent::load(&runtime, &config, &HostFacts::default()).map_err(|e| report(&e))?;
    Ok((config, runtime, loaded))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => {
            let _ = init_logging("warn");
            match load(&config) {
                Ok((c, _, loaded)) => {
                    println!(
                        "{}: OK ({} collectors enabled: {}; handlers: {})",
                        config.display(),
                        loaded.collectors.len(),
                        loaded
                            .collectors
                            .iter()
                            .map(|c| c.config.plugin.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.server.handlers.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::Run { config, log_level } => {
            if let Err(e) = init_logging(&log_level) {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
            // Plugin calls run on the blocking pool (their host calls may
            // block up to the run's deadline): a few threads per core, not
            // one per concurrent run; a run past them waits its turn. Kept
            // alive longer than the default interval, so that collections
            // every 10 s reuse them instead of starting new ones.
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(wdiamond::agent::blocking_threads(cores))
                .thread_keep_alive(std::time::Duration::from_secs(60))
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: starting the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let code = rt.block_on(async move {
                let (c, runtime, loaded) = match tokio::task::block_in_place(|| load(&config)) {
                    Ok(x) => x,
                    Err(code) => return code,
                };
                // Where each plugin may write (its `directories` grant).
                let writers = loaded.collectors.iter().map(|c| &c.ctx).chain(loaded.handlers.iter().map(|h| &h.ctx));
                for ctx in writers {
                    for dir in &ctx.grants.directories {
                        tracing::info!(plugin = %ctx.name, "may write in {}", dir.display());
                    }
                }
                tracing::info!(config = %config.display(), collectors = loaded.collectors.len(), handlers = loaded.handlers.len(), "wdiamond {} started", env!("CARGO_PKG_VERSION"));
                let agent = Agent::start(runtime, HostFacts::default(), &config, &c, loaded);
                let released = wdiamond::memory::release_startup_pages();
                tracing::debug!(mapped = released, "start-up pages released");
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tokio::spawn(signals(tx));
                agent.run(rx).await;
                tracing::info!("stopped");
                ExitCode::SUCCESS
            });
            // A reload abandoned at the stop may still be in a plugin's
            // setup call (bounded by its deadline): do not wait for it.
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            code
        }
    }
}

/// The longest a stop may take after SIGTERM or SIGINT: collectors' and
/// handlers' grace, with room for the aborted calls to return. Past it
/// (which no plugin should be able to cause), the process exits anyway.
const STOP_LIMIT: std::time::Duration =
    std::time::Duration::from_secs(2 * agent::SHUTDOWN_GRACE.as_secs() + 5);

/// Exits the process if the stop has not ended within [`STOP_LIMIT`].
fn watchdog() {
    let _ = std::thread::Builder::new()
        .name("wdiamond-stop-watchdog".into())
        .spawn(|| {
            std::thread::sleep(STOP_LIMIT);
            eprintln!("wdiamond: the stop took longer than {STOP_LIMIT:?}; exiting now");
            std::process::exit(1);
        });
}

async fn signals(tx: tokio::sync::mpsc::Sender<Control>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        let c = tokio::select! {
            _ = term.recv() => Control::Shutdown,
            _ = int.recv() => Control::Shutdown,
            _ = hup.recv() => Control::Reload,
        };
        tracing::info!(?c, "signal received");
        if c == Control::Shutdown {
            watchdog();
            let _ = tx.send(c).await;
            break;
        }
        if tx.send(c).await.is_err() {
            return;
        }
    }
    // A second SIGTERM or SIGINT during the stop: exit at once.
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("wdiamond: second stop signal; exiting now");
    std::process::exit(1);
}
