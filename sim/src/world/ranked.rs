//! The simulator as executor of `ranked`'s commands: the kill on a lost
//! lease, the durable local state, the watchdog process and the guarded
//! (compare-and-fence) fence.
//!
//! * **Durable state** lives on the node's local disk ([`NodeSlot`]'s
//!   `durable`): it survives `mosha-crash` and a machine crash alike, and
//!   the next monitor starts from it as a new incarnation.
//! * **The watchdog** is a separate process per node, outside the
//!   monitor: it survives `mosha-crash` and `monitor-freeze` (it fires at
//!   its deadline however long the monitor is stopped, killing orphans
//!   too), dies with the machine, and stops with it under `node-pause` (a
//!   paused VM's watchdog fires only at resume: the documented limit of a
//!   process watchdog). Its rule (deadlines move forward only, a newer
//!   epoch re-arms, a fired watchdog keeps killing) is the engine's
//!   [`Watchdog`]; the simulator only hosts it.
//! * **Kill-all-now** SIGKILLs every child of the current monitor; the
//!   exits come back as usual, and the driver judges whether they landed
//!   within δ.
//! * **Compare-and-fence**: right before the fence runs, the fencer reads
//!   the target's record as it sees it; when the guard says the target
//!   came back, the fence is skipped and answered as failed.

use super::{Ev, World};
use clinit_engine::cluster::{
    parse_record, ClusterCommand, ClusterInput, FenceFailure, SharedFile,
};
use clinit_engine::monitor::ranked::fencing::FenceReason;
use clinit_engine::monitor::ranked::watchdog::{Watchdog, WatchdogAction};
use clinit_engine::monitor::ranked::Read;
use std::collections::VecDeque;

impl World {
    /// Carry out one of `ranked`'s commands (see the module doc).
    pub(super) fn execute_ranked(
        &mut self,
        node: u32,
        inc: u32,
        cmd: ClusterCommand,
        now_inputs: &mut VecDeque<ClusterInput>,
        later: &mut Vec<ClusterInput>,
    ) {
        let now = self.now;
        let me = node as usize;
        match cmd {
            ClusterCommand::KillAllNow => {
                let slot = &mut self.nodes[me];
                if let Some(procs) = slot.procs.as_mut() {
                    procs.now = now;
                    let n = procs.kill_all();
                    self.tracker
                        .log(now, node, 0, || format!("LEASE LOST: SIGKILL to {n} children"));
                }
                self.drain_procs(node, inc);
                // The node's service cgroups hold the orphans of earlier
                // incarnations too: the kill reaches them.
                self.kill_orphans(node);
            }
            ClusterCommand::Persist { seq, state } => {
                self.nodes[me].durable = Some(*state);
                now_inputs.push_back(ClusterInput::Persisted { seq, result: Ok(()) });
            }
            ClusterCommand::ArmWatchdog { epoch, deadline } => {
                self.nodes[me].watchdog.arm(epoch, deadline);
                self.watchdog_check(node);
            }
            ClusterCommand::FenceRanked { seq, target, guard, reason, read_within: _ } => {
                // The compare read is a read like any other: while the
                // target's directory hangs (`read-hang`) it never answers,
                // the executor's deadline (`read_within`) gives up on it
                // (modelled as an at-once give-up: the fence command's own
                // delay dominates), and the target is
                // unreadable (no record: the fence goes on). Reading the
                // file regardless saw every heartbeat of a node nobody else
                // could read, skipped every retry ("its record moved") and
                // left its groups down for the whole episode (N = 10 seed
                // 9: g03 down 658–773 s).
                let hung = target.node != node
                    && self.active.read_hang.iter().any(|&(_, n)| n == target.node);
                let newest = match self.read_file(node, target.node, SharedFile::Heartbeat, None) {
                    Ok(Some(v)) if !hung => v.bytes.map(|b| parse_record("record", &b)),
                    _ => None,
                };
                let newest = match newest {
                    Some(Read::Record(r)) => Some(r),
                    _ => None,
                };
                if guard.skip(newest.as_deref()) {
                    self.tracker.log(now, node, target.node, || {
                        format!("fence of node {} skipped: its record moved", target.node)
                    });
                    let error = FenceFailure::Refused {
                        status: "skipped".into(),
                        output: "the target's record moved since the fence was decided".into(),
                    };
                    let node_t = target.node;
                    now_inputs.push_back(ClusterInput::FenceDone {
                        seq,
                        node: node_t,
                        result: Err(error),
                    });
                    return;
                }
                // The rule: the fence of a lost tie-breaker of an
                // exact half is that side's vote, never counted as
                // needless (it cannot tell death from partition).
                if reason == FenceReason::TieBreaker {
                    self.tie_fences.insert((node, seq));
                }
                let fence = ClusterCommand::Fence { seq, node: target.node };
                self.execute(node, inc, fence, now_inputs, later);
            }
            other => unreachable!("not a ranked command: {other:?}"),
        }
    }

    /// The watchdog of `node` looks at its deadline: past it, it SIGKILLs
    /// every child on the node (the monitor's and orphans); else it sleeps
    /// until the deadline.
    pub(super) fn watchdog_check(&mut self, node: u32) {
        let now = self.now;
        let me = node as usize;
        if !self.nodes[me].up {
            return;
        }
        let local = self.local_now(node);
        if self.nodes[me].watchdog.tick(local) == WatchdogAction::KillAll {
            let inc = self.nodes[me].incarnation;
            let mut killed = 0;
            if let Some(procs) = self.nodes[me].procs.as_mut() {
                procs.now = now;
                killed += procs.kill_all();
            }
            self.drain_procs(node, inc);
            killed += self.kill_orphans(node);
            // Log only the first kill of a firing (it keeps the groups empty
            // afterwards: re-arming at the same deadline kills again).
            if killed > 0 && !self.nodes[me].watchdog_logged {
                self.nodes[me].watchdog_logged = true;
                self.tracker
                    .log(now, node, 0, || format!("WATCHDOG fires: SIGKILL to {killed} children"));
            }
        } else if let Some(at) = self.nodes[me].watchdog.next_deadline() {
            let slot = &mut self.nodes[me];
            slot.watchdog_logged = false;
            // One pending look per node: a renewal moves the deadline
            // forward, so the look already pending at `at` is kept and an
            // older one is retired by the new generation.
            if slot.watchdog_at != Some(at) {
                slot.watchdog_gen += 1;
                slot.watchdog_at = Some(at);
                let gen = slot.watchdog_gen;
                let at = self.to_global(node, at);
                self.queue.push(at, Ev::Watchdog { node, gen });
            }
        }
    }

    /// SIGKILL every orphan on `node` (children of earlier monitor
    /// incarnations); their exits are scheduled as usual. Returns how many
    /// were signalled.
    pub(super) fn kill_orphans(&mut self, node: u32) -> usize {
        let now = self.now;
        let mut killed = 0;
        let mut due = Vec::new();
        for (oinc, procs) in self.nodes[node as usize].orphans.iter_mut() {
            procs.now = now;
            killed += procs.kill_all();
            let changes = std::mem::take(&mut procs.changes);
            for c in changes {
                self.tracker.process(now, node, &c.group, c.started, true);
            }
            due.extend(std::mem::take(&mut procs.due).into_iter().map(|(at, id)| (at, *oinc, id)));
        }
        for (at, oinc, id) in due {
            self.queue.push(at, Ev::Exit { node, inc: oinc, id });
        }
        killed
    }

    /// A fresh watchdog (the machine booted).
    pub(super) fn watchdog_reset(&mut self, node: u32) {
        let slot = &mut self.nodes[node as usize];
        slot.watchdog = Watchdog::default();
        slot.watchdog_gen += 1;
        slot.watchdog_at = None;
    }
}
