//! Acknowledged heartbeats, leases and the takeover wait.
//!
//! **Own lease.** A node's lease runs for H from the time (on its own boot
//! clock) it *emitted* a heartbeat that a quorum of the known members has
//! since acknowledged; it counts itself, and fence votes. The emission time
//! is earlier than the write, which is earlier than any read of it, so every
//! error is on the safe side. Confirming a majority from one's own reads is
//! not enough (under a one-way partition a node reads the others while they
//! no longer see it); only their published acknowledgements count.
//!
//! **Takeover wait.** A taker Y may treat X's lease as over at
//! `base + H·(1+ρ) + δ` on Y's own clock, where `base` is Y's first sight of
//! a quorum of revocations of X's incarnation, or, if earlier, Y's first
//! sight of an X counter at least as high as every revocation's bound: X's
//! lease cannot rest on a later heartbeat (every quorum of acknowledgements
//! meets the revoking quorum in a node that promised never to acknowledge
//! beyond its bound), that heartbeat was written before Y saw it, and H on
//! X's clock is at most H·(1+ρ) on Y's. Never is one node's mtime compared
//! with another node's clock: all ages are the observer's own.
//!
//! **The budget of a shared filesystem** (the constraint: H must
//! exceed P plus an acknowledgement round trip plus δ). A lease holds
//! without a gap only if each heartbeat's acknowledgements by a quorum are
//! back before the lease resting on the previous heartbeat runs out, i.e.
//! the round trip `RTT` must satisfy `gap + RTT ≤ H − δ`, where `gap ≤ P`
//! is the time between two of the holder's records (a voter also publishes
//! prompt acknowledgements, so it is often P/2). The round trip is
//!
//! `RTT = v + R + A + v + R + 2·L`
//!
//! with `v` the fs visibility delay, `R` the read interval (each node reads
//! its peers every P/2: `ClusterDriver`'s ranked read period), `A` the wait
//! of a prompt acknowledgement (0, or up to P/2 after the voter's previous
//! record: at most one prompt record per P/2), and `L` a read's latency
//! (tens of ms). With H = 2 s, P = 125 ms (H/16, the default), δ = 250 ms
//! and fs delays of H/4 (v = 500 ms): `H − δ − P = 1,625 ms`; the worst
//! round trip is `500 + 62 + 62 + 500 + 62 + 2·25 = 1,236 ms`, the typical
//! one (waits of half an interval, no throttle) `1,000 + 31 + 31 + 50 ≈
//! 1,112 ms`, which leaves about 500 ms: each failed read costs one read
//! interval (62 ms), so about eight of them, and only two of the four
//! other voters (N ≥ 5) need to answer in time. With P = 250 ms (H/8, the
//! default until the simulator's N = 10 sweep) the margin was about 325 ms
//! at 125 ms per failed read: two or three failed reads. Before, with reads
//! every P and a prompt acknowledgement dropped (not deferred) when it came
//! within P/2 of the previous record, the worst case was
//! `2·500 + 3·250 + 50 = 1,800 ms`: at fs delays of H/4 leases lapsed
//! again and again (N = 10 seed 9: every group down for 157 s while reads
//! also failed at p = 0.26). Above about v = 600 ms no setting of P fits,
//! and `ranked` gives up availability for safety (sim/README's curve).
//!
//! **Suspicion.** A node stops acknowledging X (revokes) when X's counter has
//! not changed for `suspect_after` on its own clock, counting from its own
//! start if it never saw X, or at once when the membership source says X is
//! down.

use super::fencing::Votes;
use super::quorum::{is_quorum, is_quorum_by};
use super::record::Seen;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

/// `H·(1+ρ) + δ`, rounded up, with ρ in parts per million.
pub fn takeover_wait(lease: Millis, rate_ppm: u64, kill_bound: Millis) -> Millis {
    let drift = (lease.0.saturating_mul(rate_ppm)).div_ceil(1_000_000);
    lease + Millis(drift) + kill_bound
}

/// The highest own counter of the current epoch (`epoch`: its first counter,
/// the floor, to the newest sent) that a quorum acknowledges. `acks`: each other member's acknowledgement of this node's
/// current incarnation. `me` counts as acknowledging every counter, and
/// `votes` adds the fence votes that go with a set (see
/// [`super::fencing::Votes`]; `vote_rule`: their half rule, off only in
/// the interleaving tests).
pub fn lease_counter(
    members: &[u32],
    me: u32,
    acks: &BTreeMap<u32, u64>,
    votes: &Votes,
    vote_rule: bool,
    tie_ready: bool,
    epoch: RangeInclusive<u64>,
) -> Option<u64> {
    let (floor, newest) = (*epoch.start(), *epoch.end());
    let mut levels: Vec<u64> =
        acks.values().copied().filter(|&c| c >= floor && c <= newest).collect();
    levels.push(newest);
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels.dedup();
    for c in levels {
        // Without fence votes nothing expands the set: ask directly, with
        // no set built per level (the same answer as below).
        if votes.0.is_empty() {
            let acked = |m: u32| m == me || acks.get(&m).is_some_and(|&a| a >= c);
            if is_quorum_by(members, acked, tie_ready) {
                return (c >= floor).then_some(c);
            }
            continue;
        }
        let mut yes: BTreeSet<u32> = BTreeSet::from([me]);
        yes.extend(acks.iter().filter(|(_, &a)| a >= c).map(|(&n, _)| n));
        votes.expand(vote_rule.then_some(members), &mut yes);
        if is_quorum(members, &yes, tie_ready) {
            return (c >= floor).then_some(c);
        }
    }
    None
}

/// What one node knows of another's heartbeats, on its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    /// The newest (incarnation, counter) seen.
    pub latest: Option<Seen>,
    /// When `latest` was first seen.
    pub first_seen: Millis,
    /// When the counter last changed (the observer's start if never).
    pub last_change: Millis,
}

impl Contact {
    /// A node just started counts last contact from its own start.
    pub fn new(started: Millis) -> Contact {
        Contact { latest: None, first_seen: started, last_change: started }
    }

    /// A heartbeat `seen` was read at `now`. Older incarnations and counters
    /// (a late read of an old copy) change nothing. Returns whether it was
    /// new.
    pub fn observe(&mut self, seen: Seen, now: Millis) -> bool {
        if self.latest.is_some_and(|l| seen <= l) {
            return false;
        }
        self.latest = Some(seen);
        self.first_seen = now;
        self.last_change = now;
        true
    }

    /// Silent for `suspect_after` on the observer's clock?
    pub fn silent(&self, now: Millis, suspect_after: Millis) -> bool {
        now.saturating_sub(self.last_change) >= suspect_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takeover_wait_rounds_up() {
        assert_eq!(takeover_wait(Millis(2000), 10_000, Millis(250)), Millis(2270));
        assert_eq!(takeover_wait(Millis(2000), 1, Millis(0)), Millis(2001));
    }

    #[test]
    fn lease_needs_a_quorum_of_published_acks() {
        let members = [1, 2, 3];
        let none = Votes::default();
        let mut acks = BTreeMap::new();
        assert_eq!(
            lease_counter(&members, 1, &acks, &none, true, true, 1..=10),
            None,
            "own reads are not acks"
        );
        acks.insert(2, 7);
        acks.insert(3, 9);
        assert_eq!(lease_counter(&members, 1, &acks, &none, true, true, 1..=10), Some(9));
        assert_eq!(
            lease_counter(&members, 1, &acks, &none, true, true, 10..=10),
            None,
            "older epoch"
        );
        let mut votes = Votes::default();
        votes.add(3, 1, 1);
        acks.remove(&3);
        assert_eq!(
            lease_counter(&members, 1, &acks, &votes, true, true, 1..=10),
            Some(7),
            "a fence vote never makes one of three a majority: the acknowledged counter"
        );
        assert_eq!(
            lease_counter(&members, 1, &acks, &votes, false, true, 1..=10),
            Some(10),
            "without the half rule it would"
        );
        let mut two = Votes::default();
        two.add(2, 1, 1);
        assert_eq!(
            lease_counter(&[1, 2], 1, &BTreeMap::new(), &two, true, true, 1..=10),
            Some(10),
            "my fence vote: the 2-node survivor is half on its own"
        );
        let mut theirs = Votes::default();
        theirs.add(3, 1, 2);
        acks.remove(&2);
        assert_eq!(
            lease_counter(&members, 1, &acks, &theirs, true, true, 1..=10),
            None,
            "not my fencer's"
        );
    }

    /// The set-free path (no fence votes) answers as the set-based one.
    #[test]
    fn lease_counter_without_votes_matches_the_set_rule() {
        use proptest::prelude::*;
        let reference = |members: &[u32],
                         me: u32,
                         acks: &BTreeMap<u32, u64>,
                         tie: bool,
                         newest: u64,
                         floor: u64| {
            let mut levels: Vec<u64> =
                acks.values().copied().filter(|&c| c >= floor && c <= newest).collect();
            levels.push(newest);
            levels.sort_unstable_by(|a, b| b.cmp(a));
            levels.dedup();
            for c in levels {
                let mut yes: BTreeSet<u32> = BTreeSet::from([me]);
                yes.extend(acks.iter().filter(|(_, &a)| a >= c).map(|(&n, _)| n));
                if is_quorum(members, &yes, tie) {
                    return (c >= floor).then_some(c);
                }
            }
            None
        };
        let cases = (
            proptest::collection::btree_set(1u32..8, 0..6),
            1u32..8,
            proptest::collection::btree_map(1u32..9, 0u64..12, 0..7),
            any::<bool>(),
            0u64..12,
            0u64..12,
        );
        proptest::test_runner::TestRunner::default()
            .run(&cases, |(members, me, acks, tie, newest, floor)| {
                let members: Vec<u32> = members.into_iter().collect();
                let none = Votes::default();
                prop_assert_eq!(
                    lease_counter(&members, me, &acks, &none, true, tie, floor..=newest),
                    reference(&members, me, &acks, tie, newest, floor)
                );
                Ok(())
            })
            .expect("same answer");
    }

    #[test]
    fn contact_ignores_old_copies() {
        let mut c = Contact::new(Millis(100));
        assert!(c.silent(Millis(1600), Millis(1500)), "counted from own start");
        assert!(c.observe(Seen { incarnation: 1, counter: 5 }, Millis(200)));
        assert!(!c.observe(Seen { incarnation: 1, counter: 4 }, Millis(300)));
        assert_eq!(c.last_change, Millis(200));
        assert!(c.observe(Seen { incarnation: 2, counter: 1 }, Millis(400)), "new incarnation");
        assert!(!c.silent(Millis(1899), Millis(1500)));
    }
}
