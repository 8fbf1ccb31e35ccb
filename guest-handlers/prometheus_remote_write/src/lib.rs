//! Prometheus remote-write 1.0: each batch as a snappy-compressed protobuf
//! `WriteRequest` POSTed to `url` (Prometheus with
//! `--web.enable-remote-write-receiver`, Mimir, VictoriaMetrics, Thanos
//! receive), graphite paths mapped to series by `mappings` (see
//! [`mapping`]). Delivery is the host's: a failed POST (connection, 5xx,
//! and the 4xx an operator fixes — 404 for a receiver that is off, 401/403,
//! 429) keeps the batch and is retried; another 4xx (the receiver refuses
//! these samples, e.g. out of order) would fail the same way for ever, so
//! the batch is refused: dropped and counted as such by the host, with the
//! receiver's reason (`HttpResponse::delivered`).

pub use wdiamond_sdk::prometheus as mapping;
pub mod proto;

use std::collections::BTreeMap;

use wdiamond_sdk::net::{url_option, Url};
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
    MetricKind,
};

use mapping::Mapper;
use proto::Series;

/// The series of a batch: metrics grouped by their labels (`__name__`
/// first, then the rest sorted by name), samples sorted by time; metrics
/// are (path, host, value, seconds, a counter's count).
pub fn series_of<'a>(
    metrics: impl Iterator<Item = (&'a str, &'a str, f64, u64, Option<f64>)>,
    mapper: &Mapper,
) -> Vec<Series> {
    let mut by_labels: BTreeMap<Vec<(String, String)>, Vec<(f64, i64)>> = BTreeMap::new();
    for (path, host, value, timestamp, count) in metrics {
        let (labels, scale) = labels_of(mapper, path, host, count.is_some());
        by_labels.entry(labels).or_default().push((
            scale * count.unwrap_or(value),
            (timestamp as i64).saturating_mul(1000),
        ));
    }
    by_labels
        .into_iter()
        .map(|(labels, mut samples)| {
            samples.sort_by_key(|s| s.1);
            samples.dedup_by_key(|s| s.1);
            Series { labels, samples }
        })
        .collect()
}

/// A series' labels, `__name__` among them, sorted, and its value factor.
/// A counter is its count, named as Prometheus names counters (`_total`).
fn labels_of(
    mapper: &Mapper,
    path: &str,
    host: &str,
    counter: bool,
) -> (Vec<(String, String)>, f64) {
    let mapped = mapper.map(path, host, counter);
    let mut labels = mapped.labels;
    labels.push(("__name__".into(), mapped.name));
    labels.sort();
    (labels, mapped.scale)
}

/// Most series whose encoded labels are kept (past it, the cache starts
/// over: a plugin's memory stays bounded whatever the paths).
pub const MAX_CACHED_SERIES: usize = 200_000;

/// The series seen so far: `host` + path -> id, and each id's encoded
/// labels and value factor (mapping a path and encoding its labels is most
/// of the work, and the same at every run).
#[derive(Default)]
pub struct SeriesCache {
    ids: std::collections::HashMap<(String, String, bool), u32>,
    labels: Vec<(Vec<u8>, f64)>,
}

impl SeriesCache {
    /// The id of the series of `path` (published by `host`).
    pub fn id(&mut self, path: &str, host: &str, counter: bool, mapper: &Mapper) -> u32 {
        let key = (host.to_string(), path.to_string(), counter);
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        if self.labels.len() >= MAX_CACHED_SERIES {
            self.ids.clear();
            self.labels.clear();
        }
        let (labels, scale) = labels_of(mapper, path, host, counter);
        let id = self.labels.len() as u32;
        self.labels.push((proto::labels(&labels), scale));
        self.ids.insert(key, id);
        id
    }

    /// The encoded `WriteRequest` of `metrics` (path, host, value,
    /// seconds, and for a counter its count: then the series is
    /// `NAME_total` and the value the count, as the exposition page has it,
    /// so that `rate()` works on it).
    pub fn write_request<'a>(
        &mut self,
        metrics: impl Iterator<Item = (&'a str, &'a str, f64, u64, Option<f64>)>,
        mapper: &Mapper,
    ) -> Vec<u8> {
        let mut samples: Vec<(u32, i64, f64)> = metrics
            .map(|(path, host, value, t, count)| {
                let id = self.id(path, host, count.is_some(), mapper);
                (
                    id,
                    (t as i64).saturating_mul(1000),
                    self.labels[id as usize].1 * count.unwrap_or(value),
                )
            })
            .collect();
        // By series, then time; one sample per series and timestamp.
        samples.sort_by_key(|s| (s.0, s.1));
        samples.dedup_by_key(|s| (s.0, s.1));
        let mut out = Vec::with_capacity(samples.len() * 48);
        let mut run = Vec::new();
        let mut i = 0;
        while i < samples.len() {
            let id = samples[i].0;
            run.clear();
            while i < samples.len() && samples[i].0 == id {
                run.push((samples[i].2, samples[i].1));
                i += 1;
            }
            proto::timeseries(&mut out, &self.labels[id as usize].0, &run);
        }
        out
    }
}

/// The handler's state.
pub struct RemoteWrite {
    url: Url,
    mapper: Mapper,
    timeout_ms: u32,
    cache: SeriesCache,
}

impl Handler for RemoteWrite {
    fn describe() -> Description {
        Description {
            name: "prometheus_remote_write".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Prometheus remote-write: batches as snappy-compressed protobuf to a remote-write receiver.".into(),
            options: [
                vec![option(
                    "url",
                    ConfigValue::Text("http://localhost:9090/api/v1/write".into()),
                    "The receiver's remote-write URL (https:// with `tls = true`)",
                )],
                Mapper::options(),
                vec![option("timeout", ConfigValue::Integer(10), "Seconds to wait for the receiver")],
            ]
            .concat(),
            capabilities: vec![Capability::Connect("tcp:{url|hostport}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let url = url_option(config, "url")?;
        Ok(RemoteWrite {
            url,
            mapper: Mapper::from_config(config)?,
            timeout_ms: config.timeout_ms("timeout")?,
            cache: SeriesCache::default(),
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let request = self.cache.write_request(
            batch.iter().map(|m| {
                let count = m.raw_value.filter(|_| m.kind == MetricKind::Counter);
                (m.path, m.host, m.value, m.timestamp, count)
            }),
            &self.mapper,
        );
        let body = snap::raw::Encoder::new()
            .compress_vec(&request)
            .map_err(|e| format!("snappy: {e}"))?;
        let r = self.url.post(
            &[
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "snappy"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            &body,
            self.timeout_ms,
        )?;
        r.delivered(&format!("POST {}", self.url.path), batch)
    }
}

export_handler!(RemoteWrite);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_grouped_into_sorted_series() {
        let metrics = [
            ("servers.h.loadavg.01", "h", 0.5, 20),
            ("servers.h.loadavg.01", "h", 0.4, 10),
            ("servers.h.loadavg.05", "h", 0.3, 10),
            ("servers.h.loadavg.01", "h", 0.4, 10),
        ];
        let mapper = Mapper::new(
            Vec::new(),
            vec![("env".to_string(), "test".to_string())],
            true,
        );
        let s = series_of(
            metrics.iter().map(|&(p, h, v, t)| (p, h, v, t, None)),
            &mapper,
        );
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].labels,
            vec![
                ("__name__".to_string(), "loadavg_01".to_string()),
                ("env".into(), "test".into()),
                ("host".into(), "h".into())
            ]
        );
        assert_eq!(s[0].samples, vec![(0.4, 10_000), (0.5, 20_000)]);
        assert_eq!(s[1].samples, vec![(0.3, 10_000)]);
        // The cached encoder gives the same bytes.
        let mut cache = SeriesCache::default();
        assert_eq!(
            cache.write_request(
                metrics.iter().map(|&(p, h, v, t)| (p, h, v, t, None)),
                &mapper
            ),
            proto::write_request(&s)
        );
        assert_eq!(cache.labels.len(), 2);
    }

    #[test]
    fn a_counter_goes_as_its_count_named_total() {
        let mut cache = SeriesCache::default();
        let out = cache.write_request(
            [
                ("servers.h.tcp.ActiveOpens", "h", 0.5, 10, Some(1234.0)),
                ("servers.h.loadavg.01", "h", 0.4, 10, None),
                ("servers.h.uptime.minutes", "h", 2.0, 10, None),
            ]
            .into_iter(),
            &Mapper::new(Vec::new(), Vec::new(), true),
        );
        let want = proto::write_request(&[
            proto::Series {
                labels: vec![
                    ("__name__".into(), "tcp_active_opens_total".into()),
                    ("host".into(), "h".into()),
                ],
                samples: vec![(1234.0, 10_000)],
            },
            proto::Series {
                labels: vec![
                    ("__name__".into(), "loadavg_01".into()),
                    ("host".into(), "h".into()),
                ],
                samples: vec![(0.4, 10_000)],
            },
            proto::Series {
                labels: vec![
                    ("__name__".into(), "uptime_seconds".into()),
                    ("host".into(), "h".into()),
                ],
                samples: vec![(120.0, 10_000)],
            },
        ]);
        assert_eq!(out, want);
    }
}
