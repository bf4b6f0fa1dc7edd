//! perf/compare.sh's handshake rows: a new TLS connection per request, as
//! fast as THREADS blocking clients can go, for SECONDS.
//!
//!     tls_handshakes HOST:PORT THREADS SECONDS [resume]
//!
//! Each connection: TCP connect, TLS handshake (rustls, X25519, no
//! certificate check: the client's CPU should go to the handshake, not to
//! verifying a test certificate), one `GET /` with `Connection: close`,
//! the response read to the end. Without `resume` every handshake is full
//! (the client keeps no session); with it, each thread resumes the
//! session (TLS 1.3 ticket) it was last given. Prints one line:
//!
//!     connections resumed errors seconds
//!
//! `openssl s_time` was tried first: one single-threaded client is slower
//! than any of the proxies, and `-reuse` did not resume.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Accepts any certificate: see the module docs.
#[derive(Debug)]
struct NoCheck;

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
        ]
    }
}

/// One connection, one request: `Ok(resumed)`.
fn one(addr: SocketAddr, config: &Arc<ClientConfig>) -> std::io::Result<bool> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut conn =
        ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(REQUEST)?;
    let mut body = Vec::new();
    match tls.read_to_end(&mut body) {
        Ok(_) => {}
        // A server that closes without close_notify after a close-delimited
        // answer: the response is what matters here.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !body.is_empty() => {}
        Err(e) => return Err(e),
    }
    if !body.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not a 200"));
    }
    Ok(conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(threads), Some(seconds)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
        args.get(2).and_then(|a| a.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: tls_handshakes HOST:PORT THREADS SECONDS [resume]");
        std::process::exit(2);
    };
    let resume = args.get(3).is_some_and(|a| a == "resume");
    let stop = Arc::new(AtomicBool::new(false));
    let (done, resumed, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, done, resumed, errors) = (
                Arc::clone(&stop),
                Arc::clone(&done),
                Arc::clone(&resumed),
                Arc::clone(&errors),
            );
            std::thread::spawn(move || {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let Ok(builder) = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                else {
                    return;
                };
                let mut config = builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoCheck))
                    .with_no_client_auth();
                // Per thread: a resumed session is this client's own.
                config.resumption = if resume {
                    Resumption::in_memory_sessions(8)
                } else {
                    Resumption::disabled()
                };
                let config = Arc::new(config);
                while !stop.load(Ordering::Relaxed) {
                    match one(addr, &config) {
                        Ok(r) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            resumed.fetch_add(u64::from(r), Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    println!(
        "{} {} {} {:.3}",
        done.load(Ordering::Relaxed),
        resumed.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
