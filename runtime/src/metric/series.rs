//! Declared series (`wdiamond:plugin/series`): names a collector publishes
//! at every run, checked, filtered and turned into full paths once.
//!
//! A collector instance's [`SeriesTable`] lives in its store (declare is a
//! host call): `declare` records the names ([`crate::host::series`] bounds
//! them), and the next publication ([`super::Publication`]) resolves them
//! — with its paths, filters and tenant prefix, handed in — before it
//! reads the run's `metric-set.series` column. Each later run only copies
//! a series' path into its line. The table knows nothing of publications.

use super::name::{check_name, check_name_bytes, Rejection, MAX_NAME};
use super::path::push_path;

pub use wdiamond_wire::NAMED;

/// What one declared series publishes as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// Its full path.
    Path(&'a str),
    /// The whitelist/blacklist filters it out.
    Filtered,
    /// Its name (or instance) is invalid: every metric of it is rejected.
    Rejected(&'a Rejection),
}

#[derive(Debug, Clone, Copy)]
enum Status {
    Ok,
    Filtered,
    Rejected(u32),
}

/// One `declare` call, not yet resolved.
#[derive(Debug)]
struct Pending {
    names: Vec<u8>,
    ends: Vec<u32>,
    instance: Option<String>,
}

/// The series one collector instance declared.
#[derive(Debug, Default)]
pub struct SeriesTable {
    pending: Vec<Pending>,
    declared: usize,
    paths: String,
    ends: Vec<usize>,
    status: Vec<Status>,
    reasons: Vec<Rejection>,
}

/// Why a `declare` call was refused (nothing of it is declared).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclareError {
    /// The instance would hold more series than its limit.
    #[error("declaring {asked} more series would exceed the instance's limit of {limit} (limits.max_metrics)")]
    TooMany {
        /// Series asked for.
        asked: usize,
        /// The limit.
        limit: usize,
    },
    /// `name-ends` is not increasing within `names`.
    #[error("malformed names: {0}")]
    Malformed(String),
}

impl SeriesTable {
    /// How many series were declared (resolved or not).
    pub fn len(&self) -> usize {
        self.declared
    }

    /// Whether none was declared.
    pub fn is_empty(&self) -> bool {
        self.declared == 0
    }

    /// Records the names `names[ends[i-1]..ends[i]]` under `instance`;
    /// returns the first id. Refused whole if the offsets are malformed or
    /// the table would hold more than `limit` series. A name is kept to at
    /// most `MAX_NAME + 1` bytes: longer ones are rejected all the same,
    /// and the host holds no more than that per series.
    pub fn declare(
        &mut self,
        names: &[u8],
        ends: &[u32],
        instance: Option<String>,
        limit: usize,
    ) -> Result<u32, DeclareError> {
        if ends.len() > limit.saturating_sub(self.declared) {
            return Err(DeclareError::TooMany {
                asked: ends.len(),
                limit,
            });
        }
        let mut kept = Pending {
            names: Vec::with_capacity(names.len().min(ends.len() * (MAX_NAME + 1))),
            ends: Vec::with_capacity(ends.len()),
            instance,
        };
        let mut start = 0usize;
        for (i, &end) in ends.iter().enumerate() {
            let end = end as usize;
            if end < start || end > names.len() {
                return Err(DeclareError::Malformed(format!(
                    "name {i} ends at {end}, outside {start}..={}",
                    names.len()
                )));
            }
            let name = &names[start..end];
            kept.names
                .extend_from_slice(&name[..name.len().min(MAX_NAME + 1)]);
            kept.ends.push(kept.names.len() as u32);
            start = end;
        }
        let first = self.declared as u32;
        self.declared += ends.len();
        self.pending.push(kept);
        Ok(first)
    }

    /// Resolves every series declared since the last call: name and
    /// instance checks, the filter `keep`, and the full path (`base` of the
    /// instance, with the tenant's prefix, then the name), once per series.
    pub fn resolve(&mut self, base: impl Fn(Option<&str>) -> String, keep: impl Fn(&str) -> bool) {
        for p in std::mem::take(&mut self.pending) {
            // A bad instance rejects every series of the call, for one reason.
            let instance = match &p.instance {
                Some(i) => check_name(i).map(|_| Some(i.as_str())).map_err(|r| {
                    self.reasons.push(r);
                    Status::Rejected(self.reasons.len() as u32 - 1)
                }),
                None => Ok(None),
            };
            let base = instance.map(&base).unwrap_or_default();
            let mut start = 0usize;
            for &end in &p.ends {
                let name = &p.names[start..end as usize];
                start = end as usize;
                let status = match (instance, check_name_bytes(name)) {
                    (Err(rejected), _) => rejected,
                    (Ok(_), Err(r)) => {
                        self.reasons.push(r);
                        Status::Rejected(self.reasons.len() as u32 - 1)
                    }
                    (Ok(_), Ok(name)) if !keep(name) => Status::Filtered,
                    (Ok(_), Ok(name)) => {
                        // An overlong path is refused when a line is made
                        // of it (`Chunk::finish_line`), as a named one is.
                        push_path(&mut self.paths, &base, name);
                        Status::Ok
                    }
                };
                self.ends.push(self.paths.len());
                self.status.push(status);
            }
        }
    }

    /// The mean length of the resolved paths (to size a run's lines).
    pub fn mean_path_len(&self) -> usize {
        self.paths.len() / self.ends.len().max(1)
    }

    /// What series `id` publishes as; `None` for an id never declared (or
    /// not resolved yet).
    #[inline]
    pub fn get(&self, id: u32) -> Option<Resolved<'_>> {
        let i = id as usize;
        let status = *self.status.get(i)?;
        Some(match status {
            Status::Ok => {
                let from = if i == 0 { 0 } else { self.ends[i - 1] };
                Resolved::Path(&self.paths[from..self.ends[i]])
            }
            Status::Filtered => Resolved::Filtered,
            Status::Rejected(k) => Resolved::Rejected(&self.reasons[k as usize]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorConfig;
    use crate::metric::Publication;

    fn publication(toml: &str, tenant: Option<&str>) -> Publication {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, format!("[collectors.cpu]\nenabled = true\n{toml}")).unwrap();
        let c: CollectorConfig = crate::config::load(&f).unwrap().collectors.remove(0);
        Publication {
            paths: c.paths(Some("host1"), "coll"),
            filter: c.filter(),
            ttl: 60,
            collector: "coll".into(),
            tenant: tenant.map(|t| (t.to_string(), format!("tenants.{t}"))),
        }
    }

    fn ends(names: &[&str]) -> (Vec<u8>, Vec<u32>) {
        let (mut b, mut e) = (Vec::new(), Vec::new());
        for n in names {
            b.extend_from_slice(n.as_bytes());
            e.push(b.len() as u32);
        }
        (b, e)
    }

    #[test]
    fn series_resolve_to_paths_filters_and_rejections_once() {
        let p = publication("metrics_blacklist = \"secret\"\n", None);
        let mut t = SeriesTable::default();
        let (b, e) = ends(&["cpu.idle", "secret.key", "bad name", ""]);
        assert_eq!(t.declare(&b, &e, None, 10), Ok(0));
        let (b, e) = ends(&["x"]);
        assert_eq!(t.declare(&b, &e, Some("db1".into()), 10), Ok(4));
        assert_eq!(t.declare(&b, &e, Some("bad inst".into()), 10), Ok(5));
        assert_eq!(t.len(), 6);
        assert_eq!(t.get(0), None, "not resolved before a publication");
        t.resolve(|i| p.base(i), |n| p.filter.keep(n));
        assert_eq!(
            t.get(0),
            Some(Resolved::Path("servers.host1.coll.cpu.idle"))
        );
        assert_eq!(t.get(1), Some(Resolved::Filtered));
        assert!(matches!(
            t.get(2),
            Some(Resolved::Rejected(Rejection::Name(_)))
        ));
        assert!(matches!(
            t.get(3),
            Some(Resolved::Rejected(Rejection::Name(_)))
        ));
        assert_eq!(t.get(4), Some(Resolved::Path("instances.db1.coll.x")));
        assert!(matches!(
            t.get(5),
            Some(Resolved::Rejected(Rejection::Name(_)))
        ));
        assert_eq!(t.get(6), None);
        // A tenant's prefix is part of the path.
        let mut t = SeriesTable::default();
        let (b, e) = ends(&["a"]);
        t.declare(&b, &e, None, 10).unwrap();
        {
            let p = publication("", Some("acme"));
            t.resolve(|i| p.base(i), |n| p.filter.keep(n));
        }
        assert_eq!(
            t.get(0),
            Some(Resolved::Path("tenants.acme.servers.host1.coll.a"))
        );
    }

    #[test]
    fn declarations_are_bounded_and_checked_whole() {
        let mut t = SeriesTable::default();
        let (b, e) = ends(&["a", "b", "c"]);
        assert_eq!(t.declare(&b, &e, None, 4), Ok(0));
        assert_eq!(
            t.declare(&b, &e, None, 4),
            Err(DeclareError::TooMany { asked: 3, limit: 4 })
        );
        assert_eq!(t.len(), 3, "a refused call declares none");
        assert!(matches!(
            t.declare(b"ab", &[2, 1], None, 100),
            Err(DeclareError::Malformed(_))
        ));
        assert!(matches!(
            t.declare(b"ab", &[3], None, 100),
            Err(DeclareError::Malformed(_))
        ));
        assert_eq!(t.len(), 3);
        // An overlong name is kept to MAX_NAME + 1 bytes, and rejected.
        let long = vec![b'a'; 100_000];
        assert_eq!(t.declare(&long, &[100_000], None, 100), Ok(3));
        assert!(t.pending.last().unwrap().names.len() == MAX_NAME + 1);
        {
            let p = publication("", None);
            t.resolve(|i| p.base(i), |n| p.filter.keep(n));
        }
        assert!(matches!(
            t.get(3),
            Some(Resolved::Rejected(Rejection::Name(_)))
        ));
    }
}
