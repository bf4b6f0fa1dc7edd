//! Field-name rules shared by heads and trailers.
//!
//! CGI, WSGI, Rack and PHP servers hand an application its header fields
//! as variables named after them, upper-cased with `-` turned into `_`
//! (RFC 3875 §4.1.18): `Content-Length` and `Content_Length` both become
//! `HTTP_CONTENT_LENGTH`. Such a backend reads the two names as one field,
//! where corelb (rightly, RFC 9110 §5.1: names are tokens, `_` is not `-`)
//! reads two. Where that split decides framing or what corelb vouches for,
//! the message is refused.

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

#[cfg(test)]
mod tests {
    use super::*;

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
