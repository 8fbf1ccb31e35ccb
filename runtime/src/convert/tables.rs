//! What `convert` knows of Diamond: its classes with a built-in here, a
//! collector section's host keys, and the keys that mean nothing here.

use super::values::Kind;

/// Diamond's handler classes with a built-in equivalent.
pub const HANDLERS: &[(&str, &str)] = &[
    ("ArchiveHandler", "archive"),
    ("GraphiteHandler", "graphite"),
    ("GraphitePickleHandler", "graphite_pickle"),
    ("MultiGraphiteHandler", "multigraphite"),
    ("StatsdHandler", "statsd"),
    ("HttpPostHandler", "httppost"),
    ("InfluxdbHandler", "influxdb"),
    ("TSDBHandler", "opentsdb"),
    ("MQTTHandler", "mqtt"),
];

/// Diamond's collector classes with a built-in equivalent.
pub const COLLECTORS: &[(&str, &str)] = &[
    ("CPUCollector", "cpu"),
    ("MemoryCollector", "memory"),
    ("LoadAverageCollector", "loadavg"),
    ("NetworkCollector", "network"),
    ("DiskSpaceCollector", "diskspace"),
    ("DiskUsageCollector", "diskusage"),
    ("VMStatCollector", "vmstat"),
    ("SockstatCollector", "sockstat"),
    ("TCPCollector", "tcp"),
    ("UDPCollector", "udp"),
    ("ProcessStatCollector", "proc"),
    ("UptimeCollector", "uptime"),
    ("EntropyStatCollector", "entropy"),
    ("FilestatCollector", "filestat"),
    ("InterruptCollector", "interrupt"),
    ("SoftInterruptCollector", "softirq"),
    ("NetstatCollector", "netstat"),
    ("RedisCollector", "redis"),
    ("MemcachedCollector", "memcached"),
    ("NginxCollector", "nginx"),
    ("ZookeeperCollector", "zookeeper"),
    ("CephCollector", "ceph"),
    ("PostgresqlCollector", "postgres"),
    ("PgbouncerCollector", "pgbouncer"),
    ("MySQLCollector", "mysql"),
    ("UserScriptsCollector", "userscripts"),
];

/// Host keys of a collector section, and their TOML kind.
pub(super) const COLLECTOR_HOST_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("interval", Kind::Number),
    ("path", Kind::Text),
    ("path_prefix", Kind::Text),
    ("path_suffix", Kind::Text),
    ("instance_prefix", Kind::Text),
    ("hostname", Kind::Text),
    ("hostname_method", Kind::Text),
    ("metrics_whitelist", Kind::Text),
    ("metrics_blacklist", Kind::Text),
    ("byte_unit", Kind::List),
    ("measure_collector_time", Kind::Bool),
    ("ttl_multiplier", Kind::Number),
];

/// Diamond keys that mean nothing here, with why (reported, not kept).
pub(super) const DIAMOND_ONLY: &[(&str, &str)] = &[
    (
        "splay",
        "collections are spread over the interval by the scheduler",
    ),
    (
        "method",
        "every collector runs in its own sandbox; Threaded/Sequential does not apply",
    ),
    ("max_queue_size", "set `queue_size` on the handler"),
    (
        "collectors_reload_interval",
        "send SIGHUP (systemctl reload wdiamond) to reload",
    ),
    ("metric_queue_size", "set `queue_size` on each handler"),
    (
        "user",
        "the systemd unit's User= (packaging/wdiamond.service) runs the agent as its user",
    ),
    ("group", "the systemd unit's Group="),
    (
        "pid_file",
        "`wdiamond run --pidfile PATH`, or the unit's Type=notify",
    ),
    (
        "handlers_path",
        "handlers are built in or `component = \"FILE.wasm\"`",
    ),
];
