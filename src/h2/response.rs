//! The HTTP/1.1 response the forwarding core writes for a client, turned
//! back into HTTP/2 parts for a stream: pure decoding, no I/O.
//!
//! The exchange writes exactly what it would write to an HTTP/1.1 client
//! (the rewritten head, the body in the framing the head announced);
//! this reads it with the one HTTP/1 parser and yields the status and
//! fields (hop-by-hop fields dropped: they mean nothing in HTTP/2), the
//! body's bytes without framing, and the trailers of a chunked body
//! (gRPC's `grpc-status`), which HTTP/2 carries in a HEADERS frame of
//! their own.

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::http::{parse_response, BodyKind, ChunkedDecoder, MAX_HEADERS};

/// What went wrong reading the response: the stream is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// Where the response is.
#[derive(Debug)]
enum State {
    /// Its head is being gathered.
    Head,
    /// Body bytes left of a `Content-Length` body.
    Length(u64),
    /// A chunked body.
    Chunked(ChunkedDecoder),
    /// A body that ends when the exchange shuts its side down.
    UntilClose,
    /// All of it was read.
    Done,
}

/// One stream's response, decoded as its bytes are written. Each call to
/// [`ResponseDecoder::feed`] leaves what it decoded in the public fields
/// for the caller to send, in order: `interim`, `head`, `data`, then
/// (once `done`) `trailers`.
#[derive(Debug)]
pub struct ResponseDecoder {
    state: State,
    /// The request was a HEAD: the response has no body whatever it says.
    request_was_head: bool,
    /// Head bytes gathered so far.
    head_bytes: BytesMut,
    /// Trailer bytes of a chunked body, from after its last chunk.
    trailer_bytes: BytesMut,
    /// An interim (1xx) response to pass on.
    pub interim: Option<Response<()>>,
    /// The final response head, not yet sent.
    pub head: Option<Response<()>>,
    /// Body bytes not yet sent.
    pub data: BytesMut,
    /// The trailers, once the body is done.
    pub trailers: Option<HeaderMap>,
}

impl ResponseDecoder {
    /// A decoder for the response to a request (a HEAD if `head`).
    pub fn new(request_was_head: bool) -> Self {
        Self {
            state: State::Head,
            request_was_head,
            head_bytes: BytesMut::new(),
            trailer_bytes: BytesMut::new(),
            interim: None,
            head: None,
            data: BytesMut::new(),
            trailers: None,
        }
    }

    /// Has the final head been decoded?
    pub fn head_seen(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    /// Is the whole response decoded (the stream can end)?
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The exchange shut its side down: a body delimited by the close is
    /// complete. `false`: the response was cut short.
    pub fn close(&mut self) -> bool {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                true
            }
            _ => false,
        }
    }

    /// Decode from `input`; how many bytes were taken. Stops after an
    /// interim head (for the caller to send before the rest); bytes after
    /// the end of the response are not taken.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, Invalid> {
        match &mut self.state {
            State::Head => self.feed_head(input),
            State::Length(left) => {
                let n = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                self.data.extend_from_slice(&input[..n]);
                *left -= n as u64;
                if *left == 0 {
                    self.state = State::Done;
                }
                Ok(n)
            }
            State::UntilClose => {
                self.data.extend_from_slice(input);
                Ok(input.len())
            }
            State::Chunked(_) => self.feed_chunked(input),
            State::Done => Ok(0),
        }
    }

    fn feed_head(&mut self, input: &[u8]) -> Result<usize, Invalid> {
        let before = self.head_bytes.len();
        self.head_bytes.extend_from_slice(input);
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = parse_response(&self.head_bytes, &mut fields, self.request_was_head)
            .map_err(|_| Invalid("response head does not parse"))?;
        let Some(res) = parsed else {
            return Ok(input.len());
        };
        let status =
            StatusCode::from_u16(res.code).map_err(|_| Invalid("response status out of range"))?;
        let mut head = Response::new(());
        *head.status_mut() = status;
        for field in res.headers {
            let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
                continue;
            };
            if is_hop_by_hop(&name) {
                continue;
            }
            if let Ok(value) = HeaderValue::from_bytes(field.value) {
                head.headers_mut().append(name, value);
            }
        }
        let taken = res.len - before;
        let body = res.body;
        self.head_bytes = BytesMut::new();
        if status.is_informational() {
            // `100 Continue` (which the exchange writes only when the
            // client asked for it) and `103 Early Hints` alike.
            self.interim = Some(head);
            return Ok(taken);
        }
        self.state = match body {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::Chunked(ChunkedDecoder::new()),
            BodyKind::CloseDelimited => State::UntilClose,
        };
        self.head = Some(head);
        Ok(taken)
    }

    /// Chunked: the data runs go to `data`; everything after the last
    /// chunk is the trailer section, gathered and parsed at the end.
    /// Fed up to each line end at a time, so the switch to the trailers
    /// is seen exactly where it happens.
    fn feed_chunked(&mut self, input: &[u8]) -> Result<usize, Invalid> {
        let State::Chunked(decoder) = &mut self.state else {
            return Ok(0);
        };
        let mut pos = 0;
        while pos < input.len() && !decoder.is_done() {
            let rest = &input[pos..];
            let progress = if decoder.in_trailers() {
                let progress = decoder.feed(rest, |_| {});
                if let Ok(p) = &progress {
                    self.trailer_bytes.extend_from_slice(&rest[..p.consumed]);
                }
                progress
            } else {
                let line = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                let data = &mut self.data;
                decoder.feed(&rest[..line], |run| data.extend_from_slice(run))
            };
            pos += progress
                .map_err(|_| Invalid("invalid chunked body"))?
                .consumed;
        }
        if decoder.is_done() {
            self.trailers = Some(parse_trailers(&self.trailer_bytes));
            self.trailer_bytes.clear();
            self.state = State::Done;
        }
        Ok(pos)
    }

    /// Take the body bytes decoded so far, at most `max`.
    pub fn take_data(&mut self, max: usize) -> bytes::Bytes {
        let n = max.min(self.data.len());
        let chunk = self.data.split_to(n).freeze();
        if self.data.is_empty() {
            // Start again at the front: the buffer keeps its room.
            self.data.clear();
        }
        chunk
    }
}

/// Fields that describe one HTTP/1.1 connection, not the message.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "te"
    )
}

/// The trailer section (fields, each line ended by CRLF, then the empty
/// line; already checked by the chunked decoder) as fields. Empty: none.
fn parse_trailers(bytes: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    let mut rest = bytes;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        rest = &rest[end + 1..];
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            if !is_hop_by_hop(&name) {
                map.append(name, value);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `bytes` in pieces of `step`, as the exchange's writes may cut them.
    fn decode(bytes: &[u8], step: usize, head: bool) -> ResponseDecoder {
        let mut dec = ResponseDecoder::new(head);
        let mut all = Vec::new();
        for piece in bytes.chunks(step) {
            let mut piece = piece;
            while !piece.is_empty() {
                let n = dec.feed(piece).unwrap();
                if n == 0 {
                    break;
                }
                piece = &piece[n..];
                all.extend_from_slice(&dec.take_data(usize::MAX));
            }
        }
        dec.data.extend_from_slice(&all);
        dec
    }

    /// Feed all of `bytes`, as the stream does: a call stops after a head.
    fn feed_all(dec: &mut ResponseDecoder, mut bytes: &[u8]) -> Result<(), Invalid> {
        while !bytes.is_empty() {
            let n = dec.feed(bytes)?;
            if n == 0 {
                break;
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    #[test]
    fn a_chunked_response_gives_its_data_and_trailers_in_any_pieces() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n\
            Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
            5\r\nhello\r\n6;x=y\r\n world\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n";
        for step in [1, 3, 7, wire.len()] {
            let dec = decode(wire, step, false);
            assert!(dec.is_done(), "step {step}");
            let head = dec.head.as_ref().unwrap();
            assert_eq!(head.status(), 200);
            assert!(head.headers().get("transfer-encoding").is_none());
            assert!(head.headers().get("connection").is_none());
            assert_eq!(head.headers()["content-type"], "application/grpc");
            assert_eq!(&dec.data[..], b"hello world", "step {step}");
            let trailers = dec.trailers.as_ref().unwrap();
            assert_eq!(trailers["grpc-status"], "0");
            assert_eq!(trailers["grpc-message"], "ok");
        }
    }

    #[test]
    fn lengths_heads_and_interim_responses() {
        let dec = decode(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 2, false);
        assert!(dec.is_done());
        assert_eq!(&dec.data[..], b"abc");
        assert!(dec.trailers.is_none());

        // HEAD, 204, 304: no body whatever the fields say.
        let dec = decode(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 64, true);
        assert!(dec.is_done() && dec.data.is_empty());
        assert_eq!(dec.head.unwrap().headers()["content-length"], "9");
        let dec = decode(
            b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
            64,
            false,
        );
        assert!(dec.is_done());

        let mut dec = ResponseDecoder::new(false);
        let wire = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\r\nrest";
        let n = dec.feed(wire).unwrap();
        assert_eq!(dec.interim.take().unwrap().status(), 103);
        assert!(!dec.head_seen());
        feed_all(&mut dec, &wire[n..]).unwrap();
        assert_eq!(dec.head.as_ref().unwrap().status(), 200);
        assert!(!dec.is_done(), "close-delimited");
        dec.feed(b"more").unwrap();
        assert!(dec.close() && dec.is_done());
        assert_eq!(&dec.data[..], b"restmore");
    }

    #[test]
    fn a_broken_response_is_invalid_and_a_short_one_is_cut() {
        let mut dec = ResponseDecoder::new(false);
        assert!(dec.feed(b"HTTP/1.1 200 OK\r\nBad Field\r\n\r\n").is_err());
        let mut dec = ResponseDecoder::new(false);
        feed_all(
            &mut dec,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        )
        .unwrap_err();
        let mut dec = ResponseDecoder::new(false);
        feed_all(&mut dec, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").unwrap();
        assert!(!dec.close(), "cut short");
    }
}
