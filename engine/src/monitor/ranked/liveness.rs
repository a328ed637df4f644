//! Deterministic tests of `ranked`'s liveness rules and of the rules that
//! keep it from fencing healthy nodes, in the lock-step [`World`]: a claim
//! that leads nowhere is given up, so the next-ranked node takes the group;
//! a node that rebooted faster than the membership source noticed is not
//! fenced on its predecessor's verdict; only a lease holder fences; a
//! revoked node that is still heard is waited for, not fenced. Each asserts
//! ground truth (the process table) and first proves that time passed.

use super::harness::{dump, Link, World};
use super::{RankedParams, Rules};

/// Node 1 ranks first for `web` but its `cltab` lacks the group (a restart
/// with a `cltab` that does not parse starts with an empty table): its init
/// machine refuses the plan. The refusal gives the claim up at once, and
/// node 2 runs `web` within a few rank slots, long before the stall bound.
/// Without the rule the claim stood, every other node saw an attempt and
/// waited: seed 7 of the random-fault sweep (N=3) was down 50 minutes.
#[test]
fn a_refused_tell_gives_the_claim_up_and_the_next_ranked_node_takes_the_group() {
    let mut w = World::new(3, RankedParams::default(), "web start 1,2,3\n");
    w.membership = true;
    w.node(1).missing_groups.insert("web".into());
    let stall = w.params.stall_after.0;
    assert!(w.run_until_cond(stall / 2, |w| w.runs("web") == vec![2]), "{}", dump(&w));
    assert!(w.log.iter().any(|l| l.1 == 1 && l.2.starts_with("TellRefused")), "{}", dump(&w));
    assert!(!w.log.iter().any(|l| l.2.starts_with("Stalled")), "{}", dump(&w));
    // It stays there, and node 1 (backed off) does not come back for it.
    let t = w.t;
    w.run_until(t + 30_000);
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
}

/// Node 1's tells of `web` take no effect and nobody says why (a stuck
/// executor): the claim stands while `web` runs nowhere, until the stall
/// bound, when node 1 releases it (logged `Stalled`) and node 2 takes over.
#[test]
fn a_claim_without_progress_is_released_after_the_stall_bound() {
    let mut w = World::new(3, RankedParams::default(), "web start 1,2,3\n");
    w.membership = true;
    w.node(1).ignored_groups.insert("web".into());
    let stall = w.params.stall_after.0;
    // Time passes with `web` nowhere: node 1 holds its lease and asks.
    w.run_until(stall / 2);
    assert!(w.holding(1), "{}", dump(&w));
    assert!(w.runs("web").is_empty(), "{}", dump(&w));
    assert!(w.run_until_cond(stall + 5_000, |w| w.runs("web") == vec![2]), "{}", dump(&w));
    assert!(w.log.iter().any(|l| l.1 == 1 && l.2.starts_with("Stalled")), "{}", dump(&w));
    assert!(w.t >= stall, "released only after the bound");
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
}

/// `db` can run only on node 2 (its test fails elsewhere). Node 2 crashes
/// and reboots in 3 s, but the membership source still lists it down for
/// 10 s more. Its new incarnation's records move, so the others judge it
/// by its counter: it takes `db` back and nobody fences it. Before the
/// rule, the stale "down" revoked the new incarnation at once, and its
/// first claim had it fenced although it was healthy.
#[test]
fn a_reboot_faster_than_the_membership_source_is_not_fenced() {
    let params = RankedParams { fence_command: true, ..RankedParams::default() };
    let mut w = World::new(3, params, "db start 2\n");
    w.membership = true;
    w.node(1).failing_tests.insert("db".into());
    w.node(3).failing_tests.insert("db".into());
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("db"), vec![2]);
    w.listed_down.insert(2);
    w.crash(2, Some(3_000));
    let t0 = w.t;
    // Node 2 is back (a new incarnation holding a lease) while still
    // listed down.
    assert!(w.run_until_cond(t0 + 8_000, |w| w.holding(2)), "{}", dump(&w));
    assert!(w.run_until_cond(t0 + 13_000, |w| w.runs("db") == vec![2]), "{}", dump(&w));
    assert!(w.t < t0 + 13_000);
    w.listed_down.clear();
    w.run_until(w.t + 10_000);
    assert_eq!(w.runs("db"), vec![2], "{}", dump(&w));
    let fenced_back: Vec<_> = w.fences.iter().filter(|f| f.0 > t0 + 3_000).collect();
    assert!(fenced_back.is_empty(), "{fenced_back:?}\n{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
}

/// `web` runs on node 1. Node 2 misses node 1's records for 3 s and
/// revokes it (with `lift_heard_revocation` off, the revocation stands
/// until node 1 releases; with it on, it is lifted once node 3 has seen it
/// withdrawn, and what follows is harmless). Much later node
/// 3 cannot read anyone for 10 s: it revokes node 1 too, so a quorum has
/// revoked node 1, whose lease ends; it kills `web` and publishes its
/// release, and `web` moves to node 2. Node 1 was healthy all along
/// (exchanging records both ways with node 2): nobody may fence it.
/// * Node 3 holds no lease (it reads no acknowledgement): without
///   `only_holders_fence` it fences node 1, which it alone cannot hear.
/// * Node 2 holds its lease and sees node 1's counter move: without
///   `wait_for_heard_release` it fences node 1 at once instead of waiting
///   for the release that comes within `H·(1+ρ)+δ`.
fn standing_revocation_then_a_deaf_node(rules: impl FnOnce(&mut Rules)) -> World {
    let params = RankedParams { fence_command: true, ..RankedParams::default() };
    let mut w = World::new(3, params, "web start 1,2,3\n").with_rules(rules);
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1]);
    w.link(1, 2, Link::Down);
    let t0 = w.t;
    w.run_until(t0 + 3_000);
    w.link(1, 2, Link::Delay(w.default_delay));
    w.run_until(w.t + 20_000);
    assert_eq!(w.runs("web"), vec![1], "a minority's revocation moves nothing\n{}", dump(&w));
    assert!(w.log.iter().any(|l| l.1 == 2 && l.2.starts_with("Revoked")), "{}", dump(&w));
    w.link(1, 3, Link::Down);
    w.link(2, 3, Link::Down);
    let t1 = w.t;
    w.run_until(t1 + 10_000);
    w.link(1, 3, Link::Delay(w.default_delay));
    w.link(2, 3, Link::Delay(w.default_delay));
    w.run_until(w.t + 10_000);
    w
}

#[test]
fn a_healthy_node_revoked_by_a_quorum_is_waited_for_not_fenced() {
    for lift in [true, false] {
        let w = standing_revocation_then_a_deaf_node(|r| r.lift_heard_revocation = lift);
        assert_eq!(w.runs("web").len(), 1, "{}", dump(&w));
        assert!(w.fences.is_empty(), "{:?}\n{}", w.fences, dump(&w));
        assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
    }
}

#[test]
fn without_only_holders_fence_a_node_without_a_lease_fences_a_healthy_one() {
    // The deaf node reads no peer at all, so `blind_when_every_peer_read_fails`
    // alone keeps it from fencing too: off here, to show this rule's part.
    let w = standing_revocation_then_a_deaf_node(|r| {
        r.only_holders_fence = false;
        r.lift_heard_revocation = false;
        r.blind_when_every_peer_read_fails = false;
    });
    assert!(w.needless_fences > 0, "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
}

/// Node 2 orders the fence at once (compare-and-fence may still skip it
/// when node 1's record moved meanwhile: the fence was asked for all the
/// same, and a slower record would have let it through).
#[test]
fn without_waiting_for_a_heard_release_a_healthy_node_is_fenced() {
    let w = standing_revocation_then_a_deaf_node(|r| {
        r.wait_for_heard_release = false;
        r.lift_heard_revocation = false;
    });
    let ordered: Vec<_> = w.fences.iter().filter(|f| f.1 == 2 && f.2.node == 1).collect();
    assert!(!ordered.is_empty(), "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
}

/// The owner of `web` (node 1) dies in a fenced 3-node cluster while the
/// membership source still lists it up (no verdict: the simulator's
/// detection takes about 10 s). Node 2 must wait for node 1's release
/// until node 1's lease and watchdog have surely ended, then fence. Returns
/// the world once `web` runs on node 2, the crash time, and when node 2
/// ordered the fence.
fn silent_dead_owner(rules: impl FnOnce(&mut Rules)) -> (World, u64, u64) {
    let params = RankedParams { fence_command: true, ..RankedParams::default() };
    let mut w = World::new(3, params, "web start 1,2,3\n").with_rules(rules);
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.crash(1, Some(600_000));
    assert!(w.run_until_cond(t0 + 20_000, |w| w.runs("web") == vec![2]), "{}", dump(&w));
    assert_eq!(w.fences.len(), 1, "{}", dump(&w));
    assert_eq!((w.fences[0].1, w.fences[0].2.node), (2, 1), "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
    let fenced_at = w.fences[0].0;
    eprintln!("fenced {} ms, failover {} ms after the crash", fenced_at - t0, w.t - t0);
    (w, t0, fenced_at)
}

/// Counted from node 2's first sight of node 1's last heartbeat (at or
/// beyond every revocation bound: the revokers saw nothing later), the
/// wait ends `suspect_after` and a revocation round earlier than counted
/// from the revocation; the fence still comes no sooner than `H·(1+ρ)+δ`
/// after the crash less one heartbeat period and read (node 1's last
/// heartbeat was written, and first seen, at most that long before it).
#[test]
fn a_silent_dead_owner_is_fenced_once_its_lease_surely_ended_counted_from_its_last_heartbeat() {
    let (w, t0, fenced_at) = silent_dead_owner(|r| r.release_wait_from_last_heartbeat = true);
    let wait = w.params.takeover_wait().0;
    let p = w.params.heartbeat.0;
    assert!(fenced_at >= t0 + wait - 2 * p, "fenced {} ms after the crash", fenced_at - t0);
    let failover = w.t - t0;
    let bound = wait + 2 * p + w.fence_ms + 500;
    assert!(failover <= bound, "failover {failover} ms > {bound} ms\n{}", dump(&w));
}

/// Counted from the revocation, the same failover takes `suspect_after`
/// (1.5 s) and a revocation round longer: every group-second of it an
/// outage, with no healthy node spared (node 1 is dead).
#[test]
fn counted_from_the_revocation_a_silent_dead_owner_is_fenced_later() {
    let (w, t0, fenced_at) = silent_dead_owner(|r| r.release_wait_from_last_heartbeat = false);
    let wait = w.params.takeover_wait().0;
    let p = w.params.heartbeat.0;
    let suspect = w.params.suspect_after.0;
    assert!(
        fenced_at >= t0 + suspect + wait,
        "fenced {} ms after the crash\n{}",
        fenced_at - t0,
        dump(&w)
    );
    let failover = w.t - t0;
    let bound = wait + 2 * p + w.fence_ms + 500;
    assert!(failover > bound, "failover {failover} ms\n{}", dump(&w));
}

/// N = 5: node 5 crashes and at once a partition splits {1, 2} from
/// {3, 4}, with the membership source on each side listing the other side
/// down. No side has a majority of the five voters: every lease ends and
/// `web` runs nowhere. The partition heals, but the source goes on listing
/// the other side down for 10 s (its detection time). Each side's records
/// move again and say `released`: with `heard_overrides_down`, a node heard
/// since the verdict is judged by its counter, the revocations are lifted
/// and `web` runs again within a few seconds of the heal. Without it the
/// verdict kept every revocation standing until the source listed the
/// nodes again (the simulator's N = 10 seed 13: five groups down 5 s).
fn healed_while_the_source_lags(rules: impl FnOnce(&mut Rules)) -> (World, u64) {
    let mut w = World::new(5, RankedParams::default(), "web start\n").with_rules(rules);
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web").len(), 1, "{}", dump(&w));
    w.crash(5, None);
    let across = [(1, 3), (1, 4), (2, 3), (2, 4)];
    for (a, b) in across {
        w.link(a, b, Link::Down);
        w.link(b, a, Link::Down);
        w.hidden.insert((a, b));
        w.hidden.insert((b, a));
    }
    let t0 = w.t;
    w.run_until(t0 + 15_000);
    assert!(w.t >= t0 + 15_000);
    assert!(w.runs("web").is_empty(), "no side has a majority\n{}", dump(&w));
    for (a, b) in across {
        w.link(a, b, Link::Delay(w.default_delay));
        w.link(b, a, Link::Delay(w.default_delay));
    }
    let healed = w.t;
    // The source still lists the other side down for 10 s.
    let back = w.run_until_cond(healed + 10_000, |w| w.runs("web").len() == 1);
    let back_after = w.t - healed;
    w.hidden.clear();
    w.run_until(healed + 20_000);
    assert_eq!(w.runs("web").len(), 1, "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
    (w, if back { back_after } else { u64::MAX })
}

#[test]
fn a_partition_that_healed_is_seen_by_its_records_before_the_membership_source() {
    let (w, back_after) = healed_while_the_source_lags(|_| {});
    assert!(back_after <= 4_000, "web back {back_after} ms after the heal\n{}", dump(&w));
}

#[test]
fn a_healed_partition_judged_by_the_lagging_source_keeps_every_group_down() {
    let (w, back_after) = healed_while_the_source_lags(|r| r.heard_overrides_down = false);
    assert_eq!(
        back_after,
        u64::MAX,
        "web came back before the source listed the nodes\n{}",
        dump(&w)
    );
}
