//! `wdiamond:plugin/batches`: the batches a handler's `process` receives,
//! kept in the host. A handler reads their columns (`columns`, a copy into
//! its memory) or has their lines written to a connection
//! (`connection.send-lines`, no copy into it).
//!
//! A handler may keep batch handles past `process`; the host bounds what
//! that holds (see [`HostState::hand_over`]).

use wasmtime::component::Resource;

use super::HostState;
use crate::bindings::batches::{Host, HostBatch};
use crate::bindings::types::{HostError, MetricBatch};
use crate::metric::Batch;

/// Batches whose metrics the host keeps for a handler: older ones it still
/// holds are emptied.
pub const MAX_KEPT: usize = 8;
/// Batch handles a handler may hold: past it the oldest are deleted.
pub const MAX_HANDLES: usize = 1024;

/// The host side of a `batch` resource.
#[derive(Debug)]
pub struct HeldBatch {
    /// The metrics (slices of queued chunks); `None` once the host let go
    /// of them.
    batch: Option<Batch>,
    /// How many metrics it had (still answered once released).
    len: u32,
    /// The handler said the receiver refused it for good (`refuse`).
    refused: bool,
}

impl HeldBatch {
    /// The metrics, or why not.
    pub fn batch(&self) -> Result<&Batch, HostError> {
        self.batch.as_ref().ok_or_else(|| {
            HostError::Invalid(format!(
                "this batch was released: the host keeps the metrics of a handler's {MAX_KEPT} most recent batches"
            ))
        })
    }
}

impl HostState {
    /// A handle on `batch` for the handler's `process`. The handler's
    /// older batches are emptied past [`MAX_KEPT`] and deleted past
    /// [`MAX_HANDLES`], oldest first.
    pub fn hand_over(&mut self, batch: Batch) -> wasmtime::Result<Resource<HeldBatch>> {
        let len = batch.len().min(u32::MAX as usize) as u32;
        let r = self.table.push(HeldBatch {
            batch: Some(batch),
            len,
            refused: false,
        })?;
        self.held.push_back(r.rep());
        while self.held.len() > MAX_HANDLES {
            let rep = self.held.pop_front().expect("non-empty");
            let _ = self.table.delete(Resource::<HeldBatch>::new_own(rep));
        }
        // Every held batch but the newest MAX_KEPT is empty: only the one
        // that just left them needs emptying.
        if let Some(&rep) = self.held.iter().rev().nth(MAX_KEPT) {
            if let Ok(b) = self.table.get_mut(&Resource::<HeldBatch>::new_borrow(rep)) {
                b.batch = None;
            }
        }
        Ok(r)
    }

    /// The batches the handler still holds whose metrics the host kept
    /// (its newest few), oldest first: what an at-least-once handler has
    /// sent but not yet seen confirmed.
    pub fn held_batches(&self) -> Vec<Batch> {
        self.held
            .iter()
            .filter_map(|&rep| {
                let r = Resource::<HeldBatch>::new_borrow(rep);
                self.table.get(&r).ok()?.batch().ok().cloned()
            })
            .collect()
    }
}

impl Host for HostState {}

impl HostBatch for HostState {
    fn len(&mut self, this: Resource<HeldBatch>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&this)?.len)
    }

    fn columns(
        &mut self,
        this: Resource<HeldBatch>,
    ) -> wasmtime::Result<Result<MetricBatch, HostError>> {
        Ok(self
            .table
            .get(&this)?
            .batch()
            .map(|b| b.to_chunk().into_batch()))
    }

    fn refuse(&mut self, this: Resource<HeldBatch>, reason: String) {
        let Ok(b) = self.table.get_mut(&this) else {
            return;
        };
        if std::mem::replace(&mut b.refused, true) {
            return;
        }
        let n = u64::from(b.len);
        self.stats.refused += n;
        if let Some(suppressed) = self.ctx.log_limit.admit(crate::logging::Kind::GuestError) {
            let _g = self.ctx.span.enter();
            tracing::warn!(
                dropped = n,
                suppressed,
                reason = %crate::logging::guest_text(&reason),
                "the receiver refused a batch for good (a retry would not help): its metrics are dropped"
            );
        }
    }

    fn drop(&mut self, this: Resource<HeldBatch>) -> wasmtime::Result<()> {
        let rep = this.rep();
        self.table.delete(this)?;
        if let Some(k) = self.held.iter().position(|&r| r == rep) {
            self.held.remove(k);
        }
        Ok(())
    }
}
