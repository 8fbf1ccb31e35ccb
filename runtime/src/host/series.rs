//! `wdiamond:plugin/series`: declaring series once (see [`crate::metric::series`]).
//! Not a grant: declaring touches nothing outside the agent; it is bounded
//! by the collector's `max_metrics`.

use super::HostState;
use crate::bindings::series::Host;
use crate::bindings::types::HostError;
use crate::metric::series::DeclareError;

impl Host for HostState {
    fn declare(
        &mut self,
        names: Vec<u8>,
        name_ends: Vec<u32>,
        instance: Option<String>,
    ) -> Result<u32, HostError> {
        let limit = self.ctx.limits.max_metrics as usize;
        match self.series.declare(&names, &name_ends, instance, limit) {
            Ok(first) => Ok(first),
            Err(e @ DeclareError::TooMany { .. }) => {
                self.ctx.span.in_scope(|| {
                    tracing::warn!(error = %e, "series not declared; raise [limits] max_metrics to allow more")
                });
                Err(self.failed(HostError::TooLarge(limit as u64)))
            }
            Err(e @ DeclareError::Malformed(_)) => {
                Err(self.failed(HostError::Invalid(e.to_string())))
            }
        }
    }
}
