//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: no channel
//! binding (`n,,`), the user name left empty (the server takes the
//! startup message's), the password as given (no SASLprep: ASCII passwords,
//! the common case, are unchanged by it).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Most PBKDF2 iterations a server may ask for (PostgreSQL's default is
/// 4,096): a hostile server cannot make the plugin burn its whole deadline.
pub const MAX_ITERATIONS: u32 = 100_000;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one block (`Hi` of RFC 5802).
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let key = HmacSha256::new_from_slice(password).expect("HMAC takes any key");
    let mut m = key.clone();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = m.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut m = key.clone();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

/// One client exchange.
pub struct Scram {
    password: Vec<u8>,
    client_first_bare: String,
    nonce: String,
    /// What the server's final message must prove (set by `client_final`).
    server_signature: Option<[u8; 32]>,
}

impl Scram {
    /// Starts an exchange with a client nonce (printable, no commas).
    pub fn new(password: &str, nonce: &str) -> Scram {
        Scram {
            password: password.as_bytes().to_vec(),
            client_first_bare: format!("n=,r={nonce}"),
            nonce: nonce.to_string(),
            server_signature: None,
        }
    }

    /// The client-first message.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client-final message, from the server-first message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "SCRAM: the server's first message is not text".to_string())?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for part in server_first.split(',') {
            match part.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(base64_decode(v)?),
                Some(("i", v)) => {
                    iterations = Some(
                        v.parse::<u32>()
                            .map_err(|_| format!("SCRAM: bad iteration count {:?}", cut(v)))?,
                    )
                }
                _ => {}
            }
        }
        let nonce = nonce.ok_or("SCRAM: the server's first message has no nonce")?;
        let salt = salt.ok_or("SCRAM: the server's first message has no salt")?;
        let iterations =
            iterations.ok_or("SCRAM: the server's first message has no iteration count")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("SCRAM: the server's nonce does not extend ours".into());
        }
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(format!(
                "SCRAM: the server asks for {iterations} iterations (at most {MAX_ITERATIONS})"
            ));
        }
        let salted = hi(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", base64_encode(&proof)))
    }

    /// Checks the server-final message: the server knew the password too.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(server_final);
        if let Some(e) = text.strip_prefix("e=") {
            return Err(format!("SCRAM: the server says {:?}", cut(e)));
        }
        let v = text
            .strip_prefix("v=")
            .ok_or("SCRAM: the server's final message has no signature")?;
        let expected = self
            .server_signature
            .ok_or("SCRAM: the server's final message came too early")?;
        if base64_decode(v.trim_end())? != expected {
            return Err("SCRAM: the server's signature is wrong (not the server we asked?)".into());
        }
        Ok(())
    }
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or_else(|| format!("SCRAM: {:?} is not base64", cut(text)))?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example (its user name is "user"; PostgreSQL's client
    /// sends none, so the messages differ only in `n=`).
    #[test]
    fn rfc_7677_example() {
        let mut s = Scram::new("pencil", "rOprNGfwEbeRWgbNEkqO");
        s.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let fin = s
            .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(s.verify(b"v=AAAA").is_err());
        assert!(s
            .verify(b"e=invalid-proof")
            .unwrap_err()
            .contains("invalid-proof"));
    }

    #[test]
    fn hostile_server_first_messages() {
        let mut s = Scram::new("pw", "abc");
        assert!(s
            .client_final(b"r=xyz1,s=QUJD,i=4096")
            .unwrap_err()
            .contains("nonce"));
        assert!(s
            .client_final(b"r=abc,s=QUJD,i=4096")
            .unwrap_err()
            .contains("nonce"));
        assert!(s
            .client_final(b"r=abcd,s=QUJD,i=4294967295")
            .unwrap_err()
            .contains("at most"));
        assert!(s.client_final(b"r=abcd,s=QUJD,i=0").is_err());
        assert!(s
            .client_final(b"r=abcd,s=!!,i=10")
            .unwrap_err()
            .contains("base64"));
        assert!(s.client_final(b"r=abcd,i=10").unwrap_err().contains("salt"));
        assert!(s.client_final(&[0xff, 0xfe]).is_err());
        assert!(s.verify(b"v=AAAA").is_err());
    }

    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0, 255, 128, 7, 9]] {
            assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"biws"[..0].as_ref()), "");
        assert_eq!(base64_encode(b"n,,"), "biws");
    }
}
