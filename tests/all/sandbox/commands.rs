//! Commands a plugin runs: a grandchild that daemonises, descendants of a
//! killed agent, argv that would pass a pattern with `..` or `/`, and a
//! program glob (userscripts' shape) asked for what it does not admit.

use std::os::unix::fs::symlink;
use std::time::Duration;

use super::daemon::{processes, unique_secs, Daemon};
use super::*;

#[test]
fn a_command_that_daemonises_returns_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("daemonise.sh");
    // A grandchild in a session of its own holding stdout, and a double
    // fork that escapes the process group.
    let (a, b, c) = (unique_secs(2), unique_secs(3), unique_secs(4));
    std::fs::write(
        &script,
        format!("#!/bin/sh\nsetsid /bin/sleep {a} &\n( ( /bin/sleep {b} & ) & )\necho started\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = script.display();
    let g = guest();
    let mut d = Daemon::start(
        &format!(
            "[collectors.daemoniser]\nenabled = true\ncomponent = {g:?}\nmode = \"run\"\narg = \"{s}\"\n[collectors.daemoniser.grants]\ncommands = [[\"{s}\"]]\n[collectors.daemoniser.limits]\ncommand_timeout = 1\n\
             [collectors.timeout]\nenabled = true\ncomponent = {g:?}\nmode = \"run-stdin\"\ncount = 33554432\narg = \"/bin/sleep {c}\"\n[collectors.timeout.grants]\ncommands = [[\"/bin/sleep\", \"{c}\"]]\n[collectors.timeout.limits]\ncommand_timeout = 1\n\
             [collectors.neighbour]\nenabled = true\ncomponent = {g:?}\nmode = \"run\"\narg = \"/bin/true\"\n[collectors.neighbour.grants]\ncommands = [[\"/bin/true\"]]\n"
        ),
        Some(256),
    );
    std::thread::sleep(Duration::from_millis(3000));
    let (fds, threads, rss) = (d.count("fd"), d.count("task"), d.rss_kib());
    std::thread::sleep(Duration::from_millis(5000));
    let (fds2, threads2, rss2) = (d.count("fd"), d.count("task"), d.rss_kib());
    eprintln!("fds {fds} -> {fds2}, threads {threads} -> {threads2}, RSS {rss} -> {rss2} KiB");
    // 32 MiB of stdin per run to a command that never reads it: no buffer
    // is held past its call (before: +32 MiB a run).
    assert!(rss2 < rss + (48 << 10), "RSS {rss} -> {rss2} KiB");
    // Nothing accumulates run after run (a few fds and threads of slack
    // for the blocking pool's coming and going).
    assert!(fds2 <= fds + 4, "fds {fds} -> {fds2}");
    assert!(threads2 <= threads + 4, "threads {threads} -> {threads2}");
    let sleeps = [a, b, c].map(|n| format!("/bin/sleep {n}"));
    for c in &sleeps {
        assert!(
            processes(c).len() <= 1,
            "{c} accumulates: {:?}",
            processes(c)
        );
    }
    let lines = d.archive();
    // The daemonising command returned its exit status at every run.
    let exits = lines
        .iter()
        .filter(|l| l.starts_with("servers.d.misbehave.exit "))
        .count();
    assert!(exits >= 10, "{exits} exits; log:\n{}", d.log());
    d.signal_and_wait(libc::SIGTERM, STOP_BOUND);
    std::thread::sleep(Duration::from_millis(200));
    for c in &sleeps {
        assert!(
            processes(c).is_empty(),
            "{c} outlived the agent: {:?}",
            processes(c)
        );
    }
}

#[test]
fn a_killed_agent_takes_its_commands_descendants_along() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("d.sh");
    let (a, b) = (unique_secs(5), unique_secs(6));
    std::fs::write(
        &script,
        format!("#!/bin/sh\nsetsid /bin/sleep {a} &\n/bin/sleep {b}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = script.display();
    let mut d = Daemon::start(
        &format!(
            "[collectors.c]\nenabled = true\ncomponent = {:?}\nmode = \"run\"\narg = \"{s}\"\n[collectors.c.grants]\ncommands = [[\"{s}\"]]\n[collectors.c.limits]\ntimeout = 60\ncommand_timeout = 60\n",
            guest()
        ),
        None,
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (a, b) = (format!("/bin/sleep {a}"), format!("/bin/sleep {b}"));
    assert_eq!(processes(&a).len(), 1, "the daemon runs");
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        processes(&a).is_empty() && processes(&b).is_empty(),
        "a descendant outlived the killed agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_and_slashes_do_not_pass_argv_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, secret) = (dir.path().join("zone"), dir.path().join("secret"));
    std::fs::create_dir_all(zone.join("sub")).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("s.txt"), "TOPSECRET").unwrap();
    std::fs::write(zone.join("sub/t.txt"), "deep").unwrap();
    std::fs::write(zone.join("ok.txt"), "fine").unwrap();
    symlink(secret.join("s.txt"), zone.join("link.txt")).unwrap();
    let (z, g) = (zone.display(), guest());
    let run = |name: &str, arg: String| {
        format!("[collectors.{name}]\nenabled = true\ncomponent = {g:?}\nmode = \"run\"\narg = \"/bin/cat {arg}\"\n[collectors.{name}.grants]\ncommands = [[\"/bin/cat\", \"{z}/*\"]]\n")
    };
    let sections = [
        run("bad", format!("{z}/../secret/s.txt")),
        run("deep", format!("{z}/sub/t.txt")),
        run("linked", format!("{z}/link.txt")),
        run("fine", format!("{z}/ok.txt")),
    ]
    .concat();
    let o = beside_neighbour("`..`, `/` and links in argv", &sections, "bad").await;
    for name in ["bad", "deep", "linked"] {
        let (_, st) = o.others.iter().find(|(n, _)| n == name).unwrap();
        assert!(
            get(&st.denials) >= 3,
            "{name}: {} denials",
            get(&st.denials)
        );
    }
    let (_, fine) = o.others.iter().find(|(n, _)| n == "fine").unwrap();
    assert_eq!(get(&fine.denials) + get(&fine.guest_errors), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_glob_admits_its_directorys_files_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("scripts");
    std::fs::create_dir_all(zone.join("sub")).unwrap();
    let script = |p: &std::path::Path| {
        std::fs::write(p, "#!/bin/sh\necho ran\n").unwrap();
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    script(&zone.join("ok.sh"));
    script(&zone.join("sub/deep.sh"));
    script(&dir.path().join("outside.sh"));
    symlink(dir.path().join("outside.sh"), zone.join("link.sh")).unwrap();
    symlink("/bin/sh", zone.join("shell")).unwrap();
    let (z, g) = (zone.display(), guest());
    let run = |name: &str, argv: String| {
        format!("[collectors.{name}]\nenabled = true\ncomponent = {g:?}\nmode = \"run\"\narg = \"{argv}\"\n[collectors.{name}.grants]\ncommands = [[\"{z}/*\"]]\n")
    };
    let sections = [
        run("args", format!("{z}/ok.sh -c id")),
        run("deep", format!("{z}/sub/deep.sh")),
        run("linked", format!("{z}/link.sh")),
        run("shell", format!("{z}/shell")),
        run("climb", format!("{z}/../outside.sh")),
        run("dir", format!("{z}/sub")),
        run("fine", format!("{z}/ok.sh")),
    ]
    .concat();
    let o = beside_neighbour("a program glob asked for more", &sections, "args").await;
    for name in ["args", "deep", "linked", "shell", "climb", "dir"] {
        let (_, st) = o.others.iter().find(|(n, _)| n == name).unwrap();
        assert!(
            get(&st.denials) >= 3,
            "{name}: {} denials",
            get(&st.denials)
        );
    }
    let (_, fine) = o.others.iter().find(|(n, _)| n == "fine").unwrap();
    assert_eq!(get(&fine.denials) + get(&fine.guest_errors), 0);
    assert!(get(&fine.runs) >= 2);
}
