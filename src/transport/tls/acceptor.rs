//! One TLS listener's rustls `ServerConfig`, built once at start and kept
//! across reloads (a reload swaps its certificates inside its resolver),
//! and what all of them share: the crypto provider, the session-ticket
//! keys and the session cache. One `ServerConfig` serves every worker, so
//! a session started on one worker resumes on any other.
//!
//! Protocols: TLS 1.3 and 1.2 only, rustls's default cipher suites (no
//! CBC, no RSA key exchange, no compression, no renegotiation), no 0-RTT,
//! ALPN `h2` (preferred, unless the listener turns HTTP/2 off) and
//! `http/1.1`; a client that offers neither (or no ALPN) speaks HTTP/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::{ServerConfig, ServerConnection};

use super::resolver::{CertResolver, CertificateSet};
use super::ticket_keys::{TicketKeys, Tickets};

/// Sessions remembered for resumption by session ID (TLS 1.2 clients
/// without tickets), across all workers.
const SESSION_CACHE_ENTRIES: usize = 20_000;

/// What every TLS listener of the process shares.
pub struct TlsCommon {
    provider: Arc<CryptoProvider>,
    /// The keys of the `tls_ticket_keys` file, else keys rotated by
    /// rustls every 6 hours, the last one still accepted.
    ticketer: Arc<Tickets>,
    cache: Arc<dyn StoresServerSessions>,
}

impl TlsCommon {
    /// Ticket keys from `ticket_keys` (else fresh rotating ones) and an
    /// empty session cache.
    pub fn new(ticket_keys: Option<&Path>) -> Result<Self, String> {
        Ok(Self {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            ticketer: Arc::new(Tickets::new(Self::read_ticket_keys(ticket_keys)?)?),
            cache: ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
        })
    }

    /// The keys of the `tls_ticket_keys` file at `path`, if one is set:
    /// read and checked, not yet used (see [`Self::use_ticket_keys`]).
    pub fn read_ticket_keys(path: Option<&Path>) -> Result<Option<TicketKeys>, String> {
        path.map(TicketKeys::read).transpose()
    }

    /// New tickets are made with `keys` from now on (`None`: the rotating
    /// keys); open connections and every `ServerConfig` stay.
    pub fn use_ticket_keys(&self, keys: Option<TicketKeys>) {
        self.ticketer.replace(keys);
    }

    /// The crypto provider, to load keys with.
    pub fn provider(&self) -> &CryptoProvider {
        &self.provider
    }
}

/// One TLS listener's handshake side.
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    resolver: Arc<CertResolver>,
}

impl TlsAcceptor {
    /// An acceptor serving `certificates`, offering HTTP/2 by ALPN if `h2`.
    pub fn new(certificates: CertificateSet, common: &TlsCommon, h2: bool) -> Result<Self, String> {
        let resolver = CertResolver::new(certificates);
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&common.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as _);
        // In the server's order of preference: rustls picks the first of
        // ours the client offers.
        config.alpn_protocols = match h2 {
            true => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            false => vec![b"http/1.1".to_vec()],
        };
        config.ticketer = Arc::clone(&common.ticketer) as _;
        config.session_storage = Arc::clone(&common.cache);
        config.max_early_data_size = 0;
        Ok(Self {
            config: Arc::new(config),
            resolver,
        })
    }

    /// A new server-side connection for a client that just connected.
    pub fn connection(&self) -> Result<ServerConnection, rustls::Error> {
        ServerConnection::new(Arc::clone(&self.config))
    }

    /// The certificates, to swap on reload and to show.
    pub fn resolver(&self) -> &CertResolver {
        &self.resolver
    }
}
