//! Files under a granted glob: FIFOs and devices, a symlink swapped
//! between check and read, Unix socket paths with `..`, what a listing
//! shows, and symlinks a plugin would plant in its own directory.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_under_a_glob_is_denied_and_an_exactly_granted_one_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let (d, g) = (dir.path().display(), guest());
    let sections = format!(
        "[collectors.bad]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"{d}/fifo\"\n[collectors.bad.grants]\nfiles = [\"{d}/*\"]\n[collectors.bad.limits]\ntimeout = 1\n\
         [collectors.exact]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"{d}/fifo\"\n[collectors.exact.grants]\nfiles = [\"{d}/fifo\"]\n[collectors.exact.limits]\ntimeout = 1\n\
         [collectors.environ]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"/proc/self/environ\"\n[collectors.environ.grants]\nfiles = [\"/proc/self/*\"]\n"
    );
    let o = beside_neighbour("a FIFO under a glob", &sections, "bad").await;
    assert!(get(&o.bad.denials) >= 3, "the FIFO needs an exact grant");
    assert_eq!(get(&o.bad.timeouts), 0);
    // Granted exactly, a FIFO without a writer is read without blocking:
    // every run ends (with an error result: timed out), none is cut.
    let (_, exact) = o.others.iter().find(|(n, _)| n == "exact").unwrap();
    assert!(
        get(&exact.runs) >= 3 && get(&exact.timeouts) == 0,
        "runs {} timeouts {}",
        get(&exact.runs),
        get(&exact.timeouts)
    );
    assert_eq!(get(&exact.denials), 0);
    // The agent's environment is not reachable through /proc/self/*.
    let (_, environ) = o.others.iter().find(|(n, _)| n == "environ").unwrap();
    assert!(get(&environ.denials) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_race_never_reads_the_ungranted_file() {
    let dir = tempfile::tempdir().unwrap();
    let (race, secret) = (dir.path().join("race"), dir.path().join("secret"));
    std::fs::create_dir_all(&race).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("s.txt"), "TOPSECRET").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, race) = (stop.clone(), race.clone());
        std::thread::spawn(move || {
            let (x, tmp_f, tmp_l) = (race.join("x"), race.join(".f"), race.join(".l"));
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::write(&tmp_f, "fine");
                let _ = std::fs::rename(&tmp_f, &x);
                let _ = symlink("../secret/s.txt", &tmp_l);
                let _ = std::fs::rename(&tmp_l, &x);
            }
        })
    };
    let o = beside_neighbour(
        "symlink race",
        &bad(
            "read-many",
            &format!(
                "arg = \"{}/x\"\ncount = 3000\n[collectors.bad.grants]\nfiles = [\"{}/*\"]\n",
                race.display(),
                race.display()
            ),
        ),
        "bad",
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let ok = sum_values(&o.lines, "servers.adv.misbehave.ok");
    let leaked = sum_values(&o.lines, "servers.adv.misbehave.secret");
    eprintln!("symlink race: {ok} reads of the granted file, {leaked} of the secret");
    assert!(ok > 0.0, "the race never let the granted file through");
    assert_eq!(leaked, 0.0, "the ungranted file was read");
    assert!(get(&o.bad.denials) > 0, "the link was seen and denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_grants_are_checked_as_file_paths() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::create_dir_all(zone.join("a")).unwrap();
    let victim = dir.path().join("victim.sock");
    let victim_l = std::os::unix::net::UnixListener::bind(&victim).unwrap();
    victim_l.set_nonblocking(true).unwrap();
    let good = zone.join("a/good.sock");
    let good_l = std::os::unix::net::UnixListener::bind(&good).unwrap();
    good_l.set_nonblocking(true).unwrap();
    symlink(&victim, zone.join("a/link.sock")).unwrap();
    let (z, g) = (zone.display(), guest());
    let unix = |name: &str, path: String| {
        format!("[collectors.{name}]\nenabled = true\ncomponent = {g:?}\nmode = \"unix\"\narg = \"{path}\"\n[collectors.{name}.grants]\nconnect = [\"unix:{z}/*/*.sock\", \"unix:{z}/**\"]\n")
    };
    let sections = [
        unix("bad", format!("{z}/a/../../victim.sock")),
        unix("link", format!("{z}/a/link.sock")),
        unix("deep", format!("{z}/a/../../zone/../victim.sock")),
        unix("good", format!("{z}/a/good.sock")),
    ]
    .concat();
    let o = beside_neighbour("`..` and links in Unix socket paths", &sections, "bad").await;
    for name in ["bad", "link", "deep"] {
        let (_, st) = o.others.iter().find(|(n, _)| n == name).unwrap();
        assert!(get(&st.guest_errors) >= 3, "{name} connected");
    }
    let (_, link) = o.others.iter().find(|(n, _)| n == "link").unwrap();
    assert!(get(&link.denials) >= 3, "the link's target is checked");
    assert!(
        victim_l.accept().is_err(),
        "a connection reached the victim"
    );
    let (_, good) = o.others.iter().find(|(n, _)| n == "good").unwrap();
    assert_eq!(get(&good.guest_errors), 0, "the granted socket connects");
    assert!(good_l.accept().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_directories_a_glob_can_match_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("f"), "x").unwrap();
    symlink("/etc", zone.join("etc")).unwrap();
    let (z, g) = (zone.display(), guest());
    let mode = |name: &str, mode: &str, arg: String, grants: &str| {
        format!("[collectors.{name}]\nenabled = true\ncomponent = {g:?}\nmode = \"{mode}\"\narg = \"{arg}\"\n[collectors.{name}.grants]\n{grants}\n")
    };
    let files = format!("files = [\"{z}/*\"]");
    let statvfs = format!("statvfs = [\"{z}/*\"]");
    let sections = [
        mode("bad", "list", "/".into(), &files),
        mode("tmp", "list", dir.path().display().to_string(), &files),
        mode("zone", "list", z.to_string(), &files),
        mode("statlink", "stat", format!("{z}/etc"), &statvfs),
        mode("statdots", "stat", format!("{z}/../zone/f"), &statvfs),
        mode("vfslink", "statvfs", format!("{z}/etc"), &statvfs),
    ]
    .concat();
    let o = beside_neighbour("listing ancestors, stat through links", &sections, "bad").await;
    let st = |n: &str| o.others.iter().find(|(m, _)| m == n).unwrap().1.clone();
    assert!(get(&o.bad.denials) >= 3, "/ is not listable");
    assert!(
        get(&st("tmp").denials) >= 3,
        "the zone's parent is not listable"
    );
    assert_eq!(get(&st("zone").guest_errors), 0, "the zone itself is");
    assert!(
        get(&st("statlink").denials) >= 3,
        "metadata follows no link out"
    );
    assert!(
        get(&st("statdots").guest_errors) >= 3,
        "metadata refuses `..`"
    );
    assert!(
        get(&st("vfslink").denials) >= 3,
        "statvfs follows no link out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_plant_symlinks_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    let o = beside_neighbour(
        "symlink in a directories grant",
        &bad(
            "symlink",
            &format!(
                "arg = {link:?}\n[collectors.bad.grants]\ndirectories = [{:?}]\n",
                dir.path()
            ),
        ),
        "bad",
    )
    .await;
    assert!(get(&o.bad.guest_errors) >= 3, "symlink-at is refused");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "a link was planted"
    );
}
