//! The Debian package (`scripts/deb`), built from the binary under test:
//! its contents and control fields; installed into a scratch root with
//! `dpkg --root` (its postinst creating the `wdiamond` user and the
//! directories there); its unit checked by `systemd-analyze`; the unit's
//! `ExecStart` line run in that root (a chroot with /proc and /sys, in a
//! mount namespace of its own) as the unit's user, telling systemd-style
//! readiness to a notify socket, the default configuration archiving
//! metrics; then purged. Needs root (as CI runs), like `dpkg --root`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

fn run(c: &mut Command) -> String {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The shared libraries `exe` needs, as `ldd` names them.
fn libraries(exe: &Path) -> Vec<PathBuf> {
    run(Command::new("ldd").arg(exe))
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

#[test]
fn the_deb_installs_into_a_scratch_root_and_its_unit_runs_there() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "dpkg --root and chroot need root (CI runs as root)"
    );
    let python = wdiamond::plugin::python::runtime_path()
        .expect("the Python runtime component (scripts/test builds it: WDIAMOND_PYTHON=1)");
    let work = tempfile::tempdir().unwrap();
    let out = run(Command::new(crate::common::repo().join("scripts/deb"))
        .args(["--bin", BIN, "--python"])
        .arg(&python)
        .arg("--out")
        .arg(work.path()));
    let deb = PathBuf::from(out.trim());
    assert!(deb.is_file(), "{out}");

    // Contents and control.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/lib/wdiamond/wdiamond",
        "./usr/lib/wdiamond/wdiamond-python.wasm",
        "./usr/bin/wdiamond -> ../lib/wdiamond/wdiamond",
        "./etc/wdiamond/wdiamond.toml",
        "./lib/systemd/system/wdiamond.service",
        "./usr/lib/sysusers.d/wdiamond.conf",
        "./usr/lib/tmpfiles.d/wdiamond.conf",
        "./usr/share/doc/wdiamond/copyright",
        "./usr/share/doc/wdiamond/wdiamond-help.txt",
    ] {
        assert!(
            listing.contains(path),
            "{path} not in the package:\n{listing}"
        );
    }
    assert!(
        listing.lines().all(|l| l.contains("root/root")),
        "{listing}"
    );
    let control = run(Command::new("dpkg-deb").arg("-f").arg(&deb).args([
        "Package",
        "Version",
        "Architecture",
    ]));
    assert!(control.contains("Package: wdiamond\n"), "{control}");
    assert!(
        control.contains(&format!("Version: {}\n", env!("CARGO_PKG_VERSION"))),
        "{control}"
    );
    let meta = work.path().join("meta");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&meta));
    assert_eq!(
        std::fs::read_to_string(meta.join("conffiles")).unwrap(),
        "/etc/wdiamond/wdiamond.toml\n"
    );

    // Installed into a scratch root; the postinst makes the user and the
    // directories there, not on this machine.
    let root = work.path().join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
            "-i",
        ])
        .arg(&deb));
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("wdiamond:"))
        .unwrap_or_else(|| panic!("no wdiamond user in the root:\n{passwd}"));
    let f: Vec<&str> = line.split(':').collect();
    let (uid, gid): (u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap());
    assert_ne!(uid, 0);
    use std::os::unix::fs::MetadataExt;
    for d in ["var/lib/wdiamond", "var/cache/wdiamond"] {
        let m = std::fs::metadata(root.join(d)).unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!((m.uid(), m.mode() & 0o777), (uid, 0o750), "{d}");
    }

    // The unit: verified, and its exposure score (README, "Install").
    let unit = root.join("lib/systemd/system/wdiamond.service");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    let exec = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart")
        .to_string();
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let o = Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(&unit)
            .output()
            .unwrap();
        let report =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        let score: f64 = report
            .lines()
            .find_map(|l| {
                l.split("Overall exposure level for wdiamond.service: ")
                    .nth(1)
            })
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure score:\n{report}"));
        println!("systemd-analyze security --offline=true: {score}");
        assert!(score <= 3.0, "exposure {score}:\n{report}");
        // Verified on this machine (its targets, its /bin/kill), the
        // program the one installed in the scratch root.
        let copy = work.path().join("wdiamond.service");
        std::fs::write(
            &copy,
            unit_text.replace(
                "/usr/bin/wdiamond",
                &root.join("usr/bin/wdiamond").display().to_string(),
            ),
        )
        .unwrap();
        let o = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            o.status.success() && !text.contains("wdiamond.service:"),
            "systemd-analyze verify:\n{text}"
        );
    }

    // ExecStart, run there as the unit's user: the libraries the binary
    // needs copied in, /proc and /sys mounted in a namespace of its own.
    let exe = root.join("usr/lib/wdiamond/wdiamond");
    for lib in libraries(&exe) {
        let to = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &to).unwrap();
    }
    for d in ["proc", "sys", "run", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let notify = UnixDatagram::bind(root.join("run/notify")).unwrap();
    std::os::unix::fs::chown(root.join("run/notify"), Some(uid), Some(gid)).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let r = root.display();
    let script = format!(
        "mount -t proc proc {r}/proc && mount --rbind /sys {r}/sys && exec chroot --userspec={uid}:{gid} {r} {exec}"
    );
    let mut agent = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_clear()
        .env("NOTIFY_SOCKET", "/run/notify")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.path().join("agent.log")).unwrap())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = notify
        .recv(&mut buf)
        .expect("no READY=1 from the agent within 120 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    let archive = root.join("var/lib/wdiamond/archive.log");
    let start = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&archive).unwrap_or_default();
        if text.contains(".loadavg.01 ") && text.contains(".memory.") {
            break text;
        }
        let log = std::fs::read_to_string(work.path().join("agent.log")).unwrap_or_default();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing archived in 60 s; the agent's log:\n{log}"
        );
        assert!(
            agent.try_wait().unwrap().is_none(),
            "the agent exited:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        std::fs::metadata(&archive).unwrap().uid(),
        uid,
        "archived as the unit's user"
    );
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let n = notify.recv(&mut buf).expect("no STOPPING=1");
    assert!(
        buf[..n].starts_with(b"STOPPING=1"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let status = agent.wait().unwrap();
    let log = std::fs::read_to_string(work.path().join("agent.log")).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(lines.lines().all(|l| l.starts_with("servers.")), "{lines}");

    // Purged: its state and cache go, the conffile too.
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--log=/dev/null",
            "-P",
            "wdiamond",
        ]));
    assert!(!root.join("var/lib/wdiamond").exists());
    assert!(!root.join("etc/wdiamond/wdiamond.toml").exists());
}
