//! The chunked decoder is a pure function of the byte stream: feeding it
//! the input in arbitrary pieces gives exactly what feeding it whole gives
//! (same payload, same bytes consumed, same end, same error).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/chunk_outcome.rs"]
mod chunk_outcome;
use chunk_outcome::{decode_in_pieces, decode_whole as whole, Outcome};

/// Pieces of 1..=97 bytes, sizes taken from `cuts` in turn.
fn pieces(input: &[u8], cuts: &[u8]) -> Outcome {
    let mut i = 0;
    decode_in_pieces(input, || {
        let step = 1 + usize::from(cuts.get(i % cuts.len().max(1)).copied().unwrap_or(0)) % 97;
        i += 1;
        step
    })
}

fuzz_target!(|data: &[u8]| {
    let n = usize::from(data.first().copied().unwrap_or(0) % 8);
    let (cuts, input) = data
        .get(1..)
        .unwrap_or(&[])
        .split_at(n.min(data.len().saturating_sub(1)));
    let a = whole(input);
    let b = pieces(input, cuts);
    assert_eq!(
        a,
        b,
        "input {:?} cuts {cuts:?}",
        String::from_utf8_lossy(input)
    );
    if a.done {
        assert!(input[..a.consumed].ends_with(b"\r\n"));
        assert!(a.payload.len() < a.consumed);
    }
});
