//! Socket activation: with `LISTEN_PID` = this process and `LISTEN_FDS` =
//! N, descriptors 3 … 3+N-1 are listening sockets systemd (or
//! `systemd-socket-activate`) opened for corelb; `LISTEN_FDNAMES` names
//! them (`FileDescriptorName=`, else the socket unit's name).
//!
//! Each handed socket is claimed by the listener (`--listen`,
//! `[[listeners]]`) with the same address; one no listener claims is an
//! error naming it, so a unit and a config that disagree fail at start
//! instead of leaving a port dead. A listener with no handed socket binds
//! its own as usual. Each worker needs a socket of its own in the
//! listener's SO_REUSEPORT group (`crate::runtime`): worker 0 takes the
//! handed one, the others bind theirs to its address, which the kernel
//! allows when the handed socket has SO_REUSEPORT (`ReusePort=yes` in the
//! `.socket` unit). Without it they share the handed socket (its
//! descriptor duplicated), which works but leaves the kernel's spread
//! (and accept steering) out.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};

use socket2::Socket;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// One socket handed over.
#[derive(Debug)]
pub struct Handed {
    /// `LISTEN_FDNAMES`'s name for it, for messages.
    pub name: String,
    pub addr: SocketAddr,
    /// It has SO_REUSEPORT: the other workers can bind their own.
    pub reuse_port: bool,
    pub socket: std::net::TcpListener,
}

/// The descriptors (and names) the variables hand this process (`pid`);
/// none when `LISTEN_PID` is unset or another process's.
pub fn parse_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    names: Option<&str>,
    pid: u32,
) -> Result<Vec<(RawFd, String)>, String> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Ok(Vec::new());
    };
    if listen_pid.trim().parse::<u32>().ok() != Some(pid) {
        return Ok(Vec::new());
    }
    let count: RawFd = listen_fds
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=4096).contains(n))
        .ok_or_else(|| format!("LISTEN_FDS={listen_fds:?} is not a count of descriptors"))?;
    let mut names = names.unwrap_or_default().split(':');
    Ok((FIRST_FD..FIRST_FD + count)
        .map(|fd| {
            let name = names.next().filter(|n| !n.is_empty()).unwrap_or("unknown");
            (fd, name.to_string())
        })
        .collect())
}

/// Take the sockets systemd handed this process, and clear the variables
/// (nothing else is to take them). Call before any other thread starts:
/// it changes the environment.
pub fn take() -> Result<Vec<Handed>, String> {
    let var = |name: &str| std::env::var(name).ok();
    let fds = parse_env(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?;
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    fds.into_iter().map(|(fd, name)| adopt(fd, name)).collect()
}

/// Make descriptor `fd` a listener of ours, if it is a listening TCP
/// socket.
fn adopt(fd: RawFd, name: String) -> Result<Handed, String> {
    // SAFETY: systemd passed `fd` to this process for it to own; nothing
    // else in corelb uses descriptors it did not open.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let not_ours = |why: String| format!("systemd handed socket {name:?} (fd {fd}): {why}");
    socket
        .set_cloexec(true)
        .map_err(|e| not_ours(e.to_string()))?;
    let listening = socket.is_listener().unwrap_or(false);
    let addr = socket.local_addr().ok().and_then(|a| a.as_socket());
    let (true, Some(addr)) = (listening, addr) else {
        return Err(not_ours(
            "not a listening TCP socket (corelb serves ListenStream= sockets)".into(),
        ));
    };
    socket
        .set_nonblocking(true)
        .map_err(|e| not_ours(e.to_string()))?;
    let _ = socket.set_tcp_nodelay(true);
    Ok(Handed {
        name,
        addr,
        reuse_port: socket.reuse_port().unwrap_or(false),
        socket: socket.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_process_takes_the_descriptors() {
        let fds = parse_env(Some("42"), Some("2"), Some("web:admin"), 42).unwrap();
        assert_eq!(fds, [(3, "web".to_string()), (4, "admin".to_string())]);
        assert!(parse_env(Some("41"), Some("2"), None, 42)
            .unwrap()
            .is_empty());
        assert!(parse_env(None, Some("2"), None, 42).unwrap().is_empty());
        let fds = parse_env(Some("42"), Some("1"), None, 42).unwrap();
        assert_eq!(fds, [(3, "unknown".to_string())]);
        assert!(parse_env(Some("42"), Some("many"), None, 42).is_err());
    }
}
