//! The interleavings of the issue, each in the lock-step [`World`], each
//! shown to fail with its rule switched off (the `*_without_*` twin of each
//! test runs the same schedule with one rule removed and asserts the
//! failure, so a rule that stops mattering is noticed).

use super::harness::{dump, Link, World, TICK};
use super::machine::{Command, Input, Ranked, Read};
use super::record::{Config, LeaseState, Record};
use super::{RankedParams, Rules};
use crate::status::ClStat;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};

fn world(n: u32, hactl: &str) -> World {
    World::new(n, RankedParams::default(), hactl)
}

fn fenced(n: u32, hactl: &str) -> World {
    World::new(n, RankedParams { fence_command: true, ..RankedParams::default() }, hactl)
}

#[test]
fn places_once_and_fails_over_after_the_lease_wait() {
    let mut w = world(3, "web start 1,2,3\n");
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.crash(1, None);
    assert!(w.run_until_cond(t0 + 10_000, |w| w.runs("web").len() == 1), "{}", dump(&w));
    let failover = w.t - t0;
    let wait = w.params.takeover_wait().0;
    assert!(failover <= wait + 1000, "{failover} ms\n{}", dump(&w));
    assert_eq!(w.runs("web"), vec![2], "next in rank");
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0));
}

#[test]
fn stepped_only_at_poll_timeout_it_behaves_the_same() {
    // A driver that steps the machine only on inputs and at poll_timeout
    // (never every 10 ms) gets the same placement and failover.
    for fence in [false, true] {
        let params = RankedParams { fence_command: fence, ..RankedParams::default() };
        let mut w = World::new(3, params, "web start 1,2,3\n");
        w.event_driven = true;
        w.membership = true;
        assert!(w.settle(10_000), "{}", dump(&w));
        assert_eq!(w.runs("web"), vec![1]);
        let t0 = w.t;
        w.crash(1, None);
        assert!(w.run_until_cond(t0 + 10_000, |w| w.runs("web") == vec![2]), "{}", dump(&w));
        let bound = if fence { w.fence_ms + 500 } else { w.params.takeover_wait().0 + 1000 };
        assert!(w.t - t0 <= bound, "failover {} ms (fence {fence})", w.t - t0);
        eprintln!("event-driven failover {} ms (fence {fence})", w.t - t0);
        assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0));
    }
}

#[test]
fn with_a_fence_command_failover_is_the_fence_time() {
    let mut w = fenced(3, "web start 1,2,3\n");
    w.membership = true;
    assert!(w.settle(10_000));
    let t0 = w.t;
    w.crash(1, Some(60_000));
    assert!(w.run_until_cond(t0 + 10_000, |w| w.runs("web").len() == 1), "{}", dump(&w));
    let failover = w.t - t0;
    assert!(failover <= w.fence_ms + 500, "{failover} ms\n{}", dump(&w));
    assert_eq!(w.fences.len(), 1, "one fencer");
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0));
}

#[test]
fn a_frozen_monitor_is_stopped_by_its_watchdog() {
    let mut w = world(3, "web start 1,2,3\n");
    assert!(w.settle(10_000));
    let t0 = w.t;
    w.node(1).frozen = true;
    assert!(w.run_until_cond(t0 + 15_000, |w| w.runs("web") == vec![2]), "{}", dump(&w));
    assert!(w.nodes[&1].procs.is_empty(), "the watchdog killed web on the frozen node");
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
}

/// Node 1 owns web, its watchdog process is gone for good (killed, and its
/// restarts fail), and then its monitor freezes, with no fence command in
/// the cluster. `tell` says whether the executor tells the machine
/// ([`Input::Watchdog`]).
fn frozen_without_a_watchdog(tell: bool) -> World {
    let mut w = world(3, "web start 1,2,3\n");
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.node(1).watchdog_gone = true;
    if tell {
        w.node(1).inbox.push(Input::Watchdog { up: false });
    }
    // A second for the record that says so to reach the peers.
    w.run_until(t0 + 1_000);
    w.node(1).frozen = true;
    w.run_until(t0 + 15_000);
    w
}

#[test]
fn a_node_whose_watchdog_is_gone_publishes_it_and_nothing_is_taken_over_from_it() {
    let w = frozen_without_a_watchdog(true);
    assert!(w.t >= 15_000, "time passed");
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1], "web stays where it runs: {}", dump(&w));
}

#[test]
fn a_node_that_publishes_a_watchdog_it_lost_gives_a_double_owner() {
    let w = frozen_without_a_watchdog(false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
}

#[test]
fn a_restarted_monitor_kills_leftovers_and_its_old_claim_is_void() {
    let mut w = world(3, "web start 1,2,3\n");
    assert!(w.settle(10_000));
    let t0 = w.t;
    w.restart_monitor(1);
    w.run_until(t0 + 10_000);
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.runs("web").len(), 1, "{}", dump(&w));
    assert!(w.nodes[&1].machine.as_ref().is_some_and(|m| m.incarnation() == 2));
}

fn durable_revocation(rules: impl FnOnce(&mut Rules)) -> World {
    // X=1 runs web. Y=2 and V=4 cannot read X; Z=3 stops hearing X, revokes,
    // then hears it again; W=5 reads X fine. After Z's revocation is
    // published, Y, V and W read Z only through an endless delay: they keep
    // seeing Z's revocation.
    // Suspicion after 600 ms, so Z's blip (800 ms) is shorter than X's lease.
    let params = RankedParams { suspect_after: Millis(600), ..RankedParams::default() };
    let mut w = World::new(5, params, "web start 1,2,3\n").with_rules(rules);
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.link(1, 2, Link::Down);
    w.link(1, 4, Link::Down);
    w.link(1, 3, Link::Down);
    w.run_until(t0 + 800);
    for r in [2, 4, 5] {
        w.link(3, r, Link::Down);
    }
    w.links.remove(&(1, 3));
    w.run_until(t0 + 15_000);
    w
}

#[test]
fn durable_revocation_keeps_a_stale_revocation_true() {
    let w = durable_revocation(|_| {});
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.runs("web").len(), 1, "{}", dump(&w));
}

#[test]
fn durable_revocation_without_the_rule_gives_a_double_owner() {
    let w = durable_revocation(|r| r.durable_revocation = false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
}

#[test]
fn lifting_a_heard_revocation_at_once_gives_a_double_owner() {
    // The unsafe case of lifting: Z hears X again and would lift its
    // revocation at once, while Y and V still count it (they read Z through
    // an endless delay) towards a quorum {Y, V, Z} of revocations. X keeps
    // its lease on Z's and W's acknowledgements; Y and V take over.
    let w = durable_revocation(|r| r.lift_after_round = false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
    // With the round (every other voter must acknowledge a record of Z
    // without the revocation first), Z withdraws but does not lift: Y, V
    // and W cannot read Z's newer records. X loses its lease (only W
    // acknowledges it beyond the bound) and releases; only that release
    // lifts Z's revocation.
    let w = durable_revocation(|_| {});
    let at = |node: u32, what: &str| {
        w.log.iter().find(|l| l.1 == node && l.2.starts_with(what)).map(|l| l.0)
    };
    assert!(at(3, "RevocationWithdrawn").is_some(), "{}", dump(&w));
    let lost = at(1, "LeaseLost").expect("X lost its lease");
    assert!(at(3, "RevocationLifted").is_none_or(|t| t > lost), "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
}

/// NU1's one-sided revocation: node 3 cannot read node 1's record for 8 s
/// (truncated to 0 bytes) and revokes it; node 2 keeps acknowledging it, so
/// node 1 keeps its lease and `web`. Then node 2 crashes: node 1 keeps its
/// lease only if node 3 acknowledges it again. Returns the world, whether
/// `web` ever ran nowhere after the crash, and node 3's revocations then.
fn one_sided_revocation(rules: impl FnOnce(&mut Rules)) -> (World, bool) {
    let mut w = world(3, "web start 1,2,3\n").with_rules(rules);
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.link(1, 3, Link::Down);
    w.run_until(t0 + 8_000);
    assert!(
        w.nodes[&3].disk.as_ref().is_some_and(|d| d.revocations.contains_key(&1)),
        "node 3 revoked node 1: {}",
        dump(&w)
    );
    assert_eq!(w.runs("web"), vec![1], "node 2's acknowledgements keep node 1's lease");
    w.links.remove(&(1, 3));
    w.run_until(t0 + 20_000);
    let t1 = w.t;
    w.crash(2, None);
    let gap = w.run_until_cond(t1 + 15_000, |w| w.runs("web").is_empty());
    w.run_until(t1 + 15_000);
    (w, gap)
}

#[test]
fn a_one_sided_revocation_is_lifted_once_every_voter_saw_it_withdrawn() {
    let (w, gap) = one_sided_revocation(|_| {});
    assert!(!gap, "web never stopped on node 1: {}", dump(&w));
    assert_eq!(w.runs("web"), vec![1], "{}", dump(&w));
    assert_eq!(w.nodes[&1].starts.get("web"), Some(&1), "one start: {}", dump(&w));
    assert!(w.log.iter().any(|l| l.1 == 3 && l.2.starts_with("RevocationLifted")), "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
}

#[test]
fn a_one_sided_revocation_that_stands_stops_web_when_another_node_crashes() {
    let (w, gap) = one_sided_revocation(|r| r.lift_heard_revocation = false);
    assert!(gap, "node 1 lost its lease on node 2's crash: {}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
}

fn claims_read_late(rules: impl FnOnce(&mut Rules)) -> World {
    // B=2 ranks first for web, C=3 second. When web is added, C reads B
    // only 2H late: it sees web unplaced after B's slot, and plans too.
    let mut w = world(3, "").with_rules(rules);
    w.run_until(1000);
    let t0 = w.t;
    w.link(2, 3, Link::Delay(2 * w.params.lease.0));
    w.set_hactl("web start 2,3,1\n");
    w.run_until(t0 + 10_000);
    w
}

#[test]
fn claims_keep_a_late_reader_from_starting_a_second_copy() {
    let w = claims_read_late(|_| {});
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
}

#[test]
fn claims_read_late_without_claims_gives_a_double_owner() {
    let w = claims_read_late(|r| r.claims = false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
}

fn late_spawn(rules: impl FnOnce(&mut Rules)) -> World {
    // Node 1's executor runs its spawn 5 s late; node 1 is cut off the
    // moment the spawn is queued, loses its lease, and node 2 takes over.
    let mut w = world(3, "web start 1,2,3\n").with_rules(rules);
    w.node(1).late_start = Some(5000);
    assert!(w.run_until_cond(5000, |w| !w.nodes[&1].late_queue.is_empty()));
    let t0 = w.t;
    w.isolate(1);
    w.run_until(t0 + 10_000);
    w
}

#[test]
fn late_spawns_are_dropped_after_their_not_after_time() {
    let w = late_spawn(|_| {});
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.nodes[&1].dropped_late, 1);
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
}

#[test]
fn late_spawns_without_a_not_after_time_give_a_double_owner() {
    let w = late_spawn(|r| r.spawn_deadline = false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
}

fn paused_node(rules: impl FnOnce(&mut Rules)) -> World {
    // A fence command exists but fails for 8 s; node 1 (owner) is paused
    // as a VM is, with its watchdog and services, for 10 s. (The first
    // fence goes out only once node 1's lease has surely ended, about 5 s
    // in, as it is still listed up: 8 s of failures make it retry.)
    let mut w = fenced(3, "web start 1,2,3\n").with_rules(rules);
    assert!(w.settle(10_000));
    let t0 = w.t;
    w.fence_works = false;
    w.node(1).paused = true;
    w.run_until(t0 + 8000);
    w.fence_works = true;
    w.run_until(t0 + 10_000);
    w.resume(1);
    w.run_until(t0 + 20_000);
    w
}

#[test]
fn a_paused_node_is_taken_over_only_after_a_fence() {
    let w = paused_node(|_| {});
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.needless_fences, 0);
    assert!(w.fences.len() >= 2, "failed fences were retried: {:?}", w.fences);
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
}

#[test]
fn a_paused_node_taken_over_by_lease_wait_gives_a_double_owner() {
    let w = paused_node(|r| r.pause_needs_fence = false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
}

/// Node 1 owns web, then cannot read the others, so its lease runs out; web
/// is in D state and survives the kill. Returns when that began.
fn stuck_deaf_owner(w: &mut World) -> u64 {
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.node(1).unkillable = true;
    w.link(2, 1, Link::Down);
    w.link(3, 1, Link::Down);
    t0
}

fn unkillable(rules: impl FnOnce(&mut Rules)) -> World {
    let mut w = fenced(3, "web start 1,2,3\n").with_rules(rules);
    let t0 = stuck_deaf_owner(&mut w);
    w.run_until(t0 + 10_000);
    w
}

#[test]
fn an_unconfirmed_kill_stays_unreleased_until_fenced() {
    let w = unkillable(|_| {});
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.needless_fences, 0);
    assert_eq!(w.fences.len(), 1, "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
}

#[test]
fn an_unconfirmed_kill_published_as_release_gives_a_double_owner() {
    let w = unkillable(|r| r.lost_needs_fence = false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
}

#[test]
fn an_unconfirmed_kill_is_retried_at_doubling_gaps_until_it_lands() {
    // No fence command: node 1 cannot read, loses its lease, and its web is
    // in D state for 60 s. Its kill is retried H after it failed, then at
    // doubling gaps (not with every heartbeat: the real executor logs each
    // kill), and the retry after D state ends lands: node 1 releases.
    let mut w = world(3, "web start 1,2,3\n");
    let t0 = stuck_deaf_owner(&mut w);
    w.run_until(t0 + 60_000);
    let kills = |w: &World| w.log.iter().filter(|(_, n, l)| *n == 1 && l == "kill all").count();
    let stuck = kills(&w);
    // The first kill and retries at about +2, +6, +14 and +30 s (+62 s is
    // beyond the minute): 240 if every heartbeat retried.
    assert!((3..=7).contains(&stuck), "{stuck} kills in 60 s: {}", dump(&w));
    assert_eq!(w.runs("web"), vec![1], "nobody starts web beside the stuck one: {}", dump(&w));
    w.node(1).unkillable = false;
    w.run_until(t0 + 100_000);
    assert!(kills(&w) > stuck, "retried after D state ended: {}", dump(&w));
    assert_eq!(w.runs("web").len(), 1, "web runs again, once: {}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
}

fn late_lost_record(rules: impl FnOnce(&mut Rules)) -> World {
    // The simulator's N = 5 seed 36, in lock step. Node 1 owns web and
    // cannot read (its lease runs out), and web is in D state: its kill
    // fails and it publishes `lost`. Node 2 sees node 1's records 6 s late
    // (slow shared storage); node 3 sees them at once. A second later web
    // leaves D state and node 1 reads again: its kill, retried H after it
    // failed, lands and it releases. Node 2, the designated fencer, sees the `lost` record only
    // 6 s after it was written, when node 1 is healthy and released.
    let mut w = fenced(3, "web start 1,2,3\n").with_rules(rules);
    let t0 = stuck_deaf_owner(&mut w);
    w.link(1, 2, Link::Delay(6000));
    let lost = |w: &World| {
        w.nodes[&1]
            .history
            .last()
            .is_some_and(|(_, text)| Record::parse(text).is_ok_and(|r| r.lease == LeaseState::Lost))
    };
    assert!(w.run_until_cond(t0 + 5000, lost), "node 1 published `lost`: {}", dump(&w));
    w.run_until(w.t + 1000);
    w.node(1).unkillable = false;
    w.links.remove(&(2, 1));
    w.links.remove(&(3, 1));
    w.run_until(t0 + 20_000);
    w
}

#[test]
fn a_lost_record_older_than_the_lease_fences_nobody() {
    let w = late_lost_record(|_| {});
    // Its retried kill landed: it stopped saying `lost` (it released, or
    // released and took a new lease in one step).
    let states: Vec<LeaseState> = w.nodes[&1]
        .history
        .iter()
        .filter_map(|(_, text)| Record::parse(text).ok().map(|r| r.lease))
        .collect();
    assert!(
        states.contains(&LeaseState::Lost) && states.last() != Some(&LeaseState::Lost),
        "node 1 said `lost`, then no longer: {}",
        dump(&w)
    );
    assert_eq!(w.needless_fences, 0, "{}", dump(&w));
    assert!(w.fences.is_empty(), "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.runs("web").len(), 1, "web runs again, once: {}", dump(&w));
}

#[test]
fn without_dating_a_lost_record_a_released_node_is_fenced_on_its_old_word() {
    let w = late_lost_record(|r| r.lost_fence_needs_current_record = false);
    assert!(w.needless_fences > 0, "{}", dump(&w));
}

fn orphans_in_d_state(rules: impl FnOnce(&mut Rules)) -> World {
    // Seed 157's course, in lock step: node 1 owns web; its services go
    // into D state, and its monitor is killed with -9 for 1 s. Its watchdog
    // fires at the lease deadline but cannot kill them; the new monitor's
    // own status shows nothing (a fresh init machine), and the old
    // incarnation's claims are void by the lease wait. Only the orphans
    // (its executor's count) show that web still runs there.
    let mut w = fenced(3, "web start 1,2,3\n").with_rules(rules);
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.node(1).unkillable = true;
    w.kill_monitor(1, 1000);
    w.run_until(t0 + 20_000);
    w
}

#[test]
fn orphans_that_survive_the_kill_are_fenced_before_anyone_takes_over() {
    let w = orphans_in_d_state(|_| {});
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert_eq!(w.needless_fences, 0, "{}", dump(&w));
    assert_eq!(w.fences.len(), 1, "{}", dump(&w));
    assert_eq!(w.fences[0].2.node, 1, "{}", dump(&w));
    assert_eq!(w.runs("web").len(), 1, "taken over after the fence: {}", dump(&w));
}

#[test]
fn a_monitor_that_ignores_its_orphans_gives_a_double_owner() {
    let w = orphans_in_d_state(|r| r.kill_leftovers = false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
}

#[test]
fn a_lost_node_that_names_nothing_and_is_not_fenced_keeps_its_groups_down() {
    // Safe without the fence (nobody plans while it publishes `lost`), but
    // web stays where only the D-state orphans run it: not failed over.
    let w = orphans_in_d_state(|r| r.fence_any_lost = false);
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert!(w.fences.is_empty(), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1], "{}", dump(&w));
}

/// N = 2 with a fence command, `web` settled on node 2 (its test fails on
/// node 1 until then).
fn web_settled_on_node_2(rules: impl FnOnce(&mut Rules)) -> World {
    let mut w = fenced(2, "web start 2,1\n").with_rules(rules);
    w.node(1).failing_tests.insert("web".into());
    assert!(w.settle(20_000));
    assert_eq!(w.runs("web"), vec![2]);
    w.node(1).failing_tests.clear();
    w
}

fn slow_storage(rules: impl FnOnce(&mut Rules)) -> World {
    slow_storage_by(1800, rules)
}

fn slow_storage_by(delay: u64, rules: impl FnOnce(&mut Rules)) -> World {
    // N = 2, web on node 2; then every record takes 1.8 s to become
    // visible both ways (beyond the lease's budget): node 2 falls silent
    // for node 1 (the tie-breaker, quorate alone) but lives, loses its own
    // lease, and its watchdog and kill stop web; its release is seen late.
    let mut w = web_settled_on_node_2(rules);
    let t0 = w.t;
    w.link(2, 1, Link::Delay(delay));
    w.link(1, 2, Link::Delay(delay));
    w.run_until(t0 + 15_000);
    w
}

#[test]
fn a_silent_node_listed_up_is_waited_for_until_its_lease_surely_ended() {
    let w = slow_storage(|_| {});
    assert!(w.fences.is_empty(), "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert!(!w.runs("web").contains(&2), "node 2 stopped web by itself: {}", dump(&w));
}

#[test]
fn a_silent_node_fenced_before_its_lease_ended_is_shot_needlessly() {
    // Both waits off: past the silent wait, the record-age wait
    // (`must_move_fence_needs_current_record`) would hold this fence too.
    let w = slow_storage(|r| {
        r.wait_for_silent_release = false;
        r.must_move_fence_needs_current_record = false;
    });
    assert!(!w.fences.is_empty(), "{}", dump(&w));
}

/// The same, with a 3.2 s delay (the uncapped N = 2 seed 146 of the
/// simulator): node 2's release shows more than the release wait after
/// node 1's revocation, while node 2's older `holding` records keep coming.
#[test]
fn a_heard_node_whose_records_predate_its_lease_end_is_waited_for() {
    let w = slow_storage_by(3200, |_| {});
    assert!(w.t >= 15_000, "time passed: {}", dump(&w));
    assert!(w.fences.is_empty(), "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    assert!(!w.runs("web").contains(&2), "node 2 stopped web by itself: {}", dump(&w));
    assert_eq!(w.runs("web"), vec![1], "taken over on the release: {}", dump(&w));
}

#[test]
fn fencing_a_heard_node_on_its_old_holding_records_shoots_it() {
    // This harness counts a node behind links slower than H/2 as unhealthy
    // (so not a needless fence); the simulator's judge, which asks whether
    // the node is up, running and exchanging files, counted seed 146's
    // fence as needless.
    let w = slow_storage_by(3200, |r| r.must_move_fence_needs_current_record = false);
    assert_eq!(w.fences.len(), 1, "{}", dump(&w));
    assert_eq!(w.fences[0].2.node, 2, "{}", dump(&w));
}

/// N = 2, web on node 2; then node 1 (the tie-breaker, quorate alone)
/// reads nothing, its own record included (its reads time out, as with
/// the simulator's uncapped N = 2 seed 211), while node 2 reads
/// node 1 and lives. Returns the world 15 s later.
fn blind_tie_breaker(rules: impl FnOnce(&mut Rules)) -> World {
    let mut w = web_settled_on_node_2(rules);
    let t0 = w.t;
    w.link(1, 1, Link::Down);
    w.link(2, 1, Link::Down);
    w.run_until(t0 + 15_000);
    w
}

#[test]
fn a_fencer_blind_to_its_own_record_fences_nobody_listed_up() {
    let w = blind_tie_breaker(|_| {});
    assert!(w.t >= 15_000, "time passed: {}", dump(&w));
    assert!(w.fences.is_empty(), "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
    // Node 2 got no acknowledgement from node 1, lost its lease and
    // stopped web by itself.
    assert!(!w.runs("web").contains(&2), "{}", dump(&w));
}

#[test]
fn a_blind_fencer_shoots_the_node_it_cannot_read() {
    let w = blind_tie_breaker(|r| r.blind_fencer_waits = false);
    assert_eq!(w.fences.len(), 1, "{}", dump(&w));
    assert_eq!((w.fences[0].1, w.fences[0].2.node), (1, 2), "{}", dump(&w));
}

fn two_node_restart(rules: impl FnOnce(&mut Rules)) -> World {
    // Symmetric partition of a 2-node cluster: node 2 fences node 1 (the
    // tie-breaker) after the delay; node 1 reboots, still partitioned.
    let mut w = fenced(2, "web start 1,2\n").with_rules(rules);
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.isolate(1);
    w.run_until(t0 + 20_000);
    w
}

#[test]
fn two_node_partition_fails_over_by_fence_and_the_rebooted_node_waits_for_all() {
    let w = two_node_restart(|_| {});
    assert_eq!(w.fences.len(), 1, "{}", dump(&w));
    assert_eq!(w.fences[0].1, 2, "node 2 fenced node 1");
    assert!(w.nodes[&1].up, "node 1 rebooted");
    assert_eq!(w.split_leases_ms, 0, "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0);
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
}

#[test]
fn two_node_restart_without_wait_for_all_splits_the_quorum() {
    let w = two_node_restart(|r| r.wait_for_all = false);
    assert!(w.split_leases_ms > 0, "{}", dump(&w));
}

/// Node 2 fenced node 1 (the tie-breaker) across a partition; node 1
/// reboots and can read node 2 again, while node 2 cannot read node 1 yet
/// (in the simulator's N = 2 seed 1, node 2's membership source still
/// listed node 1 down for 5 s after its return). Node 2 keeps its lease on
/// its fence vote against node 1's old incarnation. Returns the world and
/// the time (ms) in which both nodes held a lease after node 1 was back:
/// neither lease rests on the other's acknowledgement then, so both
/// holding is a split quorum.
fn two_node_rejoin_seen_one_way(rules: impl FnOnce(&mut Rules)) -> (World, u64) {
    let mut w = fenced(2, "web start 1,2\n").with_rules(rules);
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.isolate(1);
    // Node 1 is back (still cut off), and node 2 holds its lease on the
    // fence vote.
    let back = |w: &World| {
        !w.fences.is_empty() && w.nodes[&1].up && w.nodes[&1].machine.is_some() && w.holding(2)
    };
    assert!(w.run_until_cond(t0 + 20_000, back), "{}", dump(&w));
    let delay = w.default_delay;
    w.link(2, 1, Link::Delay(delay));
    let t1 = w.t;
    let mut both = 0;
    while w.t < t1 + 15_000 {
        w.run_until(w.t + super::harness::TICK);
        if w.holding(1) && w.holding(2) {
            both += super::harness::TICK;
        }
    }
    (w, both)
}

#[test]
fn a_rebooted_tie_breaker_does_not_count_the_fence_vote_against_its_old_incarnation() {
    let (w, both) = two_node_rejoin_seen_one_way(|_| {});
    assert_eq!(both, 0, "{}", dump(&w));
    assert!(!w.holding(1), "node 2 never acknowledged node 1's new incarnation: {}", dump(&w));
    assert_eq!(w.fences.len(), 1, "nobody fenced node 2: {}", dump(&w));
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
}

#[test]
fn counting_the_vote_against_its_old_incarnation_a_rebooted_tie_breaker_splits_the_quorum() {
    let (w, both) = two_node_rejoin_seen_one_way(|r| r.own_restart_ends_vote = false);
    assert!(both > 0, "{}", dump(&w));
}

fn release(rules: impl FnOnce(&mut Rules)) -> World {
    // Node 1 (owner) cannot read: it loses its lease, kills web, and
    // publishes its release, which the others can read.
    let mut w = world(3, "web start 1,2,3\n").with_rules(rules);
    assert!(w.settle(10_000));
    let t0 = w.t;
    w.link(2, 1, Link::Down);
    w.link(3, 1, Link::Down);
    // Lease lost by H − δ; the release is read at once.
    w.run_until(t0 + 3000);
    w
}

#[test]
fn a_published_release_lets_others_take_over_without_waiting() {
    let w = release(|_| {});
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0);
    assert!(w.fences.is_empty());
}

#[test]
fn without_a_published_release_the_group_stays_down() {
    let w = release(|r| r.publish_release = false);
    assert!(w.runs("web").is_empty(), "{}", dump(&w));
}

fn exact_half(rules: impl FnOnce(&mut Rules)) -> World {
    // N=4, web on node 4; nodes 1 (the tie-breaker) and 4 die.
    let mut w = fenced(4, "web start 4,3\n").with_rules(rules);
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![4]);
    let t0 = w.t;
    w.crash(1, None);
    w.crash(4, None);
    w.run_until(t0 + 15_000);
    w
}

#[test]
fn an_exact_half_without_the_tie_breaker_fences_it_and_fails_over() {
    let w = exact_half(|_| {});
    let targets: Vec<u32> = w.fences.iter().map(|f| f.2.node).collect();
    assert_eq!(targets, vec![1, 4], "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![3], "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0));
}

#[test]
fn an_exact_half_without_the_tie_fence_stays_down() {
    let w = exact_half(|r| r.tie_fence = false);
    assert!(w.runs("web").is_empty(), "{}", dump(&w));
}

#[test]
fn no_failback_when_the_better_ranked_node_returns() {
    let mut w = world(3, "web start 1,2,3\n");
    assert!(w.settle(10_000));
    let t0 = w.t;
    w.crash(1, Some(5000));
    assert!(w.run_until_cond(t0 + 10_000, |w| w.runs("web") == vec![2]));
    w.run_until(t0 + 20_000);
    assert!(w.nodes[&1].up && w.holding(1), "node 1 is back with a lease");
    assert_eq!(w.runs("web"), vec![2], "a running group stays where it runs");
    assert_eq!(w.nodes[&2].starts["web"], 1);
}

#[test]
fn a_failed_test_backs_off_and_the_group_settles_elsewhere() {
    let mut w = world(3, "web start 1,2,3\n");
    w.node(1).failing_tests.insert("web".into());
    w.run_until(30_000);
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
    let failures = w.log.iter().filter(|l| l.1 == 1 && l.2.starts_with("TestFailed")).count();
    assert_eq!(failures, 1, "node 1 backs off for 10 s, then web already runs on 2: {}", dump(&w));
    assert!(w.nodes[&1].starts.is_empty(), "never started where its test fails");
}

#[test]
fn a_group_that_fails_its_test_everywhere_does_not_bounce() {
    let mut w = world(3, "web start\n");
    for id in 1..=3 {
        w.node(id).failing_tests.insert("web".into());
    }
    w.run_until(120_000);
    assert!(w.runs("web").is_empty());
    let tests = w.log.iter().filter(|l| l.2 == "tell web test").count();
    // Back-off 10 s, 20 s, 40 s, 80 s per node: at most 4 tries each in 2 min.
    assert!(tests <= 12, "{tests} tests in 2 minutes");
    assert!(tests >= 3, "every node tried: {tests}");
}

#[test]
fn an_unreadable_record_is_unknown_not_absent() {
    // Node 1 runs web; node 2 cannot read it for less than the suspicion
    // time (a torn copy, EIO): nothing moves.
    let mut w = world(3, "web start 1,2,3\n");
    assert!(w.settle(10_000));
    let t0 = w.t;
    w.link(1, 2, Link::Down);
    w.link(1, 3, Link::Down);
    w.run_until(t0 + w.params.suspect_after.0 - 100);
    w.links.clear();
    w.run_until(t0 + 10_000);
    assert_eq!(w.runs("web"), vec![1], "{}", dump(&w));
    assert_eq!(w.nodes[&1].starts["web"], 1, "never restarted");
    assert!(w.log.iter().any(|l| l.2.starts_with("Unknown")), "the reads did fail");
}

#[test]
fn clock_skew_and_drift_neither_fence_nor_mislead() {
    // Node 3's clock is hours ahead and runs 0.5 % fast: nothing happens.
    let mut w = fenced(3, "web start 1,2,3\n");
    w.node(3).clock_offset += 5 * 3600 * 1000;
    w.set_drift(3, 5000);
    w.run_until(60_000);
    assert_eq!(w.runs("web"), vec![1]);
    assert!(w.fences.is_empty(), "{}", dump(&w));
    let heartbeats = w.nodes[&3].history.len();
    assert!(heartbeats > 200, "time passed: {heartbeats} records of node 3");
}

#[test]
fn a_peer_of_another_policy_stops_all_takeover() {
    let mut w = world(5, "web start 1,2,3\n");
    assert!(w.settle(10_000));
    let t0 = w.t;
    // Node 4 is rolled back to classic: it publishes another policy.
    let history = w.nodes[&4].history.clone();
    let text = history.last().map(|h| h.1.clone()).expect("node 4 wrote");
    let mut rec = Record::parse(&text).expect("valid");
    rec.policy = "classic".into();
    rec.counter += 1_000_000;
    w.crash(4, None);
    w.node(4).history.push((t0, rec.render()));
    w.crash(1, None);
    w.run_until(t0 + 15_000);
    assert!(
        w.runs("web").is_empty(),
        "nothing taken over while a member runs classic: {}",
        dump(&w)
    );
    assert!(w.log.iter().any(|l| l.2.starts_with("Void")), "node 1's claims did become void");
}

#[test]
fn persist_before_publish_and_watchdog_deadline() {
    let params = RankedParams::default();
    let initial = Config { version: 1, members: vec![1, 2, 3], voters: Vec::new() };
    let mut m = Ranked::new(1, params.clone(), initial, None, ClStat::default(), Millis(0));
    let out = m.step(Millis(0), Input::Tick);
    assert!(
        out.commands.iter().any(|c| matches!(c, Command::Persist { version: 1, .. })),
        "{out:?}"
    );
    assert!(
        !out.commands.iter().any(|c| matches!(c, Command::WriteRecord { .. })),
        "no record before the incarnation is durable"
    );
    let out = m.step(Millis(1), Input::Persisted { version: 1 });
    assert!(out.commands.iter().any(|c| matches!(c, Command::WriteRecord { counter: 1, .. })));
    // Silence of node 2 and 3: revoked, but the revocation is published only once durable.
    // Steps every 100 ms (a longer gap would count as a resume).
    let mut persist = None;
    let mut t = 1;
    while persist.is_none() && t < 5000 {
        t += 100;
        let out = m.step(Millis(t), Input::Tick);
        persist = out.commands.iter().find_map(|c| match c {
            Command::Persist { version, state } if !state.revocations.is_empty() => {
                Some((*version, state.revocations.len()))
            }
            _ => None,
        });
    }
    assert!(t > params.suspect_after.0, "revoked after {t} ms");
    assert_eq!(persist.map(|p| p.1), Some(2));
    assert!(m.record().revocations.is_empty(), "not published before it is durable");
    let version = persist.map(|p| p.0).unwrap_or(0);
    m.step(Millis(t + 1), Input::Persisted { version });
    assert_eq!(m.record().revocations.len(), 2);
}

#[test]
fn the_watchdog_gets_the_lease_deadline_minus_delta() {
    let mut w = world(3, "web start 1,2,3\n");
    let mut seen = None;
    for _ in 0..200 {
        w.run_until(w.t + 10);
        if let Some(d) = w.nodes[&1].machine.as_ref().and_then(|m| m.lease_deadline()) {
            seen = Some(d);
            break;
        }
    }
    let deadline = seen.expect("node 1 acquired a lease");
    let wd = w.nodes[&1].watchdog.next_deadline().expect("armed");
    assert_eq!(wd, deadline.saturating_sub(w.params.kill_bound));
}

/// Three machines driven by hand: node 1 proposes dropping 3, node 3
/// proposes dropping 1, and node 2 hears node 3 first.
fn membership_race(rules: Rules) -> Vec<Config> {
    let params = RankedParams::default();
    let initial = Config { version: 1, members: vec![1, 2, 3], voters: Vec::new() };
    let mut ms: Vec<Ranked> = (1..=3)
        .map(|id| {
            let mut m = Ranked::new(
                id,
                params.clone(),
                initial.clone(),
                None,
                ClStat::default(),
                Millis(0),
            );
            m.rules = rules;
            m
        })
        .collect();
    let mut texts: Vec<Option<String>> = vec![None; 3];
    let mut pending: Vec<Vec<u64>> = vec![Vec::new(); 3];
    // Run machine i at t with input; keep its last record and persists.
    fn run(
        m: &mut Ranked,
        t: u64,
        input: Input,
        text: &mut Option<String>,
        pending: &mut Vec<u64>,
    ) {
        for c in m.step(Millis(t), input).commands {
            match c {
                Command::WriteRecord { text: s, .. } => *text = Some(s),
                Command::Persist { version, .. } => pending.push(version),
                _ => {}
            }
        }
    }
    fn confirm(
        m: &mut Ranked,
        t: u64,
        version: u64,
        text: &mut Option<String>,
        pending: &mut Vec<u64>,
    ) {
        pending.retain(|&v| v != version);
        run(m, t, Input::Persisted { version }, text, pending);
        run(m, t + 1000, Input::Tick, text, pending);
    }
    fn deliver(
        ms: &mut [Ranked],
        texts: &[Option<String>],
        from: usize,
        to: usize,
        t: u64,
        out: &mut Option<String>,
        pending: &mut Vec<u64>,
    ) {
        let Some(text) = texts[from].clone() else { return };
        let rec = Record::parse(&text).expect("valid record");
        run(
            &mut ms[to],
            t,
            Input::Read { node: from as u32 + 1, read: Read::Record(std::sync::Arc::new(rec)) },
            out,
            pending,
        );
    }
    for i in 0..3 {
        run(&mut ms[i], 0, Input::Tick, &mut texts[i], &mut pending[i]);
        let v = pending[i].clone();
        for version in v {
            confirm(&mut ms[i], 0, version, &mut texts[i], &mut pending[i]);
        }
    }
    run(&mut ms[0], 2000, Input::ProposeMembers(vec![1, 2]), &mut texts[0], &mut pending[0]);
    run(&mut ms[2], 2000, Input::ProposeMembers(vec![2, 3]), &mut texts[2], &mut pending[2]);
    for i in [0, 2] {
        let v = pending[i].clone();
        for version in v {
            confirm(&mut ms[i], 2000, version, &mut texts[i], &mut pending[i]);
        }
    }
    // Node 2 hears node 3, then node 1, before either acknowledgement of
    // its own is durable.
    let (mut t2, mut p2) = (texts[1].clone(), pending[1].clone());
    deliver(&mut ms, &texts, 2, 1, 4000, &mut t2, &mut p2);
    deliver(&mut ms, &texts, 0, 1, 4001, &mut t2, &mut p2);
    // Its first persist completes; node 3 reads node 2; then the second.
    let mut versions = p2.clone();
    versions.sort_unstable();
    for (k, version) in versions.into_iter().enumerate() {
        confirm(&mut ms[1], 5000 + 2000 * k as u64, version, &mut t2, &mut p2);
        texts[1] = t2.clone();
        let target = if k == 0 { 2 } else { 0 };
        let (mut tt, mut pp) = (texts[target].clone(), pending[target].clone());
        deliver(&mut ms, &texts, 1, target, 5500 + 2000 * k as u64, &mut tt, &mut pp);
        for version in pp.clone() {
            confirm(&mut ms[target], 5600 + 2000 * k as u64, version, &mut tt, &mut pp);
        }
        texts[target] = tt;
    }
    ms.iter().map(|m| m.config().clone()).collect()
}

fn agree(configs: &[Config]) -> bool {
    configs.iter().all(|a| configs.iter().all(|b| a.version != b.version || a.members == b.members))
}

#[test]
fn membership_changes_one_ack_per_version_never_split() {
    let configs = membership_race(Rules::default());
    assert!(agree(&configs), "{configs:?}");
    assert!(
        configs.iter().any(|c| c.version == 2),
        "the change node 2 acknowledged commits: {configs:?}"
    );
}

#[test]
fn membership_changes_acking_twice_split_the_configuration() {
    let configs = membership_race(Rules { one_change_per_version: false, ..Rules::default() });
    assert!(!agree(&configs), "{configs:?}");
}

/// Random fault schedules. Faults: crashes with reboot, monitor restarts
/// (`mosha -9`), monitor freezes, VM pauses (only with a fence command:
/// a pause defeats a process watchdog, documented), one- and two-way
/// partitions, visibility delays up to 2H, failing fences, clock drift
/// within ρ, and arbitrary clock offsets. Invariants from the process
/// table: no double owner, no needless fence.
mod random_faults {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[derive(Debug, Clone)]
    pub(super) enum Fault {
        Crash(u32, u64),
        RestartMonitor(u32),
        Freeze(u32),
        Thaw(u32),
        Pause(u32),
        Resume(u32),
        Link(u32, u32, Link),
        Unlink(u32, u32),
        FenceWorks(bool),
        Drift(u32, i64),
    }

    fn schedule(
        rng: &mut ChaCha8Rng,
        n: u32,
        fence: bool,
        links: bool,
        end: u64,
    ) -> Vec<(u64, Fault)> {
        let mut out = Vec::new();
        let mut t = 3000;
        let node = |rng: &mut ChaCha8Rng| rng.random_range(1..=n);
        while t < end - 8000 {
            let len = rng.random_range(500..6000);
            let a = node(rng);
            let mut b = node(rng);
            if b == a {
                b = a % n + 1;
            }
            let kind = rng.random_range(0..9);
            let kind = if !links && (4..=6).contains(&kind) { 8 } else { kind };
            match kind {
                0 => out.push((t, Fault::Crash(a, rng.random_range(1000..5000)))),
                1 => out.push((t, Fault::RestartMonitor(a))),
                2 => {
                    out.push((t, Fault::Freeze(a)));
                    out.push((t + len, Fault::Thaw(a)));
                }
                3 if fence => {
                    out.push((t, Fault::Pause(a)));
                    out.push((t + len, Fault::Resume(a)));
                }
                4 => {
                    out.push((t, Fault::Link(a, b, Link::Down)));
                    out.push((t + len, Fault::Unlink(a, b)));
                }
                5 => {
                    for o in 1..=n {
                        if o != a {
                            out.push((t, Fault::Link(a, o, Link::Down)));
                            out.push((t, Fault::Link(o, a, Link::Down)));
                            out.push((t + len, Fault::Unlink(a, o)));
                            out.push((t + len, Fault::Unlink(o, a)));
                        }
                    }
                }
                6 => {
                    let d = rng.random_range(0..=4000);
                    out.push((t, Fault::Link(a, b, Link::Delay(d))));
                    out.push((t + len, Fault::Unlink(a, b)));
                }
                7 if fence => {
                    out.push((t, Fault::FenceWorks(false)));
                    out.push((t + len, Fault::FenceWorks(true)));
                }
                _ => out.push((t, Fault::Drift(a, rng.random_range(-4000..=4000)))),
            }
            t += rng.random_range(200..4000);
        }
        out.sort_by_key(|(t, _)| *t);
        out
    }

    fn apply(w: &mut World, f: &Fault) {
        match *f {
            Fault::Crash(a, reboot) => w.crash(a, Some(reboot)),
            Fault::RestartMonitor(a) if w.nodes[&a].up && !w.nodes[&a].paused => {
                w.restart_monitor(a)
            }
            Fault::Freeze(a) => w.node(a).frozen = true,
            Fault::Thaw(a) => w.resume(a),
            Fault::Pause(a) => w.node(a).paused = w.nodes[&a].up,
            Fault::Resume(a) => w.resume(a),
            Fault::Link(a, b, l) => w.link(a, b, l),
            Fault::Unlink(a, b) => {
                w.links.remove(&(a, b));
            }
            Fault::FenceWorks(ok) => w.fence_works = ok,
            Fault::Drift(a, ppm) => w.set_drift(a, ppm),
            Fault::RestartMonitor(_) => {}
        }
    }

    pub(super) fn run_logged(
        seed: u64,
        n: u32,
        fence: bool,
        membership: bool,
        links: bool,
    ) -> World {
        run(seed, n, fence, membership, links)
    }

    fn run(seed: u64, n: u32, fence: bool, membership: bool, links: bool) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let params = RankedParams { fence_command: fence, ..RankedParams::default() };
        let mut w = World::new(n, params, "web start\ndb start\napp start 2\n");
        w.membership = membership;
        for id in 1..=n {
            w.node(id).clock_offset = rng.random_range(0..1_000_000);
        }
        let end = 40_000;
        let faults = schedule(&mut rng, n, fence, links, end);
        for (at, f) in &faults {
            w.run_until(*at);
            w.log.push((w.t, 0, format!("FAULT {f:?}")));
            apply(&mut w, f);
        }
        w.run_until(end);
        w
    }

    proptest! {
        // 40 cases each by default (bounded: about 20 s); RANKED_CASES=N runs
        // more. The cases are drawn from a fixed seed, so `cargo test` runs
        // the same schedules every time (a red CI run is reproducible, never
        // a coin toss); PROPTEST_RNG_SEED=S explores other schedules.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("RANKED_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(40),
            failure_persistence: None,
            rng_seed: std::env::var("PROPTEST_RNG_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(proptest::test_runner::RngSeed::Fixed(0x5eed_2026), proptest::test_runner::RngSeed::Fixed),
            ..ProptestConfig::default()
        })]

        /// Every fault kind: never two owners (judged from the process
        /// table). With a watchdog only, VM pauses are left out: a pause
        /// stops the watchdog too (documented).
        #[test]
        fn no_double_owner_under_any_fault(seed in any::<u64>(), n in 2u32..=5, fence in any::<bool>(), membership in any::<bool>()) {
            let w = run(seed, n, fence, membership, true);
            prop_assert_eq!(w.double_owner_ms, 0, "seed {} n {} fence {}\n{}", seed, n, fence, dump(&w));
        }

        /// Node faults (crashes, `mosha -9`, freezes, pauses, failing
        /// fences, drift): no needless fence. Link faults are left out: a
        /// revocation stands until the revoked node releases, so a later
        /// partition can make a healthy node lose its lease and be fenced
        /// by protocol (a known limit, see the module doc).
        #[test]
        fn no_needless_fence_under_node_faults(seed in any::<u64>(), n in 2u32..=5, fence in any::<bool>(), membership in any::<bool>()) {
            let w = run(seed, n, fence, membership, false);
            prop_assert_eq!(w.double_owner_ms, 0, "seed {} n {} fence {}\n{}", seed, n, fence, dump(&w));
            prop_assert_eq!(w.needless_fences, 0, "seed {} n {} fence {}\n{}", seed, n, fence, dump(&w));
        }
    }
}

#[test]
#[ignore = "debugging aid: RANKED_SEED=... RANKED_N=... cargo test -- --ignored replay_seed"]
fn replay_seed() {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = var("RANKED_SEED").unwrap_or(0);
    let n = var("RANKED_N").unwrap_or(3) as u32;
    let fence = var("RANKED_FENCE").unwrap_or(1) == 1;
    let membership = var("RANKED_MEMBERSHIP").unwrap_or(1) == 1;
    let links = var("RANKED_LINKS").unwrap_or(1) == 1;
    let w = random_faults::run_logged(seed, n, fence, membership, links);
    eprintln!("{}", dump(&w));
    eprintln!("double {} needless {}", w.double_owner_ms, w.needless_fences);
}

/// Failover times in the lock-step world (not the simulator): the owner of
/// `web` dies and the membership source says so at once (`detect=0`).
/// `cargo test -p clinit-engine --lib measure_failover -- --ignored --nocapture`
#[test]
#[ignore = "measurement, prints a table"]
fn measure_failover() {
    use rand::{Rng, SeedableRng};
    for fence in [true, false] {
        for n in [3u32, 5, 10] {
            let mut times = Vec::new();
            for seed in 0..30u64 {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let params = RankedParams { fence_command: fence, ..RankedParams::default() };
                let mut w = World::new(n, params, "web start\n");
                w.membership = true;
                for id in 1..=n {
                    w.node(id).clock_offset = rng.random_range(0..1_000_000);
                }
                assert!(w.settle(10_000));
                w.run_until(w.t + rng.random_range(0..1000));
                let owner = w.runs("web")[0];
                let t0 = w.t;
                w.crash(owner, Some(600_000));
                assert!(w.run_until_cond(t0 + 20_000, |w| w.runs("web").len() == 1));
                assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0));
                times.push(w.t - t0);
            }
            times.sort_unstable();
            let p50 = times[times.len() / 2];
            let max = times[times.len() - 1];
            eprintln!(
                "fence={fence} N={n}: failover p50 {p50} ms, max {max} ms over {} runs",
                times.len()
            );
        }
    }
}

/// The owner (node 1) of `web` crashes in a fenced 3-node cluster. Returns
/// the world once `web` runs again elsewhere (on node 3), and for the
/// voter other than the successor (node 2, the fencer): when it first
/// logged node 1 void (its fence landed) and when its durable state first
/// granted `web` to the successor.
fn early_claim(rules: impl FnOnce(&mut Rules)) -> (World, Vec<(u32, u64, Option<u64>)>) {
    // Node 3 is ranked before node 2, and node 2 (the lowest live holder)
    // fences: the successor is not the fencer.
    let mut w = fenced(3, "web start 1,3,2\n").with_rules(rules);
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.crash(1, Some(60_000));
    let mut granted: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    while w.t < t0 + 10_000 && w.runs("web").len() != 1 {
        let t = w.t;
        w.run_until(t + super::harness::TICK);
        for n in [2, 3] {
            let grant = w.node(n).disk.as_ref().and_then(|d| d.grants.get("web").cloned());
            if let Some(g) = grant.filter(|g| g.to.node != 1) {
                granted.entry((n, g.to.node)).or_insert(t);
            }
        }
    }
    assert_eq!(w.runs("web").len(), 1, "{}", dump(&w));
    let successor = w.runs("web")[0];
    assert_eq!((successor, w.fences[0].1), (3, 2), "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences, w.fences.len()), (0, 0, 1), "{}", dump(&w));
    let other = 5 - successor;
    let void_at = w
        .log
        .iter()
        .find(|l| l.1 == other && l.2.starts_with("Void { node: 1"))
        .map(|l| l.0)
        .expect("the other voter saw node 1 void");
    let grant_at = granted.get(&(other, successor)).copied();
    (w, vec![(other, void_at, grant_at)])
}

#[test]
fn the_successor_asks_early_and_the_other_voter_grants_in_the_step_it_sees_the_fence() {
    let (w, rows) = early_claim(|_| {});
    // Time passed: the fence took its 500 ms before anything moved.
    let (at, ..) = w.fences[0];
    let started = w.log.iter().find(|l| l.0 > at && l.2.contains("web start")).map(|l| l.0);
    assert!(started.is_some_and(|s| s >= at + w.fence_ms), "{}", dump(&w));
    for (n, void_at, grant_at) in rows {
        assert_eq!(grant_at, Some(void_at), "node {n} grants in its Void step\n{}", dump(&w));
    }
}

#[test]
fn without_the_early_claim_the_other_voter_grants_a_claim_round_later() {
    let (w, rows) = early_claim(|r| r.early_claim = false);
    for (n, void_at, grant_at) in rows {
        let grant_at = grant_at.expect("granted at last");
        assert!(grant_at > void_at, "node {n}: {grant_at} vs {void_at}\n{}", dump(&w));
    }
}

/// Seven nodes, three voters (1-3); `web` prefers the learners 6 then 7.
/// Node 6 crashes. Returns the world once `web` runs again.
fn learners(read_voters: bool) -> World {
    let params = RankedParams {
        fence_command: true,
        max_voters: 3,
        learners_read_voters: read_voters,
        ..RankedParams::default()
    };
    let mut w = World::new(7, params, "web start 6,7,4\n");
    w.membership = true;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![6], "{}", dump(&w));
    let t0 = w.t;
    w.crash(6, Some(60_000));
    assert!(w.run_until_cond(t0 + 10_000, |w| w.runs("web") == vec![7]), "{}", dump(&w));
    // The failover is the fence's time plus a few reads, not a lease wait.
    assert!(w.t - t0 <= w.fence_ms + 1_000, "{} ms\n{}", w.t - t0, dump(&w));
    w.run_until(w.t + 5_000);
    assert_eq!(w.runs("web"), vec![7], "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences, w.fences.len()), (0, 0, 1), "{}", dump(&w));
    w
}

#[test]
fn learners_read_only_the_voters_and_still_fail_over_by_the_voters_grants() {
    let mut w = learners(true);
    for learner in 4..=7 {
        // Its own record too (a node reads its own files).
        let read: Vec<u32> = w.node(learner).delivered.keys().copied().collect();
        let mut want = vec![1, 2, 3, learner];
        want.sort_unstable();
        assert_eq!(read, want, "learner {learner} read only the voters");
    }
    let voter: Vec<u32> = w.node(1).delivered.keys().copied().collect();
    assert_eq!(voter, vec![1, 2, 3, 4, 5, 6, 7], "a voter reads every member");
}

#[test]
fn learners_that_read_everyone_read_each_other() {
    let mut w = learners(false);
    let read: Vec<u32> = w.node(7).delivered.keys().copied().collect();
    assert_eq!(read, vec![1, 2, 3, 4, 5, 6, 7]);
}

fn tie_breaker_fenced_twice(rules: impl FnOnce(&mut Rules)) -> World {
    // N=4, web on node 4, ranked 4, 2, 3, 1. Node 1 (the tie-breaker) dies
    // for good while nodes 2 and 3 read each other's records only 60 s
    // late (a slow shared filesystem between them); node 4 still reads and
    // is read by both. Each of 2 and 3 hears an exact half ({2, 4} and
    // {3, 4}) and fences node 1, neither seeing the other's fence. Then
    // node 4's records go stale for both too, so each is alone with its own
    // fence of node 1: the shrunk sim seed 8185498729148515470 (slow-fs of
    // 7.3 s at N = 4, where nodes 2 and 3 both claimed with node 1's vote).
    let mut w = fenced(4, "web start 4,2,3,1\n").with_rules(rules);
    w.reboot_ms = 600_000;
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![4]);
    let t0 = w.t;
    let slow = Link::Delay(60_000);
    w.link(2, 3, slow);
    w.link(3, 2, slow);
    w.crash(1, None);
    let both = |w: &World| {
        let fencers: BTreeSet<u32> =
            w.fences.iter().filter(|f| f.2.node == 1).map(|f| f.1).collect();
        fencers == [2, 3].into()
    };
    assert!(w.run_until_cond(t0 + 10_000, both), "{}", dump(&w));
    for n in [2, 3] {
        w.link(4, n, slow);
        w.link(n, 4, slow);
    }
    w.run_until(t0 + 30_000);
    w
}

#[test]
fn a_tie_breaker_fenced_by_two_nodes_votes_for_neither_alone() {
    let w = tie_breaker_fenced_twice(|_| {});
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
    assert!(w.runs("web").len() <= 1, "{}", dump(&w));
    // One real voter and a vote are no half: neither fencer holds a lease.
    assert!(!w.holding(2) && !w.holding(3), "{}", dump(&w));
}

#[test]
fn a_tie_vote_spent_by_each_of_two_fencers_gives_a_double_owner() {
    let w = tie_breaker_fenced_twice(|r| r.tie_vote_completes_half = false);
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
}

/// Two nodes, watchdog only; `db` can run on node 2 alone (its test fails on
/// node 1). Node 1 (the tie-breaker) pauses for 11.8 s, and node 2, which
/// lost its lease meanwhile, pauses too, just before node 1 resumes, and
/// stays silent for 4.2 s after it. Node 1 revokes the silent node 2, and
/// the lease wait passes: node
/// 2's epoch is proven void. Node 2 resumes, is heard, the revocation is
/// lifted, and node 2 acquires a new lease on node 1's acknowledgements:
/// the shrunk simulator case of
/// `sim_faults::ranked_with_the_watchdog_restarts_a_group_after_two_node_pauses`.
fn two_pauses(rules: impl FnOnce(&mut Rules)) -> World {
    let mut w = world(2, "web start 1,2\ndb start 2,1\n").with_rules(rules);
    w.node(1).failing_tests.insert("db".into());
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!((w.runs("web"), w.runs("db")), (vec![1], vec![2]), "{}", dump(&w));
    let t0 = w.t;
    w.node(1).paused = true;
    w.run_until(t0 + 10_100);
    w.node(2).paused = true;
    w.run_until(t0 + 11_800);
    w.resume(1);
    // Node 2 stays silent past node 1's lease wait (in the simulator the
    // membership source kept it listed down for 7 s after it resumed).
    w.run_until(t0 + 16_000);
    w.resume(2);
    w.run_until(t0 + 40_000);
    w
}

#[test]
fn a_node_void_in_its_old_epoch_holds_claims_in_a_new_lease() {
    let w = two_pauses(|_| {});
    assert!(w.holding(2), "{}", dump(&w));
    assert_eq!(w.runs("db"), vec![2], "{}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
}

#[test]
fn without_clearing_a_void_at_the_lift_it_sticks_to_the_new_lease_and_db_stays_down() {
    let w = two_pauses(|r| r.lift_clears_void = false);
    assert!(w.holding(2), "{}", dump(&w));
    assert!(w.runs("db").is_empty(), "{}", dump(&w));
}

/// A fence command that reports success without killing its target (new-
/// user test NU9 #5): node 1 of `n` is cut off both ways, a peer fences it
/// and takes `web` over, node 1 runs on. Once the cut heals, node 1 reads
/// the fencer's record listing its running incarnation as fenced. Returns
/// the world 10 s after the heal, the heal's time, and the double-owner
/// time counted up to the heal (the lying fence's doing).
fn fenced_while_it_runs(n: u32, hactl: &str) -> (World, u64, u64) {
    let mut w = fenced(n, hactl);
    w.fence_kills = false;
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.isolate(1);
    w.run_until(t0 + 15_000);
    assert_eq!(w.fences.len(), 1, "{}", dump(&w));
    assert!(w.nodes[&1].up, "the fence killed nothing");
    let (healed, before) = (w.t, w.double_owner_ms);
    for a in 2..=n {
        w.link(1, a, Link::Delay(w.default_delay));
        w.link(a, 1, Link::Delay(w.default_delay));
    }
    w.run_until(healed + 10_000);
    (w, healed, before)
}

/// What every fenced-while-running case must show: node 1 says so once
/// (naming a fencer), kills its services at once, rejoins as incarnation
/// 2 only after the kill, never holds a lease in incarnation 1 after the
/// sighting, persists incarnation 2 before publishing it, and holds a
/// lease again, acknowledged by every peer. Returns when it saw the fence
/// and when it killed.
fn rejoined(w: &World) -> (u64, u64) {
    let said: Vec<&(u64, u32, String)> =
        w.log.iter().filter(|(_, n, l)| *n == 1 && l.starts_with("FencedWhileRunning")).collect();
    assert_eq!(said.len(), 1, "{}", dump(w));
    let fenced_at = said[0].0;
    let after = |what: &str| {
        w.log.iter().find(|(t, n, l)| *t >= fenced_at && *n == 1 && l.starts_with(what))
    };
    let killed = after("kill all").expect("a kill after the fence").0;
    assert_eq!(killed, fenced_at, "the kill comes with the sighting: {}", dump(w));
    let rejoin = after("Rejoining").unwrap_or_else(|| panic!("no rejoin: {}", dump(w)));
    assert!(killed <= rejoin.0, "{}", dump(w));
    assert!(rejoin.2.contains("fenced: 1, incarnation: 2"), "{}", rejoin.2);
    let leases_fenced = w.log.iter().filter(|(t, n, l)| {
        *n == 1 && *t >= fenced_at && *t < rejoin.0 && l.starts_with("LeaseAcquired")
    });
    assert_eq!(leases_fenced.count(), 0, "{}", dump(w));
    let m = w.nodes[&1].machine.as_ref().expect("node 1 runs");
    assert_eq!(m.incarnation(), 2, "{}", dump(w));
    assert_eq!(w.nodes[&1].disk.as_ref().map(|d| d.incarnation), Some(2));
    assert!(w.holding(1), "the new incarnation holds a lease: {}", dump(w));
    for (&id, node) in w.nodes.iter().filter(|(&id, _)| id != 1) {
        let rec = node.history.last().and_then(|(_, t)| Record::parse(t).ok()).expect("record");
        assert_eq!(rec.ack_of(1).map(|a| a.incarnation), Some(2), "node {id}: {}", dump(w));
    }
    assert_eq!(w.unpersisted_records, 0, "{}", dump(w));
    (fenced_at, killed)
}

/// Three nodes: isolated, node 1 loses its lease (a minority) and kills
/// `web`; node 2 fences it (the fence lies) and takes `web`. Healed, node 1
/// says it was fenced, once, and rejoins as incarnation 2 by itself; `web`
/// stays on node 2, never ran twice, and node 1 holds a lease again. It
/// used to stay barred in incarnation 1 until an operator restarted
/// `mosha`.
#[test]
fn a_node_fenced_while_it_runs_says_so_once_and_rejoins_as_a_new_incarnation() {
    let (w, _, _) = fenced_while_it_runs(3, "web start 1,2,3\n");
    rejoined(&w);
    assert_eq!(w.runs("web"), vec![2], "{}", dump(&w));
    assert_eq!(w.double_owner_ms, 0, "{}", dump(&w));
}

/// Two nodes: isolated, node 1 is the tie-breaker and keeps its lease and
/// `web` (an exact half); node 2 fences it (the fence lies) and runs `web`
/// too: two owners, the broken fence's doing. Healed, node 1 kills `web`
/// the moment it reads the fence, so the double owner ends there, and
/// rejoins as incarnation 2. (Its new incarnation ends the fence vote that
/// node 2's exact half rested on, so node 2 loses its lease for a moment
/// and `web` may move back to node 1, as after a restart of node 1's
/// `mosha`; it runs on one node.)
#[test]
fn a_fenced_tie_breaker_kills_its_group_at_the_sighting_and_rejoins() {
    let (w, healed, before) = fenced_while_it_runs(2, "web start 1,2\n");
    assert!(before > 0, "the lying fence made two owners: the test needs them");
    let (_, killed) = rejoined(&w);
    let after = w.double_owner_ms - before;
    assert!(after <= killed - healed + TICK, "{after} ms more: {}", dump(&w));
    assert_eq!(w.runs("web").len(), 1, "{}", dump(&w));
}

/// The rejoin waits for a confirmed kill: node 1's `web` is stuck (D
/// state: no kill ends it) when the cut comes, so its kill after the lost
/// lease is unconfirmed and it publishes `lost`. It still sees the fence,
/// but stays incarnation 1, with no lease, for as long as `web` lives; once
/// `web` can die, the retried kill is confirmed and node 1 rejoins as
/// incarnation 2.
#[test]
fn a_fenced_node_rejoins_only_once_its_kill_is_confirmed() {
    let mut w = fenced(2, "web start 1,2\n");
    w.fence_kills = false;
    assert!(w.settle(10_000));
    assert_eq!(w.runs("web"), vec![1]);
    let t0 = w.t;
    w.node(1).unkillable = true;
    w.isolate(1);
    w.run_until(t0 + 15_000);
    for (a, b) in [(1, 2), (2, 1)] {
        w.link(a, b, Link::Delay(w.default_delay));
    }
    let saw =
        |w: &World| w.log.iter().any(|(_, n, l)| *n == 1 && l.starts_with("FencedWhileRunning"));
    assert!(w.run_until_cond(t0 + 25_000, saw), "{}", dump(&w));
    w.run_until(w.t + 10_000);
    let inc = |w: &World| w.nodes[&1].machine.as_ref().map(|m| m.incarnation());
    assert_eq!(inc(&w), Some(1), "rejoined with its service alive: {}", dump(&w));
    assert!(!w.holding(1), "{}", dump(&w));
    assert!(w.nodes[&1].procs.contains("web"), "the test needs web stuck on node 1");
    assert!(!w.log.iter().any(|(_, n, l)| *n == 1 && l.starts_with("Rejoining")), "{}", dump(&w));
    let t1 = w.t;
    w.node(1).unkillable = false;
    let back = |w: &World| inc(w) == Some(2) && w.holding(1);
    // Retries back off up to 16 H (32 s).
    assert!(w.run_until_cond(t1 + 40_000, back), "{}", dump(&w));
    assert!(!w.nodes[&1].procs.contains("web"), "{}", dump(&w));
    assert_eq!(w.unpersisted_records, 0, "{}", dump(&w));
}

/// Three nodes whose records take 400 ms to show (within the lease's
/// budget of H/4); `web` ranks 1, 3, 2. Node 1's records reach the others
/// 1.6 s late until its lease runs out: they keep hearing it (its counter
/// moves), but its acknowledgements come back too late, and it kills
/// `web`. Then its records flow again: node 3 plans `web` at its rank slot
/// while node 1's lease comes back. Returns the world 10 s after the delay
/// began, and that time (ms).
fn a_lease_lapses_and_comes_back(rules: impl FnOnce(&mut Rules)) -> (World, u64) {
    let mut w = world(3, "web start 1,3,2\n").with_rules(rules);
    w.default_delay = 400;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1], "{}", dump(&w));
    w.run_until(w.t + 2_000);
    let t0 = w.t;
    w.link(1, 2, Link::Delay(1_600));
    w.link(1, 3, Link::Delay(1_600));
    let lapsed =
        |w: &World| w.log.iter().any(|l| l.0 >= t0 && l.1 == 1 && l.2.starts_with("LeaseLost"));
    assert!(w.run_until_cond(t0 + 3_000, lapsed), "{}", dump(&w));
    w.link(1, 2, Link::Delay(w.default_delay));
    w.link(1, 3, Link::Delay(w.default_delay));
    w.run_until(t0 + 10_000);
    (w, t0)
}

#[test]
fn a_node_whose_lease_lapsed_leaves_its_group_to_the_next_ranked_node() {
    let (w, t0) = a_lease_lapses_and_comes_back(|_| {});
    // Node 3 took `web` and kept it; node 1 holds its lease again.
    assert_eq!(w.runs("web"), vec![3], "{}", dump(&w));
    assert!(w.holding(1), "{}", dump(&w));
    let stops = w.log.iter().filter(|l| l.0 >= t0 && l.1 == 3 && l.2.contains("web stop")).count();
    assert_eq!(stops, 0, "node 3 never gave up its attempt: {}", dump(&w));
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
}

#[test]
fn without_yielding_the_lapsed_owner_takes_its_group_back_from_the_next_ranked_node() {
    let (w, t0) = a_lease_lapses_and_comes_back(|r| r.lease_loss_yields = false);
    // Node 1's new claim outranked node 3's attempt: node 3 stopped, and
    // `web` is back on node 1, one more restart later.
    assert_eq!(w.runs("web"), vec![1], "{}", dump(&w));
    let stops = w.log.iter().filter(|l| l.0 >= t0 && l.1 == 3 && l.2.contains("web stop")).count();
    assert!(stops > 0, "{}", dump(&w));
}

/// `votes_need_settled_config`'s shape: three members, voters {1, 2}
/// (node 3 a learner, down until booted), a fence command; `web` prefers
/// 1, then 2. Node 1, the tie-breaker, is cut off both ways: node 2, an
/// exact half without it, fences it, holds its lease on {2} + 1's fence
/// vote and takes `web`. Node 1 reboots (incarnation 2), still unread by
/// node 2, which so keeps counting the vote of incarnation 1. Node 3
/// boots; nodes 1 and 3 read each other, node 2 reads node 3 and is read
/// by it. Node 2 proposes promoting node 3; once the change is pending on
/// node 2's disk, node 2 stops reading node 3, and once node 3 committed
/// {1, 2, 3} (acknowledged by 1, 2 and 3) nobody reads node 2 either.
/// Node 2, on the old voters, holds {2} + 1's vote, a majority of {1, 2};
/// nodes 1 and 3 are a majority of {1, 2, 3}: disjoint, node 1 counted
/// on both sides, once as a vote and once for real. Then `db` (preferring
/// 2, then 3) is wanted. Returns the world 10 s after that, and that time
/// (ms).
fn a_fence_vote_across_a_voter_change(rules: impl FnOnce(&mut Rules)) -> (World, u64) {
    let mut w = fenced(3, "web start 1,2\n").with_rules(rules);
    w.membership = true;
    w.config = Config { version: 1, members: vec![1, 2, 3], voters: vec![1, 2] };
    // Node 3, never read, is listed down and fenced at once; it stays
    // down until the test boots it.
    w.node(3).restart_at = None;
    w.reboot_ms = 100_000_000;
    assert!(w.settle(10_000), "{}", dump(&w));
    assert_eq!(w.runs("web"), vec![1], "{}", dump(&w));
    w.reboot_ms = 3_000;
    let t0 = w.t;
    w.isolate(1);
    let fenced_1 = |w: &World| w.fences.iter().any(|f| f.1 == 2 && f.2.node == 1);
    assert!(w.run_until_cond(t0 + 10_000, fenced_1), "{}", dump(&w));
    let back = |w: &World| {
        w.nodes[&1].machine.as_ref().is_some_and(|m| m.incarnation() == 2)
            && w.runs("web") == vec![2]
    };
    assert!(w.run_until_cond(w.t + 10_000, back), "{}", dump(&w));
    // Node 1 is back (incarnation 2), read by node 3 and reading it, still
    // cut off from node 2; node 3 boots.
    w.links.remove(&(1, 3));
    w.links.remove(&(3, 1));
    w.node(3).restart_at = Some(w.t);
    let voters = |w: &World, id: u32| {
        w.nodes[&id].machine.as_ref().map(|m| m.config().voters().to_vec()).unwrap_or_default()
    };
    let pending = |w: &World| w.nodes[&2].disk.as_ref().is_some_and(|d| d.config_ack.is_some());
    assert!(w.run_until_cond(w.t + 20_000, pending), "{}", dump(&w));
    w.link(3, 2, Link::Down);
    assert!(w.run_until_cond(w.t + 5_000, |w| voters(w, 3) == vec![1, 2, 3]), "{}", dump(&w));
    w.isolate(2);
    assert_eq!(voters(&w, 2), vec![1, 2], "node 2 never saw the commit: {}", dump(&w));
    assert!(w.run_until_cond(w.t + 5_000, |w| voters(w, 1) == vec![1, 2, 3]), "{}", dump(&w));
    w.set_hactl("web start 1,2\ndb start 2,3,1\n");
    let t1 = w.t;
    w.run_until(t1 + 10_000);
    (w, t1)
}

#[test]
fn a_fence_vote_completes_no_half_while_the_voters_change() {
    let (w, t1) = a_fence_vote_across_a_voter_change(|_| {});
    assert_eq!((w.double_owner_ms, w.needless_fences), (0, 0), "{}", dump(&w));
    // Node 2's own proposal unsettled its configuration: it stopped
    // counting node 1's vote and lost its lease there (the rule's cost),
    // released `web` (node 3 took it), and never claimed `db`.
    let proposed = w.log.iter().find(|l| l.1 == 2 && l.2.starts_with("ChangeProposed"));
    let proposed = proposed.map(|l| l.0).unwrap_or_else(|| panic!("{}", dump(&w)));
    let lost = |l: &&(u64, u32, String)| l.1 == 2 && l.2.starts_with("LeaseLost");
    assert!(w.log.iter().filter(lost).any(|l| (proposed..t1).contains(&l.0)), "{}", dump(&w));
    assert!(!w.holding(2), "{}", dump(&w));
    let claims_db = |l: &(u64, u32, String)| l.2.starts_with("ClaimHeld { group: \"db\"");
    assert!(!w.log.iter().any(|l| l.1 == 2 && claims_db(l)), "{}", dump(&w));
    assert_eq!((w.runs("web"), w.runs("db")), (vec![3], vec![3]), "{}", dump(&w));
}

#[test]
fn a_fence_vote_during_a_voter_change_gives_a_double_owner() {
    let (w, _) = a_fence_vote_across_a_voter_change(|r| r.votes_need_settled_config = false);
    // Node 1 in both quorums: its old incarnation's fence vote on node 2,
    // its new incarnation's real grant on node 3 (9.45 s of the 10 s).
    assert!(w.double_owner_ms > 0, "{}", dump(&w));
    assert_eq!(w.runs("db"), vec![2, 3], "{}", dump(&w));
    let held = |id: u32, grantors: &str| {
        let line = format!("ClaimHeld {{ group: \"db\", grantors: {grantors} }}");
        w.log.iter().any(|l| l.1 == id && l.2 == line)
    };
    assert!(held(2, "{1, 2}") && held(3, "{1, 3}"), "{}", dump(&w));
}
