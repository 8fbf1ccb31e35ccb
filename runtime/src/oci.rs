//! Components from OCI registries: `wdiamond publish` pushes a component
//! as an OCI artifact (and signs it, in cosign's format); `wdiamond
//! install` pulls one by digest, checks every digest, verifies its
//! signature against the operator's trusted keys and stores it; a
//! configuration's `component = "oci://…@sha256:…"` loads it from the
//! store, and reaches the network only with `[server] pull = "missing"`.
//!
//! - `reference` (`config/oci_reference.rs`, a configuration value):
//!   `oci://HOST[:PORT]/REPO[:TAG][@sha256:…]`;
//! - `oci/http.rs`: bounded HTTP/1.1 over the host's TLS, with a deadline;
//! - `oci/auth.rs`: credentials and the registry's challenge;
//! - `oci/registry.rs`: manifests and blobs, read checked, and pushed;
//! - `oci/artifact.rs`: the artifact's layout (the wasm OCI layout);
//! - `oci/sign.rs`: cosign's keyed signatures (ECDSA P-256);
//! - `oci/store.rs`: the content-addressed local store;
//! - `oci/transfer.rs`: a verified pull and a (signed) push.

pub mod artifact;
pub mod auth;
pub mod http;
pub mod registry;
pub mod sign;
pub mod store;
pub mod transfer;

pub use crate::config::oci_reference as reference;
pub use reference::Reference;
pub use store::Store;
pub use transfer::{pull, push, Access, Pulled, Trust};
