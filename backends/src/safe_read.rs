//! Reading a configuration file without trusting what is at its path
//! (issue 10, item 9).
//!
//! * Only a **regular file** is read. The path is opened with `O_NONBLOCK`,
//!   so opening a FIFO returns at once instead of waiting for a writer, and
//!   the opened descriptor (not the path, which may change in between) is
//!   checked with `fstat`: a FIFO, a device such as `/dev/zero`, a socket or
//!   a directory is refused, naming the path and what it is.
//! * The read is **bounded**: a file larger than the caller's limit is
//!   refused without reading past the limit plus one byte, whatever `fstat`
//!   said (a file may grow while it is read).
//! * Symbolic links are followed (`/etc/cltab` is often a link into a
//!   configuration checkout); the check applies to the file they lead to.
//!
//! Callers that must not block their event loop at all (a regular file on a
//! hung NFS server still blocks `read`) run [`read_regular`] on a blocking
//! thread with a deadline, as the daemon does.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path names something other than a regular file.
    #[error("{} is {what}, not a regular file; refusing to read it", .path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    /// The file is larger than the limit.
    #[error("{} is larger than {limit} bytes; refusing to read it", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// Opening or reading failed.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A blocking read did not finish within its deadline.
    #[error("cannot read {}: no answer within {secs} s (hung filesystem?)", .path.display())]
    Timeout { path: PathBuf, secs: u64 },
}

impl ReadError {
    /// The `io::ErrorKind` of an I/O failure, if it was one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            ReadError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

fn describe(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Open the regular file at `path` without blocking on a FIFO, and return it
/// with its metadata (taken from the open descriptor). `Ok(None)` when
/// nothing exists at the path.
///
/// # Errors
/// [`ReadError::NotRegular`] for a FIFO, device, socket or directory;
/// [`ReadError::Io`] when opening or `fstat` fails.
pub fn open_regular(path: &Path) -> Result<Option<(File, Metadata)>, ReadError> {
    let io_err = |source| ReadError::Io { path: path.to_path_buf(), source };
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            what: describe(meta.file_type()),
        });
    }
    Ok(Some((file, meta)))
}

/// Read the regular file at `path`, at most `limit` bytes (see the module
/// doc). `Ok(None)` when nothing exists at the path.
pub fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
    let io_err = |source| ReadError::Io { path: path.to_path_buf(), source };
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(None);
    };
    if meta.len() > limit {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), limit });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_and_refuses_fifos_devices_directories_and_big_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cltab");
        std::fs::write(&file, b"hello\n").expect("write");
        assert_eq!(read_regular(&file, 100).expect("read"), Some(b"hello\n".to_vec()));
        assert!(read_regular(&dir.path().join("missing"), 100).expect("missing").is_none());
        assert!(matches!(read_regular(&file, 3), Err(ReadError::TooLarge { limit: 3, .. })));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        let err = read_regular(&fifo, 100).expect_err("fifo refused");
        assert_eq!(
            err.to_string(),
            format!("{} is a FIFO, not a regular file; refusing to read it", fifo.display())
        );
        let zero = read_regular(Path::new("/dev/zero"), 100).expect_err("device refused");
        assert!(zero.to_string().contains("a character device"), "{zero}");
        let d = read_regular(dir.path(), 100).expect_err("directory refused");
        assert!(d.to_string().contains("a directory"), "{d}");
    }
}
