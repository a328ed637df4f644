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
use crate::processes::{Ended, SimProcesses, SimStore};
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
    Boot {
        node: u32,
    },
    Cycle {
        node: u32,
        inc: u32,
    },
    Decide {
        node: u32,
        inc: u32,
    },
    Tick {
        node: u32,
        inc: u32,
    },
    Exit {
        node: u32,
        inc: u32,
        id: ProcId,
    },
    View(Pending),
    Fault(usize),
    FaultEnd(usize),
    Quiet,
    HaltCheck {
        node: u32,
        inc: u32,
        since: Millis,
    },
    FenceKill {
        node: u32,
    },
    /// A crashed `mosha` starts again on its (live) node.
    MonitorRestart {
        node: u32,
    },
    /// A frozen monitor (`monitor-freeze`) or a paused node (`node-pause`)
    /// resumes.
    Resume {
        node: u32,
    },
    /// The warm-up is over (unavailability counts from here).
    Warmup,
}

/// One node's place in the world.
struct NodeSlot {
    /// The monitor (`mosha`: init machine + HA monitor), while it runs.
    host: Option<Node>,
    /// The machine is up (its processes can run), with or without `host`.
    up: bool,
    /// `mosha` incarnation (every start of the monitor counts).
    incarnation: u32,
    /// The monitor is stopped (SIGSTOP-like): its services run on.
    frozen: bool,
    /// The whole node is paused (VM pause): monitor and services alike.
    paused: bool,
    /// Events of this node held while it is frozen or paused.
    deferred: Vec<(Millis, Ev)>,
    /// Children that exited while the monitor was frozen, reaped at resume.
    reaped: Vec<(ProcId, Ended)>,
    /// Children of earlier `mosha` incarnations (`mosha-crash`), by
    /// incarnation: they live on, unknown to the current monitor.
    orphans: Vec<(u32, SimProcesses)>,
    /// Wall-clock offset, ms.
    skew: i64,
    /// Wall-clock rate error (`clock-drift`: 0.01 runs 1 % fast) since
    /// `drift_since`.
    drift: f64,
    drift_since: Millis,
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
    /// Fault conditions of this node now (from the active episodes).
    spawn_fail: f64,
    linger: Option<Millis>,
    write_fail: f64,
    membership_fail: f64,
}

/// Fault episodes in force.
#[derive(Default)]
struct Active {
    slow_fs: Vec<(usize, Millis)>,
    read_failures: Vec<(usize, f64)>,
    stale_reads: Vec<(usize, f64)>,
    slow_node: Vec<(usize, u32, Millis)>,
    partition: Option<usize>,
    /// (episode, node, p): spawns on that node fail with probability p.
    spawn_fail: Vec<(usize, u32, f64)>,
    /// (episode, node, how long): exited children leave their group behind.
    linger: Vec<(usize, u32, Millis)>,
    /// (episode, p): fence commands fail or hang.
    fence_fail: Vec<(usize, f64)>,
    /// (episode, node, p): the node's status writes fail.
    write_fail: Vec<(usize, u32, f64)>,
    /// (episode, node, p): the node's membership reads fail.
    membership_fail: Vec<(usize, u32, f64)>,
    /// (episode, node, deaf): with `deaf`, `node` cannot read the others'
    /// files; otherwise the others cannot read its files.
    one_way: Vec<(usize, u32, bool)>,
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
    /// Run-time draws of fault episodes (fence failures, membership failures).
    rng_chance: ChaCha8Rng,
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
            rng_chance: seeds::rng(seed, Stream::Chance),
            nodes: (0..=n)
                .map(|_| NodeSlot {
                    host: None,
                    up: false,
                    incarnation: 0,
                    frozen: false,
                    paused: false,
                    deferred: Vec::new(),
                    reaped: Vec::new(),
                    orphans: Vec::new(),
                    skew: 0,
                    drift: 0.0,
                    drift_since: Millis::ZERO,
                    lag: Millis::ZERO,
                    tick_at: None,
                    obs: None,
                    hactl_seen: 0,
                    pending: None,
                    spawn_fail: 0.0,
                    linger: None,
                    write_fail: 0.0,
                    membership_fail: 0.0,
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
        world.queue.push(cfg.world.warmup.min(quiet_start), Ev::Warmup);
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
        let slot = &self.nodes[node as usize];
        let drift = if slot.drift != 0.0 {
            (self.now.saturating_sub(slot.drift_since).0 as f64 * slot.drift) as i64
        } else {
            0
        };
        EPOCH_MS + self.now.0 as i64 + slot.skew + drift
    }

    fn handle(&mut self, ev: Ev) {
        // A frozen monitor or a paused node acts on nothing until it
        // resumes; a child of a frozen monitor still dies on time (the
        // monitor reaps it later).
        let held = match &ev {
            Ev::Cycle { node, .. } | Ev::Decide { node, .. } | Ev::Tick { node, .. } => {
                let slot = &self.nodes[*node as usize];
                (slot.frozen || slot.paused).then_some(*node)
            }
            Ev::Exit { node, .. } => self.nodes[*node as usize].paused.then_some(*node),
            _ => None,
        };
        if let Some(node) = held {
            let now = self.now;
            self.nodes[node as usize].deferred.push((now, ev));
            return;
        }
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
            Ev::Exit { node, inc, id } => self.exit(node, inc, id, self.now),
            Ev::MonitorRestart { node } => self.start_monitor(node),
            Ev::Resume { node } => self.resume(node),
            Ev::Warmup => self.tracker.begin_counting(self.now),
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
                if self.nodes[node as usize].up {
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

    /// The machine boots (if it is down) and its `mosha` starts.
    fn boot(&mut self, node: u32) {
        let now = self.now;
        if !self.nodes[node as usize].up {
            self.nodes[node as usize].up = true;
            self.tracker.node_up(now, node);
        }
        self.start_monitor(node);
    }

    /// Start `mosha` (a fresh init machine and monitor) on a live node.
    fn start_monitor(&mut self, node: u32) {
        let now = self.now;
        let slot = &mut self.nodes[node as usize];
        if slot.host.is_some() || !slot.up {
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
        let mut store = SimStore::default();
        store.rng = Some(seeds::node_rng(self.seed, Stream::Store, node, inc));
        self.trace.record(&rec);
        self.tracker.monitor_reset(now, node);
        let Some((host, out)) = host::start(&rec, None, procs, store) else { return };
        self.trace.decisions(&out);
        let slot = &mut self.nodes[node as usize];
        slot.host = Some(host);
        slot.tick_at = None;
        slot.obs = None;
        slot.pending = None;
        slot.hactl_seen = 0;
        slot.frozen = false;
        slot.reaped.clear();
        self.tracker.log(now, node, 0, || format!("mosha starts (incarnation {inc})"));
        self.after(node, &out);
        self.queue.push(now, Ev::Cycle { node, inc });
        self.refresh_health();
    }

    /// The machine dies: its monitor and every process (orphans too).
    fn crash(&mut self, node: u32, why: &str) {
        let now = self.now;
        let slot = &mut self.nodes[node as usize];
        if !slot.up {
            return;
        }
        slot.up = false;
        slot.frozen = false;
        slot.paused = false;
        slot.deferred.clear();
        slot.reaped.clear();
        slot.orphans.clear();
        slot.pending = None;
        if slot.host.take().is_some() {
            self.trace.record(&Record::Crash { node, at: now });
        }
        self.tracker.metrics.crashes += 1;
        self.tracker.node_down(now, node);
        self.tracker
            .log(now, node, 0, || format!("CRASHES ({why}): its processes die, its files stay"));
        let pending = {
            let (rng, w) = (&mut self.rng_members, &self.cfg.world);
            self.members.crash(now, node, |present| detect(rng, w, present))
        };
        self.schedule_views(pending);
        self.refresh_health();
    }

    /// `mosha` is killed with -9: the node and its children live on, as
    /// orphans the next incarnation does not know (spec W13).
    fn mosha_crash(&mut self, node: u32) {
        let now = self.now;
        let slot = &mut self.nodes[node as usize];
        if !slot.up || slot.paused {
            return;
        }
        let Some(host) = slot.host.take() else { return };
        slot.frozen = false;
        slot.pending = None;
        slot.reaped.clear();
        slot.deferred.retain(|(_, ev)| matches!(ev, Ev::Exit { .. }));
        let inc = slot.incarnation;
        let orphans = host.driver.processes;
        let left = orphans.service_groups();
        slot.orphans.push((inc, orphans));
        self.trace.record(&Record::Crash { node, at: now });
        self.tracker.metrics.monitor_crashes += 1;
        self.tracker.orphaned(now, node, &left);
        self.tracker.monitor_reset(now, node);
        self.tracker.log(now, node, 0, || {
            format!("MOSHA KILLED -9: its children {left:?} live on as orphans")
        });
        self.refresh_health();
    }

    /// The monitor (or the whole node) stops acting until [`Ev::Resume`].
    fn hold(&mut self, node: u32, pause: bool) {
        let now = self.now;
        let slot = &mut self.nodes[node as usize];
        if !slot.up || slot.paused || (!pause && (slot.frozen || slot.host.is_none())) {
            return;
        }
        if pause {
            slot.paused = true;
            self.tracker.log(now, node, 0, || "NODE PAUSED (VM): monitor and services".into());
            let pending = {
                let (rng, w) = (&mut self.rng_members, &self.cfg.world);
                self.members.crash(now, node, |present| detect(rng, w, present))
            };
            self.schedule_views(pending);
        } else {
            slot.frozen = true;
            self.tracker.log(now, node, 0, || "MONITOR FROZEN (SIGSTOP): services run on".into());
        }
        self.refresh_health();
    }

    /// A frozen monitor or a paused node resumes: what happened meanwhile
    /// reaches it now.
    fn resume(&mut self, node: u32) {
        let now = self.now;
        let slot = &mut self.nodes[node as usize];
        if !slot.frozen && !slot.paused {
            return;
        }
        let was_paused = slot.paused;
        slot.frozen = false;
        slot.paused = false;
        slot.tick_at = None;
        let deferred = std::mem::take(&mut slot.deferred);
        let reaped = std::mem::take(&mut slot.reaped);
        let inc = slot.incarnation;
        self.tracker.log(now, node, 0, || "resumes".into());
        if was_paused {
            let pending = {
                let (rng, w) = (&mut self.rng_members, &self.cfg.world);
                self.members.restart(now, node, |present| detect(rng, w, present))
            };
            self.schedule_views(pending);
        }
        for (id, ended) in reaped {
            self.reap(node, inc, id, ended);
        }
        for (at, ev) in deferred {
            match ev {
                // A child due while the node was paused ends now (its
                // time did not run); the process table sees it now.
                Ev::Exit { node, inc, id } => self.exit(node, inc, id, at),
                Ev::Tick { .. } => {}
                ev => self.queue.push(now, ev),
            }
        }
        self.after(node, &Output::Nothing);
        self.refresh_health();
    }

    /// After a crash (`down` elapsed) or at the quiet phase: the machine
    /// boots, or a dead `mosha` starts again, or a held node resumes.
    fn restart(&mut self, node: u32) {
        self.resume(node);
        let slot = &self.nodes[node as usize];
        if slot.up {
            if slot.host.is_none() {
                self.start_monitor(node);
            }
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

    /// Recompute every node's ground-truth health for the checker: up, its
    /// monitor running, not frozen or paused, its writes not failing, and
    /// able to exchange files both ways with a majority of the configured
    /// nodes.
    fn refresh_health(&mut self) {
        let now = self.now;
        for node in 1..=self.cfg.nodes {
            let able = self.healthy(node);
            self.tracker.set_able(now, node, able);
        }
    }

    /// `node` is healthy by ground truth (see [`World::refresh_health`]).
    fn healthy(&self, node: u32) -> bool {
        let slot = &self.nodes[node as usize];
        // A node whose writes fail (`write-fail`) cannot exchange files:
        // its status goes stale however well its services run.
        if !slot.up || slot.host.is_none() || slot.frozen || slot.paused || slot.write_fail > 0.0 {
            return false;
        }
        let peers = (1..=self.cfg.nodes)
            .filter(|&j| {
                let s = &self.nodes[j as usize];
                s.up && !s.paused
                    && self.members.same_side(node, j)
                    && !self.blocked(node, j)
                    && !self.blocked(j, node)
            })
            .count();
        2 * peers > self.cfg.nodes as usize
    }

    /// `reader` cannot read `writer`'s files (a one-way partition).
    fn blocked(&self, reader: u32, writer: u32) -> bool {
        reader != writer
            && self
                .active
                .one_way
                .iter()
                .any(|&(_, n, deaf)| if deaf { n == reader } else { n == writer })
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
        let slot = &mut self.nodes[node as usize];
        let Some(host) = slot.host.as_mut() else { return Output::Nothing };
        host.driver.processes.now = now;
        host.driver.processes.spawn_fail = slot.spawn_fail;
        host.driver.processes.linger = slot.linger;
        host.driver.store.fail = slot.write_fail;
        let out = host::apply(host, rec);
        self.trace.decisions(&out);
        for ex in out.executed() {
            if let clinit_engine::driver::Executed::SpawnFailed { id, reason, .. } = ex {
                let rec = Record::SpawnFailed { node, id: *id, reason: reason.clone() };
                self.trace.record(&rec);
            }
        }
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
        let changes = std::mem::take(&mut host.driver.processes.changes);
        let poll = host.driver.init.poll_timeout();
        for c in changes {
            self.tracker.process(now, node, &c.group, c.started, false);
        }
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

    /// Child `id` of `mosha` incarnation `inc` ends, as planned at `at`
    /// (the process table changes now; the monitor reaps it unless it is
    /// frozen, dead, or of an older incarnation).
    fn exit(&mut self, node: u32, inc: u32, id: ProcId, at: Millis) {
        let now = self.now;
        let slot = &mut self.nodes[node as usize];
        if !slot.up {
            return;
        }
        let current = slot.incarnation == inc && slot.host.is_some();
        let procs = if current {
            slot.host.as_mut().map(|h| &mut h.driver.processes)
        } else {
            slot.orphans.iter_mut().find(|(i, _)| *i == inc).map(|(_, p)| p)
        };
        let Some(procs) = procs else { return };
        procs.now = now;
        let Some(ended) = procs.take_exit(id, at) else { return };
        let changes = std::mem::take(&mut procs.changes);
        let due = std::mem::take(&mut procs.due);
        for c in changes {
            self.tracker.process(now, node, &c.group, c.started, !current);
        }
        for (when, id) in due {
            self.queue.push(when, Ev::Exit { node, inc, id });
        }
        if !current {
            return;
        }
        if self.nodes[node as usize].frozen {
            self.nodes[node as usize].reaped.push((id, ended));
            return;
        }
        self.reap(node, inc, id, ended);
    }

    /// The monitor learns that child `id` ended.
    fn reap(&mut self, node: u32, inc: u32, id: ProcId, ended: Ended) {
        if !self.live(node, inc) {
            return;
        }
        let input = match ended {
            Ended::Exited { status, lingering } => Input::Exited { id, status, lingering },
            Ended::GroupGone => Input::GroupGone { id },
        };
        let rec = Record::Init { node, at: self.now, input };
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
        let p = self.nodes[me].membership_fail;
        if p > 0.0 && self.rng_chance.random_bool(p.min(1.0)) {
            // As production `mosha` does: membership unknown, no decisions
            // this cycle, try again after min(heartbeat, 5 s).
            let retry = cluster::heartbeat_for(self.cfg.timeout()).min(Millis(5_000));
            self.tracker.log(now, node, 0, || "membership read failed: no decisions".into());
            self.queue.push(now + retry, Ev::Cycle { node, inc });
            return;
        }
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
            let status = if !self.members.same_side(node, j) || self.blocked(node, j) {
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
            } else if self.members.same_side(node, j) && !self.blocked(node, j) {
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
                    let healthy = self.valid(target) && self.healthy(target);
                    self.tracker.log(now, node, target, || {
                        format!(
                            "STOMITH node {target} (ground truth: {})",
                            if healthy { "healthy" } else { "not healthy" }
                        )
                    });
                    self.tracker.fence(now, node, target, healthy);
                    let p = self.active.fence_fail.iter().map(|&(_, p)| p).fold(0.0, f64::max);
                    if p > 0.0 && self.rng_chance.random_bool(p.min(1.0)) {
                        self.tracker.metrics.fence_failures += 1;
                        self.tracker.log(now, node, target, || {
                            format!("STOMITH node {target} FAILED (the command failed or hung)")
                        });
                    } else if self.cfg.world.fence_kills {
                        self.queue
                            .push(now + self.cfg.world.fence_delay, Ev::FenceKill { node: target });
                    }
                }
                External::Publish(_) => {}
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
            Fault::MoshaCrash { node, down } => {
                if self.valid(node) {
                    self.mosha_crash(node);
                    self.queue.push(now + down, Ev::MonitorRestart { node });
                }
            }
            Fault::MonitorFreeze { node, len } | Fault::NodePause { node, len } => {
                if self.valid(node) {
                    self.hold(node, matches!(fault, Fault::NodePause { .. }));
                    self.queue.push(now + len, Ev::Resume { node });
                }
            }
            Fault::SpawnFail { node, p, len } => {
                if self.valid(node) {
                    self.active.spawn_fail.push((i, node, p));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::LingeringGroup { node, linger, len } => {
                if self.valid(node) {
                    self.active.linger.push((i, node, linger));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::FenceFail { p, len } => {
                self.active.fence_fail.push((i, p));
                self.queue.push(now + len, Ev::FaultEnd(i));
            }
            Fault::WriteFail { node, p, len } => {
                if self.valid(node) {
                    self.active.write_fail.push((i, node, p));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::MembershipFail { node, p, len } => {
                if self.valid(node) {
                    self.active.membership_fail.push((i, node, p));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::OneWayPartition { node, deaf, len } => {
                if self.valid(node) {
                    self.active.one_way.push((i, node, deaf));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::ClockDrift { node, rate } => {
                if self.valid(node) {
                    // The drift so far becomes an offset; the new rate runs from now.
                    let so_far = self.wall(node) - (EPOCH_MS + now.0 as i64);
                    let slot = &mut self.nodes[node as usize];
                    slot.skew = so_far;
                    slot.drift = rate;
                    slot.drift_since = now;
                }
            }
        }
        self.recompute();
        self.refresh_health();
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
        self.active.spawn_fail.retain(|(j, _, _)| *j != i);
        self.active.linger.retain(|(j, _, _)| *j != i);
        self.active.fence_fail.retain(|(j, _)| *j != i);
        self.active.write_fail.retain(|(j, _, _)| *j != i);
        self.active.membership_fail.retain(|(j, _, _)| *j != i);
        self.active.one_way.retain(|(j, _, _)| *j != i);
        self.tracker.log(self.now, 0, 0, || format!("fault #{i} over"));
        self.recompute();
        self.refresh_health();
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
            slot.spawn_fail = 0.0;
            slot.linger = None;
            slot.write_fail = 0.0;
            slot.membership_fail = 0.0;
        }
        for &(_, node, lag) in &self.active.slow_node {
            let slot = &mut self.nodes[node as usize];
            slot.lag = slot.lag.max(lag);
        }
        for &(_, node, p) in &self.active.spawn_fail {
            let slot = &mut self.nodes[node as usize];
            slot.spawn_fail = slot.spawn_fail.max(p);
        }
        for &(_, node, d) in &self.active.linger {
            let slot = &mut self.nodes[node as usize];
            slot.linger = Some(slot.linger.map_or(d, |x| x.max(d)));
        }
        for &(_, node, p) in &self.active.write_fail {
            let slot = &mut self.nodes[node as usize];
            slot.write_fail = slot.write_fail.max(p);
        }
        for &(_, node, p) in &self.active.membership_fail {
            let slot = &mut self.nodes[node as usize];
            slot.membership_fail = slot.membership_fail.max(p);
        }
    }

    /// The quiet phase: every fault ends, for good.
    fn quiet(&mut self) {
        self.tracker.log(self.now, 0, 0, || "QUIET PHASE: faults end; liveness must hold".into());
        self.active = Active::default();
        self.heal();
        for slot in &mut self.nodes {
            slot.skew = 0;
            slot.drift = 0.0;
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
        self.refresh_health();
    }
}

/// A membership detection delay.
fn detect(rng: &mut ChaCha8Rng, w: &crate::config::WorldParams, present: bool) -> Millis {
    let base = if present { w.detect_up } else { w.detect_down };
    let j = w.detect_jitter.0;
    base + Millis(if j > 0 { rng.random_range(0..j) } else { 0 })
}
