//! Message body framing, and the chunked decoder.
//!
//! corelb forwards chunked bodies byte for byte, but only after checking
//! every byte of the chunk syntax: a body another parser could split into
//! different messages never leaves the proxy. The decoder is a state machine
//! over `&[u8]` (one small step per state, as in hyper's `decode.rs`), so a
//! body is streamed and validated piece by piece, never buffered whole.

use std::fmt;

use super::field::{self, LONGEST_NOT_IN_TRAILERS, MAX_HEADERS};
use super::syntax::is_token_byte;

/// How the length of a message body is known (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (from `Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body runs until the sender closes the connection (responses only).
    CloseDelimited,
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk-size line is not `1*HEXDIG [ext] CRLF`.
    BadSize,
    /// The chunk size does not fit in 64 bits.
    SizeOverflow,
    /// A chunk's data is not followed by CRLF.
    MissingCrlf,
    /// A chunk extension or trailer line holds a forbidden byte.
    BadLine,
    /// Chunk-size line or trailers exceed their limits.
    TooLong,
    /// A trailer field that frames, routes or controls the message.
    ForbiddenTrailer,
}

impl ChunkError {
    /// A short description, used in error responses.
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadSize => "invalid chunk size line",
            Self::SizeOverflow => "chunk size too large",
            Self::MissingCrlf => "chunk data not followed by CRLF",
            Self::BadLine => "invalid byte in chunk extension or trailer",
            Self::TooLong => "chunk line or trailers too long",
            Self::ForbiddenTrailer => "trailer field not allowed in trailers",
        }
    }
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ChunkError {}

/// Largest chunk size accepted: `i64::MAX`.
const MAX_CHUNK_SIZE: u64 = i64::MAX as u64;

/// Longest chunk-size line (size + extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk (line ends' LFs not
/// counted).
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Most trailer fields accepted: as many as a head may have.
const MAX_TRAILER_FIELDS: usize = MAX_HEADERS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line: a hex digit must come.
    SizeStart,
    /// Reading more hex digits.
    Size,
    /// After a `;`: the first byte of an extension name must come.
    ExtNameStart,
    /// Reading an extension name (a token).
    ExtName,
    /// After `=`: a token or a quoted string must come.
    ExtValueStart,
    /// Reading an unquoted extension value (a token).
    ExtToken,
    /// Inside a quoted extension value.
    ExtQuoted,
    /// After a backslash inside a quoted value.
    ExtQuotedPair,
    /// After the closing quote: `;` or the CR ending the line.
    ExtQuotedEnd,
    /// Saw the CR ending the size line; LF must follow.
    SizeLf,
    /// Passing chunk data; `remaining` bytes left.
    Data,
    /// Data done; CR must follow.
    DataCr,
    /// CR after data seen; LF must follow.
    DataLf,
    /// After the last chunk: a trailer line or the final CRLF.
    TrailerStart,
    /// Inside a trailer field name; a token byte or the colon must come.
    TrailerName,
    /// Inside a trailer field value, after the colon.
    TrailerValue,
    /// CR ending a trailer line seen; LF must follow.
    TrailerLf,
    /// CR of the final empty line seen; LF must follow.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Result of feeding bytes to the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to this body (forward exactly these).
    pub consumed: usize,
    /// The body ended within those bytes.
    pub done: bool,
}

/// Validating, streaming chunked decoder.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the chunk being read / data bytes left in it.
    remaining: u64,
    /// Bytes seen in the current size line, or in the trailers so far.
    line_len: usize,
    /// The current trailer name's first bytes: enough to tell a field
    /// trailers may not carry.
    name: [u8; LONGEST_NOT_IN_TRAILERS],
    /// Length of the current trailer name (may exceed `name`).
    name_len: usize,
    /// Trailer fields seen so far.
    trailer_fields: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes allowed inside a trailer value or a quoted-string: visible ASCII,
/// obs-text, space and tab. CR ends the line; bare LF and other controls are
/// refused because parsers disagree about them.
fn is_line_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        Self {
            state: State::SizeStart,
            remaining: 0,
            line_len: 0,
            name: [0; LONGEST_NOT_IN_TRAILERS],
            name_len: 0,
            trailer_fields: 0,
        }
    }

    /// Has the whole body been seen?
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Is the decoder past the last chunk, in the trailer section? (For
    /// a caller that relays the trailers, HTTP/2's: every byte it feeds
    /// from here to the end is trailer bytes.)
    pub fn in_trailers(&self) -> bool {
        matches!(
            self.state,
            State::TrailerStart | State::TrailerName | State::TrailerValue | State::TrailerLf
        )
    }

    /// Feed the next bytes of the body.
    ///
    /// Calls `on_data` with each run of chunk *data* (without the framing),
    /// for callers that need to de-chunk. Stops at the end of the body; any
    /// input after `consumed` belongs to the next message.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkError> {
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let take =
                    (input.len() - pos).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                on_data(&input[pos..pos + take]);
                pos += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(input[pos])?;
            pos += 1;
        }
        Ok(Progress {
            consumed: pos,
            done: self.state == State::Done,
        })
    }

    /// Advance by one framing byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match self.state {
            State::SizeStart => {
                let digit = hex_value(b).ok_or(ChunkError::BadSize)?;
                self.remaining = u64::from(digit);
                self.line_len = 1;
                State::Size
            }
            State::Size => {
                self.count_line_byte(MAX_SIZE_LINE)?;
                if let Some(digit) = hex_value(b) {
                    self.remaining = self
                        .remaining
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(u64::from(digit)))
                        // Above i64::MAX a parser storing sizes signed (off_t)
                        // reads a negative size: refuse what others misread.
                        .filter(|&v| v <= MAX_CHUNK_SIZE)
                        .ok_or(ChunkError::SizeOverflow)?;
                    State::Size
                } else {
                    match b {
                        b';' => State::ExtNameStart,
                        b'\r' => State::SizeLf,
                        _ => return Err(ChunkError::BadSize),
                    }
                }
            }
            State::ExtNameStart
            | State::ExtName
            | State::ExtValueStart
            | State::ExtToken
            | State::ExtQuoted
            | State::ExtQuotedPair
            | State::ExtQuotedEnd => {
                self.count_line_byte(MAX_SIZE_LINE)?;
                extension_step(self.state, b).ok_or(ChunkError::BadLine)?
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadSize);
                }
                if self.remaining == 0 {
                    self.line_len = 0;
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            State::Data => unreachable!("data is consumed in bulk by feed"),
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkError::MissingCrlf),
            },
            State::DataLf => match b {
                b'\n' => State::SizeStart,
                _ => return Err(ChunkError::MissingCrlf),
            },
            // A trailer section is a header section (RFC 9112 §7.1.2:
            // `*( field-line CRLF )`, field-line as in §5), held to the
            // same rules as a head: `token ":" OWS value OWS`.
            State::TrailerStart => {
                self.count_line_byte(MAX_TRAILER_BYTES)?;
                match b {
                    b'\r' => State::FinalLf,
                    // A trailer field line must start with a field-name byte:
                    // no leading whitespace (obs-fold) and no empty name.
                    b if is_token_byte(b) => {
                        self.start_trailer_name(b)?;
                        State::TrailerName
                    }
                    _ => return Err(ChunkError::BadLine),
                }
            }
            State::TrailerName => {
                self.count_line_byte(MAX_TRAILER_BYTES)?;
                match b {
                    b if is_token_byte(b) => {
                        self.push_name_byte(b);
                        State::TrailerName
                    }
                    // §5.1: no whitespace between name and colon; a line
                    // without a colon is no field line at all.
                    b':' => {
                        self.check_trailer_name()?;
                        State::TrailerValue
                    }
                    _ => return Err(ChunkError::BadLine),
                }
            }
            State::TrailerValue => {
                self.count_line_byte(MAX_TRAILER_BYTES)?;
                match b {
                    b'\r' => State::TrailerLf,
                    b if is_line_byte(b) => State::TrailerValue,
                    _ => return Err(ChunkError::BadLine),
                }
            }
            State::TrailerLf => match b {
                b'\n' => State::TrailerStart,
                _ => return Err(ChunkError::BadLine),
            },
            State::FinalLf => match b {
                b'\n' => State::Done,
                _ => return Err(ChunkError::BadLine),
            },
            State::Done => State::Done,
        };
        Ok(())
    }

    /// The first byte of a trailer field's name: one field more.
    fn start_trailer_name(&mut self, b: u8) -> Result<(), ChunkError> {
        self.trailer_fields += 1;
        if self.trailer_fields > MAX_TRAILER_FIELDS {
            return Err(ChunkError::TooLong);
        }
        self.name_len = 0;
        self.push_name_byte(b);
        Ok(())
    }

    fn push_name_byte(&mut self, b: u8) {
        if let Some(slot) = self.name.get_mut(self.name_len) {
            *slot = b;
        }
        self.name_len += 1;
    }

    /// The name is complete. corelb forwards trailers as they came, so it
    /// refuses the fields a trailer must not carry rather than pass them
    /// to a backend or client that might merge them into the head.
    fn check_trailer_name(&self) -> Result<(), ChunkError> {
        match self.name.get(..self.name_len) {
            Some(name) if field::is_forbidden_in_trailers(name) => {
                Err(ChunkError::ForbiddenTrailer)
            }
            _ => Ok(()),
        }
    }

    fn count_line_byte(&mut self, limit: usize) -> Result<(), ChunkError> {
        self.line_len += 1;
        if self.line_len > limit {
            return Err(ChunkError::TooLong);
        }
        Ok(())
    }
}

/// One byte of a chunk extension, RFC 9112 §7.1.1:
///
/// ```text
/// chunk-ext = *( ";" chunk-ext-name [ "=" chunk-ext-val ] )
/// chunk-ext-name = token
/// chunk-ext-val  = token / quoted-string
/// ```
///
/// So `2;` (no name) and an unclosed quote are refused, as llhttp refuses
/// them. The grammar also allows whitespace (BWS) around `;` and `=`, which
/// senders should not generate; we refuse it, as we refuse whitespace after
/// the size: the less a size line may hold, the fewer ways two parsers can
/// read it differently. `None`: the byte is not allowed here.
fn extension_step(state: State, b: u8) -> Option<State> {
    let next = match (state, b) {
        (State::ExtNameStart | State::ExtName, b) if is_token_byte(b) => State::ExtName,
        (State::ExtValueStart | State::ExtToken, b) if is_token_byte(b) => State::ExtToken,
        (State::ExtName, b'=') => State::ExtValueStart,
        (State::ExtValueStart, b'"') => State::ExtQuoted,
        (State::ExtName | State::ExtToken | State::ExtQuotedEnd, b';') => State::ExtNameStart,
        (State::ExtName | State::ExtToken | State::ExtQuotedEnd, b'\r') => State::SizeLf,
        (State::ExtQuoted, b'"') => State::ExtQuotedEnd,
        (State::ExtQuoted, b'\\') => State::ExtQuotedPair,
        (State::ExtQuoted | State::ExtQuotedPair, b) if is_line_byte(b) => State::ExtQuoted,
        _ => return None,
    };
    Some(next)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// How much of a body is still to come, whatever its framing.
#[derive(Debug, Clone)]
pub enum BodyProgress {
    /// Nothing more belongs to this message.
    Done,
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked; the decoder knows where it is.
    Chunked(ChunkedDecoder),
    /// Everything until the peer closes.
    UntilClose,
}

impl BodyProgress {
    /// The start of a body framed as `kind`.
    pub fn new(kind: BodyKind) -> Self {
        match kind {
            BodyKind::Empty | BodyKind::Length(0) => Self::Done,
            BodyKind::Length(n) => Self::Length(n),
            BodyKind::Chunked => Self::Chunked(ChunkedDecoder::new()),
            BodyKind::CloseDelimited => Self::UntilClose,
        }
    }

    /// Has the whole body been seen?
    pub fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// How many bytes the next read may take when `room` is free: a
    /// Content-Length body never reads into the next message, so the buffer
    /// holds body bytes only and can be forwarded as it is.
    pub fn read_limit(&self, room: usize) -> usize {
        match self {
            Self::Done => 0,
            Self::Length(n) => usize::try_from(*n).unwrap_or(usize::MAX).min(room),
            Self::Chunked(_) | Self::UntilClose => room,
        }
    }

    /// Account for `input`, the next bytes from the peer. Returns how many
    /// of them belong to this body; `on_data` sees the payload bytes
    /// (without chunk framing).
    pub fn advance(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkError> {
        let consumed = match self {
            Self::Done => 0,
            Self::Length(n) => {
                let take = usize::try_from(*n).unwrap_or(usize::MAX).min(input.len());
                *n -= take as u64;
                on_data(&input[..take]);
                take
            }
            Self::Chunked(decoder) => decoder.feed(input, on_data)?.consumed,
            Self::UntilClose => {
                on_data(input);
                input.len()
            }
        };
        if matches!(self, Self::Length(0)) || matches!(self, Self::Chunked(d) if d.is_done()) {
            *self = Self::Done;
        }
        Ok(Progress {
            consumed,
            done: self.is_done(),
        })
    }

    /// The peer closed. True when that ends the body properly (a
    /// close-delimited body); false when the body was cut short.
    pub fn end_of_stream(&mut self) -> bool {
        match self {
            Self::Done => true,
            Self::UntilClose => {
                *self = Self::Done;
                true
            }
            Self::Length(_) | Self::Chunked(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` in pieces of `step` bytes; return (data, consumed, done).
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut data = Vec::new();
        let mut consumed = 0;
        for piece in input.chunks(step) {
            let p = d.feed(piece, |bytes| data.extend_from_slice(bytes))?;
            consumed += p.consumed;
            if p.done {
                return Ok((data, consumed, true));
            }
        }
        Ok((data, consumed, false))
    }

    #[test]
    fn decodes_whole_and_bytewise() {
        let body = b"5\r\nhello\r\n6;name=\"v\"\r\n world\r\n0\r\n\r\n";
        for step in [1, 2, 7, body.len()] {
            let (data, consumed, done) = decode_in_steps(body, step).unwrap();
            assert_eq!(data, b"hello world");
            assert_eq!(consumed, body.len());
            assert!(done);
        }
    }

    #[test]
    fn stops_at_end_of_body_leaving_next_message() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let mut d = ChunkedDecoder::new();
        let p = d.feed(input, |_| {}).unwrap();
        assert!(p.done);
        assert_eq!(&input[p.consumed..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn accepts_trailers() {
        let input =
            b"1\r\na\r\n0\r\nChecksum: abc\r\nX-B: 1\r\nX-Empty:\r\nX-T: \t\xc3\xa9 x \r\n\r\n";
        let (data, consumed, done) = decode_in_steps(input, 1).unwrap();
        assert_eq!(
            (data.as_slice(), consumed, done),
            (&b"a"[..], input.len(), true)
        );
    }

    #[test]
    fn rejects_malformed_framing() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"x\r\n", ChunkError::BadSize),
            (b"\r\n", ChunkError::BadSize),
            (b"-1\r\n", ChunkError::BadSize),
            (b"5 \r\nhello\r\n", ChunkError::BadSize),
            (b"5\nhello\r\n", ChunkError::BadSize),
            (b"5\r\nhelloXX", ChunkError::MissingCrlf),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::MissingCrlf),
            (b"1ffffffffffffffff\r\n", ChunkError::SizeOverflow),
            (b"8000000000000000\r\n", ChunkError::SizeOverflow),
            (b"1;a\nb\r\n", ChunkError::BadLine),
            (b"1;a\x00\r\n", ChunkError::BadLine),
            (b"0\r\n Folded: x\r\n\r\n", ChunkError::BadLine),
            (b"0\r\nA: b\n\r\n", ChunkError::BadLine),
            (b"0\r\n\r\r", ChunkError::BadLine),
            // trailer field lines follow the rules of a head's (RFC 9112 §5)
            (b"0\r\nNoColon\r\n\r\n", ChunkError::BadLine),
            (b"0\r\nName : v\r\n\r\n", ChunkError::BadLine),
            (b"0\r\nNa me: v\r\n\r\n", ChunkError::BadLine),
            (b"0\r\nNa\"me: v\r\n\r\n", ChunkError::BadLine),
            (b"0\r\n: v\r\n\r\n", ChunkError::BadLine),
            (b"0\r\nT: a\rb\r\n\r\n", ChunkError::BadLine),
            (b"0\r\nT: a\x7fb\r\n\r\n", ChunkError::BadLine),
            (b"0\r\nT: a\r\n\tb\r\n\r\n", ChunkError::BadLine),
            // fields that frame, route or control the message (RFC 9110 §6.5.1)
            (
                b"0\r\nContent-Length: 5\r\n\r\n",
                ChunkError::ForbiddenTrailer,
            ),
            (
                b"0\r\ntransfer-encoding: chunked\r\n\r\n",
                ChunkError::ForbiddenTrailer,
            ),
            (b"0\r\nHost: evil\r\n\r\n", ChunkError::ForbiddenTrailer),
            (
                b"0\r\nContent_Length: 5\r\n\r\n",
                ChunkError::ForbiddenTrailer,
            ),
            (
                b"0\r\nOK: 1\r\nX-Forwarded-For: a\r\n\r\n",
                ChunkError::ForbiddenTrailer,
            ),
        ];
        for (input, want) in cases {
            let got = decode_in_steps(input, 1).unwrap_err();
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn chunk_extensions_follow_the_grammar() {
        for ext in [
            &b";a"[..],
            b";a=b",
            b";a;b=c;d",
            b";a=\"\"",
            b";a=\"x; y\"",
            b";a=\"say \\\"hi\\\" \\\\o/\";b",
        ] {
            let mut input = b"1".to_vec();
            input.extend_from_slice(ext);
            input.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
            let (data, _, done) = decode_in_steps(&input, 1).unwrap();
            assert_eq!(
                (data.as_slice(), done),
                (&b"x"[..], true),
                "{:?}",
                String::from_utf8_lossy(ext)
            );
        }
        // llhttp rejects these too (its corpus: "No extension after
        // semicolon", "Unbalanced chunk extensions quoting").
        for ext in [
            &b";"[..],
            b";;a",
            b";=b",
            b";a=",
            b";a=b=c",
            b";a b",
            b"; a",
            b";a =b",
            b";a=\"open",
            b";a=\"x\"y",
            b";a=\"x\\",
            b";a=b\"",
        ] {
            let mut input = b"1".to_vec();
            input.extend_from_slice(ext);
            input.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
            let got = decode_in_steps(&input, 1).unwrap_err();
            assert_eq!(
                got,
                ChunkError::BadLine,
                "{:?}",
                String::from_utf8_lossy(ext)
            );
        }
    }

    #[test]
    fn trailers_keep_the_limits_of_a_head() {
        let mut input = b"0\r\n".to_vec();
        for i in 0..MAX_TRAILER_FIELDS {
            input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let mut ok = input.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(decode_in_steps(&ok, 7).unwrap().2);
        input.extend_from_slice(b"X-Last: v\r\n\r\n");
        assert_eq!(decode_in_steps(&input, 7).unwrap_err(), ChunkError::TooLong);

        let mut long = b"0\r\nX-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_TRAILER_BYTES));
        assert_eq!(decode_in_steps(&long, 64).unwrap_err(), ChunkError::TooLong);
        // A long name is not mistaken for a short forbidden one.
        let name = b"0\r\nContent-Length-Checksum: 1\r\n\r\n";
        assert!(decode_in_steps(name, 1).unwrap().2);
    }

    #[test]
    fn limits_size_line_length() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE));
        assert_eq!(decode_in_steps(&line, 64).unwrap_err(), ChunkError::TooLong);
    }

    #[test]
    fn large_chunk_is_passed_in_bulk() {
        let mut input = b"100000\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'z', 0x100000));
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        let (data, consumed, done) = decode_in_steps(&input, 16 * 1024).unwrap();
        assert_eq!(data.len(), 0x100000);
        assert_eq!(consumed, input.len());
        assert!(done);
    }

    #[test]
    fn progress_by_length_stops_at_the_boundary() {
        let mut p = BodyProgress::new(BodyKind::Length(5));
        assert_eq!(p.read_limit(100), 5);
        let got = p.advance(b"abc", |_| {}).unwrap();
        assert_eq!((got.consumed, got.done), (3, false));
        let got = p.advance(b"deGET", |_| {}).unwrap();
        assert_eq!((got.consumed, got.done), (2, true));
        assert_eq!(p.read_limit(100), 0);
        assert!(!BodyProgress::new(BodyKind::Length(1)).end_of_stream());
    }

    #[test]
    fn close_delimited_ends_at_eof() {
        let mut p = BodyProgress::new(BodyKind::CloseDelimited);
        assert_eq!(p.advance(b"abc", |_| {}).unwrap().consumed, 3);
        assert!(!p.is_done());
        assert!(p.end_of_stream());
        assert!(p.is_done());
    }
}
