//! The `corelb-admin` thread: one event loop (monoio on epoll, like the
//! health thread) serving every admin connection, so a slow or idle
//! client costs a connection, not a thread, and cannot keep `/metrics`
//! and `/status` from being answered.
//!
//! Each connection carries one request (`Connection: close`). The client
//! has `--admin-header-timeout` from connecting to send all of it; the
//! answer is rendered on this thread (`/metrics` and `/status` are short
//! CPU work) and written with [`WRITE_TIMEOUT`] allowed per write. At
//! most [`MAX_CONNECTIONS`] are open; beyond that a new one is closed at
//! once, and the rest are unaffected.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::buf::IoBuf;
use monoio::io::AsyncWriteRent;
use monoio::net::{TcpListener, TcpStream};
use tracing::warn;

use super::http::{AdminRequest, BadRequest, RequestReader, MAX_REQUEST};
use super::{respond, Answer};
use crate::control::Control;
use crate::io::{make_room, read_some};
use crate::logging::Limiter;

/// Admin connections open at once; a new one beyond them is closed at
/// once. Each costs a socket and at most [`MAX_REQUEST`] bytes of buffer.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long one write of an answer may wait for the client to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve `listener` on this thread until the process ends.
pub fn run(listener: std::net::TcpListener, header_timeout: Duration, control: Arc<Control>) {
    let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build();
    match runtime {
        Ok(mut rt) => rt.block_on(accept_loop(listener, header_timeout, control)),
        Err(e) => warn!("admin API off: cannot start its event loop: {e}"),
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    header_timeout: Duration,
    control: Arc<Control>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return warn!("admin API off: cannot watch its listener: {e}"),
    };
    let open = Rc::new(Cell::new(0usize));
    let complaints = Limiter::new(Duration::from_secs(1));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: let some close.
                if let Some(quiet) = complaints.allow(Instant::now()) {
                    warn!("admin API: cannot accept a connection: {e} ({quiet} more not logged)");
                }
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.get() >= MAX_CONNECTIONS {
            if let Some(quiet) = complaints.allow(Instant::now()) {
                warn!(
                    "admin API: {MAX_CONNECTIONS} connections open, closing one more from \
                     {peer} ({quiet} more not logged)"
                );
            }
            continue;
        }
        let slot = Slot::take(&open);
        let control = Arc::clone(&control);
        monoio::spawn(async move {
            let _slot = slot;
            serve(stream, peer, header_timeout, &control).await;
        });
    }
}

/// One of the open connections, given back when dropped.
struct Slot(Rc<Cell<usize>>);

impl Slot {
    fn take(open: &Rc<Cell<usize>>) -> Self {
        open.set(open.get() + 1);
        Slot(Rc::clone(open))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Read one request, answer it, close.
async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    header_timeout: Duration,
    control: &Control,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut reader = RequestReader::default();
    // Whether anything came (a timed-out read keeps the buffer it owned).
    let started = Cell::new(false);
    let read = read_request(&mut stream, &mut reader, &started);
    let answer = match monoio::time::timeout(header_timeout, read).await {
        Ok(Some(Ok(request))) => respond(&request, peer, local, control),
        Ok(Some(Err(refused))) => Answer::error(refused.0, refused.1),
        // The client is gone, or only stopped sending: say why, in case.
        Ok(None) => {
            let refused = reader.cut_short();
            Answer::error(refused.0, refused.1)
        }
        // An idle connection is closed without a word.
        Err(_) if !started.get() => return,
        Err(_) => Answer::error(
            408,
            format!(
                "the request did not arrive within --admin-header-timeout ({header_timeout:?})"
            ),
        ),
    };
    let _ = send(&mut stream, answer.into_bytes()).await;
}

/// Read until `reader` has its answer (it has one before [`MAX_REQUEST`]
/// bytes); `None` if the client closed first. The buffer grows from a
/// page as bytes come, so an idle client holds little memory.
async fn read_request(
    stream: &mut TcpStream,
    reader: &mut RequestReader,
    started: &Cell<bool>,
) -> Option<Result<AdminRequest, BadRequest>> {
    let mut buf = BytesMut::new();
    loop {
        if let Some(done) = reader.poll(&buf) {
            return Some(done);
        }
        make_room(&mut buf, 4096);
        let room = MAX_REQUEST.saturating_sub(buf.len());
        match read_some(stream, &mut buf, room).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => started.set(true),
        }
    }
}

/// Write all of `bytes`, each write allowed [`WRITE_TIMEOUT`]: a client
/// that reads slowly gets its answer, one that stopped reading is dropped.
async fn send(stream: &mut TcpStream, bytes: Vec<u8>) -> io::Result<()> {
    let mut buf = bytes;
    let mut sent = 0;
    while sent < buf.len() {
        let write = stream.write(buf.slice(sent..));
        let (result, slice) = monoio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
        buf = slice.into_inner();
        match result? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => sent += n,
        }
    }
    Ok(())
}
