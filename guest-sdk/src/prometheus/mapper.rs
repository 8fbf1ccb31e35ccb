//! [`Mapper`]: a metric's series as both Prometheus handlers name it.

use super::{after_host, defaults, host_label, sanitize, snake_case, Rule};

/// How series are named: the operator's `mappings` first, then (unless
/// `default_mappings = false`) the built-in collectors' defaults, then the
/// path after the host; a counter is named `_total`, the `labels` option's
/// labels are added.
#[derive(Debug, Clone)]
pub struct Mapper {
    rules: Vec<Rule>,
    extra: Vec<(String, String)>,
    defaults: bool,
}

/// One metric's series.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The metric name.
    pub name: String,
    /// The labels, sorted by name, one per name (`__name__` not among them).
    pub labels: Vec<(String, String)>,
    /// What the value is multiplied by (a rule's `* FACTOR`; else 1).
    pub scale: f64,
}

impl Mapper {
    /// A mapper of `rules`, with `extra` labels on every series, and the
    /// default mappings when `defaults`.
    pub fn new(rules: Vec<Rule>, extra: Vec<(String, String)>, defaults: bool) -> Mapper {
        Mapper {
            rules,
            extra,
            defaults,
        }
    }

    /// The `mappings`, `labels` and `default_mappings` options.
    #[cfg(feature = "handler")]
    pub fn from_config(config: &crate::Config) -> Result<Mapper, String> {
        let rules = config
            .list("mappings")
            .iter()
            .map(|r| super::parse_rule(r).map_err(|e| format!("`mappings`: {e}")))
            .collect::<Result<_, _>>()?;
        let extra = super::parse_labels(&config.list("labels"))?;
        Ok(Mapper::new(rules, extra, config.bool("default_mappings")?))
    }

    /// The descriptions of the options [`Mapper::from_config`] reads.
    #[cfg(feature = "handler")]
    pub fn options() -> Vec<crate::ConfigOption> {
        use crate::{option, ConfigValue};
        vec![
            option(
                "mappings",
                ConfigValue::TextList(Vec::new()),
                "Rules `PATTERN NAME{label=\"$1\",...} [* FACTOR]` (a `*` is one path segment, `**` one or more), tried first",
            ),
            option(
                "default_mappings",
                ConfigValue::Boolean(true),
                "The built-in collectors' mappings (cpu, mode, device, interface, mount, irq as labels; no `_total` on a gauge; seconds for milliseconds); false: the path after the host, `.` as `_`, labelled host",
            ),
            option(
                "labels",
                ConfigValue::TextList(Vec::new()),
                "Labels added to every series, `name=value`",
            ),
        ]
    }

    /// The series of `path` (published by `host`; a counter when `counter`).
    pub fn map(&self, path: &str, host: &str, counter: bool) -> Mapped {
        let (mut name, mut labels, scale, ruled) = self.base(path, host);
        if counter {
            if !name.ends_with("_total") {
                name.push_str("_total");
            }
        } else if self.defaults && !ruled {
            // The operator's rule names what it names; ours keep
            // Prometheus's reserved suffixes off gauges.
            name = defaults::gauge_name(name);
        }
        for (k, v) in &self.extra {
            if !labels.iter().any(|(l, _)| l == k) {
                labels.push((k.clone(), v.clone()));
            }
        }
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        Mapped {
            name,
            labels,
            scale,
        }
    }

    /// Name, labels, factor, and whether an operator's rule gave them.
    fn base(&self, path: &str, host: &str) -> (String, Vec<(String, String)>, f64, bool) {
        for r in &self.rules {
            if let Some((name, labels)) = r.apply(path) {
                return (name, labels, r.scale(), true);
            }
        }
        let rest = after_host(path, host);
        let mut labels = host_label(host);
        if self.defaults {
            if let Some((name, more, scale)) = defaults::map(rest) {
                labels.extend(more);
                return (name, labels, scale, false);
            }
        }
        // With the defaults, no `:` (Prometheus keeps it for recording
        // rules; promtool refuses it on a page).
        (
            snake_case(&sanitize(rest, !self.defaults)),
            labels,
            1.0,
            false,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_rule;
    use super::*;

    use super::super::label_pairs as l;

    #[test]
    fn rules_then_defaults_then_the_path() {
        let rules =
            vec![parse_rule(r#"servers.*.cpu.total.* busy{host="$1",m="$2"} * 0.01"#).unwrap()];
        let m = Mapper::new(rules, l(&[("env", "prod"), ("host", "ignored")]), true);
        assert_eq!(
            m.map("servers.h.cpu.total.idle", "h", false),
            Mapped {
                name: "busy".into(),
                labels: l(&[("env", "prod"), ("host", "h"), ("m", "idle")]),
                scale: 0.01
            }
        );
        assert_eq!(
            m.map("servers.h.cpu.cpu0.idle", "h", false).labels,
            l(&[
                ("cpu", "cpu0"),
                ("env", "prod"),
                ("host", "h"),
                ("mode", "idle")
            ])
        );
        let plain = m.map("servers.h.interrupts.ACPI:Ged", "h", false);
        assert_eq!(plain.name, "interrupts");
        let other = m.map("servers.h.app.x:y.RequestCount", "h", false);
        assert_eq!(other.name, "app_x_y_request_count_value");
        assert_eq!(
            m.map("servers.h.tcp.ActiveOpens", "h", true).name,
            "tcp_active_opens_total"
        );
    }

    #[test]
    fn without_defaults_the_names_are_the_paths() {
        let m = Mapper::new(Vec::new(), Vec::new(), false);
        let cpu = m.map("servers.h.cpu.cpu0.idle", "h", false);
        assert_eq!(
            (cpu.name.as_str(), cpu.labels),
            ("cpu_cpu0_idle", l(&[("host", "h")]))
        );
        assert_eq!(
            m.map("servers.h.memory.MemTotal", "h", false).name,
            "memory_mem_total"
        );
        assert_eq!(m.map("servers.h.a.x:y", "h", false).name, "a_x:y");
        assert_eq!(m.map("servers.h.uptime.minutes", "h", false).scale, 1.0);
    }
}
