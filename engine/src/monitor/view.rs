//! One cycle's observation of the cluster, and the view built from it.
//!
//! The driver reads every member's `clstat` (through the shared filesystem)
//! and reports, per node, what it found. This module turns that into the
//! consolidated [`Hastat`] the policy decides on, remembering across cycles
//! what must be remembered:
//!
//! * **Members only.** Status of nodes that are not members is ignored, as in
//!   the original (it only read nodes listed up in `/proc/hpc`). `members` is
//!   a set: order and repeats do not matter.
//! * **Missing** (no `clstat` file) contributes nothing, as in the original:
//!   a node whose daemon exited cleanly runs nothing.
//! * **Unreadable** is "unknown", not "not running" (spec W3). If a copy was
//!   read earlier while the node stayed a member, that last good copy stands
//!   in for it; otherwise the node is *blind* and the policy must not assume
//!   its groups are absent. A member with no entry in `nodes` was not
//!   observed and is treated as unreadable.
//! * **Stale** (spec §5.2): a member other than `me` whose `clstat` is older
//!   than the timeout. A stale *episode* lasts from the first stale reading
//!   until a fresh reading or until the node leaves membership; the monitor
//!   fences at most once per episode.

use super::action::Notice;
use crate::hactl::Hactl;
use crate::hastat::{Hastat, Unknown};
use crate::status::ClStat;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the driver found for one node's `clstat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Read and parsed; `age` = now − mtime, computed by the driver. Shared:
    /// an unchanged file is the same status cycle after cycle, and the
    /// monitor keeps it as the node's last good copy without copying it.
    Read { clstat: Arc<ClStat>, age: Millis },
    /// No file.
    Missing,
    /// The file could not be read (I/O error, timeout, ...).
    Unreadable { reason: String },
}

/// Everything the monitor learns in one cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub now: Millis,
    /// This node.
    pub me: u32,
    /// Nodes that are up (membership).
    pub members: Vec<u32>,
    /// `clstat` of (at least) every member.
    pub nodes: BTreeMap<u32, NodeStatus>,
    /// The local `hactl` after replication, as parsed by the driver (its last
    /// good copy when the newest does not parse); `None` when there is none.
    pub hactl: Option<Hactl>,
}

/// A member whose `clstat` is older than the timeout this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleNode {
    pub node: u32,
    pub age: Millis,
    /// Already fenced during this stale episode.
    pub fenced: bool,
}

/// The input of a policy for one cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View<'a> {
    pub now: Millis,
    pub me: u32,
    /// Members, ascending, without repeats.
    pub members: Vec<u32>,
    /// Members' groups (last good copies standing in for unreadable nodes).
    pub hastat: std::sync::Arc<Hastat>,
    /// Unreadable members with no last good copy: their groups are unknown.
    pub blind: Vec<u32>,
    /// Stale members, ascending.
    pub stale: Vec<StaleNode>,
    /// Time since the monitor started.
    pub uptime: Millis,
    pub hactl: Option<&'a Hactl>,
}

/// What the view remembers between cycles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewMemory {
    last_good: BTreeMap<u32, Arc<ClStat>>,
    /// Nodes in a stale episode → fenced yet in this episode.
    episodes: BTreeMap<u32, bool>,
}

impl ViewMemory {
    /// Build this cycle's view; `timeout` is the staleness limit. Also
    /// returns log-worthy changes (stale episodes, unreadable members).
    /// With `own`, `obs.me` is a member whose status is `own`.
    pub fn observe<'a>(
        &mut self,
        obs: &'a Observation,
        own: Option<&ClStat>,
        timeout: Millis,
        started: Millis,
    ) -> (View<'a>, Vec<Notice>) {
        let mut members: BTreeSet<u32> = obs.members.iter().copied().collect();
        let own = own
            .map(|clstat| NodeStatus::Read { clstat: Arc::new(clstat.clone()), age: Millis::ZERO });
        if own.is_some() {
            members.insert(obs.me);
        }
        let mut events = Vec::new();
        self.last_good.retain(|n, _| members.contains(n));
        let left: Vec<u32> =
            self.episodes.keys().copied().filter(|n| !members.contains(n)).collect();
        for node in left {
            self.episodes.remove(&node);
            events.push(Notice::StaleEnded { node });
        }
        let mut hastat = Hastat::default();
        let mut blind = Vec::new();
        let mut stale = Vec::new();
        let not_observed = NodeStatus::Unreadable { reason: "not observed".into() };
        for &node in &members {
            let status = match &own {
                Some(own) if node == obs.me => own,
                _ => obs.nodes.get(&node).unwrap_or(&not_observed),
            };
            match status {
                NodeStatus::Read { clstat, age } => {
                    if *age > timeout && node != obs.me {
                        let fenced = match self.episodes.get(&node) {
                            Some(&fenced) => fenced,
                            None => {
                                self.episodes.insert(node, false);
                                events.push(Notice::Stale { node, age: *age });
                                false
                            }
                        };
                        stale.push(StaleNode { node, age: *age, fenced });
                    } else if self.episodes.remove(&node).is_some() {
                        events.push(Notice::StaleEnded { node });
                    }
                    hastat.add_node(node, clstat);
                    self.last_good.insert(node, Arc::clone(clstat));
                }
                NodeStatus::Missing => {
                    self.last_good.remove(&node);
                }
                NodeStatus::Unreadable { reason } => {
                    let last = self.last_good.get(&node);
                    match last {
                        Some(clstat) => hastat.add_node(node, clstat),
                        None => blind.push(node),
                    }
                    let unknown =
                        Unknown { reason: reason.clone(), last_good_used: last.is_some() };
                    events.push(Notice::Unreadable {
                        node,
                        reason: reason.clone(),
                        last_good_used: unknown.last_good_used,
                    });
                    hastat.unknown.insert(node, unknown);
                }
            }
        }
        let view = View {
            now: obs.now,
            me: obs.me,
            members: members.into_iter().collect(),
            hastat: std::sync::Arc::new(hastat),
            blind,
            stale,
            uptime: obs.now.saturating_sub(started),
            hactl: obs.hactl.as_ref(),
        };
        (view, events)
    }

    /// Record that `node` was fenced, so this episode does not fence it again.
    pub fn mark_fenced(&mut self, node: u32) {
        if let Some(fenced) = self.episodes.get_mut(&node) {
            *fenced = true;
        }
    }
}
