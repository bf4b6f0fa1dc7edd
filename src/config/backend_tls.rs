//! TLS to a pool's backends: the file's `tls`, `tls_ca`, `tls_sni` and
//! `tls_insecure_skip_verify` keys of a `[[pools]]` table, and the
//! `--backend-tls*` flags of the default pool. Only checked here; the CA
//! file is read when the pool's client configuration is built
//! (`tls_load`, into `transport::tls::connector`), by `--check` too, and errors then name
//! [`BackendTlsConfig::given_by`].

use std::path::PathBuf;

use super::cli::Cli;
use super::file::{FilePool, Source};
use super::{flag_error, quoted, ConfigError};

/// How corelb speaks TLS to the backends of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTlsConfig {
    /// PEM file of the CAs trusted for the backends' certificates;
    /// `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// Server name sent (SNI) and verified; `None`: each backend's host
    /// as written in the config (none sent for an IP address).
    pub sni: Option<String>,
    /// Accept any certificate (labs only; a warning at start and reload).
    pub insecure_skip_verify: bool,
    /// Where the settings were given (`FILE:LINE:COL: pools[0]` or
    /// `--backend-tls`), for messages about the CA file.
    pub given_by: String,
}

/// A server name to send: a DNS name as a certificate would carry it.
fn parse_sni(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    rustls_pki_types::DnsName::try_from(name.as_str())
        .map_err(|_| "expected a DNS name, like api.internal".to_string())?;
    Ok(name)
}

/// The TLS settings of `[[pools]]` number `i`: `None` without `tls = true`
/// (and then no other `tls_*` key may be given).
pub(super) fn file_pool_tls(
    src: &Source<'_>,
    i: usize,
    pool: &FilePool,
) -> Result<Option<BackendTlsConfig>, ConfigError> {
    let key = |k: &str| format!("pools[{i}].{k}");
    let enabled = pool.tls.as_ref().is_some_and(|v| *v.get_ref());
    if !enabled {
        let stray = [
            ("tls_ca", pool.tls_ca.as_ref().map(|v| v.span())),
            ("tls_sni", pool.tls_sni.as_ref().map(|v| v.span())),
            (
                "tls_insecure_skip_verify",
                pool.tls_insecure_skip_verify.as_ref().map(|v| v.span()),
            ),
        ];
        if let Some((name, Some(span))) = stray.into_iter().find(|(_, s)| s.is_some()) {
            return Err(src.problem(span, &key(name), "only with `tls = true` in the same pool"));
        }
        return Ok(None);
    }
    let sni = pool
        .tls_sni
        .as_ref()
        .map(|v| {
            parse_sni(v.get_ref())
                .map_err(|e| src.invalid(v.span(), &key("tls_sni"), quoted(v.get_ref()), e))
        })
        .transpose()?;
    let (ca, given_by) = match &pool.tls_ca {
        Some(v) => (
            Some(PathBuf::from(v.get_ref())),
            format!("{}: {}", src.location(v.span().start), key("tls_ca")),
        ),
        None => (None, format!("{}: {}", src.name, key("tls"))),
    };
    Ok(Some(BackendTlsConfig {
        ca,
        sni,
        insecure_skip_verify: pool
            .tls_insecure_skip_verify
            .as_ref()
            .is_some_and(|v| *v.get_ref()),
        given_by,
    }))
}

/// Apply the `--backend-tls*` flags to the default pool's settings
/// `current`: any of them turns TLS on, and each given replaces the file's.
pub(super) fn flag_tls(
    cli: &Cli,
    current: Option<BackendTlsConfig>,
) -> Result<Option<BackendTlsConfig>, ConfigError> {
    let any = cli.backend_tls
        || cli.backend_tls_ca.is_some()
        || cli.backend_tls_sni.is_some()
        || cli.backend_tls_insecure_skip_verify;
    if !any {
        return Ok(current);
    }
    let mut tls = current.unwrap_or(BackendTlsConfig {
        ca: None,
        sni: None,
        insecure_skip_verify: false,
        given_by: "--backend-tls".into(),
    });
    if let Some(ca) = &cli.backend_tls_ca {
        tls.ca = Some(PathBuf::from(ca));
        tls.given_by = "--backend-tls-ca".into();
    }
    if let Some(sni) = &cli.backend_tls_sni {
        tls.sni = Some(parse_sni(sni).map_err(|e| flag_error("backend-tls-sni", sni, e))?);
    }
    tls.insecure_skip_verify |= cli.backend_tls_insecure_skip_verify;
    Ok(Some(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert_eq!(parse_sni("API.internal.").as_deref(), Ok("api.internal"));
        assert!(parse_sni("not a name").is_err());
        assert!(parse_sni("").is_err());
    }
}
