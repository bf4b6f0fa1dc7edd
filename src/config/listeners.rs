//! Listeners: where clients connect and what they speak there.
//!
//! From the flags, `--listen ADDR[,tls][,redirect-https][,proxy-protocol]`
//! (repeatable) with `--tls-cert CHAIN.pem --tls-key KEY.pem` pairs for
//! every `tls` listener and `--proxy-protocol-from CIDR` (repeatable) for
//! every `proxy-protocol` one given by flags; from the file, `[[listeners]]` tables (or the older
//! single `listen = "ADDR"`). Flags replace the file's listeners. Without
//! either, one plaintext listener on 127.0.0.1:8080.
//!
//! Addresses and protocols take a restart; a TLS listener's certificate
//! files are read again on reload (`crate::transport::tls`). Reading the
//! certificates is not done here (this module does no I/O): the paths are
//! kept with where they were given, so a bad file is reported with the
//! flag or the `file:line` that named it.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::cli::Cli;
use super::file::{FileListener, Source};
use super::values::resolve;
use super::{flag_error, ConfigError};
use crate::proxy_protocol::{Cidr, Trusted};

/// Where the default listener is, without `--listen` or a file's.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub addr: SocketAddr,
    /// `Some`: clients speak TLS here.
    pub tls: Option<ListenerTls>,
    /// Answer every request with a redirect to `https://` (a plaintext
    /// listener): 301 for GET and HEAD, 308 otherwise.
    pub redirect_https: bool,
    /// HTTP/2 here: offered by ALPN on a TLS listener (on unless
    /// `protocols = ["http/1.1"]`), h2c with prior knowledge on a
    /// plaintext one (off unless `h2c` is listed).
    pub h2: bool,
    /// `Some`: peers in these ranges must start with a PROXY protocol
    /// header (v1 or v2), whose address is then the client's; other
    /// peers must not send one.
    pub proxy_protocol: Option<Trusted>,
}

/// A TLS listener's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// In order; the first is served to clients that send no SNI (or a
    /// name no certificate covers).
    pub certificates: Vec<CertificateFiles>,
    /// Refuse the handshake of a client that sends no SNI, or a name no
    /// certificate covers, instead of serving the first certificate.
    pub require_sni: bool,
}

/// A certificate chain and its key, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where they were given (`--tls-cert` or `FILE:LINE:COL: listeners[0]`),
    /// for messages about the files.
    pub given_by: String,
}

impl ListenerConfig {
    /// `https` or `http`, for logs and `/status`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// The most listeners one process serves: each is a socket per worker, and
/// metrics and the access log number them in a byte.
pub const MAX_LISTENERS: usize = 64;

/// No more than [`MAX_LISTENERS`].
pub(super) fn check_count(listeners: &[ListenerConfig]) -> Result<(), ConfigError> {
    if listeners.len() > MAX_LISTENERS {
        return Err(ConfigError(format!(
            "{} listeners given; at most {MAX_LISTENERS} are served",
            listeners.len()
        )));
    }
    Ok(())
}

/// The listeners from the flags, else from the file, else the default.
pub(super) fn listeners(
    cli: &Cli,
    src: Option<&Source<'_>>,
    file_listen: Option<&toml::Spanned<String>>,
    file_listeners: &[FileListener],
) -> Result<Vec<ListenerConfig>, ConfigError> {
    if !cli.listen.is_empty() {
        return from_flags(cli);
    }
    if cli.tls_cert.len() + cli.tls_key.len() > 0 {
        return Err(ConfigError(
            "--tls-cert and --tls-key go with --listen ADDR,tls".into(),
        ));
    }
    if let Some(src) = src {
        if !file_listeners.is_empty() {
            if let Some(listen) = file_listen {
                return Err(src.problem(
                    listen.span(),
                    "listen",
                    "give either `listen` or [[listeners]], not both",
                ));
            }
            return file_listeners
                .iter()
                .enumerate()
                .map(|(i, l)| from_file(src, i, l))
                .collect();
        }
        if let Some(listen) = file_listen {
            let addr = resolve(listen.get_ref()).map_err(|e| {
                src.invalid(
                    listen.span(),
                    "listen",
                    format!("{:?}", listen.get_ref()),
                    e,
                )
            })?;
            return Ok(vec![plain(addr)]);
        }
    }
    let addr = resolve(DEFAULT_LISTEN).map_err(ConfigError)?;
    Ok(vec![plain(addr)])
}

fn plain(addr: SocketAddr) -> ListenerConfig {
    ListenerConfig {
        addr,
        tls: None,
        redirect_https: false,
        h2: false,
        proxy_protocol: None,
    }
}

/// `--listen` flags, with the `--tls-cert`/`--tls-key` pairs for their
/// `tls` listeners.
fn from_flags(cli: &Cli) -> Result<Vec<ListenerConfig>, ConfigError> {
    if cli.tls_cert.len() != cli.tls_key.len() {
        return Err(ConfigError(format!(
            "--tls-cert given {} time(s) and --tls-key {}: give them in pairs, the n-th key with the n-th certificate",
            cli.tls_cert.len(),
            cli.tls_key.len()
        )));
    }
    let certificates: Vec<CertificateFiles> = cli
        .tls_cert
        .iter()
        .zip(&cli.tls_key)
        .map(|(cert, key)| CertificateFiles {
            cert: cert.into(),
            key: key.into(),
            given_by: "--tls-cert/--tls-key".into(),
        })
        .collect();
    let trusted = cli
        .proxy_protocol_from
        .iter()
        .map(|c| {
            c.parse::<Cidr>()
                .map_err(|e| flag_error("proxy-protocol-from", c, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut listeners = Vec::new();
    for spec in &cli.listen {
        let mut parts = spec.split(',');
        let addr_text = parts.next().unwrap_or_default();
        let addr = resolve(addr_text).map_err(|e| flag_error("listen", spec, e))?;
        let mut listener = plain(addr);
        let (mut h2c, mut no_h2) = (false, false);
        for option in parts {
            match option.trim() {
                "tls" => {
                    listener.tls = Some(ListenerTls {
                        certificates: certificates.clone(),
                        require_sni: false,
                    });
                    listener.h2 = true;
                }
                "redirect-https" => listener.redirect_https = true,
                "h2c" => h2c = true,
                "no-h2" => no_h2 = true,
                "proxy-protocol" => listener.proxy_protocol = Some(Trusted(trusted.clone())),
                other => {
                    return Err(flag_error(
                        "listen",
                        spec,
                        format!(
                            "unknown option `{other}` (known: tls, redirect-https, h2c, no-h2, proxy-protocol)"
                        ),
                    ))
                }
            }
        }
        listener.h2 = match (listener.tls.is_some(), h2c, no_h2) {
            (true, true, _) => {
                return Err(flag_error(
                    "listen",
                    spec,
                    "h2c is HTTP/2 without TLS; a tls listener offers h2 by ALPN already",
                ))
            }
            (false, _, true) => {
                return Err(flag_error(
                    "listen",
                    spec,
                    "no-h2 is for a tls listener; a plaintext one speaks HTTP/2 only with h2c",
                ))
            }
            (true, false, no_h2) => !no_h2,
            (false, h2c, false) => h2c,
        };
        check(&listener).map_err(|e| flag_error("listen", spec, e))?;
        listeners.push(listener);
    }
    if !certificates.is_empty() && listeners.iter().all(|l| l.tls.is_none()) {
        return Err(ConfigError(
            "--tls-cert and --tls-key given, but no --listen ADDR,tls to use them".into(),
        ));
    }
    if !trusted.is_empty() && listeners.iter().all(|l| l.proxy_protocol.is_none()) {
        return Err(ConfigError(
            "--proxy-protocol-from given, but no --listen ADDR,proxy-protocol to use it".into(),
        ));
    }
    check_distinct(&listeners).map_err(|e| ConfigError(format!("--listen: {e}")))?;
    Ok(listeners)
}

/// `[[listeners]]` number `i`.
fn from_file(src: &Source<'_>, i: usize, l: &FileListener) -> Result<ListenerConfig, ConfigError> {
    let key = |k: &str| format!("listeners[{i}].{k}");
    let addr = resolve(l.address.get_ref()).map_err(|e| {
        src.invalid(
            l.address.span(),
            &key("address"),
            format!("{:?}", l.address.get_ref()),
            e,
        )
    })?;
    let tls = l.tls.as_ref().is_some_and(|t| *t.get_ref());
    let certificates: Vec<CertificateFiles> = l
        .certificates
        .iter()
        .enumerate()
        .map(|(j, c)| CertificateFiles {
            cert: c.cert.get_ref().into(),
            key: c.key.get_ref().into(),
            given_by: format!(
                "{}: {}",
                src.location(c.cert.span().start),
                key(&format!("certificates[{j}]"))
            ),
        })
        .collect();
    if !tls && !certificates.is_empty() {
        return Err(src.problem(
            l.address.span(),
            &format!("listeners[{i}]"),
            "certificates given but `tls = true` is not",
        ));
    }
    let h2 = match &l.protocols {
        None => tls,
        Some(list) => protocols(tls, list.get_ref()).map_err(|e| {
            src.invalid(
                list.span(),
                &key("protocols"),
                format!("{:?}", list.get_ref()),
                e,
            )
        })?,
    };
    let trusted = l
        .proxy_protocol_from
        .iter()
        .enumerate()
        .map(|(j, c)| {
            c.get_ref().parse::<Cidr>().map_err(|e| {
                let key = key(&format!("proxy_protocol_from[{j}]"));
                src.invalid(c.span(), &key, format!("{:?}", c.get_ref()), e)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let proxy_protocol = l.proxy_protocol.as_ref().is_some_and(|p| *p.get_ref());
    if !proxy_protocol && !trusted.is_empty() {
        return Err(src.problem(
            l.address.span(),
            &format!("listeners[{i}]"),
            "proxy_protocol_from given but `proxy_protocol = true` is not",
        ));
    }
    let listener = ListenerConfig {
        addr,
        h2,
        tls: tls.then(|| ListenerTls {
            certificates,
            require_sni: l.require_sni.as_ref().is_some_and(|r| *r.get_ref()),
        }),
        redirect_https: l.redirect_https.as_ref().is_some_and(|r| *r.get_ref()),
        proxy_protocol: proxy_protocol.then_some(Trusted(trusted)),
    };
    check(&listener).map_err(|e| src.problem(l.address.span(), &format!("listeners[{i}]"), e))?;
    Ok(listener)
}

/// Whether a listener's `protocols` list turns HTTP/2 on: `http/1.1`
/// must be there (every listener serves it), then `h2` on a TLS
/// listener, `h2c` on a plaintext one.
fn protocols(tls: bool, list: &[String]) -> Result<bool, String> {
    let mut h2 = false;
    let mut http1 = false;
    for p in list {
        match (p.as_str(), tls) {
            ("http/1.1", _) => http1 = true,
            ("h2", true) | ("h2c", false) => h2 = true,
            ("h2", false) => return Err("`h2` needs `tls = true`; use `h2c` here".into()),
            ("h2c", true) => return Err("`h2c` is for a plaintext listener; use `h2`".into()),
            (other, _) => {
                return Err(format!(
                    "unknown protocol {other:?} (known: http/1.1, h2, h2c)"
                ))
            }
        }
    }
    if !http1 {
        return Err("\"http/1.1\" must be listed: every listener serves it".into());
    }
    Ok(h2)
}

/// What one listener must be on its own.
fn check(l: &ListenerConfig) -> Result<(), String> {
    match &l.tls {
        Some(tls) if tls.certificates.is_empty() => Err(
            "a TLS listener needs a certificate (--tls-cert and --tls-key, or `certificates = [{ cert = \"…\", key = \"…\" }]`)".into(),
        ),
        Some(_) if l.redirect_https => {
            Err("redirect_https is for a plaintext listener; this one speaks TLS".into())
        }
        _ if l.proxy_protocol.as_ref().is_some_and(|t| t.0.is_empty()) => Err(
            "a PROXY protocol listener needs the addresses of the L4 hops allowed to send headers (--proxy-protocol-from CIDR, or `proxy_protocol_from = [\"10.0.0.0/8\"]`)".into(),
        ),
        _ => Ok(()),
    }
}

/// No address twice (port 0 excepted: each gets its own port).
fn check_distinct(listeners: &[ListenerConfig]) -> Result<(), String> {
    for (i, l) in listeners.iter().enumerate() {
        if l.addr.port() != 0 && listeners[..i].iter().any(|e| e.addr == l.addr) {
            return Err(format!("{} is given twice", l.addr));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn flags(args: &[&str]) -> Result<Vec<ListenerConfig>, ConfigError> {
        let mut argv = vec!["corelb"];
        argv.extend_from_slice(args);
        listeners(&Cli::parse_from(argv), None, None, &[])
    }

    #[test]
    fn the_default_is_one_plaintext_listener() {
        let l = flags(&[]).unwrap();
        assert_eq!(l, [plain("127.0.0.1:8080".parse().unwrap())]);
    }

    #[test]
    fn tls_listeners_take_the_certificate_pairs() {
        let l = flags(&[
            "--listen",
            "127.0.0.1:80,redirect-https",
            "--listen",
            "127.0.0.1:443,tls",
            "--tls-cert",
            "a.pem",
            "--tls-key",
            "a.key",
            "--tls-cert",
            "b.pem",
            "--tls-key",
            "b.key",
        ])
        .unwrap();
        assert!(l[0].tls.is_none() && l[0].redirect_https);
        let tls = l[1].tls.as_ref().unwrap();
        assert_eq!(tls.certificates.len(), 2);
        assert_eq!(tls.certificates[1].key, PathBuf::from("b.key"));
        assert!(
            l[1].h2 && !l[0].h2,
            "h2 by ALPN on tls listeners by default"
        );
    }

    #[test]
    fn http2_is_chosen_per_listener() {
        let l = flags(&["--listen", "127.0.0.1:1,h2c", "--listen", "127.0.0.1:2"]).unwrap();
        assert!(l[0].h2 && !l[1].h2);
        let l = flags(&[
            "--listen",
            "127.0.0.1:3,tls,no-h2",
            "--tls-cert",
            "a.pem",
            "--tls-key",
            "a.key",
        ])
        .unwrap();
        assert!(!l[0].h2);
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(protocols(true, &list(&["http/1.1"])), Ok(false));
        assert_eq!(protocols(true, &list(&["h2", "http/1.1"])), Ok(true));
        assert_eq!(protocols(false, &list(&["http/1.1", "h2c"])), Ok(true));
        assert!(protocols(false, &list(&["http/1.1", "h2"])).is_err());
        assert!(protocols(true, &list(&["h2"]))
            .unwrap_err()
            .contains("must be listed"));
        assert!(protocols(true, &list(&["spdy/3", "http/1.1"])).is_err());
    }

    #[test]
    fn mistakes_name_the_flag() {
        let e = flags(&["--listen", "127.0.0.1:443,tls"]).unwrap_err().0;
        assert!(
            e.contains("--listen") && e.contains("needs a certificate"),
            "{e}"
        );
        let e = flags(&["--listen", "127.0.0.1:443,tls", "--tls-cert", "a.pem"])
            .unwrap_err()
            .0;
        assert!(e.contains("in pairs"), "{e}");
        let e = flags(&["--listen", "127.0.0.1:443,quic"]).unwrap_err().0;
        assert!(e.contains("unknown option `quic`"), "{e}");
        let e = flags(&["--listen", "127.0.0.1:1", "--listen", "127.0.0.1:1"])
            .unwrap_err()
            .0;
        assert!(e.contains("given twice"), "{e}");
        let e = flags(&["--listen", "127.0.0.1:1,no-h2"]).unwrap_err().0;
        assert!(e.contains("no-h2 is for a tls listener"), "{e}");
        let e = flags(&["--tls-cert", "a", "--tls-key", "b"]).unwrap_err().0;
        assert!(e.contains("--listen ADDR,tls"), "{e}");
        let e = flags(&["--listen", "127.0.0.1:1,proxy-protocol"])
            .unwrap_err()
            .0;
        assert!(e.contains("--proxy-protocol-from"), "{e}");
        let e = flags(&[
            "--listen",
            "127.0.0.1:1",
            "--proxy-protocol-from",
            "10.0.0.0/8",
        ])
        .unwrap_err()
        .0;
        assert!(e.contains("ADDR,proxy-protocol"), "{e}");
        let e = flags(&[
            "--listen",
            "127.0.0.1:1,proxy-protocol",
            "--proxy-protocol-from",
            "10.0.0.1/8",
        ])
        .unwrap_err()
        .0;
        assert!(
            e.contains("--proxy-protocol-from") && e.contains("/8"),
            "{e}"
        );
    }

    #[test]
    fn proxy_protocol_listeners_take_the_trusted_ranges() {
        let l = flags(&[
            "--listen",
            "127.0.0.1:1,proxy-protocol",
            "--listen",
            "127.0.0.1:2",
            "--proxy-protocol-from",
            "10.0.0.0/8",
            "--proxy-protocol-from",
            "127.0.0.1",
        ])
        .unwrap();
        let trusted = l[0].proxy_protocol.as_ref().unwrap();
        assert!(trusted.contains("10.1.2.3".parse().unwrap()));
        assert!(trusted.contains("127.0.0.1".parse().unwrap()));
        assert!(l[1].proxy_protocol.is_none());
    }
}
