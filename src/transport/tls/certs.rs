//! One certificate as a listener serves it: its chain and key from PEM
//! files, checked to belong together, with the names it covers and when
//! it expires (read from the leaf with `x509-parser`, for SNI and for the
//! expiry warnings, `/status` and `/metrics`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::source_file::read_source_file;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The largest certificate or key file read: far above any real chain.
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// A chain closer to its end than this is loaded with a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// A loaded certificate with its key.
#[derive(Debug)]
pub struct Certificate {
    /// The chain and the key that signs for it.
    pub key: Arc<CertifiedKey>,
    /// DNS names the leaf covers (subject alternative names, else the
    /// common name), lower case; `*.example.com` for a wildcard.
    pub names: Vec<String>,
    /// The leaf's notAfter, in seconds since the epoch.
    pub not_after: i64,
    /// Where it came from, for messages.
    pub cert_path: String,
}

impl Certificate {
    /// Read `cert_path` (a PEM chain, leaf first) and `key_path` (a PEM
    /// private key: PKCS#8, PKCS#1 or SEC1), and check that the key is the
    /// leaf's. Errors name the file and why.
    pub fn load(
        cert_path: &Path,
        key_path: &Path,
        provider: &CryptoProvider,
    ) -> Result<Certificate, String> {
        let shown = |p: &Path| p.display().to_string();
        let cert_pem = read_small_file(cert_path)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: not a PEM certificate chain: {e}", shown(cert_path)))?;
        let Some(leaf) = chain.first() else {
            return Err(format!("{}: no certificate in it", shown(cert_path)));
        };
        let (names, not_after) = leaf_facts(leaf)
            .map_err(|e| format!("{}: cannot read the certificate: {e}", shown(cert_path)))?;
        let key_pem = read_small_file(key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("{}: not a PEM private key: {e}", shown(key_path)))?;
        let signer = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("{}: unusable private key: {e}", shown(key_path)))?;
        let key = CertifiedKey::new(chain, signer);
        key.keys_match().map_err(|_| {
            format!(
                "{}: this key does not belong to the certificate in {}",
                shown(key_path),
                shown(cert_path)
            )
        })?;
        Ok(Certificate {
            key: Arc::new(key),
            names,
            not_after,
            cert_path: shown(cert_path),
        })
    }

    /// Does this certificate cover `name` (lower case, no trailing dot)?
    /// A wildcard covers exactly one label: `*.example.com` covers
    /// `a.example.com`, not `example.com` nor `a.b.example.com`.
    pub fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|pattern| name_matches(pattern, name))
    }

    /// Time left before it expires (zero once it has).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        Duration::from_secs(self.not_after.saturating_sub(now).max(0) as u64)
    }
}

/// Does the certificate name `pattern` cover the host `name`?
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

/// The DNS names and the notAfter of a leaf certificate.
fn leaf_facts(leaf: &CertificateDer<'_>) -> Result<(Vec<String>, i64), String> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        // No DNS names in the SAN: clients then match the common name.
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

/// Read a certificate or key file: a regular file, not too large (the
/// same rules as the config file).
fn read_small_file(path: &Path) -> Result<Vec<u8>, String> {
    read_source_file(path, MAX_PEM_FILE).map(String::into_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_one_label() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
        assert!(name_matches("example.com", "example.com"));
        assert!(!name_matches("example.com", "www.example.com"));
    }
}
