//! Property tests (bounded fuzzing) of the two parsers that take untrusted
//! input: the config loader (operator files) and the metric checks (guest
//! output). They must never panic, and what they accept must be valid.

use crate::common;

use proptest::prelude::*;
use wdiamond::bindings::types::{Metric, MetricKind};

/// Fragments that make syntactically plausible, often wrong, configs.
fn config_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("[server]".to_string()),
        Just("[collectors.default]".to_string()),
        Just("[collectors.cpu]".to_string()),
        Just("[collectors.cpu.limits]".to_string()),
        Just("[collectors.cpu.grants]".to_string()),
        Just("[handlers.archive]".to_string()),
        Just("[tenants.t]".to_string()),
        "[a-z_]{1,12} = [0-9]{1,5}",
        "[a-z_]{1,12} = \"[ -~]{0,20}\"",
        "(enabled|interval|hostname_method|metrics_whitelist|memory_mb|files|connect|commands|handlers|tenant|max_collectors) = (true|-1|0|1e9|\"\\(\"|\\[\"/x\"\\]|\\[\\[\"/bin/x\"\\]\\]|\"tcp:a:1\")",
        "[ -~]{0,30}",
    ];
    proptest::collection::vec(line, 0..25).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_config_loader_never_panics_and_errors_point_into_the_file(text in config_text()) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(&p, &text).unwrap();
        let lines = text.lines().count().max(1);
        match wdiamond::config::load(&p) {
            Ok(c) => {
                for col in &c.collectors {
                    prop_assert!(col.interval > 0.0);
                }
            }
            Err(errs) => {
                prop_assert!(!errs.0.is_empty());
                for e in &errs.0 {
                    prop_assert!(e.location.line <= lines + 1, "{e} ({lines} lines)");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn accepted_metric_names_are_safe_on_the_wire(name in "\\PC{0,300}|[a-zA-Z0-9_.\\- :\n]{0,300}") {
        if wdiamond::metric::check_name(&name).is_ok() {
            prop_assert!(!name.is_empty() && name.len() <= wdiamond::metric::MAX_NAME);
            prop_assert!(!name.contains(char::is_whitespace));
            prop_assert!(!name.split('.').any(str::is_empty));
            prop_assert!(name.is_ascii());
        }
    }

    #[test]
    fn published_paths_never_carry_whitespace_or_non_finite_values(
        name in "[ -~\n]{0,40}",
        instance in proptest::option::of("[ -~\n]{0,20}"),
        value in proptest::num::f64::ANY,
        precision in 0u8..40,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = common::write_config(dir.path(), "[collectors.x]\n");
        let c = wdiamond::config::load(&p).unwrap().collectors.remove(0);
        let publication = wdiamond::metric::Publication {
            paths: c.paths(Some("h"), "x"),
            filter: c.filter(),
            ttl: 1,
            collector: "x".into(),
            tenant: None,
        };
        let m = Metric { name, value, precision, kind: MetricKind::Gauge, timestamp: None, instance, raw_value: None };
        let checked = publication.publish(wdiamond::metric::set_of(vec![m]), 0);
        prop_assert_eq!(checked.published.len() + checked.rejected, 1);
        for p in checked.published.iter() {
            // The line handlers send is Diamond's `str(metric)` of it.
            let line = format!("{} {:.*} {}\n", p.path, p.precision as usize, p.value, p.timestamp);
            prop_assert_eq!(p.line, line.as_str());
            prop_assert!(!p.path.contains(char::is_whitespace));
            prop_assert!(p.value.is_finite());
            prop_assert!(p.precision <= wdiamond::metric::MAX_PRECISION);
        }
    }
}
