//! Per-run instances (`instance = "per-run"`) share the pool's slots one
//! run after another: what one instance leaves in its memory must not
//! reach the next, whichever collector it belongs to, and a per-run
//! instance is held to the same memory cap and deadline as any other
//! while its neighbour keeps its windows.

use super::*;

/// A per-run collector fills 4 MiB of its heap with a marker every run;
/// another per-run collector of the same component (so the pool hands it
/// the same slots, warm) reads 4 MiB of fresh heap every run looking for
/// it — as does a new instance of the first collector itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_run_instance_never_sees_what_the_last_one_left() {
    let marker = "LEFTOVER-SECRET-7f3a";
    // `scan` looks for its argument reversed (so its own configuration
    // does not hold what it looks for).
    let reversed: String = marker.chars().rev().collect();
    let g = guest();
    let sections = format!(
        "[collectors.bad]\nenabled = true\ncomponent = {g:?}\ninstance = \"per-run\"\nmode = \"leave\"\narg = {marker:?}\npath = \"leaver\"\n\
         [collectors.scanner]\nenabled = true\ncomponent = {g:?}\ninstance = \"per-run\"\nmode = \"scan\"\narg = {reversed:?}\npath = \"scanner\"\n"
    );
    let o = beside_neighbour("per-run leftovers", &sections, "bad").await;
    // The leaver ran and left its marker each time.
    let left = sum_values(&o.lines, "servers.adv.leaver.left");
    assert!(left >= 3.0, "the leaver ran {left} times: {:?}", o.lines);
    let scans: Vec<f64> = o
        .lines
        .iter()
        .filter(|l| l.starts_with("servers.adv.scanner.found "))
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .collect();
    assert!(scans.len() >= 3, "{:?}", o.lines);
    assert!(
        scans.iter().all(|f| *f == 0.0),
        "a per-run instance found what another left: {scans:?}"
    );
}

/// The neighbours of that attack: a per-run scanner beside a persistent
/// leaver of the same component (whose memory stays its own), and per-run
/// instances that allocate without bound or spin, stopped by the memory
/// cap and the deadline and counted, run after run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_run_bombs_and_spins_are_stopped_and_counted_every_run() {
    let g = guest();
    let sections = format!(
        "[collectors.bad]\nenabled = true\ncomponent = {g:?}\ninstance = \"per-run\"\nmode = \"bomb\"\n[collectors.bad.limits]\nmemory_mb = 16\n\
         [collectors.spinner]\nenabled = true\ncomponent = {g:?}\ninstance = \"per-run\"\nmode = \"spin\"\n[collectors.spinner.limits]\ntimeout = 0.3\n\
         [collectors.scanner]\nenabled = true\ncomponent = {g:?}\ninstance = \"per-run\"\nmode = \"scan\"\narg = \"TERCES\"\npath = \"scanner\"\n\
         [collectors.kept]\nenabled = true\ncomponent = {g:?}\nmode = \"leave\"\narg = \"SECRET\"\npath = \"kept\"\n"
    );
    let o = beside_neighbour("per-run bomb and spin", &sections, "bad").await;
    let runs = get(&o.bad.runs);
    assert!(runs >= 3, "the bomb ran {runs} times");
    assert_eq!(
        get(&o.bad.memory_exhausted),
        runs,
        "every bomb run stopped by the cap"
    );
    let spinner = &o.others.iter().find(|(n, _)| n == "spinner").unwrap().1;
    assert!(get(&spinner.runs) >= 2);
    assert_eq!(
        get(&spinner.timeouts),
        get(&spinner.runs),
        "every spin stopped by the deadline"
    );
    // The persistent leaver's memory is its own; the per-run scanner
    // beside it finds nothing of it.
    assert!(sum_values(&o.lines, "servers.adv.kept.left") >= 3.0);
    let found = sum_values(&o.lines, "servers.adv.scanner.found");
    assert_eq!(found, 0.0, "{:?}", o.lines);
    assert!(last_value(&o.lines, "servers.adv.scanner.found").is_some());
}
