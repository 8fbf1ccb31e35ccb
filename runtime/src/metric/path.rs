//! Diamond's metric paths: `path_prefix.hostname[.path_suffix].path.name`,
//! or `instance_prefix.instance.path.name`.

/// Builds full metric paths the way Diamond's `get_metric_path` does.
#[derive(Debug, Clone, PartialEq)]
pub struct PathBuilder {
    prefix: String,
    path: String,
    instance_prefix: String,
    /// The host name used (`""` when `hostname_method = "none"`).
    pub hostname: String,
}

impl PathBuilder {
    /// From Diamond's settings (`path_prefix`, `path_suffix`, `path` or
    /// the collector's default path, `instance_prefix`) and the resolved
    /// host name (`None` for `hostname_method = "none"`).
    pub fn new(
        path_prefix: &str,
        path_suffix: &str,
        path: Option<&str>,
        instance_prefix: &str,
        hostname: Option<&str>,
        default_path: &str,
    ) -> Self {
        let mut prefix = path_prefix.to_string();
        if let Some(h) = hostname {
            prefix = if prefix.is_empty() {
                h.to_string()
            } else {
                format!("{prefix}.{h}")
            };
        }
        if !path_suffix.is_empty() {
            // Diamond would give ".suffix" with an empty prefix; we don't.
            prefix = if prefix.is_empty() {
                path_suffix.to_string()
            } else {
                format!("{prefix}.{path_suffix}")
            };
        }
        PathBuilder {
            prefix,
            path: path.unwrap_or(default_path).to_string(),
            instance_prefix: instance_prefix.to_string(),
            hostname: hostname.unwrap_or_default().to_string(),
        }
    }

    /// The path every name of a metric is appended to (Diamond's
    /// `prefix.hostname.suffix.path`, or `instance_prefix.instance.path`
    /// with an instance); may be empty.
    pub fn base(&self, instance: Option<&str>) -> String {
        let no_path = self.path.is_empty() || self.path == ".";
        let (first, second) = match instance {
            Some(i) => (self.instance_prefix.as_str(), i),
            None => (self.prefix.as_str(), ""),
        };
        let path = if no_path { "" } else { self.path.as_str() };
        let mut out = String::new();
        for p in [first, second, path].iter().filter(|p| !p.is_empty()) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(p);
        }
        out
    }

    /// The full path of `name` (with `instance`, Diamond's
    /// `instance_prefix.instance.path.name`).
    pub fn path(&self, name: &str, instance: Option<&str>) -> String {
        join(self.base(instance), name)
    }
}

/// `base.name`, or `name` when `base` is empty.
pub(super) fn join(base: String, name: &str) -> String {
    let mut out = String::with_capacity(base.len() + 1 + name.len());
    push_path(&mut out, &base, name);
    out
}

/// Appends `base.name` (`name` alone when `base` is empty) to `out`:
/// Diamond's join of a prefix and a name, written in place.
pub(crate) fn push_path(out: &mut String, base: &str, name: &str) {
    out.push_str(base);
    if !base.is_empty() && !name.is_empty() {
        out.push('.');
    }
    out.push_str(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_diamond() {
        // Diamond's defaults: path_prefix "servers", instance_prefix "instances".
        let p = PathBuilder::new("servers", "", None, "instances", Some("web1"), "cpu");
        assert_eq!(p.path("total.idle", None), "servers.web1.cpu.total.idle");
        assert_eq!(p.path("x", Some("db2")), "instances.db2.cpu.x");
        let p = PathBuilder::new("", "s", Some("."), "instances", Some("h"), "cpu");
        assert_eq!(p.path("n", None), "h.s.n");
        let p = PathBuilder::new("", "s", Some("."), "instances", None, "cpu");
        assert_eq!(p.path("n", None), "s.n");
    }
}
