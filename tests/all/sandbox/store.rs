//! The store of installed registry components, attacked on disk: whoever
//! can write under the plugin cache swaps a stored component, its
//! manifest, or puts a link, a FIFO or a huge file in their place. Each is
//! refused when the agent loads `oci://…@sha256:…` (never run, never
//! blocking), and the intact store loads.

use std::path::Path;

use wdiamond::config::ComponentRef;
use wdiamond::oci::artifact::{self, About};
use wdiamond::oci::registry::digest_of;
use wdiamond::oci::{Reference, Store};
use wdiamond::plugin::{Metering, Runtime};

use super::common;

fn about() -> About {
    About {
        world: "collector".into(),
        contract: "0.1.3".into(),
        name: "misbehave".into(),
        version: "0".into(),
        summary: String::new(),
        options: vec![],
        asks: vec![],
    }
}

/// Stores `wasm` as an installed artifact under `cache`; its reference
/// and the layer's path.
fn installed(cache: &Path, wasm: &[u8]) -> (Reference, std::path::PathBuf, std::path::PathBuf) {
    let store = Store::new(cache);
    let (_, manifest) = artifact::build(wasm, &about());
    let digest = digest_of(&manifest);
    store.put(&digest_of(wasm), wasm).unwrap();
    store.put(&digest, &manifest).unwrap();
    let r = Reference::parse(&format!("oci://127.0.0.1:1/r@{digest}")).unwrap();
    (
        r,
        store.blob_path(&digest_of(wasm)),
        store.blob_path(&digest),
    )
}

fn load(cache: &Path, r: &Reference) -> Result<(), String> {
    let runtime = Runtime::new(cache).unwrap();
    runtime
        .component_pinned(&ComponentRef::Oci(r.clone()), Metering::None, None)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

#[test]
fn a_store_changed_on_disk_is_refused_at_load() {
    let wasm = std::fs::read(common::test_guest("collector_misbehave")).unwrap();
    let other = std::fs::read(common::test_guest("collector_stall")).unwrap();
    let refused = |setup: &dyn Fn(&Path, &Path, &Path), expected: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (r, layer, manifest) = installed(dir.path(), &wasm);
        setup(dir.path(), &layer, &manifest);
        let start = std::time::Instant::now();
        let e = load(dir.path(), &r).expect_err("a changed store was loaded");
        assert!(e.contains(expected), "expected {expected:?} in {e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "{e}");
    };
    // The intact store loads (so each refusal below is the change's).
    let dir = tempfile::tempdir().unwrap();
    let (r, _, _) = installed(dir.path(), &wasm);
    load(dir.path(), &r).unwrap();
    // Another, valid component in the layer's place.
    refused(
        &|_, layer, _| std::fs::write(layer, &other).unwrap(),
        "damaged",
    );
    // A manifest naming another layer in the manifest's place.
    refused(
        &|cache, _, manifest| {
            let (_, m) = artifact::build(&other, &about());
            Store::new(cache).put(&digest_of(&other), &other).unwrap();
            std::fs::write(manifest, m).unwrap();
        },
        "damaged",
    );
    // A symlink to another component in the layer's place.
    refused(
        &|cache, layer, _| {
            let elsewhere = cache.join("elsewhere.wasm");
            std::fs::write(&elsewhere, &other).unwrap();
            std::fs::remove_file(layer).unwrap();
            std::os::unix::fs::symlink(&elsewhere, layer).unwrap();
        },
        "damaged",
    );
    // A FIFO (a read would block for ever) and a 1 GiB sparse file (a
    // read would take the memory): refused before any read.
    refused(
        &|_, layer, _| {
            std::fs::remove_file(layer).unwrap();
            let c = std::ffi::CString::new(layer.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        },
        "not a stored blob",
    );
    refused(
        &|_, layer, _| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(layer)
                .unwrap()
                .set_len(1 << 30)
                .unwrap();
        },
        "not a stored blob",
    );
    // Gone: the error says how to get it back.
    refused(
        &|_, layer, _| std::fs::remove_file(layer).unwrap(),
        "install",
    );
}
