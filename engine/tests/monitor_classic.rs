//! The HA monitor driven through its public API: stale detection and
//! fencing (t/1064), unreadable clstats, quorum loss, and a small
//! multi-node scenario whose transcript is snapshotted.

use clinit_engine::hactl::Hactl;
use clinit_engine::monitor::{
    Action, AnyPolicy, Monitor, NodeStatus, Notice, Observation, PolicyConfig,
};
use clinit_engine::status::ClStat;
use clinit_engine::Millis;
use std::collections::{BTreeMap, BTreeSet};
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

/// A toy world: every node's daemon completes tells at once, clstat writes
/// become visible to readers `delay` later, heartbeats keep them fresh.
struct World {
    delay: Millis,
    hactl: Arc<Hactl>,
    up: BTreeSet<u32>,
    /// Per node: (write time, clstat) in write order.
    history: BTreeMap<u32, Vec<(Millis, ClStat)>>,
    monitors: BTreeMap<u32, Monitor>,
}

impl World {
    fn new(nodes: u32, seed: u64) -> World {
        let hactl =
            Arc::new(Hactl::parse("db start\nmail start\nweb start\n", "hactl").expect("parses"));
        World {
            delay: Millis(500),
            hactl,
            up: (1..=nodes).collect(),
            history: BTreeMap::new(),
            monitors: (1..=nodes)
                .map(|n| {
                    (n, Monitor::new(PolicyConfig::default(), seed + u64::from(n), Millis::ZERO))
                })
                .collect(),
        }
    }

    fn visible(&self, node: u32, now: Millis) -> NodeStatus {
        let seen = self.history.get(&node).and_then(|h| {
            h.iter().rev().find(|(t, _)| *t + self.delay <= now).map(|(_, c)| c.clone())
        });
        match seen {
            Some(clstat) => NodeStatus::Read { clstat: clstat.into(), age: Millis::ZERO },
            None => NodeStatus::Missing,
        }
    }

    fn tell(&mut self, node: u32, now: Millis, group: &str, level: &str) {
        let history = self.history.entry(node).or_default();
        let mut clstat = history.last().map(|(_, c)| c.clone()).unwrap_or_default();
        let line = format!("Cluster::Init::Group {group} {level} DONE");
        clstat.groups.extend(ClStat::parse(&line).groups);
        history.push((now, clstat));
    }

    /// Run until `end`, crashing the node that runs group `crash.1` at
    /// `crash.0`. Returns the transcript: the cycles that told or logged
    /// something or changed their sleep.
    fn run(&mut self, end: Millis, crash: (Millis, &str)) -> Vec<String> {
        let mut out = Vec::new();
        let mut crashed = false;
        let mut last_sleep: BTreeMap<u32, Millis> = BTreeMap::new();
        loop {
            let next = self
                .monitors
                .iter()
                .filter(|(n, _)| self.up.contains(n))
                .map(|(n, m)| (m.next_wakeup(), *n))
                .min();
            let Some((now, me)) = next else { break };
            if now > end {
                break;
            }
            if now >= crash.0 && !crashed {
                crashed = true;
                let owner = self.placement().get(crash.1).and_then(|o| o.first().map(|o| o.0));
                if let Some(victim) = owner {
                    self.up.remove(&victim);
                    self.history.remove(&victim);
                    out.push(format!("{now} node {victim} (running {}) crashes", crash.1));
                }
            }
            let members: Vec<u32> = self.up.iter().copied().collect();
            let observation = Observation {
                now,
                me,
                nodes: members.iter().map(|&n| (n, self.visible(n, now))).collect(),
                members,
                hactl: Some(self.hactl.clone()),
            };
            let Some(monitor) = self.monitors.get_mut(&me) else {
                break;
            };
            let step = monitor.step(&observation);
            let cycletime = match monitor.policy() {
                AnyPolicy::Classic(c) => c.cycletime(),
                AnyPolicy::Ranked(_) => unreachable!("this harness runs classic only"),
            };
            let mut what = Vec::new();
            for action in &step.actions {
                match action {
                    Action::Tell { group, level } => {
                        what.push(format!("{group}→{level}"));
                        self.tell(me, now, group, level);
                    }
                    Action::Log(Notice::Conflict { group, backoff, .. }) => {
                        what.push(format!("conflict {group} +{backoff}"));
                    }
                    Action::WriteHastat(_) => {}
                    other => what.push(format!("{other:?}")),
                }
            }
            let sleep = step.next_wakeup - now;
            if !what.is_empty() || last_sleep.insert(me, sleep) != Some(sleep) {
                out.push(
                    format!("{now} n{me} ct={cycletime:.2} sleep={sleep} {}", what.join(" "))
                        .trim_end()
                        .to_string(),
                );
            }
        }
        out
    }

    /// Where each group is non-idle, among live nodes' latest clstats.
    fn placement(&self) -> BTreeMap<String, Vec<(u32, String)>> {
        let mut out: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
        for (&node, history) in &self.history {
            let Some((_, clstat)) = history.last() else {
                continue;
            };
            for (group, st) in &clstat.groups {
                if st.level != "stop" {
                    out.entry(group.clone()).or_default().push((node, st.level.clone()));
                }
            }
        }
        out
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
    for group in ["db", "mail", "web"] {
        let owners = placement.get(group).cloned().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{group} on {owners:?}");
        assert_eq!(owners[0].1, "start");
        assert!(world.up.contains(&owners[0].0));
    }
    for (node, m) in &world.monitors {
        if world.up.contains(node) {
            let AnyPolicy::Classic(c) = m.policy() else { panic!("classic only") };
            assert!((c.cycletime() - 2.0).abs() < 0.01, "node {node}: {}", c.cycletime());
        }
    }
    insta::assert_snapshot!(transcript.join("\n"));
}

/// Same seed and inputs, same actions; the whole scenario replays exactly.
#[test]
fn determinism() {
    let run = |seed| World::new(3, seed).run(Millis::from_secs(120), (Millis::from_secs(50), "db"));
    assert_eq!(run(7), run(7));

    let a = Monitor::new(PolicyConfig::default(), 99, Millis::ZERO);
    let mut b = a.clone();
    let mut a = a;
    for t in 1..50 {
        let o = fixture_obs(Millis::from_secs(t * 3), Millis::ZERO);
        assert_eq!(a.step(&o), b.step(&o));
    }
}
