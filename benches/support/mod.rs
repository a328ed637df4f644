//! Helpers shared by the daemon benches: a real `clinit -d` in a temporary
//! directory, FIFOs that tell the bench precisely when a child did something,
//! and nearest-rank percentiles.
//!
//! Hygiene: every daemon is shut down when its [`Daemon`] is dropped
//! (shutdown request, bounded wait; SIGTERM by pid if that fails; SIGKILL
//! by pid as the very last resort). Every wait has a deadline. All files live
//! in a [`TempDir`].

#![allow(dead_code)]

use clinit_backends::protocol::{call, call_status_brief, Reply, Request};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The daemon binary under test: this package's `clinit`, or another build
/// named by `CLINIT_BENCH_BIN` (to compare versions with the same benches).
pub fn clinit_bin() -> PathBuf {
    match std::env::var_os("CLINIT_BENCH_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_clinit")),
    }
}

/// Extra flags for every daemon the benches start, from
/// `CLINIT_BENCH_ARGS` (split at whitespace), e.g. `--no-cgroups` or
/// `--child-output inherit`, to compare modes of one build in one run.
pub fn extra_args() -> Vec<String> {
    std::env::var("CLINIT_BENCH_ARGS")
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a daemon may take from its spawn until it serves requests
/// ([`Daemon::wait_serving`]): generous, since the benches run on loaded
/// machines, and a bound, so a daemon that never gets there fails the bench
/// with a reason instead of hanging it.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A `clinit -d` running on a cltab in its own temporary directory.
pub struct Daemon {
    pub dir: TempDir,
    pub cltab: PathBuf,
    pub socket: PathBuf,
    pub clstat: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Start a daemon on `body` (cltab entries; `@DIR@` is replaced by the
    /// temporary directory, socket and clstat directives are added) and wait
    /// until it serves requests ([`Daemon::wait_serving`]).
    pub fn start(body: &str) -> Daemon {
        Self::start_in(tempfile::Builder::new().prefix("clinit-bench.").tempdir().unwrap(), body)
    }

    /// Like [`Daemon::start`], in a directory the caller prepared (e.g. with
    /// FIFOs already created).
    pub fn start_in(dir: TempDir, body: &str) -> Daemon {
        let d = dir.path().display().to_string();
        let cltab = dir.path().join("cltab");
        let socket = dir.path().join("clinit.s");
        let clstat = dir.path().join("clstat");
        let log = dir.path().join("daemon.log");
        let text = format!(
            ":::socket:{}\n:::clstat:{}\n{}",
            socket.display(),
            clstat.display(),
            body.replace("@DIR@", &d)
        );
        std::fs::write(&cltab, text).unwrap();
        let child = Command::new(clinit_bin())
            .arg("-d")
            .arg("-c")
            .arg(&cltab)
            .args(extra_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start clinit -d");
        let mut daemon = Daemon { dir, cltab, socket, clstat, log, child: Some(child) };
        daemon.wait_serving();
        daemon
    }

    /// Wait until the daemon serves requests: a status reply that is `ok`
    /// and has no `starting` field. An answer alone is not enough: from
    /// binding its socket until its check for a previous daemon's leftovers
    /// is done (a blocking task, run even when there is nothing to stop),
    /// the daemon answers status with `starting` and refuses a tell; under
    /// load that window outlasted the first answer in 6 of 20 `rss` runs.
    /// A build without the field (`CLINIT_BENCH_BIN`) is ready at its
    /// first answer. Panics, with the last answer and the daemon's log, if
    /// the daemon exits or is not serving within [`START_LIMIT`].
    fn wait_serving(&mut self) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            // Never wait on one call past the deadline (at least 10 ms, as
            // a zero timeout means none left).
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = left.clamp(Duration::from_millis(10), CALL_TIMEOUT);
            let last = match call_status_brief(&self.socket, timeout) {
                Ok(reply) => match (reply.ok, reply.status) {
                    (true, Some(status)) => match status.starting {
                        None => return,
                        Some(why) => format!("status says starting: {why}"),
                    },
                    _ => format!("status refused: {}", reply.msg),
                },
                Err(e) => e.to_string(),
            };
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    self.child = None;
                    panic!("clinit -d exited at start-up ({st}):\n{}", self.log_text());
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "clinit -d (pid {}) not serving requests within {START_LIMIT:?} \
                     (last: {last}); log:\n{}",
                    self.pid(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn request(&self, req: &Request) -> Reply {
        call(&self.socket, req, CALL_TIMEOUT).unwrap_or_else(|e| panic!("{req:?}: {e}"))
    }

    pub fn tell(&self, group: &str, level: &str) {
        let r = self.request(&Request::Tell { group: group.into(), level: level.into() });
        assert!(r.ok, "tell {group} {level}: {}", r.msg);
    }

    pub fn status(&self) -> serde_json::Value {
        self.request(&Request::Status).status.expect("status reply carries a status")
    }

    /// The status's brief part (pid, process count, group lines), parsed
    /// without the per-entry array: the benches poll it every few ms, and
    /// on a 2-core machine the bench's own parsing competes with the daemon.
    pub fn brief(&self) -> clinit_backends::protocol::StatusBrief {
        clinit_backends::protocol::call_status_brief(&self.socket, CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("status: {e}"))
            .status
            .expect("status reply carries a status")
    }

    /// Live children, as the daemon counts them.
    pub fn processes(&self) -> u64 {
        self.brief().processes
    }

    /// `(level, state)` of a group, if it has a status line.
    pub fn group_state(&self, group: &str) -> Option<(String, String)> {
        self.brief().groups.into_iter().find(|g| g.group == group).map(|g| (g.level, g.state))
    }

    /// Poll (every `every`) until `f` holds; panics after `limit`.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        every: Duration,
        f: impl Fn(&Daemon) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !f(self) {
            assert!(Instant::now() < deadline, "{what}: not reached within {limit:?}");
            std::thread::sleep(every);
        }
    }

    pub fn wait_processes(&self, n: u64, limit: Duration) {
        self.wait_for(&format!("{n} live processes"), limit, Duration::from_millis(5), |d| {
            d.processes() == n
        });
    }

    pub fn wait_state(&self, group: &str, level: &str, state: &str, limit: Duration) {
        self.wait_for(&format!("{group} {level} {state}"), limit, Duration::from_millis(2), |d| {
            d.group_state(group).is_some_and(|(l, s)| l == level && s == state)
        });
    }

    /// VmRSS and VmHWM of the daemon, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The daemon's `/proc/PID/smaps_rollup` fields (`Rss`, `Anonymous`,
    /// `Rss_File`..., in KiB; kernel 4.14+), for where its memory goes.
    pub fn smaps_kib(&self) -> Vec<(String, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid()))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                let kib = v.split_whitespace().next()?.parse().ok()?;
                Some((k.trim().to_string(), kib))
            })
            .collect()
    }

    /// Wait (bounded) for the daemon process to exit; `None` on timeout.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return Some(st);
                }
                Ok(None) => {}
                Err(e) => panic!("waiting for the daemon: {e}"),
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Send the shutdown request (without waiting for the exit).
    pub fn send_shutdown(&self) {
        let _ = call(&self.socket, &Request::Shutdown, CALL_TIMEOUT);
    }

    /// Shut the daemon down and wait for it; escalate by pid if needed.
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.send_shutdown();
        if self.wait_exit(Duration::from_secs(30)).is_some() {
            return;
        }
        let pid = self.pid() as i32;
        eprintln!("clinit bench: daemon {pid} ignored shutdown; sending SIGTERM");
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if self.wait_exit(Duration::from_secs(30)).is_some() {
            return;
        }
        eprintln!("clinit bench: daemon {pid} ignored SIGTERM; sending SIGKILL");
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = self.wait_exit(Duration::from_secs(10));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Send one request over a raw connection without waiting for the reply:
/// the caller can time something else first, then call [`finish_call`].
pub fn start_call(socket: &Path, line: &[u8]) -> UnixStream {
    let mut s = UnixStream::connect(socket).expect("connect to daemon socket");
    s.write_all(line).expect("send request");
    s
}

/// Read the reply of a [`start_call`]; returns it parsed.
pub fn finish_call(mut s: UnixStream) -> Reply {
    s.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read reply");
    serde_json::from_slice(&buf)
        .unwrap_or_else(|e| panic!("bad reply {:?}: {e}", String::from_utf8_lossy(&buf)))
}

/// A FIFO the bench holds open for reading *and* writing: a child's
/// `echo ... > FIFO` never blocks and never sees EOF trouble, and the bench
/// wakes (poll) the moment a line arrives.
pub struct Fifo {
    pub path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

impl Fifo {
    pub fn create(path: PathBuf) -> Fifo {
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect("open fifo");
        Fifo { path, file, buf: Vec::new() }
    }

    /// The next complete line, or `None` if none arrives before `deadline`.
    pub fn read_line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(String::from_utf8_lossy(&line[..pos]).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd =
                libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll fifo: {e}");
                continue;
            }
            let mut chunk = [0u8; 4096];
            match self.file.read(&mut chunk) {
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read fifo: {e}"),
            }
        }
    }

    /// Throw away anything already written.
    pub fn drain(&mut self) {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = self.file.read(&mut chunk) {
            if n == 0 {
                break;
            }
        }
        self.buf.clear();
    }
}

/// Samples of one measurement, for percentiles criterion does not report.
#[derive(Default)]
pub struct Samples {
    pub v: Vec<Duration>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.v.push(d);
    }

    /// Nearest-rank percentile.
    pub fn pct(&self, p: f64) -> Duration {
        let mut v = self.v.clone();
        v.sort();
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    /// One line, e.g. `name: n=120 p50=0.61 ms p90=... p99=... max=...`,
    /// printed to stdout (and returned). Nothing when there are no samples
    /// (the bench was filtered out).
    pub fn report(&self, name: &str) -> Option<String> {
        if self.v.is_empty() {
            return None;
        }
        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
        let min = *self.v.iter().min().unwrap();
        let max = *self.v.iter().max().unwrap();
        let line = format!(
            "{name}: n={} min={} p50={} p90={} p99={} max={}",
            self.v.len(),
            ms(min),
            ms(self.pct(50.0)),
            ms(self.pct(90.0)),
            ms(self.pct(99.0)),
            ms(max)
        );
        println!("PERCENTILES {line}");
        Some(line)
    }
}
