//! Spawning a command straight into its cgroup: `clone3(2)` with
//! `CLONE_INTO_CGROUP` (Linux 5.7+), as systemd does since v245.
//!
//! Why: the other way, the forked child writes `0` to its cgroup's
//! `cgroup.procs` before `exec`. Until that write it runs in the daemon's
//! cgroup, and a migration is a costly step for the kernel (it takes the
//! cgroup write lock of the whole hierarchy). With `CLONE_INTO_CGROUP` the
//! kernel creates the process inside the target cgroup: there is no moment
//! when it is anywhere else, and no migration.
//!
//! Rust's `std::process::Command` cannot call `clone3`, so this module does
//! what `Command::spawn` does, in the same order: everything the child
//! needs (argument and environment strings, `/dev/null`, the cgroup's
//! descriptor, a close-on-exec pipe that reports a failed `exec`) is made
//! before the clone; the child then only makes async-signal-safe calls:
//! `dup2` of stdin/stdout/stderr, `chdir`, the caller's setup (new
//! session, signals, descriptors, limits, credentials), `execve`. When any
//! of them fails it writes its `errno` to the pipe and exits 127; the
//! parent reads the pipe until it closes (the `exec` succeeded) or holds an
//! `errno` (then it reaps the child and returns that error).
//!
//! When the kernel refuses the call itself ([`Spawned::Refused`]: `ENOSYS`
//! before 5.3, `E2BIG`/`EINVAL` before 5.7, `EPERM`/`EACCES`/`EBUSY`/
//! `EOPNOTSUPP` for a cgroup it will not put a process in), nothing was
//! started, and the caller falls back to fork and join-before-exec.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `CLONE_INTO_CGROUP` from `<linux/sched.h>` (not in every libc crate).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `<linux/sched.h>`, up to `cgroup` (version 2,
/// 88 bytes; the kernel takes the size as the version).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What the child runs, prepared before the clone (no allocation after it).
pub struct Prepared<'a> {
    path: CString,
    // Owned strings the pointer arrays point into.
    _argv: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    stdin: OwnedFd,
    output: Option<BorrowedFd<'a>>,
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument or variable")
    })
}

impl<'a> Prepared<'a> {
    /// `program args...` with the daemon's environment plus `env` (later
    /// keys win, as `Command::envs` does), stdin `/dev/null`, stdout and
    /// stderr both `output` (`None`: the daemon's own), in `cwd`.
    pub fn new(
        program: &str,
        args: &[&OsStr],
        env: &[(String, String)],
        cwd: Option<&Path>,
        output: Option<BorrowedFd<'a>>,
    ) -> io::Result<Prepared<'a>> {
        let path = cstring(program.as_bytes())?;
        let mut argv_owned = vec![path.clone()];
        for a in args {
            argv_owned.push(cstring(a.as_bytes())?);
        }
        let mut vars: std::collections::BTreeMap<OsString, OsString> =
            std::env::vars_os().collect();
        for (k, v) in env {
            vars.insert(k.into(), v.into());
        }
        let mut envp_owned = Vec::with_capacity(vars.len());
        for (k, v) in &vars {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envp_owned.push(cstring(&kv)?);
        }
        let ptrs = |v: &[CString]| {
            v.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
        };
        let stdin = std::fs::File::open("/dev/null")?.into();
        Ok(Prepared {
            argv: ptrs(&argv_owned),
            envp: ptrs(&envp_owned),
            _argv: argv_owned,
            _envp: envp_owned,
            path,
            cwd: cwd.map(|c| cstring(c.as_os_str().as_bytes())).transpose()?,
            stdin,
            output,
        })
    }
}

/// The outcome of [`spawn_into_cgroup`].
#[derive(Debug)]
pub enum Spawned {
    /// Running in its cgroup, with this pid.
    Pid(u32),
    /// The kernel refused `clone3` into this cgroup: nothing was started.
    Refused(io::Error),
    /// Started, but its setup or `exec` failed with this error (the child
    /// has been reaped).
    Failed(io::Error),
}

/// Whether a `clone3` error means "this kernel cannot do it at all" (so
/// later spawns need not try again), rather than "not into this cgroup".
pub fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL))
}

/// Errors of `clone3` after which a fork and join-before-exec may still
/// work (anything else, `EAGAIN` or `ENOMEM`, would fail a fork too).
fn refusal(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOSYS
            | libc::E2BIG
            | libc::EINVAL
            | libc::EPERM
            | libc::EACCES
            | libc::EBUSY
            | libc::EOPNOTSUPP
    )
}

/// Open a cgroup directory for [`spawn_into_cgroup`].
pub fn open_cgroup(dir: &Path) -> io::Result<OwnedFd> {
    let path = cstring(dir.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path; the result is checked.
    let fd =
        unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Start `prep` as a new process inside the cgroup `cgroup` (a directory
/// descriptor from [`open_cgroup`]). `setup` runs in the child after its
/// stdio and working directory are in place and before `execve`.
///
/// # Safety
/// `setup` runs in the child of a clone of a (possibly multi-threaded)
/// process: it must make async-signal-safe calls only (no allocation, no
/// locks, no logging), as for [`std::os::unix::process::CommandExt::pre_exec`].
pub unsafe fn spawn_into_cgroup(
    prep: &Prepared<'_>,
    cgroup: &OwnedFd,
    setup: &mut dyn FnMut() -> io::Result<()>,
) -> Spawned {
    let (err_read, err_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Spawned::Failed(io::Error::from(e)),
    };
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: a valid clone_args of the size given; without CLONE_VM the
    // child gets a copy of this address space, as after fork.
    let rc = libc::syscall(
        libc::SYS_clone3,
        &mut args as *mut CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    );
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error().is_some_and(refusal) {
            Spawned::Refused(e)
        } else {
            Spawned::Failed(e)
        };
    }
    if rc == 0 {
        // The child: async-signal-safe calls only, then exec or _exit.
        let errno = child(prep, setup);
        let bytes = errno.to_ne_bytes();
        libc::write(err_write.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127);
    }
    let pid = rc as libc::pid_t;
    drop(err_write);
    // Until the pipe closes (exec succeeded) or holds an errno.
    let mut buf = [0u8; 4];
    let mut got = 0;
    loop {
        let n = libc::read(err_read.as_raw_fd(), buf[got..].as_mut_ptr().cast(), buf.len() - got);
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        got += n as usize;
        if got == buf.len() {
            break;
        }
    }
    if got == buf.len() {
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        return Spawned::Failed(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)));
    }
    Spawned::Pid(pid as u32)
}

/// The child's side; returns the errno of what failed.
///
/// # Safety
/// Only in the child of [`spawn_into_cgroup`].
unsafe fn child(prep: &Prepared<'_>, setup: &mut dyn FnMut() -> io::Result<()>) -> i32 {
    let fail = || io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    if libc::dup2(prep.stdin.as_raw_fd(), 0) < 0 {
        return fail();
    }
    if let Some(out) = &prep.output {
        if libc::dup2(out.as_raw_fd(), 1) < 0 || libc::dup2(out.as_raw_fd(), 2) < 0 {
            return fail();
        }
    }
    if let Some(cwd) = &prep.cwd {
        if libc::chdir(cwd.as_ptr()) < 0 {
            return fail();
        }
    }
    if let Err(e) = setup() {
        return e.raw_os_error().unwrap_or(libc::EIO);
    }
    libc::execve(prep.path.as_ptr(), prep.argv.as_ptr(), prep.envp.as_ptr());
    fail()
}
