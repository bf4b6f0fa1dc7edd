//! The HTTP/1.1 hot path, hand-rolled on httparse and bytes. Pure: nothing
//! here touches a socket.

pub mod body;
pub mod field;
pub mod head;
pub mod path;
pub mod rewrite;
pub mod status;
pub mod syntax;
pub mod upgrade;

pub use body::{BodyKind, BodyProgress, ChunkError, ChunkedDecoder, Progress};
pub use field::MAX_HEADERS;
pub use head::{parse_request, parse_response, HeadError, RequestHead, ResponseHead};
pub use status::reason_phrase;
