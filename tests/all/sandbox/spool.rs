//! A tenant's spool stays within its quota on disk. Before, with
//! `max_spool_mb = 2`, tenant A's spool held 7.2 MB after 8 s: one run's
//! record (100,000 metrics) was written whole, and the newest segment was
//! never dropped. Every byte is now counted against the quota before it
//! is written, and a record larger than the whole quota is refused.

use super::*;

/// Bytes the files under `dir` take on disk (as `du` counts them).
fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in read.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += m.blocks() * 512;
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_spool_never_holds_more_than_its_quota() {
    // Two collectors of tenant A: one floods 100,000 metrics a run (a
    // record of ~5 MB, past the whole 2 MB quota), one publishes a few
    // (records that fit); the backend is down, so everything spools.
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let dead = common::free_port();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"a_out\"]\nplugin_cache_dir = {:?}\n[handlers.a_out]\ncomponent = \"graphite\"\nhost = \"127.0.0.1\"\nport = {dead}\ntenant = \"a\"\nspool_dir = {:?}\n[tenants.a]\nmax_spool_mb = 2\n[collectors.default]\ninterval = 1\nhostname = \"adv\"\n[collectors.flood]\nenabled = true\ntenant = \"a\"\ncomponent = {:?}\nmode = \"flood\"\ncount = 100000\n[collectors.small]\nenabled = true\ntenant = \"a\"\ncomponent = {:?}\nmode = \"flood\"\ncount = 2000\n",
            common::cache_dir(),
            spool.display().to_string(),
            guest(),
            guest()
        ),
    );
    let agent = common::start_agent(&conf);
    let mut worst = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        worst = worst.max(du(&spool));
    }
    let stats = agent.handler_stats("a_out").unwrap();
    agent.shutdown().await;
    // The stop spills what was in flight through the same quota.
    worst = worst.max(du(&spool));
    println!(
        "the spool held at most {worst} bytes on disk (quota {} bytes)",
        2 << 20
    );
    assert!(worst <= 2 << 20, "{worst} bytes on disk past a 2 MiB quota");
    // The small records were spooled; the refused and the dropped counted.
    assert!(worst > 64 << 10, "nothing was spooled ({worst} bytes)");
    assert!(
        get(&stats.dropped) >= 100_000,
        "dropped {}",
        get(&stats.dropped)
    );
}
