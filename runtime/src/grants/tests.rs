//! The grants' checks: globs, symlinks, listings, denials.

use super::*;

pub(super) fn grants(files: &[&str]) -> Grants {
    Grants {
        section: "collectors.test".into(),
        files: files.iter().map(|f| parse_path_glob(f).unwrap()).collect(),
        ..Default::default()
    }
}

#[test]
fn file_globs_and_denial_message() {
    let g = grants(&["/proc/stat", "/sys/block/*/stat"]);
    assert!(g
        .check_read(Path::new("/proc/stat"), Path::new("/proc/stat"), false)
        .is_ok());
    assert!(g
        .check_read(
            Path::new("/sys/block/sda/stat"),
            Path::new("/sys/block/sda/stat"),
            false
        )
        .is_ok());
    assert!(g
        .check_read(Path::new("/sys/block"), Path::new("/sys/block"), true)
        .is_ok());
    assert!(g
        .check_read(
            Path::new("/sys/block/sda/queue/x"),
            Path::new("/sys/block/sda/queue/x"),
            false
        )
        .is_err());
    let e = g
        .check_read(Path::new("/etc/shadow"), Path::new("/etc/shadow"), false)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "reading /etc/shadow is not granted: add \"/etc/shadow\" to [collectors.test.grants] files"
    );
}

#[test]
fn symlink_escape_is_caught_by_the_canonical_path() {
    let g = grants(&["/proc/stat", "/tmp/x/*"]);
    let e = g
        .check_read(Path::new("/tmp/x/link"), Path::new("/etc/shadow"), false)
        .unwrap_err();
    assert!(e.to_string().contains("/etc/shadow"));
}

#[test]
fn proc_self_links_still_match() {
    let g = grants(&["/proc/net/dev"]);
    let me = format!("/proc/{}/net/dev", std::process::id());
    assert!(g
        .check_read(Path::new("/proc/net/dev"), Path::new(&me), false)
        .is_ok());
    assert!(g
        .check_read(
            Path::new("/proc/1/net/dev"),
            Path::new("/proc/1/net/dev"),
            false
        )
        .is_err());
}

#[test]
fn double_star_grants_every_path() {
    let mut g = grants(&[]);
    g.statvfs = vec![parse_path_glob("/**").unwrap()];
    for p in ["/", "/tmp", "/sys/fs/cgroup"] {
        assert!(g.check_statvfs(Path::new(p)).is_ok(), "{p}");
    }
}

#[test]
fn only_directories_whose_entries_a_glob_can_match_are_listable() {
    let g = grants(&["/sys/block/*/stat", "/tmp/zone/*", "/data/**"]);
    let list = |p: &str| g.check_read(Path::new(p), Path::new(p), true).is_ok();
    for ok in [
        "/sys/block",
        "/sys/block/sda",
        "/tmp/zone",
        "/data",
        "/data/a/b",
    ] {
        assert!(list(ok), "{ok} should be listable");
    }
    for no in ["/", "/sys", "/tmp", "/sys/block/sda/queue", "/etc"] {
        assert!(!list(no), "{no} should not be listable");
    }
    // Reading still needs a match of the whole glob.
    assert!(g
        .check_read(
            Path::new("/sys/block/sda"),
            Path::new("/sys/block/sda"),
            false
        )
        .is_err());
}

#[test]
fn exact_grants_are_written_without_wildcards() {
    let g = grants(&["/proc/self/*", "/tmp/zone/fifo"]);
    let p = |s: &str| PathBuf::from(s);
    assert!(g
        .check_exact(&p("/tmp/zone/fifo"), &p("/tmp/zone/fifo"), "a FIFO")
        .is_ok());
    let e = g
        .check_exact(
            &p("/proc/self/environ"),
            &p("/proc/self/environ"),
            "a secret",
        )
        .unwrap_err();
    assert!(e.to_string().contains("wildcards do not grant it"), "{e}");
    assert!(e.to_string().contains("add \"/proc/self/environ\""), "{e}");
}
