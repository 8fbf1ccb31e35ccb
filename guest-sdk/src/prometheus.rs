//! Graphite paths as Prometheus series, shared by the scrape endpoint and
//! remote-write: rules in graphite_exporter's style
//! (`servers.*.cpu.*.* cpu_seconds{host="$1",cpu="$2",mode="$3"}`: each `*`
//! matches one path segment, `$N` is the Nth), and a default for the paths
//! no rule matches: the path after the host name in snake_case, `.` and
//! other invalid characters as `_`, with the host as the `host` label
//! (`servers.web1.memory.MemFree` -> `memory_mem_free{host="web1"}`).
//! Also the text exposition format's escaping and the `labels` option.
//!
//! [`Mapper`] is what both handlers use: the operator's rules, then the
//! built-in collectors' default mappings ([`defaults`]: cpu core and mode,
//! disk, interface and mount as labels, no `_total` on a gauge, seconds
//! for milliseconds), then the path; a counter named `_total`.

pub mod defaults;
mod mapper;

pub use mapper::{Mapped, Mapper};

/// One mapping rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pattern: Vec<String>,
    name: String,
    labels: Vec<(String, String)>,
    scale: f64,
}

/// A metric name or label name as Prometheus takes it: `[a-zA-Z_:]`, then
/// also digits; anything else becomes `_`.
pub fn sanitize(name: &str, colons: bool) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for (i, c) in name.chars().enumerate() {
        let ok = c.is_ascii_alphabetic()
            || c == '_'
            || (colons && c == ':')
            || (i > 0 && c.is_ascii_digit());
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

/// Parses `PATTERN NAME{label="value",...} [* FACTOR]` (labels and factor
/// optional). A `*` in the pattern is one path segment, a `**` (at most
/// one) is one or more; `$N` is the Nth of them, a `**`'s segments joined
/// by `.`. The factor multiplies the value (`* 0.001`: milliseconds as
/// seconds).
pub fn parse_rule(text: &str) -> Result<Rule, String> {
    let (pattern, target) = text
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("{text:?}: expected `PATTERN NAME{{labels}}`"))?;
    let (target, scale) = match target.rsplit_once('*') {
        Some((t, f)) if !f.contains(['"', '}']) => {
            let f = f.trim();
            match f.parse::<f64>() {
                Ok(v) if v.is_finite() && v != 0.0 => (t, v),
                _ => {
                    return Err(format!(
                        "{text:?}: `* {f}` is not a factor (a number, not 0)"
                    ))
                }
            }
        }
        _ => (target, 1.0),
    };
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
                let k = sanitize(k.trim(), false);
                if k.starts_with("__") {
                    return Err(format!(
                        "{text:?}: label names starting with `__` are Prometheus's own"
                    ));
                }
                labels.push((k, v.to_string()));
            }
            (n.trim(), labels)
        }
        None => (target, Vec::new()),
    };
    if name.is_empty() {
        return Err(format!("{text:?}: no metric name"));
    }
    let pattern: Vec<String> = pattern.split('.').map(str::to_string).collect();
    if pattern.iter().filter(|s| *s == "**").count() > 1 {
        return Err(format!("{text:?}: at most one `**` in a pattern"));
    }
    if let Some(bad) = pattern
        .iter()
        .find(|s| *s != "**" && s.matches('*').count() > 1)
    {
        return Err(format!(
            "{text:?}: segment {bad:?} has more than one `*` (write `*`, `**` or PREFIX*SUFFIX)"
        ));
    }
    let stars = pattern.iter().filter(|s| s.contains('*')).count();
    let refs = name.matches('$').count()
        + labels
            .iter()
            .map(|(_, v)| v.matches('$').count())
            .sum::<usize>();
    if refs > 0 && stars == 0 {
        return Err(format!("{text:?}: `$N` needs a `*` in the pattern"));
    }
    Ok(Rule {
        pattern,
        name: name.to_string(),
        labels,
        scale,
    })
}

/// `template` with `$1`…`$9` replaced by the captured segments.
pub(crate) fn fill(template: &str, captures: &[&str]) -> String {
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
        let captures = self.captures(path)?;
        let name = sanitize(&fill(&self.name, &captures), true);
        Some((name, self.labels_of(&captures)))
    }

    /// The factor the value is multiplied by (1 unless `* FACTOR`).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The labels filled with `captures`.
    pub(crate) fn labels_of(&self, captures: &[&str]) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, captures)))
            .collect()
    }

    /// The segments `path` gives this rule's `*`s and `**`, when it matches.
    pub(crate) fn captures<'p>(&self, path: &'p str) -> Option<Vec<&'p str>> {
        let segments: Vec<&str> = path.split('.').collect();
        let n = self.pattern.len();
        let wide = self.pattern.iter().position(|p| p == "**");
        let fits = match wide {
            Some(_) => segments.len() >= n,
            None => segments.len() == n,
        };
        if !fits {
            return None;
        }
        let mut captures = Vec::new();
        // Byte offset of segment i in `path`, for a `**`'s slice.
        let mut starts = Vec::with_capacity(segments.len() + 1);
        let mut at = 0;
        for s in &segments {
            starts.push(at);
            at += s.len() + 1;
        }
        starts.push(at);
        let extra = segments.len() - n;
        for (i, p) in self.pattern.iter().enumerate() {
            let j = match wide {
                Some(w) if i > w => i + extra,
                _ => i,
            };
            if Some(i) == wide {
                captures.push(&path[starts[j]..starts[j + extra + 1] - 1]);
            } else if p == "*" {
                captures.push(segments[j]);
            } else if let Some((prefix, suffix)) = p.split_once('*') {
                // `PREFIX*SUFFIX`: the part of one segment between them.
                let s = segments[j];
                let middle = s
                    .strip_prefix(prefix)
                    .and_then(|m| m.strip_suffix(suffix))
                    .filter(|m| !m.is_empty())?;
                captures.push(middle);
            } else if p != segments[j] {
                return None;
            }
        }
        Some(captures)
    }
}

/// The series of a metric: the first rule that matches, else the path
/// after the host (no default mappings: see [`Mapper`] for those).
pub fn series(path: &str, host: &str, rules: &[Rule]) -> (String, Vec<(String, String)>) {
    for r in rules {
        if let Some(s) = r.apply(path) {
            return s;
        }
    }
    (
        snake_case(&sanitize(after_host(path, host), true)),
        host_label(host),
    )
}

/// The part of `path` after its host name (all of it when the host is not
/// in it).
pub fn after_host<'p>(path: &'p str, host: &str) -> &'p str {
    if host.is_empty() {
        return path;
    }
    let marker = format!(".{host}.");
    match path.find(&marker) {
        Some(i) => &path[i + marker.len()..],
        None => path,
    }
}

/// `host="…"`, or nothing for an empty host.
pub(crate) fn host_label(host: &str) -> Vec<(String, String)> {
    if host.is_empty() {
        Vec::new()
    } else {
        vec![("host".to_string(), host.to_string())]
    }
}

/// `MemFree` -> `mem_free`, `HTTPServer` -> `http_server`, `cpu0` stays: a `_`
/// before each word that starts with a capital, then lower case.
pub fn snake_case(name: &str) -> String {
    let b: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = b[i - 1];
            let next_lower = b.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let word_start = prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower);
            if word_start && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The `labels` option: `name=value` items, added to every series.
pub fn parse_labels(items: &[String]) -> Result<Vec<(String, String)>, String> {
    items
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let k = sanitize(k.trim(), false);
                if k.starts_with("__") {
                    Err(format!(
                        "`labels`: {l:?}: label names starting with `__` are Prometheus's own"
                    ))
                } else {
                    Ok((k, v.trim().to_string()))
                }
            }
            _ => Err(format!("`labels`: {l:?} is not name=value")),
        })
        .collect()
}

/// A label value as the text exposition format writes it: `\`, `"` and
/// newlines escaped.
pub fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A `# HELP` text as the format writes it: `\` and newlines escaped.
pub fn escape_help(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `[(name, value)]` as owned label pairs (the tests' shorthand).
#[cfg(test)]
pub(crate) fn label_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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
        assert_eq!(
            series("servers.web1.cpu.total.idle", "web1", &[]).0,
            "cpu_total_idle"
        );
        assert_eq!(series("01.x-y", "", &[]).0, "_01_x_y");
        assert_eq!(
            series("servers.h.memory.MemFree", "h", &[]).0,
            "memory_mem_free"
        );
    }

    #[test]
    fn snake_case_splits_words() {
        for (a, b) in [
            ("MemFree", "mem_free"),
            ("ReadIOs", "read_i_os"),
            ("HTTPServer", "http_server"),
            ("cpu0_idle", "cpu0_idle"),
            ("memory_SwapTotal", "memory_swap_total"),
            ("a_B", "a_b"),
        ] {
            assert_eq!(snake_case(a), b, "{a}");
        }
    }

    #[test]
    fn values_and_help_are_escaped() {
        let mut s = String::new();
        escape_label_value("a\\b\"c\nd", &mut s);
        assert_eq!(s, "a\\\\b\\\"c\\nd");
        let mut h = String::new();
        escape_help("x\\y\n\"", &mut h);
        assert_eq!(h, "x\\\\y\\n\"");
        assert_eq!(
            parse_labels(&["env = prod".into()]).unwrap(),
            vec![("env".into(), "prod".into())]
        );
        assert!(parse_labels(&["__name__=x".into()]).is_err());
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert!(parse_rule(r#"a.* n{__x="$1"}"#).is_err());
    }

    #[test]
    fn rules_capture_segments() {
        let r =
            parse_rule(r#"servers.*.cpu.*.* cpu_seconds{host="$1",cpu="$2",mode="$3"}"#).unwrap();
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

    #[test]
    fn a_double_star_takes_one_or_more_segments_and_a_factor_scales() {
        let r = parse_rule(r#"a.**.* n{x="$1",y="$2"} * 0.5"#).unwrap();
        assert_eq!(r.scale(), 0.5);
        assert_eq!(
            r.apply("a.b.c.d").unwrap().1,
            vec![("x".into(), "b.c".into()), ("y".into(), "d".into())]
        );
        assert_eq!(r.apply("a.b.d").unwrap().1[0].1, "b");
        assert_eq!(r.apply("a.d"), None);
        assert_eq!(r.apply("b.c.d"), None);
        let r = parse_rule(r#"x.** n{v="$1*2"}"#).unwrap();
        assert_eq!(r.scale(), 1.0);
        assert_eq!(r.apply("x.y.z").unwrap().1[0].1, "y.z*2");
        assert!(parse_rule("a.**.** n").is_err());
        assert!(parse_rule("a.b n * zero").is_err());
        assert!(parse_rule("a.b n * 0").is_err());
    }

    #[test]
    fn a_star_inside_a_segment_takes_what_lies_between_prefix_and_suffix() {
        let r = parse_rule(r#"zk.*.zk_*_ms t_$2{s="$1"}"#).unwrap();
        assert_eq!(
            r.apply("zk.a.zk_max_latency_ms").unwrap().0,
            "t_max_latency"
        );
        assert_eq!(r.apply("zk.a.zk_ms"), None);
        assert_eq!(r.apply("zk.a.zk_count"), None);
        assert_eq!(r.apply("zk.a.x_zk_c_ms"), None);
        assert!(parse_rule("a.*_*_ms n").is_err());
    }
}
