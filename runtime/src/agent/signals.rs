//! The agent's signals: SIGTERM and SIGINT stop it (a second one ends the
//! process at once, and a watchdog ends a stop that overruns), SIGHUP
//! reloads. Installed before anything else, so that a SIGHUP sent as soon
//! as the pidfile exists reloads rather than kills.

use super::Control;

/// The longest a stop may take after SIGTERM or SIGINT: collectors' and
/// handlers' grace, with room for the aborted calls to return. Past it
/// (which no plugin should be able to cause), the process exits anyway.
pub const STOP_LIMIT: std::time::Duration =
    std::time::Duration::from_secs(2 * super::SHUTDOWN_GRACE.as_secs() + 5);

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

/// The agent's signal streams, installed before anything else.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// The streams of SIGTERM, SIGINT and SIGHUP; `None` when one cannot be installed.
    pub fn install() -> Option<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(Signals {
            term: signal(SignalKind::terminate()).ok()?,
            int: signal(SignalKind::interrupt()).ok()?,
            hup: signal(SignalKind::hangup()).ok()?,
        })
    }

    /// Turns signals into the agent's controls until the stop.
    pub async fn forward(self, tx: tokio::sync::mpsc::Sender<Control>) {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = self;
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
}
