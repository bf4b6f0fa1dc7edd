//! TLS from clients and to backends ([`connector`]) (rustls, aws-lc-rs provider): the stream a TLS
//! connection becomes ([`stream`]), its certificates ([`certs`]) and the
//! choice among them by SNI ([`resolver`]), and each listener's acceptor
//! ([`acceptor`]). Never crypto or record parsing of our own: rustls does
//! both, corelb only moves bytes between it and the socket.

pub mod acceptor;
pub mod certs;
pub mod connector;
pub mod poll;
pub mod resolver;
pub mod stream;
pub mod ticket_keys;

pub use acceptor::{TlsAcceptor, TlsCommon};
pub use poll::TlsPollIo;
pub use stream::TlsStream;
