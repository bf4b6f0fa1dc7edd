//! The parts of a request head the access log writes, copied out of the
//! read buffer before the body reuses it.

use std::net::SocketAddr;

use crate::http::RequestHead;

/// The parts of the request head the access log writes, copied out of the
/// read buffer (which the body then reuses). The buffer is kept, so this
/// allocates nothing per request once grown.
#[derive(Debug, Default)]
pub(super) struct LoggedHead {
    pub(super) bytes: Vec<u8>,
    // Where each part is in `bytes`. `u32`s, not `usize` ranges: this sits
    // in every connection's task, idle ones too, and a head is far shorter.
    pub(super) method: Span,
    pub(super) target: Span,
    pub(super) referer: Span,
    pub(super) user_agent: Span,
    pub(super) minor_version: u8,
    pub(super) backend: Option<SocketAddr>,
}

/// `start..end` in a [`LoggedHead`]'s bytes.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Span {
    start: u32,
    end: u32,
}

impl LoggedHead {
    fn push(&mut self, part: &[u8]) -> Span {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(part);
        Span {
            start,
            end: self.bytes.len() as u32,
        }
    }

    pub(super) fn text(&self, span: Span) -> &[u8] {
        &self.bytes[span.start as usize..span.end as usize]
    }

    /// Copy what the log needs from `req`.
    pub(super) fn capture(&mut self, req: &RequestHead<'_, '_>) {
        self.bytes.clear();
        self.method = self.push(req.method.as_bytes());
        self.target = self.push(req.target.as_bytes());
        let value = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map_or(&b""[..], |h| h.value)
        };
        self.referer = self.push(value("referer"));
        self.user_agent = self.push(value("user-agent"));
        self.minor_version = req.minor_version;
        self.backend = None;
    }

    /// A request that never parsed: nothing to show but dashes.
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.method = Span::default();
        self.target = Span::default();
        self.referer = Span::default();
        self.user_agent = Span::default();
        self.minor_version = 1;
        self.backend = None;
    }
}
