//! The shared filesystem model (`/mfs/<node>/var/mosix-ha/...`).
//!
//! What the HA layer's safety hangs on (spec W1, W3, W10, W11) is modelled,
//! nothing else:
//!
//! * **Visibility delay.** A write is visible to its writer at once and to
//!   every other node `delay + U[0, jitter)` later. Visibility is monotone
//!   per file (a later write never becomes visible before an earlier one),
//!   as with close-to-open consistency.
//! * **Stale reads.** A read may return the previous visible version
//!   (attribute or page caching).
//! * **Failed reads.** A read may fail; the reader then reports the node as
//!   `Unreadable`, never as "not running".
//! * **Writer's clock.** A version's mtime is the writer's wall clock at the
//!   write (clock skew shifts it); the reader computes age with its own.
//!
//! Files stay when their node dies: a crashed node's last clstat is still
//! read by whoever lists it as a member.

use clinit_engine::time::Millis;
use std::collections::VecDeque;
use std::sync::Arc;

/// One written version of a file.
#[derive(Debug)]
pub struct Version<T: ?Sized> {
    /// Global write counter: tells versions apart cheaply.
    pub serial: u64,
    /// Writer's wall clock at the write, milliseconds.
    pub mtime: i64,
    pub data: Arc<T>,
}

impl<T: ?Sized> Clone for Version<T> {
    fn clone(&self) -> Self {
        Version { serial: self.serial, mtime: self.mtime, data: self.data.clone() }
    }
}

/// One node's copy of one file, as the cluster sees it.
#[derive(Debug)]
pub struct Slot<T: ?Sized> {
    /// The newest write (what the writer itself reads).
    local: Option<Version<T>>,
    /// Newest version visible to other nodes.
    visible: Option<Version<T>>,
    /// The version visible before `visible` (served by stale reads).
    previous: Option<Version<T>>,
    /// Writes on their way to the other nodes, in visibility order.
    pending: VecDeque<(Millis, Version<T>)>,
    last_visible_at: Millis,
}

impl<T: ?Sized> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            local: None,
            visible: None,
            previous: None,
            pending: VecDeque::new(),
            last_visible_at: Millis::ZERO,
        }
    }
}

impl<T: ?Sized> Slot<T> {
    /// A file that every node sees from the start (initial configuration).
    pub fn preset(version: Version<T>) -> Slot<T> {
        Slot { local: Some(version.clone()), visible: Some(version), ..Slot::default() }
    }

    /// Record a write at `now` that the others see at `now + delay` (or
    /// later, after earlier writes).
    pub fn write(&mut self, now: Millis, delay: Millis, version: Version<T>) {
        self.local = Some(version.clone());
        let at = (now + delay).max(self.last_visible_at);
        self.last_visible_at = at;
        if delay == Millis::ZERO && self.pending.is_empty() {
            self.previous = self.visible.replace(version);
        } else {
            self.pending.push_back((at, version));
        }
    }

    fn advance(&mut self, now: Millis) {
        while self.pending.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, v)) = self.pending.pop_front() {
                self.previous = self.visible.replace(v);
            }
        }
    }

    /// What another node reads at `now` (`stale`: the previous version if
    /// there is one).
    pub fn read(&mut self, now: Millis, stale: bool) -> Option<&Version<T>> {
        self.advance(now);
        if stale && self.previous.is_some() {
            return self.previous.as_ref();
        }
        self.visible.as_ref()
    }

    /// What the writer itself reads.
    pub fn own(&self) -> Option<&Version<T>> {
        self.local.as_ref()
    }

    /// When (simulated time) the newest write becomes visible to the
    /// other nodes: every later write queues behind it.
    pub fn visible_by(&self) -> Millis {
        self.last_visible_at
    }
}

/// Read fault settings in force (changed by fault plans).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsConditions {
    /// Base visibility delay for other nodes.
    pub delay: Millis,
    /// Uniform extra delay, `[0, jitter)`.
    pub jitter: Millis,
    /// Probability that one read of another node's file fails.
    pub read_failure: f64,
    /// Probability that one read returns the previous version.
    pub stale_read: f64,
}

impl FsConditions {
    pub fn healthy(delay: Millis, jitter: Millis) -> FsConditions {
        FsConditions { delay, jitter, read_failure: 0.0, stale_read: 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(serial: u64) -> Version<u64> {
        Version { serial, mtime: serial as i64, data: Arc::new(serial) }
    }

    #[test]
    fn writes_become_visible_after_the_delay_in_order() {
        let mut s = Slot::default();
        s.write(Millis(0), Millis(100), v(1));
        assert!(s.read(Millis(50), false).is_none());
        assert_eq!(s.own().map(|v| v.serial), Some(1));
        // A later write with a shorter delay waits for the earlier one.
        s.write(Millis(60), Millis(10), v(2));
        assert_eq!(s.read(Millis(99), false).map(|v| v.serial), None);
        assert_eq!(s.read(Millis(100), false).map(|v| v.serial), Some(2));
        assert_eq!(s.read(Millis(100), true).map(|v| v.serial), Some(1));
    }
}
