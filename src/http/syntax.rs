//! The token and list syntax of RFC 9110 §5.6 that heads, trailers, chunk
//! extensions and `Upgrade` values share. Kept apart, at the bottom of
//! `http/`, so each of those reads it without reading the others.

/// tchar from RFC 9110 §5.6.2.
pub fn is_token_byte(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' |
        b'^' | b'_' | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Items of a comma-separated header list, trimmed, empty items skipped.
pub fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// `s` without optional whitespace (SP, HTAB) at either end.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_are_trimmed_and_empty_ones_skipped() {
        let items: Vec<&[u8]> = list_items(b" gzip ,\tchunked,, ,x").collect();
        assert_eq!(items, [&b"gzip"[..], b"chunked", b"x"]);
        assert_eq!(list_items(b" , ").count(), 0);
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
    }

    #[test]
    fn token_bytes() {
        assert!(b"GET".iter().all(|&b| is_token_byte(b)));
        assert!(b"x-my_field.1~".iter().all(|&b| is_token_byte(b)));
        for b in [b' ', b'\t', b':', b'/', b'"', b'(', b',', 0x7f, 0x80] {
            assert!(!is_token_byte(b), "{b:#x}");
        }
    }
}
