//! Signatures in cosign's keyed format: ECDSA P-256 with SHA-256 (cosign's
//! default key type) over cosign's simple-signing payload, which names the
//! manifest digest; the payload is a layer of media type
//! `application/vnd.dev.cosign.simplesigning.v1+json` with the base64 DER
//! signature in its `dev.cosignproject.cosign/signature` annotation, in a
//! manifest tagged `sha256-<hex>.sig` beside the artifact. That tag scheme
//! and not the referrers API: it works on every registry (distribution 2.8
//! has no referrers API), and cosign, containers/image (skopeo, podman)
//! and Kubewarden read it.
//!
//! Keys are PEM: a PKCS#8 private key (`wdiamond keygen`, or `openssl
//! genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`) and its
//! SubjectPublicKeyInfo public key (as `cosign generate-key-pair` writes
//! `cosign.pub`); cosign's encrypted `cosign.key` signs too
//! (`sign/encrypted.rs`).

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};

mod encrypted;

/// The signature layer's media type.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation that carries the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Largest payload read, bytes.
pub const MAX_PAYLOAD: u64 = 64 << 10;
/// The DER prefix of a P-256 SubjectPublicKeyInfo (then the 65-byte point).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A trusted public key.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// Where it was read from (shown in messages).
    pub name: String,
    point: Vec<u8>,
}

/// The `sha256-<hex>.sig` tag of a manifest digest.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

fn pem_block(text: &str, path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| anyhow!("{}: not a PEM file", path.display()))?;
    let rest = &text[begin + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| anyhow!("{}: not a PEM file", path.display()))?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest
        .find("-----END ")
        .ok_or_else(|| anyhow!("{}: a PEM block without its END line", path.display()))?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| anyhow!("{}: the PEM block is not base64", path.display()))?;
    Ok((label, der))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn read_small(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > 64 << 10 {
        bail!("{}: larger than a key file (64 KiB)", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (P-256).
    pub fn read(path: &Path) -> anyhow::Result<PublicKey> {
        let (label, der) = pem_block(&read_small(path)?, path)?;
        if label != "PUBLIC KEY" {
            bail!(
                "{}: a {label}, not a PUBLIC KEY (the .pub file of the pair)",
                path.display()
            );
        }
        PublicKey::from_spki(&der, path.display().to_string())
            .map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    fn from_spki(der: &[u8], name: String) -> Result<PublicKey, String> {
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => Ok(PublicKey {
                name,
                point: point.to_vec(),
            }),
            _ => Err("not an ECDSA P-256 public key (cosign's default; other key types are not supported)".into()),
        }
    }

    fn verify(&self, payload: &[u8], sig_der: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(payload, sig_der)
            .is_ok()
    }
}

/// A private key to sign with.
pub struct PrivateKey(EcdsaKeyPair);

impl PrivateKey {
    /// Reads a PEM PKCS#8 `PRIVATE KEY` (P-256), or cosign's encrypted
    /// one with the password in `COSIGN_PASSWORD`.
    pub fn read(path: &Path) -> anyhow::Result<PrivateKey> {
        let (label, mut der) = pem_block(&read_small(path)?, path)?;
        match label.as_str() {
            "PRIVATE KEY" => {}
            "EC PRIVATE KEY" => bail!("{}: a SEC1 key; convert it to PKCS#8: openssl pkcs8 -topk8 -nocrypt -in {} -out KEY.pem", path.display(), path.display()),
            l if encrypted::LABELS.contains(&l) => {
                let password = std::env::var_os(encrypted::PASSWORD_VAR).ok_or_else(|| {
                    anyhow!(
                        "{}: cosign's encrypted key; set {} to its password, as for cosign",
                        path.display(),
                        encrypted::PASSWORD_VAR
                    )
                })?;
                use std::os::unix::ffi::OsStrExt;
                der = encrypted::open(&der, password.as_bytes())
                    .with_context(|| format!("{}: cosign's encrypted key", path.display()))?;
            }
            l if l.starts_with("ENCRYPTED") => bail!("{}: an encrypted key ({l}); wdiamond signs with an unencrypted PKCS#8 key (`wdiamond keygen`) or cosign's own encrypted one", path.display()),
            l => bail!("{}: a {l}, not a PRIVATE KEY", path.display()),
        }
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &der,
            &SystemRandom::new(),
        )
        .map(PrivateKey)
        .map_err(|e| anyhow!("{}: not an ECDSA P-256 PKCS#8 key ({e})", path.display()))
    }

    /// The base64 DER signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> anyhow::Result<String> {
        let sig = self
            .0
            .sign(&SystemRandom::new(), payload)
            .map_err(|_| anyhow!("signing failed"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sig.as_ref()))
    }
}

/// A new key pair: (private PKCS#8 PEM, public SPKI PEM).
pub fn generate() -> anyhow::Result<(String, String)> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow!("generating a key failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .map_err(|_| anyhow!("generating a key failed"))?;
    let spki = [&P256_SPKI_PREFIX[..], pair.public_key().as_ref()].concat();
    Ok((pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki)))
}

/// Cosign's simple-signing payload for `digest` at `repository`
/// (`host[:port]/repo`).
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest },
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    }))
    .expect("JSON of plain values")
}

/// Checks one signature: the payload names `digest` and is cosign's, and
/// one of `keys` signed it. Returns the key's name, or why not.
pub fn verify(
    keys: &[PublicKey],
    payload: &[u8],
    signature_b64: &str,
    digest: &str,
) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Critical {
        #[serde(rename = "type")]
        kind: String,
        image: Image,
    }
    #[derive(serde::Deserialize)]
    struct Payload {
        critical: Critical,
    }
    let sig = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| "its signature annotation is not base64".to_string())?;
    let Some(key) = keys.iter().find(|k| k.verify(payload, &sig)) else {
        return Err("signed by no trusted key".into());
    };
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|_| "its payload is not cosign's simple-signing JSON".to_string())?;
    if p.critical.kind != PAYLOAD_TYPE {
        return Err(format!(
            "its payload's type is {:?}, not cosign's",
            super::http::shown(&p.critical.kind)
        ));
    }
    if p.critical.image.digest != digest {
        return Err(format!(
            "signed by {}, but over {}, not this manifest",
            key.name,
            super::http::shown(&p.critical.image.digest)
        ));
    }
    Ok(key.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_signs_and_verifies_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = generate().unwrap();
        std::fs::write(dir.path().join("k.key"), &private).unwrap();
        std::fs::write(dir.path().join("k.pub"), &public).unwrap();
        let key = PrivateKey::read(&dir.path().join("k.key")).unwrap();
        let trusted = PublicKey::read(&dir.path().join("k.pub")).unwrap();
        let d = format!("sha256:{}", "ab".repeat(32));
        let p = payload("127.0.0.1:5000/x", &d);
        let s = key.sign(&p).unwrap();
        assert!(verify(std::slice::from_ref(&trusted), &p, &s, &d).is_ok());
        let other = format!("sha256:{}", "cd".repeat(32));
        assert!(verify(std::slice::from_ref(&trusted), &p, &s, &other)
            .unwrap_err()
            .contains("not this manifest"));
        let (_, stranger) = generate().unwrap();
        std::fs::write(dir.path().join("s.pub"), &stranger).unwrap();
        let stranger = PublicKey::read(&dir.path().join("s.pub")).unwrap();
        assert!(verify(&[stranger], &p, &s, &d)
            .unwrap_err()
            .contains("no trusted key"));
        let mut tampered = p.clone();
        tampered[5] ^= 1;
        assert!(verify(std::slice::from_ref(&trusted), &tampered, &s, &d).is_err());
        assert!(PublicKey::read(&dir.path().join("k.key")).is_err());
        assert!(PrivateKey::read(&dir.path().join("k.pub")).is_err());
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "ab".repeat(32)));
    }
}
