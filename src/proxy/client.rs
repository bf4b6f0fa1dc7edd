//! The client side of a connection: its transport, its buffers (held only
//! while an exchange is in flight) and what lives as long as it does.

use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;

use super::context::WorkerContext;
use super::logged_head::LoggedHead;
use crate::buffers::BufferPool;
use crate::http::rewrite::ClientAddr;
use crate::io::ReadError;
use crate::state::outcome::TimeoutKind;
use crate::transport::Transport;

/// Per-connection buffers may keep up to this many times `--buffer-size`
/// between requests (64 KiB by default: 16 KiB bodies keep their one-read
/// buffer of 32 KiB, larger bodies give theirs back).
pub(super) const RETAINED_BUFFERS: usize = 4;

/// The three buffers a client connection uses while an exchange is in
/// flight. An idle connection holds none: they come from the worker's
/// [`BufferPool`] when its bytes arrive, small (they grow only for what
/// does not fit), and go back when the exchange ends; `client_in` already
/// once the head is read, unless bytes came after it.
pub(super) struct Buffers {
    /// Bytes read from the client not yet handled (may hold pipelined requests).
    pub(super) client_in: BytesMut,
    /// Bytes read from the backend.
    pub(super) upstream_in: BytesMut,
    /// Heads being written (plus the first body bytes, so one write carries both).
    pub(super) out: BytesMut,
}

impl Buffers {
    /// None held (no allocation).
    fn none() -> Self {
        Self {
            client_in: BytesMut::new(),
            upstream_in: BytesMut::new(),
            out: BytesMut::new(),
        }
    }

    /// Take from `pool` each buffer not held.
    pub(super) fn acquire(&mut self, pool: &BufferPool) {
        for buf in [&mut self.client_in, &mut self.out] {
            if buf.capacity() == 0 {
                *buf = pool.take();
            }
        }
        if self.upstream_in.capacity() == 0 {
            self.upstream_in = pool.take_for_response();
        }
    }

    /// Give `client_in` back to `pool` if it holds nothing: once a head is
    /// read, a request without a body (nearly all) needs it no more, and
    /// a body takes one again when it is read. In a burst of requests the
    /// next connection's head is then read into the same buffer.
    pub(super) fn release_input(&mut self, pool: &BufferPool, keep: usize) {
        if self.client_in.is_empty() {
            pool.give(std::mem::take(&mut self.client_in), keep);
        }
    }

    /// Give every buffer back to `pool` (what they hold is dropped); those
    /// grown past `keep` bytes are let go instead.
    pub(super) fn release(&mut self, pool: &BufferPool, keep: usize) {
        for buf in [&mut self.client_in, &mut self.upstream_in, &mut self.out] {
            pool.give(std::mem::take(buf), keep);
        }
    }
}

/// What the listener a connection came in on says about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerInfo {
    /// Its place in the listener list, for metrics and the access log.
    pub index: u8,
    /// The port the client connected to, when it speaks TLS there (0:
    /// plaintext), for `X-Forwarded-Proto` and `X-Forwarded-Port`.
    pub tls_port: u16,
    /// Answer every request with a redirect to `https://` on this port
    /// (0: serve requests; `redirect_https` on a plaintext listener).
    pub redirect_to: u16,
}

/// What lives as long as the client connection, across its requests.
pub(super) struct Connection<T> {
    pub(super) client: T,
    pub(super) peer_ip: IpAddr,
    /// The client's port, for the PROXY header sent to backends that
    /// want one.
    pub(super) peer_port: u16,
    /// `peer_ip` as text, for `X-Forwarded-For` (and the TLS port).
    pub(super) client_addr: ClientAddr,
    /// Where to redirect every request (0: nowhere, serve them).
    pub(super) redirect_to: u16,
    /// The listener it came in on (its place in the list).
    pub(super) listener: u8,
    /// Held only while an exchange is in flight.
    pub(super) bufs: Buffers,
    /// The head fields of the request in flight, for the access log (its
    /// buffer is kept, so capturing allocates nothing once grown).
    pub(super) logged: LoggedHead,
}

impl<T: Transport> Connection<T> {
    /// A connection from `peer` just accepted on `listener`, holding no
    /// buffer.
    pub(super) fn new(client: T, peer: SocketAddr, listener: ListenerInfo) -> Self {
        let peer_ip = peer.ip();
        let client_addr = match listener.tls_port {
            0 => ClientAddr::new(peer_ip),
            port => ClientAddr::new(peer_ip).over_tls(port),
        };
        Self {
            client,
            peer_ip,
            peer_port: peer.port(),
            client_addr,
            redirect_to: listener.redirect_to,
            listener: listener.index,
            bufs: Buffers::none(),
            logged: LoggedHead::default(),
        }
    }

    /// Wait, holding no buffer, until the client's next request begins to
    /// arrive (at once if pipelined bytes are here), then take the
    /// buffers. `false`: it closed or stayed idle too long; end quietly.
    pub(super) async fn wait_for_request(&mut self, worker: &WorkerContext) -> bool {
        if self.bufs.client_in.is_empty() {
            let idle = worker.settings().timeouts.client_idle;
            match self
                .client
                .readable_idle_timeout(&worker.deadlines, idle)
                .await
            {
                Ok(()) => {}
                Err(ReadError::Timeout) => {
                    worker.metrics().timed_out(TimeoutKind::KeepAlive);
                    return false;
                }
                Err(ReadError::Io(_)) => return false,
            }
        }
        self.bufs.acquire(&worker.buffers);
        true
    }
}
