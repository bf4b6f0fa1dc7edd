//! Session-ticket keys read from a file (`tls_ticket_keys`), so that
//! several corelb processes, and the old and new process of an
//! overlapping restart, resume each other's TLS sessions, as HAProxy's
//! `tls-ticket-keys` does. rustls's own `Ticketer` makes its keys itself
//! and cannot take them from outside, so this is a `ProducesTickets` of
//! our own over aws-lc-rs's AES-256-GCM: corelb picks the key and frames
//! the ticket, the crypto is the library's.
//!
//! The file: one key a line, base64 of 48 bytes (16 name + 32 AES-256
//! key) or of 80 bytes, HAProxy's layout (16 name + 32 AES + 32 HMAC; the
//! HMAC part is not used: GCM authenticates). Blank lines and `#`
//! comments are skipped. The first key encrypts new tickets; every key
//! decrypts, so a new key is rolled out by adding it second everywhere,
//! then moving it first, then dropping the old one.
//!
//! A ticket is `name (16) | nonce (12) | ciphertext | tag (16)`, the name
//! also authenticated as associated data. The nonce is random per ticket
//! (aws-lc-rs's `RandomizedNonceKey`).
//!
//! Without a file, [`Tickets`] is rustls's rotating ticketer; a reload can
//! add, change or remove the file, and tickets of the rotating keys stay
//! good as long as those keys do.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use rustls::server::ProducesTickets;

/// Bytes of a key's name, the ticket's first bytes.
const NAME_LEN: usize = 16;
/// Bytes of an AES-256 key.
const AES_LEN: usize = 32;
/// Bytes of the GCM tag ending a ticket.
const TAG_LEN: usize = 16;
/// The largest key file read; a few keys take a few hundred bytes.
const MAX_FILE: u64 = 64 * 1024;

/// One key: its name and its AEAD key.
struct TicketKey {
    name: [u8; NAME_LEN],
    aead: RandomizedNonceKey,
}

/// The keys of one reading of the file, the first encrypting.
pub struct TicketKeys {
    keys: Vec<TicketKey>,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key bytes.
        write!(f, "TicketKeys({} keys)", self.keys.len())
    }
}

impl TicketKeys {
    /// Read and check `path`; errors name the file and, for a bad key,
    /// its line.
    pub fn read(path: &Path) -> Result<TicketKeys, String> {
        let shown = path.display();
        let text = crate::source_file::read_source_file(path, MAX_FILE)
            .map_err(|e| format!("tls_ticket_keys: {e}"))?;
        Self::parse(&text).map_err(|(line, why)| format!("{shown}:{line}: {why}"))
    }

    /// The keys in `text`, or the line (from 1) of the first bad one and why.
    pub fn parse(text: &str) -> Result<TicketKeys, (usize, String)> {
        let mut keys: Vec<TicketKey> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| (i + 1, why);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|e| bad(format!("not a base64 key ({e})")))?;
            if bytes.len() != 48 && bytes.len() != 80 {
                return Err(bad(format!(
                    "a key of {} bytes; keys are 48 or 80 bytes (one line each: `openssl rand 80 | base64 -w0`)",
                    bytes.len()
                )));
            }
            let mut name = [0; NAME_LEN];
            name.copy_from_slice(&bytes[..NAME_LEN]);
            if keys.iter().any(|k| k.name == name) {
                return Err(bad(
                    "a key whose name (first 16 bytes) an earlier key has".into()
                ));
            }
            let aead = RandomizedNonceKey::new(&AES_256_GCM, &bytes[NAME_LEN..NAME_LEN + AES_LEN])
                .map_err(|_| bad("an AES-256 key aws-lc-rs refuses".into()))?;
            keys.push(TicketKey { name, aead });
        }
        if keys.is_empty() {
            return Err((text.lines().count().max(1), "no key in the file".into()));
        }
        Ok(TicketKeys { keys })
    }

    /// A ticket of `plain` under the first key.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = self.keys.first()?;
        let mut sealed = Vec::with_capacity(plain.len() + TAG_LEN);
        sealed.extend_from_slice(plain);
        let nonce = key
            .aead
            .seal_in_place_append_tag(Aad::from(&key.name), &mut sealed)
            .ok()?;
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&key.name);
        ticket.extend_from_slice(nonce.as_ref());
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    /// The plaintext of `ticket` if one of these keys made it: `None` if
    /// no key has its name (Err: let another ticketer try), `Some(None)`
    /// if the key has it but the ticket does not open.
    fn decrypt(&self, ticket: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        let name = ticket.get(..NAME_LEN).ok_or(())?;
        let key = self.keys.iter().find(|k| k.name == name).ok_or(())?;
        let Some(nonce) = ticket.get(NAME_LEN..NAME_LEN + NONCE_LEN) else {
            return Ok(None);
        };
        let Ok(nonce) = Nonce::try_assume_unique_for_key(nonce) else {
            return Ok(None);
        };
        let mut sealed = ticket[NAME_LEN + NONCE_LEN..].to_vec();
        let opened = key
            .aead
            .open_in_place(nonce, Aad::from(&key.name), &mut sealed)
            .map(|plain| plain.len());
        Ok(opened.ok().map(|len| {
            sealed.truncate(len);
            sealed
        }))
    }
}

/// The ticketer of every TLS listener: the file's keys when there are
/// some, else rustls's keys rotated every 6 hours. Swapped on reload
/// without touching the listeners' `ServerConfig`s.
pub struct Tickets {
    rotating: Arc<dyn ProducesTickets>,
    file: ArcSwapOption<TicketKeys>,
}

impl fmt::Debug for Tickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tickets {{ file: {:?} }}", self.file.load())
    }
}

impl Tickets {
    /// Rotating keys, and `file`'s keys if given.
    pub fn new(file: Option<TicketKeys>) -> Result<Tickets, String> {
        let rotating = rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| format!("cannot make TLS ticket keys: {e}"))?;
        Ok(Tickets {
            rotating,
            file: ArcSwapOption::from(file.map(Arc::new)),
        })
    }

    /// Use `file`'s keys from now on (`None`: the rotating keys).
    pub fn replace(&self, file: Option<TicketKeys>) {
        self.file.store(file.map(Arc::new));
    }
}

impl ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        // Operators roll file keys themselves; the same hint either way.
        self.rotating.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        match &*self.file.load() {
            Some(keys) => keys.encrypt(plain),
            None => self.rotating.encrypt(plain),
        }
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if let Some(keys) = &*self.file.load() {
            if let Ok(plain) = keys.decrypt(ticket) {
                return plain;
            }
        }
        self.rotating.decrypt(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fill: u8, len: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![fill; len])
    }

    #[test]
    fn the_first_key_encrypts_and_every_key_decrypts() {
        let (a, b) = (key(1, 80), key(2, 48));
        let old = TicketKeys::parse(&format!("{b}\n")).unwrap();
        let both = TicketKeys::parse(&format!("# keys\n\n{a}\n{b}\n")).unwrap();
        let ticket = old.encrypt(b"session").unwrap();
        assert_eq!(both.decrypt(&ticket), Ok(Some(b"session".to_vec())));
        let new = both.encrypt(b"session").unwrap();
        assert_eq!(&new[..NAME_LEN], &[1; NAME_LEN]);
        assert_eq!(
            old.decrypt(&new),
            Err(()),
            "an unknown name is another's ticket"
        );
    }

    #[test]
    fn damaged_tickets_do_not_open() {
        let keys = TicketKeys::parse(&key(3, 48)).unwrap();
        let mut ticket = keys.encrypt(b"session").unwrap();
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert_eq!(keys.decrypt(&ticket), Ok(None));
        assert_eq!(keys.decrypt(&ticket[..NAME_LEN + 3]), Ok(None));
        assert_eq!(keys.decrypt(&[3; 5]), Err(()));
    }

    #[test]
    fn bad_files_name_the_line() {
        let good = key(4, 80);
        let err = |text: &str| TicketKeys::parse(text).err().unwrap();
        assert_eq!(err(&format!("{good}\n\n!!!\n")).0, 3);
        assert!(err(&key(5, 32)).1.contains("32 bytes"));
        assert!(err(&format!("{good}\n{good}")).1.contains("earlier key"));
        assert!(err("# nothing\n").1.contains("no key"));
    }

    #[test]
    fn without_a_file_the_rotating_keys_serve() {
        let tickets = Tickets::new(None).unwrap();
        let ticket = tickets.encrypt(b"session").unwrap();
        tickets.replace(Some(TicketKeys::parse(&key(6, 48)).unwrap()));
        assert_eq!(tickets.decrypt(&ticket), Some(b"session".to_vec()));
        let from_file = tickets.encrypt(b"other").unwrap();
        assert_eq!(&from_file[..NAME_LEN], &[6; NAME_LEN]);
        assert_eq!(tickets.decrypt(&from_file), Some(b"other".to_vec()));
    }
}
