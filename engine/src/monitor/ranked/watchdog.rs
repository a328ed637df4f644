//! The watchdog's deadline logic, pure. The process form (a minimal
//! separate process outside the monitor's cgroup and process group) lives in
//! a backend; this is only what it decides.
//!
//! The monitor hands the watchdog a **deadline**, not a keep-alive: the end
//! of its lease minus δ (the kill bound), tagged with the lease **epoch**. At
//! the deadline the watchdog kills the node's service groups, and from then
//! on keeps their cgroups empty (kills anything that appears, such as a
//! spawn the executor ran late) until a deadline of a *newer* epoch arrives.
//! Within one epoch a deadline only moves forward; a stale message from an
//! older epoch is ignored. The watchdog never touches the shared filesystem,
//! so a hung NFS mount cannot delay it. Its clock is the same boot clock
//! (CLOCK_BOOTTIME) as the monitor's.
//!
//! What it guarantees: a frozen or crashed monitor's services die by the
//! deadline. What it cannot: a whole-node pause (a VM suspended) stops the
//! watchdog too; only a fence covers that.

use crate::time::Millis;

/// What the watchdog should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogAction {
    /// Nothing: the lease holds (or nothing is armed).
    Idle,
    /// Kill every service group, and keep killing until a new epoch.
    KillAll,
}

/// The watchdog's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watchdog {
    epoch: (u64, u64),
    deadline: Option<Millis>,
    fired: bool,
}

impl Watchdog {
    /// A message from the monitor: `epoch`'s deadline is `deadline`
    /// (`None`: the monitor released everything; keep the cgroups empty).
    /// Epochs are (monitor incarnation, lease epoch), compared in that
    /// order, so a restarted monitor's first epoch is newer than any of its
    /// predecessor's.
    pub fn arm(&mut self, epoch: (u64, u64), deadline: Option<Millis>) {
        if epoch < self.epoch {
            return;
        }
        if epoch > self.epoch {
            self.epoch = epoch;
            self.deadline = deadline;
            self.fired = false;
            return;
        }
        match (self.deadline, deadline) {
            (Some(old), Some(new)) if new > old && !self.fired => self.deadline = Some(new),
            (None, Some(new)) if !self.fired => self.deadline = Some(new),
            (_, None) => self.fired = true,
            _ => {}
        }
    }

    /// What to do at `now`.
    pub fn tick(&mut self, now: Millis) -> WatchdogAction {
        if !self.fired && self.deadline.is_some_and(|d| now >= d) {
            self.fired = true;
        }
        if self.fired {
            WatchdogAction::KillAll
        } else {
            WatchdogAction::Idle
        }
    }

    /// When to tick next, if a deadline is armed and not yet passed.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadline.filter(|_| !self.fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_deadline_and_keeps_killing_until_a_new_epoch() {
        let mut w = Watchdog::default();
        w.arm((1, 1), Some(Millis(1000)));
        assert_eq!(w.tick(Millis(999)), WatchdogAction::Idle);
        w.arm((1, 1), Some(Millis(1500)));
        w.arm((1, 1), Some(Millis(1200)));
        assert_eq!(w.next_deadline(), Some(Millis(1500)), "moves forward only");
        assert_eq!(w.tick(Millis(1500)), WatchdogAction::KillAll);
        // A late extension of the same epoch (the monitor's stale message)
        // does not revive it: the cgroups stay empty.
        w.arm((1, 1), Some(Millis(9000)));
        assert_eq!(w.tick(Millis(1600)), WatchdogAction::KillAll);
        w.arm((1, 0), Some(Millis(9000)));
        assert_eq!(w.tick(Millis(1700)), WatchdogAction::KillAll);
        w.arm((1, 2), Some(Millis(3000)));
        assert_eq!(w.tick(Millis(1800)), WatchdogAction::Idle);
        w.arm((1, 2), None);
        assert_eq!(w.tick(Millis(1900)), WatchdogAction::KillAll, "released: keep empty");
        w.arm((2, 1), Some(Millis(5000)));
        assert_eq!(
            w.tick(Millis(2000)),
            WatchdogAction::Idle,
            "a restarted monitor's epoch 1 is newer"
        );
    }
}
