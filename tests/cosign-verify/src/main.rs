//! `cosign-verify HOST:PORT/REPO@sha256:DIGEST KEY.pub`: exit 0 when a
//! cosign signature of that manifest (its `sha256-<hex>.sig` tag) verifies
//! with the key, by sigstore-rs's cosign client (plain HTTP: the tests'
//! registries are on loopback).
//!
//! `cosign-verify --sign HOST:PORT/REPO@sha256:DIGEST KEY.pem`: signs that
//! manifest with the PKCS#8 private key and pushes the signature as
//! sigstore-rs's cosign client does (for wdiamond to verify).
//!
//! `cosign-verify --encrypt KEY.pem OUT.key`: writes the PKCS#8 private key
//! encrypted as cosign encrypts `cosign.key` (scrypt, secretbox), with the
//! password in `COSIGN_PASSWORD`.

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{verify_constraints, ClientBuilder, CosignCapabilities};
use sigstore::cosign::SignatureLayer;
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--encrypt") && args.len() == 4 {
        let key = std::fs::read(&args[2]).expect("the private key");
        let password = std::env::var("COSIGN_PASSWORD").expect("COSIGN_PASSWORD");
        let pem = SigStoreKeyPair::from_pem(&key)
            .expect("a PKCS#8 private key")
            .private_key_to_encrypted_pem(password.as_bytes())
            .expect("an encrypted key");
        std::fs::write(&args[3], pem.as_bytes()).expect("writing the encrypted key");
        return;
    }
    let sign = args.get(1).is_some_and(|a| a == "--sign");
    if sign {
        args.remove(1);
    }
    if args.len() != 3 {
        eprintln!("usage: cosign-verify HOST:PORT/REPO@sha256:DIGEST KEY.pub");
        std::process::exit(2);
    }
    let image: OciReference = args[1].parse().expect("an image reference");
    let key = std::fs::read(&args[2]).expect("the public key");
    let oci = ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    };
    let mut client = ClientBuilder::default()
        .with_oci_client_config(oci)
        .build()
        .expect("a cosign client");
    if sign {
        use base64::Engine as _;
        let digest = image.digest().expect("a reference by digest").to_string();
        let signer = SigStoreKeyPair::from_pem(&key)
            .expect("a PKCS#8 private key")
            .to_sigstore_signer(&SigningScheme::ECDSA_P256_SHA256_ASN1)
            .expect("a P-256 key");
        let mut layer = SignatureLayer::new_unsigned(&image, &digest).expect("a payload");
        let signature = signer.sign(&layer.raw_data).expect("a signature");
        layer.signature = Some(base64::engine::general_purpose::STANDARD.encode(signature));
        let target: OciReference = format!(
            "{}/{}:{}.sig",
            image.registry(),
            image.repository(),
            digest.replace(':', "-")
        )
        .parse()
        .expect("the signature's reference");
        client
            .push_signature(None, &Auth::Anonymous, &target, vec![layer])
            .await
            .expect("pushing the signature");
        println!("signed {digest}");
        return;
    }
    let layers = match client.trusted_signature_layers(&Auth::Anonymous, &image).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("no signature layers: {e}");
            std::process::exit(1);
        }
    };
    let verifier = PublicKeyVerifier::new(&key, &SigningScheme::default()).expect("a public key");
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    match verify_constraints(&layers, constraints.iter()) {
        Ok(()) => println!(
            "verified {} ({} signature layers)",
            image.digest().unwrap_or_default(),
            layers.len()
        ),
        Err(e) => {
            eprintln!("not verified: {e}");
            std::process::exit(1);
        }
    }
}
