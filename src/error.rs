//! What can go wrong with one proxied request, and the answer each gets.
//!
//! Every failure is tagged by whose fault it is: the client (4xx), the
//! backend (502/504), or corelb's own state (503). The proxy turns an error
//! into a short plain-text response and closes the client connection, since
//! after an error the framing of what follows is in doubt.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::http::{reason_phrase, HeadError};
use crate::state::outcome::{Failure, Generated};

/// Why a request could not be proxied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The client sent something corelb will not forward.
    Downstream { status: u16, reason: &'static str },
    /// The backend answered something that is not valid HTTP, or that
    /// corelb cannot relay.
    Upstream(&'static str),
    /// The backend closed or reset the connection before the response was
    /// complete.
    UpstreamClosed(&'static str),
    /// The backend did not answer in time.
    UpstreamTimeout,
    /// The backend refused or reset the connection attempt.
    Connect,
    /// Connecting to the backend took longer than `--connect-timeout`.
    ConnectTimeout,
    /// No backend is eligible.
    NoBackend,
    /// The pool has no backends at all: its discovery (DNS, SRV, a
    /// backends file) found none.
    PoolEmpty,
    /// corelb could not make the upstream connection for want of its own
    /// resources (descriptors, local ports, memory): not the backend's
    /// fault, so never counted against it nor retried elsewhere.
    LocalResources(Shortage),
    /// The request came back to corelb: a backend that is corelb itself,
    /// or a loop through another proxy (RFC 9110 §7.6.3 `Via`).
    LoopDetected,
    /// The client went away or broke the connection; nobody to answer.
    ClientGone,
}

/// Which of corelb's own resources ran out when making an upstream
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// `EMFILE`, `ENFILE`: the process's or the system's descriptor limit.
    Descriptors,
    /// `EADDRNOTAVAIL`: no free local port for the backend's address.
    Ports,
    /// `ENOBUFS`, `ENOMEM`: the kernel has no memory for another socket.
    Memory,
}

impl Shortage {
    /// The shortage behind a failed connect, if it was one (and so corelb's
    /// fault, not the backend's).
    pub fn of(e: &std::io::Error) -> Option<Shortage> {
        match e.raw_os_error()? {
            libc::EMFILE | libc::ENFILE => Some(Shortage::Descriptors),
            libc::EADDRNOTAVAIL => Some(Shortage::Ports),
            libc::ENOBUFS | libc::ENOMEM => Some(Shortage::Memory),
            _ => None,
        }
    }

    /// What the client is told.
    pub fn as_str(self) -> &'static str {
        match self {
            Shortage::Descriptors => "corelb ran out of file descriptors",
            Shortage::Ports => "corelb ran out of local ports",
            Shortage::Memory => "corelb ran out of socket memory",
        }
    }

    /// What the operator is told to look at.
    pub fn hint(self) -> &'static str {
        match self {
            Shortage::Descriptors => {
                "raise the nofile limit (systemd LimitNOFILE=, ulimit -n) or lower --max-connections"
            }
            Shortage::Ports => {
                "widen net.ipv4.ip_local_port_range, or keep more upstream connections alive"
            }
            Shortage::Memory => "the kernel is short of memory for sockets (net.ipv4.tcp_mem)",
        }
    }
}

impl From<HeadError> for ProxyError {
    fn from(e: HeadError) -> Self {
        if e.status == 502 {
            ProxyError::Upstream(e.reason)
        } else {
            ProxyError::Downstream {
                status: e.status,
                reason: e.reason,
            }
        }
    }
}

impl ProxyError {
    /// The backend's failure in this error, as metrics count it; `None`
    /// when the backend is not to blame.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            ProxyError::Connect => Some(Failure::ConnectRefused),
            ProxyError::ConnectTimeout => Some(Failure::ConnectTimeout),
            ProxyError::UpstreamTimeout => Some(Failure::Timeout),
            ProxyError::UpstreamClosed(_) => Some(Failure::Reset),
            ProxyError::Upstream(_) => Some(Failure::Protocol),
            ProxyError::Downstream { .. }
            | ProxyError::NoBackend
            | ProxyError::PoolEmpty
            | ProxyError::LocalResources(_)
            | ProxyError::LoopDetected
            | ProxyError::ClientGone => None,
        }
    }

    /// Why this error was answered by corelb; `None` if it gets no answer.
    pub fn generated(&self) -> Option<Generated> {
        Some(match self {
            ProxyError::Downstream { .. } => Generated::ClientError,
            ProxyError::Upstream(_) => Generated::UpstreamProtocol,
            ProxyError::UpstreamClosed(_) => Generated::UpstreamReset,
            ProxyError::UpstreamTimeout => Generated::UpstreamTimeout,
            ProxyError::Connect => Generated::ConnectFailed,
            ProxyError::ConnectTimeout => Generated::ConnectTimeout,
            ProxyError::NoBackend | ProxyError::PoolEmpty => Generated::NoBackend,
            ProxyError::LocalResources(_) => Generated::LocalResources,
            ProxyError::LoopDetected => Generated::LoopDetected,
            ProxyError::ClientGone => return None,
        })
    }
}

impl ProxyError {
    /// The status to answer with, if the client is still there.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Downstream { status, .. } => Some(*status),
            Self::Upstream(_) | Self::UpstreamClosed(_) | Self::Connect => Some(502),
            Self::UpstreamTimeout | Self::ConnectTimeout => Some(504),
            Self::NoBackend | Self::PoolEmpty | Self::LocalResources(_) => Some(503),
            Self::LoopDetected => Some(508),
            Self::ClientGone => None,
        }
    }

    /// Was this the backend's fault (counts against it)?
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            Self::Upstream(_)
                | Self::UpstreamClosed(_)
                | Self::UpstreamTimeout
                | Self::Connect
                | Self::ConnectTimeout
        )
    }

    /// The request never reached the backend: connecting failed.
    pub fn is_connect_failure(&self) -> bool {
        matches!(self, Self::Connect | Self::ConnectTimeout)
    }

    fn detail(&self) -> &'static str {
        match self {
            Self::Downstream { reason, .. }
            | Self::Upstream(reason)
            | Self::UpstreamClosed(reason) => reason,
            Self::LocalResources(shortage) => shortage.as_str(),
            Self::UpstreamTimeout => "the backend did not answer in time",
            Self::Connect => "cannot connect to the backend",
            Self::ConnectTimeout => "timed out connecting to the backend",
            Self::NoBackend => "no backend is available",
            Self::PoolEmpty => {
                "the pool has no backends: its DNS name or backends file lists none \
                 (NXDOMAIN or an empty answer for longer than --dns-hold, or an empty \
                 file); /status shows the last resolution"
            }
            Self::LoopDetected => "the request came back to corelb (a forwarding loop)",
            Self::ClientGone => "client gone",
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status() {
            Some(s) => write!(f, "{s} {}: {}", reason_phrase(s), self.detail()),
            None => f.write_str(self.detail()),
        }
    }
}

/// Write the complete response for `err` into `out`: the head, and the
/// body unless it answers a HEAD request (`head_only`: the head still gives
/// the length the body would have, as for a GET). The response always says
/// `Connection: close`.
pub fn write_error_response(out: &mut BytesMut, err: &ProxyError, head_only: bool) {
    let status = err.status().unwrap_or(500);
    let phrase = reason_phrase(status);
    let body_len = phrase.len() + 2 + err.detail().len() + 1;
    // No backend now: say when to try again (RFC 9110 §10.2.3), so
    // clients and other proxies back off instead of hammering.
    let retry_after = if status == 503 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let _ = std::fmt::Write::write_fmt(
        out,
        format_args!(
            "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {body_len}\r\nConnection: close\r\n{retry_after}\r\n"
        ),
    );
    if head_only {
        return;
    }
    out.put_slice(phrase.as_bytes());
    out.put_slice(b": ");
    out.put_slice(err.detail().as_bytes());
    out.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_reasons_follow_the_error() {
        assert_eq!(ProxyError::Connect.failure(), Some(Failure::ConnectRefused));
        assert_eq!(
            ProxyError::UpstreamClosed("x").failure(),
            Some(Failure::Reset)
        );
        assert_eq!(ProxyError::NoBackend.failure(), None);
        let local = ProxyError::LocalResources(Shortage::Descriptors);
        assert_eq!(local.failure(), None);
        assert!(!local.is_upstream() && !local.is_connect_failure());
        assert_eq!(local.status(), Some(503));
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(Shortage::of(&emfile), Some(Shortage::Descriptors));
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(Shortage::of(&refused), None);
        assert_eq!(ProxyError::ClientGone.generated(), None);
        assert_eq!(
            ProxyError::NoBackend.generated(),
            Some(Generated::NoBackend)
        );
    }

    #[test]
    fn error_response_is_complete_http() {
        let mut out = BytesMut::new();
        write_error_response(&mut out, &ProxyError::NoBackend, false);
        let text = std::str::from_utf8(&out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(body, "Service Unavailable: no backend is available\n");
    }

    #[test]
    fn error_response_to_head_has_the_head_alone() {
        let mut full = BytesMut::new();
        write_error_response(&mut full, &ProxyError::NoBackend, false);
        let mut head_only = BytesMut::new();
        write_error_response(&mut head_only, &ProxyError::NoBackend, true);
        let full = std::str::from_utf8(&full).unwrap();
        let (head, _) = full.split_once("\r\n\r\n").unwrap();
        assert_eq!(
            std::str::from_utf8(&head_only).unwrap(),
            format!("{head}\r\n\r\n")
        );
    }

    #[test]
    fn head_errors_map_to_the_right_side() {
        let e: ProxyError = HeadError {
            status: 502,
            reason: "x",
        }
        .into();
        assert!(e.is_upstream());
        let e: ProxyError = HeadError {
            status: 431,
            reason: "x",
        }
        .into();
        assert_eq!(e.status(), Some(431));
    }
}
