//! Cluster operations (issue 12) in the simulator, under `ranked`, with
//! the production cluster loop:
//!
//! * `standby`: the operator puts the owner of `web` in standby (a
//!   scheduled [`Fault::Standby`], a hand edit of that node's hactl): `web`
//!   moves to another node, never back while the standby lasts, and no
//!   ground-truth invariant breaks;
//! * `hactl-edit` under a clock an hour fast: the skewed node's restore of
//!   an edit carries a future mtime; a later edit on another node still
//!   wins, because versions decide, not mtimes.

use clinit_engine::monitor::ranked::RankedParams;
use clinit_engine::monitor::PolicyConfig;
use clinit_engine::time::Millis;
use clinit_sim::config::Workload;
use clinit_sim::faults::{Fault, FaultChoice, Schedule, Scheduled};
use clinit_sim::{report, run, RunOptions, SimConfig};

const CLTAB: &str = "web:webt:test:test:exit 0\nweb:webr:start:respawn:run\n";

fn ranked(hactl: &str, minutes: u64, faults: Vec<(u64, Fault)>) -> SimConfig {
    let faults: Vec<Scheduled> = faults
        .into_iter()
        .map(|(at, fault)| Scheduled { at: Millis::from_secs(at), fault })
        .collect();
    let mut schedule = Schedule { kinds: Vec::new(), faults };
    schedule.refresh_kinds();
    let mut cfg = SimConfig {
        nodes: 3,
        groups: 1,
        duration: Millis::from_secs(minutes * 60),
        policy: PolicyConfig::Ranked(RankedParams {
            fence_command: true,
            ..RankedParams::default()
        }),
        faults: FaultChoice::None,
        schedule: Some(schedule),
        workload: Workload::Custom { cltab: CLTAB.into(), hactl: hactl.into() },
        ..SimConfig::default()
    };
    cfg.world.fence_kills = true;
    // No quiet phase to speak of: the standby lasts to the end.
    cfg.world.quiet = Some(Millis(1));
    cfg
}

#[test]
fn standby_moves_the_group_off_the_node_and_keeps_it_off() {
    // Where web runs without standby (the same seed places it the same way
    // until the standby at 60 s).
    let calm = run(&ranked("web start\n", 4, vec![]), 1, RunOptions::default()).expect("valid");
    let [owner] = calm.tracker.runners("web")[..] else {
        panic!("web not on one node\n{}", report::render(&calm))
    };
    let standby = Fault::Standby { node: owner, len: Millis::from_secs(3600) };
    let r = run(&ranked("web start\n", 4, vec![(60, standby)]), 1, RunOptions::default())
        .expect("valid");
    assert!(r.tracker.violations().is_empty(), "{}", report::render(&r));
    let runners = r.tracker.runners("web");
    assert_eq!(runners.len(), 1, "{}", report::render(&r));
    assert_ne!(runners[0], owner, "web still on the standby node\n{}", report::render(&r));
    assert_eq!(calm.tracker.metrics.moves, 0);
    assert!(r.tracker.metrics.moves >= 1, "{}", report::render(&r));
}

/// Node 3's clock runs an hour fast. The operator stops `web` on node 3
/// and starts it again there 30 s later: that copy's mtime lies an hour
/// ahead. Then the operator stops `web` on node 1. Under `classic` the
/// future copy is the newest and undoes the stop; under `ranked` the stop
/// is the highest version and holds.
#[test]
fn a_future_mtime_does_not_undo_a_later_edit_under_ranked() {
    let faults = || {
        vec![
            (5, Fault::Skew { node: 3, offset: 3_600_000 }),
            (
                30,
                Fault::HactlEdit {
                    node: 3,
                    group: "web".into(),
                    level: "stop".into(),
                    len: Millis::from_secs(30),
                },
            ),
            (
                120,
                Fault::HactlEdit {
                    node: 1,
                    group: "web".into(),
                    level: "stop".into(),
                    len: Millis::from_secs(3600),
                },
            ),
        ]
    };
    let r = run(&ranked("web start\n", 4, faults()), 1, RunOptions::default()).expect("valid");
    assert!(r.tracker.runners("web").is_empty(), "web runs again\n{}", report::render(&r));
    let mut classic = ranked("web start\n", 4, faults());
    classic.policy = PolicyConfig::default();
    classic.world.fence_kills = false;
    let c = run(&classic, 1, RunOptions::default()).expect("valid");
    assert!(!c.tracker.runners("web").is_empty(), "classic kept the stop?\n{}", report::render(&c));
}
