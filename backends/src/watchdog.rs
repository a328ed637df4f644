//! The process-form watchdog of `ranked`: a minimal separate process that
//! SIGKILLs the node's service process groups when the monitor's lease
//! deadline passes without a newer arming.
//!
//! Why a process: a frozen monitor (SIGSTOP, a hung cycle, swap death)
//! cannot stop its own services, while its lease runs out and another node
//! takes its groups over. The watchdog is the monitor's hand that keeps
//! working: Patroni and Pacemaker's SBD use the Linux watchdog device for
//! the same job; the development machines have none, so this process form
//! must work alone (softdog may be offered on top).
//!
//! Shape:
//! * It runs outside the monitor's process group (its own group, so a
//!   signal to the monitor's group does not reach it) and never touches the
//!   shared filesystem.
//! * The monitor hands it, through a pipe (its stdin), one line per event:
//!   `arm INC EPOCH DEADLINE` (DEADLINE in ms of CLOCK_BOOTTIME, the
//!   lease deadline − δ; `none`: no lease, keep the groups empty),
//!   `add PGID` when a service process group starts, `del PGID` when it is
//!   reaped. Absolute boot-clock times, not keep-alives: a late line only
//!   makes the watchdog fire *earlier* than it would, never later.
//! * At start-up the monitor also says what reaches a service's descendant
//!   that left its process group (`setsid cmd &`): `marker VALUE`, the
//!   generation marker every service child carries
//!   ([`crate::generations::GENERATION_ENV`]), and, in cgroup mode,
//!   `cgroup DIR`, the directory of the per-entry cgroups. When it fires,
//!   the watchdog kills those too (see [`Reach`]). A watchdog that does
//!   not know a line ignores it (logged), so an older one still kills the
//!   process groups.
//! * The rule (deadlines move forward only within an epoch, a newer epoch
//!   re-arms, a fired watchdog keeps killing until a new epoch) is the
//!   engine's [`Watchdog`]; this module only hosts it.
//! * When the monitor dies (EOF on the pipe) the watchdog keeps its
//!   deadline: the dead monitor's orphans are killed at it, then it exits.
//!
//! What it guarantees: the services stop within δ of the deadline while the
//! *machine* runs. A whole-node pause (a VM pause) stops it too: for as
//! long as the pause lasts it guarantees nothing; a fence does.

use clinit_engine::monitor::ranked::watchdog::{Watchdog, WatchdogAction};
use clinit_engine::time::Millis;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;
use thiserror::Error;
use tracing::{info, warn};

/// The environment variable that turns a program that calls
/// [`run_if_requested`] first thing into the watchdog.
pub const ENV: &str = "CLINIT_WATCHDOG";

/// CLOCK_BOOTTIME in ms: a clock that keeps running through suspend (a
/// deadline on CLOCK_MONOTONIC would move by the length of a suspend).
pub fn boottime() -> Millis {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; with a valid
    // clock id it cannot fail.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return Millis(0);
    }
    Millis(ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000)
}

/// One line of the monitor-to-watchdog protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Arm {
        epoch: (u64, u64),
        deadline: Option<Millis>,
    },
    Add(i32),
    Del(i32),
    /// `marker VALUE`: kill the processes whose environment holds
    /// `CLINIT_GENERATION=VALUE` when firing (the rest of the line, spaces
    /// included; no newline).
    Marker(String),
    /// `cgroup DIR`: kill every process below this cgroup v2 directory
    /// when firing (the rest of the line).
    Cgroup(PathBuf),
}

/// A line the watchdog does not understand (it is ignored, and logged).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("watchdog: bad line {0:?}")]
pub struct BadLine(pub String);

impl Line {
    pub fn parse(text: &str) -> Result<Line, BadLine> {
        let bad = || BadLine(text.to_string());
        if let Some(value) = text.strip_prefix("marker ").filter(|v| !v.is_empty()) {
            return Ok(Line::Marker(value.to_string()));
        }
        if let Some(dir) = text.strip_prefix("cgroup ").filter(|d| d.starts_with('/')) {
            return Ok(Line::Cgroup(PathBuf::from(dir)));
        }
        let w: Vec<&str> = text.split_whitespace().collect();
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        match w.as_slice() {
            ["arm", inc, epoch, "none"] => {
                Ok(Line::Arm { epoch: (num(inc)?, num(epoch)?), deadline: None })
            }
            ["arm", inc, epoch, at] => {
                Ok(Line::Arm { epoch: (num(inc)?, num(epoch)?), deadline: Some(Millis(num(at)?)) })
            }
            ["add", pgid] => pgid.parse().map(Line::Add).map_err(|_| bad()),
            ["del", pgid] => pgid.parse().map(Line::Del).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    pub fn render(&self) -> String {
        match self {
            Line::Arm { epoch: (i, e), deadline: Some(d) } => format!("arm {i} {e} {}\n", d.0),
            Line::Arm { epoch: (i, e), deadline: None } => format!("arm {i} {e} none\n"),
            Line::Add(p) => format!("add {p}\n"),
            Line::Del(p) => format!("del {p}\n"),
            Line::Marker(v) => format!("marker {v}\n"),
            Line::Cgroup(d) => format!("cgroup {}\n", d.display()),
        }
    }

    /// Whether the line survives the trip through the pipe: a value with
    /// a newline (a state file path with one, say) would be cut in two.
    pub fn is_sendable(&self) -> bool {
        match self {
            Line::Marker(v) => !v.is_empty() && !v.contains('\n'),
            Line::Cgroup(d) => d.is_absolute() && !d.to_string_lossy().contains('\n'),
            _ => true,
        }
    }
}

/// What the watchdog kills besides the process groups it was told, when it
/// fires: the escaped descendants of the services.
///
/// Why: a service's descendant that left its process group (`setsid cmd
/// &`, a daemonizing server) is not reached by `killpg`; while the monitor
/// is frozen it would run on beside the copy a peer starts once the lease
/// has lapsed. Two nets, both local to this machine (the watchdog never
/// touches the shared filesystem):
///
/// * `cgroup`: in cgroup mode every service instance lives in a cgroup
///   below this directory, with all it ever starts: `cgroup.kill` on it is
///   recursive (Linux 5.14+; before, each member is killed by pid, which
///   the kernel lists from the cgroup itself).
/// * `marker`: in either mode every process a service starts inherits its
///   generation marker ([`crate::generations::GENERATION_ENV`]); they are
///   found in `/proc` and killed through pidfds, so a pid reused between
///   the look at a process's environment and the kill is never hit
///   ([`crate::generations::signal_marked`]). This matters here more than
///   in the monitor: the watchdog is no subreaper and no parent of them,
///   and after the monitor's death their parent is init, which reaps at
///   once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reach {
    pub marker: Option<String>,
    pub cgroup: Option<PathBuf>,
}

impl Reach {
    /// Kill everything this reaches; returns how many processes were
    /// signalled by marker (the cgroup's are not counted: `cgroup.kill`
    /// does not list them).
    pub fn kill(&self) -> usize {
        if let Some(dir) = &self.cgroup {
            crate::cgroup::tree_signal(dir, libc::SIGKILL);
        }
        match &self.marker {
            Some(m) => crate::generations::signal_marked(m, libc::SIGKILL).len(),
            None => 0,
        }
    }
}

/// If this process was started as the watchdog ([`ENV`] set), run it and
/// never return; otherwise return at once. Call it first thing in `main`.
pub fn run_if_requested() {
    if std::env::var_os(ENV).is_some() {
        run(io::BufReader::new(io::stdin()));
        std::process::exit(0);
    }
}

/// The watchdog's loop over `input` (the pipe from the monitor).
pub fn run(input: impl BufRead + Send + 'static) {
    let (tx, rx) = mpsc::channel::<Option<String>>();
    // A reader thread: the main loop waits on the channel with a deadline.
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    let mut dog = Watchdog::default();
    let mut groups: BTreeSet<i32> = BTreeSet::new();
    let mut reach = Reach::default();
    let mut monitor_gone = false;
    let mut was_fired = false;
    loop {
        let fired = dog.tick(boottime()) == WatchdogAction::KillAll;
        if fired {
            // The escaped descendants at the moment it fires, and again
            // whenever groups added since then are killed (a fired
            // watchdog keeps the node empty until a new epoch); not on
            // every later line: a scan of /proc per heartbeat would cost.
            let sweep = !was_fired || !groups.is_empty();
            for &pgid in &groups {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let marked = if sweep { reach.kill() } else { 0 };
            if !groups.is_empty() || marked > 0 {
                // The monitor may be frozen: this is the only word of it.
                crate::cli::eprint_quiet(format_args!(
                    "watchdog (pid {}): fired: SIGKILL to {} service process groups and {marked} \
                     processes with the generation marker",
                    std::process::id(),
                    groups.len()
                ));
            }
            groups.clear();
            if monitor_gone {
                return;
            }
        }
        was_fired = fired;
        let wait = match dog.next_deadline() {
            Some(d) => Duration::from_millis(d.0.saturating_sub(boottime().0)),
            None if monitor_gone => return,
            None => Duration::from_secs(3600),
        };
        if monitor_gone {
            std::thread::sleep(wait);
            continue;
        }
        match rx.recv_timeout(wait) {
            Ok(Some(text)) => match Line::parse(&text) {
                Ok(Line::Arm { epoch, deadline }) => dog.arm(epoch, deadline),
                Ok(Line::Add(pgid)) => {
                    groups.insert(pgid);
                }
                Ok(Line::Del(pgid)) => {
                    groups.remove(&pgid);
                }
                Ok(Line::Marker(value)) => reach.marker = Some(value),
                Ok(Line::Cgroup(dir)) => reach.cgroup = Some(dir),
                Err(e) => crate::cli::eprint_quiet(format_args!("{e}")),
            },
            Ok(None) | Err(RecvTimeoutError::Disconnected) => monitor_gone = true,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Why the watchdog could not be started or told something.
#[derive(Debug, Error)]
pub enum WatchdogError {
    #[error("cannot start the watchdog {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot reach the watchdog (pid {pid}): {source}")]
    Pipe {
        pid: u32,
        #[source]
        source: io::Error,
    },
}

/// The monitor's end: the watchdog child, the pipe to it, and a copy of
/// what it was told.
///
/// The copy is there because the watchdog can die (an operator's `kill -9`,
/// the OOM killer): a node whose watchdog is gone still publishes that it
/// has one, and a freeze of its monitor would then leave its services
/// running beside their new owner's. So the first line that cannot be
/// written restarts the watchdog and replays the arming and the groups to
/// the new one before that line, as systemd restarts a unit's watchdog-less
/// helper; a restart that fails is tried again at the next line.
pub struct WatchdogHandle {
    program: PathBuf,
    child: Child,
    /// Keeps the reaper of adopted orphans off `child` (see `spawn`).
    claim: crate::claimed::Claim,
    pipe: ChildStdin,
    /// The last `arm` line sent (the deadline is absolute on
    /// CLOCK_BOOTTIME, so replaying it later means the same).
    armed: Option<Line>,
    /// The process groups added and not deleted.
    groups: BTreeSet<i32>,
    /// The `marker` and `cgroup` lines sent (replayed on a restart).
    reach: Vec<Line>,
    /// The pid whose loss was already logged while restarts fail (one
    /// error line per loss, not one per heartbeat).
    lost: Option<u32>,
}

impl WatchdogHandle {
    /// Start `program` (a binary that calls [`run_if_requested`] first) as
    /// the watchdog, in its own process group.
    ///
    /// Errors: [`WatchdogError::Spawn`] when the program cannot be started,
    /// [`WatchdogError::Pipe`] when it has no stdin pipe.
    ///
    /// Claimed ([`crate::claimed`]) while the handle lives: a restart waits
    /// for the old watchdog and may SIGKILL it by pid, so `mosha`'s reaper
    /// of adopted orphans must not take its zombie (its pid could then be
    /// reused). When the handle is dropped unwaited, the claim goes with it
    /// and the reaper takes the zombie.
    pub fn spawn(program: &Path) -> Result<WatchdogHandle, WatchdogError> {
        let (child, claim, pipe) = start(program)?;
        Ok(WatchdogHandle {
            program: program.to_path_buf(),
            child,
            claim,
            pipe,
            armed: None,
            groups: BTreeSet::new(),
            reach: Vec::new(),
            lost: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `false` while the watchdog is lost and every restart since has
    /// failed: it then guards nothing, and the monitor must not publish
    /// that it has one.
    pub fn is_up(&self) -> bool {
        self.lost.is_none()
    }

    /// Send one line; if the watchdog is gone, restart it, replay the
    /// arming and the groups, and send the line to the new one.
    ///
    /// Errors: the restart's ([`WatchdogError::Spawn`]) or the new
    /// watchdog's pipe ([`WatchdogError::Pipe`]), once per loss; every
    /// later call tries a restart again, quietly until one succeeds.
    pub fn send(&mut self, line: Line) -> Result<(), WatchdogError> {
        match &line {
            Line::Arm { .. } => self.armed = Some(line.clone()),
            Line::Add(pgid) => {
                self.groups.insert(*pgid);
            }
            Line::Del(pgid) => {
                self.groups.remove(pgid);
            }
            Line::Marker(_) | Line::Cgroup(_) => {
                let same_kind =
                    |l: &Line| std::mem::discriminant(l) == std::mem::discriminant(&line);
                self.reach.retain(|l| !same_kind(l));
                self.reach.push(line.clone());
            }
        }
        let first = self.lost.is_none();
        if first && self.write(&line).is_ok() {
            return Ok(());
        }
        match self.restart() {
            // A restart that keeps failing is reported once per loss.
            Err(_) if !first => Ok(()),
            result => result,
        }
    }

    fn write(&mut self, line: &Line) -> Result<(), WatchdogError> {
        let pid = self.child.id();
        self.pipe
            .write_all(line.render().as_bytes())
            .and_then(|()| self.pipe.flush())
            .map_err(|source| WatchdogError::Pipe { pid, source })
    }

    /// Reap the old watchdog (killing it if it still runs with a broken
    /// pipe: two watchdogs must never disagree), start a new one and tell
    /// it everything the old one knew.
    fn restart(&mut self) -> Result<(), WatchdogError> {
        let old = self.child.id();
        if self.lost.is_none() {
            let _ = self.child.kill();
            let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            warn!("ranked: the watchdog (pid {old}) is gone ({status}): restarting it");
            self.lost = Some(old);
        }
        let (child, claim, pipe) = start(&self.program)?;
        self.child = child;
        self.claim = claim;
        self.pipe = pipe;
        let replay: Vec<Line> = self
            .reach
            .iter()
            .cloned()
            .chain(self.armed.iter().cloned())
            .chain(self.groups.iter().map(|&g| Line::Add(g)))
            .collect();
        for line in &replay {
            self.write(line)?;
        }
        self.lost = None;
        info!(
            "ranked: watchdog restarted as pid {} (was {old}): re-armed, {} service groups",
            self.child.id(),
            self.groups.len()
        );
        Ok(())
    }
}

impl Drop for WatchdogHandle {
    /// Close the pipe (the watchdog keeps its deadline and exits after it,
    /// see [`run`]) and reap the child if it already ended, so a restarted
    /// monitor leaves no zombie.
    fn drop(&mut self) {
        let _ = self.child.try_wait();
    }
}

/// Start one watchdog process, claimed, and take its stdin.
fn start(program: &Path) -> Result<(Child, crate::claimed::Claim, ChildStdin), WatchdogError> {
    let mut command = Command::new(program);
    command.env(ENV, "1").stdin(Stdio::piped()).stdout(Stdio::null()).process_group(0);
    let (mut child, claim) = crate::claimed::spawn(&mut command).map_err(|source| {
        WatchdogError::Spawn { program: program.display().to_string(), source }
    })?;
    let pid = child.id();
    let pipe = child.stdin.take().ok_or_else(|| WatchdogError::Pipe {
        pid,
        source: io::Error::new(io::ErrorKind::BrokenPipe, "no stdin pipe"),
    })?;
    Ok((child, claim, pipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_bad_ones_are_errors() {
        for line in [
            Line::Arm { epoch: (2, 7), deadline: Some(Millis(123_456)) },
            Line::Arm { epoch: (1, 0), deadline: None },
            Line::Add(4242),
            Line::Del(4242),
            Line::Marker("4242:/var/run/my node/clinit.state".into()),
            Line::Cgroup("/sys/fs/cgroup/unified/clinit.4242".into()),
        ] {
            assert!(line.is_sendable());
            let text = line.render();
            assert_eq!(Line::parse(text.strip_suffix('\n').unwrap_or(&text)), Ok(line));
        }
        assert!(!Line::Marker("1:/a\nadd 1".into()).is_sendable());
        assert!(!Line::Cgroup("relative".into()).is_sendable());
        for bad in ["", "arm 1", "arm x 1 5", "add", "kill 5", "add -x", "marker ", "cgroup rel"] {
            assert!(Line::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn boottime_moves_forward() {
        let a = boottime();
        std::thread::sleep(Duration::from_millis(20));
        let b = boottime();
        assert!(a.0 > 0 && b > a, "{a} then {b}");
    }
}
