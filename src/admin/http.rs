//! Reading one admin request: a small, strict HTTP/1.1 reader for a
//! listener that serves operators, not the public (the data plane's
//! parser is in `crate::http`).

use std::io::Read;
use std::net::TcpStream;

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
pub fn read_request(stream: &mut TcpStream) -> Result<AdminRequest, BadRequest> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = parsed.method.unwrap_or("").to_string();
                let path = parsed.path.unwrap_or("").to_string();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                if headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
                {
                    return Err(bad(
                        "chunked bodies are not accepted here; send Content-Length",
                    ));
                }
                let length = match headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                {
                    Some((_, v)) => v
                        .parse::<usize>()
                        .map_err(|_| bad("invalid Content-Length"))?,
                    None => 0,
                };
                if length > MAX_SIZE {
                    return Err(BadRequest(413, "body too large".into()));
                }
                let mut body = buf.split_off(head_len);
                while body.len() < length {
                    let n = stream
                        .read(&mut chunk)
                        .map_err(|e| bad(format!("cannot read: {e}")))?;
                    if n == 0 {
                        return Err(bad("body cut short"));
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                body.truncate(length);
                return Ok(AdminRequest {
                    method,
                    path,
                    headers,
                    body,
                });
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(bad(format!("invalid request: {e}"))),
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
