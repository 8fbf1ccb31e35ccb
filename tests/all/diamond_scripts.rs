//! Diamond's released collectors (4.0.515 from PyPI, run unchanged through
//! the Python 2 bridge): how many load, and which publish on this host.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use wdiamond::host::HostFacts;

/// Every collector file of the release (`DIR/NAME.py`, tests left out).
fn scripts() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(common::diamond::collectors()).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "py") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

fn stem(p: &std::path::Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// What does not load, and why (README, "Diamond's own collectors").
const NOT_LOADING: &[&str] = &[
    "cephstats",        // imports ../ceph (loads with python_path)
    "memory_docker",    // imports ../memory_cgroup (loads with python_path)
    "iodrivesnmp",      // imports ../snmp, which needs pysnmp
    "netscalersnmp",    // the same
    "servertechpdu",    // the same
    "snmpinterface",    // the same
    "snmpraw",          // the same
    "snmp",             // needs pysnmp
    "collectd_network", // a helper module, not a collector
];

#[test]
fn diamond_collectors_load_as_they_are() {
    let rt = common::runtime();
    let all = scripts();
    let mut failed = BTreeSet::new();
    for s in &all {
        if let Err(e) = wdiamond::inspect::inspect(&rt, s) {
            eprintln!("{}: {e}", stem(s));
            failed.insert(stem(s));
        }
    }
    let loaded = all.len() - failed.len();
    eprintln!("{loaded} of {} Diamond collector files load", all.len());
    let known: BTreeSet<String> = NOT_LOADING.iter().map(|s| s.to_string()).collect();
    assert_eq!(failed, known, "what does not load changed");
    assert_eq!(all.len(), 138);
}

/// The scripts that read only this host's files publish, with `/proc`,
/// `/sys`, `/dev`, `/etc`, `/var` and `/usr` granted (and no command, no
/// connection); the ones any Linux host has must.
#[test]
fn diamond_collectors_publish_on_this_host() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut published = BTreeSet::new();
    for s in scripts() {
        let name = stem(&s);
        if NOT_LOADING.contains(&name.as_str()) {
            continue;
        }
        let conf = common::write_config(
            dir.path(),
            &format!(
                "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.default]\ninterval = 1\nhostname = \"h\"\n[collectors.s]\nenabled = true\ncomponent = {:?}\npath = \"s\"\n[collectors.s.grants]\nfiles = [\"/proc/**\", \"/sys/**\", \"/dev/**\", \"/etc/**\", \"/var/**\", \"/usr/**\"]\nstatvfs = [\"/**\"]\n",
                common::cache_dir(),
                s.display().to_string()
            ),
        );
        let config = wdiamond::config::load(&conf).unwrap();
        let Ok(mut loaded) = wdiamond::agent::load(&rt, &config, &HostFacts::default()) else {
            continue;
        };
        let lc = &mut loaded.collectors[0];
        let mut count = 0;
        for run in 0..2 {
            if run > 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
            if let (Ok(Ok(m)), _) = lc
                .instance_mut(&rt)
                .unwrap()
                .collect(Duration::from_secs(10))
            {
                count += lc.publication.publish(m, 0).published.len();
            }
        }
        if count > 0 {
            published.insert(name);
        }
    }
    eprintln!("{} publish here: {published:?}", published.len());
    for must in [
        "cpu",
        "diskspace",
        "entropy",
        "filestat",
        "interrupt",
        "soft",
        "loadavg",
        "memory",
        "network",
        "proc",
        "sockstat",
        "tcp",
        "udp",
        "uptime",
        "vmstat",
    ] {
        assert!(published.contains(must), "{must} published nothing");
    }
}

/// Diamond put every collector's directory on its import path; here a
/// script that imports a sibling collector's module is told the
/// `python_path` line to add, and loads with it.
#[test]
fn a_sibling_collector_import_names_the_python_path_that_loads_it() {
    let rt = common::runtime();
    let collectors = common::diamond::collectors();
    let (script, sibling) = (
        collectors.join("cephstats/cephstats.py"),
        collectors.join("ceph"),
    );
    let e = wdiamond::inspect::inspect(&rt, &script).unwrap_err();
    let line = format!("python_path = [{:?}]", sibling.display().to_string());
    assert!(
        e.contains("No module named 'ceph'") && e.contains(&line),
        "{e}"
    );
    // The script's path once, not twice.
    assert_eq!(e.matches("cephstats.py:").count(), 2, "{e}");
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.cephstats]\nenabled = true\ncomponent = {:?}\n{line}\n",
            common::cache_dir(),
            script.display().to_string()
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let loaded = wdiamond::agent::load(&rt, &config, &HostFacts::default());
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}
