//! Arbitrary bytes as a client's request: `parse_request` must never panic,
//! the head corelb would forward must be one corelb itself accepts with the
//! same framing, and the body bookkeeping must never panic or over-consume.

#![no_main]

use bytes::BytesMut;
use corelb::http::rewrite::{write_request_head, ClientAddr};
use corelb::http::{parse_request, BodyProgress, MAX_HEADERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let req = match parse_request(data, &mut headers) {
        Ok(Some(req)) => req,
        Ok(None) => return,
        Err(e) => {
            assert!((400..600).contains(&e.status), "{e:?}");
            return;
        }
    };
    assert!(req.len <= data.len());
    let _ = (req.path(), req.host_name(), req.is_head());

    let mut out = BytesMut::new();
    let client = ClientAddr::new([10, 0, 0, 1].into());
    write_request_head(&mut out, &req, &client, b"backend:80");
    // corelb adds at most a handful of fields.
    let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
    let forwarded = match parse_request(&out, &mut again) {
        Ok(Some(f)) => f,
        other => panic!(
            "corelb forwards a head it would itself refuse ({other:?}):\n{:?}\nfrom\n{:?}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&data[..req.len])
        ),
    };
    assert_eq!(forwarded.len, out.len());
    assert_eq!(forwarded.body, req.body);
    assert_eq!(forwarded.method, req.method);
    assert_eq!(forwarded.target, req.target);
    assert_eq!(forwarded.minor_version, 1);

    let rest = &data[req.len..];
    let mut body = BodyProgress::new(req.body);
    let limit = body.read_limit(rest.len());
    assert!(limit <= rest.len());
    let mut payload = 0;
    if let Ok(p) = body.advance(rest, |d| payload += d.len()) {
        assert!(p.consumed <= rest.len());
        assert!(payload <= p.consumed);
        assert_eq!(p.done, body.is_done());
    }
    let _ = body.end_of_stream();
});
