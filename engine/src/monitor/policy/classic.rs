//! `classic`: the decisions and timings of OpenMosix::HA 0.555 (spec §5–§7),
//! kept as the baseline to compare other policies against.
//!
//! One cycle:
//!
//! 1. **Quorum** (spec §5.1, `Quorum`): if lost, log the visible members,
//!    [`Action::HaltAll`], and sleep `quorum_loss_sleep` (30 s). Nothing else
//!    happens in that cycle.
//! 2. **hastat**: publish the view ([`Action::WriteHastat`]).
//! 3. **STOMITH** (spec §5.3): once the monitor has run longer than
//!    `stomith_grace` (120 s), fence stale members.
//! 4. **scangroups** (spec §6): for every group in hastat or hactl, compute
//!    the [metrics](crate::monitor::metrics) and apply the first rule that
//!    matches; each rule also moves the cycle time:
//!
//!    | # | flag | tell | cycle time |
//!    |---|---|---|---|
//!    | 1 | deleted | `stop` | avg with 5 |
//!    | 2 | inconflict | `stop` | += U[0, backoff_max) |
//!    | 3 | passed | wanted level | avg with 5 |
//!    | 4 | failed | `stop` | avg with 5 |
//!    | 5 | planned | `test` | avg with 5 |
//!    | 6 | needplan | `plan` iff U[0, n) ≤ balance | avg with 10 (before the flip) |
//!    | 7 | intransition | — | avg with 5 |
//!    | 8 | chlevel | wanted level | avg with 5 |
//!    | 9 | steady | — | avg with n |
//!
//!    "avg with x" is `c = (c + x) / 2`, skipped when x is 0; n is the number
//!    of members, and the coin flip treats n = 0 as 1 (always plans), as Perl's
//!    `rand(0)` did.
//! 5. **Sleep** the cycle time truncated to whole seconds (the original's
//!    integer `sleep`); a cycle time below 1 s gives 0.
//!
//! Differences from the original, on purpose:
//!
//! * Groups are scanned sorted by name, not in Perl hash order, so a run is
//!   reproducible. (Order matters: the cycle time is averaged per group.)
//! * A stale node is fenced **once per stale episode** (until it is fresh
//!   again or leaves membership), not every cycle: a real fencing hook must
//!   not be hammered N times per cycle (spec W12).
//! * A member whose `clstat` is unreadable is *unknown*, not "not running"
//!   (spec W3). Its last good copy stands in for it when there is one (see
//!   [`crate::monitor::view`]). When there is none, the node is *blind* and
//!   this policy plans nothing in that cycle: a group that would need a plan
//!   gets the needplan cycle time (so it is looked at again soon), a
//!   [`Notice::PlanSuppressed`], no coin flip and no tell. All other rules
//!   apply as usual. A `Missing` clstat still counts as "runs nothing", as in
//!   the original.
//! * No usable hactl (the original died): no group decisions, a
//!   [`Notice::NoHactl`], and the usual sleep. It is never read as "every
//!   group deleted".
//! * Level `0` is a wanted level (see [`crate::hactl`]); the preferred-node
//!   column of hactl is ignored.
//! * Time has millisecond resolution (the original compared whole seconds).

use super::{Decision, Policy};
use crate::hactl::{Hactl, Want};
use crate::hastat::{Hastat, NodeGroup};
use crate::monitor::action::{Action, Notice};
use crate::monitor::metrics::metrics_of;
use crate::monitor::quorum::Quorum;
use crate::monitor::view::View;
use crate::time::Millis;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Parameters, with the original's defaults. Durations of the cycle-time
/// arithmetic are float seconds, as in the original; the others are [`Millis`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassicParams {
    /// A member's clstat older than this is stale (60 s).
    pub timeout: Millis,
    /// Initial cycle time, seconds (1).
    pub cycletime_secs: f64,
    /// Planning coin: plan iff U[0, n) ≤ balance (1.5).
    pub balance: f64,
    /// Quorum is lost below this fraction of the last good count (0.6).
    pub quorum_ratio: f64,
    /// No fencing during this long after the monitor started (120 s).
    pub stomith_grace: Millis,
    /// Conflict backoff adds U[0, this) seconds to the cycle time (10).
    pub backoff_max_secs: f64,
    /// Sleep after a quorum loss (30 s).
    pub quorum_loss_sleep: Millis,
}

impl Default for ClassicParams {
    fn default() -> Self {
        ClassicParams {
            timeout: Millis::from_secs(60),
            cycletime_secs: 1.0,
            balance: 1.5,
            quorum_ratio: 0.6,
            stomith_grace: Millis::from_secs(120),
            backoff_max_secs: 10.0,
            quorum_loss_sleep: Millis::from_secs(30),
        }
    }
}

/// The classic policy's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Classic {
    params: ClassicParams,
    /// Current cycle time, seconds.
    cycletime: f64,
    quorum: Quorum,
    last_scan: Option<LastScan>,
}

/// The last scan, replayed instead of recomputed while its inputs stay the
/// same. Why: in a steady cluster nothing changes between cycles, and
/// scanning every group every cycle on every node was the largest cost of
/// simulating 100 nodes. Same inputs means the same hastat and hactl (by
/// `Arc`: held here, neither can be changed or freed, so the address
/// proves the content), the same node, member count and blind members —
/// and a scan that drew no random number, since the stream must advance
/// exactly as an unmemoized run's would.
#[derive(Debug, Clone, PartialEq)]
struct LastScan {
    hastat: Arc<Hastat>,
    hactl: Arc<Hactl>,
    me: u32,
    n: usize,
    blind: Vec<u32>,
    actions: Vec<Action>,
    /// The "avg with x" moves of the cycle time, in order.
    moves: Vec<f64>,
}

/// What one scan did.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// The tells and notices, in group order.
    pub actions: Vec<Action>,
    /// The "avg with x" moves of the cycle time, in order.
    pub moves: Vec<f64>,
    /// It drew random numbers (a conflict backoff or a planning coin).
    pub random: bool,
}

impl Classic {
    pub fn new(params: ClassicParams) -> Classic {
        Classic {
            cycletime: params.cycletime_secs,
            quorum: Quorum::new(params.quorum_ratio),
            params,
            last_scan: None,
        }
    }

    pub fn params(&self) -> &ClassicParams {
        &self.params
    }

    /// Current cycle time, seconds (before truncation).
    pub fn cycletime(&self) -> f64 {
        self.cycletime
    }

    /// The sleep the original's integer `sleep` would do.
    pub fn sleep(&self) -> Millis {
        let ct = self.cycletime;
        // Float → int casts saturate; the clamp keeps `* 1000` in range.
        let secs = if ct.is_finite() && ct > 0.0 { ct.min(1.0e12) as u64 } else { 0 };
        Millis(secs * 1000)
    }

    /// "avg with x".
    fn avg_with(&mut self, x: f64) {
        if x != 0.0 {
            self.cycletime = (self.cycletime + x) / 2.0;
        }
    }

    /// "avg with x", remembered for a replay of the scan.
    fn moved(&mut self, x: f64, moves: &mut Vec<f64>) {
        self.avg_with(x);
        moves.push(x);
    }

    /// Add U[0, backoff_max) seconds; returns what was added.
    fn backoff(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        let max = self.params.backoff_max_secs;
        let add = if max > 0.0 && max.is_finite() { rng.random_range(0.0..max) } else { 0.0 };
        self.cycletime += add;
        add
    }

    /// The planning coin flip: proceed iff U[0, n) ≤ balance, n = 0 as 1.
    fn coin(&self, n: usize, rng: &mut ChaCha8Rng) -> bool {
        let n = n.max(1) as f64;
        rng.random_range(0.0..n) <= self.params.balance
    }

    /// The original's `scangroups(hastat, hactl, nodes)` with `n` =
    /// number of nodes passed (0 as in t/1110: the coin always proceeds and
    /// the steady-state rule is inert). `blind` = members whose groups are
    /// unknown (suppresses planning). Also says how the cycle time moved
    /// and whether it drew random numbers, so a cycle can replay it.
    pub fn scangroups(
        &mut self,
        hastat: &Hastat,
        hactl: &Hactl,
        me: u32,
        n: usize,
        blind: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Scan {
        let mut out = Vec::new();
        let mut moves = Vec::new();
        let mut random = false;
        for (group, instances, want) in groups_by_name(hastat, hactl) {
            let want = want.map(|w| w.level.as_str());
            let m = metrics_of(instances, want, me);
            if m.deleted {
                out.push(tell(group, "stop"));
                self.moved(5.0, &mut moves);
            } else if m.inconflict {
                out.push(tell(group, "stop"));
                random = true;
                let added = self.backoff(rng);
                out.push(Action::Log(Notice::Conflict {
                    group: group.to_string(),
                    nodes: hastat.nodes_of(group),
                    backoff: Millis((added * 1000.0).round() as u64),
                }));
            } else if m.passed {
                // passed ⇒ local and not deleted ⇒ wanted.
                if let Some(want) = want {
                    out.push(tell(group, want));
                }
                self.moved(5.0, &mut moves);
            } else if m.failed {
                out.push(tell(group, "stop"));
                self.moved(5.0, &mut moves);
            } else if m.planned {
                out.push(tell(group, "test"));
                self.moved(5.0, &mut moves);
            } else if m.needplan {
                self.moved(10.0, &mut moves);
                if !blind.is_empty() {
                    out.push(Action::Log(Notice::PlanSuppressed {
                        group: group.to_string(),
                        blind: blind.to_vec(),
                    }));
                } else {
                    random = true;
                    if self.coin(n, rng) {
                        out.push(tell(group, "plan"));
                    }
                }
            } else if m.intransition {
                self.moved(5.0, &mut moves);
            } else if m.chlevel {
                if let Some(want) = want {
                    out.push(tell(group, want));
                }
                self.moved(5.0, &mut moves);
            } else {
                self.moved(n as f64, &mut moves);
            }
        }
        Scan { actions: out, moves, random }
    }
}

impl Classic {
    /// The scan of this cycle: the last one replayed when its inputs are
    /// the same (see [`LastScan`]), else a new one.
    fn scan_or_replay(
        &mut self,
        view: &View<'_>,
        hactl: &Arc<Hactl>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Action> {
        let n = view.members.len();
        let same = |last: &LastScan| {
            Arc::ptr_eq(&last.hastat, &view.hastat)
                && Arc::ptr_eq(&last.hactl, hactl)
                && last.me == view.me
                && last.n == n
                && last.blind == view.blind
        };
        if let Some(last) = self.last_scan.take().filter(same) {
            for &x in &last.moves {
                self.avg_with(x);
            }
            let actions = last.actions.clone();
            self.last_scan = Some(last);
            return actions;
        }
        let scan = self.scangroups(&view.hastat, hactl, view.me, n, &view.blind, rng);
        if !scan.random {
            self.last_scan = Some(LastScan {
                hastat: Arc::clone(&view.hastat),
                hactl: Arc::clone(hactl),
                me: view.me,
                n,
                blind: view.blind.clone(),
                actions: scan.actions.clone(),
                moves: scan.moves,
            });
        }
        scan.actions
    }
}

/// Every group of hastat or hactl, ascending by name, with its hastat entry
/// and its hactl line: both maps are sorted, so one merge walk replaces a
/// set of names and two lookups by name per group.
fn groups_by_name<'a>(
    hastat: &'a Hastat,
    hactl: &'a Hactl,
) -> impl Iterator<Item = (&'a str, Option<&'a BTreeMap<u32, NodeGroup>>, Option<&'a Want>)> {
    let mut running = hastat.groups.iter().peekable();
    let mut wanted = hactl.groups.iter().peekable();
    std::iter::from_fn(move || {
        let order = match (running.peek(), wanted.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        Some(match order {
            Ordering::Less => running.next().map(|(g, i)| (g.as_str(), Some(i), None))?,
            Ordering::Greater => wanted.next().map(|(g, w)| (g.as_str(), None, Some(w)))?,
            Ordering::Equal => {
                let (g, i) = running.next()?;
                let w = wanted.next().map(|(_, w)| w);
                (g.as_str(), Some(i), w)
            }
        })
    })
}

fn tell(group: &str, level: &str) -> Action {
    Action::Tell { group: group.to_string(), level: level.to_string() }
}

impl Policy for Classic {
    fn timeout(&self) -> Millis {
        self.params.timeout
    }

    fn cycle(&mut self, view: &View<'_>, rng: &mut ChaCha8Rng) -> Decision {
        if !self.quorum.check(view.members.len()) {
            let lost = Notice::QuorumLost {
                me: view.me,
                visible: view.members.clone(),
                reference: self.quorum.reference(),
            };
            return Decision {
                actions: vec![Action::Log(lost), Action::HaltAll],
                sleep: self.params.quorum_loss_sleep,
            };
        }
        let mut actions = vec![Action::WriteHastat(view.hastat.clone())];
        if view.uptime > self.params.stomith_grace {
            let fence = view.stale.iter().filter(|s| !s.fenced);
            actions.extend(fence.map(|s| Action::Fence { node: s.node }));
        }
        match view.hactl {
            Some(hactl) => actions.extend(self.scan_or_replay(view, hactl, rng)),
            None => actions.push(Action::Log(Notice::NoHactl)),
        }
        Decision { actions, sleep: self.sleep() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::fixtures;
    use crate::status::{ClStat, GroupState, GroupStatus};
    use rand::SeedableRng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(1110)
    }

    fn tells(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Tell { group, level } => Some(format!("{group}→{level}")),
                _ => None,
            })
            .collect()
    }

    fn clstat(lines: &[(&str, &str, &str)]) -> ClStat {
        let mut stat = ClStat::default();
        for &(g, l, s) in lines {
            stat.groups
                .insert(g.into(), GroupStatus { level: l.into(), state: GroupState::parse(s) });
        }
        stat
    }

    /// t/1110 phase A scan 1 (node 1, no node list: n = 0).
    #[test]
    fn t1110_phase_a_scan1() {
        let mut c = Classic::new(ClassicParams::default());
        let out =
            c.scangroups(&fixtures::hastat(), &fixtures::hactl(), 1, 0, &[], &mut rng()).actions;
        assert_eq!(tells(&out), ["bad→stop", "bar→stop", "del→stop", "new→plan", "pln→test"]);
        assert!(out.iter().any(|a| matches!(a,
            Action::Log(Notice::Conflict { group, nodes, .. }) if group == "bar" && *nodes == [1, 2])));
    }

    /// t/1110 phase B scan 1 (node 2; node 1 as phase A left it).
    #[test]
    fn t1110_phase_b_scan1() {
        let node1 = clstat(&[
            ("foo", "start", "DONE"),
            ("new", "start", "DONE"),
            ("bar", "stop", "DONE"),
            ("del", "stop", "DONE"),
            ("bad", "stop", "DONE"),
        ]);
        let hastat = Hastat::build([(1, &node1), (2, &fixtures::clstat2())]);
        let mut c = Classic::new(ClassicParams::default());
        let out = c.scangroups(&hastat, &fixtures::hactl(), 2, 0, &[], &mut rng()).actions;
        // bar@2 `stop RUNNING` is in transition; foo/new run on node 1;
        // pln is planned too (the daemon answers "no such group").
        assert_eq!(tells(&out), ["bad→plan", "baz→start", "pln→plan"]);
    }

    /// t/1110 phase C scan 1 (node 3; node 2's clstat is gone).
    #[test]
    fn t1110_phase_c_scan1() {
        let node1 = clstat(&[("foo", "start", "DONE"), ("new", "start", "DONE")]);
        let hastat = Hastat::build([(1, &node1)]);
        let mut c = Classic::new(ClassicParams::default());
        let out = c.scangroups(&hastat, &fixtures::hactl(), 3, 0, &[], &mut rng()).actions;
        assert_eq!(tells(&out), ["bad→plan", "bar→plan", "baz→plan", "pln→plan"]);
    }

    /// A stand-in for the node 1 daemon of t/1110 phase A: tells complete at
    /// once; its first write replaces the fixture clstat with only the groups
    /// it was told about; `pln` is not in cltab; `bad`'s test fails.
    fn daemon(local: &mut ClStat, fresh: &mut bool, group: &str, level: &str) {
        if group == "pln" {
            return;
        }
        if !*fresh {
            local.groups.clear();
            *fresh = true;
        }
        let state = match (group, level) {
            ("bad", "test") => "FAILED",
            _ => "DONE",
        };
        local.groups.insert(
            group.into(),
            GroupStatus { level: level.into(), state: GroupState::parse(state) },
        );
    }

    /// t/1110 phase A, four scans, with the daemon settled between scans.
    /// As the spec's timing note predicts, `new` is one step ahead of the
    /// Perl assertions (test DONE at scan 2); every other assertion holds.
    #[test]
    fn t1110_phase_a_transcript() {
        let mut c = Classic::new(ClassicParams::default());
        let mut r = rng();
        let hactl = fixtures::hactl();
        let node2 = fixtures::clstat2();
        let mut local = fixtures::clstat1();
        let mut fresh = false;
        let mut transcript = Vec::new();
        for scan in 1..=4 {
            let hastat = Hastat::build([(1, &local), (2, &node2)]);
            let out = c.scangroups(&hastat, &hactl, 1, 0, &[], &mut r).actions;
            for t in tells(&out) {
                if let Some((g, l)) = t.split_once('→') {
                    daemon(&mut local, &mut fresh, g, l);
                }
            }
            let status: Vec<String> =
                local.groups.iter().map(|(g, s)| format!("{g} {} {}", s.level, s.state)).collect();
            transcript.push(format!(
                "scan {scan}: tells [{}] → clstat [{}], cycletime {:.3}",
                tells(&out).join(", "),
                status.join(", "),
                c.cycletime()
            ));
        }
        let state = |g: &str| local.get(g).map(|s| format!("{} {}", s.level, s.state));
        assert_eq!(state("foo").as_deref(), Some("start DONE")); // 15
        assert_eq!(state("new").as_deref(), Some("start DONE")); // 16
        assert_eq!(state("bad").as_deref(), Some("stop DONE")); // 17 (idle = gone)
        insta::assert_snapshot!(transcript.join("\n"));
    }

    #[test]
    fn cycle_time_rules() {
        let mut c = Classic::new(ClassicParams::default());
        let hactl = Hactl::parse("web start\n", "hactl").expect("parses");
        let running = Hastat::build([(1, &clstat(&[("web", "start", "DONE")]))]);
        // Steady state: avg with n converges to n.
        for _ in 0..20 {
            assert!(c.scangroups(&running, &hactl, 1, 3, &[], &mut rng()).actions.is_empty());
        }
        assert!((c.cycletime() - 3.0).abs() < 1e-3);
        assert_eq!(c.sleep(), Millis::from_secs(2)); // 2.99.. truncates
                                                     // n = 0 leaves it alone.
        let before = c.cycletime();
        c.scangroups(&running, &hactl, 1, 0, &[], &mut rng());
        assert_eq!(c.cycletime(), before);
        // needplan: avg with 10 whether or not the coin says plan.
        let mut c = Classic::new(ClassicParams { balance: -1.0, ..ClassicParams::default() });
        let out = c.scangroups(&Hastat::default(), &hactl, 1, 3, &[], &mut rng()).actions;
        assert!(out.is_empty());
        assert_eq!(c.cycletime(), 5.5);
        assert_eq!(c.sleep(), Millis::from_secs(5));
    }

    #[test]
    fn conflict_backoff_is_below_max_and_seeded() {
        let hactl = Hactl::parse("web start\n", "hactl").expect("parses");
        let both = clstat(&[("web", "start", "DONE")]);
        let hastat = Hastat::build([(1, &both), (2, &both)]);
        let mut c = Classic::new(ClassicParams::default());
        let out = c.scangroups(&hastat, &hactl, 1, 2, &[], &mut rng()).actions;
        assert_eq!(tells(&out), ["web→stop"]);
        assert!(c.cycletime() >= 1.0 && c.cycletime() < 11.0);
        let mut again = Classic::new(ClassicParams::default());
        again.scangroups(&hastat, &hactl, 1, 2, &[], &mut rng());
        assert_eq!(again.cycletime(), c.cycletime());
        // No backoff range: no panic, no change.
        let mut none =
            Classic::new(ClassicParams { backoff_max_secs: 0.0, ..ClassicParams::default() });
        none.scangroups(&hastat, &hactl, 1, 2, &[], &mut rng());
        assert_eq!(none.cycletime(), 1.0);
    }

    #[test]
    fn planning_coin_rate_is_min_1_balance_over_n() {
        let c = Classic::new(ClassicParams::default());
        let mut r = rng();
        let plans = (0..10_000).filter(|_| c.coin(10, &mut r)).count();
        assert!((1300..1700).contains(&plans), "{plans}"); // ≈ 0.15
        assert!((0..100).all(|_| c.coin(1, &mut r) && c.coin(0, &mut r)));
    }

    #[test]
    fn blind_members_suppress_planning_only() {
        let hactl = Hactl::parse("web start\ndb start\n", "hactl").expect("parses");
        let hastat = Hastat::build([(1, &clstat(&[("db", "test", "PASSED")]))]);
        let mut c = Classic::new(ClassicParams::default());
        let out = c.scangroups(&hastat, &hactl, 1, 3, &[2], &mut rng()).actions;
        assert_eq!(tells(&out), ["db→start"]);
        assert!(out.contains(&Action::Log(Notice::PlanSuppressed {
            group: "web".into(),
            blind: vec![2]
        })));
    }

    #[test]
    fn params_deserialise_partially_with_defaults() {
        let p: ClassicParams =
            serde_json::from_str(r#"{"timeout": 30000, "balance": 1.0}"#).expect("valid");
        assert_eq!(p.timeout, Millis::from_secs(30));
        assert_eq!(p.balance, 1.0);
        assert_eq!(p.stomith_grace, ClassicParams::default().stomith_grace);
    }

    /// A replayed scan decides exactly what a fresh scan decides, and
    /// draws the same random numbers, whatever mix of unchanged and changed
    /// inputs the cycles see.
    mod replay {
        use super::*;
        use crate::monitor::view::{StaleNode, View};
        use proptest::prelude::*;

        /// Per cycle: which hastat and hactl (same `Arc` as before, an
        /// equal copy, or another one), member count, blind.
        #[derive(Debug, Clone)]
        struct Cycle {
            /// `None`: the same pool entry as the last cycle.
            hastat: (Option<usize>, bool),
            hactl: (usize, bool),
            n: usize,
            blind: bool,
            me: u32,
        }

        fn cycle() -> impl Strategy<Value = Cycle> {
            // Mostly the steady hastat and the same Arcs, so that replays
            // happen often; 2 or 3 members so quorum (60 %) mostly holds.
            let hastat = prop_oneof![3 => Just(None), 1 => (0..4usize).prop_map(Some)];
            let copy = proptest::bool::weighted(0.2);
            let blind = proptest::bool::weighted(0.3);
            ((hastat, copy), (0..2usize, copy), 2..4usize, blind, 1..3u32)
                .prop_map(|(hastat, hactl, n, blind, me)| Cycle { hastat, hactl, n, blind, me })
        }

        fn hastats() -> Vec<Hastat> {
            let running = clstat(&[
                ("foo", "start", "DONE"),
                ("bar", "2", "DONE"),
                ("baz", "start", "DONE"),
                ("pln", "start", "DONE"),
                ("bad", "start", "DONE"),
                ("new", "start", "DONE"),
            ]);
            let moving = clstat(&[("foo", "start", "STARTING"), ("bar", "start", "DONE")]);
            vec![
                // Steady: everything wanted runs here (no random draw).
                Hastat::build([(1, &running)]),
                // The t/master fixture: conflicts (backoff draws).
                fixtures::hastat(),
                // Nothing runs: every group needs a plan (coin draws).
                Hastat::default(),
                Hastat::build([(1, &moving), (2, &fixtures::clstat2())]),
            ]
        }

        fn hactls() -> Vec<Hactl> {
            let other = Hactl::parse("foo start\nbar 2\n", "hactl").expect("parses");
            vec![fixtures::hactl(), other]
        }

        /// Pool entry `i`: the `Arc` held from the last cycle when it is
        /// that entry and `copy` is false, else a new `Arc` (equal content).
        fn pick<T: Clone + PartialEq>(
            held: &mut Option<Arc<T>>,
            (i, copy): (usize, bool),
            pool: &[T],
        ) -> Arc<T> {
            let keep = held.as_ref().filter(|h| !copy && ***h == pool[i]);
            let next = keep.cloned().unwrap_or_else(|| Arc::new(pool[i].clone()));
            *held = Some(Arc::clone(&next));
            next
        }

        proptest! {
            #[test]
            fn replay_equals_a_fresh_scan(cycles in prop::collection::vec(cycle(), 1..40)) {
                let (hastats, hactls) = (hastats(), hactls());
                let mut memo = Classic::new(ClassicParams::default());
                let mut fresh = memo.clone();
                let (mut rng_memo, mut rng_fresh) = (rng(), rng());
                let mut hastat: Option<Arc<Hastat>> = None;
                let mut hactl: Option<Arc<Hactl>> = None;
                let mut last_index = 0;
                for (t, c) in cycles.iter().enumerate() {
                    let index = c.hastat.0.unwrap_or(last_index);
                    last_index = index;
                    let hastat = pick(&mut hastat, (index, c.hastat.1), &hastats);
                    let hactl = pick(&mut hactl, c.hactl, &hactls);
                    let view = View {
                        now: Millis(t as u64 * 1000),
                        me: c.me,
                        members: (1..=c.n as u32).collect(),
                        hastat,
                        blind: if c.blind { vec![c.n as u32] } else { Vec::new() },
                        stale: Vec::<StaleNode>::new(),
                        uptime: Millis(t as u64 * 1000),
                        hactl: Some(&hactl),
                    };
                    let a = memo.cycle(&view, &mut rng_memo);
                    fresh.last_scan = None;
                    let b = fresh.cycle(&view, &mut rng_fresh);
                    prop_assert_eq!(a, b, "cycle {}", t);
                    prop_assert_eq!(memo.cycletime.to_bits(), fresh.cycletime.to_bits());
                    prop_assert_eq!(rng_memo.get_word_pos(), rng_fresh.get_word_pos());
                }
            }
        }

        /// An unchanged steady cluster is replayed, not rescanned.
        #[test]
        fn a_steady_cycle_is_replayed() {
            let hastat = Arc::new(hastats()[0].clone());
            let hactl = Arc::new(fixtures::hactl());
            let view = View {
                now: Millis(0),
                me: 1,
                members: vec![1, 2, 3],
                hastat,
                blind: Vec::new(),
                stale: Vec::new(),
                uptime: Millis(0),
                hactl: Some(&hactl),
            };
            let mut c = Classic::new(ClassicParams::default());
            let first = c.cycle(&view, &mut rng());
            assert!(c.last_scan.is_some(), "a scan without random draws is kept");
            // A replay leaves the kept scan's inputs in place and gives the same.
            let kept = c.last_scan.clone();
            assert_eq!(c.cycle(&view, &mut rng()), first);
            assert_eq!(c.last_scan, kept);
            // The fixture's conflicts draw random numbers: nothing is kept.
            let conflicts = View { hastat: Arc::new(fixtures::hastat()), ..view.clone() };
            c.cycle(&conflicts, &mut rng());
            assert!(c.last_scan.is_none());
        }
    }
}
