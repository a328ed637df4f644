//! When to fence, and fence episodes.
//!
//! Fence X only when one of these holds (and a fence command exists):
//! * **must move**: a quorum revoked X, X holds groups, and X has not
//!   published a release;
//! * **cannot wait**: waiting for X's lease and watchdog will never end or
//!   exceeds the failover bound: X published `lost` (a kill it could not
//!   confirm, e.g. a process in D state) or runs without a watchdog;
//! * **tie-breaker**: this node's side is an exact half without the
//!   tie-breaker, which it has not heard for `tie_fence_delay`. Such a
//!   fence's success counts as the tie-breaker's vote.
//!
//! One node fences (the lowest-numbered member this node still hears,
//! X excluded), so a target is not shot N times. "Once per episode" means
//! once *successfully*: an episode is a (node, incarnation); a failed fence
//! is retried with capped exponential back-off; a success ends the episode
//! for good, and a new incarnation of the target cancels any retry (it came
//! back: it is never fenced again for the old episode).

use super::record::NodeInc;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Fence votes: fenced node → (its fenced incarnation, the nodes that
/// fenced it). A lost tie-breaker fenced successfully votes, but only
/// **with its fencers** and only **to complete a half**: it joins a set of
/// voters only when every known fencer of it is in that set, and when the
/// set's own voters (fence votes not counted) are at least half of all
/// voters. Counting it everywhere would let two fenced nodes alone
/// "revoke" a healthy third.
///
/// "Every *known* fencer" alone does not make the vote exclusive: two
/// nodes that cannot read each other's records in time (a slow shared
/// filesystem) may both fence the tie-breaker, each knowing only its own
/// fence, and each would then count the vote for itself: at N = 4, {2} +
/// vote and {3} + vote are both an exact half holding the tie-breaker, and
/// both claimed groups (seed 8185498729148515470, slow-fs of 7.3 s). A
/// real grant is exclusive (one live claim per group per grantor); a fence
/// vote seen by two fencers is not. The half rule restores intersection
/// without any knowledge of the other fencers: two sets that count the
/// vote each hold at least N/2 real voters out of the N − 1 voters other
/// than the fenced node, so they share a real voter, whose grants and
/// acknowledgements are exclusive. The vote thus only turns an exact half
/// into a majority (the 2-node cluster's survivor: 1 of 2 is half), never
/// a minority into a half.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Votes(pub BTreeMap<u32, (u64, BTreeSet<u32>)>);

impl Votes {
    pub fn add(&mut self, node: u32, incarnation: u64, fencer: u32) {
        let entry = self.0.entry(node).or_insert((incarnation, BTreeSet::new()));
        if incarnation > entry.0 {
            *entry = (incarnation, BTreeSet::new());
        }
        if incarnation == entry.0 {
            entry.1.insert(fencer);
        }
    }

    pub fn contains(&self, node: u32) -> bool {
        self.0.contains_key(&node)
    }

    pub fn incarnation(&self, node: u32) -> Option<u64> {
        self.0.get(&node).map(|v| v.0)
    }

    /// Add to `yes` every fenced node whose fencers are all in `yes` (to a fixed
    /// point: a fencer may itself be a fenced node's vote). Returns whether
    /// a vote was added.
    ///
    /// `voters`: the voter set, for the half rule (see [`Votes`]): no vote
    /// is added unless the voters in `yes` on entry are at least half of
    /// `voters`. `None` switches the half rule off (only the interleaving
    /// tests do, to show it is needed).
    pub fn expand(&self, voters: Option<&[u32]>, yes: &mut BTreeSet<u32>) -> bool {
        if let Some(voters) = voters {
            let real = voters.iter().filter(|m| yes.contains(m)).count();
            if 2 * real < voters.len() {
                return false;
            }
        }
        let mut added = false;
        loop {
            let more: Vec<u32> = self
                .0
                .iter()
                .filter(|(n, (_, fencers))| {
                    !yes.contains(n)
                        && !fencers.is_empty()
                        && fencers.iter().all(|f| yes.contains(f))
                })
                .map(|(&n, _)| n)
                .collect();
            if more.is_empty() {
                return added;
            }
            added = true;
            yes.extend(more);
        }
    }
}

/// Why a fence is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FenceReason {
    MustMove,
    CannotWait,
    TieBreaker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Episode {
    /// Issued; the number of earlier failed attempts.
    InFlight(u32),
    /// Failed `n` times; retry at.
    RetryAt(Millis, u32),
    Done,
}

/// Fence episodes per target incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fences {
    episodes: BTreeMap<NodeInc, Episode>,
}

impl Fences {
    /// Should a fence of `target` be issued now? Marks it in flight if so.
    pub fn start(&mut self, target: NodeInc, now: Millis) -> bool {
        let tries = match self.episodes.get(&target) {
            None => 0,
            Some(Episode::RetryAt(at, n)) if now >= *at => *n,
            Some(_) => return false,
        };
        self.episodes.insert(target, Episode::InFlight(tries));
        true
    }

    /// The fence of `target` ended. A result for an episode not in flight
    /// (a duplicate, or one cancelled by [`Fences::came_back`]) is ignored.
    pub fn result(&mut self, target: NodeInc, ok: bool, now: Millis, min: Millis, max: Millis) {
        let Some(Episode::InFlight(tries)) = self.episodes.get(&target).copied() else {
            return;
        };
        if ok {
            self.episodes.insert(target, Episode::Done);
            return;
        }
        let n = tries.saturating_add(1);
        let wait = min.0.saturating_mul(1u64 << (n - 1).min(20)).min(max.0);
        self.episodes.insert(target, Episode::RetryAt(now + Millis(wait), n));
    }

    /// A newer incarnation of `node` was seen: drop its older episodes (no
    /// retry ever fences the returned node for the old episode).
    pub fn came_back(&mut self, node: u32, incarnation: u64) {
        self.episodes.retain(|k, _| k.node != node || k.incarnation >= incarnation);
    }

    pub fn succeeded(&self, target: NodeInc) -> bool {
        self.episodes.get(&target) == Some(&Episode::Done)
    }

    pub fn in_flight(&self, target: NodeInc) -> bool {
        matches!(self.episodes.get(&target), Some(Episode::InFlight(_)))
    }

    /// The next retry time, for `poll_timeout`.
    ///
    /// Only retries later than `now` count. A retry already due was either
    /// started by the fence pass that just ran, or is no longer wanted (the
    /// target was judged alive, or a quorum holds without it): waking for
    /// it would make the machine wake at `now` again and again without
    /// acting, a busy loop in `mosha` and a livelock of the simulator's
    /// clock (seen with a fence-fail fault whose target then stayed down).
    pub fn next_retry(&self, now: Millis) -> Option<Millis> {
        self.episodes
            .values()
            .filter_map(|e| match e {
                Episode::RetryAt(at, _) if *at > now => Some(*at),
                _ => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_goes_with_its_fencer_only() {
        let mut v = Votes::default();
        v.add(1, 3, 2);
        v.add(4, 1, 2);
        let mut alone: BTreeSet<u32> = [3].into();
        assert!(!v.expand(None, &mut alone), "fenced nodes never vote without their fencer");
        let mut with: BTreeSet<u32> = [2, 3].into();
        assert!(v.expand(None, &mut with));
        assert_eq!(with, [1, 2, 3, 4].into());
        v.add(4, 1, 5);
        let mut one: BTreeSet<u32> = [2].into();
        v.expand(None, &mut one);
        assert!(!one.contains(&4), "two fencers: the vote needs both");
        v.add(1, 4, 3);
        assert_eq!(v.0[&1], (4, [3].into()), "a newer incarnation's fence replaces the old");
    }

    #[test]
    fn a_vote_only_completes_a_half() {
        let voters = [1, 2, 3, 4];
        // Nodes 2 and 3 each fenced the tie-breaker, each unaware of the
        // other's fence: each knows itself as the only fencer.
        let mut seen_by_2 = Votes::default();
        seen_by_2.add(1, 1, 2);
        let mut seen_by_3 = Votes::default();
        seen_by_3.add(1, 1, 3);
        let mut two: BTreeSet<u32> = [2].into();
        let mut three: BTreeSet<u32> = [3].into();
        assert!(!seen_by_2.expand(Some(&voters), &mut two), "1 of 4 is no half");
        assert!(!seen_by_3.expand(Some(&voters), &mut three));
        // Without the rule both become the tie-breaker's exact half: the
        // double owner of the shrunk seed.
        let (mut two, mut three): (BTreeSet<u32>, BTreeSet<u32>) = ([2].into(), [3].into());
        assert!(seen_by_2.expand(None, &mut two) && seen_by_3.expand(None, &mut three));
        assert!(two.is_disjoint(&[3].into()) && three.is_disjoint(&[2].into()));
        // An exact half of real voters with its fencer gets the vote.
        let mut half: BTreeSet<u32> = [2, 4].into();
        assert!(seen_by_2.expand(Some(&voters), &mut half));
        assert_eq!(half, [1, 2, 4].into());
        // The 2-node cluster's survivor is half on its own.
        let mut survivor: BTreeSet<u32> = [2].into();
        assert!(seen_by_2.expand(Some(&[1, 2]), &mut survivor));
        assert_eq!(survivor, [1, 2].into());
    }

    #[test]
    fn once_successfully_with_backoff_and_never_after_return() {
        let x = NodeInc { node: 2, incarnation: 5 };
        let (min, max) = (Millis(1000), Millis(3000));
        let mut f = Fences::default();
        assert!(f.start(x, Millis(0)));
        assert!(!f.start(x, Millis(10)), "in flight");
        f.result(x, false, Millis(100), min, max);
        assert!(!f.start(x, Millis(1099)));
        assert_eq!(f.next_retry(Millis(100)), Some(Millis(1100)));
        assert_eq!(f.next_retry(Millis(1100)), None, "a due retry is not a wake-up");
        assert!(f.start(x, Millis(1100)));
        f.result(x, false, Millis(1200), min, max);
        assert_eq!(f.next_retry(Millis(1200)), Some(Millis(3200)), "doubled");
        assert!(f.start(x, Millis(3200)));
        f.result(x, false, Millis(3300), min, max);
        assert_eq!(f.next_retry(Millis(3300)), Some(Millis(6300)), "capped");
        assert!(f.start(x, Millis(6300)));
        f.result(x, true, Millis(6400), min, max);
        assert!(f.succeeded(x));
        assert!(!f.start(x, Millis(99_999)), "once successfully");
        let y = NodeInc { node: 3, incarnation: 1 };
        assert!(f.start(y, Millis(0)));
        f.result(y, false, Millis(0), min, max);
        f.came_back(3, 2);
        f.result(y, true, Millis(5), min, max);
        assert!(!f.succeeded(y), "cancelled episode ignores late results");
        assert_eq!(f.next_retry(Millis(5)), None, "no retry fences a node that came back");
    }
}
