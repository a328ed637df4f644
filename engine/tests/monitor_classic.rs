//! The HA monitor driven through its public API: stale detection and
//! fencing (t/1064), unreadable clstats, quorum loss, and a small
//! multi-node scenario whose transcript is snapshotted (three production
//! cluster drivers on the engine's in-memory executor).

use clinit_engine::cluster::lab::Lab;
use clinit_engine::cluster::{ClusterConfig, ClusterEvent, Event};
use clinit_engine::hactl::Hactl;
use clinit_engine::monitor::{
    Action, AnyPolicy, Monitor, NodeStatus, Notice, Observation, PolicyConfig,
};
use clinit_engine::status::ClStat;
use clinit_engine::Millis;
use std::collections::BTreeMap;
use std::sync::Arc;

const DAY: Millis = Millis::from_secs(86_400);

fn clstat(text: &str) -> ClStat {
    let lines: Vec<String> =
        text.split(',').map(|l| format!("Cluster::Init::Group {}", l.trim())).collect();
    ClStat::parse(&lines.join("\n"))
}

fn fixture_hactl() -> Hactl {
    let text = "foo start\nbar 2\nbaz start\npln start\nbad start\nnew start\n";
    Hactl::parse(text, "hactl").expect("fixture hactl parses")
}

fn read(text: &str, age: Millis) -> NodeStatus {
    NodeStatus::Read { clstat: std::sync::Arc::new(clstat(text)), age }
}

fn obs(now: Millis, me: u32, members: &[u32], nodes: Vec<(u32, NodeStatus)>) -> Observation {
    Observation {
        now,
        me,
        members: members.to_vec(),
        nodes: nodes.into_iter().collect(),
        hactl: Some(Arc::new(fixture_hactl())),
    }
}

fn fences(actions: &[Action]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Fence { node } => Some(*node),
            _ => None,
        })
        .collect()
}

fn tells(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Tell { group, level } => Some(format!("{group} {level}")),
            _ => None,
        })
        .collect()
}

fn notices(actions: &[Action]) -> Vec<&Notice> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// The fixture as node 1 sees it at `now`: node 1's and node 2's clstats
/// are decades old (ages given), node 3 has none, node 4 is not a member.
fn fixture_obs(now: Millis, age2: Millis) -> Observation {
    obs(
        now,
        1,
        &[1, 2, 3],
        vec![
            (1, read("foo start DONE, bar start DONE, del start DONE, pln plan DONE, bad test FAILED", DAY)),
            (2, read("foo stop DONE, bar stop RUNNING, baz test PASSED", age2)),
            (3, NodeStatus::Missing),
            (4, read("x start DONE", DAY)),
        ],
    )
}

/// t/1064stomith.t (past the grace period, as the test calls stomscan
/// directly): only node 2 is shot; after node 2's clstat is touched, nobody.
#[test]
fn t1064_stale_detection() {
    let mut m = Monitor::new(PolicyConfig::default(), 1, Millis::ZERO);
    let step = m.step(&fixture_obs(Millis::from_secs(200), DAY));
    assert_eq!(fences(&step.actions), vec![2]);
    assert!(notices(&step.actions).contains(&&Notice::Stale { node: 2, age: DAY }));
    let step = m.step(&fixture_obs(Millis::from_secs(201), Millis::ZERO));
    assert_eq!(fences(&step.actions), Vec::<u32>::new());
    assert!(notices(&step.actions).contains(&&Notice::StaleEnded { node: 2 }));
}

/// Fencing fires once per stale episode, not every cycle; a fresh reading
/// or leaving membership ends the episode.
#[test]
fn fence_once_per_episode() {
    let mut m = Monitor::new(PolicyConfig::default(), 1, Millis::ZERO);
    let mut fenced_at = Vec::new();
    let mut record = |m: &mut Monitor, t: u64, o: Observation| {
        let step = m.step(&o);
        for node in fences(&step.actions) {
            fenced_at.push((t, node));
        }
    };
    // Stale from t=100 (inside the grace period: deferred), fenced once
    // after 120 s, fresh at 200, stale again at 210.
    for t in (100..200).step_by(10) {
        record(&mut m, t, fixture_obs(Millis::from_secs(t), DAY));
    }
    record(&mut m, 200, fixture_obs(Millis::from_secs(200), Millis::ZERO));
    for t in (210..260).step_by(10) {
        record(&mut m, t, fixture_obs(Millis::from_secs(t), DAY));
    }
    // Node 2 leaves membership and comes back, still stale: a new episode.
    let gone = obs(Millis::from_secs(260), 1, &[1, 3], vec![(3, NodeStatus::Missing)]);
    record(&mut m, 260, gone);
    record(&mut m, 270, fixture_obs(Millis::from_secs(270), DAY));
    record(&mut m, 280, fixture_obs(Millis::from_secs(280), DAY));
    // An unreadable clstat neither starts nor ends an episode.
    let mut blind = fixture_obs(Millis::from_secs(290), DAY);
    blind.nodes.insert(2, NodeStatus::Unreadable { reason: "EIO".into() });
    record(&mut m, 290, blind);
    record(&mut m, 300, fixture_obs(Millis::from_secs(300), DAY));
    assert_eq!(fenced_at, vec![(130, 2), (210, 2), (270, 2)]);
}

/// An unreadable member is unknown, not "not running": its last good copy
/// stands in; without one, nothing is planned.
#[test]
fn unreadable_is_unknown() {
    let hactl = Arc::new(Hactl::parse("web start\n", "hactl").expect("parses"));
    let at = |t: u64, node2: NodeStatus| Observation {
        now: Millis::from_secs(t),
        me: 1,
        members: vec![1, 2],
        nodes: [(1, read("", Millis::ZERO)), (2, node2)].into_iter().collect(),
        hactl: Some(hactl.clone()),
    };
    let eio = || NodeStatus::Unreadable { reason: "EIO".into() };

    // No copy ever read: web looks unplaced, but node 2 is blind.
    let mut m = Monitor::new(PolicyConfig::default(), 7, Millis::ZERO);
    let step = m.step(&at(1, eio()));
    assert!(tells(&step.actions).is_empty());
    let n = notices(&step.actions);
    assert!(n.contains(&&Notice::PlanSuppressed { group: "web".into(), blind: vec![2] }));
    assert!(n.contains(&&Notice::Unreadable {
        node: 2,
        reason: "EIO".into(),
        last_good_used: false
    }));

    // Node 2 was seen running web; then its clstat becomes unreadable.
    let mut m = Monitor::new(PolicyConfig::default(), 7, Millis::ZERO);
    m.step(&at(1, read("web start DONE", Millis::ZERO)));
    let step = m.step(&at(2, eio()));
    assert!(tells(&step.actions).is_empty());
    let Some(Action::WriteHastat(h)) =
        step.actions.iter().find(|a| matches!(a, Action::WriteHastat(_)))
    else {
        panic!("no hastat written");
    };
    assert_eq!(h.nodes_of("web"), vec![2]);
    assert!(h.unknown.get(&2).is_some_and(|u| u.last_good_used));

    // A missing file still means "runs nothing" (as the original): plan.
    let step = m.step(&at(3, NodeStatus::Missing));
    assert_eq!(tells(&step.actions), vec!["web plan"]); // 2 members: coin always ≤ 1.5

    // A member the driver did not report is treated as unreadable.
    let mut o = at(4, NodeStatus::Missing);
    o.nodes.remove(&2);
    let step = m.step(&o);
    assert!(
        notices(&step.actions).iter().any(|n| matches!(n,
        Notice::Unreadable { node: 2, reason, last_good_used: false } if reason == "not observed"))
    );
}

/// Quorum loss: log the visible nodes, halt everything, sleep 30 s.
#[test]
fn quorum_loss_halts_and_sleeps_30s() {
    let mut m = Monitor::new(PolicyConfig::default(), 1, Millis::ZERO);
    let members: Vec<u32> = (1..=5).collect();
    let nodes = members.iter().map(|&n| (n, NodeStatus::Missing)).collect();
    m.step(&obs(Millis::from_secs(1), 1, &members, nodes));
    let missing = vec![(1, NodeStatus::Missing), (2, NodeStatus::Missing)];
    let step = m.step(&obs(Millis::from_secs(3), 1, &[1, 2], missing));
    assert_eq!(
        step.actions,
        vec![
            Action::Log(Notice::QuorumLost { me: 1, visible: vec![1, 2], reference: 5 }),
            Action::HaltAll,
        ]
    );
    assert_eq!(step.next_wakeup, Millis::from_secs(33));
    assert_eq!(m.next_wakeup(), Millis::from_secs(33));
}

/// No hactl at all (the original died): decide nothing about groups.
#[test]
fn no_hactl_decides_nothing() {
    let mut m = Monitor::new(PolicyConfig::default(), 1, Millis::ZERO);
    let mut o = fixture_obs(Millis::from_secs(1), Millis::ZERO);
    o.hactl = None;
    let step = m.step(&o);
    assert!(tells(&step.actions).is_empty());
    assert!(notices(&step.actions).contains(&&Notice::NoHactl));
    assert_eq!(step.next_wakeup, Millis::from_secs(2)); // cycletime 1 s
}

/// Three production cluster drivers (init machine, monitor, read phase,
/// replication) run by the engine's in-memory executor: the same cluster
/// loop `mosha` and the simulator execute, not a re-implementation of it.
struct World {
    lab: Lab,
}

const CLTAB: &str = "db:d1:start:respawn:serve db\nmail:m1:start:respawn:serve mail\nweb:w1:start:respawn:serve web\n";

impl World {
    fn new(nodes: u32, seed: u64) -> World {
        let mut lab = Lab::new();
        for n in 1..=nodes {
            // Nodes boot 700 ms apart, as real ones do.
            lab.run_until(Millis(700 * u64::from(n - 1)));
            let mut cfg = ClusterConfig::new(n, PolicyConfig::default());
            cfg.seed = seed + u64::from(n);
            lab.add_node(cfg, CLTAB, "db start\nmail start\nweb start\n");
        }
        World { lab }
    }

    /// Run until `end`, crashing the node that runs group `crash.1` at
    /// `crash.0`. Returns the transcript: every tell and conflict, by time
    /// and node, and the crash.
    fn run(&mut self, end: Millis, crash: (Millis, &str)) -> Vec<String> {
        self.lab.run_until(crash.0);
        let mut out = self.transcript(Millis::ZERO, crash.0);
        if let Some(&victim) = self.lab.owners(crash.1).first() {
            self.lab.crash(victim);
            out.push(format!("{} node {victim} (running {}) crashes", crash.0, crash.1));
        }
        self.lab.run_until(end);
        out.extend(self.transcript(crash.0, end));
        out
    }

    /// Tells and conflicts in `[from, to)`, in time order.
    fn transcript(&self, from: Millis, to: Millis) -> Vec<String> {
        let mut lines = Vec::new();
        for (me, node) in &self.lab.nodes {
            for (at, event) in &node.events {
                if *at < from || *at >= to {
                    continue;
                }
                let what = match event {
                    ClusterEvent::Node(Event::Told { group, level, .. }) => {
                        format!("{group}→{level}")
                    }
                    ClusterEvent::Node(Event::Monitor(Notice::Conflict {
                        group, backoff, ..
                    })) => {
                        format!("conflict {group} +{backoff}")
                    }
                    ClusterEvent::Node(Event::Monitor(Notice::Stale { node, .. })) => {
                        format!("stale {node}")
                    }
                    _ => continue,
                };
                lines.push((*at, *me, what));
            }
        }
        lines.sort();
        lines.into_iter().map(|(at, me, what)| format!("{at} n{me} {what}")).collect()
    }

    /// Where each group runs (`start DONE`), among live nodes.
    fn placement(&self) -> BTreeMap<String, Vec<u32>> {
        ["db", "mail", "web"].into_iter().map(|g| (g.to_string(), self.lab.owners(g))).collect()
    }
}

/// Three nodes start empty, place the three groups, settle to a cycle time
/// of n = 3; the node running `web` crashes at 60 s; the two survivors take
/// over and settle to n = 2.
#[test]
fn three_nodes_place_settle_and_fail_over() {
    let mut world = World::new(3, 42);
    let transcript = world.run(Millis::from_secs(150), (Millis::from_secs(60), "web"));
    let placement = world.placement();
    for (group, owners) in &placement {
        assert_eq!(owners.len(), 1, "{group} on {owners:?}\n{}", transcript.join("\n"));
        assert!(world.lab.up.contains(&owners[0]));
    }
    for (node, n) in &world.lab.nodes {
        let AnyPolicy::Classic(c) = n.driver.node().monitor.policy() else {
            panic!("classic only")
        };
        assert!((c.cycletime() - 2.0).abs() < 0.01, "node {node}: {}", c.cycletime());
    }
    insta::assert_snapshot!(transcript.join("\n"));
}

/// Same seed and inputs, same actions; the whole scenario replays exactly.
#[test]
fn determinism() {
    let run = |seed| World::new(3, seed).run(Millis::from_secs(120), (Millis::from_secs(50), "db"));
    assert!(!run(7).is_empty());
    assert_eq!(run(7), run(7));

    let a = Monitor::new(PolicyConfig::default(), 99, Millis::ZERO);
    let mut b = a.clone();
    let mut a = a;
    for t in 1..50 {
        let o = fixture_obs(Millis::from_secs(t * 3), Millis::ZERO);
        assert_eq!(a.step(&o), b.step(&o));
    }
}
