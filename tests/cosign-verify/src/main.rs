//! `cosign-verify HOST:PORT/REPO@sha256:DIGEST KEY.pub`: exit 0 when a
//! cosign signature of that manifest (its `sha256-<hex>.sig` tag) verifies
//! with the key, by sigstore-rs's cosign client (plain HTTP: the tests'
//! registries are on loopback).

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{verify_constraints, ClientBuilder, CosignCapabilities};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
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
