//! Diamond's released collectors (`diamond` 4.0.515 on PyPI, MIT), and the
//! pure-Python packages its scripts import, fetched once by `pip download`
//! into `target/pypi/` and unpacked there: the tests run Diamond's own
//! scripts, never committed here.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The released version the tests run.
pub const VERSION: &str = "4.0.515";

/// The directory of Diamond's collectors (`cpu/cpu.py`, …), fetched on
/// first use.
pub fn collectors() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(fetch).clone()
}

/// A Diamond collector script, `DIR/FILE.py` under [`collectors`].
pub fn script(relative: &str) -> PathBuf {
    let path = collectors().join(relative);
    assert!(
        path.is_file(),
        "{} is not in Diamond {VERSION}",
        path.display()
    );
    path
}

fn fetch() -> PathBuf {
    let unpacked = pypi("diamond", VERSION);
    [
        format!("diamond-{VERSION}.data/data/share/diamond/collectors"),
        format!("diamond-{VERSION}/src/collectors"),
    ]
    .iter()
    .map(|p| unpacked.join(p))
    .find(|p| p.join("cpu/cpu.py").is_file())
    .expect("no collectors in Diamond's archive")
}

/// A release of a pure-Python package from PyPI, downloaded once (`pip
/// download --no-deps`) into `target/pypi/NAME-VERSION/` and unpacked
/// there: the directory it was unpacked into (a wheel's root is a
/// `site-packages`).
pub fn pypi(name: &str, version: &str) -> PathBuf {
    let base = super::repo().join(format!("target/pypi/{name}-{version}"));
    let unpacked = base.join("unpacked");
    if unpacked.is_dir() {
        return unpacked;
    }
    let download = base.join("download");
    std::fs::create_dir_all(&download).unwrap();
    let pip = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(&download)
        .arg(format!("{name}=={version}"))
        .status()
        .expect("python3 -m pip (scripts/test installs it)");
    assert!(pip.success(), "pip download {name}=={version} failed");
    let archive = std::fs::read_dir(&download)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".whl") || n.ends_with(".tar.gz") || n.ends_with(".zip")
        })
        .expect("pip downloaded no archive");
    // Unpacked beside, then renamed: a half-unpacked tree is never used.
    let partial = base.join(format!("unpacking-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).unwrap();
    let how = if archive.to_string_lossy().ends_with(".tar.gz") {
        "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])"
    } else {
        "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])"
    };
    let unpack = Command::new("python3")
        .args(["-c", how])
        .arg(&archive)
        .arg(&partial)
        .status()
        .unwrap();
    assert!(unpack.success(), "unpacking {} failed", archive.display());
    if std::fs::rename(&partial, &unpacked).is_err() {
        let _ = std::fs::remove_dir_all(&partial); // another test binary won
    }
    unpacked
}
