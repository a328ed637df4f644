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
//! what is worth a log line, `cycle` the read phase's state machine,
//! [`glue`] the routing between the monitor and the init machine
//! ([`ClusterNode`], kept public while the simulator still drives it).

pub mod command;
pub(crate) mod cycle;
pub mod event;
pub mod glue;
pub mod input;
mod ranked_host;

pub use command::ClusterCommand;
pub use event::ClusterEvent;
pub use glue::{heartbeat_for, init_config, ClusterNode, CycleReport, Event, External, Published};
pub use input::{
    ClientRequest, ClusterInput, ContentId, FenceFailure, FileRead, FileReport, FileVersion,
    IoFailure, MembershipReport, SharedFile, SpawnFailure, WallMs,
};
pub use ranked_host::parse_record;

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

/// Shortest pause between two monitor cycles. The classic policy truncates
/// its cycle time to whole seconds and could ask for 0 (spec W16); a loop
/// of shared-filesystem reads with no pause would only load the cluster.
pub const MIN_CYCLE: Millis = Millis(200);

/// How often a stopping node looks again at its groups (SIGTERM).
const STOP_POLL: Millis = Millis(100);
/// How often a stopping node says what it still waits for.
const STOP_REPORT: Millis = Millis(5_000);
/// Longest wait before membership is tried again after a failure.
const MEMBERSHIP_RETRY_CAP: Millis = Millis(5_000);
/// Longest wait before a failed status or heartbeat write is retried.
const WRITE_RETRY_CAP: Millis = Millis(1_000);
/// Shortest heartbeat period, however short the timeout.
const MIN_HEARTBEAT: Millis = Millis(100);

/// A third of the timeout, between 1 and 10 seconds: the default read
/// deadline (a dead shared mount costs one "unreadable", never a stall).
pub fn default_read_timeout(timeout: Millis) -> Millis {
    Millis((timeout.0 / 3).clamp(1_000, 10_000))
}

/// Heartbeat-file membership: the nodes whose heartbeat, read at
/// `read_at` (the reader's wall clock), is no older than `timeout` (ms).
/// An unreadable or missing heartbeat means "not up". Ages compare the
/// reader's clock with the writer's mtime, so clock skew between nodes eats
/// into the margin (spec W11).
pub fn fresh_heartbeats(read_at: WallMs, beats: &[(u32, FileRead)], timeout: Millis) -> Vec<u32> {
    beats
        .iter()
        .filter_map(|(node, read)| match read {
            Ok(Some(v)) if read_at.since(v.mtime) <= timeout => Some(*node),
            _ => None,
        })
        .collect()
}

/// How the driver judges one read of another node's `clstat` (with no
/// cache): missing → [`NodeStatus::Missing`]; unreadable, not UTF-8 or with
/// a line that is not a status line → [`NodeStatus::Unreadable`] naming
/// `file:line` ("unknown", never "runs nothing", spec W3); else its groups
/// and its age, `read_at − mtime` (zero for a file from the future).
pub fn judge_clstat(node: u32, read_at: WallMs, report: FileReport) -> NodeStatus {
    let mut cache = ClstatCache::new();
    cycle::clstat_status(node, read_at, &report.path, report.read, &mut cache)
}

/// How the driver turns one read of a replicated file into a copy
/// (parsed, or the cached parse when the content is unchanged).
pub fn judge_copy<T: Replicated>(
    node: u32,
    report: FileReport,
    replica: &Replica<T>,
) -> crate::monitor::replicate::CopyRead<T> {
    cycle::copy_read(node, &report.path, report.read, replica)
}

/// Where membership comes from, as far as the driver is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipSource {
    /// The executor's source answers with a member list (openMosix
    /// `/proc/hpc`, a simulator's oracle).
    External,
    /// Heartbeat files under the shared directory: the driver commands this
    /// node's heartbeat every [`heartbeat_for`] the timeout, and counts a
    /// node up while its heartbeat is no older than the timeout (ages
    /// compare the reader's clock with the writer's mtime: clock skew eats
    /// into the margin, spec W11).
    HeartbeatFiles,
}

/// How one node's driver is set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// This node.
    pub me: u32,
    /// The policy; its timeout is the staleness limit (ms) and sets the
    /// clstat and heartbeat periods (a third of it).
    pub policy: PolicyConfig,
    /// Seed of the monitor's random stream.
    pub seed: u64,
    /// Init machine tunables (the heartbeat is shortened to fit the timeout).
    pub init: InitConfig,
    pub membership: MembershipSource,
    /// Deadline of one read (membership, or one node's files) and of one
    /// copy, in ms.
    pub read_timeout: Millis,
    /// On [`ClusterInput::Stop`], how long to wait for the local groups to
    /// stop before halting them anyway (ms).
    pub shutdown_wait: Millis,
    /// Shortest pause between cycles (ms), [`MIN_CYCLE`] by default.
    pub min_cycle: Millis,
    /// Queue a trace of every call into the node's machines and the text of
    /// what it decided ([`ClusterDriver::poll_trace`]), for `mosha
    /// --record` and the simulator's replay.
    #[serde(default)]
    pub trace: bool,
    /// `ranked` only: the initial known membership (replicated
    /// configuration; a durable state from a previous run overrides it).
    /// Empty: this node alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<u32>,
}

impl ClusterConfig {
    /// Node `me` under `policy`, with the original's defaults for the rest.
    pub fn new(me: u32, policy: PolicyConfig) -> Self {
        let timeout = crate::monitor::AnyPolicy::new(policy.clone()).timeout();
        ClusterConfig {
            me,
            policy,
            seed: 0,
            init: InitConfig::default(),
            membership: MembershipSource::External,
            read_timeout: default_read_timeout(timeout),
            shutdown_wait: Millis::from_secs(120),
            min_cycle: MIN_CYCLE,
            trace: false,
            known: Vec::new(),
        }
        .with_policy_defaults()
    }

    /// Under `ranked`, the read deadline is the policy's (≤ H/4: a read
    /// that takes longer is "unknown" for that cycle, and no cycle waits
    /// for every node); classic keeps a third of its timeout.
    fn with_policy_defaults(mut self) -> Self {
        if let PolicyConfig::Ranked(p) = &self.policy {
            self.read_timeout = p.read_deadline;
        }
        self
    }

    /// The staleness timeout of the policy (ms).
    pub fn timeout(&self) -> Millis {
        crate::monitor::AnyPolicy::new(self.policy.clone()).timeout()
    }
}

/// Stands in for processes and the status file inside the glue's
/// [`NodeDriver`]: the driver turns what the init machine asked for (the
/// glue's [`Executed`] log) into commands instead.
#[derive(Debug, Default)]
pub struct Deferred;

impl Processes for Deferred {
    fn spawn(&mut self, _: ProcId, _: &str, _: &str, _: &str, _: &str) -> Result<u32, String> {
        Ok(0)
    }
    fn signal(&mut self, _: ProcId, _: Signal) -> Result<bool, String> {
        Ok(true)
    }
}

impl StatusStore for Deferred {
    fn write_status(&mut self, _: u64, _: &ClStat) -> Result<(), String> {
        Ok(())
    }
}

/// The latest write of one file, for retries.
#[derive(Debug, Clone)]
struct Write<T> {
    seq: Option<u64>,
    latest: Option<T>,
    retry_at: Option<Millis>,
}

impl<T> Default for Write<T> {
    fn default() -> Self {
        Write { seq: None, latest: None, retry_at: None }
    }
}

/// Heartbeat-file bookkeeping.
#[derive(Debug, Clone, Default)]
struct Beats {
    next_at: Option<Millis>,
    counter: u64,
    seq: Option<u64>,
    retry_at: Option<Millis>,
    /// Before the first beat is written (bounded by the read deadline), no
    /// cycle starts: this node should be a member of its own first view.
    first_until: Option<Millis>,
    removed: bool,
}

/// A graceful stop in progress.
#[derive(Debug, Clone)]
struct Stopping {
    started: Millis,
    deadline: Millis,
    next_check: Millis,
    next_report: Millis,
    halted: bool,
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
}

/// The trace being queued (see [`ClusterConfig::trace`]).
struct Tap {
    writer: DecisionWriter,
    out: VecDeque<(Record, String)>,
}

impl Tap {
    fn push(&mut self, record: Record, outcome: TraceOutcome<'_>) {
        let mut text = String::new();
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
            hactl: Replica::new(),
            cltab: Replica::new(),
            clstats: BTreeMap::new(),
            busy_reads: BTreeMap::new(),
            busy_membership: None,
            clstat: Write::default(),
            hastat: Write::default(),
            beats: Beats::default(),
            stopping: None,
            exit_sent: false,
            trace: None,
            ranked: None,
            cfg,
        };
        if let PolicyConfig::Ranked(params) = &d.cfg.policy {
            let own = d.node.driver.init.status();
            let host = ranked_host::RankedHost::new(
                d.cfg.me,
                params.clone(),
                &d.cfg.known,
                durable,
                own,
                now,
            );
            d.ranked = Some(host);
        }
        let first = d.node.driver.flush(now);
        if let Some(record) = start {
            let mut tap = Tap { writer: DecisionWriter::default(), out: VecDeque::new() };
            tap.push(record, TraceOutcome::Started(&first));
            d.trace = Some(tap);
        }
        d.absorb(now, first);
        if d.cfg.membership == MembershipSource::HeartbeatFiles && d.ranked.is_none() {
            d.beats.first_until = Some(now + d.cfg.read_timeout);
            d.beat(now);
        }
        d
    }

    /// This node's number.
    pub fn me(&self) -> u32 {
        self.cfg.me
    }

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
            ClusterInput::NodeRead { seq, node, read_at, mut files } => {
                if self.expects_read(seq, node) {
                    if let Some(i) = files.iter().position(|f| f.file == SharedFile::Heartbeat) {
                        let report = files.remove(i);
                        if let Some(h) = self.ranked.as_mut() {
                            if let Some(input) = h.record_read(node, report) {
                                h_queue(h, input);
                            }
                        }
                    }
                    let files = cycle::node_files(
                        node,
                        self.cfg.me,
                        read_at,
                        files,
                        &mut self.clstats,
                        &self.hactl,
                        &self.cltab,
                    );
                    self.on_node_read(now, seq, node, files);
                }
            }
            ClusterInput::NodeReadFailed { seq, node, error } => {
                if self.expects_read(seq, node) {
                    let read = crate::monitor::ranked::Read::Unknown(error.to_string());
                    self.ranked_queue(crate::monitor::ranked::Input::Read { node, read });
                    self.on_node_read(now, seq, node, NodeFiles::failed(error.to_string()));
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
                    self.events.push_back(ClusterEvent::SpawnFailed { id, error });
                    let status = ExitStatus::SpawnFailed;
                    self.init_step(now, Input::Exited { id, status, lingering: false });
                }
            }
            ClusterInput::ChildExited { id, status, lingering } => {
                self.init_step(now, Input::Exited { id, status, lingering });
            }
            ClusterInput::GroupGone { id } => {
                self.init_step(now, Input::GroupGone { id });
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
        self.trace.as_mut()?.out.pop_front()
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

    fn retry_delay(&self) -> Millis {
        Millis((heartbeat_for(self.timeout).0 / 4).max(1)).min(WRITE_RETRY_CAP)
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

    fn write_clstat(&mut self, status: ClStat) {
        let seq = self.next_seq();
        self.clstat = Write { seq: Some(seq), latest: Some(status.clone()), retry_at: None };
        self.commands.push_back(ClusterCommand::WriteClstat { seq, status });
    }

    fn write_hastat(&mut self, published: Published) {
        let seq = self.next_seq();
        self.hastat = Write { seq: Some(seq), latest: Some(published.clone()), retry_at: None };
        self.commands.push_back(ClusterCommand::WriteHastat { seq, published });
    }

    fn beat(&mut self, now: Millis) {
        let seq = self.next_seq();
        self.beats.counter += 1;
        self.beats.seq = Some(seq);
        self.beats.retry_at = None;
        self.beats.next_at = Some(now + heartbeat_for(self.timeout).max(MIN_HEARTBEAT));
        let counter = self.beats.counter;
        self.commands.push_back(ClusterCommand::WriteHeartbeat { seq, counter, payload: None });
    }

    fn on_written(
        &mut self,
        now: Millis,
        seq: u64,
        file: SharedFile,
        result: Result<(), IoFailure>,
    ) {
        if file == SharedFile::Heartbeat && self.beats.seq == Some(seq) {
            self.beats.first_until = None;
        }
        let Err(error) = result else { return };
        let retry_at = now + self.retry_delay();
        let latest = match file {
            SharedFile::Clstat => self.clstat.seq == Some(seq),
            SharedFile::Hastat => self.hastat.seq == Some(seq),
            SharedFile::Heartbeat => self.beats.seq == Some(seq) && !self.beats.removed,
            _ => false,
        };
        if latest {
            match file {
                SharedFile::Clstat => self.clstat.retry_at = Some(retry_at),
                SharedFile::Hastat => self.hastat.retry_at = Some(retry_at),
                _ => self.beats.retry_at = Some(retry_at),
            }
        }
        self.events.push_back(ClusterEvent::WriteFailed { file, seq, error, retry_at });
    }

    /// Whether a node read result is still awaited; a late one frees its
    /// node and is otherwise ignored.
    fn expects_read(&mut self, seq: u64, node: u32) -> bool {
        if self.busy_reads.get(&node) == Some(&seq) {
            self.busy_reads.remove(&node);
        }
        matches!(&self.phase, Phase::Reading(r) if r.pending.get(&seq) == Some(&node))
    }

    fn on_membership(&mut self, now: Millis, seq: u64, result: Result<MembershipReport, String>) {
        if self.busy_membership == Some(seq) {
            self.busy_membership = None;
        }
        let awaited = matches!(self.phase, Phase::Membership { seq: s, .. } if s == seq);
        if !awaited || self.stopping.is_some() {
            return;
        }
        match result {
            Ok(report) => {
                let members = self.members_of(report);
                self.start_reads(now, members);
            }
            Err(reason) => self.membership_unknown(now, reason),
        }
    }

    /// Members from a report: heartbeat files count while no older than the
    /// timeout (reader's clock − writer's mtime; an unreadable heartbeat
    /// means "not up").
    fn members_of(&self, report: MembershipReport) -> Vec<u32> {
        match report {
            MembershipReport::Members(m) => m,
            // Under ranked every node with a heartbeat file is listed; the
            // machine judges suspicion by counter changes on its own clock,
            // never by comparing a writer's mtime with this node's clock.
            MembershipReport::Heartbeats { beats, .. } if self.ranked.is_some() => beats
                .iter()
                .filter_map(|(node, read)| matches!(read, Ok(Some(_))).then_some(*node))
                .collect(),
            MembershipReport::Heartbeats { read_at, beats } => {
                fresh_heartbeats(read_at, &beats, self.timeout)
            }
        }
    }

    fn membership_unknown(&mut self, now: Millis, reason: String) {
        let retry = heartbeat_for(self.timeout).min(MEMBERSHIP_RETRY_CAP);
        let retry_at = now + retry;
        self.phase = Phase::Idle { at: retry_at };
        self.events.push_back(ClusterEvent::MembershipUnknown { reason, retry_at });
    }

    fn start_cycle(&mut self, now: Millis) {
        if let Some(seq) = self.busy_membership {
            let reason = format!("the previous membership read (#{seq}) has not finished");
            return self.membership_unknown(now, reason);
        }
        let seq = self.next_seq();
        self.commands.push_back(ClusterCommand::ReadMembership { seq });
        self.phase = Phase::Membership { seq, deadline: now + self.cfg.read_timeout };
    }

    fn start_reads(&mut self, now: Millis, members: Vec<u32>) {
        let me = self.cfg.me;
        let mut readset = members.clone();
        if !readset.contains(&me) {
            readset.push(me);
        }
        if let Some(h) = &self.ranked {
            // ranked reads every known member, listed or not: a node that
            // membership dropped still has a record (its last one, or a
            // release), and the fence guard compares against it.
            readset.extend(h.machine.config().members.iter().copied());
        }
        readset.sort_unstable();
        readset.dedup();
        let mut reading = Reading {
            deadline: now + self.cfg.read_timeout,
            members,
            pending: BTreeMap::new(),
            got: BTreeMap::new(),
        };
        for node in readset {
            if let Some(seq) = self.busy_reads.get(&node) {
                let reason = format!("node {node}: the previous read (#{seq}) has not finished");
                reading.got.insert(node, NodeFiles::failed(reason));
                continue;
            }
            let mut files = Vec::with_capacity(3);
            match &self.ranked {
                // Under ranked a peer's heartbeat file is its record.
                Some(h) if node != me => {
                    files.push((SharedFile::Heartbeat, h.known_record(node)));
                }
                Some(_) => {}
                None if node != me => {
                    let known = self.clstats.get(&node).map(|(id, _)| *id);
                    files.push((SharedFile::Clstat, known));
                }
                None => {}
            }
            files.push((SharedFile::Hactl, self.hactl.cached(node).map(|c| c.id)));
            files.push((SharedFile::Cltab, self.cltab.cached(node).map(|c| c.id)));
            let seq = self.next_seq();
            reading.pending.insert(seq, node);
            self.commands.push_back(ClusterCommand::ReadNode { seq, node, files });
        }
        if reading.pending.is_empty() {
            self.finish_reads(now, reading);
        } else {
            self.phase = Phase::Reading(reading);
        }
    }

    fn on_node_read(&mut self, now: Millis, seq: u64, node: u32, files: NodeFiles) {
        if self.stopping.is_some() {
            return;
        }
        let Phase::Reading(r) = &mut self.phase else { return };
        r.pending.remove(&seq);
        r.got.insert(node, files);
        if r.pending.is_empty() {
            let Phase::Reading(r) = std::mem::replace(&mut self.phase, Phase::Idle { at: now })
            else {
                return;
            };
            self.finish_reads(now, r);
        }
    }

    /// Every read answered or timed out: replicate, then copy or decide.
    fn finish_reads(&mut self, now: Millis, reading: Reading) {
        let me = self.cfg.me;
        let mut hactl_reads = BTreeMap::new();
        let mut cltab_reads = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for (node, files) in reading.got {
            hactl_reads.insert(node, files.hactl);
            cltab_reads.insert(node, files.cltab);
            nodes.insert(node, files.clstat);
        }
        let mut copying = Copying {
            deadline: now + self.cfg.read_timeout,
            members: reading.members,
            nodes,
            hactl: Step::default(),
            cltab: Step::default(),
        };
        let mut notes = Vec::new();
        copying.hactl.decision = self.hactl.plan(me, &hactl_reads, &mut notes);
        self.notes::<Hactl>(notes);
        let mut notes = Vec::new();
        copying.cltab.decision = self.cltab.plan(me, &cltab_reads, &mut notes);
        self.notes::<Cltab>(notes);
        let hactl_copy = copying.hactl.decision.as_ref().and_then(|d| self.hactl.to_install(d));
        let hactl_copy = hactl_copy.map(|(from, i)| (from, i.bytes.clone(), i.mtime));
        let cltab_copy = copying.cltab.decision.as_ref().and_then(|d| self.cltab.to_install(d));
        let cltab_copy = cltab_copy.map(|(from, i)| (from, i.bytes.clone(), i.mtime));
        for (step, copy, file) in [
            (&mut copying.hactl, hactl_copy, SharedFile::Hactl),
            (&mut copying.cltab, cltab_copy, SharedFile::Cltab),
        ] {
            if let Some((from, bytes, mtime)) = copy {
                self.seq += 1;
                let seq = self.seq;
                step.copy = Some(seq);
                self.commands.push_back(ClusterCommand::Copy { seq, file, from, bytes, mtime });
            }
        }
        if copying.hactl.waiting() || copying.cltab.waiting() {
            self.phase = Phase::Copying(copying);
        } else {
            self.decide(now, copying);
        }
    }

    fn on_copy(&mut self, now: Millis, seq: u64, result: Result<ContentId, String>) {
        if self.stopping.is_some() {
            return;
        }
        let Phase::Copying(c) = &mut self.phase else { return };
        let step = if c.hactl.copy == Some(seq) {
            &mut c.hactl
        } else if c.cltab.copy == Some(seq) {
            &mut c.cltab
        } else {
            return;
        };
        step.result = Some(result);
        if !c.hactl.waiting() && !c.cltab.waiting() {
            let Phase::Copying(c) = std::mem::replace(&mut self.phase, Phase::Idle { at: now })
            else {
                return;
            };
            self.decide(now, c);
        }
    }

    fn notes<T: Replicated>(&mut self, notes: Vec<ReplicaNote>) {
        let file = T::FILE;
        for note in notes {
            self.events.push_back(match note {
                ReplicaNote::OwnUnreadable { reason } => {
                    ClusterEvent::OwnUnreadable { file, reason }
                }
                ReplicaNote::NewestUnparsable { node, errors } => {
                    ClusterEvent::NewestUnparsable { file, node, errors }
                }
                ReplicaNote::OwnUnparsable { errors, kept_last_good } => {
                    ClusterEvent::OwnUnparsable { file, errors, kept_last_good }
                }
                ReplicaNote::Adopted { from, theirs, mine } => {
                    ClusterEvent::Adopted { file, from, theirs, mine }
                }
                ReplicaNote::NotAdopted { from, reason } => {
                    ClusterEvent::NotAdopted { file, from, reason }
                }
            });
        }
    }

    /// Settle replication, hand a new cltab to the init machine, run the
    /// monitor's cycle and route its decisions.
    fn decide(&mut self, now: Millis, copying: Copying) {
        let me = self.cfg.me;
        let Copying { members, nodes, hactl, cltab, .. } = copying;
        let mut notes = Vec::new();
        let h = self.hactl.settle(me, hactl.decision.as_ref(), hactl.result, &mut notes);
        self.notes::<Hactl>(notes);
        let mut notes = Vec::new();
        let c = self.cltab.settle(me, cltab.decision.as_ref(), cltab.result, &mut notes);
        self.notes::<Cltab>(notes);
        if h.changed {
            if let Some(hactl) = &h.current {
                self.events.push_back(ClusterEvent::HactlChanged { hactl: hactl.clone() });
            }
        }
        let adopt = c.current.filter(|_| c.changed).map(|t| (*t).clone());
        if self.ranked.is_some() {
            let adopted =
                adopt.as_ref().and_then(|table| self.node.adopt_cltab(now, table.clone()));
            if let Some((event, executed)) = adopted {
                self.events.push_back(ClusterEvent::Node(event));
                self.absorb(now, executed);
            }
            self.ranked_cycle(members, h.current.as_ref(), adopt.as_ref());
            self.ranked_pump(now);
            let period = self.ranked.as_ref().map_or(self.cfg.min_cycle, |r| r.read_period());
            self.phase = Phase::Idle { at: now + period.max(self.cfg.min_cycle) };
            return;
        }
        let obs = Observation { now, me, members, nodes, hactl: h.current };
        let record = self.trace.as_ref().map(|_| Record::Cycle {
            node: me,
            adopt: adopt.clone(),
            obs: obs.clone(),
        });
        let adopted = adopt.and_then(|table| self.node.adopt_cltab(now, table));
        let report = self.node.cycle(&obs);
        if let (Some(tap), Some(record)) = (&mut self.trace, record) {
            let adopted = adopted.as_ref().map(|(e, ex)| (e, ex.as_slice()));
            tap.push(record, TraceOutcome::Cycle { adopted, report: &report });
        }
        if let Some((event, executed)) = adopted {
            self.events.push_back(ClusterEvent::Node(event));
            self.absorb(now, executed);
        }
        self.absorb(now, report.executed);
        for event in report.events {
            self.events.push_back(ClusterEvent::Node(event));
        }
        for external in report.external {
            match external {
                External::Fence { node } => {
                    let seq = self.next_seq();
                    self.commands.push_back(ClusterCommand::Fence { seq, node });
                }
                External::Publish(published) => self.write_hastat(published),
            }
        }
        let at = report.next_wakeup.max(now + self.cfg.min_cycle);
        self.phase = Phase::Idle { at };
    }

    fn on_stop(&mut self, now: Millis) {
        match &mut self.stopping {
            Some(s) => {
                if !s.halted {
                    s.halted = true;
                    self.events.push_back(ClusterEvent::Halting);
                    self.init_step(now, Input::Shutdown);
                }
            }
            None => {
                self.stopping = Some(Stopping {
                    started: now,
                    deadline: now + self.cfg.shutdown_wait,
                    next_check: now,
                    next_report: now,
                    halted: false,
                });
            }
        }
    }

    /// Stop: tell every local group `stop`, wait for them, then halt.
    fn stop_check(&mut self, now: Millis) {
        let Some(s) = &self.stopping else { return };
        if s.halted || now < s.next_check {
            return;
        }
        let (told, executed) = self.node.stop_all(now);
        if let Some(tap) = &mut self.trace {
            let record = Record::StopAll { node: self.cfg.me, at: now };
            tap.push(record, TraceOutcome::StopAll { told: &told, executed: &executed });
        }
        self.absorb(now, executed);
        if !told.is_empty() {
            self.events.push_back(ClusterEvent::Stopping { told });
        }
        let busy = self.node.busy_groups();
        let Some(s) = &mut self.stopping else { return };
        let halt = if busy.is_empty() {
            true
        } else if now >= s.deadline {
            let waited = now.saturating_sub(s.started);
            self.events.push_back(ClusterEvent::StopTimedOut { busy, waited });
            true
        } else {
            if now >= s.next_report {
                s.next_report = now + STOP_REPORT;
                self.events.push_back(ClusterEvent::StopWaiting { busy });
            }
            s.next_check = now + STOP_POLL;
            false
        };
        if halt {
            s.halted = true;
            self.events.push_back(ClusterEvent::Halting);
            self.init_step(now, Input::Shutdown);
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
            if self.beats.next_at.is_some_and(|t| t <= now) {
                self.beat(now);
            } else if self.beats.retry_at.is_some_and(|t| t <= now) {
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

    fn advance_cycle(&mut self, now: Millis) {
        match &mut self.phase {
            Phase::Idle { at } => {
                let gated = self.beats.first_until.is_some_and(|until| now < until);
                if *at <= now && !gated {
                    self.beats.first_until = None;
                    self.start_cycle(now);
                }
            }
            Phase::Membership { seq, deadline } => {
                if *deadline <= now {
                    let seq = *seq;
                    self.busy_membership = Some(seq);
                    let after = self.cfg.read_timeout;
                    self.events.push_back(ClusterEvent::ReadTimedOut { node: None, after });
                    self.membership_unknown(now, format!("no answer within {after}"));
                }
            }
            Phase::Reading(r) => {
                if r.deadline <= now {
                    let Phase::Reading(mut r) =
                        std::mem::replace(&mut self.phase, Phase::Idle { at: now })
                    else {
                        return;
                    };
                    let after = self.cfg.read_timeout;
                    for (seq, node) in std::mem::take(&mut r.pending) {
                        self.busy_reads.insert(node, seq);
                        let reason = format!("node {node}: no answer within {after}");
                        r.got.insert(node, NodeFiles::failed(reason));
                        self.events
                            .push_back(ClusterEvent::ReadTimedOut { node: Some(node), after });
                    }
                    self.finish_reads(now, r);
                }
            }
            Phase::Copying(c) => {
                if c.deadline <= now {
                    let after = self.cfg.read_timeout;
                    for step in [&mut c.hactl, &mut c.cltab] {
                        if step.waiting() {
                            step.result = Some(Err(format!("the copy took longer than {after}")));
                        }
                    }
                    let Phase::Copying(c) =
                        std::mem::replace(&mut self.phase, Phase::Idle { at: now })
                    else {
                        return;
                    };
                    self.decide(now, c);
                }
            }
        }
    }
}

fn h_queue(h: &mut ranked_host::RankedHost, input: crate::monitor::ranked::Input) {
    h.push(input);
}

/// Unit tests of the driver, by hand, with no I/O.
#[cfg(test)]
mod tests;
