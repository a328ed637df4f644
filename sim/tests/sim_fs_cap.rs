//! `fs_delay_cap` (issue 9's availability row: "random faults whose fs
//! delays stay <= H/4") and the world options added for the availability
//! study (`drop_faults`, `fence_reboot`), judged on real runs.

use clinit_engine::monitor::ranked::RankedParams;
use clinit_engine::monitor::PolicyConfig;
use clinit_engine::time::Millis;
use clinit_sim::faults::FaultChoice;
use clinit_sim::{report, run, RunOptions, SimConfig};

/// 3 nodes, 2 groups, `ranked` with a fence command, 12 simulated
/// minutes of frequent `slow-fs` episodes of 2-4 s (plus up to half that
/// in jitter): far beyond the lease's budget (H = 2 s) unless capped.
fn slow_fs() -> SimConfig {
    let mut cfg = SimConfig {
        nodes: 3,
        groups: 2,
        duration: Millis::from_secs(12 * 60),
        policy: PolicyConfig::Ranked(RankedParams {
            fence_command: true,
            ..RankedParams::default()
        }),
        faults: FaultChoice::parse("slow-fs:size=4s:len=3m:rate=40").expect("parses"),
        ..SimConfig::default()
    };
    cfg.world.fence_kills = true;
    cfg.world.fence_delay = Millis(500);
    cfg
}

/// Under the cap at H/8 (250 ms) `ranked` keeps its leases through every
/// episode: a lease's round trip (two visibility delays, two heartbeat
/// periods, a read) fits in H - delta. Without the cap the same episodes
/// cost every group minutes. So the cap reaches the simulated filesystem
/// (the episodes' delays and their jitter).
#[test]
fn capped_fs_delays_stay_within_the_lease_budget() {
    let seed = 1;
    let uncapped = run(&slow_fs(), seed, RunOptions::default()).expect("runs");
    let mut cfg = slow_fs();
    cfg.set("fs_delay_cap", "250ms").expect("a duration");
    let capped = run(&cfg, seed, RunOptions::default()).expect("runs");
    assert!(
        !capped.schedule.faults.is_empty()
            && capped.schedule.faults.len() == uncapped.schedule.faults.len(),
        "same episodes, capped or not"
    );
    let (u, c) = (
        report::RunReport::new(&uncapped).unavailable_group_seconds,
        report::RunReport::new(&capped).unavailable_group_seconds,
    );
    assert!(u > 60.0, "uncapped slow-fs costs availability: {u} group-s");
    assert!(c < 5.0, "capped at H/8, no lease lapses: {c} group-s (uncapped: {u})");
    assert_eq!(report::RunReport::new(&capped).double_owner_seconds, 0.0);
}

/// A cap above every drawn delay changes nothing, bit for bit: old seeds
/// keep their runs.
#[test]
fn a_loose_cap_leaves_the_run_unchanged() {
    let plain = run(&slow_fs(), 2, RunOptions::default()).expect("runs");
    let mut cfg = slow_fs();
    cfg.set("fs_delay_cap", "1h").expect("a duration");
    let loose = run(&cfg, 2, RunOptions::default()).expect("runs");
    // The trace's header names the configuration (the cap included), so
    // its hash differs; every decision and every event is the same.
    let (a, b) = (plain.trace.expect("hashed"), loose.trace.expect("hashed"));
    assert_eq!(a.decisions_sha256, b.decisions_sha256);
    assert_eq!(a.records, b.records);
    assert_eq!(plain.schedule, loose.schedule);
    assert_eq!(plain.events, loose.events);
}

/// `drop_faults` removes the named kinds' episodes and keeps the others
/// exactly (an ablation on the same seed).
#[test]
fn drop_faults_removes_only_the_named_kinds() {
    let mut cfg = slow_fs();
    cfg.faults = FaultChoice::parse("slow-fs:rate=20,crash:rate=20").expect("parses");
    cfg.duration = Millis::from_secs(20 * 60);
    let all = run(&cfg, 3, RunOptions::default()).expect("runs");
    cfg.set("drop_faults", "slow-fs").expect("a kind");
    let some = run(&cfg, 3, RunOptions::default()).expect("runs");
    let crashes: Vec<_> = all
        .schedule
        .faults
        .iter()
        .filter(|f| f.fault.kind() != clinit_sim::faults::FaultKind::SlowFs)
        .cloned()
        .collect();
    assert!(!crashes.is_empty() && crashes.len() < all.schedule.faults.len());
    assert_eq!(some.schedule.faults, crashes);
    assert!(cfg.set("drop_faults", "meteor").is_err());
}

/// Issue 9's availability row at its edge: fs delays of exactly H/4
/// (500 ms with H = 2 s), all the time. A lease's round trip is two
/// visibility delays, the peers' read interval, their acknowledging
/// write, and the holder's read interval (the budget is in the `lease`
/// module's doc). A peer that waited for its next periodic heartbeat to
/// publish its acknowledgement added a third interval (2·500 + 3·250 ms >
/// H − δ = 1750 ms): on this seed leases lapsed over and over, 184.5
/// unavailable group-s and 35 moves in 12 minutes. Prompt acknowledgements
/// throttled to one record per P/2 and dropped (left to the periodic
/// record) when asked for within P/2 of the last record gave 158.7
/// group-s. Now peers are read every P/2 (not every P) and a throttled
/// prompt acknowledgement is deferred to P/2 after the last record, not
/// dropped: 0 group-s.
#[test]
fn fs_delays_of_a_quarter_lease_lapse_fewer_leases() {
    let mut cfg = slow_fs();
    cfg.faults = FaultChoice::parse("slow-fs:size=500ms:len=8m:rate=60").expect("parses");
    cfg.set("fs_delay_cap", "500ms").expect("a duration");
    let r = run(&cfg, 4, RunOptions::default()).expect("runs");
    let rep = report::RunReport::new(&r);
    assert!(!r.schedule.faults.is_empty(), "slow-fs episodes were drawn");
    let under_way = report::unavailable_by_fault(&r);
    assert!(
        rep.unavailable_group_seconds < 10.0,
        "unavailable {} group-s ({under_way:?}); 158.7 with reads every P and dropped prompt acknowledgements",
        rep.unavailable_group_seconds
    );
    assert_eq!(rep.double_owner_seconds, 0.0);
}
