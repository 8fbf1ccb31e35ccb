//! Every standard collector on this machine's real /proc and /sys, through
//! the real guests and grants: levels (gauges) must agree with what the
//! kernel says when read directly; rates, which depend on the moment, are
//! checked present and non-negative.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use wdiamond::host::HostFacts;

const ALL: &[&str] = &[
    "cpu",
    "memory",
    "loadavg",
    "network",
    "diskspace",
    "diskusage",
    "vmstat",
    "sockstat",
    "tcp",
    "udp",
    "proc",
    "uptime",
    "entropy",
    "filestat",
    "interrupt",
    "softirq",
    "netstat",
];

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// The `key` column of `proto`'s line in /proc/net/snmp.
fn snmp(proto: &str, key: &str) -> f64 {
    let text = read("/proc/net/snmp");
    let mut lines = text.lines().filter(|l| l.starts_with(&format!("{proto}:")));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let i = names.split_whitespace().position(|n| n == key).unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn field(text: &str, key: &str, n: usize) -> f64 {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("{key}"));
    line.split_whitespace().nth(n).unwrap().parse().unwrap()
}

/// Runs every collector twice (0.3 s apart); returns the second run's
/// metrics by full path, and the first run's.
fn collect_all() -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.default]\ninterval = 1\nhostname = \"live\"\nenabled = true\n", common::cache_dir());
    for c in ALL {
        text.push_str(&format!("[collectors.{c}]\n"));
        if *c == "diskusage" {
            text.push_str("send_zero = true\n");
        }
        if *c == "diskspace" {
            text.push_str("filesystems = \"ext2, ext3, ext4, xfs, btrfs, tmpfs, overlay\"\n");
        }
        if *c == "network" {
            text.push_str("interfaces = [\"eth\", \"ens\", \"enp\", \"eno\", \"lo\"]\n");
        }
    }
    let conf = common::write_config(dir.path(), &text);
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = common::runtime();
    let mut loaded = wdiamond::agent::load(&rt, &config, &HostFacts::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.collectors.len(), ALL.len());
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut all = BTreeMap::new();
        for lc in &mut loaded.collectors {
            let (r, usage) = lc
                .instance_mut(&rt)
                .unwrap()
                .collect(Duration::from_secs(10));
            let metrics = match r {
                Ok(Ok(m)) => m,
                other => panic!("{}: {other:?}", lc.config.plugin.name),
            };
            assert_eq!(
                usage.calls.denials, 0,
                "{}: a built-in collector was denied a host call",
                lc.config.plugin.name
            );
            let checked = lc.publication.publish(metrics, 0);
            assert_eq!(
                checked.rejected, 0,
                "{}: {:?}",
                lc.config.plugin.name, checked.reasons
            );
            for m in checked.published.iter() {
                all.insert(m.path.to_string(), m.value);
            }
        }
        runs.push(all);
        std::thread::sleep(Duration::from_millis(300));
    }
    let second = runs.pop().unwrap();
    (runs.pop().unwrap(), second)
}

#[test]
fn every_standard_collector_reports_sane_values_on_this_machine() {
    let tcp_sockets = || read("/proc/net/tcp").lines().count() as f64 - 1.0;
    let tcp_before = tcp_sockets();
    let (first, m) = collect_all();
    let tcp_after = tcp_sockets();
    let get = |k: &str| {
        *m.get(&format!("servers.live.{k}")).unwrap_or_else(|| {
            panic!(
                "missing {k}; have {:?}",
                m.keys().take(400).collect::<Vec<_>>()
            )
        })
    };
    let has_prefix = |p: &str| {
        m.keys()
            .any(|k| k.starts_with(&format!("servers.live.{p}")))
    };

    // memory: /proc/meminfo in bytes (default byte_unit).
    let meminfo = read("/proc/meminfo");
    assert_eq!(
        get("memory.MemTotal"),
        field(&meminfo, "MemTotal:", 1) * 1024.0
    );
    let used = get("memory.MemUsedPercentage");
    assert!((0.0..=100.0).contains(&used), "{used}");
    // cpu: the CPU count; rates are non-negative and bounded by 100 jiffies/s per CPU.
    let ncpu = wdiamond::host::info::online_cpus() as f64;
    assert_eq!(get("cpu.cpu_count"), ncpu);
    let busy: f64 = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ]
    .iter()
    .map(|f| get(&format!("cpu.total.{f}")))
    .sum();
    assert!(busy > 0.0 && busy <= 100.0 * ncpu * 1.5, "jiffies/s {busy}");
    // loadavg: the file's values; process counts positive.
    let load = read("/proc/loadavg");
    let l15: f64 = load.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(
        (get("loadavg.15") - l15).abs() < 0.1,
        "{} vs {l15}",
        get("loadavg.15")
    );
    assert!((get("loadavg.15_normalized") - get("loadavg.15") / ncpu).abs() < 1e-9);
    assert!(get("loadavg.processes_total") >= 1.0);
    // uptime in minutes.
    let up: f64 = read("/proc/uptime")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((get("uptime.minutes") - up / 60.0).abs() < 0.1);
    // proc: btime is the file's.
    assert_eq!(get("proc.btime"), field(&read("/proc/stat"), "btime", 1));
    // filestat: max is file-nr's third number.
    let nr: Vec<f64> = read("/proc/sys/fs/file-nr")
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(get("files.max"), nr[2]);
    // entropy: the kernel's pool (fixed at 256 since Linux 5.18).
    let pool: f64 = read("/proc/sys/kernel/random/entropy_avail")
        .trim()
        .parse()
        .unwrap();
    assert!((get("entropy.available") - pool).abs() <= 64.0, "{pool}");
    // netstat: every state published; their sum is the number of sockets.
    let states = [
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
    ];
    // Other tests open and close sockets meanwhile (hundreds in
    // TIME_WAIT): the sum lies between the counts before and after the
    // collection, give or take the churn within it.
    let sum: f64 = states.iter().map(|s| get(&format!("netstat.{s}"))).sum();
    let (low, high) = (tcp_before.min(tcp_after), tcp_before.max(tcp_after));
    let slack = 5.0 + 0.1 * high;
    assert!(
        sum >= low - slack && sum <= high + slack,
        "{sum} vs {tcp_before} before and {tcp_after} after"
    );
    // sockets and tcp's CurrEstab are levels: as the kernel counts them
    // (a few sockets come and go between the reads).
    let used = field(&read("/proc/net/sockstat"), "sockets:", 2);
    assert!((get("sockets.used") - used).abs() <= 20.0, "{used}");
    let estab = snmp("Tcp", "CurrEstab");
    assert!((get("tcp.CurrEstab") - estab).abs() <= 10.0, "{estab}");
    // vmstat, udp, softirq (rates), interrupts: present and sane.
    assert!(get("vmstat.pgfault") >= 0.0);
    assert!(get("udp.InDatagrams") >= 0.0);
    assert!(get("softirq.total") >= 0.0);
    assert!(m
        .keys()
        .any(|k| k.starts_with("servers.live.interrupts.") && k.ends_with(".total")));
    // network: lo is there (asked for), with rates >= 0.
    assert!(get("network.lo.rx_bit") >= 0.0 && get("network.lo.tx_packets") >= 0.0);
    // diskspace: the root filesystem, and its numbers add up.
    assert!(has_prefix("diskspace.root."), "root filesystem missing");
    let total = get("diskspace.root.byte_used") + get("diskspace.root.byte_free");
    let fs = wdiamond::host::fs_stats::statvfs(std::path::Path::new("/")).unwrap();
    assert_eq!(total, (fs.frsize * fs.blocks) as f64);
    // diskusage: every whole disk of /sys/block that matches the default regex.
    for dev in std::fs::read_dir("/sys/block").unwrap() {
        let name = dev.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("vd") || name.starts_with("sd") || name.starts_with("nvme") {
            assert!(has_prefix(&format!("iostat.{name}.")), "iostat for {name}");
            assert!(get(&format!("iostat.{name}.util_percentage")) >= 0.0);
        }
    }
    // A counter's first sample has no rate: nothing is published for it
    // (Diamond published 0, a fake point at every start); the gauges of
    // the first run are there. Every rate-derived collector is checked.
    assert!(first.contains_key("servers.live.memory.MemTotal"));
    assert!(first.contains_key("servers.live.cpu.cpu_count"));
    for derived in [
        "cpu.total.",
        "vmstat.",
        "tcp.ActiveOpens",
        "udp.",
        "interrupts.",
        "softirq.",
        "network.",
        "iostat.",
    ] {
        let prefix = format!("servers.live.{derived}");
        assert!(
            !first.keys().any(|k| k.starts_with(&prefix)),
            "{derived}: published on the first run: {:?}",
            first
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .take(3)
                .collect::<Vec<_>>()
        );
    }
    assert!(m.contains_key("servers.live.vmstat.pgfault"));
}

#[test]
fn host_root_reads_another_tree() {
    // An agent in a container reads the host's /proc mounted elsewhere.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("proc")).unwrap();
    std::fs::write(
        root.path().join("proc/loadavg"),
        "1.50 2.50 3.50 4/321 999\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!("[server]\nhandlers = []\nplugin_cache_dir = {:?}\nhost_root = {:?}\n[collectors.loadavg]\nenabled = true\nhostname = \"h\"\n", common::cache_dir(), root.path()),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = common::runtime();
    let mut loaded = wdiamond::agent::load(&rt, &config, &HostFacts::default()).unwrap();
    let lc = &mut loaded.collectors[0];
    let (r, _) = lc
        .instance_mut(&rt)
        .unwrap()
        .collect(Duration::from_secs(10));
    let published = lc.publication.publish(r.unwrap().unwrap(), 0).published;
    let get = |n: &str| {
        published
            .iter()
            .find(|m| m.path == format!("servers.h.loadavg.{n}"))
            .map(|m| m.value)
    };
    assert_eq!(get("15"), Some(3.5));
    assert_eq!(get("processes_total"), Some(321.0));
}
