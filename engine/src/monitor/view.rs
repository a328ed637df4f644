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
use std::collections::BTreeMap;
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
    /// Shared: a driver hands the same `Arc` while the file is unchanged,
    /// which lets the policy skip a scan whose inputs did not change.
    pub hactl: Option<Arc<Hactl>>,
}

/// `list` with `extra` added, ascending and without repeats (a member set
/// as the monitor walks it). Why not push, sort and dedup: membership
/// lists come sorted, and sorting 100 members three times per cycle was a
/// twentieth of a large simulation; a sorted list costs one check and
/// one binary search here. Same result for any input.
pub fn member_set(list: &[u32], extra: Option<u32>) -> Vec<u32> {
    let mut set = Vec::with_capacity(list.len() + 1);
    set.extend_from_slice(list);
    if set.windows(2).all(|w| w[0] < w[1]) {
        if let Some(extra) = extra {
            if let Err(i) = set.binary_search(&extra) {
                set.insert(i, extra);
            }
        }
    } else {
        set.extend(extra);
        set.sort_unstable();
        set.dedup();
    }
    set
}

/// A `clstat` of this age (ms) is stale under this timeout (ms): strictly
/// older than it (spec §5.2). The one definition the monitor and every
/// report (`mosha status`) share.
pub fn is_stale(age: Millis, timeout: Millis) -> bool {
    age > timeout
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
    pub hastat: Arc<Hastat>,
    /// Unreadable members with no last good copy: their groups are unknown.
    pub blind: Vec<u32>,
    /// Stale members, ascending.
    pub stale: Vec<StaleNode>,
    /// Time since the monitor started.
    pub uptime: Millis,
    pub hactl: Option<&'a Arc<Hactl>>,
}

/// What the view remembers between cycles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewMemory {
    /// Nodes in a stale episode → fenced yet in this episode.
    episodes: BTreeMap<u32, bool>,
    /// The last view's hastat and what it was built from.
    built: Built,
}

/// The last hastat and, per member in ascending order, the clstat it added
/// (`None`: nothing). That clstat is also the member's *last good copy*:
/// the one read last while it stayed a member, until a read finds no file.
///
/// Why: in a steady cluster the files do not change between cycles, so
/// each member costs one pointer comparison and the view is the same
/// `Arc`; a member whose clstat changed is swapped out and in, never the
/// whole view rebuilt (it is the monitor's hottest path at 100 nodes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Built {
    hastat: Arc<Hastat>,
    from: Vec<(u32, Option<Arc<ClStat>>)>,
}

type Sources = Vec<(u32, Option<Arc<ClStat>>)>;

/// A member's clstat taken out of the view and the one put in.
type Change = (u32, Option<Arc<ClStat>>, Option<Arc<ClStat>>);

/// The same contribution to the view: the same `Arc`, or equal content.
fn same_source(a: &Option<Arc<ClStat>>, b: &Option<Arc<ClStat>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

impl Built {
    /// The in-place form of [`Built::update`]: `from` are the last view's
    /// sources already brought up to date (same nodes), `changes` what
    /// differs, ascending by node.
    fn apply(&mut self, from: Sources, changes: Vec<Change>, unknown: BTreeMap<u32, Unknown>) {
        if !changes.is_empty() || self.hastat.unknown != unknown {
            let hastat = Arc::make_mut(&mut self.hastat);
            for (node, before, after) in &changes {
                if let Some(before) = before {
                    hastat.remove_node(*node, before);
                }
                if let Some(after) = after {
                    hastat.add_node(*node, after);
                }
            }
            hastat.unknown = unknown;
        }
        self.from = from;
    }

    /// This member's clstat in the last view.
    fn before(&self, node: u32) -> Option<&Arc<ClStat>> {
        let i = self.from.binary_search_by_key(&node, |(n, _)| *n).ok()?;
        self.from[i].1.as_ref()
    }

    /// Bring the hastat from `prev` (what it was built from) up to date with
    /// `from` and `unknown`, changing only what differs.
    fn update(&mut self, prev: &Sources, from: Sources, unknown: BTreeMap<u32, Unknown>) {
        let same = same_source;
        let mut old = prev.iter().peekable();
        // (node, clstat to take out, clstat to put in)
        let mut changes: Vec<(u32, Option<&_>, Option<&_>)> = Vec::new();
        for (node, new) in &from {
            while let Some((gone, before)) = old.next_if(|(n, _)| n < node) {
                changes.push((*gone, before.as_ref(), None));
            }
            match old.next_if(|(n, _)| n == node) {
                Some((_, before)) if same(before, new) => {}
                Some((_, before)) => changes.push((*node, before.as_ref(), new.as_ref())),
                None => changes.push((*node, None, new.as_ref())),
            }
        }
        changes.extend(old.map(|(gone, before)| (*gone, before.as_ref(), None)));
        if !changes.is_empty() || self.hastat.unknown != unknown {
            let hastat = Arc::make_mut(&mut self.hastat);
            for (node, before, after) in changes {
                if let Some(before) = before {
                    hastat.remove_node(node, before);
                }
                if let Some(after) = after {
                    hastat.add_node(node, after);
                }
            }
            hastat.unknown = unknown;
        }
        self.from = from;
    }
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
        let members = member_set(&obs.members, own.map(|_| obs.me));
        let mut events = Vec::new();
        if !self.episodes.is_empty() {
            let is_member = |n: &u32| members.binary_search(n).is_ok();
            let left: Vec<u32> = self.episodes.keys().copied().filter(|n| !is_member(n)).collect();
            for node in left {
                self.episodes.remove(&node);
                events.push(Notice::StaleEnded { node });
            }
        }
        // This node's own status is built fresh every cycle: keep the
        // previous copy when it has not changed, so the view need not.
        let own = own.map(|clstat| {
            let clstat = match self.built.before(obs.me) {
                Some(before) if **before == *clstat => Arc::clone(before),
                _ => Arc::new(clstat.clone()),
            };
            NodeStatus::Read { clstat, age: Millis::ZERO }
        });
        // Members, the last view's sources and the observed statuses are
        // all sorted by node: one merge walk, no lookups. When the members
        // are those of the last view (the common case) its sources are
        // updated in place: a member whose clstat is the same `Arc` costs
        // one pointer comparison, and nothing is allocated.
        let mut prev = std::mem::take(&mut self.built.from);
        let in_place =
            prev.len() == members.len() && prev.iter().map(|(n, _)| n).eq(members.iter());
        let mut last_at = 0;
        let mut observed = obs.nodes.iter().peekable();
        let mut from = Vec::with_capacity(if in_place { 0 } else { members.len() });
        let mut changes: Vec<Change> = Vec::new();
        let mut unknown = BTreeMap::new();
        let mut blind = Vec::new();
        let mut stale = Vec::new();
        let not_observed = NodeStatus::Unreadable { reason: "not observed".into() };
        for (i, &node) in members.iter().enumerate() {
            if !in_place {
                while prev.get(last_at).is_some_and(|(n, _)| *n < node) {
                    last_at += 1;
                }
            }
            let at = if in_place { i } else { last_at };
            let last = prev.get(at).filter(|(n, _)| *n == node).and_then(|(_, c)| c.as_ref());
            while observed.next_if(|(n, _)| **n < node).is_some() {}
            let seen = observed.next_if(|(n, _)| **n == node).map(|(_, s)| s);
            let status = match &own {
                Some(own) if node == obs.me => own,
                _ => seen.unwrap_or(&not_observed),
            };
            // What the member adds to the view: its clstat, nothing, or
            // its last good copy (unchanged).
            let source = match status {
                NodeStatus::Read { clstat, age } => {
                    if is_stale(*age, timeout) && node != obs.me {
                        let fenced = match self.episodes.get(&node) {
                            Some(&fenced) => fenced,
                            None => {
                                self.episodes.insert(node, false);
                                events.push(Notice::Stale { node, age: *age });
                                false
                            }
                        };
                        stale.push(StaleNode { node, age: *age, fenced });
                    } else if !self.episodes.is_empty() && self.episodes.remove(&node).is_some() {
                        events.push(Notice::StaleEnded { node });
                    }
                    Some(Some(clstat))
                }
                NodeStatus::Missing => Some(None),
                NodeStatus::Unreadable { reason } => {
                    if !in_place {
                        from.push((node, last.cloned()));
                    }
                    if last.is_none() {
                        blind.push(node);
                    }
                    let last_good_used = last.is_some();
                    events.push(Notice::Unreadable {
                        node,
                        reason: reason.clone(),
                        last_good_used,
                    });
                    unknown.insert(node, Unknown { reason: reason.clone(), last_good_used });
                    None
                }
            };
            match (source, in_place) {
                (None, _) => {}
                (Some(new), false) => from.push((node, new.cloned())),
                (Some(new), true) => {
                    let slot = &mut prev[i].1;
                    let kept = match (&*slot, new) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        (None, None) => true,
                        _ => false,
                    };
                    if !kept {
                        let before = std::mem::replace(slot, new.cloned());
                        if !same_source(&before, slot) {
                            changes.push((node, before, new.cloned()));
                        }
                    }
                }
            }
        }
        if in_place {
            self.built.apply(prev, changes, unknown);
        } else {
            self.built.update(&prev, from, unknown);
        }
        let view = View {
            now: obs.now,
            me: obs.me,
            members,
            hastat: Arc::clone(&self.built.hastat),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{GroupState, GroupStatus};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// What one node shows in one cycle.
    #[derive(Debug, Clone)]
    enum Shown {
        /// Not a member.
        Gone,
        /// A member whose clstat is the pool entry, read afresh (a new
        /// `Arc` with equal content) or the same `Arc` as before.
        Read {
            pick: usize,
            fresh: bool,
        },
        Missing,
        Unreadable,
        /// A member with no entry in the observation.
        NotObserved,
    }

    fn shown() -> impl Strategy<Value = Shown> {
        prop_oneof![
            Just(Shown::Gone),
            (0..5usize, any::<bool>()).prop_map(|(pick, fresh)| Shown::Read { pick, fresh }),
            (0..5usize).prop_map(|pick| Shown::Read { pick, fresh: false }),
            Just(Shown::Missing),
            Just(Shown::Unreadable),
            Just(Shown::NotObserved),
        ]
    }

    fn pool() -> Vec<Arc<ClStat>> {
        let stat = |lines: &[(&str, &str, GroupState)]| {
            let mut c = ClStat::default();
            for (g, l, s) in lines {
                let st = GroupStatus { level: l.to_string(), state: s.clone() };
                c.groups.insert(g.to_string(), st);
            }
            Arc::new(c)
        };
        vec![
            stat(&[]),
            stat(&[("a", "start", GroupState::Done)]),
            stat(&[("a", "stop", GroupState::Done), ("b", "plan", GroupState::Done)]),
            stat(&[("a", "test", GroupState::Passed), ("c", "start", GroupState::Configured)]),
            stat(&[("b", "start", GroupState::Starting), ("c", "stop", GroupState::Stopping)]),
        ]
    }

    /// The view as the monitor built it before it was incremental: from
    /// scratch every cycle, with a separate map of last good copies.
    #[derive(Default)]
    struct Scratch {
        last_good: BTreeMap<u32, Arc<ClStat>>,
    }

    impl Scratch {
        fn observe(&mut self, obs: &Observation) -> (Hastat, Vec<u32>) {
            let members: BTreeSet<u32> = obs.members.iter().copied().collect();
            self.last_good.retain(|n, _| members.contains(n));
            let mut hastat = Hastat::default();
            let mut blind = Vec::new();
            for &node in &members {
                let reason = match obs.nodes.get(&node) {
                    Some(NodeStatus::Read { clstat, .. }) => {
                        hastat.add_node(node, clstat);
                        self.last_good.insert(node, Arc::clone(clstat));
                        continue;
                    }
                    Some(NodeStatus::Missing) => {
                        self.last_good.remove(&node);
                        continue;
                    }
                    Some(NodeStatus::Unreadable { reason }) => reason.clone(),
                    None => "not observed".to_string(),
                };
                let last = self.last_good.get(&node);
                match last {
                    Some(c) => hastat.add_node(node, c),
                    None => blind.push(node),
                }
                hastat.unknown.insert(node, Unknown { reason, last_good_used: last.is_some() });
            }
            (hastat, blind)
        }
    }

    proptest! {
        /// Swapping only the members whose clstat changed gives the view a
        /// rebuild from scratch gives, cycle after cycle.
        #[test]
        fn incremental_view_equals_a_rebuild(
            cycles in prop::collection::vec(prop::collection::vec(shown(), 5), 1..25),
        ) {
            let pool = pool();
            let mut memory = ViewMemory::default();
            let mut scratch = Scratch::default();
            let mut held: BTreeMap<u32, Arc<ClStat>> = BTreeMap::new();
            for (t, cycle) in cycles.iter().enumerate() {
                let mut obs = Observation {
                    now: Millis(t as u64 * 1000),
                    me: 99,
                    members: Vec::new(),
                    nodes: BTreeMap::new(),
                    hactl: None,
                };
                for (i, shown) in cycle.iter().enumerate() {
                    let node = i as u32 + 1;
                    let status = match shown {
                        Shown::Gone => continue,
                        Shown::NotObserved => None,
                        Shown::Missing => Some(NodeStatus::Missing),
                        Shown::Unreadable => {
                            Some(NodeStatus::Unreadable { reason: format!("EIO {node}") })
                        }
                        Shown::Read { pick, fresh } => {
                            let clstat = match held.get(&node) {
                                Some(c) if !fresh && **c == *pool[*pick] => Arc::clone(c),
                                _ => Arc::new((*pool[*pick]).clone()),
                            };
                            held.insert(node, Arc::clone(&clstat));
                            Some(NodeStatus::Read { clstat, age: Millis(0) })
                        }
                    };
                    obs.members.push(node);
                    if let Some(status) = status {
                        obs.nodes.insert(node, status);
                    }
                }
                let (view, _) = memory.observe(&obs, None, Millis(60_000), Millis(0));
                let (hastat, blind) = scratch.observe(&obs);
                prop_assert_eq!(&*view.hastat, &hastat, "cycle {}", t);
                prop_assert_eq!(view.blind, blind, "cycle {}", t);
            }
        }
    }
}
