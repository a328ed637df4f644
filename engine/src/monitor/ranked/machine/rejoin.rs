//! A node fenced while it runs rejoins by itself (issue 12).
//!
//! A fence command that reports success without killing its target leaves
//! the target running, in an incarnation its peers hold void for good: no
//! voter grants it a claim again, so it can never run a group. It used to
//! stay so until an operator restarted `mosha`. Now, as soon as it reads a
//! peer's record listing its running incarnation as fenced, it finishes
//! that incarnation itself, in two steps:
//!
//! 1. **Kill**: every local service is SIGKILLed at once, as after a lost
//!    lease ([`Command::KillAllNow`]); the lease epoch ends and no lease is
//!    acquired again in this incarnation. Until the kill is confirmed the
//!    node publishes nothing (then `lost`, if it fails, and the kill is
//!    retried as after a lease loss), so a peer that must fence it for a
//!    `lost` record can.
//! 2. **Rejoin**: once the kill is confirmed (nothing of it runs here any
//!    more), the machine becomes what a restart of `mosha` would build from
//!    its durable state: the next incarnation, with everything it knew of
//!    its peers forgotten. The new incarnation is persisted before its
//!    first record is written, and it starts nothing until its peers have
//!    acknowledged it and it holds a lease, exactly as after a restart.
//!
//! Why kill before the new incarnation, even though the fence's victim's
//! watchdog usually killed its services already: the peers took its groups
//! over on the fence's word, so anything still running here is a second
//! owner; and a new incarnation must start with nothing running, or its
//! record would say it holds nothing while a group runs here.

use super::*;

impl Ranked {
    /// A peer (`by`) publishes this running incarnation as fenced: end it
    /// (see the module doc, step 1). Idempotent: a second fencer, or the
    /// same record read again, changes nothing.
    pub(super) fn fenced_out(&mut self, by: u32) {
        if self.fenced_by.is_some() {
            return;
        }
        self.fenced_by = Some(by);
        // As `lose_lease` does: the epoch ends here, and no claim of this
        // incarnation is asked for or kept.
        if self.phase == Phase::Holding {
            self.epoch_floor = self.counter + 1;
            self.deadline = None;
        }
        self.told.clear();
        if self.phase != Phase::Killing {
            // Always a kill, even when the status shows nothing running:
            // the kill's confirmation (no process left here) is what the
            // rejoin waits for.
            self.phase = Phase::Killing;
            self.kill_failed = false;
            self.out.push(Command::KillAllNow);
        }
        self.hurry();
    }

    /// The kill after a fence is confirmed: become the next incarnation, as
    /// a restart of `mosha` would (see the module doc, step 2).
    pub(super) fn rejoin(&mut self, by: u32) {
        let fenced = self.durable.incarnation;
        let mut next = Ranked::new(
            self.me,
            self.params.clone(),
            self.durable.config.clone(),
            Some(self.durable.clone()),
            self.own.clone(),
            self.now,
        );
        next.rules = self.rules;
        // What the node knows of its outside, not of its incarnation: the
        // adopted hactl (a restart reads it again from disk) and the
        // membership source's last view.
        next.hactl = self.hactl.take();
        next.live = self.live.take();
        // The executor says only when its watchdog changes: a lost one is
        // still lost in the new incarnation.
        next.watchdog_up = self.watchdog_up;
        next.tap = self.tap.take();
        // Durable versions keep growing across the rejoin: an answer to a
        // persist of the fenced incarnation that arrives late must never
        // count as the new incarnation's persist (its record would then be
        // published before the new incarnation is on disk).
        next.durable_version = self.durable_version + 1;
        next.emitted_version = self.durable_version;
        let incarnation = next.durable.incarnation;
        let mut out = std::mem::take(&mut self.out);
        out.push(Command::Log(RankedNotice::Rejoining { by, fenced, incarnation }));
        out.append(&mut next.out);
        next.out = out;
        *self = next;
    }
}
