//! Serving one client connection: request after request while both sides
//! keep it alive, then the gentle close. Each request on it is an
//! [`Exchange`] of its own (`exchange.rs`), made fresh for the request and
//! dropped after it; requests are handled strictly in order, which is what
//! makes pipelining correct: the bytes of request N+1 simply wait in the
//! read buffer while request N is answered.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::client::{Connection, ListenerInfo, RETAINED_BUFFERS};
use super::context::WorkerContext;
use super::exchange::{After, Exchange};
use crate::deadline::Deadlines;
use crate::io::{make_room, release_if_oversized};
use crate::transport::{ReadWait, Transport};

/// Serve one client connection until it closes.
///
/// An `async` block rather than an `async fn`, for every idle connection's
/// memory: an `async fn` keeps its arguments twice in its future (as passed,
/// and as moved into its body), where a block uses what it captured in
/// place. The task of each connection is this future.
pub fn serve_client<T: Transport>(
    worker: Rc<WorkerContext>,
    client: T,
    peer: SocketAddr,
    listener: ListenerInfo,
) -> impl Future<Output = ()> {
    // Made before the block, which then captures it alone: built inside,
    // the block would keep the stream and the address it was made from
    // besides, for the connection's whole life.
    let mut conn = Connection::new(client, peer, listener);
    async move {
        let after = loop {
            if !conn.wait_for_request(&worker).await {
                break After::Gone;
            }
            let after = serve_request(&worker, &mut conn).await;
            let keep = RETAINED_BUFFERS * worker.settings().buffer_size;
            match after {
                // Idle until the next request: hold no buffer meanwhile.
                After::KeepAlive if conn.bufs.client_in.is_empty() => {
                    conn.bufs.release(&worker.buffers, keep);
                }
                After::KeepAlive => {
                    // A pipelined request is here already. A large gathered
                    // body grew these; the connection should not keep that.
                    release_if_oversized(&mut conn.bufs.upstream_in, keep);
                    release_if_oversized(&mut conn.bufs.out, keep);
                }
                other => break other,
            }
        };
        match after {
            After::Abort => conn.client.reset_on_close(),
            After::Close => {
                Box::pin(linger(
                    &worker.deadlines,
                    &mut conn.client,
                    &mut conn.bufs.client_in,
                ))
                .await
            }
            After::Gone | After::KeepAlive => {}
        }
        conn.bufs.release(
            &worker.buffers,
            RETAINED_BUFFERS * worker.settings().buffer_size,
        );
    }
}

/// One request on `conn`, from its head to the end of its answer.
///
/// Each request gets a fresh exchange: nothing of the last one's state is
/// carried over or reset by hand. Reading its head and the rest of it run
/// in blocks of the worker's, and both the exchange and the head's outcome
/// move into the second: an idle connection's task keeps neither
/// (`crate::slots`). A function of its own, not inline in the
/// connection's loop: there the exchange, awaited across two points, got a
/// place of its own in the task beside the idle wait's, and every idle
/// connection carried those 128 bytes.
async fn serve_request<T: Transport>(worker: &WorkerContext, conn: &mut Connection<T>) -> After {
    let mut exchange = Exchange::new(worker, conn);
    let next = worker.head_slots.run(exchange.next_request()).await;
    let keep = RETAINED_BUFFERS * worker.settings().buffer_size;
    exchange.conn.bufs.release_input(&worker.buffers, keep);
    worker.exchange_slots.run(exchange.complete(next)).await
}

/// Close gently: stop sending, then read and discard what the client may
/// still be sending (pipelined requests after `Connection: close`, the body
/// of a refused request) until it closes too, for a short while. Closing a
/// socket with unread input makes the kernel send RST, and an RST can
/// destroy the end of the last response before the client has read it.
async fn linger<T: Transport>(deadlines: &Deadlines, client: &mut T, buf: &mut BytesMut) {
    const LINGER_TIME: Duration = Duration::from_secs(1);
    const LINGER_BYTES: usize = 256 * 1024;
    if client.shutdown_write().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        buf.clear();
        make_room(buf, 16 * 1024);
        let room = buf.capacity();
        let left = deadline.saturating_duration_since(Instant::now());
        match client
            .read_timeout(deadlines, buf, room, ReadWait::Busy(left))
            .await
        {
            Ok(n) if n > 0 => discarded += n,
            _ => return,
        }
    }
}
