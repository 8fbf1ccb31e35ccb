//! Diamond's configuration syntax (Python's configobj, as Diamond uses
//! it): `[section]`, `[[sub-section]]`, `[[[deeper]]]`; `key = value`; a
//! value with an unquoted comma is a list (`a, b`); `'…'` or `"…"` quote;
//! `#` starts a comment (also after a value); a line ending in `\` is not
//! continued (configobj does not), and `'''`/`"""` multi-line values are
//! refused with their line.

use std::fmt;

/// A value: text, or a list of texts.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One string (empty for `key =`).
    Text(String),
    /// `a, b, c` (and `a,` for a one-item list).
    List(Vec<String>),
}

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: Value,
    /// Its line (1-based).
    pub line: usize,
}

/// A section and what it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    /// Its name (`server`, `GraphiteHandler`, `MySQLCollector db2`).
    pub name: String,
    /// The line of its header (0 for the file itself).
    pub line: usize,
    /// Its keys, in order.
    pub entries: Vec<Entry>,
    /// Its sub-sections, in order.
    pub sections: Vec<Section>,
}

impl Section {
    /// The sub-section named `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The entry for `key` (the last one, as configobj keeps).
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// The value of `key` as text (a list joined with `, `).
    pub fn text(&self, key: &str) -> Option<String> {
        self.entry(key).map(|e| match &e.value {
            Value::Text(t) => t.clone(),
            Value::List(l) => l.join(", "),
        })
    }

    /// The value of `key` as a list (a text is one item; empty: none).
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.entry(key).map(|e| &e.value) {
            Some(Value::List(l)) => l.clone(),
            Some(Value::Text(t)) if !t.is_empty() => vec![t.clone()],
            _ => Vec::new(),
        }
    }
}

/// A syntax error: its line and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Splits a value at unquoted commas and strips quotes and an unquoted
/// `#` comment; whether it was a list.
fn parse_value(raw: &str, line: usize) -> Result<Value, SyntaxError> {
    if raw.contains("'''") || raw.contains("\"\"\"") {
        return Err(SyntaxError {
            line,
            message: "a multi-line ('''…''') value is not read; write it on one line".into(),
        });
    }
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quoted_item = false;
    let mut quote: Option<char> = None;
    let mut list = false;
    for c in raw.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None => match c {
                '\'' | '"' if cur.trim().is_empty() => {
                    cur.clear();
                    quote = Some(c);
                    quoted_item = true;
                }
                '#' => break,
                ',' => {
                    list = true;
                    items.push(if quoted_item {
                        cur.clone()
                    } else {
                        cur.trim().to_string()
                    });
                    cur.clear();
                    quoted_item = false;
                }
                _ => cur.push(c),
            },
        }
    }
    if quote.is_some() {
        return Err(SyntaxError {
            line,
            message: "a quote is not closed".into(),
        });
    }
    let last = if quoted_item {
        cur
    } else {
        cur.trim().to_string()
    };
    if !list {
        return Ok(Value::Text(last));
    }
    if !last.is_empty() || quoted_item {
        items.push(last);
    }
    Ok(Value::List(items))
}

/// Parses a whole file.
pub fn parse(text: &str) -> Result<Section, SyntaxError> {
    let mut root = Section::default();
    // The path of the section being filled: indexes into `sections`.
    let mut path: Vec<usize> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t.starts_with('[') {
            let depth = t.chars().take_while(|&c| c == '[').count();
            let inner = &t[depth..];
            let header = inner.find(']').and_then(|end| {
                let rest = inner[end..].trim_start_matches(']');
                let closed = inner[end..].len() - rest.len();
                let rest = rest.trim();
                (closed == depth && (rest.is_empty() || rest.starts_with('#')))
                    .then(|| inner[..end].trim().trim_matches(['"', '\'']).to_string())
            });
            let Some(name) = header.filter(|n| !n.is_empty()) else {
                return Err(SyntaxError {
                    line,
                    message: format!("{:?} is not a section header ([name], [[name]], …)", cut(t)),
                });
            };
            if depth > path.len() + 1 {
                return Err(SyntaxError {
                    line,
                    message: format!(
                        "[{name}] is nested {depth} deep under a section {} deep",
                        path.len()
                    ),
                });
            }
            path.truncate(depth - 1);
            let parent = walk(&mut root, &path);
            parent.sections.push(Section {
                name,
                line,
                ..Section::default()
            });
            path.push(parent.sections.len() - 1);
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            return Err(SyntaxError {
                line,
                message: format!("{:?} is neither `key = value` nor a section header", cut(t)),
            });
        };
        let key = k.trim().trim_matches(['"', '\'']).to_string();
        if key.is_empty() {
            return Err(SyntaxError {
                line,
                message: "a value without a key".into(),
            });
        }
        let value = parse_value(v, line)?;
        walk(&mut root, &path)
            .entries
            .push(Entry { key, value, line });
    }
    Ok(root)
}

fn walk<'a>(root: &'a mut Section, path: &[usize]) -> &'a mut Section {
    let mut s = root;
    for &i in path {
        s = &mut s.sections[i];
    }
    s
}

fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diamonds_syntax() {
        let c = parse(
            "# comment\n[server]\nhandlers = diamond.handler.graphite.GraphiteHandler, diamond.handler.archive.ArchiveHandler\nuser =\n\n[collectors]\n[[default]]\ninterval = 10 # seconds\n[[MySQLCollector db2]]\nhosts = 'u:p,w@h:3306/None',\n[[[sub]]]\nx = \"a # b\"\n",
        )
        .unwrap();
        let server = c.section("server").unwrap();
        assert_eq!(server.list("handlers").len(), 2);
        assert_eq!(server.text("user"), Some(String::new()));
        let collectors = c.section("collectors").unwrap();
        assert_eq!(
            collectors.section("default").unwrap().text("interval"),
            Some("10".into())
        );
        let db2 = collectors.section("MySQLCollector db2").unwrap();
        assert_eq!(
            db2.entry("hosts").unwrap().value,
            Value::List(vec!["u:p,w@h:3306/None".into()])
        );
        assert_eq!(db2.line, 9);
        assert_eq!(db2.section("sub").unwrap().text("x"), Some("a # b".into()));
    }

    #[test]
    fn errors_name_their_line() {
        assert_eq!(parse("[a]\nno equals here\n").unwrap_err().line, 2);
        assert!(parse("[a\n").is_err());
        assert!(parse("[[deep]]\n").unwrap_err().message.contains("nested"));
        assert!(parse("x = 'open\n").unwrap_err().message.contains("quote"));
        assert!(parse("x = '''a\n")
            .unwrap_err()
            .message
            .contains("multi-line"));
    }
}
