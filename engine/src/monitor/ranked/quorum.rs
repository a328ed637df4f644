//! `ranked`'s quorum: a majority of the **known membership** (replicated
//! configuration, see [`super::membership`]), never of the nodes that happen
//! to be visible.
//!
//! * More than half of the known members is a quorum.
//! * Exactly half is a quorum when it holds the lowest-numbered known member
//!   (the tie-breaker), as Corosync's `auto_tie_breaker` decides, and only
//!   once the tie-breaker has seen every member since its own start
//!   (Corosync's `wait_for_all`): a tie-breaker that reboots alone into a
//!   partition must not make its half quorate while the other half still
//!   counts its fence vote.
//! * A node fenced successfully votes with the side that fenced it (its
//!   services are dead) until a new incarnation of it is seen, and only to
//!   complete a side that already holds half of the voters (two fencers
//!   unaware of each other cannot both spend it); see [`super::fencing`].
//!
//! Any two quorums intersect: two sets of more than half do; a set of more
//! than half and an exact half do; two disjoint exact halves cannot both
//! hold the tie-breaker. Every rule that needs "a majority" (leases,
//! revocations, claims) uses this one function.

use std::collections::BTreeSet;

/// Is `yes` (the nodes voting for something, fence votes included) a quorum
/// of `members`? `tie_ready`: the tie-breaker may decide an exact half (it
/// has seen every member since its start, or it votes by fence).
pub fn is_quorum(members: &[u32], yes: &BTreeSet<u32>, tie_ready: bool) -> bool {
    is_quorum_by(members, |m| yes.contains(&m), tie_ready)
}

/// [`is_quorum`] with the voting set given as a predicate (`yes(m)`: does
/// member `m` vote?), for callers that would otherwise build a set only to
/// ask it (the lease check, once per acknowledgement level and step).
pub fn is_quorum_by(members: &[u32], yes: impl Fn(u32) -> bool, tie_ready: bool) -> bool {
    let n = members.len();
    if n == 0 {
        return false;
    }
    let count = members.iter().filter(|&&m| yes(m)).count();
    if 2 * count > n {
        return true;
    }
    2 * count == n && tie_ready && members.iter().min().is_some_and(|&t| yes(t))
}

/// Is `yes` a strict majority of `members` (no tie-breaker)? Used where
/// both the old and the new configuration must agree (membership changes).
pub fn is_strict_majority(members: &[u32], yes: &BTreeSet<u32>) -> bool {
    2 * members.iter().filter(|m| yes.contains(m)).count() > members.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn majority_and_tie_breaker() {
        let m = [1, 2, 3, 4];
        assert!(is_quorum(&m, &set(&[2, 3, 4]), false));
        assert!(!is_quorum(&m, &set(&[3, 4]), true), "half without the tie-breaker");
        assert!(is_quorum(&m, &set(&[1, 4]), true), "half with the tie-breaker");
        assert!(!is_quorum(&m, &set(&[1, 4]), false), "wait_for_all not met");
        assert!(!is_quorum(&m, &set(&[1, 9, 8]), true), "non-members do not vote");
        assert!(!is_quorum(&[], &set(&[1]), true));
        assert!(is_quorum(&[1, 2], &set(&[1]), true));
        assert!(!is_quorum(&[1, 2], &set(&[2]), true));
        assert!(!is_strict_majority(&[1, 2], &set(&[1])));
    }

    /// Any two quorums of the same membership intersect (exhaustive, N ≤ 6).
    #[test]
    fn quorums_intersect() {
        for n in 1..=6u32 {
            let members: Vec<u32> = (1..=n).collect();
            let subsets: Vec<BTreeSet<u32>> = (0..1u32 << n)
                .map(|bits| {
                    members.iter().copied().filter(|m| bits & (1 << (m - 1)) != 0).collect()
                })
                .collect();
            let quorums: Vec<&BTreeSet<u32>> =
                subsets.iter().filter(|s| is_quorum(&members, s, true)).collect();
            for a in &quorums {
                for b in &quorums {
                    assert!(a.intersection(b).next().is_some(), "{a:?} and {b:?} of {n}");
                }
            }
        }
    }
}
