//! An option's value, as the configuration holds it: the shape of the
//! contract's `config-value`, which `bindings.rs` converts to and from, so
//! that the configuration needs nothing from the generated code.

/// A configuration value (WIT `config-value`).
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A string.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A floating point number.
    Float(f64),
    /// `true` or `false`.
    Boolean(bool),
    /// A list of strings (TOML arrays of strings).
    TextList(Vec<String>),
}
