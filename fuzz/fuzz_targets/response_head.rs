//! Arbitrary bytes as a backend's response: `parse_response` must never
//! panic, and the head corelb would send the client must parse again with
//! the same status and framing.

#![no_main]

use bytes::BytesMut;
use corelb::http::rewrite::{write_interim_head, write_response_head, ClientSide};
use corelb::http::{parse_response, BodyKind, BodyProgress, MAX_HEADERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let was_head = flags & 1 != 0;
    let client = ClientSide {
        http11: flags & 2 != 0,
        keep_alive: flags & 4 != 0,
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let res = match parse_response(data, &mut headers, was_head) {
        Ok(Some(res)) => res,
        Ok(None) => return,
        Err(e) => {
            assert_eq!(e.status, 502, "{e:?}");
            return;
        }
    };
    assert!(res.len <= data.len());
    let mut out = BytesMut::new();
    if res.is_informational() {
        write_interim_head(&mut out, &res);
    } else {
        write_response_head(&mut out, &res, client);
    }
    let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
    let sent = match parse_response(&out, &mut again, was_head) {
        Ok(Some(s)) => s,
        other => panic!(
            "corelb sends a head it would itself refuse ({other:?}):\n{:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(sent.code, res.code);
    assert_eq!(sent.len, out.len());
    if !client.must_dechunk(res.body) {
        assert_eq!(sent.body, res.body, "{:?}", String::from_utf8_lossy(&out));
    } else {
        assert_eq!(sent.body, BodyKind::CloseDelimited);
    }

    let rest = &data[res.len..];
    let mut body = BodyProgress::new(res.body);
    if let Ok(p) = body.advance(rest, |_| {}) {
        assert!(p.consumed <= rest.len());
    }
    let _ = body.end_of_stream();
});
