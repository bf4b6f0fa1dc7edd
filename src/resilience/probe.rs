//! Active health probes: one probe (connect, TLS for a pool with
//! `tls = true`, `GET` the health path, read
//! the answer's head with the data plane's parser), and the loop that probes one backend and records
//! what it finds. Its own connection every time: a probe never borrows a
//! data connection (whose state it could disturb) and never leaves one
//! behind (`Connection: close`).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use bytes::BytesMut;
use monoio::net::TcpStream;

use super::breaker::Phase;
use super::health::{self, Health, HealthPolicy};
use super::tracked::State;
use crate::deadline::Deadlines;
use crate::http::{parse_response, MAX_HEADERS};
use crate::io::make_room;
use crate::state::ewma;
use crate::state::outcome::UpstreamTlsFailure;
use crate::transport::backend::BackendStream;
use crate::transport::{ReadWait, Transport};

/// The longest answer head read: the code is all a probe wants, but only a
/// whole head shows the answer is HTTP the data plane could relay.
const MAX_HEAD: usize = 16 * 1024;

/// Why a probe got no status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// Connecting failed (refused, unreachable).
    Connect,
    /// No status line within the timeout.
    Timeout,
    /// The connection closed or broke before a status line.
    Closed,
    /// What came back was not an HTTP/1.x response head (as the data
    /// plane's parser reads one).
    NotHttp,
    /// The TLS handshake failed (a pool with `tls = true`).
    Tls(UpstreamTlsFailure),
}

impl ProbeError {
    /// For log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connection refused",
            Self::Timeout => "no answer in time",
            Self::Closed => "connection closed before a status line",
            Self::NotHttp => "not an HTTP status line",
            Self::Tls(UpstreamTlsFailure::Certificate) => "TLS: certificate did not verify",
            Self::Tls(_) => "TLS handshake failed",
        }
    }
}

/// Probe `addr`: the status code the backend answered.
pub async fn probe(addr: SocketAddr, policy: &HealthPolicy) -> Result<u16, ProbeError> {
    monoio::time::timeout(policy.timeout, exchange(addr, policy))
        .await
        .unwrap_or(Err(ProbeError::Timeout))
}

async fn exchange(addr: SocketAddr, policy: &HealthPolicy) -> Result<u16, ProbeError> {
    let tcp = TcpStream::connect_addr(addr)
        .await
        .map_err(|_| ProbeError::Connect)?;
    let _ = tcp.set_nodelay(true);
    // Never swept: the probe's own timeout (in `probe`) bounds every wait.
    let deadlines = Deadlines::new();
    // Before any TLS, as the data plane's connections: the header says
    // this is corelb's own connection (v2 `LOCAL`, v1 `UNKNOWN`).
    if let Some(version) = policy.proxy_header {
        let header = crate::proxy_protocol::local(version);
        crate::io::write_shared_timeout(&deadlines, &tcp, header, policy.timeout)
            .await
            .map_err(|_| ProbeError::Closed)?;
    }
    let mut stream = match &policy.tls {
        None => BackendStream::Plain(tcp),
        Some(tls) => BackendStream::handshake(
            tcp,
            &tls.connector,
            &tls.name,
            addr,
            &deadlines,
            policy.timeout,
        )
        .await
        .map_err(ProbeError::Tls)?,
    };
    let host = policy.host.clone().unwrap_or_else(|| addr.to_string());
    let mut buf = BytesMut::from(
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: corelb-health-check\r\n\
             Connection: close\r\n\r\n",
            policy.path
        )
        .as_bytes(),
    );
    stream
        .write_all_timeout(&deadlines, &mut buf, policy.timeout)
        .await
        .map_err(|_| ProbeError::Closed)?;
    buf.clear();
    // Stopping short (closed, or the head too long) leaves `buf` with what
    // came: judged below like a head that ended there.
    while answer_code(&buf).is_none() && buf.len() < MAX_HEAD {
        make_room(&mut buf, MAX_HEAD);
        let room = MAX_HEAD - buf.len();
        let wait = ReadWait::Busy(policy.timeout);
        match stream.read_timeout(&deadlines, &mut buf, room, wait).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    match answer_code(&buf) {
        Some(code) => code,
        None if buf.is_empty() => Err(ProbeError::Closed),
        None => Err(ProbeError::NotHttp),
    }
}

/// The code of the answer whose head starts `buf`, parsed as the data
/// plane parses a backend's head; `None` while the head is unfinished.
pub fn answer_code(buf: &[u8]) -> Option<Result<u16, ProbeError>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_response(buf, &mut headers, false) {
        Ok(Some(head)) => Some(Ok(head.code)),
        Ok(None) => None,
        Err(_) => Some(Err(ProbeError::NotHttp)),
    }
}

/// Probe one backend for as long as some pool wants it probed.
pub(super) async fn probe_loop(state: Rc<RefCell<State>>, addr: SocketAddr) {
    // Spread the first probes of many backends over a short moment.
    let mut seed = u64::from(addr.port()) ^ (ewma::now_ns() << 16);
    monoio::time::sleep(health::jittered(Duration::from_millis(100), seed)).await;
    loop {
        let policy = {
            let mut s = state.borrow_mut();
            let Some(tracked) = s.backends.get_mut(&addr) else {
                return;
            };
            match &tracked.probe_policy {
                Some(p) => p.clone(),
                None => {
                    tracked.probing = false;
                    tracked.health = None;
                    return;
                }
            }
        };
        let result = probe(addr, &policy).await;
        let healthy = health::is_healthy(&policy, result.ok());
        let next = {
            let mut s = state.borrow_mut();
            let Some(tracked) = s.backends.get_mut(&addr) else {
                return;
            };
            let counters = &tracked.stats.resilience;
            let counter = if healthy {
                &counters.probes_ok
            } else {
                &counters.probes_failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let health = tracked.health.get_or_insert_with(Health::new);
            match health.record(&policy, healthy) {
                Some(true) => {
                    info!(
                        "backend {addr}: health check passed {} times in a row: up",
                        policy.rise
                    );
                    // Healthy again by direct evidence: an open breaker
                    // need not wait out its time.
                    tracked.breaker.close(Instant::now());
                }
                // Ejected passively (the breaker opened on the data
                // plane's failures) while the checks never took it down,
                // or before they did: `rise` good probes since the
                // ejection bring it back just the same (as Envoy un-ejects
                // a host on a passing active check), instead of it waiting
                // out the ejection time.
                None if health.is_up()
                    && health.passes() >= policy.rise.max(1)
                    && tracked.breaker.phase() != Phase::Closed =>
                {
                    info!(
                        "backend {addr}: health check passed {} times in a row since its ejection: \
                         back in rotation",
                        policy.rise
                    );
                    tracked.breaker.close(Instant::now());
                }
                Some(false) => {
                    counters.health_downs.fetch_add(1, Ordering::Relaxed);
                    let what = match result {
                        Ok(code) => format!("answered {code}"),
                        Err(e) => e.as_str().to_string(),
                    };
                    warn!(
                        "backend {addr}: health check failed {} times in a row ({what}): down",
                        policy.fall
                    );
                }
                None => {}
            }
            health.next_interval(&policy)
        };
        seed = seed.wrapping_add(1);
        monoio::time::sleep(health::jittered(next, seed)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let code = |head: &[u8]| answer_code(head);
        assert_eq!(code(b"HTTP/1.1 200 OK\r\n\r\n"), Some(Ok(200)));
        assert_eq!(code(b"HTTP/1.0 503 Busy\r\n\r\n"), Some(Ok(503)));
        assert_eq!(code(b"HTTP/1.1 204\r\n\r\n"), Some(Ok(204)));
        assert_eq!(
            code(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Some(Ok(200))
        );
        assert_eq!(
            code(b"HTTP/1.1 20 OK\r\n\r\n"),
            Some(Err(ProbeError::NotHttp))
        );
        assert_eq!(code(b"SSH-2.0-OpenSSH\r\n"), Some(Err(ProbeError::NotHttp)));
        // Unfinished: read on.
        assert_eq!(code(b""), None);
        assert_eq!(code(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
