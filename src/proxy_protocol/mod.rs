//! The PROXY protocol (HAProxy's, v1 and v2): how an L4 hop in front of
//! corelb tells it the client's address, and how corelb tells a backend
//! behind it. Pure (no sockets): parsing the header a trusted peer sends
//! ([`parse`]), writing the one a pool's backends want ([`write`]), and
//! the address ranges a listener trusts ([`cidr`]). The socket side is
//! `crate::worker::proxy_header` (reading) and the upstream connect path
//! (writing).

pub mod cidr;
pub mod parse;
pub mod write;

pub use cidr::Cidr;
pub use parse::{parse, sniff, Parsed, Sniff, MAX_LEN};
pub use write::{encode, local, Version, MAX_WRITTEN};

/// The peers a listener takes PROXY headers from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted(pub Vec<Cidr>);

impl Trusted {
    /// Is `ip` one of them?
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}
