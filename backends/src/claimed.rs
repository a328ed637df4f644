//! Children whose spawner waits for them itself, kept from the reaper of
//! adopted orphans.
//!
//! Why this exists: `clinit -d` and `mosha` make themselves child
//! subreapers ([`crate::process::ProcessTable::with_subreaper`]), so what a
//! command leaves behind when its parent dies is re-parented to *us*, and
//! must be reaped by us, or it stays a zombie until we exit. Besides the
//! table's own children, `mosha` runs commands from other threads: hooks
//! ([`crate::mosha`]'s hook runner), fence commands ([`crate::fence`]), the
//! `whois` command ([`crate::openmosix`]). Each runs a shell in its own
//! process group, killed with its group when it overruns, and only the
//! shell is waited for; the shell's own children (`sleep 1 & sleep 1`)
//! become ours. The new-user test found them piling up as `<defunct>`
//! under `mosha`, two per killed hook.
//!
//! So the table's reaper reaps *every* dead child of this process that is
//! not in its table, except the ones claimed here: a claimed child's
//! spawner waits for it, and reaping it would steal its exit status (the
//! spawner's `wait` would fail with `ECHILD`). A spawner starts its child
//! with [`spawn`] and keeps the returned [`Claim`] until it has waited for
//! the child.
//!
//! The registry's lock is held from before the fork until the pid is
//! recorded, so the reaper never meets an unclaimed child of a spawner in
//! that window (std's `spawn` itself waits for a child whose `exec`
//! failed, inside it). The reaper only *tries* the lock ([`reap_unclaimed`]):
//! the monitor's loop never waits for another thread's fork and `exec`; a
//! zombie skipped then is reaped at the next pass (SIGCHLD, or the loop's
//! backstop tick, at least once a second).
//!
//! Claims are counted per pid: a spawner drops its claim only after its
//! wait, and by then the kernel may have given the pid to another claimed
//! child, whose claim must survive the first one's drop.

use std::collections::BTreeMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

/// Claimed pids, with how many live claims each has.
static CLAIMED: Mutex<BTreeMap<u32, usize>> = Mutex::new(BTreeMap::new());

/// The registry (a panic while it was held left it consistent: every
/// update is a single map operation).
fn lock() -> MutexGuard<'static, BTreeMap<u32, usize>> {
    CLAIMED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A spawner's claim on its child: while it lives, the reaper of adopted
/// orphans leaves the child's zombie to the spawner. Drop it only after
/// waiting for the child; a child whose claim is dropped unwaited is
/// reaped by the table (so it does not stay a zombie either).
#[derive(Debug)]
#[must_use = "dropping the claim lets the reaper take the child's exit status"]
pub struct Claim {
    pid: u32,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claimed = lock();
        if let Some(n) = claimed.get_mut(&self.pid) {
            *n -= 1;
            if *n == 0 {
                claimed.remove(&self.pid);
            }
        }
    }
}

/// `command.spawn()`, with the child claimed before any reaper can see it.
///
/// # Errors
/// The spawn's own error (nothing was started, nothing is claimed).
pub fn spawn(command: &mut Command) -> io::Result<(Child, Claim)> {
    let mut claimed = lock();
    let child = command.spawn()?;
    let pid = child.id();
    *claimed.entry(pid).or_insert(0) += 1;
    Ok((child, Claim { pid }))
}

/// Call `reap` for the dead child `pid` unless a spawner claims it; also
/// skipped (`false`) while a spawn holds the registry (see the module doc).
/// Returns whether `reap` was called. The caller must know that `pid` is
/// a dead, unreaped child of this process: only then can its pid not have
/// been reused.
pub(crate) fn reap_unclaimed(pid: u32, reap: impl FnOnce()) -> bool {
    let claimed = match CLAIMED.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return false,
    };
    if claimed.contains_key(&pid) {
        return false;
    }
    reap();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims are counted: the first claim's drop (its child waited for,
    /// its pid handed to a new claimed child) leaves the second in force.
    #[test]
    fn a_pid_stays_claimed_until_its_last_claim_is_dropped() {
        let pid = u32::MAX - 7; // no real pid: only this test uses it
        let first = Claim { pid };
        let second = Claim { pid };
        *lock().entry(pid).or_insert(0) += 2;
        assert!(!reap_unclaimed(pid, || panic!("a claimed pid was reaped")));
        drop(first);
        assert!(!reap_unclaimed(pid, || panic!("a claimed pid was reaped")));
        drop(second);
        // Another test's spawn may hold the registry for a moment.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut reaped = false;
        while !reap_unclaimed(pid, || reaped = true) && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(reaped, "an unclaimed pid was not reaped");
    }

    /// A spawned child is claimed until the claim is dropped, and waiting
    /// for it works (nothing else took its status).
    #[test]
    fn a_spawned_child_is_claimed_while_its_claim_lives() {
        let (mut child, claim) =
            spawn(Command::new("true").stdin(std::process::Stdio::null())).expect("spawn true");
        let pid = child.id();
        assert!(lock().contains_key(&pid));
        let status = child.wait().expect("wait for true");
        assert!(status.success(), "{status:?}");
        drop(claim);
        assert!(!lock().contains_key(&pid));
    }
}
