//! Deterministic tests of `ranked`'s operational features in the lock-step
//! [`World`]: failback (off by default), the graceful leave on SIGTERM,
//! and mixed-policy detection. Each asserts ground truth (the process
//! table) and first proves that time passed.

use super::harness::{dump, World};
use super::machine::{Input, Read};
use super::RankedParams;

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

/// Nine nodes, three voters: learners publish no acknowledgements,
/// revocations or grants (their records stay small), a voter acknowledges
/// everybody, and the owner's crash still fails over.
#[test]
fn a_large_cluster_votes_with_a_bounded_voter_set() {
    let params = RankedParams { max_voters: 3, ..RankedParams::default() };
    let mut w = World::new(9, params, "web start\n");
    w.membership = true;
    assert!(w.settle(15_000), "{}", dump(&w));
    let owner = w.runs("web")[0];
    let record = |w: &World, n: u32| w.nodes[&n].machine.as_ref().expect("running").record();
    let learner = record(&w, 9);
    assert_eq!(learner.config.voters(), &[1, 2, 3]);
    assert!(learner.acks.is_empty() && learner.revocations.is_empty() && learner.grants.is_empty());
    let voter = record(&w, 1);
    assert_eq!(voter.acks.len(), 8, "a voter acknowledges every other member");
    let acks_in = |text: String| text.lines().filter(|l| l.starts_with("ack ")).count();
    assert_eq!((acks_in(voter.render()), acks_in(learner.render())), (8, 0));
    let t0 = w.t;
    w.crash(owner, None);
    assert!(
        w.run_until_cond(t0 + 15_000, |w| w.runs("web").iter().any(|&n| n != owner)),
        "{}",
        dump(&w)
    );
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
}

/// Quorum is over voters: with two of three voters down, the seven live
/// learners hold no lease (a majority of all members would have).
#[test]
fn learners_without_a_voter_majority_hold_no_lease() {
    let params = RankedParams { max_voters: 3, ..RankedParams::default() };
    let mut w = World::new(9, params, "web start\n");
    w.membership = true;
    assert!(w.settle(15_000), "{}", dump(&w));
    assert!(w.holding(9), "a learner holds a lease while the voters are up");
    w.crash(1, None);
    w.crash(2, None);
    let t0 = w.t;
    w.run_until(t0 + 10_000);
    let holders: Vec<u32> = (3..=9).filter(|&n| w.holding(n)).collect();
    assert!(holders.is_empty(), "{holders:?}\n{}", dump(&w));
    assert!(w.runs("web").is_empty(), "{}", dump(&w));
}

#[test]
fn the_voter_set_changes_by_at_most_one_node() {
    use super::record::Config;
    let c = Config::new(1, (1..=7).collect(), 5);
    assert_eq!(c.voters(), &[1, 2, 3, 4, 5]);
    let removed = c.next(&[1, 2, 4, 5, 6, 7], 5);
    assert_eq!(removed.voters(), &[1, 2, 4, 5], "no learner promoted with the removal");
    let added = removed.next(&[1, 2, 4, 5, 6, 7, 8], 5);
    assert_eq!(added.voters(), &[1, 2, 4, 5, 8], "a new member fills the free seat");
    let small = Config::new(1, vec![1, 2, 3], 5);
    assert_eq!(small.voters(), &[1, 2, 3]);
    assert!(small.voters.is_empty(), "small clusters: every member votes, records unchanged");
    // The voters travel in the record (the config line), and back.
    let rec = super::record::Record { config: added.clone(), ..super::record::tests::sample() };
    let parsed = super::record::Record::parse(&rec.render()).expect("parses");
    assert_eq!(parsed.config, added);
}
