//! Deterministic tests of `ranked`'s liveness rules in the lock-step
//! [`World`]: a claim that leads nowhere is given up, so the next-ranked
//! node takes the group, and a node that rebooted faster than the
//! membership source noticed is not fenced on its predecessor's verdict.
//! Each asserts ground truth (the process table) and first proves that
//! time passed.

use super::harness::World;
use super::RankedParams;

fn dump(w: &World) -> String {
    w.log
        .iter()
        .filter(|l| !l.2.starts_with("Unknown"))
        .map(|l| format!("{:>6} n{} {}", l.0, l.1, l.2))
        .collect::<Vec<_>>()
        .join("\n")
}

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
