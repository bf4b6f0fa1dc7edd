//! TLS to backends: one rustls `ClientConfig` per pool with `tls = true`,
//! built on the control side from the pool's settings and published in
//! the snapshot, so every worker (and the health thread) shares it, and
//! with it its session store: a backend connection opened on one worker
//! resumes the session another worker's connection started.
//!
//! Verification is webpki's against the pool's CA file or the system's
//! roots (the distribution's bundle, as OpenSSL reads it); the name
//! verified is the pool's `tls_sni`, else the backend's host as written
//! (an IP address is verified against the certificate's IP names, and
//! no SNI is sent for it). `tls_insecure_skip_verify` accepts any
//! certificate but still checks the handshake's signatures.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};
use rustls::{Error, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::source_file::read_source_file;

/// The largest CA file read: a distribution's whole bundle fits.
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// Where distributions keep their CA bundle (Debian, Fedora, openSUSE,
/// Alpine and the BSDs), after `SSL_CERT_FILE` if set, as OpenSSL reads it.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// One pool's client side of TLS.
#[derive(Debug)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    /// The pool's `tls_sni`.
    sni: Option<ServerName<'static>>,
}

impl TlsConnector {
    /// Build a pool's connector: the CA file `ca` (or, `None`, the
    /// system's roots) read and checked; `sni` the name sent and verified
    /// instead of each backend's host; `insecure_skip_verify` accepts any
    /// certificate. Errors say why; the caller prefixes where the
    /// settings were given.
    pub fn load(
        ca: Option<&Path>,
        sni: Option<&str>,
        insecure_skip_verify: bool,
    ) -> Result<TlsConnector, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS configuration: {e}"))?;
        let mut config = if insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let roots = match ca {
                Some(path) => roots_from(path, true),
                None => system_roots(),
            }?;
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let sni = sni
            .map(|name| ServerName::try_from(name.to_string()))
            .transpose()
            .map_err(|e| format!("tls_sni: {e}"))?;
        Ok(TlsConnector {
            config: Arc::new(config),
            sni,
        })
    }

    /// A new client connection to the backend written `name` in the
    /// config (`host:port`), at `addr`.
    pub fn connection(&self, name: &str, addr: SocketAddr) -> Result<ClientConnection, Error> {
        let server = match &self.sni {
            Some(sni) => sni.clone(),
            None => default_name(name, addr),
        };
        ClientConnection::new(Arc::clone(&self.config), server)
    }
}

/// The name verified for a backend written `name` (`host:port`, a
/// bracketed IPv6 address): its host, or its address when the host is no
/// DNS name.
fn default_name(name: &str, addr: SocketAddr) -> ServerName<'static> {
    let host = name.rsplit_once(':').map_or(name, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match ServerName::try_from(host) {
        Ok(server) => server.to_owned(),
        Err(_) => ServerName::IpAddress(addr.ip().into()),
    }
}

/// Each pool's connector, in pool order (`None`: plaintext).
pub type Connectors = Vec<Option<Arc<TlsConnector>>>;

/// The CA certificates in the PEM file `path`. `strict`: every one must
/// be usable (a file the user named); else the unusable ones are skipped
/// (a distribution's bundle).
fn roots_from(path: &Path, strict: bool) -> Result<RootCertStore, String> {
    let shown = path.display();
    let pem = read_source_file(path, MAX_CA_FILE)?;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown}: not a PEM certificate file: {e}"))?;
    let mut roots = RootCertStore::empty();
    if strict {
        for (i, cert) in certs.into_iter().enumerate() {
            roots
                .add(cert)
                .map_err(|e| format!("{shown}: certificate {}: unusable as a CA: {e}", i + 1))?;
        }
    } else {
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Err(format!("{shown}: no CA certificate in it"));
    }
    Ok(roots)
}

/// The system's CA bundle.
fn system_roots() -> Result<RootCertStore, String> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates = from_env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from));
    for path in candidates {
        if path.is_file() {
            return roots_from(&path, false);
        }
    }
    Err(format!(
        "no system CA bundle found (looked for {}): install ca-certificates or give tls_ca",
        SYSTEM_BUNDLES.join(", ")
    ))
}

/// `tls_insecure_skip_verify`: any certificate, for any name, is taken;
/// the handshake's signatures are still checked (they prove the peer
/// holds the key of the certificate it sent, whatever that is).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        let addr: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let dns = |n: &str| ServerName::try_from(n.to_string()).unwrap();
        assert_eq!(default_name("api.internal:443", addr), dns("api.internal"));
        assert_eq!(
            default_name("10.0.0.1:443", addr),
            ServerName::IpAddress(addr.ip().into())
        );
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(
            default_name("[::1]:443", v6),
            ServerName::IpAddress(v6.ip().into())
        );
    }
}
