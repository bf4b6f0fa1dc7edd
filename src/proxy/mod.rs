//! Where the protocol (pure, in [`crate::http`]) meets sockets: a client
//! connection and, apart from it, each request's exchange, and the
//! upstream half of forwarding.
//!
//! | file | holds |
//! |---|---|
//! | [`context`] | what one worker owns that its connections use |
//! | `client.rs` | the client side of a connection: transport, buffers, the access-log head |
//! | `connection.rs` | serving a connection: request after request, keep-alive, the gentle close |
//! | `exchange.rs` | one request: head, plan, error answer, outcome recorded once |
//! | `forward.rs` | the upstream half: plan → pooled connection → request → response → outcome |
//! | `upstream.rs` | send the request, read the response head (interim responses relayed) |
//! | `final_head.rs` | what the final head means for both connections; an answer held for a retry |
//! | `relay.rs`, `tunnel.rs` | stream the response back; an upgraded connection's two-way copy |
//! | `body_limit.rs`, `logged_head.rs` | a pool's body limit; the head fields the access log keeps |
//!
//! The client side is generic over its [`crate::transport::Transport`]
//! (plain TCP today), so every transport feeds the same forwarding code.

mod body_limit;
mod client;
mod connection;
pub mod context;
mod exchange;
mod final_head;
mod forward;
mod logged_head;
mod relay;
mod tunnel;
mod upstream;

use std::ops::Range;
use std::time::Duration;

use bytes::{Buf, BytesMut};

pub use client::ListenerInfo;
pub use connection::serve_client;
pub use context::WorkerContext;

use crate::deadline::Deadlines;
use crate::transport::Transport;

/// Does `buf` hold the blank line ending a head, looking only at what came
/// after `searched` (plus the two bytes before it, for a line end split
/// across reads)? Finds `\n\r\n` and also `\n\n`, which the parser then
/// refuses as a bare LF rather than waiting for more.
fn has_head_end(buf: &[u8], searched: usize) -> bool {
    let from = searched.saturating_sub(2);
    memchr::memchr_iter(b'\n', &buf[from..]).any(|i| {
        let i = from + i;
        matches!(buf.get(i + 1), Some(b'\n'))
            || (buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n'))
    })
}

/// Write `buf[range]` to `dst`, then drop `buf[..range.end]`, leaving
/// what follows (the next message, or bytes after a body) in place. The
/// bytes are written from `buf` itself, never copied.
async fn forward_range<D: Transport>(
    deadlines: &Deadlines,
    dst: &mut D,
    buf: &mut BytesMut,
    range: Range<usize>,
    timeout: Duration,
) -> std::io::Result<()> {
    if !range.is_empty() {
        dst.write_range_timeout(deadlines, buf, range.clone(), timeout)
            .await?;
    }
    if range.end == buf.len() {
        buf.clear();
    } else {
        buf.advance(range.end);
    }
    Ok(())
}
