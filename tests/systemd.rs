//! How systemd runs corelb: socket activation (with Debian's
//! `systemd-socket-activate`, which opens the socket and starts corelb at
//! the first connection, and with the variables set by hand for a socket
//! with SO_REUSEPORT, as a `.socket` unit with `ReusePort=yes` makes) and
//! `Type=notify` (a datagram socket standing in for systemd reads READY,
//! RELOADING/READY around SIGHUP, STOPPING at SIGTERM).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// One GET on a new connection: the answer's body ("" if none).
fn get_body(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(SAFETY)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// `systemd-socket-activate` with `sockets` (`-l`), their `names`, running
/// corelb with `args`; its stderr goes to `log`.
fn socket_activate(
    sockets: &[SocketAddr],
    names: &str,
    args: &[&str],
    log: &std::path::Path,
) -> Child {
    require_tool("systemd-socket-activate");
    let mut cmd = Command::new("systemd-socket-activate");
    for s in sockets {
        cmd.arg("-l").arg(s.to_string());
    }
    cmd.arg(format!("--fdname={names}"))
        .arg(env!("CARGO_BIN_EXE_corelb"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    let child = cmd.spawn().expect("cannot start systemd-socket-activate");
    // It listens before it starts corelb.
    let deadline = Instant::now() + SAFETY;
    while TcpStream::connect_timeout(&sockets[0], Duration::from_millis(100)).is_err() {
        assert!(
            Instant::now() < deadline,
            "systemd-socket-activate did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn systemd_socket_activate_hands_corelb_its_socket() {
    let backend = Backend::echo_name("b");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = TempDir::new("activate");
    let log = dir.path().join("stderr");
    let child = Killed(socket_activate(
        &[addr],
        "web",
        &[
            "--listen",
            &addr.to_string(),
            "--backend",
            &backend.addr().to_string(),
            "--threads",
            "2",
            "--no-pin",
        ],
        &log,
    ));
    // The socket is systemd-socket-activate's (no SO_REUSEPORT): corelb
    // could not bind the port itself, so every answer shows it took it.
    for _ in 0..20 {
        let answer = get_body(addr);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with('b'),
            "{answer}"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("the 2 workers share it"), "{text}");
    drop(child);
}

#[test]
fn a_handed_socket_no_listener_claims_is_an_error_naming_it() {
    let backend = Backend::echo_name("b");
    let ours: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let extra: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = TempDir::new("activate");
    let log = dir.path().join("stderr");
    let mut child = Killed(socket_activate(
        &[ours, extra],
        "web:forgotten",
        &[
            "--listen",
            &ours.to_string(),
            "--backend",
            &backend.addr().to_string(),
        ],
        &log,
    ));
    // corelb starts at the first connection, and refuses to serve.
    let _ = get_body(ours);
    let deadline = Instant::now() + SAFETY;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "corelb kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"forgotten\"") && text.contains(&extra.to_string()),
        "{text}"
    );
}

#[test]
fn with_reuse_port_every_worker_gets_a_socket_of_its_own() {
    let backend = Backend::echo_name("b");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(128).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    // As systemd does: the socket as descriptor 3, LISTEN_PID the pid of
    // the process that execs corelb (the shell's, which exec keeps).
    let fd = socket.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_corelb"),
    ])
    .env("LISTEN_FDS", "1")
    .env("LISTEN_FDNAMES", "web");
    // SAFETY: dup2 is async-signal-safe; between fork and exec nothing
    // else runs in the child.
    unsafe {
        cmd.pre_exec(move || match libc::dup2(fd, 3) {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    let proxy = Proxy::start_command(
        cmd,
        &[
            "--listen",
            &addr.to_string(),
            "--backend",
            &backend.addr().to_string(),
            "--threads",
            "2",
        ],
    );
    drop(socket);
    for _ in 0..20 {
        let answer = get_body(addr);
        assert!(answer.ends_with('b'), "{answer}");
    }
    assert!(!proxy.log().contains("share it"), "{}", proxy.log());
    // Two sockets of corelb's listen on the address: the handed one and
    // worker 1's.
    let pid = proxy.pid();
    let inodes = listening_inodes(addr);
    let ours: std::collections::BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| inodes.iter().any(|i| *l == format!("socket:[{i}]")))
        .collect();
    assert_eq!(
        ours.len(),
        2,
        "listening sockets of corelb on {addr}: {ours:?}"
    );
}

/// The inodes of the listening sockets on `addr` (from /proc/net/tcp).
fn listening_inodes(addr: SocketAddr) -> Vec<String> {
    let port = format!(":{:04X}", addr.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1)?.ends_with(&port) && f.get(3)? == &"0A")
                .then(|| f.get(9).map(|s| s.to_string()))?
        })
        .collect()
}

/// The next datagram on `socket` within the safety bound.
fn next_state(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notify_says_ready_reloading_and_stopping() {
    let backend = Backend::echo_name("b");
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(SAFETY)).unwrap();
    let config = dir.path().join("corelb.toml");
    std::fs::write(
        &config,
        format!(
            "[[pools]]\nname = \"default\"\nbackends = [{{ addr = \"{}\" }}]\n",
            backend.addr()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelb"));
    cmd.env("NOTIFY_SOCKET", &path);
    let mut proxy = Proxy::start_command(
        cmd,
        &["--config", config.to_str().unwrap(), "--threads", "2"],
    );
    let ready = next_state(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    // READY=1 means served: no wait needed.
    assert!(get_body(proxy.addr()).ends_with('b'));
    proxy.signal("HUP");
    let reloading = next_state(&socket);
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    let ready = next_state(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    proxy.signal("TERM");
    let stopping = next_state(&socket);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    assert_eq!(proxy.wait_exit(SAFETY), Some(0));
    proxy.stopped = true;
}
