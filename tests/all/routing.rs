//! Each tenant's metrics only where that tenant sends them: two tenants
//! and the host's own collectors, each with its own handlers (archive
//! files, one of them a third-party component), one handler receiving
//! everyone's; a tenant whose backend is down fills only its own spool
//! quota while the others deliver.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn conf(d: &Path, dead_port: u16) -> String {
    format!(
        r#"[server]
handlers = ["host_sink", "all_sink"]
plugin_cache_dir = {cache:?}
health_path = "wdiamond"
health_interval = 1

[handlers.host_sink]
component = "archive"
log_file = {host:?}

[handlers.all_sink]
component = "archive"
tenants = "*"
log_file = {all:?}

[handlers.acme_sink]
component = {third:?}
log_file = {acme:?}
[handlers.acme_sink.grants]
directories = [{acme_dir:?}]

[handlers.beta_sink]
component = "archive"
log_file = {beta:?}

[handlers.beta_dead]
component = "graphite"
tenant = "beta"
host = "127.0.0.1"
port = {dead_port}
retry_max = 1
spool_dir = {spool:?}

[tenants.acme]
handlers = ["acme_sink"]

[tenants.beta]
handlers = ["beta_sink", "beta_dead"]
max_spool_mb = 2

[collectors.default]
interval = 1
hostname = "rt"

[collectors.loadavg]
enabled = true

[collectors.acme_up]
enabled = true
component = "uptime"
tenant = "acme"

[collectors.beta_flood]
enabled = true
component = {misbehave:?}
mode = "flood"
count = 5000
tenant = "beta"
"#,
        cache = common::cache_dir(),
        host = d.join("host.log"),
        all = d.join("all.log"),
        third = common::test_guest("handler_archive"),
        acme = d.join("acme/acme.log"),
        acme_dir = d.join("acme"),
        beta = d.join("beta.log"),
        spool = d.join("spool"),
        misbehave = common::test_guest("collector_misbehave"),
    )
}

#[test]
fn each_tenant_s_metrics_reach_only_its_own_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = common::write_config(d, &conf(d, common::free_port()));

    // check prints the routing.
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("the host's own (loadavg) -> host_sink, all_sink")
            && shown.contains("tenant acme's (acme_up) -> all_sink, acme_sink")
            && shown.contains("tenant beta's (beta_flood) -> all_sink, beta_sink, beta_dead"),
        "{shown}"
    );

    let child = Command::new(BIN)
        .arg("run")
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    // Beta's backend is down, its flood spooled: within beta's quota (2
    // MiB for its two handlers; this one's share is 1 MiB, plus at most a
    // segment being written).
    let spool = d.join("spool/beta_dead");
    let spooled = dir_bytes(&spool);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);

    let host = common::file_lines(&d.join("host.log"));
    let acme = common::file_lines(&d.join("acme/acme.log"));
    let beta = common::file_lines(&d.join("beta.log"));
    let all = common::file_lines(&d.join("all.log"));
    assert!(
        host.iter().any(|l| l.starts_with("servers.rt.loadavg.01 ")),
        "{log}"
    );
    assert!(
        host.iter().all(|l| l.starts_with("servers.rt.")),
        "host got a tenant's: {host:?}"
    );
    assert!(
        !acme.is_empty() && acme.iter().all(|l| l.starts_with("tenants.acme.")),
        "{acme:?}"
    );
    // Beta's dead backend did not slow acme down: a run every second.
    let acme_runs: std::collections::BTreeSet<&str> =
        acme.iter().filter_map(|l| l.rsplit(' ').next()).collect();
    assert!(
        acme_runs.len() >= 4,
        "acme delivered {} runs in 6 s",
        acme_runs.len()
    );
    assert!(
        !beta.is_empty() && beta.iter().all(|l| l.starts_with("tenants.beta.")),
        "{:?}",
        &beta[..beta.len().min(3)]
    );
    for prefix in ["servers.rt.loadavg.", "tenants.acme.", "tenants.beta."] {
        assert!(
            all.iter().any(|l| l.starts_with(prefix)),
            "all_sink has no {prefix}"
        );
    }
    // The agent's own health metrics are the host's.
    assert!(
        host.iter().any(|l| l.contains(".wdiamond.")),
        "no health in host.log"
    );
    assert!(acme.iter().chain(&beta).all(|l| !l.contains(".wdiamond.")));
    assert!(spooled > 0, "beta's dead backend spooled nothing");
    assert!(
        spooled <= 2 << 20,
        "beta's spool is {spooled} bytes, past its quota\n{log}"
    );
    assert!(log.contains("the spool is full (spool_max_mb)"), "{log}");
}
