//! Arbitrary bytes as the first bytes of a connection on a PROXY protocol
//! listener: `parse` never panics; a header it accepts stands on its own
//! (the same answer from exactly its bytes, and "more needed" from each
//! shorter prefix), is within the length bound, and is judged the same
//! whatever follows it; "more needed" is never said of a buffer at the
//! bound. The first byte also picks addresses for the writer: what it
//! writes parses back to the same client.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use corelb::proxy_protocol::{encode, parse, Parsed, Version, MAX_LEN, MAX_WRITTEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Parsed::Header { len, client } => {
            assert!(len <= data.len() && len <= MAX_LEN);
            assert_eq!(parse(&data[..len]), Parsed::Header { len, client });
            for cut in [0, len / 2, len - 1] {
                assert_eq!(parse(&data[..cut]), Parsed::Incomplete, "prefix {cut} of {len}");
            }
        }
        Parsed::Incomplete => assert!(data.len() < MAX_LEN),
        Parsed::Invalid(_) => {
            let mut more = data.to_vec();
            more.extend_from_slice(b" 1 2\r\n");
            assert!(matches!(parse(&more), Parsed::Invalid(_)), "more bytes fixed it");
        }
    }
    if data.len() >= 37 {
        let version = if data[0] & 1 == 0 { Version::V1 } else { Version::V2 };
        let addr = |b: &[u8]| -> SocketAddr {
            let ip: IpAddr = if b[0] & 1 == 0 {
                IpAddr::from([b[1], b[2], b[3], b[4]])
            } else {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&b[1..17]);
                IpAddr::from(octets)
            };
            SocketAddr::new(ip, u16::from_be_bytes([b[0], b[17]]))
        };
        let (client, local) = (addr(&data[1..19]), addr(&data[19..37]));
        let mut out = [0u8; MAX_WRITTEN];
        let len = encode(version, client, local, &mut out);
        match parse(&out[..len]) {
            Parsed::Header { len: l, client: Some(c) } => {
                assert_eq!(l, len);
                assert_eq!(c.port(), client.port());
                let same = match (c.ip(), client.ip()) {
                    (a, b) if a == b => true,
                    (IpAddr::V6(a), IpAddr::V4(b)) => a.to_ipv4_mapped() == Some(b),
                    _ => false,
                };
                assert!(same, "{client} came back as {c}");
            }
            other => panic!("{other:?}"),
        }
    }
});
