//! Named properties, checked against the ground truth of the world, not
//! against what nodes believe.
//!
//! Ground truth is the simulated **process table** (which service
//! processes are alive on which node, orphans of a crashed `mosha` and
//! lingering process groups included) plus the world's knowledge of every
//! node: up or dead, its monitor running, frozen or paused, and which nodes
//! it can exchange files with.
//!
//! Safety:
//! * `double-owner`: no two nodes have live service processes of one group
//!   at the same time (measured as double-owner seconds; every episode is a
//!   violation). What the nodes believe about quorum does not matter: a
//!   process that runs, runs. A *service process* is one spawned at a level
//!   other than `plan`, `test` and `stop`, the HA layer's transition levels.
//! * `start-after-failed-test`: a group never starts at its wanted level on
//!   a node where a test of the group failed, at **any** level (`plan`
//!   included), in the same episode (since its last `plan`).
//! * `halt-bound`: a node that lost quorum has stopped every local group
//!   within the halt bound.
//! * `needless-fence`: no node fences a node that was, by ground truth,
//!   healthy at the moment the fence is carried out (the fencer's executor
//!   runs the fence command): up, its monitor running (not crashed, not
//!   frozen, not paused), its writes not failing, able to exchange files
//!   both ways with a majority of the configured nodes (a one-way
//!   partition or a `read-hang` of a node's directory cuts the link), and
//!   in control of its services (no service process of it survived a
//!   SIGKILL, as one in D state does). Such a node needs no fence: it can keep its groups, or
//!   stop them by itself. A frozen monitor, a crashed node, or a node whose
//!   processes survive its kill is not healthy, so fencing it is never
//!   needless. What the target believes (its lease, its claims) does not
//!   matter, nor does the fencer's reason, with one exception the issue
//!   sets: under `ranked`, the fence of the lost tie-breaker of an exact
//!   half (a 2-node cluster cut in two) is that half's vote, never counted
//!   as needless, as the other side cannot tell death from partition.
//!
//! Liveness:
//! * `liveness`: after the faults stop, every wanted group that has an
//!   eligible live node runs on exactly one eligible live node, within the
//!   liveness bound of the start of the quiet phase, and still at the end.
//!
//! Measured (a metric, per run and per sweep row, not a violation):
//! * **availability**: group-seconds in which a wanted group runs nowhere
//!   although some node could run it: up, healthy, in quorum by ground
//!   truth (it exchanges files with a majority) and eligible by its test.
//!   Counted from the group's first start or the end of the warm-up,
//!   whichever comes first.
//!
//! A group *runs* on a node when the node's init machine reports it settled
//! (DONE, PASSED) at its wanted level, or when service processes of it
//! orphaned by a dead `mosha` still run there (a start that hangs is not
//! running, though its process counts for `double-owner`).

use crate::metrics::Metrics;
use clinit_engine::status::GroupState;
use clinit_engine::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

pub const DOUBLE_OWNER: &str = "double-owner";
pub const FAILED_TEST: &str = "start-after-failed-test";
pub const HALT_BOUND: &str = "halt-bound";
pub const LIVENESS: &str = "liveness";
pub const NEEDLESS_FENCE: &str = "needless-fence";
/// The membership-transition history's invariants (judged by the world's
/// `transitions` module; see sim/README).
pub const TRANSITION_FORWARD: &str = "transition-forward";
pub const TRANSITION_AGREE: &str = "transition-agree";
pub const TRANSITION_JOINER: &str = "transition-joiner";
pub const HOOK_ORDER: &str = "hook-order";
pub const NO_FLAP: &str = "no-flap";
/// Every invariant a run can report, and so every one `shrink
/// --invariant` accepts (each is a violation of the run like any other;
/// it refused the five transition ones).
pub const ALL: [&str; 10] = [
    DOUBLE_OWNER,
    FAILED_TEST,
    HALT_BOUND,
    LIVENESS,
    NEEDLESS_FENCE,
    TRANSITION_FORWARD,
    TRANSITION_AGREE,
    TRANSITION_JOINER,
    HOOK_ORDER,
    NO_FLAP,
];

/// Levels whose processes are not the service itself: the HA layer's
/// transitions (spec: a group is planned, tested, then started).
pub fn is_service_level(level: &str) -> bool {
    !matches!(level, "plan" | "test" | "stop")
}

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
    /// Nodes that run the group (see the module doc), as of the last refresh.
    running: BTreeSet<u32>,
    since: Millis,
    double: bool,
    unavailable: bool,
    /// Start of the open unavailability span (see `Metrics::unavailable_spans`).
    unavailable_since: Option<Millis>,
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
    /// `[node][group]`: the node's running init machine has the group in
    /// its table. False while the machine started from a `cltab` that did
    /// not parse (it then has no group at all): no policy can run the
    /// group there, so the node is not eligible for it (see `liveness`).
    configured: Vec<Vec<bool>>,
    up: Vec<bool>,
    /// `[node]`: up, monitor running and not frozen or paused, and able to
    /// exchange files with a majority (ground truth).
    able: Vec<bool>,
    /// `[node][group]`: live service processes (ground truth).
    procs: Vec<Vec<u32>>,
    /// `[node][group]`: those of them orphaned by a dead `mosha`.
    orphans: Vec<Vec<u32>>,
    /// `[node][group]`: 0 no verdict in this episode, 1 passed, 2 failed.
    verdict: Vec<Vec<u8>>,
    /// `[node][group]`: the group's last reported level and state there.
    state: Vec<Vec<Option<(String, GroupState)>>>,
    halting_since: Vec<Option<Millis>>,
    /// Unavailability counts from here on (end of warm-up) even for a
    /// group that never ran.
    counting: bool,
    quiet_start: Millis,
    liveness_bound: Millis,
    pub metrics: Metrics,
    violations: Vec<Violation>,
    counts: BTreeMap<String, u64>,
    ring: VecDeque<Line>,
    pub log_enabled: bool,
    /// Also print every event-log line to stderr as it happens (set from
    /// `CLINIT_SIM_ECHO_LOG` by the world: a debugging aid for following
    /// one seed, e.g. an outage the report's `longest outages` names).
    pub echo: bool,
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
                running: BTreeSet::new(),
                since: Millis::ZERO,
                double: false,
                unavailable: false,
                unavailable_since: None,
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
            configured: vec![vec![true; g]; n],
            up: vec![false; n],
            able: vec![false; n],
            procs: vec![vec![0; g]; n],
            orphans: vec![vec![0; g]; n],
            verdict: vec![vec![0; g]; n],
            state: vec![vec![None; g]; n],
            halting_since: vec![None; n],
            counting: false,
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
            echo: false,
        }
    }

    /// Add a line to the event log.
    pub fn log(&mut self, at: Millis, node: u32, other: u32, text: impl FnOnce() -> String) {
        if !self.log_enabled {
            return;
        }
        let text = text();
        if self.echo {
            let who = if node == 0 { "  ".to_string() } else { format!("n{node}") };
            eprintln!("t={:.3}s {who} {text}", at.0 as f64 / 1000.0);
        }
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back(Line { at, nodes: [node, other], text });
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

    /// A violation of a named invariant checked outside the tracker (the
    /// world's transition checks), with the usual excerpt.
    pub fn violation(&mut self, invariant: &str, at: Millis, nodes: Vec<u32>, detail: String) {
        self.violate(invariant, at, None, nodes, detail, None);
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
        self.eligible[g]
            .iter()
            .enumerate()
            .skip(1)
            .any(|(n, &e)| e && self.up[n] && self.can_run(g, n))
    }

    /// Node `n`'s init machine has group `g` (see `configured`).
    fn can_run(&self, g: usize, n: usize) -> bool {
        self.configured.get(n).and_then(|c| c.get(g)).copied().unwrap_or(true)
    }

    /// Some node could run group `g` now: up, healthy, quorate by ground
    /// truth, eligible.
    fn could_run(&self, g: usize) -> bool {
        self.eligible[g]
            .iter()
            .enumerate()
            .skip(1)
            .any(|(n, &e)| e && self.able[n] && self.can_run(g, n))
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

    /// Group `g` runs on node `n` (ground truth; see the module doc).
    fn runs_on(&self, g: usize, n: usize) -> bool {
        if !self.up[n] {
            return false;
        }
        if self.orphans[n][g] > 0 {
            return true;
        }
        let want = &self.groups[g].want;
        matches!(&self.state[n][g], Some((l, GroupState::Done | GroupState::Passed)) if l == want)
    }

    /// Recompute group `g`'s condition after a change.
    fn refresh(&mut self, g: usize, now: Millis) {
        if self.groups[g].want == "stop" {
            // The operator wants it nowhere for now: not checked, not counted.
            if self.groups[g].double {
                self.close_double(g, now);
            }
            let t = &mut self.groups[g];
            if let Some(from) = t.unavailable_since.take() {
                self.metrics.unavailable_spans.push((g as u32, from, now));
            }
            t.double = false;
            t.unavailable = false;
            t.running.clear();
            t.ok_since.get_or_insert(now);
            return;
        }
        let has_eligible = self.has_eligible(g);
        let could_run = self.could_run(g);
        let n = self.up.len();
        let owners: Vec<u32> =
            (1..n).filter(|&k| self.up[k] && self.procs[k][g] > 0).map(|k| k as u32).collect();
        let running: BTreeSet<u32> =
            (1..n).filter(|&k| self.runs_on(g, k)).map(|k| k as u32).collect();
        let double = owners.len() >= 2;
        let single = running.len() == 1
            && owners.iter().all(|o| running.contains(o))
            && running.iter().all(|&k| self.eligible[g][k as usize]);
        let ok = !has_eligible || single;
        // Nodes that newly run the group: failovers end, moves count.
        let fresh: Vec<u32> =
            running.iter().copied().filter(|k| !self.groups[g].running.contains(k)).collect();
        for node in fresh {
            let t = &mut self.groups[g];
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
        let counting = self.counting || self.groups[g].ever_ran;
        let unavailable = counting && running.is_empty() && could_run;
        let was_double = self.groups[g].double;
        let name = self.groups[g].name.clone();
        if double && !was_double {
            let excerpt = self.excerpt(Some(&name), &owners);
            self.groups[g].open_double = Some((now, owners, excerpt));
        } else if !double && was_double {
            self.close_double(g, now);
        }
        let t = &mut self.groups[g];
        match (unavailable, t.unavailable_since) {
            (true, None) => t.unavailable_since = Some(now),
            (false, Some(from)) => {
                t.unavailable_since = None;
                self.metrics.unavailable_spans.push((g as u32, from, now));
            }
            _ => {}
        }
        t.running = running;
        t.double = double;
        t.unavailable = unavailable;
        match (ok, t.ok_since) {
            (true, None) => t.ok_since = Some(now),
            (false, Some(_)) => t.ok_since = None,
            _ => {}
        }
    }

    fn refresh_all(&mut self, now: Millis) {
        for g in 0..self.groups.len() {
            self.integrate(g, now);
            self.refresh(g, now);
        }
    }

    fn close_double(&mut self, g: usize, now: Millis) {
        if let Some((start, nodes, excerpt)) = self.groups[g].open_double.take() {
            let name = self.groups[g].name.clone();
            let secs = now.saturating_sub(start).0 as f64 / 1000.0;
            let detail = format!(
                "group {name}: service processes alive on nodes {nodes:?} at once, for {secs:.3} s"
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
        // Episode verdicts: a failed test at any level stands until the
        // next `plan` starts a new episode.
        match (level, state) {
            ("plan", GroupState::Starting) => self.verdict[n][g] = 0,
            (_, GroupState::Failed) => self.verdict[n][g] = 2,
            ("test", GroupState::Passed | GroupState::Done) if self.verdict[n][g] == 0 => {
                self.verdict[n][g] = 1
            }
            _ => {}
        }
        let want = &self.groups[g].want;
        if want != "stop"
            && level == want
            && *state == GroupState::Starting
            && self.verdict[n][g] == 2
        {
            let detail = format!("group {group} started at {level} on node {node} after a test of it failed there in the same episode");
            self.violate(FAILED_TEST, now, Some(group), vec![node], detail, None);
        }
        self.integrate(g, now);
        self.refresh(g, now);
    }

    /// A service process of `group` started (`started`) or ended on `node`
    /// (the process table's ground truth); `orphan`: one whose `mosha` died.
    pub fn process(&mut self, now: Millis, node: u32, group: &str, started: bool, orphan: bool) {
        let Some(&g) = self.index.get(group) else { return };
        let n = node as usize;
        let c = &mut self.procs[n][g];
        if started {
            *c += 1;
        } else {
            *c = c.saturating_sub(1);
        }
        if orphan {
            let o = &mut self.orphans[n][g];
            *o = if started { *o + 1 } else { o.saturating_sub(1) };
        }
        self.integrate(g, now);
        self.refresh(g, now);
    }

    /// Whether `node` is healthy and in quorum by ground truth changed (up,
    /// monitor running, not frozen or paused, exchanging files with a
    /// majority; see the module doc).
    pub fn set_able(&mut self, now: Millis, node: u32, able: bool) {
        let n = node as usize;
        if self.able[n] == able {
            return;
        }
        self.able[n] = able;
        self.refresh_all(now);
    }

    /// `by` fences `target`; `healthy` is the target's ground truth at
    /// this moment (see `needless-fence`).
    pub fn fence(&mut self, now: Millis, by: u32, target: u32, healthy: bool) {
        self.metrics.fences += 1;
        if healthy {
            self.metrics.needless_fences += 1;
            let detail = format!(
                "node {by} fenced node {target}, which was healthy: up, its monitor running, exchanging files with a majority"
            );
            self.violate(NEEDLESS_FENCE, now, None, vec![by, target], detail, None);
        }
    }

    /// The warm-up is over: a group that never ran counts as unavailable
    /// from now on, while some node could run it.
    pub fn begin_counting(&mut self, now: Millis) {
        self.counting = true;
        self.refresh_all(now);
    }

    /// The operator now wants `group` at `level` (an hactl edit).
    pub fn set_want(&mut self, now: Millis, group: &str, level: &str) {
        let Some(&g) = self.index.get(group) else { return };
        self.integrate(g, now);
        if self.groups[g].open_double.is_some() {
            self.close_double(g, now);
            self.groups[g].double = false;
        }
        let t = &mut self.groups[g];
        t.want = level.to_string();
        t.running.clear();
        t.ok_since = None;
        self.refresh(g, now);
    }

    /// The level the operator wants `group` at now.
    pub fn want(&self, group: &str) -> Option<&str> {
        self.index.get(group).map(|&g| self.groups[g].want.as_str())
    }

    /// A node came up (boot or restart of the machine).
    pub fn node_up(&mut self, now: Millis, node: u32) {
        let n = node as usize;
        self.up[n] = true;
        self.halting_since[n] = None;
        for v in &mut self.verdict[n] {
            *v = 0;
        }
        self.refresh_all(now);
    }

    /// `mosha` died on a live node: its service processes of `groups`
    /// (one entry per process) live on as orphans.
    pub fn orphaned(&mut self, now: Millis, node: u32, groups: &[String]) {
        let n = node as usize;
        for group in groups {
            if let Some(&g) = self.index.get(group) {
                self.orphans[n][g] += 1;
            }
        }
        self.refresh_all(now);
    }

    /// The node's monitor (`mosha`, with its init machine) died or started
    /// afresh on a live node: no machine state describes the node until
    /// its new init machine reports (its processes stay in the table).
    pub fn monitor_reset(&mut self, now: Millis, node: u32) {
        let n = node as usize;
        self.halting_since[n] = None;
        for v in &mut self.verdict[n] {
            *v = 0;
        }
        for st in &mut self.state[n] {
            *st = None;
        }
        self.refresh_all(now);
    }

    /// The node's monitor started with an init machine whose table holds
    /// `groups` (every group, unless its `cltab` did not parse: then none).
    /// A node whose init machine lacks a group is not eligible for it: no
    /// policy can run it there (the operator's unparsable `cltab`).
    pub fn configured(&mut self, now: Millis, node: u32, groups: &BTreeSet<String>) {
        let n = node as usize;
        for (g, t) in self.groups.iter().enumerate() {
            if let Some(c) = self.configured.get_mut(n).and_then(|c| c.get_mut(g)) {
                *c = groups.contains(&t.name);
            }
        }
        self.refresh_all(now);
    }

    /// A node died with its processes.
    pub fn node_down(&mut self, now: Millis, node: u32) {
        let n = node as usize;
        for g in 0..self.groups.len() {
            self.integrate(g, now);
            let t = &self.groups[g];
            if t.running.len() == 1 && t.running.contains(&node) {
                self.groups[g].pending_failovers.push(now);
            }
        }
        self.up[n] = false;
        self.able[n] = false;
        self.halting_since[n] = None;
        for st in &mut self.state[n] {
            *st = None;
        }
        for c in &mut self.procs[n] {
            *c = 0;
        }
        for c in &mut self.orphans[n] {
            *c = 0;
        }
        for g in 0..self.groups.len() {
            self.refresh(g, now);
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
            if let Some(from) = self.groups[g].unavailable_since.take() {
                self.metrics.unavailable_spans.push((g as u32, from, now));
            }
            self.metrics.failovers_unfinished += self.groups[g].pending_failovers.len() as u64;
            if !self.has_eligible(g) {
                continue;
            }
            let t = &self.groups[g];
            let name = t.name.clone();
            let deadline = self.quiet_start + self.liveness_bound;
            let procs: Vec<(u32, u32)> = (1..self.up.len())
                .filter(|&k| self.up[k] && self.procs[k][g] > 0)
                .map(|k| (k as u32, self.procs[k][g]))
                .collect();
            let describe = |t: &Track| {
                format!(
                    "operator wants {}; running on {:?}; service processes (node, count) {procs:?}",
                    t.want, t.running
                )
            };
            match t.ok_since {
                None => {
                    let detail = format!(
                        "group {name} is not running on exactly one eligible live node at the end ({})",
                        describe(t)
                    );
                    let nodes: Vec<u32> = t.running.iter().copied().collect();
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
    fn a_failed_test_at_plan_counts_too() {
        let mut t = tracker();
        t.group_state(Millis(1), 1, "web", "plan", &GroupState::Starting);
        t.group_state(Millis(2), 1, "web", "plan", &GroupState::Failed);
        // A later passing test does not wash the failure out.
        t.group_state(Millis(3), 1, "web", "test", &GroupState::Passed);
        t.group_state(Millis(4), 1, "web", "start", &GroupState::Starting);
        assert_eq!(t.counts().get(FAILED_TEST), Some(&1));
    }

    /// Double ownership is what the process table says, whatever the
    /// machines believe (no quorum filter, no state notices needed).
    #[test]
    fn double_owner_time_comes_from_the_process_table() {
        let mut t = tracker();
        t.process(Millis(1_000), 1, "web", true, false);
        t.group_state(Millis(2_000), 2, "web", "stop", &GroupState::Done);
        t.process(Millis(2_000), 2, "web", true, false);
        // A group the checker does not track is ignored.
        t.process(Millis(2_500), 1, "db", true, false);
        t.process(Millis(3_000), 2, "web", false, false);
        t.process(Millis(10_000), 1, "web", false, false);
        t.finish(Millis(20_000));
        assert_eq!(t.metrics.double_owner[0], Millis(1_000));
        assert_eq!(t.counts().get(DOUBLE_OWNER), Some(&1));
        assert_eq!(
            t.violations()[0].detail,
            "group web: service processes alive on nodes [1, 2] at once, for 1.000 s"
        );
        // A dead node's processes are gone with it.
        let mut t = tracker();
        t.process(Millis(1_000), 1, "web", true, false);
        t.process(Millis(1_000), 2, "web", true, false);
        t.node_down(Millis(1_500), 2);
        t.finish(Millis(5_000));
        assert_eq!(t.metrics.double_owner[0], Millis(500));
    }

    #[test]
    fn fencing_a_healthy_node_is_needless() {
        let mut t = tracker();
        t.fence(Millis(1_000), 1, 2, false);
        assert!(t.counts().is_empty());
        t.fence(Millis(2_000), 1, 2, true);
        assert_eq!(t.counts().get(NEEDLESS_FENCE), Some(&1));
        assert_eq!(t.metrics.fences, 2);
        assert_eq!(t.metrics.needless_fences, 1);
    }

    /// Unavailability needs a node that could run the group: healthy and
    /// quorate by ground truth; it counts from the first start or the end
    /// of the warm-up.
    #[test]
    fn unavailability_needs_a_healthy_quorate_node() {
        let mut t = tracker();
        t.begin_counting(Millis(0));
        t.set_able(Millis(1_000), 1, true);
        t.set_able(Millis(3_000), 1, false);
        t.set_able(Millis(5_000), 2, true);
        t.group_state(Millis(6_000), 2, "web", "start", &GroupState::Done);
        t.finish(Millis(9_000));
        assert_eq!(t.metrics.unavailable[0], Millis(3_000));
    }

    #[test]
    fn failover_latency_and_unavailability() {
        let mut t = tracker();
        t.set_able(Millis(0), 2, true);
        t.group_state(Millis(1_000), 1, "web", "start", &GroupState::Done);
        t.node_down(Millis(5_000), 1);
        t.group_state(Millis(17_000), 2, "web", "start", &GroupState::Done);
        t.finish(Millis(20_000));
        assert_eq!(t.metrics.failover_latencies, vec![Millis(12_000)]);
        assert_eq!(t.metrics.unavailable[0], Millis(12_000));
        assert_eq!(t.metrics.moves, 1);
        assert!(t.counts().is_empty());
    }

    /// A node whose init machine started from a `cltab` that did not parse
    /// has no group: it is not eligible for any (no policy can run one
    /// there), so a group eligible only there breaks no liveness and counts
    /// no unavailability; once a machine with the group starts, it does.
    #[test]
    fn a_node_whose_cltab_did_not_parse_is_not_eligible() {
        let run = |configured: bool| {
            let mut t = Tracker::new(
                1,
                2,
                &[("web".to_string(), "start".to_string())],
                vec![vec![false, true, false]],
                Millis(10_000),
                Millis(5_000),
            );
            t.node_up(Millis(0), 1);
            t.node_up(Millis(0), 2);
            t.set_able(Millis(0), 1, true);
            t.set_able(Millis(0), 2, true);
            t.begin_counting(Millis(0));
            let groups: BTreeSet<String> =
                if configured { ["web".to_string()].into() } else { BTreeSet::new() };
            t.configured(Millis(0), 1, &groups);
            t.finish(Millis(20_000));
            (t.counts().get(LIVENESS).copied(), t.metrics.unavailable[0])
        };
        assert_eq!(run(false), (None, Millis::ZERO));
        assert_eq!(run(true), (Some(1), Millis(20_000)));
    }
}
