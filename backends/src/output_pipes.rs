//! One reader for every child's output pipe (issue 10, "speed must not
//! regress").
//!
//! Why: the output thread used to run one tokio task per pipe, each with an
//! I/O registration of its own: about 0.86 MiB of the daemon's memory at
//! 1,000 children (a task of about 512 B and a registration of 256 B per
//! pipe, measured with `heaptrack`), for pipes that are silent most of the
//! time. Now every pipe's read end sits in one `epoll` set, and that set is
//! the output thread's only registration for pipes. A pipe costs its
//! [`Pipe`] record (about 100 bytes) and a slot in the kernel's set.
//!
//! How: the set is level-triggered. When it is readable, [`PipeSet::turn`]
//! takes up to [`EVENTS_PER_TURN`] ready pipes and reads each **once** (up
//! to 64 KiB), as the per-pipe tasks did, so one chatty child cannot starve
//! the others: what it left in its pipe is reported again on the next turn.
//! A read of 0 bytes (every writer closed: the instance and all it started
//! are gone) or a read error ends the pipe: its last partial line is
//! written and the read end is closed. Lines are written as
//! [`crate::childlog`] describes (prefix, rotation, cut at
//! [`crate::childlog::MAX_LINE`], drops counted).
//!
//! The records sit in a `Vec` indexed by the read end's fd number (an
//! `Option` slot each; fds are small and dense, the lowest free one is
//! always taken), not in a hash map: at 1,000 pipes that is about 64 KiB
//! against about 140 KiB for the map's buckets, and a lookup is an index.
//! A read allocates nothing: the read buffer, the gathered lines and the
//! line prefix (time stamp and label) are buffers of the whole set, reused.

use crate::childlog::{
    set_pipe_size, write_utc_stamp, LogFile, OutputStats, MAX_LINE, PIPE_GROWN, PIPE_START,
};
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

/// Ready pipes taken from the kernel in one turn (the rest wait for the
/// next turn; the set is level-triggered, so none is lost).
pub const EVENTS_PER_TURN: usize = 64;
/// Bytes read from a pipe at once (a grown pipe holds 64 KiB).
const READ_CHUNK: usize = 64 * 1024;

/// An `epoll` instance (Linux's readiness set), closed on drop.
#[derive(Debug)]
pub struct Epoll(OwnedFd);

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointer arguments; a valid fd is owned from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned to us and is not owned elsewhere.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watch `fd` for input (and hang-up), level-triggered.
    fn add(&self, fd: RawFd) -> io::Result<()> {
        let mut ev =
            libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32, u64: fd as u64 };
        // SAFETY: `ev` outlives the call; both fds are open.
        let rc = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stop watching `fd` (before it is closed).
    fn delete(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; a failure only means it was not watched.
        unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// The ready fds now, without waiting; returns how many were written
    /// to `events`.
    fn ready_now(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        loop {
            // SAFETY: the kernel writes at most `events.len()` entries.
            let n = unsafe {
                libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 0)
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Where one pipe's lines go.
pub enum Sink {
    /// The entry's log file, shared with the entry's other instances still
    /// writing (an old instance's leftovers and its successor).
    File(Rc<RefCell<LogFile>>),
    /// The daemon's own log.
    Journal,
}

/// One open pipe.
struct Pipe {
    fd: OwnedFd,
    /// `GROUP:TAG`.
    label: Box<str>,
    sink: Sink,
    /// A line that spans reads; usually empty, trimmed when it was big.
    partial: Vec<u8>,
    /// Grown back to [`PIPE_GROWN`] already (see [`crate::childlog::small_pipe`]).
    grown: bool,
}

/// What every pipe shares: counters, the rate limit of the drop warning,
/// and the three buffers (one for the whole thread: reads are handled one
/// at a time).
struct Shared {
    stats: Arc<OutputStats>,
    /// When a drop was last warned about (at most one warning a second).
    warned: Option<Instant>,
    read: Vec<u8>,
    out: Vec<u8>,
    /// The prefix of the lines of the current read: `STAMP GROUP:TAG: `.
    prefix: String,
}

/// Slots of the fd-indexed table kept however far it shrinks.
const SLOTS_FLOOR: usize = 64;

/// Every open output pipe, by its read end's fd number.
pub struct PipeSet {
    /// Slot `fd` holds the pipe whose read end is `fd`, if open.
    open: Vec<Option<Pipe>>,
    /// Number of `Some` slots in `open`.
    count: usize,
    shared: Shared,
    events: Vec<libc::epoll_event>,
    /// Log files of pipes that ended since [`PipeSet::take_ended_files`].
    ended: Vec<PathBuf>,
}

impl PipeSet {
    /// An empty set; lines and drops are counted in `stats`.
    pub fn new(stats: Arc<OutputStats>) -> PipeSet {
        PipeSet {
            open: Vec::new(),
            count: 0,
            shared: Shared {
                stats,
                warned: None,
                read: Vec::new(),
                out: Vec::new(),
                prefix: String::new(),
            },
            events: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// No pipe is open.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Take the pipe whose read end is `fd` out of the set; the table
    /// loses its trailing empty slots, and gives back capacity once it is
    /// mostly unused (after a stop of many).
    fn remove(&mut self, fd: RawFd) -> Option<Pipe> {
        let pipe = self.open.get_mut(usize::try_from(fd).ok()?)?.take()?;
        self.count -= 1;
        while self.open.last().is_some_and(Option::is_none) {
            self.open.pop();
        }
        if self.open.capacity() > SLOTS_FLOOR && self.open.capacity() > 4 * self.open.len() {
            self.open.shrink_to((2 * self.open.len()).max(SLOTS_FLOOR));
        }
        Some(pipe)
    }

    /// Read `fd` (a child's output pipe) from now on, into `sink`.
    pub fn add(&mut self, epoll: &Epoll, fd: OwnedFd, label: String, sink: Sink) {
        let raw = fd.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own; no pointer arguments.
        let nonblocking = unsafe {
            let flags = libc::fcntl(raw, libc::F_GETFL);
            flags >= 0 && libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
        };
        if !nonblocking {
            let e = io::Error::last_os_error();
            warn!("{label}: cannot read its output pipe: {e}");
            return;
        }
        if let Err(e) = epoll.add(raw) {
            warn!("{label}: cannot read its output pipe: {e}");
            return;
        }
        let Ok(slot) = usize::try_from(raw) else { return };
        if slot >= self.open.len() {
            self.open.resize_with(slot + 1, || None);
        }
        let pipe = Pipe { fd, label: label.into(), sink, partial: Vec::new(), grown: false };
        // A slot still taken would be a closed fd's record: the kernel
        // reuses a number only once it is closed, and a record owns its fd.
        if self.open[slot].replace(pipe).is_none() {
            self.count += 1;
        }
    }

    /// The log files of the pipes that ended since the last call (the
    /// caller closes those no other pipe writes to).
    pub fn take_ended_files(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.ended)
    }

    /// One turn: read each ready pipe once. Returns how many pipes were
    /// ready (0: the set has nothing to report, the caller may sleep).
    pub fn turn(&mut self, epoll: &Epoll) -> usize {
        self.events.resize(EVENTS_PER_TURN, libc::epoll_event { events: 0, u64: 0 });
        let n = match epoll.ready_now(&mut self.events) {
            Ok(n) => n,
            Err(e) => {
                warn!("reading children's output: {e}");
                return 0;
            }
        };
        for i in 0..n {
            let (raw, events) = (self.events[i].u64 as RawFd, self.events[i].events);
            let slot = usize::try_from(raw).ok().and_then(|i| self.open.get_mut(i));
            let Some(pipe) = slot.and_then(Option::as_mut) else {
                epoll.delete(raw);
                continue;
            };
            // Hang-up without input: every writer is gone and nothing is
            // left to read (a pipe with data reports EPOLLIN too), so the
            // read that would return 0 is skipped: at a stop of 1,000 that
            // is 1,000 system calls fewer on the way to the daemon's exit.
            let hung_up = events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
                && events & libc::EPOLLIN as u32 == 0;
            if hung_up || !pipe.read_once(&mut self.shared) {
                epoll.delete(raw);
                if let Some(mut pipe) = self.remove(raw) {
                    pipe.finish(&mut self.shared);
                    if let Sink::File(f) = &pipe.sink {
                        self.ended.push(f.borrow().path().to_path_buf());
                    }
                }
            }
        }
        n
    }
}

impl Pipe {
    /// One read, its lines written. Returns false when the pipe is done
    /// (end of file or a read error).
    fn read_once(&mut self, sh: &mut Shared) -> bool {
        if sh.read.len() < READ_CHUNK {
            sh.read.resize(READ_CHUNK, 0);
        }
        let n = loop {
            // SAFETY: reads at most `sh.read.len()` bytes into it.
            let n = unsafe {
                libc::read(self.fd.as_raw_fd(), sh.read.as_mut_ptr().cast(), sh.read.len())
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return true,
                _ => {
                    warn!("{}: reading its output: {e}", self.label);
                    return false;
                }
            }
        };
        if n == 0 {
            return false;
        }
        // A full page: this child writes a lot; give it the default size
        // back (see crate::childlog::small_pipe).
        if !self.grown && n >= PIPE_START {
            set_pipe_size(self.fd.as_fd(), PIPE_GROWN);
            self.grown = true;
        }
        // One time stamp per batch: the lines of one read arrived together.
        let prefix = self.prefix(sh);
        let read = std::mem::take(&mut sh.read);
        let mut rest = &read[..n];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.emit(sh, &prefix, &rest[..nl]);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(&rest[..nl]);
                for piece in whole.chunks(MAX_LINE) {
                    self.emit(sh, &prefix, piece);
                }
                whole.clear();
                if whole.capacity() > 4096 {
                    whole.shrink_to(4096);
                }
                self.partial = whole;
            }
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_LINE {
            self.emit(sh, &prefix, &self.partial[..MAX_LINE]);
            self.partial.drain(..MAX_LINE);
        }
        sh.read = read;
        sh.prefix = prefix;
        self.flush(sh);
        true
    }

    /// At the pipe's end: write the last line even without its newline.
    fn finish(&mut self, sh: &mut Shared) {
        if !self.partial.is_empty() {
            let prefix = self.prefix(sh);
            let last = std::mem::take(&mut self.partial);
            self.emit(sh, &prefix, &last);
            sh.prefix = prefix;
            self.flush(sh);
        }
    }

    /// `STAMP GROUP:TAG: ` in the set's prefix buffer, taken out of it (the
    /// caller puts it back once the read's lines are written).
    fn prefix(&self, sh: &mut Shared) -> String {
        let mut prefix = std::mem::take(&mut sh.prefix);
        prefix.clear();
        write_utc_stamp(&mut prefix, SystemTime::now());
        prefix.push(' ');
        prefix.push_str(&self.label);
        prefix.push_str(": ");
        prefix
    }

    /// Gather one line (or send it to the journal).
    fn emit(&self, sh: &mut Shared, prefix: &str, line: &[u8]) {
        let written = match &self.sink {
            Sink::Journal => {
                let lost = crate::nblog::dropped_while(|| {
                    info!(
                        "{}: {}",
                        self.label,
                        crate::daemon::escape(&String::from_utf8_lossy(line))
                    )
                });
                if lost {
                    // Counted in status, not warned about: the warning
                    // would go to the same full stderr.
                    sh.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(())
            }
            Sink::File(f) => f.borrow_mut().write_line(&mut sh.out, prefix, line),
        };
        match written {
            Ok(()) => {
                sh.stats.lines.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.dropped(sh, 1, &e),
        }
    }

    /// Write what was gathered for the file.
    fn flush(&self, sh: &mut Shared) {
        if let Sink::File(f) = &self.sink {
            let lines = sh.out.iter().filter(|&&b| b == b'\n').count() as u64;
            if let Err(e) = f.borrow_mut().flush(&mut sh.out) {
                let written = sh.stats.lines.load(Ordering::Relaxed);
                sh.stats.lines.fetch_sub(lines.min(written), Ordering::Relaxed);
                self.dropped(sh, lines, &e);
            }
        }
    }

    /// Count `n` dropped lines; warn at most once a second.
    fn dropped(&self, sh: &mut Shared, n: u64, e: &io::Error) {
        let total = sh.stats.dropped.fetch_add(n, Ordering::Relaxed) + n;
        if sh.warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            warn!(
                "{}: cannot write its log: {e}; {total} child output lines dropped so far",
                self.label
            );
            sh.warned = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::childlog::{ChildOutput, OutputConfig, OutputJob, OutputThread, Rotation};
    use std::io::Write;
    use std::sync::atomic::Ordering;

    /// The fd-indexed table: each pipe is found by its fd, the set is
    /// empty once every pipe ended, and its slots are given back.
    #[test]
    fn the_fd_table_finds_every_pipe_and_shrinks_when_they_end() {
        use super::{Epoll, PipeSet, Sink, SLOTS_FLOOR};
        use std::os::fd::AsRawFd;
        let epoll = Epoll::new().expect("epoll");
        let mut set = PipeSet::new(Default::default());
        let mut writers = Vec::new();
        for p in 0..300 {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
            let raw = r.as_raw_fd();
            set.add(&epoll, r, format!("g:t{p}"), Sink::Journal);
            assert!(set.open[raw as usize].as_ref().is_some_and(|p| p.fd.as_raw_fd() == raw));
            writers.push(w);
        }
        assert_eq!(set.count, 300);
        assert!(set.open.len() > 300);
        drop(writers);
        let mut turns = 0;
        while !set.is_empty() {
            set.turn(&epoll);
            turns += 1;
            assert!(turns < 100, "{} pipes left", set.count);
        }
        assert!(set.open.is_empty());
        assert!(set.open.capacity() <= SLOTS_FLOOR, "{}", set.open.capacity());
    }

    /// Many pipes through the one epoll set: every line of every pipe ends
    /// in its own entry's file, in order, the last one without its newline
    /// included; pipes opened while others are busy are read too, and
    /// more pipes are ready at once than one turn takes.
    #[test]
    fn every_pipe_of_many_is_read_to_its_end_through_one_set() {
        const PIPES: usize = 3 * super::EVENTS_PER_TURN + 5;
        const LINES: usize = 40;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = OutputConfig {
            mode: ChildOutput::File,
            dir: dir.path().to_path_buf(),
            rotation: Rotation { max_bytes: 1 << 30, keep: 1 },
        };
        let mut thread = OutputThread::start(cfg).expect("output thread");
        let mut writers = Vec::new();
        for p in 0..PIPES {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
            thread.send(OutputJob::Output { fd: r, group: "g".into(), tag: format!("t{p}") });
            writers.push(std::fs::File::from(w));
        }
        // Interleaved writes, so many pipes are ready in the same turn.
        for i in 0..LINES {
            for (p, w) in writers.iter_mut().enumerate() {
                writeln!(w, "pipe {p} line {i}").expect("write");
            }
        }
        for (p, w) in writers.iter_mut().enumerate() {
            write!(w, "pipe {p} last, no newline").expect("write");
        }
        drop(writers);
        // Bounded wait for every line (finish() alone waits 2 s at most).
        let want = (PIPES * (LINES + 1)) as u64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while thread.stats.lines.load(Ordering::Relaxed) < want
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        thread.finish();
        for p in 0..PIPES {
            let path = dir.path().join("g").join(format!("t{p}.log"));
            let text = std::fs::read_to_string(&path).expect("log file");
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), LINES + 1, "{}", path.display());
            for (i, line) in lines.iter().take(LINES).enumerate() {
                assert!(line.ends_with(&format!(" g:t{p}: pipe {p} line {i}")), "{line}");
            }
            assert!(lines[LINES].ends_with(&format!(" g:t{p}: pipe {p} last, no newline")));
        }
        assert_eq!(thread.stats.lines.load(Ordering::Relaxed), want);
        assert_eq!(thread.stats.dropped.load(Ordering::Relaxed), 0);
    }
}
