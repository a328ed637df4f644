//! Shrinking: the smallest fault schedule under which a failing seed still
//! breaks the same invariant, in two passes:
//!
//! 1. **Remove** episodes by delta debugging (remove chunks of episodes
//!    while the failure persists, halving the chunk size when nothing more
//!    can go).
//! 2. **Weaken** what is left, one episode at a time: halve its length, its
//!    intensity (delay, probability, lag, clock offset), and take nodes off
//!    a partition's cut-off side, while the failure persists. A minimal
//!    schedule then says not only *which* faults matter but *how much*.
//!
//! Every random stream is independent of the schedule (see
//! [`crate::seeds`]), so removing an episode changes as little else as
//! possible and the minimal schedule usually explains the failure.

use crate::config::{ConfigError, SimConfig};
use crate::faults::{Fault, Schedule};
use crate::world::{run, RunOptions};
use clinit_engine::time::Millis;

/// What shrinking found.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub invariant: String,
    pub original: Schedule,
    pub minimal: Schedule,
    /// Weakening steps taken in the second pass.
    pub weakened: u64,
    /// Runs it took.
    pub runs: u64,
    /// The search stopped at its run budget (`--max-runs`): the schedule
    /// still fails but may not be minimal.
    pub gave_up: bool,
}

/// Durations are not halved below this: shorter episodes stop meaning
/// anything next to cycle times of seconds.
const SHORTEST: Millis = Millis(1000);

fn half(d: Millis) -> Option<Millis> {
    (d.0 / 2 >= SHORTEST.0).then_some(Millis(d.0 / 2))
}

fn half_p(p: f64) -> Option<f64> {
    (p / 2.0 >= 0.005).then_some(p / 2.0)
}

/// Weaker versions of one episode, the most promising first.
pub fn weaker(fault: &Fault) -> Vec<Fault> {
    let mut out = Vec::new();
    match fault {
        Fault::Crash { node, down } => {
            out.extend(half(*down).map(|down| Fault::Crash { node: *node, down }));
        }
        Fault::Standby { node, len } => {
            out.extend(half(*len).map(|len| Fault::Standby { node: *node, len }));
        }
        Fault::CrashOwner { group, down } => {
            out.extend(half(*down).map(|down| Fault::CrashOwner { group: group.clone(), down }));
        }
        Fault::Partition { sides, len } => {
            out.extend(half(*len).map(|len| Fault::Partition { sides: sides.clone(), len }));
            let cut: Vec<usize> = (1..sides.len()).filter(|&n| sides[n] == 1).collect();
            if cut.len() > 1 {
                for n in cut {
                    let mut sides = sides.clone();
                    sides[n] = 0;
                    out.push(Fault::Partition { sides, len: *len });
                }
            }
        }
        Fault::SlowFs { delay, len } => {
            out.extend(half(*len).map(|len| Fault::SlowFs { delay: *delay, len }));
            out.extend(half(*delay).map(|delay| Fault::SlowFs { delay, len: *len }));
        }
        Fault::ReadFailures { p, len } => {
            out.extend(half(*len).map(|len| Fault::ReadFailures { p: *p, len }));
            out.extend(half_p(*p).map(|p| Fault::ReadFailures { p, len: *len }));
        }
        Fault::StaleReads { p, len } => {
            out.extend(half(*len).map(|len| Fault::StaleReads { p: *p, len }));
            out.extend(half_p(*p).map(|p| Fault::StaleReads { p, len: *len }));
        }
        Fault::Skew { node, offset } => {
            if offset.unsigned_abs() / 2 >= SHORTEST.0 {
                out.push(Fault::Skew { node: *node, offset: offset / 2 });
            }
        }
        Fault::SlowNode { node, lag, len } => {
            out.extend(half(*len).map(|len| Fault::SlowNode { node: *node, lag: *lag, len }));
            out.extend(half(*lag).map(|lag| Fault::SlowNode { node: *node, lag, len: *len }));
        }
        Fault::Suspect { observer, target, len } => {
            out.extend(half(*len).map(|len| Fault::Suspect {
                observer: *observer,
                target: *target,
                len,
            }));
        }
        Fault::HactlEdit { node, group, level, len } => {
            out.extend(half(*len).map(|len| Fault::HactlEdit {
                node: *node,
                group: group.clone(),
                level: level.clone(),
                len,
            }));
        }
        Fault::MoshaCrash { node, down } => {
            out.extend(half(*down).map(|down| Fault::MoshaCrash { node: *node, down }));
        }
        Fault::MonitorFreeze { node, len } => {
            out.extend(half(*len).map(|len| Fault::MonitorFreeze { node: *node, len }));
        }
        Fault::NodePause { node, len } => {
            out.extend(half(*len).map(|len| Fault::NodePause { node: *node, len }));
        }
        Fault::SpawnFail { node, p, len } => {
            let node = *node;
            out.extend(half(*len).map(|len| Fault::SpawnFail { node, p: *p, len }));
            out.extend(half_p(*p).map(|p| Fault::SpawnFail { node, p, len: *len }));
        }
        Fault::LingeringGroup { node, linger, len } => {
            let node = *node;
            out.extend(half(*len).map(|len| Fault::LingeringGroup { node, linger: *linger, len }));
            out.extend(half(*linger).map(|linger| Fault::LingeringGroup {
                node,
                linger,
                len: *len,
            }));
        }
        Fault::FenceFail { p, len } => {
            out.extend(half(*len).map(|len| Fault::FenceFail { p: *p, len }));
            out.extend(half_p(*p).map(|p| Fault::FenceFail { p, len: *len }));
        }
        Fault::FenceNoKill { p, len } => {
            out.extend(half(*len).map(|len| Fault::FenceNoKill { p: *p, len }));
            out.extend(half_p(*p).map(|p| Fault::FenceNoKill { p, len: *len }));
        }
        Fault::WriteFail { node, p, len } => {
            let node = *node;
            out.extend(half(*len).map(|len| Fault::WriteFail { node, p: *p, len }));
            out.extend(half_p(*p).map(|p| Fault::WriteFail { node, p, len: *len }));
        }
        Fault::MembershipFail { node, p, len } => {
            let node = *node;
            out.extend(half(*len).map(|len| Fault::MembershipFail { node, p: *p, len }));
            out.extend(half_p(*p).map(|p| Fault::MembershipFail { node, p, len: *len }));
        }
        Fault::OneWayPartition { node, deaf, len } => {
            let (node, deaf) = (*node, *deaf);
            out.extend(half(*len).map(|len| Fault::OneWayPartition { node, deaf, len }));
        }
        Fault::ClockDrift { node, rate } => {
            if rate.abs() / 2.0 >= 0.0005 {
                out.push(Fault::ClockDrift { node: *node, rate: rate / 2.0 });
            }
        }
        Fault::ReadHang { node, len } => {
            out.extend(half(*len).map(|len| Fault::ReadHang { node: *node, len }));
        }
        Fault::TornCopy { node, len } => {
            out.extend(half(*len).map(|len| Fault::TornCopy { node: *node, len }));
        }
        // One-shot episodes with nothing to weaken (an editor's half-write
        // lasts under the 1 s shrink floor).
        Fault::CltabEdit { .. }
        | Fault::HactlTie { .. }
        | Fault::HactlCut { .. }
        | Fault::EditorWrite { .. } => {}
        Fault::DState { node, len } => {
            out.extend(half(*len).map(|len| Fault::DState { node: *node, len }));
        }
        Fault::HistoryWriteFail { node, p, len } => {
            out.extend(half(*len).map(|len| Fault::HistoryWriteFail { node: *node, p: *p, len }));
        }
        Fault::HistoryTorn { node, len } => {
            out.extend(half(*len).map(|len| Fault::HistoryTorn { node: *node, len }));
        }
        Fault::HistorySlow { node, delay, len } => {
            out.extend(half(*len).map(|len| Fault::HistorySlow {
                node: *node,
                delay: *delay,
                len,
            }));
        }
    }
    out
}

/// Shrink the schedule of `seed`. `invariant`: the one to keep failing
/// (default: the first one the run violates). `None` when the run holds.
pub fn shrink(
    cfg: &SimConfig,
    seed: u64,
    invariant: Option<&str>,
    max_runs: u64,
) -> Result<Option<Shrunk>, ConfigError> {
    if let Some(name) = invariant {
        if !crate::invariants::ALL.contains(&name) {
            return Err(ConfigError::UnknownInvariant {
                name: name.to_string(),
                known: crate::invariants::ALL.join(", "),
            });
        }
    }
    let first = run(cfg, seed, RunOptions::fast())?;
    let Some(target) = invariant
        .map(String::from)
        .or_else(|| first.tracker.violations().first().map(|v| v.invariant.clone()))
    else {
        return Ok(None);
    };
    if !first.tracker.counts().contains_key(&target) {
        return Ok(None);
    }
    let original = first.schedule.clone();
    let mut current = original.clone();
    let mut search = Search { cfg, seed, target: &target, max_runs, runs: 1 };
    let mut weakened = 0;
    // Weakening can make another episode unnecessary, and removing one can
    // let another be weakened: repeat both passes until neither changes.
    loop {
        let before = current.faults.len();
        search.remove(&mut current)?;
        let steps = search.weaken(&mut current)?;
        weakened += steps;
        if (steps == 0 && current.faults.len() == before) || search.spent() {
            break;
        }
    }
    let (runs, gave_up) = (search.runs, search.spent());
    let mut minimal = current;
    minimal.refresh_kinds();
    Ok(Some(Shrunk { invariant: target, original, minimal, weakened, runs, gave_up }))
}

/// One shrinking search: the failing run to keep failing, and its budget.
struct Search<'a> {
    cfg: &'a SimConfig,
    seed: u64,
    target: &'a str,
    max_runs: u64,
    runs: u64,
}

impl Search<'_> {
    fn spent(&self) -> bool {
        self.runs >= self.max_runs
    }

    /// Does the seed still break the target invariant under `schedule`?
    fn fails(&mut self, schedule: &Schedule) -> Result<bool, ConfigError> {
        let mut cfg = self.cfg.clone();
        let mut schedule = schedule.clone();
        schedule.refresh_kinds();
        cfg.schedule = Some(schedule);
        self.runs += 1;
        let r = run(&cfg, self.seed, RunOptions::fast())?;
        Ok(r.tracker.counts().contains_key(self.target))
    }

    /// Delta debugging over episodes: remove chunks while it still fails.
    fn remove(&mut self, current: &mut Schedule) -> Result<(), ConfigError> {
        let mut chunk = current.faults.len().div_ceil(2).max(1);
        while !current.faults.is_empty() && !self.spent() {
            let mut removed_any = false;
            let mut start = 0;
            while start < current.faults.len() && !self.spent() {
                let end = (start + chunk).min(current.faults.len());
                let mut candidate = current.clone();
                candidate.faults.drain(start..end);
                if self.fails(&candidate)? {
                    *current = candidate;
                    removed_any = true;
                } else {
                    start = end;
                }
            }
            if !removed_any {
                if chunk == 1 {
                    break;
                }
                chunk = chunk.div_ceil(2);
            }
        }
        Ok(())
    }

    /// Weaken each episode ([`weaker`]) while it still fails; returns the
    /// steps taken.
    fn weaken(&mut self, current: &mut Schedule) -> Result<u64, ConfigError> {
        let mut steps = 0;
        let mut i = 0;
        while i < current.faults.len() && !self.spent() {
            let mut stepped = false;
            for candidate in weaker(&current.faults[i].fault) {
                if self.spent() {
                    break;
                }
                let mut schedule = current.clone();
                schedule.faults[i].fault = candidate;
                if self.fails(&schedule)? {
                    *current = schedule;
                    steps += 1;
                    stepped = true;
                    break;
                }
            }
            if !stepped {
                i += 1;
            }
        }
        Ok(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weaker_halves_and_stops_at_a_floor() {
        let f = Fault::SlowFs { delay: Millis(20_000), len: Millis(600_000) };
        assert_eq!(
            weaker(&f),
            [
                Fault::SlowFs { delay: Millis(20_000), len: Millis(300_000) },
                Fault::SlowFs { delay: Millis(10_000), len: Millis(600_000) },
            ]
        );
        assert!(weaker(&Fault::Crash { node: 1, down: Millis(1_500) }).is_empty());
        assert!(weaker(&Fault::Skew { node: 1, offset: -1_999 }).is_empty());
        assert_eq!(
            weaker(&Fault::Skew { node: 1, offset: -4_000 }),
            [Fault::Skew { node: 1, offset: -2_000 }]
        );
    }

    /// A partition loses nodes from its cut-off side, never the last one.
    #[test]
    fn weaker_partitions_cut_off_fewer_nodes() {
        let len = Millis(1_000);
        let f = Fault::Partition { sides: vec![0, 1, 0, 1], len };
        assert_eq!(
            weaker(&f),
            [
                Fault::Partition { sides: vec![0, 0, 0, 1], len },
                Fault::Partition { sides: vec![0, 1, 0, 0], len },
            ]
        );
        assert!(weaker(&Fault::Partition { sides: vec![0, 0, 1], len }).is_empty());
    }
}
