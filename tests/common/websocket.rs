//! Helpers for the WebSocket tests: the Python `websockets` echo server and
//! clients in `tests/websocket/`, and a few raw frames for tests that need
//! to hold a tunnel open from Rust while they look at corelb.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{require_tool, Client, Response};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/websocket")
        .join(name)
}

/// Fail (not skip) without Python's `websockets`.
pub fn require_websockets() {
    require_tool("python3");
    let ok = Command::new("python3")
        .args(["-c", "import websockets.asyncio.server"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "Python's `websockets` (PyPI) is not installed; these tests need it: run .ci/run (CI installs it)"
    );
}

/// `tests/websocket/server.py`: a real WebSocket echo server on loopback;
/// killed on drop.
pub struct EchoServer {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        require_websockets();
        let mut child = Command::new("python3")
            .arg(script("server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start python3");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the echo server prints its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the echo server printed {line:?}, not a port"));
        EchoServer {
            child,
            _stdin: stdin,
            port,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `tests/websocket/client.py URL ARGS...`, killed if it runs past
/// `within`; its stdout (one JSON line). Panics with its stderr if it fails.
pub fn run_client(url: &str, args: &[&str], within: Duration) -> String {
    require_websockets();
    let mut child = Command::new("python3")
        .arg(script("client.py"))
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start python3");
    let give_up = Instant::now() + within;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "client.py {args:?} ran over {within:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client.py {args:?} failed; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The RFC 6455 §1.3 sample key, and the accept value it must get back.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A WebSocket opening handshake for `path`, as a browser sends it.
pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Open a tunnel on `client` through to a WebSocket server: the `101`.
pub fn handshake(client: &mut Client, path: &str) -> Response {
    client.send(upgrade_request(path));
    let res = client.read_response();
    assert_eq!(res.status, 101, "{res:?}");
    assert_eq!(res.header("sec-websocket-accept"), Some(ACCEPT), "{res:?}");
    res
}

/// Send one masked frame (client to server) with a short payload.
pub fn send_frame(client: &mut Client, opcode: u8, payload: &[u8]) {
    assert!(payload.len() < 126);
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    client.send(frame);
}

/// Read one unmasked frame (server to client) with a short payload:
/// (opcode, payload).
pub fn read_frame(client: &mut Client) -> (u8, Vec<u8>) {
    let head = client.conn.read_exact_bytes(2).expect("a frame head");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = usize::from(head[1] & 0x7f);
    assert!(len < 126, "a short frame");
    let payload = client.conn.read_exact_bytes(len).expect("a frame payload");
    (head[0] & 0x0f, payload)
}
