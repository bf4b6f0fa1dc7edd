//! `--max-connections-per-ip`: a client address holding the limit is
//! refused one more connection (closed at once, no answer) while another
//! address still gets in; closing one frees its place; refusals show in
//! /metrics; and a reload changes the limit for connections already open.
//!
//! Loopback accepts the whole of 127/8, so a second client address is a
//! socket bound to 127.0.0.2 before it connects.

mod common;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};

use common::*;
use socket2::{Domain, Socket, Type};

/// A client connection to `proxy` from `source` (port chosen by the kernel).
fn connect_from(source: Ipv4Addr, proxy: SocketAddr) -> Client {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())
        .unwrap_or_else(|e| panic!("cannot bind {source}: {e}"));
    socket
        .connect_timeout(&proxy.into(), SAFETY)
        .unwrap_or_else(|e| panic!("cannot connect from {source} to {proxy}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(SAFETY)).unwrap();
    stream.set_write_timeout(Some(SAFETY)).unwrap();
    Client {
        conn: Conn::new(stream),
    }
}

/// Send a GET on `client`: true when it is answered 200, false when the
/// connection is closed (or reset) without an answer. Anything else — a
/// different answer, or silence until the safety bound — fails the test.
fn served(client: &mut Client) -> bool {
    let closed = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        )
    };
    if let Err(e) = client
        .conn
        .stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    {
        assert!(closed(&e), "sending the request failed: {e}");
        return false;
    }
    match client.try_read_response(false) {
        Ok(r) => {
            assert_eq!(r.status, 200, "{r:?}");
            true
        }
        Err(e) if closed(&e) => false,
        Err(e) => panic!("neither an answer nor a close: {e}"),
    }
}

/// A new connection from `source`, if corelb serves it.
fn try_connect(source: Ipv4Addr, proxy: SocketAddr) -> Option<Client> {
    let mut c = connect_from(source, proxy);
    served(&mut c).then_some(c)
}

/// `corelb_connections_refused_total{reason="per_ip"}` from /metrics.
fn refused_in_metrics(admin: SocketAddr) -> u64 {
    let body = common::admin::get(admin, "/metrics").body_str();
    body.lines()
        .find_map(|l| l.strip_prefix("corelb_connections_refused_total{reason=\"per_ip\"} "))
        .unwrap_or_else(|| panic!("no per-IP refusal counter in /metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

const ONE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const TWO: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

both_drivers!(one_address_is_held_to_the_limit_others_are_not, |driver| {
    let backend = Backend::echo_name("a");
    let proxy = Proxy::with_backends(
        driver,
        &[&backend],
        &[
            "--max-connections-per-ip",
            "3",
            "--admin",
            "127.0.0.1:0",
            "--threads",
            "2",
        ],
    );
    let admin = proxy.admin_addr();
    assert_eq!(refused_in_metrics(admin), 0);

    let mut held: Vec<Client> = (0..3)
        .map(|i| try_connect(ONE, proxy.addr()).unwrap_or_else(|| panic!("connection {i} refused")))
        .collect();
    let mut refused = 0;
    for _ in 0..2 {
        assert!(
            try_connect(ONE, proxy.addr()).is_none(),
            "a 4th connection from {ONE} was served"
        );
        refused += 1;
    }
    // The held connections still work, and another address gets in.
    for c in &mut held {
        assert!(served(c));
    }
    let mut other = try_connect(TWO, proxy.addr()).expect("127.0.0.2 was refused");
    assert!(served(&mut other));

    // Closing one frees its place (once corelb has seen the close).
    drop(held.pop());
    let mut freed = None;
    wait_until("a freed place is taken", || {
        freed = try_connect(ONE, proxy.addr());
        if freed.is_none() {
            refused += 1;
        }
        freed.is_some()
    });
    assert!(try_connect(ONE, proxy.addr()).is_none());
    refused += 1;

    wait_until("every refusal is counted", || {
        refused_in_metrics(admin) == refused
    });
    assert!(
        proxy.log().contains("--max-connections-per-ip"),
        "refusals are not logged:\n{}",
        proxy.log()
    );
});

#[test]
fn a_reload_applies_the_limit_to_connections_already_open() {
    let backend = Backend::echo_name("a");
    let dir = TempDir::new("per-ip");
    let path = dir.path().join("corelb.toml");
    let write = |limit: usize| {
        let text = format!(
            "max_connections_per_ip = {limit}\n[[pools]]\nname = \"default\"\nbackends = [{{ addr = \"{}\" }}]\n",
            backend.addr()
        );
        std::fs::write(&path, text).unwrap();
    };
    let reloads = |proxy: &Proxy| proxy.log().matches("SIGHUP: reloaded").count();
    write(0);
    let proxy = Proxy::start(&["--config", path.to_str().unwrap(), "--admin", "off"]);
    let _held: Vec<Client> = (0..2)
        .map(|_| try_connect(ONE, proxy.addr()).expect("no limit yet"))
        .collect();

    // Turned on at 2: the two open already count.
    write(2);
    proxy.signal("HUP");
    wait_until("the first reload", || reloads(&proxy) == 1);
    assert!(try_connect(ONE, proxy.addr()).is_none());
    assert!(try_connect(TWO, proxy.addr()).is_some());

    // Raised to 3: one more.
    write(3);
    proxy.signal("HUP");
    wait_until("the second reload", || reloads(&proxy) == 2);
    let _third = try_connect(ONE, proxy.addr()).expect("the raised limit was not applied");
    assert!(try_connect(ONE, proxy.addr()).is_none());
}
