//! Registries that lie, stall, loop and answer garbage: a fake registry of
//! the test's own serves a well-formed, signed artifact with one thing
//! wrong; each install is refused with its reason, within its deadline,
//! and nothing reaches the store.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wdiamond::oci::artifact::{self, About};
use wdiamond::oci::registry::digest_of;
use wdiamond::oci::sign;

use super::{config, wdiamond};
use crate::common::registry::stored;

/// What the fake answers to one request.
enum Reply {
    /// These bytes, then close.
    Raw(Vec<u8>),
    /// Nothing, ever (the connection kept open).
    Stall,
    /// One header byte a second, for ever.
    Drip,
}

fn ok(content_type: &str, body: &[u8], extra: &str) -> Reply {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    Reply::Raw(r)
}

fn not_found() -> Reply {
    Reply::Raw(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec())
}

/// A signed component artifact, its parts as a registry serves them.
#[derive(Clone)]
struct Artifact {
    wasm: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    digest: String,
    sig_config: Vec<u8>,
    sig_manifest: Vec<u8>,
    payload: Vec<u8>,
}

fn artifact(wasm: Vec<u8>, key: &sign::PrivateKey, signed_digest: Option<&str>) -> Artifact {
    let about = About {
        world: "collector".into(),
        contract: "0.1.3".into(),
        name: "misbehave".into(),
        version: "0".into(),
        summary: String::new(),
        options: vec![],
        asks: vec![],
    };
    let (config, manifest) = artifact::build(&wasm, &about);
    let digest = digest_of(&manifest);
    let payload = sign::payload("127.0.0.1/r", signed_digest.unwrap_or(&digest));
    let (sig_config, sig_manifest) = artifact::signature(&payload, &key.sign(&payload).unwrap());
    Artifact {
        wasm,
        config,
        manifest,
        digest,
        sig_config,
        sig_manifest,
        payload,
    }
}

/// How an honest registry serves `a` (as repository `r`, tag `1`).
fn honest(a: &Artifact, method: &str, path: &str) -> Reply {
    const M: &str = "application/vnd.oci.image.manifest.v1+json";
    let sig_tag = sign::signature_tag(&a.digest);
    let with_digest = |b: &[u8]| {
        ok(
            M,
            b,
            &format!("Docker-Content-Digest: {}\r\n", digest_of(b)),
        )
    };
    let blob = |b: &[u8]| ok("application/octet-stream", b, "");
    let _ = method;
    match path {
        "/v2/" => ok("application/json", b"{}", ""),
        p if p == "/v2/r/manifests/1" || p == format!("/v2/r/manifests/{}", a.digest) => {
            with_digest(&a.manifest)
        }
        p if p == format!("/v2/r/manifests/{sig_tag}") => with_digest(&a.sig_manifest),
        p => {
            for b in [&a.wasm, &a.config, &a.payload, &a.sig_config] {
                if p == format!("/v2/r/blobs/{}", digest_of(b)) {
                    return blob(b);
                }
            }
            not_found()
        }
    }
}

/// A fake registry on a free port; every request's path is recorded.
struct Fake {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

fn fake(answer: impl Fn(&str, &str, usize) -> Reply + Send + Sync + 'static) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let seen = seen.clone();
            let answer = answer.clone();
            std::thread::spawn(move || {
                let Some(head) = crate::common::http::read_head(&mut c) else {
                    return;
                };
                let mut parts = head.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                );
                let count = {
                    let mut s = seen.lock().unwrap();
                    s.push(path.clone());
                    s.iter().filter(|p| **p == path).count()
                };
                match answer(&method, &path, count) {
                    Reply::Raw(b) => {
                        let _ = c.write_all(&b);
                    }
                    Reply::Stall => std::thread::sleep(Duration::from_secs(60)),
                    Reply::Drip => {
                        let _ = c.write_all(b"HTTP/1.1 200 OK\r\n");
                        for _ in 0..60 {
                            if c.write_all(b"X").is_err() {
                                return;
                            }
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                }
            });
        }
    });
    Fake { port, requests }
}

/// The fake serving `a` honestly, but answering its tag's manifest with
/// `reply`.
fn manifest_answer(a: &Artifact, reply: impl Fn() -> Reply + Send + Sync + 'static) -> Fake {
    let served = a.clone();
    fake(move |m, p, _| {
        if p == "/v2/r/manifests/1" {
            return reply();
        }
        honest(&served, m, p)
    })
}

struct Setup {
    dir: tempfile::TempDir,
    key: sign::PrivateKey,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = sign::generate().unwrap();
    std::fs::write(dir.path().join("author.key"), private).unwrap();
    std::fs::write(dir.path().join("author.pub"), public).unwrap();
    let key = sign::PrivateKey::read(&dir.path().join("author.key")).unwrap();
    Setup { dir, key }
}

fn wasm() -> Vec<u8> {
    std::fs::read(crate::common::test_guest("collector_misbehave")).unwrap()
}

/// `wdiamond install` of `what` from the fake, trusting the author, with a
/// 3 s deadline: (succeeded, stdout, stderr, how long it took).
fn install(s: &Setup, f: &Fake, what: &str) -> (bool, String, String, Duration) {
    let conf = config(s.dir.path(), "", "");
    let key = s.dir.path().join("author.pub");
    let start = Instant::now();
    let (ok, out, err) = wdiamond(&[
        "install",
        &format!("oci://127.0.0.1:{}/r{what}", f.port),
        "--config",
        conf.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
        "--timeout",
        "3",
    ]);
    (ok, out, err, start.elapsed())
}

/// Each hostile registry is refused with `expected` in the error, and the
/// store stays empty.
fn refused(s: &Setup, f: &Fake, what: &str, expected: &str) -> Duration {
    let (ok, out, err, took) = install(s, f, what);
    assert!(!ok, "installed from a hostile registry: {out}");
    assert!(err.contains(expected), "expected {expected:?} in: {err}");
    // What the registry said reaches the terminal escaped and cut.
    assert!(!err.contains('\x1b') && err.len() < 4096, "{err:?}");
    let cache = s.dir.path().join("cache");
    assert!(
        stored(&cache).is_empty(),
        "something reached the store: {err}"
    );
    // Nor the compiler (its output would be a .cwasm in the cache).
    let compiled = std::fs::read_dir(&cache)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(compiled, 0, "something was compiled: {err}");
    took
}

#[test]
fn the_honest_fake_installs_so_the_refusals_below_are_the_lies() {
    let s = setup();
    let a = artifact(wasm(), &s.key, None);
    let served = a.clone();
    let f = fake(move |m, p, _| honest(&served, m, p));
    let (ok, out, err, _) = install(&s, &f, ":1");
    assert!(ok && out.contains(&a.digest), "{out}{err}");
    // What the refusals below check is absent: stored and compiled here.
    let cache = s.dir.path().join("cache");
    assert_eq!(stored(&cache).len(), 2);
    assert!(std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "cwasm")));
}

#[test]
fn tampered_mislabelled_or_missigned_artifacts_are_refused() {
    let s = setup();
    let a = artifact(wasm(), &s.key, None);
    let layer_path = format!("/v2/r/blobs/{}", digest_of(&a.wasm));

    // A layer whose bytes are not its digest.
    let served = a.clone();
    let lp = layer_path.clone();
    let f = fake(move |m, p, _| {
        if p == lp {
            let mut w = served.wasm.clone();
            let i = w.len() / 2;
            w[i] ^= 0xff;
            return ok("application/octet-stream", &w, "");
        }
        honest(&served, m, p)
    });
    refused(&s, &f, ":1", "tampered with");

    // A manifest whose Docker-Content-Digest names another digest.
    let manifest = a.manifest.clone();
    let f = manifest_answer(&a, move || {
        ok(
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
            &format!("Docker-Content-Digest: sha256:{}\r\n", "0".repeat(64)),
        )
    });
    refused(&s, &f, ":1", "says its digest is");

    // Asked for by digest, another manifest served.
    let b = artifact(b"\0asm other bytes".to_vec(), &s.key, None);
    let served = a.clone();
    let other = b.clone();
    let f = fake(move |m, p, _| {
        if p.starts_with("/v2/r/manifests/sha256:") {
            return ok(
                "application/vnd.oci.image.manifest.v1+json",
                &other.manifest,
                "",
            );
        }
        honest(&served, m, p)
    });
    refused(&s, &f, &format!("@{}", a.digest), "has the digest");

    // Signed by the trusted key, but over another digest.
    let elsewhere = artifact(wasm(), &s.key, Some(&b.digest));
    let f = fake(move |m, p, _| honest(&elsewhere, m, p));
    refused(&s, &f, ":1", "not this manifest");

    // Signed by a stranger.
    let stranger = setup();
    let theirs = artifact(wasm(), &stranger.key, None);
    let f = fake(move |m, p, _| honest(&theirs, m, p));
    refused(&s, &f, ":1", "signed by no trusted key");

    // Not a manifest at all.
    let f = manifest_answer(&a, move || {
        ok("application/vnd.oci.image.manifest.v1+json", br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#, "")
    });
    refused(&s, &f, ":1", "not an OCI image manifest");
}

#[test]
fn a_tag_moved_between_resolve_and_pull_does_not_change_what_is_installed() {
    let s = setup();
    let a = artifact(wasm(), &s.key, None);
    let mut other = wasm();
    other.extend_from_slice(b"moved");
    let b = artifact(other, &s.key, None);
    let (served_a, served_b) = (a.clone(), b.clone());
    // The tag names A once, then B.
    let f = fake(move |m, p, n| {
        if p == "/v2/r/manifests/1" && n > 1 {
            return honest(&served_b, m, "/v2/r/manifests/1");
        }
        let r = honest(&served_a, m, p);
        if let Reply::Raw(ref bytes) = r {
            if bytes.starts_with(b"HTTP/1.1 404") {
                return honest(&served_b, m, p);
            }
        }
        r
    });
    let (ok, out, err, _) = install(&s, &f, ":1");
    assert!(
        ok && out.contains(&a.digest) && !out.contains(&b.digest),
        "{out}{err}"
    );
    let requests = f.requests.lock().unwrap().clone();
    assert_eq!(
        requests
            .iter()
            .filter(|p| *p == "/v2/r/manifests/1")
            .count(),
        1,
        "{requests:?}"
    );
    assert!(
        !requests.contains(&format!("/v2/r/blobs/{}", digest_of(&b.wasm))),
        "{requests:?}"
    );
    let cache = s.dir.path().join("cache");
    assert!(stored(&cache).iter().any(|p| p.ends_with(&a.digest[7..])));
    assert!(!stored(&cache).iter().any(|p| p.ends_with(&b.digest[7..])));
}

#[test]
fn oversized_stalling_looping_and_garbage_registries_are_refused_within_the_deadline() {
    let s = setup();
    let a = artifact(wasm(), &s.key, None);
    let layer_path = format!("/v2/r/blobs/{}", digest_of(&a.wasm));

    // A manifest larger than the bound (its Content-Length says so).
    let f = manifest_answer(&a, move || {
        Reply::Raw(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{{", 5 << 20).into_bytes())
    });
    refused(&s, &f, ":1", "larger than");

    // An endless chunked manifest.
    let f = manifest_answer(&a, || {
        let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..100 {
            r.extend_from_slice(b"10000\r\n");
            r.extend_from_slice(&vec![b' '; 0x10000]);
            r.extend_from_slice(b"\r\n");
        }
        Reply::Raw(r)
    });
    refused(&s, &f, ":1", "larger than");

    // A manifest that declares a component of 1 GiB: refused before the
    // blob is asked for.
    let mut big = a.clone();
    let mut m: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
    m["layers"][0]["size"] = serde_json::json!(1u64 << 30);
    big.manifest = serde_json::to_vec(&m).unwrap();
    let big = artifact_with_manifest(big, &s.key);
    let served = big.clone();
    let f = fake(move |m, p, _| honest(&served, m, p));
    refused(&s, &f, ":1", "more than a component may be");
    assert!(!f.requests.lock().unwrap().contains(&layer_path));

    // A blob longer than its manifest says.
    let served = a.clone();
    let lp = layer_path.clone();
    let f = fake(move |m, p, _| {
        if p == lp {
            let mut w = served.wasm.clone();
            w.extend_from_slice(&[0u8; 4096]);
            return ok("application/octet-stream", &w, "");
        }
        honest(&served, m, p)
    });
    refused(&s, &f, ":1", "larger than");

    // Stalls: no answer at all, and headers a byte a second.
    for stall in [0, 1] {
        let f = manifest_answer(&a, move || {
            if stall == 0 {
                Reply::Stall
            } else {
                Reply::Drip
            }
        });
        let took = refused(&s, &f, ":1", "did not");
        assert!(
            took < Duration::from_secs(30),
            "a stalled registry held install for {took:?}"
        );
    }

    // A redirect loop, and a redirect to plain HTTP elsewhere.
    let f = manifest_answer(&a, move || {
        Reply::Raw(
            b"HTTP/1.1 302 Found\r\nLocation: /v2/r/manifests/1\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
    });
    refused(&s, &f, ":1", "redirected more than 5 times");
    let f = manifest_answer(&a, move || {
        Reply::Raw(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://registry.example.com/v2/r/manifests/1\r\nContent-Length: 0\r\n\r\n".to_vec())
    });
    refused(&s, &f, ":1", "plain HTTP is allowed only");

    // Garbage instead of HTTP.
    let f = manifest_answer(&a, move || {
        Reply::Raw(b"\x00\x13\x37 not http at all\r\n\r\n".to_vec())
    });
    refused(&s, &f, ":1", "not HTTP");

    // Escapes and a long status line, echoed only escaped and cut.
    let f = manifest_answer(&a, move || {
        Reply::Raw(format!("HTTP/1.1 \x1b[2J{}\r\n\r\n", "\x1b[31m".repeat(2000)).into_bytes())
    });
    refused(&s, &f, ":1", "not HTTP");
}

/// `a` with its (edited) manifest's digest and signature recomputed.
fn artifact_with_manifest(mut a: Artifact, key: &sign::PrivateKey) -> Artifact {
    a.digest = digest_of(&a.manifest);
    a.payload = sign::payload("127.0.0.1/r", &a.digest);
    let (c, m) = artifact::signature(&a.payload, &key.sign(&a.payload).unwrap());
    a.sig_config = c;
    a.sig_manifest = m;
    a
}

#[test]
fn hostile_token_services_and_challenges_are_refused_within_the_deadline() {
    let s = setup();
    // (the realm, given the fake's port; what /token answers; expected)
    type Case = (fn(u16) -> String, fn() -> Reply, &'static str);
    let cases: [Case; 6] = [
        (
            |p| format!("Bearer realm=\"http://127.0.0.1:{p}/token\",service=\"x\""),
            || Reply::Stall,
            "did not",
        ),
        (
            |p| format!("Bearer realm=\"http://127.0.0.1:{p}/token\",service=\"x\""),
            || {
                ok(
                    "application/json",
                    br#"{"token":"abc\r\nX-Injected: 1"}"#,
                    "",
                )
            },
            "no usable token",
        ),
        (
            |p| format!("Bearer realm=\"http://127.0.0.1:{p}/token\""),
            || ok("application/json", b"<html>no</html>", ""),
            "not a token",
        ),
        (
            |_| "Bearer realm=\"file:///etc/passwd\"".to_string(),
            not_found,
            "neither https nor http",
        ),
        (
            |_| "Bearer realm=\"http://203.0.113.7/token\"".to_string(),
            not_found,
            "plain HTTP is allowed only",
        ),
        (
            |_| format!("Negotiate {}", "\x1b[31m".repeat(1000)),
            not_found,
            "does not speak",
        ),
    ];
    for (realm, token, expected) in cases {
        let port = Arc::new(std::sync::OnceLock::new());
        let known = port.clone();
        let f = fake(move |_, p, _| {
            if p.starts_with("/token") {
                return token();
            }
            let challenge = realm(*known.get().unwrap());
            Reply::Raw(format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n\r\n").into_bytes())
        });
        port.set(f.port).unwrap();
        let took = refused(&s, &f, ":1", expected);
        assert!(took < Duration::from_secs(30), "{expected}: {took:?}");
    }
}
