//! Compile bombs: compiling is the host's work, done before any of the
//! plugin's limits applies, and its cost grows faster than the code (one
//! 7.6 MB function took 44 s and 3.8 GB here). A third-party component's
//! code is measured first (`plugin/code_bound.rs`): a function body over
//! 1 MiB, or more than 32 MiB of code, in a core module of the component
//! or of a component nested in it, as a collector or as a handler, through
//! `once`, `check` and `inspect`, is a load error naming the bound, and is
//! never compiled.

use std::process::Output;
use std::time::Duration;

use wdiamond::plugin::code_bound::synthetic;

use super::common;

/// `inner` as the only section of another component.
fn nested(inner: &[u8]) -> Vec<u8> {
    let mut c = b"\0asm\x0d\0\x01\0".to_vec();
    c.push(4); // a component section
    let mut n = inner.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            c.push(b);
            break;
        }
        c.push(b | 0x80);
    }
    c.extend_from_slice(inner);
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `.cwasm` files (compiled components) under `dir`, if it exists.
fn compiled(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .count()
    })
}

#[test]
fn compile_bombs_are_refused_before_they_are_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = |args: &[&str]| common::wdiamond_within(args, &[], Duration::from_secs(120));
    let too_big = "more than the 1024 KiB a plugin's function may have";
    for (name, bytes, says) in [
        ("big-function", synthetic(1, 2 << 20), too_big),
        (
            "much-code",
            synthetic(200, 200 << 10),
            "more than 32 MiB of code",
        ),
        ("nested", nested(&synthetic(1, 2 << 20)), too_big),
    ] {
        let file = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&file, &bytes).unwrap();
        for (cmd, handlers, section) in [
            ("once", "[]", "collectors.bomb]\nenabled = true"),
            ("check", "[\"bomb\"]", "handlers.bomb]"),
        ] {
            let conf = dir.path().join(format!("{name}-{cmd}.toml"));
            std::fs::write(
                &conf,
                format!(
                    "[server]\nhandlers = {handlers}\nplugin_cache_dir = {cache:?}\n[collectors.default]\nhostname = \"h\"\n[{section}\ncomponent = {file:?}\n"
                ),
            )
            .unwrap();
            let o = run(&[cmd, conf.to_str().unwrap()]);
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(78), "{name} {cmd}: {e}");
            assert!(
                e.contains(says)
                    && e.contains("not compiled")
                    && e.contains(&format!("{name}.wasm")),
                "{name} {cmd}: {e}"
            );
        }
        let o = run(&["inspect", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{name}: {}", stderr(&o));
    }
    assert_eq!(compiled(&cache), 0, "a bomb was compiled");
    // Small functions pass the bound (nested too): such a component fails
    // further on, not being a plugin, and not at the bound.
    let small = dir.path().join("small.wasm");
    std::fs::write(&small, nested(&synthetic(3, 1 << 10))).unwrap();
    let o = run(&["inspect", small.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        !stderr(&o).contains("not compiled") && stderr(&o).contains("not a wdiamond plugin"),
        "{}",
        stderr(&o)
    );
}
