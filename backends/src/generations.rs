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
//! Anything else is left alone, with a log line. Start-up waits for the
//! stops, at most the escalation's `kill_after` plus [`KILL_GRACE`].

use crate::atomic;
use crate::safe_read::{read_regular, ReadError};
use clinit_engine::init::escalation::Escalation;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
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
    pub group: String,
    pub tag: String,
    pub level: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// The daemon that wrote it.
    daemon: u32,
    procs: Vec<StateEntry>,
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

/// Replace the state file with these entries (atomically, mode 0600).
pub fn write_state(path: &Path, procs: Vec<StateEntry>) -> io::Result<()> {
    let file = StateFile { version: STATE_VERSION, daemon: std::process::id(), procs };
    let text = serde_json::to_vec(&file).map_err(io::Error::other)?;
    atomic::replace_private(path, &text, STATE_MODE)
}

/// The previous generation's entries; empty when there is no state file.
pub fn read_state(path: &Path) -> Result<Vec<StateEntry>, StateError> {
    let Some(bytes) = read_regular(path, MAX_STATE_BYTES)? else { return Ok(Vec::new()) };
    let file: StateFile = serde_json::from_slice(&bytes)
        .map_err(|source| StateError::Format { path: path.to_path_buf(), source })?;
    if file.version != STATE_VERSION {
        return Err(StateError::Version { path: path.to_path_buf(), found: file.version });
    }
    Ok(file.procs)
}

/// `(state, pgrp, session, start time)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] state, f[1] ppid, f[2] pgrp, f[3] session, ..., f[19] starttime.
    let state = f.first()?.chars().next()?;
    Some((state, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// The start time of a process (clock ticks since boot).
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.3)
}

/// Live (not zombie) members of process group `pgid` in session `pgid`.
fn members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat(pid).is_some_and(|(st, pgrp, sid, _)| {
                pgrp == pgid && sid == pgid && st != 'Z' && st != 'X'
            })
        })
        .collect()
}

/// Is the recorded group still the one the previous generation started?
/// (module doc). `Some(true)`: ours and alive; `Some(false)`: gone; `None`:
/// the pid now belongs to someone else.
fn verify(e: &StateEntry) -> Option<bool> {
    match stat(e.pgid) {
        Some((st, pgrp, sid, start)) if st != 'Z' && st != 'X' => {
            (start == e.start && pgrp == e.pgid && sid == e.pgid).then_some(true)
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

/// Stop the previous generation's groups (module doc); blocks until they
/// are gone or the escalation and [`KILL_GRACE`] ran out.
pub fn stop_previous(entries: &[StateEntry], esc: &Escalation) -> Vec<(StateEntry, Outcome)> {
    let mut out = Vec::new();
    let mut live = Vec::new();
    for e in entries {
        match verify(e) {
            Some(true) => live.push(e.clone()),
            Some(false) => out.push((e.clone(), Outcome::Gone)),
            None => out.push((e.clone(), Outcome::Reused)),
        }
    }
    if live.is_empty() {
        return out;
    }
    let start = Instant::now();
    let term_at = Duration::from_millis(esc.term_after.0);
    let kill_at = Duration::from_millis(esc.kill_after.0.max(esc.term_after.0));
    let mut sent = "SIGINT";
    for e in &live {
        killpg(e.pgid, libc::SIGINT);
    }
    loop {
        live.retain(|e| {
            let gone = verify(e) != Some(true);
            if gone {
                out.push((e.clone(), Outcome::Stopped(sent)));
            }
            !gone
        });
        let t = start.elapsed();
        if live.is_empty() || t > kill_at + KILL_GRACE {
            break;
        }
        let next = if t >= kill_at {
            Some(("SIGKILL", libc::SIGKILL))
        } else if t >= term_at && sent == "SIGINT" {
            Some(("SIGTERM", libc::SIGTERM))
        } else {
            None
        };
        if let Some((name, sig)) = next.filter(|(name, _)| *name != sent || *name == "SIGKILL") {
            for e in &live {
                killpg(e.pgid, sig);
            }
            sent = name;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    out.extend(live.into_iter().map(|e| (e, Outcome::Survived)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trips_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = state_path(&dir.path().join("clinit.s"));
        assert!(read_state(&path).expect("no file").is_empty());
        let e = StateEntry {
            pgid: 7,
            start: 42,
            group: "g".into(),
            tag: "t".into(),
            level: "1".into(),
        };
        write_state(&path, vec![e.clone()]).expect("write");
        assert_eq!(read_state(&path).expect("read"), vec![e]);
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
        assert_eq!(stop_previous(std::slice::from_ref(&e), &esc)[0].1, Outcome::Reused);
        // A pid that does not exist (above pid_max): gone.
        let gone = StateEntry { pgid: 1 << 30, ..e };
        assert_eq!(stop_previous(&[gone], &esc)[0].1, Outcome::Gone);
    }
}
