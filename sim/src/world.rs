//! The simulated world: N production [`ClusterNode`]s on a virtual clock.
//!
//! One event loop pops the earliest event (time, then scheduling order),
//! advances the clock and lets it act: a node's monitor cycle, an init
//! timer, a child's exit, a membership view change, a fault. Each node input
//! is built as a trace [`Record`] and applied through [`crate::host`], the
//! same path `replay` takes. What the nodes do comes back as backend calls
//! (spawns, signals, status writes), which the world turns into future
//! events and shared-filesystem versions, and as group state notices, which
//! feed the [invariant tracker](crate::invariants).
//!
//! The node cycle mirrors production `mosha`: list members (this node's
//! own view), read every member's clstat through the shared filesystem
//! (age = reader's wall clock − writer's mtime), replicate hactl with
//! `getlatest`, then run [`ClusterNode::cycle`] and carry out fencing and
//! publishing; the next cycle is at the monitor's wake-up, never sooner than
//! production's minimum pause.

use crate::config::{ConfigError, SimConfig};
use crate::faults::{self, Fault, Schedule};
use crate::fs::{FsConditions, Slot, Version};
use crate::host::{self, Output};
use crate::invariants::Tracker;
use crate::membership::{Membership, Pending};
use crate::processes::{SimProcesses, SimStore};
use crate::queue::Queue;
use crate::seeds::{self, Stream};
use crate::trace::{TraceMode, TraceSink, TraceSummary};
use crate::workload::{self, Built};
use clinit_engine::cluster::{self, ClusterNode, Event, External};
use clinit_engine::hactl::{Hactl, Want};
use clinit_engine::init::{self, InitConfig, Input};
use clinit_engine::monitor::replicate::{getlatest, FileInfo};
use clinit_engine::monitor::{NodeStatus, Notice, Observation};
use clinit_engine::process::ProcId;
use clinit_engine::status::ClStat;
use clinit_engine::time::Millis;
use clinit_engine::trace::{Header, Record};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Wall clocks start here (ms since the epoch), so skewed clocks stay positive.
const EPOCH_MS: i64 = 1_700_000_000_000;

type Node = ClusterNode<SimProcesses, SimStore>;

#[derive(Debug)]
enum Ev {
    Boot { node: u32 },
    Cycle { node: u32, inc: u32 },
    Decide { node: u32, inc: u32 },
    Tick { node: u32, inc: u32 },
    Exit { node: u32, inc: u32, id: ProcId },
    View(Pending),
    Fault(usize),
    FaultEnd(usize),
    Quiet,
    HaltCheck { node: u32, inc: u32, since: Millis },
    FenceKill { node: u32 },
}

/// One node's place in the world.
struct NodeSlot {
    host: Option<Node>,
    incarnation: u32,
    /// Wall-clock offset, ms.
    skew: i64,
    /// Extra read→decide delay (slow node).
    lag: Millis,
    tick_at: Option<Millis>,
    /// The last observation, reused: only entries whose file changed are
    /// rebuilt (ages are updated in place).
    obs: Option<Observation>,
    /// Serial of the hactl copy cached in `obs`.
    hactl_seen: u64,
    /// An observation read but not yet decided on (slow node).
    pending: Option<Observation>,
}

/// Fault episodes in force.
#[derive(Default)]
struct Active {
    slow_fs: Vec<(usize, Millis)>,
    read_failures: Vec<(usize, f64)>,
    stale_reads: Vec<(usize, f64)>,
    slow_node: Vec<(usize, u32, Millis)>,
    partition: Option<usize>,
}

/// How a run reports and records.
pub struct RunOptions {
    pub trace: TraceMode,
    /// Stream the trace to this writer too (`--trace FILE`).
    pub trace_out: Option<Box<dyn Write + Send>>,
    /// Keep a human-readable event log for violation excerpts.
    pub event_log: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { trace: TraceMode::Hash, trace_out: None, event_log: true }
    }
}

impl RunOptions {
    /// Fastest: no trace, no event log (sweeps, benches).
    pub fn fast() -> Self {
        RunOptions { trace: TraceMode::Off, trace_out: None, event_log: false }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub seed: u64,
    pub config: SimConfig,
    pub schedule: Schedule,
    pub tracker: Tracker,
    pub events: u64,
    pub wall: Duration,
    pub simulated: Millis,
    pub trace: Option<TraceSummary>,
    pub trace_lines: Vec<String>,
    pub trace_error: Option<String>,
}

pub struct World {
    cfg: SimConfig,
    seed: u64,
    now: Millis,
    queue: Queue<Ev>,
    rng_fs: ChaCha8Rng,
    rng_members: ChaCha8Rng,
    nodes: Vec<NodeSlot>,
    members: Membership,
    clstat: Vec<Slot<ClStat>>,
    hactl: Vec<Slot<Hactl>>,
    base: FsConditions,
    cond: FsConditions,
    active: Active,
    schedule: Schedule,
    quiet: bool,
    /// Which node each `CrashOwner` episode crashed.
    crash_owner: BTreeMap<usize, u32>,
    /// hactl edits not yet undone: episode → (node, group).
    open_edits: BTreeMap<usize, (u32, String)>,
    tracker: Tracker,
    trace: TraceSink,
    built: Built,
    init_cfg: InitConfig,
    events: u64,
    serial: u64,
    members_buf: Vec<u32>,
    candidates: Vec<(u32, Option<FileInfo>)>,
}

/// Run one seed of a scenario.
pub fn run(cfg: &SimConfig, seed: u64, opts: RunOptions) -> Result<RunResult, ConfigError> {
    let started = Instant::now();
    let mut world = World::new(cfg, seed, opts)?;
    world.run_to_end();
    Ok(world.finish(started.elapsed()))
}

impl World {
    pub fn new(cfg: &SimConfig, seed: u64, opts: RunOptions) -> Result<World, ConfigError> {
        cfg.validate()?;
        let n = cfg.nodes as usize;
        let built = workload::build(cfg, &mut seeds::rng(seed, Stream::Workload))?;
        let quiet_start = cfg.quiet_start();
        let schedule = match &cfg.schedule {
            Some(s) => s.clone(),
            None => {
                let mut rng = seeds::rng(seed, Stream::Faults);
                let kinds = cfg.faults.resolve(&mut rng);
                let from = cfg.world.warmup.min(quiet_start);
                let groups: Vec<String> = built.wanted.iter().map(|(g, _)| g.clone()).collect();
                faults::draw(&kinds, cfg.nodes, &groups, from, quiet_start, &mut rng)
            }
        };
        let mut tracker = Tracker::new(
            seed,
            cfg.nodes,
            &built.wanted,
            built.eligible.clone(),
            quiet_start,
            cfg.liveness_bound(),
        );
        tracker.log_enabled = opts.event_log;
        let mut trace = TraceSink::new(opts.trace, opts.trace_out);
        trace.header(&Header::new("clinit-sim", env!("CARGO_PKG_VERSION"), Some(seed), cfg));
        let base = FsConditions::healthy(cfg.world.fs_delay, cfg.world.fs_jitter);
        let mut world = World {
            seed,
            now: Millis::ZERO,
            queue: Queue::default(),
            rng_fs: seeds::rng(seed, Stream::Fs),
            rng_members: seeds::rng(seed, Stream::Membership),
            nodes: (0..=n)
                .map(|_| NodeSlot {
                    host: None,
                    incarnation: 0,
                    skew: 0,
                    lag: Millis::ZERO,
                    tick_at: None,
                    obs: None,
                    hactl_seen: 0,
                    pending: None,
                })
                .collect(),
            members: Membership::new(n),
            clstat: (0..=n).map(|_| Slot::default()).collect(),
            hactl: Vec::new(),
            base,
            cond: base,
            active: Active::default(),
            schedule,
            quiet: false,
            crash_owner: BTreeMap::new(),
            open_edits: BTreeMap::new(),
            tracker,
            trace,
            init_cfg: cluster::init_config(InitConfig::default(), cfg.timeout()),
            built,
            events: 0,
            serial: 0,
            members_buf: Vec::with_capacity(n + 1),
            candidates: Vec::with_capacity(n + 1),
            cfg: cfg.clone(),
        };
        // Every node has the operator's hactl from before the start.
        let hactl = world.built.hactl.clone();
        world.hactl = (0..=n)
            .map(|_| {
                world.serial += 1;
                Slot::preset(Version {
                    serial: world.serial,
                    mtime: EPOCH_MS - 3_600_000,
                    data: hactl.clone(),
                })
            })
            .collect();
        let mut boot = seeds::rng(seed, Stream::Boot);
        for node in 1..=cfg.nodes {
            let spread = cfg.world.start_spread.0;
            let at = if spread > 0 { Millis(boot.random_range(0..spread)) } else { Millis::ZERO };
            world.queue.push(at, Ev::Boot { node });
        }
        for i in 0..world.schedule.faults.len() {
            let at = world.schedule.faults[i].at;
            world.queue.push(at, Ev::Fault(i));
        }
        if quiet_start < cfg.duration {
            world.queue.push(quiet_start, Ev::Quiet);
        }
        Ok(world)
    }

    /// Process every event up to the configured duration.
    pub fn run_to_end(&mut self) {
        let end = self.cfg.duration;
        self.run_until(end);
    }

    /// Process events up to `until` (inclusive).
    pub fn run_until(&mut self, until: Millis) {
        while let Some((at, ev)) = self.queue.pop() {
            if at > until {
                self.queue.push(at, ev);
                break;
            }
            self.now = at;
            self.events += 1;
            self.handle(ev);
        }
        self.now = self.now.max(until);
    }

    pub fn finish(mut self, wall: Duration) -> RunResult {
        let end = self.cfg.duration;
        self.tracker.finish(end);
        let trace = self.trace.finish();
        RunResult {
            seed: self.seed,
            config: self.cfg,
            schedule: self.schedule,
            tracker: self.tracker,
            events: self.events,
            wall,
            simulated: end,
            trace,
            trace_lines: self.trace.take_lines(),
            trace_error: self.trace.error().map(String::from),
        }
    }

    pub fn now(&self) -> Millis {
        self.now
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    fn wall(&self, node: u32) -> i64 {
        EPOCH_MS + self.now.0 as i64 + self.nodes[node as usize].skew
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Boot { node } => self.boot(node),
            Ev::Cycle { node, inc } => self.read_phase(node, inc),
            Ev::Decide { node, inc } => {
                if self.live(node, inc) {
                    if let Some(obs) = self.nodes[node as usize].pending.take() {
                        self.decide(node, obs);
                    }
                }
            }
            Ev::Tick { node, inc } => self.tick(node, inc),
            Ev::Exit { node, inc, id } => self.exit(node, inc, id),
            Ev::View(p) => {
                if self.members.apply(&p) {
                    let (o, t, up) = (p.observer, p.target, p.present);
                    self.tracker.log(self.now, o, t, || {
                        format!("membership now {} node {t}", if up { "lists" } else { "drops" })
                    });
                }
            }
            Ev::Fault(i) => self.fault(i),
            Ev::FaultEnd(i) => self.fault_end(i),
            Ev::Quiet => self.quiet(),
            Ev::HaltCheck { node, inc, since } => {
                if self.live(node, inc) {
                    let busy: Vec<String> = self.nodes[node as usize]
                        .host
                        .as_ref()
                        .map(|h| h.busy_groups().into_iter().map(|(g, _)| g).collect())
                        .unwrap_or_default();
                    self.tracker.check_halt(self.now, node, since, &busy);
                }
            }
            Ev::FenceKill { node } => {
                if self.nodes[node as usize].host.is_some() {
                    self.tracker.metrics.fence_kills += 1;
                    self.crash(node, "fenced");
                }
            }
        }
    }

    fn live(&self, node: u32, inc: u32) -> bool {
        let slot = &self.nodes[node as usize];
        slot.incarnation == inc && slot.host.is_some()
    }

    // ---- node lifecycle ----

    fn boot(&mut self, node: u32) {
        let now = self.now;
        let slot = &mut self.nodes[node as usize];
        if slot.host.is_some() {
            return;
        }
        slot.incarnation += 1;
        let inc = slot.incarnation;
        let rec = Record::Start {
            node,
            at: now,
            policy: self.cfg.policy.clone(),
            init: self.init_cfg.clone(),
            monitor_seed: seeds::derive(
                self.seed,
                Stream::Monitor,
                u64::from(node),
                u64::from(inc),
            ),
            cltab: (*self.built.cltab).clone(),
        };
        let procs = SimProcesses::new(
            node,
            self.built.commands.clone(),
            seeds::node_rng(self.seed, Stream::Processes, node, inc),
        );
        self.trace.record(&rec);
        let Some((host, out)) = host::start(&rec, None, procs, SimStore::default()) else { return };
        self.trace.decisions(&out);
        let slot = &mut self.nodes[node as usize];
        slot.host = Some(host);
        slot.tick_at = None;
        slot.obs = None;
        slot.pending = None;
        slot.hactl_seen = 0;
        self.tracker.node_up(now, node);
        self.tracker.log(now, node, 0, || format!("boots (incarnation {inc})"));
        self.after(node, &out);
        self.queue.push(now, Ev::Cycle { node, inc });
    }

    fn crash(&mut self, node: u32, why: &str) {
        let now = self.now;
        if self.nodes[node as usize].host.take().is_none() {
            return;
        }
        self.nodes[node as usize].pending = None;
        self.trace.record(&Record::Crash { node, at: now });
        self.tracker.metrics.crashes += 1;
        self.tracker.node_down(now, node);
        self.tracker
            .log(now, node, 0, || format!("CRASHES ({why}): its processes die, its files stay"));
        let pending = {
            let (rng, w) = (&mut self.rng_members, &self.cfg.world);
            self.members.crash(now, node, |present| detect(rng, w, present))
        };
        self.schedule_views(pending);
    }

    fn restart(&mut self, node: u32) {
        if self.nodes[node as usize].host.is_some() {
            return;
        }
        self.tracker.metrics.restarts += 1;
        let now = self.now;
        let pending = {
            let (rng, w) = (&mut self.rng_members, &self.cfg.world);
            self.members.restart(now, node, |present| detect(rng, w, present))
        };
        self.schedule_views(pending);
        self.boot(node);
    }

    fn schedule_views(&mut self, pending: Vec<Pending>) {
        for p in pending {
            self.queue.push(p.at, Ev::View(p));
        }
    }

    // ---- inputs to a node ----

    /// Trace and apply one record to a live node.
    fn apply(&mut self, node: u32, rec: &Record) -> Output {
        self.trace.record(rec);
        let now = self.now;
        let Some(host) = self.nodes[node as usize].host.as_mut() else { return Output::Nothing };
        host.driver.processes.now = now;
        let out = host::apply(host, rec);
        self.trace.decisions(&out);
        out
    }

    /// Carry out what the node's backends were asked to do, and watch its
    /// group states.
    fn after(&mut self, node: u32, out: &Output) {
        let now = self.now;
        for ex in out.executed() {
            if let clinit_engine::driver::Executed::Action(init::Action::Notice(
                init::Notice::GroupState { group, level, state },
            )) = ex
            {
                self.tracker.log(now, node, 0, || format!("{group} {level} {state}"));
                self.tracker.group_state(now, node, group, level, state);
            }
        }
        let wall = self.wall(node);
        let inc = self.nodes[node as usize].incarnation;
        let Some(host) = self.nodes[node as usize].host.as_mut() else { return };
        let written = host.driver.store.written.take();
        let due = std::mem::take(&mut host.driver.processes.due);
        let poll = host.driver.init.poll_timeout();
        if let Some(status) = written {
            let delay = self.fs_delay();
            self.serial += 1;
            let v = Version { serial: self.serial, mtime: wall, data: status };
            self.clstat[node as usize].write(now, delay, v);
        }
        for (at, id) in due {
            self.queue.push(at, Ev::Exit { node, inc, id });
        }
        if let Some(p) = poll {
            let at = p.max(now);
            let slot = &mut self.nodes[node as usize];
            if slot.tick_at.is_none_or(|x| at < x) {
                slot.tick_at = Some(at);
                self.queue.push(at, Ev::Tick { node, inc });
            }
        }
    }

    fn fs_delay(&mut self) -> Millis {
        let j = self.cond.jitter.0;
        let extra = if j > 0 { self.rng_fs.random_range(0..j) } else { 0 };
        self.cond.delay + Millis(extra)
    }

    fn tick(&mut self, node: u32, inc: u32) {
        if !self.live(node, inc) || self.nodes[node as usize].tick_at != Some(self.now) {
            return;
        }
        self.nodes[node as usize].tick_at = None;
        let due = self.nodes[node as usize]
            .host
            .as_ref()
            .and_then(|h| h.driver.init.poll_timeout())
            .is_some_and(|p| p <= self.now);
        let out = if due {
            self.apply(node, &Record::Init { node, at: self.now, input: Input::Tick })
        } else {
            Output::Nothing
        };
        self.after(node, &out);
    }

    fn exit(&mut self, node: u32, inc: u32, id: ProcId) {
        if !self.live(node, inc) {
            return;
        }
        let now = self.now;
        let status = self.nodes[node as usize]
            .host
            .as_mut()
            .and_then(|h| h.driver.processes.take_exit(id, now));
        let Some(status) = status else { return };
        let rec =
            Record::Init { node, at: now, input: Input::Exited { id, status, lingering: false } };
        let out = self.apply(node, &rec);
        self.after(node, &out);
    }

    // ---- the monitor cycle ----

    /// Read membership and files, replicate hactl; decide now or after the
    /// node's read latency.
    fn read_phase(&mut self, node: u32, inc: u32) {
        if !self.live(node, inc) {
            return;
        }
        let now = self.now;
        let me = node as usize;
        self.members.members(node, &mut self.members_buf);
        let members = std::mem::take(&mut self.members_buf);
        let mut obs = self.nodes[me].obs.take().unwrap_or_else(|| Observation {
            now,
            me: node,
            members: Vec::new(),
            nodes: BTreeMap::new(),
            hactl: None,
        });
        obs.now = now;
        obs.me = node;
        if obs.members != members {
            obs.members.clone_from(&members);
            obs.nodes.retain(|k, _| *k != node && members.binary_search(k).is_ok());
        }
        let reader_wall = self.wall(node);
        // Members and the kept statuses are both sorted: walk them side by
        // side, updating in place (ages) and adding what is new afterwards.
        let mut kept = obs.nodes.iter_mut().peekable();
        let mut new = Vec::new();
        for &j in &members {
            if j == node {
                continue;
            }
            while kept.next_if(|(k, _)| **k < j).is_some() {}
            let entry = kept.next_if(|(k, _)| **k == j).map(|(_, s)| s);
            let status = if !self.members.same_side(node, j) {
                NodeStatus::Unreadable { reason: format!("node {j}: no route (partition)") }
            } else if self.cond.read_failure > 0.0
                && self.rng_fs.random_bool(self.cond.read_failure)
            {
                NodeStatus::Unreadable { reason: format!("node {j}: I/O error (simulated)") }
            } else {
                let stale =
                    self.cond.stale_read > 0.0 && self.rng_fs.random_bool(self.cond.stale_read);
                match self.clstat[j as usize].read(now, stale) {
                    None => NodeStatus::Missing,
                    Some(v) => {
                        let age = Millis((reader_wall - v.mtime).max(0) as u64);
                        match entry {
                            // Same content as last cycle (a heartbeat
                            // rewrite): only the age moves.
                            Some(NodeStatus::Read { clstat, age: a })
                                if Arc::ptr_eq(clstat, &v.data) =>
                            {
                                *a = age;
                                continue;
                            }
                            _ => NodeStatus::Read { clstat: v.data.clone(), age },
                        }
                    }
                }
            };
            match entry {
                Some(slot) => *slot = status,
                None => new.push((j, status)),
            }
        }
        obs.nodes.extend(new);
        self.replicate_hactl(node, &members, &mut obs);
        self.members_buf = members;
        let j = self.cfg.world.read_jitter.0;
        let jitter = if j > 0 { self.rng_fs.random_range(0..j) } else { 0 };
        let lag = self.cfg.world.read_latency + Millis(jitter) + self.nodes[me].lag;
        if lag == Millis::ZERO {
            self.decide(node, obs);
        } else {
            self.nodes[me].pending = Some(obs);
            self.queue.push(now + lag, Ev::Decide { node, inc });
        }
    }

    /// The original's `getlatest` on hactl among the members this node
    /// can reach; a newer copy is copied with its mtime (`cp -p`).
    fn replicate_hactl(&mut self, node: u32, members: &[u32], obs: &mut Observation) {
        let now = self.now;
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        for &j in members {
            let v = if j == node {
                self.hactl[j as usize].own()
            } else if self.members.same_side(node, j) {
                self.hactl[j as usize].read(now, false)
            } else {
                None
            };
            let info = v.map(|v| FileInfo { mtime_secs: v.mtime.div_euclid(1000), parses: true });
            candidates.push((j, info));
        }
        let copy_from = getlatest(&candidates, node).copy_from;
        self.candidates = candidates;
        if let Some(from) = copy_from {
            let copy = self.hactl[from as usize].read(now, false).cloned();
            if let Some(src) = copy {
                let delay = self.fs_delay();
                self.serial += 1;
                let v = Version { serial: self.serial, mtime: src.mtime, data: src.data };
                self.hactl[node as usize].write(now, delay, v);
                self.tracker.log(now, node, from, || format!("copies hactl from node {from}"));
            }
        }
        let own = self.hactl[node as usize].own().map(|v| (v.serial, v.data.clone()));
        let slot = &mut self.nodes[node as usize];
        match own {
            Some((serial, data)) if serial != slot.hactl_seen || obs.hactl.is_none() => {
                slot.hactl_seen = serial;
                obs.hactl = Some(data);
            }
            Some(_) => {}
            None => obs.hactl = None,
        }
    }

    /// Run the production cycle on what was read, and carry it out.
    fn decide(&mut self, node: u32, mut obs: Observation) {
        let now = self.now;
        obs.now = now;
        let rec = Record::Cycle { node, adopt: None, obs };
        let out = self.apply(node, &rec);
        if let Record::Cycle { obs, .. } = rec {
            self.nodes[node as usize].obs = Some(obs);
        }
        self.tracker.metrics.cycles += 1;
        self.after(node, &out);
        let Output::Cycle { report, .. } = out else { return };
        let inc = self.nodes[node as usize].incarnation;
        for event in &report.events {
            self.cycle_event(node, inc, event);
        }
        for ext in &report.external {
            match ext {
                External::Fence { node: target } => {
                    let target = *target;
                    self.tracker.metrics.fences += 1;
                    self.tracker.log(now, node, target, || format!("STOMITH node {target}"));
                    if self.cfg.world.fence_kills {
                        self.queue
                            .push(now + self.cfg.world.fence_delay, Ev::FenceKill { node: target });
                    }
                }
                External::Publish(p) => self.tracker.quorum(now, node, p.quorum),
            }
        }
        let next = report.next_wakeup.max(now + self.cfg.world.min_cycle);
        self.queue.push(next, Ev::Cycle { node, inc });
    }

    fn cycle_event(&mut self, node: u32, inc: u32, event: &Event) {
        let now = self.now;
        match event {
            Event::Told { group, level, .. } => {
                self.tracker.metrics.tells += 1;
                self.tracker.log(now, node, 0, || format!("tell {group} {level}"));
            }
            Event::Monitor(Notice::Conflict { group, nodes, .. }) => {
                self.tracker.metrics.collisions += 1;
                self.tracker
                    .log(now, node, 0, || format!("conflict: {group} also on {nodes:?}: stops it"));
            }
            Event::Monitor(Notice::QuorumLost { visible, reference, .. }) => {
                self.tracker.log(now, node, 0, || {
                    format!("QUORUM LOST: sees {visible:?} (reference {reference})")
                });
            }
            Event::Monitor(Notice::Stale { node: stale, age }) => {
                let stale = *stale;
                self.tracker.log(now, node, stale, || format!("node {stale} is stale ({age})"));
            }
            Event::Halting { stopping } => {
                let bound = self.cfg.world.halt_bound;
                let at = self.tracker.halting(now, node, bound);
                self.tracker.log(now, node, 0, || format!("halting {stopping:?}"));
                self.queue.push(at, Ev::HaltCheck { node, inc, since: now });
            }
            Event::Halted => {
                self.tracker.halt_over(node);
                self.tracker.log(now, node, 0, || "halted".into());
            }
            Event::QuorumRegained => {
                self.tracker.halt_over(node);
                self.tracker.log(now, node, 0, || "quorum regained".into());
            }
            _ => {}
        }
    }

    // ---- faults ----

    fn fault(&mut self, i: usize) {
        if self.quiet {
            return;
        }
        let now = self.now;
        let Some(s) = self.schedule.faults.get(i) else { return };
        let fault = s.fault.clone();
        self.tracker.log(now, 0, 0, || format!("FAULT {fault}"));
        match fault {
            Fault::Crash { node, down } => {
                if self.valid(node) {
                    self.crash(node, "fault");
                    self.queue.push(now + down, Ev::FaultEnd(i));
                }
            }
            Fault::HactlEdit { node, group, level, len } => {
                if self.valid(node) && self.nodes[node as usize].host.is_some() {
                    self.edit_hactl(node, &group, &level);
                    self.open_edits.insert(i, (node, group));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::CrashOwner { group, down } => {
                if let Some(&node) = self.tracker.runners(&group).first() {
                    self.crash(node, "fault");
                    self.crash_owner.insert(i, node);
                    self.queue.push(now + down, Ev::FaultEnd(i));
                }
            }
            Fault::Partition { sides, len } => {
                self.active.partition = Some(i);
                self.set_sides(&sides);
                self.queue.push(now + len, Ev::FaultEnd(i));
            }
            Fault::SlowFs { delay, len } => {
                self.active.slow_fs.push((i, delay));
                self.queue.push(now + len, Ev::FaultEnd(i));
            }
            Fault::ReadFailures { p, len } => {
                self.active.read_failures.push((i, p));
                self.queue.push(now + len, Ev::FaultEnd(i));
            }
            Fault::StaleReads { p, len } => {
                self.active.stale_reads.push((i, p));
                self.queue.push(now + len, Ev::FaultEnd(i));
            }
            Fault::Skew { node, offset } => {
                if self.valid(node) {
                    self.nodes[node as usize].skew = offset;
                }
            }
            Fault::SlowNode { node, lag, len } => {
                if self.valid(node) {
                    self.active.slow_node.push((i, node, lag));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::Suspect { observer, target, len } => {
                if self.valid(observer) && self.valid(target) {
                    if let Some(p) = self.members.suspect(observer, target, now + len) {
                        self.tracker
                            .log(now, observer, target, || format!("wrongly drops node {target}"));
                        self.queue.push(p.at, Ev::View(p));
                    }
                }
            }
        }
        self.recompute();
    }

    /// The operator edits node `node`'s own hactl copy (mtime: its clock).
    fn edit_hactl(&mut self, node: u32, group: &str, level: &str) {
        let now = self.now;
        let current = self.hactl[node as usize].own().map(|v| v.data.clone());
        let mut hactl =
            current.map(|h| (*h).clone()).unwrap_or_else(|| (*self.built.hactl).clone());
        let want = hactl
            .groups
            .entry(group.to_string())
            .or_insert_with(|| Want { level: level.to_string(), preferred: Vec::new() });
        want.level = level.to_string();
        let delay = self.fs_delay();
        self.serial += 1;
        let v = Version { serial: self.serial, mtime: self.wall(node), data: Arc::new(hactl) };
        self.hactl[node as usize].write(now, delay, v);
        self.tracker.set_want(now, group, level);
        self.tracker.log(now, node, 0, || format!("operator edits hactl here: {group} {level}"));
    }

    /// Put an edited group back at its original level, on the node where
    /// it was edited (the operator's intent; replication may disagree).
    fn undo_edit(&mut self, i: usize) {
        let Some((node, group)) = self.open_edits.remove(&i) else { return };
        let original = self.built.hactl.get(&group).map(|w| w.level.clone());
        if let Some(level) = original {
            self.edit_hactl(node, &group, &level);
        }
    }

    fn valid(&self, node: u32) -> bool {
        (1..=self.cfg.nodes).contains(&node)
    }

    fn fault_end(&mut self, i: usize) {
        if self.quiet {
            return;
        }
        let Some(s) = self.schedule.faults.get(i) else { return };
        match &s.fault {
            Fault::Crash { node, .. } => self.restart(*node),
            Fault::CrashOwner { .. } => {
                if let Some(node) = self.crash_owner.remove(&i) {
                    self.restart(node);
                }
            }
            Fault::HactlEdit { .. } => self.undo_edit(i),
            Fault::Partition { .. } if self.active.partition == Some(i) => {
                self.active.partition = None;
                self.heal();
            }
            _ => {}
        }
        self.active.slow_fs.retain(|(j, _)| *j != i);
        self.active.read_failures.retain(|(j, _)| *j != i);
        self.active.stale_reads.retain(|(j, _)| *j != i);
        self.active.slow_node.retain(|(j, _, _)| *j != i);
        self.tracker.log(self.now, 0, 0, || format!("fault #{i} over"));
        self.recompute();
    }

    fn set_sides(&mut self, sides: &[u8]) {
        let now = self.now;
        let mut full = vec![0u8; self.cfg.nodes as usize + 1];
        for (i, s) in sides.iter().enumerate().take(full.len()) {
            full[i] = *s;
        }
        let pending = {
            let (rng, w) = (&mut self.rng_members, &self.cfg.world);
            self.members.partition(now, &full, |present| detect(rng, w, present))
        };
        self.schedule_views(pending);
    }

    fn heal(&mut self) {
        let zeros = vec![0u8; self.cfg.nodes as usize + 1];
        if self.members.sides() != zeros.as_slice() {
            self.set_sides(&zeros);
        }
    }

    /// Conditions in force from the base and the active episodes.
    fn recompute(&mut self) {
        let mut c = self.base;
        for &(_, d) in &self.active.slow_fs {
            c.delay = c.delay.max(d);
            c.jitter = c.jitter.max(Millis(d.0 / 2));
        }
        for &(_, p) in &self.active.read_failures {
            c.read_failure = c.read_failure.max(p);
        }
        for &(_, p) in &self.active.stale_reads {
            c.stale_read = c.stale_read.max(p);
        }
        self.cond = c;
        for slot in &mut self.nodes {
            slot.lag = Millis::ZERO;
        }
        for &(_, node, lag) in &self.active.slow_node {
            let slot = &mut self.nodes[node as usize];
            slot.lag = slot.lag.max(lag);
        }
    }

    /// The quiet phase: every fault ends, for good.
    fn quiet(&mut self) {
        self.tracker.log(self.now, 0, 0, || "QUIET PHASE: faults end; liveness must hold".into());
        self.active = Active::default();
        self.heal();
        for slot in &mut self.nodes {
            slot.skew = 0;
        }
        for node in 1..=self.cfg.nodes {
            self.restart(node);
        }
        let open: Vec<usize> = self.open_edits.keys().copied().collect();
        for i in open {
            self.undo_edit(i);
        }
        self.quiet = true;
        self.recompute();
    }
}

/// A membership detection delay.
fn detect(rng: &mut ChaCha8Rng, w: &crate::config::WorldParams, present: bool) -> Millis {
    let base = if present { w.detect_up } else { w.detect_down };
    let j = w.detect_jitter.0;
    base + Millis(if j > 0 { rng.random_range(0..j) } else { 0 })
}
