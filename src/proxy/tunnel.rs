//! An upgraded connection (WebSocket, or a protocol the pool allows): once
//! the backend answered `101` to the protocol the request asked for, the
//! `101` goes to the client and bytes are copied both ways, as they come,
//! until both sides are done.
//!
//! Each direction reads into the buffer the connection already has
//! (`client_in` going up, `upstream_in` coming down) and writes it out
//! before reading again: no allocation per message, large frames and
//! small ones alike. A side that closes has its close passed on (the other
//! side's write half is shut, a FIN), and the tunnel ends once both
//! directions have; an error on either ends both at once. The tunnel's
//! idle time (`--tunnel-idle-timeout`) runs while no byte moves either
//! way: two socket waits renewed on every read, no timer.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::{Buf, BytesMut};

use super::context::WorkerContext;
use super::exchange::Exchange;
use super::final_head::Response;
use crate::deadline::{Armed, Direction};
use crate::error::ProxyError;
use crate::transport::backend::BackendStream;
use crate::transport::Transport;

/// Once one side closed, how long the other may stay silent before the
/// tunnel closes: long enough to finish what it was sending (its own close
/// frame), short enough that a peer which never closes its half does not
/// hold a connection for the whole `--tunnel-idle-timeout`.
const HALF_CLOSED_IDLE: Duration = Duration::from_secs(5);

/// What one direction of a tunnel carried.
struct Copied {
    bytes: u64,
}

/// The two idle waits of a tunnel, renewed by any byte either way.
struct Idle<'a> {
    waits: [Armed<'a>; 2],
    timeout: Cell<Duration>,
}

impl Idle<'_> {
    fn renew(&self) {
        for wait in &self.waits {
            wait.renew(self.timeout.get());
        }
    }

    fn expired(&self) -> bool {
        self.waits.iter().any(Armed::expired)
    }
}

impl<T: Transport> Exchange<'_, T> {
    /// Relay the `101` (in `out`) with whatever the backend sent after it,
    /// then tunnel until both sides are done. The client connection is
    /// closed afterwards, and the upstream one is dropped, never pooled.
    pub(super) async fn tunnel(
        &mut self,
        upstream: BackendStream,
        res: Response,
    ) -> Result<bool, ProxyError> {
        self.conn.bufs.upstream_in.advance(res.head_len);
        self.response_started = true;
        self.send_out().await?;

        let worker: &WorkerContext = self.worker;
        let cfg = worker.settings();
        let client: &T = &self.conn.client;
        let idle = Idle {
            waits: [
                worker.deadlines.arm(
                    client.as_raw_fd(),
                    Direction::Read,
                    cfg.timeouts.tunnel_idle,
                ),
                worker.deadlines.arm(
                    upstream.as_raw_fd(),
                    Direction::Read,
                    cfg.timeouts.tunnel_idle,
                ),
            ],
            timeout: Cell::new(cfg.timeouts.tunnel_idle),
        };
        let half_closed = cfg.timeouts.tunnel_idle.min(HALF_CLOSED_IDLE);
        worker.metrics().tunnels_open.change(1);
        let (up, down) = monoio::join!(
            copy(
                worker,
                client,
                &upstream,
                &mut self.conn.bufs.client_in,
                &idle,
                half_closed
            ),
            copy(
                worker,
                &upstream,
                client,
                &mut self.conn.bufs.upstream_in,
                &idle,
                half_closed
            ),
        );
        worker.metrics().tunnels_open.change(-1);
        if idle.expired() {
            tracing::debug!("tunnel idle for --tunnel-idle-timeout: closed");
        }
        self.outcome.bytes_in += up.bytes;
        self.outcome.bytes_out += down.bytes;
        self.conn.bufs.client_in.clear();
        self.conn.bufs.upstream_in.clear();
        Ok(false)
    }
}

/// Copy from `src` to `dst` until `src` closes (then pass the close on)
/// or either fails (then shut both, which ends the other direction too).
/// `buf` may already hold bytes for `dst`.
async fn copy<S: Transport, D: Transport>(
    worker: &WorkerContext,
    src: &S,
    dst: &D,
    buf: &mut BytesMut,
    idle: &Idle<'_>,
    half_closed: Duration,
) -> Copied {
    let size = worker.settings().buffer_size;
    let mut copied = Copied { bytes: 0 };
    loop {
        if !buf.is_empty() {
            let sent = dst
                .write_shared_timeout(&worker.deadlines, buf, idle.timeout.get())
                .await;
            if sent.is_err() {
                break;
            }
            copied.bytes += buf.len() as u64;
            buf.clear();
        }
        worker.buffers.room_for_body(buf, size);
        let room = buf.capacity() - buf.len();
        match src.read_shared(buf, room).await {
            Ok(0) => {
                // Closed, or the idle wait shut it: either way, say so
                // to the other side and let it finish.
                dst.shutdown_now(libc::SHUT_WR);
                idle.timeout.set(half_closed);
                idle.renew();
                return copied;
            }
            Ok(_) => idle.renew(),
            Err(_) => break,
        }
    }
    src.shutdown_now(libc::SHUT_RDWR);
    dst.shutdown_now(libc::SHUT_RDWR);
    copied
}
