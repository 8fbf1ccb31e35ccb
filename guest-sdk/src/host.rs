//! Thin wrappers over the host imports.

use crate::bindings::wdiamond::plugin::{files, log};
use crate::HostError;

/// Renders a host error for logs and error results.
pub fn describe_error(e: &HostError) -> String {
    match e {
        HostError::Denied(s) => format!("denied: {s}"),
        HostError::NotFound(s) => format!("not found: {s}"),
        HostError::TimedOut => "timed out".to_string(),
        HostError::TooLarge(n) => format!("larger than the host's limit of {n} bytes"),
        HostError::Invalid(s) => format!("invalid: {s}"),
        HostError::Io(s) => format!("I/O error: {s}"),
    }
}

/// Reads a whole file as text (lossy UTF-8).
pub fn read_to_string(path: &str) -> Result<String, HostError> {
    files::read_file(path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Reads a file; `Ok(None)` when it does not exist (Diamond's
/// `os.access(path, os.R_OK)` being false). Other errors are returned.
pub fn read_optional(path: &str) -> Result<Option<String>, String> {
    match read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(HostError::NotFound(_)) => Ok(None),
        Err(e) => Err(format!("{path}: {}", describe_error(&e))),
    }
}

/// Whether `path` is a directory (`os.path.isdir`); false on any error.
pub fn is_dir(path: &str) -> bool {
    matches!(files::metadata(path), Ok(m) if m.kind == files::FileKind::Directory)
}

/// Logs at info level.
pub fn info(message: &str) {
    log::log(log::Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log::log(log::Level::Warn, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log::log(log::Level::Debug, message);
}
