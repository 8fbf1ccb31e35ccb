//! Diamond's `metrics_whitelist` / `metrics_blacklist`.

/// Diamond's whitelist/blacklist, anchored at the start of the name as
/// Python's `re.match`; the whitelist wins when both are set.
#[derive(Debug, Clone)]
pub struct Filter {
    whitelist: Option<regex::Regex>,
    blacklist: Option<regex::Regex>,
}

impl Filter {
    /// From the whitelist and blacklist regexes (anchored here).
    pub fn new(whitelist: Option<&regex::Regex>, blacklist: Option<&regex::Regex>) -> Self {
        let anchor = |r: &regex::Regex| {
            regex::Regex::new(&format!("^(?:{})", r.as_str())).expect("a valid regex stays valid")
        };
        Filter {
            whitelist: whitelist.map(anchor),
            blacklist: blacklist.map(anchor),
        }
    }

    /// Whether `name` is published.
    pub fn keep(&self, name: &str) -> bool {
        match (&self.whitelist, &self.blacklist) {
            (Some(w), _) => w.is_match(name),
            (None, Some(b)) => !b.is_match(name),
            (None, None) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    #[test]
    fn whitelist_is_anchored_and_wins() {
        let w = Regex::new("total\\.").unwrap();
        let b = Regex::new("total").unwrap();
        let f = Filter::new(Some(&w), Some(&b));
        assert!(f.keep("total.idle"));
        assert!(!f.keep("cpu0.total.idle"));
        let b = Regex::new("cpu[0-9]+").unwrap();
        let f = Filter::new(None, Some(&b));
        assert!(!f.keep("cpu1.idle"));
        assert!(f.keep("total.idle"));
    }
}
