//! Arbitrary bytes as a client's request head followed by a backend's
//! response head: the decision "does this open a tunnel" must never
//! panic, must open one only for a `101` naming exactly the protocol the
//! request asked for, and the `101` corelb relays must parse again as a
//! switch to that protocol.
//!
//! Input: request head, then the response head from the first
//! `\r\n\r\n` on; the first byte's low bit says whether the pool allows
//! the asked protocol besides websocket.

#![no_main]

use bytes::BytesMut;
use corelb::http::rewrite::{write_request_head_upgrading, write_switching_head, ClientAddr};
use corelb::http::upgrade::{may_forward, opens_tunnel, single_protocol, Protocol};
use corelb::http::{parse_request, parse_response, MAX_HEADERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut req_fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(Some(req)) = parse_request(data, &mut req_fields) else {
        return;
    };
    let allowed: Vec<String> = match (flags & 1 != 0, req.upgrade) {
        (true, Some(p)) => vec![String::from_utf8_lossy(p).to_ascii_lowercase()],
        _ => Vec::new(),
    };
    let asked = req
        .upgrade
        .filter(|p| may_forward(req.method, p, &allowed))
        .and_then(Protocol::new);
    if let Some(p) = asked {
        assert!(req.body == corelb::http::BodyKind::Empty, "an upgrade with a body");
        assert!(req.minor_version == 1 && req.method != "CONNECT");
        // The forwarded head asks for it too, once.
        let mut out = BytesMut::new();
        write_request_head_upgrading(
            &mut out,
            &req,
            &ClientAddr::new([10, 0, 0, 1].into()),
            b"b",
            Some(p.as_bytes()),
        );
        let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
        let sent = parse_request(&out, &mut again)
            .expect("corelb forwards a head it accepts")
            .expect("a whole head");
        assert_eq!(sent.upgrade, Some(p.as_bytes()));
    }

    let rest = &data[req.len..];
    let mut res_fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(Some(res)) = parse_response(rest, &mut res_fields, false) else {
        return;
    };
    let asked_bytes = asked.as_ref().map(Protocol::as_bytes);
    let opens = opens_tunnel(asked_bytes, res.code, res.headers);
    if !opens {
        return;
    }
    let protocol = asked_bytes.expect("a tunnel only for a request that asked");
    assert_eq!(res.code, 101);
    let named = single_protocol(res.headers).expect("the 101 names a protocol");
    assert!(named.eq_ignore_ascii_case(protocol));
    let mut out = BytesMut::new();
    write_switching_head(&mut out, &res, protocol);
    let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
    let relayed = parse_response(&out, &mut again, false)
        .expect("corelb relays a 101 it accepts")
        .expect("a whole head");
    assert_eq!(relayed.code, 101);
    assert_eq!(relayed.len, out.len());
    assert!(opens_tunnel(Some(protocol), relayed.code, relayed.headers));
});
