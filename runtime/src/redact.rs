//! The secrets the configuration resolved (`{ secret = "file:…" }`), kept
//! out of everything the agent prints: its log (text or JSON), the
//! configuration errors, and what `check` and `once` print. A plugin gets
//! the secrets its own section names, and nothing it says about them
//! (a log line, an error, a rejected option) shows them.
//!
//! Redaction is by value: every occurrence of a secret, as written, as
//! Rust's `{:?}` escapes it and as JSON escapes it, becomes [`SHOWN`].

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

/// What a secret is shown as.
pub const SHOWN: &str = "[secret]";

/// Shortest secret taken: a shorter one would blank out every place its
/// few characters happen to appear.
pub const MIN_SECRET: usize = 4;

/// Every form of every secret resolved so far, longest first.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers `secret` (and its escaped forms) so that nothing printed
/// shows it. Secrets are kept for the life of the process (a reload that
/// changes one still redacts the old value).
pub fn register(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let debug = format!("{secret:?}");
    let json = serde_json::to_string(secret).unwrap_or_default();
    let forms = [
        secret.to_string(),
        debug[1..debug.len() - 1].to_string(),
        json.get(1..json.len().saturating_sub(1))
            .unwrap_or_default()
            .to_string(),
    ];
    let mut all = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    for form in forms {
        if !form.is_empty() && !all.contains(&form) {
            all.push(form);
        }
    }
    // Longest first: a secret that contains another is replaced whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`SHOWN`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    if !all.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in all.iter() {
        out = out.replace(s.as_str(), SHOWN);
    }
    Cow::Owned(out)
}

/// Standard error with secrets redacted: the log's writer. The log
/// formatter writes each event in one piece, so a secret is never split
/// between two writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => std::io::stderr().write_all(redact(text).as_bytes())?,
            Err(_) => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

/// A writer that redacts whole lines: it holds what it is given until a
/// newline (or a flush), so that a secret written in pieces is still
/// seen whole.
pub struct Lines<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> Lines<W> {
    /// Redacts what goes to `inner`.
    pub fn new(inner: W) -> Self {
        Lines {
            inner,
            line: Vec::new(),
        }
    }

    fn emit(&mut self, upto: usize) -> std::io::Result<()> {
        let rest = self.line.split_off(upto);
        let done = std::mem::replace(&mut self.line, rest);
        match std::str::from_utf8(&done) {
            Ok(text) => self.inner.write_all(redact(text).as_bytes()),
            Err(_) => self.inner.write_all(&done),
        }
    }
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(end) = self.line.iter().rposition(|b| *b == b'\n') {
            self.emit(end + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let all = self.line.len();
        self.emit(all)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Lines<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        register("pa\"ss\\w0rd-unique-1");
        let text = r#"auth pa"ss\w0rd-unique-1 failed; not "pa\"ss\\w0rd-unique-1""#;
        let r = redact(text);
        assert!(!r.contains("w0rd-unique-1"), "{r}");
        assert_eq!(r.matches(SHOWN).count(), 2, "{r}");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_written_in_pieces_is_redacted_whole() {
        register("lines-secret-xyz");
        let mut out = Vec::new();
        {
            let mut w = Lines::new(&mut out);
            write!(w, "a.lines-se").unwrap();
            write!(w, "cret-xyz.b 1 2\nnext lines-").unwrap();
            write!(w, "secret-xyz").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a.[secret].b 1 2\nnext [secret]"
        );
    }
}
