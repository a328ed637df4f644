//! A live process's descriptor limit, set from outside with `prlimit(2)`
//! (the tests of spawns starved of file descriptors, issue 10): lowered to
//! exactly what the process holds, a spawn needs new descriptors (its
//! output pipe) and fails with `EMFILE`.

use std::collections::BTreeSet;

/// The process's open descriptor numbers (from `/proc/PID/fd`).
pub fn open_fds(pid: i32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the process's fd directory")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The lowest descriptor number `pid` does not hold: with the limit at
/// this number it can open nothing new.
pub fn lowest_free(pid: i32) -> u64 {
    let fds = open_fds(pid);
    (0..).find(|n| !fds.contains(n)).unwrap_or(0)
}

/// Set `pid`'s soft RLIMIT_NOFILE (the hard limit stays: raising it again
/// would need CAP_SYS_RESOURCE) and return the old soft limit.
pub fn set_nofile(pid: i32, soft: u64) -> Result<u64, std::io::Error> {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: the pointer is to a live, properly initialised struct.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let new = libc::rlimit { rlim_cur: soft, rlim_max: old.rlim_max };
    // SAFETY: as above.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(old.rlim_cur)
}

/// Puts a soft limit back when dropped, even if an assertion failed, so
/// the process can still open what its shutdown needs.
pub struct Restore {
    pub pid: i32,
    pub soft: u64,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = set_nofile(self.pid, self.soft) {
            eprintln!("cannot restore pid {}'s descriptor limit: {e}", self.pid);
        }
    }
}

/// Lower `pid`'s limit to exactly what it holds; the guard restores it.
pub fn starve(pid: i32) -> Restore {
    let soft = set_nofile(pid, lowest_free(pid)).expect("lower the descriptor limit");
    Restore { pid, soft }
}
