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
    /// Under `ranked` with heartbeat files, every node with a heartbeat
    /// file is listed (suspicion is the machine's, by counters on this
    /// node's clock), so a dead node never leaves the list: its down and up
    /// are the machine's revocation and its lifting. With another
    /// membership source the source's own changes count.
    pub(super) fn ranked_membership(&mut self, notice: &crate::monitor::ranked::RankedNotice) {
        use crate::monitor::ranked::RankedNotice;
        if self.cfg.membership != MembershipSource::HeartbeatFiles {
            return;
        }
        let suspect = match &self.cfg.policy {
            PolicyConfig::Ranked(p) => p.suspect_after,
            _ => return,
        };
        let (node, change, reason) = match notice {
            RankedNotice::Revoked { node, .. } => (
                *node,
                Change::Down,
                format!(
                    "missed heartbeats: no new heartbeat counter within {:.1} s",
                    suspect.0 as f64 / 1000.0
                ),
            ),
            RankedNotice::RevocationLifted { node } => {
                (*node, Change::Up, "its heartbeats are acknowledged again".to_string())
            }
            _ => return,
        };
        let members = self.observer.view().into_iter().filter(|&n| n != node).collect();
        self.events
            .push_back(ClusterEvent::Membership { members, changes: vec![(node, change, reason)] });
    }
}
