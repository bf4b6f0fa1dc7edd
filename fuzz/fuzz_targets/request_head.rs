//! Arbitrary bytes as a client's request: `parse_request` must never panic
//! or refuse with a status corelb does not answer, a prefix of an accepted
//! head must never be refused, the head corelb would forward must be one
//! corelb itself accepts with the same framing (an absolute-form target in
//! origin form, its authority as Host), without hop-by-hop fields, with one
//! X-Forwarded-For, X-Forwarded-Proto and Via; and the body bookkeeping
//! must never over-consume. The checks live in
//! `tests/support/round_trip.rs`, shared with `tests/parser_properties.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // each target uses one of its checks
#[path = "../../tests/support/round_trip.rs"]
mod round_trip;

fuzz_target!(|data: &[u8]| {
    // Prefix cuts drawn from the input, so a crash replays exactly.
    let mut k = data.len();
    round_trip::check_request(data, |len| {
        k = k.wrapping_mul(31).wrapping_add(7);
        k % len
    });
});
