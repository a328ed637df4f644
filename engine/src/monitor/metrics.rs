//! `compile_metrics` of OpenMosix::HA 0.555 (spec §6.1): the flags one node
//! derives for one group from the consolidated view and `hactl`.
//!
//! Faithful except that level `0` counts as a wanted level (the original's
//! Perl truthiness made it "absent", hence *deleted*). The original's inner
//! `needplan` branch under `islocal` is left out: it can never fire (a local
//! instance means `instances >= 1`).

use crate::hactl::Hactl;
use crate::hastat::{Hastat, NodeGroup};
use crate::status::GroupState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The flags of one group, from one node's viewpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Non-idle on some node.
    pub isactive: bool,
    /// Non-idle on this node.
    pub islocal: bool,
    /// Number of nodes where it is non-idle (stopping and planning included).
    pub instances: usize,
    // The following are only set when `islocal`.
    /// Another node shows it too.
    pub inconflict: bool,
    /// Local `plan DONE`.
    pub planned: bool,
    /// Local `test PASSED`, or `test DONE` (no test entries: default pass).
    pub passed: bool,
    /// Local `test FAILED`.
    pub failed: bool,
    /// Local state is not DONE, PASSED or FAILED.
    pub intransition: bool,
    /// Wanted, at a level other than the local one.
    pub chlevel: bool,
    /// Not in hactl at all.
    pub deleted: bool,
    // Set from any viewpoint.
    /// Wanted (not `stop`) and non-idle nowhere.
    pub needplan: bool,
}

/// Compute the flags of `group` as seen by node `me`.
pub fn compile_metrics(hastat: &Hastat, hactl: &Hactl, group: &str, me: u32) -> Metrics {
    let want = hactl.get(group).map(|w| w.level.as_str());
    metrics_of(hastat.groups.get(group), want, me)
}

/// The flags of one group from its hastat entry (`instances`, node →
/// status) and its wanted level, as seen by node `me`. Split from
/// [`compile_metrics`] so a policy walking hastat and hactl side by side
/// (both sorted by group) needs no lookups by name.
pub fn metrics_of(
    instances: Option<&BTreeMap<u32, NodeGroup>>,
    want: Option<&str>,
    me: u32,
) -> Metrics {
    let mut m = Metrics::default();
    if let Some(instances) = instances.filter(|i| !i.is_empty()) {
        m.isactive = true;
        m.instances = instances.len();
        if let Some(local) = instances.get(&me) {
            m.islocal = true;
            let (level, state) = (local.level.as_str(), &local.state);
            m.inconflict = m.instances > 1;
            m.planned = level == "plan" && *state == GroupState::Done;
            m.passed = level == "test" && matches!(state, GroupState::Passed | GroupState::Done);
            m.failed = level == "test" && *state == GroupState::Failed;
            m.intransition =
                !matches!(state, GroupState::Done | GroupState::Passed | GroupState::Failed);
            match want {
                Some(want) => m.chlevel = level != want,
                None => m.deleted = true,
            }
        }
    }
    m.needplan = want.is_some_and(|w| w != "stop") && m.instances == 0;
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::fixtures;

    /// Columns of the t/1100 tables: act, loc, inst, confl, plan, pass, fail,
    /// chlvl, needpl, del.
    type Row = (&'static str, bool, bool, usize, bool, bool, bool, bool, bool, bool, bool);

    fn check(me: u32, rows: &[Row]) {
        let hastat = fixtures::hastat();
        let hactl = fixtures::hactl();
        for &(g, act, loc, inst, confl, plan, pass, fail, chlvl, needpl, del) in rows {
            let m = compile_metrics(&hastat, &hactl, g, me);
            let got = (
                g,
                m.isactive,
                m.islocal,
                m.instances,
                m.inconflict,
                m.planned,
                m.passed,
                m.failed,
                m.chlevel,
                m.needplan,
                m.deleted,
            );
            assert_eq!(
                got,
                (g, act, loc, inst, confl, plan, pass, fail, chlvl, needpl, del),
                "node {me} group {g}"
            );
        }
    }

    const Y: bool = true;
    const N: bool = false;

    /// t/1100compile_metrics.t, viewpoint node 1.
    #[test]
    fn t1100_node1() {
        check(
            1,
            &[
                ("foo", Y, Y, 1, N, N, N, N, N, N, N),
                ("bar", Y, Y, 2, Y, N, N, N, Y, N, N),
                ("pln", Y, Y, 1, N, Y, N, N, Y, N, N),
                ("bad", Y, Y, 1, N, N, N, Y, Y, N, N),
                ("new", N, N, 0, N, N, N, N, N, Y, N),
                ("del", Y, Y, 1, N, N, N, N, N, N, Y),
            ],
        );
    }

    /// t/1100compile_metrics.t, viewpoint node 2.
    #[test]
    fn t1100_node2() {
        check(
            2,
            &[
                ("foo", Y, N, 1, N, N, N, N, N, N, N),
                ("bar", Y, Y, 2, Y, N, N, N, Y, N, N),
                ("baz", Y, Y, 1, N, N, Y, N, Y, N, N),
            ],
        );
    }

    /// t/1100compile_metrics.t, viewpoint node 3.
    #[test]
    fn t1100_node3() {
        check(3, &[("foo", Y, N, 1, N, N, N, N, N, N, N), ("bar", Y, N, 2, N, N, N, N, N, N, N)]);
    }

    /// Every group from every viewpoint, including the unasserted flags.
    #[test]
    fn t1100_full_table_snapshot() {
        let hastat = fixtures::hastat();
        let hactl = fixtures::hactl();
        let mut table = Vec::new();
        for me in 1..=3 {
            for g in ["bad", "bar", "baz", "del", "foo", "new", "pln"] {
                let m = compile_metrics(&hastat, &hactl, g, me);
                let flags: Vec<&str> = [
                    ("isactive", m.isactive),
                    ("islocal", m.islocal),
                    ("inconflict", m.inconflict),
                    ("planned", m.planned),
                    ("passed", m.passed),
                    ("failed", m.failed),
                    ("intransition", m.intransition),
                    ("chlevel", m.chlevel),
                    ("needplan", m.needplan),
                    ("deleted", m.deleted),
                ]
                .into_iter()
                .filter_map(|(name, on)| on.then_some(name))
                .collect();
                table.push(format!("node {me} {g}: instances={} {}", m.instances, flags.join(" ")));
            }
        }
        insta::assert_snapshot!(table.join("\n"));
    }

    #[test]
    fn level_zero_is_wanted_not_deleted() {
        let hastat = fixtures::hastat();
        let hactl = Hactl::parse("del 0\nzero 0\n", "hactl").expect("parses");
        let del = compile_metrics(&hastat, &hactl, "del", 1);
        assert!(!del.deleted && del.chlevel);
        assert!(compile_metrics(&hastat, &hactl, "zero", 1).needplan);
    }

    #[test]
    fn stop_is_never_planned() {
        let hactl = Hactl::parse("foo stop\n", "hactl").expect("parses");
        assert!(!compile_metrics(&Hastat::default(), &hactl, "foo", 1).needplan);
    }
}
