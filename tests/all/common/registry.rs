//! Debian's docker-registry (distribution 2.8) on a free loopback port in a
//! temp dir, plain or with TLS and token auth (the token service is
//! [`TokenService`], this file's own: it signs ES256 JWTs with a key whose
//! certificate the registry trusts), and skopeo, the independent client.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

use crate::common::{self, Killed};

/// A running registry.
pub struct Registry {
    /// The address it listens on (127.0.0.1 unless [`registry_on`]).
    pub ip: std::net::IpAddr,
    /// Its port.
    pub port: u16,
    _server: Killed,
    _token: Option<TokenService>,
    /// Its storage and config.
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// `IP:PORT`.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// Token auth: one user, `alice` with [`TOKEN_PASSWORD`].
pub const TOKEN_PASSWORD: &str = "registry-Secret-51";

/// Starts a registry; with `tls` (a `Certs` directory holding `server.pem`
/// and `server.key`), over TLS; with `token`, behind token auth.
pub fn registry(tls: Option<&Path>, token: bool) -> Registry {
    registry_with(tls, token, false)
}

/// [`registry`]; with `client_certs`, its TLS asks for a client
/// certificate signed by the `Certs` CA (`ca.pem`).
pub fn registry_with(tls: Option<&Path>, token: bool, client_certs: bool) -> Registry {
    start([127, 0, 0, 1].into(), tls, token, client_certs)
}

/// A plain registry listening on `ip` (this machine's address that is not
/// loopback: a registry the loopback rule does not cover).
pub fn registry_on(ip: std::net::IpAddr) -> Registry {
    start(ip, None, false, false)
}

fn start(ip: std::net::IpAddr, tls: Option<&Path>, token: bool, client_certs: bool) -> Registry {
    let path = Path::new("/usr/bin/docker-registry");
    assert!(
        path.exists(),
        "docker-registry is not installed (.ci/run installs it: apt-get install docker-registry)"
    );
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let token = token.then(|| TokenService::start(dir.path()));
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(certs) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certs.join("server.pem").display(),
                certs.join("server.key").display()
            ));
            if client_certs {
                config.push_str(&format!(
                    "    clientcas:\n      - {}\n",
                    certs.join("ca.pem").display()
                ));
            }
        }
        if let Some(t) = &token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: wdiamond-test\n    issuer: wdiamond-test-issuer\n    rootcertbundle: {}\n",
                t.port,
                dir.path().join("token.pem").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new(path)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let mut server = Killed(child);
        // The port may have been taken between free_port and the bind (by
        // another test's server): then the registry exits, and it is tried
        // again on another.
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = server.try_wait() {
                break;
            }
            if std::net::TcpStream::connect((ip, port)).is_ok() {
                std::thread::sleep(Duration::from_millis(50));
                if let Ok(None) = server.try_wait() {
                    return Registry {
                        ip,
                        port,
                        _server: server,
                        _token: token,
                        dir,
                    };
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        eprintln!(
            "docker-registry did not start on {port}: {}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }
    panic!("docker-registry did not start in 5 tries");
}

/// A token service for the registry's `auth: token`: answers `GET
/// /token?service=…&scope=…` for `alice` (Basic auth) with an ES256 JWT
/// granting the scope's repository pull and push.
pub struct TokenService {
    /// Its port on 127.0.0.1.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl TokenService {
    /// Makes its key and certificate (`token.key`, `token.pem` in `dir`)
    /// and starts it.
    fn start(dir: &Path) -> TokenService {
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.pem",
                "-days",
                "2",
                "-subj",
                "/CN=wdiamond test token issuer",
            ])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let pem = |f: &str| {
            let t = std::fs::read_to_string(dir.join(f)).unwrap();
            let b: String = t.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD.decode(b).unwrap()
        };
        let cert = pem("token.pem");
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &pem("token.key"),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let header = b64url(
            serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert)]})
                .to_string()
                .as_bytes(),
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{TOKEN_PASSWORD}"))
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(mut c) = conn else { continue };
                let Some(req) = crate::common::http::read_head(&mut c) else {
                    continue;
                };
                let authorized = req.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:") && l[14..].trim() == basic
                });
                let target = req
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let url = url::Url::parse(&format!("http://x{target}")).unwrap();
                let scope = url
                    .query_pairs()
                    .find(|(k, _)| k == "scope")
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default();
                let repo = scope.split(':').nth(1).unwrap_or_default().to_string();
                let reply = if authorized {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let claims = b64url(
                        serde_json::json!({
                            "iss": "wdiamond-test-issuer", "sub": "alice", "aud": "wdiamond-test",
                            "exp": now + 600, "nbf": now - 10, "iat": now - 10, "jti": format!("{now}-{}", req.len()),
                            "access": [{"type": "repository", "name": repo, "actions": ["pull", "push"]}],
                        })
                        .to_string()
                        .as_bytes(),
                    );
                    let signing_input = format!("{header}.{claims}");
                    let sig = key
                        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
                        .unwrap();
                    let body = serde_json::json!({"token": format!("{signing_input}.{}", b64url(sig.as_ref()))}).to_string();
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"token\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = c.write_all(reply.as_bytes());
            }
        });
        TokenService { port, stop }
    }
}

/// A client certificate and key (`client.pem`, `client.key`) signed by
/// the CA of the `Certs` directory `dir`.
pub fn client_cert(dir: &Path) {
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for args in [
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=wdiamond test client",
        ][..],
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ],
    ] {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Runs skopeo with `args`; its output, failing the test when it fails.
pub fn skopeo(args: &[&str]) -> String {
    let o = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is not installed (.ci/run installs it: apt-get install skopeo)");
    assert!(
        o.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes an OCI image layout at `dir` holding `wasm` as a component
/// artifact, tagged `tag`, written here by hand (not by wdiamond), for
/// skopeo to push. Returns the manifest's digest.
pub fn oci_layout(dir: &Path, wasm: &[u8], tag: &str) -> String {
    use sha2::Digest;
    let digest = |b: &[u8]| format!("sha256:{:x}", sha2::Sha256::digest(b));
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = digest(b);
        std::fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#;
    let config_digest = put(config);
    let layer_digest = put(wasm);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.wasm.config.v0+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/wasm","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        wasm.len()
    );
    let manifest_digest = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap();
    manifest_digest
}

/// The files of a store under `cache` (none when nothing was stored).
pub fn stored(cache: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(cache.join("oci/blobs/sha256")) {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}
