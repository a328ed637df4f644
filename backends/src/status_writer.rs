//! The daemon's state file and detail status file, written by a thread of
//! their own (issue 10, "speed must not regress").
//!
//! Why: after a respawn the daemon rewrote both files on its loop, each an
//! atomic replace (create, write, `rename`). On a busy disk one `rename`
//! took up to 11 ms (`strace -T`), and a `SIGCHLD` arriving meanwhile
//! waited for it: with back-to-back `kill -9`s the next restart paid for
//! the last one's files (restart p50 7.5 ms against 2.9 ms for a daemon
//! that wrote neither). Now the loop hands the new content to the writer
//! and goes on; only a request waits for the state file
//! ([`StatusWriter::state_now`]), so that what a tell spawned is on record
//! before its client hears back (the rule of [`crate::generations`]).
//!
//! The writer takes everything queued at once and writes only the newest
//! content of each file: a burst of changes (a stop of 1,000) costs one
//! write, not one per turn. Write errors are logged by the writer (the
//! state file's at most once per [`LOG_EVERY`], the detail file's once
//! until it is written again, as [`DetailFile`] does), and a failed detail
//! write is retried every [`RETRY_EVERY`]. Where no thread can be started
//! the writes happen on the caller's thread, as before.

use crate::generations::{self, StateRecords};
use crate::status_detail::DetailFile;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tracing::{error, warn};

/// Longest a request waits for the state file to be written before it is
/// answered anyway (a hung filesystem must not hang the daemon).
pub const STATE_WAIT: Duration = Duration::from_secs(5);
/// A repeated state-file error is logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(1);
/// A detail file that could not be written is tried again this often.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

enum Job {
    /// The state file's new records.
    State(StateRecords),
    /// As `State`, and say when it is written (with the error, if any).
    StateNow(StateRecords, mpsc::SyncSender<Result<(), io::Error>>),
    /// The detail file's new text.
    Detail(String),
}

/// What writes the files, on whichever thread.
struct Files {
    state_path: PathBuf,
    cgroup: Option<PathBuf>,
    detail: DetailFile,
    /// A detail text not yet written because the last try failed.
    detail_retry: Option<String>,
    /// When a state-file error was last logged, and how many were held back.
    state_logged: Option<Instant>,
    state_held: u64,
}

impl Files {
    fn write_state(&mut self, entries: StateRecords) -> io::Result<()> {
        let result = generations::write_state(&self.state_path, self.cgroup.as_deref(), &entries);
        match &result {
            Err(e) => {
                if self.state_logged.is_some_and(|t| t.elapsed() < LOG_EVERY) {
                    self.state_held += 1;
                } else {
                    let held = std::mem::take(&mut self.state_held);
                    error!(
                        "cannot write {}: {e} ({held} similar failures held back)",
                        self.state_path.display()
                    );
                    self.state_logged = Some(Instant::now());
                }
            }
            Ok(()) => self.state_logged = None,
        }
        result
    }

    fn write_detail(&mut self, text: String) {
        if let Err(e) = self.detail.update_str(&text) {
            warn!("{e}");
        }
        self.detail_retry = self.detail.is_failing().then_some(text);
    }

    /// Carry out a batch: the newest state and detail content only.
    fn run(&mut self, jobs: Vec<Job>) {
        let mut state = None;
        let mut waiting = Vec::new();
        let mut detail = None;
        for job in jobs {
            match job {
                Job::State(entries) => state = Some(entries),
                Job::StateNow(entries, done) => {
                    state = Some(entries);
                    waiting.push(done);
                }
                Job::Detail(text) => detail = Some(text),
            }
        }
        if let Some(entries) = state {
            let result = self.write_state(entries);
            for done in waiting {
                let answer = match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                let _ = done.send(answer);
            }
        }
        if let Some(text) = detail.or_else(|| self.detail_retry.take()) {
            self.write_detail(text);
        }
    }
}

/// Handle to the writer.
pub struct StatusWriter {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Without a thread: the files, written on the caller's thread.
    inline: Option<Files>,
    state_path: PathBuf,
    cgroup: Option<PathBuf>,
    clstat: PathBuf,
}

impl StatusWriter {
    /// A writer of the state file `state_path` (recording the daemon's
    /// cgroup `cgroup`) and of the detail file beside `clstat`.
    pub fn start(state_path: PathBuf, cgroup: Option<PathBuf>, clstat: &Path) -> StatusWriter {
        let mut w = StatusWriter {
            tx: None,
            thread: None,
            inline: None,
            state_path,
            cgroup,
            clstat: clstat.to_path_buf(),
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let mut files = w.files();
        let spawned = std::thread::Builder::new()
            .name("clinit-files".into())
            .spawn(move || serve(&mut files, rx));
        match spawned {
            Ok(handle) => {
                w.tx = Some(tx);
                w.thread = Some(handle);
            }
            Err(e) => {
                warn!("no thread for the status files ({e}); writing them on the loop");
                w.inline = Some(w.files());
            }
        }
        w
    }

    fn files(&self) -> Files {
        Files {
            state_path: self.state_path.clone(),
            cgroup: self.cgroup.clone(),
            detail: DetailFile::new(&self.clstat),
            detail_retry: None,
            state_logged: None,
            state_held: 0,
        }
    }

    /// The detail file's path (`<clstat>.json`).
    pub fn detail_path(&self) -> PathBuf {
        crate::status_detail::path_for(&self.clstat)
    }

    fn send(&mut self, job: Job) {
        let job = match &self.tx {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => {
                    // The thread is gone (it panicked): write here from now on.
                    error!("the status file writer stopped; writing on the loop");
                    self.tx = None;
                    job
                }
            },
            None => job,
        };
        if self.inline.is_none() {
            self.inline = Some(self.files());
        }
        if let Some(files) = &mut self.inline {
            files.run(vec![job]);
        }
    }

    /// Write the state file soon.
    pub fn state(&mut self, entries: StateRecords) {
        self.send(Job::State(entries));
    }

    /// Write the state file and wait until it is written (at most
    /// [`STATE_WAIT`]); the error, if any, was already logged.
    pub fn state_now(&mut self, entries: StateRecords) -> io::Result<()> {
        let (done, answer) = mpsc::sync_channel(1);
        self.send(Job::StateNow(entries, done));
        match answer.recv_timeout(STATE_WAIT) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "state file write still pending"))
            }
            // The thread died before answering (written inline, the
            // answer would already be waiting).
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(io::Error::other("the status file writer stopped"))
            }
        }
    }

    /// Write the detail file soon (if its text changed).
    pub fn detail(&mut self, text: String) {
        self.send(Job::Detail(text));
    }

    /// Write what is queued and stop the thread (at exit, before the files
    /// are removed: no late write may bring one back).
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(handle) = self.thread.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for StatusWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The writer thread: take all that is queued, write the newest of each.
fn serve(files: &mut Files, rx: mpsc::Receiver<Job>) {
    loop {
        let first = if files.detail_retry.is_some() {
            match rx.recv_timeout(RETRY_EVERY) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        };
        let mut jobs: Vec<Job> = first.into_iter().collect();
        jobs.extend(rx.try_iter());
        files.run(jobs);
    }
}
