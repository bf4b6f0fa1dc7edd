//! Connections closed before a byte of theirs is read, and the
//! (rate-limited) line that says so.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::warn;

use crate::proxy::WorkerContext;

/// Close a connection over `--max-connections-per-ip` at once, before
/// reading a byte. Not a 503 after the head: that would hold a buffer, a
/// task and a place under `--max-connections` for as long as the client
/// takes to send its head (up to `--client-header-timeout`), which is
/// what a client hoarding connections would make the most of. Closed
/// here, a refused connection costs nothing; the client sees it closed
/// (or reset, if its request had already arrived) with no answer.
pub(super) fn refuse_over_per_ip_limit(
    worker: &WorkerContext,
    stream: monoio::net::TcpStream,
    peer: SocketAddr,
) {
    // Counted first: whoever sees the close may look at /metrics next.
    worker.metrics().refused_per_ip.inc();
    drop(stream);
    if let Some(unreported) = worker.refusal_log.allow(Instant::now()) {
        let more = if unreported > 0 {
            format!(" ({unreported} more since the last report)")
        } else {
            String::new()
        };
        warn!(
            "worker {}: closed a connection from {}: it has {} open (--max-connections-per-ip){more}",
            worker.id,
            peer.ip(),
            worker.shared.per_ip.max()
        );
    }
}

/// Close a connection accepted while the last place under
/// `--max-connections` went to another worker: the accept loop waits only
/// while there is room, but its accept may complete after the room is
/// gone. Rare (one per worker at the moment the cap is reached); closed
/// at once, as over the per-IP limit, so the cap is exact.
pub(super) fn refuse_over_limit(
    worker: &WorkerContext,
    stream: monoio::net::TcpStream,
    peer: SocketAddr,
) {
    drop(stream);
    if let Some(unreported) = worker.refusal_log.allow(Instant::now()) {
        warn!(
            "worker {}: closed a connection from {}: --max-connections reached \
             ({unreported} more refusals since the last report)",
            worker.id,
            peer.ip(),
        );
    }
}

/// Close a connection on a PROXY protocol listener whose header was
/// missing (from a peer that must send one), unwanted (from a peer that
/// must not), broken, or not there within `--client-header-timeout`.
pub(super) fn refuse_proxy_header(worker: &WorkerContext, peer: SocketAddr, why: &str) {
    if let Some(unreported) = worker.refusal_log.allow(Instant::now()) {
        warn!(
            "worker {}: closed a connection from {} on a PROXY protocol listener: {why} \
             ({unreported} more refusals since the last report)",
            worker.id, peer,
        );
    }
}
