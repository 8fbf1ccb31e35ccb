//! What an operator is told beside a command denial, when granting would
//! not help: the program is not on this host, or not named by its path.

/// The hint for `argv`'s program, if there is one.
pub(super) fn missing_program(argv: &[String]) -> Option<String> {
    let program = argv.first()?;
    let path = std::path::Path::new(program);
    if !path.is_absolute() {
        return Some(format!("commands are run by absolute path; {program:?} is not one (the collector's `bin` option, if it has one, says where it is)"));
    }
    (!path.exists()).then(|| format!("{program} does not exist on this host: install it, or set the collector's `bin` (or its equivalent) to where it is; granting this path would not help"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_relative_program_is_named() {
        let argv = |p: &str| vec![p.to_string(), "-x".into()];
        assert!(missing_program(&argv("/usr/sbin/no-such-daemon-here"))
            .unwrap()
            .contains("does not exist on this host"));
        assert!(missing_program(&argv("chronyc"))
            .unwrap()
            .contains("absolute path"));
        assert_eq!(missing_program(&argv("/bin/sh")), None);
        assert_eq!(missing_program(&[]), None);
    }
}
