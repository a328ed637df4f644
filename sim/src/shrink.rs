//! Shrinking: the smallest fault schedule under which a failing seed still
//! breaks the same invariant, by delta debugging over fault episodes
//! (remove chunks of episodes while the failure persists, halving the chunk
//! size when nothing more can go).
//!
//! Every random stream is independent of the schedule (see
//! [`crate::seeds`]), so removing an episode changes as little else as
//! possible and the minimal schedule usually explains the failure.

use crate::config::{ConfigError, SimConfig};
use crate::faults::Schedule;
use crate::world::{run, RunOptions};

/// What shrinking found.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub invariant: String,
    pub original: Schedule,
    pub minimal: Schedule,
    /// Runs it took.
    pub runs: u64,
}

fn fails(
    cfg: &SimConfig,
    seed: u64,
    schedule: &Schedule,
    invariant: &str,
    runs: &mut u64,
) -> Result<bool, ConfigError> {
    let mut c = cfg.clone();
    let mut s = schedule.clone();
    s.kinds = {
        let mut k: Vec<_> = s.faults.iter().map(|f| f.fault.kind()).collect();
        k.sort();
        k.dedup();
        k
    };
    c.schedule = Some(s);
    *runs += 1;
    let r = run(&c, seed, RunOptions::fast())?;
    Ok(r.tracker.counts().contains_key(invariant))
}

/// Shrink the schedule of `seed`. `invariant`: the one to keep failing
/// (default: the first one the run violates). `None` when the run holds.
pub fn shrink(
    cfg: &SimConfig,
    seed: u64,
    invariant: Option<&str>,
    max_runs: u64,
) -> Result<Option<Shrunk>, ConfigError> {
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
    let mut runs = 1;
    let mut chunk = current.faults.len().div_ceil(2).max(1);
    while !current.faults.is_empty() && runs < max_runs {
        let mut removed_any = false;
        let mut start = 0;
        while start < current.faults.len() && runs < max_runs {
            let end = (start + chunk).min(current.faults.len());
            let mut candidate = current.clone();
            candidate.faults.drain(start..end);
            if fails(cfg, seed, &candidate, &target, &mut runs)? {
                current = candidate;
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
    let mut minimal = current;
    minimal.kinds = {
        let mut k: Vec<_> = minimal.faults.iter().map(|f| f.fault.kind()).collect();
        k.sort();
        k.dedup();
        k
    };
    Ok(Some(Shrunk { invariant: target, original, minimal, runs }))
}
