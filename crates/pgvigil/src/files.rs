//! Files pgvigil reads (themes, .env files, expected-schema snapshots, its cache) and writes.
//! A path can name anything: `/dev/zero` would exhaust memory, a FIFO would hang the read, a
//! directory gives a confusing error. Every read goes through [`read_text`]: regular files only
//! (a symbolic link to one is fine), opened without blocking, with a size limit. Files pgvigil
//! writes are private to the user (0600) and replaced atomically.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

use std::path::Path;

/// Why a file could not be read; the caller names the flag or variable that gave the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Opening or reading failed (absent, no permission...).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file (a directory, FIFO, device or socket): refused without reading.
    #[error("is {kind}, not a regular file")]
    NotRegular {
        /// What it is, in words (`a FIFO`, `a directory`).
        kind: &'static str,
    },
    /// Larger than the caller's limit (checked before and while reading).
    #[error("is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The contents are not valid UTF-8.
    #[error("is not UTF-8 text")]
    NotText,
}

impl FileError {
    /// The reason as a phrase to put after the path.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// Reads a regular file (a symbolic link to one is fine) of at most `limit` bytes as UTF-8,
/// opened without blocking: a device, FIFO, socket or directory is refused without reading.
/// Public as `pgvigil::config::read_named_file` (config re-exports it).
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever. It has no effect
    // on reads of regular files.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(path)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(FileError::NotRegular { kind: kind_of(&ft) });
    }
    if meta.len() > limit {
        return Err(FileError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the check and the read: never read past the limit.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge { limit });
    }
    String::from_utf8(bytes).map_err(|_| FileError::NotText)
}

/// What a file that is not a regular file is, in words for an error message.
pub fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

fn libc_o_nonblock() -> i32 {
    libc::O_NONBLOCK
}

/// Writes `bytes` to `path` readable by the owner only, through a temporary file of an
/// unpredictable name created exclusively beside it, then a rename: a reader never sees half a
/// file, and a link planted at a guessable name cannot redirect the write.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".pgvigil-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_big_files_are_refused() {
        assert!(matches!(
            read_text(Path::new("/dev/zero"), 1024),
            Err(FileError::NotRegular { kind: "a device" })
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_text(dir.path(), 1024),
            Err(FileError::NotRegular {
                kind: "a directory"
            })
        ));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            read_text(&fifo, 1024),
            Err(FileError::NotRegular { kind: "a FIFO" })
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        assert!(matches!(
            read_text(&big, 1024),
            Err(FileError::TooLarge { limit: 1024 })
        ));
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "fine").unwrap();
        assert_eq!(read_text(&ok, 1024).unwrap(), "fine");
    }

    #[test]
    fn written_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache.json");
        write_private(&p, b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
    }
}
