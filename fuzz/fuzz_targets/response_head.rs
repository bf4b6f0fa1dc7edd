//! Arbitrary bytes as a backend's response: `parse_response` must never
//! panic or refuse with anything but 502, a prefix of an accepted head must
//! never be refused, and the head corelb would send the client must parse
//! again with the same status and framing (or close-delimited, de-chunked
//! for HTTP/1.0), without hop-by-hop fields. The checks live in
//! `tests/support/round_trip.rs`, shared with `tests/parser_properties.rs`.

#![no_main]

use corelb::http::rewrite::ClientSide;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // each target uses one of its checks
#[path = "../../tests/support/round_trip.rs"]
mod round_trip;

fuzz_target!(|data: &[u8]| {
    // First byte: bit 0 the request was HEAD, bits 1-2 the client.
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let client = ClientSide {
        http11: flags & 2 != 0,
        keep_alive: flags & 4 != 0,
    };
    let mut k = data.len();
    round_trip::check_response(data, flags & 1 != 0, client, |len| {
        k = k.wrapping_mul(31).wrapping_add(7);
        k % len
    });
});
