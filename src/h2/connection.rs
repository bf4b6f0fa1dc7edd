//! One HTTP/2 connection: its settings, its accept loop (each stream a
//! task on this worker), and its end: GOAWAY when the worker drains or
//! the connection stays idle, or when the client floods it.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::{Builder, SendResponse};
use h2::Reason;
use tokio::io::{AsyncRead, AsyncWrite};

use super::stream::H2Stream;
use super::ConnectionShared;
use crate::config::Settings;
use crate::proxy::{serve_client, ListenerInfo, WorkerContext};

/// How often a connection looks at the clock (idle, draining): the
/// longest a drain waits to send GOAWAY. One timer a second per idle
/// connection, not more.
const TICK: Duration = Duration::from_secs(1);

/// The connection's HTTP/2 settings and flood limits, from `settings`.
fn builder(settings: &Settings) -> Builder {
    let mut builder = Builder::new();
    builder
        .max_concurrent_streams(settings.h2_max_concurrent_streams)
        .initial_window_size(settings.h2_initial_window_size)
        .initial_connection_window_size(settings.h2_connection_window_size)
        .max_frame_size(settings.h2_max_frame_size)
        // A head that decompresses past this is refused (HPACK bombs);
        // the HTTP/1.1 head made of it must fit the buffer anyway.
        .max_header_list_size(u32::try_from(settings.buffer_size).unwrap_or(u32::MAX))
        .max_send_buffer_size(settings.h2_max_send_buffer_size)
        .max_pending_accept_reset_streams(settings.h2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(settings.h2_max_local_error_reset_streams));
    builder
}

/// Serve HTTP/2 on `io` (its socket `fd`) until the connection ends.
///
/// `io` comes boxed: this future keeps its arguments for its whole life
/// beside what it made of them, so an `io` held inline (a TLS session,
/// 1 KiB and more) would be kept twice, here and inside the connection.
pub async fn serve_h2<IO>(
    worker: Rc<WorkerContext>,
    io: Box<IO>,
    fd: RawFd,
    peer: SocketAddr,
    listener: ListenerInfo,
) where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let settings = worker.settings();
    let handshake = builder(&settings).handshake::<_, Bytes>(io);
    let mut conn = match monoio::time::timeout(settings.timeouts.client_header, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return count_error(&worker, &e),
        Err(_) => return,
    };
    worker.metrics().h2_connections.inc();
    let idle_timeout = settings.timeouts.client_idle;
    drop(settings);
    let shared = Rc::new(ConnectionShared::default());
    let mut idle_since = Instant::now();
    let mut closing = false;
    let mut calmed = false;
    let mut tick = pin!(monoio::time::sleep(TICK));
    loop {
        let event = poll_fn(|cx| {
            if let Poll::Ready(next) = conn.poll_accept(cx) {
                return Poll::Ready(Some(next));
            }
            tick.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match event {
            Some(Some(Ok((request, respond)))) => {
                worker.metrics().h2_streams.inc();
                let (parts, body) = request.into_parts();
                let stream = H2Stream::new(&parts, body, respond, fd, Rc::clone(&shared));
                monoio::spawn(serve_stream(Rc::clone(&worker), stream, peer, listener));
            }
            Some(Some(Err(e))) => {
                if !calmed {
                    count_error(&worker, &e);
                }
                break;
            }
            Some(None) => break,
            None => tick.as_mut().reset((Instant::now() + TICK).into()),
        }
        if shared.too_many_resets() && !calmed {
            // Rapid reset: every reset stream may have cost an upstream
            // request (and its connection). Enough.
            count_reason(&worker, Reason::ENHANCE_YOUR_CALM);
            conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
            calmed = true;
        }
        if conn.has_streams() {
            idle_since = Instant::now();
        }
        if !closing && (worker.draining() || idle_since.elapsed() >= idle_timeout) {
            // GOAWAY: no new streams; those open finish, then the
            // connection closes (`--shutdown-timeout` bounds a drain).
            conn.graceful_shutdown();
            closing = true;
        }
    }
}

/// Serve one stream's request, or refuse a malformed one.
async fn serve_stream(
    worker: Rc<WorkerContext>,
    stream: Result<H2Stream, (super::request::Malformed, SendResponse<Bytes>)>,
    peer: SocketAddr,
    listener: ListenerInfo,
) {
    match stream {
        Ok(stream) => serve_client(worker, stream, peer, listener).await,
        Err((_, mut respond)) => {
            worker.metrics().h2_malformed.inc();
            respond.send_reset(Reason::PROTOCOL_ERROR);
        }
    }
}

/// Count a connection that ended in an HTTP/2 error (ours or the
/// client's GOAWAY), by its reason; plain I/O failures are not counted.
fn count_error(worker: &WorkerContext, e: &h2::Error) {
    if let Some(reason) = e.reason() {
        count_reason(worker, reason);
    }
}

fn count_reason(worker: &WorkerContext, reason: Reason) {
    let index = usize::try_from(u32::from(reason)).unwrap_or(usize::MAX);
    if let Some(counter) = worker.metrics().h2_errors.get(index) {
        counter.inc();
    }
}
