//! Config errors compared whole (Spin's `tests/ui` is the model): each
//! `tests/fixtures/config_errors/NAME.toml` is checked with `wdiamond
//! check NAME.toml` from a temporary directory, and its exit status and
//! whole stderr must equal `NAME.stderr`. `@CACHE@` in a fixture is the
//! tests' component cache, `@DIR@` the temporary directory. `WDIAMOND_BLESS=1` writes the `.stderr` files
//! from what the agent says now (read the diff before committing it).

use std::path::Path;
use std::process::Command;

use crate::common;

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

/// Runs `check` on one fixture: "exit N" and its stderr, as compared.
fn report(fixture: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let name = fixture.file_name().unwrap();
    let cache = common::cache_dir().display().to_string();
    let at = dir.path().display().to_string();
    let text = std::fs::read_to_string(fixture)
        .unwrap()
        .replace("@CACHE@", &cache)
        .replace("@DIR@", &at);
    std::fs::write(dir.path().join(name), text).unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(name)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr)
        .replace(&cache, "@CACHE@")
        .replace(&at, "@DIR@");
    format!("exit {:?}\n{stderr}", out.status.code())
}

#[test]
fn every_config_error_fixture_reports_exactly_what_it_expects() {
    let dir = common::repo().join("tests/fixtures/config_errors");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 10, "{} fixtures", fixtures.len());
    let bless = std::env::var_os("WDIAMOND_BLESS").is_some();
    let mut wrong = Vec::new();
    for fixture in &fixtures {
        let got = report(fixture);
        let expected = fixture.with_extension("stderr");
        if bless {
            std::fs::write(&expected, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected)
            .unwrap_or_else(|e| panic!("{}: {e} (WDIAMOND_BLESS=1 writes it)", expected.display()));
        // Every fixture is a config error: exit 78, nothing started.
        assert!(
            want.starts_with("exit Some(78)\n"),
            "{}",
            expected.display()
        );
        if got != want {
            wrong.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                fixture.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
