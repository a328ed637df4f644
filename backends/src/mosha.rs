//! `mosha`: the cluster layer on one node, as an executor of the engine's
//! [`ClusterDriver`].
//!
//! Every rule (membership freshness, read deadlines, replication and
//! adoption of `hactl` and `cltab`, staleness, placement, fencing, the
//! minimum cycle, heartbeats, graceful stop) is the driver's. This module
//! decides only *how* its commands run:
//!
//! * one tokio loop owns the driver; it reaps children (SIGCHLD, with a
//!   backstop poll), serves the control socket at
//!   `<mfsbase>/<N>/<varpath>/clinit.s` (so `clinit -s SOCKET -v` works),
//!   and wakes at [`ClusterDriver::poll_timeout`];
//! * spawns, signals and the clstat write run at once on the loop (as in
//!   plain `clinit`);
//! * reads of membership and of other nodes' files, copies, the hastat and
//!   heartbeat writes and fences run in blocking threads and come back as
//!   inputs when they finish, however late: the driver, not this loop,
//!   decides when a read has taken too long, and ignores late answers;
//! * SIGTERM/SIGINT become [`ClusterInput::Stop`], SIGHUP
//!   [`ClusterInput::CycleNow`]; driver events become log lines.

/// Executing `ranked`'s commands (durable state, watchdog, kill, guarded fence).
pub mod ranked;

use crate::atomic::replace_atomic;
use crate::daemon::{
    self, bind_socket, load_cltab, serve_connection, DaemonError, Job, RealProcesses,
};
use crate::fence::{CommandFence, Fence, FenceOutcome, LogFence};
use crate::heartbeat;
use crate::membership::{Membership, MembershipError};
use crate::openmosix::HpcMembership;
use crate::protocol::{Reply as WireReply, Request};
use crate::shared::{
    copy_mtime, read_file_stamped, wall, write_hastat, FsStore, NodePaths, Replicated, SharedFile,
    SharedStore, Stamp,
};
use crate::trace_writer::TraceWriter;
use clinit_engine::cltab::Cltab;
use clinit_engine::cluster::{
    self, ClientRequest, ClusterCommand, ClusterConfig, ClusterDriver, ClusterEvent, ClusterInput,
    Event, FenceFailure, IoFailure, MembershipReport, MembershipSource, SpawnFailure,
};
use clinit_engine::hactl::Hactl;
use clinit_engine::init::{InitConfig, Reply};
use clinit_engine::monitor::{Notice, Policy, PolicyConfig};
use clinit_engine::status::GroupStatus;
use clinit_engine::time::Millis;
use clinit_engine::trace::{Header, Record};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// Where membership comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipKind {
    /// `<hpcbase>/nodes/<N>/status`, bit value 2.
    OpenMosix { hpcbase: PathBuf },
    /// Heartbeat files under the shared directory, fresher than the timeout.
    Heartbeat,
}

/// Everything `mosha` needs to run one node.
#[derive(Debug, Clone)]
pub struct MoshaConfig {
    pub me: u32,
    pub paths: NodePaths,
    pub membership: MembershipKind,
    /// The policy; its timeout is the staleness limit, which also sets the
    /// clstat and heartbeat periods (a third of it).
    pub policy: PolicyConfig,
    pub seed: u64,
    /// STOMITH command (`CMD <node>`); `None` logs only.
    pub stomith: Option<String>,
    /// Longest a STOMITH command may run.
    pub fence_limit: Duration,
    /// On SIGTERM/SIGINT, how long to wait for the local groups to stop
    /// before halting them anyway.
    pub shutdown_wait: Duration,
    /// Longest wait for one node's files (or membership) in a cycle.
    pub read_timeout: Duration,
    /// Init machine tunables (the heartbeat is adjusted to the timeout).
    pub init: InitConfig,
    /// Record every input of this node's machines to this trace file.
    pub record: Option<PathBuf>,
    /// `ranked`: the initial known membership (a persisted state
    /// overrides it; empty: this node alone).
    pub known: Vec<u32>,
}

impl MoshaConfig {
    /// The options a trace header records (what a replay needs to know
    /// about where the trace came from).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "node": self.me,
            "membership": format!("{:?}", self.membership),
            "policy": self.policy,
            "seed": self.seed,
            "init": self.init,
            "stomith": self.stomith,
        })
    }

    /// A configuration with the original's defaults for what is not given.
    pub fn new(
        me: u32,
        paths: NodePaths,
        membership: MembershipKind,
        policy: PolicyConfig,
    ) -> Self {
        let timeout = policy_timeout(&policy);
        let read_timeout = match &policy {
            // ranked: H/4, so a slow read never eats the lease.
            PolicyConfig::Ranked(p) => Duration::from_millis(p.read_deadline.0),
            PolicyConfig::Classic(_) => default_read_timeout(timeout),
        };
        MoshaConfig {
            me,
            paths,
            membership,
            policy,
            seed: 0,
            stomith: None,
            fence_limit: Duration::from_secs(60),
            shutdown_wait: Duration::from_secs(120),
            read_timeout,
            init: InitConfig::default(),
            record: None,
            known: Vec::new(),
        }
    }

    pub fn timeout(&self) -> Millis {
        policy_timeout(&self.policy)
    }
}

fn policy_timeout(policy: &PolicyConfig) -> Millis {
    clinit_engine::monitor::AnyPolicy::new(policy.clone()).timeout()
}

/// The engine's default read deadline ([`cluster::default_read_timeout`]:
/// a third of the timeout, between 1 and 10 seconds).
pub fn default_read_timeout(timeout: Millis) -> Duration {
    Duration::from_millis(cluster::default_read_timeout(timeout).0)
}

#[derive(Debug, Error)]
pub enum MoshaError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("cannot create the node directory {path}: {source}")]
    NodeDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot install signal handler: {0}")]
    Signal(#[source] io::Error),
    #[error(transparent)]
    State(#[from] ranked::StateError),
    #[error("cannot start the ranked watchdog: {0}")]
    Watchdog(#[source] io::Error),
    #[error("cannot create the trace file {path}: {source}")]
    Record {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The node's cltab at start: a missing one is empty; a malformed one is
/// logged with `file:line` and replaced by an empty table (the daemon must
/// run, and a good copy may arrive by replication).
fn initial_cltab(store: &dyn SharedStore, me: u32) -> Cltab {
    let name = store.describe(me, SharedFile::Cltab);
    match store.read(me, SharedFile::Cltab) {
        Ok(Some(snap)) => {
            match <Cltab as Replicated>::parse(&String::from_utf8_lossy(&snap.bytes), &name) {
                Ok(table) => table,
                Err(why) => {
                    error!("my cltab does not parse; starting with an empty table:\n{why}");
                    Cltab::default()
                }
            }
        }
        Ok(None) => {
            info!("{name} does not exist yet; starting with an empty table");
            Cltab::default()
        }
        Err(e) => {
            error!("cannot read {name}: {e}; starting with an empty table");
            Cltab::default()
        }
    }
}

/// A trace being written, with the digest of every decision so far (the
/// trace's last line, so a replay can be checked bit for bit).
struct Recorder {
    writer: TraceWriter,
    records: u64,
    digest: Sha256,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let digest = std::mem::take(&mut self.digest).finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let end = Record::End { records: self.records, decisions_sha256: hex };
        self.writer.write(&end);
    }
}

/// Milliseconds since `mosha` started, on the monotonic clock.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Millis {
        Millis(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
    fn instant(&self, at: Millis) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0 + Duration::from_millis(at.0))
    }
}

/// Where membership is read.
#[derive(Clone)]
enum MembershipReader {
    Source(Arc<dyn Membership>),
    Heartbeats(Arc<dyn SharedStore>),
}

fn membership_failure(e: MembershipError) -> IoFailure {
    match e {
        MembershipError::List { path, source } => {
            IoFailure::new(format!("cannot list nodes in {}", path.display()), &source)
        }
        MembershipError::Timeout(d) => {
            IoFailure::other("membership read", io::ErrorKind::TimedOut, format!("{d:?}"))
        }
        MembershipError::Other(text) => {
            IoFailure::other("membership read", io::ErrorKind::Other, text)
        }
    }
}

/// Carries out the driver's commands.
struct Executor {
    me: u32,
    store: Arc<dyn SharedStore>,
    membership: MembershipReader,
    fence: Arc<dyn Fence>,
    processes: RealProcesses,
    clstat: PathBuf,
    clock: Clock,
    /// Results of blocking work, fed back to the driver by the loop.
    results: mpsc::UnboundedSender<ClusterInput>,
    /// Set when leaving, under the lock every heartbeat write holds, so no
    /// late write revives a removed heartbeat.
    leaving: Arc<Mutex<bool>>,
    hastat_write: Option<JoinHandle<()>>,
    heartbeat_write: Option<JoinHandle<()>>,
    removal: Option<JoinHandle<()>>,
    labels: HashMap<clinit_engine::process::ProcId, String>,
    /// The exact stamps of the replicated files last read, so a copy keeps
    /// its source's mtime to the nanosecond (a cache: no rule).
    stamps: Arc<Mutex<HashMap<(u32, SharedFile), Stamp>>>,
    recorder: Option<Recorder>,
    /// Warnings said in the previous cycle: repeated ones go to debug.
    said: std::collections::BTreeSet<String>,
    timeout: Millis,
    exit: bool,
    /// `ranked`: the watchdog process, and the process group of each child
    /// it watches.
    watchdog: Option<crate::watchdog::WatchdogHandle>,
    pgids: HashMap<clinit_engine::process::ProcId, u32>,
}

impl Executor {
    /// Run blocking `work` in a thread; its answer goes back to the driver.
    fn background(&self, work: impl FnOnce() -> ClusterInput + Send + 'static) -> JoinHandle<()> {
        let results = self.results.clone();
        tokio::task::spawn_blocking(move || {
            let _ = results.send(work());
        })
    }

    /// Carry out every queued command, feeding immediate answers back, and
    /// log events and write trace records as they come.
    fn drain(&mut self, driver: &mut ClusterDriver) {
        loop {
            while let Some(event) = driver.poll_event() {
                self.log_event(event);
            }
            while let Some((record, text)) = driver.poll_trace() {
                if let Some(r) = self.recorder.as_mut() {
                    r.records += 1;
                    r.writer.write(&record);
                    r.digest.update(text.as_bytes());
                    r.digest.update(b"\n");
                }
            }
            let Some(command) = driver.poll_command() else { return };
            if let Some(input) = self.carry_out(command) {
                driver.handle(self.clock.now(), input);
            }
        }
    }

    fn carry_out(&mut self, command: ClusterCommand) -> Option<ClusterInput> {
        let me = self.me;
        match command {
            ClusterCommand::ReadMembership { seq } => {
                let reader = self.membership.clone();
                self.background(move || match reader {
                    MembershipReader::Source(m) => match m.members() {
                        Ok(members) => ClusterInput::MembershipRead {
                            seq,
                            report: MembershipReport::Members(members),
                        },
                        Err(e) => {
                            ClusterInput::MembershipFailed { seq, error: membership_failure(e) }
                        }
                    },
                    MembershipReader::Heartbeats(store) => {
                        let read_at = wall(SystemTime::now());
                        match heartbeat::report(&*store) {
                            Ok(beats) => ClusterInput::MembershipRead {
                                seq,
                                report: MembershipReport::Heartbeats { read_at, beats },
                            },
                            Err(e) => {
                                ClusterInput::MembershipFailed { seq, error: membership_failure(e) }
                            }
                        }
                    }
                });
                None
            }
            ClusterCommand::ReadNode { seq, node, files } => {
                let (store, stamps) = (self.store.clone(), self.stamps.clone());
                self.background(move || {
                    let read_at = wall(SystemTime::now());
                    let mut reports = Vec::with_capacity(files.len());
                    for (file, known) in files {
                        let (report, stamp) = read_file_stamped(&*store, node, file, known);
                        if let (Some(stamp), SharedFile::Hactl | SharedFile::Cltab) = (stamp, file)
                        {
                            let mut stamps = stamps.lock().unwrap_or_else(|p| p.into_inner());
                            stamps.insert((node, file), stamp);
                        }
                        reports.push(report);
                    }
                    ClusterInput::NodeRead { seq, node, read_at, files: reports }
                });
                None
            }
            ClusterCommand::Copy { seq, file, from, bytes, mtime } => {
                let (store, stamps) = (self.store.clone(), self.stamps.clone());
                self.background(move || {
                    let name = store.describe(me, file);
                    let stamp = stamps.lock().map(|s| s.get(&(from, file)).copied()).ok().flatten();
                    let written = store
                        .write(me, file, &bytes, Some(copy_mtime(stamp.as_ref(), mtime)))
                        .and_then(|()| store.stat(me, file));
                    match written {
                        Ok(Some(stamp)) => ClusterInput::CopyDone { seq, id: stamp.content_id() },
                        Ok(None) => ClusterInput::CopyFailed {
                            seq,
                            error: IoFailure::other(
                                format!("cannot write {name}"),
                                io::ErrorKind::NotFound,
                                "vanished right after it was written",
                            ),
                        },
                        Err(e) => ClusterInput::CopyFailed {
                            seq,
                            error: IoFailure::new(format!("cannot write {name}"), &e),
                        },
                    }
                });
                None
            }
            ClusterCommand::WriteClstat { seq, status } => {
                // On the loop, as plain `clinit` writes it.
                let result =
                    replace_atomic(&self.clstat, status.render().as_bytes()).map_err(|e| {
                        IoFailure::new(format!("cannot write {}", self.clstat.display()), &e)
                    });
                Some(ClusterInput::StatusWritten { seq, file: SharedFile::Clstat, result })
            }
            ClusterCommand::WriteHastat { seq, published } => {
                if self.hastat_write.as_ref().is_some_and(|h| !h.is_finished()) {
                    let error = busy(self.store.describe(me, SharedFile::Hastat));
                    return Some(ClusterInput::StatusWritten {
                        seq,
                        file: SharedFile::Hastat,
                        result: Err(error),
                    });
                }
                let store = self.store.clone();
                self.hastat_write = Some(self.background(move || {
                    let result = write_hastat(&*store, me, &published);
                    ClusterInput::StatusWritten { seq, file: SharedFile::Hastat, result }
                }));
                None
            }
            ClusterCommand::WriteHeartbeat { seq, payload: Some(record), .. } => {
                // ranked's record, written whole by rename; only the engine
                // commands it (no executor task writes one on its own).
                let (store, leaving) = (self.store.clone(), self.leaving.clone());
                self.heartbeat_write = Some(self.background(move || {
                    let left = leaving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    let result = if *left {
                        Ok(())
                    } else {
                        store.write(me, SharedFile::Heartbeat, &record, None).map_err(|e| {
                            let name = store.describe(me, SharedFile::Heartbeat);
                            IoFailure::new(format!("cannot write {name}"), &e)
                        })
                    };
                    ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result }
                }));
                None
            }
            ClusterCommand::WriteHeartbeat { seq, .. } => {
                if self.heartbeat_write.as_ref().is_some_and(|h| !h.is_finished()) {
                    let error = busy(self.store.describe(me, SharedFile::Heartbeat));
                    let file = SharedFile::Heartbeat;
                    return Some(ClusterInput::StatusWritten { seq, file, result: Err(error) });
                }
                let (store, leaving) = (self.store.clone(), self.leaving.clone());
                self.heartbeat_write = Some(self.background(move || {
                    let result = beat_unless_leaving(&*store, me, &leaving);
                    ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result }
                }));
                None
            }
            ClusterCommand::RemoveHeartbeat { seq } => {
                let (store, leaving) = (self.store.clone(), self.leaving.clone());
                self.removal = Some(self.background(move || {
                    let mut left = leaving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    *left = true;
                    let result = heartbeat::remove(&*store, me);
                    ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result }
                }));
                None
            }
            ClusterCommand::Spawn { id, group, tag, level, command, not_after } => {
                let now = self.clock.now();
                let label = format!("{group}/{tag}");
                if let Some(limit) = not_after.filter(|limit| now > *limit) {
                    let error = SpawnFailure::TooLate { late_by: now.saturating_sub(limit).0 };
                    return Some(ClusterInput::SpawnResult { id, result: Err(error) });
                }
                info!("{label} {id} starting at level {level}: {command}");
                let result = self.processes.spawn_child(id, &group, &tag, &level, &command);
                match &result {
                    Ok(pid) => info!("{label} {id} is pid {pid}"),
                    Err(e) => error!("{tag} {id}: {e}"),
                }
                if let Ok(pid) = &result {
                    self.watch_group(id, *pid);
                }
                self.labels.insert(id, label);
                Some(ClusterInput::SpawnResult { id, result: result.map_err(SpawnFailure::Io) })
            }
            ClusterCommand::Signal { id, signal } => {
                let label = self.labels.get(&id).cloned().unwrap_or_else(|| id.to_string());
                match self.processes.signal_child(id, signal) {
                    Ok(true) => info!("{label}: sent {signal} to its process group"),
                    Ok(false) => debug!("{label}: {signal} not sent: already reaped"),
                    Err(e) => warn!("{label}: {signal} failed: {e}"),
                }
                None
            }
            ClusterCommand::Fence { seq, node } => {
                let fence = self.fence.clone();
                self.background(move || {
                    let result = match fence.fence(node) {
                        FenceOutcome::Logged => Ok(()),
                        FenceOutcome::Done { output } => {
                            error!("STOMITH node {node}: done. {output}");
                            Ok(())
                        }
                        FenceOutcome::Failed { reason, output } => {
                            Err(FenceFailure::Refused { status: reason, output })
                        }
                    };
                    ClusterInput::FenceDone { seq, node, result }
                });
                None
            }
            ClusterCommand::Exit => {
                self.exit = true;
                None
            }
            command @ (ClusterCommand::KillAllNow
            | ClusterCommand::Persist { .. }
            | ClusterCommand::ArmWatchdog { .. }
            | ClusterCommand::FenceRanked { .. }) => self.carry_out_ranked(command),
        }
    }

    /// A warning, said once while it persists; repeats go to debug.
    fn say(&mut self, key: String, text: impl FnOnce() -> String) {
        if self.said.insert(key) {
            warn!("{}", text());
        } else {
            debug!("{}", text());
        }
    }

    fn log_event(&mut self, event: ClusterEvent) {
        match event {
            ClusterEvent::Node(event) => self.log_node_event(event),
            ClusterEvent::Init(notice) => match notice {
                clinit_engine::init::Notice::GroupState { group, level, state } => {
                    info!("group {group}: {level} {state}")
                }
                clinit_engine::init::Notice::RespawnThrottled { group, tag, pause } => {
                    warn!("{group}/{tag} respawning too rapidly: next start in {pause}")
                }
                clinit_engine::init::Notice::NotRespawned { group, tag, reason } => {
                    info!("{group}/{tag} not respawned: {reason}")
                }
                clinit_engine::init::Notice::GroupRemoved { group } => {
                    info!("group {group} removed (gone from cltab)")
                }
            },
            ClusterEvent::MembershipUnknown { reason, .. } => {
                self.say("membership".into(), || {
                    format!("membership unknown: {reason}; no decisions this cycle")
                });
            }
            ClusterEvent::ReadTimedOut { node: None, after } => self
                .say("membership timeout".into(), || {
                    format!("membership read did not finish within {after}")
                }),
            ClusterEvent::ReadTimedOut { node: Some(node), after } => self
                .say(format!("timeout {node}"), || {
                    format!("node {node}'s files: no answer within {after}")
                }),
            ClusterEvent::HactlChanged { hactl } => {
                info!("hactl now wants: {}", summarize_hactl(&hactl))
            }
            ClusterEvent::Adopted { file, from, theirs, mine } => {
                let mine = mine.map_or("none".to_string(), |m| format!("mtime {m}"));
                info!(
                    "{file}: adopted node {from}'s copy (mtime {theirs}), replacing mine ({mine})"
                )
            }
            ClusterEvent::NotAdopted { file, from, reason } => {
                warn!("{file}: node {from}'s copy not adopted: {reason}")
            }
            ClusterEvent::NewestUnparsable { file, node, errors } => {
                warn!(
                    "node {node}'s {file} is the newest but does not parse; not adopted:\n{errors}"
                )
            }
            ClusterEvent::OwnUnparsable { file, errors, kept_last_good } => {
                let keep =
                    if kept_last_good { "keeping the last good copy" } else { "no good copy yet" };
                error!("my {file} does not parse ({keep}):\n{errors}")
            }
            ClusterEvent::OwnUnreadable { file, reason } => self.say(format!("own {file}"), || {
                format!("{reason}: cannot read my own {file}; not replicating it")
            }),
            ClusterEvent::WriteFailed { file, seq, error, retry_at } => {
                let now = self.clock.now();
                error!(
                    "{file} write #{seq}: {error}; writing it again in {}",
                    retry_at.saturating_sub(now)
                )
            }
            ClusterEvent::Fenced { node } => info!("node {node} fenced"),
            ClusterEvent::FenceFailed { node, error } => {
                error!("STOMITH node {node} FAILED: {error}")
            }
            ClusterEvent::SpawnFailed { id, error } => error!("{id}: not started: {error}"),
            ClusterEvent::Stopping { told } => info!("told stop: {told:?}"),
            ClusterEvent::StopWaiting { busy } => {
                info!("waiting for local groups to stop: {}", describe_busy(&busy))
            }
            ClusterEvent::StopTimedOut { busy, waited } => warn!(
                "local groups still busy after {waited}: {}; halting them now",
                describe_busy(&busy)
            ),
            ClusterEvent::Halting => info!("halting the init machine"),
            ClusterEvent::Ranked(notice) => info!("ranked: {notice:?}"),
            ClusterEvent::PersistFailed { error } => {
                error!("ranked: persisting the durable state failed: {error}; retrying")
            }
            ClusterEvent::LateTellDropped { group, level, late_by } => {
                warn!("ranked: tell {group} {level} dropped, {late_by} past its not-after time")
            }
        }
    }

    fn log_node_event(&mut self, event: Event) {
        match event {
            Event::Monitor(notice) => match notice {
                Notice::QuorumLost { me, visible, reference } => error!(
                    "node {me}: quorum lost: can only see nodes {visible:?} (last good count {reference})"
                ),
                Notice::Stale { node, age } => warn!(
                    "node {node} is stale: its clstat is {age} old (timeout {})",
                    self.timeout
                ),
                Notice::StaleEnded { node } => info!("node {node} is no longer stale"),
                Notice::Unreadable { node, reason, last_good_used } => {
                    let standin = if last_good_used {
                        "using its last good clstat"
                    } else {
                        "its groups are unknown: no planning meanwhile"
                    };
                    self.say(format!("unreadable {node}"), || {
                        format!("node {node}'s clstat is unreadable ({reason}); {standin}")
                    });
                }
                Notice::Conflict { group, nodes, backoff } => warn!(
                    "group {group} is active on nodes {nodes:?}: stopping it here, backing off {backoff}"
                ),
                Notice::PlanSuppressed { group, blind } => {
                    self.say(format!("suppressed {group}"), || {
                        format!("group {group} is not placed, but not planning it: nodes {blind:?} are unreadable")
                    })
                }
                Notice::NoHactl => self.say("nohactl".into(), || {
                    "no usable hactl on this node (nor a newer one elsewhere): no decisions".into()
                }),
            },
            Event::Told { group, level, reply } => match reply {
                Reply::Started => info!("tell {group} {level}"),
                other => self.say(format!("tell {group} {level}"), || {
                    format!("tell {group} {level} refused: {}", other.message())
                }),
            },
            Event::Halting { stopping } if stopping.is_empty() => {
                error!("quorum lost: no local group needs halting")
            }
            Event::Halting { stopping } => {
                error!("quorum lost: halting local groups {stopping:?}")
            }
            Event::Halted => warn!("quorum lost: every local group has stopped"),
            Event::QuorumRegained => {
                self.said.clear();
                info!("quorum regained: deciding again")
            }
            Event::NotListed { members } => self.say("notlisted".into(), || {
                format!("membership {members:?} does not list this node; counting it anyway")
            }),
            Event::CltabReloaded { groups } => {
                info!("adopted a new cltab: groups {groups:?}; the init machine reloads it")
            }
        }
    }

    /// A control-socket request.
    fn request(
        &mut self,
        driver: &mut ClusterDriver,
        cltab: &std::path::Path,
        request: Request,
    ) -> WireReply {
        let now = self.clock.now();
        let reload = |driver: &mut ClusterDriver| match load_cltab(cltab) {
            Ok(table) => {
                driver.handle(now, ClusterInput::Client(ClientRequest::Reload { table }));
                Ok(())
            }
            Err(e) => {
                error!("keeping the last good cltab: {e}");
                Err(e.to_string())
            }
        };
        match request {
            Request::Shutdown => {
                info!("shutdown requested by a client");
                let reply = driver.handle(now, ClusterInput::Client(ClientRequest::Halt));
                WireReply::ok(reply.message())
            }
            Request::Status => {
                let init = driver.init();
                let status = init.status();
                let groups: Vec<serde_json::Value> = status
                    .groups
                    .iter()
                    .map(|(g, s)| serde_json::json!({"group": g, "level": s.level, "state": s.state.as_str()}))
                    .collect();
                WireReply::ok("status").with_status(serde_json::json!({
                    "pid": std::process::id(),
                    "cltab": cltab.display().to_string(),
                    "processes": self.processes.live(),
                    "shutting_down": init.is_shutting_down(),
                    "groups": groups,
                }))
            }
            Request::Reread => match reload(driver) {
                Ok(()) => WireReply::ok("cltab reloaded"),
                Err(e) => WireReply::err(e),
            },
            Request::Tell { group, level } => {
                if let Err(e) = reload(driver) {
                    return WireReply::err(e);
                }
                info!("tell {group} {level}");
                let input = ClusterInput::Client(ClientRequest::Tell { group, level });
                let reply = driver.handle(now, input);
                if reply.is_ok() {
                    WireReply::ok(reply.message())
                } else {
                    WireReply::err(reply.message())
                }
            }
        }
    }

    fn reap(&mut self, driver: &mut ClusterDriver) {
        for input in self.processes.reap() {
            let input = match input {
                clinit_engine::init::Input::Exited { id, status, lingering } => {
                    if !lingering {
                        self.unwatch_group(id);
                    }
                    ClusterInput::ChildExited { id, status, lingering }
                }
                clinit_engine::init::Input::GroupGone { id } => {
                    self.unwatch_group(id);
                    ClusterInput::GroupGone { id }
                }
                _ => continue,
            };
            driver.handle(self.clock.now(), input);
        }
    }
}

fn busy(what: String) -> IoFailure {
    IoFailure::other(what, io::ErrorKind::WouldBlock, "the previous write has not finished")
}

/// Write my heartbeat, unless `mosha` is leaving (then it stays removed).
fn beat_unless_leaving(
    store: &dyn SharedStore,
    me: u32,
    leaving: &Mutex<bool>,
) -> Result<(), IoFailure> {
    let left = leaving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *left {
        return Ok(());
    }
    heartbeat::beat(store, me)
}

/// Run `mosha` for one node until SIGTERM/SIGINT (or `clinit -k` on its
/// socket) has stopped everything.
pub async fn run(cfg: MoshaConfig) -> Result<(), MoshaError> {
    let me = cfg.me;
    let dir = cfg.paths.node_dir(me);
    std::fs::create_dir_all(&dir)
        .map_err(|source| MoshaError::NodeDir { path: dir.clone(), source })?;
    let store: Arc<dyn SharedStore> = Arc::new(FsStore::new(cfg.paths.clone()));
    let timeout = cfg.timeout();
    let (membership, source, describe) = match &cfg.membership {
        MembershipKind::OpenMosix { hpcbase } => {
            let m: Arc<dyn Membership> = Arc::new(HpcMembership::new(hpcbase.clone()));
            let describe = m.describe();
            (MembershipReader::Source(m), MembershipSource::External, describe)
        }
        MembershipKind::Heartbeat => (
            MembershipReader::Heartbeats(store.clone()),
            MembershipSource::HeartbeatFiles,
            format!("heartbeat files, timeout {timeout}"),
        ),
    };
    let fence: Arc<dyn Fence> = match &cfg.stomith {
        Some(command) => {
            Arc::new(CommandFence { command: command.clone(), limit: cfg.fence_limit })
        }
        None => Arc::new(LogFence),
    };
    // Handlers first: a signal must find a handler, not kill us, and a
    // child must never exit before we listen for SIGCHLD.
    let sig = |kind| signal(kind).map_err(MoshaError::Signal);
    let mut sigchld = sig(SignalKind::child())?;
    let mut sigterm = sig(SignalKind::terminate())?;
    let mut sigint = sig(SignalKind::interrupt())?;
    let mut sighup = sig(SignalKind::hangup())?;
    let table = initial_cltab(&*store, me);
    for (name, value) in &table.other_directives {
        warn!("cltab: ignoring unknown directive :::{name}:{value}");
    }
    for (name, value) in [("socket", &table.socket), ("clstat", &table.clstat)] {
        if let Some(value) = value {
            warn!("cltab: ignoring :::{name}:{value} (the cluster layout fixes this path)");
        }
    }
    let cltab_path = cfg.paths.file(me, SharedFile::Cltab);
    let socket = cfg.paths.socket(me);
    let listener = bind_socket(&socket)?;
    let recorder = match &cfg.record {
        Some(path) => {
            let header = Header::new("mosha", env!("CARGO_PKG_VERSION"), None, cfg.describe());
            let writer = TraceWriter::create(path, &header)
                .map_err(|source| MoshaError::Record { path: path.clone(), source })?;
            info!("recording this node's inputs to {}", path.display());
            Some(Recorder { writer, records: 0, digest: Sha256::new() })
        }
        None => None,
    };
    info!(
        "mosha node {me}: files in {}, membership from {describe}, timeout {timeout}, clstat heartbeat {}, seed {}",
        dir.display(),
        cluster::heartbeat_for(timeout),
        cfg.seed
    );

    let clock = Clock(Instant::now());
    let ccfg = ClusterConfig {
        seed: cfg.seed,
        init: cfg.init.clone(),
        membership: source,
        read_timeout: Millis(u64::try_from(cfg.read_timeout.as_millis()).unwrap_or(u64::MAX)),
        shutdown_wait: Millis(u64::try_from(cfg.shutdown_wait.as_millis()).unwrap_or(u64::MAX)),
        trace: recorder.is_some(),
        ..ClusterConfig::new(me, cfg.policy.clone())
    };
    let clstat_path = cfg.paths.file(me, SharedFile::Clstat);
    let (durable, watchdog) = match &cfg.policy {
        PolicyConfig::Ranked(params) => {
            let path = ranked::state_path(&clstat_path);
            let durable = ranked::load_state(&path).map_err(MoshaError::State)?;
            match &durable {
                Some(d) => {
                    info!("ranked: incarnation {} persisted in {}", d.incarnation, path.display())
                }
                None => info!("ranked: no state in {} yet (first start)", path.display()),
            }
            let watchdog = if params.watchdog {
                let exe = std::env::current_exe().map_err(MoshaError::Watchdog)?;
                let w = crate::watchdog::WatchdogHandle::spawn(&exe)
                    .map_err(|e| MoshaError::Watchdog(io::Error::other(e.to_string())))?;
                info!("ranked: watchdog is pid {}", w.pid());
                Some(w)
            } else {
                warn!("ranked: running without a watchdog");
                None
            };
            (durable, watchdog)
        }
        PolicyConfig::Classic(_) => (None, None),
    };
    let ccfg = ClusterConfig { known: cfg.known.clone(), ..ccfg };
    let mut driver = ClusterDriver::with_durable(ccfg, table, durable, clock.now());
    let (results, mut answers) = mpsc::unbounded_channel();
    let mut env = vec![("CLINIT_NODE".to_string(), me.to_string())];
    env.shrink_to_fit();
    let mut exec = Executor {
        me,
        store: store.clone(),
        membership,
        fence,
        processes: RealProcesses::new(env),
        clstat: cfg.paths.file(me, SharedFile::Clstat),
        clock,
        results,
        leaving: Arc::new(Mutex::new(false)),
        hastat_write: None,
        heartbeat_write: None,
        removal: None,
        labels: HashMap::new(),
        stamps: Arc::default(),
        recorder,
        said: Default::default(),
        timeout,
        exit: false,
        watchdog,
        pgids: HashMap::new(),
    };
    info!(
        "clinit daemon {} serving {} on {}",
        std::process::id(),
        cltab_path.display(),
        socket.display()
    );

    let (requests_tx, mut requests) = mpsc::channel::<Job>(64);
    let mut conns = tokio::task::JoinSet::new();
    let mut backstop = tokio::time::interval(daemon::REAP_BACKSTOP);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        exec.drain(&mut driver);
        if exec.exit {
            break;
        }
        let deadline = driver.poll_timeout();
        let sleep = tokio::time::sleep_until(match deadline {
            Some(at) => clock.instant(at),
            None => tokio::time::Instant::now() + Duration::from_secs(3600),
        });
        let lingering = exec.processes.lingering() > 0;
        tokio::select! {
            biased;
            _ = sigchld.recv() => exec.reap(&mut driver),
            Some(input) = answers.recv() => { driver.handle(clock.now(), input); }
            Some((request, reply)) = requests.recv() => {
                let answer = exec.request(&mut driver, &cltab_path, request);
                let _ = reply.send(answer);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { conns.spawn(serve_connection(stream, requests_tx.clone())); }
                Err(e) => warn!("accept on {}: {e}", socket.display()),
            },
            _ = sigterm.recv() => {
                info!("SIGTERM: stopping every local group before exiting");
                driver.handle(clock.now(), ClusterInput::Stop);
            }
            _ = sigint.recv() => {
                info!("SIGINT: stopping every local group before exiting");
                driver.handle(clock.now(), ClusterInput::Stop);
            }
            _ = sighup.recv() => {
                info!("SIGHUP: running a monitor cycle now");
                driver.handle(clock.now(), ClusterInput::CycleNow);
            }
            _ = sleep, if deadline.is_some() => { driver.handle(clock.now(), ClusterInput::Tick); }
            _ = backstop.tick() => exec.reap(&mut driver),
            _ = tokio::time::sleep(daemon::LINGER_POLL), if lingering => exec.reap(&mut driver),
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }

    // Let in-flight replies (the shutdown request's, say) reach their clients.
    drop(requests);
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    exec.processes.kill_all();
    if let Some(removal) = exec.removal.take() {
        if tokio::time::timeout(cfg.read_timeout, removal).await.is_err() {
            warn!("removing my heartbeat did not finish within {:?}", cfg.read_timeout);
        }
    }
    while let Ok(input) = answers.try_recv() {
        if let ClusterInput::StatusWritten { file: SharedFile::Heartbeat, result: Err(e), .. } =
            input
        {
            warn!("{e}");
        }
    }
    for path in [&exec.clstat, &socket] {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != io::ErrorKind::NotFound {
                warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
    drop(exec);
    info!("mosha node {me} exiting");
    Ok(())
}

fn describe_busy(busy: &[(String, GroupStatus)]) -> String {
    let parts: Vec<String> =
        busy.iter().map(|(g, s)| format!("{g} {} {}", s.level, s.state)).collect();
    parts.join(", ")
}

fn summarize_hactl(h: &Hactl) -> String {
    let parts: Vec<String> = h.groups.iter().map(|(g, w)| format!("{g} {}", w.level)).collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}
