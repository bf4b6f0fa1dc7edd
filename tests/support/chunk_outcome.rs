//! What the chunked decoder makes of an input fed whole, or fed in pieces.
//! Shared by `tests/parser_properties.rs` and the `chunked_split` fuzz
//! target (both include this file by path): the property is the same,
//! only the source of the cuts differs.

use corelb::http::{BodyKind, BodyProgress, ChunkError, ChunkedDecoder};

/// Everything observable about one decode.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub payload: Vec<u8>,
    pub consumed: usize,
    pub done: bool,
    pub error: Option<ChunkError>,
}

fn failed(payload: Vec<u8>, error: ChunkError) -> Outcome {
    Outcome {
        payload,
        consumed: 0,
        done: false,
        error: Some(error),
    }
}

/// Feed `input` to a decoder in one call.
pub fn decode_whole(input: &[u8]) -> Outcome {
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
        Err(e) => failed(payload, e),
    }
}

/// Feed `input` through `BodyProgress` in pieces of `next_step()` bytes
/// (each at least 1).
pub fn decode_in_pieces(input: &[u8], mut next_step: impl FnMut() -> usize) -> Outcome {
    let mut body = BodyProgress::new(BodyKind::Chunked);
    let mut payload = Vec::new();
    let mut consumed = 0;
    let mut at = 0;
    while at < input.len() {
        let step = next_step().max(1);
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
            Err(e) => return failed(payload, e),
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
