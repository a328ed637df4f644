//! One cluster node: the node's init machine and its HA monitor, wired
//! together, with no I/O.
//!
//! Why it exists: the monitor only *decides* (tell, halt all, fence, write
//! hastat); somebody must route its tells into the local init machine, stop
//! every local group on quorum loss, hand a newly adopted cltab to the init
//! machine, and leave the rest (fencing, publishing) to real I/O. The real
//! `mosha` and the simulator must do this identically, or the simulator
//! would test a different glue than the one in production. So the glue
//! lives here, generic over the same backend traits as [`NodeDriver`].
//!
//! What it adds to the bare machines, on purpose:
//!
//! * **This node's own status comes from its init machine**, not from its
//!   `clstat` file: the view of itself is never stale or half-written.
//! * **This node is always a member of its own view.** If membership does not
//!   list it (openMosix says it is down, or its own heartbeat could not be
//!   written), the original lost sight of its own groups and planned them
//!   again while they ran here. A running node knows it is running.
//! * **Halt all** (quorum loss) tells `stop` to every local group that is not
//!   already at level `stop` or idle, so repeating it while quorum stays lost
//!   never bounces a group that is already stopping (spec W14). The node
//!   remembers that it is halting and says when it is done and when quorum
//!   is back.
//! * Every cycle it produces a [`Published`] document (hastat plus members,
//!   stale and fenced nodes, quorum), so an operator's `mosha status` can show
//!   what this node saw last, even while it has no quorum.

use crate::cltab::Cltab;
use crate::driver::{Executed, NodeDriver, Processes, StatusStore};
use crate::hastat::{is_idle, Hastat};
use crate::init::{InitConfig, Input, Reply};
use crate::monitor::{Action, Monitor, Notice, Observation};
use crate::status::GroupStatus;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The clstat heartbeat period under the cluster layer: a third of the
/// staleness timeout, so a healthy node never looks stale (DESIGN.md).
pub fn heartbeat_for(timeout: Millis) -> Millis {
    Millis((timeout.0 / 3).max(1))
}

/// `cfg` with its heartbeat shortened (or enabled) to [`heartbeat_for`].
pub fn init_config(mut cfg: InitConfig, timeout: Millis) -> InitConfig {
    let limit = heartbeat_for(timeout);
    cfg.heartbeat = Some(cfg.heartbeat.map_or(limit, |hb| hb.min(limit)));
    cfg
}

/// Something worth a log line, from the monitor or from the glue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The monitor's own notice.
    Monitor(Notice),
    /// The monitor told a local group to change level; the init machine's answer.
    Told { group: String, level: String, reply: Reply },
    /// Quorum lost: these local groups were told `stop`.
    Halting { stopping: Vec<String> },
    /// Every local group has stopped since quorum was lost.
    Halted,
    /// Quorum is back: the monitor decides again.
    QuorumRegained,
    /// Membership did not list this node; it counted itself anyway.
    NotListed { members: Vec<u32> },
    /// A new cltab was handed to the init machine.
    CltabReloaded { groups: Vec<String> },
}

/// What this node publishes about its view (its `hastat` file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The consolidated view at the last cycle that had quorum (shared
    /// with the node, not copied: a large cluster's view is big).
    pub hastat: Arc<Hastat>,
    /// Members seen in the last cycle (this node included).
    pub members: Vec<u32>,
    /// Members whose clstat is older than the timeout.
    pub stale: Vec<u32>,
    /// Stale members fenced during their current stale episode.
    pub fenced: Vec<u32>,
    /// The last cycle had quorum.
    pub quorum: bool,
    /// Local groups are being (or have been) halted for lack of quorum.
    pub halting: bool,
}

/// What the driver must do with real I/O.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum External {
    /// Run the STOMITH hook against `node` (at most once per stale episode).
    Fence { node: u32 },
    /// Write this node's hastat.
    Publish(Published),
}

/// The outcome of one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleReport {
    pub external: Vec<External>,
    pub events: Vec<Event>,
    /// What the init driver did because of the monitor's tells.
    pub executed: Vec<Executed>,
    /// When the monitor wants its next cycle.
    pub next_wakeup: Millis,
}

/// A node's init driver and HA monitor.
pub struct ClusterNode<P, S> {
    pub driver: NodeDriver<P, S>,
    pub monitor: Monitor,
    me: u32,
    halting: bool,
    halted: bool,
    stale: BTreeSet<u32>,
    fenced: BTreeSet<u32>,
    last_hastat: Arc<Hastat>,
    /// Groups `stop_all` told `stop` that may still be on their way there
    /// (clstat shows the old level while stopping).
    stop_told: BTreeSet<String>,
}

impl<P: Processes, S: StatusStore> ClusterNode<P, S> {
    /// Node `me`. The driver's init machine should run with
    /// [`init_config`] so its heartbeat fits the monitor's timeout.
    pub fn new(me: u32, driver: NodeDriver<P, S>, monitor: Monitor) -> Self {
        ClusterNode {
            driver,
            monitor,
            me,
            halting: false,
            halted: false,
            stale: BTreeSet::new(),
            fenced: BTreeSet::new(),
            last_hastat: Arc::default(),
            stop_told: BTreeSet::new(),
        }
    }

    pub fn me(&self) -> u32 {
        self.me
    }

    /// Local groups are halted for lack of quorum.
    pub fn is_halting(&self) -> bool {
        self.halting
    }

    /// Run one monitor cycle on `obs` and route its decisions.
    pub fn cycle(&mut self, obs: &Observation) -> CycleReport {
        let now = obs.now;
        let mut events = Vec::new();
        if !obs.members.contains(&self.me) {
            events.push(Event::NotListed { members: obs.members.clone() });
        }
        let members = crate::monitor::view::member_set(&obs.members, Some(self.me));
        // This node is a member, with the status its init machine has now.
        let own = self.driver.init.status();
        let step = if obs.me == self.me {
            self.monitor.step_with_own(obs, Some(&own))
        } else {
            let obs = Observation { me: self.me, ..obs.clone() };
            self.monitor.step_with_own(&obs, Some(&own))
        };
        let mut external = Vec::new();
        let mut executed = Vec::new();
        let mut halt = false;
        for action in step.actions {
            match action {
                Action::Tell { group, level } => {
                    let input = Input::Tell { group: group.clone(), level: level.clone() };
                    let (reply, log) = self.driver.step(now, input);
                    executed.extend(log);
                    events.push(Event::Told { group, level, reply });
                }
                Action::HaltAll => {
                    halt = true;
                    let (stopping, log) = self.stop_all(now);
                    executed.extend(log);
                    if !self.halting {
                        self.halting = true;
                        self.halted = false;
                        events.push(Event::Halting { stopping });
                    }
                }
                Action::Fence { node } => {
                    self.fenced.insert(node);
                    external.push(External::Fence { node });
                }
                Action::WriteHastat(hastat) => self.last_hastat = hastat,
                Action::Log(notice) => {
                    match &notice {
                        Notice::Stale { node, .. } => {
                            self.stale.insert(*node);
                        }
                        Notice::StaleEnded { node } => {
                            self.stale.remove(node);
                            self.fenced.remove(node);
                        }
                        _ => {}
                    }
                    events.push(Event::Monitor(notice));
                }
            }
        }
        if halt {
            if !self.halted && self.busy_groups().is_empty() {
                self.halted = true;
                events.push(Event::Halted);
            }
        } else if self.halting {
            self.halting = false;
            self.halted = false;
            events.push(Event::QuorumRegained);
        }
        self.stale.retain(|n| members.binary_search(n).is_ok());
        self.fenced.retain(|n| members.binary_search(n).is_ok());
        external.push(External::Publish(Published {
            hastat: self.last_hastat.clone(),
            members,
            stale: self.stale.iter().copied().collect(),
            fenced: self.fenced.iter().copied().collect(),
            quorum: !halt,
            halting: self.halting,
        }));
        CycleReport { external, events, executed, next_wakeup: step.next_wakeup }
    }

    /// Hand a newly adopted cltab to the init machine (nothing happens when
    /// it equals the current one). Removed groups are halted gracefully.
    pub fn adopt_cltab(&mut self, now: Millis, table: Cltab) -> Option<(Event, Vec<Executed>)> {
        if &table == self.driver.init.table() {
            return None;
        }
        let groups = table.groups().into_iter().map(String::from).collect();
        let (_, log) = self.driver.step(now, Input::Reload { table });
        Some((Event::CltabReloaded { groups }, log))
    }

    /// Tell `stop` to every local group that is neither idle, nor at level
    /// `stop`, nor still on its way there from an earlier call (the
    /// original's `haltall`, without re-telling). Returns the groups told.
    pub fn stop_all(&mut self, now: Millis) -> (Vec<String>, Vec<Executed>) {
        let status = self.driver.init.status();
        let mut told = Vec::new();
        let mut executed = Vec::new();
        self.stop_told.retain(|g| status.get(g).is_some_and(|st| !st.state.is_settled()));
        for (group, st) in status.groups {
            let on_its_way = self.stop_told.contains(&group);
            if st.level == "stop" || is_idle(&st.level, &st.state) || on_its_way {
                continue;
            }
            self.stop_told.insert(group.clone());
            let input = Input::Tell { group: group.clone(), level: "stop".into() };
            let (_, log) = self.driver.step(now, input);
            executed.extend(log);
            told.push(group);
        }
        (told, executed)
    }

    /// `group` was told `level` by someone else (the policy): when that is
    /// not `stop`, an earlier `stop_all`'s stop of it is superseded, so the
    /// next `stop_all` must tell it `stop` again. Without this, a group
    /// that `stop_all` told `stop`, then the policy told `start` while it
    /// was still stopping (a lingering process group keeps it in
    /// transition), was skipped by the next `stop_all` as "on its way" to
    /// stop, and went on to start after a `ranked` lease loss, beside the
    /// kill: the kill was never confirmed and the healthy node was fenced.
    pub fn told(&mut self, group: &str, level: &str) {
        if level != "stop" {
            self.stop_told.remove(group);
        }
    }

    /// Local groups that are not idle (not `stop DONE`, not unconfigured):
    /// running, testing, or still stopping.
    pub fn busy_groups(&self) -> Vec<(String, GroupStatus)> {
        let status = self.driver.init.status();
        status.groups.into_iter().filter(|(_, st)| !is_idle(&st.level, &st.state)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hactl::Hactl;
    use crate::init::Init;
    use crate::monitor::{NodeStatus, PolicyConfig};
    use crate::process::{ExitStatus, ProcId, Signal};
    use crate::status::{ClStat, GroupState};
    use std::collections::BTreeMap;

    /// Children that start and never end on their own.
    #[derive(Default)]
    struct Fake {
        spawned: Vec<String>,
        ids: Vec<ProcId>,
    }

    impl Processes for Fake {
        fn spawn(
            &mut self,
            id: ProcId,
            group: &str,
            tag: &str,
            level: &str,
            _command: &str,
        ) -> Result<u32, crate::process::SpawnError> {
            self.spawned.push(format!("{group}/{tag}@{level}"));
            self.ids.push(id);
            Ok(id.0 as u32 + 1000)
        }
        fn signal(
            &mut self,
            _id: ProcId,
            _signal: Signal,
        ) -> Result<bool, crate::cluster::IoFailure> {
            Ok(true)
        }
    }

    struct NoStore;
    impl StatusStore for NoStore {
        fn write_status(
            &mut self,
            _seq: u64,
            _status: &ClStat,
        ) -> Result<(), crate::cluster::IoFailure> {
            Ok(())
        }
    }

    const CLTAB: &str = "web:w1:start:respawn:serve\ndb:d1:start:once:db\n";

    fn node(me: u32) -> ClusterNode<Fake, NoStore> {
        let cfg = init_config(InitConfig::default(), Millis::from_secs(60));
        let table = Cltab::parse(CLTAB, "cltab").expect("cltab parses");
        let mut driver =
            NodeDriver::new(Init::new(cfg, table, Millis::ZERO), Fake::default(), NoStore);
        driver.flush(Millis::ZERO);
        ClusterNode::new(me, driver, Monitor::new(PolicyConfig::default(), 7, Millis::ZERO))
    }

    fn obs(now: Millis, members: &[u32], others: &[(u32, &str)], hactl: &str) -> Observation {
        let mut nodes = BTreeMap::new();
        for (n, text) in others {
            let lines: Vec<String> = text
                .split(',')
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("Cluster::Init::Group {}", l.trim()))
                .collect();
            let clstat = ClStat::parse(&lines.join("\n"));
            nodes.insert(*n, NodeStatus::Read { clstat: Arc::new(clstat), age: Millis::ZERO });
        }
        Observation {
            now,
            me: 0,
            members: members.to_vec(),
            nodes,
            hactl: Some(Arc::new(Hactl::parse(hactl, "hactl").expect("hactl parses"))),
        }
    }

    fn level(n: &ClusterNode<Fake, NoStore>, group: &str) -> Option<(String, GroupState)> {
        n.driver.init.status().get(group).map(|s| (s.level.clone(), s.state.clone()))
    }

    #[test]
    fn heartbeat_is_a_third_of_the_timeout() {
        assert_eq!(heartbeat_for(Millis::from_secs(60)), Millis::from_secs(20));
        assert_eq!(
            init_config(InitConfig::default(), Millis::from_secs(6)).heartbeat,
            Some(Millis(2000))
        );
        let slow = InitConfig { heartbeat: None, ..InitConfig::default() };
        assert_eq!(init_config(slow, Millis::from_secs(300)).heartbeat, Some(Millis(100_000)));
        let fast = InitConfig { heartbeat: Some(Millis(500)), ..InitConfig::default() };
        assert_eq!(init_config(fast, Millis::from_secs(60)).heartbeat, Some(Millis(500)));
    }

    /// A lone node walks a wanted group through plan → test → start, its own
    /// status taken from the init machine, and publishes every cycle.
    #[test]
    fn tells_reach_the_init_machine() {
        let mut n = node(1);
        let mut now = Millis::ZERO;
        let mut levels = Vec::new();
        for _ in 0..8 {
            let report = n.cycle(&obs(now, &[1], &[], "web start\n"));
            assert!(matches!(report.external.last(), Some(External::Publish(p)) if p.quorum));
            for e in &report.events {
                if let Event::Told { level, reply, .. } = e {
                    assert_eq!(reply, &Reply::Started);
                    levels.push(level.clone());
                }
            }
            now = report.next_wakeup.max(now + Millis(1));
        }
        assert_eq!(levels, ["plan", "test", "start"]);
        assert_eq!(level(&n, "web"), Some(("start".into(), GroupState::Done)));
        assert_eq!(n.driver.processes.spawned, ["web/w1@start"]);
    }

    /// Quorum loss stops every local group once, says so, says when they are
    /// all down, and says when quorum is back.
    #[test]
    fn halt_all_stops_local_groups_once() {
        let mut n = node(1);
        let mut now = Millis::ZERO;
        for _ in 0..40 {
            let r = n.cycle(&obs(now, &[1, 2, 3], &[(2, ""), (3, "")], "web start\n"));
            now = r.next_wakeup.max(now + Millis(1));
            if level(&n, "web").is_some_and(|l| l.0 == "start") {
                break;
            }
        }
        assert_eq!(level(&n, "web").map(|l| l.0), Some("start".into()));
        // Nodes 2 and 3 vanish: 1 < 0.6 × 3.
        let r = n.cycle(&obs(now, &[1], &[], "web start\n"));
        assert!(r.events.contains(&Event::Halting { stopping: vec!["web".into()] }), "{r:?}");
        assert!(!r.events.contains(&Event::Halted), "the server has not exited yet");
        assert!(matches!(r.external.last(), Some(External::Publish(p)) if !p.quorum && p.halting));
        // clstat shows the old level while stopping.
        assert_eq!(level(&n, "web"), Some(("start".into(), GroupState::Stopping)));
        // The server exits on its SIGINT.
        let id = n.driver.processes.ids[0];
        n.driver.step(now, Input::Exited { id, status: ExitStatus::Signaled(2), lingering: false });
        // Still lost: nothing told again; the halt is reported complete.
        let r = n.cycle(&obs(r.next_wakeup, &[1], &[], "web start\n"));
        assert!(r.events.iter().all(|e| !matches!(e, Event::Halting { .. })));
        assert!(r.events.contains(&Event::Halted), "{r:?}");
        assert_eq!(level(&n, "web"), Some(("stop".into(), GroupState::Done)));
        let r = n.cycle(&obs(r.next_wakeup, &[1], &[], "web start\n"));
        assert!(!r.events.contains(&Event::Halted), "said once");
        assert!(r.executed.is_empty());
        // Back.
        let r = n.cycle(&obs(r.next_wakeup, &[1, 2, 3], &[(2, ""), (3, "")], "web start\n"));
        assert!(r.events.contains(&Event::QuorumRegained));
        assert!(!n.is_halting());
    }

    #[test]
    fn a_node_missing_from_membership_counts_itself() {
        let mut n = node(2);
        let r = n.cycle(&obs(Millis::ZERO, &[1], &[(1, "web start DONE")], "web start\n"));
        assert!(r.events.contains(&Event::NotListed { members: vec![1] }));
        let Some(External::Publish(p)) = r.external.last() else { panic!("no publish") };
        assert_eq!(p.members, vec![1, 2]);
    }

    #[test]
    fn adopting_a_cltab_reloads_only_when_it_changed() {
        let mut n = node(1);
        let same = Cltab::parse(CLTAB, "other-name").expect("parses");
        assert!(n.adopt_cltab(Millis(5), same).is_none());
        let new = Cltab::parse("web:w1:start:respawn:serve\n", "cltab").expect("parses");
        let (event, _) = n.adopt_cltab(Millis(6), new).expect("reloaded");
        assert_eq!(event, Event::CltabReloaded { groups: vec!["web".into()] });
        assert!(!n.driver.init.table().has_group("db"));
    }

    #[test]
    fn fences_and_stale_nodes_are_published() {
        let mut n = node(1);
        let late = Millis::from_secs(200);
        let mut o = obs(late, &[1, 2], &[], "web start\n");
        o.nodes.insert(2, NodeStatus::Read { clstat: Arc::default(), age: Millis::from_secs(90) });
        let r = n.cycle(&o);
        assert!(r.external.contains(&External::Fence { node: 2 }));
        let Some(External::Publish(p)) = r.external.last() else { panic!("no publish") };
        assert_eq!((p.stale.clone(), p.fenced.clone()), (vec![2], vec![2]));
        // Once per episode.
        let mut o2 = o.clone();
        o2.now = late + Millis::from_secs(5);
        let r = n.cycle(&o2);
        assert!(!r.external.iter().any(|e| matches!(e, External::Fence { .. })));
    }
}
