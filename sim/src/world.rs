//! The simulated world: N production cluster drivers on a virtual clock.
//!
//! Each node runs a [`ClusterDriver`], the sans-IO cluster loop `mosha`
//! runs: it owns the node's init machine and monitor and every cluster
//! rule (membership, reads with deadlines, `hactl`/`cltab` replication and
//! adoption, staleness, heartbeats, write retries). The world is only its
//! **executor**: it carries out the driver's commands against a simulated
//! shared filesystem, membership source and process table, and feeds the
//! results back as inputs, exactly as `mosha` does with real ones. Faults
//! change what those commands return (a read that hangs, a torn copy, a
//! failed write or spawn, a fence that fails) or the world itself (crashes,
//! partitions, paused nodes, frozen or killed monitors, clocks).
//!
//! One event loop pops the earliest event (time, then scheduling order),
//! advances the clock and lets it act: a driver's tick, the answers to its
//! reads, a child's exit, a membership view change, a fault. What the
//! drivers decide comes back as group state notices, which feed the
//! [invariant tracker](crate::invariants) together with the process
//! table's ground truth; each driver's trace tap gives the trace records.

use crate::config::{ConfigError, MembershipModel, SimConfig};
use crate::faults::{self, Fault, Schedule};
use crate::fs::{FsConditions, Slot, Version};
use crate::invariants::Tracker;
use crate::membership::{Membership, Pending};
use crate::processes::{Ended, SimProcesses};
use crate::queue::Queue;
use crate::seeds::{self, Stream};
use crate::trace::{TraceMode, TraceSink, TraceSummary};
use crate::workload::{self, Built};
use clinit_engine::cltab::Cltab;
use clinit_engine::cluster::{
    ClusterCommand, ClusterConfig, ClusterDriver, ClusterEvent, ClusterInput, ContentId, Event,
    FenceFailure, FileAsk, FileRead, FileReport, FileVersion, IoFailure, MembershipReport,
    MembershipSource, RecordParses, SharedFile, SpawnFailure, WallMs,
};
use clinit_engine::driver::Processes;
use clinit_engine::hactl::{Hactl, Want};
use clinit_engine::init;
use clinit_engine::monitor::{replica_version, Notice, PolicyConfig};
use clinit_engine::process::ProcId;
use clinit_engine::status::ClStat;
use clinit_engine::time::Millis;
use clinit_engine::trace::{Header, Record};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Executing `ranked`'s commands (kill, durable state, watchdog, guarded fence).
mod boot_clock;
mod ranked;
/// Membership transitions: the engine's record step and hook order.
mod transitions;

pub use transitions::{
    HistoryFaultCounts, TransitionSummary, FLAP_WINDOW, HOOK_ORDER, NO_FLAP, TRANSITION_AGREE,
    TRANSITION_FORWARD, TRANSITION_JOINER,
};

/// File contents as the shared filesystem holds them.
type Bytes = Arc<[u8]>;

/// The files of one node a `ReadNodes` command asks for.
type FileAsks = Vec<FileAsk>;

/// Wall clocks start here (ms since the epoch), so skewed clocks stay positive.
const EPOCH_MS: i64 = 1_700_000_000_000;

#[derive(Debug)]
enum Ev {
    Boot {
        node: u32,
    },
    /// `poll_timeout` of a driver came.
    Tick {
        node: u32,
        inc: u32,
    },
    /// Answers to a driver's commands (reads, fences) arrive.
    Answer {
        node: u32,
        inc: u32,
        inputs: Vec<ClusterInput>,
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
    /// `ranked`: the node's watchdog process looks at its deadline. Only
    /// the event of the node's current `watchdog_gen` acts: re-arming
    /// schedules a new look and retires the old one (one pending look per
    /// node, not one per lease renewal).
    Watchdog {
        node: u32,
        gen: u64,
    },
    /// A fenced node boots again (`fence_reboot`).
    Reboot {
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
    /// A step of the node's transition recorder (its generation `gen`).
    Record {
        node: u32,
        inc: u32,
        gen: u64,
    },
    /// A membership hook of incarnation `inc` ends.
    HookDone {
        node: u32,
        inc: u32,
        number: u64,
    },
}

/// One node's files on the shared filesystem (`/mfs/<node>/...`).
#[derive(Default)]
struct Files {
    clstat: Slot<[u8]>,
    hactl: Slot<[u8]>,
    cltab: Slot<[u8]>,
    heartbeat: Slot<[u8]>,
    hastat: Slot<[u8]>,
}

impl Files {
    fn get(&mut self, file: SharedFile) -> &mut Slot<[u8]> {
        match file {
            SharedFile::Clstat => &mut self.clstat,
            SharedFile::Hactl => &mut self.hactl,
            SharedFile::Cltab => &mut self.cltab,
            SharedFile::Heartbeat => &mut self.heartbeat,
            SharedFile::Hastat => &mut self.hastat,
        }
    }
}

/// One node's place in the world.
struct NodeSlot {
    /// The monitor (`mosha`: its cluster driver), while it runs.
    /// Boxed: the event loop takes it out and puts it back for every
    /// input, and moving the whole driver cost a few percent of a run.
    driver: Option<Box<ClusterDriver>>,
    /// The children of the current `mosha` incarnation.
    procs: Option<SimProcesses>,
    /// The machine is up (its processes can run), with or without `driver`.
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
    /// The orphan count last given to the current monitor
    /// ([`ClusterInput::Leftovers`]).
    leftovers_told: Option<usize>,
    /// Wall-clock offset, ms.
    skew: i64,
    /// Wall-clock rate error (`clock-drift`: 0.01 runs 1 % fast) since
    /// `drift_since`.
    drift: f64,
    drift_since: Millis,
    /// Extra delay of read answers (slow node).
    lag: Millis,
    tick_at: Option<Millis>,
    /// The last clstat written, its content identity and bytes: a
    /// heartbeat rewrite of the same content keeps its identity.
    last_clstat: Option<(ClStat, u64, Bytes)>,
    /// Fault conditions of this node now (from the active episodes).
    spawn_fail: f64,
    linger: Option<Millis>,
    write_fail: f64,
    membership_fail: f64,
    /// `ranked`: the durable local state (local disk: survives
    /// `mosha-crash` and machine crashes) and the node's watchdog process.
    durable: Option<clinit_engine::monitor::ranked::Durable>,
    watchdog: clinit_engine::monitor::ranked::watchdog::Watchdog,
    watchdog_logged: bool,
    /// The watchdog's pending look: its generation and time (boot clock).
    watchdog_gen: u64,
    watchdog_at: Option<Millis>,
    /// The node's boot clock (`ranked` runs on it; see `boot_clock`).
    boot: boot_clock::BootClock,
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
    /// (episode, p): fence commands report success without killing.
    fence_no_kill: Vec<(usize, f64)>,
    /// (episode, node, p): the node's status writes fail.
    write_fail: Vec<(usize, u32, f64)>,
    /// (episode, node, p): the node's membership reads fail.
    membership_fail: Vec<(usize, u32, f64)>,
    /// (episode, node, deaf): with `deaf`, `node` cannot read the others'
    /// files; otherwise the others cannot read its files.
    one_way: Vec<(usize, u32, bool)>,
    /// (episode, node): reads of the node's directory never answer.
    read_hang: Vec<(usize, u32)>,
    /// (episode, node): copies on the node leave a half-written file.
    torn_copy: Vec<(usize, u32)>,
    /// (episode, node): children started there survive every kill.
    d_state: Vec<(usize, u32)>,
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
    /// Membership transitions and their hooks.
    pub transitions: TransitionSummary,
}

pub struct World {
    cfg: SimConfig,
    seed: u64,
    now: Millis,
    /// (fencer, seq) of `ranked` fences of a lost tie-breaker under way.
    tie_fences: std::collections::BTreeSet<(u32, u64)>,
    queue: Queue<Ev>,
    rng_fs: ChaCha8Rng,
    rng_members: ChaCha8Rng,
    /// Run-time draws of fault episodes (fence failures, membership failures).
    rng_chance: ChaCha8Rng,
    nodes: Vec<NodeSlot>,
    members: Membership,
    files: Vec<Files>,
    base: FsConditions,
    cond: FsConditions,
    active: Active,
    schedule: Schedule,
    quiet: bool,
    /// Reads that hang (`read-hang`): (reader, incarnation, seq, target,
    /// files). They answer, late, when the hang ends.
    hung: Vec<(u32, u32, u64, u32, FileAsks)>,
    /// Which node each `CrashOwner` episode crashed.
    crash_owner: BTreeMap<usize, u32>,
    /// hactl edits not yet undone: episode → (node, group).
    open_edits: BTreeMap<usize, (u32, String)>,
    /// Standby episodes not yet ended: episode → node.
    open_standby: BTreeMap<usize, u32>,
    /// Editor writes caught half-way (`editor-write`): episode → (node,
    /// the whole new file, written when the episode ends).
    open_writes: BTreeMap<usize, (u32, Bytes)>,
    tracker: Tracker,
    trace: TraceSink,
    built: Built,
    events: u64,
    /// Content identities: every distinct write gets the next number.
    serial: u64,
    /// `/mfs/<node>/<file>` by node and [`file_index`], made once.
    paths: Vec<[Arc<str>; 5]>,
    /// Membership transitions: recorders, history files, hooks.
    transitions: transitions::SimTransitions,
    /// `ranked` record parses shared by every node's driver: each record is
    /// parsed once, not once per reader (`RecordParses`).
    parses: Arc<RecordParses>,
}

/// The position of `file` in [`World::paths`].
fn file_index(file: SharedFile) -> usize {
    match file {
        SharedFile::Cltab => 0,
        SharedFile::Hactl => 1,
        SharedFile::Clstat => 2,
        SharedFile::Hastat => 3,
        SharedFile::Heartbeat => 4,
    }
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
            Some(s) => {
                let groups: Vec<String> = built.wanted.iter().map(|(g, _)| g.clone()).collect();
                s.validate(cfg.nodes, Some(&groups), cfg.duration)
                    .map_err(ConfigError::Schedule)?;
                s.clone()
            }
            None => {
                let mut rng = seeds::rng(seed, Stream::Faults);
                let kinds = cfg.faults.resolve(&mut rng);
                let from = cfg.world.warmup.min(quiet_start);
                let groups: Vec<String> = built.wanted.iter().map(|(g, _)| g.clone()).collect();
                let mut drawn =
                    faults::draw(&kinds, cfg.nodes, &groups, from, quiet_start, &mut rng);
                if let Some(cap) = cfg.world.fs_delay_cap {
                    drawn.cap_fs_delays(cap);
                }
                if !cfg.world.drop_faults.is_empty() {
                    drawn.faults.retain(|f| !cfg.world.drop_faults.contains(&f.fault.kind()));
                }
                drawn
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
        tracker.echo = opts.event_log && std::env::var_os("CLINIT_SIM_ECHO_LOG").is_some();
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
                    driver: None,
                    procs: None,
                    up: false,
                    incarnation: 0,
                    frozen: false,
                    paused: false,
                    deferred: Vec::new(),
                    reaped: Vec::new(),
                    orphans: Vec::new(),
                    leftovers_told: None,
                    skew: 0,
                    drift: 0.0,
                    drift_since: Millis::ZERO,
                    lag: Millis::ZERO,
                    tick_at: None,
                    last_clstat: None,
                    spawn_fail: 0.0,
                    linger: None,
                    write_fail: 0.0,
                    membership_fail: 0.0,
                    durable: None,
                    watchdog: Default::default(),
                    watchdog_logged: false,
                    watchdog_gen: 0,
                    watchdog_at: None,
                    boot: Default::default(),
                })
                .collect(),
            members: Membership::new(n),
            files: (0..=n).map(|_| Files::default()).collect(),
            base,
            cond: base,
            active: Active::default(),
            schedule,
            quiet: false,
            crash_owner: BTreeMap::new(),
            hung: Vec::new(),
            tie_fences: Default::default(),
            open_edits: BTreeMap::new(),
            open_standby: BTreeMap::new(),
            open_writes: BTreeMap::new(),
            tracker,
            trace,
            built,
            events: 0,
            serial: 0,
            paths: (0..=n as u32)
                .map(|j| {
                    [
                        SharedFile::Cltab,
                        SharedFile::Hactl,
                        SharedFile::Clstat,
                        SharedFile::Hastat,
                        SharedFile::Heartbeat,
                    ]
                    .map(|f| Arc::from(format!("/mfs/{j}/{f}")))
                })
                .collect(),
            cfg: cfg.clone(),
            transitions: Default::default(),
            parses: Arc::default(),
        };
        // Every node has the operator's hactl and cltab from before the start.
        let hactl: Bytes = Arc::from(world.built.hactl.render().into_bytes());
        let cltab: Bytes = Arc::from(world.built.cltab.render().into_bytes());
        for node in 1..=n {
            for (file, data) in [(SharedFile::Hactl, &hactl), (SharedFile::Cltab, &cltab)] {
                world.serial += 1;
                let v = Version {
                    serial: world.serial,
                    mtime: EPOCH_MS - 3_600_000,
                    data: data.clone(),
                };
                *world.files[node].get(file) = Slot::preset(v);
            }
        }
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
        let transitions = self.transitions_finish();
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
            transitions,
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

    /// The hactl node `node`'s monitor uses now (its last good adopted
    /// copy; `None` while the monitor is down or has no usable copy).
    pub fn adopted_hactl(&self, node: u32) -> Option<Arc<Hactl>> {
        let slot = self.nodes.get(node as usize)?;
        slot.driver.as_ref().and_then(|d| d.hactl().cloned())
    }

    /// The bytes of node `node`'s own hactl file now, as it reads them
    /// (`None`: no file).
    pub fn hactl_file(&self, node: u32) -> Option<Arc<[u8]>> {
        let files = self.files.get(node as usize)?;
        files.hactl.own().map(|v| v.data.clone())
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
            Ev::Answer { node, .. }
            | Ev::Tick { node, .. }
            | Ev::Record { node, .. }
            | Ev::HookDone { node, .. } => {
                let slot = &self.nodes[*node as usize];
                (slot.frozen || slot.paused).then_some(*node)
            }
            Ev::Exit { node, .. } | Ev::Watchdog { node, .. } => {
                self.nodes[*node as usize].paused.then_some(*node)
            }
            _ => None,
        };
        if let Some(node) = held {
            let now = self.now;
            self.nodes[node as usize].deferred.push((now, ev));
            return;
        }
        match ev {
            Ev::Boot { node } => self.boot(node),
            Ev::Reboot { node } => {
                // The quiet phase restarts every node anyway.
                if !self.quiet && !self.nodes[node as usize].up {
                    self.tracker.log(self.now, node, 0, || "reboots after its fence".into());
                    self.restart(node);
                }
            }
            Ev::Answer { node, inc, inputs } => {
                // All answers first (they arrive together), then carry out
                // what they caused: one pump per batch, not per member.
                if self.live(node, inc) {
                    let now = self.local_now(node);
                    if let Some(driver) = self.nodes[node as usize].driver.as_mut() {
                        for input in inputs {
                            driver.handle(now, input);
                        }
                    }
                    self.pump(node);
                }
            }
            Ev::Tick { node, inc } => self.tick(node, inc),
            Ev::Exit { node, inc, id } => self.exit(node, inc, id, self.now),
            Ev::MonitorRestart { node } => self.start_monitor(node),
            Ev::Resume { node } => self.resume(node),
            Ev::Warmup => self.tracker.begin_counting(self.now),
            Ev::Record { node, inc, gen } => self.transitions_step(node, inc, gen),
            Ev::HookDone { node, inc, number } => self.transitions_hook_done(node, inc, number),
            Ev::View(p) => {
                if self.members.apply(&p) {
                    let (o, t, up) = (p.observer, p.target, p.present);
                    self.tracker.log(self.now, o, t, || {
                        format!("membership now {} node {t}", if up { "lists" } else { "drops" })
                    });
                }
            }
            Ev::Fault(i) => {
                self.transitions_fault(i, true);
                self.fault(i)
            }
            Ev::FaultEnd(i) => {
                self.transitions_fault(i, false);
                self.fault_end(i)
            }
            Ev::Quiet => self.quiet(),
            Ev::HaltCheck { node, inc, since } => {
                if self.live(node, inc) {
                    let busy: Vec<String> = self.nodes[node as usize]
                        .driver
                        .as_ref()
                        .map(|d| d.node().busy_groups().into_iter().map(|(g, _)| g).collect())
                        .unwrap_or_default();
                    self.tracker.check_halt(self.now, node, since, &busy);
                }
            }
            Ev::Watchdog { node, gen } => {
                let slot = &mut self.nodes[node as usize];
                if slot.watchdog_gen == gen {
                    slot.watchdog_at = None;
                    self.watchdog_check(node);
                }
            }
            Ev::FenceKill { node } => {
                if self.nodes[node as usize].up {
                    self.tracker.metrics.fence_kills += 1;
                    self.crash(node, "fenced");
                    if let Some(after) = self.cfg.world.fence_reboot {
                        self.queue.push(self.now + after, Ev::Reboot { node });
                    }
                }
            }
        }
    }

    fn live(&self, node: u32, inc: u32) -> bool {
        let slot = &self.nodes[node as usize];
        slot.incarnation == inc && slot.driver.is_some()
    }

    // ---- node lifecycle ----

    /// The machine boots (if it is down) and its `mosha` starts.
    fn boot(&mut self, node: u32) {
        let now = self.now;
        if !self.nodes[node as usize].up {
            self.nodes[node as usize].up = true;
            self.boot_clock_start(node);
            self.watchdog_reset(node);
            self.tracker.node_up(now, node);
        }
        self.start_monitor(node);
    }

    /// Start `mosha` (a fresh cluster driver: init machine and monitor) on
    /// a live node, with the node's own cltab file as its local table.
    fn start_monitor(&mut self, node: u32) {
        let now = self.now;
        let me = node as usize;
        if self.nodes[me].driver.is_some() || !self.nodes[me].up {
            return;
        }
        // As production's start-up does (`mosha` stops what its killed
        // predecessor left before it starts anything, and never adopts
        // it: peers may have taken the groups over meanwhile): SIGKILL the
        // orphans' process groups now. Production escalates INT → TERM →
        // KILL and waits at most the escalation's `kill_after`; the
        // simulator takes the last step at once. Survivors (D state) stay
        // and are reported to the new monitor as leftovers.
        if !self.nodes[me].orphans.is_empty() {
            let killed = self.kill_orphans(node);
            if killed > 0 {
                self.tracker.metrics.orphans_stopped += killed as u64;
                self.tracker.log(now, node, 0, || {
                    format!(
                        "a previous mosha left {killed} children: stopping them before starting"
                    )
                });
            }
        }
        self.nodes[me].incarnation += 1;
        let inc = self.nodes[me].incarnation;
        let table = self.files[me]
            .cltab
            .own()
            .and_then(|v| std::str::from_utf8(&v.data).ok().map(String::from))
            .and_then(|text| Cltab::parse(&text, "cltab").ok())
            .unwrap_or_default();
        // Ground truth for `liveness`: a machine started from a `cltab`
        // that does not parse has no group at all.
        let groups: std::collections::BTreeSet<String> =
            table.groups().into_iter().map(String::from).collect();
        self.tracker.configured(now, node, &groups);
        let mut cfg = ClusterConfig::new(node, self.cfg.policy.clone());
        cfg.seed = seeds::derive(self.seed, Stream::Monitor, u64::from(node), u64::from(inc));
        cfg.min_cycle = self.cfg.world.min_cycle;
        cfg.trace = self.trace.is_on();
        if let Some(t) = self.cfg.world.read_timeout {
            cfg.read_timeout = t;
        }
        cfg.membership = match self.cfg.world.membership {
            MembershipModel::Oracle => MembershipSource::External,
            MembershipModel::Heartbeat => MembershipSource::HeartbeatFiles,
        };
        cfg.known = (1..=self.cfg.nodes).collect();
        let durable = self.nodes[me].durable.clone();
        let mut driver = ClusterDriver::with_durable(cfg, table, durable, self.local_now(node));
        driver.share_record_parses(self.parses.clone());
        let procs = SimProcesses::new(
            node,
            self.built.commands.clone(),
            seeds::node_rng(self.seed, Stream::Processes, node, inc),
        );
        self.tracker.monitor_reset(now, node);
        let slot = &mut self.nodes[me];
        slot.driver = Some(Box::new(driver));
        slot.procs = Some(procs);
        slot.tick_at = None;
        slot.frozen = false;
        slot.reaped.clear();
        slot.last_clstat = None;
        slot.leftovers_told = None;
        self.tracker.log(now, node, 0, || format!("mosha starts (incarnation {inc})"));
        self.transitions_start(node);
        self.pump(node);
        self.report_leftovers(node);
        self.refresh_health();
    }

    /// Tell `node`'s monitor how many processes of earlier incarnations
    /// (orphans) are alive on it, as a real executor finds them in the
    /// node's service cgroups; only when the count changed since the last
    /// report (`ranked` kills them and waits for them; `classic` ignores
    /// it).
    fn report_leftovers(&mut self, node: u32) {
        let slot = &mut self.nodes[node as usize];
        if slot.driver.is_none() {
            return;
        }
        let live: usize = slot.orphans.iter().map(|(_, p)| p.live()).sum();
        if slot.leftovers_told == Some(live) {
            return;
        }
        slot.leftovers_told = Some(live);
        self.feed(node, ClusterInput::Leftovers { live });
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
        slot.procs = None;
        if slot.driver.take().is_some() {
            self.trace.record(&Record::Crash { node, at: now });
        }
        self.transitions_stop(node);
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
        if slot.driver.take().is_none() {
            return;
        }
        self.transitions_stop(node);
        let slot = &mut self.nodes[node as usize];
        let Some(orphans) = slot.procs.take() else { return };
        slot.frozen = false;
        slot.reaped.clear();
        slot.deferred.retain(|(_, ev)| matches!(ev, Ev::Exit { .. }));
        let inc = slot.incarnation;
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
        if !slot.up || slot.paused || (!pause && (slot.frozen || slot.driver.is_none())) {
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
        self.pump(node);
        self.refresh_health();
    }

    /// After a crash (`down` elapsed) or at the quiet phase: the machine
    /// boots, or a dead `mosha` starts again, or a held node resumes.
    fn restart(&mut self, node: u32) {
        self.resume(node);
        let slot = &self.nodes[node as usize];
        if slot.up {
            if slot.driver.is_none() {
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
        if !slot.up || slot.driver.is_none() || slot.frozen || slot.paused || slot.write_fail > 0.0
        {
            return false;
        }
        // While every read of its files hangs (`read-hang`), nobody can
        // read it: as under a one-way partition in which the others cannot
        // read it, its records, and any release it publishes, reach
        // nobody, so taking over from it needs a fence (the rule
        // for a node that has not published a release, with a fence
        // command). Fencing it is not needless.
        if self.active.read_hang.iter().any(|&(_, n)| n == node) {
            return false;
        }
        let peers = (1..=self.cfg.nodes)
            .filter(|&j| {
                let s = &self.nodes[j as usize];
                s.up && !s.paused
                    && self.members.same_side(node, j)
                    && !self.cut(node, j)
                    && !self.cut(j, node)
            })
            .count();
        2 * peers > self.cfg.nodes as usize
    }

    /// `reader` cannot read `writer`'s files by ground truth: a one-way
    /// partition, or a dead mount of `writer`'s directory (`read-hang`:
    /// the read never answers, so the file is as unreadable as behind a
    /// one-way cut; the reader's deadline only bounds how long it waits).
    fn cut(&self, reader: u32, writer: u32) -> bool {
        self.blocked(reader, writer)
            || (reader != writer && self.active.read_hang.iter().any(|&(_, n)| n == writer))
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

    // ---- the executor: production's cluster driver, simulated I/O ----

    /// Feed one input to the node's driver and carry out what follows.
    fn feed(&mut self, node: u32, input: ClusterInput) {
        let now = self.local_now(node);
        let Some(driver) = self.nodes[node as usize].driver.as_mut() else { return };
        driver.handle(now, input);
        self.pump(node);
    }

    /// Carry out every command the driver has queued: writes, copies,
    /// spawns and signals complete at once (their answers are fed back at
    /// once); reads are answered together after the read latency (plus a
    /// slow node's lag); fences after `fence_delay`. Then log its events,
    /// record its trace and schedule its next tick.
    fn pump(&mut self, node: u32) {
        let now = self.now;
        let me = node as usize;
        let Some(mut driver) = self.nodes[me].driver.take() else { return };
        let inc = self.nodes[me].incarnation;
        let mut now_inputs: VecDeque<ClusterInput> = VecDeque::new();
        let mut later: Vec<ClusterInput> = Vec::new();
        loop {
            while let Some(cmd) = driver.poll_command() {
                self.execute(node, inc, cmd, &mut now_inputs, &mut later);
            }
            self.drain(node, inc, &mut driver);
            let Some(input) = now_inputs.pop_front() else { break };
            driver.handle(self.local_now(node), input);
        }
        let poll = driver.poll_timeout().map(|p| self.to_global(node, p));
        self.nodes[me].driver = Some(driver);
        if !later.is_empty() {
            let j = self.cfg.world.read_jitter.0;
            let jitter = if j > 0 { self.rng_fs.random_range(0..j) } else { 0 };
            let lag = self.cfg.world.read_latency + Millis(jitter) + self.nodes[me].lag;
            self.queue.push(now + lag, Ev::Answer { node, inc, inputs: later });
        }
        if let Some(p) = poll {
            let at = p.max(now);
            let slot = &mut self.nodes[me];
            if slot.tick_at.is_none_or(|x| at < x) {
                slot.tick_at = Some(at);
                self.queue.push(at, Ev::Tick { node, inc });
            }
        }
    }

    /// The driver's events (to the checker and the event log) and trace.
    fn drain(&mut self, node: u32, inc: u32, driver: &mut ClusterDriver) {
        let now = self.now;
        while let Some((rec, text)) = driver.poll_trace() {
            self.trace.record(&rec);
            self.trace.decision_text(&rec, &text);
            driver.recycle_trace(rec);
            driver.recycle_trace_text(text);
        }
        while let Some(event) = driver.poll_event() {
            match event {
                ClusterEvent::Init(init::Notice::GroupState { group, level, state }) => {
                    self.tracker.log(now, node, 0, || format!("{group} {level} {state}"));
                    self.tracker.group_state(now, node, &group, &level, &state);
                }
                ClusterEvent::Node(event) => self.node_event(node, inc, &event),
                ClusterEvent::ReadTimedOut { node: of, after } => {
                    self.tracker.metrics.read_timeouts += 1;
                    self.tracker.log(now, node, of.unwrap_or(0), || {
                        format!(
                            "read of {} timed out after {after}",
                            of.map_or("membership".into(), |n| format!("node {n}"))
                        )
                    });
                }
                ClusterEvent::MembershipUnknown { reason, .. } => {
                    self.tracker.log(now, node, 0, || format!("membership unknown: {reason}"));
                }
                ClusterEvent::Adopted { file, from, .. } => {
                    self.tracker.log(now, node, from, || format!("copies {file} from node {from}"));
                }
                ClusterEvent::NewestUnparsable { file, node: of, .. } => {
                    self.tracker.log(now, node, of, || {
                        format!("node {of}'s {file} does not parse: not adopted")
                    });
                }
                ClusterEvent::OwnUnparsable { file, .. } => {
                    self.tracker.log(now, node, 0, || format!("my {file} does not parse"));
                }
                ClusterEvent::Replica { file, note } => {
                    self.tracker.log(now, node, 0, || format!("{file}: {note}"));
                }
                ClusterEvent::Membership { members, changes } => {
                    self.transitions_membership(node, &members, changes);
                }
                ClusterEvent::SpawnFailed { id, error } => {
                    self.tracker
                        .log(now, node, 0, || format!("spawn of #{} failed: {error}", id.0));
                }
                ClusterEvent::Ranked(notice) => {
                    self.tracker.log(now, node, 0, || format!("ranked: {notice:?}"));
                }
                ClusterEvent::Fenced { node: target } => {
                    self.transitions_fenced(node, target);
                }
                ClusterEvent::FenceFailed { node: target, error } => {
                    self.tracker.log(now, node, target, || {
                        format!("STOMITH node {target} FAILED: {error}")
                    });
                }
                _ => {}
            }
        }
    }

    fn node_event(&mut self, node: u32, inc: u32, event: &Event) {
        let now = self.now;
        match event {
            Event::Told { group, level, .. } => {
                self.tracker.metrics.tells += 1;
                if level == "plan" {
                    self.tracker.metrics.plan_tells.push((now, node));
                }
                self.tracker.log(now, node, 0, || format!("tell {group} {level}"));
            }
            Event::Monitor(Notice::Conflict { group, nodes, .. }) => {
                self.tracker.metrics.collisions += 1;
                self.tracker.metrics.collision_at.push((now, node));
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

    /// Carry out one command of node `node`'s driver.
    fn execute(
        &mut self,
        node: u32,
        inc: u32,
        cmd: ClusterCommand,
        now_inputs: &mut VecDeque<ClusterInput>,
        later: &mut Vec<ClusterInput>,
    ) {
        let now = self.now;
        let me = node as usize;
        match cmd {
            ClusterCommand::ReadMembership { seq } => {
                self.tracker.metrics.cycles += 1;
                let p = self.nodes[me].membership_fail;
                if p > 0.0 && self.rng_chance.random_bool(p.min(1.0)) {
                    let error = IoFailure::other(
                        "read membership",
                        ErrorKind::Other,
                        "membership source unavailable (simulated)",
                    );
                    now_inputs.push_back(ClusterInput::MembershipFailed { seq, error });
                    return;
                }
                let report = match self.cfg.world.membership {
                    MembershipModel::Oracle => {
                        let mut members = Vec::with_capacity(self.cfg.nodes as usize);
                        self.members.members(node, &mut members);
                        MembershipReport::Members(members)
                    }
                    MembershipModel::Heartbeat => {
                        let read_at = WallMs(self.wall(node));
                        let beats = (1..=self.cfg.nodes)
                            .map(|j| (j, self.read_file(node, j, SharedFile::Heartbeat, None)))
                            .collect();
                        MembershipReport::Heartbeats { read_at, beats }
                    }
                };
                now_inputs.push_back(ClusterInput::MembershipRead { seq, report });
            }
            ClusterCommand::ReadNodes { seq, asks } => {
                // Every node's files, in node order: a hung node keeps its
                // asks (no answer until the hang ends: the driver's read
                // deadline fires first); an unreachable one fails; the
                // others answer together, with one wall-clock reading.
                let read_at = WallMs(self.wall(node));
                self.tracker.metrics.file_reads += asks.len() as u64;
                let mut reports = Vec::new();
                let mut unchanged = Vec::with_capacity(asks.len() / 2);
                let mut i = 0;
                while i < asks.len() {
                    let j = asks[i].node;
                    let end = i + asks[i..].iter().take_while(|a| a.node == j).count();
                    let group = &asks[i..end];
                    i = end;
                    if j != node && self.active.read_hang.iter().any(|&(_, n)| n == j) {
                        self.hung.push((node, inc, seq, j, group.to_vec()));
                        continue;
                    }
                    if j != node && (!self.members.same_side(node, j) || self.blocked(node, j)) {
                        if !reports.is_empty() || !unchanged.is_empty() {
                            let reports = std::mem::take(&mut reports);
                            let unchanged = std::mem::take(&mut unchanged);
                            later.push(ClusterInput::NodesRead {
                                seq,
                                read_at,
                                reports,
                                unchanged,
                            });
                        }
                        let error = IoFailure::other(
                            format!("read /mfs/{j}"),
                            ErrorKind::TimedOut,
                            "no route to host (partition, simulated)",
                        );
                        later.push(ClusterInput::NodeReadFailed { seq, node: j, error });
                        continue;
                    }
                    if let Some(clstat_mtime) = self.unchanged(node, j, group) {
                        unchanged.push((j, clstat_mtime));
                        continue;
                    }
                    for ask in group {
                        reports.push(FileReport {
                            node: j,
                            file: ask.file,
                            path: self.paths[j as usize][file_index(ask.file)].clone(),
                            read: self.read_file(node, j, ask.file, ask.known),
                        });
                    }
                }
                // Each node answers in the same input as with a report per
                // file (`unchanged` rides along): the driver then steps at
                // the same points, and decides the same.
                if !reports.is_empty() || !unchanged.is_empty() {
                    later.push(ClusterInput::NodesRead { seq, read_at, reports, unchanged });
                }
            }
            ClusterCommand::Copy { seq, file, from, bytes, mtime } => {
                if self.write_fails(node) {
                    let error = IoFailure::other(
                        format!("copy {file} from node {from}"),
                        ErrorKind::Other,
                        "Input/output error (simulated)",
                    );
                    now_inputs.push_back(ClusterInput::CopyFailed { seq, error });
                    return;
                }
                let torn = self.active.torn_copy.iter().any(|&(_, n)| n == node);
                let data: Bytes = if torn {
                    self.tracker
                        .log(now, node, from, || format!("TORN copy of {file} from node {from}"));
                    Arc::from(&bytes[..bytes.len() / 2])
                } else {
                    bytes
                };
                let id = self.write_file(node, file, mtime.0, data);
                now_inputs.push_back(ClusterInput::CopyDone { seq, id: ContentId(id) });
            }
            ClusterCommand::WriteClstat { seq, status } => {
                let result = if self.write_fails(node) {
                    Err(IoFailure::other(
                        "write clstat",
                        ErrorKind::Other,
                        "Input/output error (simulated)",
                    ))
                } else {
                    let same = self.nodes[me].last_clstat.as_ref().filter(|(s, _, _)| *s == status);
                    let (id, data) = match same {
                        Some((_, id, data)) => (*id, data.clone()),
                        None => {
                            self.serial += 1;
                            let data: Bytes = Arc::from(status.render().into_bytes());
                            (self.serial, data)
                        }
                    };
                    self.nodes[me].last_clstat = Some((status, id, data.clone()));
                    let delay = self.fs_delay();
                    let v = Version { serial: id, mtime: self.wall(node), data };
                    self.files[me].clstat.write(now, delay, v);
                    Ok(())
                };
                let file = SharedFile::Clstat;
                now_inputs.push_back(ClusterInput::StatusWritten { seq, file, result });
            }
            ClusterCommand::WriteHastat { seq, .. } => {
                let file = SharedFile::Hastat;
                now_inputs.push_back(ClusterInput::StatusWritten { seq, file, result: Ok(()) });
            }
            ClusterCommand::WriteHeartbeat { seq, counter, payload } => {
                let result = if self.write_fails(node) {
                    Err(IoFailure::other(
                        "write heartbeat",
                        ErrorKind::Other,
                        "Input/output error (simulated)",
                    ))
                } else {
                    let data =
                        payload.unwrap_or_else(|| Arc::from(format!("{counter}\n").into_bytes()));
                    self.write_file(node, SharedFile::Heartbeat, self.wall(node), data);
                    Ok(())
                };
                let file = SharedFile::Heartbeat;
                now_inputs.push_back(ClusterInput::StatusWritten { seq, file, result });
            }
            ClusterCommand::RemoveHeartbeat { seq } => {
                let file = SharedFile::Heartbeat;
                now_inputs.push_back(ClusterInput::StatusWritten { seq, file, result: Ok(()) });
            }
            ClusterCommand::Spawn { id, group, tag, level, command, not_after } => {
                // `not_after` is on the node's own (boot) clock, which
                // restarts at a reboot: compare it with that clock, never
                // with the world's time.
                let local = self.local_now(node);
                let slot = &mut self.nodes[me];
                let Some(procs) = slot.procs.as_mut() else { return };
                procs.now = now;
                procs.spawn_fail = slot.spawn_fail;
                procs.linger = slot.linger;
                procs.unkillable = self.active.d_state.iter().any(|&(_, n)| n == node);
                // At or after its not-after time, as the command's contract
                // says: at that very instant the lease is already judged
                // lost (it holds only while now < deadline − δ), and a
                // spawn let through would outlive the kill.
                let result = match not_after {
                    Some(t) if local >= t => {
                        Err(SpawnFailure::TooLate { late_by: local.saturating_sub(t).0 })
                    }
                    _ => procs.spawn(id, &group, &tag, &level, &command).map_err(|e| {
                        SpawnFailure::Io(IoFailure::other(
                            format!("spawn {tag}"),
                            ErrorKind::WouldBlock,
                            e.to_string(),
                        ))
                    }),
                };
                self.drain_procs(node, inc);
                now_inputs.push_back(ClusterInput::SpawnResult { id, result });
            }
            ClusterCommand::Signal { id, signal } => {
                let slot = &mut self.nodes[me];
                if let Some(procs) = slot.procs.as_mut() {
                    procs.now = now;
                    procs.linger = slot.linger;
                    let _ = procs.signal(id, signal);
                }
                self.drain_procs(node, inc);
            }
            ClusterCommand::Fence { seq, node: target } => {
                // A node whose service processes survived a SIGKILL cannot
                // stop them: fencing it is what the fence is for. Orphans of
                // an earlier monitor incarnation count too (its services all
                // the same).
                let stuck = |w: &World| {
                    let slot = &w.nodes[target as usize];
                    slot.procs.as_ref().is_some_and(|p| p.survived_kill())
                        || slot.orphans.iter().any(|(_, p)| p.survived_kill())
                };
                let tie = self.tie_fences.remove(&(node, seq));
                let healthy = self.valid(target) && self.healthy(target) && !stuck(self);
                self.tracker.log(now, node, target, || {
                    let truth = if healthy { "healthy" } else { "not healthy" };
                    let tie = if tie { ", the lost tie-breaker: never needless" } else { "" };
                    format!("STOMITH node {target} (ground truth: {truth}{tie})")
                });
                let healthy = healthy && !tie;
                self.tracker.fence(now, node, target, healthy);
                let p = self.active.fence_fail.iter().map(|&(_, p)| p).fold(0.0, f64::max);
                let delay = self.cfg.world.fence_delay;
                let result = if p > 0.0 && self.rng_chance.random_bool(p.min(1.0)) {
                    self.tracker.metrics.fence_failures += 1;
                    Err(FenceFailure::TimedOut { limit_ms: delay.0 })
                } else {
                    // `fence-no-kill`: the command says done, the kill
                    // never lands. Drawn only during such an episode, so
                    // that every other run keeps its random stream.
                    let lie = self.active.fence_no_kill.iter().map(|&(_, p)| p).fold(0.0, f64::max);
                    let lies = lie > 0.0 && self.rng_chance.random_bool(lie.min(1.0));
                    if lies {
                        self.tracker.log(now, node, target, || {
                            format!("fence of node {target} reported done; its kill did not land")
                        });
                    } else if self.cfg.world.fence_kills {
                        self.queue.push(now + delay, Ev::FenceKill { node: target });
                    }
                    Ok(())
                };
                let inputs = vec![ClusterInput::FenceDone { seq, node: target, result }];
                self.queue.push(now + delay, Ev::Answer { node, inc, inputs });
            }
            ClusterCommand::Exit => {}
            cmd @ (ClusterCommand::KillAllNow
            | ClusterCommand::Persist { .. }
            | ClusterCommand::ArmWatchdog { .. }
            | ClusterCommand::FenceRanked { .. }) => {
                self.execute_ranked(node, inc, cmd, now_inputs, later)
            }
        }
    }

    /// The D state on `node` ends: its children (orphans too) can be
    /// killed again, and kills sent meanwhile land now.
    fn release_stuck(&mut self, node: u32) {
        if self.active.d_state.iter().any(|&(_, n)| n == node) {
            return;
        }
        let now = self.now;
        let slot = &mut self.nodes[node as usize];
        let mut due = Vec::new();
        for (inc, procs) in slot.orphans.iter_mut() {
            procs.now = now;
            procs.release_stuck();
            due.extend(procs.due.drain(..).map(|(at, id)| (at, *inc, id)));
        }
        let inc = slot.incarnation;
        if let Some(procs) = slot.procs.as_mut() {
            procs.now = now;
            procs.release_stuck();
        }
        for (at, inc, id) in due {
            self.queue.push(at, Ev::Exit { node, inc, id });
        }
        self.drain_procs(node, inc);
    }

    /// Process-table changes and new exit times of node `node`'s current
    /// children.
    fn drain_procs(&mut self, node: u32, inc: u32) {
        let now = self.now;
        let Some(procs) = self.nodes[node as usize].procs.as_mut() else { return };
        let changes = std::mem::take(&mut procs.changes);
        let due = std::mem::take(&mut procs.due);
        for c in changes {
            self.tracker.process(now, node, &c.group, c.started, false);
        }
        for (at, id) in due {
            self.queue.push(at, Ev::Exit { node, inc, id });
        }
    }

    /// Hung reads of directories that no longer hang answer now (late:
    /// the drivers have long timed them out; the answer frees the node).
    fn release_hung(&mut self) {
        let hung = std::mem::take(&mut self.hung);
        for (reader, inc, seq, target, files) in hung {
            if self.active.read_hang.iter().any(|&(_, n)| n == target) {
                self.hung.push((reader, inc, seq, target, files));
                continue;
            }
            let read_at = WallMs(self.wall(reader));
            let reports = files
                .into_iter()
                .map(|ask| FileReport {
                    node: target,
                    file: ask.file,
                    path: self.paths[target as usize][file_index(ask.file)].clone(),
                    read: self.read_file(reader, target, ask.file, ask.known),
                })
                .collect();
            let unchanged = Vec::new();
            let inputs = vec![ClusterInput::NodesRead { seq, read_at, reports, unchanged }];
            self.queue.push(self.now, Ev::Answer { node: reader, inc, inputs });
        }
    }

    /// `reader`'s read of `writer`'s files `asks` now would find each of
    /// them still at its `known` identity: `Some(the clstat's mtime, when
    /// asked)`, for `unchanged` of a [`ClusterInput::NodesRead`] answer. Only where a
    /// read draws nothing at random (no read failures nor stale reads in
    /// force): the compact answer must leave every random stream, and so
    /// every decision, as the per-file reads would (same `trace_sha256`).
    fn unchanged(&mut self, reader: u32, writer: u32, asks: &[FileAsk]) -> Option<Option<WallMs>> {
        let own = reader == writer;
        if !own && (self.cond.read_failure > 0.0 || self.cond.stale_read > 0.0) {
            return None;
        }
        let now = self.now;
        let files = &mut self.files[writer as usize];
        let mut clstat_mtime = None;
        for ask in asks {
            let known = ask.known?;
            let slot = files.get(ask.file);
            let v = if own { slot.own() } else { slot.read(now, false) };
            let v = v.filter(|v| ContentId(v.serial) == known)?;
            if ask.file == SharedFile::Clstat {
                clstat_mtime = Some(WallMs(v.mtime));
            }
        }
        Some(clstat_mtime)
    }

    /// `reader` reads `writer`'s `file` now (its own copy when it is the
    /// writer); the bytes are left out when the reader knows content `known`.
    fn read_file(
        &mut self,
        reader: u32,
        writer: u32,
        file: SharedFile,
        known: Option<ContentId>,
    ) -> FileRead {
        let now = self.now;
        if reader != writer {
            if !self.members.same_side(reader, writer) || self.blocked(reader, writer) {
                let what = format!("read /mfs/{writer}/{file}");
                return Err(IoFailure::other(
                    what,
                    ErrorKind::TimedOut,
                    "no route to host (simulated)",
                ));
            }
            if self.cond.read_failure > 0.0 && self.rng_fs.random_bool(self.cond.read_failure) {
                let what = format!("read /mfs/{writer}/{file}");
                return Err(IoFailure::other(
                    what,
                    ErrorKind::Other,
                    "Input/output error (simulated)",
                ));
            }
        }
        let stale = reader != writer
            && self.cond.stale_read > 0.0
            && self.rng_fs.random_bool(self.cond.stale_read);
        let slot = self.files[writer as usize].get(file);
        let v = if reader == writer { slot.own() } else { slot.read(now, stale) };
        Ok(v.map(|v| FileVersion {
            mtime: WallMs(v.mtime),
            id: ContentId(v.serial),
            bytes: (known != Some(ContentId(v.serial))).then(|| v.data.clone()),
        }))
    }

    /// Node `node` writes its own `file` (mtime: `mtime`); returns the new
    /// content identity.
    fn write_file(&mut self, node: u32, file: SharedFile, mtime: i64, data: Bytes) -> u64 {
        let now = self.now;
        let delay = self.fs_delay();
        self.serial += 1;
        let v = Version { serial: self.serial, mtime, data };
        self.files[node as usize].get(file).write(now, delay, v);
        self.serial
    }

    /// A write of node `node` fails now (`write-fail`).
    fn write_fails(&mut self, node: u32) -> bool {
        let p = self.nodes[node as usize].write_fail;
        p > 0.0 && self.rng_chance.random_bool(p.min(1.0))
    }

    fn fs_delay(&mut self) -> Millis {
        let j = self.cond.jitter.0;
        let extra = if j > 0 { self.rng_fs.random_range(0..j) } else { 0 };
        let delay = self.cond.delay + Millis(extra);
        // `fs_delay_cap` bounds the visibility delay itself, the jitter a
        // `slow-fs` episode adds (U[0, delay/2)) included; the healthy
        // base delay stands. Clamped after the draw, so a capped run draws
        // the same random numbers as the uncapped run of its seed.
        match self.cfg.world.fs_delay_cap {
            Some(cap) if !self.active.slow_fs.is_empty() => {
                delay.min(cap.max(self.base.delay + self.base.jitter))
            }
            _ => delay,
        }
    }

    fn tick(&mut self, node: u32, inc: u32) {
        if !self.live(node, inc) || self.nodes[node as usize].tick_at != Some(self.now) {
            return;
        }
        self.nodes[node as usize].tick_at = None;
        self.feed(node, ClusterInput::Tick);
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
        let current = slot.incarnation == inc && slot.driver.is_some();
        let procs = if current {
            slot.procs.as_mut()
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
            self.report_leftovers(node);
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
            Ended::Exited { status, lingering } => {
                ClusterInput::ChildExited { id, status, lingering }
            }
            Ended::GroupGone => ClusterInput::GroupGone { id },
        };
        self.feed(node, input);
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
        *self.tracker.metrics.episodes.entry(fault.kind()).or_default() += 1;
        if self.history_fault_start(i, &fault) {
            return;
        }
        match fault {
            Fault::Crash { node, down } => {
                if self.valid(node) {
                    self.crash(node, "fault");
                    self.queue.push(now + down, Ev::FaultEnd(i));
                }
            }
            Fault::HactlEdit { node, group, level, len } => {
                if self.valid(node) && self.nodes[node as usize].driver.is_some() {
                    self.edit_hactl(node, &group, &level);
                    self.open_edits.insert(i, (node, group));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::Standby { node, len } => {
                if self.valid(node) && self.nodes[node as usize].driver.is_some() {
                    self.edit_standby(node, true);
                    self.open_standby.insert(i, node);
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
            Fault::FenceNoKill { p, len } => {
                self.active.fence_no_kill.push((i, p));
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
            Fault::ReadHang { node, len } => {
                if self.valid(node) {
                    self.active.read_hang.push((i, node));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::TornCopy { node, len } => {
                if self.valid(node) {
                    self.active.torn_copy.push((i, node));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::DState { node, len } => {
                if self.valid(node) {
                    self.active.d_state.push((i, node));
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            Fault::CltabEdit { node, group, broken } => {
                if self.valid(node) {
                    self.edit_cltab(node, &group, broken);
                }
            }
            Fault::HactlTie { a, b, group } => {
                if self.valid(a) && self.valid(b) && a != b {
                    self.tie_hactl(a, b, &group);
                }
            }
            Fault::HactlCut { node } => {
                if self.valid(node) {
                    self.cut_hactl(node);
                }
            }
            Fault::EditorWrite { node, len } => {
                if self.valid(node) {
                    self.editor_write(i, node);
                    self.queue.push(now + len, Ev::FaultEnd(i));
                }
            }
            // Started by `history_fault_start` above.
            Fault::HistoryWriteFail { .. }
            | Fault::HistoryTorn { .. }
            | Fault::HistorySlow { .. } => {}
            Fault::ClockDrift { node, rate } => {
                if self.valid(node) {
                    // The drift so far becomes an offset; the new rate runs from now.
                    let so_far = self.wall(node) - (EPOCH_MS + now.0 as i64);
                    let slot = &mut self.nodes[node as usize];
                    slot.skew = so_far;
                    slot.drift = rate;
                    slot.drift_since = now;
                    self.boot_clock_drift(node, rate);
                }
            }
        }
        self.recompute();
        self.refresh_health();
    }

    /// What an operator editing node `node`'s own hactl starts from: that
    /// copy as it parses, or the scenario's hactl when it is missing or
    /// does not parse. A group line the copy lacks (a `torn-copy` cut it
    /// off at a line boundary) the operator puts back at the level it
    /// wants: the edit changes one group, not every group the tear lost.
    /// (Saved as found, a torn copy's missing groups were sealed as an
    /// operator's edit and stopped cluster-wide for good, while the
    /// operator still wanted them: N = 3, seeds 151 and 276 of the
    /// uncapped safety sweep failed `liveness`.)
    fn own_hactl(&self, node: u32) -> Hactl {
        let mut hactl = self.files[node as usize]
            .hactl
            .own()
            .and_then(|v| std::str::from_utf8(&v.data).ok().map(String::from))
            .and_then(|text| Hactl::parse(&text, "hactl").ok())
            .unwrap_or_else(|| (*self.built.hactl).clone());
        for (group, want) in &self.built.hactl.groups {
            if !hactl.groups.contains_key(group) {
                let mut want = want.clone();
                if let Some(level) = self.tracker.want(group) {
                    want.level = level.to_string();
                }
                hactl.groups.insert(group.clone(), want);
            }
        }
        hactl
    }

    /// The operator edits node `node`'s own hactl copy (mtime: its clock).
    fn edit_hactl(&mut self, node: u32, group: &str, level: &str) {
        let now = self.now;
        let mut hactl = self.own_hactl(node);
        let want = hactl
            .groups
            .entry(group.to_string())
            .or_insert_with(|| Want { level: level.to_string(), preferred: Vec::new() });
        want.level = level.to_string();
        let data: Bytes = Arc::from(hactl.render().into_bytes());
        self.write_file(node, SharedFile::Hactl, self.wall(node), data);
        self.tracker.set_want(now, group, level);
        self.tracker.log(now, node, 0, || format!("operator edits hactl here: {group} {level}"));
    }

    /// The operator puts `node` in standby (or out of it) in its own
    /// hactl, by hand (a hand edit: `ranked` seals it after the settle
    /// time).
    fn edit_standby(&mut self, node: u32, on: bool) {
        let now = self.now;
        let mut hactl = self.own_hactl(node);
        if on {
            hactl.standby.insert(node);
        } else {
            hactl.standby.remove(&node);
        }
        let data: Bytes = Arc::from(hactl.render().into_bytes());
        self.write_file(node, SharedFile::Hactl, self.wall(node), data);
        let state = if on { "on" } else { "off" };
        self.tracker.log(now, node, 0, || format!("operator sets standby {state} for this node"));
    }

    /// The operator edits node `node`'s own cltab: a new test entry
    /// (`exit 0`) for `group`, or, with `broken`, a line that is not a
    /// cltab line (the copy must then never be adopted anywhere).
    fn edit_cltab(&mut self, node: u32, group: &str, broken: bool) {
        let now = self.now;
        let mut text = self.files[node as usize]
            .cltab
            .own()
            .and_then(|v| std::str::from_utf8(&v.data).ok().map(String::from))
            .unwrap_or_else(|| self.built.cltab.render());
        self.serial += 1;
        let line = if broken {
            format!("this line is not a cltab entry {}\n", self.serial)
        } else {
            format!("{group}:{group}e{}:test:test:exit 0\n", self.serial)
        };
        text.push_str(&line);
        let data: Bytes = Arc::from(text.into_bytes());
        self.write_file(node, SharedFile::Cltab, self.wall(node), data);
        self.tracker.log(now, node, 0, || format!("operator edits cltab here: {}", line.trim()));
    }

    /// `hactl-tie`: nodes `a` and `b` each name themselves as `group`'s
    /// preferred node in their own hactl, written with one mtime (`a`'s
    /// clock): two different contents that the mtime rule cannot order.
    fn tie_hactl(&mut self, a: u32, b: u32, group: &str) {
        let now = self.now;
        let mtime = self.wall(a);
        for node in [a, b] {
            let mut hactl = self.own_hactl(node);
            let Some(want) = hactl.groups.get_mut(group) else { continue };
            want.preferred = vec![node];
            let data: Bytes = Arc::from(hactl.render().into_bytes());
            self.write_file(node, SharedFile::Hactl, mtime, data);
            self.tracker.log(now, node, 0, || {
                format!("operator edits hactl here: {group} preferred on {node} (mtime {mtime})")
            });
        }
    }

    /// `hactl-cut`: node `node`'s own hactl loses the second half of its
    /// lines (see [`cut_at_line`]); the cut file gets the node's clock as
    /// mtime.
    fn cut_hactl(&mut self, node: u32) {
        let now = self.now;
        let Some(bytes) = self.hactl_file(node) else { return };
        let cut: Bytes = Arc::from(&bytes[..cut_at_line(&bytes)]);
        let (kept, of) = (cut.len(), bytes.len());
        self.write_file(node, SharedFile::Hactl, self.wall(node), cut);
        self.tracker.log(now, node, 0, || format!("hactl CUT here: {kept} of {of} bytes kept"));
    }

    /// `editor-write` begins: the editor has written the first half of the
    /// new file (the body without its seal line, plus a comment line); the
    /// whole file lands when episode `i` ends ([`World::fault_end`]) or at
    /// the quiet phase.
    fn editor_write(&mut self, i: usize, node: u32) {
        let now = self.now;
        let Some(bytes) = self.hactl_file(node) else { return };
        let mut full = replica_version::body(&bytes).to_vec();
        full.extend_from_slice(format!("# edited by hand (episode {i})\n").as_bytes());
        let half: Bytes = Arc::from(&full[..cut_at_line(&full)]);
        let (kept, of) = (half.len(), full.len());
        self.write_file(node, SharedFile::Hactl, self.wall(node), half);
        self.open_writes.insert(i, (node, Arc::from(full)));
        self.tracker.log(now, node, 0, || {
            format!("an editor writes hactl here in place: {kept} of {of} bytes so far")
        });
    }

    /// `editor-write` ends: the whole new file lands.
    fn finish_write(&mut self, i: usize) {
        let Some((node, full)) = self.open_writes.remove(&i) else { return };
        let now = self.now;
        let len = full.len();
        self.write_file(node, SharedFile::Hactl, self.wall(node), full);
        self.tracker.log(now, node, 0, || format!("the editor's write lands: {len} bytes"));
    }

    /// Put an edited group back at its original level, on the node where
    /// it was edited (the operator's intent; replication may disagree), or
    /// on a running node when that one's monitor is down by now.
    fn undo_edit(&mut self, i: usize) {
        let Some((node, group)) = self.open_edits.remove(&i) else { return };
        let node = self.operator_node(node);
        self.restore_want(node, &group);
    }

    /// Where the operator edits `hactl`: on `preferred` while its monitor
    /// runs (up, not paused or frozen), else on the lowest node whose
    /// monitor runs (`preferred` when none does). An edit of a down node's
    /// copy waits, under `ranked`'s versioned replicas, until that node's
    /// monitor seals it, and is then numbered above every version it sees,
    /// later edits made elsewhere meanwhile included; README tells
    /// operators to edit a running node's copy, and so does the simulated
    /// operator (N = 2 seed 25: a restore written to a shot node's copy
    /// undid a later restore made on the other node when the shot node
    /// came back).
    fn operator_node(&self, preferred: u32) -> u32 {
        let runs = |n: u32| {
            let slot = &self.nodes[n as usize];
            slot.up && slot.driver.is_some() && !slot.paused && !slot.frozen
        };
        if runs(preferred) {
            return preferred;
        }
        (1..=self.cfg.nodes).find(|&n| runs(n)).unwrap_or(preferred)
    }

    /// The operator sets `group` back to its built level in `node`'s hactl.
    fn restore_want(&mut self, node: u32, group: &str) {
        if let Some(level) = self.built.hactl.get(group).map(|w| w.level.clone()) {
            self.edit_hactl(node, group, &level);
        }
    }

    /// The quiet phase undoes every open hactl edit as one operator action
    /// on one node (the node of the earliest open edit), as an operator
    /// restoring the intended configuration would. Undoing each on its own
    /// node at the same instant made concurrent hand edits from one base:
    /// under `ranked`'s versioned replicas both seal the same version and
    /// the content-hash tie-break keeps one whole file (the documented
    /// rule), so the other restoration was lost while the tracker counted
    /// both as wanted (seed 5, `hactl-edit`, 3 nodes: g01 down for good).
    ///
    /// Under versioned replicas (`ranked`) the operator also puts back every
    /// group whose level in that node's copy is not the one wanted. An edit
    /// can be lost during the faults by the documented rule for concurrent
    /// hand edits (two nodes seal the same version from different bases,
    /// and the content-hash tie-break keeps one whole file), but there the
    /// loss is visible: the sealed version and the dropped edit are logged
    /// and `mosha status` shows the level in force, so an operator
    /// restoring the intended configuration restores all of it (N = 3 seed
    /// 276 of the uncapped safety sweep: node 3, its copies tearing, edited
    /// g01 from a copy that still had g03 stopped, won the tie with node
    /// 2's restoration of g03, and g03 stayed stopped while the tracker
    /// wanted it). Under `classic` the lost update is silent (the
    /// original's W10, which that policy keeps on purpose), so the operator
    /// does not know to redo it and the checker reports it.
    fn undo_open_edits_at_once(&mut self) {
        let open = std::mem::take(&mut self.open_edits);
        let first = open.values().next().map_or(1, |&(node, _)| node);
        let node = self.operator_node(first);
        for (_, group) in open.into_values() {
            self.restore_want(node, &group);
        }
        if !matches!(self.cfg.policy, PolicyConfig::Ranked(_)) {
            return;
        }
        let own = self.own_hactl(node);
        let lost: Vec<(String, String)> = self
            .built
            .hactl
            .groups
            .keys()
            .filter_map(|g| {
                let want = self.tracker.want(g)?;
                let level = own.groups.get(g).map(|w| w.level.as_str());
                (level != Some(want)).then(|| (g.clone(), want.to_string()))
            })
            .collect();
        for (group, level) in lost {
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
            Fault::EditorWrite { .. } => self.finish_write(i),
            Fault::Standby { .. } => {
                if let Some(node) = self.open_standby.remove(&i) {
                    self.edit_standby(node, false);
                }
            }
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
        self.active.fence_no_kill.retain(|(j, _)| *j != i);
        self.active.write_fail.retain(|(j, _, _)| *j != i);
        self.active.membership_fail.retain(|(j, _, _)| *j != i);
        self.active.one_way.retain(|(j, _, _)| *j != i);
        self.active.read_hang.retain(|(j, _)| *j != i);
        self.release_hung();
        self.active.torn_copy.retain(|(j, _)| *j != i);
        self.history_fault_end(i);
        if let Some(pos) = self.active.d_state.iter().position(|(j, _)| *j == i) {
            let (_, node) = self.active.d_state.remove(pos);
            self.release_stuck(node);
        }
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
        // The fs conditions (and every node's lag, spawn and write
        // failures) follow `active` only through `recompute`: without it
        // here, the restarts below wrote their first records under the
        // ended `slow-fs` episode's delay (and past `fs_delay_cap`, which
        // applies only while an episode is open), and every later record
        // of the restarted node queued behind that one: N = 3 seed 1 with
        // `fs_delay_cap=4s` hid node 1's first records for 5.1 s into the
        // quiet phase, and node 2 fenced it as silent.
        self.recompute();
        self.history_faults_quiet();
        for node in 1..=self.cfg.nodes {
            self.release_stuck(node);
        }
        self.heal();
        for slot in &mut self.nodes {
            slot.skew = 0;
            slot.drift = 0.0;
        }
        for node in 1..=self.cfg.nodes {
            self.restart(node);
        }
        self.undo_open_edits_at_once();
        for node in std::mem::take(&mut self.open_standby).into_values() {
            self.edit_standby(node, false);
        }
        let open: Vec<usize> = self.open_writes.keys().copied().collect();
        for i in open {
            self.finish_write(i);
        }
        self.quiet = true;
        self.release_hung();
        self.refresh_health();
    }
}

/// Where a write torn half-way stops: after the first half of the lines
/// of `bytes` (rounded down: 0 for a one-line file). A cut at a line
/// boundary is the nasty case: what is left still parses.
pub(super) fn cut_at_line(bytes: &[u8]) -> usize {
    let ends: Vec<usize> =
        bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i).collect();
    let lines = ends.len() + usize::from(bytes.last().is_some_and(|&b| b != b'\n'));
    match lines / 2 {
        0 => 0,
        k => ends[k - 1] + 1,
    }
}

/// A membership detection delay.
fn detect(rng: &mut ChaCha8Rng, w: &crate::config::WorldParams, present: bool) -> Millis {
    let base = if present { w.detect_up } else { w.detect_down };
    let j = w.detect_jitter.0;
    base + Millis(if j > 0 { rng.random_range(0..j) } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::{cut_at_line, RunOptions, World};
    use crate::config::SimConfig;
    use crate::faults::{Fault, Schedule, Scheduled};
    use clinit_engine::cluster::SharedFile;
    use clinit_engine::monitor::ranked::RankedParams;
    use clinit_engine::monitor::PolicyConfig;
    use clinit_engine::time::Millis;

    /// The quiet phase restarts every node after it has ended every fault,
    /// so the restarted nodes' first records travel at the healthy delay.
    /// A `slow-fs` episode of 4 s still open at the quiet phase made them
    /// travel at 4 s plus jitter (beyond `fs_delay_cap`), and every later
    /// record queued behind: N = 3 seed 1 at `fs_delay_cap=4s` had node 2
    /// fence node 1 as silent 4.4 s into the quiet phase.
    #[test]
    fn nodes_restarted_by_the_quiet_phase_write_at_the_healthy_delay() {
        let mut cfg = SimConfig {
            nodes: 3,
            groups: 2,
            duration: Millis::from_secs(12 * 60),
            policy: PolicyConfig::Ranked(RankedParams::default()),
            ..SimConfig::default()
        };
        let quiet = cfg.quiet_start();
        // Node 1 dies with nothing on its way and stays down past the
        // quiet phase, which restarts it; a 4 s `slow-fs` episode is
        // still open then.
        let crash = Fault::Crash { node: 1, down: Millis::from_secs(10 * 60) };
        let slow = Fault::SlowFs { delay: Millis::from_secs(4), len: Millis::from_secs(6 * 60) };
        cfg.schedule = Some(Schedule {
            kinds: vec![crash.kind(), slow.kind()],
            faults: vec![
                Scheduled { at: Millis::from_secs(150), fault: crash },
                Scheduled { at: quiet - Millis::from_secs(60), fault: slow },
            ],
        });
        let mut w = World::new(&cfg, 1, RunOptions::fast()).expect("a valid schedule");
        w.run_until(quiet - Millis(1));
        // The episode is in force: node 2's latest record (written within
        // the last heartbeat period) is visible seconds from now.
        let slow_by = w.files[2].get(SharedFile::Heartbeat).visible_by();
        assert!(slow_by >= quiet + Millis::from_secs(2), "slow-fs in force: {slow_by:?}");
        assert!(!w.nodes[1].up, "node 1 is still down");
        w.run_until(quiet);
        assert!(w.nodes[1].up, "the quiet phase restarted node 1");
        let healthy = w.base.delay + w.base.jitter;
        let by = w.files[1].get(SharedFile::Heartbeat).visible_by();
        assert!(
            w.files[1].get(SharedFile::Heartbeat).own().is_some() && by <= quiet + healthy,
            "node 1's first record after its restart is visible by {by:?}: the quiet \
             phase began at {quiet:?}, the healthy delay is at most {healthy:?}"
        );
    }

    #[test]
    fn a_torn_write_keeps_the_first_half_of_the_lines() {
        assert_eq!(cut_at_line(b""), 0);
        assert_eq!(cut_at_line(b"web start\n"), 0);
        assert_eq!(cut_at_line(b"db start\nweb start\n"), 9);
        assert_eq!(cut_at_line(b"db start\nweb start\n# edited\n"), 9);
        assert_eq!(cut_at_line(b"a\nb\nc\nd"), 4);
    }
}
