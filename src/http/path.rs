//! The path and host a request is routed by, normalised as nginx does:
//! `/x/../admin/`, `/%61dmin/` and `//admin/` are all `/admin/`, and
//! `internal.example.` is `internal.example`. Only routing sees the
//! normalised form; the target is forwarded as it came.
//!
//! Without this, a `path_prefix = "/admin/"` route (to a pool with
//! stricter backends, say) is dodged by spelling the path another way that
//! the backend reads as the same. Pure and allocation-free: a path that
//! needs no work (nearly all) is used as it is, any other is normalised
//! into a buffer on the stack.

/// The longest path that can be normalised; a longer one that needs it is
/// refused (414). nginx refuses request lines over 8 KiB by default.
pub const MAX_NORMALIZED: usize = 8192;

/// Call `f` with `path` normalised: dot-segments removed (RFC 3986
/// §5.2.4), percent-encoded unreserved characters decoded (§2.3, §6.2.2.2)
/// and runs of `/` collapsed to one. `None`: the path needs normalising and
/// is longer than [`MAX_NORMALIZED`].
pub fn with_normalized<R>(path: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    if is_normal(path) {
        return f(Some(path));
    }
    let mut buf = [0u8; MAX_NORMALIZED];
    f(normalize(path, &mut buf))
}

/// The host to route by: without the trailing dot of a fully qualified
/// name (`example.com.` names the same host as `example.com`).
pub fn route_host(host: &[u8]) -> &[u8] {
    host.strip_suffix(b".").unwrap_or(host)
}

/// Nothing to do: no `%`, no `//`, no segment starting with `.`; or not an
/// origin-form path at all (`*`), which is routed as it is.
fn is_normal(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return true;
    }
    memchr::memchr(b'%', path).is_none()
        && !path
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

/// Normalise `path` (starting with `/`) into `buf`; `None` if it does not
/// fit. The result is never longer than `path`: every step only shortens.
fn normalize<'a>(path: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    if path.len() > buf.len() {
        return None;
    }
    let mut len = 0;
    // The path so far names a directory: it must end with `/`.
    let mut dir = false;
    let mut segments = path.get(1..)?.split(|&b| b == b'/').peekable();
    while let Some(raw) = segments.next() {
        let last = segments.peek().is_none();
        // Decode after a tentative `/`; kept only for a real segment.
        let start = len + 1;
        let n = decode_unreserved(raw, buf.get_mut(start..)?)?;
        match buf.get(start..start + n)? {
            // `//` collapses; a trailing `/` stays.
            b"" | b"." => dir = last,
            b".." => {
                len = buf[..len].iter().rposition(|&b| b == b'/').unwrap_or(0);
                dir = last;
            }
            _ => {
                buf[len] = b'/';
                len = start + n;
                dir = false;
            }
        }
    }
    if dir || len == 0 {
        *buf.get_mut(len)? = b'/';
        len += 1;
    }
    buf.get(..len)
}

/// Copy `raw` into `out`, decoding `%XX` that encodes an unreserved
/// character (letters, digits, `-._~`); other escapes stay as they are
/// (decoding `%2F` would make a new segment). The length written.
fn decode_unreserved(raw: &[u8], out: &mut [u8]) -> Option<usize> {
    let (mut i, mut n) = (0, 0);
    while i < raw.len() {
        let decoded = match raw.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi)
                .zip(hex(*lo))
                .map(|(h, l)| h << 4 | l)
                .filter(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')),
            _ => None,
        };
        let (byte, used) = match decoded {
            Some(c) => (c, 3),
            None => (raw[i], 1),
        };
        *out.get_mut(n)? = byte;
        n += 1;
        i += used;
    }
    Some(n)
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> String {
        with_normalized(path.as_bytes(), |p| {
            String::from_utf8(p.expect("fits").to_vec()).unwrap()
        })
    }

    #[test]
    fn spellings_of_one_path_are_one_path() {
        for path in [
            "/admin/",
            "/x/../admin/",
            "/%61dmin/",
            "//admin/",
            "/./admin/.",
            "/admin//",
            "/a/b/../../admin/",
            "/../admin/",
            "/%2e%2e/admin/",
            "/x/%2E%2E/admin/",
        ] {
            assert_eq!(norm(path), "/admin/", "{path}");
        }
    }

    #[test]
    fn what_is_not_a_dot_segment_or_unreserved_stays() {
        assert_eq!(norm("/a/%2Fb"), "/a/%2Fb");
        assert_eq!(norm("/a/.hidden"), "/a/.hidden");
        assert_eq!(norm("/a/..b/"), "/a/..b/");
        assert_eq!(norm("/%zz"), "/%zz");
        assert_eq!(norm("/%4"), "/%4");
        assert_eq!(norm("/a/.."), "/");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("*"), "*");
        assert_eq!(norm("/plain/path"), "/plain/path");
    }

    #[test]
    fn a_long_path_that_needs_work_does_not_fit() {
        let long = format!("/{}/../x", "a".repeat(MAX_NORMALIZED));
        assert!(with_normalized(long.as_bytes(), |p| p.is_none()));
        let long_but_normal = format!("/{}", "a".repeat(MAX_NORMALIZED));
        assert!(with_normalized(long_but_normal.as_bytes(), |p| p.is_some()));
    }

    #[test]
    fn a_trailing_dot_leaves_the_host() {
        assert_eq!(route_host(b"internal.example."), b"internal.example");
        assert_eq!(route_host(b"internal.example"), b"internal.example");
    }
}
