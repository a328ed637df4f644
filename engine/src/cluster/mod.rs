//! One cluster node, sans I/O: [`ClusterDriver`] owns the node's init
//! machine, its HA monitor and every cluster rule (reading membership and
//! every member's files, replicating and adopting `hactl` and `cltab`,
//! judging age and heartbeat freshness, read deadlines, the minimum cycle,
//! heartbeats, status-write retries, graceful stop). It is shaped like
//! quinn-proto's `Connection`: feed it [`ClusterInput`]s with
//! [`ClusterDriver::handle`], carry out what [`ClusterDriver::poll_command`]
//! returns, log what [`ClusterDriver::poll_event`] returns, and call
//! `handle(now, ClusterInput::Tick)` when `now` reaches
//! [`ClusterDriver::poll_timeout`].
//!
//! Executors (`mosha` with real files and processes, the simulator with
//! virtual ones) decide only *how* to do I/O: threads, time-outs of their
//! own, caches. They report what happened as inputs; every judgement is
//! made here, so the simulator runs production's cluster loop.
//!
//! `now` is the node's own clock in ms (production: a monotonic clock that
//! should keep running through suspend, CLOCK_BOOTTIME; simulation: the
//! node's virtual clock). Wall-clock times ([`WallMs`]) appear only inside
//! read results, as facts (the writer's mtime, the reader's clock).
//!
//! Module layout: [`input`] and [`command`] are the contract, [`event`]
//! what is worth a log line, `config` the setup, `cycle` the read phase's
//! states and `read_phase` its transitions, `writes` the node's own files
//! (acknowledged, retried), `stop` the graceful stop,
//! [`glue`] the routing between the monitor and the init machine
//! ([`ClusterNode`], public because `clinit-sim replay` feeds it recorded
//! inputs one trace record at a time),
//! [`lab`] a tiny in-memory executor for tests and the tutorial.

pub mod command;
mod config;
pub(crate) mod cycle;
pub mod event;
pub mod glue;
pub mod input;
pub mod lab;
mod membership_log;
mod ranked_host;
mod read_phase;
mod stop;
mod writes;

pub use command::{ClusterCommand, FileAsk};
pub use config::{
    default_read_timeout, fresh_heartbeats, judge_clstat, judge_copy, ClusterConfig,
    MembershipSource, MIN_CYCLE,
};
pub use event::ClusterEvent;
pub use glue::{heartbeat_for, init_config, ClusterNode, CycleReport, Event, External, Published};
pub use input::{
    ClientRequest, ClusterInput, ContentId, FenceFailure, FileRead, FileReport, FileVersion,
    IoFailure, MembershipReport, SharedFile, SpawnFailure, WallMs,
};
pub use ranked_host::{parse_record, RecordParses};

use crate::cltab::Cltab;
use crate::driver::{Executed, NodeDriver, Processes, StatusStore};
use crate::hactl::Hactl;
use crate::init::{Action as InitAction, Init, InitConfig, Input, Reply};
use crate::monitor::replicate::{Replica, ReplicaNote, Replicated};
use crate::monitor::{Monitor, NodeStatus, Observation, Policy, PolicyConfig};
use crate::process::{ExitStatus, ProcId, Signal};
use crate::status::ClStat;
use crate::time::Millis;
use crate::trace::{DecisionWriter, Outcome as TraceOutcome, Record};
use cycle::{ClstatCache, Copying, NodeFiles, Phase, Reading, Step};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use stop::Stopping;
use writes::{Beats, Write};

/// Stands in for processes and the status file inside the glue's
/// [`NodeDriver`]: the driver turns what the init machine asked for (the
/// glue's [`Executed`] log) into commands instead.
#[derive(Debug, Default)]
pub struct Deferred;

impl Processes for Deferred {
    fn spawn(
        &mut self,
        _: ProcId,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<u32, crate::process::SpawnError> {
        Ok(0)
    }
    fn signal(&mut self, _: ProcId, _: Signal) -> Result<bool, IoFailure> {
        Ok(true)
    }
}

impl StatusStore for Deferred {
    fn write_status(&mut self, _: u64, _: &ClStat) -> Result<(), IoFailure> {
        Ok(())
    }
}

/// Which replication rule a policy uses: `ranked` converges on versions
/// ([`crate::monitor::replica_version`]), `classic` keeps the original's
/// newest-mtime rule (spec §5.4).
fn replica_rule(policy: &PolicyConfig) -> crate::monitor::replicate::Rule {
    match policy {
        PolicyConfig::Ranked(_) => crate::monitor::replicate::Rule::Versioned {
            settle: crate::monitor::replica_version::SETTLE,
        },
        _ => crate::monitor::replicate::Rule::Mtime,
    }
}

/// One node's cluster driver. See the module documentation.
pub struct ClusterDriver {
    cfg: ClusterConfig,
    timeout: Millis,
    node: ClusterNode<Deferred, Deferred>,
    commands: VecDeque<ClusterCommand>,
    events: VecDeque<ClusterEvent>,
    seq: u64,
    phase: Phase,
    hactl: Replica<Hactl>,
    cltab: Replica<Cltab>,
    hactl_quiet: cycle::Quiet<Hactl>,
    cltab_quiet: cycle::Quiet<Cltab>,
    clstats: ClstatCache,
    /// Nodes whose read outlived its deadline and still runs (seq).
    busy_reads: BTreeMap<u32, u64>,
    /// A membership read that outlived its deadline and still runs.
    busy_membership: Option<u64>,
    clstat: Write<ClStat>,
    hastat: Write<Published>,
    beats: Beats,
    stopping: Option<Stopping>,
    exit_sent: bool,
    trace: Option<Tap>,
    /// The hosted `ranked` machine (`None` under classic).
    ranked: Option<ranked_host::RankedHost>,
    /// Membership changes between cycles ([`membership_log`]).
    observer: crate::monitor::transitions::Observer,
    /// The members last handed to `observer`, as given: the same list
    /// again changes nothing, and skipping the set comparison saves a
    /// tenth of a large steady simulation.
    observed: Vec<u32>,
    /// Under `ranked` with heartbeat files: the incarnation of each heard
    /// node when the heard view was last compared, so that a node that
    /// restarted faster than suspicion (its new incarnation heard before
    /// the old one was judged silent) still gets its `down` and `up`.
    heard_incarnations: BTreeMap<u32, u64>,
    /// The last cycle's per-node statuses (the observation's `nodes`),
    /// kept and overwritten in place by the next cycle when it reads the
    /// same nodes: building and dropping a 100-entry map every cycle was
    /// a tenth of a large simulation.
    kept_nodes: BTreeMap<u32, crate::monitor::NodeStatus>,
    /// The last batch's asks, reused while nothing they were made from
    /// changed (see [`cycle::KeptAsks`]).
    kept_asks: cycle::KeptAsks,
}

/// The trace being queued (see [`ClusterConfig::trace`]).
struct Tap {
    writer: DecisionWriter,
    out: VecDeque<(Record, String)>,
    /// Texts given back ([`ClusterDriver::recycle_trace_text`]), written
    /// into again: a cycle's text holds the whole published view (tens of
    /// KB at 100 nodes), and growing a new string to that size every
    /// cycle was a tenth of its cost.
    spare: Vec<String>,
}

/// Most texts a [`Tap`] keeps for reuse.
const SPARE_TEXTS: usize = 8;

impl Tap {
    fn new() -> Tap {
        Tap { writer: DecisionWriter::default(), out: VecDeque::new(), spare: Vec::new() }
    }

    fn push(&mut self, record: Record, outcome: TraceOutcome<'_>) {
        // `write` replaces the content, so a spare needs no clearing.
        let mut text = self.spare.pop().unwrap_or_default();
        self.writer.write(outcome, &mut text);
        self.out.push_back((record, text));
    }
}

impl ClusterDriver {
    /// A node starting at `now` with the local cltab `table` (empty when
    /// there is none or it does not parse: a good copy may arrive by
    /// replication). Its first commands (the init machine's first clstat
    /// write, a first heartbeat) are ready at once; its first cycle starts
    /// at `now` (with heartbeat files: once the first beat is written, or
    /// after the read deadline).
    pub fn new(cfg: ClusterConfig, table: Cltab, now: Millis) -> Self {
        Self::with_durable(cfg, table, None, now)
    }

    /// [`ClusterDriver::new`], with what a `ranked` node persisted in its
    /// previous run ([`ClusterCommand::Persist`]; `None` on a first start
    /// or under classic): its incarnation is bumped, its revocations and
    /// grants still bind it.
    pub fn with_durable(
        cfg: ClusterConfig,
        table: Cltab,
        durable: Option<crate::monitor::ranked::Durable>,
        now: Millis,
    ) -> Self {
        let timeout = cfg.timeout();
        let init_cfg = init_config(cfg.init.clone(), timeout);
        let start = cfg.trace.then(|| Record::Start {
            node: cfg.me,
            at: now,
            policy: cfg.policy.clone(),
            init: init_cfg.clone(),
            monitor_seed: cfg.seed,
            cltab: table.clone(),
        });
        let init = Init::new(init_cfg, table, now);
        let driver = NodeDriver::new(init, Deferred, Deferred);
        let monitor = Monitor::new(cfg.policy.clone(), cfg.seed, now);
        let node = ClusterNode::new(cfg.me, driver, monitor);
        let mut d = ClusterDriver {
            timeout,
            node,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            seq: 0,
            phase: Phase::Idle { at: now },
            hactl: Replica::with_rule(replica_rule(&cfg.policy)),
            cltab: Replica::with_rule(replica_rule(&cfg.policy)),
            hactl_quiet: cycle::Quiet::default(),
            cltab_quiet: cycle::Quiet::default(),
            clstats: ClstatCache::new(),
            busy_reads: BTreeMap::new(),
            busy_membership: None,
            clstat: Write::default(),
            hastat: Write::default(),
            beats: Beats::default(),
            stopping: None,
            exit_sent: false,
            trace: None,
            ranked: None,
            observer: Default::default(),
            observed: Vec::new(),
            heard_incarnations: BTreeMap::new(),
            kept_nodes: BTreeMap::new(),
            kept_asks: cycle::KeptAsks::default(),
            cfg,
        };
        let first = d.node.driver.flush(now);
        if let Some(record) = start {
            let mut tap = Tap::new();
            tap.push(record, TraceOutcome::Started(&first));
            d.trace = Some(tap);
        }
        d.absorb(now, first);
        // Under ranked only the machine writes the heartbeat file (its
        // record): a classic beat there would overwrite the record.
        let ranked = matches!(d.cfg.policy, PolicyConfig::Ranked(_));
        if d.cfg.membership == MembershipSource::HeartbeatFiles && !ranked {
            d.beats.first_until = Some(now + d.cfg.read_timeout);
            d.beat(now);
        }
        if let PolicyConfig::Ranked(params) = &d.cfg.policy {
            // Under heartbeat-file membership each node's own reads are its
            // membership view: a learner reads every member then.
            let mut params = params.clone();
            if d.cfg.membership == MembershipSource::HeartbeatFiles {
                params.learners_read_voters = false;
            }
            let params = &params;
            let own = d.node.driver.init.status();
            let start = d
                .trace
                .is_some()
                .then(|| ranked_host::start_record(&d.cfg, params, &durable, &own, now));
            let mut host = ranked_host::RankedHost::new(
                d.cfg.me,
                params.clone(),
                &d.cfg.known,
                durable,
                own,
                now,
            );
            if let (Some(tap), Some(record)) = (d.trace.as_mut(), start) {
                tap.push(record, TraceOutcome::RankedStarted);
                host.machine.record_steps();
            }
            d.ranked = Some(host);
        }
        d
    }

    /// This node's number.
    pub fn me(&self) -> u32 {
        self.cfg.me
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// The staleness timeout (ms).
    pub fn timeout(&self) -> Millis {
        self.timeout
    }

    /// The node's init machine (status, table, live children).
    pub fn init(&self) -> &Init {
        &self.node.driver.init
    }

    /// The node's monitor and glue (quorum, halting, published view).
    pub fn node(&self) -> &ClusterNode<Deferred, Deferred> {
        &self.node
    }

    /// The replicated hactl in use (`None`: no usable copy yet).
    pub fn hactl(&self) -> Option<&Arc<Hactl>> {
        self.hactl.last_good()
    }

    /// [`ClusterCommand::Exit`] has been issued: the node is done.
    pub fn has_exited(&self) -> bool {
        self.exit_sent
    }

    /// A graceful stop ([`ClusterInput::Stop`]) is under way.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// Feed one input at `now` (the node's clock, never going backwards),
    /// then fire whatever is due. Returns the init machine's reply to a
    /// [`ClusterInput::Client`] request, [`Reply::None`] otherwise.
    pub fn handle(&mut self, now: Millis, input: ClusterInput) -> Reply {
        let mut reply = Reply::None;
        match input {
            ClusterInput::Tick => {}
            ClusterInput::CycleNow => {
                if let Phase::Idle { at } = &mut self.phase {
                    *at = now;
                }
            }
            ClusterInput::MembershipRead { seq, report } => {
                self.on_membership(now, seq, Ok(report))
            }
            ClusterInput::MembershipFailed { seq, error } => {
                self.on_membership(now, seq, Err(error.to_string()))
            }
            ClusterInput::NodesRead { seq, read_at, reports, unchanged } => {
                self.on_nodes_read(now, seq, read_at, reports);
                self.on_nodes_unchanged(now, seq, read_at, unchanged);
            }
            ClusterInput::NodeReadFailed { seq, node, error } => {
                if let Some(i) = self.expects_read(seq, node) {
                    let read = crate::monitor::ranked::Read::Unknown(error.to_string());
                    if let Some(h) = self.ranked.as_mut() {
                        let input = h.fed(node, read);
                        h.push(input);
                    }
                    self.on_node_read(now, i, NodeFiles::failed(error.to_string()));
                }
            }
            ClusterInput::CopyDone { seq, id } => self.on_copy(now, seq, Ok(id)),
            ClusterInput::CopyFailed { seq, error } => {
                self.on_copy(now, seq, Err(error.to_string()))
            }
            ClusterInput::StatusWritten { seq, file, result } => {
                let record =
                    file == SharedFile::Heartbeat && self.ranked_written(now, seq, &result);
                if !record {
                    self.on_written(now, seq, file, result)
                }
            }
            ClusterInput::Persisted { seq, result } => self.ranked_persisted(now, seq, result),
            ClusterInput::FenceDone { seq, node, result } => {
                self.ranked_fenced(seq, result.is_ok());
                self.events.push_back(match result {
                    Ok(()) => ClusterEvent::Fenced { node },
                    Err(error) => ClusterEvent::FenceFailed { node, error },
                })
            }
            ClusterInput::SpawnResult { id, result } => {
                if let Err(error) = result {
                    let input = match &error {
                        SpawnFailure::Starved { shortage, .. } => {
                            Input::SpawnStarved { id, shortage: *shortage }
                        }
                        _ => {
                            Input::Exited { id, status: ExitStatus::SpawnFailed, lingering: false }
                        }
                    };
                    self.events.push_back(ClusterEvent::SpawnFailed { id, error });
                    self.init_step(now, input);
                }
            }
            ClusterInput::ChildExited { id, status, lingering } => {
                self.init_step(now, Input::Exited { id, status, lingering });
            }
            ClusterInput::GroupGone { id } => {
                self.init_step(now, Input::GroupGone { id });
            }
            ClusterInput::ChildReady { id } => {
                self.init_step(now, Input::Ready { id });
            }
            ClusterInput::Client(request) => {
                reply = match request {
                    ClientRequest::Tell { group, level } => {
                        self.init_step(now, Input::Tell { group, level })
                    }
                    ClientRequest::Reload { table } => {
                        if &table != self.node.driver.init.table() {
                            self.init_step(now, Input::Reload { table })
                        } else {
                            Reply::None
                        }
                    }
                    ClientRequest::Halt => self.init_step(now, Input::Shutdown),
                };
            }
            ClusterInput::Stop => self.on_stop(now),
            ClusterInput::Leftovers { live } => self.ranked_leftovers(live),
            ClusterInput::Watchdog { up } => self.ranked_watchdog(up),
        }
        self.advance(now);
        reply
    }

    /// The next command for the executor, in the order they were decided.
    pub fn poll_command(&mut self) -> Option<ClusterCommand> {
        self.commands.pop_front()
    }

    /// The next event worth a log line.
    pub fn poll_event(&mut self) -> Option<ClusterEvent> {
        self.events.pop_front()
    }

    /// The next trace record and the canonical text of what it decided
    /// ([`crate::trace::decision_text`]), when [`ClusterConfig::trace`] is
    /// set. A writer hashes the texts, one line each, for [`Record::End`].
    pub fn poll_trace(&mut self) -> Option<(Record, String)> {
        // The ranked machine's steps since the last call go after what is
        // queued (their own order is kept; the machine sees no other input).
        if let (Some(tap), Some(h)) = (self.trace.as_mut(), self.ranked.as_mut()) {
            let node = self.cfg.me;
            for (at, input, commands) in h.machine.take_steps() {
                tap.push(Record::Ranked { node, at, input }, TraceOutcome::Ranked(&commands));
            }
        }
        self.trace.as_mut()?.out.pop_front()
    }

    /// Give back a record taken from [`ClusterDriver::poll_trace`] once it
    /// is written (optional). A [`Record::Cycle`]'s observation then
    /// becomes the map the next cycle's statuses are stored into, so that
    /// an unchanged clstat costs no `Arc` clone (a locked increment on a
    /// cold line per member and cycle: most of what tracing cost a 100-node
    /// simulation). Any record is safe to give, however old: only the map's
    /// nodes are reused, and only when they are the next read's; each
    /// status in it is checked or overwritten.
    pub fn recycle_trace(&mut self, record: Record) {
        if let Record::Cycle { obs, .. } = record {
            if self.kept_nodes.is_empty() {
                self.kept_nodes = obs.nodes;
            }
        }
    }

    /// Give back a decision text taken from [`ClusterDriver::poll_trace`]
    /// once it is hashed (optional): a later record's text is written into
    /// it, without growing a new string to the size of a cycle's text.
    /// Any string is safe to give: its content is replaced.
    pub fn recycle_trace_text(&mut self, text: String) {
        if let Some(tap) = &mut self.trace {
            if tap.spare.len() < SPARE_TEXTS {
                tap.spare.push(text);
            }
        }
    }

    /// When the driver next wants `handle(now, ClusterInput::Tick)`: the
    /// earliest of the init machine's timers (respawn throttle, stop
    /// escalation, clstat heartbeat), the next monitor cycle, the deadline
    /// of the read or copy in flight, the next heartbeat and any write
    /// retry, and while stopping the next look at the groups. `None`: only
    /// an input can wake it.
    ///
    /// Its answer can change after every [`ClusterDriver::handle`] call,
    /// whatever the input (results end read phases and start new ones,
    /// child exits move init timers, `Stop` ends cycles, write failures
    /// schedule retries), and after nothing else: `poll_command` and
    /// `poll_event` only drain queues.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.exit_sent {
            return None;
        }
        let mut at = self.node.driver.init.poll_timeout();
        let mut take = |t: Option<Millis>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        match &self.stopping {
            Some(s) if !s.halted => take(Some(s.next_check.min(s.deadline))),
            Some(_) => {}
            None => take(Some(match &self.phase {
                Phase::Idle { at } => match self.beats.first_until {
                    Some(until) => until.max(*at),
                    None => *at,
                },
                Phase::Membership { deadline, .. } => *deadline,
                Phase::Reading(r) => r.deadline,
                Phase::Copying(c) => c.deadline,
            })),
        }
        if !self.beats.removed {
            take(self.beats.next_at);
            take(self.beats.retry_at);
        }
        take(self.clstat.retry_at);
        take(self.hastat.retry_at);
        take(self.ranked.as_ref().and_then(|h| h.poll_timeout()));
        at
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Feed the init machine one input and turn what it did into commands.
    fn init_step(&mut self, now: Millis, input: Input) -> Reply {
        let record = self.trace.as_ref().map(|_| input.clone());
        let (reply, executed) = self.node.driver.step(now, input);
        if let (Some(tap), Some(input)) = (&mut self.trace, record) {
            let record = Record::Init { node: self.cfg.me, at: now, input };
            tap.push(record, TraceOutcome::Init { reply: &reply, executed: &executed });
        }
        self.absorb(now, executed);
        reply
    }

    /// Hand an adopted cltab to the init machine outside a cycle (under
    /// `ranked`, which has no [`Record::Cycle`] to carry it), recorded as
    /// the init input it is, [`Record::Init`] with [`Input::Reload`]: a
    /// replay feeds the init machine the same table at the same instant.
    /// Unrecorded, the replayed machine kept the old table, and the first
    /// test or start of a group the edit changed decided differently
    /// (`clinit-sim run --policy ranked --faults all`, N = 3, seed 12,
    /// 10 min: a `cltab-edit` added a test command that only the recording
    /// ran). Nothing happens when the table equals the current one, as
    /// [`ClusterNode::adopt_cltab`] says.
    pub(super) fn adopt_cltab_traced(&mut self, now: Millis, table: Cltab) {
        if &table == self.node.driver.init.table() {
            return;
        }
        let groups = table.groups().into_iter().map(String::from).collect();
        self.events.push_back(ClusterEvent::Node(Event::CltabReloaded { groups }));
        self.init_step(now, Input::Reload { table });
    }

    /// The glue's log of init actions → commands and events, in order.
    fn absorb(&mut self, _now: Millis, executed: Vec<Executed>) {
        let not_after = self.ranked.as_ref().and_then(|h| h.spawn_not_after());
        let any = !executed.is_empty();
        for e in executed {
            let Executed::Action(action) = e else { continue };
            match action {
                InitAction::Spawn { id, group, tag, level, command } => self
                    .commands
                    .push_back(ClusterCommand::Spawn { id, group, tag, level, command, not_after }),
                InitAction::Signal { id, signal } => {
                    self.commands.push_back(ClusterCommand::Signal { id, signal })
                }
                InitAction::WriteStatus { status, .. } => self.write_clstat(status),
                InitAction::Notice(n) => self.events.push_back(ClusterEvent::Init(n)),
                InitAction::Exit => {}
            }
        }
        if any {
            self.ranked_note_own();
        }
    }

    /// Fire what is due at `now`.
    fn advance(&mut self, now: Millis) {
        if self.exit_sent {
            return;
        }
        if self.node.driver.init.poll_timeout().is_some_and(|t| t <= now) {
            self.init_step(now, Input::Tick);
        }
        if !self.beats.removed {
            let due = |t: Option<Millis>| t.is_some_and(|t| t <= now);
            if due(self.beats.next_at) || due(self.beats.retry_at) {
                self.beat(now);
            }
        }
        if self.clstat.retry_at.is_some_and(|t| t <= now) {
            if let Some(status) = self.clstat.latest.take() {
                self.write_clstat(status);
            }
        }
        if self.hastat.retry_at.is_some_and(|t| t <= now) {
            if let Some(published) = self.hastat.latest.take() {
                self.write_hastat(published);
            }
        }
        if self.stopping.is_some() {
            self.stop_check(now);
        } else {
            self.advance_cycle(now);
        }
        self.ranked_pump(now);
        if self.node.driver.init.has_exited() {
            if self.cfg.membership == MembershipSource::HeartbeatFiles && !self.beats.removed {
                self.beats.removed = true;
                let seq = self.next_seq();
                self.commands.push_back(ClusterCommand::RemoveHeartbeat { seq });
            }
            self.exit_sent = true;
            self.commands.push_back(ClusterCommand::Exit);
        }
    }
}

/// Unit tests of the driver, by hand, with no I/O.
#[cfg(test)]
mod tests;
