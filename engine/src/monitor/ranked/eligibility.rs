//! Eligibility memory: a failed test makes a node back off from a group.
//!
//! After the `n`-th consecutive failed test of group `g` on node `x`, `x` is
//! ineligible for `g` for `min(base · 2^(n-1), cap)`. A test that passes
//! clears the entry; any change of `cltab` or `hactl` forgets everything
//! (the operator may have fixed the cause). This is what stops a
//! crash-looping group from bouncing between nodes: each node's back-off
//! grows, so moves get rarer, as Pacemaker's `migration-threshold` with
//! `failure-timeout` does.

use crate::time::Millis;
use std::collections::BTreeMap;

/// Back-off state per (group, node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eligibility {
    failures: BTreeMap<(String, u32), (u32, Millis)>,
}

impl Eligibility {
    /// Record a failed test of `group` on `node` at `now`; returns the end of
    /// the back-off.
    pub fn failed(
        &mut self,
        group: &str,
        node: u32,
        now: Millis,
        base: Millis,
        cap: Millis,
    ) -> Millis {
        let entry = self.failures.entry((group.to_string(), node)).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        let shift = (entry.0 - 1).min(32);
        let wait = base.0.saturating_mul(1u64 << shift).min(cap.0);
        entry.1 = now + Millis(wait);
        entry.1
    }

    /// A passed test clears the memory of `(group, node)`.
    pub fn passed(&mut self, group: &str, node: u32) {
        self.failures.remove(&(group.to_string(), node));
    }

    /// Is `node` eligible for `group` at `now`?
    pub fn eligible(&self, group: &str, node: u32, now: Millis) -> bool {
        self.failures.get(&(group.to_string(), node)).is_none_or(|&(_, until)| now >= until)
    }

    /// Forget everything (cltab or hactl changed).
    pub fn forget(&mut self) {
        self.failures.clear();
    }

    /// The earliest back-off end after `now`, for `poll_timeout`.
    pub fn next_expiry(&self, now: Millis) -> Option<Millis> {
        self.failures.values().map(|&(_, until)| until).filter(|&u| u > now).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_capped_and_forgotten() {
        let (base, cap) = (Millis(1000), Millis(5000));
        let mut e = Eligibility::default();
        assert!(e.eligible("web", 2, Millis(0)));
        assert_eq!(e.failed("web", 2, Millis(0), base, cap), Millis(1000));
        assert!(!e.eligible("web", 2, Millis(999)));
        assert!(e.eligible("web", 2, Millis(1000)));
        assert!(e.eligible("db", 2, Millis(10)), "per group");
        assert_eq!(e.failed("web", 2, Millis(1000), base, cap), Millis(3000));
        assert_eq!(e.failed("web", 2, Millis(3000), base, cap), Millis(7000));
        assert_eq!(e.failed("web", 2, Millis(7000), base, cap), Millis(12000), "capped at 5 s");
        assert_eq!(e.next_expiry(Millis(7000)), Some(Millis(12000)));
        e.forget();
        assert!(e.eligible("web", 2, Millis(7001)));
        e.failed("web", 2, Millis(0), base, cap);
        e.passed("web", 2);
        assert!(e.eligible("web", 2, Millis(1)));
    }
}
