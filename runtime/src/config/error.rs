//! Configuration errors: where (file, line, column), which key, what; all
//! of them at once.

use std::fmt;
use std::path::PathBuf;

/// Where something is in a config file (`Default`: nowhere, line 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One configuration mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where.
    pub location: Location,
    /// The dotted key, e.g. `collectors.cpu.interval`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.location;
        if l.line == 0 {
            write!(f, "{}: ", l.file.display())?;
        } else {
            write!(f, "{}:{}:{}: ", l.file.display(), l.line, l.column)?;
        }
        // A plugin's rejection may quote the value it got: never a secret.
        let message = crate::redact::redact(&self.message);
        if self.key.is_empty() {
            write!(f, "{message}")
        } else {
            write!(f, "`{}`: {message}", self.key)
        }
    }
}

/// Every error found in a configuration (shown in file and line order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        // In the order of the files' lines, whichever check found them.
        let mut sorted: Vec<&ConfigError> = self.0.iter().collect();
        sorted.sort_by(|a, b| {
            let (a, b) = (&a.location, &b.location);
            (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column))
        });
        for e in sorted {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}
