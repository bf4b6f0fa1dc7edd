//! Relaying the response: its head (already rewritten into `out`) and its
//! body, streamed with the framing the head announced, then the upstream
//! connection back to the pool when it is clean.

use bytes::Buf;
use monoio::net::TcpStream;

use super::upstream::Response;
use super::{forward_prefix, Exchange};
use crate::backend::Backend;
use crate::error::ProxyError;
use crate::http::BodyProgress;
use crate::io::{make_room, read_some_timeout, write_all_timeout, ReadError};

/// Response bodies up to this size (Content-Length) are read whole before
/// the head is sent, so that head and body go out in a single write.
const GATHER_LIMIT: usize = 64 * 1024;

impl Exchange<'_> {
    /// Send the response head (already in `out`) and stream the body.
    pub(super) async fn relay_response(
        &mut self,
        mut upstream: TcpStream,
        backend: &Backend,
        res: Response,
    ) -> Result<bool, ProxyError> {
        let cfg = &self.worker.config;
        let dechunk = res.client.must_dechunk(res.body);
        let mut body = BodyProgress::new(res.body);

        // First body bytes ride along with the head.
        let out = &mut self.bufs.out;
        let progress = body
            .advance(&self.bufs.upstream_in, |data| {
                if dechunk {
                    out.extend_from_slice(data);
                }
            })
            .map_err(|_| ProxyError::Upstream("invalid chunked body from backend"))?;
        if !dechunk {
            out.extend_from_slice(&self.bufs.upstream_in[..progress.consumed]);
        }
        self.bufs.upstream_in.advance(progress.consumed);

        // The rest of a small body is gathered before anything is sent, so
        // head and body leave in one write (one syscall, one segment), as
        // nginx's proxy buffering does. Larger bodies are streamed below.
        while let BodyProgress::Length(rest) = body {
            let Ok(rest) = usize::try_from(rest) else {
                break;
            };
            if rest > GATHER_LIMIT {
                break;
            }
            let buf = &mut self.bufs.upstream_in;
            make_room(buf, rest);
            let limit = body.read_limit(buf.capacity() - buf.len());
            match read_some_timeout(&mut upstream, buf, limit, cfg.timeouts.upstream).await {
                Ok(0) => {
                    return Err(ProxyError::Upstream(
                        "backend closed the connection mid-body",
                    ))
                }
                Ok(_) => {}
                Err(ReadError::Timeout) => return Err(ProxyError::UpstreamTimeout),
                Err(ReadError::Io(_)) => {
                    return Err(ProxyError::Upstream("backend connection failed mid-body"))
                }
            }
            let out = &mut self.bufs.out;
            let progress = body
                .advance(&self.bufs.upstream_in, |data| out.extend_from_slice(data))
                .map_err(|_| ProxyError::Upstream("invalid body from backend"))?;
            self.bufs.upstream_in.advance(progress.consumed);
        }

        self.response_started = true;
        let send_timeout = cfg.timeouts.client_idle;
        write_all_timeout(self.client, &mut self.bufs.out, send_timeout)
            .await
            .map_err(|_| ProxyError::ClientGone)?;

        let size = cfg.buffer_size;
        while !body.is_done() {
            let buf = &mut self.bufs.upstream_in;
            make_room(buf, size);
            let limit = body.read_limit(buf.capacity() - buf.len());
            let n = match read_some_timeout(&mut upstream, buf, limit, cfg.timeouts.upstream).await
            {
                Ok(n) => n,
                Err(ReadError::Timeout) => return Err(ProxyError::UpstreamTimeout),
                Err(ReadError::Io(_)) => {
                    return Err(ProxyError::Upstream("backend connection failed mid-body"))
                }
            };
            if n == 0 {
                if body.end_of_stream() {
                    break;
                }
                return Err(ProxyError::Upstream(
                    "backend closed the connection mid-body",
                ));
            }
            if dechunk {
                let out = &mut self.bufs.out;
                out.clear();
                let progress = body
                    .advance(&self.bufs.upstream_in, |data| out.extend_from_slice(data))
                    .map_err(|_| ProxyError::Upstream("invalid chunked body from backend"))?;
                self.bufs.upstream_in.advance(progress.consumed);
                write_all_timeout(self.client, &mut self.bufs.out, send_timeout)
                    .await
                    .map_err(|_| ProxyError::ClientGone)?;
            } else {
                let progress = body
                    .advance(&self.bufs.upstream_in, |_| {})
                    .map_err(|_| ProxyError::Upstream("invalid chunked body from backend"))?;
                forward_prefix(
                    self.client,
                    &mut self.bufs.upstream_in,
                    &mut self.bufs.out,
                    progress.consumed,
                    send_timeout,
                )
                .await
                .map_err(|_| ProxyError::ClientGone)?;
            }
        }

        // Bytes after the end of the response mean the backend is confused
        // about framing: never reuse that connection.
        if res.upstream_keep_alive && self.bufs.upstream_in.is_empty() {
            self.worker.pool.put(backend.addr, upstream);
        }
        Ok(res.client.keep_alive)
    }
}
