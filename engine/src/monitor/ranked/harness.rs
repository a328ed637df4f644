//! A small lock-step world for the interleaving tests: N [`Ranked`]
//! machines exchanging records through a shared "directory" with per-pair
//! visibility delays the test controls, a process table as ground truth,
//! a watchdog per node, local durable storage, a fence device, and
//! executors that can run commands late. Pure and deterministic: global
//! time advances in ticks of 10 ms; each node sees its own clock (offset and
//! rate).
//!
//! Ground-truth invariants, judged from the process table, not from what
//! the machines believe:
//! * `double_owner_ms`: time during which a group's processes existed on two
//!   nodes (a paused VM's processes exist);
//! * `needless_fences`: fences of a node that was healthy when the fence
//!   was asked for (monitor running, not paused, exchanging records with a
//!   quorum);
//! * `split_leases_ms`: time during which two nodes that cannot read each
//!   other both held a lease in a 2-node cluster.

use super::machine::{Command, Durable, FenceGuard, Input, Ranked, Read};
use super::record::{Config, NodeInc, Record};
use super::watchdog::{Watchdog, WatchdogAction};
use super::{RankedParams, Rules};
use crate::hactl::Hactl;
use crate::status::{ClStat, GroupState, GroupStatus};
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub const TICK: u64 = 10;

/// A link from a writer's records to a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Records become visible this many ms after they were written.
    Delay(u64),
    /// Reads fail (unknown).
    Down,
}

pub struct Node {
    pub id: u32,
    pub machine: Option<Ranked>,
    pub up: bool,
    pub paused: bool,
    pub frozen: bool,
    pub clock_offset: u64,
    pub clock_ppm: i64,
    pub watchdog: Watchdog,
    /// The watchdog process is gone (killed, and its restarts fail): it
    /// kills nothing at its deadline.
    pub watchdog_gone: bool,
    pub procs: BTreeSet<String>,
    pub unkillable: bool,
    pub own: ClStat,
    pub disk: Option<Durable>,
    pub history: Vec<(u64, String)>,
    pub inbox: Vec<Input>,
    pub delivered: BTreeMap<u32, Option<u64>>,
    /// Starting tells run this much later (a queued spawn).
    pub late_start: Option<u64>,
    pub late_queue: Vec<(u64, Command)>,
    pub restart_at: Option<u64>,
    pub dropped_late: usize,
    /// When its monitor last resumed (thaw, VM resume), global time.
    pub resumed_at: Option<u64>,
    /// Groups whose test fails on this node.
    pub failing_tests: BTreeSet<String>,
    /// Starts of each group on this node (ground truth).
    pub starts: BTreeMap<String, usize>,
    /// Groups this node's `cltab` lacks: its init machine refuses their
    /// tells ("no such group"), answered as [`Input::TellRefused`], as the
    /// cluster driver does.
    pub missing_groups: BTreeSet<String>,
    /// Groups whose tells silently take no effect here (a stuck executor):
    /// only the stall rule can give their claims up.
    pub ignored_groups: BTreeSet<String>,
}

impl Node {
    fn local(&self, t: u64) -> Millis {
        let drift = (t as i64).saturating_mul(self.clock_ppm) / 1_000_000;
        Millis((self.clock_offset as i64 + t as i64 + drift).max(0) as u64)
    }
}

pub struct FenceJob {
    pub at: u64,
    pub by: u32,
    pub target: NodeInc,
    pub guard: FenceGuard,
    pub healthy_at_issue: bool,
}

/// The world's log for an assertion message, one line per event
/// (`time nNODE text`), without the `Unknown` notices that fill it.
pub fn dump(w: &World) -> String {
    w.log
        .iter()
        .filter(|l| !l.2.starts_with("Unknown"))
        .map(|l| format!("{:>6} n{} {}", l.0, l.1, l.2))
        .collect::<Vec<_>>()
        .join("\n")
}

pub struct World {
    pub t: u64,
    pub params: RankedParams,
    pub rules: Rules,
    pub config: Config,
    pub nodes: BTreeMap<u32, Node>,
    pub links: BTreeMap<(u32, u32), Link>,
    pub default_delay: u64,
    pub hactl: Arc<Hactl>,
    pub fence_ms: u64,
    pub fence_works: bool,
    /// A fence that works kills its target (`false`: it reports success
    /// and the target runs on, a broken fence command).
    pub fence_kills: bool,
    pub reboot_ms: u64,
    pub fence_jobs: Vec<FenceJob>,
    pub fences: Vec<(u64, u32, NodeInc)>,
    pub needless_fences: usize,
    /// Fences that landed within 2P + a visibility delay of their target's
    /// resume (a frozen monitor or paused VM waking up): the target could not
    /// yet publish that it is back. A known race of every timeout-based
    /// fence; compare-and-fence narrows it to this window.
    pub resume_races: usize,
    /// Fences asked for while the target was unhealthy by ground truth,
    /// that landed after it recovered: right when decided, overtaken within
    /// the fence's own time limit.
    pub recovered_during_fence: usize,
    pub double_owner_ms: u64,
    pub split_leases_ms: u64,
    /// Records written by an incarnation that was not on the node's disk
    /// yet (a restart or a rejoin that published before it persisted).
    pub unpersisted_records: usize,
    /// Feed the membership source's view (`detect=0`): up, unpaused hosts.
    pub membership: bool,
    /// Nodes the membership source lists down whatever their truth (a
    /// source slower than a reboot).
    pub listed_down: BTreeSet<u32>,
    /// `(observer, node)`: the membership source on `observer` lists
    /// `node` down (a per-node view, as a partition looks to the source).
    pub hidden: BTreeSet<(u32, u32)>,
    /// Step a machine only on an input or when its `poll_timeout` is due,
    /// instead of every tick.
    pub event_driven: bool,
    last_membership: Option<BTreeMap<u32, Vec<u32>>>,
    pub log: Vec<(u64, u32, String)>,
    /// Nodes whose file shows another policy (a rolling upgrade).
    pub other: BTreeMap<u32, String>,
}

impl World {
    pub fn new(n: u32, params: RankedParams, hactl: &str) -> World {
        let config = Config { version: 1, members: (1..=n).collect(), voters: Vec::new() };
        let hactl = Arc::new(Hactl::parse(hactl, "hactl").expect("test hactl parses"));
        let mut w = World {
            t: 0,
            params,
            rules: Rules::default(),
            config,
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
            default_delay: 20,
            hactl,
            fence_ms: 500,
            fence_works: true,
            fence_kills: true,
            reboot_ms: 3000,
            fence_jobs: Vec::new(),
            fences: Vec::new(),
            needless_fences: 0,
            resume_races: 0,
            recovered_during_fence: 0,
            double_owner_ms: 0,
            split_leases_ms: 0,
            unpersisted_records: 0,
            membership: false,
            listed_down: BTreeSet::new(),
            hidden: BTreeSet::new(),
            event_driven: false,
            last_membership: None,
            log: Vec::new(),
            other: BTreeMap::new(),
        };
        for id in 1..=n {
            w.nodes.insert(
                id,
                Node {
                    id,
                    machine: None,
                    up: false,
                    paused: false,
                    frozen: false,
                    clock_offset: 1000 * id as u64 * 7919 % 100_000,
                    clock_ppm: 0,
                    watchdog: Watchdog::default(),
                    watchdog_gone: false,
                    procs: BTreeSet::new(),
                    unkillable: false,
                    own: ClStat::default(),
                    disk: None,
                    history: Vec::new(),
                    inbox: Vec::new(),
                    delivered: BTreeMap::new(),
                    late_start: None,
                    late_queue: Vec::new(),
                    restart_at: Some(0),
                    dropped_late: 0,
                    resumed_at: None,
                    failing_tests: BTreeSet::new(),
                    starts: BTreeMap::new(),
                    missing_groups: BTreeSet::new(),
                    ignored_groups: BTreeSet::new(),
                },
            );
        }
        w
    }

    pub fn with_rules(mut self, f: impl FnOnce(&mut Rules)) -> World {
        f(&mut self.rules);
        self
    }

    pub fn node(&mut self, id: u32) -> &mut Node {
        self.nodes.get_mut(&id).expect("node exists")
    }

    pub fn link(&mut self, writer: u32, reader: u32, link: Link) {
        self.links.insert((writer, reader), link);
    }

    /// Cut `node` off both ways from every other node.
    pub fn isolate(&mut self, node: u32) {
        let others: Vec<u32> = self.nodes.keys().copied().filter(|&n| n != node).collect();
        for o in others {
            self.link(node, o, Link::Down);
            self.link(o, node, Link::Down);
        }
    }

    /// Thaw a frozen monitor or resume a paused VM.
    pub fn resume(&mut self, id: u32) {
        let t = self.t;
        let n = self.node(id);
        if n.frozen || n.paused {
            n.resumed_at = Some(t);
        }
        n.frozen = false;
        n.paused = false;
    }

    fn link_of(&self, writer: u32, reader: u32) -> Link {
        self.links.get(&(writer, reader)).copied().unwrap_or(Link::Delay(self.default_delay))
    }

    /// Nodes whose process table runs `group`.
    pub fn runs(&self, group: &str) -> Vec<u32> {
        self.nodes.values().filter(|n| n.up && n.procs.contains(group)).map(|n| n.id).collect()
    }

    pub fn holding(&self, id: u32) -> bool {
        self.nodes[&id].machine.as_ref().is_some_and(|m| m.lease_deadline().is_some())
    }

    /// Kill a node (power off; restarts after `reboot` if given).
    pub fn crash(&mut self, id: u32, reboot: Option<u64>) {
        let t = self.t;
        let n = self.node(id);
        n.up = false;
        n.paused = false;
        n.frozen = false;
        n.machine = None;
        n.procs.clear();
        n.own = ClStat::default();
        n.watchdog = Watchdog::default();
        n.restart_at = reboot.map(|r| t + r);
        n.inbox.clear();
        n.late_queue.clear();
    }

    /// Healthy by ground truth: monitor running, not paused or frozen, and
    /// exchanging records with a quorum (itself included) both ways.
    pub fn healthy(&self, id: u32) -> bool {
        let n = &self.nodes[&id];
        if !n.up || n.paused || n.frozen || n.machine.is_none() {
            return false;
        }
        // Not in control of its services: they survive its kills (D state),
        // as the simulator's `needless-fence` judges.
        if n.unkillable && !n.procs.is_empty() {
            return false;
        }
        let limit = self.params.lease.0 / 2;
        let ok = |l: Link| matches!(l, Link::Delay(d) if d <= limit);
        let peers = self
            .nodes
            .keys()
            .filter(|&&o| {
                o == id || (self.nodes[&o].up && ok(self.link_of(id, o)) && ok(self.link_of(o, id)))
            })
            .count();
        2 * peers > self.nodes.len()
    }

    pub fn run_until(&mut self, end: u64) {
        while self.t < end {
            self.tick();
            self.t += TICK;
        }
    }

    /// Run until `cond` holds (true) or `limit`; returns whether it held.
    pub fn run_until_cond(&mut self, limit: u64, mut cond: impl FnMut(&World) -> bool) -> bool {
        while self.t < limit {
            if cond(self) {
                return true;
            }
            self.tick();
            self.t += TICK;
        }
        cond(self)
    }

    fn tick(&mut self) {
        let t = self.t;
        self.run_fences();
        let ids: Vec<u32> = self.nodes.keys().copied().collect();
        for &id in &ids {
            self.boot(id);
        }
        if self.membership {
            let live: Vec<u32> = self
                .nodes
                .values()
                .filter(|n| n.up && !n.paused && !self.listed_down.contains(&n.id))
                .map(|n| n.id)
                .collect();
            let views: BTreeMap<u32, Vec<u32>> = ids
                .iter()
                .map(|&o| {
                    let view = live.iter().copied().filter(|&n| !self.hidden.contains(&(o, n)));
                    (o, view.collect())
                })
                .collect();
            if self.last_membership.as_ref() != Some(&views) {
                for n in self.nodes.values_mut() {
                    n.inbox.push(Input::Membership(views[&n.id].clone()));
                }
                self.last_membership = Some(views);
            }
        }
        for id in ids {
            self.tick_node(id);
        }
        // Ground truth.
        let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
        for n in self.nodes.values().filter(|n| n.up) {
            for g in &n.procs {
                *groups.entry(g.as_str()).or_default() += 1;
            }
        }
        if groups.values().any(|&c| c > 1) {
            if self.double_owner_ms == 0 {
                let owners: Vec<String> =
                    groups.iter().filter(|(_, &c)| c > 1).map(|(g, _)| g.to_string()).collect();
                self.log.push((t, 0, format!("DOUBLE OWNER {owners:?}")));
            }
            self.double_owner_ms += TICK;
        }
        if self.nodes.len() == 2 {
            let cut = self.link_of(1, 2) == Link::Down && self.link_of(2, 1) == Link::Down;
            if cut && self.holding(1) && self.holding(2) {
                self.split_leases_ms += TICK;
            }
        }
        let _ = t;
    }

    fn run_fences(&mut self) {
        let t = self.t;
        let due: Vec<FenceJob> = {
            let (due, rest): (Vec<FenceJob>, Vec<FenceJob>) =
                std::mem::take(&mut self.fence_jobs).into_iter().partition(|j| j.at <= t);
            self.fence_jobs = rest;
            due
        };
        for job in due {
            // Compare-and-fence: the fencer's executor re-reads the target.
            let newer = match self.link_of(job.target.node, job.by) {
                Link::Down => false,
                Link::Delay(d) => self.nodes[&job.target.node]
                    .history
                    .iter()
                    .rev()
                    .find(|(w, _)| w + d <= t)
                    .and_then(|(_, text)| Record::parse(text).ok())
                    .is_some_and(|r| job.guard.skip(Some(&r))),
            };
            let ok = self.fence_works && !newer;
            if ok {
                // Judged when the fence lands: was the target healthy? A
                // target that resumed less than 2P + a visibility delay ago
                // could not yet show it (a documented race, counted apart).
                if self.healthy(job.target.node) {
                    let resumed = self.nodes[&job.target.node].resumed_at;
                    let window = 2 * self.params.heartbeat.0 + self.default_delay;
                    if !job.healthy_at_issue {
                        // Decided on an unhealthy target that recovered
                        // (partition healed, monitor resumed) while the
                        // fence was under way.
                        self.recovered_during_fence += 1;
                        self.log.push((t, job.by, "FENCE RACED A RECOVERY".into()));
                    } else if resumed.is_some_and(|r| t < r + window) {
                        self.resume_races += 1;
                        self.log.push((t, job.by, "FENCE RACED A RESUME".into()));
                    } else {
                        self.needless_fences += 1;
                        self.log.push((t, job.by, "NEEDLESS FENCE".into()));
                    }
                }
                let reboot = self.reboot_ms;
                if self.fence_kills {
                    self.crash(job.target.node, Some(reboot));
                }
            }
            self.node(job.by).inbox.push(Input::Fenced { target: job.target, ok });
        }
    }

    fn boot(&mut self, id: u32) {
        let t = self.t;
        let params = self.params.clone();
        let rules = self.rules;
        let config = self.config.clone();
        let hactl = Arc::clone(&self.hactl);
        let n = self.node(id);
        if !n.up && n.restart_at.is_some_and(|r| r <= t) {
            n.up = true;
            n.restart_at = None;
            let local = n.local(t);
            let mut m = Ranked::new(id, params, config, n.disk.clone(), n.own.clone(), local);
            m.rules = rules;
            n.machine = Some(m);
            n.delivered.clear();
            n.inbox.push(Input::Hactl(hactl));
        }
    }

    /// Restart `id`'s monitor (`mosha -9` and restart): its services and
    /// watchdog live on, its durable state is read back.
    pub fn restart_monitor(&mut self, id: u32) {
        let t = self.t;
        let params = self.params.clone();
        let rules = self.rules;
        let config = self.config.clone();
        let hactl = Arc::clone(&self.hactl);
        let n = self.node(id);
        let local = n.local(t);
        let mut m = Ranked::new(id, params, config, n.disk.clone(), n.own.clone(), local);
        m.rules = rules;
        n.machine = Some(m);
        n.delivered.clear();
        n.inbox.clear();
        n.inbox.push(Input::Hactl(hactl));
    }

    /// `mosha -9` now, and a new monitor at `t + down_ms` that, like the
    /// production driver, starts with a fresh init machine: its own status
    /// shows nothing. Its services live on (orphans); the executor tells the
    /// new monitor how many ([`Input::Leftovers`]).
    pub fn kill_monitor(&mut self, id: u32, down_ms: u64) {
        let t0 = self.t;
        self.node(id).machine = None;
        self.node(id).inbox.clear();
        self.run_until(t0 + down_ms);
        let t = self.t;
        let params = self.params.clone();
        let rules = self.rules;
        let config = self.config.clone();
        let hactl = Arc::clone(&self.hactl);
        let n = self.node(id);
        n.own = ClStat::default();
        let local = n.local(t);
        let mut m = Ranked::new(id, params, config, n.disk.clone(), n.own.clone(), local);
        m.rules = rules;
        n.machine = Some(m);
        n.delivered.clear();
        n.inbox.push(Input::Hactl(hactl));
        let live = n.procs.len();
        n.inbox.push(Input::Leftovers { live });
    }

    fn tick_node(&mut self, id: u32) {
        let t = self.t;
        {
            let n = self.node(id);
            if !n.up {
                return;
            }
            if n.paused {
                return;
            }
            let local = n.local(t);
            if n.watchdog.tick(local) == WatchdogAction::KillAll
                && !n.watchdog_gone
                && !n.procs.is_empty()
                && !n.unkillable
            {
                n.procs.clear();
                for st in n.own.groups.values_mut() {
                    *st = GroupStatus { level: "stop".into(), state: GroupState::Done };
                }
                let own = n.own.clone();
                n.inbox.push(Input::Own(own));
            }
        }
        self.monitor_tick(id);
        // Late commands whose time has come run after the monitor's turn:
        // the monitor sees their effect at its next one.
        let due: Vec<Command> = {
            let n = self.node(id);
            let (due, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut n.late_queue).into_iter().partition(|(at, _)| *at <= t);
            n.late_queue = rest;
            due.into_iter().map(|(_, c)| c).collect()
        };
        for c in due {
            self.execute(id, c, true);
        }
    }

    fn monitor_tick(&mut self, id: u32) {
        let t = self.t;
        if self.nodes[&id].frozen || self.nodes[&id].machine.is_none() {
            return;
        }
        // Reads of its own record and of every other node's record it
        // reads (a learner: the voters' only), as the cluster loop reads
        // its own files too.
        let set = self.nodes[&id].machine.as_ref().and_then(|m| m.read_set());
        let others: Vec<u32> = self
            .nodes
            .keys()
            .copied()
            .filter(|&o| o == id || set.as_ref().is_none_or(|s| s.contains(&o)))
            .collect();
        let mut reads = Vec::new();
        for o in others {
            let read = match self.link_of(o, id) {
                _ if self.other.contains_key(&o) => {
                    Some((Some(u64::MAX), Read::OtherPolicy(self.other[&o].clone())))
                }
                Link::Down => Some((None, Read::Unknown("unreachable".into()))),
                Link::Delay(d) => {
                    let visible = self.nodes[&o].history.iter().rev().find(|(w, _)| w + d <= t);
                    visible.map(|(_, text)| match Record::parse(text) {
                        Ok(r) => (
                            Some(r.counter + (r.incarnation << 32)),
                            Read::Record(std::sync::Arc::new(r)),
                        ),
                        Err(e) => (None, Read::Unknown(e.to_string())),
                    })
                }
            };
            if let Some((key, read)) = read {
                let n = self.node(id);
                if n.delivered.get(&o) != Some(&key) {
                    n.delivered.insert(o, key);
                    reads.push(Input::Read { node: o, read });
                }
            }
        }
        let mut inputs = std::mem::take(&mut self.node(id).inbox);
        inputs.extend(reads);
        // Event-driven: a Tick only when something arrived or the machine's
        // poll_timeout is due (as a production driver steps it).
        let due = {
            let n = &self.nodes[&id];
            let local = n.local(t);
            n.machine.as_ref().and_then(|m| m.poll_timeout()).is_none_or(|at| at <= local)
        };
        if !self.event_driven || due || !inputs.is_empty() {
            inputs.push(Input::Tick);
        }
        for input in inputs {
            let n = self.node(id);
            let local = n.local(t);
            let Some(m) = n.machine.as_mut() else { return };
            let out = m.step(local, input);
            // No busy wake: after a step the machine never asks to be woken
            // at or before the time it just judged (it would wake again and
            // again without acting: a spinning mosha, a stuck simulator).
            if let Some(at) = m.poll_timeout() {
                assert!(at > local, "node {id} asks to wake at {at:?}, not after now {local:?}");
            }
            for c in out.commands {
                self.execute(id, c, false);
            }
        }
    }

    fn execute(&mut self, id: u32, c: Command, late: bool) {
        let t = self.t;
        match c {
            Command::Persist { version, state } => {
                let n = self.node(id);
                n.disk = Some(*state);
                n.inbox.push(Input::Persisted { version });
            }
            Command::WriteRecord { counter, text } => {
                // The second line is `node ID INCARNATION COUNTER`.
                let inc = text.lines().nth(1).and_then(|l| l.split(' ').nth(2));
                let on_disk = self.nodes[&id].disk.as_ref().map(|d| d.incarnation.to_string());
                if inc.is_none() || inc.map(str::to_string) != on_disk {
                    self.unpersisted_records += 1;
                    self.log.push((t, id, format!("RECORD OF UNPERSISTED INCARNATION {inc:?}")));
                }
                let n = self.node(id);
                n.history.push((t, text));
                n.inbox.push(Input::Written { counter, ok: true });
            }
            Command::Tell { group, level, not_after } => {
                self.log.push((t, id, format!("tell {group} {level}")));
                let starts = !matches!(level.as_str(), "plan" | "test" | "stop");
                let n = self.node(id);
                if n.missing_groups.contains(&group) {
                    let reason = format!("no such group: {group}");
                    n.inbox.push(Input::TellRefused { group, level, reason });
                    return;
                }
                if n.ignored_groups.contains(&group) {
                    return;
                }
                if starts && !late {
                    if let Some(d) = n.late_start {
                        n.late_queue.push((t + d, Command::Tell { group, level, not_after }));
                        return;
                    }
                }
                if not_after.is_some_and(|na| n.local(t) >= na) {
                    n.dropped_late += 1;
                    return;
                }
                let state = match level.as_str() {
                    "test" if n.failing_tests.contains(&group) => GroupState::Failed,
                    "test" => GroupState::Passed,
                    _ => GroupState::Done,
                };
                if level == "stop" {
                    if !n.unkillable {
                        n.procs.remove(&group);
                    }
                } else if starts {
                    n.procs.insert(group.clone());
                    *n.starts.entry(group.clone()).or_default() += 1;
                }
                n.own.groups.insert(group, GroupStatus { level, state });
                let own = n.own.clone();
                n.inbox.push(Input::Own(own));
            }
            Command::KillAllNow => {
                self.log.push((t, id, "kill all".into()));
                let n = self.node(id);
                let confirmed = !n.unkillable || n.procs.is_empty();
                if !n.unkillable {
                    n.procs.clear();
                }
                for st in n.own.groups.values_mut() {
                    *st = GroupStatus { level: "stop".into(), state: GroupState::Done };
                }
                let own = n.own.clone();
                n.inbox.push(Input::Own(own));
                n.inbox.push(Input::KillDone { confirmed });
            }
            Command::Watchdog { epoch, deadline } => self.node(id).watchdog.arm(epoch, deadline),
            Command::Fence { target, reason, guard } => {
                self.log.push((t, id, format!("fence {target:?} {reason:?}")));
                self.fences.push((t, id, target));
                self.fence_jobs.push(FenceJob {
                    at: t + self.fence_ms,
                    by: id,
                    target,
                    guard,
                    healthy_at_issue: self.healthy(target.node),
                });
            }
            Command::Log(notice) => self.log.push((t, id, format!("{notice:?}"))),
        }
    }

    /// Change `id`'s clock rate; its clock stays continuous.
    pub fn set_drift(&mut self, id: u32, ppm: i64) {
        let t = self.t as i64;
        let n = self.node(id);
        let before = n.local(t as u64).0 as i64;
        n.clock_ppm = ppm;
        let after = n.local(t as u64).0 as i64;
        n.clock_offset = (n.clock_offset as i64 + before - after).max(0) as u64;
    }

    /// The operator installs a new `hactl` on every node.
    pub fn set_hactl(&mut self, text: &str) {
        self.hactl = Arc::new(Hactl::parse(text, "hactl").expect("test hactl parses"));
        let h = Arc::clone(&self.hactl);
        for n in self.nodes.values_mut() {
            n.inbox.push(Input::Hactl(Arc::clone(&h)));
        }
    }

    /// `id`'s file now shows `policy` instead of a ranked record.
    pub fn other_policy(&mut self, id: u32, policy: &str) {
        self.other.insert(id, policy.to_string());
    }

    /// `id` publishes ranked records again (delivered afresh).
    pub fn other_policy_ends(&mut self, id: u32) {
        self.other.remove(&id);
        for n in self.nodes.values_mut() {
            n.delivered.remove(&id);
        }
    }

    /// Stop `group` on `id` under its machine's feet, as a shutdown or an
    /// operator's `clinit` tell would.
    pub fn stop_locally(&mut self, id: u32, group: &str) {
        let stop = Command::Tell { group: group.into(), level: "stop".into(), not_after: None };
        self.execute(id, stop, true);
    }

    /// Every group placed and settled: for tests that need a steady start.
    pub fn settle(&mut self, limit: u64) -> bool {
        let groups: Vec<String> = self.hactl.groups.keys().cloned().collect();
        self.run_until_cond(limit, |w| groups.iter().all(|g| w.runs(g).len() == 1))
    }
}
