//! Which handlers a collector's metrics reach: the host's own metrics go
//! to the handlers that receive the host's, a tenant's only to the
//! handlers that belong to that tenant and those that receive every
//! tenant's (`Receives`, decided by the config and enforced here, by the
//! host; a guest cannot choose).

use std::sync::{Arc, RwLock};

use crate::config::Receives;
use crate::metric::Chunk;
use crate::queue::Queue;

/// One handler's queue and whose metrics it takes.
#[derive(Clone)]
pub struct Route {
    /// The handler's name.
    pub handler: String,
    /// Its queue.
    pub queue: Arc<Queue>,
    /// Whose metrics it receives.
    pub receives: Receives,
}

/// Where collectors send their metrics: the current handlers' routes.
pub type Router = Arc<RwLock<Vec<Route>>>;

/// A router sending everything to these queues (tools and tests).
pub fn to_all(queues: Vec<(String, Arc<Queue>)>) -> Router {
    Arc::new(RwLock::new(
        queues
            .into_iter()
            .map(|(handler, queue)| Route {
                handler,
                queue,
                receives: Receives::All,
            })
            .collect(),
    ))
}

/// Queues `chunk`, published by a collector of `tenant` (`None`: the
/// host's own), for every handler that receives it.
pub fn publish(router: &Router, tenant: Option<&str>, chunk: &Arc<Chunk>) {
    for r in router.read().unwrap_or_else(|p| p.into_inner()).iter() {
        if r.receives.accepts(tenant) {
            r.queue.push(chunk);
        }
    }
}

/// The handlers a collector of `tenant` reaches, by name.
pub fn reached(router: &Router, tenant: Option<&str>) -> Vec<String> {
    router
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|r| r.receives.accepts(tenant))
        .map(|r| r.handler.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::PluginStats;

    #[test]
    fn each_tenant_reaches_only_its_own_handlers() {
        let q = |n: &str| Queue::new(n, 100, Arc::new(PluginStats::default()), None);
        let (host, acme, beta, all) = (q("host"), q("acme"), q("beta"), q("all"));
        let router: Router = Arc::new(RwLock::new(vec![
            Route {
                handler: "host".into(),
                queue: host.clone(),
                receives: Receives::Host,
            },
            Route {
                handler: "acme".into(),
                queue: acme.clone(),
                receives: Receives::Tenant("acme".into()),
            },
            Route {
                handler: "beta".into(),
                queue: beta.clone(),
                receives: Receives::Tenant("beta".into()),
            },
            Route {
                handler: "all".into(),
                queue: all.clone(),
                receives: Receives::All,
            },
        ]));
        let one = || {
            let mut c = Chunk::default();
            let src = Arc::new(crate::metric::Source {
                host: "h".into(),
                collector: "c".into(),
                tenant: None,
                ttl: 1,
            });
            c.push(
                "a.b",
                1.0,
                0,
                crate::bindings::types::MetricKind::Gauge,
                1,
                None,
                &src,
            )
            .unwrap();
            Arc::new(c)
        };
        publish(&router, None, &one());
        publish(&router, Some("acme"), &one());
        publish(&router, Some("acme"), &one());
        publish(&router, Some("gamma"), &one());
        assert_eq!(
            (host.len(), acme.len(), beta.len(), all.len()),
            (1, 2, 0, 4)
        );
        assert_eq!(reached(&router, Some("acme")), vec!["acme", "all"]);
        assert_eq!(reached(&router, None), vec!["host", "all"]);
    }
}
