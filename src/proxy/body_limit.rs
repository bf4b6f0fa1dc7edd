//! `max_body_size`: the most a request body may weigh in its pool.
//!
//! A `Content-Length` says the weight up front, so a body above the limit
//! is answered 413 before anything goes to a backend. A chunked body is
//! weighed as it streams (its payload, not its chunk framing): when it
//! passes the limit after part of it went upstream, the upstream
//! connection is closed (the backend sees the request cut short) and the
//! client gets the 413, as long as no byte of a response was sent.

use crate::error::ProxyError;
use crate::http::BodyKind;

/// The answer to a body over the limit.
pub(super) const TOO_LARGE: ProxyError = ProxyError::Downstream {
    status: 413,
    reason: "the request body is larger than this server accepts (max_body_size)",
};

/// One request's limit and the payload weighed so far.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimit {
    max: Option<u64>,
    seen: u64,
}

impl BodyLimit {
    /// The limit `max` (`None`: none) for a body framed as `body`; an
    /// announced length above it is refused here.
    pub(super) fn new(max: Option<u64>, body: BodyKind) -> Result<BodyLimit, ProxyError> {
        if let (Some(max), BodyKind::Length(len)) = (max, body) {
            if len > max {
                return Err(TOO_LARGE);
            }
        }
        Ok(BodyLimit { max, seen: 0 })
    }

    /// Weigh `data`, the next payload bytes.
    #[inline]
    pub(super) fn count(&mut self, data: &[u8]) {
        self.seen += data.len() as u64;
    }

    /// Is the payload so far within the limit?
    pub(super) fn check(&self) -> Result<(), ProxyError> {
        match self.max {
            Some(max) if self.seen > max => Err(TOO_LARGE),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_over_the_limit_is_refused_up_front() {
        assert!(BodyLimit::new(Some(10), BodyKind::Length(10)).is_ok());
        assert_eq!(
            BodyLimit::new(Some(10), BodyKind::Length(11)).unwrap_err(),
            TOO_LARGE
        );
        assert_eq!(TOO_LARGE.status(), Some(413));
        assert!(BodyLimit::new(None, BodyKind::Length(u64::MAX >> 1)).is_ok());
    }

    #[test]
    fn a_streamed_body_is_weighed_as_it_comes() {
        let mut limit = BodyLimit::new(Some(10), BodyKind::Chunked).unwrap();
        limit.count(b"0123456789");
        assert!(limit.check().is_ok());
        limit.count(b"x");
        assert_eq!(limit.check().unwrap_err(), TOO_LARGE);
        let mut none = BodyLimit::new(None, BodyKind::Chunked).unwrap();
        none.count(&[0; 4096]);
        assert!(none.check().is_ok());
    }
}
