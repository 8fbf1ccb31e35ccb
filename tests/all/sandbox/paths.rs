//! Paths a plugin may not take by its own say: a built-in collector's
//! (`cpu`, …) and the agent's own health path (`[server] health_path`).
//! Before, a third-party collector describing itself as `wdiamond`
//! published `servers.adv.wdiamond.collectors.neighbour.runs 424242`
//! beside the agent's own health metric.

use super::*;

/// Loads a config whose `[collectors.x]` section is `section` (health
/// path `health`), returning the configuration errors.
fn load_errors(health: &str, section: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\nhealth_path = {health:?}\n[handlers.archive]\nlog_file = {:?}\ntenants = \"*\"\n[tenants.t]\n{section}",
            common::cache_dir(),
            dir.path().join("archive.log")
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap_or_else(|e| panic!("{e}"));
    match wdiamond::agent::load(&common::runtime(), &config, &HostFacts::default()) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// A Python collector whose default `path` is `path`.
fn script(dir: &Path, path: &str) -> String {
    let stem: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let file = dir.join(format!("{stem}.py"));
    std::fs::write(
        &file,
        format!(
            "import diamond.collector\n\nclass Forger(diamond.collector.Collector):\n    def get_default_config(self):\n        c = super(Forger, self).get_default_config()\n        c.update({{'path': {path:?}}})\n        return c\n\n    def collect(self):\n        self.publish('collectors.neighbour.runs', 424242)\n"
        ),
    )
    .unwrap();
    file.display().to_string()
}

#[test]
fn a_third_party_collector_cannot_publish_under_the_health_path() {
    let dir = tempfile::tempdir().unwrap();
    let forger = script(dir.path(), "wdiamond");
    let outer = script(dir.path(), "agent");
    let section = |component: &str, extra: &str| {
        format!("[collectors.forger]\nenabled = true\ncomponent = {component:?}\n{extra}")
    };
    // The health path itself, and a path under which it lies.
    for (health, component) in [("wdiamond", &forger), ("agent.health", &outer)] {
        let errors = load_errors(health, &section(component, ""));
        assert_eq!(errors.len(), 1, "{health}: {errors:?}");
        assert!(
            errors[0].contains("collectors.forger")
                && errors[0].contains("where the agent publishes its own health")
                && errors[0].contains("set `path`"),
            "{}",
            errors[0]
        );
    }
    // A compiled component the same way (the impostor calls itself cpu:
    // a built-in's path, refused as before).
    let impostor = common::test_guest("collector_impostor")
        .display()
        .to_string();
    let errors = load_errors("cpu", &section(&impostor, ""));
    assert_eq!(errors.len(), 1, "{errors:?}");
    // The operator's say settles it: `path` set, or a tenant's prefix.
    assert_eq!(
        load_errors("wdiamond", &section(&forger, "path = \"wdiamond\"\n")),
        Vec::<String>::new()
    );
    assert_eq!(
        load_errors("wdiamond", &section(&forger, "tenant = \"t\"\n")),
        Vec::<String>::new()
    );
    // No health path: nothing reserved.
    assert_eq!(load_errors("", &section(&forger, "")), Vec::<String>::new());
}

/// Diamond's paths: a script may describe a dotted path (`aws.s3`), but
/// not one under a built-in's (`cpu.x`), and `.` (its metrics right under
/// the host name, where it could publish any path) only with the
/// operator's `path` or a tenant's prefix.
#[test]
fn dotted_and_dot_paths_are_diamonds_but_the_host_name_space_is_the_operators() {
    let dir = tempfile::tempdir().unwrap();
    let section = |component: &str, extra: &str| {
        format!("[collectors.forger]\nenabled = true\ncomponent = {component:?}\n{extra}")
    };
    let dotted = script(dir.path(), "aws.s3");
    assert_eq!(load_errors("", &section(&dotted, "")), Vec::<String>::new());
    let under_cpu = script(dir.path(), "cpu.x");
    let errors = load_errors("", &section(&under_cpu, ""));
    assert!(
        errors.len() == 1 && errors[0].contains("the path of a built-in collector"),
        "{errors:?}"
    );
    let dot = script(dir.path(), ".");
    let errors = load_errors("", &section(&dot, ""));
    assert!(
        errors.len() == 1
            && errors[0].contains("directly under the host")
            && errors[0].contains("set `path`"),
        "{errors:?}"
    );
    assert_eq!(
        load_errors("", &section(&dot, "path = \".\"\n")),
        Vec::<String>::new()
    );
    assert_eq!(
        load_errors("", &section(&dot, "tenant = \"t\"\n")),
        Vec::<String>::new()
    );
    // Not a metric path at all (Diamond's cpuacct_cgroup keeps a directory
    // in `path`): published under the script's file name, which is checked
    // as any path is: never a built-in's.
    let slashes = script(dir.path(), "/sys/fs/x");
    assert_eq!(
        load_errors("", &section(&slashes, "")),
        Vec::<String>::new()
    );
    let cpu = dir.path().join("cpu");
    std::fs::create_dir(&cpu).unwrap();
    let named_cpu = cpu.join("cpu.py");
    std::fs::copy(&slashes, &named_cpu).unwrap();
    let errors = load_errors("", &section(&named_cpu.display().to_string(), ""));
    assert!(
        errors.len() == 1 && errors[0].contains("the path of a built-in collector"),
        "{errors:?}"
    );
}

#[test]
fn a_third_party_plugin_cannot_take_a_builtin_path_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.mine]\nenabled = true\ncomponent = {:?}\n[collectors.ok]\nenabled = true\ncomponent = {:?}\npath = \"cpu\"\n",
            common::cache_dir(),
            common::test_guest("collector_impostor"),
            common::test_guest("collector_impostor"),
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let errors = wdiamond::agent::load(&common::runtime(), &config, &HostFacts::default())
        .err()
        .expect("refused");
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = errors.0[0].to_string();
    assert!(
        e.contains("collectors.mine") && e.contains("path of a built-in collector"),
        "{e}"
    );
}

#[test]
fn the_builtin_paths_list_matches_the_builtins() {
    // Every built-in collector's describe name is in BUILTIN_PATHS.
    let rt = common::runtime();
    let mut checked = 0;
    for name in wdiamond::plugin::builtin_names() {
        let r = wdiamond::config::ComponentRef::Builtin(name.to_string());
        let c = rt.component(&r, wdiamond::plugin::Metering::None).unwrap();
        if wdiamond::plugin::contract::read(&c).unwrap().world != "collector" {
            continue;
        }
        let ctx = Arc::new(wdiamond::host::PluginContext {
            name: name.into(),
            grants: Default::default(),
            limits: wdiamond::config::Limits::default(),
            config: vec![],
            hostname: String::new(),
            interval: 0.0,
            facts: Default::default(),
            span: tracing::Span::none(),
            log_limit: Default::default(),
            script: None,
            tls: None,
        });
        let described = rt
            .instance::<wdiamond::bindings::collector::CollectorPlugin>(&c, ctx.clone())
            .unwrap()
            .describe()
            .unwrap();
        // userscripts publishes under the host name (Diamond's path `.`),
        // which no component that is not built in may describe.
        assert!(
            described.name == "." || agent::BUILTIN_PATHS.contains(&described.name.as_str()),
            "{name} describes itself as {:?}",
            described.name
        );
        if described.name != "." {
            checked += 1;
        }
    }
    // Every built-in collector checked, and no path listed for none.
    assert_eq!(checked, agent::BUILTIN_PATHS.len());
}
