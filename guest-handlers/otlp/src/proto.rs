//! The OTLP metrics messages this handler sends, encoded by hand
//! (opentelemetry-proto v1 field numbers): `ExportMetricsServiceRequest {
//! repeated ResourceMetrics resource_metrics = 1 }`, `ResourceMetrics {
//! Resource resource = 1; repeated ScopeMetrics scope_metrics = 2 }`,
//! `Resource { repeated KeyValue attributes = 1 }`, `KeyValue { string key
//! = 1; AnyValue value = 2 }`, `AnyValue { string string_value = 1 }`,
//! `ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics
//! = 2 }`, `InstrumentationScope { string name = 1; string version = 2 }`,
//! `Metric { string name = 1; Gauge gauge = 5; Sum sum = 7 }`, `Gauge {
//! repeated NumberDataPoint data_points = 1 }`, `Sum { repeated
//! NumberDataPoint data_points = 1; AggregationTemporality
//! aggregation_temporality = 2; bool is_monotonic = 3 }`, `NumberDataPoint
//! { fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3; double
//! as_double = 4 }`.

use std::collections::BTreeMap;

use wdiamond_sdk::protobuf::{bytes, fixed64, varint_field};

/// One data point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// The value.
    pub value: f64,
}

/// One metric of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name.
    pub name: String,
    /// A monotonic cumulative sum (else a gauge).
    pub monotonic: bool,
    /// Its points.
    pub points: Vec<Point>,
}

/// `AggregationTemporality.CUMULATIVE`.
const CUMULATIVE: u64 = 2;

fn string_attribute(out: &mut Vec<u8>, field: u32, k: &str, v: &str) {
    let mut any = Vec::new();
    bytes(&mut any, 1, v.as_bytes());
    let mut kv = Vec::new();
    bytes(&mut kv, 1, k.as_bytes());
    bytes(&mut kv, 2, &any);
    bytes(out, field, &kv);
}

fn metric(s: &Series, start_unix_nano: u64) -> Vec<u8> {
    let mut points = Vec::new();
    for p in &s.points {
        let mut dp = Vec::with_capacity(27);
        if s.monotonic {
            fixed64(&mut dp, 2, start_unix_nano.min(p.time_unix_nano));
        }
        fixed64(&mut dp, 3, p.time_unix_nano);
        fixed64(&mut dp, 4, p.value.to_bits());
        bytes(&mut points, 1, &dp);
    }
    let mut m = Vec::new();
    bytes(&mut m, 1, s.name.as_bytes());
    if s.monotonic {
        varint_field(&mut points, 2, CUMULATIVE);
        varint_field(&mut points, 3, 1);
        bytes(&mut m, 7, &points);
    } else {
        bytes(&mut m, 5, &points);
    }
    m
}

/// The encoded request: one resource per host, one scope, its metrics.
pub fn export_request<K: Ord>(
    groups: &BTreeMap<&str, BTreeMap<K, Series>>,
    service: &str,
    start_unix_nano: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (host, metrics) in groups {
        let mut resource = Vec::new();
        string_attribute(&mut resource, 1, "host.name", host);
        string_attribute(&mut resource, 1, "service.name", service);
        let mut scope = Vec::new();
        bytes(&mut scope, 1, b"wdiamond");
        bytes(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
        let mut sm = Vec::new();
        bytes(&mut sm, 1, &scope);
        for s in metrics.values() {
            bytes(&mut sm, 2, &metric(s, start_unix_nano));
        }
        let mut rm = Vec::new();
        bytes(&mut rm, 1, &resource);
        bytes(&mut rm, 2, &sm);
        bytes(&mut out, 1, &rm);
    }
    out
}
