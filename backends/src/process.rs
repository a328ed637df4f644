//! The real process supervisor: spawn cltab commands, signal them, reap them.
//!
//! Every command runs as `/bin/sh -c COMMAND` in a **new session** (`setsid`),
//! so the shell is a session and process-group leader and `pgid == pid`.
//! Stop signals go to the whole process group, so they also reach whatever
//! the command started itself (the `sleep` of `echo $$; sleep 10`), which the
//! original only signalled through the shell's pid (spec §3.1, §9 item 17).
//!
//! Before `exec`, the child resets every signal disposition to the default and
//! empties its signal mask: a daemon started with `&` from a script has SIGINT
//! ignored, and children must not inherit that, or the first stop signal
//! would do nothing (spec §9 item 17).
//!
//! The child also marks every inherited descriptor above stderr
//! close-on-exec, so a command sees only stdin (`/dev/null`), stdout and
//! stderr, never a socket or pipe the daemon's launcher leaked to it.
//!
//! Reaping is done per pid (`waitpid(pid, WNOHANG)`), never with
//! `waitpid(-1)`, so other code in the same process may own other children
//! (in a subreaper it claims them, see below).
//! Exits are found with `waitid(P_ALL, WNOWAIT)`, which only looks: a
//! child that is not ours is left to its owner (see [`ProcessTable::reap`]).
//! Once a child has been reaped its pid leaves the table and is **never
//! signalled again**: the kernel may have handed that pid to an unrelated
//! process (spec §9 item 10). Until we reap it, a dead child stays a zombie
//! that keeps its pid (and so its process group id) reserved, which is what
//! makes signalling a not-yet-reaped child safe.
//!
//! A command may leave members in its process group after its own shell
//! exits (`daemon &`, or a background child that ignores SIGINT). Then the
//! leader's exit is reported at once (its status decides `wait` and `test`
//! entries) but its zombie is **held**, unreaped, while other members remain:
//! the zombie keeps the process group id reserved, so stop signals can still
//! reach the leftovers safely, and nothing the daemon started outlives a stop
//! or a shutdown. [`Reaped::GroupGone`] follows when the last member is gone.
//!
//! Finding whether a group still has members: a table made with
//! [`ProcessTable::with_subreaper`] (the daemon's) makes this process a child
//! subreaper, so a dead leader's leftovers are re-parented to *us*; then only
//! our own children need a look (`/proc/self/task/*/children`), which is cheap
//! and independent of how busy the machine is, and every dead child that is
//! not in the table is reaped here too: the adopted orphans of our commands,
//! and those of other code's children (a hook's or a fence command's
//! `sleep &`, left when its group was killed). Only children whose spawner
//! waits for them itself are left alone: they are claimed
//! ([`crate::claimed`]), so other code's exit statuses are never stolen. A
//! plain [`ProcessTable::new`] (tests, tools) scans all of `/proc` instead.
//! The subreaper check sees members that are descendants of the command
//! through members of its group, which is every ordinary case (a member
//! whose parent left the group to start another one is missed until that
//! parent exits).
//!
//! Nothing here uses `tokio::process`: its SIGCHLD reaper would race ours.
//! The daemon calls [`ProcessTable::reap`] whenever SIGCHLD arrives (and on a
//! periodic tick as a safety net). The process must not set SIGCHLD to
//! `SIG_IGN`, or the kernel would reap children behind our back.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cgroup::{self, Cgroup, Containment};
use crate::generations::proc_stat;
use clinit_engine::process::{ExitStatus, ProcId, Signal};
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal as NixSignal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The shell every command runs under.
pub const SHELL: &str = "/bin/sh";

/// How long [`ProcessTable::kill_all_and_reap`] waits, in total, for SIGKILLed
/// children to be reapable. A SIGKILLed process normally dies at once; only a
/// process stuck in uninterruptible sleep (`D` state, e.g. on a dead NFS
/// mount) can outlive it, and the daemon must still be able to exit.
pub const KILL_REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long adopted orphans get between SIGTERM and SIGKILL at exit.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(1);

/// Status reported when a child of ours was reaped by someone else
/// (`ECHILD`: SIGCHLD set to `SIG_IGN`, or a stray `waitpid(-1)`): the real
/// status is lost. No real exit code is negative, so it cannot be mistaken
/// for one, and it does not count as success.
pub const LOST_STATUS: ExitStatus = ExitStatus::Code(-1);

/// At most this many emptied instance cgroups are kept for reuse (see
/// [`ProcessTable::release`]), as empty directories under the daemon's
/// cgroup until a spawn takes one or the daemon exits. A respawn needs
/// one; a level change that starts many at once creates the rest.
pub const SPARE_CGROUPS: usize = 64;

/// What to start: one instance of a cltab entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnSpec {
    /// Fresh id for this instance, assigned by the engine.
    pub id: ProcId,
    /// Shell command line, run as `/bin/sh -c COMMAND`.
    pub command: String,
    /// Added to (or overriding) the daemon's own environment.
    pub env: Vec<(String, String)>,
    /// Working directory; `None` keeps the daemon's.
    pub cwd: Option<PathBuf>,
}

/// What a spawn may add to a plain [`SpawnSpec`]: the output pipe, the
/// readiness descriptor, and the entry's credentials, umask and resource
/// limits (the cltab's per-entry options, see `clinit_engine::cltab`).
/// Everything is prepared before the fork, so the child only makes
/// async-signal-safe calls.
#[derive(Debug, Default)]
pub struct ChildExtras {
    /// Becomes the child's fd 1 and fd 2 (the write end of its output
    /// pipe, see [`crate::childlog`]); `None` inherits the daemon's.
    pub output: Option<std::os::fd::OwnedFd>,
    /// A descriptor and the number it must have in the child (s6's
    /// readiness fd: the child writes a newline to it when ready).
    pub ready_fd: Option<(std::os::fd::OwnedFd, i32)>,
    /// File mode creation mask, e.g. `0o027`.
    pub umask: Option<u32>,
    /// `(resource, soft, hard)` for `setrlimit`, `RLIM_INFINITY` as `u64::MAX`.
    pub rlimits: Vec<(i32, u64, u64)>,
    /// Run as this user: supplementary groups, then gid, then uid.
    pub creds: Option<Credentials>,
}

/// Who a child runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (`getgrouplist` of the user, resolved before
    /// the fork: `initgroups` is not async-signal-safe).
    pub groups: Vec<u32>,
}

/// A command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// fork/exec of the shell failed, or the working directory could not be
    /// entered. No process is left behind (std reaps a child whose exec failed).
    #[error("cannot start {id} `{command}`{}: {source}", cwd_note(.cwd))]
    Io {
        id: ProcId,
        command: String,
        cwd: Option<PathBuf>,
        #[source]
        source: io::Error,
    },
    /// The id is still live in the table; starting a second process under it
    /// would lose track of the first one.
    #[error("cannot start {id} `{command}`: id already in use by live pid {pid}")]
    DuplicateId { id: ProcId, command: String, pid: u32 },
}

fn cwd_note(cwd: &Option<PathBuf>) -> String {
    match cwd {
        Some(dir) => format!(" in directory {}", dir.display()),
        None => String::new(),
    }
}

/// A signal could not be delivered to a live child's process group.
#[derive(Debug, thiserror::Error)]
#[error("cannot send {signal} to process group {pid} of {id}: {source}")]
pub struct SignalError {
    pub id: ProcId,
    pub pid: u32,
    pub signal: Signal,
    #[source]
    pub source: Errno,
}

/// One child: its pid (== its pgid), and whether its own process has
/// exited and is held as a zombie for the rest of its group.
#[derive(Debug, Clone, Copy)]
struct Child {
    pid: u32,
    leader_exited: bool,
}

/// What [`ProcessTable::reap`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// The command's own process ended. With `lingering`, other members of
    /// its process group still run and a [`Reaped::GroupGone`] follows.
    Exited { id: ProcId, pid: u32, status: ExitStatus, lingering: bool },
    /// The last member of a lingering group is gone; the held zombie is reaped.
    GroupGone { id: ProcId, pid: u32 },
}

impl Reaped {
    pub fn id(&self) -> ProcId {
        match *self {
            Reaped::Exited { id, .. } | Reaped::GroupGone { id, .. } => id,
        }
    }

    pub fn pid(&self) -> u32 {
        match *self {
            Reaped::Exited { pid, .. } | Reaped::GroupGone { pid, .. } => pid,
        }
    }

    /// The exit status, for an [`Reaped::Exited`].
    pub fn status(&self) -> Option<ExitStatus> {
        match *self {
            Reaped::Exited { status, .. } => Some(status),
            Reaped::GroupGone { .. } => None,
        }
    }
}

/// What [`ProcessTable::reap`]'s look at the next exited child found.
enum NextExit {
    /// A live leader of ours exited.
    Ours(ProcId, u32, ExitStatus),
    /// No child has exited.
    Nothing,
    /// A zombie that is not a live leader of ours (held for its group, an
    /// adopted orphan, another part of the process's child).
    Other,
}

/// The environment variable naming the instance a process was started for
/// (`CLINIT_INSTANCE=<engine id number>`), set by the daemons on every
/// child and inherited by its descendants.
pub const INSTANCE_ENV: &str = "CLINIT_INSTANCE";

/// Live children, by engine id: not yet reaped, or held as zombies for
/// their lingering process groups.
#[derive(Debug, Default)]
pub struct ProcessTable {
    live: BTreeMap<ProcId, Child>,
    /// The id of each live child, by pid (for exits the kernel names).
    by_pid: std::collections::HashMap<u32, ProcId>,
    /// Live children whose own process exited and whose zombie is held
    /// for their lingering group.
    held: usize,
    /// Instances whose cgroup held their leader alone when last signalled
    /// (see [`ProcessTable::signal`]): their exit is judged by process
    /// group only, without reading `cgroup.procs` a second time.
    solo: std::collections::HashSet<ProcId>,
    /// This process is a child subreaper (see the module doc).
    subreaper: bool,
    /// Per-instance cgroups live under this directory ([`crate::cgroup`]).
    cgroup_base: Option<cgroup::Base>,
    /// Instance cgroups found empty when their instance ended, kept for
    /// the next spawns (at most [`SPARE_CGROUPS`]): a respawn then costs
    /// neither a `mkdir` nor an `rmdir` of a cgroup, two of the kernel's
    /// slower calls (each creates or removes the cgroup's interface files).
    spare_cgroups: Vec<Cgroup>,
    /// The cgroup of each live instance that has one.
    cgroups: BTreeMap<ProcId, Cgroup>,
    /// Instances whose cgroup was killed through `cgroup.kill` (theirs or
    /// the base's): it is never kept as a spare.
    ///
    /// Why: on Linux 6.18 (measured; the `kill_seq` of 6.14+), a child
    /// `clone3`d with `CLONE_INTO_CGROUP` into a cgroup that once went
    /// through `cgroup.kill` (itself or an ancestor at the time) is killed
    /// with SIGKILL at birth: the kill counter it is compared with is read
    /// from the parent's cgroup, not the target's. A reused spare turned
    /// every respawn into an instant SIGKILL until the respawn limit. A
    /// cgroup created after the kill, or joined by writing `cgroup.procs`,
    /// is not affected.
    cgroup_killed: std::collections::HashSet<ProcId>,
    /// Attribute adopted orphans to their instance by [`INSTANCE_ENV`]
    /// ([`ProcessTable::attribute_orphans`]).
    attribute_orphans: bool,
    /// Process-group mode: the descendants of each instance found outside
    /// its process group when it was signalled, as `(pid, start time)`
    /// ([`ProcessTable::remember_escapees`]). Once one is an adopted orphan
    /// it counts as part of that instance, whatever its environment says.
    escapees: BTreeMap<ProcId, Vec<(u32, u64)>>,
    /// The last spawn found `cgroup_base` gone and could not recreate it
    /// (logged once per change, not per spawn).
    cgroup_base_lost: bool,
    /// `clone3` (vfork-style, or into a cgroup) is known to fail on this
    /// kernel ([`crate::clone3`]), or was switched off by a test: set for
    /// good at its first "unsupported"; spawns then fork.
    clone3_off: bool,
    /// Instances born in their cgroup by `clone3` (the rest joined theirs
    /// between fork and exec).
    born_in_cgroup: u64,
    /// Instances started vfork-style (no copy of the page tables).
    vforked: u64,
    /// Removes the cgroups of reaped instances off this thread.
    remover: crate::cgroup::Remover,
}

fn nix_signal(sig: Signal) -> NixSignal {
    match sig {
        Signal::Int => NixSignal::SIGINT,
        Signal::Term => NixSignal::SIGTERM,
        Signal::Kill => NixSignal::SIGKILL,
    }
}

/// Runs in the forked child before exec: only async-signal-safe calls here
/// (no allocation, no locks, no logging).
fn child_setup() -> io::Result<()> {
    // SAFETY: setsid, sigaction (and the raw rt_sigaction syscall),
    // sigemptyset, sigprocmask, close_range, getrlimit and fcntl are all
    // async-signal-safe; the structs are plain C data on our stack.
    unsafe {
        // New session: the child leads its own session and process group,
        // so `killpg(pid)` reaches everything the command starts, and the
        // daemon's terminal (if any) cannot signal it.
        if libc::setsid() == -1 {
            return Err(io::Error::last_os_error());
        }
        // Handlers are reset by exec anyway, but *ignored* signals stay
        // ignored across exec: put every disposition back to the default.
        reset_signal_dispositions();
        // The signal mask survives exec too: empty it.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) == -1 {
            return Err(io::Error::last_os_error());
        }
        // Only stdin, stdout and stderr reach the command (issue 10, item 7).
        close_inherited_fds();
    }
    Ok(())
}

/// The soft `RLIMIT_NOFILE` the daemon started with, when it raised its
/// own (see [`raise_nofile`]): children get it back, so a program that
/// uses `select()` never sees descriptors past 1024.
static ORIGINAL_NOFILE: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Raise this process's soft `RLIMIT_NOFILE` to its hard limit: a daemon
/// with 1,000 entries holds an output pipe per entry (systemd does the
/// same for itself). Children get the original limit back.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain C struct out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let _ = ORIGINAL_NOFILE.set((lim.rlim_cur as u64, lim.rlim_max as u64));
    let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
    // SAFETY: plain C struct in-parameter.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_max as u64)
}

fn original_nofile() -> Option<(u64, u64)> {
    ORIGINAL_NOFILE.get().copied()
}

/// In the forked child, after [`child_setup`]: the readiness fd, the
/// original `RLIMIT_NOFILE`, the entry's rlimits and umask, and last its
/// credentials (groups, gid, uid: after setuid the others are not allowed).
fn apply_extras(
    ready: Option<(i32, i32)>,
    umask: Option<u32>,
    rlimits: &[(i32, u64, u64)],
    creds: Option<&Credentials>,
    nofile: Option<(u64, u64)>,
) -> io::Result<()> {
    let check = |rc: libc::c_int| if rc == -1 { Err(io::Error::last_os_error()) } else { Ok(()) };
    let lim = |v: u64| if v == u64::MAX { libc::RLIM_INFINITY } else { v as libc::rlim_t };
    // SAFETY: dup2, fcntl, setrlimit, umask, setgroups, setgid and setuid
    // are async-signal-safe; every buffer was allocated before the fork.
    unsafe {
        if let Some((fd, n)) = ready {
            if fd == n {
                check(libc::fcntl(fd, libc::F_SETFD, 0))?;
            } else {
                // dup2's copy has no close-on-exec flag.
                check(libc::dup2(fd, n))?;
            }
        }
        if let Some((soft, hard)) = nofile {
            let l = libc::rlimit { rlim_cur: lim(soft), rlim_max: lim(hard) };
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
        for &(resource, soft, hard) in rlimits {
            let l = libc::rlimit { rlim_cur: lim(soft), rlim_max: lim(hard) };
            check(libc::setrlimit(resource as _, &l))?;
        }
        if let Some(mask) = umask {
            libc::umask(mask as libc::mode_t);
        }
        if let Some(c) = creds {
            set_credentials(c)?;
        }
    }
    Ok(())
}

/// The child's groups, gid and uid, in that order, by raw system calls.
///
/// Why raw: glibc's `setgroups`, `setgid` and `setuid` apply the change to
/// every thread of the process (POSIX wants it process-wide), so they take
/// glibc's thread-list lock and signal the other threads. A vfork-style
/// child ([`crate::clone3::spawn`]) shares the daemon's memory, including
/// that list and lock: the wrapper could wait on a lock a daemon thread
/// holds. The kernel calls change the calling task alone, which is all the
/// child is (glibc's own `posix_spawn` uses them for the same reason).
///
/// # Safety
/// Only in the child, before exec.
#[cfg(target_os = "linux")]
unsafe fn set_credentials(c: &Credentials) -> io::Result<()> {
    let check = |rc: libc::c_long| if rc == -1 { Err(io::Error::last_os_error()) } else { Ok(()) };
    check(libc::syscall(libc::SYS_setgroups, c.groups.len(), c.groups.as_ptr()))?;
    check(libc::syscall(libc::SYS_setgid, c.gid))?;
    check(libc::syscall(libc::SYS_setuid, c.uid))
}

/// Other Unixes: no vfork-style spawn, the libc calls are safe after fork.
///
/// # Safety
/// Only in the child, before exec.
#[cfg(not(target_os = "linux"))]
unsafe fn set_credentials(c: &Credentials) -> io::Result<()> {
    let check = |rc: libc::c_int| if rc == -1 { Err(io::Error::last_os_error()) } else { Ok(()) };
    check(libc::setgroups(c.groups.len() as _, c.groups.as_ptr()))?;
    check(libc::setgid(c.gid))?;
    check(libc::setuid(c.uid))
}

/// Mark every descriptor above stderr close-on-exec, so a command gets only
/// fds 0, 1 and 2, whatever the daemon's launcher left open without
/// `O_CLOEXEC` (a socket, a lock file, a pipe a parent waits on to close).
/// Close-on-exec rather than close, because std's `Command` still needs its
/// own (close-on-exec) pipe that reports a failed `exec`.
///
/// One `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` call on Linux 5.11 and
/// later; elsewhere, or when the kernel refuses it, `fcntl(FD_CLOEXEC)` on
/// every number below the `RLIMIT_NOFILE` soft limit (capped at 65,536, the
/// cost of one syscall each; a descriptor above a lowered soft limit cannot
/// have been opened by this process anyway unless the limit was lowered
/// after opening it).
///
/// # Safety
/// Only for the forked child before exec: async-signal-safe calls only.
unsafe fn close_inherited_fds() {
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        let done = libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        );
        if done == 0 {
            return;
        }
    }
    let mut lim: libc::rlimit = std::mem::zeroed();
    let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
        lim.rlim_cur.min(65_536) as libc::c_int
    } else {
        1024
    };
    for fd in 3..max {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// Linux: every signal the kernel knows, real-time ones included, through
/// the raw `rt_sigaction` syscall, because glibc's `sigaction` refuses the
/// two real-time signals it reserves (32, 33), and those can arrive ignored
/// from whoever started the daemon (seen in practice: signal 32 ignored).
///
/// # Safety
/// Only for the forked child before exec.
#[cfg(target_os = "linux")]
unsafe fn reset_signal_dispositions() {
    // Kernel `sigset_t` size: _NSIG / 8 (MIPS has 128 signals, others 64).
    #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
    const KERNEL_SIGSET_BYTES: usize = 16;
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
    const KERNEL_SIGSET_BYTES: usize = 8;
    // The kernel's `struct sigaction` with SIG_DFL (0), no flags, an empty
    // mask and no restorer is all zero bytes, whatever the field order of
    // the architecture; this buffer is larger than it on every one.
    let dfl = [0u64; 8];
    for sig in 1..=(KERNEL_SIGSET_BYTES * 8) as libc::c_long {
        if sig == libc::SIGKILL as libc::c_long || sig == libc::SIGSTOP as libc::c_long {
            continue;
        }
        // Failure (a number past SIGRTMAX) is harmless.
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            dfl.as_ptr(),
            std::ptr::null_mut::<libc::c_void>(),
            KERNEL_SIGSET_BYTES,
        );
    }
}

/// Other Unixes: the classic signals through `sigaction`.
///
/// # Safety
/// Only for the forked child before exec.
#[cfg(not(target_os = "linux"))]
unsafe fn reset_signal_dispositions() {
    let mut dfl: libc::sigaction = std::mem::zeroed();
    dfl.sa_sigaction = libc::SIG_DFL;
    libc::sigemptyset(&mut dfl.sa_mask);
    for sig in 1..=31 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // Failure (a signal number this platform lacks) is harmless.
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
    }
}

fn exit_status(ws: WaitStatus) -> Option<ExitStatus> {
    match ws {
        WaitStatus::Exited(_, code) => Some(ExitStatus::Code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(ExitStatus::Signaled(sig as i32)),
        // StillAlive (WNOHANG), or stop/continue reports we did not ask for.
        _ => None,
    }
}

/// Has this child exited? Looks without reaping (`WNOWAIT`), so the zombie
/// keeps reserving its pid and pgid until we decide to reap it.
fn peek_exit(pid: u32) -> Result<Option<ExitStatus>, Errno> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::Pid(Pid::from_raw(pid as i32)), flags) {
            Ok(ws) => return Ok(exit_status(ws)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Our own children, from every thread's `children` list (Linux with
/// CONFIG_PROC_CHILDREN); `None` when the kernel does not offer it.
#[cfg(target_os = "linux")]
fn own_children() -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).ok()?;
        out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    Some(out)
}

/// At most this many descendants are looked at below one instance by
/// [`escaped_descendants`]: a fork bomb must not make a stop a scan without
/// end.
const DESCENDANT_SCAN_LIMIT: usize = 4096;

/// The children of `pid`, from every thread's `children` list (empty when
/// it is gone, or the kernel does not offer the lists).
///
/// Why the two paths: a stop looks below every instance it signals, so at
/// 1,000 entries this runs 1,000 times per signal (issue 10: containment
/// must not slow a stop down by more than 10%). Listing the threads took
/// as long as the rest of the stop; a single-threaded process (a shell, a
/// `sleep`: most entries), told by the link count of its `task` directory
/// (2 + threads on procfs), needs one read of its own list.
#[cfg(target_os = "linux")]
fn children_of(pid: u32) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let parse = |list: &str| -> Vec<u32> {
        list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect()
    };
    let task = format!("/proc/{pid}/task");
    let Ok(meta) = std::fs::metadata(&task) else { return Vec::new() };
    if meta.nlink() <= 3 {
        // One open, one read (no size query, no second read for the end
        // of file) for the usual short list; a longer one is read whole.
        use std::io::Read;
        let path = format!("{task}/{pid}/children");
        let Ok(mut file) = std::fs::File::open(&path) else { return Vec::new() };
        let mut buf = [0u8; 512];
        return match file.read(&mut buf) {
            Ok(n) if n < buf.len() => parse(&String::from_utf8_lossy(&buf[..n])),
            Ok(_) => std::fs::read_to_string(&path).map(|l| parse(&l)).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
    }
    let Ok(tasks) = std::fs::read_dir(&task) else { return Vec::new() };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(parse(&list));
        }
    }
    out
}

/// Live descendants of `root` outside process group `pgid`, as `(pid,
/// start time)`, walking every thread's `children` list down the tree. A
/// process is taken only if its parent is still the one whose list named
/// it, so a pid reused between the two reads is not.
#[cfg(target_os = "linux")]
fn escaped_descendants(root: u32, pgid: u32) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    let mut looked = 0;
    while let Some(parent) = todo.pop() {
        for child in children_of(parent) {
            looked += 1;
            if looked > DESCENDANT_SCAN_LIMIT {
                tracing::debug!(
                    root,
                    "more than {DESCENDANT_SCAN_LIMIT} descendants; not all looked at"
                );
                return out;
            }
            let Some(s) = proc_stat(child) else { continue };
            if s.ppid != parent || s.is_dead() {
                continue;
            }
            if s.pgrp != pgid {
                out.push((child, s.start));
            }
            todo.push(child);
        }
    }
    out
}

/// Process groups among `pgids` with a live member other than the leader,
/// from one scan of all of `/proc`.
#[cfg(target_os = "linux")]
fn scan_all_groups(pgids: &BTreeSet<u32>) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return found };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(s) = proc_stat(pid) {
            if pgids.contains(&s.pgrp) && pid != s.pgrp && !s.is_dead() {
                found.insert(s.pgrp);
            }
        }
    }
    found
}

/// `waitpid(pid, flags)` retried on EINTR. `Ok(None)`: still running.
/// `Err(ECHILD)`: the pid is not (or no longer) our child.
fn wait_one(pid: u32, flags: Option<WaitPidFlag>) -> Result<Option<ExitStatus>, Errno> {
    loop {
        match waitpid(Pid::from_raw(pid as i32), flags) {
            Ok(ws) => return Ok(exit_status(ws)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

impl ProcessTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table for a daemon: makes this process a child subreaper, so the
    /// leftovers of a command whose shell exited become our children (see
    /// the module doc). Falls back to [`ProcessTable::new`]'s `/proc` scan
    /// where the kernel does not support it.
    pub fn with_subreaper() -> Self {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes a plain integer.
            let ok = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0;
            let subreaper = ok && own_children().is_some();
            if !subreaper {
                tracing::warn!(
                    "cannot become a child subreaper; scanning /proc for leftovers instead"
                );
            }
            ProcessTable { subreaper, ..Self::default() }
        }
        #[cfg(not(target_os = "linux"))]
        Self::default()
    }

    /// Contain every later spawn in its own cgroup v2 where possible (see
    /// [`crate::cgroup`]); returns the mode now in force.
    pub fn enable_cgroups(&mut self) -> Containment {
        let mode = cgroup::setup();
        match &mode {
            Containment::Cgroup { base } => match cgroup::Base::open(base) {
                Ok(b) => self.cgroup_base = Some(b),
                Err(e) => {
                    return Containment::ProcessGroup {
                        reason: format!("cannot open {}: {e}", base.display()),
                    }
                }
            },
            Containment::ProcessGroup { .. } => {}
        }
        mode
    }

    /// Whether later spawns in cgroup mode try `clone3` with
    /// `CLONE_INTO_CGROUP` first (the default) or go straight to fork and
    /// join-before-exec (for tests of that fallback).
    pub fn set_clone_into_cgroup(&mut self, on: bool) {
        self.clone3_off = !on;
    }

    /// How many instances were born in their cgroup by `clone3`.
    pub fn born_in_cgroup(&self) -> u64 {
        self.born_in_cgroup
    }

    /// How many instances were started vfork-style (`clone3` with
    /// `CLONE_VM | CLONE_VFORK`, see [`crate::clone3::spawn`]), in either
    /// containment mode.
    pub fn vforked(&self) -> u64 {
        self.vforked
    }

    /// Spawn through `clone3`: vfork-style where [`clone3::VFORK_SPAWN`],
    /// and into `cg` with `CLONE_INTO_CGROUP` when given. `Ok(None)`: the
    /// kernel refused (nothing started; the caller forks instead).
    ///
    /// [`clone3::VFORK_SPAWN`]: crate::clone3::VFORK_SPAWN
    #[allow(clippy::too_many_arguments)]
    fn spawn_into(
        &mut self,
        spec: &SpawnSpec,
        cg: Option<&Cgroup>,
        output: Option<std::os::fd::BorrowedFd<'_>>,
        ready: Option<(i32, i32)>,
        umask: Option<u32>,
        rlimits: &[(i32, u64, u64)],
        creds: Option<&Credentials>,
        nofile: Option<(u64, u64)>,
    ) -> io::Result<Option<u32>> {
        use crate::clone3::{self, Spawned};
        let dir = match cg.map(Cgroup::open).transpose() {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(id = %spec.id, error = %e, "cannot open the cgroup; forking");
                return Ok(None);
            }
        };
        let args = [std::ffi::OsStr::new("-c"), std::ffi::OsStr::new(&spec.command)];
        let prep = clone3::Prepared::new(SHELL, &args, &spec.env, spec.cwd.as_deref(), output)?;
        let mut setup = || {
            child_setup()?;
            apply_extras(ready, umask, rlimits, creds, nofile)
        };
        // SAFETY: child_setup and apply_extras make async-signal-safe
        // calls only; everything they use was allocated before the clone.
        match unsafe { clone3::spawn(&prep, dir.as_ref(), &mut setup) } {
            Spawned::Pid(pid) => {
                if cg.is_some() {
                    self.born_in_cgroup += 1;
                }
                if clone3::VFORK_SPAWN {
                    self.vforked += 1;
                }
                Ok(Some(pid))
            }
            Spawned::Failed(e) => Err(e),
            Spawned::Refused(e) => {
                if clone3::unsupported(&e) {
                    self.clone3_off = true;
                    tracing::info!(
                        "clone3 is not supported here ({e}); children are forked and join their \
                         cgroup (if any) between fork and exec"
                    );
                } else {
                    tracing::debug!(id = %spec.id, error = %e, "clone3 into the cgroup refused; forking");
                }
                Ok(None)
            }
        }
    }

    /// A new cgroup for instance `id` under the daemon's base. When the
    /// base itself has vanished (removed by an operator or a tool that
    /// cleans up cgroups), it is noticed, logged and recreated; if it cannot
    /// be, this spawn falls back to process-group containment, logged once
    /// until the base is back.
    fn instance_cgroup(&mut self, id: ProcId) -> Option<Cgroup> {
        let base = self.cgroup_base.as_ref()?;
        let name = id.0.to_string();
        match Cgroup::create(base, &name) {
            Ok(cg) => {
                if std::mem::take(&mut self.cgroup_base_lost) {
                    tracing::warn!("cgroup {} is usable again", base.dir.display());
                }
                return Some(cg);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !base.dir.exists() => {}
            Err(e) => {
                tracing::debug!(id = %id, error = %e, "no cgroup for this instance");
                return None;
            }
        }
        let dir = base.dir.clone();
        if !self.cgroup_base_lost {
            tracing::warn!("the daemon's cgroup {} has vanished; recreating it", dir.display());
        }
        // Spare cgroups were below the vanished directory: gone with it.
        self.spare_cgroups.clear();
        let recreated = std::fs::create_dir(&dir)
            .and_then(|()| cgroup::Base::open(&dir))
            .and_then(|base| Cgroup::create(&base, &name).map(|cg| (base, cg)));
        match recreated {
            Ok((base, cg)) => {
                self.cgroup_base = Some(base);
                self.cgroup_base_lost = false;
                Some(cg)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.cgroup_base_lost, true) {
                    tracing::error!(
                        "cannot recreate cgroup {}: {e}; new instances are contained by process \
                         group only until it is back",
                        dir.display()
                    );
                }
                None
            }
        }
    }

    /// A cgroup for a new instance: a spare one (see
    /// [`ProcessTable::release`]) where there is one, else a new one.
    /// Also says whether it is a spare.
    fn cgroup_for_spawn(&mut self, id: ProcId) -> (Option<Cgroup>, bool) {
        if self.cgroup_base.is_some() {
            if let Some(cg) = self.spare_cgroups.pop() {
                return (Some(cg), true);
            }
        }
        (self.instance_cgroup(id), false)
    }

    /// SIGKILL every process in every instance cgroup at once
    /// (`cgroup.kill` on the base, recursive); returns the members listed
    /// just before (`None` outside cgroup mode). The spares and the live
    /// instances' cgroups are never reused after this (see
    /// `cgroup_killed`).
    pub fn kill_cgroup_tree(&mut self) -> Option<Vec<i32>> {
        let base = self.cgroup_base.as_ref()?.dir.clone();
        let members = cgroup::tree_members(&base);
        cgroup::tree_signal(&base, libc::SIGKILL);
        self.cgroup_killed.extend(self.cgroups.keys().copied());
        for cg in std::mem::take(&mut self.spare_cgroups) {
            self.remover.remove(cg);
        }
        Some(members)
    }

    /// Remove the daemon's cgroup directory (at exit, once all is reaped).
    pub fn remove_cgroup_base(&mut self) {
        for cg in std::mem::take(&mut self.spare_cgroups) {
            self.remover.remove(cg);
        }
        self.remover.finish();
        for (_, cg) in std::mem::take(&mut self.cgroups) {
            cg.remove();
        }
        if let Some(base) = self.cgroup_base.take() {
            if let Err(e) = std::fs::remove_dir(&base.dir) {
                tracing::warn!("cannot remove {}: {e}", base.dir.display());
            }
        }
    }

    /// The instance's cgroup still has a live member. An instance whose
    /// cgroup held its leader alone at its last signal is not read again
    /// (see [`ProcessTable::signal`]).
    fn cgroup_occupied(&self, id: ProcId) -> bool {
        !self.solo.contains(&id) && self.cgroups.get(&id).is_some_and(|cg| !cg.members().is_empty())
    }

    /// Groups among `pgids` that still have a live member besides the
    /// leader. Also reaps dead children that are neither in the table nor
    /// claimed by their spawner (subreaper mode; see the module doc).
    #[cfg(target_os = "linux")]
    fn groups_with_members(&self, pgids: &BTreeSet<u32>) -> BTreeSet<u32> {
        if !self.subreaper {
            return if pgids.is_empty() { BTreeSet::new() } else { scan_all_groups(pgids) };
        }
        let leaders: BTreeSet<u32> = self.live.values().map(|c| c.pid).collect();
        let mut found = BTreeSet::new();
        let Some(children) = own_children() else { return scan_all_groups(pgids) };
        let own_session = nix::unistd::getsid(None).map(|s| s.as_raw() as u32).unwrap_or(0);
        for pid in children.into_iter().filter(|p| !leaders.contains(p)) {
            let Some(s) = proc_stat(pid) else { continue };
            if s.is_dead() {
                // Not in the table: an orphan adopted from one of our
                // commands, or from a hook's or fence command's group (in
                // our own session: the group is killed, but its spawner
                // waits for the shell alone). Nobody else reaps it, so reap
                // it here, unless it is a child whose spawner claimed it to
                // wait for it itself (see `crate::claimed`).
                crate::claimed::reap_unclaimed(pid, || {
                    let _ = wait_one(pid, Some(WaitPidFlag::WNOHANG));
                });
            } else if s.session != own_session && pgids.contains(&s.pgrp) {
                // (A live process of our own session was started by other
                // code in this process: not a member of a command's group.)
                found.insert(s.pgrp);
            }
        }
        found
    }

    /// Adopted orphans: processes re-parented to this subreaper that came
    /// from our commands' sessions but belong to none of our live process
    /// groups (a descendant that left its group with `setsid` and whose
    /// parent died). Without cgroups nothing else stops them, so the daemon
    /// reports them in status and stops them at exit. Empty unless this is a
    /// subreaper table.
    #[cfg(target_os = "linux")]
    pub fn orphans(&self) -> Vec<u32> {
        if !self.subreaper {
            return Vec::new();
        }
        let leaders: BTreeSet<u32> = self.live.values().map(|c| c.pid).collect();
        let own_session = nix::unistd::getsid(None).map(|s| s.as_raw() as u32).unwrap_or(0);
        let Some(children) = own_children() else { return Vec::new() };
        children
            .into_iter()
            .filter(|p| !leaders.contains(p))
            .filter(|&p| {
                proc_stat(p).is_some_and(|s| {
                    s.session != own_session && !s.is_dead() && !leaders.contains(&s.pgrp)
                })
            })
            .collect()
    }

    #[cfg(not(target_os = "linux"))]
    pub fn orphans(&self) -> Vec<u32> {
        Vec::new()
    }

    /// In process-group mode, count an adopted orphan (see
    /// [`ProcessTable::orphans`]) as part of the instance named by its
    /// [`INSTANCE_ENV`]: the instance stays alive (lingering) while such an
    /// orphan lives, and every signal to the instance reaches it too, so a
    /// stop escalates until it is gone, as in cgroup mode.
    ///
    /// Why only orphans: a descendant that left its process group
    /// (`setsid cmd &`) is re-parented to this subreaper once its parent
    /// dies, which a stop of the group brings about. Being our unreaped
    /// child, its pid cannot be reused while we signal it; a descendant
    /// whose parent still lives is not ours to reach by pid (cgroup mode
    /// reaches it). `mosha` turns this on; the variable alone could be
    /// forged by a command, but an orphan is ours whatever it says.
    pub fn attribute_orphans(&mut self, on: bool) {
        self.attribute_orphans = on;
    }

    /// Remember the descendants of instance `id` (leader `pid`) that are
    /// outside its process group, by pid and start time, so that each
    /// counts as part of the instance once it is an adopted orphan (see
    /// [`ProcessTable::orphans_by_instance`]), whatever its environment
    /// says: a process that cleared it (`env -i setsid cmd &`) carries no
    /// [`INSTANCE_ENV`], yet the stop that kills its parent must reach it.
    ///
    /// Why at a signal: until its parent dies such a process is not ours
    /// to signal by pid, and once it has died nothing tells whose it was.
    /// Each signal of a stop looks again (a process that left the group
    /// after the previous one is found at the next), and the list goes
    /// with the instance. In both daemons (`clinit -d` too), since only an
    /// instance being signalled is looked at: it lingers while such an
    /// orphan lives, as it would in its cgroup. What this misses: a
    /// process whose parent died before any signal to its instance (only
    /// listed as an orphan, and stopped at exit).
    #[cfg(target_os = "linux")]
    fn remember_escapees(&mut self, id: ProcId, pid: u32) {
        let found = escaped_descendants(pid, pid);
        if found.is_empty() {
            return;
        }
        let list = self.escapees.entry(id).or_default();
        for e in found {
            if !list.contains(&e) {
                list.push(e);
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn remember_escapees(&mut self, _id: ProcId, _pid: u32) {}

    /// Adopted orphans by the instance they belong to: one a stop saw
    /// below the instance ([`ProcessTable::remember_escapees`], same pid
    /// and start time), else the one their environment names (only with
    /// [`ProcessTable::attribute_orphans`] and outside cgroup mode).
    fn orphans_by_instance(&self) -> BTreeMap<ProcId, Vec<u32>> {
        let mut out: BTreeMap<ProcId, Vec<u32>> = BTreeMap::new();
        let by_marker = self.attribute_orphans && self.cgroup_base.is_none();
        if !by_marker && self.escapees.is_empty() {
            return out;
        }
        let seen: std::collections::HashMap<u32, (u64, ProcId)> = self
            .escapees
            .iter()
            .flat_map(|(&id, list)| list.iter().map(move |&(pid, start)| (pid, (start, id))))
            .collect();
        let prefix = format!("{INSTANCE_ENV}=");
        for pid in self.orphans() {
            // Our unreaped child: its pid and start time are its own, so
            // a match is the very process the stop saw.
            if let Some(&(start, id)) = seen.get(&pid) {
                if self.live.contains_key(&id) && crate::generations::start_time(pid) == Some(start)
                {
                    out.entry(id).or_default().push(pid);
                    continue;
                }
            }
            if !by_marker {
                continue;
            }
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
            let id = environ
                .split(|&b| b == 0)
                .filter_map(|v| v.strip_prefix(prefix.as_bytes()))
                .find_map(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
            if let Some(id) = id.map(ProcId).filter(|id| self.live.contains_key(id)) {
                out.entry(id).or_default().push(pid);
            }
        }
        out
    }

    /// Stop the adopted orphans (see [`ProcessTable::orphans`]) at exit:
    /// SIGTERM, then SIGKILL after [`ORPHAN_GRACE`], and reap them. They are
    /// our (adopted, unreaped) children, so their pids cannot be reused
    /// under us. Returns their pids.
    pub fn stop_orphans(&mut self) -> Vec<u32> {
        let orphans = self.orphans();
        for &pid in &orphans {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), NixSignal::SIGTERM);
        }
        let deadline = Instant::now() + ORPHAN_GRACE;
        let mut left = orphans.clone();
        while !left.is_empty() {
            left.retain(|&pid| {
                wait_one(pid, Some(WaitPidFlag::WNOHANG)).is_ok_and(|s| s.is_none())
            });
            if Instant::now() >= deadline {
                for &pid in &left {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), NixSignal::SIGKILL);
                    let _ = wait_one(pid, None);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        orphans
    }

    /// Without `/proc`, assume a group ends with its leader.
    #[cfg(not(target_os = "linux"))]
    fn groups_with_members(&self, _: &BTreeSet<u32>) -> BTreeSet<u32> {
        BTreeSet::new()
    }

    /// Start `/bin/sh -c COMMAND` in a new session (pgid == pid), with signal
    /// dispositions reset to default and an empty signal mask, stdin from
    /// `/dev/null`, stdout/stderr inherited, the daemon's environment plus
    /// `spec.env`, and `spec.cwd` if given. Returns the pid.
    pub fn spawn(&mut self, spec: &SpawnSpec) -> Result<u32, SpawnError> {
        self.spawn_with(spec, ChildExtras::default())
    }

    /// [`ProcessTable::spawn`] with an output pipe, a readiness fd,
    /// credentials, umask and resource limits ([`ChildExtras`]). The
    /// working directory (`spec.cwd`) is entered before the credentials
    /// change, as the daemon's user.
    pub fn spawn_with(&mut self, spec: &SpawnSpec, extras: ChildExtras) -> Result<u32, SpawnError> {
        if let Some(&Child { pid, .. }) = self.live.get(&spec.id) {
            return Err(SpawnError::DuplicateId {
                id: spec.id,
                command: spec.command.clone(),
                pid,
            });
        }
        let ChildExtras { output, ready_fd, umask, rlimits, creds } = extras;
        let ready_raw = ready_fd.as_ref().map(|(fd, n)| (std::os::fd::AsRawFd::as_raw_fd(fd), *n));
        let nofile = crate::process::original_nofile();
        let (mut cg, spare) = self.cgroup_for_spawn(spec.id);
        let io_error = |source| SpawnError::Io {
            id: spec.id,
            command: spec.command.clone(),
            cwd: spec.cwd.clone(),
            source,
        };
        // Vfork-style, and born in its cgroup, where the kernel allows (see
        // crate::clone3); else std's fork below.
        if !self.clone3_off && (cg.is_some() || crate::clone3::VFORK_SPAWN) {
            let c = cg.as_ref();
            let out = output.as_ref().map(std::os::fd::AsFd::as_fd);
            let born =
                self.spawn_into(spec, c, out, ready_raw, umask, &rlimits, creds.as_ref(), nofile);
            match born {
                Ok(Some(pid)) => {
                    // The child has its copies; ours close here.
                    drop((ready_fd, output));
                    if let Some(cg) = cg {
                        self.cgroups.insert(spec.id, cg);
                    }
                    self.live.insert(spec.id, Child { pid, leader_exited: false });
                    self.by_pid.insert(pid, spec.id);
                    tracing::debug!(id = %spec.id, pid, command = %spec.command, "spawned (clone3)");
                    return Ok(pid);
                }
                Ok(None) if spare => {
                    // A spare cgroup refused (removed behind our back?):
                    // give up the spares, and fork into a new one.
                    let refused = cg.take().into_iter();
                    for old in refused.chain(std::mem::take(&mut self.spare_cgroups)) {
                        self.remover.remove(old);
                    }
                    cg = self.instance_cgroup(spec.id);
                }
                Ok(None) => {}
                Err(source) => {
                    if let Some(c) = cg {
                        c.remove();
                    }
                    return Err(io_error(source));
                }
            }
        }
        let mut cmd = Command::new(SHELL);
        cmd.arg("-c")
            .arg(&spec.command)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        match output {
            Some(fd) => {
                let err = fd.try_clone().map_err(io_error)?;
                cmd.stdout(Stdio::from(fd)).stderr(Stdio::from(err));
            }
            None => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
        }
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        let procs = cg.as_ref().and_then(Cgroup::procs_path);
        // SAFETY: child_setup and cgroup::join only make async-signal-safe
        // calls; `procs` was allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                child_setup()?;
                if let Some(procs) = &procs {
                    // Failure leaves the process-group containment.
                    let _ = cgroup::join(procs);
                }
                apply_extras(ready_raw, umask, &rlimits, creds.as_ref(), nofile)
            });
        }
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(source) => {
                if let Some(cg) = cg {
                    cg.remove();
                }
                return Err(SpawnError::Io {
                    id: spec.id,
                    command: spec.command.clone(),
                    cwd: spec.cwd.clone(),
                    source,
                });
            }
        };
        // The child has its copies; ours close here.
        drop(ready_fd);
        if let Some(cg) = cg {
            self.cgroups.insert(spec.id, cg);
        }
        let pid = child.id();
        // Dropping a std Child neither waits nor kills (and we asked for no
        // pipes, so it holds no fds): from here on we own the pid and reap
        // it ourselves with waitpid.
        drop(child);
        self.live.insert(spec.id, Child { pid, leader_exited: false });
        self.by_pid.insert(pid, spec.id);
        tracing::debug!(id = %spec.id, pid, command = %spec.command, "spawned");
        Ok(pid)
    }

    /// Signal the whole process group of a live (not yet reaped) child, so a
    /// command's own children are reached too. Returns `Ok(true)` if the
    /// signal was sent, `Ok(false)` if nothing was signalled: the id is
    /// unknown or already reaped (its pid may belong to someone else by now,
    /// so it is never signalled), or the group is already empty (ESRCH).
    pub fn signal(&mut self, id: ProcId, sig: Signal) -> Result<bool, SignalError> {
        let Some(&Child { pid, leader_exited }) = self.live.get(&id) else {
            return Ok(false);
        };
        // Not yet reaped by us: even if it already died it is a zombie that
        // keeps pid and pgid reserved, so this cannot hit a stranger; the
        // signal reaches whatever is left of its group.
        // Members that left the process group are reached through the
        // instance's cgroup (see crate::cgroup).
        //
        // A stop reads `cgroup.procs` once: when the list held the leader
        // alone, its exit is judged by process group only (the leftovers
        // of a leader that forks after this signal are its process group's
        // members, found without the cgroup). The cost: a process that
        // both starts after this signal and leaves the group with `setsid`
        // before the leader exits is missed; it stays in the instance's
        // cgroup, which then cannot be removed (logged at debug level).
        let (in_cgroup, listed) = match self.cgroups.get(&id) {
            // The leader is signalled with its process group below.
            Some(cg) => {
                if sig == Signal::Kill {
                    self.cgroup_killed.insert(id);
                }
                cg.signal_listing(nix_signal(sig) as libc::c_int, Some(pid as i32))
            }
            None => (false, None),
        };
        // Process-group mode: what left the group below the instance's
        // processes is remembered now, while its parents still live, so
        // that it stays part of the instance once the signal has made it
        // an orphan of ours (remember_escapees). A leader that has exited
        // has no children left: they are ours already.
        if self.subreaper && !leader_exited && !self.cgroups.contains_key(&id) {
            self.remember_escapees(id, pid);
        }
        // Its adopted orphans (process-group mode, see attribute_orphans):
        // our unreaped children, so their pids are still theirs.
        let mut orphans_signalled = false;
        if let Some(orphans) = self.orphans_by_instance().remove(&id) {
            for orphan in orphans {
                orphans_signalled |=
                    nix::sys::signal::kill(Pid::from_raw(orphan as i32), nix_signal(sig)).is_ok();
            }
        }
        match listed {
            Some(members) if members == [pid as i32] => {
                self.solo.insert(id);
            }
            Some(_) => {
                self.solo.remove(&id);
            }
            None => {}
        }
        match killpg(Pid::from_raw(pid as i32), nix_signal(sig)) {
            Ok(()) => {
                tracing::debug!(%id, pid, signal = %sig, "signalled process group");
                Ok(true)
            }
            Err(Errno::ESRCH) => Ok(in_cgroup || orphans_signalled),
            Err(source) => Err(SignalError { id, pid, signal: sig, source }),
        }
    }

    /// Non-blocking: report children whose own process ended (reaping it
    /// unless members of its group remain, see the module doc) and lingering
    /// groups whose last member is gone. Reaped children leave the table.
    ///
    /// Finding the exits: while no zombie is held for a lingering group,
    /// the kernel names exited children one at a time
    /// (`waitid(P_ALL, WNOHANG | WNOWAIT)`, which looks without reaping):
    /// instead of one `waitid` per live child on every SIGCHLD (1,000 calls
    /// per respawn at 1,000 entries). The exit found is settled (reaped, or
    /// held as lingering) before the next look, since the kernel names the
    /// same zombie until it is reaped. When a second exit follows (a burst:
    /// a stop of many), a held zombie, or one that is not ours (an adopted
    /// orphan, another part of the process's child), every live child is
    /// looked at by pid, as before, and settled with one look at the groups.
    pub fn reap(&mut self) -> Vec<Reaped> {
        let mut out = Vec::new();
        if self.held == 0 {
            match self.next_exit() {
                NextExit::Ours(id, pid, status) => {
                    self.settle(vec![(id, pid, status)], Vec::new(), &mut out);
                    // A second exit is a burst (a stop): one scan by pid
                    // and one look at the groups settle all of them, where
                    // one look per exit would cost a read of every child.
                    if self.held == 0 && matches!(self.next_exit(), NextExit::Nothing) {
                        return out;
                    }
                }
                // No zombie at all: nothing else to do (a dead adopted
                // orphan would be a zombie child too).
                NextExit::Nothing => return out,
                NextExit::Other => {}
            }
        }
        let mut exited = Vec::new();
        for (&id, child) in &self.live {
            if child.leader_exited {
                continue;
            }
            match peek_exit(child.pid) {
                Ok(None) => {}
                Ok(Some(status)) => exited.push((id, child.pid, status)),
                Err(e) => {
                    // ECHILD: someone else reaped it. It is gone either way.
                    tracing::warn!(%id, pid = child.pid, error = %e, "child reaped elsewhere; exit status lost");
                    exited.push((id, child.pid, LOST_STATUS));
                }
            }
        }
        let lingering_before: Vec<(ProcId, u32)> =
            self.live.iter().filter(|(_, c)| c.leader_exited).map(|(&id, c)| (id, c.pid)).collect();
        if exited.is_empty() && lingering_before.is_empty() && !self.subreaper {
            return out;
        }
        self.settle(exited, lingering_before, &mut out);
        out
    }

    /// The exited child the kernel names first, looked at without reaping.
    fn next_exit(&self) -> NextExit {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let ws = loop {
            match waitid(Id::All, flags) {
                Ok(ws) => break ws,
                Err(Errno::EINTR) => continue,
                // No child at all while the table has some: reaped behind
                // our back (SIGCHLD ignored); the scan by pid says so.
                Err(Errno::ECHILD) if self.live.is_empty() => return NextExit::Nothing,
                Err(_) => return NextExit::Other,
            }
        };
        let Some(pid) = ws.pid() else { return NextExit::Nothing };
        let pid = pid.as_raw() as u32;
        let ours =
            self.by_pid.get(&pid).filter(|id| self.live.get(id).is_some_and(|c| !c.leader_exited));
        match (ours, exit_status(ws)) {
            (Some(&id), Some(status)) => NextExit::Ours(id, pid, status),
            _ => NextExit::Other,
        }
    }

    /// Judge exited leaders (lingering or gone) and lingering groups
    /// (gone?) with one look at the groups' members, and record the result.
    fn settle(
        &mut self,
        exited: Vec<(ProcId, u32, ExitStatus)>,
        lingering_before: Vec<(ProcId, u32)>,
        out: &mut Vec<Reaped>,
    ) {
        // In subreaper mode this also reaps dead adopted orphans, which is
        // why the by-pid scan runs it on every call.
        let pgids =
            exited.iter().map(|e| e.1).chain(lingering_before.iter().map(|l| l.1)).collect();
        let occupied = self.groups_with_members(&pgids);
        let orphaned = self.orphans_by_instance();
        for (id, pid, status) in exited {
            let lingering =
                occupied.contains(&pid) || self.cgroup_occupied(id) || orphaned.contains_key(&id);
            if lingering {
                if let Some(c) = self.live.get_mut(&id) {
                    c.leader_exited = true;
                    self.held += 1;
                }
            } else {
                self.release(id);
            }
            tracing::debug!(%id, pid, %status, lingering, "child exited");
            out.push(Reaped::Exited { id, pid, status, lingering });
        }
        for (id, pid) in lingering_before {
            if !occupied.contains(&pid) && !self.cgroup_occupied(id) && !orphaned.contains_key(&id)
            {
                self.release(id);
                out.push(Reaped::GroupGone { id, pid });
            }
        }
    }

    /// Reap an exited child's zombie and forget it: its pid is never
    /// signalled again.
    ///
    /// Its cgroup becomes a spare for a later spawn when it was just read
    /// and found empty ([`ProcessTable::cgroup_occupied`] reads it unless
    /// the instance is `solo`, and the caller releases only an instance
    /// whose cgroup it found empty); otherwise it is removed (an `rmdir`
    /// fails on a cgroup that still has a member, so nothing escapes).
    fn release(&mut self, id: ProcId) {
        if let Some(child) = self.live.remove(&id) {
            self.by_pid.remove(&child.pid);
            let read_empty = !self.solo.remove(&id);
            if child.leader_exited {
                self.held -= 1;
            }
            if let Err(e) = wait_one(child.pid, Some(WaitPidFlag::WNOHANG)) {
                tracing::debug!(%id, pid = child.pid, error = %e, "reaping an exited child");
            }
            self.escapees.remove(&id);
            let killed = self.cgroup_killed.remove(&id);
            if let Some(cg) = self.cgroups.remove(&id) {
                if read_empty && !killed && self.spare_cgroups.len() < SPARE_CGROUPS {
                    self.spare_cgroups.push(cg);
                } else {
                    self.remover.remove(cg);
                }
            }
        }
    }

    /// Children whose own process has exited but whose group lingers.
    pub fn lingering(&self) -> usize {
        self.live.values().filter(|c| c.leader_exited).count()
    }

    /// The pid (== pgid) of a live child.
    pub fn pid(&self, id: ProcId) -> Option<u32> {
        self.live.get(&id).map(|c| c.pid)
    }

    /// Number of live (not yet reaped) children.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Live children's ids, in id order.
    pub fn ids(&self) -> impl Iterator<Item = ProcId> + '_ {
        self.live.keys().copied()
    }

    /// Last resort on daemon exit: SIGKILL every live process group, then
    /// reap them all, lingering group members included. A SIGKILLed child is
    /// normally reapable at once; the
    /// wait is nevertheless bounded by [`KILL_REAP_TIMEOUT`] so a process
    /// stuck in uninterruptible sleep cannot keep the daemon from exiting
    /// (such a child stays in the table). Returns what was reaped.
    pub fn kill_all_and_reap(&mut self) -> Vec<Reaped> {
        let ids: Vec<ProcId> = self.live.keys().copied().collect();
        for id in ids {
            if let Err(e) = self.signal(id, Signal::Kill) {
                tracing::warn!(error = %e, "SIGKILL at exit failed");
            }
        }
        let deadline = Instant::now() + KILL_REAP_TIMEOUT;
        let mut reaped = self.reap();
        let mut pause = Duration::from_millis(1);
        while !self.live.is_empty() && Instant::now() < deadline {
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(50));
            reaped.extend(self.reap());
        }
        for (id, child) in &self.live {
            let pid = child.pid;
            tracing::error!(%id, pid, "child survived SIGKILL; giving up on reaping it");
        }
        reaped
    }
}
