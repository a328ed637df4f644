//! Named properties, checked against the ground truth of the world (what
//! each node's init machine really runs), not against what nodes believe.
//!
//! Safety:
//! * `double-owner`: no two nodes hold a group at its wanted level while
//!   both are in quorum (measured as double-owner seconds; every episode is
//!   a violation).
//! * `start-after-failed-test`: a group never starts at its wanted level on
//!   a node whose test failed in the same episode (since its last `plan`).
//! * `halt-bound`: a node that lost quorum has stopped every local group
//!   within the halt bound.
//!
//! Liveness:
//! * `liveness`: after the faults stop, every wanted group that has an
//!   eligible live node runs on exactly one eligible live node, within the
//!   liveness bound of the start of the quiet phase, and still at the end.
//!
//! Ownership is "level = wanted level and state neither CONFIGURED nor
//! FAILED" (so a group still stopping counts: its processes still run);
//! running is ownership in a settled state (DONE, PASSED).

use crate::metrics::Metrics;
use clinit_engine::status::GroupState;
use clinit_engine::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

pub const DOUBLE_OWNER: &str = "double-owner";
pub const FAILED_TEST: &str = "start-after-failed-test";
pub const HALT_BOUND: &str = "halt-bound";
pub const LIVENESS: &str = "liveness";

/// Violation records kept per run (all are counted).
const KEEP: usize = 40;
/// Lines of the event log kept for excerpts.
const RING: usize = 600;
const EXCERPT: usize = 24;

/// One broken property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: String,
    pub seed: u64,
    /// Simulated time, seconds.
    pub at_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub nodes: Vec<u32>,
    pub detail: String,
    /// The events leading up to it (`t=…s nN …`).
    pub excerpt: Vec<String>,
}

/// One line of the human-readable event log.
#[derive(Debug, Clone)]
struct Line {
    at: Millis,
    nodes: [u32; 2],
    text: String,
}

#[derive(Debug, Clone)]
struct Track {
    name: String,
    want: String,
    holders: BTreeSet<u32>,
    running: BTreeSet<u32>,
    since: Millis,
    double: bool,
    unavailable: bool,
    ever_ran: bool,
    last_runner: Option<u32>,
    pending_failovers: Vec<Millis>,
    ok_since: Option<Millis>,
    /// Open double-owner episode: start, nodes, excerpt at start.
    open_double: Option<(Millis, Vec<u32>, Vec<String>)>,
}

/// The checker and metric accumulator of one run.
#[derive(Debug, Clone)]
pub struct Tracker {
    seed: u64,
    groups: Vec<Track>,
    index: HashMap<String, usize>,
    eligible: Vec<Vec<bool>>,
    up: Vec<bool>,
    quorum: Vec<bool>,
    /// `[node][group]`: 0 no verdict in this episode, 1 passed, 2 failed.
    verdict: Vec<Vec<u8>>,
    /// `[node][group]`: the group's last reported level and state there.
    state: Vec<Vec<Option<(String, GroupState)>>>,
    halting_since: Vec<Option<Millis>>,
    quiet_start: Millis,
    liveness_bound: Millis,
    pub metrics: Metrics,
    violations: Vec<Violation>,
    counts: BTreeMap<String, u64>,
    ring: VecDeque<Line>,
    pub log_enabled: bool,
}

impl Tracker {
    pub fn new(
        seed: u64,
        nodes: u32,
        wanted: &[(String, String)],
        eligible: Vec<Vec<bool>>,
        quiet_start: Millis,
        liveness_bound: Millis,
    ) -> Tracker {
        let n = nodes as usize + 1;
        let groups: Vec<Track> = wanted
            .iter()
            .map(|(g, w)| Track {
                name: g.clone(),
                want: w.clone(),
                holders: BTreeSet::new(),
                running: BTreeSet::new(),
                since: Millis::ZERO,
                double: false,
                unavailable: false,
                ever_ran: false,
                last_runner: None,
                pending_failovers: Vec::new(),
                ok_since: None,
                open_double: None,
            })
            .collect();
        let index = groups.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let g = groups.len();
        Tracker {
            seed,
            index,
            eligible,
            up: vec![false; n],
            quorum: vec![true; n],
            verdict: vec![vec![0; g]; n],
            state: vec![vec![None; g]; n],
            halting_since: vec![None; n],
            quiet_start,
            liveness_bound,
            metrics: Metrics {
                unavailable: vec![Millis::ZERO; g],
                double_owner: vec![Millis::ZERO; g],
                first_running: vec![None; g],
                ..Metrics::default()
            },
            groups,
            violations: Vec::new(),
            counts: BTreeMap::new(),
            ring: VecDeque::with_capacity(RING),
            log_enabled: true,
        }
    }

    /// Add a line to the event log.
    pub fn log(&mut self, at: Millis, node: u32, other: u32, text: impl FnOnce() -> String) {
        if !self.log_enabled {
            return;
        }
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back(Line { at, nodes: [node, other], text: text() });
    }

    /// The last lines about `group` or `nodes`, with the last few world
    /// lines (faults, quiet phase) merged in, in time order.
    fn excerpt(&self, group: Option<&str>, nodes: &[u32]) -> Vec<String> {
        let world = |l: &Line| l.nodes == [0, 0];
        let relevant = |l: &Line| {
            !world(l)
                && (nodes.iter().any(|n| l.nodes.contains(n))
                    || group.is_some_and(|g| l.text.contains(g)))
        };
        let mut picked: Vec<usize> = Vec::new();
        let (mut ours, mut worlds) = (0, 0);
        for (i, l) in self.ring.iter().enumerate().rev() {
            if relevant(l) && ours < EXCERPT {
                ours += 1;
                picked.push(i);
            } else if world(l) && worlds < 6 {
                worlds += 1;
                picked.push(i);
            }
            if ours >= EXCERPT && worlds >= 6 {
                break;
            }
        }
        picked.reverse();
        picked
            .into_iter()
            .map(|i| {
                let l = &self.ring[i];
                let who =
                    if l.nodes[0] == 0 { "  ".to_string() } else { format!("n{}", l.nodes[0]) };
                format!("t={:.3}s {who} {}", l.at.0 as f64 / 1000.0, l.text)
            })
            .collect()
    }

    fn violate(
        &mut self,
        invariant: &str,
        at: Millis,
        group: Option<&str>,
        nodes: Vec<u32>,
        detail: String,
        excerpt: Option<Vec<String>>,
    ) {
        *self.counts.entry(invariant.to_string()).or_default() += 1;
        if self.violations.len() >= KEEP {
            return;
        }
        let excerpt = excerpt.unwrap_or_else(|| self.excerpt(group, &nodes));
        self.violations.push(Violation {
            invariant: invariant.to_string(),
            seed: self.seed,
            at_s: at.0 as f64 / 1000.0,
            group: group.map(String::from),
            nodes,
            detail,
            excerpt,
        });
    }

    fn has_eligible(&self, g: usize) -> bool {
        self.eligible[g].iter().enumerate().skip(1).any(|(n, &e)| e && self.up[n])
    }

    /// Account for time passed in group `g`'s current condition.
    fn integrate(&mut self, g: usize, now: Millis) {
        let t = &mut self.groups[g];
        let dt = now.saturating_sub(t.since);
        if t.double {
            self.metrics.double_owner[g] = self.metrics.double_owner[g] + dt;
        }
        if t.unavailable {
            self.metrics.unavailable[g] = self.metrics.unavailable[g] + dt;
        }
        t.since = now;
    }

    /// Recompute group `g`'s condition after a change.
    fn refresh(&mut self, g: usize, now: Millis) {
        let has_eligible = self.has_eligible(g);
        let (quorum, up, eligible) = (&self.quorum, &self.up, &self.eligible[g]);
        let t = &self.groups[g];
        if t.want == "stop" {
            // The operator wants it nowhere for now: not checked, not counted.
            let was_double = t.double;
            if was_double {
                self.close_double(g, now);
            }
            let t = &mut self.groups[g];
            t.double = false;
            t.unavailable = false;
            t.ok_since.get_or_insert(now);
            return;
        }
        let owners: Vec<u32> =
            t.holders.iter().copied().filter(|&n| up[n as usize] && quorum[n as usize]).collect();
        let double = owners.len() >= 2;
        let unavailable = t.ever_ran && t.running.is_empty() && has_eligible;
        let single = t.holders.len() == 1
            && t.running.len() == 1
            && t.running.iter().all(|&n| eligible[n as usize] && up[n as usize]);
        let ok = !has_eligible || single;
        let was_double = t.double;
        let name = t.name.clone();
        if double && !was_double {
            let excerpt = self.excerpt(Some(&name), &owners);
            self.groups[g].open_double = Some((now, owners, excerpt));
        } else if !double && was_double {
            self.close_double(g, now);
        }
        let t = &mut self.groups[g];
        t.double = double;
        t.unavailable = unavailable;
        match (ok, t.ok_since) {
            (true, None) => t.ok_since = Some(now),
            (false, Some(_)) => t.ok_since = None,
            _ => {}
        }
    }

    fn close_double(&mut self, g: usize, now: Millis) {
        if let Some((start, nodes, excerpt)) = self.groups[g].open_double.take() {
            let name = self.groups[g].name.clone();
            let want = self.groups[g].want.clone();
            let secs = now.saturating_sub(start).0 as f64 / 1000.0;
            let detail = format!(
                "group {name} held at level {want} by nodes {nodes:?}, all in quorum, for {secs:.3} s"
            );
            self.violate(DOUBLE_OWNER, start, Some(&name), nodes, detail, Some(excerpt));
        }
    }

    /// A node's init machine reported a group state change.
    pub fn group_state(
        &mut self,
        now: Millis,
        node: u32,
        group: &str,
        level: &str,
        state: &GroupState,
    ) {
        let Some(&g) = self.index.get(group) else { return };
        let n = node as usize;
        self.state[n][g] = Some((level.to_string(), state.clone()));
        // Episode verdicts.
        match (level, state) {
            ("plan", GroupState::Starting) => self.verdict[n][g] = 0,
            ("test", GroupState::Failed) => self.verdict[n][g] = 2,
            ("test", GroupState::Passed | GroupState::Done) => self.verdict[n][g] = 1,
            _ => {}
        }
        let want = self.groups[g].want.clone();
        if want != "stop"
            && level == want
            && *state == GroupState::Starting
            && self.verdict[n][g] == 2
        {
            let detail = format!("group {group} started at {level} on node {node} after its test failed there in the same episode");
            self.violate(FAILED_TEST, now, Some(group), vec![node], detail, None);
        }
        let holding =
            level == want.as_str() && !matches!(state, GroupState::Configured | GroupState::Failed);
        let running = holding && matches!(state, GroupState::Done | GroupState::Passed);
        self.integrate(g, now);
        let t = &mut self.groups[g];
        if holding {
            t.holders.insert(node);
        } else {
            t.holders.remove(&node);
        }
        let newly_running = if running {
            t.running.insert(node)
        } else {
            t.running.remove(&node);
            false
        };
        if newly_running {
            if t.last_runner.is_some_and(|last| last != node) {
                self.metrics.moves += 1;
            }
            t.last_runner = Some(node);
            t.ever_ran = true;
            if self.metrics.first_running[g].is_none() {
                self.metrics.first_running[g] = Some(now);
            }
            for died in t.pending_failovers.drain(..) {
                self.metrics.failover_latencies.push(now.saturating_sub(died));
                self.metrics.failover_groups.push(g as u32);
            }
        }
        self.refresh(g, now);
    }

    /// The operator now wants `group` at `level` (an hactl edit). Owners
    /// are recomputed from what every node runs.
    pub fn set_want(&mut self, now: Millis, group: &str, level: &str) {
        let Some(&g) = self.index.get(group) else { return };
        self.integrate(g, now);
        if self.groups[g].open_double.is_some() {
            self.close_double(g, now);
            self.groups[g].double = false;
        }
        let t = &mut self.groups[g];
        t.want = level.to_string();
        t.holders.clear();
        t.running.clear();
        t.ok_since = None;
        for (n, row) in self.state.iter().enumerate() {
            if let Some((l, st)) = &row[g] {
                if self.up[n]
                    && l == level
                    && !matches!(st, GroupState::Configured | GroupState::Failed)
                {
                    t.holders.insert(n as u32);
                    if matches!(st, GroupState::Done | GroupState::Passed) {
                        t.running.insert(n as u32);
                    }
                }
            }
        }
        self.refresh(g, now);
    }

    /// The level the operator wants `group` at now.
    pub fn want(&self, group: &str) -> Option<&str> {
        self.index.get(group).map(|&g| self.groups[g].want.as_str())
    }

    /// A node came up (boot or restart).
    pub fn node_up(&mut self, now: Millis, node: u32) {
        let n = node as usize;
        self.up[n] = true;
        self.quorum[n] = true;
        self.halting_since[n] = None;
        for v in &mut self.verdict[n] {
            *v = 0;
        }
        for g in 0..self.groups.len() {
            self.integrate(g, now);
            self.refresh(g, now);
        }
    }

    /// A node died with its processes.
    pub fn node_down(&mut self, now: Millis, node: u32) {
        let n = node as usize;
        self.up[n] = false;
        self.halting_since[n] = None;
        for st in &mut self.state[n] {
            *st = None;
        }
        for g in 0..self.groups.len() {
            self.integrate(g, now);
            let t = &mut self.groups[g];
            let sole_runner = t.running.len() == 1 && t.running.contains(&node);
            t.holders.remove(&node);
            t.running.remove(&node);
            if sole_runner {
                t.pending_failovers.push(now);
            }
            self.refresh(g, now);
        }
    }

    /// A node's last cycle had (or lacked) quorum.
    pub fn quorum(&mut self, now: Millis, node: u32, has: bool) {
        let n = node as usize;
        if self.quorum[n] == has {
            return;
        }
        self.quorum[n] = has;
        for g in 0..self.groups.len() {
            if self.groups[g].holders.contains(&node) {
                self.integrate(g, now);
                self.refresh(g, now);
            }
        }
    }

    /// A node began halting its groups for lack of quorum. Returns the
    /// time to check the halt bound at.
    pub fn halting(&mut self, now: Millis, node: u32, bound: Millis) -> Millis {
        self.metrics.quorum_losses += 1;
        self.halting_since[node as usize] = Some(now);
        now + bound
    }

    /// The node's halt finished, or quorum came back.
    pub fn halt_over(&mut self, node: u32) {
        self.halting_since[node as usize] = None;
    }

    /// The halt bound of a halt that began at `since` has passed; `busy`
    /// lists the groups the node still runs.
    pub fn check_halt(&mut self, now: Millis, node: u32, since: Millis, busy: &[String]) {
        if self.halting_since[node as usize] != Some(since) || busy.is_empty() {
            return;
        }
        let detail = format!(
            "node {node} lost quorum at {:.3}s and still runs {busy:?} {:.3} s later",
            since.0 as f64 / 1000.0,
            now.saturating_sub(since).0 as f64 / 1000.0
        );
        self.violate(HALT_BOUND, now, None, vec![node], detail, None);
        self.halting_since[node as usize] = None;
    }

    /// End of the run: close the books and check liveness.
    pub fn finish(&mut self, now: Millis) {
        for g in 0..self.groups.len() {
            self.integrate(g, now);
            self.close_double(g, now);
            self.metrics.failovers_unfinished += self.groups[g].pending_failovers.len() as u64;
            if !self.has_eligible(g) {
                continue;
            }
            let t = &self.groups[g];
            let name = t.name.clone();
            let deadline = self.quiet_start + self.liveness_bound;
            let describe = |t: &Track| {
                format!(
                    "operator wants {}; holders {:?}, running {:?}",
                    t.want, t.holders, t.running
                )
            };
            match t.ok_since {
                None => {
                    let detail = format!(
                        "group {name} is not running on exactly one eligible live node at the end ({})",
                        describe(t)
                    );
                    let nodes: Vec<u32> = t.holders.iter().copied().collect();
                    self.violate(LIVENESS, now, Some(&name), nodes, detail, None);
                }
                Some(since) if since > deadline => {
                    let detail = format!(
                        "group {name} settled at {:.3}s, after the liveness deadline {:.3}s (quiet phase from {:.3}s)",
                        since.0 as f64 / 1000.0,
                        deadline.0 as f64 / 1000.0,
                        self.quiet_start.0 as f64 / 1000.0
                    );
                    let nodes: Vec<u32> = t.running.iter().copied().collect();
                    self.violate(LIVENESS, since, Some(&name), nodes, detail, None);
                }
                Some(_) => {}
            }
        }
    }

    /// The first failover latency of wanted group `g`.
    pub fn failover_of(&self, g: usize) -> Option<Millis> {
        let m = &self.metrics;
        m.failover_groups.iter().position(|&x| x as usize == g).map(|i| m.failover_latencies[i])
    }

    /// The last lines of the event log (up to `n`).
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = self
            .ring
            .iter()
            .rev()
            .take(n)
            .map(|l| {
                let who =
                    if l.nodes[0] == 0 { "  ".to_string() } else { format!("n{}", l.nodes[0]) };
                format!("t={:.3}s {who} {}", l.at.0 as f64 / 1000.0, l.text)
            })
            .collect();
        out.reverse();
        out
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Violations per invariant (all, not only the kept records).
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|t| t.name.clone()).collect()
    }

    /// The nodes running group `name` now.
    pub fn runners(&self, name: &str) -> Vec<u32> {
        self.index
            .get(name)
            .map(|&g| self.groups[g].running.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        let wanted = vec![("web".to_string(), "start".to_string())];
        let mut t = Tracker::new(
            1,
            2,
            &wanted,
            vec![vec![false, true, true]],
            Millis(100_000),
            Millis(50_000),
        );
        t.node_up(Millis(0), 1);
        t.node_up(Millis(0), 2);
        t
    }

    #[test]
    fn a_start_after_a_failed_test_is_a_violation() {
        let mut t = tracker();
        t.group_state(Millis(1), 1, "web", "plan", &GroupState::Starting);
        t.group_state(Millis(2), 1, "web", "test", &GroupState::Failed);
        t.group_state(Millis(3), 1, "web", "start", &GroupState::Starting);
        assert_eq!(t.counts().get(FAILED_TEST), Some(&1));
        // A new episode with a passing test is fine.
        t.group_state(Millis(4), 2, "web", "plan", &GroupState::Starting);
        t.group_state(Millis(5), 2, "web", "test", &GroupState::Failed);
        t.group_state(Millis(6), 2, "web", "plan", &GroupState::Starting);
        t.group_state(Millis(7), 2, "web", "test", &GroupState::Passed);
        t.group_state(Millis(8), 2, "web", "start", &GroupState::Starting);
        assert_eq!(t.counts().get(FAILED_TEST), Some(&1));
        // Stopping after a failed test is what should happen, even while
        // the operator wants the group stopped.
        t.set_want(Millis(9), "web", "stop");
        t.group_state(Millis(10), 1, "web", "plan", &GroupState::Starting);
        t.group_state(Millis(11), 1, "web", "test", &GroupState::Failed);
        t.group_state(Millis(12), 1, "web", "stop", &GroupState::Starting);
        assert_eq!(t.counts().get(FAILED_TEST), Some(&1));
    }

    #[test]
    fn double_owner_time_counts_only_nodes_in_quorum() {
        let mut t = tracker();
        t.group_state(Millis(1_000), 1, "web", "start", &GroupState::Done);
        t.group_state(Millis(2_000), 2, "web", "start", &GroupState::Done);
        t.quorum(Millis(3_000), 2, false);
        t.group_state(Millis(10_000), 2, "web", "stop", &GroupState::Done);
        t.finish(Millis(20_000));
        assert_eq!(t.metrics.double_owner[0], Millis(1_000));
        assert_eq!(t.counts().get(DOUBLE_OWNER), Some(&1));
        assert!(t.counts().get(LIVENESS).is_none());
        assert_eq!(
            t.violations()[0].detail,
            "group web held at level start by nodes [1, 2], all in quorum, for 1.000 s"
        );
    }

    #[test]
    fn failover_latency_and_unavailability() {
        let mut t = tracker();
        t.group_state(Millis(1_000), 1, "web", "start", &GroupState::Done);
        t.node_down(Millis(5_000), 1);
        t.group_state(Millis(17_000), 2, "web", "start", &GroupState::Done);
        t.finish(Millis(20_000));
        assert_eq!(t.metrics.failover_latencies, vec![Millis(12_000)]);
        assert_eq!(t.metrics.unavailable[0], Millis(12_000));
        assert_eq!(t.metrics.moves, 1);
        assert!(t.counts().is_empty());
    }
}
