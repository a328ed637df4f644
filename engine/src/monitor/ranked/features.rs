//! Deterministic tests of `ranked`'s operational features in the lock-step
//! [`World`]: failback (off by default), the graceful leave on SIGTERM,
//! and mixed-policy detection. Each asserts ground truth (the process
//! table) and first proves that time passed.

use super::harness::World;
use super::machine::{Input, Read};
use super::RankedParams;

fn dump(w: &World) -> String {
    w.log
        .iter()
        .filter(|l| !l.2.starts_with("Unknown"))
        .map(|l| format!("{:>6} n{} {}", l.0, l.1, l.2))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `web` prefers node 1; node 1 dies, `web` moves to node 2, node 1 comes
/// back and holds a lease for 15 s. Returns the world at that point.
fn return_of_the_preferred(failback: bool) -> World {
    let params = RankedParams { failback, ..RankedParams::default() };
    let mut w = World::new(3, params, "web start 1,2,3\n");
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.crash(1, Some(3_000));
    assert!(w.run_until_cond(t0 + 10_000, |w| w.runs("web") == vec![2]), "{}", dump(&w));
    // Time passes: node 1 is back and holds a lease.
    assert!(w.run_until_cond(w.t + 10_000, |w| w.holding(1)), "{}", dump(&w));
    let back = w.t;
    w.run_until(back + 15_000);
    assert!(w.holding(1), "node 1 still holds its lease\n{}", dump(&w));
    w
}

#[test]
fn a_running_group_stays_where_it_runs_by_default() {
    let w = return_of_the_preferred(false);
    assert_eq!(w.runs("web"), vec![2], "no failback\n{}", dump(&w));
    assert!(!w.log.iter().any(|l| l.2.contains("FailingBack")), "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0);
}

#[test]
fn failback_when_asked_moves_the_group_back_once() {
    let w = return_of_the_preferred(true);
    assert_eq!(w.runs("web"), vec![1], "failed back to node 1\n{}", dump(&w));
    let failbacks = w.log.iter().filter(|l| l.2.contains("FailingBack")).count();
    assert_eq!(failbacks, 1, "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
}

#[test]
fn failback_happens_at_most_once_per_incarnation() {
    // Node 1's test of web fails after it came back: web returns to node
    // 2 and stays there (no second failback to the same incarnation).
    let params = RankedParams { failback: true, ..RankedParams::default() };
    let mut w = World::new(3, params, "web start 1,2,3\n");
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    let t0 = w.t;
    w.crash(1, Some(3_000));
    assert!(w.run_until_cond(t0 + 10_000, |w| w.runs("web") == vec![2]), "{}", dump(&w));
    w.node(1).failing_tests.insert("web".into());
    w.run_until(w.t + 60_000);
    let failbacks = w.log.iter().filter(|l| l.2.contains("FailingBack")).count();
    assert_eq!(failbacks, 1, "{}", dump(&w));
    assert_eq!(w.runs("web").len(), 1, "{}", dump(&w));
    assert_ne!(w.runs("web"), vec![1]);
    assert_eq!(w.double_owner_ms, 0);
}

#[test]
fn a_leaving_node_stops_its_groups_releases_and_peers_take_over_without_the_lease_wait() {
    let mut w = World::new(3, RankedParams::default(), "web start 1,2,3\n");
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.node(1).inbox.push(Input::Leave);
    assert!(w.run_until_cond(t0 + 10_000, |w| w.runs("web") == vec![2]), "{}", dump(&w));
    let took = w.t - t0;
    // The release voids node 1's claims at once: no H·(1+ρ)+δ wait.
    assert!(took < w.params.takeover_wait().0, "{took} ms\n{}", dump(&w));
    w.run_until(w.t + 5_000);
    assert_eq!(w.runs("web"), vec![2], "node 1 never plans again\n{}", dump(&w));
    assert!(w.log.iter().any(|l| l.1 == 1 && l.2.contains("Left")), "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0);
}

#[test]
fn without_leave_a_stopped_group_is_planned_again() {
    // What SIGTERM did before `Leave`: the group is stopped under the
    // machine's feet, and the machine, still holding its lease, plans it
    // again here.
    let mut w = World::new(3, RankedParams::default(), "web start 1,2,3\n");
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    let starts = w.nodes[&1].starts.get("web").copied().unwrap_or(0);
    w.stop_locally(1, "web");
    w.run_until(w.t + 5_000);
    assert!(w.nodes[&1].starts["web"] > starts, "{}", dump(&w));
}

#[test]
fn a_member_publishing_another_policy_blocks_takeover_and_is_logged() {
    let mut w = World::new(3, RankedParams::default(), "web start 1,2,3\n");
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1]);
    // Node 3 is replaced by a classic node: its file is a classic status.
    w.other_policy(3, "classic");
    w.run_until(w.t + 1_000);
    assert!(w.log.iter().any(|l| l.1 == 2 && l.2.contains("MixedPolicy")), "{}", dump(&w));
    let t0 = w.t;
    w.crash(1, None);
    w.run_until(t0 + 20_000);
    assert!(w.runs("web").is_empty(), "ranked took over next to classic\n{}", dump(&w));
    // Once node 3 publishes ranked again, node 2 takes over.
    w.other_policy_ends(3);
    assert!(w.run_until_cond(w.t + 10_000, |w| w.runs("web") == vec![2]), "{}", dump(&w));
    let _ = Read::Unknown(String::new());
}
