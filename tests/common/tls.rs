//! TLS for the tests: a throwaway certificate authority made with the
//! `openssl` command, certificates it signs for given names, and a rustls
//! client that trusts it (plus helpers to run `curl` and `openssl
//! s_client` against a TLS listener).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::{require_tool, SAFETY};

/// The key type of a certificate.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    EcdsaP256,
    Rsa2048,
}

/// A certificate authority in a directory of its own.
pub struct TestCa {
    dir: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cannot run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A new CA in `dir` (which must exist).
    pub fn new(dir: &Path) -> TestCa {
        require_tool("openssl");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=corelb test CA",
            ],
            dir,
        );
        TestCa {
            dir: dir.to_path_buf(),
        }
    }

    /// The CA certificate (PEM), for clients to trust.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names` (the first also its CN), signed by this
    /// CA, valid for `days`: (chain, key). `file` names the files.
    pub fn issue(
        &self,
        file: &str,
        names: &[&str],
        kind: KeyKind,
        days: i32,
    ) -> (PathBuf, PathBuf) {
        let key = format!("{file}.key");
        let csr = format!("{file}.csr");
        let cert = format!("{file}.pem");
        let ext = format!("{file}.ext");
        match kind {
            KeyKind::EcdsaP256 => openssl(
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &key,
                ],
                &self.dir,
            ),
            KeyKind::Rsa2048 => openssl(
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    &key,
                ],
                &self.dir,
            ),
        }
        let subject = format!("/CN={}", names[0]);
        openssl(
            &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subject],
            &self.dir,
        );
        let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            self.dir.join(&ext),
            format!("subjectAltName={}\n", sans.join(",")),
        )
        .unwrap();
        let days = days.to_string();
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                &days,
                "-extfile",
                &ext,
            ],
            &self.dir,
        );
        (self.dir.join(cert), self.dir.join(key))
    }

    /// A rustls client configuration trusting this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.cert()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A TLS client connection (rustls over a blocking socket).
pub type TlsConn = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connect to `addr` over TLS asking for `sni`, handshake done.
pub fn connect(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsConn> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(SAFETY))?;
    tcp.set_write_timeout(Some(SAFETY))?;
    let name = ServerName::try_from(sni.to_string()).expect("a valid server name");
    let conn = rustls::ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Read one response with a `Content-Length` body: (status, head, body).
pub fn read_response(stream: &mut impl Read) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((status, head, body))
}

/// One GET on a new TLS connection: (status, head, body).
pub fn get(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut conn = connect(addr, sni, config)?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {sni}\r\n\r\n")?;
    conn.flush()?;
    read_response(&mut conn)
}

/// The subject of the certificate `openssl s_client` gets from `addr`
/// asking for `sni` (`None`: no SNI sent), or its error output.
pub fn s_client_subject(
    addr: SocketAddr,
    sni: Option<&str>,
    extra: &[&str],
) -> Result<String, String> {
    require_tool("openssl");
    let connect = addr.to_string();
    let mut args = vec!["s_client", "-connect", &connect];
    match sni {
        Some(name) => args.extend(["-servername", name]),
        None => args.push("-noservername"),
    }
    args.extend_from_slice(extra);
    let out = Command::new("timeout")
        .arg(SAFETY.as_secs().to_string())
        .arg("openssl")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cannot run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.lines().find(|l| l.starts_with("subject=")) {
        Some(line) if out.status.success() => Ok(line.to_string()),
        _ => Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr))),
    }
}

/// One `GET /` with `Connection: close` through `openssl s_client` to
/// `addr` (SNI `localhost`, trusting `ca`), plus `extra` (`-sess_in`,
/// `-sess_out`, ...): its output. The response is read to the end, so the
/// session tickets sent after the handshake have arrived when s_client
/// saves the session.
pub fn s_client_get(addr: SocketAddr, ca: &Path, extra: &[&str]) -> String {
    require_tool("openssl");
    let mut child = Command::new("timeout")
        .arg(SAFETY.as_secs().to_string())
        .args(["openssl", "s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-ign_eof", "-CAfile"])
        .arg(ca)
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cannot run openssl s_client");
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(request);
    }
    let out = child.wait_with_output().expect("s_client runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
