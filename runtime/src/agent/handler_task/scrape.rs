//! An exporter's scrapes: the page rendered by the handler between
//! deliveries, checked, and answered (a failure counted as any call's).

use super::{HandlerLoop, Step};
use crate::agent::exposition::{self, Reply, ScrapeRequest};
use crate::agent::outcome::{Call, CallFailed, Unsuccessful};
use crate::agent::sink::{CallResult, Sink};
use crate::bindings::exposition::Page;
use tokio::sync::mpsc;

impl<S: Sink> HandlerLoop<S> {
    /// Renders the page of scrape `r` on `inst` and answers it.
    pub(super) async fn serve(&mut self, inst: S, r: ScrapeRequest) -> Step {
        let deadline = self.settings.deadline;
        let rendered = tokio::task::spawn_blocking(move || {
            let mut inst = inst;
            let page = inst.render(&r.scrape, deadline);
            (inst, page, r.reply)
        })
        .await;
        match rendered {
            Ok((inst, page, reply)) => {
                let _g = self.events.span.enter();
                let (kept, answer) = self.answer(inst, page);
                let _ = reply.send(answer);
                self.instance = kept;
                Step::Next
            }
            Err(e) => {
                self.events
                    .span
                    .in_scope(|| tracing::error!(error = %e, "handler task failed"));
                Step::Stop
            }
        }
    }

    /// What a `render` call gives the client, counted as any call is; a
    /// failed instance is dropped (the next turn makes a new one).
    fn answer(&self, inst: S, page: CallResult<Page>) -> (Option<S>, Reply) {
        let limit = self.limit();
        let event = |call, outcome| CallFailed {
            call,
            outcome,
            retry: None,
        };
        match page {
            Ok(Ok(page)) => match exposition::check_page(&page) {
                Ok(()) => (Some(inst), Reply::Page(page)),
                Err(why) => {
                    event(Call::Page, Unsuccessful::GuestError(&why)).emit(&self.stats, limit);
                    let body = format!("the exporter's page is refused: {why}");
                    (Some(inst), Reply::Error(500, body))
                }
            },
            Ok(Err(msg)) => {
                event(Call::Render, Unsuccessful::GuestError(&msg)).emit(&self.stats, limit);
                (Some(inst), Reply::Error(500, exposition::error_body(&msg)))
            }
            Err(f) => {
                event(Call::Render, Unsuccessful::Failure(&f)).emit(&self.stats, limit);
                let body = format!("the exporter failed ({}); try again", f.kind.as_str());
                (None, Reply::Error(503, body))
            }
        }
    }
}

/// The next scrape waiting, if this handler serves a page (else never).
pub(super) async fn next_scrape(
    scrapes: &mut Option<mpsc::Receiver<ScrapeRequest>>,
) -> Option<ScrapeRequest> {
    match scrapes {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
