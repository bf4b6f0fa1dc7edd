//! One active health probe: connect, `GET` the health path, read the
//! status line. Its own connection every time: a probe never borrows a
//! data connection (whose state it could disturb) and never leaves one
//! behind (`Connection: close`).

use std::net::SocketAddr;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::health::HealthPolicy;

/// The longest status line read.
const MAX_STATUS_LINE: usize = 512;

/// Why a probe got no status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// Connecting failed (refused, unreachable).
    Connect,
    /// No status line within the timeout.
    Timeout,
    /// The connection closed or broke before a status line.
    Closed,
    /// What came back was not an HTTP/1.x status line.
    NotHttp,
}

impl ProbeError {
    /// For log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connection refused",
            Self::Timeout => "no answer in time",
            Self::Closed => "connection closed before a status line",
            Self::NotHttp => "not an HTTP status line",
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
    let mut stream = TcpStream::connect_addr(addr)
        .await
        .map_err(|_| ProbeError::Connect)?;
    let _ = stream.set_nodelay(true);
    let host = policy.host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: corelb-health-check\r\n\
         Connection: close\r\n\r\n",
        policy.path
    );
    let (result, _) = stream.write_all(request.into_bytes()).await;
    result.map_err(|_| ProbeError::Closed)?;
    let mut line = Vec::with_capacity(MAX_STATUS_LINE);
    while !line.contains(&b'\n') && line.len() < MAX_STATUS_LINE {
        let buf = Vec::with_capacity(MAX_STATUS_LINE - line.len());
        let (result, buf) = stream.read(buf).await;
        match result {
            Ok(0) | Err(_) => break,
            Ok(_) => line.extend_from_slice(&buf),
        }
    }
    if line.is_empty() {
        return Err(ProbeError::Closed);
    }
    status_of(&line).ok_or(ProbeError::NotHttp)
}

/// The code of a status line `HTTP/1.x NNN ...`.
pub fn status_of(line: &[u8]) -> Option<u16> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit)
        || rest.get(3).is_some_and(|b| *b != b' ' && *b != b'\r')
    {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 503 Busy\r\n"), Some(503));
        assert_eq!(status_of(b"HTTP/1.1 204\r\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b""), None);
    }
}
