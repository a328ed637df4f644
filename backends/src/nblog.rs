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
//!
//! **A write never fails and never panics** (issue 10, a dead log reader).
//! When whoever read stderr goes away, writes fail with `EPIPE` (the Rust
//! runtime ignores `SIGPIPE`). Returning that error made tracing-subscriber
//! report it with `eprintln!`, which panics on the same broken pipe: the
//! daemon died with exit 101 and left its services orphaned. So any write
//! error drops the line and counts it, like a full pipe; after `EPIPE` (or
//! any error other than a full disk, which may clear) the sink stops trying
//! and counts every later line as dropped ([`LogSink::dropped`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

thread_local! {
    /// Set when a line written on this thread was dropped (see
    /// [`dropped_while`]).
    static DROPPED_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `log` (one `tracing` call, which writes on the calling thread) and
/// say whether the line it wrote was dropped. The output thread uses it to
/// count children's lines lost in `--child-output journal` mode, where a
/// full stderr drops them here rather than in a file.
pub fn dropped_while(log: impl FnOnce()) -> bool {
    DROPPED_HERE.with(|d| d.set(false));
    log();
    DROPPED_HERE.with(|d| d.replace(false))
}

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
    /// stderr is gone for good (`EPIPE`, `EBADF`...): every line is dropped
    /// and counted without a write.
    dead: std::sync::atomic::AtomicBool,
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
                dead: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Lines dropped so far and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// True once stderr failed for good: nothing is written any more.
    pub fn is_dead(&self) -> bool {
        self.inner.dead.load(Ordering::Relaxed)
    }

    /// Count one dropped line; after an error other than a full disk
    /// (`ENOSPC`, which freeing space clears) stop writing for good.
    fn drop_line(&self, error: Option<&io::Error>) {
        DROPPED_HERE.with(|d| d.set(true));
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        if error.is_some_and(|e| e.raw_os_error() != Some(libc::ENOSPC)) {
            self.inner.dead.store(true, Ordering::Relaxed);
        }
    }

    fn write_line(&self, buf: &[u8]) {
        if self.is_dead() {
            self.drop_line(None);
            return;
        }
        let Some(file) = &self.inner.file else {
            // A regular file (or anything not reopened): a plain write,
            // whose error is counted, never returned.
            if let Err(e) = io::stderr().write_all(buf) {
                self.drop_line(Some(&e));
            }
            return;
        };
        let dropped = self.inner.dropped.load(Ordering::Relaxed);
        let cut = self.inner.cut.load(Ordering::Relaxed);
        if dropped > 0 || cut {
            let note = format!(
                "{}[clinit: {dropped} log lines dropped: stderr was full]\n",
                if cut { "\n" } else { "" }
            );
            match write_some(file, note.as_bytes()) {
                Ok(n) if n == note.len() => {
                    self.inner.dropped.fetch_sub(dropped, Ordering::Relaxed);
                    self.inner.cut.store(false, Ordering::Relaxed);
                }
                Ok(n) => {
                    // Still full: this line is dropped too.
                    self.inner.cut.store(n > 0, Ordering::Relaxed);
                    self.drop_line(None);
                    return;
                }
                Err(e) => {
                    self.drop_line(Some(&e));
                    return;
                }
            }
        }
        match write_some(file, buf) {
            Ok(n) if n < buf.len() => {
                self.inner.cut.store(n > 0, Ordering::Relaxed);
                self.drop_line(None);
            }
            Ok(_) => {}
            Err(e) => self.drop_line(Some(&e)),
        }
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
    /// Always `Ok(buf.len())`: the whole line is claimed, written or
    /// dropped and counted, never retried (a retry would block, or reorder
    /// lines) and never an error (see the module doc).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_line(buf);
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
