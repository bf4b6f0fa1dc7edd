//! A connection to a backend: plain TCP, or TLS for a pool with
//! `tls = true` ([`super::tls::connector`]). The proxy's upstream side
//! (send, read, relay, tunnel, the idle pool) holds a [`BackendStream`]
//! and talks to it through [`Transport`], as to a client.
//!
//! An enum rather than a type parameter: one request may try a TLS pool's
//! backend and one connection pool holds both kinds. The plain arm comes
//! first and stays unboxed, so a plaintext backend costs one predictable
//! branch per call; the TLS arm is boxed (rustls's state is large).

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use monoio::net::TcpStream;

use super::tls::connector::TlsConnector;
use super::tls::stream::{HandshakeError, TlsStream};
use super::{ReadWait, Transport};
use crate::deadline::Deadlines;
use crate::io::ReadError;
use crate::state::outcome::{HandshakeFailure, UpstreamTlsFailure};

/// A connection to a backend. See the module docs.
pub enum BackendStream {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS, after its handshake, with the pool connector that made it
    /// (reused only for that same connector's pool: its CA and name).
    Tls(Box<TlsStream>, Arc<TlsConnector>),
}

impl BackendStream {
    /// Run the TLS handshake on `tcp`, just connected to the backend
    /// written `name` at `addr`, within `timeout`.
    pub async fn handshake(
        tcp: TcpStream,
        connector: &Arc<TlsConnector>,
        name: &str,
        addr: SocketAddr,
        deadlines: &Deadlines,
        timeout: Duration,
    ) -> Result<BackendStream, UpstreamTlsFailure> {
        let conn = connector
            .connection(name, addr)
            .map_err(|_| UpstreamTlsFailure::Handshake)?;
        match TlsStream::connect(tcp, conn, deadlines, timeout).await {
            Ok(stream) => Ok(BackendStream::Tls(Box::new(stream), Arc::clone(connector))),
            Err(e) => Err(failure_reason(&e)),
        }
    }

    /// Was this connection made for a pool with `tls` (`None`: a
    /// plaintext pool)? Only then may that pool reuse it.
    pub fn made_for(&self, tls: Option<&Arc<TlsConnector>>) -> bool {
        match (self, tls) {
            (BackendStream::Plain(_), None) => true,
            (BackendStream::Tls(_, made_by), Some(tls)) => Arc::ptr_eq(made_by, tls),
            _ => false,
        }
    }

    /// Wait until the backend sent something (data, its close, an
    /// error): it may be answering before the request is all sent.
    pub async fn answered(&self) -> io::Result<()> {
        match self {
            BackendStream::Plain(tcp) => tcp.readable(false).await,
            BackendStream::Tls(tls, _) => {
                tls.sent_data().await;
                Ok(())
            }
        }
    }

    /// Nothing read and left unread: fit to go back to the idle pool
    /// (plaintext decrypted past the response would be the next
    /// request's answer).
    pub fn nothing_pending(&self) -> bool {
        match self {
            BackendStream::Plain(_) => true,
            BackendStream::Tls(tls, _) => !tls.has_plaintext(),
        }
    }
}

/// Why a backend's handshake failed, for the metrics.
fn failure_reason(e: &HandshakeError) -> UpstreamTlsFailure {
    match (e.failure, &e.tls) {
        (
            _,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented),
        ) => UpstreamTlsFailure::Certificate,
        (HandshakeFailure::Timeout, _) => UpstreamTlsFailure::Timeout,
        (HandshakeFailure::Protocol, _) => UpstreamTlsFailure::Handshake,
        (HandshakeFailure::Closed | HandshakeFailure::Io, _) => UpstreamTlsFailure::Closed,
    }
}

impl AsRawFd for BackendStream {
    #[inline]
    fn as_raw_fd(&self) -> RawFd {
        match self {
            BackendStream::Plain(tcp) => tcp.as_raw_fd(),
            BackendStream::Tls(tls, _) => tls.as_raw_fd(),
        }
    }
}

/// The same call on whichever stream it is.
macro_rules! dispatch {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            BackendStream::Plain($s) => $call,
            BackendStream::Tls($s, _) => $call,
        }
    };
}

impl Transport for BackendStream {
    #[inline]
    async fn read_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        limit: usize,
        wait: ReadWait,
    ) -> Result<usize, ReadError> {
        dispatch!(self, s => s.read_timeout(deadlines, buf, limit, wait).await)
    }

    #[inline]
    async fn readable_idle_timeout(
        &self,
        deadlines: &Deadlines,
        timeout: Duration,
    ) -> Result<(), ReadError> {
        dispatch!(self, s => s.readable_idle_timeout(deadlines, timeout).await)
    }

    #[inline]
    async fn write_range_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        range: Range<usize>,
        timeout: Duration,
    ) -> io::Result<()> {
        dispatch!(self, s => s.write_range_timeout(deadlines, buf, range, timeout).await)
    }

    #[inline]
    async fn write_static_timeout(
        &mut self,
        deadlines: &Deadlines,
        bytes: &'static [u8],
        timeout: Duration,
    ) -> io::Result<()> {
        dispatch!(self, s => s.write_static_timeout(deadlines, bytes, timeout).await)
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        dispatch!(self, s => s.shutdown_write().await)
    }

    fn reset_on_close(&self) {
        dispatch!(self, s => s.reset_on_close())
    }

    #[inline]
    async fn read_shared(&self, buf: &mut BytesMut, limit: usize) -> io::Result<usize> {
        dispatch!(self, s => s.read_shared(buf, limit).await)
    }

    #[inline]
    async fn write_shared_timeout(
        &self,
        deadlines: &Deadlines,
        bytes: &[u8],
        timeout: Duration,
    ) -> io::Result<()> {
        dispatch!(self, s => s.write_shared_timeout(deadlines, bytes, timeout).await)
    }

    fn shutdown_now(&self, how: libc::c_int) {
        dispatch!(self, s => s.shutdown_now(how))
    }

    fn splice_socket(&self) -> Option<&TcpStream> {
        match self {
            BackendStream::Plain(tcp) => Some(tcp),
            BackendStream::Tls(..) => None,
        }
    }
}
