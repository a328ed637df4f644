//! Time as data: a millisecond timestamp newtype.
//!
//! The engine never reads a clock. Drivers pass `now` in; the engine answers
//! with the next instant it wants to be woken (`poll_timeout`). Production
//! counts milliseconds from the daemon's start on a monotonic clock; the
//! simulator counts virtual milliseconds.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Sub};

/// A point in time, or a duration, in milliseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    pub const ZERO: Millis = Millis(0);

    pub const fn from_secs(secs: u64) -> Self {
        Millis(secs * 1000)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self - earlier`, or zero when `earlier` is later (clocks never run
    /// backwards in the engine, but inputs may arrive out of order).
    pub fn saturating_sub(self, earlier: Millis) -> Millis {
        Millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add for Millis {
    type Output = Millis;
    fn add(self, rhs: Millis) -> Millis {
        Millis(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Millis {
    type Output = Millis;
    fn sub(self, rhs: Millis) -> Millis {
        self.saturating_sub(rhs)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
        }
    }
}

/// Earliest of two optional deadlines.
pub fn earliest(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Timers as data: a deadline-ordered set of keys.
///
/// Cancelling is lazy: a machine validates a key when it fires and ignores
/// keys that no longer mean anything, which keeps cancellation O(1) and
/// makes a spurious early wake-up harmless.
#[derive(Debug, Clone, Default)]
pub struct TimerTable<K: Ord + Clone> {
    due: std::collections::BTreeSet<(Millis, K)>,
}

impl<K: Ord + Clone> TimerTable<K> {
    pub fn new() -> Self {
        TimerTable { due: std::collections::BTreeSet::new() }
    }

    pub fn schedule(&mut self, at: Millis, key: K) {
        self.due.insert((at, key));
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Remove and return every key due at or before `now`, earliest first.
    pub fn pop_due(&mut self, now: Millis) -> Vec<K> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.due.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.due.pop_first() {
                out.push(key);
            }
        }
        out
    }

    /// When `key` is due, if it is scheduled (a linear scan: for reports,
    /// not for the machine's hot path).
    pub fn deadline_of(&self, key: &K) -> Option<Millis> {
        self.due.iter().find(|(_, k)| k == key).map(|(at, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_table_pops_in_deadline_order() {
        let mut t = TimerTable::new();
        t.schedule(Millis(30), "c");
        t.schedule(Millis(10), "a");
        t.schedule(Millis(20), "b");
        assert_eq!(t.next_deadline(), Some(Millis(10)));
        assert_eq!(t.pop_due(Millis(20)), vec!["a", "b"]);
        assert_eq!(t.pop_due(Millis(25)), Vec::<&str>::new());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn millis_display() {
        assert_eq!(Millis(5000).to_string(), "5s");
        assert_eq!(Millis(1500).to_string(), "1.500s");
    }
}
