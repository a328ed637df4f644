//! The `clinit` daemon: a tokio loop around the node driver.
//!
//! One task owns the init machine. It wakes for child exits (SIGCHLD),
//! client requests (a UNIX socket; one JSON request and one reply per
//! connection, see [`crate::protocol`]), its own timers, and SIGTERM/SIGINT
//! (graceful shutdown) or SIGHUP (re-read the cltab). Connections are read
//! by small per-connection tasks, so a slow or malicious client never
//! stalls the machine.
//!
//! `mosha` runs a loop of the same shape around the engine's cluster
//! driver (see [`crate::mosha`]) and shares this module's process table,
//! socket handling and cltab loading.
//!
//! The loop itself never reads a file and never waits for one (issue 10,
//! items 9 and 12): the cltab is read (regular files only, at most
//! [`MAX_CLTAB_BYTES`], see [`crate::safe_read`]) on a blocking thread with a
//! deadline of [`READ_TIMEOUT`], by the connection task that needs it (a tell
//! or re-read) or by a task started for SIGHUP, and only the parsed table
//! reaches the loop. When `accept` fails for lack of descriptors
//! (`EMFILE`/`ENFILE`), the loop stops accepting for a short, growing pause
//! (up to [`ACCEPT_PAUSE_MAX`]) instead of spinning, and logs a repeated
//! error at most once a second with a count of what it held back.
//! Who may connect and command: [`crate::access`].

use crate::access::{self, Access, Peer};
use crate::atomic::replace_atomic;
use crate::cgroup::Containment;
use crate::childlog::{ChildOutput, OutputConfig, OutputJob, OutputThread, Rotation};
use crate::generations::{self, StateEntry, StateRecords};
use crate::process::ChildExtras;
use crate::process::{ProcessTable, Reaped, SpawnError, SpawnSpec};
use crate::protocol::{self, Reply, Request};
use crate::readiness::{Cancel, NotifySocket, ReadyTx};
use crate::safe_read::{read_regular, ReadError};
use crate::status_writer::StatusWriter;
use clinit_engine::cltab::{Cltab, ParseErrors, MAX_CLTAB_BYTES};
use clinit_engine::cluster::{IoFailure, SpawnFailure};
use clinit_engine::driver::{Executed, NodeDriver, Processes, StatusStore};
use clinit_engine::init::{Action, Init, InitConfig, Input, Notice, Reply as InitReply};
use clinit_engine::options::{EntryOptions, Readiness};
use clinit_engine::process::{ProcId, Shortage, Signal, SpawnError as EngineSpawnError};
use clinit_engine::status::ClStat;
use clinit_engine::time::Millis;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// Default paths of the original.
pub const DEFAULT_CLTAB: &str = "/etc/cltab";
pub const DEFAULT_SOCKET: &str = "/var/run/clinit/clinit.s";
pub const DEFAULT_CLSTAT: &str = "/var/run/clinit/clstat";

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Reap even without SIGCHLD this often (belt and braces: signals coalesce).
pub(crate) const REAP_BACKSTOP: Duration = Duration::from_secs(1);
/// How often to look for the end of a lingering process group (its members
/// are not our children, so no SIGCHLD tells us).
pub(crate) const LINGER_POLL: Duration = Duration::from_millis(50);
/// Longest a cltab read may take before the daemon gives up on it and keeps
/// its last good table (a hung network filesystem).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause of `accept` after it failed for lack of descriptors.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(5);
/// Longest pause of `accept`: a freed descriptor is used within this time.
pub const ACCEPT_PAUSE_MAX: Duration = Duration::from_millis(50);
/// Spawns per slice of a large level change under `clinit -d`: 10 to 40 ms
/// of fork/exec on a small, busy machine, so status answers stay under 100 ms.
pub const SPAWN_SLICE: usize = 16;
/// While a large level change is carried out in slices, the detailed
/// status file (`clstat.json`) is rewritten at most this often.
const DETAIL_EVERY_BUSY: Duration = Duration::from_millis(200);
/// Otherwise at most this often, and the last change is always written
/// (a timer wakes the loop for it). Why: every respawn changed it (a new
/// pid), and each rewrite is a render of every entry on the loop and an
/// atomic replace on the writer thread (create, write, `rename`, and the
/// old file's blocks freed): with back-to-back `kill -9`s that was a third
/// of the daemon's CPU per restart (`perf`), and `399a718` wrote nothing
/// on a respawn. The first change after a quiet spell is written at once.
const DETAIL_EVERY: Duration = Duration::from_millis(100);
/// How often the detail file may be rewritten: while `busy` (a level
/// change in slices, a shutdown) or not.
fn detail_every(busy: bool) -> Duration {
    if busy {
        DETAIL_EVERY_BUSY
    } else {
        DETAIL_EVERY
    }
}

/// How long after a large level change the heap is trimmed ([`trim_heap`]).
const TRIM_AFTER: Duration = Duration::from_millis(500);

/// A repeated error is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("{0}")]
    Cltab(ParseErrors),
    #[error("{0}")]
    ReadCltab(#[source] ReadError),
    #[error("another daemon is already listening on {0}")]
    AlreadyRunning(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("cannot install signal handler: {0}")]
    Signal(io::Error),
    #[error("socket group: {0}")]
    SocketGroup(#[from] access::GroupError),
}

/// Where things are and how the machine is tuned.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub cltab: PathBuf,
    /// Socket path from the command line; a `:::socket:` directive wins.
    pub socket: PathBuf,
    /// Status path default; a `:::clstat:` directive wins.
    pub clstat: PathBuf,
    pub init: InitConfig,
    /// Extra environment for every child (e.g. `CLINIT_NODE` under mosha).
    pub env: Vec<(String, String)>,
    /// Group (name or gid) whose members may command the daemon; the socket
    /// is then 0660 and owned by it, else 0600 (see [`crate::access`]).
    pub socket_group: Option<String>,
    /// Most spawns carried out between two looks at requests and exits
    /// (`None`: all at once). `clinit -d` uses [`SPAWN_SLICE`].
    pub spawn_slice: Option<usize>,
    /// Contain each entry in a cgroup v2 where possible ([`crate::cgroup`]).
    pub cgroups: bool,
    /// Where children's output goes ([`crate::childlog`]).
    pub child_output: ChildOutput,
    /// Log directory of `child_output = file`; a `:::log:` directive wins
    /// (as `:::socket:` wins over `-s`); default [`default_log_dir`].
    pub log_dir: Option<PathBuf>,
    /// Rotation of each entry's log file.
    pub rotation: Rotation,
}

/// Start the output thread of `processes` (children's output, readiness
/// sources) with `cfg`, and make the directory of readiness sockets.
/// Shared by `clinit -d` and `mosha`, so both treat children's output
/// alike.
///
/// Errors are logged, never fatal: a log directory that cannot be made
/// sends the lines to the daemon's own log (`journal`), as losing them
/// would be worse; a thread that cannot start leaves children on the
/// daemon's stderr; a notify directory that cannot be made lets `ready=`
/// entries time out (and say so in status).
pub fn start_output(
    processes: &mut RealProcesses,
    mut cfg: OutputConfig,
    notify_dir: &Path,
    ready_tx: ReadyTx,
) {
    if cfg.mode == ChildOutput::File {
        if let Err(e) = create_dir(&cfg.dir) {
            error!("{e}; children's output goes to this log instead (--child-output journal)");
            cfg.mode = ChildOutput::Journal;
        }
    }
    let (mode, dir) = (cfg.mode, cfg.dir.clone());
    match OutputThread::start(cfg) {
        Ok(out) => {
            info!("children's output: {} ({})", mode.as_str(), dir.display());
            processes.set_output(out);
            match crate::readiness::create_notify_dir(notify_dir) {
                Ok(()) => processes.set_readiness(ready_tx, notify_dir.to_path_buf()),
                Err(e) => error!(
                    "cannot create {}: {e}; ready=notify entries will time out",
                    notify_dir.display()
                ),
            }
        }
        Err(e) => error!("cannot start the output thread: {e}; children inherit stderr"),
    }
}

/// Children's output settings and counters as status shows them (`null`
/// when there is no output thread).
pub fn output_status(out: Option<&OutputThread>) -> serde_json::Value {
    out.map(|o| {
        serde_json::json!({
            "mode": o.cfg.mode.as_str(),
            "log_dir": o.cfg.dir.display().to_string(),
            "max_bytes": o.cfg.rotation.max_bytes,
            "keep": o.cfg.rotation.keep,
            "lines": o.stats.lines.load(std::sync::atomic::Ordering::Relaxed),
            "dropped": o.stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
        })
    })
    .unwrap_or(serde_json::Value::Null)
}

/// The default log directory: `log/` beside the status file, which for
/// the default paths is `/var/run/clinit/log`, the original's default
/// `log` path (which it parsed but never used).
pub fn default_log_dir(clstat: &Path) -> PathBuf {
    clstat.parent().unwrap_or(Path::new(".")).join("log")
}

/// The log directory in force: the `:::log:` directive, else the
/// configured one, else [`default_log_dir`].
pub fn effective_log_dir(configured: Option<&Path>, table: &Cltab, clstat: &Path) -> PathBuf {
    table
        .log
        .as_ref()
        .map(PathBuf::from)
        .or_else(|| configured.map(Path::to_path_buf))
        .unwrap_or_else(|| default_log_dir(clstat))
}

impl DaemonConfig {
    pub fn new(cltab: PathBuf, socket: PathBuf) -> Self {
        DaemonConfig {
            cltab,
            socket,
            clstat: PathBuf::from(DEFAULT_CLSTAT),
            init: InitConfig::default(),
            env: Vec::new(),
            socket_group: None,
            spawn_slice: None,
            cgroups: true,
            child_output: ChildOutput::File,
            log_dir: None,
            rotation: Rotation::default(),
        }
    }
}

/// Read and parse a cltab. A missing file is an empty table (as in the
/// original, with a warning); a malformed one is an error listing every
/// bad line; a path that is not a regular file, or a file larger than
/// [`MAX_CLTAB_BYTES`], is refused (see [`crate::safe_read`]). This blocks
/// for as long as the read does: the loop uses [`load_cltab_bounded`].
pub fn load_cltab(path: &Path) -> Result<Cltab, DaemonError> {
    match read_regular(path, MAX_CLTAB_BYTES) {
        Ok(Some(bytes)) => {
            Cltab::parse_bytes(&bytes, &path.display().to_string()).map_err(DaemonError::Cltab)
        }
        Ok(None) => {
            warn!(
                "cltab {} not found: starting with an empty table",
                escape(&path.display().to_string())
            );
            Ok(Cltab::default())
        }
        Err(e) => Err(DaemonError::ReadCltab(e)),
    }
}

/// [`load_cltab`] on a blocking thread, given up after [`READ_TIMEOUT`]:
/// for tasks that must not block (the read itself may stay stuck on its
/// thread). The error is the text to log and reply.
pub async fn load_cltab_bounded(path: &Path) -> Result<Cltab, String> {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || load_cltab(&owned));
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(result)) => result.map_err(|e| e.to_string()),
        Ok(Err(join)) => Err(format!("cannot read cltab {}: {join}", path.display())),
        Err(_) => {
            Err(ReadError::Timeout { path: path.to_path_buf(), secs: READ_TIMEOUT.as_secs() }
                .to_string())
        }
    }
}

/// User data made safe for one log line or reply: control characters
/// (a newline that would forge a log line, escape sequences that would
/// rewrite a terminal) are shown escaped, as Rust's `escape_debug` does.
pub fn escape(text: &str) -> String {
    clinit_engine::located::escape_controls(text)
}

/// The socket and status paths after the cltab's directives are applied.
pub fn effective_paths(cfg: &DaemonConfig, table: &Cltab) -> (PathBuf, PathBuf) {
    let socket = table.socket.as_ref().map(PathBuf::from).unwrap_or_else(|| cfg.socket.clone());
    let clstat = table.clstat.as_ref().map(PathBuf::from).unwrap_or_else(|| cfg.clstat.clone());
    (socket, clstat)
}

/// Milliseconds since the daemon started, on the monotonic clock.
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

/// Real children: `/bin/sh -c` in their own session, signalled by group.
pub struct RealProcesses {
    table: ProcessTable,
    env: Vec<(String, String)>,
    /// How commands are contained (cgroup v2 or process groups).
    containment: Containment,
    /// Live process groups, for the state file ([`crate::generations`]).
    /// Also the one place an instance's group and tag are kept for log
    /// lines (`label_of`): there is no second map of labels.
    records: BTreeMap<ProcId, Arc<StateEntry>>,
    /// `records` changed since the state file was last written.
    state_dirty: bool,
    /// The group and level names the records share ([`Self::intern`]),
    /// and the count after the last pruning of unused ones.
    names: HashSet<Arc<str>>,
    names_pruned: usize,
    /// Per-entry options by tag, from the cltab in force ([`Self::set_table`]).
    options: HashMap<String, EntryOptions>,
    /// The output thread: children's output goes through pipes to it
    /// (unless its mode is `inherit`), and it reads readiness sources
    /// ([`crate::childlog`]). `None`: no pipes, no readiness (mosha).
    output: Option<OutputThread>,
    /// Where readiness reports go, and the notify sockets' directory
    /// ([`crate::readiness`]); `None` under a loop that reads none.
    readiness: Option<(ReadyTx, PathBuf)>,
    /// Readiness sources of live instances; dropped when reaped.
    cancels: HashMap<ProcId, Cancel>,
    /// Spawns that failed for lack of a resource are logged at most once a
    /// second (1,000 entries out of descriptors would log 1,000 lines per
    /// retry round).
    starved_log: RateLimited,
}

impl RealProcesses {
    pub fn new(env: Vec<(String, String)>) -> Self {
        RealProcesses {
            table: ProcessTable::with_subreaper(),
            env,
            containment: Containment::ProcessGroup { reason: "not enabled".into() },
            records: BTreeMap::new(),
            state_dirty: true,
            names: HashSet::new(),
            names_pruned: 0,
            options: HashMap::new(),
            output: None,
            readiness: None,
            cancels: HashMap::new(),
            starved_log: RateLimited::default(),
        }
    }

    /// The per-entry options of `table` apply to later spawns.
    pub fn set_table(&mut self, table: &Cltab) {
        self.options = table
            .entries
            .iter()
            .filter(|e| !e.options.is_empty())
            .map(|e| (e.tag.clone(), (*e.options).clone()))
            .collect();
    }

    /// Send children's output through pipes to `output` from now on.
    pub fn set_output(&mut self, output: OutputThread) {
        self.output = Some(output);
    }

    /// The output thread, if children's output goes through one.
    pub fn output(&self) -> Option<&OutputThread> {
        self.output.as_ref()
    }

    /// At exit: let the output thread write the children's last lines.
    pub fn finish_output(&mut self) {
        if let Some(out) = &mut self.output {
            out.finish();
        }
    }

    /// Report readiness of `ready=` entries to `tx`; notify sockets are
    /// made in `dir`.
    pub fn set_readiness(&mut self, tx: ReadyTx, dir: PathBuf) {
        self.readiness = Some((tx, dir));
    }

    /// Contain each later spawn in its own cgroup where possible; returns
    /// (and remembers, for status) the mode in force.
    pub fn enable_cgroups(&mut self) -> &Containment {
        self.containment = self.table.enable_cgroups();
        &self.containment
    }

    /// Adopted orphans, for status (process-group mode only: under cgroups
    /// such processes still belong to their entry's cgroup).
    pub fn orphans(&self) -> Vec<u32> {
        match self.containment {
            Containment::Cgroup { .. } => Vec::new(),
            Containment::ProcessGroup { .. } => self.table.orphans(),
        }
    }

    /// The containment mode, for status.
    pub fn containment(&self) -> &Containment {
        &self.containment
    }

    /// Count adopted orphans as part of their instance in process-group
    /// mode ([`ProcessTable::attribute_orphans`]; `mosha` does).
    pub fn attribute_orphans(&mut self, on: bool) {
        self.table.attribute_orphans(on);
    }

    /// The directory of the per-entry cgroups, in cgroup mode.
    pub fn cgroup_base(&self) -> Option<&Path> {
        match &self.containment {
            Containment::Cgroup { base } => Some(base),
            Containment::ProcessGroup { .. } => None,
        }
    }

    /// The value of [`generations::GENERATION_ENV`] every child gets
    /// (`None` when the daemon gave its children none).
    pub fn generation(&self) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == generations::GENERATION_ENV).map(|(_, v)| v.as_str())
    }

    /// SIGKILL what the commands started outside the process groups of
    /// the live instances: a descendant that left its group (`setsid cmd
    /// &`), or the rest of an instance already reaped. For `mosha`'s kill
    /// on a lost lease, right before the process groups themselves are
    /// killed: no copy of a service may outlive it while a peer takes the
    /// group over. The groups' own members are killed by this too.
    ///
    /// * cgroup mode: every process below the base (`cgroup.kill` on the
    ///   base, which is recursive);
    /// * both modes: every process carrying this generation's marker
    ///   ([`generations::signal_marked`], which never signals a reused
    ///   pid). A process that cleared its environment escapes this in
    ///   process-group mode (README, "Containment").
    ///
    /// Returns how many processes were killed outside the live instances'
    /// process groups (counted before the kill).
    pub fn kill_escaped(&mut self) -> usize {
        let live: HashSet<u32> = self.records.values().map(|r| r.pgid).collect();
        let outside =
            |pid: u32| generations::process_group(pid).is_some_and(|g| !live.contains(&g));
        let mut extra = HashSet::new();
        if let Some(members) = self.table.kill_cgroup_tree() {
            let members = members.into_iter().filter_map(|p| u32::try_from(p).ok());
            extra.extend(members.filter(|&p| outside(p)));
        }
        if let Some(generation) = self.generation() {
            let killed = generations::signal_marked(generation, libc::SIGKILL);
            extra.extend(killed.into_iter().filter(|s| !live.contains(&s.pgrp)).map(|s| s.pid));
        }
        extra.len()
    }

    /// The state file's new content, if it changed since the last call.
    /// Start times the spawn's clock left unknown ([`crate::spawn_clock`])
    /// are read here from `/proc`, not at spawn (off the spawn path): a
    /// child not yet reaped keeps its pid, so the answer is still its own.
    ///
    /// The records are shared with the snapshot (`Arc`): a turn that
    /// spawned or reaped one instance costs a vector of pointers, not a
    /// copy of every record's three strings (issue 10, "speed must not
    /// regress": a start of 1,000 in slices of 16 took 63 snapshots, a
    /// stop one per burst of exits).
    pub fn take_state(&mut self) -> Option<StateRecords> {
        if !std::mem::take(&mut self.state_dirty) {
            return None;
        }
        for r in self.records.values_mut().filter(|r| r.start == 0) {
            Arc::make_mut(r).start = generations::start_time(r.pgid).unwrap_or(0);
        }
        Some(self.records.values().cloned().collect())
    }

    /// Reap every child that ended, as inputs for the machine.
    pub fn reap(&mut self) -> Vec<Input> {
        let mut out = Vec::new();
        for r in self.table.reap() {
            out.push(match r {
                Reaped::Exited { id, pid, status, lingering } => {
                    let label = self.label(id, !lingering);
                    if lingering {
                        info!("{label} (pid {pid}) ended: {status}; members of its process group still run");
                    } else {
                        info!("{label} (pid {pid}) ended: {status}");
                    }
                    Input::Exited { id, status, lingering }
                }
                Reaped::GroupGone { id, pid } => {
                    info!("{}: the rest of process group {pid} is gone", self.label(id, true));
                    Input::GroupGone { id }
                }
            });
        }
        out
    }

    /// Children whose process group outlives their own process: those are
    /// only noticed by polling, so the loop polls more often while any exist.
    pub fn lingering(&self) -> usize {
        self.table.lingering()
    }

    /// `GROUP/TAG` of instance `id` for a log line (its id when unknown);
    /// with `forget`, the instance is gone: its record and readiness
    /// source are dropped.
    fn label(&mut self, id: ProcId, forget: bool) -> String {
        let label = label_of(&self.records, id).unwrap_or_else(|| id.to_string());
        if forget {
            if self.records.remove(&id).is_some() {
                self.state_dirty = true;
            }
            self.cancels.remove(&id);
        }
        label
    }

    /// The shared copy of a group or level name for a record. Names no
    /// record uses any more are dropped whenever the set has doubled since
    /// the last pruning (a cltab whose groups are renamed again and again
    /// must not grow it for ever), so the pruning costs O(1) per call.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return Arc::clone(shared);
        }
        if self.names.len() >= 2 * self.names_pruned.max(32) {
            self.names.retain(|n| Arc::strong_count(n) > 1);
            self.names_pruned = self.names.len();
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&shared));
        shared
    }

    /// `GROUP/TAG` of a live instance, if it is one of ours.
    pub fn label_of(&self, id: ProcId) -> Option<String> {
        label_of(&self.records, id)
    }

    pub fn live(&self) -> usize {
        self.table.len()
    }

    /// Last resort at exit: nothing we started may outlive us.
    pub fn kill_all(&mut self) {
        for r in self.table.kill_all_and_reap() {
            let label = self.label(r.id(), true);
            warn!("{label} (process group {}) was still running at exit; killed", r.pid());
        }
        for pid in self.table.stop_orphans() {
            warn!("adopted orphan pid {pid} (left its entry's process group) was still running at exit; stopped");
        }
        self.table.remove_cgroup_base();
    }
}

impl RealProcesses {
    /// [`RealProcesses::start_child`] for `mosha`'s executor: the cluster
    /// driver gets its error as a `SpawnResult` input. A shortage (by
    /// errno, [`shortage_of`], as `clinit -d` classifies it) is
    /// [`SpawnFailure::Starved`], retried without counting a crash; any
    /// other error an [`IoFailure`] (which keeps the `io::ErrorKind`).
    pub fn spawn_child(
        &mut self,
        id: ProcId,
        group: &str,
        tag: &str,
        level: &str,
        command: &str,
    ) -> Result<u32, SpawnFailure> {
        self.start_child(id, group, tag, level, command).map_err(|e| match e.shortage() {
            Some(shortage) => SpawnFailure::Starved { shortage, failure: IoFailure::from(e) },
            None => SpawnFailure::Io(IoFailure::from(e)),
        })
    }

    /// Start `/bin/sh -c command` for entry `group/tag` at `level`, with
    /// `CLINIT_GROUP`, `CLINIT_TAG` and `CLINIT_LEVEL` set, and record its
    /// process group for the state file. The error keeps the `io::Error`,
    /// so its errno tells a shortage (retried) from a real failure.
    pub fn start_child(
        &mut self,
        id: ProcId,
        group: &str,
        tag: &str,
        level: &str,
        command: &str,
    ) -> Result<u32, ChildSpawnError> {
        let opts = self.options.get(tag).cloned().unwrap_or_default();
        let mut env = self.env.clone();
        env.push(("CLINIT_GROUP".into(), group.into()));
        env.push(("CLINIT_TAG".into(), tag.into()));
        env.push(("CLINIT_LEVEL".into(), level.into()));
        env.push((crate::process::INSTANCE_ENV.into(), id.0.to_string()));
        let fail = |what: String, source: io::Error| ChildSpawnError {
            what: format!("{}/{}: {what}", escape(group), escape(tag)),
            source,
        };
        let creds = crate::entry_env::credentials(&opts)
            .map_err(|e| fail("cannot resolve its user".into(), e))?;
        if let Some((_, home, name)) = &creds {
            env.push(("HOME".into(), home.clone()));
            env.push(("USER".into(), name.clone()));
            env.push(("LOGNAME".into(), name.clone()));
        }
        env.extend(opts.env.iter().cloned());
        let mut extras = ChildExtras {
            umask: opts.umask,
            rlimits: crate::entry_env::rlimits(&opts),
            creds: creds.as_ref().map(|(c, _, _)| c.clone()),
            ..ChildExtras::default()
        };
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| fail("cannot make a pipe".into(), io::Error::from(e)))
        };
        let mut out_read = None;
        if self.output.as_ref().is_some_and(|o| o.cfg.mode != ChildOutput::Inherit) {
            let (r, w) = pipe()?;
            // One page until the child fills it (see crate::childlog).
            crate::childlog::small_pipe(std::os::fd::AsFd::as_fd(&r));
            extras.output = Some(w);
            out_read = Some(r);
        }
        let label = format!("{group}:{tag}");
        let mut notify = None;
        let mut ready_read = None;
        let readiness = self.readiness.as_ref().filter(|_| self.output.is_some());
        match (opts.ready, readiness) {
            (Some(Readiness::Notify), Some((_, dir))) => {
                let owner = extras.creds.as_ref().map(|c| (c.uid, c.gid));
                let sock = NotifySocket::bind(dir, id, owner).map_err(|e| {
                    fail(format!("cannot make its notify socket in {}", dir.display()), e)
                })?;
                env.push(("NOTIFY_SOCKET".into(), sock.path.display().to_string()));
                notify = Some(sock);
            }
            (Some(Readiness::Fd(n)), Some(_)) => {
                let (r, w) = pipe()?;
                extras.ready_fd = Some((w, n as i32));
                ready_read = Some(r);
            }
            (Some(_), None) => {
                warn!("{label}: ready= is not supported here; the entry will time out")
            }
            (None, _) => {}
        }
        let cwd = opts.cwd.as_ref().map(PathBuf::from);
        let spec = SpawnSpec { id, command: command.to_string(), env, cwd };
        // The start time for the state file, from the clock around the
        // spawn where it is unambiguous (crate::spawn_clock), else read
        // from /proc by `take_state`.
        let clock = crate::spawn_clock::before();
        let spawned = self.table.spawn_with(&spec, extras);
        let start = clock.start_ticks().unwrap_or(0);
        let pid = spawned.map_err(|e| {
            let what = e.to_string();
            let source = match e {
                SpawnError::Io { source, .. } => source,
                SpawnError::DuplicateId { .. } => io::ErrorKind::AlreadyExists.into(),
            };
            ChildSpawnError { what, source }
        })?;
        if let (Some(out), Some(fd)) = (&self.output, out_read) {
            out.send(OutputJob::Output { fd, group: group.to_string(), tag: tag.to_string() });
        }
        if let (Some(out), Some((tx, _))) = (&self.output, &self.readiness) {
            let job = match (notify, ready_read) {
                (Some(sock), _) => Some(sock.job(id, pid, label, tx.clone())),
                (None, Some(fd)) => Some(crate::readiness::fd_job(fd, id, label, tx.clone())),
                (None, None) => None,
            };
            if let Some((job, cancel)) = job {
                out.send(job);
                self.cancels.insert(id, cancel);
            }
        }
        let (group, tag, level) = (self.intern(group), tag.to_string(), self.intern(level));
        self.records.insert(id, Arc::new(StateEntry { pgid: pid, start, group, tag, level }));
        self.state_dirty = true;
        Ok(pid)
    }

    /// Signal child `id`'s process group (see [`Processes::signal`]);
    /// `Ok(false)` when already reaped.
    ///
    /// Errors: the OS refused the signal; the errno's kind is kept.
    pub fn signal_child(&mut self, id: ProcId, signal: Signal) -> Result<bool, IoFailure> {
        self.table.signal(id, signal).map_err(|e| {
            let kind = io::Error::from_raw_os_error(e.source as i32).kind();
            IoFailure::other(
                format!("cannot send {signal} to process group {}", e.pid),
                kind,
                e.source.desc(),
            )
        })
    }
}

impl Processes for RealProcesses {
    fn spawn(
        &mut self,
        id: ProcId,
        group: &str,
        tag: &str,
        level: &str,
        command: &str,
    ) -> Result<u32, EngineSpawnError> {
        self.start_child(id, group, tag, level, command).map_err(|e| {
            let detail = e.to_string();
            match e.shortage() {
                Some(shortage) => EngineSpawnError::Starved { shortage, detail },
                None => EngineSpawnError::Failed { detail },
            }
        })
    }

    fn signal(&mut self, id: ProcId, signal: Signal) -> Result<bool, IoFailure> {
        self.signal_child(id, signal)
    }
}

/// Why [`RealProcesses::start_child`] could not start a child: what it was
/// doing (naming the entry) and the OS error, errno kept.
#[derive(Debug, Error)]
#[error("{what}: {source}")]
pub struct ChildSpawnError {
    pub what: String,
    #[source]
    pub source: io::Error,
}

impl ChildSpawnError {
    /// The resource whose lack caused this failure, from the errno:
    /// `EMFILE`, `ENFILE`, `EAGAIN` (fork's "too many processes"), `ENOMEM`.
    /// The engine retries those without counting a crash
    /// (`clinit_engine::init::starve`); anything else is a real failure.
    pub fn shortage(&self) -> Option<Shortage> {
        shortage_of(&self.source)
    }
}

/// The [`Shortage`] an OS error reports, if any (see
/// [`ChildSpawnError::shortage`]).
pub fn shortage_of(error: &io::Error) -> Option<Shortage> {
    match error.raw_os_error()? {
        libc::EMFILE => Some(Shortage::Descriptors),
        libc::ENFILE => Some(Shortage::SystemDescriptors),
        libc::EAGAIN => Some(Shortage::Processes),
        libc::ENOMEM => Some(Shortage::Memory),
        _ => None,
    }
}

impl From<ChildSpawnError> for IoFailure {
    fn from(e: ChildSpawnError) -> Self {
        IoFailure::new(e.what, &e.source)
    }
}

/// The clstat file, replaced atomically on every write.
pub struct FileStatus {
    pub path: PathBuf,
}

impl StatusStore for FileStatus {
    fn write_status(&mut self, _seq: u64, status: &ClStat) -> Result<(), IoFailure> {
        replace_atomic(&self.path, status.render().as_bytes())
            .map_err(|e| IoFailure::new(format!("cannot write {}", self.path.display()), &e))
    }
}

/// `GROUP/TAG` of instance `id` from its state-file record.
fn label_of(records: &BTreeMap<ProcId, Arc<StateEntry>>, id: ProcId) -> Option<String> {
    records.get(&id).map(|r| format!("{}/{}", r.group, r.tag))
}

fn log_executed(log: Vec<Executed>, processes: &mut RealProcesses) {
    let records = &processes.records;
    let starved_log = &mut processes.starved_log;
    let label = |id: &ProcId| label_of(records, *id).unwrap_or_else(|| id.to_string());
    for e in log {
        match e {
            Executed::Action(Action::Spawn { id, level, command, .. }) => {
                info!("{} {id} starting at level {level}: {}", label(&id), escape(&command))
            }
            Executed::Spawned { id, pid } => {
                info!("{} {id} is pid {pid}", label(&id));
                starved_log.flush(|n| {
                    info!("spawns succeed again ({n} more failed for lack of a resource before)")
                });
            }
            Executed::Signalled { id, signal, sent: true } => {
                info!("{}: sent {signal} to its process group", label(&id))
            }
            Executed::Signalled { id, signal, sent: false } => {
                debug!("{}: {signal} not sent: already reaped", label(&id))
            }
            Executed::SignalFailed { id, signal, reason } => {
                warn!("{}: {signal} failed: {reason}", label(&id))
            }
            Executed::Action(Action::Notice(n)) => match n {
                Notice::GroupState { group, level, state } => {
                    info!("group {group}: {level} {state}")
                }
                Notice::RespawnThrottled { group, tag, pause } => {
                    warn!("{group}/{tag} respawning too rapidly: next start in {pause}")
                }
                Notice::NotRespawned { group, tag, reason } => {
                    info!("{group}/{tag} not respawned: {reason}")
                }
                Notice::Redefined { group, tag } => {
                    info!("{group}/{tag} restarting with its changed cltab line")
                }
                Notice::GroupRemoved { group } => info!("group {group} removed (gone from cltab)"),
                Notice::NotReady { group, tag, timeout } => {
                    warn!("{group}/{tag} not ready within {timeout}: stopping it; the entry FAILED")
                }
            },
            Executed::Action(_) => {}
            Executed::SpawnFailed { id, tag, reason } => error!("{tag} {id}: {reason}"),
            Executed::SpawnStarved { id, tag, shortage, reason } => starved_log.log(|n| {
                warn!(
                    "{} {id} not started, {shortage}: {reason}; retrying within {}, not counted \
                     as a crash ({n} similar failures held back)",
                    escape(&tag),
                    clinit_engine::init::starve::RETRY_MAX
                )
            }),
            Executed::StatusWriteFailed { seq, reason } => error!("status write #{seq}: {reason}"),
        }
    }
}

/// The node driver as the daemon builds it.
pub type RealDriver = NodeDriver<RealProcesses, FileStatus>;

/// Create `dir` (and its parents) with mode 0755 whatever the umask.
fn create_dir(dir: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    let made = std::fs::DirBuilder::new().recursive(true).mode(access::DIR_MODE).create(dir);
    let made = made.and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(access::DIR_MODE))
    });
    made.map_err(|source| DaemonError::Io {
        what: "create directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// Bind the control socket, refusing to steal one a live daemon serves, and
/// give it its mode (0600, or 0660 with `group`; see [`crate::access`]).
/// How long a socket must keep accepting connections to count as another
/// daemon's (see [`live_listener`]).
const LIVE_LISTENER_FOR: Duration = Duration::from_secs(1);

/// Does something keep listening on `path`? A daemon killed between a
/// `fork` and that child's `exec` leaves its listening socket open in the
/// child for a moment (until `exec` closes it), and a successor that
/// connected just then refused to start (found by the SIGKILL campaign,
/// `tests/kill_campaign.rs`). So a connection must keep succeeding for
/// [`LIVE_LISTENER_FOR`]; one that fails at any point means the socket is
/// stale.
fn live_listener(path: &Path) -> bool {
    let deadline = Instant::now() + LIVE_LISTENER_FOR;
    loop {
        if std::os::unix::net::UnixStream::connect(path).is_err() {
            return false;
        }
        if Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn bind_socket(path: &Path, group: Option<u32>) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(DaemonError::NotASocket(path.to_path_buf()));
        }
        if live_listener(path) {
            return Err(DaemonError::AlreadyRunning(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(|source| DaemonError::Io {
            what: "remove stale socket",
            path: path.to_path_buf(),
            source,
        })?;
    }
    let io = |what, source| DaemonError::Io { what, path: path.to_path_buf(), source };
    let listener =
        access::with_umask(0o177, || UnixListener::bind(path)).map_err(|e| io("bind socket", e))?;
    access::secure_socket(path, group).map_err(|e| io("set the mode of socket", e))?;
    Ok(listener)
}

/// What a connection task hands to the loop: the request, the cltab it
/// read for it (tell, re-read), and where the reply goes.
pub(crate) struct Job {
    pub(crate) request: Request,
    pub(crate) table: Option<Result<Cltab, String>>,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// Read one request, check the peer may make it, read the cltab if the
/// request needs it (here, not in the loop), hand it to the machine's task,
/// write its reply.
pub(crate) async fn serve_connection(
    mut stream: UnixStream,
    jobs: mpsc::Sender<Job>,
    access: Access,
    cltab: Arc<PathBuf>,
) {
    let peer = stream.peer_cred().ok().map(|c| Peer { uid: c.uid(), gid: c.gid(), pid: c.pid() });
    let reply = match protocol::read_request(&mut stream, REQUEST_TIMEOUT).await {
        Ok(request)
            if request != Request::Status && !peer.is_some_and(|p| access.may_command(&p)) =>
        {
            let who = peer.map_or("an unidentified peer".to_string(), |p| {
                format!("uid {} (pid {})", p.uid, p.pid.unwrap_or(0))
            });
            warn!("refused a command from {who}: only {} may command", access.describe());
            Reply::err(format!(
                "permission denied: only {} may command this daemon",
                access.describe()
            ))
        }
        Ok(request) => {
            let table = match request {
                Request::Tell { .. } | Request::Reread => Some(load_cltab_bounded(&cltab).await),
                Request::Status | Request::Shutdown => None,
            };
            let (tx, rx) = oneshot::channel();
            if jobs.send(Job { request, table, reply: tx }).await.is_err() {
                Reply::err("the daemon is shutting down")
            } else {
                rx.await.unwrap_or_else(|_| Reply::err("the daemon is shutting down"))
            }
        }
        Err(protocol::ProtocolError::Closed) => {
            // A probe (a refused second daemon checks whether the socket is
            // served): nobody waits for a reply.
            debug!("control socket: a connection closed without a request");
            return;
        }
        Err(e) => {
            warn!("bad request on control socket: {}", escape(&e.to_string()));
            Reply::err(format!("bad request: {e}"))
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, protocol::write_reply(&mut stream, &reply)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!("could not send reply: {e}"),
        Err(_) => debug!("client did not take its reply within {REQUEST_TIMEOUT:?}"),
    }
}

/// What a client hears while the daemon stops what a previous daemon left.
const STARTING: &str = "the daemon is starting: it is stopping what a previous daemon left running";

/// Answer the socket until `work` (the stop of the previous generation) is
/// done: `status` gets a document with no groups and a `starting` field,
/// anything else a refusal naming the reason. Connections still being
/// answered when `work` ends finish on their own.
async fn serve_while_starting(
    listener: &UnixListener,
    work: tokio::task::JoinHandle<()>,
    cltab: &Path,
) {
    tokio::pin!(work);
    let cltab = cltab.display().to_string();
    loop {
        tokio::select! {
            biased;
            _ = &mut work => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer_starting(stream, cltab.clone()));
                }
                // Out of descriptors: a short pause, never a spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
    }
}

async fn answer_starting(mut stream: UnixStream, cltab: String) {
    let reply = match protocol::read_request(&mut stream, REQUEST_TIMEOUT).await {
        Ok(Request::Status) => Reply::ok("status").with_status(serde_json::json!({
            "pid": std::process::id(),
            "cltab": cltab,
            "processes": 0,
            "starting": STARTING,
            "shutting_down": false,
            "groups": [],
            "entries": [],
        })),
        Ok(_) => Reply::err(format!("{STARTING}; try again in a moment")),
        Err(e) => Reply::err(format!("bad request: {e}")),
    };
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, protocol::write_reply(&mut stream, &reply)).await;
}

/// The daemon itself, after start-up checks.
struct Daemon {
    cfg: DaemonConfig,
    clock: Clock,
    driver: RealDriver,
    /// The machine took a step since the detail file was last rendered.
    /// Only a step changes what the file shows (its times are absolute,
    /// see [`crate::status_detail`]), so a turn without one (a status
    /// request, a SIGCHLD that reaped nothing) skips rendering every
    /// entry: with 1,000 entries, polling clients made that most of the
    /// daemon's work.
    detail_dirty: bool,
}

impl Daemon {
    fn driver(&mut self) -> &mut RealDriver {
        &mut self.driver
    }

    fn step(&mut self, input: Input) -> InitReply {
        self.detail_dirty = true;
        let now = self.clock.now();
        let (reply, log) = self.driver.step(now, input);
        log_executed(log, &mut self.driver.processes);
        reply
    }

    fn reap(&mut self) {
        for input in self.driver().processes.reap() {
            self.step(input);
        }
    }

    /// Hand a freshly read cltab to the machine if it changed; on a read or
    /// parse failure keep running on the last good table and say why.
    fn reload(&mut self, loaded: Result<Cltab, String>) -> Result<(), String> {
        match loaded {
            Ok(table) => {
                if &table != self.driver.init.table() {
                    info!("cltab {} changed: reloading", self.cfg.cltab.display());
                    self.driver.processes.set_table(&table);
                    self.step(Input::Reload { table });
                }
                Ok(())
            }
            Err(e) => {
                error!("keeping the last good cltab: {}", escape(&e));
                Err(e)
            }
        }
    }

    /// The reply to a status request, serialized from typed fields (see
    /// [`crate::status_reply`]).
    fn status_reply(&self) -> Reply {
        use crate::status_reply::{group_lines, EntryLine, GroupTag, OutputLine, StatusDoc};
        let driver = &self.driver;
        // As carried out: a group whose spawns are still queued is STARTING.
        let status = driver.status();
        let reports = driver.entries(self.clock.now());
        let orphans = driver.processes.orphans();
        let waiting = driver.init.respawns_waiting();
        let cltab = self.cfg.cltab.display().to_string();
        let containment = driver.processes.containment().describe();
        let pid = |id| driver.processes.table.pid(id);
        let doc = StatusDoc {
            child_output: OutputLine::of(driver.processes.output()),
            cltab: &cltab,
            containment: &containment,
            entries: reports.iter().map(|r| EntryLine::of(r, pid)).collect(),
            groups: group_lines(&status),
            orphans: &orphans,
            pending_actions: driver.pending(),
            pid: std::process::id(),
            processes: driver.processes.live(),
            respawns_waiting: waiting.iter().map(|(g, t)| GroupTag { group: g, tag: t }).collect(),
            shutting_down: driver.init.is_shutting_down(),
        };
        Reply::ok("status").with_typed_status(&doc)
    }

    /// The detailed status file's text (see [`crate::status_detail`]).
    fn detail_text(&self, start: std::time::SystemTime) -> String {
        let driver = &self.driver;
        let now = self.clock.now();
        let entries = driver.entries(now);
        let pid = |id| driver.processes.table.pid(id);
        crate::status_detail::render(&driver.status(), &entries, pid, now, start)
    }

    fn handle_request(&mut self, request: Request, table: Option<Result<Cltab, String>>) -> Reply {
        let reload = |d: &mut Self| match table {
            Some(loaded) => d.reload(loaded),
            None => Ok(()),
        };
        match request {
            Request::Shutdown => {
                info!("shutdown requested by a client");
                Reply::ok(self.step(Input::Shutdown).message())
            }
            Request::Status => self.status_reply(),
            Request::Reread => match reload(self) {
                Ok(()) => Reply::ok("cltab reloaded"),
                Err(e) => Reply::err(e),
            },
            Request::Tell { group, level } => {
                if let Err(e) = reload(self) {
                    return Reply::err(e);
                }
                // Escaped: a newline in a name must not forge a log line.
                info!("tell {} {}", escape(&group), escape(&level));
                let reply = self.step(Input::Tell { group, level });
                if reply.is_ok() {
                    Reply::ok(reply.message())
                } else {
                    Reply::err(reply.message())
                }
            }
        }
    }
}

/// A log line for a repeated error, at most once per [`LOG_EVERY`], with
/// the number of occurrences held back since the last one.
#[derive(Default)]
struct RateLimited {
    last: Option<Instant>,
    held: u64,
}

impl RateLimited {
    fn log(&mut self, emit: impl FnOnce(u64)) {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.held += 1;
        } else {
            emit(std::mem::take(&mut self.held));
            self.last = Some(Instant::now());
        }
    }

    /// The error stopped: say how many were held back, if any.
    fn flush(&mut self, emit: impl FnOnce(u64)) {
        if self.held > 0 {
            emit(std::mem::take(&mut self.held));
        }
        self.last = None;
    }
}

/// Stop what a daemon killed on this socket left running, before anything
/// starts (see [`crate::generations`] for why stop, never adopt).
///
/// Returns a lower bound on the processes that survived SIGKILL (stuck in
/// uninterruptible sleep, say): 0 when everything is gone. A process group
/// or cgroup that survived counts 1, marked processes count each. `mosha`
/// gives it to a `ranked` monitor as `ClusterInput::Leftovers`, which
/// publishes `lost` so that a peer fences this node instead of starting a
/// second copy beside them.
pub(crate) fn stop_previous_generation(
    state_file: &Path,
    esc: &clinit_engine::init::escalation::Escalation,
) -> usize {
    let prev = match generations::read_state(state_file) {
        Ok(prev) => prev,
        Err(e) => {
            warn!("{e}; cannot stop what a previous daemon left running");
            return 0;
        }
    };
    let cgroup = match generations::checked_cgroup(&prev) {
        Ok(dir) => dir,
        Err(why) => {
            warn!("{}: recorded cgroup refused: {why}; left alone", state_file.display());
            None
        }
    };
    // Processes carrying the previous generation's marker: among them any
    // forked but not yet recorded when it was killed (module doc of
    // `generations`).
    let generation = (prev.daemon != 0).then(|| generations::generation(prev.daemon, state_file));
    let marked = generation.as_deref().map(generations::marked_processes).unwrap_or_default();
    if prev.procs.is_empty() && cgroup.is_none() && marked.is_empty() {
        return 0;
    }
    warn!(
        "{}: a previous daemon left {} process groups{}{}; stopping them before starting anything",
        state_file.display(),
        prev.procs.len(),
        cgroup.as_ref().map(|d| format!(" and cgroup {}", d.display())).unwrap_or_default(),
        if marked.is_empty() {
            String::new()
        } else {
            format!(
                " ({} processes carry its {} marker)",
                marked.len(),
                generations::GENERATION_ENV
            )
        }
    );
    let stopped =
        generations::stop_previous(&prev.procs, cgroup.as_deref(), generation.as_deref(), esc);
    let mut survivors = 0;
    match stopped.marked {
        Some((n, generations::Outcome::Survived)) => {
            survivors += n;
            error!("previous generation: of {n} processes with its marker, some survived SIGKILL; left behind")
        }
        Some((n, generations::Outcome::Stopped(sig))) => {
            info!("previous generation: {n} processes with its marker stopped ({sig})")
        }
        _ => {}
    }
    for (e, outcome) in stopped.groups {
        let what = format!("{}/{} (level {}, process group {})", e.group, e.tag, e.level, e.pgid);
        match outcome {
            generations::Outcome::Gone => info!("previous generation: {what} already gone"),
            generations::Outcome::Reused => {
                warn!("previous generation: pid {} is no longer {what}; left alone", e.pgid)
            }
            generations::Outcome::Stopped(sig) => {
                info!("previous generation: {what} stopped ({sig})")
            }
            generations::Outcome::Survived => {
                survivors += 1;
                error!("previous generation: {what} survived SIGKILL; left behind")
            }
        }
    }
    if let Some((dir, outcome)) = stopped.cgroup {
        let what = format!("cgroup {}", dir.display());
        match outcome {
            generations::Outcome::Stopped(sig) => {
                info!("previous generation: every process in {what} stopped ({sig}); removed")
            }
            generations::Outcome::Survived => {
                survivors += 1;
                error!("previous generation: processes in {what} survived SIGKILL; left behind")
            }
            _ => info!("previous generation: {what} was already empty; removed"),
        }
    }
    survivors
}

/// Choose how commands are contained (`cgroups`: a cgroup v2 per entry
/// where this process can create one, else process groups), say so in the
/// log, and record the cgroup base in `state_file`. Returns the base.
///
/// Why the base is written here, before anything is spawned: a successor
/// started after a `kill -9` then stops all this generation ever starts,
/// even a process forked just before the kill and not yet in the state
/// file's groups ([`crate::generations`]). `clinit -d` and `mosha` both
/// start this way.
pub(crate) fn set_up_containment(
    processes: &mut RealProcesses,
    cgroups: bool,
    state_file: &Path,
) -> Option<PathBuf> {
    if cgroups {
        match processes.enable_cgroups() {
            Containment::Cgroup { base } => {
                info!("containment: one cgroup per entry under {}", base.display())
            }
            Containment::ProcessGroup { reason } => {
                warn!("containment: process groups only: {reason}")
            }
        }
    } else {
        processes.containment = Containment::ProcessGroup { reason: "cgroups disabled".into() };
        info!("containment: process groups only (cgroups disabled)");
    }
    let cgroup_base = processes.cgroup_base().map(Path::to_path_buf);
    if let Err(e) = generations::write_state(state_file, cgroup_base.as_deref(), &[]) {
        error!("cannot write {}: {e}", state_file.display());
    }
    cgroup_base
}

/// Let every thread started from here on allocate from the main malloc
/// arena (glibc's `M_ARENA_MAX` = 1).
///
/// Why: glibc gives each thread that allocates an arena of its own, and
/// each keeps its freed memory. The daemon's helper threads (output, status
/// files, cgroup removal, blocking cltab reads) held about 1 MiB of
/// anonymous memory in four arenas at 1,000 children (`/proc/PID/smaps`);
/// with one arena the daemon's anonymous memory was 0.35–0.45 MiB lower
/// (`benches/cpu.sh`). The threads allocate little and rarely, so sharing
/// the arena's lock costs nothing measurable. Other C libraries: nothing.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Give the freed pages inside the heap back to the kernel (glibc's
/// `malloc_trim`), [`TRIM_AFTER`] after a level change carried out in
/// slices is done (by then its last status render and state-file snapshot
/// have been written and freed by the writer thread).
///
/// Why: such a change allocates and frees a great deal (the spawn
/// arguments of each slice, status renders, state-file snapshots), and
/// glibc returns freed memory to the kernel only from the top of the heap;
/// the free chunks between live ones stay resident. At 1,000 children a
/// `malloc_trim(0)` released 250 KiB of the daemon's 3.1 MiB of anonymous
/// memory (`/proc/PID/smaps_rollup`). It walks the free lists once (well
/// under a millisecond for a heap of a few MiB), once per large change.
/// Other C libraries: nothing.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Run the daemon until a shutdown completes. Start-up errors (a malformed
/// cltab, a socket in use) are returned before anything is started.
pub async fn run(mut cfg: DaemonConfig) -> Result<(), DaemonError> {
    one_malloc_arena();
    cfg.spawn_slice.get_or_insert(SPAWN_SLICE);
    let table = load_cltab(&cfg.cltab)?;
    for (name, value) in &table.other_directives {
        warn!("cltab: ignoring unknown directive :::{name}:{value}");
    }
    let (socket, clstat) = effective_paths(&cfg, &table);
    if let Some(dir) = clstat.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    let socket_group = cfg.socket_group.as_deref().map(access::resolve_group).transpose()?;
    let access = Access::new(socket_group);
    // Handlers first: a child must never exit before we listen for SIGCHLD.
    let sig = |kind| signal(kind).map_err(DaemonError::Signal);
    let mut sigchld = sig(SignalKind::child())?;
    let mut sigterm = sig(SignalKind::terminate())?;
    let mut sigint = sig(SignalKind::interrupt())?;
    let mut sighup = sig(SignalKind::hangup())?;
    let listener = bind_socket(&socket, socket_group)?;
    let state_file = generations::state_path(&socket);
    // Stopping the previous generation can take up to the escalation's
    // kill_after: meanwhile the socket answers (status says so; commands
    // are refused with the reason) instead of leaving clients to time out.
    let stopping = {
        let (state_file, esc) = (state_file.clone(), cfg.init.escalation);
        tokio::task::spawn_blocking(move || {
            // `clinit -d` has no peers to fence it: survivors are logged.
            stop_previous_generation(&state_file, &esc);
        })
    };
    serve_while_starting(&listener, stopping, &cfg.cltab).await;
    info!(
        "clinit daemon {} serving {} on {} (status {})",
        std::process::id(),
        cfg.cltab.display(),
        socket.display(),
        clstat.display()
    );

    let clock = Clock(Instant::now());
    let start_wall = std::time::SystemTime::now();
    // One instant for the machines' birth, so a recorded start replays exactly.
    let start = clock.now();
    let log_dir = effective_log_dir(cfg.log_dir.as_deref(), &table, &clstat);
    let mut env = cfg.env.clone();
    let generation = generations::generation(std::process::id(), &state_file);
    env.push((generations::GENERATION_ENV.into(), generation));
    let mut processes = RealProcesses::new(env);
    processes.set_table(&table);
    let init = Init::new(cfg.init.clone(), table, start);
    match crate::process::raise_nofile() {
        Ok(n) => debug!("descriptor limit raised to {n} (children get the original back)"),
        Err(e) => warn!("cannot raise the descriptor limit: {e}"),
    }
    let output_cfg = OutputConfig { mode: cfg.child_output, dir: log_dir, rotation: cfg.rotation };
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<ProcId>();
    let notify_dir = crate::readiness::notify_dir(&socket);
    start_output(&mut processes, output_cfg, &notify_dir, ready_tx);
    let cgroup_base = set_up_containment(&mut processes, cfg.cgroups, &state_file);
    // The state file's and detail file's later writes, off the loop.
    let mut files = StatusWriter::start(state_file.clone(), cgroup_base.clone(), &clstat);
    let store = FileStatus { path: clstat.clone() };
    let mut driver = NodeDriver::new(init, processes, store);
    driver.set_spawn_slice(cfg.spawn_slice);
    let mut daemon = Daemon { cfg, clock, driver, detail_dirty: true };
    let first = daemon.driver().flush(start);
    log_executed(first, &mut daemon.driver.processes);

    let (jobs_tx, mut requests) = mpsc::channel::<Job>(64);
    let (reload_tx, mut reloads) = mpsc::channel::<Result<Cltab, String>>(4);
    let cltab_path = Arc::new(daemon.cfg.cltab.clone());
    let mut accept_pause = ACCEPT_PAUSE_MIN;
    let mut accept_resume: Option<tokio::time::Instant> = None;
    let mut accept_log = RateLimited::default();
    let mut conns = tokio::task::JoinSet::new();
    let mut backstop = tokio::time::interval(REAP_BACKSTOP);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut detail_at: Option<Instant> = None;
    // When to trim the heap after a large level change (see trim_heap).
    let mut trim_at: Option<tokio::time::Instant> = None;
    while !daemon.driver.init.has_exited() {
        // At most one state-file write per turn, after any turn that
        // spawned or reaped (the spawn path itself never writes it), by the
        // writer thread (crate::status_writer; errors are logged there).
        if let Some(entries) = daemon.driver().processes.take_state() {
            files.state(entries);
        }
        let deadline = daemon.driver.init.poll_timeout();
        let sleep = tokio::time::sleep_until(match deadline {
            Some(at) => clock.instant(at),
            None => tokio::time::Instant::now() + Duration::from_secs(3600),
        });
        let lingering = daemon.driver().processes.lingering() > 0;
        let pending = daemon.driver().has_pending();
        let resume = accept_resume.unwrap_or_else(tokio::time::Instant::now);
        // A detail-file change held back (see below) wakes the loop when
        // it is due.
        let every =
            detail_every(daemon.driver().has_pending() || daemon.driver.init.is_shutting_down());
        let detail_due = detail_at
            .filter(|_| daemon.detail_dirty)
            .map(|t| tokio::time::Instant::from_std(t + every));
        let detail_wake = detail_due.unwrap_or_else(tokio::time::Instant::now);
        let trim_wake = trim_at.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            biased;
            _ = sigchld.recv() => daemon.reap(),
            Some(Job { request, table, reply }) = requests.recv() => {
                let answer = daemon.handle_request(request, table);
                // What this request spawned is on record before the client
                // hears back (still once per turn: the write at the top of
                // the next turn then has nothing new).
                if let Some(entries) = daemon.driver().processes.take_state() {
                    let _ = files.state_now(entries);
                }
                let _ = reply.send(answer);
            }
            Some(loaded) = reloads.recv() => { let _ = daemon.reload(loaded); }
            Some(id) = ready_rx.recv() => {
                let label = daemon.driver.processes.label_of(id);
                info!("{} {id} is ready", label.unwrap_or_default());
                daemon.step(Input::Ready { id });
            }
            accepted = listener.accept(), if accept_resume.is_none() => match accepted {
                Ok((stream, _)) => {
                    accept_pause = ACCEPT_PAUSE_MIN;
                    accept_log.flush(|n| warn!("accept on {}: {n} more failures", socket.display()));
                    conns.spawn(serve_connection(stream, jobs_tx.clone(), access, cltab_path.clone()));
                }
                Err(e) => {
                    // Out of descriptors (or any other failure): pause
                    // accepting instead of spinning on a listener that stays
                    // readable, and log once a second at most.
                    accept_resume = Some(tokio::time::Instant::now() + accept_pause);
                    accept_pause = (accept_pause * 2).min(ACCEPT_PAUSE_MAX);
                    accept_log.log(|n| warn!(
                        "accept on {}: {e} ({n} similar failures held back); pausing accept",
                        socket.display()
                    ));
                }
            },
            _ = tokio::time::sleep_until(resume), if accept_resume.is_some() => accept_resume = None,
            _ = sigterm.recv() => {
                info!("SIGTERM: shutting down gracefully");
                daemon.step(Input::Shutdown);
            }
            _ = sigint.recv() => {
                info!("SIGINT: shutting down gracefully");
                daemon.step(Input::Shutdown);
            }
            _ = sighup.recv() => {
                info!("SIGHUP: re-reading cltab");
                let (path, tx) = (cltab_path.clone(), reload_tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(load_cltab_bounded(&path).await).await;
                });
            }
            _ = sleep, if deadline.is_some() => { daemon.step(Input::Tick); }
            // The next slice of a large level change, after anything above.
            // `yield_now`, not a ready future: the connection tasks waiting
            // to write their replies must get to run between slices.
            _ = tokio::task::yield_now(), if pending => {
                daemon.detail_dirty = true;
                let log = daemon.driver().pump(clock.now());
                log_executed(log, &mut daemon.driver.processes);
                if !daemon.driver().has_pending() {
                    trim_at = Some(tokio::time::Instant::now() + TRIM_AFTER);
                }
            }
            _ = tokio::time::sleep_until(trim_wake), if trim_at.is_some() => {
                trim_at = None;
                trim_heap();
            }
            _ = backstop.tick() => daemon.reap(),
            _ = tokio::time::sleep(LINGER_POLL), if lingering => daemon.reap(),
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = tokio::time::sleep_until(detail_wake), if detail_due.is_some() => {}
        }
        // Between the slices of a large level change the detail file is
        // rewritten at most every DETAIL_EVERY_BUSY: rendering all entries
        // after each slice of 16 spawns made starting 1,000 entries
        // quadratic. While shutting down, too: each burst of exits is a
        // step, and the file is removed at exit anyway. Otherwise at most
        // every DETAIL_EVERY (see there): at once after a quiet spell, and
        // a change held back is written when the timer above fires.
        let every =
            detail_every(daemon.driver().has_pending() || daemon.driver.init.is_shutting_down());
        if daemon.detail_dirty && detail_at.is_none_or(|t: Instant| t.elapsed() >= every) {
            detail_at = Some(Instant::now());
            // Written by the writer thread, if it changed (a failed write
            // is retried there).
            files.detail(daemon.detail_text(start_wall));
            daemon.detail_dirty = false;
        }
    }

    // Whatever is still queued (a last status write) is carried out.
    while daemon.driver().has_pending() {
        let log = daemon.driver().pump(clock.now());
        log_executed(log, &mut daemon.driver.processes);
    }
    // Let in-flight replies (the shutdown request's, say) reach their clients.
    drop(requests);
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;

    daemon.driver().processes.kill_all();
    daemon.driver().processes.finish_output();
    files.finish();
    let _ = std::fs::remove_dir_all(&notify_dir);
    for path in [&clstat, &socket, &files.detail_path(), &state_file] {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != io::ErrorKind::NotFound {
                warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
    info!("clinit daemon {} exiting: all groups halted", std::process::id());
    Ok(())
}
