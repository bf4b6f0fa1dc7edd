//! From the configuration to TLS: each TLS listener's certificates and
//! acceptor, each TLS pool's connector. Every file read and checked, or
//! nothing (a reload with one bad file changes no listener). Errors name
//! where the files were given and why they are refused; a chain that has
//! expired, or expires within 14 days, is loaded with a warning.
//!
//! This is the one place that maps settings onto `transport::tls`, so the
//! transport itself takes plain paths and flags and knows no `Config`.

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{ListenerConfig, ListenerTls, PoolConfig};
use crate::transport::tls::certs::{Certificate, EXPIRY_WARNING};
use crate::transport::tls::connector::{Connectors, TlsConnector};
use crate::transport::tls::resolver::CertificateSet;
use crate::transport::tls::{TlsAcceptor, TlsCommon};

/// A listener's certificates, read from their files.
pub fn certificate_set(
    tls: &ListenerTls,
    common: &TlsCommon,
) -> Result<(CertificateSet, Vec<String>), String> {
    let mut certificates = Vec::with_capacity(tls.certificates.len());
    let mut warnings = Vec::new();
    let now = SystemTime::now();
    for files in &tls.certificates {
        let certificate = Certificate::load(&files.cert, &files.key, common.provider())
            .map_err(|e| format!("{}: {e}", files.given_by))?;
        let left = certificate.remaining(now);
        if left.is_zero() {
            warnings.push(format!(
                "{}: the certificate in {} has expired; clients will refuse it",
                files.given_by, certificate.cert_path
            ));
        } else if left < EXPIRY_WARNING {
            warnings.push(format!(
                "{}: the certificate in {} expires in {} day(s)",
                files.given_by,
                certificate.cert_path,
                left.as_secs() / 86_400
            ));
        }
        certificates.push(certificate);
    }
    Ok((
        CertificateSet {
            certificates,
            require_sni: tls.require_sni,
        },
        warnings,
    ))
}

/// Every listener's acceptor (`None` for plaintext ones), in listener
/// order, with the warnings to log.
pub fn acceptors(
    listeners: &[ListenerConfig],
    common: &TlsCommon,
) -> Result<(Vec<Option<TlsAcceptor>>, Vec<String>), String> {
    let mut acceptors = Vec::with_capacity(listeners.len());
    let mut warnings = Vec::new();
    for listener in listeners {
        acceptors.push(match &listener.tls {
            Some(tls) => {
                let (set, mut more) = certificate_set(tls, common)?;
                warnings.append(&mut more);
                Some(TlsAcceptor::new(set, common, listener.h2)?)
            }
            None => None,
        });
    }
    Ok((acceptors, warnings))
}

/// Read the certificates of `listeners` again for running `acceptors`
/// (same listeners, same order) and swap them in, all or none.
pub fn reload(
    listeners: &[ListenerConfig],
    acceptors: &[Option<Arc<TlsAcceptor>>],
    common: &TlsCommon,
) -> Result<Vec<String>, String> {
    let mut sets = Vec::new();
    let mut warnings = Vec::new();
    for (listener, acceptor) in listeners.iter().zip(acceptors) {
        if let (Some(tls), Some(acceptor)) = (&listener.tls, acceptor) {
            let (set, mut more) = certificate_set(tls, common)?;
            warnings.append(&mut more);
            sets.push((acceptor, set));
        }
    }
    for (acceptor, set) in sets {
        acceptor.resolver().replace(set);
    }
    Ok(warnings)
}

/// Every pool's connector, with a warning for each pool that skips
/// verification.
pub fn connectors(pools: &[PoolConfig]) -> Result<(Connectors, Vec<String>), String> {
    let mut warnings = Vec::new();
    let connectors = pools
        .iter()
        .map(|pool| {
            let Some(tls) = &pool.tls else {
                return Ok(None);
            };
            if tls.insecure_skip_verify {
                warnings.push(format!(
                    "pool {:?}: tls_insecure_skip_verify: backend certificates are not \
                     verified; anyone on the path can read and change its traffic",
                    pool.name
                ));
            }
            TlsConnector::load(
                tls.ca.as_deref(),
                tls.sni.as_deref(),
                tls.insecure_skip_verify,
            )
            .map(|c| Some(Arc::new(c)))
            .map_err(|e| format!("{}: {e}", tls.given_by))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((connectors, warnings))
}
