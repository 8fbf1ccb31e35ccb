//! The default mappings of the built-in collectors' paths: what makes the
//! Prometheus page idiomatic and `promtool check metrics`-clean without
//! configuration. Each rule is matched against the path after the host
//! (the host stays the `host` label); names are snake_case. They assume
//! Diamond's default units (`byte_unit = ["byte"]` for memory and
//! diskspace): an operator who changes those, or wants the plain path
//! names, sets `default_mappings = false` or writes rules of their own
//! (which come first).

use std::sync::OnceLock;

use super::{fill, parse_rule, sanitize, snake_case, Rule};

/// The rules, first match wins: `PATTERN NAME{labels} [* FACTOR]` as the
/// `mappings` option takes them, the pattern without prefix and host.
pub const RULES: &[&str] = &[
    // cpu: one family per core and mode, one for the totals (a `total`
    // core would be counted twice by a sum over `cpu`).
    r#"cpu.cpu_count cpu_cores"#,
    r#"cpu.total.* cpu_total_percent{mode="$1"}"#,
    r#"cpu.*.* cpu_percent{cpu="$1",mode="$2"}"#,
    // diskspace: the mount (Diamond's name of it: `root`, `_var`) a label.
    r#"diskspace.*.* diskspace_$2{mount="$1"}"#,
    // diskusage: the device a label, milliseconds as seconds.
    r#"iostat.*.reads_milliseconds iostat_read_seconds{device="$1"} * 0.001"#,
    r#"iostat.*.writes_milliseconds iostat_write_seconds{device="$1"} * 0.001"#,
    r#"iostat.*.io_milliseconds iostat_io_seconds{device="$1"} * 0.001"#,
    r#"iostat.*.io_milliseconds_weighted iostat_io_weighted_seconds{device="$1"} * 0.001"#,
    r#"iostat.*.* iostat_$2{device="$1"}"#,
    // interrupt: the irq (its name may hold dots) and the cpu labels; an
    // irq's total over the cpus its own family.
    r#"interrupts.**.total interrupts{irq="$1"}"#,
    r#"interrupts.**.* interrupts_by_cpu{irq="$1",cpu="$2"}"#,
    r#"interrupts.* interrupts{irq="$1"}"#,
    r#"loadavg.processes_total loadavg_processes"#,
    r#"memory.MemUsedPercentage memory_used_percent"#,
    r#"memory.* memory_$1_bytes"#,
    r#"network.*.* network_$2{interface="$1"}"#,
    r#"softirq.total softirq_all_vectors"#,
    r#"softirq.* softirq{vector="$1"}"#,
    r#"uptime.minutes uptime_seconds * 60"#,
    // Services: the instance a label (`server`: Prometheus owns `instance`).
    r#"memcached.*.time_in_listen_disabled_us memcached_time_in_listen_disabled_seconds{server="$1"} * 0.000001"#,
    r#"memcached.*.* memcached_$2{server="$1"}"#,
    r#"redis.*.** redis_$2{server="$1"}"#,
    // zookeeper: `zk_` dropped, the host's alias a label, `_ms` as seconds.
    r#"zookeeper.*.zk_*_ms zookeeper_$2_seconds{server="$1"} * 0.001"#,
    r#"zookeeper.*.zk_* zookeeper_$2{server="$1"}"#,
    r#"zookeeper.zk_*_ms zookeeper_$1_seconds * 0.001"#,
    r#"zookeeper.zk_* zookeeper_$1"#,
    // ceph: `ceph.CLUSTER.DAEMON.ID.…` (from the socket `CLUSTER-DAEMON.ID.asok`).
    r#"ceph.*.*.*.** ceph_$4{cluster="$1",daemon="$2",id="$3"}"#,
];

/// The parsed [`RULES`].
fn rules() -> &'static [Rule] {
    static RULES_PARSED: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES_PARSED.get_or_init(|| {
        RULES
            .iter()
            .map(|r| parse_rule(r).expect("a default mapping parses"))
            .collect()
    })
}

/// The default series of `rest` (a path after its host): name, labels
/// (without the host) and the factor of the value; `None` when no default
/// rule matches.
pub fn map(rest: &str) -> Option<(String, Vec<(String, String)>, f64)> {
    rules().iter().find_map(|r| {
        let captures = r.captures(rest)?;
        let name = snake_case(&sanitize(&fill(&r.name, &captures), false));
        Some((name, r.labels_of(&captures), r.scale))
    })
}

/// Suffixes Prometheus keeps for counters (`_total`) and histograms and
/// summaries (`_count`, `_sum`, `_bucket`).
const RESERVED: &[&str] = &["_total", "_count", "_sum", "_bucket"];

/// A gauge's name with a reserved suffix made plain: `_value` added
/// (`ceph_osd_op_latency_sum` -> `ceph_osd_op_latency_sum_value`).
pub fn gauge_name(mut name: String) -> String {
    if RESERVED.iter().any(|s| name.ends_with(s)) {
        name.push_str("_value");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rest: &str) -> (String, Vec<(String, String)>, f64) {
        map(rest).unwrap_or_else(|| panic!("{rest}: no default"))
    }

    use super::super::label_pairs as l;

    #[test]
    fn every_rule_parses() {
        assert_eq!(rules().len(), RULES.len());
    }

    #[test]
    fn cores_modes_devices_and_mounts_are_labels() {
        assert_eq!(
            m("cpu.cpu1.idle"),
            (
                "cpu_percent".into(),
                l(&[("cpu", "cpu1"), ("mode", "idle")]),
                1.0
            )
        );
        assert_eq!(
            m("cpu.total.guest_nice"),
            (
                "cpu_total_percent".into(),
                l(&[("mode", "guest_nice")]),
                1.0
            )
        );
        assert_eq!(m("cpu.cpu_count").0, "cpu_cores");
        assert_eq!(
            m("diskspace.root.byte_free"),
            ("diskspace_byte_free".into(), l(&[("mount", "root")]), 1.0)
        );
        assert_eq!(
            m("iostat.vda.reads_milliseconds"),
            ("iostat_read_seconds".into(), l(&[("device", "vda")]), 0.001)
        );
        assert_eq!(m("iostat.sda1.iops").0, "iostat_iops");
        assert_eq!(
            m("network.eth0.rx_byte"),
            ("network_rx_byte".into(), l(&[("interface", "eth0")]), 1.0)
        );
        assert_eq!(m("memory.MemTotal").0, "memory_mem_total_bytes");
        assert_eq!(m("memory.Committed_AS").0, "memory_committed_as_bytes");
        assert_eq!(m("memory.MemUsedPercentage").0, "memory_used_percent");
        assert_eq!(m("loadavg.processes_total").0, "loadavg_processes");
        assert_eq!(map("loadavg.01"), None);
        assert_eq!(m("uptime.minutes"), ("uptime_seconds".into(), vec![], 60.0));
    }

    #[test]
    fn interrupts_keep_dotted_irq_names_whole() {
        assert_eq!(
            m("interrupts.IO-APIC.4-edge______ttyS0.26.CPU1"),
            (
                "interrupts_by_cpu".into(),
                l(&[("irq", "IO-APIC.4-edge______ttyS0.26"), ("cpu", "CPU1")]),
                1.0
            )
        );
        assert_eq!(
            m("interrupts.LOC.total"),
            ("interrupts".into(), l(&[("irq", "LOC")]), 1.0)
        );
        assert_eq!(
            m("interrupts.ERR"),
            ("interrupts".into(), l(&[("irq", "ERR")]), 1.0)
        );
        assert_eq!(
            m("softirq.3"),
            ("softirq".into(), l(&[("vector", "3")]), 1.0)
        );
        assert_eq!(m("softirq.total").0, "softirq_all_vectors");
    }

    #[test]
    fn services_name_their_server() {
        assert_eq!(
            m("redis.6379.clients.connected"),
            (
                "redis_clients_connected".into(),
                l(&[("server", "6379")]),
                1.0
            )
        );
        assert_eq!(
            m("memcached.cache.curr_items"),
            (
                "memcached_curr_items".into(),
                l(&[("server", "cache")]),
                1.0
            )
        );
        assert_eq!(
            m("ceph.ceph.osd.0.osd.op_latency.sum"),
            (
                "ceph_osd_op_latency_sum".into(),
                l(&[("cluster", "ceph"), ("daemon", "osd"), ("id", "0")]),
                1.0
            )
        );
        assert_eq!(
            m("zookeeper.zk.zk_avg_jvm_pause_time_ms"),
            (
                "zookeeper_avg_jvm_pause_time_seconds".into(),
                l(&[("server", "zk")]),
                0.001
            )
        );
        assert_eq!(
            m("zookeeper.zk_znode_count"),
            ("zookeeper_znode_count".into(), vec![], 1.0)
        );
        assert_eq!(
            gauge_name("ceph_osd_op_latency_sum".into()),
            "ceph_osd_op_latency_sum_value"
        );
        assert_eq!(gauge_name("memory_mem_free".into()), "memory_mem_free");
    }
}
