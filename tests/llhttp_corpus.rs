//! Run llhttp's own request/response test vectors (tests/corpus/llhttp/,
//! MIT, see the LICENSE there) against corelb's pure parsers.
//!
//! Each case's `raw` is read the way the proxy reads a connection: head
//! (`parse_request`, or `parse_response` for a non-HEAD request), then the
//! body through `BodyProgress` (the chunked decoder validates every byte),
//! then the next pipelined message from the same bytes.
//!
//! - A message cut off at the end of the input is incomplete, not refused
//!   (llhttp just waits for more bytes, and so would corelb).
//! - Bytes after a non-persistent message are refused: the proxy closes the
//!   connection and never parses nor forwards them (llhttp: "Data after
//!   `Connection: close`").
//! - Lenient-mode cases (`mode` like `request-lenient-*`) must be refused:
//!   llhttp accepts them only with a leniency switched on.
//!
//! corelb may be STRICTER than llhttp, never looser where framing is at
//! stake. Every case must either agree with llhttp, or be listed in
//! `EXCEPTIONS` with the reason corelb differs; the test fails naming every
//! other case. `LLHTTP_CORPUS_VERBOSE=1 cargo test --test llhttp_corpus --
//! --nocapture` prints corelb's verdict on every case.

use std::fmt;

use corelb::http::{parse_request, parse_response, BodyKind, BodyProgress, HeadError, MAX_HEADERS};
use serde::Deserialize;

const CASES: &str = include_str!("corpus/llhttp/cases.jsonl");

#[derive(Debug, Deserialize)]
struct Case {
    source: String,
    name: String,
    mode: String,
    expect: String,
    llhttp_error: Option<String>,
    raw: String,
}

/// corelb's verdict on a whole input.
#[derive(Debug)]
enum Verdict {
    /// Every message parsed and was framed validly (the last may be
    /// incomplete: like llhttp, we would just wait for more bytes).
    Accept { messages: usize },
    /// corelb refuses the input.
    Reject(String),
}

impl Verdict {
    fn accepted(&self) -> bool {
        matches!(self, Self::Accept { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accept { messages } => write!(f, "accept ({messages} complete messages)"),
            Self::Reject(why) => write!(f, "reject ({why})"),
        }
    }
}

/// The reason `parse_request` gives for an HTTP/1.1 request without Host.
const NO_HOST: &str = "HTTP/1.1 request without Host";

/// What a probing run may change in the input to look past a check that
/// would otherwise hide the one the case is about.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// Insert a `Host` field into HTTP/1.1 requests that lack one (most
    /// llhttp vectors do, and corelb refuses those first).
    add_host: bool,
    /// If the input ends inside a head, end the head there. llhttp rejects
    /// while streaming; corelb judges a head only once it is complete (and
    /// forwards nothing before), so a truncated bad head must be rejected
    /// once completed.
    complete_head: bool,
}

const REAL: Probe = Probe {
    add_host: false,
    complete_head: false,
};
const PROBE: Probe = Probe {
    add_host: true,
    complete_head: true,
};

/// Where the request line ends (just after its LF), skipping the empty
/// lines a request may start with.
fn request_line_end(msg: &[u8]) -> usize {
    let start = msg
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(msg.len());
    msg[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(msg.len(), |i| start + i + 1)
}

/// Parse one head at the start of `buf`: (head length, body kind, keep-alive).
fn parse_head(buf: &[u8], response: bool) -> Result<Option<(usize, BodyKind, bool)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if response {
        parse_response(buf, &mut headers, false).map(|r| r.map(|h| (h.len, h.body, h.keep_alive)))
    } else {
        parse_request(buf, &mut headers).map(|r| r.map(|h| (h.len, h.body, h.keep_alive)))
    }
}

/// Feed `raw` as a stream of pipelined messages, the way the proxy reads a
/// connection: head, body, next head, ... With a `probe`, the input may be
/// changed as the probe describes.
fn run(raw: &[u8], response: bool, probe: Probe) -> Verdict {
    let mut input = raw.to_vec();
    let mut pos = 0;
    let mut messages = 0;
    let mut completed = false;
    while pos < input.len() {
        let (len, kind, keep_alive) = match parse_head(&input[pos..], response) {
            Err(e) if probe.add_host && e.reason == NO_HOST => {
                let at = pos + request_line_end(&input[pos..]);
                input.splice(at..at, b"Host: llhttp.test\r\n".iter().copied());
                continue;
            }
            Err(e) => {
                return Verdict::Reject(format!(
                    "message {}: {} {}",
                    messages + 1,
                    e.status,
                    e.reason
                ))
            }
            Ok(None) if probe.complete_head && !completed => {
                completed = true;
                let end: &[u8] = if input.ends_with(b"\r\n") {
                    b"\r\n"
                } else {
                    b"\r\n\r\n"
                };
                input.extend_from_slice(end);
                continue;
            }
            Ok(None) => break, // head incomplete at the end of the input
            Ok(Some(head)) => head,
        };
        pos += len;
        let mut body = BodyProgress::new(kind);
        match body.advance(&input[pos..], |_| {}) {
            Err(e) => {
                return Verdict::Reject(format!("message {}: chunked body: {e}", messages + 1))
            }
            Ok(p) => pos += p.consumed,
        }
        messages += 1;
        if !body.is_done() {
            // Body incomplete (or close-delimited): it took all the input.
            assert_eq!(pos, input.len());
            break;
        }
        if !keep_alive && pos < input.len() {
            // The proxy closes after a non-persistent message: the bytes
            // that follow are never parsed nor forwarded.
            return Verdict::Reject(format!(
                "message {messages}: data after a non-persistent message"
            ));
        }
    }
    Verdict::Accept { messages }
}

/// How a listed case is allowed to differ from llhttp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Diff {
    /// llhttp accepts (strict mode), corelb rejects.
    Stricter,
    /// llhttp rejects (or accepts only in a lenient mode), corelb accepts:
    /// allowed only where the case is not about framing.
    Looser,
}

/// Reason for the many llhttp vectors that simply omit `Host`. A case listed
/// with it must be accepted once a Host field is added: Host is then the
/// only thing corelb objects to.
const HOST: &str = "we require Host in HTTP/1.1 requests (RFC 9112 §3.2: a server MUST answer 400)";

/// Every disagreement with llhttp, by `source`, with the reason.
const EXCEPTIONS: &[(&str, Diff, &str)] = &[
    // --- corelb is stricter: HTTP/1.1 requests without Host (each is
    // checked to be accepted once a Host field is added).
    ("request/connection.md:9", Diff::Stricter, HOST), // Setting flag
    ("request/connection.md:37", Diff::Stricter, HOST), // Restarting when keep-alive is explicitly
    ("request/connection.md:239", Diff::Stricter, HOST), // Setting flag on `close`
    ("request/connection.md:267", Diff::Stricter, HOST), // Setting flag on `close` followed by tab
    ("request/connection.md:456", Diff::Stricter, HOST), // Sample
    ("request/content-length.md:7", Diff::Stricter, HOST), // `Content-Length` with zeroes
    ("request/content-length.md:44", Diff::Stricter, HOST), // `Content-Length` with follow-up headers
    ("request/content-length.md:293", Diff::Stricter, HOST), // Spaces in `Content-Length` (surrounding)
    ("request/content-length.md:320", Diff::Stricter, HOST), // Tabs in `Content-Length` (surrounding)
    ("request/content-length.md:447", Diff::Stricter, HOST), // Content-Length reset when no body is received
    ("request/finish.md:9", Diff::Stricter, HOST), // It should be safe to finish after GET request
    ("request/method.md:7", Diff::Stricter, HOST), // REPORT request
    ("request/pausing.md:7", Diff::Stricter, HOST), // on_message_begin
    ("request/pausing.md:37", Diff::Stricter, HOST), // on_message_complete
    ("request/pausing.md:67", Diff::Stricter, HOST), // on_protocol_complete
    ("request/pausing.md:97", Diff::Stricter, HOST), // on_method_complete
    ("request/pausing.md:127", Diff::Stricter, HOST), // on_url_complete
    ("request/pausing.md:157", Diff::Stricter, HOST), // on_version_complete
    ("request/pausing.md:187", Diff::Stricter, HOST), // on_header_field_complete
    ("request/pausing.md:217", Diff::Stricter, HOST), // on_header_value_complete
    ("request/pausing.md:247", Diff::Stricter, HOST), // on_headers_complete
    ("request/pausing.md:277", Diff::Stricter, HOST), // on_chunk_header
    ("request/pausing.md:316", Diff::Stricter, HOST), // on_chunk_extension_name
    ("request/pausing.md:358", Diff::Stricter, HOST), // on_chunk_extension_value
    ("request/pausing.md:401", Diff::Stricter, HOST), // on_chunk_complete
    ("request/pipelining.md:7", Diff::Stricter, HOST), // Should parse multiple events
    ("request/sample.md:9", Diff::Stricter, HOST), // Simple request
    ("request/sample.md:47", Diff::Stricter, HOST), // Request with method starting with `H`
    ("request/sample.md:171", Diff::Stricter, HOST), // DUMBPACK
    ("request/sample.md:199", Diff::Stricter, HOST), // No headers and no body
    ("request/sample.md:222", Diff::Stricter, HOST), // One header and no body
    ("request/sample.md:294", Diff::Stricter, HOST), // Prefix newline
    ("request/sample.md:481", Diff::Stricter, HOST), // Request starting with CRLF
    ("request/sample.md:511", Diff::Stricter, HOST), // Extended Characters
    ("request/sample.md:541", Diff::Stricter, HOST), // 255 ASCII in header value
    ("request/transfer-encoding.md:9", Diff::Stricter, HOST), // Parsing and setting flag
    ("request/transfer-encoding.md:36", Diff::Stricter, HOST), // Parse chunks with lowercase size
    ("request/transfer-encoding.md:73", Diff::Stricter, HOST), // Parse chunks with uppercase size
    ("request/transfer-encoding.md:110", Diff::Stricter, HOST), // POST with `Transfer-Encoding: chunked`
    ("request/transfer-encoding.md:147", Diff::Stricter, HOST), // Two chunks and triple zero prefixed end chunk
    ("request/transfer-encoding.md:189", Diff::Stricter, HOST), // Trailing headers
    ("request/transfer-encoding.md:241", Diff::Stricter, HOST), // Chunk extensions
    ("request/transfer-encoding.md:369", Diff::Stricter, HOST), // Chunk extensions quoting
    ("request/transfer-encoding.md:754", Diff::Stricter, HOST), // POST with `chunked` as last transfer-encoding
    ("request/transfer-encoding.md:796", Diff::Stricter, HOST), // POST with `chunked` as last transfer-encoding (multiple headers)
    ("request/uri.md:7", Diff::Stricter, HOST), // Quotes in URI
    ("request/uri.md:32", Diff::Stricter, HOST), // Query URL with question mark
    ("request/uri.md:55", Diff::Stricter, HOST), // Host terminated by a query string
    ("request/uri.md:78", Diff::Stricter, HOST), // `host:port` terminated by a query string
    ("request/uri.md:105", Diff::Stricter, HOST), // Query URL with vertical bar character
    ("request/uri.md:128", Diff::Stricter, HOST), // `host:port` terminated by a space
    ("request/uri.md:168", Diff::Stricter, HOST), // Fragment in URI
    (
        "request/uri.md:225", // `host:port` and basic auth
        Diff::Stricter,
        "userinfo in an absolute-form target is refused (RFC 9110 §4.2.4; nginx answers 400)",
    ),
    // --- corelb is stricter for other reasons.
    (
        "request/method.md:138", // M-SEARCH request: `M-SEARCH * HTTP/1.1`
        Diff::Stricter,
        "asterisk-form is only valid with OPTIONS (RFC 9112 §3.2.4); SSDP is multicast UDP, not proxied HTTP",
    ),
    (
        "request/method.md:375", // SOURCE request with ICE
        Diff::Stricter,
        "ICE/1.0 is not HTTP: only HTTP/1.0 and HTTP/1.1 are supported (400: not an HTTP version at all)",
    ),
    (
        "request/method.md:405", // OPTIONS request with RTSP
        Diff::Stricter,
        "RTSP/1.0 is not HTTP: only HTTP/1.0 and HTTP/1.1 are supported (400: not an HTTP version at all)",
    ),
    (
        "request/method.md:433", // ANNOUNCE request with RTSP
        Diff::Stricter,
        "RTSP/1.0 is not HTTP: only HTTP/1.0 and HTTP/1.1 are supported (400: not an HTTP version at all)",
    ),
    (
        "request/sample.md:317", // No HTTP version: `GET /`
        Diff::Stricter,
        "HTTP/0.9 request lines (no version) are unsupported: 400",
    ),
    (
        "response/transfer-encoding.md:46", // `chunked, deflate` in a response
        Diff::Stricter,
        "`chunked` not last: llhttp reads the body to close, other parsers as chunked. corelb \
         refuses ambiguous response framing with 502, as it refuses the same shape in requests",
    ),
    (
        "response/transfer-encoding.md:77", // `chunked` then `identity` fields
        Diff::Stricter,
        "`chunked` followed by another coding across two fields: same ambiguity, 502",
    ),
    (
        "response/sample.md:43", // RTSP response
        Diff::Stricter,
        "a backend speaking RTSP is not an HTTP/1.x backend: 502",
    ),
    (
        "response/sample.md:63", // ICE response
        Diff::Stricter,
        "a backend speaking ICE is not an HTTP/1.x backend: 502",
    ),
    (
        "response/sample.md:648", // HTTP version 0.9
        Diff::Stricter,
        "HTTP/0.9 status lines are unsupported: only HTTP/1.0 and HTTP/1.1 backends (502)",
    ),
    // --- corelb accepts what llhttp refuses: none of these is about framing.
    (
        "request/connection.md:682", // Setting a flag and pausing
        Diff::Looser,
        "not a rejection: llhttp's `error` 22 is HPE_PAUSED_UPGRADE, returned after a complete, \
         valid `Connection: upgrade` request. corelb tunnels only a GET asking for websocket \
         (or a protocol its pool allows) once the backend answers 101; this PUT asking for `ws` \
         has its Upgrade stripped (hop-by-hop) and later bytes are parsed as HTTP, with every check",
    ),
    (
        "request/invalid.md:69", // HTTP protocol and ANNOUNCE method
        Diff::Looser,
        "methods are any token (RFC 9110 §9.1); llhttp ties ANNOUNCE to RTSP. The method does \
         not frame a request: the body is still decided by Content-Length/Transfer-Encoding only",
    ),
    (
        "request/invalid.md:359", // Invalid method: `MKCOLA`
        Diff::Looser,
        "methods are any token (RFC 9110 §9.1); llhttp knows a fixed list. The method does not \
         frame a request: the body is still decided by Content-Length/Transfer-Encoding only",
    ),
];

#[test]
fn llhttp_corpus() {
    let cases: Vec<Case> = CASES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("corpus line is valid JSON"))
        .collect();
    assert_eq!(cases.len(), 251, "corpus size");
    let verbose = std::env::var_os("LLHTTP_CORPUS_VERBOSE").is_some();

    let (mut agree, mut stricter, mut looser) = (0, 0, 0);
    let mut problems = Vec::new();
    let mut used = vec![false; EXCEPTIONS.len()];
    for case in &cases {
        let raw = case.raw.as_bytes();
        let response = case.mode.starts_with("response");
        // A strict proxy treats what llhttp accepts only leniently as a reject.
        let lenient = case.mode.contains("-lenient-");
        let want_accept = case.expect == "accept" && !lenient;
        // Where llhttp rejects, judge corelb past its Host check and with any
        // truncated head completed, so that neither hides a looser parse.
        let verdict = run(raw, response, if want_accept { REAL } else { PROBE });
        let diff = match (want_accept, verdict.accepted()) {
            (true, false) => Some(Diff::Stricter),
            (false, true) => Some(Diff::Looser),
            _ => None,
        };
        if verbose {
            eprintln!(
                "{:<44} {:<42} llhttp {} ({}) / corelb {verdict}",
                case.source,
                case.mode,
                case.expect,
                case.llhttp_error.as_deref().unwrap_or("-"),
            );
            if !want_accept {
                eprintln!("{:88} corelb as is: {}", "", run(raw, response, REAL));
            }
        }
        let listed = EXCEPTIONS
            .iter()
            .position(|(src, _, _)| *src == case.source);
        if let Some(i) = listed {
            used[i] = true;
        }
        match (diff, listed.map(|i| EXCEPTIONS[i])) {
            (None, None) => agree += 1,
            (None, Some((_, d, _))) => problems.push(format!(
                "{} {:?}: listed as {d:?} but corelb agrees with llhttp ({verdict})",
                case.source, case.name
            )),
            (Some(d), Some((_, listed_d, reason))) if d == listed_d => {
                if reason == HOST {
                    let with_host = Probe {
                        add_host: true,
                        complete_head: false,
                    };
                    let v = run(raw, response, with_host);
                    if !v.accepted() {
                        problems.push(format!(
                            "{} {:?}: listed for Host only, but with Host added corelb still says {v}",
                            case.source, case.name
                        ));
                    }
                }
                match d {
                    Diff::Stricter => stricter += 1,
                    Diff::Looser => looser += 1,
                }
            }
            (Some(d), listed) => problems.push(format!(
                "{} {:?} [{}] llhttp {} ({}) / corelb {verdict}: {d:?}{}\n    raw: {:?}",
                case.source,
                case.name,
                case.mode,
                case.expect,
                case.llhttp_error.as_deref().unwrap_or("-"),
                if listed.is_some() {
                    " (listed the other way)"
                } else {
                    " (not listed)"
                },
                case.raw,
            )),
        }
    }
    for (i, (src, _, _)) in EXCEPTIONS.iter().enumerate() {
        if !used[i] {
            problems.push(format!("{src}: listed but no such case"));
        }
    }
    eprintln!(
        "llhttp corpus: {} cases: {agree} agree, {stricter} stricter (listed with reason), \
         {looser} looser (listed with reason, not framing)",
        cases.len()
    );
    assert!(
        problems.is_empty(),
        "{} unexplained disagreements with llhttp:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
