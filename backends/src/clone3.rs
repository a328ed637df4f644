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
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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
    stdin: Stdin,
    output: Option<BorrowedFd<'a>>,
}

/// The child's stdin: the process's one `/dev/null` descriptor (opened at
/// the first spawn, kept open close-on-exec; see [`dev_null`]), or one of
/// its own where that could not be opened then.
enum Stdin {
    Shared(RawFd),
    Own(OwnedFd),
}

impl Stdin {
    fn raw(&self) -> RawFd {
        match self {
            Stdin::Shared(fd) => *fd,
            Stdin::Own(fd) => fd.as_raw_fd(),
        }
    }
}

/// `/dev/null`, read-only and close-on-exec, opened once for every spawn
/// of this process (issue 10, "speed must not regress": an `open` and a
/// `close` per spawn were two of the start path's system calls). `None`
/// when it cannot be opened; each spawn then opens its own, as before.
fn dev_null() -> Option<RawFd> {
    static DEV_NULL: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    DEV_NULL
        .get_or_init(|| std::fs::File::open("/dev/null").ok().map(OwnedFd::from))
        .as_ref()
        .map(AsRawFd::as_raw_fd)
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
        let stdin = match dev_null() {
            Some(fd) => Stdin::Shared(fd),
            None => Stdin::Own(std::fs::File::open("/dev/null")?.into()),
        };
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

/// Whether [`spawn`] starts children vfork-style (`CLONE_VM |
/// CLONE_VFORK` on a stack of their own) on this architecture. Where it
/// does not (no trampoline written for it), a spawn without a cgroup goes
/// through `std::process::Command` (fork), and one with a cgroup through
/// the fork-style [`spawn_into_cgroup`].
pub const VFORK_SPAWN: bool = cfg!(target_arch = "x86_64");

/// `CLONE_VM` and `CLONE_VFORK` from `<linux/sched.h>`.
#[cfg(target_arch = "x86_64")]
const CLONE_VM: u64 = 0x100;
#[cfg(target_arch = "x86_64")]
const CLONE_VFORK: u64 = 0x4000;

/// Size of the vfork child's stack, in bytes. The child runs
/// [`child`] and the caller's setup (a few frames, at most a few hundred
/// bytes each, `execve`'s arguments are prepared before); glibc's
/// `posix_spawn` uses a stack of about 32 KiB plus the argument strings
/// for the same work. A guard page below it turns an overflow into a
/// fault rather than a write into the daemon's heap.
#[cfg(target_arch = "x86_64")]
const CHILD_STACK: usize = 64 * 1024;

/// Start `prep` as a new process, inside the cgroup `cgroup` (a directory
/// descriptor from [`open_cgroup`]) when given, without copying this
/// process's page tables: `clone3` with `CLONE_VM | CLONE_VFORK`, as
/// glibc's `posix_spawn` does with `clone`. The child shares this address
/// space and runs on a stack of its own until `execve`; the calling thread
/// sleeps until then (the kernel's vfork contract), so the cost no longer
/// grows with the daemon's memory (a fork copied the page tables of the
/// whole process and made every page the daemon wrote afterwards a
/// copy-on-write fault).
///
/// Where [`VFORK_SPAWN`] is false, a spawn with a cgroup is the fork-style
/// [`spawn_into_cgroup`]; without one it is refused with `ENOSYS` (the
/// caller then forks through `std::process::Command`).
///
/// # Safety
/// `setup` runs in the child, which shares the caller's memory: it must
/// make async-signal-safe calls only and must not write to anything the
/// caller owns (no allocation, no locks, no logging), as for
/// [`std::os::unix::process::CommandExt::pre_exec`] and more strictly.
pub unsafe fn spawn(
    prep: &Prepared<'_>,
    cgroup: Option<&OwnedFd>,
    setup: &mut dyn FnMut() -> io::Result<()>,
) -> Spawned {
    #[cfg(target_arch = "x86_64")]
    {
        spawn_vfork(prep, cgroup, setup)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        match cgroup {
            Some(cg) => spawn_into_cgroup(prep, cg, setup),
            None => Spawned::Refused(io::Error::from_raw_os_error(libc::ENOSYS)),
        }
    }
}

/// What the vfork child gets, on the caller's stack (shared memory).
#[cfg(target_arch = "x86_64")]
struct VforkArgs<'p, 'a, 's> {
    prep: &'p Prepared<'a>,
    setup: &'s mut dyn FnMut() -> io::Result<()>,
    /// The child's errno when its setup or `execve` failed; 0 otherwise.
    /// Written by the child before `_exit`, read by the caller after the
    /// clone returns (the caller sleeps until the child execs or exits).
    errno: i32,
}

/// The vfork child's entry point, on its own stack.
#[cfg(target_arch = "x86_64")]
extern "C" fn vfork_child(arg: *mut libc::c_void) -> ! {
    // SAFETY: `arg` is the caller's VforkArgs, alive while the caller
    // sleeps in clone3; only async-signal-safe calls follow.
    unsafe {
        let args = &mut *arg.cast::<VforkArgs<'_, '_, '_>>();
        let errno = child(args.prep, args.setup);
        // 0 would read as success: say EIO rather.
        std::ptr::write_volatile(&mut args.errno, if errno == 0 { libc::EIO } else { errno });
        libc::_exit(127)
    }
}

/// A private anonymous mapping for the child's stack, with a guard page
/// below it; unmapped on drop.
#[cfg(target_arch = "x86_64")]
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

#[cfg(target_arch = "x86_64")]
impl ChildStack {
    fn new() -> io::Result<ChildStack> {
        let page = 4096;
        let len = CHILD_STACK + page;
        // SAFETY: a fresh anonymous mapping; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of our own mapping.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used (the child has exec'd or
        // exited before clone3 returned).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// `clone3(args)`; the child starts on `args.stack` and calls
/// `entry(arg)`, which must not return.
///
/// The raw `syscall()` wrapper cannot be used for a child on another
/// stack: it would return into a frame that is not there. So the
/// instruction is issued here and the child branch calls its entry point
/// at once (the `posix_spawn` trampoline of glibc and musl, in a few
/// lines).
///
/// # Safety
/// `args` must describe a valid 16-byte-aligned stack; `entry` must never
/// return.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_on_stack(
    args: &mut CloneArgs,
    entry: extern "C" fn(*mut libc::c_void) -> !,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let rc: libc::c_long;
    std::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 2f",
        // The child, on the new stack (rsp = stack + stack_size, 16-byte
        // aligned): end the frame chain, call entry(arg); it never returns.
        "xor ebp, ebp",
        "mov rdi, r12",
        "call r13",
        "ud2",
        "2:",
        inlateout("rax") libc::SYS_clone3 => rc,
        in("rdi") args as *mut CloneArgs,
        in("rsi") std::mem::size_of::<CloneArgs>(),
        in("r12") arg,
        in("r13") entry,
        lateout("rcx") _,
        lateout("r11") _,
    );
    rc
}

#[cfg(target_arch = "x86_64")]
unsafe fn spawn_vfork(
    prep: &Prepared<'_>,
    cgroup: Option<&OwnedFd>,
    setup: &mut dyn FnMut() -> io::Result<()>,
) -> Spawned {
    // The stack of the last spawn on this thread, if any: free again,
    // since the child that used it has exec'd or exited (see SPARE_STACK).
    let stack = match SPARE_STACK.with(std::cell::Cell::take) {
        Some(s) => s,
        None => match ChildStack::new() {
            Ok(s) => s,
            Err(e) => return Spawned::Failed(e),
        },
    };
    let result = spawn_vfork_on(&stack, prep, cgroup, setup);
    SPARE_STACK.with(|spare| spare.set(Some(stack)));
    result
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// One child stack per spawning thread, reused by every spawn of that
    /// thread (issue 10, "speed must not regress"): a new mapping per
    /// spawn cost an `mmap`, an `mprotect` for the guard page and an
    /// `munmap` (a TLB flush on every CPU running one of the daemon's
    /// threads), and page faults on the fresh pages. Reuse is safe: with
    /// `CLONE_VFORK` the caller resumes only once the child has exec'd or
    /// exited, so no child runs on it by then. It costs the few pages a
    /// child touches, kept resident (unmapped when the thread ends).
    static SPARE_STACK: std::cell::Cell<Option<ChildStack>> = const { std::cell::Cell::new(None) };
}

/// [`spawn_vfork`] on `stack`.
///
/// # Safety
/// As [`spawn`]; `stack` is not in use by another child.
#[cfg(target_arch = "x86_64")]
unsafe fn spawn_vfork_on(
    stack: &ChildStack,
    prep: &Prepared<'_>,
    cgroup: Option<&OwnedFd>,
    setup: &mut dyn FnMut() -> io::Result<()>,
) -> Spawned {
    let mut vargs = VforkArgs { prep, setup, errno: 0 };
    let mut args = CloneArgs {
        flags: CLONE_VM | CLONE_VFORK | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base as u64,
        stack_size: stack.len as u64,
        cgroup: cgroup.map_or(0, |c| c.as_raw_fd() as u64),
        ..CloneArgs::default()
    };
    // Block every signal around the clone, as posix_spawn does: the child
    // shares our memory, and a handler of the daemon's running in it before
    // it resets its dispositions (child_setup) would write into it. The
    // child empties its mask before exec; ours is restored below.
    let mut all: libc::sigset_t = std::mem::zeroed();
    let mut old: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut all);
    libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    // SAFETY: a valid clone_args and stack; vfork_child never returns.
    let rc =
        clone3_on_stack(&mut args, vfork_child, (&mut vargs as *mut VforkArgs<'_, '_, '_>).cast());
    // The raw instruction returns -errno (no libc wrapper sets errno).
    let clone_err = (rc < 0).then(|| io::Error::from_raw_os_error(-rc as i32));
    libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    if let Some(e) = clone_err {
        return if e.raw_os_error().is_some_and(refusal) {
            Spawned::Refused(e)
        } else {
            Spawned::Failed(e)
        };
    }
    let pid = rc as libc::pid_t;
    let errno = std::ptr::read_volatile(&vargs.errno);
    if errno != 0 {
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        return Spawned::Failed(io::Error::from_raw_os_error(errno));
    }
    Spawned::Pid(pid as u32)
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
/// Only in the child of [`spawn_into_cgroup`] or [`spawn`].
unsafe fn child(prep: &Prepared<'_>, setup: &mut dyn FnMut() -> io::Result<()>) -> i32 {
    let fail = || io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    if libc::dup2(prep.stdin.raw(), 0) < 0 {
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
