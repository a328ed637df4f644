//! Membership changes as the driver sees them, each with its reason, for
//! the transition history and the operator's log (issue 11: "node down/up
//! logged once each, with the reason"; issue 12: numbered transitions).
//! The numbering is not done here: a node's own view only says what
//! changed for it; [`crate::monitor::transitions`] makes one history.

use super::*;
use crate::monitor::transitions::{heartbeat_reason, Change};

/// Each heartbeat-file member's heartbeat age at the read (`None`: no
/// readable heartbeat); `None` for a membership source's own answer.
pub(super) fn heartbeat_ages(report: &MembershipReport) -> Option<BTreeMap<u32, Option<Millis>>> {
    match report {
        MembershipReport::Members(_) => None,
        MembershipReport::Heartbeats { read_at, beats } => Some(
            beats
                .iter()
                .map(|(node, read)| {
                    let age = match read {
                        Ok(Some(v)) => Some(read_at.since(v.mtime)),
                        _ => None,
                    };
                    (*node, age)
                })
                .collect(),
        ),
    }
}

impl ClusterDriver {
    /// Compare this cycle's members with the last cycle's; queue one
    /// [`ClusterEvent::Membership`] naming every change and its reason.
    /// The first view is queued too, with no changes: the transition
    /// recorder needs its view to know whether it records (a `mosha` that
    /// starts as the lowest node must reconcile the history with it).
    pub(super) fn observe_membership(
        &mut self,
        members: &[u32],
        ages: Option<BTreeMap<u32, Option<Millis>>>,
    ) {
        let first = !self.observer.seen();
        // The same list as last cycle: nothing changed (the common case).
        if !first && self.observed == members {
            return;
        }
        self.observed.clear();
        self.observed.extend_from_slice(members);
        let changes = self.observer.observe(members);
        if changes.is_empty() && !first {
            return;
        }
        let timeout = self.timeout;
        let changes = changes
            .into_iter()
            .map(|(node, change)| {
                let reason = match (&ages, change) {
                    (None, Change::Down) => "the membership source lists it down".to_string(),
                    (None, Change::Up) => "the membership source lists it up".to_string(),
                    (Some(ages), Change::Down) => match ages.get(&node) {
                        Some(age) if self.ranked.is_none() => heartbeat_reason(*age, timeout),
                        _ => "its heartbeat file is gone or unreadable".to_string(),
                    },
                    (Some(_), Change::Up) => "its heartbeat is fresh again".to_string(),
                };
                (node, change, reason)
            })
            .collect();
        self.events.push_back(ClusterEvent::Membership { members: members.to_vec(), changes });
    }
}

impl ClusterDriver {
    /// Under `ranked` with heartbeat files, the membership view of the
    /// transition history is the machine's [`Ranked::heard`]: every member
    /// whose current incarnation this node hears (seen, not revoked), so a
    /// node's `down` is this node's revocation of that incarnation (no new
    /// counter within `suspect_after`, on this node's clock) and its `up`
    /// the first sighting of an incarnation, or a lifted revocation. The
    /// heartbeat files' presence is not used: a file that appears, or
    /// cannot be read once, says nothing about the counter (it gave an `up`
    /// and, 1-12 ms later, a `down` at every join), and a new incarnation
    /// that cleared its predecessor's revocation was never recorded `up`.
    /// Called after each pump of the machine; queues one
    /// [`ClusterEvent::Membership`] when the view changed (and the first
    /// view, with no changes, as [`ClusterDriver::observe_membership`]).
    ///
    /// [`Ranked::heard`]: crate::monitor::ranked::Ranked::heard
    pub(super) fn ranked_heard(&mut self) {
        if self.cfg.membership != MembershipSource::HeartbeatFiles {
            return;
        }
        let Some(h) = self.ranked.as_mut() else { return };
        let generation = h.machine.heard_generation();
        if h.heard_seen == Some(generation) {
            return;
        }
        h.heard_seen = Some(generation);
        let Some(h) = self.ranked.as_ref() else { return };
        let machine = &h.machine;
        let heard = machine.heard();
        let first = !self.observer.seen();
        // A node heard before and now under a new incarnation restarted
        // faster than suspicion: its crash is a `down` and its return an
        // `up` (NU1: a restart within 1 s recorded nothing at all).
        let incarnations: BTreeMap<u32, u64> = heard
            .iter()
            .filter(|&&n| n != self.cfg.me)
            .filter_map(|&n| machine.heard_incarnation(n).map(|i| (n, i)))
            .collect();
        let restarted: Vec<(u32, u64, u64)> = incarnations
            .iter()
            .filter_map(|(&n, &now)| {
                let was = *self.heard_incarnations.get(&n)?;
                (was != now && self.observed.contains(&n)).then_some((n, was, now))
            })
            .collect();
        self.heard_incarnations = incarnations;
        if !first && self.observed == heard && restarted.is_empty() {
            return;
        }
        let suspect = machine.params().suspect_after;
        let mut changes: Vec<_> = restarted
            .iter()
            .flat_map(|&(n, was, now)| {
                [
                    (n, Change::Down, format!("restarted: incarnation {was} replaced by {now}")),
                    (n, Change::Up, format!("its heartbeats are heard (incarnation {now})")),
                ]
            })
            .collect();
        let observed: Vec<_> = self
            .observer
            .observe(&heard)
            .into_iter()
            .map(|(node, change)| {
                let reason = match (change, machine.heard_incarnation(node)) {
                    (Change::Down, _) => format!(
                        "missed heartbeats: no new heartbeat counter within {:.1} s",
                        suspect.0 as f64 / 1000.0
                    ),
                    (Change::Up, Some(inc)) => {
                        format!("its heartbeats are heard (incarnation {inc})")
                    }
                    (Change::Up, None) => "its heartbeats are heard".to_string(),
                };
                (node, change, reason)
            })
            .collect();
        changes.extend(observed);
        self.observed.clear();
        self.observed.extend_from_slice(&heard);
        if changes.is_empty() && !first {
            return;
        }
        self.events.push_back(ClusterEvent::Membership { members: heard, changes });
    }
}
