//! The final response head of a try: what it means for both connections
//! (keep-alive, who may reuse them), and an answer held back while the
//! plan decides whether to retry it elsewhere (`retry_on`).

use super::exchange::{Exchange, Request};
use super::upstream::Response;
use crate::error::ProxyError;
use crate::http::rewrite::{write_response_head, ClientSide};
use crate::http::{parse_response, BodyKind, ResponseHead, MAX_HEADERS};
use crate::transport::Transport;

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
