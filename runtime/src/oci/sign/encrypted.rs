//! cosign's encrypted private keys (`cosign generate-key-pair` writes
//! `cosign.key` so): a PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` (or, from
//! older cosign, `ENCRYPTED COSIGN PRIVATE KEY`) holding JSON: the PKCS#8
//! DER sealed by NaCl's secretbox (XSalsa20-Poly1305) under a key that
//! scrypt derives from the password. The password is `COSIGN_PASSWORD`,
//! as cosign reads it. scrypt's cost is only what cosign writes (N of
//! 32768 or 65536, r 8, p 1): a key file cannot make the derivation take
//! gigabytes or minutes.

use anyhow::{anyhow, bail};
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;

/// The PEM labels of an encrypted cosign key.
pub const LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// The environment variable holding the password, as cosign names it.
pub const PASSWORD_VAR: &str = "COSIGN_PASSWORD";

#[derive(serde::Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(serde::Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(serde::Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(serde::Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The PKCS#8 DER inside `sealed` (the PEM block's bytes), opened with
/// `password`.
pub fn open(sealed: &[u8], password: &[u8]) -> anyhow::Result<Vec<u8>> {
    let s: Sealed = serde_json::from_slice(sealed)
        .map_err(|_| anyhow!("not cosign's encrypted key JSON (kdf, cipher, ciphertext)"))?;
    if s.kdf.name != "scrypt" {
        bail!("its key derivation is {:?}, not scrypt", cut(&s.kdf.name));
    }
    if s.cipher.name != "nacl/secretbox" {
        bail!(
            "its cipher is {:?}, not nacl/secretbox",
            cut(&s.cipher.name)
        );
    }
    let log_n = match s.kdf.params.n {
        32768 => 15,
        65536 => 16,
        n => bail!("its scrypt N is {n}, not cosign's 32768 or 65536"),
    };
    if (s.kdf.params.r, s.kdf.params.p) != (8, 1) {
        bail!("its scrypt r and p are not cosign's 8 and 1");
    }
    let b64 = |what: &str, v: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|_| anyhow!("its {what} is not base64"))
    };
    let salt = b64("salt", &s.kdf.salt)?;
    let nonce = b64("nonce", &s.cipher.nonce)?;
    let ciphertext = b64("ciphertext", &s.ciphertext)?;
    if nonce.len() != 24 {
        bail!("its nonce is {} bytes, not 24", nonce.len());
    }
    let params =
        scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| anyhow!("scrypt parameters: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).map_err(|e| anyhow!("scrypt: {e}"))?;
    let cipher = XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
        .map_err(|_| {
            anyhow!("it did not open with the password in {PASSWORD_VAR} (a wrong password?)")
        })
}

/// A key file's string, for a message.
fn cut(s: &str) -> String {
    crate::oci::http::shown(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key sealed as cosign seals one (with cosign's lower scrypt cost).
    fn seal(plain: &[u8], password: &[u8], n: u64) -> Vec<u8> {
        let salt = [7u8; 32];
        let nonce = [9u8; 24];
        let mut key = [0u8; 32];
        let log_n = n.trailing_zeros() as u8;
        scrypt::scrypt(
            password,
            &salt,
            &scrypt::Params::new(log_n, 8, 1, 32).unwrap(),
            &mut key,
        )
        .unwrap();
        let ct = XSalsa20Poly1305::new(&key.into())
            .encrypt(nonce.as_slice().into(), plain)
            .unwrap();
        let e = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        format!(
            r#"{{"kdf":{{"name":"scrypt","params":{{"N":{n},"r":8,"p":1}},"salt":"{}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{}"}},"ciphertext":"{}"}}"#,
            e(&salt),
            e(&nonce),
            e(&ct)
        )
        .into_bytes()
    }

    #[test]
    fn a_sealed_key_opens_with_its_password_only_and_costs_are_capped() {
        let sealed = seal(b"pkcs8 bytes", b"hunter2", 32768);
        assert_eq!(open(&sealed, b"hunter2").unwrap(), b"pkcs8 bytes");
        let e = format!("{:#}", open(&sealed, b"wrong").unwrap_err());
        assert!(e.contains("wrong password"), "{e}");
        // A cost no cosign writes (here 2^20: a gigabyte of scrypt memory)
        // is refused before any derivation.
        let text = String::from_utf8(sealed).unwrap();
        let costly = text.replace(r#""N":32768"#, r#""N":1048576"#);
        let e = format!("{:#}", open(costly.as_bytes(), b"hunter2").unwrap_err());
        assert!(e.contains("not cosign's 32768"), "{e}");
        let other_r = text.replace(r#""r":8"#, r#""r":4096"#);
        assert!(open(other_r.as_bytes(), b"hunter2").is_err());
        let other_kdf = text.replace(r#""name":"scrypt""#, r#""name":"argon2""#);
        assert!(
            format!("{:#}", open(other_kdf.as_bytes(), b"x").unwrap_err()).contains("not scrypt")
        );
        assert!(open(b"{}", b"x").is_err());
    }
}
