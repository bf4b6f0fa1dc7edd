//! The listening sockets: one per worker, all bound to the same address
//! with SO_REUSEPORT, so the kernel spreads new connections across workers
//! and no accept lock or hand-off exists between them.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::steering::group;

/// Refuse an address another process already listens on, as nginx would:
/// joining its SO_REUSEPORT group silently would take half its traffic
/// with our (maybe different) backends. `--takeover` joins on purpose.
///
/// Tested by binding without SO_REUSEPORT, which any listener on the
/// address (or on the wildcard address of its port) makes fail.
pub fn refuse_busy(addr: SocketAddr) -> Result<(), String> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("cannot create a socket: {e}"))?;
    // SO_REUSEADDR: connections of an earlier process in TIME_WAIT do not
    // make the address busy.
    let _ = probe.set_reuse_address(true);
    match probe.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let who = group::who_listens_on_port(addr.port())
                .map(|who| format!(" by {who}"))
                .unwrap_or_default();
            Err(format!(
                "cannot listen on {addr} (--listen): address already in use{who}; to replace a running corelb without dropping connections, start the new one with --takeover, then stop the old one with SIGTERM"
            ))
        }
        Err(e) => Err(format!("cannot listen on {addr} (--listen): {e}")),
    }
}

/// Bind `count` SO_REUSEPORT listeners to `addr`. With port 0 the first
/// socket picks a port and the rest join it.
pub fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Every worker's socket of a listener systemd handed over (see
/// [`crate::systemd::activation`]): the handed one for worker 0; for the
/// others, sockets of their own in its SO_REUSEPORT group when the kernel
/// lets them join (the handed socket has SO_REUSEPORT, and was made by
/// this user: a `.socket` unit's is made by root, so a `DynamicUser=`
/// service cannot join it), else the handed socket itself, shared.
pub fn workers_of_handed(
    handed: crate::systemd::activation::Handed,
    count: usize,
    backlog: u32,
) -> io::Result<Vec<std::net::TcpListener>> {
    let others = count.saturating_sub(1);
    let joined = match handed.reuse_port {
        true => bind_listeners(handed.addr, others, backlog).ok(),
        false => None,
    };
    let rest = match joined {
        Some(own) => own,
        None => {
            if others > 0 {
                tracing::info!(
                    "systemd socket {:?} ({}): the {count} workers share it (no SO_REUSEPORT \
                     group to join: set ReusePort=yes in the .socket unit, and run as the user \
                     that made it, for one socket per worker)",
                    handed.name,
                    handed.addr
                );
            }
            (0..others)
                .map(|_| handed.socket.try_clone())
                .collect::<io::Result<Vec<_>>>()?
        }
    };
    Ok(std::iter::once(handed.socket).chain(rest).collect())
}
