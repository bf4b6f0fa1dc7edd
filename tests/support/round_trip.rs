//! What must hold of every head corelb accepts and passes on: a request it
//! forwards, a response it relays. Shared by `tests/parser_properties.rs`
//! (seeded generators) and the `request_head` and `response_head` fuzz
//! targets (both include this file by path), so the two never check
//! different things.
//!
//! - `parse_request` / `parse_response` never panic; they refuse only with
//!   the statuses corelb answers; a prefix of an acceptable head is never
//!   refused (a head arriving one byte at a time gets the same answer).
//! - What corelb forwards, corelb itself accepts with the same framing, and
//!   hop-by-hop fields are gone from it.
//! - The body bookkeeping never over-consumes.

use bytes::BytesMut;
use corelb::http::rewrite::{
    write_interim_head, write_request_head, write_response_head, ClientAddr, ClientSide,
};
use corelb::http::{parse_request, parse_response, BodyKind, BodyProgress, MAX_HEADERS};
use httparse::EMPTY_HEADER;

pub fn header_values<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
        .collect()
}

/// Every property of one request input; `cut_below(n)` gives a length
/// under `n` to cut a prefix at. Returns whether it was accepted.
pub fn check_request(input: &[u8], mut cut_below: impl FnMut(usize) -> usize) -> bool {
    let show = || format!("{:?}", String::from_utf8_lossy(input));
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let req = match parse_request(input, &mut headers) {
        Ok(Some(req)) => req,
        Ok(None) => return false,
        Err(e) => {
            assert!(
                [400, 417, 431, 501, 505].contains(&e.status),
                "{e:?} for {}",
                show()
            );
            return false;
        }
    };
    assert!(req.len <= input.len() && input[..req.len].ends_with(b"\r\n\r\n"));

    // A head that arrives in pieces is never refused on the way.
    for _ in 0..2 {
        let cut = cut_below(req.len);
        let mut h = [EMPTY_HEADER; MAX_HEADERS];
        let r = parse_request(&input[..cut], &mut h);
        assert!(
            matches!(r, Ok(None)),
            "prefix of {cut} bytes gave {r:?} for {}",
            show()
        );
    }

    let mut out = BytesMut::new();
    let client = ClientAddr::new([192, 0, 2, 7].into());
    write_request_head(&mut out, &req, &client, b"backend:80");
    let fwd_text = String::from_utf8_lossy(&out).into_owned();
    let mut again = [EMPTY_HEADER; MAX_HEADERS + 8];
    let fwd = match parse_request(&out, &mut again) {
        Ok(Some(f)) => f,
        other => panic!(
            "corelb would forward a head it refuses itself ({other:?}):\n{fwd_text}\nfrom {}",
            show()
        ),
    };
    assert_eq!(fwd.len, out.len());
    // An absolute-form target goes upstream in origin form, its authority
    // as Host (RFC 9112 §3.2.2).
    let want_target = match req.absolute_form() {
        Some((authority, rest)) => {
            assert_eq!(fwd.host, Some(authority), "{fwd_text}");
            let rest = String::from_utf8_lossy(rest);
            if rest.starts_with('/') {
                rest.into_owned()
            } else {
                format!("/{rest}")
            }
        }
        None => req.target.to_string(),
    };
    assert_eq!(
        (fwd.method, fwd.target, fwd.body, fwd.minor_version),
        (req.method, want_target.as_str(), req.body, 1),
        "{fwd_text}"
    );
    assert_eq!(header_values(fwd.headers, "host").len(), 1, "{fwd_text}");
    for hop in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    ] {
        assert!(
            header_values(fwd.headers, hop).is_empty(),
            "{hop} forwarded: {fwd_text}"
        );
    }
    // fields the client's Connection named stop here too
    let listed: Vec<Vec<u8>> = header_values(req.headers, "connection")
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|s| s.trim_ascii().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in &listed {
        let protected: &[&[u8]] = &[
            b"host",
            b"content-length",
            b"transfer-encoding",
            b"x-forwarded-for",
            b"x-forwarded-proto",
            b"via",
            b"close",
            b"keep-alive",
        ];
        if protected.contains(&name.as_slice()) {
            continue;
        }
        assert!(
            !fwd.headers
                .iter()
                .any(|h| h.name.as_bytes().eq_ignore_ascii_case(name)),
            "{:?} was listed in Connection yet forwarded: {fwd_text}",
            String::from_utf8_lossy(name)
        );
    }
    let xff = header_values(fwd.headers, "x-forwarded-for");
    assert!(
        xff.len() == 1 && xff[0].ends_with(b"192.0.2.7"),
        "{fwd_text}"
    );
    assert_eq!(
        header_values(fwd.headers, "x-forwarded-proto"),
        [b"http"],
        "{fwd_text}"
    );
    let via = header_values(fwd.headers, "via");
    assert!(
        via.len() == 1 && via[0].ends_with(b"1.1 corelb"),
        "{fwd_text}"
    );

    // The body bookkeeping never over-consumes or panics.
    let rest = &input[req.len..];
    let mut body = BodyProgress::new(req.body);
    assert!(body.read_limit(rest.len()) <= rest.len());
    let mut seen = 0;
    if let Ok(p) = body.advance(rest, |d| seen += d.len()) {
        assert!(p.consumed <= rest.len() && seen <= p.consumed);
        assert_eq!(p.done, body.is_done());
        if let BodyKind::Length(n) = req.body {
            assert_eq!(p.consumed as u64, n.min(rest.len() as u64));
        }
    }
    let _ = body.end_of_stream();
    true
}

/// Every property of one response input, for a request that was
/// (`was_head`) or was not HEAD, relayed to `client`; `cut_below` as for
/// [`check_request`]. Returns whether it was accepted.
pub fn check_response(
    input: &[u8],
    was_head: bool,
    client: ClientSide,
    mut cut_below: impl FnMut(usize) -> usize,
) -> bool {
    let show = String::from_utf8_lossy(input).into_owned();
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let res = match parse_response(input, &mut headers, was_head) {
        Ok(Some(res)) => res,
        Ok(None) => return false,
        Err(e) => {
            assert_eq!(e.status, 502, "{e:?} for {show:?}");
            return false;
        }
    };
    assert!(res.len <= input.len());
    for _ in 0..2 {
        let cut = cut_below(res.len);
        let mut h = [EMPTY_HEADER; MAX_HEADERS];
        let r = parse_response(&input[..cut], &mut h, was_head);
        assert!(matches!(r, Ok(None)), "prefix {cut} gave {r:?}: {show:?}");
    }
    let mut out = BytesMut::new();
    if res.is_informational() {
        write_interim_head(&mut out, &res);
    } else {
        write_response_head(&mut out, &res, client);
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let mut again = [EMPTY_HEADER; MAX_HEADERS + 8];
    let sent = match parse_response(&out, &mut again, was_head) {
        Ok(Some(s)) => s,
        other => panic!("corelb would send a head it refuses ({other:?}): {text}"),
    };
    assert_eq!((sent.code, sent.len), (res.code, out.len()), "{text}");
    if !res.is_informational() {
        if client.must_dechunk(res.body) {
            assert_eq!(sent.body, BodyKind::CloseDelimited, "{text}");
        } else {
            assert_eq!(sent.body, res.body, "{show:?} became {text}");
        }
    }
    for hop in ["keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
        assert!(
            header_values(sent.headers, hop).is_empty(),
            "{hop} sent: {text}"
        );
    }
    let rest = &input[res.len..];
    let mut body = BodyProgress::new(res.body);
    if let Ok(p) = body.advance(rest, |_| {}) {
        assert!(p.consumed <= rest.len());
    }
    let _ = body.end_of_stream();
    true
}
