//! `hastat`: the cluster layer's consolidated view, `group → node →
//! {level, state}`, built from the `clstat` of several nodes (spec §3.5).
//!
//! Lines that mean "idle" are left out while building, as in the original:
//! state `CONFIGURED` (never told anything) and `stop DONE` (stopped). So a
//! group present in the map is *non-idle* somewhere: running, planning,
//! testing, failed or still stopping.
//!
//! The monitor writes it every cycle for humans and monitoring tools; nothing
//! reads it back for decisions. The original dumped a Perl structure; we
//! serialise with serde (the driver writes JSON). Maps are `BTreeMap`s so the
//! output is deterministic. Nodes whose `clstat` could not be read are listed
//! under `unknown`, so a reader can tell "not running there" from "could not
//! look" (the original conflated them, spec W3).

use crate::status::{ClStat, GroupState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One group's status on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeGroup {
    pub level: String,
    /// Written as the clstat word (`DONE`, `RUNNING`, ...).
    #[serde(with = "state_word")]
    pub state: GroupState,
}

/// Why a node's groups are not (or not freshly) in the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    /// What the driver reported (I/O error text, "not observed", ...).
    pub reason: String,
    /// The node's groups shown are the last copy that could be read.
    pub last_good_used: bool,
}

/// The consolidated view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hastat {
    pub groups: BTreeMap<String, BTreeMap<u32, NodeGroup>>,
    /// Nodes whose current `clstat` could not be read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unknown: BTreeMap<u32, Unknown>,
}

/// Does this `(level, state)` count as idle (left out of hastat)?
pub fn is_idle(level: &str, state: &GroupState) -> bool {
    *state == GroupState::Configured || (level == "stop" && *state == GroupState::Done)
}

/// Does a group's `level STATE` count as running there: not idle (see
/// [`is_idle`]) and at a level other than plan/test/stop (those levels
/// check or stop a group, they do not run it: the original's
/// `plan → test → start → stop` sequence). What `mosha status` shows as
/// "running on" and the group-move count rest on it.
pub fn counts_as_running(level: &str, state: &GroupState) -> bool {
    !is_idle(level, state) && !matches!(level, "plan" | "test" | "stop")
}

impl Hastat {
    /// Build from `(node, clstat)` pairs.
    pub fn build<'a>(nodes: impl IntoIterator<Item = (u32, &'a ClStat)>) -> Hastat {
        let mut hastat = Hastat::default();
        for (node, clstat) in nodes {
            hastat.add_node(node, clstat);
        }
        hastat
    }

    /// Add one node's non-idle groups (replacing what that node had before).
    pub fn add_node(&mut self, node: u32, clstat: &ClStat) {
        for (group, st) in &clstat.groups {
            if is_idle(&st.level, &st.state) {
                continue;
            }
            self.groups
                .entry(group.clone())
                .or_default()
                .insert(node, NodeGroup { level: st.level.clone(), state: st.state.clone() });
        }
    }

    /// Take back what [`Hastat::add_node`] added for `node` from `clstat`
    /// (groups left with no node go too), so a view can swap one node's
    /// status without being rebuilt.
    pub fn remove_node(&mut self, node: u32, clstat: &ClStat) {
        for (group, st) in &clstat.groups {
            if is_idle(&st.level, &st.state) {
                continue;
            }
            if let Some(nodes) = self.groups.get_mut(group) {
                nodes.remove(&node);
                if nodes.is_empty() {
                    self.groups.remove(group);
                }
            }
        }
    }

    /// Nodes where `group` is non-idle, ascending.
    pub fn nodes_of(&self, group: &str) -> Vec<u32> {
        self.groups.get(group).map(|m| m.keys().copied().collect()).unwrap_or_default()
    }

    pub fn get(&self, group: &str, node: u32) -> Option<&NodeGroup> {
        self.groups.get(group).and_then(|m| m.get(&node))
    }
}

/// Serialise a [`GroupState`] as its clstat word.
mod state_word {
    use crate::status::GroupState;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(state: &GroupState, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(state.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<GroupState, D::Error> {
        let word = String::deserialize(d)?;
        Ok(GroupState::parse(&word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The t/master fixture clstats of nodes 1 and 2.
    fn fixture() -> (ClStat, ClStat) {
        let node1 = ClStat::parse(
            "Cluster::Init::Group foo start DONE\n\
             Cluster::Init::Group bar start DONE\n\
             Cluster::Init::Group del start DONE\n\
             Cluster::Init::Group pln plan DONE\n\
             Cluster::Init::Group bad test FAILED\n",
        );
        let node2 = ClStat::parse(
            "Cluster::Init::Group foo stop DONE\n\
             Cluster::Init::Process foo1 stop DONE\n\
             Cluster::Init::Group bar stop RUNNING\n\
             Cluster::Init::Group baz test PASSED\n",
        );
        (node1, node2)
    }

    /// t/1060hastat.t: consolidation and filtering.
    #[test]
    fn t1060_fixture() {
        let (node1, node2) = fixture();
        let h = Hastat::build([(1, &node1), (2, &node2)]);
        let ng = |l: &str, s: &str| NodeGroup { level: l.into(), state: GroupState::parse(s) };
        assert_eq!(h.get("foo", 1), Some(&ng("start", "DONE")));
        assert_eq!(h.get("bar", 1), Some(&ng("start", "DONE")));
        assert_eq!(h.get("bar", 2), Some(&ng("stop", "RUNNING")));
        assert_eq!(h.get("baz", 2), Some(&ng("test", "PASSED")));
        // Implied: foo@2 is `stop DONE` (idle); node 3 contributes nothing.
        assert_eq!(h.get("foo", 2), None);
        assert_eq!(h.nodes_of("foo"), vec![1]);
        assert_eq!(h.nodes_of("bar"), vec![1, 2]);
        assert_eq!(h.groups.len(), 6);
    }

    #[test]
    fn configured_is_idle_and_json_is_deterministic() {
        let (node1, node2) = fixture();
        let mut extra = ClStat::parse("Cluster::Init::Group idle start CONFIGURED\n");
        extra.groups.extend(node2.groups.clone());
        let mut h = Hastat::build([(2, &extra), (1, &node1)]);
        h.unknown.insert(3, Unknown { reason: "EIO".into(), last_good_used: false });
        assert!(!h.groups.contains_key("idle"));
        let json = serde_json::to_string_pretty(&h).expect("serialises");
        insta::assert_snapshot!(json);
        let back: Hastat = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, h);
    }
}
