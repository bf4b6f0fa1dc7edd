//! Relaying the response: its head (already rewritten into `out`) and its
//! body, streamed with the framing the head announced, then the upstream
//! connection back to the pool when it is clean.

use std::time::Duration;

use bytes::{Buf, BytesMut};

use super::context::WorkerContext;
use super::exchange::Exchange;
use super::final_head::Response;
use super::forward_range;
use crate::error::ProxyError;
use crate::http::BodyProgress;
use crate::io::ReadError;
use crate::splice::{splice_body, SpliceError};
use crate::state::backend::Backend;
use crate::transport::backend::BackendStream;
use crate::transport::{ReadWait, Transport};

/// Response bodies up to this size (Content-Length) are read whole before
/// the head is sent, so that head and body go out in a single write.
const GATHER_LIMIT: usize = 64 * 1024;

/// A backend that closed before the body it announced was complete.
const CLOSED_MID_BODY: ProxyError =
    ProxyError::UpstreamClosed("backend closed the connection mid-body");

/// What a failed read of a response body means for the client.
fn body_read_failure(e: ReadError) -> ProxyError {
    match e {
        ReadError::Timeout => ProxyError::UpstreamTimeout,
        ReadError::Io(_) => ProxyError::UpstreamClosed("backend connection failed mid-body"),
    }
}

impl<T: Transport> Exchange<'_, T> {
    /// Send the response head (already in `out`) and stream the body.
    pub(super) async fn relay_response(
        &mut self,
        mut upstream: BackendStream,
        backend: &Backend,
        res: Response,
    ) -> Result<bool, ProxyError> {
        if res.tunnel {
            // Boxed: tunnels are rare, and held inline their state would
            // be in every exchange's future, copied whole per request.
            return Box::pin(self.tunnel(upstream, res)).await;
        }
        let cfg = self.worker.settings();
        let dechunk = res.client.must_dechunk(res.body);
        let mut body = BodyProgress::new(res.body);

        // The first write carries the head and all the body at hand; a small
        // body (up to GATHER_LIMIT) is read whole first, so head and body
        // leave in one write (one syscall, one segment), as nginx's proxy
        // buffering does. Larger bodies are streamed below.
        let send_timeout = cfg.timeouts.client_idle;
        let head_len = self.conn.bufs.out.len();
        if !dechunk && head_len <= res.head_len {
            // The body goes out exactly as it came: write the rewritten head
            // over the end of the backend's head, just before the body, and
            // send straight from `upstream_in`, so no body byte is copied.
            // The buffer is not advanced past the old head, so it keeps its
            // whole capacity for the next response's single read.
            let buf = &mut self.conn.bufs.upstream_in;
            let start = res.head_len - head_len;
            buf[start..res.head_len].copy_from_slice(&self.conn.bufs.out);
            let at_hand = body
                .advance(&buf[res.head_len..], |_| {})
                .map_err(|_| ProxyError::Upstream("invalid chunked body from backend"))?
                .consumed;
            let rest = gather_small_body(
                self.worker,
                &mut upstream,
                buf,
                &mut body,
                cfg.timeouts.upstream,
            )
            .await?;
            let end = res.head_len + at_hand + rest;
            self.response_started = true;
            self.outcome.bytes_out += (end - start) as u64;
            // Anything after the body stays (and keeps the connection out
            // of the pool).
            forward_range(
                &self.worker.deadlines,
                &mut self.conn.client,
                &mut self.conn.bufs.upstream_in,
                start..end,
                send_timeout,
            )
            .await
            .map_err(|_| ProxyError::ClientGone)?;
        } else {
            // The head grew (`Connection: close` added) or the body is
            // de-chunked: the body at hand is appended to the head in `out`.
            self.conn.bufs.upstream_in.advance(res.head_len);
            let out = &mut self.conn.bufs.out;
            let progress = body
                .advance(&self.conn.bufs.upstream_in, |data| {
                    if dechunk {
                        out.extend_from_slice(data);
                    }
                })
                .map_err(|_| ProxyError::Upstream("invalid chunked body from backend"))?;
            if !dechunk {
                out.extend_from_slice(&self.conn.bufs.upstream_in[..progress.consumed]);
            }
            self.conn.bufs.upstream_in.advance(progress.consumed);
            gather_small_body(
                self.worker,
                &mut upstream,
                out,
                &mut body,
                cfg.timeouts.upstream,
            )
            .await?;
            self.response_started = true;
            self.send_out().await?;
        }

        // The rest of a large Content-Length body, over plain TCP on both
        // sides: spliced, never copied into user space (`crate::splice`).
        if let (false, BodyProgress::Length(rest @ 1..)) = (dechunk, &body) {
            let rest = *rest;
            if let (true, Some(from), Some(to)) = (
                self.conn.bufs.upstream_in.is_empty(),
                upstream.splice_socket(),
                self.conn.client.splice_socket(),
            ) {
                let (sent, result) = splice_body(
                    &self.worker.deadlines,
                    &self.worker.pipes,
                    from,
                    to,
                    rest,
                    cfg.timeouts.upstream,
                    send_timeout,
                )
                .await;
                self.outcome.bytes_out += sent;
                match result {
                    Ok(()) => body = BodyProgress::Done,
                    // Nothing moved: relayed through the buffers below.
                    Err(SpliceError::NoPipe(_)) => {}
                    Err(SpliceError::SourceClosed) => return Err(CLOSED_MID_BODY),
                    Err(SpliceError::SourceTimeout) => {
                        return Err(body_read_failure(ReadError::Timeout))
                    }
                    Err(SpliceError::Source(e)) => return Err(body_read_failure(ReadError::Io(e))),
                    Err(SpliceError::Destination) => return Err(ProxyError::ClientGone),
                }
            }
        }

        let size = cfg.buffer_size;
        while !body.is_done() {
            let buf = &mut self.conn.bufs.upstream_in;
            self.worker.buffers.room_for_body(buf, size);
            let limit = body.read_limit(buf.capacity() - buf.len());
            let n = upstream
                .read_timeout(
                    &self.worker.deadlines,
                    buf,
                    limit,
                    ReadWait::Busy(cfg.timeouts.upstream),
                )
                .await
                .map_err(body_read_failure)?;
            if n == 0 {
                if body.end_of_stream() {
                    break;
                }
                return Err(CLOSED_MID_BODY);
            }
            if dechunk {
                let out = &mut self.conn.bufs.out;
                out.clear();
                let progress = body
                    .advance(&self.conn.bufs.upstream_in, |data| {
                        out.extend_from_slice(data)
                    })
                    .map_err(|_| ProxyError::Upstream("invalid chunked body from backend"))?;
                self.conn.bufs.upstream_in.advance(progress.consumed);
                self.send_out().await?;
            } else {
                let progress = body
                    .advance(&self.conn.bufs.upstream_in, |_| {})
                    .map_err(|_| ProxyError::Upstream("invalid chunked body from backend"))?;
                self.outcome.bytes_out += progress.consumed as u64;
                forward_range(
                    &self.worker.deadlines,
                    &mut self.conn.client,
                    &mut self.conn.bufs.upstream_in,
                    0..progress.consumed,
                    send_timeout,
                )
                .await
                .map_err(|_| ProxyError::ClientGone)?;
            }
        }

        // Bytes after the end of the response mean the backend is confused
        // about framing: never reuse that connection. Nor one that began
        // with a PROXY header: it speaks for this client only.
        if res.upstream_keep_alive
            && self.conn.bufs.upstream_in.is_empty()
            && upstream.nothing_pending()
            && backend.send_proxy.is_none()
        {
            self.worker
                .pool
                .put(backend.addr, upstream, self.worker.deadlines.now());
        }
        Ok(res.client.keep_alive)
    }
}

/// The rest of a small Content-Length body (up to [`GATHER_LIMIT`]), read
/// onto the end of `buf`, so it joins the head in the first write. Returns
/// how many bytes were added; 0 when the body is done, or not small, or not
/// Content-Length framed. Such a body never reads past its end, so every
/// byte added is body.
async fn gather_small_body(
    worker: &WorkerContext,
    upstream: &mut BackendStream,
    buf: &mut BytesMut,
    body: &mut BodyProgress,
    timeout: Duration,
) -> Result<usize, ProxyError> {
    let mut added = 0;
    while let BodyProgress::Length(rest) = *body {
        let Ok(rest) = usize::try_from(rest) else {
            break;
        };
        if rest > GATHER_LIMIT {
            break;
        }
        worker.buffers.reserve(buf, rest);
        let start = buf.len();
        match upstream
            .read_timeout(&worker.deadlines, buf, rest, ReadWait::Busy(timeout))
            .await
        {
            Ok(0) => return Err(CLOSED_MID_BODY),
            Ok(n) => added += n,
            Err(e) => return Err(body_read_failure(e)),
        }
        // Counting only: a Content-Length body cannot be invalid.
        let _ = body.advance(&buf[start..], |_| {});
    }
    Ok(added)
}
