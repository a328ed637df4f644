//! Containment of each entry in a cgroup v2 (issue 10, item 6).
//!
//! A process group does not contain a command: `setsid sleep 3001 &` leaves
//! it, and a stop by process group misses it. So, where the daemon can, each
//! spawned instance gets its own cgroup, as systemd gives each unit one:
//!
//! * The cgroup v2 hierarchy is found in `/proc/self/mountinfo` (the first
//!   `cgroup2` mount), never assumed at `/sys/fs/cgroup`: hybrid layouts
//!   mount it at `/sys/fs/cgroup/unified`.
//! * The daemon creates `<its own cgroup>/clinit.<pid>/` (its own cgroup
//!   from `/proc/self/cgroup`, line `0::PATH`) and, per instance,
//!   `clinit.<pid>/<id>/`, named after the instance that created it: an
//!   instance whose cgroup was found empty when it ended leaves it as a
//!   spare for a later instance ([`crate::process::ProcessTable`]), so a
//!   respawn creates and removes no cgroup. The child is created inside it by `clone3`
//!   with `CLONE_INTO_CGROUP` (Linux 5.7+, [`crate::clone3`]), so it never
//!   runs anywhere else; where the kernel refuses that, the forked child
//!   joins it before `exec` by writing `0` to its `cgroup.procs`. Either
//!   way everything the command ever starts is born inside. No controller
//!   is enabled: this is for membership only.
//! * A stop signal goes to the process group and to every member of the
//!   cgroup; SIGKILL uses `cgroup.kill` where the kernel has it (5.14+).
//!   An instance counts as alive while its cgroup has a member, so a stop
//!   escalates until the escaped ones are gone too, and status never says
//!   a group is down while part of it runs.
//! * Where the daemon cannot create cgroups (not root and no delegated
//!   subtree, read-only, no cgroup2), it falls back to process groups, says
//!   why in its log, and reports the mode in status (`containment`).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How the daemon contains its commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Containment {
    /// One cgroup per instance under this directory.
    Cgroup { base: PathBuf },
    /// Process groups only, and why.
    ProcessGroup { reason: String },
}

impl Containment {
    /// For status: `cgroup2 <dir>` or `process-group (<why>)`.
    pub fn describe(&self) -> String {
        match self {
            Containment::Cgroup { base } => format!("cgroup2 {}", base.display()),
            Containment::ProcessGroup { reason } => format!("process-group ({reason})"),
        }
    }
}

/// The first cgroup2 mount's `(mount root, mount point)` from mountinfo text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let f: Vec<&str> = left.split_whitespace().collect();
        Some((f.get(3)?.to_string(), PathBuf::from(unescape(f.get(4)?))))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Set up the daemon's cgroup directory, or say why not.
pub fn setup() -> Containment {
    match try_setup() {
        Ok(base) => Containment::Cgroup { base },
        Err(reason) => Containment::ProcessGroup { reason },
    }
}

fn try_setup() -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (root, mount) = cgroup2_mount(&mountinfo).ok_or("no cgroup2 mount")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::")).ok_or("not in a cgroup2 group")?;
    let rel = own.strip_prefix(root.trim_end_matches('/')).unwrap_or(own);
    let parent = mount.join(rel.trim_start_matches('/'));
    remove_dead_daemons_dirs(&parent);
    let base = parent.join(format!("clinit.{}", std::process::id()));
    match std::fs::create_dir(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", base.display())),
    }
    Ok(base)
}

/// Remove the empty cgroup directories of daemons that died without
/// cleaning up (`clinit.<pid>` whose pid is gone). Non-empty ones are left
/// alone: their processes are the business of that daemon's successor
/// (see [`crate::generations`]), not of every daemon on the machine.
fn remove_dead_daemons_dirs(parent: &Path) {
    let Ok(dir) = std::fs::read_dir(parent) else { return };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("clinit.")) else { continue };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        if let Ok(children) = std::fs::read_dir(entry.path()) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                let _ = std::fs::remove_dir(child.path());
            }
        }
        let _ = std::fs::remove_dir(entry.path());
    }
}

/// Is `dir` a directory on a cgroup2 file system?
pub fn is_cgroup2_dir(dir: &Path) -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs writes only into the zeroed struct we pass.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC && dir.is_dir()
}

/// `dir` and every cgroup below it, parents before children.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            let kids: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// Live members of `dir` and of every cgroup below it.
pub fn tree_members(dir: &Path) -> Vec<i32> {
    subtree(dir).into_iter().flat_map(|d| Cgroup::at(d).members()).collect()
}

/// Signal every process in the subtree; SIGKILL through `cgroup.kill` on
/// `dir` where present (it is recursive), else pid by pid.
pub fn tree_signal(dir: &Path, sig: libc::c_int) {
    if sig == libc::SIGKILL && std::fs::write(dir.join("cgroup.kill"), b"1").is_ok() {
        return;
    }
    for d in subtree(dir) {
        Cgroup::at(d).signal(sig);
    }
}

/// Remove the subtree's cgroups, leaf first. A cgroup whose last process
/// has just been killed may still be busy for a moment: retried for up to
/// about a second, then left with a log line.
pub fn remove_tree(dir: &Path) {
    for _ in 0..100 {
        for d in subtree(dir).iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        if !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!("cannot remove {}: still busy", dir.display());
}

/// The daemon's own cgroup directory (`.../clinit.<pid>`), held open.
///
/// Why a descriptor: a stop of 1,000 instances opens each one's
/// `cgroup.procs` and removes each one's directory, and a start creates
/// and opens 1,000 directories. By path, each of those walks
/// `/sys/fs/cgroup/.../clinit.<pid>/<name>/` component by component
/// (`link_path_walk` in `perf`); relative to this descriptor
/// (`mkdirat`, `openat`, `unlinkat`) only the last one or two components
/// are looked up.
#[derive(Debug, Clone)]
pub struct Base {
    pub dir: PathBuf,
    fd: std::sync::Arc<OwnedFd>,
}

impl Base {
    /// Open `dir` (an existing directory).
    pub fn open(dir: &Path) -> io::Result<Base> {
        let fd = open_dir(libc::AT_FDCWD, &cstring(dir.as_os_str().as_bytes())?)?;
        Ok(Base { dir: dir.to_path_buf(), fd: std::sync::Arc::new(fd) })
    }
}

/// `openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)`.
fn open_dir(at: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name; the result is checked.
    let fd = unsafe {
        libc::openat(at, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// One instance's cgroup.
///
/// Created under the daemon's [`Base`]; its files are opened relative to
/// the base's descriptor (`<name>/cgroup.procs`). The directory itself is
/// opened only for a spawn ([`Cgroup::open`], for `clone3`) and closed
/// right after: 1,000 descriptors held until the stop made each stop pay
/// for 1,000 `close`s of a cgroup directory (`strace -c`). A cgroup found
/// empty when its instance ended may be reused by a later instance (see
/// [`crate::process::ProcessTable`]), so its name is the id of the
/// instance that created it, not necessarily of the one inside.
#[derive(Debug)]
pub struct Cgroup {
    pub dir: PathBuf,
    /// The base's descriptor and this cgroup's name in it (`None` for a
    /// cgroup known by path only, as a previous generation's).
    parent: Option<(std::sync::Arc<OwnedFd>, CString)>,
}

impl Cgroup {
    /// A cgroup known by path only.
    pub fn at(dir: PathBuf) -> Cgroup {
        Cgroup { dir, parent: None }
    }

    /// Create `base/<name>` (or take it over if it exists) and open it.
    pub fn create(base: &Base, name: &str) -> io::Result<Cgroup> {
        let cname = cstring(name.as_bytes())?;
        // SAFETY: a NUL-terminated name relative to a directory we hold.
        if unsafe { libc::mkdirat(base.fd.as_raw_fd(), cname.as_ptr(), 0o755) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
        }
        Ok(Cgroup { dir: base.dir.join(name), parent: Some((base.fd.clone(), cname)) })
    }

    /// The directory, opened for `clone3`'s `CLONE_INTO_CGROUP`.
    pub fn open(&self) -> io::Result<OwnedFd> {
        match &self.parent {
            Some((at, name)) => open_dir(at.as_raw_fd(), name),
            None => open_dir(libc::AT_FDCWD, &cstring(self.dir.as_os_str().as_bytes())?),
        }
    }

    /// The path a child writes `0` to, to join (prepared before fork: the
    /// child may not allocate).
    pub fn procs_path(&self) -> Option<CString> {
        CString::new(self.dir.join("cgroup.procs").as_os_str().as_bytes()).ok()
    }

    /// Open one of the cgroup's interface files.
    fn open_file(&self, name: &CStr, write: bool) -> io::Result<std::fs::File> {
        let flags = libc::O_CLOEXEC | if write { libc::O_WRONLY } else { libc::O_RDONLY };
        let (at, rel) = match &self.parent {
            Some((at, dir)) => {
                let mut rel = dir.as_bytes().to_vec();
                rel.push(b'/');
                rel.extend_from_slice(name.to_bytes());
                (at.as_raw_fd(), cstring(&rel)?)
            }
            None => {
                let path = self.dir.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
                (libc::AT_FDCWD, cstring(path.as_os_str().as_bytes())?)
            }
        };
        // SAFETY: a NUL-terminated path, relative to a directory we hold.
        let fd = unsafe { libc::openat(at, rel.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    /// Kill every member at once through `cgroup.kill` (Linux 5.14+).
    fn kill_all(&self) -> bool {
        use std::io::Write;
        self.open_file(c"cgroup.kill", true).and_then(|mut f| f.write_all(b"1")).is_ok()
    }

    /// Live members (zombies are not listed).
    ///
    /// Read with plain `read`s into a small buffer: `read_to_string` also
    /// asks for the file's size (`statx`), which a kernfs file does not
    /// know; a stop reads this file once per instance.
    pub fn members(&self) -> Vec<i32> {
        use std::io::Read;
        let Ok(mut f) = self.open_file(c"cgroup.procs", false) else {
            return Vec::new();
        };
        let mut text = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Vec::new(),
            }
        }
        String::from_utf8_lossy(&text).split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }

    /// Signal every member; SIGKILL through `cgroup.kill` where present.
    /// Returns whether anything was signalled.
    pub fn signal(&self, sig: libc::c_int) -> bool {
        self.signal_listing(sig, None).0
    }

    /// [`Cgroup::signal`], also returning the members it listed (`None`
    /// when `cgroup.kill` did it without a list). The member `except` is
    /// listed but not signalled: the caller signals it itself (the leader,
    /// through its process group), and one `kill` per instance fewer
    /// matters when 1,000 stop at once.
    pub fn signal_listing(
        &self,
        sig: libc::c_int,
        except: Option<i32>,
    ) -> (bool, Option<Vec<i32>>) {
        if sig == libc::SIGKILL && self.kill_all() {
            return (true, None);
        }
        let mut any = false;
        let members = self.members();
        for &pid in members.iter().filter(|&&p| Some(p) != except) {
            // SAFETY: kill has no memory effects. A member listed here is
            // alive or was a moment ago; a pid reused in between would have
            // to be reused inside this cgroup, which only our command does.
            any |= unsafe { libc::kill(pid, sig) } == 0;
        }
        (any, Some(members))
    }

    /// Remove the (empty) cgroup; a busy one is left with a log line.
    pub fn remove(self) {
        let Cgroup { dir, parent } = self;
        let result = match parent {
            Some((at, name)) => {
                // SAFETY: a NUL-terminated name relative to a directory we hold.
                let rc =
                    unsafe { libc::unlinkat(at.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
                if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }
            None => std::fs::remove_dir(&dir),
        };
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!("cannot remove {}: {e}", dir.display());
            }
        }
    }
}

/// Removes emptied instance cgroups on a thread of its own.
///
/// Why: `rmdir` of a cgroup is one of the kernel's slower calls (it takes
/// the cgroup hierarchy's lock, removes the interface files and
/// invalidates their dentries); at a stop of 1,000 instances it was a
/// fifth of the daemon's time (`perf`), spent on the loop that also reaps
/// and restarts. A cgroup handed here is never reused, and a new one is
/// named after the id of the instance that creates it (ids are never
/// reused), so a removal that lands a little later conflicts with
/// nothing. [`Remover::finish`] waits for every pending removal, before
/// the daemon's own cgroup is removed at exit.
#[derive(Debug, Default)]
pub struct Remover {
    worker: Option<(std::sync::mpsc::Sender<Cgroup>, std::thread::JoinHandle<()>)>,
}

impl Remover {
    /// Remove `cg` soon, off the caller's thread; on the caller's thread
    /// when no thread can be started.
    pub fn remove(&mut self, cg: Cgroup) {
        if self.worker.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Cgroup>();
            let spawned = std::thread::Builder::new()
                .name("clinit-cgroup-rm".into())
                .spawn(move || rx.into_iter().for_each(Cgroup::remove));
            match spawned {
                Ok(handle) => self.worker = Some((tx, handle)),
                Err(e) => tracing::debug!("no cgroup removal thread ({e}); removing inline"),
            }
        }
        match &self.worker {
            Some((tx, _)) => {
                if let Err(std::sync::mpsc::SendError(cg)) = tx.send(cg) {
                    cg.remove();
                }
            }
            None => cg.remove(),
        }
    }

    /// Wait until every removal asked for is done.
    pub fn finish(&mut self) {
        if let Some((tx, handle)) = self.worker.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// In the forked child, before exec: join the cgroup whose `cgroup.procs`
/// is `procs`. Only async-signal-safe calls.
///
/// # Safety
/// Only for the forked child before exec.
pub unsafe fn join(procs: &CString) -> io::Result<()> {
    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
    let err = io::Error::last_os_error();
    libc::close(fd);
    if n != 1 {
        return Err(err);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_in_a_hybrid_layout() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(info),
            Some(("/".to_string(), PathBuf::from("/sys/fs/cgroup/unified")))
        );
        assert_eq!(
            cgroup2_mount("1 2 0:1 / /a\\040b rw - cgroup2 x rw\n").map(|m| m.1),
            Some(PathBuf::from("/a b"))
        );
        assert_eq!(cgroup2_mount("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"), None);
    }
}
