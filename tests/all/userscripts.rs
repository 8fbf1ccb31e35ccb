//! userscripts against a real directory: its grant (a program glob)
//! admits the directory's files, without arguments, and nothing else.

use std::path::Path;

use crate::common;
use crate::databases::{text, value, wdiamond};

#[test]
fn userscripts_runs_the_directorys_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(scripts.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let script = |path: &Path, body: &str, exec: bool| {
        std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
        let mode = if exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    };
    script(&scripts.join("app.sh"), "echo 'app.users 42'\necho 'app.ratio 0.25'\necho 'not a metric line'\necho 'app.stamped 7 1700000000'\n", true);
    script(
        &scripts.join("failing.sh"),
        "echo 'failing.value 1'\nexit 3\n",
        true,
    );
    script(&scripts.join("plain.txt"), "echo 'plain.ran 1'\n", false);
    script(
        &scripts.join("sub/nested.sh"),
        "echo 'nested.ran 1'\n",
        true,
    );
    script(&outside.join("escape.sh"), "echo 'outside.ran 1'\n", true);
    std::os::unix::fs::symlink(outside.join("escape.sh"), scripts.join("link.sh")).unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\n[collectors.default]\nhostname = \"us\"\n\n[collectors.userscripts]\nenabled = true\nscripts_path = \"{}/\"\n",
            common::cache_dir(),
            scripts.display()
        ),
    );
    let o = wdiamond(&["once", conf.to_str().unwrap()])
        .output()
        .unwrap();
    let all = text(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(value(&out, "servers.us.app.users"), Some(42.0), "{all}");
    assert!(out.contains("servers.us.app.ratio 0.2500 "), "{all}");
    assert!(out.contains("servers.us.app.stamped 7 1700000000"), "{all}");
    assert_eq!(value(&out, "servers.us.failing.value"), Some(1.0), "{all}");
    for never in ["plain.ran", "nested.ran", "outside.ran"] {
        assert!(!out.contains(never), "{never}: {all}");
    }
    assert!(
        all.contains("invalid/unparsable output: not a metric line"),
        "{all}"
    );
    assert!(all.contains("exited with status 3"), "{all}");
    // The link out of the directory is refused by the grant, which says so.
    assert!(all.contains("link.sh") && all.contains("denied"), "{all}");
}
