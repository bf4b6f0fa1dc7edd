//! The chunked decoder's verdict on a trailer section must be the head
//! parser's verdict on the same field lines: a trailer section is a header
//! section (RFC 9112 §7.1.2), and corelb promises to hold it to a head's
//! rules (token names, the colon right after the name, value bytes, CRLF
//! line ends, limits), refusing besides only the fields trailers may not
//! carry. Two checkers written apart — a streaming state machine and
//! httparse plus `parse_response`'s own checks — must agree on every input,
//! byte for byte on where the section ends.
//!
//! Shared by `tests/parser_properties.rs` and the `trailers` fuzz target
//! (both include this file and `chunk_outcome.rs` by path).

use corelb::http::body::MAX_TRAILER_BYTES;
use corelb::http::field::is_forbidden_in_trailers;
use corelb::http::{parse_response, ChunkError, MAX_HEADERS};

// The includer includes `chunk_outcome.rs` too, as `chunk_outcome`.
use super::chunk_outcome::{decode_in_pieces, decode_whole};

/// Prepended to the trailer section to make a response head of it.
const STATUS_LINE: &[u8] = b"HTTP/1.1 200 OK\r\n";

/// A chunked body carrying `payload` (one chunk, if not empty), then the
/// last chunk, then `trailers` as the trailer section (and whatever
/// follows it). Returns the body and where the trailer section starts.
pub fn chunked_with_trailers(payload: &[u8], trailers: &[u8]) -> (Vec<u8>, usize) {
    let mut body = Vec::new();
    if !payload.is_empty() {
        body.extend_from_slice(format!("{:x}\r\n", payload.len()).as_bytes());
        body.extend_from_slice(payload);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    let start = body.len();
    body.extend_from_slice(trailers);
    (body, start)
}

/// Check the decoder against the head parser on `trailers`, after a chunk
/// carrying `payload`, with the body fed whole and in pieces of
/// `next_step()` bytes. Panics, naming the input, on any disagreement.
pub fn check(payload: &[u8], trailers: &[u8], next_step: impl FnMut() -> usize) {
    let (body, start) = chunked_with_trailers(payload, trailers);
    let whole = decode_whole(&body);
    let split = decode_in_pieces(&body, next_step);
    let show = || String::from_utf8_lossy(trailers).into_owned();
    assert_eq!(
        whole,
        split,
        "split decode differs on trailers {:?}",
        show()
    );
    // Trailer bytes never reach the payload, whatever they hold.
    assert!(payload.starts_with(&whole.payload), "{:?}", show());
    if whole.done {
        assert_eq!(whole.payload, payload, "{:?}", show());
    }

    let mut head = STATUS_LINE.to_vec();
    head.extend_from_slice(trailers);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed = parse_response(&head, &mut headers, false);
    match (&whole.error, whole.done, parsed) {
        // Accepted: the head parser accepts the same lines, ending at the
        // same byte, and none of them is a field trailers may not carry.
        (None, true, Ok(Some(h))) => {
            assert_eq!(
                whole.consumed - start,
                h.len - STATUS_LINE.len(),
                "the decoder and the head parser end the section at different bytes: {:?}",
                show()
            );
            let names: Vec<&str> = h.headers.iter().map(|f| f.name).collect();
            assert!(
                !names.iter().any(|n| is_forbidden_in_trailers(n.as_bytes())),
                "a forbidden trailer field was accepted: {names:?} in {:?}",
                show()
            );
        }
        (None, true, other) => panic!(
            "the decoder accepts trailers the head parser does not ({other:?}): {:?}",
            show()
        ),
        // Still reading: no field line so far is refused by the head parser.
        (None, false, Ok(None)) => {}
        (None, false, other) => panic!(
            "the decoder waits for more where the head parser decided ({other:?}): {:?}",
            show()
        ),
        // Refused where the head parser accepts: only for a field trailers
        // may not carry, or a section over the size limit.
        (Some(e), _, Ok(Some(h))) => {
            let forbidden = h
                .headers
                .iter()
                .any(|f| is_forbidden_in_trailers(f.name.as_bytes()));
            let too_long = h.len - STATUS_LINE.len() > MAX_TRAILER_BYTES;
            assert!(
                (*e == ChunkError::ForbiddenTrailer && forbidden)
                    || (*e == ChunkError::TooLong && too_long),
                "the decoder refuses ({e:?}) trailers the head parser accepts: {:?}",
                show()
            );
        }
        // Refused before the head parser can tell: the decoder decides at
        // a forbidden name's colon, at the byte over a limit, and at a
        // bare LF (which the head parser refuses only once the head ends).
        (Some(e), _, Ok(None)) => {
            let lines: Vec<&[u8]> = trailers.split(|&b| b == b'\n').collect();
            let bare_lf = lines[..lines.len() - 1]
                .iter()
                .any(|line| !line.ends_with(b"\r"));
            let forbidden = lines
                .iter()
                .any(|line| match line.iter().position(|&b| b == b':') {
                    Some(colon) => is_forbidden_in_trailers(&line[..colon]),
                    None => false,
                });
            let too_long = trailers.len() > MAX_TRAILER_BYTES || lines.len() > MAX_HEADERS;
            let explained = match e {
                ChunkError::ForbiddenTrailer => forbidden,
                ChunkError::TooLong => too_long,
                ChunkError::BadLine => bare_lf,
                _ => false,
            };
            assert!(
                explained,
                "the decoder refuses ({e:?}) trailers the head parser still reads: {:?}",
                show()
            );
        }
        (Some(_), _, Err(_)) => {}
    }
}
