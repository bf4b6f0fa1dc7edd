//! The final response head of a try: what it means for both connections
//! (keep-alive, who may reuse them), and an answer held back while the
//! plan decides whether to retry it elsewhere (`retry_on`).

use super::exchange::{Exchange, Request};
use crate::error::ProxyError;
use crate::http::rewrite::{write_response_head, ClientSide};
use crate::http::{parse_response, BodyKind, ResponseHead, MAX_HEADERS};
use crate::transport::Transport;

/// What the final response head said.
pub(super) struct Response {
    /// How the body is framed.
    pub(super) body: BodyKind,
    /// The upstream connection may go back to the pool afterwards.
    pub(super) upstream_keep_alive: bool,
    /// How the response goes to this client (version, keep-alive).
    pub(super) client: ClientSide,
    /// Length of the backend's head, still at the front of `upstream_in`
    /// (the relay may overwrite it with the rewritten head).
    pub(super) head_len: usize,
    /// A `101` to the protocol the request asked for: from now on the
    /// connection is a tunnel (`out` holds the `101` for the client).
    pub(super) tunnel: bool,
    /// A status the pool retries on: the head is not yet in `out` (which
    /// still holds the request); see [`Exchange::release_held`].
    pub(super) held: bool,
}

impl<T: Transport> Exchange<'_, T> {
    /// The plan keeps a [`Response::held`] answer after all (no other
    /// backend, or no budget left): write its head for the client, as
    /// [`Exchange::read_response_head`] does for any other. The head is
    /// still at the front of `upstream_in`, and parsed as before.
    pub(super) fn release_held(
        &mut self,
        req: &Request,
        res: &mut Response,
    ) -> Result<(), ProxyError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let buf = &self.conn.bufs.upstream_in[..res.head_len];
        let Ok(Some(head)) = parse_response(buf, &mut headers, req.is_head) else {
            return Err(ProxyError::Upstream("held response head no longer parses"));
        };
        self.conn.bufs.out.clear();
        write_response_head(&mut self.conn.bufs.out, &head, res.client);
        res.held = false;
        Ok(())
    }
}

/// What a final (non-1xx) response head means for this exchange.
/// `draining`: the worker closes client connections after this response.
pub(super) fn final_response(
    res: &ResponseHead<'_, '_>,
    req: &Request,
    request_sent: bool,
    draining: bool,
    held: bool,
) -> Response {
    let client = ClientSide {
        http11: req.http11,
        // A close-delimited body, or a chunked one de-chunked for an
        // HTTP/1.0 client, ends only when we close. A draining worker
        // closes after this response.
        keep_alive: req.keep_alive
            && !draining
            && request_sent
            && res.body != BodyKind::CloseDelimited
            && (req.http11 || res.body != BodyKind::Chunked),
    };
    Response {
        body: res.body,
        // A backend asked to upgrade that answered otherwise may still
        // have switched on its side: its connection is never reused. Nor
        // is one that answered 503: a backend shutting down says so, and
        // the next request on that connection would only get the same.
        upstream_keep_alive: res.keep_alive
            && request_sent
            && req.upgrade.is_none()
            && res.code != 503,
        client,
        head_len: res.len,
        tunnel: false,
        held,
    }
}
