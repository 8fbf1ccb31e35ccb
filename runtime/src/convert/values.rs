//! Diamond's string values as TOML values of the kind an option takes.

use super::configobj::Value;

/// The TOML kind of an option.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// `true`/`false`.
    Bool,
    /// An integer or a float.
    Number,
    /// A string.
    Text,
    /// A list of strings.
    List,
}

/// `s` as a TOML string.
pub(crate) fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The kind of an option whose default is `default_toml` (as `inspect` writes it).
pub(crate) fn kind_of(default_toml: &str) -> Kind {
    match default_toml {
        "true" | "false" => Kind::Bool,
        d if d.starts_with('[') => Kind::List,
        d if d.starts_with('"') => Kind::Text,
        _ => Kind::Number,
    }
}

/// A configobj value as a TOML value of `kind`; `None` when it is not one.
pub(crate) fn toml_of(v: &Value, kind: Kind) -> Option<String> {
    let text = match v {
        Value::Text(t) => t.clone(),
        Value::List(l) => l.join(", "),
    };
    match kind {
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some("true".into()),
            "false" | "no" | "off" | "0" => Some("false".into()),
            _ => None,
        },
        Kind::Number => {
            if text.parse::<i64>().is_ok() {
                Some(text)
            } else {
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f.to_string())
            }
        }
        Kind::Text => Some(quote(&text)),
        Kind::List => {
            let items = match v {
                Value::List(l) => l.clone(),
                Value::Text(t) if t.is_empty() => Vec::new(),
                Value::Text(t) => vec![t.clone()],
            };
            Some(format!(
                "[{}]",
                items
                    .iter()
                    .map(|i| quote(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// A value of a script's option, typed as Diamond's string would be read.
pub(crate) fn guess(v: &Value) -> String {
    match v {
        Value::List(_) => toml_of(v, Kind::List).unwrap_or_default(),
        Value::Text(t) => match t.as_str() {
            "True" | "true" => "true".into(),
            "False" | "false" => "false".into(),
            t if t.parse::<i64>().is_ok() => t.to_string(),
            t => quote(t),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_take_the_options_kind() {
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(toml_of(&t("True"), Kind::Bool).as_deref(), Some("true"));
        assert_eq!(toml_of(&t("nope"), Kind::Bool), None);
        assert_eq!(toml_of(&t("15"), Kind::Number).as_deref(), Some("15"));
        assert_eq!(toml_of(&t("0.5"), Kind::Number).as_deref(), Some("0.5"));
        let q = toml_of(&t("a\"b"), Kind::Text).unwrap();
        assert_eq!(
            format!("x = {q}").parse::<toml::Table>().unwrap()["x"].as_str(),
            Some("a\"b")
        );
        assert_eq!(
            toml_of(&Value::List(vec!["a".into(), "b".into()]), Kind::List).as_deref(),
            Some("[\"a\", \"b\"]")
        );
        assert_eq!(
            toml_of(&t("eth0"), Kind::List).as_deref(),
            Some("[\"eth0\"]")
        );
        assert_eq!(guess(&t("False")), "false");
    }
}
