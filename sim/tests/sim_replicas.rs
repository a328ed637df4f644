//! Versioned replicas (`ranked`) keep the operator's hactl edits through
//! the faults of the N = 3 sweep (issues 9 and 12). Each test is one seed
//! of `clinit-sim run --nodes 3 --groups 5 --duration 1h --faults random
//! --param fence_delay=500ms --param fence_kills=true --param
//! fs_delay_cap=500ms --param drop_faults=slow-node --policy
//! '{"policy":"ranked","fence_command":true}'` that lost an edit for good
//! (a `liveness` violation: the group the operator wants started never
//! ran again). Each checks first that the run is still the scenario (the
//! fault episodes it rests on), then that every node took the edit soon
//! after it was made, and that the run ends with the group running and
//! no invariant broken.

use clinit_engine::monitor::ranked::RankedParams;
use clinit_engine::monitor::PolicyConfig;
use clinit_engine::time::Millis;
use clinit_sim::faults::{Fault, FaultChoice, FaultKind};
use clinit_sim::invariants::LIVENESS;
use clinit_sim::world::World;
use clinit_sim::{report, RunOptions, SimConfig};

/// The sweep's setting with fs delays capped at 500 ms and no `slow-node`
/// episodes, one hour.
fn config() -> SimConfig {
    let mut cfg = SimConfig {
        nodes: 3,
        groups: 5,
        duration: Millis::from_secs(3600),
        // Three voters, as when these seeds were found: with two (the
        // default since), seed 26's run differs and two of its nodes are
        // down at the moment the edit is checked.
        policy: PolicyConfig::Ranked(RankedParams {
            fence_command: true,
            min_voters: 3,
            ..RankedParams::default()
        }),
        faults: FaultChoice::parse("random").expect("parses"),
        ..SimConfig::default()
    };
    cfg.world.fence_kills = true;
    cfg.world.fence_delay = Millis(500);
    cfg.world.fs_delay_cap = Some(Millis(500));
    cfg.world.drop_faults = vec![FaultKind::SlowNode];
    cfg
}

/// The level `group` has in the hactl each node uses (`None`: no monitor
/// running, no hactl, or no line for the group).
fn levels(w: &World, group: &str) -> Vec<Option<String>> {
    (1..=3)
        .map(|n| w.adopted_hactl(n).and_then(|h| h.get(group).map(|g| g.level.clone())))
        .collect()
}

/// Run `seed` to `check` (s) and require every node with a hactl in use
/// (at least two) to want `group` started then; run to the end and require `group` to run on one node and
/// no invariant broken. `scenario` proves the run is the one described.
fn edit_survives(seed: u64, check: u64, group: &str, scenario: impl Fn(&[Fault]) -> bool) {
    let cfg = config();
    let mut w = World::new(&cfg, seed, RunOptions::default()).expect("valid scenario");
    w.run_until(Millis::from_secs(check));
    let at_check = levels(&w, group);
    w.run_to_end();
    assert_eq!(w.now(), cfg.duration, "the run reached its end");
    let runners = w.tracker().runners(group);
    let r = w.finish(std::time::Duration::ZERO);
    let faults: Vec<Fault> = r.schedule.faults.iter().map(|f| f.fault.clone()).collect();
    assert!(scenario(&faults), "the scenario changed, the test proves nothing:\n{faults:?}");
    // A node down then (no monitor, `None`) is not asked; two are.
    let start = Some("start".to_string());
    let took = at_check.iter().filter(|l| **l == start).count();
    assert!(
        at_check.iter().all(|l| l.is_none() || *l == start) && took >= 2,
        "seed {seed} at {check} s: not every node took the operator's edit ({group} start): \
         {at_check:?}\n{}",
        report::render(&r)
    );
    assert_eq!(runners.len(), 1, "{group} runs on {runners:?} at the end\n{}", report::render(&r));
    let counts = r.tracker.counts();
    assert!(!counts.contains_key(LIVENESS), "liveness broken:\n{}", report::render(&r));
    assert!(counts.is_empty(), "invariants broken:\n{}", report::render(&r));
}

/// Seed 36: at 1753.6 s node 1 seals the operator's edit (`g03` back to
/// start) as version 7 while its copies tear (1610.9–1849.0 s): the write
/// keeps half the bytes and is answered as done. Node 1 trusted the copy
/// it meant to write and never read the torn one; its peers never adopted
/// it and stayed on version 6 (`g03 stop`), and when node 1 finally saw
/// its copy torn it took version 6 back: the edit was lost. Now node 1
/// reads its copy back after the write, writes version 7 back while the
/// disk tears, and its peers adopt it when the tearing ends.
#[test]
fn seed_36_a_torn_seal_of_the_operators_edit_is_written_back_not_lost() {
    edit_survives(36, 1_900, "g03", |faults| {
        faults.iter().any(|f| matches!(f, Fault::TornCopy { node: 1, .. }))
            && faults.iter().any(|f| {
                matches!(f, Fault::HactlEdit { node: 1, group, level, .. }
                    if group == "g03" && level == "stop")
            })
    });
}

/// Seed 26: node 2 sealed `g03 stop` as version 2 (2023.3 s); at 2122.8 s
/// the operator puts `g03` back to start in node 2's hactl, the body of
/// version 1 that a stale copy still showed. Node 2 took that stale copy
/// (no new version) and version 2 won again at the next read: `g03` never
/// ran again. Now the edit is sealed as version 3, above node 2's own last
/// version, and every node takes it.
#[test]
fn seed_26_an_edit_back_to_an_older_content_is_sealed_above_the_newer_version() {
    edit_survives(26, 2_140, "g03", |faults| {
        faults.iter().any(|f| {
            matches!(f, Fault::HactlEdit { node: 2, group, level, .. }
                if group == "g03" && level == "stop")
        })
    });
}

/// Seed 9: the operator set `g01` to stop in node 1's hactl at 160.4 s, and
/// the restore fell due at 431.9 s, while node 1 was paused (VM) and about
/// to be fenced (432.2 s). Written to node 1's copy, the restore waited for
/// node 1's monitor to seal it (a reader cannot tell a down node from a cut
/// off one, so only a copy's own node seals a hand edit), and node 1 stayed
/// down for 48 minutes: `g01` was down all that time. The simulated
/// operator, like README's, now edits a running node's copy, so every
/// running node takes the restore within seconds.
#[test]
fn seed_9_a_restore_due_while_its_node_is_down_is_made_on_a_running_node() {
    edit_survives(9, 440, "g01", |faults| {
        faults.iter().any(|f| {
            matches!(f, Fault::HactlEdit { node: 1, group, level, .. }
                if group == "g01" && level == "stop")
        }) && faults.iter().any(|f| matches!(f, Fault::NodePause { node: 1, .. }))
    });
}
