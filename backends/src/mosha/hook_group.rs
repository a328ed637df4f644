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
///
/// # Errors
/// The write's I/O error (a read-only or full disk): the caller must not
/// release the hook, since a `kill -9` of `mosha` would then leave its
/// group unrecorded and running.
pub fn record(path: &Path, pgid: i32, start: u64) -> std::io::Result<()> {
    let line = format!("{pgid} {start}\n");
    crate::atomic::write_atomic(path, line.as_bytes(), None)
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

/// The shell script that holds a hook at its gate: it waits for one line
/// on fd 3, then runs the hook's command (`$1`) in a fresh `/bin/sh -c`,
/// exactly as if that had been started directly (same pid, so the same
/// process group and start time). End of file instead of the line means
/// the `mosha` that started it is gone before recording it: exit 125 and
/// run nothing.
const GATE: &str = "IFS= read -r _ <&3 || exit 125; exec 3<&-; exec /bin/sh -c \"$1\"";

/// A hook's shell, started but held at its gate ([`spawn_held`]).
pub struct Held {
    pub child: std::process::Child,
    /// The gate's write end; dropping it without [`Held::release`] makes
    /// the shell exit without running the command.
    go: Option<std::fs::File>,
    /// Keeps the shell from `mosha`'s reaper of adopted orphans
    /// ([`crate::claimed`]) until the hook runner has waited for it: keep
    /// it as long as `child` (what the shell started is left to that
    /// reaper once the shell's group is killed).
    pub claim: crate::claimed::Claim,
}

impl Held {
    /// Do not run the command: close the gate (the shell exits 125 without
    /// running it) and reap the shell.
    pub fn abandon(mut self) {
        self.go = None;
        if let Err(e) = self.child.wait() {
            warn!("cannot reap the abandoned hook (pid {}): {e}", self.child.id());
        }
    }

    /// Let the hook's command run (after the caller has recorded it).
    pub fn release(&mut self) {
        use std::io::Write;
        if let Some(mut go) = self.go.take() {
            if let Err(e) = go.write_all(b"\n") {
                warn!("cannot release the hook (pid {}): {e}", self.child.id());
            }
        }
    }
}

/// Start `/bin/sh -c cmd` with `env` added, stdio on `/dev/null`, in its
/// own process group, killed (`PR_SET_PDEATHSIG`) when the calling thread
/// dies, and held at a gate until [`Held::release`].
///
/// Why the gate: the running hook's group is recorded in [`STATE_FILE`]
/// after the spawn (its pid is known only then). A `mosha` killed with
/// SIGKILL between the spawn and that record left a hook whose shell died
/// with it (death signal) but whose children, if it had started any,
/// were on no record. Held, the shell starts nothing before the record
/// exists; killed at the gate, it leaves nothing.
pub fn spawn_held(cmd: &str, env: &[(&str, String)]) -> std::io::Result<Held> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let (gate_read, gate_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(GATE)
        .arg("mosha-hook")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let parent = std::process::id();
    let gate = gate_read.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls (prctl,
    // getppid, dup2, fcntl, _exit), no allocation, no locks.
    unsafe {
        command.pre_exec(move || {
            // The shell dies with the thread that started it (mosha's hook
            // thread), even on `kill -9` of mosha; what the shell started
            // is ended by the next mosha from the state file.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
            // mosha died before prctl: no signal would come.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            // The gate's read end as fd 3, kept across exec (dup2's copy
            // has no close-on-exec flag; the write end has it).
            let rc = if gate == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(gate, 3) };
            if rc == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (child, claim) = crate::claimed::spawn(&mut command)?;
    drop(gate_read);
    Ok(Held { child, go: Some(gate_write.into()), claim })
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
        record(&path, pgid, start + 1).expect("record");
        assert_eq!(reap_recorded(&path), 0);
        assert!(!path.exists(), "the record is removed either way");
        assert!(child.try_wait().expect("try_wait").is_none(), "a stranger was killed");
        // The recorded one: killed, and counted.
        record(&path, pgid, start).expect("record");
        assert_eq!(reap_recorded(&path), 1);
        let status = child.wait().expect("wait");
        assert!(status.code().is_none(), "ended by a signal: {status:?}");
        assert!(!path.exists());
    }

    /// `(state, cmdline)` of `pid`, `None` once it is gone or a zombie.
    fn proc_state(pid: i32) -> Option<(String, String)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit_once(") ")?.1.split_whitespace().next()?.to_string();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
        (state != "Z").then_some((state, cmdline))
    }

    /// A held hook runs nothing until released: its shell sits at the gate
    /// (proved: it has exec'd the gate script and sleeps, 300 ms later
    /// still), the command's marker file is absent. Dropped without a
    /// release (a `mosha` killed before its record), it exits 125 and the
    /// command never runs; released, the command runs in the same process
    /// (same pid, so same group and start time as recorded).
    #[test]
    fn a_held_hook_runs_nothing_until_released_and_nothing_if_never_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        let cmd = format!("echo \"$$ $MARK\" > '{}'", marker.display());
        let at_gate = |pid: i32| {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some((state, cmdline)) = proc_state(pid) {
                    if state == "S" && cmdline.contains("read -r") {
                        return;
                    }
                }
                assert!(Instant::now() < end, "the hook's shell never reached its gate");
                thread::sleep(Duration::from_millis(10));
            }
        };
        // Never released.
        let mut held = spawn_held(&cmd, &[("MARK", "x".into())]).expect("spawn");
        let pid = i32::try_from(held.child.id()).expect("pid");
        at_gate(pid);
        thread::sleep(Duration::from_millis(300));
        at_gate(pid);
        assert!(!marker.exists(), "the command ran before its release");
        let Held { mut child, go, .. } = held;
        drop(go);
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(125), "{status:?}");
        assert!(!marker.exists(), "the command ran without a release");
        // Released.
        held = spawn_held(&cmd, &[("MARK", "x".into())]).expect("spawn");
        let pid = i32::try_from(held.child.id()).expect("pid");
        let start = start_time(pid).expect("start time");
        at_gate(pid);
        held.release();
        let status = held.child.wait().expect("wait");
        assert!(status.success(), "{status:?}");
        assert_eq!(std::fs::read_to_string(&marker).expect("marker"), format!("{pid} x\n"));
        assert!(start > 0);
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
