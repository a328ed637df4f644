//! Crash-safe file replacement: write a temp file in the same directory,
//! flush it to disk, then rename it over the target. A reader sees the old
//! content or the new, never half of either.
//!
//! The new file's mode is set explicitly, never left to the umask: 0644 for
//! status and replicated files ([`FILE_MODE`]: readable by every status
//! reader, writable by the daemon only, even when it runs under `umask 000`),
//! or what the caller asks of [`write_private`] (0600 for the state file).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Mode of status and replicated files.
pub const FILE_MODE: u32 = 0o644;

/// Replace `path` with `contents` atomically and durably (flushed to disk
/// before and after the rename). With `mtime`, the new file gets that
/// modification time (replication keeps the source's mtime).
pub fn write_atomic(path: &Path, contents: &[u8], mtime: Option<SystemTime>) -> io::Result<()> {
    replace(path, contents, mtime, true, FILE_MODE)
}

/// Replace `path` atomically and durably with a file of mode `mode` (e.g.
/// 0600 for a file only the daemon may read).
pub fn write_private(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace(path, contents, None, true, mode)
}

/// Replace `path` atomically, without waiting for the disk, with a file of
/// mode `mode`: for files only the daemon may read (its state file), which
/// must survive the daemon's crash (the page cache does) but not a power cut.
pub fn replace_private(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace(path, contents, None, false, mode)
}

/// Replace `path` atomically but without waiting for the disk: for status
/// files that are rewritten often and recreated at start-up, where readers
/// need all-or-nothing content, not durability across a power cut.
pub fn replace_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace(path, contents, None, false, FILE_MODE)
}

fn replace(
    path: &Path,
    contents: &[u8],
    mtime: Option<SystemTime>,
    durable: bool,
    mode: u32,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // `mode` above is masked by the umask: set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        if let Some(t) = mtime {
            f.set_modified(t)?;
        }
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| durable && !d.as_os_str().is_empty()) {
            // Make the rename itself durable; not all filesystems allow it.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `<dir>/.<name>.tmp.<pid>.<n>`: hidden, unique per writer, same filesystem.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp_name = format!(".{name}.tmp.{}.{n}", std::process::id());
    path.with_file_name(tmp_name)
}

/// The error of the last failed write to one file, so that a file that keeps
/// failing (a read-only or full directory) is reported once per distinct
/// error, not on every write; a success clears it.
#[derive(Debug, Default)]
pub struct WriteFailure(Option<String>);

impl WriteFailure {
    /// Is a failure on record (the next write must be tried even if the
    /// contents did not change)?
    pub fn is_failing(&self) -> bool {
        self.0.is_some()
    }

    /// `replace_atomic(path, contents)`, with its error as a message naming
    /// `path`: `Err` only when that message is new.
    pub fn replace(&mut self, path: &Path, contents: &[u8]) -> Result<(), String> {
        match replace_atomic(path, contents) {
            Ok(()) => {
                self.0 = None;
                Ok(())
            }
            Err(e) => {
                let msg = format!("cannot write {}: {e}", path.display());
                if self.0.as_ref() == Some(&msg) {
                    return Ok(());
                }
                self.0 = Some(msg.clone());
                Err(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_keeps_mtime_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clstat");
        write_atomic(&path, b"one\n", None).expect("first write");
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(378_694_860);
        write_atomic(&path, b"two\n", Some(when)).expect("second write");
        assert_eq!(fs::read_to_string(&path).expect("read"), "two\n");
        let meta = fs::metadata(&path).expect("stat");
        assert_eq!(meta.modified().expect("mtime"), when);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("ls").flatten().collect();
        assert_eq!(names.len(), 1, "temp files left behind");
    }

    #[test]
    fn failure_leaves_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing-dir").join("f");
        assert!(write_atomic(&path, b"x", None).is_err());
    }
}
