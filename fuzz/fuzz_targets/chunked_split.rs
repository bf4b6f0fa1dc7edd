//! The chunked decoder is a pure function of the byte stream: feeding it
//! the input in arbitrary pieces gives exactly what feeding it whole gives
//! (same payload, same bytes consumed, same end, same error).

#![no_main]

use corelb::http::{BodyKind, BodyProgress, ChunkError, ChunkedDecoder};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    payload: Vec<u8>,
    consumed: usize,
    done: bool,
    error: Option<ChunkError>,
}

fn whole(input: &[u8]) -> Outcome {
    let mut d = ChunkedDecoder::new();
    let mut payload = Vec::new();
    match d.feed(input, |b| payload.extend_from_slice(b)) {
        Ok(p) => {
            assert_eq!(p.done, d.is_done());
            Outcome {
                payload,
                consumed: p.consumed,
                done: p.done,
                error: None,
            }
        }
        Err(e) => Outcome {
            payload,
            consumed: 0,
            done: false,
            error: Some(e),
        },
    }
}

fn pieces(input: &[u8], cuts: &[u8]) -> Outcome {
    let mut body = BodyProgress::new(BodyKind::Chunked);
    let mut payload = Vec::new();
    let mut consumed = 0;
    let mut at = 0;
    let mut i = 0;
    while at < input.len() {
        let step = 1 + usize::from(cuts.get(i % cuts.len().max(1)).copied().unwrap_or(0)) % 97;
        i += 1;
        let piece = &input[at..(at + step).min(input.len())];
        match body.advance(piece, |b| payload.extend_from_slice(b)) {
            Ok(p) => {
                assert!(p.consumed <= piece.len());
                consumed += p.consumed;
                if p.done {
                    return Outcome {
                        payload,
                        consumed,
                        done: true,
                        error: None,
                    };
                }
                assert_eq!(p.consumed, piece.len(), "stopped early without ending");
            }
            Err(e) => {
                return Outcome {
                    payload,
                    consumed: 0,
                    done: false,
                    error: Some(e),
                }
            }
        }
        at += piece.len();
    }
    Outcome {
        payload,
        consumed,
        done: false,
        error: None,
    }
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
