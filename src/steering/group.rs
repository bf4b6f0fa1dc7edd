//! Whose sockets are in our SO_REUSEPORT group.
//!
//! A steering program is attached to the group, not to a socket, and it
//! numbers the group's sockets in the order they joined. Both hold only
//! while every socket listening on our address is ours: during an
//! overlapping restart another process's listeners share the group, our
//! numbering is wrong, and a program left behind by a process that exited
//! would keep steering by its frozen weights. So steering runs only while
//! the group is ours alone, and stands aside (the kernel's even hash) while
//! it is not.
//!
//! The kernel's socket table (`/proc/net/tcp`, `/proc/net/tcp6`) lists
//! listening sockets first, with their local address and inode; ours are
//! known by inode.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// The TCP state code of a listening socket in the kernel's table.
const LISTEN: &str = "0A";

/// `addr` as the kernel's socket table writes a local address: each 32-bit
/// word of the address in host byte order, in hex, then the port.
pub fn table_address(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(v6) => {
            let octets = v6.ip().octets();
            let words: String = octets
                .chunks_exact(4)
                .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
                .collect();
            format!("{words}:{:04X}", v6.port())
        }
    }
}

/// The inodes of the sockets listening on `address` (as [`table_address`]
/// writes it) in the lines of a socket table. The table lists listening
/// sockets first, so reading stops at the first socket in another state.
pub fn listening_inodes(lines: impl Iterator<Item = String>, address: &str) -> Vec<u64> {
    listening_where(lines, |local| local == address)
}

/// The inodes of the listening sockets whose local address (as the table
/// writes it) passes `wanted`. The table lists listening sockets first, so
/// reading stops at the first socket in another state.
fn listening_where(lines: impl Iterator<Item = String>, wanted: impl Fn(&str) -> bool) -> Vec<u64> {
    let mut inodes = Vec::new();
    for line in lines.skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
        else {
            continue;
        };
        if *state != LISTEN {
            break;
        }
        if wanted(local) {
            if let Ok(inode) = inode.parse() {
                inodes.push(inode);
            }
        }
    }
    inodes
}

/// The inode of socket `fd`, from `/proc/self/fd` ("socket:[INODE]").
pub fn socket_inode(socket: &impl AsRawFd) -> io::Result<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd()))?;
    link.to_str()
        .and_then(|l| l.strip_prefix("socket:["))
        .and_then(|l| l.strip_suffix(']'))
        .and_then(|inode| inode.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not a socket: {}", link.display())))
}

/// Does a socket that is not one of `ours` listen on `addr` (and so share
/// our group)?
pub fn has_foreign_listeners(addr: SocketAddr, ours: &[u64]) -> io::Result<bool> {
    let table = if addr.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let file = std::fs::File::open(table)?;
    let lines = BufReader::new(file).lines().map_while(Result::ok);
    let listening = listening_inodes(lines, &table_address(addr));
    Ok(listening.iter().any(|inode| !ours.contains(inode)))
}

/// The inodes of every socket listening on `port` (any address) in the
/// lines of a socket table.
fn listening_on_port(lines: impl Iterator<Item = String>, port: u16) -> Vec<u64> {
    let suffix = format!(":{port:04X}");
    listening_where(lines, |local| local.ends_with(&suffix))
}

/// Which process listens on `port`, as `process PID (NAME)`, for the
/// message that refuses a busy address. `None` if it cannot be told
/// (another user's process, whose descriptors we may not read).
pub fn who_listens_on_port(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(file) = std::fs::File::open(table) {
            let lines = BufReader::new(file).lines().map_while(Result::ok);
            inodes.extend(listening_on_port(lines, port));
        }
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("process {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::listen::bind_listeners;

    #[test]
    fn the_owner_of_a_listening_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let who = who_listens_on_port(port).expect("our own listener is found");
        assert!(who.contains(&std::process::id().to_string()), "{who}");
    }

    #[test]
    fn addresses_are_written_as_the_kernel_writes_them() {
        // Little-endian hosts (x86-64, aarch64): the kernel's own examples.
        if cfg!(target_endian = "little") {
            assert_eq!(
                table_address("127.0.0.1:8080".parse().unwrap()),
                "0100007F:1F90"
            );
            assert_eq!(
                table_address("[::1]:443".parse().unwrap()),
                "00000000000000000000000001000000:01BB"
            );
        }
        assert_eq!(
            table_address("0.0.0.0:80".parse().unwrap()),
            "00000000:0050"
        );
    }

    #[test]
    fn only_listening_sockets_on_the_address_are_counted() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
   3: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0 20 4 30 10 -1
   4: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0 100 0 0 10 0";
        let lines = table.lines().map(str::to_owned);
        // 222 is another port; 444 is a connection, and listing stops there.
        assert_eq!(listening_inodes(lines, "0100007F:1F90"), vec![111, 333]);
    }

    #[test]
    fn our_own_group_has_no_foreign_listeners_and_a_second_one_does() {
        let ours = bind_listeners("127.0.0.1:0".parse().unwrap(), 2, 16).unwrap();
        let addr = ours[0].local_addr().unwrap();
        let inodes: Vec<u64> = ours.iter().map(|l| socket_inode(l).unwrap()).collect();
        assert!(!has_foreign_listeners(addr, &inodes).unwrap());
        // Another process's listener joining the group looks like this one.
        let theirs = bind_listeners(addr, 1, 16).unwrap();
        assert!(has_foreign_listeners(addr, &inodes).unwrap());
        drop(theirs);
        assert!(!has_foreign_listeners(addr, &inodes).unwrap());
    }
}
