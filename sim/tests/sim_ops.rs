//! Cluster operations (issue 12) in the simulator, under `ranked`, with
//! the production cluster loop:
//!
//! * `standby`: the operator puts the owner of `web` in standby (a
//!   scheduled [`Fault::Standby`], a hand edit of that node's hactl): `web`
//!   moves to another node, never back while the standby lasts, and no
//!   ground-truth invariant breaks; once standby is off, `web` stays where
//!   it runs, and the node takes groups again (it gets `web` when the
//!   others cannot have it);
//! * `hactl-edit` under a clock an hour fast: the skewed node's restore of
//!   an edit carries a future mtime; a later edit on another node still
//!   wins, because versions decide, not mtimes;
//! * `hactl-tie`: two nodes' hactl copies differ with one mtime; under
//!   `ranked` every node ends on one content, under `classic` they do not;
//! * `hactl-cut`: a node's hactl loses its second half; under `ranked` the
//!   cut copy is never adopted (no group stops anywhere) and the node takes
//!   the best complete copy back; under `classic` a group stops everywhere;
//! * `editor-write`: an editor's write in place is caught half-way for
//!   1.9 s; under `ranked` the half is never adopted and the whole file is
//!   sealed only once it has stayed unchanged for the 2 s settle time;
//!   under `classic` the half is adopted;
//! * each replica kind drawn at random under `ranked`: every node ends
//!   with one adopted hactl and one sealed file.
//!
//! The replica scenarios watch the nodes while they run ([`World`] stepped
//! every 50 ms): what each node's monitor has adopted, and each node's own
//! file.

use clinit_engine::hactl::Hactl;
use clinit_engine::monitor::ranked::RankedParams;
use clinit_engine::monitor::replica_version::{self, Seal};
use clinit_engine::monitor::PolicyConfig;
use clinit_engine::time::Millis;
use clinit_sim::config::Workload;
use clinit_sim::faults::{Fault, FaultChoice, FaultKind, Schedule, Scheduled};
use clinit_sim::world::World;
use clinit_sim::{report, run, RunOptions, SimConfig};
use std::sync::Arc;

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

/// Standby on and off: the owner `a` of `web` is in standby from 60 s to
/// 120 s. `web` moves to another node `b`, and stays there once standby
/// is off (no failback), through 160 s. Then the third node goes into
/// standby (165 s) and `b` crashes (180 s): the only node left to take
/// `web` is `a`, out of standby, and it does.
#[test]
fn standby_off_leaves_the_group_where_it_runs_and_the_node_takes_groups_again() {
    let calm = run(&ranked("web start\n", 4, vec![]), 1, RunOptions::default()).expect("valid");
    let [a] = calm.tracker.runners("web")[..] else {
        panic!("web not on one node\n{}", report::render(&calm))
    };
    let on_off = || (60, Fault::Standby { node: a, len: Millis::from_secs(60) });
    // Where web runs after the standby (the same seed, the same run up to
    // the later faults).
    let cfg = ranked("web start\n", 6, vec![on_off()]);
    let mut w = World::new(&cfg, 1, RunOptions::default()).expect("valid");
    w.run_until(Millis::from_secs(160));
    let [b] = w.tracker().runners("web")[..] else {
        panic!("web not on one node at 160 s: {:?}", w.tracker().runners("web"))
    };
    assert_ne!(b, a, "web moved off the standby node");
    let c = (1..=3).find(|&n| n != a && n != b).expect("a third node");

    let faults = vec![
        on_off(),
        (165, Fault::Standby { node: c, len: Millis::from_secs(3600) }),
        (180, Fault::Crash { node: b, down: Millis::from_secs(3600) }),
    ];
    let cfg = ranked("web start\n", 6, faults);
    let mut w = World::new(&cfg, 1, RunOptions::default()).expect("valid");
    let mut owners = Vec::new();
    watch(&mut w, Millis::from_secs(125), Millis::from_secs(160), |w| {
        owners.push(w.tracker().runners("web"));
    });
    assert!(owners.iter().all(|o| *o == [b]), "web moved back or stopped after standby off");
    let no_standby = (1..=3).all(|n| {
        w.hactl_file(n).is_some_and(|f| !String::from_utf8_lossy(&f).contains("#@standby"))
    });
    assert!(no_standby, "standby off replicated to every node by 160 s");
    w.run_to_end();
    let r = w.finish(std::time::Duration::ZERO);
    assert!(r.tracker.violations().is_empty(), "{}", report::render(&r));
    assert_eq!(r.tracker.runners("web"), [a], "node {a} takes web again\n{}", report::render(&r));
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

/// Two groups: a cut at the file's middle drops `web` and keeps `db`.
const CLTAB2: &str = "db:dbt:test:test:exit 0\ndb:dbr:start:respawn:run\n\
                      web:webt:test:test:exit 0\nweb:webr:start:respawn:run\n";
const HACTL2: &str = "db start\nweb start\n";

/// The same scenario under `classic` (the original's mtime rule).
fn classic(mut cfg: SimConfig) -> SimConfig {
    cfg.policy = PolicyConfig::default();
    cfg.world.fence_kills = false;
    cfg
}

/// Step `world` every 50 ms over `[from, to]`, calling `look` at each step.
fn watch(world: &mut World, from: Millis, to: Millis, mut look: impl FnMut(&World)) {
    let mut t = from;
    while t <= to {
        world.run_until(t);
        look(world);
        t = t + Millis(50);
    }
}

/// Every node's adopted hactl (`None`: none usable).
fn adopted(world: &World) -> Vec<Option<Arc<Hactl>>> {
    (1..=3).map(|n| world.adopted_hactl(n)).collect()
}

/// Nodes 1 and 2 name themselves as `web`'s preferred node in their own
/// hactl at 150 s, with one mtime. `ranked` seals both as the same version
/// number and the content-hash tie-break picks one for every node;
/// `classic` keeps each node's own copy on a tie (node 3 takes the first of
/// its list), so the nodes never agree.
#[test]
fn equal_mtimes_converge_under_ranked_but_not_classic() {
    let tie = || vec![(150, Fault::HactlTie { a: 1, b: 2, group: "web".into() })];
    let cfg = ranked("web start\n", 5, tie());
    let mut w = World::new(&cfg, 1, RunOptions::default()).expect("valid");
    w.run_to_end();
    assert_eq!(w.now(), cfg.duration, "the run reached its end");
    let views = adopted(&w);
    let first = views[0].clone().expect("node 1 has an adopted hactl");
    let preferred = first.get("web").map(|g| g.preferred.clone());
    assert!(
        preferred == Some(vec![1]) || preferred == Some(vec![2]),
        "one of the two edits wins: {first:?}"
    );
    for (n, view) in views.iter().enumerate() {
        assert_eq!(view.as_ref(), Some(&first), "node {} adopted another hactl", n + 1);
    }
    // The files themselves converge too (one sealed copy everywhere).
    let file = w.hactl_file(1).expect("node 1 has a file");
    assert!(matches!(replica_version::classify(&file), Seal::Sealed(_)), "{file:?}");
    for n in 2..=3 {
        assert_eq!(w.hactl_file(n), Some(file.clone()), "node {n}'s file differs");
    }
    let r = w.finish(std::time::Duration::ZERO);
    assert!(r.tracker.violations().is_empty(), "{}", report::render(&r));

    let cfg = classic(ranked("web start\n", 5, tie()));
    let mut w = World::new(&cfg, 1, RunOptions::default()).expect("valid");
    w.run_to_end();
    assert_eq!(w.now(), cfg.duration, "the run reached its end");
    let views = adopted(&w);
    assert!(views.iter().all(Option::is_some), "every node has a hactl: {views:?}");
    assert!(
        views.iter().any(|v| v != &views[0]),
        "classic converged on a tie of mtimes? {views:?}"
    );
}

/// Node 2's hactl loses its second half at 150 s (after the warm-up, so
/// availability counts). Under `ranked` the cut copy is never adopted: no
/// node drops `web`, `web` is never unavailable, and node 2's file is the
/// best complete copy again. Under `classic` the cut copy is the newest,
/// replicates, and `web` stops cluster-wide.
#[test]
fn a_cut_hactl_is_never_adopted_under_ranked() {
    let cut = || vec![(150, Fault::HactlCut { node: 2 })];
    let scenario = || {
        let mut cfg = ranked(HACTL2, 5, cut());
        cfg.groups = 2;
        cfg.workload = Workload::Custom { cltab: CLTAB2.into(), hactl: HACTL2.into() };
        cfg
    };
    let cfg = scenario();
    let mut w = World::new(&cfg, 1, RunOptions::default()).expect("valid");
    let (mut steps, mut dropped) = (0, Vec::new());
    watch(&mut w, Millis::from_secs(149), Millis::from_secs(170), |w| {
        steps += 1;
        for (n, view) in adopted(w).iter().enumerate() {
            if view.as_ref().is_some_and(|h| h.get("web").is_none()) {
                dropped.push((w.now(), n + 1));
            }
        }
    });
    assert!(steps > 400, "the watch stepped through 21 s ({steps} steps)");
    assert!(dropped.is_empty(), "a node adopted the cut copy: {dropped:?}");
    w.run_to_end();
    let file = w.hactl_file(2).expect("node 2 has a file");
    assert!(
        matches!(replica_version::classify(&file), Seal::Sealed(_)),
        "node 2 took a complete copy back: {:?}",
        String::from_utf8_lossy(&file)
    );
    assert_eq!(w.hactl_file(1), Some(file), "node 2's copy is node 1's");
    let r = w.finish(std::time::Duration::ZERO);
    assert!(r.tracker.violations().is_empty(), "{}", report::render(&r));
    assert!(r.tracker.log_tail(10_000).iter().any(|l| l.contains("hactl CUT")), "the cut ran");
    assert_eq!(r.tracker.metrics.unavailable, vec![Millis::ZERO; 2], "{}", report::render(&r));
    assert_eq!(r.tracker.runners("web").len(), 1, "{}", report::render(&r));

    let r = run(&classic(scenario()), 1, RunOptions::default()).expect("valid");
    eprintln!("classic: web unavailable for {}", r.tracker.metrics.unavailable[1]);
    assert!(r.tracker.runners("web").is_empty(), "classic kept web?\n{}", report::render(&r));
    assert!(
        r.tracker.metrics.unavailable[1] > Millis::from_secs(60),
        "web stopped cluster-wide under classic\n{}",
        report::render(&r)
    );
}

/// An editor rewrites node 2's hactl in place at 150 s (seal line deleted,
/// a comment added): the first half (`db` only) stands for 1.9 s, then the
/// whole file lands. Under `ranked` no node ever adopts the half, and node
/// 2 seals the whole file only once it has been unchanged for 2 s. Under
/// `classic` the half is the newest copy and is adopted.
#[test]
fn an_editor_write_caught_half_way_is_not_adopted_under_ranked() {
    let edit = || vec![(150, Fault::EditorWrite { node: 2, len: Millis(1_900) })];
    let scenario = || {
        let mut cfg = ranked(HACTL2, 4, edit());
        cfg.groups = 2;
        cfg.workload = Workload::Custom { cltab: CLTAB2.into(), hactl: HACTL2.into() };
        cfg
    };
    let landed = Millis(151_900);
    let cfg = scenario();
    let mut w = World::new(&cfg, 1, RunOptions::default()).expect("valid");
    let (mut steps, mut half_adopted, mut sealed_at) = (0, Vec::new(), None);
    watch(&mut w, Millis::from_secs(149), Millis::from_secs(165), |w| {
        steps += 1;
        for (n, view) in adopted(w).iter().enumerate() {
            if view.as_ref().is_some_and(|h| h.get("web").is_none()) {
                half_adopted.push((w.now(), n + 1));
            }
        }
        let file = w.hactl_file(2).unwrap_or_else(|| Arc::from(&b""[..]));
        let edited = replica_version::body(&file).ends_with(b"# edited by hand (episode 0)\n");
        if sealed_at.is_none()
            && edited
            && matches!(replica_version::classify(&file), Seal::Sealed(_))
        {
            sealed_at = Some(w.now());
        }
    });
    assert!(steps > 300, "the watch stepped through 16 s ({steps} steps)");
    assert!(half_adopted.is_empty(), "the half-written file was adopted: {half_adopted:?}");
    let sealed_at = sealed_at.expect("node 2 sealed the editor's file within 13 s of landing");
    eprintln!("ranked: the editor's file landed at {landed}, node 2 sealed it at {sealed_at}");
    assert!(
        sealed_at >= landed + replica_version::SETTLE,
        "sealed at {sealed_at}, before the file stayed unchanged for 2 s (landed at {landed})"
    );
    w.run_to_end();
    let file = w.hactl_file(2).expect("node 2 has a file");
    for n in [1, 3] {
        assert_eq!(w.hactl_file(n), Some(file.clone()), "node {n} took the edit");
    }
    let r = w.finish(std::time::Duration::ZERO);
    assert!(r.tracker.violations().is_empty(), "{}", report::render(&r));

    let cfg = classic(scenario());
    let mut w = World::new(&cfg, 1, RunOptions::default()).expect("valid");
    let mut half_adopted = Vec::new();
    watch(&mut w, Millis::from_secs(149), Millis::from_secs(165), |w| {
        for (n, view) in adopted(w).iter().enumerate() {
            if view.as_ref().is_some_and(|h| h.get("web").is_none()) {
                half_adopted.push((w.now(), n + 1));
            }
        }
    });
    assert!(!half_adopted.is_empty(), "classic never adopted the half-written file");
}

/// Each replica kind drawn at random (60 episodes an hour, 3 nodes, 2
/// groups, 10 min of which the last 2 quiet, seeds 1–4) under `ranked`: no invariant breaks, and at
/// the end every node has adopted one hactl and holds one complete sealed
/// file.
#[test]
fn replica_kinds_leave_one_sealed_hactl_everywhere_under_ranked() {
    for kind in [FaultKind::HactlTie, FaultKind::HactlCut, FaultKind::EditorWrite] {
        for seed in 1..=4 {
            let mut cfg = SimConfig {
                nodes: 3,
                groups: 2,
                duration: Millis::from_secs(10 * 60),
                policy: PolicyConfig::Ranked(RankedParams {
                    fence_command: true,
                    ..RankedParams::default()
                }),
                faults: FaultChoice::parse(&format!("{}:rate=60", kind.name())).expect("parses"),
                ..SimConfig::default()
            };
            cfg.world.fence_kills = true;
            // Faults from 2 min (warm-up) to 8 min, then a 2 min quiet phase.
            cfg.world.quiet = Some(Millis::from_secs(120));
            let mut w = World::new(&cfg, seed, RunOptions::default()).expect("valid");
            w.run_to_end();
            let views = adopted(&w);
            let files: Vec<_> = (1..=3).map(|n| w.hactl_file(n)).collect();
            let r = w.finish(std::time::Duration::ZERO);
            let episodes = r.schedule.faults.iter().filter(|f| f.fault.kind() == kind).count();
            assert!(episodes > 0, "{kind} seed {seed}: no episode drawn");
            assert!(
                r.tracker.violations().is_empty(),
                "{kind} seed {seed}\n{}",
                report::render(&r)
            );
            assert!(views[0].is_some(), "{kind} seed {seed}: node 1 has no hactl");
            assert!(views.iter().all(|v| v == &views[0]), "{kind} seed {seed}: {views:?}");
            let file = files[0].clone().expect("node 1 has a file");
            assert!(
                matches!(replica_version::classify(&file), Seal::Sealed(_)),
                "{kind} seed {seed}: {:?}",
                String::from_utf8_lossy(&file)
            );
            assert!(
                files.iter().all(|f| f.as_ref() == Some(&file)),
                "{kind} seed {seed}: {files:?}"
            );
        }
    }
}
