//! Which certificate a handshake gets: chosen by the name the client asks
//! for (SNI) among a listener's certificates, exact names and wildcards,
//! and among several for one name (RSA and ECDSA) by the signature schemes
//! the client offers; a client that sends no name, or a name no
//! certificate covers, gets the listener's first certificate, unless the
//! listener requires SNI.
//!
//! The set is swapped whole on reload (`ArcSwap`): new handshakes see the
//! new certificates, connections already open keep theirs, and the
//! listener's `ServerConfig` (with its ticket keys and session cache) stays
//! the same object, so sessions resume across the reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::certs::Certificate;

/// A listener's certificates, as loaded by the last (re)load.
#[derive(Debug)]
pub struct CertificateSet {
    /// In configuration order; the first is the default.
    pub certificates: Vec<Certificate>,
    /// Refuse clients that send no SNI (and names no certificate covers).
    pub require_sni: bool,
}

/// The certificate chooser of one listener.
#[derive(Debug)]
pub struct CertResolver {
    set: ArcSwap<CertificateSet>,
}

impl CertResolver {
    /// A chooser over `set`.
    pub fn new(set: CertificateSet) -> Arc<Self> {
        Arc::new(Self {
            set: ArcSwap::from_pointee(set),
        })
    }

    /// Serve `set` to new handshakes from now on.
    pub fn replace(&self, set: CertificateSet) {
        self.set.store(Arc::new(set));
    }

    /// The certificates served now.
    pub fn current(&self) -> Arc<CertificateSet> {
        self.set.load_full()
    }
}

impl CertificateSet {
    /// The certificate for a client asking for `name` (SNI, any case)
    /// that can sign with one of `schemes`.
    pub fn choose(&self, name: Option<&str>, schemes: &[SignatureScheme]) -> Option<&Certificate> {
        let usable = |c: &&Certificate| c.key.key.choose_scheme(schemes).is_some();
        if let Some(name) = name {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            // Exact names before wildcards, as nginx and HAProxy choose.
            let exact = self
                .certificates
                .iter()
                .filter(usable)
                .find(|c| c.names.contains(&name));
            if let Some(c) = exact.or_else(|| {
                self.certificates
                    .iter()
                    .filter(usable)
                    .find(|c| c.covers(&name))
            }) {
                return Some(c);
            }
        }
        if self.require_sni {
            return None;
        }
        self.certificates.iter().find(usable)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.set.load();
        set.choose(hello.server_name(), hello.signature_schemes())
            .map(|c| Arc::clone(&c.key))
    }
}
