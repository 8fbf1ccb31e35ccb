//! Publishing and installing components through a real OCI registry
//! (Debian's docker-registry, distribution 2.8), with skopeo as the
//! independent client and sigstore-rs's cosign verifier as the independent
//! check of the signature format; `oci/hostile.rs`, registries that lie,
//! stall and loop.

mod hostile;

use std::path::Path;
use std::time::Duration;

use crate::common::{self, registry};

/// Runs the agent's binary (one minute at most).
pub(crate) fn wdiamond(args: &[&str]) -> (bool, String, String) {
    wdiamond_with(args, &[])
}

/// The same, with `env` set too.
fn wdiamond_with(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut all = vec![
        ("REGISTRY_AUTH_FILE", "/nonexistent"),
        ("DOCKER_CONFIG", "/nonexistent"),
    ];
    all.extend_from_slice(env);
    let o = common::wdiamond_within(args, &all, Duration::from_secs(60));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A config in `dir` (a new file each time) with its own plugin cache (and
/// store) and `server` lines added to `[server]`, then `rest`.
pub(crate) fn config(dir: &Path, server: &str, rest: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = dir.join(format!(
        "conf{}.toml",
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::write(
        &path,
        format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n{server}\n[collectors.default]\nhostname = \"h\"\n{rest}",
            dir.join("cache")
        ),
    )
    .unwrap();
    path
}

/// The manifest digest `publish` printed.
pub(crate) fn published_digest(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("manifest digest "))
        .unwrap_or_else(|| panic!("no digest in {stdout}"))
        .to_string()
}

pub(crate) fn keygen(dir: &Path, name: &str) -> std::path::PathBuf {
    let prefix = dir.join(name);
    let (ok, out, err) = wdiamond(&["keygen", prefix.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    prefix
}

#[test]
fn a_signed_collector_is_published_installed_and_run_by_digest() {
    let reg = registry::registry(None, false);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let author = keygen(d, "author");
    let key = author.with_extension("key");
    let public = author.with_extension("pub");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // keygen never overwrites a key.
    let (ok, _, err) = wdiamond(&["keygen", author.to_str().unwrap()]);
    assert!(!ok && err.contains("not overwritten"), "{err}");

    let guest = common::test_guest("collector_misbehave");
    let tagged = format!("oci://{}/team/misbehave:1.0", reg.host());
    // The operator's docker config names a credential helper this machine
    // lacks: a registry that asks for no credentials never runs it.
    let docker = d.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"nonesuch"}"#).unwrap();
    let (ok, out, err) = wdiamond_with(
        &[
            "publish",
            guest.to_str().unwrap(),
            &tagged,
            "--key",
            key.to_str().unwrap(),
        ],
        &[("DOCKER_CONFIG", docker.to_str().unwrap())],
    );
    assert!(ok, "{out}{err}");
    let digest = published_digest(&out);
    assert!(
        out.contains(&format!("sha256-{}.sig", &digest[7..])),
        "{out}"
    );
    let by_digest = format!("oci://{}/team/misbehave@{digest}", reg.host());
    assert!(
        out.contains(&format!("wdiamond install {by_digest}")),
        "{out}"
    );

    // skopeo, the independent client, reads what publish pushed: the
    // wasm layout, the component's bytes as the layer.
    let raw = registry::skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/team/misbehave:1.0", reg.host()),
    ]);
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(m["layers"][0]["mediaType"], "application/wasm");
    let wasm = std::fs::read(&guest).unwrap();
    assert_eq!(
        m["layers"][0]["digest"],
        format!("sha256:{}", wdiamond::plugin::hex_sha256(&wasm))
    );
    assert_eq!(
        format!(
            "sha256:{}",
            wdiamond::plugin::hex_sha256(raw.trim_end().as_bytes())
        ),
        digest
    );

    // No trusted key: refused, nothing stored.
    let plain = config(d, "", "");
    let (ok, _, err) = wdiamond(&["install", &tagged, "--config", plain.to_str().unwrap()]);
    assert!(
        !ok && err.contains("no key is trusted") && err.contains("--allow-unsigned"),
        "{err}"
    );
    assert!(registry::stored(&d.join("cache")).is_empty());
    // A stranger's key: refused.
    let stranger = keygen(d, "stranger").with_extension("pub");
    let (ok, _, err) = wdiamond(&[
        "install",
        &tagged,
        "--config",
        plain.to_str().unwrap(),
        "--trusted-key",
        stranger.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("signed by no trusted key"), "{err}");
    assert!(registry::stored(&d.join("cache")).is_empty());

    // The operator trusts the author's key in the configuration.
    let trusting = config(d, &format!("trusted_keys = [{public:?}]"), "");
    let (ok, out, err) = wdiamond(&[
        "install",
        &tagged,
        "--config",
        trusting.to_str().unwrap(),
        "--as",
        "fromoci",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("installed {by_digest}")) && out.contains("signature verified with"),
        "{out}"
    );
    assert!(
        out.contains(&format!("component = \"{by_digest}\"")),
        "{out}"
    );
    let pin = format!("sha256 = \"{}\"", wdiamond::plugin::hex_sha256(&wasm));
    assert!(
        out.contains(&pin) && out.contains("[collectors.fromoci]"),
        "{out}"
    );
    assert_eq!(registry::stored(&d.join("cache")).len(), 2);

    // The agent runs it from the store, by digest.
    let section = format!("[collectors.fromoci]\nenabled = true\ncomponent = \"{by_digest}\"\n{pin}\npath = \"fromoci\"\n");
    let running = config(d, &format!("trusted_keys = [{public:?}]"), &section);
    let (ok, out, err) = wdiamond(&["once", running.to_str().unwrap(), "fromoci", "--wait", "0"]);
    assert!(ok && out.contains("fromoci.runs"), "{out}{err}");
    let (ok, out, err) = wdiamond(&["check", running.to_str().unwrap()]);
    assert!(ok && out.contains(&by_digest), "{out}{err}");

    // Against the configuration's section, install shows what changes.
    let (ok, out, err) = wdiamond(&[
        "install",
        &by_digest,
        "--config",
        running.to_str().unwrap(),
        "--as",
        "fromoci",
    ]);
    assert!(
        ok && out.contains("Against [collectors.fromoci]")
            && out.contains("it already loads this digest"),
        "{out}{err}"
    );

    // Not in the store: `check` says how to get it, and never reaches the
    // registry unless `pull = "missing"`.
    std::fs::remove_dir_all(d.join("cache/oci")).unwrap();
    let (ok, out, err) = wdiamond(&["check", running.to_str().unwrap()]);
    assert!(
        !ok && err.contains("is not installed: run `wdiamond install"),
        "{out}{err}"
    );
    let pulling = config(
        d,
        &format!("trusted_keys = [{public:?}]\npull = \"missing\""),
        &section,
    );
    let (ok, out, err) = wdiamond(&["check", pulling.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(registry::stored(&d.join("cache")).len(), 2);
    // A damaged copy in the store is refused at load, and pulled again
    // where pulls are allowed.
    let layer = d
        .join("cache/oci/blobs/sha256")
        .join(wdiamond::plugin::hex_sha256(&wasm));
    let mut damaged = std::fs::read(&layer).unwrap();
    damaged[100] ^= 0xff;
    std::fs::write(&layer, &damaged).unwrap();
    let (ok, out, err) = wdiamond(&["check", running.to_str().unwrap()]);
    assert!(!ok && err.contains("is damaged"), "{out}{err}");
    let (ok, out, err) = wdiamond(&["check", pulling.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(std::fs::read(&layer).unwrap(), wasm);
    // A pull is verified as an install is: without the key it is refused.
    std::fs::remove_dir_all(d.join("cache/oci")).unwrap();
    let untrusting = config(d, "pull = \"missing\"", &section);
    let (ok, _, err) = wdiamond(&["check", untrusting.to_str().unwrap()]);
    assert!(
        !ok && err.contains("[collectors.fromoci]") && err.contains("no key is trusted"),
        "{err}"
    );
    assert!(registry::stored(&d.join("cache")).is_empty());

    // A configuration names a digest, never a tag; a pin that is not the
    // component's is refused.
    let tag_section = format!("[collectors.fromoci]\nenabled = true\ncomponent = \"{tagged}\"\n");
    let (ok, _, err) = wdiamond(&["check", config(d, "", &tag_section).to_str().unwrap()]);
    assert!(
        !ok && err.contains("collectors.fromoci.component") && err.contains("names a tag"),
        "{err}"
    );
    let (ok, out, err) = wdiamond(&["install", &tagged, "--config", trusting.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let bad_pin = section.replace(&wdiamond::plugin::hex_sha256(&wasm), &"0".repeat(64));
    let (ok, _, err) = wdiamond(&["check", config(d, "", &bad_pin).to_str().unwrap()]);
    assert!(!ok && err.contains(&"0".repeat(64)), "{err}");
}

#[test]
fn an_artifact_pushed_by_skopeo_installs_by_its_allowed_digest() {
    let reg = registry::registry(None, false);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wasm = std::fs::read(common::test_guest("collector_misbehave")).unwrap();
    let digest = registry::oci_layout(&d.join("layout"), &wasm, "2.0");
    registry::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:2.0", d.join("layout").display()),
        &format!("docker://{}/other/misbehave:2.0", reg.host()),
    ]);
    let tagged = format!("oci://{}/other/misbehave:2.0", reg.host());
    let conf = config(d, "", "");
    // Unsigned: refused, unless its digest (and only its) is allowed.
    let (ok, _, err) = wdiamond(&["install", &tagged, "--config", conf.to_str().unwrap()]);
    assert!(!ok && err.contains("it is not signed"), "{err}");
    let other = format!("sha256:{}", "1".repeat(64));
    let (ok, _, err) = wdiamond(&[
        "install",
        &tagged,
        "--config",
        conf.to_str().unwrap(),
        "--allow-unsigned",
        &other,
    ]);
    assert!(!ok && err.contains("it is not signed"), "{err}");
    assert!(registry::stored(&d.join("cache")).is_empty());
    let (ok, _, err) = wdiamond(&[
        "install",
        &tagged,
        "--config",
        conf.to_str().unwrap(),
        "--allow-unsigned",
        "latest",
    ]);
    assert!(!ok && err.contains("a manifest digest"), "{err}");
    let (ok, out, err) = wdiamond(&[
        "install",
        &tagged,
        "--config",
        conf.to_str().unwrap(),
        "--allow-unsigned",
        &digest,
    ]);
    assert!(
        ok && out.contains("NOT signed by a trusted key") && out.contains(&digest),
        "{out}{err}"
    );
    // The allow-list in the configuration works the same for a pull.
    let section = format!("[collectors.m]\nenabled = true\ncomponent = \"oci://{}/other/misbehave@{digest}\"\npath = \"m\"\n", reg.host());
    std::fs::remove_dir_all(d.join("cache/oci")).unwrap();
    let allowed = config(
        d,
        &format!("pull = \"missing\"\nallow_unsigned = [\"{digest}\"]"),
        &section,
    );
    let (ok, out, err) = wdiamond(&["once", allowed.to_str().unwrap(), "--wait", "0"]);
    assert!(ok && out.contains("m.runs"), "{out}{err}");
}

#[test]
fn signatures_are_cosigns_format_both_ways_with_sigstore_rs() {
    // Built before the registry starts (minutes on a cold cache).
    cosign_verifier();
    let reg = registry::registry(None, false);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let author = keygen(d, "author");
    let stranger = keygen(d, "stranger");
    let guest = common::test_guest("collector_misbehave");
    let tagged = format!("oci://{}/signed/misbehave:3", reg.host());
    let (ok, out, err) = wdiamond(&[
        "publish",
        guest.to_str().unwrap(),
        &tagged,
        "--key",
        author.with_extension("key").to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let digest = published_digest(&out);
    let image = format!("{}/signed/misbehave@{digest}", reg.host());
    let check = |key: &Path| sigstore_rs(&[&image, key.to_str().unwrap()], &[]);
    let (ok, said) = check(&author.with_extension("pub"));
    assert!(
        ok && said.contains(&digest),
        "sigstore-rs did not verify: {said}"
    );
    let (ok, said) = check(&stranger.with_extension("pub"));
    assert!(!ok, "sigstore-rs verified with a stranger's key: {said}");

    // cosign's encrypted key (as sigstore-rs encrypts `cosign.key`) signs
    // with the password in COSIGN_PASSWORD, and sigstore-rs verifies it.
    let sealed = d.join("cosign.key");
    let (ok, said) = sigstore_rs(
        &[
            "--encrypt",
            author.with_extension("key").to_str().unwrap(),
            sealed.to_str().unwrap(),
        ],
        &[("COSIGN_PASSWORD", "correct horse")],
    );
    assert!(ok, "{said}");
    assert!(std::fs::read_to_string(&sealed)
        .unwrap()
        .starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    let tagged = format!("oci://{}/signed/sealed:1", reg.host());
    let publish = |env: &[(&str, &str)]| {
        wdiamond_with(
            &[
                "publish",
                guest.to_str().unwrap(),
                &tagged,
                "--key",
                sealed.to_str().unwrap(),
            ],
            env,
        )
    };
    let (ok, _, err) = publish(&[]);
    assert!(!ok && err.contains("set COSIGN_PASSWORD"), "{err}");
    let (ok, _, err) = publish(&[("COSIGN_PASSWORD", "wrong")]);
    assert!(!ok && err.contains("a wrong password"), "{err}");
    assert!(
        !err.contains("wrong\n") && !err.contains("correct horse"),
        "{err}"
    );
    let (ok, out, err) = publish(&[("COSIGN_PASSWORD", "correct horse")]);
    assert!(ok, "{out}{err}");
    let sealed_digest = published_digest(&out);
    let (ok, said) = sigstore_rs(
        &[
            &format!("{}/signed/sealed@{sealed_digest}", reg.host()),
            author.with_extension("pub").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        ok,
        "sigstore-rs did not verify the encrypted key's signature: {said}"
    );

    // The other way: published unsigned, signed by sigstore-rs (as
    // cosign signs), verified by install.
    let wasm = wdiamond::plugin::guest_wasm_dir().join("collector_loadavg.wasm");
    let tagged = format!("oci://{}/signed/load:1", reg.host());
    let (ok, out, err) = wdiamond(&["publish", wasm.to_str().unwrap(), &tagged]);
    assert!(ok, "{out}{err}");
    let digest = published_digest(&out);
    let conf = config(
        d,
        &format!("trusted_keys = [{:?}]", author.with_extension("pub")),
        "",
    );
    let (ok, _, err) = wdiamond(&["install", &tagged, "--config", conf.to_str().unwrap()]);
    assert!(!ok && err.contains("it is not signed"), "{err}");
    let (ok, said) = sigstore_rs(
        &[
            "--sign",
            &format!("{}/signed/load@{digest}", reg.host()),
            author.with_extension("key").to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "sigstore-rs did not sign: {said}");
    let (ok, out, err) = wdiamond(&["install", &tagged, "--config", conf.to_str().unwrap()]);
    assert!(ok && out.contains("signature verified with"), "{out}{err}");
    let other = config(
        d,
        &format!("trusted_keys = [{:?}]", stranger.with_extension("pub")),
        "",
    );
    let (ok, _, err) = wdiamond(&["install", &tagged, "--config", other.to_str().unwrap()]);
    assert!(!ok && err.contains("signed by no trusted key"), "{err}");
}

/// Runs sigstore-rs's cosign client (`tests/cosign-verify`) with `args`
/// and `env`: whether it succeeded, and what it printed.
fn sigstore_rs(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let o = std::process::Command::new(cosign_verifier())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// sigstore-rs's cosign client as a command (`tests/cosign-verify`: verify,
/// `--sign` or `--encrypt`), built once in a target dir of its own.
fn cosign_verifier() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let repo = common::repo();
            let target = repo.join("target/cosign-verify");
            let o = std::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            )
            .args(["build", "--release", "--locked", "--manifest-path"])
            .arg(repo.join("tests/cosign-verify/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .output()
            .unwrap();
            assert!(
                o.status.success(),
                "building tests/cosign-verify: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            target.join("release/cosign-verify")
        })
        .clone()
}

#[test]
fn a_registry_behind_tls_and_token_auth_takes_the_hosts_ca_and_the_operators_credentials() {
    let certs = common::databases::certs();
    let reg = registry::registry(Some(certs.dir.path()), true);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let author = keygen(d, "author");
    let guest = common::test_guest("collector_misbehave");
    let tagged = format!("oci://{}/secure/misbehave:1", reg.host());
    let ca = certs.file("ca.pem");
    let auth = d.join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            base64_of(&format!("alice:{}", registry::TOKEN_PASSWORD))
        ),
    )
    .unwrap();
    let key = author.with_extension("key");
    let publish = |extra: &[&str]| {
        let mut args = vec![
            "publish",
            guest.to_str().unwrap(),
            &tagged,
            "--key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        wdiamond(&args)
    };
    // The registry's CA is not the system's: refused as TLS says.
    let (ok, _, err) = publish(&["--auth-file", auth.to_str().unwrap()]);
    assert!(!ok && err.contains("UnknownIssuer"), "{err}");
    // No credentials: the token service refuses, and the error says where
    // credentials come from.
    let (ok, _, err) = publish(&["--tls-ca", ca.to_str().unwrap()]);
    assert!(!ok && err.contains("asks for credentials"), "{err}");
    // A wrong password.
    let wrong = d.join("wrong.json");
    std::fs::write(
        &wrong,
        format!(
            r#"{{"auths":{{"{}":{{"username":"alice","password":"nope"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let (ok, _, err) = publish(&[
        "--tls-ca",
        ca.to_str().unwrap(),
        "--auth-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("refused the credentials"), "{err}");
    let (ok, out, err) = publish(&[
        "--tls-ca",
        ca.to_str().unwrap(),
        "--auth-file",
        auth.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let digest = published_digest(&out);
    credential_helpers_answer_for_the_registry(
        d,
        &reg.host(),
        &ca,
        &publish_with_env(&guest, &tagged, &key),
    );

    // The operator's configuration names the CA and the credentials, the
    // password a secret reference.
    std::fs::write(
        d.join("password"),
        format!("{}\n", registry::TOKEN_PASSWORD),
    )
    .unwrap();
    let server = format!(
        "trusted_keys = [{:?}]\n[server.registries.\"{}\"]\ntls_ca = {ca:?}\nusername = \"alice\"\npassword = {{ secret = \"file:password\" }}\n",
        author.with_extension("pub"),
        reg.host()
    );
    let conf = config(d, &server, "");
    let (ok, out, err) = wdiamond(&["install", &tagged, "--config", conf.to_str().unwrap()]);
    assert!(ok && out.contains(&digest), "{out}{err}");
    assert!(!out.contains(registry::TOKEN_PASSWORD) && !err.contains(registry::TOKEN_PASSWORD));
    assert_eq!(registry::stored(&d.join("cache")).len(), 2);
}

/// `publish` of `guest` to `tagged`, signed with `key`, with more
/// arguments and environment.
fn publish_with_env<'a>(
    guest: &'a Path,
    tagged: &'a str,
    key: &'a Path,
) -> impl Fn(&[&str], &[(&str, &str)]) -> (bool, String, String) + 'a {
    move |extra, env| {
        let mut args = vec![
            "publish",
            guest.to_str().unwrap(),
            tagged,
            "--key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        wdiamond_with(&args, env)
    }
}

/// `docker login` with a credential store leaves the credentials to
/// `docker-credential-NAME`: the config's `credHelpers` entry for the
/// registry, else its `credsStore`, is asked (the registry's address on
/// its stdin); one that holds nothing, hangs, is missing or is named as a
/// path is an error that says so, and no secret reaches the output.
fn credential_helpers_answer_for_the_registry(
    d: &Path,
    host: &str,
    ca: &Path,
    publish: &dyn Fn(&[&str], &[(&str, &str)]) -> (bool, String, String),
) {
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, body: &str| {
        let f = bin.join(format!("docker-credential-{name}"));
        std::fs::write(&f, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let asked = d.join("asked");
    script(
        "wdtest",
        &format!(
            "[ \"$1\" = get ] || exit 2\nread -r addr\necho \"$addr\" >> {asked:?}\nif [ \"$addr\" = {host:?} ]; then printf '{{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"%s\"}}' \"$addr\" {:?}; else echo 'credentials not found in native keychain'; exit 1; fi",
            registry::TOKEN_PASSWORD
        ),
    );
    script("wdhang", "exec sleep 600");
    script(
        "wdempty",
        "echo 'credentials not found in native keychain'\nexit 1",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let file = |name: &str, json: String| {
        let f = d.join(name);
        std::fs::write(&f, json).unwrap();
        f.to_str().unwrap().to_string()
    };
    let helpers = file(
        "helpers.json",
        format!(r#"{{"auths":{{}},"credHelpers":{{"{host}":"wdtest"}}}}"#),
    );
    let store = file(
        "store.json",
        format!(r#"{{"auths":{{"{host}":{{}}}},"credsStore":"wdtest"}}"#),
    );
    let elsewhere = file(
        "elsewhere.json",
        format!(r#"{{"auths":{{"{host}":{{}}}},"credsStore":"wdempty"}}"#),
    );
    let hang = file(
        "hang.json",
        format!(r#"{{"credHelpers":{{"{host}":"wdhang"}}}}"#),
    );
    let missing = file("missing.json", r#"{"credsStore":"nonesuch"}"#.to_string());
    let pathlike = file(
        "pathlike.json",
        format!(r#"{{"credHelpers":{{"{host}":"../../bin/sh"}}}}"#),
    );
    let ca = ca.to_str().unwrap();
    let env = [("PATH", path.as_str())];
    let run = |auth: &str, extra: &[&str]| {
        let mut args = vec!["--tls-ca", ca, "--auth-file", auth];
        args.extend_from_slice(extra);
        publish(&args, &env)
    };
    for f in [&helpers, &store] {
        let (ok, out, err) = run(f, &[]);
        assert!(ok, "{f}: {out}{err}");
        assert!(!out.contains(registry::TOKEN_PASSWORD) && !err.contains(registry::TOKEN_PASSWORD));
    }
    // The helper was asked for this registry's address, once a run.
    let said = std::fs::read_to_string(&asked).unwrap();
    assert_eq!(said, format!("{host}\n{host}\n"));
    // A store that holds nothing for it: no credentials, as without one.
    let (ok, _, err) = run(&elsewhere, &[]);
    assert!(!ok && err.contains("asks for credentials"), "{err}");
    // A helper that never answers is stopped at the operation's timeout.
    let (ok, _, err) = run(&hang, &["--timeout", "2"]);
    assert!(
        !ok && err.contains("docker-credential-wdhang get did not answer"),
        "{err}"
    );
    let (ok, _, err) = run(&missing, &[]);
    assert!(
        !ok && err.contains("docker-credential-nonesuch is not on PATH"),
        "{err}"
    );
    let (ok, _, err) = run(&pathlike, &[]);
    assert!(
        !ok && err.contains("not a credential helper's name"),
        "{err}"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn a_registry_that_asks_for_a_client_certificate_gets_the_configured_one() {
    let certs = common::databases::certs();
    registry::client_cert(certs.dir.path());
    let reg = registry::registry_with(Some(certs.dir.path()), false, true);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let guest = common::test_guest("collector_misbehave");
    let tagged = format!("oci://{}/mtls/misbehave:1", reg.host());
    let (ca, cert, key) = (
        certs.file("ca.pem"),
        certs.file("client.pem"),
        certs.file("client.key"),
    );
    let (ok, _, err) = wdiamond(&[
        "publish",
        guest.to_str().unwrap(),
        &tagged,
        "--tls-ca",
        ca.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("over HTTPS"),
        "published without a client certificate: {err}"
    );
    let (ok, out, err) = wdiamond(&[
        "publish",
        guest.to_str().unwrap(),
        &tagged,
        "--tls-ca",
        ca.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let digest = published_digest(&out);
    let server = format!(
        "allow_unsigned = [\"{digest}\"]\n[server.registries.\"{}\"]\ntls_ca = {ca:?}\ntls_cert = {cert:?}\ntls_key = {key:?}\n",
        reg.host()
    );
    let conf = config(d, &server, "");
    let (ok, out, err) = wdiamond(&["install", &tagged, "--config", conf.to_str().unwrap()]);
    assert!(ok && out.contains(&digest), "{out}{err}");
}

/// This machine's first IPv4 address that is not loopback (an interface
/// that is up), as `getifaddrs` lists them.
fn non_loopback_ipv4() -> Option<std::net::Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, read below and freed once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        let up = ifa.ifa_flags & libc::IFF_UP as u32 != 0;
        if up && !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of its family.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && !ip.is_unspecified() {
                    found = Some(ip);
                    break;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs allocated, freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// A registry on this machine's non-loopback address, over plain HTTP:
/// refused (plain HTTP goes only to loopback registries), reached with
/// `--insecure` or the registry's `insecure = true`, and for that registry
/// only.
#[test]
fn plain_http_to_a_registry_off_loopback_needs_insecure() {
    let ip = non_loopback_ipv4()
        .expect("this test needs an IPv4 address that is not loopback (an interface such as eth0)");
    let reg = registry::registry_on(ip.into());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wasm = wdiamond::plugin::guest_wasm_dir().join("collector_loadavg.wasm");
    let tagged = format!("oci://{}/plain/load:1", reg.host());
    let (ok, _, err) = wdiamond(&["publish", wasm.to_str().unwrap(), &tagged]);
    assert!(
        !ok && err.contains("plain HTTP is tried only") && err.contains("insecure = true"),
        "{err}"
    );
    let (ok, out, err) = wdiamond(&["publish", wasm.to_str().unwrap(), &tagged, "--insecure"]);
    assert!(ok, "{out}{err}");
    let digest = published_digest(&out);
    let by_digest = format!("oci://{}/plain/load@{digest}", reg.host());
    // install by the configuration: refused without `insecure`, and with
    // `insecure` for another registry; installed with it for this one.
    let allow = format!("allow_unsigned = [{digest:?}]\n");
    for (registries, installs) in [
        (String::new(), false),
        (
            "[server.registries.\"127.0.0.1:1\"]\ninsecure = true\n".to_string(),
            false,
        ),
        (
            format!("[server.registries.\"{}\"]\ninsecure = true\n", reg.host()),
            true,
        ),
    ] {
        let conf = config(d, &format!("{allow}{registries}"), "");
        let (ok, out, err) = wdiamond(&["install", &by_digest, "--config", conf.to_str().unwrap()]);
        if installs {
            assert!(ok && out.contains(&digest), "{registries}: {out}{err}");
        } else {
            assert!(
                !ok && err.contains("plain HTTP is tried only"),
                "{registries}: {out}{err}"
            );
        }
    }
}

#[test]
fn install_shows_each_ask_beside_what_the_configured_section_grants() {
    let reg = registry::registry(None, false);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let author = keygen(d, "author");
    // The loadavg collector, as a third party's file: it asks to read
    // /proc/loadavg.
    let guest = wdiamond::plugin::guest_wasm_dir().join("collector_loadavg.wasm");
    let tagged = format!("oci://{}/team/load:1", reg.host());
    let (ok, out, err) = wdiamond(&[
        "publish",
        guest.to_str().unwrap(),
        &tagged,
        "--key",
        author.with_extension("key").to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let trust = format!("trusted_keys = [{:?}]", author.with_extension("pub"));
    // Without a section: the section to add, with the grant it needs.
    let (ok, out, err) = wdiamond(&[
        "install",
        &tagged,
        "--config",
        config(d, &trust, "").to_str().unwrap(),
        "--as",
        "load",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("read-files /proc/loadavg")
            && out.contains("[collectors.load.grants]\n  files = [\"/proc/loadavg\"]"),
        "{out}"
    );
    // Against a section that loads a file and grants nothing: the ask not
    // granted, with the line to add, and the lines that load it instead.
    let section =
        "[collectors.load]\nenabled = false\ncomponent = \"/opt/load.wasm\"\npath = \"load\"\n";
    let (ok, out, err) = wdiamond(&[
        "install",
        &tagged,
        "--config",
        config(d, &trust, section).to_str().unwrap(),
        "--as",
        "load",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(
            "Against [collectors.load] of the configuration (it loads /opt/load.wasm now)"
        ),
        "{out}"
    );
    assert!(out.contains("warning: asks read-files \"/proc/loadavg\", not granted: add \"/proc/loadavg\" to [collectors.load.grants] files"), "{out}");
    assert!(
        out.contains("To load it, set in [collectors.load]:")
            && out.contains(&format!(
                "component = \"oci://{}/team/load@sha256:",
                reg.host()
            )),
        "{out}"
    );
    // Granted there: said so.
    let granted = format!("{section}[collectors.load.grants]\nfiles = [\"/proc/loadavg\"]\n");
    let (ok, out, err) = wdiamond(&[
        "install",
        &tagged,
        "--config",
        config(d, &trust, &granted).to_str().unwrap(),
        "--as",
        "load",
    ]);
    assert!(
        ok && out.contains("asks read-files \"/proc/loadavg\": granted (files)"),
        "{out}{err}"
    );
}
