//! Graphite paths to Prometheus series: rules in graphite_exporter's style
//! (`servers.*.cpu.*.* cpu_seconds{host="$1",cpu="$2",mode="$3"}`: each `*`
//! matches one path segment, `$N` is the Nth), and a default for the paths
//! no rule matches: the path after the host name, `.` and other invalid
//! characters as `_`, with the host as the `host` label.

/// One mapping rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pattern: Vec<String>,
    name: String,
    labels: Vec<(String, String)>,
}

/// A metric name or label name as Prometheus takes it: `[a-zA-Z_:]`, then
/// also digits; anything else becomes `_`.
pub fn sanitize(name: &str, colons: bool) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for (i, c) in name.chars().enumerate() {
        let ok = c.is_ascii_alphabetic() || c == '_' || (colons && c == ':') || (i > 0 && c.is_ascii_digit());
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
            out.push(c);
        } else {
            out.push(if ok { c } else { '_' });
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Parses `PATTERN NAME{label="value",...}` (labels optional).
pub fn parse_rule(text: &str) -> Result<Rule, String> {
    let (pattern, target) = text
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("{text:?}: expected `PATTERN NAME{{labels}}`"))?;
    let target = target.trim();
    let (name, labels) = match target.split_once('{') {
        Some((n, rest)) => {
            let body = rest
                .strip_suffix('}')
                .ok_or_else(|| format!("{text:?}: the labels do not end with `}}`"))?;
            let mut labels = Vec::new();
            for pair in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("{text:?}: label {pair:?} is not name=\"value\""))?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| format!("{text:?}: label {k}'s value is not quoted"))?;
                labels.push((sanitize(k.trim(), false), v.to_string()));
            }
            (n.trim(), labels)
        }
        None => (target, Vec::new()),
    };
    if name.is_empty() {
        return Err(format!("{text:?}: no metric name"));
    }
    let pattern: Vec<String> = pattern.split('.').map(str::to_string).collect();
    let stars = pattern.iter().filter(|s| *s == "*").count();
    let refs = name.matches('$').count() + labels.iter().map(|(_, v)| v.matches('$').count()).sum::<usize>();
    if refs > 0 && stars == 0 {
        return Err(format!("{text:?}: `$N` needs a `*` in the pattern"));
    }
    Ok(Rule {
        pattern,
        name: name.to_string(),
        labels,
    })
}

/// `template` with `$1`…`$9` replaced by the captured segments.
fn fill(template: &str, captures: &[&str]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                chars.next();
                if let Some(s) = captures.get((d as usize).wrapping_sub(1)) {
                    out.push_str(s);
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

impl Rule {
    /// The series of `path` when this rule matches it.
    pub fn apply(&self, path: &str) -> Option<(String, Vec<(String, String)>)> {
        let segments: Vec<&str> = path.split('.').collect();
        if segments.len() != self.pattern.len() {
            return None;
        }
        let mut captures = Vec::new();
        for (p, s) in self.pattern.iter().zip(&segments) {
            if p == "*" {
                captures.push(*s);
            } else if p != s {
                return None;
            }
        }
        let name = sanitize(&fill(&self.name, &captures), true);
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, &captures)))
            .collect();
        Some((name, labels))
    }
}

/// The series of a metric: the first rule that matches, else the default.
pub fn series(path: &str, host: &str, rules: &[Rule]) -> (String, Vec<(String, String)>) {
    for r in rules {
        if let Some(s) = r.apply(path) {
            return s;
        }
    }
    let marker = format!(".{host}.");
    let rest = match path.find(&marker) {
        Some(i) if !host.is_empty() => &path[i + marker.len()..],
        _ => path,
    };
    let mut labels = Vec::new();
    if !host.is_empty() {
        labels.push(("host".to_string(), host.to_string()));
    }
    (sanitize(rest, true), labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_drops_the_prefix_and_labels_the_host() {
        assert_eq!(
            series("servers.web1.loadavg.01", "web1", &[]),
            ("loadavg_01".into(), vec![("host".into(), "web1".into())])
        );
        assert_eq!(series("servers.web1.cpu.total.idle", "web1", &[]).0, "cpu_total_idle");
        assert_eq!(series("01.x-y", "", &[]).0, "_01_x_y");
    }

    #[test]
    fn rules_capture_segments() {
        let r = parse_rule(r#"servers.*.cpu.*.* cpu_seconds{host="$1",cpu="$2",mode="$3"}"#).unwrap();
        assert_eq!(
            r.apply("servers.web1.cpu.cpu0.idle"),
            Some((
                "cpu_seconds".into(),
                vec![
                    ("host".into(), "web1".into()),
                    ("cpu".into(), "cpu0".into()),
                    ("mode".into(), "idle".into())
                ]
            ))
        );
        assert_eq!(r.apply("servers.web1.memory.MemFree"), None);
        let r = parse_rule("servers.*.loadavg.* load_$2").unwrap();
        assert_eq!(r.apply("servers.h.loadavg.15").unwrap().0, "load_15");
        assert!(parse_rule("nospace").is_err());
        assert!(parse_rule("a.b name{x=1}").is_err());
        assert!(parse_rule("a.b name_$1").is_err());
    }
}
