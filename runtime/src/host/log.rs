//! `wdiamond:plugin/log`: guest log lines into the plugin's tracing span,
//! capped in length and in number per run.

use super::HostState;
use crate::bindings::wit_log::{Host, Level};

/// Longest log line kept, in bytes.
pub const MAX_LINE: usize = 4096;
/// Most log lines per run; the rest are counted as dropped.
pub const MAX_LINES_PER_RUN: u64 = 200;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.stats.logs >= MAX_LINES_PER_RUN {
            self.stats.logs_dropped += 1;
            return;
        }
        self.stats.logs += 1;
        let mut message = message;
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let _g = self.ctx.span.enter();
        match level {
            Level::Debug => tracing::debug!(target: "wdiamond::guest", "{message}"),
            Level::Info => tracing::info!(target: "wdiamond::guest", "{message}"),
            Level::Warn => tracing::warn!(target: "wdiamond::guest", "{message}"),
            Level::Error => tracing::error!(target: "wdiamond::guest", "{message}"),
        }
    }
}
