//! Field rules shared by heads and trailers: how many a section may carry,
//! and which names.
//!
//! CGI, WSGI, Rack and PHP servers hand an application its header fields
//! as variables named after them, upper-cased with `-` turned into `_`
//! (RFC 3875 §4.1.18): `Content-Length` and `Content_Length` both become
//! `HTTP_CONTENT_LENGTH`. Such a backend reads the two names as one field,
//! where corelb (rightly, RFC 9110 §5.1: names are tokens, `_` is not `-`)
//! reads two. Where that split decides framing or what corelb vouches for,
//! the message is refused.

/// Most fields accepted in one head or one trailer section; more in a
/// request head is answered 431.
pub const MAX_HEADERS: usize = 100;

/// Is the received field `name` the field `canonical` (lower case,
/// hyphenated) once case is ignored and `_` is read as `-`?
fn reads_as(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name.iter().zip(canonical).all(|(&n, &c)| {
            let n = if n == b'_' {
                b'-'
            } else {
                n.to_ascii_lowercase()
            };
            n == c
        })
}

/// The fields whose `_` spelling a request may not carry: the framing
/// fields (a CGI-style backend would see two lengths or two codings next to
/// the one corelb forwards) and the forwarding fields corelb writes itself
/// (`X_Forwarded_For` would reach the application as the client address
/// corelb vouches for).
const GUARDED_BY_SPELLING: [&[u8]; 4] = [
    b"content-length",
    b"transfer-encoding",
    b"x-forwarded-for",
    b"x-forwarded-proto",
];

/// Is `name` a spelling with `_` (any case) of a field in
/// [`GUARDED_BY_SPELLING`], e.g. `Content_Length`, `TRANSFER_ENCODING`?
pub fn is_underscore_alias(name: &[u8]) -> bool {
    GUARDED_BY_SPELLING.iter().any(|c| reads_as(name, c)) && name.contains(&b'_')
}

/// Fields a trailer section may not carry. RFC 9110 §6.5.1 keeps out of
/// trailers the fields that frame the message, route it or control the
/// connection, because a recipient that merges trailers into the head (as
/// many do, against §6.5.1) would then act on a field no earlier hop
/// checked. These are those of them corelb decides or writes itself in a
/// head: framing, `Host`, the hop-by-hop fields (RFC 9110 §7.6.1) with
/// `Trailer`, `Expect`, and the forwarding fields corelb vouches for.
const NOT_IN_TRAILERS: [&[u8]; 13] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"expect",
    b"via",
    b"x-forwarded-for",
    b"x-forwarded-proto",
];

/// The longest name in [`NOT_IN_TRAILERS`]: a trailer name longer than
/// this is allowed whatever it is, so a streaming parser keeps no more.
pub const LONGEST_NOT_IN_TRAILERS: usize = 17;

/// May a trailer section not carry the field `name`? Any case, and `_`
/// read as `-` (so `Content_Length` too, for the backends described above).
pub fn is_forbidden_in_trailers(name: &[u8]) -> bool {
    NOT_IN_TRAILERS.iter().any(|c| reads_as(name, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_kept_out_of_trailers() {
        assert_eq!(
            NOT_IN_TRAILERS.iter().map(|n| n.len()).max(),
            Some(LONGEST_NOT_IN_TRAILERS)
        );
        for name in [
            &b"Content-Length"[..],
            b"content_length",
            b"TRANSFER-ENCODING",
            b"Host",
            b"Connection",
            b"TE",
            b"Trailer",
            b"X-Forwarded-For",
            b"x_forwarded_proto",
        ] {
            assert!(is_forbidden_in_trailers(name), "{name:?}");
        }
        for name in [
            &b"Checksum"[..],
            b"Server-Timing",
            b"grpc-status",
            b"Hosts",
            b"T",
        ] {
            assert!(!is_forbidden_in_trailers(name), "{name:?}");
        }
    }

    #[test]
    fn underscore_spellings_of_guarded_fields() {
        for name in [
            &b"Content_Length"[..],
            b"content_length",
            b"CONTENT_LENGTH",
            b"Transfer_Encoding",
            b"transfer_encoding",
            b"X_Forwarded_For",
            b"X-Forwarded_Proto",
        ] {
            assert!(is_underscore_alias(name), "{name:?}");
        }
        for name in [
            &b"Content-Length"[..],
            b"transfer-encoding",
            b"X-Forwarded-For",
            b"X_Custom",
            b"Content_Type",
            b"Content_Length_",
            b"Content__Length",
        ] {
            assert!(!is_underscore_alias(name), "{name:?}");
        }
    }
}
