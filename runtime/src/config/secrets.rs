//! What a configuration file takes from outside it, resolved when the file
//! is read (at start and at every reload):
//! - `${VAR}` and `${VAR:-default}` in any string value, from the agent's
//!   environment (`$${` is a literal `${`); an unset variable without a
//!   default is an error naming the line and key;
//! - a secret reference in place of any value, `{ secret = "file:PATH" }`
//!   (the file's text, one trailing newline dropped; a relative path is
//!   relative to the config file) or `{ secret = "env:NAME" }`: the value
//!   the plugin gets, and one nothing the agent prints shows
//!   ([`crate::redact`]). Errors never quote a secret.

use std::io::Read;
use std::path::Path;

use toml::Value;

use super::{ConfigError, Location};

/// Largest secret file read, bytes.
pub const MAX_SECRET: u64 = 64 << 10;

/// Expands `${VAR}` and `${VAR:-default}` in `s` with `env`.
pub(super) fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| {
                "an unterminated `${` (write `$${` for a literal one)".to_string()
            })?;
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`${{{}}}` is not a variable name (letters, digits and _)",
                    crate::logging::guest_text(&inner.chars().take(64).collect::<String>())
                ));
            }
            // As a shell's `:-`: the default also stands for an empty value.
            match (env(name), default) {
                (Some(v), d) if !(v.is_empty() && d.is_some()) => out.push_str(&v),
                (_, Some(d)) => out.push_str(d),
                (_, None) => {
                    return Err(format!(
                        "the environment variable {name} is not set (`${{{name}:-default}}` gives a default)"
                    ))
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of a secret reference (`file:PATH` or `env:NAME`).
pub(super) fn secret(
    reference: &str,
    config_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let value = if let Some(path) = reference.strip_prefix("file:") {
        let path = config_dir.join(path);
        let shown = path.display();
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot read the secret file {shown}: {e}"))?;
        let mut text = String::new();
        file.take(MAX_SECRET + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the secret file {shown}: {e}"))?;
        if text.len() as u64 > MAX_SECRET {
            return Err(format!(
                "the secret file {shown} is larger than {} KiB",
                MAX_SECRET >> 10
            ));
        }
        let trimmed = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t));
        trimmed.unwrap_or(&text).to_string()
    } else if let Some(name) = reference.strip_prefix("env:") {
        env(name).ok_or_else(|| format!("the environment variable {name} is not set"))?
    } else {
        return Err(
            "a secret is `{ secret = \"file:PATH\" }` or `{ secret = \"env:NAME\" }`".to_string(),
        );
    };
    if value.chars().count() < crate::redact::MIN_SECRET {
        return Err(format!(
            "the secret from {reference} is shorter than {} characters (it could not be kept out of the log)",
            crate::redact::MIN_SECRET
        ));
    }
    Ok(value)
}

/// Where a key is in its file (the reader's spans).
pub(super) type At<'a> = &'a dyn Fn(&[&str]) -> Location;

/// Resolves every `${VAR}` and secret reference of `root`, the table of
/// `file`, with `env`; each secret is registered for redaction.
pub(super) fn resolve(
    root: &mut toml::Table,
    file: &Path,
    at: At<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut path = Vec::new();
    for (k, v) in root.iter_mut() {
        path.push(k.clone());
        walk(at, &dir, &mut path, v, env, errors);
        path.pop();
    }
}

fn walk(
    at: At<'_>,
    dir: &Path,
    path: &mut Vec<String>,
    v: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    let mut fail = |path: &[String], message: String| {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        errors.push(ConfigError {
            location: at(&keys),
            key: path.join("."),
            message,
        });
    };
    match v {
        Value::String(s) => match expand(s, env) {
            Ok(e) => *s = e,
            Err(e) => fail(path, e),
        },
        Value::Array(items) => {
            for item in items {
                walk(at, dir, path, item, env, errors);
            }
        }
        Value::Table(t) if t.len() == 1 && t.contains_key("secret") => {
            let reference = match &t["secret"] {
                Value::String(r) => expand(r, env),
                _ => Err("`secret` is a string: \"file:PATH\" or \"env:NAME\"".to_string()),
            };
            match reference.and_then(|r| secret(&r, dir, env)) {
                Ok(value) => {
                    crate::redact::register(&value);
                    *v = Value::String(value);
                }
                Err(e) => fail(path, e),
            }
        }
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                path.push(k.clone());
                walk(at, dir, path, v, env, errors);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.internal".into()),
            "EMPTY" => Some(String::new()),
            "PASS" => Some("s3cret-from-env".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_expanded_with_defaults_and_escapes() {
        assert_eq!(
            expand("tcp:${HOST}:5432", &env).unwrap(),
            "tcp:db.internal:5432"
        );
        assert_eq!(expand("${NOPE:-localhost}", &env).unwrap(), "localhost");
        assert_eq!(expand("${EMPTY:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(
            expand("cost $5 and $${HOST}", &env).unwrap(),
            "cost $5 and ${HOST}"
        );
        assert_eq!(expand("no dollars", &env).unwrap(), "no dollars");
        let e = expand("${NOPE}", &env).unwrap_err();
        assert!(e.contains("NOPE is not set"), "{e}");
        assert!(expand("${HOST", &env).unwrap_err().contains("unterminated"));
        assert!(expand("${1X}", &env)
            .unwrap_err()
            .contains("not a variable name"));
    }

    #[test]
    fn secrets_come_from_files_and_the_environment_and_errors_never_quote_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pg.pass"), "file-secret-42\n").unwrap();
        assert_eq!(
            secret("file:pg.pass", dir.path(), &env).unwrap(),
            "file-secret-42"
        );
        assert_eq!(
            secret("env:PASS", &dir.path().join("x"), &env).unwrap(),
            "s3cret-from-env"
        );
        let e = secret("file:missing", dir.path(), &env).unwrap_err();
        assert!(e.contains("cannot read the secret file"), "{e}");
        assert!(secret("vault:x", dir.path(), &env)
            .unwrap_err()
            .contains("file:PATH"));
        std::fs::write(dir.path().join("short"), "abc").unwrap();
        let e = secret("file:short", dir.path(), &env).unwrap_err();
        assert!(e.contains("shorter than 4") && !e.contains("abc"), "{e}");
        std::fs::write(
            dir.path().join("big"),
            vec![b'x'; (MAX_SECRET + 1) as usize],
        )
        .unwrap();
        assert!(secret("file:big", dir.path(), &env)
            .unwrap_err()
            .contains("larger than"));
    }
}
