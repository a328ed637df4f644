//! The daemon's log writer never blocks its loop (issue 10, item 8).
//!
//! The daemon logs to stderr. When stderr is a pipe (or a terminal) that
//! nobody reads, a plain `write` blocks once the pipe is full, and with it
//! the daemon's only thread: no status, no reaping, no respawn. So the log
//! goes through a separate, **non-blocking** open file description of the
//! same pipe (`/proc/self/fd/2` opened again with `O_NONBLOCK`; children
//! keep the original, blocking one, so their output is unchanged). A line
//! that does not fit is **dropped and counted**, and the next line that
//! gets through is preceded by `[clinit: N log lines dropped: stderr was
//! full]`.
//!
//! A regular file on stderr is kept as is: its writes do not wait for a
//! reader, and a second description would have its own offset and overwrite
//! what the children write.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where log lines go.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Inner>,
}

struct Inner {
    /// The non-blocking description, or `None` to use plain stderr.
    file: Option<File>,
    dropped: AtomicU64,
    /// A line was cut short: the next write starts with a newline.
    cut: std::sync::atomic::AtomicBool,
}

impl LogSink {
    /// A non-blocking sink when stderr is a pipe, FIFO, socket or terminal
    /// that can be opened again; plain stderr otherwise.
    pub fn stderr() -> LogSink {
        LogSink {
            inner: Arc::new(Inner {
                file: reopen_nonblocking(),
                dropped: AtomicU64::new(0),
                cut: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Lines dropped so far and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

fn reopen_nonblocking() -> Option<File> {
    let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
    let ft = meta.file_type();
    if !(ft.is_fifo() || ft.is_char_device()) {
        return None;
    }
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open("/proc/self/fd/2")
        .ok()
}

/// Write what fits; `Ok(n)` bytes written, stopping at `WouldBlock`.
fn write_some(mut f: &File, buf: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.write(&buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = &self.inner.file else {
            return io::stderr().write(buf);
        };
        let dropped = self.inner.dropped.load(Ordering::Relaxed);
        let cut = self.inner.cut.load(Ordering::Relaxed);
        if dropped > 0 || cut {
            let note = format!(
                "{}[clinit: {dropped} log lines dropped: stderr was full]\n",
                if cut { "\n" } else { "" }
            );
            let n = write_some(file, note.as_bytes())?;
            if n < note.len() {
                // Still full: this line is dropped too.
                self.inner.cut.store(n > 0, Ordering::Relaxed);
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(buf.len());
            }
            self.inner.dropped.fetch_sub(dropped, Ordering::Relaxed);
            self.inner.cut.store(false, Ordering::Relaxed);
        }
        let n = write_some(file, buf)?;
        if n < buf.len() {
            self.inner.cut.store(n > 0, Ordering::Relaxed);
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // Claim the whole line: the rest is dropped, never retried (a retry
        // would block, or reorder lines).
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogSink;
    fn make_writer(&'a self) -> LogSink {
        self.clone()
    }
}
