//! What a plugin writes in its `directories` grant is bounded: bytes
//! (`disk_mb`, default 64 MiB for a third-party plugin), entries created
//! (`disk_files`, default 1,000) and one write (1 MiB). Before, a
//! collector wrote 2 GiB into its grant in one run. Each way in is tried:
//! stream writes (Rust's `write_all`), a file grown by `set_len`, files
//! and directories created, and a Python script's `open(..., 'w')`; each
//! is refused in the guest (an error, not a trap), counted as a denial,
//! and the directory stays within the budget.

use super::*;

/// What a file system adds to the blocks of the files a plugin wrote
/// (ext4's extent index block of a fragmented file, 4 KiB, counts in
/// `st_blocks`; seen on a busy CI disk: 64 MiB + 4096): the budget counts
/// the bytes the plugin writes, and a run starts from the blocks measured.
const FS_SLACK: u64 = 64 << 10;

/// Bytes under `dir` on disk (the larger of size and blocks, as the
/// budget counts), and entries.
fn usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut bytes, mut entries) = (0, 0);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            entries += 1;
            bytes += m.len().max(m.blocks() * 512);
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    (bytes, entries)
}

fn granted(dir: &Path, arg: &str, count: u64, limits: &str) -> String {
    format!(
        "arg = {arg:?}\ncount = {count}\n[collectors.bad.grants]\ndirectories = [{:?}]\n{limits}",
        dir.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_past_the_disk_budget_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fill");
    let o = beside_neighbour(
        "fill a directories grant",
        &bad(
            "fill",
            &granted(
                dir.path(),
                file.to_str().unwrap(),
                2048,
                "[collectors.bad.limits]\ndisk_mb = 8\n",
            ),
        ),
        "bad",
    )
    .await;
    let (bytes, _) = usage(dir.path());
    assert!(
        bytes <= (8 << 20) + FS_SLACK,
        "{bytes} bytes written past an 8 MiB budget"
    );
    // The first run got as far as the budget allowed; every run saw its
    // write fail as an error (never a trap), counted as a denial.
    let written: Vec<f64> = o
        .lines
        .iter()
        .filter(|l| l.starts_with("servers.adv.misbehave.written_mb "))
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .collect();
    assert!(written.len() >= 3, "{written:?}");
    assert!((6.0..=8.0).contains(&written[0]), "{written:?} MiB written");
    assert_eq!(
        sum_values(&o.lines, "servers.adv.misbehave.refused"),
        written.len() as f64
    );
    assert!(last_value(&o.lines, "servers.adv.misbehave.ok").is_none());
    assert_eq!(get(&o.bad.failures), 0, "never a trap");
    assert!(get(&o.bad.denials) >= 3, "counted as denials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_budget_bounds_a_plugin_that_sets_none() {
    // No disk_mb: the default (64 MiB) holds; 2 GiB asked.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fill");
    let o = beside_neighbour(
        "fill with the default budget",
        &bad(
            "fill",
            &granted(dir.path(), file.to_str().unwrap(), 2048, ""),
        ),
        "bad",
    )
    .await;
    let (bytes, _) = usage(dir.path());
    assert!(
        bytes <= (64 << 20) + FS_SLACK,
        "{bytes} bytes past the default 64 MiB"
    );
    assert!(get(&o.bad.denials) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_a_file_past_the_budget_is_refused() {
    // set-size: a sparse 100 GiB file would be 100 GiB to every reader.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sparse");
    let o = beside_neighbour(
        "grow a file by set_len",
        &bad(
            "grow",
            &granted(
                dir.path(),
                file.to_str().unwrap(),
                100 << 10,
                "[collectors.bad.limits]\ndisk_mb = 8\n",
            ),
        ),
        "bad",
    )
    .await;
    let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(len <= 8 << 20, "grown to {len} bytes");
    assert!(sum_values(&o.lines, "servers.adv.misbehave.refused") >= 3.0);
    assert!(get(&o.bad.denials) >= 3);
    assert_eq!(get(&o.bad.failures), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_entries_past_the_budget_is_refused() {
    for mode in ["files", "mkdirs"] {
        let dir = tempfile::tempdir().unwrap();
        let o = beside_neighbour(
            &format!("create {mode}"),
            &bad(
                mode,
                &granted(
                    dir.path(),
                    dir.path().to_str().unwrap(),
                    100_000,
                    "[collectors.bad.limits]\ndisk_files = 50\n",
                ),
            ),
            "bad",
        )
        .await;
        let (_, entries) = usage(dir.path());
        assert!(
            entries <= 50,
            "{mode}: {entries} entries past a budget of 50"
        );
        assert_eq!(entries, 50, "{mode}: up to the budget");
        assert_eq!(
            last_value(&o.lines, "servers.adv.misbehave.created"),
            Some(0.0),
            "{mode}"
        );
        assert!(
            sum_values(&o.lines, "servers.adv.misbehave.refused") >= 3.0,
            "{mode}"
        );
        assert!(get(&o.bad.denials) >= 3, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_script_writing_past_the_budget_gets_an_oserror() {
    let dir = tempfile::tempdir().unwrap();
    let script = common::repo().join("tests/fixtures/python/hostile.py");
    let o = beside_neighbour(
        "python fills its grant",
        &format!(
            "[collectors.py]\nenabled = true\ncomponent = {:?}\nmode = \"fill\"\narg = {:?}\n[collectors.py.grants]\ndirectories = [{:?}]\n[collectors.py.limits]\ndisk_mb = 4\n",
            script.display().to_string(),
            dir.path().join("big").display().to_string(),
            dir.path().display().to_string()
        ),
        "py",
    )
    .await;
    let (bytes, _) = usage(dir.path());
    assert!(
        bytes <= (4 << 20) + FS_SLACK,
        "{bytes} bytes past a 4 MiB budget"
    );
    let mine = published(&o.lines, "hostile");
    for refused in ["fill_refused", "pwrite_refused", "truncate_refused"] {
        assert!(
            mine.iter()
                .any(|l| l.starts_with(&format!("servers.adv.hostile.{refused} 1 "))),
            "{refused}: the script saw an OSError: {mine:?}"
        );
    }
    // A write 1 TiB past the end grew no file (the gap is charged first).
    for f in ["big.pwrite", "big.truncate"] {
        let len = std::fs::metadata(dir.path().join(f))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len <= 4 << 20, "{f} grew to {len} bytes");
    }
    assert!(get(&o.bad.denials) >= 3);
    assert_eq!(get(&o.bad.failures), 0);
}
