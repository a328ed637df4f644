//! Per-group ranking of nodes: who should run a group, best first.
//!
//! Preferred nodes from the optional third `hactl` column come first, in the
//! order written; every other candidate follows by rendezvous hashing
//! (highest random weight, Thaler & Ravishankar 1996) of `(group, node)`.
//! Rendezvous hashing is what makes a departure cheap: when a node leaves,
//! only the groups it ranked first change their first choice, and every
//! other group keeps its order.
//!
//! The weight is fixed and documented so every node, every build and every
//! Rust version agrees: FNV-1a 64 (see [`super::record::fnv1a64`]) of the
//! group name's bytes, a zero byte and the node number as 4 big-endian bytes,
//! passed through the splitmix64 finaliser (Steele et al. 2014) to spread
//! FNV's weak low bits. No `std` `RandomState` (seeded per process) is used.
//! Ties (a 2⁻⁶⁴ event) go to the lower node number.

use super::record::fnv1a64;

/// The rendezvous weight of `node` for `group`.
pub fn weight(group: &str, node: u32) -> u64 {
    let mut bytes = Vec::with_capacity(group.len() + 5);
    bytes.extend_from_slice(group.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&node.to_be_bytes());
    splitmix64(fnv1a64(&bytes))
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `candidates` ordered best first for `group`: the `preferred` ones that
/// are candidates, in their order, then the rest by descending weight.
/// Duplicates in either list are ignored.
pub fn rank(group: &str, preferred: &[u32], candidates: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::with_capacity(candidates.len());
    for p in preferred {
        if candidates.contains(p) && !out.contains(p) {
            out.push(*p);
        }
    }
    let mut rest: Vec<(u64, u32)> =
        candidates.iter().filter(|n| !out.contains(n)).map(|&n| (weight(group, n), n)).collect();
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    rest.dedup_by_key(|x| x.1);
    out.extend(rest.into_iter().map(|(_, n)| n));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn weights_are_fixed_across_builds() {
        // Pinned: a change here re-places every group of every cluster.
        insta::assert_snapshot!(format!("{:016x} {:016x}", weight("web", 1), weight("db", 2)), @"384cec0fe9ef35d5 d2a541bd89998bc5");
    }

    #[test]
    fn preferred_first_in_written_order_then_hash() {
        let r = rank("web", &[3, 9, 1, 3], &[1, 2, 3, 4]);
        assert_eq!(&r[..2], &[3, 1]);
        assert_eq!(r.len(), 4);
        let tail = rank("web", &[], &[2, 4]);
        assert_eq!(&r[2..], &tail[..]);
    }

    #[test]
    fn groups_spread_over_nodes() {
        let nodes: Vec<u32> = (1..=5).collect();
        let mut firsts = [0usize; 6];
        for g in 0..500 {
            firsts[rank(&format!("g{g}"), &[], &nodes)[0] as usize] += 1;
        }
        // 100 expected per node; a fair hash stays well within 60..140.
        assert!(firsts[1..].iter().all(|&c| (60..140).contains(&c)), "{firsts:?}");
    }

    proptest! {
        #[test]
        fn deterministic_and_a_permutation(group in "[a-z]{1,6}", mut nodes in proptest::collection::btree_set(0u32..40, 1..12).prop_map(|s| s.into_iter().collect::<Vec<_>>())) {
            let a = rank(&group, &[], &nodes);
            nodes.reverse();
            let b = rank(&group, &[], &nodes);
            prop_assert_eq!(&a, &b);
            let mut sorted = a.clone();
            sorted.sort_unstable();
            nodes.sort_unstable();
            prop_assert_eq!(sorted, nodes);
        }

        /// When a node leaves, the others keep their relative order, so only
        /// the groups the leaver ranked first get a new first choice.
        #[test]
        fn a_departure_moves_only_its_groups(group in "[a-z]{1,6}", nodes in proptest::collection::btree_set(0u32..40, 2..12).prop_map(|s| s.into_iter().collect::<Vec<_>>()), k in any::<prop::sample::Index>()) {
            let gone = nodes[k.index(nodes.len())];
            let before = rank(&group, &[], &nodes);
            let rest: Vec<u32> = nodes.iter().copied().filter(|&n| n != gone).collect();
            let after = rank(&group, &[], &rest);
            let expected: Vec<u32> = before.iter().copied().filter(|&n| n != gone).collect();
            prop_assert_eq!(&after, &expected);
            if before[0] != gone {
                prop_assert_eq!(after[0], before[0]);
            }
        }
    }
}
