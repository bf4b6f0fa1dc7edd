//! Reason phrases for status lines (RFC 9110 §15), one table for every
//! answer corelb writes itself: the data plane's error responses and the
//! admin API's.

/// The standard reason phrase of `status`, for the statuses corelb
/// answers with itself; `"Error"` for any other (the phrase is advisory,
/// RFC 9112 §4: clients act on the code).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        508 => "Loop Detected",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_corelb_answers_with_has_its_phrase() {
        // The data plane's error statuses and the admin API's.
        for status in [
            200, 400, 401, 403, 404, 405, 409, 413, 414, 417, 431, 500, 501, 502, 503, 504, 505,
            508,
        ] {
            assert_ne!(reason_phrase(status), "Error", "{status}");
        }
        assert_eq!(reason_phrase(418), "Error");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
    }
}
