//! `mosha`: the cluster layer on one node, around the node's own init
//! machine.
//!
//! Structure (one process, one tokio runtime):
//!
//! * The **daemon loop** ([`daemon::run_embedded`]) owns a [`ClusterNode`]
//!   (init machine + HA monitor). It reaps children, serves the control
//!   socket at `<mfsbase>/<N>/<varpath>/clinit.s` (so `clinit -s SOCKET -v`
//!   works), writes clstat, and runs [`CoreJob`]s sent by the cluster task.
//! * The **cluster task** (`Cluster`, private) runs the monitor's cycles. Each cycle
//!   it learns membership, reads every member's clstat, hactl and cltab
//!   (each node in its own blocking thread, bounded by a read timeout, so a
//!   dead shared mount costs a "unreadable" for that node, never a stalled
//!   daemon), replicates hactl and cltab, then sends one job that adopts a
//!   new cltab and runs [`ClusterNode::cycle`] on the loop. It carries out
//!   what comes back: fencing (in the background) and the hastat write, and
//!   logs what happened and why. It also writes the heartbeat (heartbeat
//!   membership) every third of the timeout, and handles SIGTERM/SIGINT:
//!   tell `stop` to every local group, wait for them (bounded, logged), then
//!   shut the init machine down; SIGHUP runs a cycle at once.

use crate::daemon::{
    self, Core, CoreJob, DaemonConfig, DaemonError, Embedding, FileStatus, RealDriver,
    RealProcesses,
};
use crate::fence::{CommandFence, Fence, FenceOutcome, LogFence};
use crate::heartbeat::{self, HeartbeatMembership};
use crate::membership::Membership;
use crate::openmosix::HpcMembership;
use crate::shared::{
    install, read_clstat, read_copy, write_hastat, CopyInfo, CopyRead, FsStore, NodePaths, Replica,
    Replicated, Settled, SharedFile, SharedStore,
};
use crate::trace_writer::TraceWriter;
use clinit_engine::cltab::Cltab;
use clinit_engine::cluster::CycleReport;
use clinit_engine::cluster::{self, ClusterNode, Event, External, Published};
use clinit_engine::driver::Executed;
use clinit_engine::hactl::Hactl;
use clinit_engine::init::{InitConfig, Input, Reply};
use clinit_engine::monitor::{Monitor, NodeStatus, Notice, Observation, Policy, PolicyConfig};
use clinit_engine::status::GroupStatus;
use clinit_engine::time::Millis;
use clinit_engine::trace::{DecisionWriter, Header, Outcome as TraceOutcome, Record};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use thiserror::Error;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// The core `mosha` runs in the daemon loop: the cluster node, and the
/// trace of its inputs when `--record` asks for one.
pub struct Node {
    pub cluster: ClusterNode<RealProcesses, FileStatus>,
    recorder: Option<Recorder>,
}

/// A trace being written, with the digest of every decision so far (the
/// trace's last line, so a replay can be checked bit for bit).
struct Recorder {
    writer: TraceWriter,
    records: u64,
    digest: Sha256,
    decisions: DecisionWriter,
    text: String,
}

impl Recorder {
    fn write(&mut self, record: &Record) {
        self.records += 1;
        self.writer.write(record);
    }

    /// Digest an outcome, then note its failed spawns (replay fails them too).
    fn decided(&mut self, node: u32, outcome: TraceOutcome<'_>, logs: &[&[Executed]]) {
        self.decisions.write(outcome, &mut self.text);
        self.digest.update(self.text.as_bytes());
        self.digest.update(b"\n");
        for e in logs.iter().flat_map(|l| l.iter()) {
            if let Executed::SpawnFailed { id, reason, .. } = e {
                self.write(&Record::SpawnFailed { node, id: *id, reason: reason.clone() });
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let digest = std::mem::take(&mut self.digest).finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let end = Record::End { records: self.records, decisions_sha256: hex };
        self.writer.write(&end);
    }
}

impl Node {
    fn record(&mut self, record: impl FnOnce() -> Record) {
        if let Some(r) = self.recorder.as_mut() {
            r.write(&record());
        }
    }

    /// A monitor cycle on `obs`, after adopting `adopt` (a new cltab).
    fn cycle_with(
        &mut self,
        adopt: Option<Cltab>,
        obs: &Observation,
    ) -> (Option<(Event, Vec<Executed>)>, CycleReport) {
        let me = self.cluster.me();
        self.record(|| Record::Cycle { node: me, adopt: adopt.clone(), obs: obs.clone() });
        let adopted = adopt.and_then(|table| self.cluster.adopt_cltab(obs.now, table));
        let report = self.cluster.cycle(obs);
        if let Some(r) = self.recorder.as_mut() {
            let adopted_ref = adopted.as_ref().map(|(e, ex)| (e, ex.as_slice()));
            let logs: [&[Executed]; 2] =
                [adopted_ref.map_or(&[][..], |(_, ex)| ex), &report.executed];
            r.decided(me, TraceOutcome::Cycle { adopted: adopted_ref, report: &report }, &logs);
        }
        (adopted, report)
    }

    /// Stop every local group (shutdown, or a lost quorum outside a cycle).
    fn stop_all_recorded(&mut self, now: Millis) -> (Vec<String>, Vec<Executed>) {
        let me = self.cluster.me();
        self.record(|| Record::StopAll { node: me, at: now });
        let (told, executed) = self.cluster.stop_all(now);
        if let Some(r) = self.recorder.as_mut() {
            r.decided(me, TraceOutcome::StopAll { told: &told, executed: &executed }, &[&executed]);
        }
        (told, executed)
    }
}

impl std::ops::Deref for Node {
    type Target = ClusterNode<RealProcesses, FileStatus>;
    fn deref(&self) -> &Self::Target {
        &self.cluster
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cluster
    }
}

impl Core for Node {
    fn driver(&mut self) -> &mut RealDriver {
        &mut self.cluster.driver
    }
    fn driver_ref(&self) -> &RealDriver {
        &self.cluster.driver
    }
    fn step(&mut self, at: Millis, input: Input) -> (Reply, Vec<Executed>) {
        let node = self.cluster.me();
        self.record(|| Record::Init { node, at, input: input.clone() });
        let (reply, executed) = self.cluster.driver.step(at, input);
        if let Some(r) = self.recorder.as_mut() {
            r.decided(
                node,
                TraceOutcome::Init { reply: &reply, executed: &executed },
                &[&executed],
            );
        }
        (reply, executed)
    }
    fn started(&mut self, log: &[Executed]) {
        let node = self.cluster.me();
        if let Some(r) = self.recorder.as_mut() {
            r.decided(node, TraceOutcome::Started(log), &[log]);
        }
    }
}

/// Shortest pause between two monitor cycles. The classic policy truncates
/// its cycle time to whole seconds and could ask for 0 (spec W16); a loop
/// of shared-filesystem reads with no pause would only load the cluster.
pub const MIN_CYCLE: Duration = Duration::from_millis(200);

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
        MoshaConfig {
            me,
            paths,
            membership,
            policy,
            seed: 0,
            stomith: None,
            fence_limit: Duration::from_secs(60),
            shutdown_wait: Duration::from_secs(120),
            read_timeout: default_read_timeout(timeout),
            init: InitConfig::default(),
            record: None,
        }
    }

    pub fn timeout(&self) -> Millis {
        policy_timeout(&self.policy)
    }
}

fn policy_timeout(policy: &PolicyConfig) -> Millis {
    clinit_engine::monitor::AnyPolicy::new(policy.clone()).timeout()
}

/// A third of the timeout, between 1 and 10 seconds.
pub fn default_read_timeout(timeout: Millis) -> Duration {
    Duration::from_millis(timeout.0 / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
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

/// Run `mosha` for one node until SIGTERM/SIGINT (or `clinit -k` on its
/// socket) has stopped everything.
pub async fn run(cfg: MoshaConfig) -> Result<(), MoshaError> {
    let me = cfg.me;
    let dir = cfg.paths.node_dir(me);
    std::fs::create_dir_all(&dir)
        .map_err(|source| MoshaError::NodeDir { path: dir.clone(), source })?;
    let store: Arc<dyn SharedStore> = Arc::new(FsStore::new(cfg.paths.clone()));
    let timeout = cfg.timeout();
    let membership: Arc<dyn Membership> = match &cfg.membership {
        MembershipKind::OpenMosix { hpcbase } => Arc::new(HpcMembership::new(hpcbase.clone())),
        MembershipKind::Heartbeat => Arc::new(HeartbeatMembership::new(store.clone(), timeout)),
    };
    let fence: Arc<dyn Fence> = match &cfg.stomith {
        Some(command) => {
            Arc::new(CommandFence { command: command.clone(), limit: cfg.fence_limit })
        }
        None => Arc::new(LogFence),
    };
    // Before anything runs: a signal must find a handler, not kill us.
    let sig = |kind| signal(kind).map_err(MoshaError::Signal);
    let signals = Signals {
        term: sig(SignalKind::terminate())?,
        int: sig(SignalKind::interrupt())?,
        hup: sig(SignalKind::hangup())?,
    };
    let table = initial_cltab(&*store, me);
    let mut dcfg = DaemonConfig::new(cfg.paths.file(me, SharedFile::Cltab), cfg.paths.socket(me));
    dcfg.clstat = cfg.paths.file(me, SharedFile::Clstat);
    dcfg.init = cluster::init_config(cfg.init.clone(), timeout);
    dcfg.env = vec![("CLINIT_NODE".into(), me.to_string())];
    info!(
        "mosha node {me}: files in {}, membership from {}, timeout {timeout}, clstat heartbeat {}, seed {}",
        dir.display(),
        membership.describe(),
        cluster::heartbeat_for(timeout),
        cfg.seed
    );

    let (jobs, rx) = mpsc::channel::<CoreJob<Node>>(16);
    let (policy, seed) = (cfg.policy.clone(), cfg.seed);
    let recorder = match &cfg.record {
        Some(path) => {
            let header = Header::new("mosha", env!("CARGO_PKG_VERSION"), None, cfg.describe());
            let writer = TraceWriter::create(path, &header)
                .map_err(|source| MoshaError::Record { path: path.clone(), source })?;
            info!("recording this node's inputs to {}", path.display());
            Some(Recorder {
                writer,
                records: 0,
                digest: Sha256::new(),
                decisions: DecisionWriter::default(),
                text: String::new(),
            })
        }
        None => None,
    };
    let (init_cfg, start_table) = (dcfg.init.clone(), table.clone());
    let embedding = Embedding {
        make_core: Box::new(move |driver, now| {
            let monitor = Monitor::new(policy.clone(), seed, now);
            let mut node = Node { cluster: ClusterNode::new(me, driver, monitor), recorder };
            node.record(|| Record::Start {
                node: me,
                at: now,
                policy,
                init: init_cfg,
                monitor_seed: seed,
                cltab: start_table,
            });
            node
        }),
        jobs: Some(rx),
        handle_signals: false,
        path_directives: false,
        table: Some(table),
    };
    // Heartbeat membership: set when leaving, under the lock every
    // heartbeat write holds, so no late write revives a removed heartbeat.
    let leaving =
        (cfg.membership == MembershipKind::Heartbeat).then(|| Arc::new(Mutex::new(false)));
    let cluster = Cluster {
        me,
        store: store.clone(),
        membership,
        fence,
        jobs: jobs.clone(),
        timeout,
        read_timeout: cfg.read_timeout,
        shutdown_wait: cfg.shutdown_wait,
        heartbeats: leaving.clone(),
        heartbeat_task: None,
        hactl: Replica::new(),
        cltab: Replica::new(),
        pending_reads: HashMap::new(),
        pending_membership: None,
        pending_write: None,
        said: BTreeSet::new(),
        saying: BTreeSet::new(),
    };
    let mut task = tokio::spawn(cluster.run(signals));
    let daemon = daemon::run_embedded(dcfg, embedding);
    tokio::pin!(daemon);
    let result = tokio::select! {
        result = &mut daemon => result,
        joined = &mut task => {
            match joined {
                Ok(()) => {}
                Err(e) => error!("the cluster task failed: {e}; halting the node"),
            }
            let halt: CoreJob<Node> =
                Box::new(|node: &mut Node, now| Core::step(node, now, Input::Shutdown).1);
            let _ = jobs.send(halt).await;
            daemon.await
        }
    };
    task.abort();
    if let Err(DaemonError::AlreadyRunning(_)) = &result {
        // Another mosha serves this node: its heartbeat is not ours to remove.
    } else if let Some(leaving) = leaving {
        let store = store.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let mut left = leaving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *left = true;
            heartbeat::remove(&*store, me)
        });
        match tokio::time::timeout(cfg.read_timeout, removed).await {
            Ok(Ok(Err(e))) => warn!("{e}"),
            Ok(_) => {}
            Err(_) => warn!("removing my heartbeat did not finish within {:?}", cfg.read_timeout),
        }
    }
    result?;
    info!("mosha node {me} exiting");
    Ok(())
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

/// Write my heartbeat, unless `mosha` is leaving (then it stays removed).
fn beat_unless_leaving(store: &dyn SharedStore, me: u32, leaving: &Mutex<bool>) {
    let Ok(left) = leaving.lock() else { return };
    if *left {
        return;
    }
    if let Err(e) = heartbeat::beat(store, me) {
        error!("heartbeat: {e}");
    }
}

/// Rewrite my heartbeat every `period`; a write that hangs (a dead shared
/// mount) is not piled up on.
async fn heartbeat_loop(
    store: Arc<dyn SharedStore>,
    me: u32,
    period: Duration,
    leaving: Arc<Mutex<bool>>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Option<JoinHandle<()>> = None;
    loop {
        tick.tick().await;
        if pending.as_ref().is_some_and(|h| !h.is_finished()) {
            warn!("my previous heartbeat write has not finished: is the shared directory hung?");
            continue;
        }
        let (store, leaving) = (store.clone(), leaving.clone());
        pending =
            Some(tokio::task::spawn_blocking(move || beat_unless_leaving(&*store, me, &leaving)));
    }
}

/// What was read of one node in one cycle.
struct NodeRead {
    clstat: NodeStatus,
    hactl: CopyRead<Hactl>,
    cltab: CopyRead<Cltab>,
}

impl NodeRead {
    fn failed(reason: String) -> NodeRead {
        NodeRead {
            clstat: NodeStatus::Unreadable { reason: reason.clone() },
            hactl: Err(reason.clone()),
            cltab: Err(reason),
        }
    }
}

/// Blocking: one node's clstat (not my own: the init machine knows it
/// better), hactl and cltab.
fn read_node(
    store: &dyn SharedStore,
    node: u32,
    me: u32,
    hactl: Option<CopyInfo<Hactl>>,
    cltab: Option<CopyInfo<Cltab>>,
) -> NodeRead {
    let clstat =
        if node == me { NodeStatus::Missing } else { read_clstat(store, node, SystemTime::now()) };
    NodeRead {
        clstat,
        hactl: read_copy(store, node, hactl.as_ref()),
        cltab: read_copy(store, node, cltab.as_ref()),
    }
}

/// What one cycle's job hands back from the daemon loop.
struct Outcome {
    events: Vec<Event>,
    external: Vec<External>,
    delay: Duration,
}

/// The cluster task's state.
struct Cluster {
    me: u32,
    store: Arc<dyn SharedStore>,
    membership: Arc<dyn Membership>,
    fence: Arc<dyn Fence>,
    jobs: mpsc::Sender<CoreJob<Node>>,
    timeout: Millis,
    read_timeout: Duration,
    shutdown_wait: Duration,
    /// With heartbeat membership: the "leaving" flag (see [`run`]).
    heartbeats: Option<Arc<Mutex<bool>>>,
    heartbeat_task: Option<JoinHandle<()>>,
    hactl: Replica<Hactl>,
    cltab: Replica<Cltab>,
    /// Node reads that overran the read timeout and still run.
    pending_reads: HashMap<u32, JoinHandle<NodeRead>>,
    pending_membership: Option<JoinHandle<Result<Vec<u32>, String>>>,
    pending_write: Option<JoinHandle<()>>,
    /// Warnings said in the previous cycle: repeated ones go to debug.
    said: BTreeSet<String>,
    saying: BTreeSet<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The cluster task ends (or is aborted): so does its heartbeat.
        if let Some(task) = self.heartbeat_task.take() {
            task.abort();
        }
    }
}

/// Run `f` on the node in the daemon loop and return its answer; `None`
/// when the loop is gone.
async fn on_node<T: Send + 'static>(
    jobs: &mpsc::Sender<CoreJob<Node>>,
    f: impl FnOnce(&mut Node, Millis) -> (T, Vec<clinit_engine::driver::Executed>) + Send + 'static,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    let job: CoreJob<Node> = Box::new(move |node: &mut Node, now| {
        let (answer, executed) = f(node, now);
        let _ = tx.send(answer);
        executed
    });
    jobs.send(job).await.ok()?;
    rx.await.ok()
}

impl Cluster {
    async fn run(mut self, mut signals: Signals) {
        // Wait until the daemon loop runs (its socket is bound): a node that
        // failed to start must not write heartbeats or tell anything.
        if on_node(&self.jobs, |_, _| ((), Vec::new())).await.is_none() {
            return;
        }
        if let Some(leaving) = self.heartbeats.clone() {
            // The first beat before the first cycle, so this node is a member
            // of its own first view; then a task of its own, so that a long
            // cycle never delays one.
            let period = Duration::from_millis(cluster::heartbeat_for(self.timeout).0.max(100));
            let (store, me, limit) = (self.store.clone(), self.me, self.read_timeout);
            let first = tokio::task::spawn_blocking({
                let (store, leaving) = (store.clone(), leaving.clone());
                move || beat_unless_leaving(&*store, me, &leaving)
            });
            let _ = tokio::time::timeout(limit, first).await;
            self.heartbeat_task = Some(tokio::spawn(heartbeat_loop(store, me, period, leaving)));
        }
        let mut wake = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = signals.term.recv() => return self.shutdown("SIGTERM", &mut signals).await,
                _ = signals.int.recv() => return self.shutdown("SIGINT", &mut signals).await,
                _ = signals.hup.recv() => {
                    info!("SIGHUP: running a monitor cycle now");
                    wake = Instant::now();
                }
                _ = tokio::time::sleep_until(wake) => match self.cycle().await {
                    Some(delay) => wake = Instant::now() + delay.max(MIN_CYCLE),
                    None => return,
                },
            }
        }
    }

    /// A warning, said once while it persists from cycle to cycle.
    fn say(&mut self, key: String, text: impl FnOnce() -> String) {
        if self.said.contains(&key) {
            debug!("{}", text());
        } else {
            warn!("{}", text());
        }
        self.saying.insert(key);
    }

    fn end_cycle_warnings(&mut self) {
        self.said = std::mem::take(&mut self.saying);
    }

    async fn members(&mut self) -> Result<Vec<u32>, String> {
        let handle = match self.pending_membership.take() {
            Some(h) if !h.is_finished() => {
                self.pending_membership = Some(h);
                return Err("the previous membership read has not finished".into());
            }
            _ => {
                let membership = self.membership.clone();
                tokio::task::spawn_blocking(move || membership.members().map_err(|e| e.to_string()))
            }
        };
        let mut handle = handle;
        match tokio::time::timeout(self.read_timeout, &mut handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("membership read failed: {e}")),
            Err(_) => {
                self.pending_membership = Some(handle);
                Err(format!("membership read did not finish within {:?}", self.read_timeout))
            }
        }
    }

    /// Read every node in `nodes` in parallel, each bounded by the read timeout.
    async fn read_nodes(&mut self, nodes: &[u32]) -> BTreeMap<u32, NodeRead> {
        let deadline = Instant::now() + self.read_timeout;
        let mut results = BTreeMap::new();
        let mut running = Vec::new();
        for &node in nodes {
            let where_ = self.store.describe(node, SharedFile::Clstat);
            if let Some(h) = self.pending_reads.remove(&node) {
                if !h.is_finished() {
                    self.pending_reads.insert(node, h);
                    let reason = format!("{where_}: the previous read has not finished yet");
                    results.insert(node, NodeRead::failed(reason));
                    continue;
                }
            }
            let (store, me) = (self.store.clone(), self.me);
            let (h, c) = (self.hactl.cached(node), self.cltab.cached(node));
            let handle = tokio::task::spawn_blocking(move || read_node(&*store, node, me, h, c));
            running.push((node, where_, handle));
        }
        for (node, where_, mut handle) in running {
            let read = match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(read)) => read,
                Ok(Err(e)) => NodeRead::failed(format!("{where_}: read failed: {e}")),
                Err(_) => {
                    self.pending_reads.insert(node, handle);
                    NodeRead::failed(format!("{where_}: no answer within {:?}", self.read_timeout))
                }
            };
            results.insert(node, read);
        }
        results
    }

    /// Replicate one file kind from this cycle's reads.
    async fn replicate<T: Replicated>(
        store: &Arc<dyn SharedStore>,
        replica: &mut Replica<T>,
        me: u32,
        reads: BTreeMap<u32, CopyRead<T>>,
        limit: Duration,
    ) -> Settled<T> {
        let decision = replica.plan(me, &reads);
        let installed = match decision.as_ref().and_then(|d| d.copy_from) {
            None => None,
            Some(from) => {
                let store = store.clone();
                let copy = tokio::task::spawn_blocking(move || install::<T, _>(&*store, me, from));
                Some(match tokio::time::timeout(limit, copy).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(e)) => Err(format!("copy failed: {e}")),
                    Err(_) => Err(format!("copying from node {from} took longer than {limit:?}")),
                })
            }
        };
        replica.settle(me, decision.as_ref(), installed)
    }

    /// One monitor cycle. Returns the time until the next one, or `None`
    /// when the daemon loop is gone.
    async fn cycle(&mut self) -> Option<Duration> {
        let me = self.me;
        let retry = Duration::from_millis(cluster::heartbeat_for(self.timeout).0)
            .min(Duration::from_secs(5));
        let members = match self.members().await {
            Ok(members) => members,
            Err(e) => {
                let what = self.membership.describe();
                self.say("membership".into(), || {
                    format!("membership ({what}) unknown: {e}; no decisions this cycle")
                });
                self.end_cycle_warnings();
                return Some(retry);
            }
        };
        let mut readset = members.clone();
        if !readset.contains(&me) {
            readset.push(me);
            readset.sort_unstable();
        }
        let mut reads = self.read_nodes(&readset).await;
        let mut hactl_reads = BTreeMap::new();
        let mut cltab_reads = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for (node, read) in std::mem::take(&mut reads) {
            hactl_reads.insert(node, read.hactl);
            cltab_reads.insert(node, read.cltab);
            nodes.insert(node, read.clstat);
        }
        let limit = self.read_timeout;
        let hactl = Self::replicate(&self.store, &mut self.hactl, me, hactl_reads, limit).await;
        let cltab = Self::replicate(&self.store, &mut self.cltab, me, cltab_reads, limit).await;
        if hactl.changed {
            if let Some(h) = &hactl.current {
                info!("hactl now wants: {}", summarize_hactl(h));
            }
        }
        let new_cltab = cltab.current.filter(|_| cltab.changed).map(|t| (*t).clone());
        let observation_hactl = hactl.current;
        let outcome = on_node(&self.jobs, move |node: &mut Node, now| {
            let mut executed = Vec::new();
            let mut events = Vec::new();
            let obs = Observation { now, me, members, nodes, hactl: observation_hactl };
            let (adopted, report) = node.cycle_with(new_cltab, &obs);
            if let Some((event, log)) = adopted {
                events.push(event);
                executed.extend(log);
            }
            executed.extend(report.executed);
            events.extend(report.events);
            let delay = Duration::from_millis(report.next_wakeup.saturating_sub(now).0);
            (Outcome { events, external: report.external, delay }, executed)
        })
        .await?;
        for event in outcome.events {
            self.log_event(event);
        }
        for action in outcome.external {
            match action {
                External::Fence { node } => self.run_fence(node),
                External::Publish(published) => self.publish(published),
            }
        }
        self.end_cycle_warnings();
        debug!("next monitor cycle in {:?}", outcome.delay);
        Some(outcome.delay)
    }

    fn log_event(&mut self, event: Event) {
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
            Event::QuorumRegained => info!("quorum regained: deciding again"),
            Event::NotListed { members } => self.say("notlisted".into(), || {
                format!("membership {members:?} does not list this node; counting it anyway")
            }),
            Event::CltabReloaded { groups } => {
                info!("adopted a new cltab: groups {groups:?}; the init machine reloads it")
            }
        }
    }

    /// Fence in the background; the engine already limits this to once
    /// per stale episode.
    fn run_fence(&self, node: u32) {
        let fence = self.fence.clone();
        tokio::task::spawn_blocking(move || match fence.fence(node) {
            FenceOutcome::Logged => {}
            FenceOutcome::Done { output } => error!("STOMITH node {node}: done. {output}"),
            FenceOutcome::Failed { reason, output } => {
                error!("STOMITH node {node} FAILED: {reason}. {output}")
            }
        });
    }

    /// Write hastat in the background (skipped while the last write hangs).
    fn publish(&mut self, published: Published) {
        if self.pending_write.as_ref().is_some_and(|h| !h.is_finished()) {
            self.say("hastat".into(), || "my previous hastat write has not finished".into());
            return;
        }
        let (store, me) = (self.store.clone(), self.me);
        self.pending_write = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = write_hastat(&*store, me, &published) {
                error!("hastat: {e}");
            }
        }));
    }

    /// SIGTERM/SIGINT: stop every local group, wait for them (bounded),
    /// then shut the init machine down. A second signal cuts the wait short.
    async fn shutdown(&mut self, name: &str, signals: &mut Signals) {
        info!("{name}: stopping every local group before exiting");
        let deadline = Instant::now() + self.shutdown_wait;
        let mut next_report = Instant::now();
        loop {
            let answer = on_node(&self.jobs, |node: &mut Node, now| {
                let (told, executed) = node.stop_all_recorded(now);
                ((told, node.busy_groups()), executed)
            })
            .await;
            let Some((told, busy)) = answer else { return };
            if !told.is_empty() {
                info!("told stop: {told:?}");
            }
            if busy.is_empty() {
                info!("every local group has stopped");
                break;
            }
            if Instant::now() >= deadline {
                warn!(
                    "local groups still busy after {:?}: {}; halting them now",
                    self.shutdown_wait,
                    describe_busy(&busy)
                );
                break;
            }
            if Instant::now() >= next_report {
                info!("waiting for local groups to stop: {}", describe_busy(&busy));
                next_report = Instant::now() + Duration::from_secs(5);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = signals.term.recv() => { warn!("SIGTERM again: halting now"); break; }
                _ = signals.int.recv() => { warn!("SIGINT again: halting now"); break; }
            }
        }
        let _ = on_node(&self.jobs, |node: &mut Node, now| {
            ((), Core::step(node, now, Input::Shutdown).1)
        })
        .await;
    }
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
