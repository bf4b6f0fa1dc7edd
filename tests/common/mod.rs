//! Shared helpers for the black-box proxy tests (`tests/proxy_*.rs`).
//!
//! Everything here talks to a real `corelb` process over loopback sockets:
//!
//! - [`Proxy`]: spawns the binary on `127.0.0.1:0`, reads the chosen address
//!   from its stderr, kills it on drop (and fails the test if it panicked).
//! - [`Backend`]: a small threaded HTTP/1.1 origin (std::net) that records
//!   every request it receives and counts its TCP connections; what it
//!   answers is up to a handler returning a [`Reply`].
//! - [`Client`]: a raw TCP client that sends exact bytes and parses
//!   responses (Content-Length, chunked, close-delimited, HEAD, 1xx).
//! - [`Nginx`], [`require_tool`]: real third-party programs.
//! - [`both_drivers!`]: one `#[test]` per io driver for a scenario.
//!
//! Timeouts here are safety bounds so a broken proxy fails a test instead of
//! hanging it; no assertion depends on how fast anything is.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Longest any single wait in these tests may take before the test fails.
pub const SAFETY: Duration = Duration::from_secs(10);

/// Run a scenario once per io driver: `both_drivers!(name, |driver| { ... })`
/// makes `name::uring` and `name::epoll`, each a `#[test]`.
#[macro_export]
macro_rules! both_drivers {
    ($name:ident, |$driver:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn scenario($driver: $crate::common::Driver) $body

            #[test]
            fn uring() {
                scenario($crate::common::Driver::Uring)
            }

            #[test]
            fn epoll() {
                scenario($crate::common::Driver::Epoll)
            }
        }
    };
}

/// The io driver a proxy runs with (`--io-driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Epoll,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Uring => "uring",
            Driver::Epoll => "epoll",
        }
    }
}

// ---------------------------------------------------------------------------
// The proxy process

/// A running `corelb` child process; killed on drop.
pub struct Proxy {
    /// Set when a test stopped the proxy on purpose.
    pub stopped: bool,
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Start corelb with `args`. `--listen 127.0.0.1:0`, `--threads 1` and
    /// `--no-pin` are added unless `args` sets them.
    pub fn start(args: &[&str]) -> Proxy {
        Proxy::start_command(Command::new(env!("CARGO_BIN_EXE_corelb")), args)
    }

    /// As [`Proxy::start`], with the `nofile` limit (`ulimit -n`) set to
    /// `nofile` for the process.
    pub fn start_with_nofile(nofile: u32, args: &[&str]) -> Proxy {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_corelb"),
        ]);
        Proxy::start_command(cmd, args)
    }

    /// Start corelb with the config file at `config` listening where its
    /// `[[listeners]]` say (no `--listen` added), plus `args`.
    pub fn start_with_file_listeners(config: &str, args: &[&str]) -> Proxy {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelb"));
        cmd.args(["--config", config]);
        Proxy::start_command_listening(cmd, args, false)
    }

    /// Start `cmd` (corelb, perhaps behind a shell, with its environment)
    /// with `args` and the defaults [`Proxy::start`] adds.
    pub fn start_command(cmd: Command, args: &[&str]) -> Proxy {
        Proxy::start_command_listening(cmd, args, true)
    }

    /// As [`Proxy::start_command`]; `add_listen`: add `--listen
    /// 127.0.0.1:0` unless `args` has a `--listen`.
    fn start_command_listening(mut cmd: Command, args: &[&str], add_listen: bool) -> Proxy {
        if add_listen && !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--threads") {
            cmd.args(["--threads", "1"]);
        }
        if !args.contains(&"--no-pin") {
            cmd.arg("--no-pin");
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot start the corelb binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let reader = {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Logged before the start is announced, so that a
                    // test reading the log once started finds this line.
                    {
                        let mut log = log.lock().unwrap();
                        log.push_str(&line);
                        log.push('\n');
                    }
                    if let Some(addr) = parse_listening_line(&line) {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                }
            })
        };
        let mut proxy = Proxy {
            stopped: false,
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
            reader: Some(reader),
        };
        match rx.recv_timeout(SAFETY) {
            Ok(addr) => proxy.addr = addr,
            Err(_) => {
                let _ = proxy.child.kill();
                let _ = proxy.child.wait();
                if let Some(r) = proxy.reader.take() {
                    let _ = r.join();
                }
                let log = proxy.log();
                // Nothing left to check in Drop.
                std::mem::forget(proxy);
                panic!("corelb {args:?} did not report its listening address; stderr:\n{log}");
            }
        }
        proxy
    }

    /// Start corelb in front of `backends` with `driver`, plus `extra` flags.
    pub fn with_backends(driver: Driver, backends: &[&Backend], extra: &[&str]) -> Proxy {
        let mut args: Vec<String> = vec!["--io-driver".into(), driver.as_str().into()];
        for b in backends {
            args.push("--backend".into());
            args.push(b.addr().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proxy::start(&refs)
    }

    /// Start corelb with `driver` and the config file `toml` (kept in the
    /// returned directory, which must outlive the proxy), plus `extra`.
    pub fn with_config(driver: Driver, toml: &str, extra: &[&str]) -> (Proxy, TempDir) {
        let dir = TempDir::new("config");
        let path = dir.path().join("corelb.toml");
        std::fs::write(&path, toml).unwrap();
        let mut args = vec![
            "--io-driver",
            driver.as_str(),
            "--config",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (Proxy::start(&args), dir)
    }

    /// Where the proxy accepts clients.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every listener's address, in the order of the `--listen` flags
    /// (from the start line: `listening on A and B (https) (...)`).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("listening on "))
            .expect("the start line");
        let rest = line.split("listening on ").nth(1).unwrap_or_default();
        let rest = rest.split(" workers").next().unwrap_or_default();
        rest.split(" and ")
            .filter_map(|part| part.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// Everything the proxy wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the admin API listens (start the proxy with `--admin
    /// 127.0.0.1:0`): from its `admin API on http://ADDR/` log line.
    pub fn admin_addr(&self) -> SocketAddr {
        let mut found = None;
        wait_until("the admin API line in the log", || {
            found = self.log().lines().find_map(|line| {
                let rest = line.split("admin API on http://").nth(1)?;
                rest.split('/').next()?.parse().ok()
            });
            found.is_some()
        });
        found.unwrap()
    }

    /// Send signal `signal` (e.g. `libc::SIGTERM`) to the proxy.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Wait (bounded) for the process to exit; its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let give_up = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > give_up {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start corelb and expect it to refuse to start: its exit code and
    /// stderr.
    pub fn start_failing(args: &[&str]) -> (i32, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_corelb"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot start the corelb binary");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A new raw client connection to the proxy.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let exited_early = !matches!(self.child.try_wait(), Ok(None));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if thread::panicking() {
            return;
        }
        let log = self.log();
        if log.contains("panicked") {
            panic!("corelb panicked during the test; stderr:\n{log}");
        }
        if exited_early && !self.stopped {
            panic!("corelb exited during the test; stderr:\n{log}");
        }
    }
}

// ---------------------------------------------------------------------------
// Buffered reading shared by the backend and the client

/// A stream plus the bytes read from it and not yet consumed.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Read more bytes into the buffer; `Ok(0)` at end of stream.
    pub fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn eof_error(what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("connection closed {what}"),
        )
    }

    /// The next head (through the empty line); `Ok(None)` on a clean EOF
    /// before any byte of it.
    pub fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Ok(Some(head));
            }
            if self.fill()? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(Self::eof_error("in the middle of a head"));
            }
        }
    }

    /// Exactly `n` bytes.
    pub fn read_exact_bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(Self::eof_error("in the middle of a body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One CRLF-terminated line, without the CRLF.
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..end + 2).collect();
                line.truncate(end);
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill()? == 0 {
                return Err(Self::eof_error("in the middle of a line"));
            }
        }
    }

    /// A chunked body: `(decoded data, raw bytes as received)`.
    pub fn read_chunked(&mut self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut data = Vec::new();
        let mut raw = Vec::new();
        loop {
            let line = self.read_line()?;
            raw.extend_from_slice(&line);
            raw.extend_from_slice(b"\r\n");
            let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size_text = std::str::from_utf8(size_text)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size not ASCII"))?;
            let size = usize::from_str_radix(size_text.trim(), 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size line {:?}", String::from_utf8_lossy(&line)),
                )
            })?;
            if size == 0 {
                // trailers, then the empty line
                loop {
                    let trailer = self.read_line()?;
                    raw.extend_from_slice(&trailer);
                    raw.extend_from_slice(b"\r\n");
                    if trailer.is_empty() {
                        return Ok((data, raw));
                    }
                }
            }
            let chunk = self.read_exact_bytes(size + 2)?;
            if &chunk[size..] != b"\r\n" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk data not followed by CRLF",
                ));
            }
            data.extend_from_slice(&chunk[..size]);
            raw.extend_from_slice(&chunk);
        }
    }

    /// Everything until the peer closes.
    pub fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? != 0 {}
        Ok(std::mem::take(&mut self.buf))
    }
}

/// `(name, value)` pairs of a head, in order.
pub type Headers = Vec<(String, String)>;

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn header_all<'a>(headers: &'a Headers, name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Headers {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// The framing a head declares: (last transfer coding is chunked,
/// Content-Length if any).
fn framing(headers: &Headers) -> (bool, Option<usize>) {
    let chunked = header_all(headers, "transfer-encoding")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .next_back()
        .is_some_and(|last| last.eq_ignore_ascii_case("chunked"));
    let length = header(headers, "content-length").and_then(|v| v.trim().parse().ok());
    (chunked, length)
}

// ---------------------------------------------------------------------------
// Test backends

/// One request as a backend received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Headers,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
    /// The body bytes exactly as received (chunk framing included).
    pub raw_body: Vec<u8>,
    /// The head exactly as received.
    pub raw_head: Vec<u8>,
    /// Which accepted connection (0-based, in accept order) carried it.
    pub conn: usize,
}

/// The header lookups of a type with a `headers: Headers` field (a request
/// a backend received, a response a client received).
macro_rules! header_lookups {
    ($t:ty) => {
        impl $t {
            pub fn header(&self, name: &str) -> Option<&str> {
                header(&self.headers, name)
            }

            pub fn header_all(&self, name: &str) -> Vec<&str> {
                header_all(&self.headers, name)
            }

            pub fn has_header(&self, name: &str) -> bool {
                self.header(name).is_some()
            }
        }
    };
}

header_lookups!(Request);
header_lookups!(Response);

/// What a backend does after receiving a request.
pub enum Reply {
    /// Write these bytes and wait for the next request on the connection.
    Raw(Vec<u8>),
    /// Write these bytes, then close the connection.
    RawThenClose(Vec<u8>),
    /// Close the connection without answering.
    Close,
    /// Wait, then do the inner reply.
    After(Duration, Box<Reply>),
}

impl Reply {
    /// `200 OK` with a Content-Length body.
    pub fn ok(body: impl AsRef<[u8]>) -> Reply {
        Reply::Raw(response(200, "OK", &[], body.as_ref()))
    }

    /// `200 OK` with `body` sent chunked in pieces of `chunk` bytes.
    pub fn chunked(body: &[u8], chunk: usize) -> Reply {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        out.extend_from_slice(&chunked_body(body, chunk));
        Reply::Raw(out)
    }
}

/// A response with a Content-Length body and the given extra fields.
pub fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (n, v) in headers {
        let _ = write!(out, "{n}: {v}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// `body` in chunked framing, `chunk` bytes a chunk, with the last chunk.
pub fn chunked_body(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk.max(1) * 10 + 16);
    for piece in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// How a backend treats its connections.
#[derive(Clone, Default)]
pub struct BackendOptions {
    /// Listen on this address (e.g. to restart on the same port).
    pub addr: Option<SocketAddr>,
    /// Close a connection that stays idle between requests this long.
    pub idle_close: Option<Duration>,
    /// Close every connection right after accepting it, reading nothing.
    pub accept_and_close: bool,
}

struct Shared {
    stop: AtomicBool,
    connections: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    /// Clones of the open connections, to close them on `stop`.
    live: Mutex<HashMap<usize, TcpStream>>,
    /// Heads or bodies the backend could not parse: corelb must never send one.
    malformed: Mutex<Vec<String>>,
    handler: Handler,
    options: BackendOptions,
}

/// A threaded HTTP/1.1 origin server on loopback; stops on drop.
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Backend {
    /// A backend answering every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Backend {
        Backend::start_with(BackendOptions::default(), handler)
    }

    /// A backend answering with `handler` that closes a connection left
    /// idle between requests for `idle` (as backends' keep-alive timeouts do).
    pub fn closing_idle_after(
        idle: Duration,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Backend {
        Backend::start_with(
            BackendOptions {
                idle_close: Some(idle),
                ..Default::default()
            },
            handler,
        )
    }

    /// A backend with `options`.
    pub fn start_with(
        options: BackendOptions,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Backend {
        let bind = options
            .addr
            .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let listener = bind_retrying(bind);
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            malformed: Mutex::new(Vec::new()),
            handler: Arc::new(handler),
            options,
        });
        let accept = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(listener, shared))
        };
        Backend {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Answers `200 OK` with `name` as the body and in `X-Backend`.
    pub fn echo_name(name: &str) -> Backend {
        let name = name.to_string();
        Backend::start(move |_| {
            Reply::Raw(response(
                200,
                "OK",
                &[("X-Backend", &name)],
                name.as_bytes(),
            ))
        })
    }

    /// Answers `200 OK` with the request body as the body (Content-Length),
    /// and the method and path in `X-Method` / `X-Path`.
    pub fn echo() -> Backend {
        Backend::start(|req| {
            Reply::Raw(response(
                200,
                "OK",
                &[("X-Method", &req.method), ("X-Path", &req.path)],
                &req.body,
            ))
        })
    }

    /// Writes `bytes` after every request (and keeps the connection).
    pub fn fixed(bytes: &[u8]) -> Backend {
        let bytes = bytes.to_vec();
        Backend::start(move |_| Reply::Raw(bytes.clone()))
    }

    /// Accepts connections and closes them at once.
    pub fn accept_and_close() -> Backend {
        Backend::start_with(
            BackendOptions {
                accept_and_close: true,
                ..Default::default()
            },
            |_| Reply::Close,
        )
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every complete request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// What the backend received that it could not parse as HTTP/1.1.
    pub fn malformed(&self) -> Vec<String> {
        self.shared.malformed.lock().unwrap().clone()
    }

    /// Number of complete requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Stop listening and close every connection. The port is free after.
    pub fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        for (_, s) in self.shared.live.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        // wake the accept call
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = accept.join();
        for (_, s) in self.shared.live.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
        let malformed = self.malformed();
        if !malformed.is_empty() && !thread::panicking() {
            panic!(
                "backend {} received malformed HTTP from corelb: {malformed:?}",
                self.addr
            );
        }
    }
}

fn bind_retrying(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + SAFETY;
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            // the port of a backend being restarted may still be held
            Err(_) if Instant::now() < deadline && addr.port() != 0 => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot bind a test backend on {addr}: {e}"),
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst);
        if shared.options.accept_and_close {
            drop(stream);
            continue;
        }
        if let Ok(clone) = stream.try_clone() {
            shared.live.lock().unwrap().insert(id, clone);
        }
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            let mut conn = Conn::new(stream);
            if let Err(e) = serve_backend_conn(&mut conn, id, &shared) {
                if e.kind() == io::ErrorKind::InvalidData {
                    shared.malformed.lock().unwrap().push(e.to_string());
                }
            }
            // The clone in `live` keeps the socket open: close it for real.
            let _ = conn.stream.shutdown(Shutdown::Both);
            shared.live.lock().unwrap().remove(&id);
        });
    }
}

fn serve_backend_conn(conn: &mut Conn, conn_id: usize, shared: &Shared) -> io::Result<()> {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Between requests the idle timeout applies; inside one, the safety bound.
        let idle = shared.options.idle_close.unwrap_or(3 * SAFETY);
        conn.stream
            .set_read_timeout(Some(if conn.buffered().is_empty() {
                idle
            } else {
                SAFETY
            }))?;
        if conn.buffered().is_empty() {
            match conn.fill() {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e), // idle timeout or reset: close
            }
        }
        conn.stream.set_read_timeout(Some(SAFETY))?;
        let Some(raw_head) = conn.read_head()? else {
            return Ok(());
        };
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Request::new(&mut fields);
        if !matches!(parsed.parse(&raw_head), Ok(httparse::Status::Complete(_))) {
            let _ = conn.stream.write_all(&response(
                400,
                "Bad Request",
                &[("Connection", "close")],
                b"backend: bad head\n",
            ));
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed head: {:?}", String::from_utf8_lossy(&raw_head)),
            ));
        }
        let headers = owned_headers(parsed.headers);
        let (chunked, length) = framing(&headers);
        let (body, raw_body) = if chunked {
            conn.read_chunked()?
        } else if let Some(n) = length {
            let b = conn.read_exact_bytes(n)?;
            (b.clone(), b)
        } else {
            (Vec::new(), Vec::new())
        };
        let req = Request {
            method: parsed.method.unwrap_or("").to_string(),
            path: parsed.path.unwrap_or("").to_string(),
            version: parsed.version.unwrap_or(1),
            headers,
            body,
            chunked,
            raw_body,
            raw_head,
            conn: conn_id,
        };
        // Recorded before the handler runs, so a test can see a request
        // that the handler is still holding.
        shared.requests.lock().unwrap().push(req.clone());
        let mut reply = (shared.handler)(&req);
        loop {
            match reply {
                Reply::Raw(bytes) => {
                    conn.stream.write_all(&bytes)?;
                    break;
                }
                Reply::RawThenClose(bytes) => {
                    conn.stream.write_all(&bytes)?;
                    let _ = conn.stream.shutdown(Shutdown::Write);
                    // let the peer read everything before the socket goes
                    let _ = conn.stream.set_read_timeout(Some(SAFETY));
                    let _ = conn.read_to_eof();
                    return Ok(());
                }
                Reply::Close => return Ok(()),
                Reply::After(delay, inner) => {
                    thread::sleep(delay);
                    reply = *inner;
                }
            }
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An address nothing listens on (connecting is refused).
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

// ---------------------------------------------------------------------------
// The raw client

/// One HTTP response as a client received it.
#[derive(Debug, Clone)]
pub struct Response {
    pub version: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
    /// The body ran until the connection closed.
    pub close_delimited: bool,
}

impl Response {
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Connection: close` is among the Connection options.
    pub fn says_close(&self) -> bool {
        self.header_all("connection")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|o| o.trim().eq_ignore_ascii_case("close"))
    }
}

/// A raw HTTP/1.x client over one TCP connection.
pub struct Client {
    pub conn: Conn,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, SAFETY)
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        stream.set_read_timeout(Some(SAFETY)).unwrap();
        stream.set_write_timeout(Some(SAFETY)).unwrap();
        Client {
            conn: Conn::new(stream),
        }
    }

    /// Write exactly `bytes`.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.conn
            .stream
            .write_all(bytes.as_ref())
            .unwrap_or_else(|e| panic!("write to proxy failed: {e}"));
    }

    /// `GET path` with `Host: test` on this connection, and its response.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"));
        self.read_response()
    }

    /// The next response (to a request that was not HEAD).
    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false)
            .unwrap_or_else(|e| panic!("reading a response failed: {e}"))
    }

    /// The next response to a HEAD request (no body whatever it says).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true)
            .unwrap_or_else(|e| panic!("reading a response failed: {e}"))
    }

    /// The next response, or the error that stopped it.
    pub fn try_read_response(&mut self, to_head: bool) -> io::Result<Response> {
        let raw = self.conn.read_head()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Response::new(&mut fields);
        match parsed.parse(&raw) {
            Ok(httparse::Status::Complete(_)) => {}
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "bad response head {other:?}: {:?}",
                        String::from_utf8_lossy(&raw)
                    ),
                ))
            }
        }
        let status = parsed.code.unwrap_or(0);
        let headers = owned_headers(parsed.headers);
        let (chunked, length) = framing(&headers);
        let no_body = to_head || (100..200).contains(&status) || status == 204 || status == 304;
        let mut close_delimited = false;
        let body = if no_body {
            Vec::new()
        } else if chunked {
            self.conn.read_chunked()?.0
        } else if let Some(n) = length {
            self.conn.read_exact_bytes(n)?
        } else {
            close_delimited = true;
            self.conn.read_to_eof()?
        };
        Ok(Response {
            version: parsed.version.unwrap_or(1),
            status,
            reason: parsed.reason.unwrap_or("").to_string(),
            headers,
            body,
            chunked: chunked && !no_body,
            close_delimited,
        })
    }

    /// The proxy closes the connection: EOF (or a reset) with no further
    /// bytes, within the safety bound.
    pub fn expect_closed(&mut self) {
        assert!(
            self.conn.buffered().is_empty(),
            "unexpected bytes after the response: {:?}",
            String::from_utf8_lossy(self.conn.buffered())
        );
        match self.conn.fill() {
            Ok(0) => {}
            Ok(_) => panic!(
                "expected the connection to close, got bytes: {:?}",
                String::from_utf8_lossy(self.conn.buffered())
            ),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the connection to close, got: {e}"),
        }
    }

    /// Nothing arrives for `wait` and the connection stays open.
    pub fn expect_silence(&mut self, wait: Duration) {
        self.conn.stream.set_read_timeout(Some(wait)).unwrap();
        let r = self.conn.fill();
        self.conn.stream.set_read_timeout(Some(SAFETY)).unwrap();
        match r {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Ok(0) => panic!("the connection closed"),
            Ok(_) => panic!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(self.conn.buffered())
            ),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

/// Send `raw` on a new connection and expect an error response with
/// `status`, `Connection: close`, then the connection closed.
pub fn expect_error(proxy: &Proxy, raw: &[u8], status: u16) -> Response {
    let mut c = proxy.client();
    c.send(raw);
    let res = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(raw)));
    assert_eq!(
        res.status,
        status,
        "request {:?} got {res:?}",
        String::from_utf8_lossy(raw)
    );
    assert!(
        res.says_close(),
        "error response without Connection: close: {res:?}"
    );
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "error response not text/plain: {res:?}"
    );
    assert!(
        !res.body.is_empty(),
        "error response without a body: {res:?}"
    );
    c.expect_closed();
    res
}

// ---------------------------------------------------------------------------
// Data

/// `len` pseudo-random bytes, the same for the same `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Hex SHA-256.
pub fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Poll `cond` until it holds or the safety bound passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + SAFETY;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// Third-party programs

/// Fail (not skip) when a program the tests need is missing.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(name);
            p.is_file()
        })
    });
    assert!(
        found,
        "`{name}` is not installed; these tests need nginx, curl, wrk, python3 (with prometheus_client and websockets) and chromium: run .ci/run (CI installs them)"
    );
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "corelb-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A real nginx (no daemon, no master process) on a loopback port,
/// serving `server_block` (the body of its `server {}`); killed on drop.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

impl Nginx {
    /// `setup` may put files into the prefix dir before nginx starts;
    /// `server_block` may use `{prefix}`, replaced by that dir.
    pub fn start(server_block: &str, setup: impl FnOnce(&Path)) -> Nginx {
        Nginx::start_listening("", server_block, setup)
    }

    /// As [`Nginx::start`], with `params` after the `listen` address
    /// (` ssl`, say).
    pub fn start_listening(params: &str, server_block: &str, setup: impl FnOnce(&Path)) -> Nginx {
        require_tool("nginx");
        let dir = TempDir::new("nginx");
        setup(dir.path());
        let prefix = dir.path().display().to_string();
        for attempt in 0..5 {
            let port = free_port();
            let conf = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n\
                 error_log {prefix}/error.log warn;\nevents {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n\
                 proxy_temp_path {prefix}/proxy;\n  fastcgi_temp_path {prefix}/fastcgi;\n\
                 uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
                 keepalive_requests 10000;\n  default_type application/octet-stream;\n\
                 server {{\n    listen 127.0.0.1:{port}{params};\n{}\n  }}\n}}\n",
                server_block.replace("{prefix}", &prefix)
            );
            let conf_path = dir.path().join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let mut child = Command::new("nginx")
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot start nginx");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let deadline = Instant::now() + SAFETY;
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    let log =
                        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                    if attempt < 4 && (err.contains("in use") || log.contains("in use")) {
                        break; // port taken meanwhile: try another
                    }
                    panic!("nginx exited: {err}\n{log}");
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Nginx { child, addr, dir };
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx did not start listening on {addr}"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start nginx on a free port");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Reading the admin API: `/status` and `/metrics`.
pub mod admin;
// Headless Chromium.
pub mod chromium;
// A real DNS server (dnsmasq) on loopback, for discovery.
pub mod dns;
// Backends that never answer, or cannot be connected to.
pub mod faults;
// Steady load from keep-alive clients, counted by status.
pub mod load;
// A test certificate authority, and TLS clients.
pub mod tls;
