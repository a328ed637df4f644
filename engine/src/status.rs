//! The `clstat` status file: one line per resource group,
//! `Cluster::Init::Group <group> <level> <STATE>`.
//!
//! The node daemon writes it; the cluster layer reads every node's copy. The
//! parser is lenient on purpose: lines of other classes (the original also
//! wrote `Cluster::Init::Process` lines) are skipped, and an unknown state
//! word is kept verbatim rather than rejected, because a reader must never
//! confuse "a state I do not know" with "not running".

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The class word that starts every group line.
pub const GROUP_CLASS: &str = "Cluster::Init::Group";

/// Group states as published in `clstat` (spec §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GroupState {
    Configured,
    Starting,
    Checking,
    Done,
    Passed,
    Failed,
    Stopping,
    Dumping,
    Halting,
    /// A state word this version does not know, kept as read.
    Other(String),
}

impl GroupState {
    pub fn as_str(&self) -> &str {
        match self {
            GroupState::Configured => "CONFIGURED",
            GroupState::Starting => "STARTING",
            GroupState::Checking => "CHECKING",
            GroupState::Done => "DONE",
            GroupState::Passed => "PASSED",
            GroupState::Failed => "FAILED",
            GroupState::Stopping => "STOPPING",
            GroupState::Dumping => "DUMPING",
            GroupState::Halting => "HALTING",
            GroupState::Other(s) => s,
        }
    }

    pub fn parse(word: &str) -> GroupState {
        match word {
            "CONFIGURED" => GroupState::Configured,
            "STARTING" => GroupState::Starting,
            "CHECKING" => GroupState::Checking,
            "DONE" => GroupState::Done,
            "PASSED" => GroupState::Passed,
            "FAILED" => GroupState::Failed,
            "STOPPING" => GroupState::Stopping,
            "DUMPING" => GroupState::Dumping,
            "HALTING" => GroupState::Halting,
            other => GroupState::Other(other.to_string()),
        }
    }

    /// A settled state: the group has finished its last level change.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            GroupState::Done | GroupState::Passed | GroupState::Failed | GroupState::Configured
        )
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One group's published status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub level: String,
    pub state: GroupState,
}

/// A whole `clstat` file: group name → status, in name order so that the
/// rendered file is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClStat {
    pub groups: BTreeMap<String, GroupStatus>,
}

impl ClStat {
    pub fn get(&self, group: &str) -> Option<&GroupStatus> {
        self.groups.get(group)
    }

    /// Render in the original format, one line per group, sorted by name.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (group, st) in &self.groups {
            out.push_str(GROUP_CLASS);
            out.push(' ');
            out.push_str(group);
            out.push(' ');
            out.push_str(&st.level);
            out.push(' ');
            out.push_str(st.state.as_str());
            out.push('\n');
        }
        out
    }

    /// Parse a `clstat` file. Never fails: lines that are not well-formed
    /// group lines are skipped (see [`ClStat::parse_strict`] to see them).
    pub fn parse(text: &str) -> ClStat {
        Self::parse_strict(text).0
    }

    /// Parse, also returning the 1-based numbers of lines that were neither
    /// blank, nor another class, nor a well-formed group line.
    pub fn parse_strict(text: &str) -> (ClStat, Vec<usize>) {
        let mut stat = ClStat::default();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            let Some(class) = words.next() else { continue };
            if class != GROUP_CLASS {
                if !class.starts_with("Cluster::Init::") {
                    bad.push(i + 1);
                }
                continue;
            }
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some(group), Some(level), Some(state), None) => {
                    stat.groups.insert(
                        group.to_string(),
                        GroupStatus { level: level.to_string(), state: GroupState::parse(state) },
                    );
                }
                _ => bad.push(i + 1),
            }
        }
        (stat, bad)
    }

    /// The client-side status query of the original (spec §5.1): filter by
    /// group and/or level; the filtered column is omitted.
    pub fn query(&self, group: Option<&str>, level: Option<&str>) -> String {
        let mut out = String::new();
        for (g, st) in &self.groups {
            if group.is_some_and(|want| want != g) || level.is_some_and(|want| want != st.level) {
                continue;
            }
            let mut cols: Vec<&str> = Vec::with_capacity(3);
            if group.is_none() {
                cols.push(g);
            }
            if level.is_none() {
                cols.push(&st.level);
            }
            cols.push(st.state.as_str());
            out.push_str(&cols.join(" "));
            if group.is_none() || level.is_none() {
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_group_lines_and_skips_other_classes() {
        let text = "Cluster::Init::Group foo start DONE\n\
                    Cluster::Init::Process foo1 start DONE\n\
                    Cluster::Init::Group bar stop RUNNING\n\
                    garbage\n\
                    Cluster::Init::Group short\n";
        let (stat, bad) = ClStat::parse_strict(text);
        assert_eq!(stat.groups.len(), 2);
        assert_eq!(stat.get("foo").map(|s| &s.state), Some(&GroupState::Done));
        assert_eq!(stat.get("bar").map(|s| &s.state), Some(&GroupState::Other("RUNNING".into())));
        assert_eq!(bad, vec![4, 5]);
    }

    #[test]
    fn render_parse_round_trip_and_query_forms() {
        let mut stat = ClStat::default();
        for (g, l, s) in [("a", "1", "DONE"), ("b", "0", "STARTING"), ("0", "x", "FAILED")] {
            stat.groups
                .insert(g.into(), GroupStatus { level: l.into(), state: GroupState::parse(s) });
        }
        let text = stat.render();
        assert_eq!(ClStat::parse(&text), stat);
        assert_eq!(stat.query(None, None), "0 x FAILED\na 1 DONE\nb 0 STARTING\n");
        assert_eq!(stat.query(Some("a"), None), "1 DONE\n");
        assert_eq!(stat.query(None, Some("0")), "b STARTING\n");
        assert_eq!(stat.query(Some("a"), Some("1")), "DONE");
    }
}
