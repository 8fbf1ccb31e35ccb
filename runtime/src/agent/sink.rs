//! What a handler's loop asks of a handler instance: a plugin's
//! ([`Instance<Handler>`]), or a test's stand-in. The loop holds no
//! wasmtime type, so its timing is tested with paused tokio time.

use std::time::Duration;

use crate::bindings::exposition::{Page, Scrape};
use crate::metric::Batch;
use crate::plugin::{Failure, Handler, Instance};

/// What a call returned: the plugin's result, or a failure of the call.
pub(crate) type CallResult<T> = Result<Result<T, String>, Failure>;

/// A handler instance, as the loop uses it (on a blocking thread).
pub(crate) trait Sink: Send + 'static {
    /// Delivers `batch` within `deadline`; also says how many of its
    /// metrics the receiver refused for good (dropped, not delivered).
    fn process(&mut self, batch: Batch, deadline: Duration) -> (CallResult<()>, u64);
    /// Flushes within `deadline`.
    fn flush(&mut self, deadline: Duration) -> CallResult<()>;
    /// Renders the page of one scrape within `deadline`.
    fn render(&mut self, scrape: &Scrape, deadline: Duration) -> CallResult<Page>;
    /// Tells the instance the agent is stopping (its next flush is its last).
    fn set_stopping(&mut self, stopping: bool);
    /// What it sent and has not seen confirmed (see
    /// [`Instance::held_batches`]).
    fn held_batches(&self) -> Vec<Batch>;
}

impl Sink for Instance<Handler> {
    fn process(&mut self, batch: Batch, deadline: Duration) -> (CallResult<()>, u64) {
        let (r, usage) = Instance::process(self, batch, deadline);
        (r, usage.calls.refused)
    }

    fn flush(&mut self, deadline: Duration) -> CallResult<()> {
        Instance::flush(self, deadline).0
    }

    fn render(&mut self, scrape: &Scrape, deadline: Duration) -> CallResult<Page> {
        Instance::render(self, scrape, deadline).0
    }

    fn set_stopping(&mut self, stopping: bool) {
        Instance::set_stopping(self, stopping)
    }

    fn held_batches(&self) -> Vec<Batch> {
        Instance::held_batches(self)
    }
}
