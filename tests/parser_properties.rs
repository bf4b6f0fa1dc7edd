//! Randomised properties of corelb's pure HTTP code: the same properties
//! the cargo-fuzz targets in `fuzz/` check, run here as ordinary tests with
//! seeded generators (stable toolchain, bounded time, reproducible).
//!
//! - `parse_request` / `parse_response` never panic; they refuse only with
//!   the statuses corelb answers; a prefix of an acceptable head is never
//!   refused (a head arriving one byte at a time gets the same answer).
//! - What corelb forwards, corelb itself accepts with the same framing, and
//!   hop-by-hop fields are gone from it.
//! - The chunked decoder gives the same outcome however its input is split,
//!   and decodes whatever a valid encoder produced.
//! - A trailer section gets the verdict a head parser gives the same lines.
//!
//! The checks themselves are in `tests/support/`, shared with the targets.

use bytes::BytesMut;
use corelb::http::rewrite::{write_request_head, write_response_head, ClientAddr, ClientSide};
use corelb::http::{parse_request, parse_response, BodyKind, BodyProgress, MAX_HEADERS};
use httparse::EMPTY_HEADER;

#[path = "support/round_trip.rs"]
mod round_trip;
use round_trip::{check_request, check_response, header_values};

// ---------------------------------------------------------------------------
// Generators

const INTERESTING: &[u8] = &[
    0, b'\r', b'\n', b' ', b'\t', b':', b',', b';', b'=', b'"', 0x7f, 0x80, 0xff, b'0', b'f', b'-',
    b'+', b'/', b'?', b'\\', b'@',
];

/// Field names, with the values worth trying for each.
const FIELDS: &[(&str, &[&str])] = &[
    ("Host", &["a", "a:80", "[::1]:8080", "", "a b", "a@b"]),
    (
        "Content-Length",
        &["0", "5", "007", "+1", "1,1", "99999999999999999999", ""],
    ),
    (
        "Transfer-Encoding",
        &[
            "chunked",
            "gzip, chunked",
            "chunked, gzip",
            "identity",
            "",
            "CHUNKED",
        ],
    ),
    (
        "Connection",
        &[
            "close",
            "keep-alive",
            "x-a",
            "close, x-a, x-b",
            "upgrade",
            "te, trailer",
            "via",
            "x-forwarded-for",
            "content-length",
            "transfer-encoding",
            "keep-alive, x-forwarded-proto",
        ],
    ),
    ("Keep-Alive", &["timeout=5"]),
    ("Proxy-Connection", &["keep-alive"]),
    ("TE", &["trailers"]),
    ("Trailer", &["x-t"]),
    ("Upgrade", &["websocket", "h2c"]),
    ("Expect", &["100-continue", "100-Continue", "nope"]),
    ("X-Forwarded-For", &["1.2.3.4", "1.1.1.1, 2.2.2.2", ""]),
    ("X-Forwarded-Proto", &["https"]),
    ("Via", &["1.0 a", "1.1 b, 1.1 c"]),
    ("X-A", &["1", "caf\u{e9}"]),
    ("X-B", &["2"]),
    ("Cookie", &["a=b; c=d"]),
];

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

/// A request head (and a few body bytes) that is valid more often than not.
fn gen_request(rng: &mut fastrand::Rng) -> Vec<u8> {
    let method = *pick(
        rng,
        &[
            "GET", "POST", "HEAD", "PUT", "OPTIONS", "DELETE", "M-SEARCH", "CONNECT",
        ],
    );
    let target = *pick(
        rng,
        &[
            "/",
            "/a?b=c",
            "*",
            "http://h/x",
            "https://h",
            "/%2e%2e/x",
            "x",
            "/a/b/c",
        ],
    );
    let version = if rng.u8(..5) == 0 { "1.0" } else { "1.1" };
    let mut out = format!("{method} {target} HTTP/{version}\r\n").into_bytes();
    if rng.u8(..8) != 0 {
        out.extend_from_slice(b"Host: h\r\n");
    }
    finish_message(rng, out, 8)
}

/// A response head (and a few body bytes), valid more often than not.
fn gen_response(rng: &mut fastrand::Rng) -> Vec<u8> {
    let status = *pick(
        rng,
        &[
            "200 OK",
            "204 No Content",
            "304 Not Modified",
            "100 Continue",
            "103 Early Hints",
            "101 Switching",
            "404 Not Found",
            "999 X",
            "099 Low",
        ],
    );
    let version = if rng.u8(..4) == 0 { "1.0" } else { "1.1" };
    let out = format!("HTTP/{version} {status}\r\n").into_bytes();
    finish_message(rng, out, 6)
}

/// Complete a start line in `out`: fewer than `max_fields` header fields,
/// the blank line, a few body-like bytes, then perhaps some mutations.
fn finish_message(rng: &mut fastrand::Rng, mut out: Vec<u8>, max_fields: usize) -> Vec<u8> {
    for _ in 0..rng.usize(..max_fields) {
        let (name, values) = pick(rng, FIELDS);
        let value = pick(rng, values);
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    for _ in 0..rng.usize(..20) {
        out.push(*pick(rng, b"0123456789abcdef\r\n;=x"));
    }
    mutate(rng, &mut out);
    out
}

/// Sometimes a few byte-level changes.
fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>) {
    if rng.u8(..3) != 0 {
        return;
    }
    for _ in 0..rng.usize(1..4) {
        let len = input.len();
        if len == 0 {
            return;
        }
        match rng.u8(..4) {
            0 => input[rng.usize(..len)] ^= 1 << rng.u8(..8),
            1 => input[rng.usize(..len)] = *pick(rng, INTERESTING),
            2 => input.insert(rng.usize(..=len), *pick(rng, INTERESTING)),
            _ => {
                input.remove(rng.usize(..len));
            }
        }
    }
}

/// A chunked body with random sizes, extensions and trailers, plus the
/// payload it carries.
fn gen_chunked(rng: &mut fastrand::Rng) -> (Vec<u8>, Vec<u8>) {
    let mut wire = Vec::new();
    let mut payload = Vec::new();
    for _ in 0..rng.usize(..6) {
        let size = rng.usize(1..40);
        let hex = if rng.bool() {
            format!("{size:x}")
        } else {
            format!("{size:X}")
        };
        let zeros = "0".repeat(rng.usize(..3));
        wire.extend_from_slice(format!("{zeros}{hex}").as_bytes());
        for _ in 0..rng.usize(..3) {
            let ext = *pick(rng, &[";a", ";a=b", ";name=\"q \\\" v\"", ";x-y=1;z"]);
            wire.extend_from_slice(ext.as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        let data: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
        wire.extend_from_slice(&data);
        payload.extend_from_slice(&data);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n");
    for _ in 0..rng.usize(..3) {
        let t = *pick(rng, &["X-T: 1\r\n", "Digest: sha=abc\r\n", "Empty:\r\n"]);
        wire.extend_from_slice(t.as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    (wire, payload)
}

// ---------------------------------------------------------------------------
// Request heads

#[test]
fn request_heads_round_trip_through_the_proxy() {
    let mut rng = fastrand::Rng::with_seed(0xC0DE_0001);
    let mut accepted = 0;
    for _ in 0..100_000 {
        let input = gen_request(&mut rng);
        if check_request(&input, |len| rng.usize(..len)) {
            accepted += 1;
        }
    }
    assert!(
        accepted > 10_000,
        "only {accepted} generated requests were accepted: the generator is off"
    );
}

#[test]
fn random_bytes_never_panic_the_parsers() {
    let mut rng = fastrand::Rng::with_seed(0xC0DE_0002);
    for _ in 0..100_000 {
        let len = rng.usize(..64);
        let mut input: Vec<u8> = (0..len)
            .map(|_| *pick(&mut rng, b"GET /HTP1.\r\n: Hostxa0;"))
            .collect();
        if rng.bool() {
            input.splice(0..0, b"GET / HTTP/1.1\r\n".iter().copied());
        }
        check_request(&input, |len| rng.usize(..len));
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let _ = parse_response(&input, &mut headers, rng.bool());
    }
}

#[test]
fn connection_naming_host_keeps_host_in_the_forwarded_head() {
    // `Connection: host` marks Host hop-by-hop, and write_request_head then
    // drops it: an HTTP/1.1 request without Host goes to the backend.
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: h\r\nConnection: host\r\n\r\n"[..],
        b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive, host\r\n\r\n",
    ] {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(raw, &mut headers).unwrap().unwrap();
        let mut out = BytesMut::new();
        write_request_head(
            &mut out,
            &req,
            &ClientAddr::new([192, 0, 2, 7].into()),
            b"backend:80",
        );
        let mut again = [EMPTY_HEADER; MAX_HEADERS];
        let fwd = parse_request(&out, &mut again);
        assert!(
            matches!(fwd, Ok(Some(ref f)) if header_values(f.headers, "host").len() == 1),
            "{:?} is forwarded as {:?} ({fwd:?})",
            String::from_utf8_lossy(raw),
            String::from_utf8_lossy(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// Response heads

#[test]
fn response_heads_round_trip_to_the_client() {
    let mut rng = fastrand::Rng::with_seed(0xC0DE_0003);
    let mut accepted = 0;
    for _ in 0..100_000 {
        let input = gen_response(&mut rng);
        let was_head = rng.u8(..4) == 0;
        let client = ClientSide {
            http11: rng.u8(..4) != 0,
            keep_alive: rng.bool(),
        };
        if check_response(&input, was_head, client, |len| rng.usize(..len)) {
            accepted += 1;
        }
    }
    assert!(accepted > 10_000, "only {accepted} responses accepted");
}

#[test]
fn response_connection_naming_framing_fields_keeps_the_framing() {
    // write_response_head drops every field the backend's Connection names,
    // Content-Length and Transfer-Encoding included, while corelb still
    // relays the body with that framing and keeps the client connection
    // open: the client reads a body with no framing at all.
    for raw in [
        &b"HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
            [..],
        b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n",
    ] {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let res = parse_response(raw, &mut headers, false).unwrap().unwrap();
        let mut out = BytesMut::new();
        let client = ClientSide {
            http11: true,
            keep_alive: true,
        };
        write_response_head(&mut out, &res, client);
        let mut again = [EMPTY_HEADER; MAX_HEADERS];
        let sent = parse_response(&out, &mut again, false).unwrap().unwrap();
        assert_eq!(
            sent.body,
            res.body,
            "{:?} is sent to the client as {:?}",
            String::from_utf8_lossy(raw),
            String::from_utf8_lossy(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// Chunked bodies

#[path = "support/chunk_outcome.rs"]
mod chunk_outcome;
use chunk_outcome::{decode_in_pieces, decode_whole, Outcome};

/// Random pieces: often single bytes, otherwise up to 16.
fn decode_split(input: &[u8], rng: &mut fastrand::Rng) -> Outcome {
    decode_in_pieces(input, || if rng.bool() { 1 } else { rng.usize(1..=16) })
}

#[test]
fn chunked_decoding_does_not_depend_on_how_input_is_split() {
    let mut rng = fastrand::Rng::with_seed(0xC0DE_0004);
    let mut done = 0;
    for _ in 0..100_000 {
        let (mut wire, _) = gen_chunked(&mut rng);
        mutate(&mut rng, &mut wire);
        if rng.bool() {
            wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        }
        let whole = decode_whole(&wire);
        let split = decode_split(&wire, &mut rng);
        assert_eq!(whole, split, "input {:?}", String::from_utf8_lossy(&wire));
        if whole.done {
            done += 1;
            assert!(wire[..whole.consumed].ends_with(b"\r\n"));
        }
    }
    assert!(done > 10_000, "only {done} bodies completed");
}

#[test]
fn chunked_bodies_from_a_valid_encoder_decode_exactly() {
    let mut rng = fastrand::Rng::with_seed(0xC0DE_0005);
    for _ in 0..100_000 {
        let (wire, payload) = gen_chunked(&mut rng);
        let mut input = wire.clone();
        input.extend_from_slice(b"NEXT");
        let got = decode_split(&input, &mut rng);
        assert_eq!(
            got,
            Outcome {
                payload,
                consumed: wire.len(),
                done: true,
                error: None
            },
            "{:?}",
            String::from_utf8_lossy(&wire)
        );
    }
}

#[test]
fn chunk_sizes_a_signed_parser_reads_as_negative_are_refused() {
    // 2^63 and above is negative as i64/off_t (nginx refuses it): forwarding
    // such a size lets the proxy and the backend disagree on the body.
    for size in ["8000000000000000", "ffffffffffffffff"] {
        let input = format!("{size}\r\nabc");
        let got = decode_whole(input.as_bytes());
        assert!(got.error.is_some(), "chunk size {size} accepted: {got:?}");
    }
}

#[test]
fn content_length_bodies_in_random_pieces() {
    let mut rng = fastrand::Rng::with_seed(0xC0DE_0006);
    for _ in 0..20_000 {
        let n = rng.u64(1..5000);
        let mut body = BodyProgress::new(BodyKind::Length(n));
        let mut total = 0u64;
        while !body.is_done() {
            let room = rng.usize(1..300);
            let limit = body.read_limit(room);
            assert!(limit <= room && limit as u64 <= n - total);
            let piece = vec![b'x'; rng.usize(0..=room)];
            let p = body.advance(&piece, |_| {}).unwrap();
            assert_eq!(p.consumed as u64, (n - total).min(piece.len() as u64));
            total += p.consumed as u64;
        }
        assert_eq!(total, n);
        assert!(body.end_of_stream());
    }
}

// ---------------------------------------------------------------------------
// Trailer sections

#[path = "support/trailer_agreement.rs"]
mod trailer_agreement;

/// Trailer field names: ones trailers carry, ones they may not (in several
/// spellings), and near misses of the latter.
const TRAILER_NAMES: &[&str] = &[
    "Checksum",
    "grpc-status",
    "Server-Timing",
    "X-T",
    "Content-Length",
    "content_length",
    "TRANSFER-ENCODING",
    "Host",
    "Hosts",
    "TE",
    "T",
    "Trailer",
    "X-Forwarded-For",
    "x_forwarded_proto",
    "Content-Length-Checksum",
    "Connection",
    "Expect",
];

/// A trailer section, valid more often than not, sometimes followed by
/// the next message.
fn gen_trailers(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.usize(..4) {
        let name = *pick(rng, TRAILER_NAMES);
        let value = *pick(rng, &["abc", "", " 0 ", "\t\u{e9}", "a, b"]);
        out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    mutate(rng, &mut out);
    if rng.u8(..4) == 0 {
        out.extend_from_slice(b"GET / HTTP/1.1\r\n");
    }
    out
}

#[test]
fn trailer_sections_get_the_verdict_of_a_head() {
    let mut rng = fastrand::Rng::with_seed(0xC0DE_0007);
    for _ in 0..50_000 {
        let trailers = gen_trailers(&mut rng);
        let payload: &[u8] = if rng.bool() { b"hello" } else { b"" };
        let mut steps = fastrand::Rng::with_seed(rng.u64(..));
        trailer_agreement::check(payload, &trailers, || steps.usize(1..=16));
    }
    // The limits, which random sections do not reach.
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    trailer_agreement::check(b"", format!("{many}\r\n").as_bytes(), || 7);
    let long = format!("X-Long: {}\r\n\r\n", "a".repeat(16 * 1024));
    trailer_agreement::check(b"", long.as_bytes(), || 64);
}
