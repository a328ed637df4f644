//! The record step of the transition history: one pure state machine that
//! `mosha`'s recorder thread and the simulator both run (issue 12). The
//! caller only reads history files (the ones [`Recorder::plan`] names),
//! hands them to [`Recorder::step`], writes the node's own copy when the
//! step says so, and logs and hooks the transitions it announces.
//!
//! **The rules, in one place.**
//! * *Forward only*: the node's history is replaced only by a better one
//!   ([`History::best`]: a higher last number, then the content-hash
//!   tie-break), so its last number never decreases.
//! * *Who records*: a membership change this node saw is appended only
//!   when this node is the recorder of its view ([`recorder`]: the lowest
//!   node of a view holding a majority of the known nodes); otherwise it is
//!   dropped (the recorder records the same change from its own view).
//! * *What is recorded*: a change the history already says (a second
//!   `down` of a node it has down) is not recorded again. When a node
//!   *becomes* the recorder, it first reconciles the history with its view:
//!   a node the history names whose state differs gets the missing
//!   transition ("reconciled"); an `up` at once, a `down` only once its view
//!   has settled ([`SETTLE_POLLS`] full reads after the last change), since
//!   a recorder that just started hears its peers one by one. So each node's changes alternate down, up,
//!   down..., even when the role moves to a node that just started and
//!   never saw the changes the others saw. Only at the takeover: two nodes
//!   whose views differ for a while (both believe they record) would
//!   otherwise undo each other's entries at every poll.
//! * *What is announced*: every transition numbered above the last one
//!   announced, once, in order. History that existed when this node started
//!   is never announced (a restarted `mosha` does not re-run old hooks), and
//!   a number is never announced twice, even when a fork replaced its entry.
//! * *What is read* (the O(N) cost): a full read of every node's file at
//!   the start, for [`SETTLE_POLLS`] polls after each membership change
//!   (the recorder may record a little after this node saw the change),
//!   and every [`FULL_EVERY`] polls (a fork, or a change this node did not
//!   see); otherwise only the node's own file and the last recorder's.

use super::{recorder_tie_break, Change, History, Transition};
use std::collections::BTreeSet;

/// Polls of full reads after a membership change this node saw. At the
/// real recorder's 0.5 s poll, 5 s: membership views of the nodes differ by
/// about a heartbeat time-out at most in the tests and simulations.
pub const SETTLE_POLLS: u32 = 10;
/// A full read at least every this many polls (10 s at a 0.5 s poll), so
/// that a fork, or a transition recorded from a change this node never
/// saw, reaches it within that time.
pub const FULL_EVERY: u32 = 20;

/// Which nodes' history files the next step reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlan {
    /// Every node's file (the caller lists the node directories).
    All,
    /// Only these nodes' files (ascending, this node's own included).
    Nodes(Vec<u32>),
}

/// A membership change waiting for the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    node: u32,
    change: Change,
    reason: String,
    /// This node's wall clock when it saw the change (ms since the epoch).
    at_ms: i64,
}

/// What one step asks of the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Write this history as the node's own file (it differs from what was
    /// read there).
    pub write: Option<History>,
    /// Transitions to log and hand to the hooks, in order, each once.
    pub announce: Vec<Transition>,
    /// Changes this node saw but did not record (not the recorder, or no
    /// majority in view): for a debug line.
    pub not_recorded: Vec<(u32, Change, String)>,
    /// On the first step: the history found at the start (its last number),
    /// which is never announced.
    pub found_at_start: Option<u64>,
}

/// One node's record step (see the module doc).
#[derive(Debug, Clone)]
pub struct Recorder {
    me: u32,
    /// The cluster's nodes for the majority check (empty: none).
    known: Vec<u32>,
    mine: History,
    /// Announced up to this number.
    announced: u64,
    started: bool,
    view: BTreeSet<u32>,
    pending: Vec<Pending>,
    /// Full reads still owed after the last membership change.
    settle: u32,
    /// Polls since the last full read.
    since_full: u32,
    /// This node was the recorder at the last step.
    recording: bool,
    /// The wall clock of the last membership notice (ms since the epoch),
    /// the time of a reconciled transition.
    last_at_ms: i64,
    /// This node took over as recorder and has not yet reconciled the
    /// nodes its view lacks (done once the view has settled).
    reconcile_downs: bool,
    /// `ranked`'s exact-half rule ([`recorder_tie_break`]).
    tie_break: bool,
    /// Nodes this node fenced successfully, until they are seen up again
    /// (a fence vote lasts until a new incarnation of the node is seen).
    fenced: BTreeSet<u32>,
}

impl Recorder {
    /// The step of node `me`; `known`: the cluster's nodes (empty: no
    /// majority check, as under `classic`).
    pub fn new(me: u32, known: Vec<u32>) -> Recorder {
        Recorder {
            me,
            known,
            mine: History::default(),
            announced: 0,
            started: false,
            view: BTreeSet::new(),
            pending: Vec::new(),
            settle: 0,
            since_full: 0,
            recording: false,
            last_at_ms: 0,
            reconcile_downs: false,
            tie_break: false,
            fenced: BTreeSet::new(),
        }
    }

    /// Under `ranked`: a view holding exactly half of the known nodes has a
    /// recorder when it holds the lowest-numbered known node, or when this
    /// node fenced a known node outside it ([`recorder_tie_break`]), as
    /// the lease counts an exact half. Without it a 2-node survivor (half)
    /// recorded nothing and ran no hook on failover.
    pub fn with_tie_break(mut self) -> Recorder {
        self.tie_break = true;
        self
    }

    /// This node fenced `node` successfully at its wall clock `at_ms`:
    /// under the exact-half rule its vote goes with this node until `node`
    /// is seen up again, and its `down` ("fenced") waits for the next step,
    /// which this vote may make the recorder's (the `down` this node saw
    /// earlier was dropped: it did not record then).
    ///
    /// The fence may come first: `ranked` suspects a silent peer after
    /// 1.5 s and fences it, while a membership source may list it down
    /// only seconds later. The vote is then kept for the next membership
    /// change, which drops the node from the view (the `down` comes with
    /// it); a change that still shows the node ends the vote (see
    /// [`Recorder::membership`]). Dropping such a vote, as this did at
    /// first, left a 2-node survivor that fenced node 1 recording nothing.
    pub fn fenced(&mut self, node: u32, at_ms: i64) {
        if !self.tie_break {
            return;
        }
        self.fenced.insert(node);
        if self.view.contains(&node) {
            return;
        }
        let reason = format!("fenced by node {}", self.me);
        self.pending.push(Pending { node, change: Change::Down, reason, at_ms });
    }

    /// This node's history as of the last step.
    pub fn history(&self) -> &History {
        &self.mine
    }

    /// The driver saw membership change: `members` is its view now,
    /// `changes` what changed (node, up/down, reason), at this node's wall
    /// clock `at_ms` (ms since the epoch). A fence vote ends when the view
    /// holds its node: seen up again, or not dropped by the first change
    /// after a fence that came before the membership source's `down`.
    pub fn membership(&mut self, members: &[u32], changes: Vec<(u32, Change, String)>, at_ms: i64) {
        self.view = members.iter().copied().collect();
        self.fenced.retain(|n| !self.view.contains(n));
        self.last_at_ms = at_ms;
        self.pending.extend(changes.into_iter().map(|(node, change, reason)| Pending {
            node,
            change,
            reason,
            at_ms,
        }));
        self.settle = SETTLE_POLLS;
    }

    /// The files the next [`Recorder::step`] needs.
    pub fn plan(&self) -> ReadPlan {
        if !self.started || self.settle > 0 || self.since_full + 1 >= FULL_EVERY {
            return ReadPlan::All;
        }
        let mut nodes = vec![self.me];
        if let Some(by) = self.mine.entries.last().map(|t| t.by) {
            if by != self.me {
                nodes.push(by);
            }
        }
        nodes.sort_unstable();
        ReadPlan::Nodes(nodes)
    }

    /// One step on the files read by `plan` (`read`: each readable, sealed
    /// history by node; `full`: the plan was [`ReadPlan::All`]).
    pub fn step(&mut self, read: Vec<(u32, History)>, full: bool) -> Step {
        let mut out = Step::default();
        if full {
            self.since_full = 0;
            self.settle = self.settle.saturating_sub(1);
        } else {
            self.since_full += 1;
        }
        let on_disk = read.iter().find(|(n, _)| *n == self.me).map(|(_, h)| h.clone());
        if let Some(best) = History::best(read.into_iter().map(|(_, h)| h)) {
            if best.last > self.mine.last || (best.last == self.mine.last && best != self.mine) {
                self.mine = History::best([best, self.mine.clone()]).unwrap_or_default();
            }
        }
        if !self.started {
            self.started = true;
            self.announced = self.mine.last;
            out.found_at_start = Some(self.mine.last);
        }
        let recording = recorder_tie_break(&self.view, &self.known, &self.fenced, self.tie_break)
            == Some(self.me);
        let takeover = recording && !self.recording;
        self.recording = recording;
        if recording {
            let mut states = self.mine.states();
            let at_ms = self.pending.last().map_or(self.last_at_ms, |p| p.at_ms);
            for p in self.pending.drain(..) {
                if states.get(&p.node) != Some(&p.change) {
                    self.mine.append(p.node, p.change, p.at_ms, self.me, &p.reason);
                    states.insert(p.node, p.change);
                }
            }
            if takeover {
                self.reconcile_downs = true;
            }
            // A `down` is reconciled only once the view has settled: a
            // recorder that just (re)started hears its peers one by one,
            // and a peer not yet heard is not down (NU1: "node 3 down:
            // reconciled", then "node 3 up" 10 ms later, firing the
            // nodedown hooks for a healthy node). An `up` is safe at once:
            // the node is in the view.
            let downs = self.reconcile_downs && self.settle == 0;
            if downs {
                self.reconcile_downs = false;
            }
            for (node, said) in states.into_iter().filter(|_| takeover || downs) {
                let now = if self.view.contains(&node) { Change::Up } else { Change::Down };
                let due = if now == Change::Up { takeover } else { downs };
                if said != now && due {
                    let reason = format!("reconciled: the recorder's view has it {now}");
                    self.mine.append(node, now, at_ms, self.me, &reason);
                }
            }
        } else {
            self.reconcile_downs = false;
            out.not_recorded =
                self.pending.drain(..).map(|p| (p.node, p.change, p.reason)).collect();
        }
        if on_disk.as_ref() != Some(&self.mine) && (self.mine.last > 0 || on_disk.is_some()) {
            out.write = Some(self.mine.clone());
        }
        out.announce = self.mine.after(self.announced).to_vec();
        self.announced = self.announced.max(self.mine.last);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(node: u32) -> Vec<(u32, Change, String)> {
        vec![(node, Change::Down, "missed heartbeats".into())]
    }

    #[test]
    fn the_recorder_appends_writes_and_announces_once() {
        let mut r = Recorder::new(1, vec![1, 2, 3]);
        assert_eq!(r.plan(), ReadPlan::All);
        let first = r.step(Vec::new(), true);
        assert_eq!(first.found_at_start, Some(0));
        assert_eq!(first.write, None, "nothing to write before any transition");
        r.membership(&[1, 2], down(3), 5_000);
        let s = r.step(Vec::new(), true);
        assert_eq!(s.announce.len(), 1);
        assert_eq!(s.announce[0].number, 1);
        assert_eq!(s.announce[0].by, 1);
        let written = s.write.expect("writes its copy");
        let again = r.step(vec![(1, written)], true);
        assert!(again.write.is_none() && again.announce.is_empty(), "{again:?}");
    }

    /// Issue 12: a 2-node survivor holds half of the known nodes. Under
    /// ranked's exact-half rule node 1 (the tie-breaker) records node 2's
    /// `down` at once; node 2 records node 1's only once its fence of node
    /// 1 succeeded, and the vote ends when node 1 is seen up again.
    #[test]
    fn a_two_node_survivor_records_by_the_exact_half_rule() {
        let mut one = Recorder::new(1, vec![1, 2]).with_tie_break();
        one.step(Vec::new(), true);
        one.membership(&[1], down(2), 5_000);
        let s = one.step(Vec::new(), true);
        assert_eq!(s.announce.len(), 1, "{s:?}");
        assert_eq!((s.announce[0].node, s.announce[0].change), (2, Change::Down));

        let mut two = Recorder::new(2, vec![1, 2]).with_tie_break();
        two.step(Vec::new(), true);
        two.membership(&[2], down(1), 5_000);
        let s = two.step(Vec::new(), true);
        assert!(s.announce.is_empty() && s.not_recorded.len() == 1, "half, no vote: {s:?}");
        two.fenced(1, 8_000);
        let s = two.step(Vec::new(), true);
        assert_eq!(s.announce.len(), 1, "{s:?}");
        let t = &s.announce[0];
        assert_eq!((t.node, t.change, t.by, t.at_ms), (1, Change::Down, 2, 8_000));
        assert_eq!(t.reason, "fenced by node 2");
        // Node 1 comes back: the view {1, 2} is node 1's to record, and
        // the vote is over (a later loss of node 1 without a new fence
        // records nothing here).
        two.membership(&[1, 2], vec![(1, Change::Up, "back".into())], 20_000);
        let s = two.step(Vec::new(), true);
        assert!(s.announce.is_empty() && s.not_recorded.len() == 1, "node 1 records: {s:?}");
        two.membership(&[2], down(1), 30_000);
        let s = two.step(Vec::new(), true);
        assert!(s.announce.is_empty() && s.not_recorded.len() == 1, "no vote any more: {s:?}");

        // The fence may come before the membership source drops node 1
        // (ranked suspects after 1.5 s; a membership source may take
        // longer): the vote waits for that change, which records.
        let mut early = Recorder::new(2, vec![1, 2]).with_tie_break();
        early.step(Vec::new(), true);
        early.membership(&[1, 2], Vec::new(), 1_000);
        early.step(Vec::new(), true);
        early.fenced(1, 4_000);
        let s = early.step(Vec::new(), true);
        assert!(s.announce.is_empty(), "node 1 is still in the view: {s:?}");
        early.membership(&[2], down(1), 9_000);
        let s = early.step(Vec::new(), true);
        assert_eq!(s.announce.len(), 1, "the fence's vote records the drop: {s:?}");
        assert_eq!(
            (s.announce[0].node, s.announce[0].change, s.announce[0].by),
            (1, Change::Down, 2)
        );
        // A change that still shows the fenced node ends that vote.
        let mut stale = Recorder::new(2, vec![1, 2]).with_tie_break();
        stale.step(Vec::new(), true);
        stale.membership(&[1, 2], Vec::new(), 1_000);
        stale.fenced(1, 4_000);
        stale.membership(&[1, 2], Vec::new(), 5_000);
        stale.step(Vec::new(), true);
        stale.membership(&[2], down(1), 9_000);
        let s = stale.step(Vec::new(), true);
        assert!(s.announce.is_empty() && s.not_recorded.len() == 1, "vote ended: {s:?}");

        // Without the rule (classic), neither half records.
        let mut plain = Recorder::new(1, vec![1, 2]);
        plain.step(Vec::new(), true);
        plain.membership(&[1], down(2), 5_000);
        assert!(plain.step(Vec::new(), true).announce.is_empty());
    }

    #[test]
    fn a_non_recorder_adopts_and_does_not_record() {
        let mut r = Recorder::new(2, vec![1, 2, 3]);
        r.step(Vec::new(), true);
        r.membership(&[1, 2], down(3), 5_000);
        let mut theirs = History::default();
        theirs.append(3, Change::Down, 4_900, 1, "missed heartbeats");
        let s = r.step(vec![(1, theirs.clone())], true);
        assert_eq!(s.not_recorded.len(), 1);
        assert_eq!(s.write, Some(theirs.clone()));
        assert_eq!(s.announce, theirs.entries);
    }

    #[test]
    fn history_found_at_the_start_is_not_announced_and_never_goes_back() {
        let mut old = History::default();
        old.append(3, Change::Down, 0, 1, "a");
        old.append(3, Change::Up, 0, 1, "b");
        let mut r = Recorder::new(3, vec![1, 2, 3]);
        let s = r.step(vec![(1, old.clone())], true);
        assert_eq!(s.found_at_start, Some(2));
        assert!(s.announce.is_empty());
        let mut shorter = History::default();
        shorter.append(2, Change::Down, 0, 1, "x");
        r.step(vec![(1, shorter), (3, old.clone())], true);
        assert_eq!(r.history(), &old, "a shorter history is never taken");
    }

    #[test]
    fn a_fork_replaced_at_the_same_number_is_not_announced_twice() {
        let mut r = Recorder::new(2, vec![1, 2, 3]);
        r.step(Vec::new(), true);
        let mut a = History::default();
        a.append(3, Change::Down, 0, 1, "a");
        let mut b = History::default();
        b.append(1, Change::Down, 0, 2, "b");
        let first = r.step(vec![(1, a.clone())], true);
        assert_eq!(first.announce.len(), 1);
        let second = r.step(vec![(1, a), (3, b)], true);
        assert!(second.announce.is_empty(), "number 1 was announced already");
    }

    #[test]
    fn a_new_recorder_reconciles_and_never_repeats_a_change() {
        // Node 2 recorded node 1 down; node 1 restarts and is the lowest
        // node again: its first view (no changes) reconciles the history.
        let mut old = History::default();
        old.append(1, Change::Down, 0, 2, "missed heartbeats");
        let mut r = Recorder::new(1, vec![1, 2, 3]);
        r.membership(&[1, 2, 3], Vec::new(), 7_000);
        let s = r.step(vec![(2, old)], true);
        assert_eq!(s.announce.len(), 1, "{s:?}");
        assert_eq!((s.announce[0].node, s.announce[0].change), (1, Change::Up));
        assert_eq!(s.announce[0].at_ms, 7_000);
        // A second down of node 3 is recorded once.
        r.membership(&[1, 2], down(3), 8_000);
        assert_eq!(r.step(Vec::new(), true).announce.len(), 1);
        r.membership(&[1, 2], down(3), 9_000);
        assert!(r.step(Vec::new(), true).announce.is_empty(), "node 3 is down already");
    }

    /// NU1: a recorder that restarts hears its peers one by one; a peer
    /// the history has up and that is not heard yet is not recorded down
    /// at the takeover, only if still missing once the view has settled.
    #[test]
    fn a_new_recorder_reconciles_a_down_only_once_its_view_settled() {
        let mut old = History::default();
        old.append(3, Change::Up, 0, 2, "heard");
        old.append(1, Change::Down, 0, 2, "missed heartbeats");
        let mut r = Recorder::new(1, vec![1, 2, 3]);
        r.step(vec![(2, old.clone())], true);
        // Node 2 heard first: a majority, so node 1 records; node 3 is not
        // heard yet.
        r.membership(&[1, 2], Vec::new(), 7_000);
        let s = r.step(vec![(2, old.clone())], true);
        let said: Vec<(u32, Change)> = s.announce.iter().map(|t| (t.node, t.change)).collect();
        assert_eq!(said, vec![(1, Change::Up)], "node 1 up at once, node 3 not down");
        // Node 3 heard 10 ms later: nothing to record.
        r.membership(&[1, 2, 3], vec![(3, Change::Up, "heard".into())], 7_010);
        for _ in 0..=SETTLE_POLLS {
            let s = r.step(Vec::new(), true);
            assert!(s.announce.is_empty(), "{s:?}");
        }
        // Had node 3 stayed unheard, the settled view records it down.
        let mut r = Recorder::new(1, vec![1, 2, 3]);
        r.step(vec![(2, old.clone())], true);
        r.membership(&[1, 2], Vec::new(), 7_000);
        r.step(vec![(2, old)], true);
        let mut downs = Vec::new();
        for _ in 0..=SETTLE_POLLS {
            let s = r.step(Vec::new(), true);
            downs.extend(s.announce.iter().map(|t| (t.node, t.change)));
        }
        assert_eq!(downs, vec![(3, Change::Down)]);
    }

    #[test]
    fn reads_are_full_only_at_the_start_after_a_change_and_now_and_then() {
        let mut r = Recorder::new(2, vec![1, 2, 3]);
        r.step(Vec::new(), true);
        let mut h = History::default();
        h.append(3, Change::Down, 0, 1, "a");
        r.step(vec![(1, h.clone())], true);
        assert_eq!(r.plan(), ReadPlan::Nodes(vec![1, 2]), "own and the last recorder's");
        r.membership(&[1, 2], down(3), 0);
        for _ in 0..SETTLE_POLLS {
            assert_eq!(r.plan(), ReadPlan::All);
            r.step(vec![(1, h.clone()), (2, h.clone())], true);
        }
        let mut partial = 0;
        while r.plan() != ReadPlan::All {
            r.step(vec![(1, h.clone()), (2, h.clone())], false);
            partial += 1;
        }
        assert_eq!(partial, FULL_EVERY - 1);
    }
}
