//! Reading one admin request off a blocking socket, with the data plane's
//! parser (`crate::http`) and within the admin API's own limits: it serves
//! operators, not the public, so it takes small whole requests only.

use std::io::Read;

use crate::http::{parse_request, BodyKind, BodyProgress, MAX_HEADERS};

/// The largest head or body accepted.
const MAX_SIZE: usize = 64 * 1024;

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

/// Read a whole request (head and `Content-Length` body) from `stream`.
pub fn read_request(stream: &mut impl Read) -> Result<AdminRequest, BadRequest> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_request(&buf, &mut headers) {
            Ok(Some(head)) => {
                let length = match head.body {
                    BodyKind::Empty => 0,
                    // Within MAX_SIZE, so it fits a usize.
                    BodyKind::Length(n) if n <= MAX_SIZE as u64 => n as usize,
                    BodyKind::Length(_) => return Err(BadRequest(413, "body too large".into())),
                    BodyKind::Chunked | BodyKind::CloseDelimited => {
                        return Err(bad(
                            "chunked bodies are not accepted here; send Content-Length",
                        ))
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
                    body: Vec::with_capacity(length),
                };
                let rest = buf.split_off(head.len);
                return read_body(stream, request, length, &rest, &mut chunk);
            }
            Ok(None) => {}
            // Every malformed head is a 400 here, as it always was on this
            // listener; the parser's reason says what was wrong.
            Err(e) => return Err(bad(format!("invalid request: {}", e.reason))),
        }
        if buf.len() > MAX_SIZE {
            return Err(BadRequest(431, "request head too large".into()));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| bad(format!("cannot read: {e}")))?;
        if n == 0 {
            return Err(bad("connection closed mid-request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Complete `request` with its `length`-byte body: `rest` (what came after
/// the head) first, then reads through `chunk`.
fn read_body(
    stream: &mut impl Read,
    mut request: AdminRequest,
    length: usize,
    rest: &[u8],
    chunk: &mut [u8],
) -> Result<AdminRequest, BadRequest> {
    let mut progress = BodyProgress::new(BodyKind::Length(length as u64));
    let mut input = rest;
    loop {
        // A Content-Length body has no syntax to get wrong.
        let _ = progress.advance(input, |data| request.body.extend_from_slice(data));
        if progress.is_done() {
            return Ok(request);
        }
        let n = stream
            .read(chunk)
            .map_err(|e| bad(format!("cannot read: {e}")))?;
        if n == 0 {
            return Err(bad("body cut short"));
        }
        input = &chunk[..n];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8]) -> Result<AdminRequest, BadRequest> {
        read_request(&mut &raw[..])
    }

    fn refused(raw: &[u8]) -> u16 {
        match read(raw) {
            Ok(_) => 0,
            Err(BadRequest(status, _)) => status,
        }
    }

    #[test]
    fn a_request_with_its_body() {
        let req = read(
            b"PUT /pools/web/backends/a:1/weight HTTP/1.1\r\nHost: admin\r\n\
              Authorization:  Bearer t \r\nContent-Length: 13\r\n\r\n{\"weight\": 5}extra",
        )
        .ok()
        .unwrap();
        assert_eq!(req.method, "PUT");
        assert_eq!(req.path, "/pools/web/backends/a:1/weight");
        assert_eq!(req.header("authorization"), Some("Bearer t"));
        assert_eq!(req.body, b"{\"weight\": 5}");
    }

    #[test]
    fn limits_and_refusals() {
        let mut big_head = b"GET / HTTP/1.1\r\nHost: admin\r\nX: ".to_vec();
        big_head.resize(MAX_SIZE + 2, b'a');
        assert_eq!(refused(&big_head), 431);
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
