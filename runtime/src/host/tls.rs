//! TLS on a plugin's TCP connections, done by the host (rustls, with the
//! `ring` provider): a section with `tls = true` has every TCP connection
//! its plugin opens wrapped in TLS after the grant check and the connect,
//! so a plugin speaks plaintext to the host and the host speaks TLS to the
//! backend. Keys in Telegraf's names: `tls_ca` (the CAs to trust instead of
//! the compiled-in and system roots), `tls_cert` + `tls_key` (a client
//! certificate), `tls_server_name` (the name to verify and send as SNI
//! instead of the connected host), `insecure_skip_verify` (no verification:
//! logged loudly at load). A handshake failure is an error result with the
//! reason (`invalid peer certificate: UnknownIssuer`), never a trap.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::bindings::types::HostError;
use crate::config::TlsConfig;

/// Where the system's CA bundle is (Debian's `ca-certificates`).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A plugin's TLS settings, resolved once at load.
#[derive(Debug)]
pub struct TlsSettings {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

/// A TLS connection over a non-blocking TCP socket.
pub type TlsStream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// Why the TLS settings of a section cannot be used: the key to blame and
/// the reason.
#[derive(Debug)]
pub struct TlsError {
    /// The key (`tls_ca`, `tls_cert`, …).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError { key, message };
    let found: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("{}: not PEM certificates: {e}", path.display())))?;
    if found.is_empty() {
        return Err(err(format!("{}: no PEM certificate in it", path.display())));
    }
    Ok(found)
}

impl TlsSettings {
    /// Reads the certificates and keys `t` names and builds the client
    /// configuration.
    pub fn load(t: &TlsConfig) -> Result<TlsSettings, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                key: "tls",
                message: e.to_string(),
            })?;
        let builder = if t.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
        } else {
            let mut roots = RootCertStore::empty();
            match &t.ca {
                Some(ca) => {
                    for c in certs(ca, "tls_ca")? {
                        roots.add(c).map_err(|e| TlsError {
                            key: "tls_ca",
                            message: format!("{}: {e}", ca.display()),
                        })?;
                    }
                }
                None => {
                    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                    if let Ok(system) = CertificateDer::pem_file_iter(SYSTEM_ROOTS) {
                        roots.add_parsable_certificates(system.flatten());
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        let config = match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => {
                let chain = certs(cert, "tls_cert")?;
                let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError {
                    key: "tls_key",
                    message: format!("{}: not a PEM private key: {e}", key.display()),
                })?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|e| TlsError {
                        key: "tls_key",
                        message: format!("{} and {}: {e}", cert.display(), key.display()),
                    })?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(TlsError {
                    key: "tls_cert",
                    message: "a client certificate needs its key: set `tls_key` too".into(),
                })
            }
            (None, Some(_)) => {
                return Err(TlsError {
                    key: "tls_key",
                    message: "a client key needs its certificate: set `tls_cert` too".into(),
                })
            }
        };
        Ok(TlsSettings {
            config: Arc::new(config),
            server_name: t.server_name.clone(),
        })
    }

    /// The client configuration (for the registry client, which drives its
    /// own connections).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The TLS handshake over `tcp` (connected to `host`), by `deadline`.
    pub fn handshake(
        &self,
        mut tcp: TcpStream,
        host: &str,
        deadline: Instant,
    ) -> Result<TlsStream, HostError> {
        use std::os::fd::AsRawFd;
        let name = self.server_name.as_deref().unwrap_or(host);
        let server = ServerName::try_from(name.to_string())
            .map_err(|_| HostError::Invalid(format!("{name:?} is not a TLS server name")))?;
        let mut conn = ClientConnection::new(self.config.clone(), server)
            .map_err(|e| HostError::Io(format!("TLS with {name}: {e}")))?;
        let failed = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::TimedOut => HostError::TimedOut,
            _ => HostError::Io(format!("TLS handshake with {name} failed: {e}")),
        };
        while conn.is_handshaking() {
            match conn.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let events = if conn.wants_write() {
                        libc::POLLOUT
                    } else {
                        libc::POLLIN
                    };
                    super::poll::wait_ready(tcp.as_raw_fd(), events, deadline).map_err(failed)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Ok(rustls::StreamOwned::new(conn, tcp))
    }
}

/// `insecure_skip_verify`: any certificate is accepted (signatures are
/// still checked, so the session is encrypted to whoever answered).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
