//! What a daemon killed with SIGKILL left running, and how the next one
//! deals with it (issue 10, item 3).
//!
//! The daemon keeps a small **state file** next to its control socket
//! (`<socket>.state`, e.g. `/var/run/clinit/clinit.state`, mode 0600): one
//! record per live process group it started, with the group leader's pid
//! (== pgid == session id, since every command runs in its own session), the
//! leader's start time (field 22 of `/proc/<pid>/stat`, clock ticks since
//! boot), and the entry's group, tag and level. It is replaced atomically
//! (temp file + rename) at most once per turn of the daemon's loop, after
//! any turn that spawned or reaped, so a reader never sees half a file.
//!
//! **At start, before it starts anything, a daemon stops what the previous
//! generation left**, and never re-adopts it. Adoption would need the old
//! processes' exit statuses, which are lost with their parent; and under
//! `mosha` peers may already have taken the groups over once this node's
//! monitor died, so keeping them would make a double owner. Stopping uses
//! the same INT → TERM → KILL escalation as any stop, on each recorded
//! process group, and only after checking the group is still the one we
//! started:
//!
//! * leader alive: its start time must equal the recorded one, and it must
//!   still lead its own session (a reused pid fails this);
//! * leader gone: the group is ours if members remain in process group
//!   `pgid` within session `pgid`, because the kernel does not hand out a
//!   pid that is still in use as a process group or session id.
//!
//! Anything else is left alone, with a log line.
//!
//! In cgroup mode the file also names the daemon's cgroup directory
//! (`.../clinit.<pid>`), written at start-up before anything is spawned.
//! The successor signals every process in that subtree with the same
//! escalation (SIGKILL through `cgroup.kill`) and then removes its cgroups,
//! leaf first. This reaches what process groups cannot: a descendant that
//! left with `setsid`, one whose leader already exited, and a process forked
//! just before the `kill -9`, before its group was written to `procs`.
//! Start-up waits for the stops, at most the escalation's `kill_after` plus
//! [`KILL_GRACE`].
//!
//! Every child also carries the environment variable [`GENERATION_ENV`]
//! (`CLINIT_GENERATION=<daemon pid>:<state file>`), inherited by all its
//! descendants. The successor stops every process still carrying the
//! previous generation's value too. This closes, in process-group mode, the
//! window a state file cannot: a process forked just before the `kill -9`,
//! before the end of the loop turn that would have recorded it (found by
//! the SIGKILL campaign, `tests/kill_campaign.rs`), and a `setsid`
//! descendant. A process that clears its environment escapes this net; the
//! cgroup mode has no such hole.

use crate::atomic;
use crate::safe_read::{read_regular, ReadError};
use clinit_engine::init::escalation::Escalation;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Version of the state file format.
pub const STATE_VERSION: u32 = 1;
/// Mode of the state file: it names commands' groups, the daemon's only.
pub const STATE_MODE: u32 = 0o600;
/// Largest state file read, in bytes.
pub const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;
/// How long after the first SIGKILL start-up still waits for a group.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// One live process group of a daemon generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// Leader pid == process group id == session id.
    pub pgid: u32,
    /// The leader's start time in clock ticks since boot (`/proc` field 22).
    pub start: u64,
    /// Group and level names are shared among the records of a daemon
    /// (see `RealProcesses::intern`): 1,000 entries of one group at one
    /// level keep one copy of each, not 1,000.
    pub group: Arc<str>,
    pub tag: String,
    pub level: Arc<str>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// The daemon that wrote it.
    daemon: u32,
    /// The daemon's cgroup directory (`.../clinit.<daemon>`), in cgroup
    /// mode. Written at start-up, before anything is spawned, so every
    /// process the generation ever starts is inside a recorded subtree,
    /// even one forked just before a `kill -9` and not yet in `procs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cgroup: Option<PathBuf>,
    procs: Vec<StateEntry>,
}

/// The state file's records as the daemon hands them to its writer: each
/// shared with the daemon's own table, so a snapshot per loop turn is a
/// vector of pointers, not a copy of every record's strings.
pub type StateRecords = Vec<Arc<StateEntry>>;

/// [`StateFile`] as written, from shared records (the same bytes).
#[derive(Serialize)]
struct StateFileOut<'a> {
    version: u32,
    daemon: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup: Option<&'a Path>,
    procs: &'a [Arc<StateEntry>],
}

/// What a previous generation recorded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Previous {
    /// The daemon that wrote the file (0 when there is none).
    pub daemon: u32,
    /// Its cgroup directory, in cgroup mode.
    pub cgroup: Option<PathBuf>,
    /// Its live process groups.
    pub procs: Vec<StateEntry>,
}

/// The environment variable that marks a daemon's children (module doc).
pub const GENERATION_ENV: &str = "CLINIT_GENERATION";

/// Largest `/proc/<pid>/environ` read while looking for the marker, in bytes.
const MAX_ENVIRON: u64 = 1 << 20;

/// The value of [`GENERATION_ENV`] for the daemon `daemon` keeping
/// `state_file`: unique among the daemons of one machine at one time.
pub fn generation(daemon: u32, state_file: &Path) -> String {
    format!("{daemon}:{}", state_file.display())
}

/// Live processes (not this one) whose environment holds
/// `GENERATION_ENV=generation`. Unreadable entries (a process that exited
/// meanwhile, or another user's when not root) are skipped.
pub fn marked_processes(generation: &str) -> Vec<u32> {
    use std::io::Read;
    let want = format!("{GENERATION_ENV}={generation}");
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut buf = Vec::new();
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            buf.clear();
            let read = std::fs::File::open(format!("/proc/{pid}/environ"))
                .and_then(|f| f.take(MAX_ENVIRON).read_to_end(&mut buf));
            read.is_ok()
                && buf.split(|&b| b == 0).any(|v| v == want.as_bytes())
                && proc_stat(pid).is_some_and(|s| !s.is_dead())
        })
        .collect()
}

/// One process [`signal_marked`] signalled: its pid and process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signalled {
    pub pid: u32,
    pub pgrp: u32,
}

/// Send `sig` to every live process (not this one) whose environment holds
/// `GENERATION_ENV=generation`; returns those signalled.
///
/// This is how a lease-loss kill and the watchdog's deadline kill reach a
/// descendant that left its entry's process group (`setsid cmd &`) when no
/// cgroup contains it: the marker is inherited by everything a command
/// starts (module doc).
///
/// Why a reused pid is never signalled: each process is opened as a pidfd
/// (`pidfd_open`) *before* its environment is read, and signalled through
/// that pidfd (`pidfd_send_signal`). A pidfd names one process, never a
/// later one with the same pid: if the process exited and its pid was
/// reused while the environment was read, the environment read was the
/// newcomer's, but the signal goes to the dead process and is refused
/// (`ESRCH`); if the process is still alive when signalled, it was alive
/// throughout, so the environment read was its own. Where the kernel has no
/// pidfds (before 5.3) it falls back to `kill(pid)`: then a process that
/// exits, is reaped and whose pid is reused between the read and the kill
/// (microseconds, while pids are handed out in rising order over
/// `pid_max`) would be hit. Under `mosha`, a subreaper, that cannot happen
/// to an escapee whose parent died: it is `mosha`'s own child and is not
/// reaped while `mosha` runs this.
pub fn signal_marked(generation: &str, sig: libc::c_int) -> Vec<Signalled> {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let want = format!("{GENERATION_ENV}={generation}");
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for pid in dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
        if pid == me {
            continue;
        }
        // SAFETY: pidfd_open takes two integers; the result is checked.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        let pidfd = if fd >= 0 {
            // SAFETY: a fresh descriptor we own.
            Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
        } else if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            None
        } else {
            continue; // Gone already (ESRCH).
        };
        buf.clear();
        let read = std::fs::File::open(format!("/proc/{pid}/environ"))
            .and_then(|f| f.take(MAX_ENVIRON).read_to_end(&mut buf));
        if read.is_err() || !buf.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            continue;
        }
        let Some(s) = proc_stat(pid) else { continue };
        if s.is_dead() {
            continue;
        }
        let rc = match &pidfd {
            // SAFETY: a pidfd we hold, a plain signal number, no siginfo.
            Some(fd) => unsafe {
                use std::os::fd::AsRawFd;
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            },
            // SAFETY: kill has no memory effects (see above for the pid).
            None => unsafe { libc::kill(pid as libc::pid_t, sig) as libc::c_long },
        };
        if rc == 0 {
            out.push(Signalled { pid, pgrp: s.pgrp });
        }
    }
    out
}

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{}: not a clinit state file: {source}", .path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: state file version {found}, expected {STATE_VERSION}", .path.display())]
    Version { path: PathBuf, found: u32 },
}

/// `<socket>.state`, next to the socket.
pub fn state_path(socket: &Path) -> PathBuf {
    socket.with_extension("state")
}

/// Replace the state file with these entries and the daemon's cgroup
/// directory, if any (atomically, mode 0600).
pub fn write_state(
    path: &Path,
    cgroup: Option<&Path>,
    procs: &[Arc<StateEntry>],
) -> io::Result<()> {
    let file = StateFileOut { version: STATE_VERSION, daemon: std::process::id(), cgroup, procs };
    let text = serde_json::to_vec(&file).map_err(io::Error::other)?;
    atomic::replace_private(path, &text, STATE_MODE)
}

/// What the previous generation recorded; empty when there is no state file.
pub fn read_state(path: &Path) -> Result<Previous, StateError> {
    let Some(bytes) = read_regular(path, MAX_STATE_BYTES)? else { return Ok(Previous::default()) };
    let file: StateFile = serde_json::from_slice(&bytes)
        .map_err(|source| StateError::Format { path: path.to_path_buf(), source })?;
    if file.version != STATE_VERSION {
        return Err(StateError::Version { path: path.to_path_buf(), found: file.version });
    }
    Ok(Previous { daemon: file.daemon, cgroup: file.cgroup, procs: file.procs })
}

/// The fields of `/proc/<pid>/stat` that tell a process's lineage and
/// identity (proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    /// Clock ticks since boot: with the pid, the process's identity (a
    /// reused pid has a later start).
    pub start: u64,
}

impl ProcStat {
    /// A zombie or dead process: nothing left to signal.
    pub fn is_dead(&self) -> bool {
        self.state == 'Z' || self.state == 'X'
    }
}

/// A process's [`ProcStat`]; `None` when it is gone or the file does not
/// parse (or there is no procfs).
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces or ')'):
    // state ppid pgrp session tty_nr ... starttime (the 20th). Walked, not
    // collected: whole-/proc scans call this for every process.
    let (_, rest) = text.rsplit_once(')')?;
    let mut f = rest.split_whitespace();
    Some(ProcStat {
        state: f.next()?.chars().next()?,
        ppid: f.next()?.parse().ok()?,
        pgrp: f.next()?.parse().ok()?,
        session: f.next()?.parse().ok()?,
        start: f.nth(15)?.parse().ok()?,
    })
}

/// The process group of a process, if it is alive or a zombie.
pub fn process_group(pid: u32) -> Option<u32> {
    proc_stat(pid).map(|s| s.pgrp)
}

/// The start time of a process (clock ticks since boot).
pub fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start)
}

/// Live (not zombie) members of process group `pgid` in session `pgid`.
fn members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            proc_stat(pid).is_some_and(|s| s.pgrp == pgid && s.session == pgid && !s.is_dead())
        })
        .collect()
}

/// Is the recorded group still the one the previous generation started?
/// (module doc). `Some(true)`: ours and alive; `Some(false)`: gone; `None`:
/// the pid now belongs to someone else.
fn verify(e: &StateEntry) -> Option<bool> {
    match proc_stat(e.pgid) {
        Some(s) if !s.is_dead() => {
            (s.start == e.start && s.pgrp == e.pgid && s.session == e.pgid).then_some(true)
        }
        _ => Some(!members(e.pgid).is_empty()),
    }
}

/// What [`stop_previous`] did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing of it was left.
    Gone,
    /// Its pid now belongs to another process: left alone.
    Reused,
    /// Stopped, the last signal sent being this one.
    Stopped(&'static str),
    /// Still there after SIGKILL and the grace period.
    Survived,
}

fn killpg(pgid: u32, sig: libc::c_int) {
    // SAFETY: killpg has no memory effects; the pgid was verified above.
    unsafe {
        libc::killpg(pgid as libc::pid_t, sig);
    }
}

/// The previous generation's cgroup directory, if it is safe to empty:
/// an absolute path on a cgroup2 file system, named `clinit.<daemon>` after
/// the daemon that wrote the file, and not our own. Anything else (an edited
/// or foreign file) is refused with `Err(why)`.
pub fn checked_cgroup(prev: &Previous) -> Result<Option<PathBuf>, String> {
    let Some(dir) = &prev.cgroup else { return Ok(None) };
    let expected = format!("clinit.{}", prev.daemon);
    if !dir.is_absolute() || dir.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        return Err(format!("{} is not named {expected}", dir.display()));
    }
    if prev.daemon == std::process::id() {
        return Err(format!("{} is this daemon's own", dir.display()));
    }
    if !crate::cgroup::is_cgroup2_dir(dir) {
        return Ok(None); // Gone already (or never a cgroup): nothing to stop.
    }
    Ok(Some(dir.clone()))
}

/// What [`stop_previous`] did: one outcome per process group, and one for
/// the recorded cgroup subtree, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub groups: Vec<(StateEntry, Outcome)>,
    pub cgroup: Option<(PathBuf, Outcome)>,
    /// Processes found by the generation marker and not otherwise stopped:
    /// how many, and the outcome (`None`: there were none).
    pub marked: Option<(usize, Outcome)>,
}

/// Stop the previous generation's groups and everything in its cgroup
/// subtree (module doc); blocks until they are gone or the escalation and
/// [`KILL_GRACE`] ran out. The emptied cgroups are then removed, leaf first.
pub fn stop_previous(
    entries: &[StateEntry],
    cgroup: Option<&Path>,
    generation: Option<&str>,
    esc: &Escalation,
) -> Stopped {
    let mut out = Vec::new();
    let mut live = Vec::new();
    for e in entries {
        match verify(e) {
            Some(true) => live.push(e.clone()),
            Some(false) => out.push((e.clone(), Outcome::Gone)),
            None => out.push((e.clone(), Outcome::Reused)),
        }
    }
    let tree_live = |dir: &Path| !crate::cgroup::tree_members(dir).is_empty();
    let mut tree = cgroup.map(|d| (d.to_path_buf(), tree_live(d)));
    let mut tree_outcome = match &tree {
        Some((_, false)) => Some(Outcome::Gone),
        _ => None,
    };
    let scan = || generation.map(marked_processes).unwrap_or_default();
    let mut marked = scan();
    let marked_found = marked.len();
    let mut marked_outcome = None;
    let start = Instant::now();
    let term_at = Duration::from_millis(esc.term_after.0);
    let kill_at = Duration::from_millis(esc.kill_after.0.max(esc.term_after.0));
    let mut sent = "SIGINT";
    let signal_all = |live: &[StateEntry], tree: &Option<(PathBuf, bool)>, marked: &[u32], sig| {
        for e in live {
            killpg(e.pgid, sig);
        }
        for &pid in marked {
            // SAFETY: kill has no memory effects; the pid carried the
            // previous generation's marker a moment ago (rescanned below).
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
        if let Some((dir, true)) = tree {
            crate::cgroup::tree_signal(dir, sig);
        }
    };
    if !live.is_empty() || matches!(tree, Some((_, true))) || !marked.is_empty() {
        signal_all(&live, &tree, &marked, libc::SIGINT);
        loop {
            live.retain(|e| {
                let gone = verify(e) != Some(true);
                if gone {
                    out.push((e.clone(), Outcome::Stopped(sent)));
                }
                !gone
            });
            if let Some((dir, alive)) = &mut tree {
                if *alive && !tree_live(dir) {
                    *alive = false;
                    tree_outcome = Some(Outcome::Stopped(sent));
                }
            }
            if !marked.is_empty() {
                marked = scan();
                if marked.is_empty() {
                    marked_outcome = Some(Outcome::Stopped(sent));
                }
            }
            let t = start.elapsed();
            let tree_alive = matches!(tree, Some((_, true)));
            if (live.is_empty() && !tree_alive && marked.is_empty()) || t > kill_at + KILL_GRACE {
                break;
            }
            let next = if t >= kill_at {
                Some(("SIGKILL", libc::SIGKILL))
            } else if t >= term_at && sent == "SIGINT" {
                Some(("SIGTERM", libc::SIGTERM))
            } else {
                None
            };
            if let Some((name, sig)) = next.filter(|(name, _)| *name != sent || *name == "SIGKILL")
            {
                signal_all(&live, &tree, &marked, sig);
                sent = name;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    out.extend(live.into_iter().map(|e| (e, Outcome::Survived)));
    let cgroup = tree.map(|(dir, alive)| {
        let outcome = if alive { Outcome::Survived } else { tree_outcome.unwrap_or(Outcome::Gone) };
        crate::cgroup::remove_tree(&dir);
        (dir, outcome)
    });
    let marked = (marked_found > 0).then(|| {
        let outcome = if marked.is_empty() {
            marked_outcome.unwrap_or(Outcome::Gone)
        } else {
            Outcome::Survived
        };
        (marked_found, outcome)
    });
    Stopped { groups: out, cgroup, marked }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trips_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = state_path(&dir.path().join("clinit.s"));
        assert_eq!(read_state(&path).expect("no file"), Previous::default());
        let e = StateEntry {
            pgid: 7,
            start: 42,
            group: "g".into(),
            tag: "t".into(),
            level: "1".into(),
        };
        write_state(&path, Some(Path::new("/cg/clinit.9")), &[Arc::new(e.clone())]).expect("write");
        let prev = read_state(&path).expect("read");
        assert_eq!(prev.procs, vec![e]);
        assert_eq!(prev.cgroup.as_deref(), Some(Path::new("/cg/clinit.9")));
        assert_eq!(prev.daemon, std::process::id());
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(read_state(&path), Err(StateError::Format { .. })));
    }

    #[test]
    fn a_reused_or_vanished_pid_is_never_signalled() {
        // Our own pid with a wrong start time: "reused", left alone.
        let me = std::process::id();
        let e = StateEntry {
            pgid: me,
            start: 1,
            group: "g".into(),
            tag: "t".into(),
            level: "1".into(),
        };
        let esc = Escalation::default();
        assert_eq!(
            stop_previous(std::slice::from_ref(&e), None, None, &esc).groups[0].1,
            Outcome::Reused
        );
        // A pid that does not exist (above pid_max): gone.
        let gone = StateEntry { pgid: 1 << 30, ..e };
        assert_eq!(stop_previous(&[gone], None, None, &esc).groups[0].1, Outcome::Gone);
    }

    /// A process the state file never named (forked just before the
    /// `kill -9`), and its `setsid` descendant, are found by the generation
    /// marker and stopped; a process with another generation's marker is
    /// left alone.
    #[test]
    fn processes_with_the_previous_generations_marker_are_stopped() {
        use std::process::{Command, Stdio};
        let gen = format!("{}:/test/marker/{}", std::process::id(), line!());
        let other = format!("{gen}-other");
        let start = |value: &str, cmd: &str| {
            Command::new("/bin/sh")
                .args(["-c", cmd])
                .env(GENERATION_ENV, value)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn")
        };
        let mut ours = start(&gen, "setsid sleep 3011 & exec sleep 3012");
        let mut theirs = start(&other, "exec sleep 3013");
        let deadline = Instant::now() + Duration::from_secs(10);
        while marked_processes(&gen).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let found = marked_processes(&gen);
        assert_eq!(found.len(), 2, "the shell's exec and its setsid child: {found:?}");
        assert!(found.contains(&ours.id()));
        let esc = Escalation::default();
        let stopped = stop_previous(&[], None, Some(&gen), &esc);
        let _ = ours.wait();
        // (sh starts `&` jobs with SIGINT ignored: SIGTERM ends that one.)
        assert!(matches!(stopped.marked, Some((2, Outcome::Stopped(_)))), "{stopped:?}");
        assert!(marked_processes(&gen).is_empty());
        assert_eq!(marked_processes(&other), vec![theirs.id()], "another generation is left alone");
        let _ = theirs.kill();
        let _ = theirs.wait();
    }
}
