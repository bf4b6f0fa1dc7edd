//! Reading one admin request with the data plane's parser (`crate::http`)
//! and within the admin API's own limits: it serves operators, not the
//! public, so it takes small whole requests only.
//!
//! [`RequestReader`] is pure: the server hands it the bytes read so far,
//! it says whether they hold a whole request. Reads and timeouts are the
//! server's (`server.rs`).

use crate::http::{parse_request, BodyKind, MAX_HEADERS};

/// The largest head, and the largest body, accepted.
const MAX_SIZE: usize = 64 * 1024;

/// The most bytes a whole request can take: a head and a body of
/// [`MAX_SIZE`] each. The reader has an answer before this many arrive.
pub const MAX_REQUEST: usize = 2 * MAX_SIZE;

/// One admin request.
pub struct AdminRequest {
    pub method: String,
    pub path: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl AdminRequest {
    /// A header's value (the first, by case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request that cannot be served: status and why.
pub struct BadRequest(pub u16, pub String);

fn bad(why: impl Into<String>) -> BadRequest {
    BadRequest(400, why.into())
}

/// A parsed head, waiting for its body.
struct Head {
    request: AdminRequest,
    /// Where the body starts in the bytes read.
    len: usize,
    /// The body's length.
    body: usize,
}

/// One request being read: call [`RequestReader::poll`] with all the
/// bytes read so far each time more arrive.
#[derive(Default)]
pub struct RequestReader {
    head: Option<Head>,
    /// Bytes already seen not to end the head: the parser runs again only
    /// once a new line end arrives, so a client sending a byte at a time
    /// costs a scan of each byte, not a parse of the whole head per byte.
    scanned: usize,
}

impl RequestReader {
    /// The request, once `buf` holds all of it (bytes after it are
    /// ignored); an error as soon as `buf` shows it cannot be served;
    /// `None` while more is needed.
    pub fn poll(&mut self, buf: &[u8]) -> Option<Result<AdminRequest, BadRequest>> {
        if self.head.is_none() {
            match self.poll_head(buf)? {
                Ok(head) => self.head = Some(head),
                Err(refused) => return Some(Err(refused)),
            }
        }
        let head = self.head.as_ref()?;
        if buf.len() < head.len + head.body {
            return None;
        }
        let mut head = self.head.take()?;
        head.request.body = buf[head.len..head.len + head.body].to_vec();
        Some(Ok(head.request))
    }

    /// Why the bytes read are not a request, when the client stopped
    /// sending before one was whole.
    pub fn cut_short(&self) -> BadRequest {
        match self.head {
            Some(_) => bad("body cut short"),
            None => bad("connection closed mid-request"),
        }
    }

    fn poll_head(&mut self, buf: &[u8]) -> Option<Result<Head, BadRequest>> {
        let fresh = buf.get(self.scanned..).unwrap_or_default();
        let line_ended = memchr::memchr(b'\n', fresh).is_some();
        self.scanned = buf.len();
        if line_ended {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse_request(buf, &mut headers) {
                Ok(Some(head)) if head.len > MAX_SIZE => {
                    return Some(Err(BadRequest(431, "request head too large".into())))
                }
                Ok(Some(head)) => {
                    let body = match head.body {
                        BodyKind::Empty => 0,
                        // Within MAX_SIZE, so it fits a usize.
                        BodyKind::Length(n) if n <= MAX_SIZE as u64 => n as usize,
                        BodyKind::Length(_) => {
                            return Some(Err(BadRequest(413, "body too large".into())))
                        }
                        BodyKind::Chunked | BodyKind::CloseDelimited => {
                            return Some(Err(bad(
                                "chunked bodies are not accepted here; send Content-Length",
                            )))
                        }
                    };
                    let request = AdminRequest {
                        method: head.method.to_string(),
                        path: head.target.to_string(),
                        headers: head
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_string(),
                                    String::from_utf8_lossy(h.value).trim().to_string(),
                                )
                            })
                            .collect(),
                        body: Vec::new(),
                    };
                    return Some(Ok(Head {
                        request,
                        len: head.len,
                        body,
                    }));
                }
                Ok(None) => {}
                // Every malformed head is a 400 here, as it always was on
                // this listener; the parser's reason says what was wrong.
                Err(e) => return Some(Err(bad(format!("invalid request: {}", e.reason)))),
            }
        }
        (buf.len() >= MAX_SIZE).then(|| Err(BadRequest(431, "request head too large".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `raw` as one read, the way a client that sent it and stopped
    /// would be answered.
    fn read(raw: &[u8]) -> Result<AdminRequest, BadRequest> {
        let mut reader = RequestReader::default();
        reader.poll(raw).unwrap_or_else(|| Err(reader.cut_short()))
    }

    fn refused(raw: &[u8]) -> u16 {
        match read(raw) {
            Ok(_) => 0,
            Err(BadRequest(status, _)) => status,
        }
    }

    const WEIGHT: &[u8] = b"PUT /pools/web/backends/a:1/weight HTTP/1.1\r\nHost: admin\r\n\
        Authorization:  Bearer t \r\nContent-Length: 13\r\n\r\n{\"weight\": 5}extra";

    #[test]
    fn a_request_with_its_body() {
        let req = read(WEIGHT).ok().unwrap();
        assert_eq!(req.method, "PUT");
        assert_eq!(req.path, "/pools/web/backends/a:1/weight");
        assert_eq!(req.header("authorization"), Some("Bearer t"));
        assert_eq!(req.body, b"{\"weight\": 5}");
    }

    #[test]
    fn a_byte_at_a_time_reads_the_same() {
        let mut reader = RequestReader::default();
        let whole = WEIGHT.len() - "extra".len();
        for end in 0..whole {
            assert!(reader.poll(&WEIGHT[..end]).is_none(), "done at {end}");
        }
        let req = reader.poll(&WEIGHT[..whole]).unwrap().ok().unwrap();
        assert_eq!(req.body, b"{\"weight\": 5}");
    }

    #[test]
    fn limits_and_refusals() {
        let mut big_head = b"GET / HTTP/1.1\r\nHost: admin\r\nX: ".to_vec();
        big_head.resize(MAX_SIZE + 2, b'a');
        assert_eq!(refused(&big_head), 431);
        assert_eq!(refused(&vec![b'a'; MAX_SIZE]), 431);
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n"),
            413
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab"),
            400
        );
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\n"), 400);
        assert_eq!(refused(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(refused(b"\x16\x03\x01 hello\r\n\r\n"), 400);
    }
}
