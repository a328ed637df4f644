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
//!
//! Pieces: this module has the configuration and the loop, `executor` runs
//! commands and reports results, `logging` turns events into log lines.

mod executor;
mod hook_group;
mod logging;
/// Executing `ranked`'s commands (durable state, watchdog, kill, guarded fence).
pub mod ranked;
pub mod transitions;
/// Waking on a membership change (inotify), the periodic read kept.
pub mod watch;

use crate::atomic::replace_atomic;
use crate::daemon::{self, bind_socket, serve_connection, DaemonError, Job, RealProcesses};
use crate::fence::{CommandFence, Fence, FenceOutcome, LogFence};
use crate::generations;
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
use executor::{Clock, Executor, MembershipReader, Recorder};
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

impl MembershipKind {
    /// Where membership comes from, in words (a recording's header says
    /// it so).
    pub fn describe(&self) -> String {
        match self {
            MembershipKind::OpenMosix { hpcbase } => format!(
                "openmosix: a node is up when {}/nodes/N/status has bit value 2",
                hpcbase.display()
            ),
            MembershipKind::Heartbeat => {
                "heartbeat: a node is up while its heartbeat file in the shared directory is \
                 fresher than the timeout"
                    .into()
            }
        }
    }
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
    /// `--on-nodeup` / `--on-nodedown` hooks ([`transitions`]).
    pub hooks: transitions::Hooks,
    /// Where the children of this node's init machine write
    /// (`--child-output`, as `clinit -d`'s; default per-entry log files).
    pub output: ChildOutputConfig,
    /// Contain each entry in a cgroup v2 where this process can create one
    /// (as `clinit -d`; `--no-cgroups` turns it off). See README,
    /// "Containment".
    pub cgroups: bool,
}

/// Children's output settings of `mosha` (see [`crate::childlog`]).
#[derive(Debug, Clone, Default)]
pub struct ChildOutputConfig {
    pub mode: crate::childlog::ChildOutput,
    /// The log directory; `None`: a `:::log:` directive of the cltab, else
    /// `log/` beside this node's clstat.
    pub log_dir: Option<PathBuf>,
    pub rotation: crate::childlog::Rotation,
}

impl MoshaConfig {
    /// The options a trace header records (what a replay needs to know
    /// about where the trace came from).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "node": self.me,
            // The cluster's identity: its nodes share this directory.
            // `clinit-sim replay` refuses recordings of different ones.
            "mfsbase": self.paths.mfsbase,
            // In words for a person reading the header (it was a `Debug`
            // string); nothing parses it, so older headers still read.
            "membership": self.membership.describe(),
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
            hooks: transitions::Hooks { timeout: Duration::from_secs(30), ..Default::default() },
            output: ChildOutputConfig::default(),
            cgroups: true,
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
                    error!(
                        "my cltab does not parse; starting with an empty table: {}",
                        daemon::escape(&why)
                    );
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
    let (membership, source, describe) = match &cfg.membership {
        MembershipKind::OpenMosix { hpcbase } => {
            let m: Arc<dyn Membership> = Arc::new(HpcMembership::new(hpcbase.clone()));
            let describe = m.describe();
            (MembershipReader::Source(m), MembershipSource::External, describe)
        }
        MembershipKind::Heartbeat => (
            MembershipReader::Heartbeats(store.clone()),
            MembershipSource::HeartbeatFiles,
            // The start-up line says the timeout once, after this.
            "heartbeat files".to_string(),
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
    let listener = bind_socket(&socket, None)?;
    // A monitor killed with -9 leaves its services running (the original's
    // weakness W13: a restart started second copies beside them). Stop what
    // the previous generation recorded before anything starts; never adopt
    // it, since peers may already run those groups (README: "Restart after a
    // crash").
    let state_file = generations::state_path(&socket);
    let leftovers = daemon::stop_previous_generation(&state_file, &cfg.init.escalation);
    let recorder = match &cfg.record {
        Some(path) => {
            let header = Header::new("mosha", env!("CARGO_PKG_VERSION"), None, cfg.describe());
            let writer = TraceWriter::create(path, &header)
                .map_err(|source| MoshaError::Record { path: path.clone(), source })?;
            info!("recording this node's inputs to {}", path.display());
            if let Some(kept) = writer.kept() {
                // Never overwrite: the earlier incarnation's recording
                // (killed with -9, say) is the incident.
                info!("the earlier recording at {} is kept as {}", path.display(), kept.display());
            }
            Some(Recorder { writer, records: 0, digest: Sha256::new(), marked: None })
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
    // Every child carries this generation's marker (crate::generations):
    // a successor after a `kill -9`, the kill on a lost lease and the
    // watchdog find by it what left its process group.
    let generation = generations::generation(std::process::id(), &state_file);
    let mut env = vec![
        ("CLINIT_NODE".to_string(), me.to_string()),
        (generations::GENERATION_ENV.to_string(), generation.clone()),
    ];
    env.shrink_to_fit();
    let mut processes = RealProcesses::new(env);
    // Contained as `clinit -d` contains (a cgroup per entry where it can),
    // and the cgroup base recorded before anything is spawned.
    let cgroup_base = daemon::set_up_containment(&mut processes, cfg.cgroups, &state_file);
    // Without cgroups, a stop of one entry still reaches its descendants
    // that left the process group once they are orphans of this subreaper
    // (by CLINIT_INSTANCE; README, "Containment").
    processes.attribute_orphans(cgroup_base.is_none());
    let (durable, watchdog) = match &cfg.policy {
        PolicyConfig::Ranked(params) => {
            let path = ranked::state_path(&clstat_path);
            let durable = ranked::load_state(&path)?;
            match &durable {
                Some(d) => {
                    info!(
                        "ranked: the last run was incarnation {} ({}); this run is the next",
                        d.incarnation,
                        path.display()
                    )
                }
                None => info!("ranked: no state in {} yet (first start)", path.display()),
            }
            let watchdog = if params.watchdog {
                let exe = std::env::current_exe().map_err(MoshaError::Watchdog)?;
                let mut w = crate::watchdog::WatchdogHandle::spawn(&exe)
                    .map_err(|e| MoshaError::Watchdog(io::Error::other(e.to_string())))?;
                // What reaches a service's escaped descendants when it
                // fires (crate::watchdog::Reach).
                let reach = std::iter::once(crate::watchdog::Line::Marker(generation.clone()))
                    .chain(cgroup_base.clone().map(crate::watchdog::Line::Cgroup));
                let mut told = Vec::new();
                for line in reach {
                    if !line.is_sendable() {
                        warn!("ranked: cannot tell the watchdog {}", line.render().trim_end());
                        continue;
                    }
                    told.push(match &line {
                        crate::watchdog::Line::Cgroup(dir) => format!("below {}", dir.display()),
                        _ => format!("with the {} marker", generations::GENERATION_ENV),
                    });
                    w.send(line)
                        .map_err(|e| MoshaError::Watchdog(io::Error::other(e.to_string())))?;
                }
                info!(
                    "ranked: watchdog is pid {}; at its deadline it kills the service process \
                     groups and every process {}",
                    w.pid(),
                    told.join(" or ")
                );
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
    if leftovers > 0 {
        // Processes of the killed monitor that even SIGKILL did not end:
        // under `ranked` this node publishes `lost` until a peer fences it,
        // and nobody starts its groups beside them. The count is taken once,
        // at start: a STOMITH reboot is the way out, not their late exit.
        warn!("{leftovers} processes of an earlier monitor survived SIGKILL; telling the monitor");
        driver.handle(clock.now(), ClusterInput::Leftovers { live: leftovers });
    }
    let (results, mut answers) = mpsc::unbounded_channel();
    let (group_moves, moves_error) =
        crate::group_moves::Recorder::open(clstat_path.with_file_name(crate::group_moves::FILE));
    if let Some(e) = moves_error {
        warn!("group-change record: {e}");
    }
    let mut exec = Executor {
        me,
        store: store.clone(),
        membership,
        fence,
        processes,
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
        repeats: crate::repeats::Repeats::default(),
        blind_cycle: false,
        timeout,
        exit: false,
        watchdog,
        pgids: HashMap::new(),
        transitions: Some(transitions::Transitions::start(
            me,
            cfg.paths.mfsbase.clone(),
            cfg.paths.varpath.clone(),
            cfg.known.clone(),
            matches!(cfg.policy, PolicyConfig::Ranked(_)),
            cfg.hooks.clone(),
        )),
        group_moves,
        membership_reads: 0,
    };
    info!(
        "clinit daemon {} serving {} on {}",
        std::process::id(),
        cltab_path.display(),
        socket.display()
    );
    // Children's output (as `clinit -d`'s: per-entry logs by default) and
    // readiness of `ready=` entries, read on the output thread and
    // reported to this loop. The log directory defaults to `log/` beside
    // clstat, in this node's own HA directory.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let notify_dir = crate::readiness::notify_dir(&socket);
    let log_dir = daemon::effective_log_dir(
        cfg.output.log_dir.as_deref(),
        driver.init().table(),
        &exec.clstat,
    );
    let output = crate::childlog::OutputConfig {
        mode: cfg.output.mode,
        dir: log_dir,
        rotation: cfg.output.rotation,
    };
    daemon::start_output(&mut exec.processes, output, &notify_dir, ready_tx);

    let (requests_tx, mut requests) = mpsc::channel::<Job>(64);
    // Commands only from root or this daemon's uid (no --socket-group under
    // mosha); status from anyone who can reach the socket.
    let access = crate::access::Access::new(None);
    let cltab_arc = Arc::new(cltab_path.clone());
    let mut conns = tokio::task::JoinSet::new();
    let mut backstop = tokio::time::interval(daemon::REAP_BACKSTOP);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state_failing = false;
    // Wake on a membership change (see `watch`): a change seen while a
    // cycle runs waits for the driver's next membership read, which the
    // loop asks for with CycleNow until the driver has issued it.
    let mut watch = watch::Watch::start(match &cfg.membership {
        MembershipKind::OpenMosix { hpcbase } => {
            watch::Source::OpenMosix { hpcbase: hpcbase.clone() }
        }
        MembershipKind::Heartbeat => watch::Source::Heartbeat {
            mfsbase: cfg.paths.mfsbase.clone(),
            varpath: cfg.paths.varpath.clone(),
        },
    });
    let mut wake_before: Option<u64> = None;
    let mut armed_at = 0;
    loop {
        exec.drain(&mut driver);
        if wake_before.is_some_and(|reads| exec.membership_reads > reads) {
            wake_before = None;
        }
        if wake_before.is_some() {
            driver.handle(clock.now(), ClusterInput::CycleNow);
            exec.drain(&mut driver);
            if wake_before.is_some_and(|reads| exec.membership_reads > reads) {
                wake_before = None;
            }
        }
        if let Some(w) = watch.as_mut() {
            // Re-arm (a lost root, node directories made since) every
            // 8th periodic read, or at each while the root is not watched.
            if exec.membership_reads >= armed_at + if w.is_armed() { 8 } else { 1 } {
                armed_at = exec.membership_reads;
                w.arm();
            }
        }
        if let Some(entries) = exec.processes.take_state() {
            match generations::write_state(&state_file, cgroup_base.as_deref(), &entries) {
                Ok(()) => state_failing = false,
                Err(e) if !state_failing => {
                    state_failing = true;
                    error!("cannot write {}: {e}", state_file.display());
                }
                Err(_) => {}
            }
        }
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
            Some(id) = ready_rx.recv() => {
                info!("{} {id} is ready", exec.labels.get(&id).cloned().unwrap_or_default());
                driver.handle(clock.now(), ClusterInput::ChildReady { id });
            }
            Some(Job { request, table, reply }) = requests.recv() => {
                let answer = exec.request(&mut driver, &cltab_path, request, table);
                let _ = reply.send(answer);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { conns.spawn(serve_connection(stream, requests_tx.clone(), access, cltab_arc.clone())); }
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
            _ = watch::changed(&mut watch) => {
                debug!("membership source changed: reading it now");
                wake_before.get_or_insert(exec.membership_reads);
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
    exec.processes.finish_output();
    let _ = std::fs::remove_dir_all(&notify_dir);
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
    for path in [&exec.clstat, &socket, &state_file] {
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

#[cfg(test)]
mod describe_tests {
    use super::*;

    /// Issue 8: a recording's header said `"OpenMosix { hpcbase: … }"`,
    /// Rust `Debug` text; it now says where membership comes from.
    #[test]
    fn a_header_describes_membership_in_words() {
        let paths = NodePaths::new("/mfs", "var/clinit");
        let policy = PolicyConfig::Classic(Default::default());
        let open = MembershipKind::OpenMosix { hpcbase: "/proc/hpc".into() };
        let cfg = MoshaConfig::new(2, paths.clone(), open, policy.clone());
        let said = cfg.describe()["membership"].as_str().map(str::to_string);
        assert_eq!(
            said.as_deref(),
            Some("openmosix: a node is up when /proc/hpc/nodes/N/status has bit value 2")
        );
        let cfg = MoshaConfig::new(2, paths, MembershipKind::Heartbeat, policy);
        let said = cfg.describe()["membership"].as_str().map(str::to_string).unwrap_or_default();
        assert!(said.starts_with("heartbeat: ") && !said.contains('{'), "{said}");
    }
}
