use super::*;

fn load_str(text: &str) -> Result<Config, ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.toml");
    std::fs::write(&p, text).unwrap();
    load(&p).map_err(|mut e| {
        for x in &mut e.0 {
            x.location.file = PathBuf::from("w.toml");
        }
        e
    })
}

#[test]
fn defaults_merge_under_each_collector() {
    let c = load_str("[collectors.default]\ninterval = 10\nenabled = true\n[collectors.cpu]\npercore = false\n[collectors.mem2]\ncomponent = \"memory\"\ninterval = 5\n").unwrap();
    let cpu = c
        .collectors
        .iter()
        .find(|c| c.plugin.name == "cpu")
        .unwrap();
    assert_eq!(cpu.interval, 10.0);
    assert!(cpu.enabled);
    assert_eq!(
        cpu.plugin.options,
        vec![("percore".into(), ConfigValue::Boolean(false))]
    );
    let m = c
        .collectors
        .iter()
        .find(|c| c.plugin.name == "mem2")
        .unwrap();
    assert_eq!(m.plugin.component, ComponentRef::Builtin("memory".into()));
    assert_eq!(m.interval, 5.0);
    assert_eq!(c.handlers[0].plugin.name, "archive");
}

#[test]
fn every_error_at_once_with_line_and_key() {
    let text = "[server]\nhandlerz = []\n\n[collectors.default]\ninterval = -1\nfoo = 1\n\n[collectors.cpu]\nhostname_method = \"bogus\"\nmetrics_whitelist = \"(\"\n[collectors.cpu.limits]\nmemory_mb = 0\n[collectors.cpu.grants]\nfiles = [\"relative\"]\n";
    let errs = load_str(text).unwrap_err();
    let shown: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
    let expect = [
        "w.toml:2:1: `server.handlerz`: unknown key",
        "w.toml:5:1: `collectors.default.interval`: must be greater than 0, found -1",
        "w.toml:6:1: `collectors.default.foo`: unknown key",
        "w.toml:9:1: `collectors.cpu.hostname_method`: unknown method \"bogus\"",
        "w.toml:10:1: `collectors.cpu.metrics_whitelist`: invalid regular expression",
        "w.toml:12:1: `collectors.cpu.limits.memory_mb`: must be between 1 and 4096",
        "w.toml:14:1: `collectors.cpu.grants.files`: \"relative\" must be an absolute path",
    ];
    for e in expect {
        assert!(
            shown.iter().any(|s| s.starts_with(e)),
            "missing {e:?} in {shown:#?}"
        );
    }
}

#[test]
fn per_collector_files_override_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("collectors")).unwrap();
    std::fs::write(
        dir.path().join("collectors/cpu.toml"),
        "enabled = true\npercore = false\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("collectors/extra.toml"),
        "interval = 5\ncomponent = \"memory\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("collectors/bad.toml"), "interval = \"x\"\n").unwrap();
    let p = dir.path().join("w.toml");
    std::fs::write(&p, "[server]\ncollectors_config_path = \"collectors\"\n[collectors.cpu]\npercore = true\ninterval = 7\n").unwrap();
    let errs = load(&p).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert!(
        errs.0[0]
            .to_string()
            .contains("bad.toml:1:1: `interval`: expected a number"),
        "{errs}"
    );
    std::fs::remove_file(dir.path().join("collectors/bad.toml")).unwrap();
    let c = load(&p).unwrap();
    let cpu = c
        .collectors
        .iter()
        .find(|c| c.plugin.name == "cpu")
        .unwrap();
    assert!(cpu.enabled);
    assert_eq!(
        cpu.interval, 7.0,
        "keys the file does not set come from the main file"
    );
    assert_eq!(
        cpu.plugin.options,
        vec![("percore".into(), ConfigValue::Boolean(false))]
    );
    let extra = c
        .collectors
        .iter()
        .find(|c| c.plugin.name == "extra")
        .unwrap();
    assert_eq!(
        (extra.interval, &extra.plugin.component),
        (5.0, &ComponentRef::Builtin("memory".into()))
    );
}

#[test]
fn run_as_names_a_real_user() {
    let c = load_str("[collectors.x.grants]\nrun_as = \"nobody\"\n").unwrap();
    let g = &c.collectors[0].plugin.grants;
    assert!(g.run_as.is_some());
    let errs = load_str("[collectors.x.grants]\nrun_as = \"no-such-user-here\"\n").unwrap_err();
    assert!(
        errs.0[0]
            .to_string()
            .contains("`collectors.x.grants.run_as`: no user \"no-such-user-here\""),
        "{errs}"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let errs = load_str("[server\nx=1").unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].location.line, 1);
    assert!(errs.0[0].message.starts_with("invalid TOML"));
}

#[test]
fn unused_handler_sections_are_errors() {
    let errs = load_str("[handlers.graphite]\nhost = \"x\"\n").unwrap_err();
    assert!(errs.0[0].message.contains("not used"), "{errs}");
}

#[test]
fn a_handler_that_says_whose_metrics_it_receives_runs_unlisted() {
    // Before, `tenant = "acme"` or `tenants = "*"` alone was refused as
    // "configured but not used", though the README said such a handler runs.
    let c = load_str(
        "[server]\nhandlers = []\n[handlers.mine]\ncomponent = \"archive\"\ntenant = \"acme\"\n[handlers.all]\ncomponent = \"archive\"\ntenants = \"*\"\n[tenants.acme]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let h = |n: &str| c.handlers.iter().find(|h| h.plugin.name == n).unwrap();
    assert_eq!(h("mine").receives, Receives::Tenant("acme".into()));
    assert_eq!(h("all").receives, Receives::All);
}

#[test]
fn the_host_s_handler_named_by_a_tenant_is_refused() {
    // Before, it silently stopped receiving the host's metrics.
    let errs = load_str(
        "[server]\nhandlers = [\"graphite\"]\n[handlers.graphite]\nhost = \"x\"\n[tenants.acme]\nhandlers = [\"graphite\"]\n",
    )
    .unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    let e = errs.0[0].to_string();
    assert!(
        e.contains("tenants.acme.handlers")
            && e.contains("[server] handlers")
            && e.contains("graphite_acme"),
        "{e}"
    );
}

#[test]
fn collector_paths_and_filters_follow_the_config() {
    let c = load_str("[collectors.cpu]\n").unwrap();
    let p = c.collectors[0].paths(Some("web1"), "cpu");
    assert_eq!(p.path("total.idle", None), "servers.web1.cpu.total.idle");
    assert_eq!(p.path("x", Some("db2")), "instances.db2.cpu.x");
    let c = load_str("[collectors.cpu]\npath_prefix = \"\"\npath_suffix = \"s\"\npath = \".\"\n")
        .unwrap();
    assert_eq!(
        c.collectors[0].paths(Some("h"), "cpu").path("n", None),
        "h.s.n"
    );
    let c = load_str(
        "[collectors.cpu]\nmetrics_whitelist = \"total\\\\.\"\nmetrics_blacklist = \"total\"\n",
    )
    .unwrap();
    let f = c.collectors[0].filter();
    assert!(f.keep("total.idle"));
    assert!(!f.keep("cpu0.total.idle"));
}

#[test]
fn a_tenant_s_handlers_belong_to_it_and_share_its_quotas() {
    let c = load_str(
        "[server]\nhandlers = [\"archive\", \"everyone\"]\n[handlers.everyone]\ncomponent = \"archive\"\ntenants = \"*\"\n[handlers.a1]\ncomponent = \"archive\"\nspool_dir = \"/tmp/s\"\n[handlers.a2]\ncomponent = \"graphite\"\ntenant = \"acme\"\nspool_dir = \"/tmp/s\"\nspool_max_mb = 1\n[tenants.acme]\nhandlers = [\"a1\", \"a2\"]\nmax_queue_mb = 4\nmax_spool_mb = 10\n",
    )
    .unwrap();
    let h = |n: &str| c.handlers.iter().find(|h| h.plugin.name == n).unwrap();
    // Named by the tenant, run though [server] handlers does not list it.
    assert_eq!(c.handlers.len(), 4);
    assert_eq!(h("archive").receives, Receives::Host);
    assert_eq!(h("everyone").receives, Receives::All);
    assert_eq!(h("a1").receives, Receives::Tenant("acme".into()));
    assert_eq!(h("a2").receives, Receives::Tenant("acme".into()));
    // The tenant's quotas, shared evenly; a smaller own bound stays.
    assert_eq!(h("a1").max_queue_bytes, 2 << 20);
    assert_eq!(h("a1").spool_max, 5 << 20);
    assert_eq!(h("a2").spool_max, 1 << 20);
    assert_eq!(h("archive").max_queue_bytes, usize::MAX);
    assert_eq!(h("a1").spool_path(), Some(PathBuf::from("/tmp/s/a1")));
    assert!(Receives::Tenant("acme".into()).accepts(Some("acme")));
    assert!(!Receives::Tenant("acme".into()).accepts(None));
    assert!(!Receives::Host.accepts(Some("acme")));
}

#[test]
fn a_table_option_reaches_the_plugin_as_json_and_python_path_is_read() {
    let c = load_str("[collectors.portstat]\ncomponent = \"/opt/portstat.py\"\npython_path = [\"/opt/lib\", \"rel\"]\n[collectors.portstat.port.ssh]\nnumber = \"22\"\n").unwrap();
    let p = &c.collectors[0].plugin;
    assert_eq!(
        p.options,
        vec![(
            "port".into(),
            ConfigValue::Text(r#"{"ssh":{"number":"22"}}"#.into())
        )]
    );
    assert_eq!(p.python_path[0], PathBuf::from("/opt/lib"));
    assert!(p.python_path[1].is_absolute() && p.python_path[1].ends_with("rel"));
}
