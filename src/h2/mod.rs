//! HTTP/2 from clients: over TLS when ALPN chose `h2`, or h2c with prior
//! knowledge on a plaintext listener that allows it.
//!
//! hyperium's `h2` crate does the protocol (framing, HPACK, flow control,
//! stream states, most flood limits); it runs on the worker's own monoio
//! runtime through tokio's `AsyncRead`/`AsyncWrite` traits (no tokio
//! runtime): a connection and all its streams live on the worker that
//! accepted it, each stream a task of its own there.
//!
//! Each stream is one request through the HTTP/1.1 forwarding core
//! (`crate::proxy::serve_client`), its transport a [`stream::H2Stream`]
//! that speaks HTTP/1.1 bytes to the core and HTTP/2 frames to the client.

mod connection;
pub mod request;
pub mod response;
mod stream;

use std::cell::Cell;

pub use connection::serve_h2;

/// What every HTTP/2 client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Resets of requests in flight a connection may cause beyond the
/// requests it saw through: a browser cancels now and then, a rapid-reset
/// attacker (CVE-2023-44487) does nothing else.
pub const RESET_ALLOWANCE: u64 = 100;

/// What a connection's streams tell it.
#[derive(Debug, Default)]
pub struct ConnectionShared {
    /// Streams the client reset before their response was complete.
    resets: Cell<u64>,
    /// Streams that ended otherwise.
    finished: Cell<u64>,
}

impl ConnectionShared {
    /// A stream is done; `reset_by_client`: the client cancelled it.
    fn stream_ended(&self, reset_by_client: bool) {
        let count = if reset_by_client {
            &self.resets
        } else {
            &self.finished
        };
        count.set(count.get() + 1);
    }

    /// Has the client reset more streams than it let finish, past the
    /// allowance? Then it is flooding.
    fn too_many_resets(&self) -> bool {
        self.resets.get() > RESET_ALLOWANCE + self.finished.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_may_not_outrun_finished_streams_by_more_than_the_allowance() {
        let shared = ConnectionShared::default();
        for _ in 0..RESET_ALLOWANCE {
            shared.stream_ended(true);
        }
        assert!(!shared.too_many_resets());
        shared.stream_ended(true);
        assert!(shared.too_many_resets());
        shared.stream_ended(false);
        assert!(!shared.too_many_resets());
    }
}
