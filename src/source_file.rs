//! Reading a file the operator names (the config file; later certificates
//! and backend lists) without trusting what the path points at.
//!
//! A path may be a symlink to `/dev/zero` (endless), a FIFO nobody writes
//! (an `open` or `read` that never returns), a directory, or a file far
//! larger than any configuration. [`read_source_file`] therefore:
//!
//! - opens with `O_NONBLOCK`, so opening a FIFO returns at once instead of
//!   waiting for a writer (on a regular file the flag changes nothing);
//! - looks at what was opened (`fstat` on the open descriptor, so the
//!   answer is about the very file read, not a path swapped in between)
//!   and refuses anything but a regular file;
//! - refuses a file larger than the limit, both by its size and by what
//!   reading actually returns (a file may grow while it is read).
//!
//! Every error names the file and says what to do.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest file read: far above any real configuration, far below
/// what would hurt the process.
pub const MAX_SOURCE_FILE: u64 = 16 * 1024 * 1024;

/// Read the regular file at `path` as UTF-8 text, at most `limit` bytes.
/// The error is a whole sentence naming the file.
pub fn read_source_file(path: &Path, limit: u64) -> Result<String, String> {
    let name = path.display();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "{name}: cannot read: not a regular file (it is {}); give the path of a regular file",
            kind(&meta.file_type())
        ));
    }
    let too_large = || {
        format!(
            "{name}: cannot read: larger than the limit of {} ({limit} bytes)",
            human(limit)
        )
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    read_at_most(file, limit, &mut bytes).map_err(|e| format!("{name}: cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{name}: cannot read: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Read until the end or one byte past `limit`, whichever comes first.
fn read_at_most(file: File, limit: u64, into: &mut Vec<u8>) -> std::io::Result<()> {
    file.take(limit.saturating_add(1))
        .read_to_end(into)
        .map(|_| ())
}

fn kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// `16 MiB` for whole mebibytes, bytes otherwise.
fn human(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_only_and_within_the_limit() {
        let dir = std::env::temp_dir().join(format!("corelb-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.toml");
        std::fs::write(&file, "x = 1\n").unwrap();
        assert_eq!(read_source_file(&file, 100).unwrap(), "x = 1\n");
        let err = read_source_file(&file, 3).unwrap_err();
        assert!(err.contains("limit of 3 bytes"), "{err}");
        let err = read_source_file(&dir, 100).unwrap_err();
        assert!(err.contains("a directory"), "{err}");
        let err = read_source_file(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(
            err.contains("/dev/zero") && err.contains("character device"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(human(MAX_SOURCE_FILE), "16 MiB");
    }
}
