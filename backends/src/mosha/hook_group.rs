//! What a hook leaves behind: its process group, swept when the hook ends
//! and recorded while it runs, so that a `mosha` restarted after a crash
//! (`kill -9`) ends a hook its predecessor could not (issue 10: nothing a
//! hook starts is left unaccounted for).
//!
//! A hook runs in its own process group (pgid = the shell's pid). Linux
//! does not hand out a pid again while it is still some live process's
//! process group id, so a group with members is still the hook's group;
//! the group leader's start time (field 22 of `/proc/PID/stat`, clock ticks
//! since boot) tells a recycled leader pid from the recorded one.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// The state file's name in the node's directory: `PGID STARTTIME\n` of
/// the hook running now; absent when none runs.
pub const STATE_FILE: &str = "hook.running";

/// How long what a finished hook left gets to end after SIGTERM before
/// SIGKILL.
pub const GRACE: Duration = Duration::from_millis(500);

/// `(pgrp, starttime)` of `pid` from `/proc/PID/stat`, `None` if it is
/// gone or a zombie (a zombie holds no resources and cannot be killed).
fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and ')': split after the
    // last ')'. The rest starts at field 3 (state).
    let rest = text.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first().is_some_and(|s| *s == "Z" || *s == "X") {
        return None;
    }
    // Field 5 (pgrp) and field 22 (starttime), counted from field 3.
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((pgrp, start))
}

/// Start time of `pid` (clock ticks since boot), `None` if gone.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, s)| s)
}

/// Live (non-zombie) processes in process group `pgid`, with their start
/// times.
fn members(pgid: i32) -> Vec<(i32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter_map(|pid| stat(pid).filter(|(g, _)| *g == pgid).map(|(_, s)| (pid, s)))
        .collect()
}

/// End what is left of the process group `pgid` (SIGTERM, then SIGKILL
/// after [`GRACE`]); returns how many processes were left in it.
pub fn sweep(pgid: i32) -> usize {
    if pgid <= 1 {
        return 0;
    }
    let left = members(pgid).len();
    if left == 0 {
        return 0;
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    let start = Instant::now();
    while !members(pgid).is_empty() {
        if start.elapsed() >= GRACE {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    left
}

/// Record the running hook's group in `path` (temp file + rename, so a
/// reader never sees half a line).
pub fn record(path: &Path, pgid: i32, start: u64) {
    let line = format!("{pgid} {start}\n");
    if let Err(e) = crate::atomic::write_atomic(path, line.as_bytes(), None) {
        warn!("cannot record the running hook in {}: {e}", path.display());
    }
}

/// The hook ended: forget it.
pub fn clear(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!("cannot remove {}: {e}", path.display()),
    }
}

/// At start: a hook group recorded by a `mosha` that died while the hook
/// ran. If that group still exists (its leader with the recorded start
/// time, or, the leader gone, members started no earlier than it), it is
/// killed and logged. Returns how many processes were killed.
pub fn reap_recorded(path: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    let parsed = text
        .split_once(' ')
        .and_then(|(g, s)| Some((g.trim().parse::<i32>().ok()?, s.trim().parse::<u64>().ok()?)));
    let Some((pgid, start)) = parsed.filter(|(g, _)| *g > 1) else {
        warn!("{}: not a hook record ({:?}); removed", path.display(), text.trim());
        clear(path);
        return 0;
    };
    let ours = match stat(pgid) {
        // The leader lives: it is ours only if it started when recorded.
        Some((_, s)) => s == start,
        // The leader is gone: its pid cannot be reused while the group has
        // members, and members start after their leader.
        None => members(pgid).iter().all(|(_, s)| *s >= start),
    };
    let killed = if ours { sweep(pgid) } else { 0 };
    if killed > 0 {
        warn!(
            "a hook of a previous mosha still ran (process group {pgid}, {killed} process(es)): \
             killed"
        );
    } else {
        debug!("{}: the recorded hook group {pgid} is gone", path.display());
    }
    clear(path);
    killed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    /// `sleep 30` in its own process group (pgid = its pid).
    fn group() -> (Child, i32) {
        let child = Command::new("sleep").arg("30").process_group(0).spawn().expect("spawn sleep");
        let pgid = i32::try_from(child.id()).expect("pid");
        (child, pgid)
    }

    #[test]
    fn a_recorded_group_is_killed_only_if_its_leader_has_the_recorded_start_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(STATE_FILE);
        let (mut child, pgid) = group();
        let start = start_time(pgid).expect("start time of a live child");
        // Another start time: the pid was reused by someone else's process.
        record(&path, pgid, start + 1);
        assert_eq!(reap_recorded(&path), 0);
        assert!(!path.exists(), "the record is removed either way");
        assert!(child.try_wait().expect("try_wait").is_none(), "a stranger was killed");
        // The recorded one: killed, and counted.
        record(&path, pgid, start);
        assert_eq!(reap_recorded(&path), 1);
        let status = child.wait().expect("wait");
        assert!(status.code().is_none(), "ended by a signal: {status:?}");
        assert!(!path.exists());
    }

    #[test]
    fn a_garbled_record_is_removed_and_kills_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(STATE_FILE);
        std::fs::write(&path, "1 x\n").expect("write");
        assert_eq!(reap_recorded(&path), 0);
        assert!(!path.exists());
    }

    #[test]
    fn sweep_counts_and_ends_what_is_left_of_a_group() {
        let (mut child, pgid) = group();
        assert_eq!(sweep(pgid), 1);
        let status = child.wait().expect("wait");
        assert!(status.code().is_none(), "ended by a signal: {status:?}");
        assert_eq!(sweep(pgid), 0, "nothing left the second time");
    }
}
