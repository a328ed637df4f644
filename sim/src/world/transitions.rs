//! Membership transitions in the simulator (issue 12): every running
//! `mosha` runs the engine's record step
//! ([`clinit_engine::monitor::transitions::Recorder`]) as `mosha`'s
//! recorder thread does (a step every 0.5 s and at once on a membership
//! change; under `ranked` with the exact-half rule,
//! [`Recorder::with_tie_break`], fed the driver's successful fences as
//! `mosha`'s driver feeds its recorder thread), on a simulated
//! `transitions` file in each node's shared
//! directory; and the engine's [`HookQueue`] orders its hooks, each a
//! simulated command that runs for a drawn time (0–3 s, so a burst of
//! transitions queues hooks behind each other).
//!
//! Named invariants, checked against what the nodes actually wrote and ran:
//! * `transition-forward`: a node's history file never moves back (its
//!   last transition number never decreases);
//! * `transition-agree`: at the end of a run that has settled (no
//!   transition file changed in the last [`SETTLE`]), every running
//!   monitor holds the same history, that of the best file;
//! * `transition-joiner`: a monitor that starts while a history exists
//!   and can read every node's file starts from the best one (a node that
//!   joins later reads the same history);
//! * `hook-order`: on each `mosha` incarnation, hooks start in increasing
//!   transition order, one at a time (never while another runs);
//! * `no-flap`: a node recorded `up` is not recorded `down` within
//!   [`FLAP_WINDOW`] while, by ground truth, the same `mosha` incarnation
//!   ran throughout (not frozen, not paused) and is on the recorder's side
//!   of any partition, its files readable by it. A real `down` needs a
//!   cause: a crash (new incarnation), a freeze or pause, a partition, or a
//!   silence of at least the suspicion time (1.5 s under `ranked`), so a
//!   `down` this soon after the `up` is a flap. Real nodes showed one
//!   1-12 ms after the `up` at every join, firing `--on-nodedown`. It
//!   judges only a quiet world (no fault episode open, none begun or ended
//!   within [`FAULT_MARGIN`] before the `up`): read and write failures,
//!   slow or hung reads are causes it does not model pair by pair.
//!
//! **Idle recorders** (simulator cost only): `mosha` polls every 0.5 s
//! for ever; here a recorder whose last step read every file (all of them
//! readable) and changed nothing sleeps until a history file changes (it
//! then steps at the next poll) or its driver reports a membership
//! change. Its step would have found the same files, so it would have done
//! nothing; this keeps the event count of a quiet run as it was.
//!
//! **History faults** (`--faults history-write-fail`, `history-torn`,
//! `history-slow`): during an episode a node's history writes fail (the
//! file keeps its old content), leave a file cut after the first half of
//! its lines (its seal fails, so every reader skips it, as `mosha`'s
//! [`History::parse`] does), or land only after a delay (a newer write
//! replaces a pending one and never lands before it: a rename on one
//! client is ordered). In every case the engine's record step sees what a
//! `mosha` would read next, finds its own copy missing or behind, and
//! writes it again: the same code path as production's recorder thread,
//! which logs a failed write and retries at its next step. Otherwise
//! writes are seen at once; a read is refused across a partition, as for
//! every shared file.

use super::{Bytes, Ev, World};
use crate::faults::Fault;
use crate::seeds::{self, Stream};
use clinit_engine::monitor::transitions::{
    Change, History, HookQueue, ReadPlan, Recorder, Transition,
};
use clinit_engine::monitor::PolicyConfig;
use clinit_engine::time::Millis;
use clinit_engine::trace::Record;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

pub use crate::invariants::{
    HOOK_ORDER, NO_FLAP, TRANSITION_AGREE, TRANSITION_FORWARD, TRANSITION_JOINER,
};

/// `no-flap`'s window: a `down` less than this after the node's `up`, with
/// no ground-truth cause, is a flap. Below every suspicion time (ranked's
/// 1.5 s; classic's time-out of seconds), so a silence cannot explain it.
pub const FLAP_WINDOW: Millis = Millis(1_000);
/// `no-flap` judges an `up` only this long after the last fault episode
/// began or ended (twice the 1.5 s suspicion time): a silence that a fault
/// caused may end in a `down` a little after the fault.
pub const FAULT_MARGIN: Millis = Millis(3_000);

/// The recorder's poll (`mosha`'s recorder thread: 0.5 s).
const POLL: Millis = Millis(500);
/// A simulated hook runs for 0 to this long.
const HOOK_MAX: Millis = Millis(3_000);
/// The end-of-run agreement is checked only when no history file changed
/// for this long (two full-read periods of the record step: 20 s).
pub const SETTLE: Millis = Millis(20_000);
/// Lines of the final history the report keeps.
const REPORT_LINES: usize = 12;

/// One running `mosha`'s recorder and hooks.
pub(super) struct NodeRec {
    inc: u32,
    rec: Recorder,
    /// The pending step's generation: a membership change steps at once
    /// and restarts the poll (as a message wakes `mosha`'s thread).
    gen: u64,
    hooks: HookQueue,
    rng: ChaCha8Rng,
    /// Hook-order ground truth: the hook running now, the last started.
    running: Option<u64>,
    last_started: u64,
    /// Asleep until a history file changes (see the module doc).
    idle: bool,
}

/// Every node's recorder, history file and hook bookkeeping.
#[derive(Default)]
pub(super) struct SimTransitions {
    recs: Vec<Option<NodeRec>>,
    files: Vec<Option<(Bytes, u64)>>,
    /// The highest last number each node's file ever had.
    file_last: Vec<u64>,
    last_change: Millis,
    hooks_run: u64,
    /// The most hooks seen waiting behind a running one.
    max_waiting: usize,
    joiners: Vec<u32>,
    faults: HistoryFaults,
    /// Slow writes not yet visible, by node, in write order: (lands at,
    /// bytes, last).
    pending: Vec<Vec<(Millis, Bytes, u64)>>,
    /// `no-flap`: the highest transition number already judged.
    flap_checked: u64,
    /// `no-flap`: per node, when (world time) an `up` of it was last
    /// recorded and its `mosha` incarnation then.
    up_at: Vec<Option<(Millis, u32)>>,
    /// `no-flap` judges only a quiet world: the fault episodes begun and
    /// not ended (an episode without an end stays open), and when the
    /// last one began or ended.
    open_faults: std::collections::BTreeSet<usize>,
    fault_change: Option<Millis>,
}

/// The history-fault episodes in force (by schedule index) and what they
/// did.
#[derive(Default)]
struct HistoryFaults {
    fail: Vec<(usize, u32, f64)>,
    torn: Vec<(usize, u32)>,
    slow: Vec<(usize, u32, Millis)>,
    counts: HistoryFaultCounts,
}

/// How often history writes failed, tore or landed late in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryFaultCounts {
    pub failed: u64,
    pub torn: u64,
    pub late: u64,
}

/// What a run's transitions came to (for the report and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransitionSummary {
    /// The best history's last number (0: none).
    pub last: u64,
    /// The end-of-run agreement check ran (the run had settled).
    pub agreement_checked: bool,
    /// Running monitors whose history was compared.
    pub compared: Vec<u32>,
    /// Monitors that started while a history existed.
    pub joiners: Vec<u32>,
    /// Hooks run (started), all nodes.
    pub hooks_run: u64,
    /// The most hooks that waited behind a running one on a node (a burst
    /// of transitions queues them).
    pub max_waiting: usize,
    /// The best history's last lines (`#n node N up|down by R: reason`).
    pub lines: Vec<String>,
    /// History writes that failed, tore or landed late (history faults).
    pub history_faults: HistoryFaultCounts,
}

impl World {
    fn rec_mut(&mut self, node: u32) -> Option<&mut NodeRec> {
        self.transitions.recs.get_mut(node as usize).and_then(Option::as_mut)
    }

    /// A `mosha` incarnation starts: its recorder takes its first step at once.
    pub(super) fn transitions_start(&mut self, node: u32) {
        let n = self.cfg.nodes as usize;
        let t = &mut self.transitions;
        if t.recs.len() <= n {
            t.recs.resize_with(n + 1, || None);
            t.files.resize_with(n + 1, || None);
            t.file_last.resize(n + 1, 0);
            t.pending.resize_with(n + 1, Vec::new);
            t.up_at.resize(n + 1, None);
        }
        let inc = self.nodes[node as usize].incarnation;
        // `ranked`'s exact-half rule, as `mosha` runs it under `ranked`.
        let mut rec = Recorder::new(node, (1..=self.cfg.nodes).collect());
        if matches!(self.cfg.policy, PolicyConfig::Ranked(_)) {
            rec = rec.with_tie_break();
        }
        let rec = NodeRec {
            inc,
            rec,
            gen: 0,
            hooks: HookQueue::default(),
            rng: seeds::node_rng(self.seed, Stream::Hooks, node, inc),
            running: None,
            last_started: 0,
            idle: false,
        };
        t.recs[node as usize] = Some(rec);
        self.queue.push(self.now, Ev::Record { node, inc, gen: 0 });
    }

    /// The incarnation's `mosha` is gone (its hook is killed with it).
    pub(super) fn transitions_stop(&mut self, node: u32) {
        if let Some(slot) = self.transitions.recs.get_mut(node as usize) {
            *slot = None;
        }
    }

    /// The node's driver saw membership change.
    pub(super) fn transitions_membership(
        &mut self,
        node: u32,
        members: &[u32],
        changes: Vec<(u32, Change, String)>,
    ) {
        let (now, wall) = (self.now, self.wall(node));
        let Some(r) = self.rec_mut(node) else { return };
        r.rec.membership(members, changes, wall);
        r.gen += 1;
        r.idle = false;
        let (inc, gen) = (r.inc, r.gen);
        self.queue.push(now, Ev::Record { node, inc, gen });
    }

    /// The node's driver fenced `target` successfully: under `ranked` the
    /// fence is a vote for the exact-half rule, and the `down` ("fenced by
    /// node N") waits for the next step, taken at once (`mosha`'s driver
    /// sends the fence to its recorder thread, which wakes and steps).
    pub(super) fn transitions_fenced(&mut self, node: u32, target: u32) {
        let (now, wall) = (self.now, self.wall(node));
        let Some(r) = self.rec_mut(node) else { return };
        r.rec.fenced(target, wall);
        r.gen += 1;
        r.idle = false;
        let (inc, gen) = (r.inc, r.gen);
        self.queue.push(now, Ev::Record { node, inc, gen });
    }

    /// `Ev::Record`: one record step of the node's current incarnation.
    pub(super) fn transitions_step(&mut self, node: u32, inc: u32, gen: u64) {
        let now = self.now;
        let Some(r) = self.rec_mut(node) else { return };
        if r.inc != inc || r.gen != gen {
            return;
        }
        self.land_due_histories();
        let Some(r) = self.rec_mut(node) else { return };
        let plan = r.rec.plan();
        let full = plan == ReadPlan::All;
        let targets: Vec<u32> = match plan {
            ReadPlan::All => (1..=self.cfg.nodes).collect(),
            ReadPlan::Nodes(nodes) => nodes,
        };
        let mut read = Vec::new();
        let mut all_readable = true;
        for j in targets {
            if j != node && (!self.members.same_side(node, j) || self.blocked(node, j)) {
                all_readable = false;
                continue;
            }
            if let Some((bytes, _)) = &self.transitions.files[j as usize] {
                if let Ok(h) = History::parse(bytes) {
                    read.push((j, h));
                }
            }
        }
        let best_seen = read.iter().map(|(_, h)| h.last).max().unwrap_or(0);
        let Some(r) = self.rec_mut(node) else { return };
        let out = r.rec.step(read, full);
        r.gen += 1;
        let next = r.gen;
        r.idle = full && all_readable && out.write.is_none();
        let idle = r.idle;
        let mine = r.rec.history().last;
        if let Some(found) = out.found_at_start {
            if found > 0 {
                self.transitions.joiners.push(node);
                self.tracker
                    .log(now, node, 0, || format!("history found up to transition {found}"));
            }
            if all_readable && full && found < best_seen {
                let detail = format!(
                    "node {node} started from transition {found} though it read one up to {best_seen}"
                );
                self.tracker.violation(TRANSITION_JOINER, now, vec![node], detail);
            }
        }
        if let Some(h) = out.write {
            // `no-flap` judges what the recorder records, whether or not
            // the write then fails, tears or lands late.
            let checked = self.transitions.flap_checked;
            let fresh: Vec<(u32, Change)> = h
                .entries
                .iter()
                .filter(|e| e.number > checked && e.by == node)
                .map(|e| (e.node, e.change))
                .collect();
            self.transitions.flap_checked = checked.max(h.last);
            self.check_flaps(node, &fresh);
            self.write_history(node, h.render(), h.last);
        }
        debug_assert!(mine >= out.announce.last().map_or(0, |t| t.number));
        for t in out.announce {
            self.trace.record(&Record::Transition {
                node,
                at: now,
                number: t.number,
                about: t.node,
                change: t.change,
                by: t.by,
            });
            self.tracker.log(now, node, t.node, || {
                format!(
                    "transition #{}: node {} {} ({}), recorded by node {}",
                    t.number, t.node, t.change, t.reason, t.by
                )
            });
            if let Some(r) = self.rec_mut(node) {
                r.hooks.push(t);
            }
        }
        self.start_hooks(node);
        if !idle {
            self.queue.push(now + POLL, Ev::Record { node, inc, gen: next });
        }
    }

    /// The node's `mosha` writes its history file: as the history faults
    /// in force say (fail, tear, land late), else at once.
    fn write_history(&mut self, node: u32, bytes: Vec<u8>, last: u64) {
        let now = self.now;
        let t = &mut self.transitions;
        let fail = t.faults.fail.iter().filter(|f| f.1 == node).map(|f| f.2).fold(0.0, f64::max);
        let torn = t.faults.torn.iter().any(|f| f.1 == node);
        let delay = t.faults.slow.iter().filter(|f| f.1 == node).map(|f| f.2).max();
        if fail > 0.0 {
            let failed = self.rec_mut(node).is_some_and(|r| r.rng.random_bool(fail.min(1.0)));
            if failed {
                self.transitions.faults.counts.failed += 1;
                self.tracker.log(now, node, 0, || "history write failed".into());
                return;
            }
        }
        if torn {
            let cut = super::cut_at_line(&bytes);
            let t = &mut self.transitions;
            t.faults.counts.torn += 1;
            t.files[node as usize] = Some((Arc::from(&bytes[..cut]), 0));
            t.last_change = now;
            self.tracker.log(now, node, 0, || format!("history write torn at byte {cut}"));
            return;
        }
        if let Some(delay) = delay {
            let t = &mut self.transitions;
            t.faults.counts.late += 1;
            // Never before a write already pending: renames are ordered.
            let queue = &mut t.pending[node as usize];
            let due = queue.last().map_or(now + delay, |(at, ..)| (*at).max(now + delay));
            queue.push((due, Arc::from(bytes), last));
            return;
        }
        // A write at once lands after every pending one (ordered renames).
        self.land_pending(node, None);
        self.land_history(node, Arc::from(bytes), last, now);
    }

    /// Slow history writes whose time has come become visible.
    fn land_due_histories(&mut self) {
        let now = self.now;
        for node in 0..self.transitions.pending.len() {
            self.land_pending(node as u32, Some(now));
        }
    }

    /// Node `node`'s pending writes due by `until` (all: `None`) land, in
    /// write order.
    fn land_pending(&mut self, node: u32, until: Option<Millis>) {
        let queue = &mut self.transitions.pending[node as usize];
        let k = queue.iter().take_while(|(at, ..)| until.is_none_or(|u| *at <= u)).count();
        let landing: Vec<_> = queue.drain(..k).collect();
        for (at, bytes, last) in landing {
            // Visible from its due time (it may be landed later, when a
            // step or the end of the run looks).
            self.land_history(node, bytes, last, at.min(self.now));
        }
    }

    /// A complete history file becomes visible (since `at`): the
    /// `transition-forward` check, and idle recorders wake to read it.
    /// Rewriting the same bytes changes nothing.
    fn land_history(&mut self, node: u32, bytes: Bytes, last: u64, at: Millis) {
        let now = self.now;
        let t = &mut self.transitions;
        if t.files[node as usize].as_ref().is_some_and(|(old, _)| *old == bytes) {
            return;
        }
        let before = t.file_last[node as usize];
        if let Some(why) = forward_breaks(before, last) {
            let detail = format!("node {node}'s history file {why}");
            self.tracker.violation(TRANSITION_FORWARD, now, vec![node], detail);
        }
        t.file_last[node as usize] = before.max(last);
        t.files[node as usize] = Some((bytes, last));
        t.last_change = t.last_change.max(at);
        let mut wake = Vec::new();
        for (j, other) in t.recs.iter_mut().enumerate() {
            if let Some(o) = other.as_mut().filter(|o| o.idle && j != node as usize) {
                o.idle = false;
                o.gen += 1;
                wake.push(Ev::Record { node: j as u32, inc: o.inc, gen: o.gen });
            }
        }
        for ev in wake {
            self.queue.push(now + POLL, ev);
        }
    }

    /// A history-fault episode `i` starts (false: `fault` is another kind).
    pub(super) fn history_fault_start(&mut self, i: usize, fault: &Fault) -> bool {
        let nodes = 1..=self.cfg.nodes;
        let len = match *fault {
            Fault::HistoryWriteFail { node, p, len } if nodes.contains(&node) => {
                self.transitions.faults.fail.push((i, node, p));
                len
            }
            Fault::HistoryTorn { node, len } if nodes.contains(&node) => {
                self.transitions.faults.torn.push((i, node));
                len
            }
            Fault::HistorySlow { node, delay, len } if nodes.contains(&node) => {
                self.transitions.faults.slow.push((i, node, delay));
                len
            }
            Fault::HistoryWriteFail { .. }
            | Fault::HistoryTorn { .. }
            | Fault::HistorySlow { .. } => return true,
            _ => return false,
        };
        self.queue.push(self.now + len, Ev::FaultEnd(i));
        true
    }

    /// Episode `i` ends (if it was a history fault).
    pub(super) fn history_fault_end(&mut self, i: usize) {
        let f = &mut self.transitions.faults;
        f.fail.retain(|x| x.0 != i);
        f.torn.retain(|x| x.0 != i);
        f.slow.retain(|x| x.0 != i);
    }

    /// The quiet phase: every history fault ends (pending slow writes
    /// still land when due).
    pub(super) fn history_faults_quiet(&mut self) {
        let f = &mut self.transitions.faults;
        f.fail.clear();
        f.torn.clear();
        f.slow.clear();
    }

    /// A fault episode began (`true`) or ended: `no-flap` does not judge
    /// while any is open, nor within [`FAULT_MARGIN`] of the last change.
    pub(super) fn transitions_fault(&mut self, episode: usize, begins: bool) {
        let t = &mut self.transitions;
        if begins {
            t.open_faults.insert(episode);
        } else {
            t.open_faults.remove(&episode);
        }
        t.fault_change = Some(self.now);
    }

    /// `no-flap` on the transitions node `by` just recorded (in order).
    fn check_flaps(&mut self, by: u32, fresh: &[(u32, Change)]) {
        let now = self.now;
        for &(x, change) in fresh {
            let Some(slot) = self.nodes.get(x as usize) else { continue };
            let inc = slot.incarnation;
            let running = slot.driver.is_some() && !slot.frozen && !slot.paused;
            let heard = self.members.same_side(by, x) && !self.blocked(by, x);
            // Quiet since well before the up: no fault explains the down
            // (read failures, write failures, slow or hung reads, freezes
            // and partitions are all episodes).
            let t = &self.transitions;
            let quiet =
                t.open_faults.is_empty()
                    && t.up_at.get(x as usize).copied().flatten().is_some_and(|(at, _)| {
                        t.fault_change.is_none_or(|f| f + FAULT_MARGIN <= at)
                    });
            let Some(up) = self.transitions.up_at.get_mut(x as usize) else { continue };
            match change {
                Change::Up => *up = Some((now, inc)),
                Change::Down => {
                    if let Some(why) = flap_breaks(*up, now, inc, running && heard && quiet) {
                        let detail = format!("node {x} {why} (recorded by node {by})");
                        self.tracker.violation(NO_FLAP, now, vec![x], detail);
                    }
                    *up = None;
                }
            }
        }
    }

    /// Start the next queued hook if none runs.
    fn start_hooks(&mut self, node: u32) {
        let now = self.now;
        let Some(r) = self.rec_mut(node) else { return };
        let waiting = r.hooks.waiting();
        let Some(t) = r.hooks.start_next() else {
            self.transitions.max_waiting = self.transitions.max_waiting.max(waiting);
            return;
        };
        let broken = hook_start_breaks(r.running, r.last_started, t.number);
        r.running = Some(t.number);
        r.last_started = r.last_started.max(t.number);
        let took = Millis(r.rng.random_range(0..=HOOK_MAX.0));
        let inc = r.inc;
        self.transitions.hooks_run += 1;
        if let Some(why) = broken {
            self.tracker.violation(HOOK_ORDER, now, vec![node], format!("node {node}: {why}"));
        }
        self.tracker.log(now, node, t.node, || hook_line(&t, took));
        self.queue.push(now + took, Ev::HookDone { node, inc, number: t.number });
    }

    /// `Ev::HookDone`: a hook of the node's incarnation `inc` ended.
    pub(super) fn transitions_hook_done(&mut self, node: u32, inc: u32, number: u64) {
        let Some(r) = self.rec_mut(node) else { return };
        if r.inc != inc {
            return;
        }
        r.hooks.finished(number);
        if r.running == Some(number) {
            r.running = None;
        }
        self.start_hooks(node);
    }

    /// End of the run: the agreement check and the summary.
    pub(super) fn transitions_finish(&mut self) -> TransitionSummary {
        self.land_due_histories();
        let now = self.now;
        let t = &self.transitions;
        let best = History::best(
            t.files.iter().flatten().filter_map(|(bytes, _)| History::parse(bytes).ok()),
        )
        .unwrap_or_default();
        let mut summary = TransitionSummary {
            last: best.last,
            hooks_run: t.hooks_run,
            max_waiting: t.max_waiting,
            joiners: t.joiners.clone(),
            history_faults: t.faults.counts,
            lines: best
                .tail(REPORT_LINES)
                .iter()
                .map(|t| {
                    format!("#{} node {} {} by {}: {}", t.number, t.node, t.change, t.by, t.reason)
                })
                .collect(),
            ..TransitionSummary::default()
        };
        if now.saturating_sub(t.last_change) < SETTLE {
            return summary;
        }
        summary.agreement_checked = true;
        let mut held = Vec::new();
        for (node, r) in t.recs.iter().enumerate() {
            let Some(r) = r else { continue };
            let slot = &self.nodes[node];
            if slot.frozen || slot.paused || slot.driver.is_none() {
                continue;
            }
            summary.compared.push(node as u32);
            held.push((node as u32, r.rec.history()));
        }
        let differ = disagreeing(&best, &held);
        if !differ.is_empty() {
            let detail = format!(
                "running monitors hold different histories at the end: best up to {}, {differ:?} (node, last) differ",
                best.last
            );
            let nodes = differ.iter().map(|(n, _)| *n).collect();
            self.tracker.violation(TRANSITION_AGREE, now, nodes, detail);
        }
        summary
    }
}

/// `hook-order`: why starting transition `number`'s hook breaks it (a hook
/// `running` now, or `last` started already at or above `number`).
fn hook_start_breaks(running: Option<u64>, last: u64, number: u64) -> Option<String> {
    match running {
        Some(other) => Some(format!("starts the hook of transition {number} while {other}'s runs")),
        None if number <= last => {
            Some(format!("starts the hook of transition {number} after that of {last}"))
        }
        None => None,
    }
}

/// `no-flap`: why recording a `down` at `now` of a node whose `up` was
/// recorded at `up` (world time, its incarnation then) is a flap, given its
/// incarnation now and whether it ran healthy and reachable throughout.
fn flap_breaks(up: Option<(Millis, u32)>, now: Millis, inc: u32, healthy: bool) -> Option<String> {
    let (at, up_inc) = up?;
    let soon = now.saturating_sub(at) < FLAP_WINDOW;
    (soon && up_inc == inc && healthy).then(|| {
        format!(
            "down {} after its up, same incarnation, running and reachable",
            now.saturating_sub(at)
        )
    })
}

/// `transition-forward`: why a file whose last number was `before` breaks
/// it when rewritten with `after`.
fn forward_breaks(before: u64, after: u64) -> Option<String> {
    (after < before).then(|| format!("went back from transition {before} to {after}"))
}

/// `transition-agree`: the (node, last number) of each held history that
/// is not `best`.
fn disagreeing(best: &History, held: &[(u32, &History)]) -> Vec<(u32, u64)> {
    held.iter().filter(|(_, h)| *h != best).map(|(n, h)| (*n, h.last)).collect()
}

fn hook_line(t: &Transition, took: Millis) -> String {
    format!("hook --on-node{} for transition #{} (node {}) runs {took}", t.change, t.number, t.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_fire_on_what_they_forbid() {
        assert!(hook_start_breaks(Some(3), 3, 4).is_some(), "two hooks at once");
        assert!(hook_start_breaks(None, 4, 4).is_some(), "a number twice");
        assert!(hook_start_breaks(None, 5, 4).is_some(), "out of order");
        assert_eq!(hook_start_breaks(None, 4, 5), None);
        assert!(forward_breaks(7, 6).is_some());
        assert_eq!(forward_breaks(7, 7), None);
        let mut a = History::default();
        a.append(2, Change::Down, 0, 1, "a");
        let mut b = a.clone();
        b.append(2, Change::Up, 0, 1, "b");
        assert_eq!(disagreeing(&b, &[(1, &b), (3, &a)]), vec![(3, 1)]);
        assert!(disagreeing(&b, &[(1, &b), (2, &b)]).is_empty());
        let up = Some((Millis(10_000), 2));
        assert!(flap_breaks(up, Millis(10_012), 2, true).is_some(), "down 12 ms after up");
        assert_eq!(flap_breaks(up, Millis(11_600), 2, true), None, "after a real silence");
        assert_eq!(flap_breaks(up, Millis(10_012), 3, true), None, "a crash: new incarnation");
        assert_eq!(flap_breaks(up, Millis(10_012), 2, false), None, "frozen or cut off");
        assert_eq!(flap_breaks(None, Millis(10_012), 2, true), None, "never up");
    }
}
