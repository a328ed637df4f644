//! The checkers are honest: known weaknesses of the 2003 original (spec
//! §10), which the `classic` policy keeps on purpose, are detected and
//! reported with seed, time and excerpt.

use clinit_engine::time::Millis;
use clinit_sim::config::Workload;
use clinit_sim::faults::FaultChoice;
use clinit_sim::invariants::{DOUBLE_OWNER, HALT_BOUND, LIVENESS};
use clinit_sim::report::RunReport;
use clinit_sim::{run, RunOptions, SimConfig};

fn scenario(faults: &str, nodes: u32, minutes: u64) -> SimConfig {
    SimConfig {
        nodes,
        groups: 3,
        duration: Millis::from_secs(minutes * 60),
        faults: FaultChoice::parse(faults).expect("plan parses"),
        ..SimConfig::default()
    }
}

/// W1: "announce plan, wait a cycle, look again" needs the shared view to
/// be fresher than a cycle. With a 20 s visibility delay, failovers (after
/// crashes) make two nodes start the same group; both run it until they
/// see each other.
#[test]
fn w1_slow_filesystem_double_start_is_detected() {
    let cfg = scenario("slow-fs:size=20s:rate=6:len=10m,crash:rate=6", 3, 40);
    let hit = (1..=40u64).find_map(|seed| {
        let r = run(&cfg, seed, RunOptions::default()).expect("valid");
        r.tracker.counts().contains_key(DOUBLE_OWNER).then_some(r)
    });
    let r = hit.expect("a 20 s fs delay produces a double start within 40 seeds");
    let rep = RunReport::new(&r);
    assert!(rep.double_owner_seconds > 0.0);
    let v = rep.violations.iter().find(|v| v.invariant == DOUBLE_OWNER).expect("recorded");
    assert_eq!(v.seed, r.seed);
    assert!(v.nodes.len() >= 2 && v.at_s > 0.0, "{v:?}");
    assert!(
        v.excerpt.iter().any(|l| l.contains("tell") && l.contains("start")),
        "{:#?}",
        v.excerpt
    );
    // The same seed with the crashes but a healthy filesystem is clean:
    // the delay is the cause.
    let clean = run(&scenario("crash:rate=6", 3, 40), r.seed, RunOptions::fast()).expect("valid");
    assert!(clean.tracker.counts().is_empty());
}

/// W4: each side of a partition sees only its own members; the majority
/// restarts the minority's groups while the minority has not yet noticed
/// its quorum loss.
#[test]
fn w4_partition_overlap_is_detected() {
    let cfg = scenario("partition:rate=6", 5, 60);
    let found = (1..=40u64).any(|seed| {
        let r = run(&cfg, seed, RunOptions::fast()).expect("valid");
        r.tracker.counts().contains_key(DOUBLE_OWNER)
    });
    assert!(found, "partitions produce double owners with classic");
}

/// The halt bound is checked: with an impossible bound (servers take
/// 100 ms to exit on SIGINT), a quorum loss is reported.
#[test]
fn halt_bound_violations_are_detected() {
    let mut cfg = scenario("partition:rate=8", 5, 60);
    cfg.world.halt_bound = Millis(1);
    let found = (1..=20u64).any(|seed| {
        let r = run(&cfg, seed, RunOptions::fast()).expect("valid");
        r.tracker.counts().contains_key(HALT_BOUND)
    });
    assert!(found);
}

/// W15: a test that never exits leaves its group "in transition" forever;
/// nobody else plans it, so it never runs: liveness is violated.
#[test]
fn w15_stuck_transition_breaks_liveness() {
    let mut cfg = scenario("none", 1, 20);
    cfg.workload = Workload::Custom {
        cltab: "web:webt:test:test:flaky 0\nweb:webr:start:wait:hang\n".into(),
        hactl: "web start\n".into(),
    };
    let r = run(&cfg, 1, RunOptions::default()).expect("valid");
    assert!(r.tracker.counts().contains_key(LIVENESS), "{}", clinit_sim::report::render(&r));
}

/// W10: hactl replication is last-writer-wins on whole files. Two operator
/// edits on different nodes close together lose one of them: an undo of
/// "stop" is overwritten by a newer copy that still says stop, and the
/// group never comes back. The checker follows the operator's intent.
#[test]
fn w10_concurrent_hactl_edits_lose_an_update() {
    let cfg = SimConfig { groups: 4, ..scenario("hactl-edit:rate=6", 3, 60) };
    let r = (1..=60u64)
        .map(|seed| run(&cfg, seed, RunOptions::default()).expect("valid"))
        .find(|r| r.tracker.counts().contains_key(LIVENESS))
        .expect("a lost hactl update within 60 seeds");
    let v = r.tracker.violations().iter().find(|v| v.invariant == LIVENESS).expect("kept");
    assert!(v.detail.contains("operator wants start"), "{v:?}");
    assert!(v.excerpt.iter().any(|l| l.contains("operator edits hactl")), "{:#?}", v.excerpt);
}
