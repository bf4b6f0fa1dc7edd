//! Arbitrary bytes as the trailer section of a chunked body: the decoder
//! must never panic, must give the same outcome however the body is split,
//! must never pass trailer bytes off as payload, and must agree with the
//! head parser on every field line (same verdict, same end), refusing
//! besides only fields trailers may not carry. The checks live in
//! `tests/support/trailer_agreement.rs`, shared with the seeded test in
//! `tests/parser_properties.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/chunk_outcome.rs"]
mod chunk_outcome;
#[path = "../../tests/support/trailer_agreement.rs"]
mod trailer_agreement;

/// Payload of the data chunk before the last one, when the first byte asks
/// for one.
const PAYLOAD: &[u8] = b"hello";

fuzz_target!(|data: &[u8]| {
    // First byte: bits 0-2 how many cut sizes follow, bit 3 a data chunk
    // first. Then the cut sizes, then the trailer section.
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(flags & 7).min(rest.len());
    let (cuts, trailers) = rest.split_at(n);
    let payload = if flags & 8 != 0 { PAYLOAD } else { b"" };
    let mut i = 0;
    trailer_agreement::check(payload, trailers, || {
        let step = 1 + usize::from(cuts.get(i % cuts.len().max(1)).copied().unwrap_or(0)) % 97;
        i += 1;
        step
    });
});
