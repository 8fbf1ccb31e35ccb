//! `wdiamond:plugin/log`: guest log lines into the plugin's tracing span,
//! cut to one line of [`crate::logging::MAX_GUEST_TEXT`] bytes, at most
//! [`MAX_LINES_PER_RUN`] a run and [`crate::logging::LOG_BURST`] a minute.

use super::HostState;
use crate::bindings::wit_log::{Host, Level};

/// Most log lines per run; the rest are counted as dropped.
pub const MAX_LINES_PER_RUN: u64 = 200;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.stats.logs >= MAX_LINES_PER_RUN {
            self.stats.logs_dropped += 1;
            return;
        }
        self.stats.logs += 1;
        // Cut, on one line, and within the plugin's rate for `log` lines.
        let Some(suppressed) = self.ctx.log_limit.admit(crate::logging::Kind::Log) else {
            self.stats.logs_dropped += 1;
            return;
        };
        let message = crate::logging::guest_text(&message);
        let _g = self.ctx.span.enter();
        match level {
            Level::Debug => tracing::debug!(target: "wdiamond::guest", suppressed, "{message}"),
            Level::Info => tracing::info!(target: "wdiamond::guest", suppressed, "{message}"),
            Level::Warn => tracing::warn!(target: "wdiamond::guest", suppressed, "{message}"),
            Level::Error => tracing::error!(target: "wdiamond::guest", suppressed, "{message}"),
        }
    }
}
