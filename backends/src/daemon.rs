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

use crate::atomic::replace_atomic;
use crate::process::{ProcessTable, Reaped, SpawnError, SpawnSpec};
use crate::protocol::{self, Reply, Request};
use clinit_engine::cltab::{Cltab, ParseErrors};
use clinit_engine::cluster::IoFailure;
use clinit_engine::driver::{Executed, NodeDriver, Processes, StatusStore};
use clinit_engine::init::{Action, Init, InitConfig, Input, Notice, Reply as InitReply};
use clinit_engine::process::{ProcId, Signal};
use clinit_engine::status::ClStat;
use clinit_engine::time::Millis;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
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

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("{0}")]
    Cltab(ParseErrors),
    #[error("cannot read cltab {path}: {source}")]
    ReadCltab { path: PathBuf, source: io::Error },
    #[error("another daemon is already listening on {0}")]
    AlreadyRunning(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("cannot install signal handler: {0}")]
    Signal(io::Error),
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
}

impl DaemonConfig {
    pub fn new(cltab: PathBuf, socket: PathBuf) -> Self {
        DaemonConfig {
            cltab,
            socket,
            clstat: PathBuf::from(DEFAULT_CLSTAT),
            init: InitConfig::default(),
            env: Vec::new(),
        }
    }
}

/// Read and parse a cltab. A missing file is an empty table (as in the
/// original, with a warning); a malformed one is an error listing every
/// bad line.
pub fn load_cltab(path: &Path) -> Result<Cltab, DaemonError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            Cltab::parse(&text, &path.display().to_string()).map_err(DaemonError::Cltab)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            warn!("cltab {} not found: starting with an empty table", path.display());
            Ok(Cltab::default())
        }
        Err(source) => Err(DaemonError::ReadCltab { path: path.to_path_buf(), source }),
    }
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
    labels: HashMap<ProcId, String>,
}

impl RealProcesses {
    pub fn new(env: Vec<(String, String)>) -> Self {
        RealProcesses { table: ProcessTable::with_subreaper(), env, labels: HashMap::new() }
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

    fn label(&mut self, id: ProcId, forget: bool) -> String {
        let label = if forget { self.labels.remove(&id) } else { self.labels.get(&id).cloned() };
        label.unwrap_or_else(|| id.to_string())
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
    }
}

impl RealProcesses {
    /// Start a child for the cluster driver, keeping the error's kind.
    pub fn spawn_child(
        &mut self,
        id: ProcId,
        group: &str,
        tag: &str,
        level: &str,
        command: &str,
    ) -> Result<u32, IoFailure> {
        let mut env = self.env.clone();
        env.push(("CLINIT_GROUP".into(), group.into()));
        env.push(("CLINIT_TAG".into(), tag.into()));
        env.push(("CLINIT_LEVEL".into(), level.into()));
        let spec = SpawnSpec { id, command: command.to_string(), env, cwd: None };
        let pid = self.table.spawn(&spec).map_err(|e| match &e {
            SpawnError::Io { source, .. } => IoFailure::new(e.to_string(), source),
            SpawnError::DuplicateId { .. } => {
                IoFailure::other(e.to_string(), io::ErrorKind::AlreadyExists, "id in use")
            }
        })?;
        self.labels.insert(id, format!("{group}/{tag}"));
        Ok(pid)
    }

    /// Signal a child's process group; `Ok(false)` when already reaped.
    pub fn signal_child(&mut self, id: ProcId, signal: Signal) -> Result<bool, String> {
        self.table.signal(id, signal).map_err(|e| e.to_string())
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
    ) -> Result<u32, String> {
        let mut env = self.env.clone();
        env.push(("CLINIT_GROUP".into(), group.into()));
        env.push(("CLINIT_TAG".into(), tag.into()));
        env.push(("CLINIT_LEVEL".into(), level.into()));
        let spec = SpawnSpec { id, command: command.to_string(), env, cwd: None };
        let pid = self.table.spawn(&spec).map_err(|e| e.to_string())?;
        self.labels.insert(id, format!("{group}/{tag}"));
        Ok(pid)
    }

    fn signal(&mut self, id: ProcId, signal: Signal) -> Result<bool, String> {
        self.table.signal(id, signal).map_err(|e| e.to_string())
    }
}

/// The clstat file, replaced atomically on every write.
pub struct FileStatus {
    pub path: PathBuf,
}

impl StatusStore for FileStatus {
    fn write_status(&mut self, _seq: u64, status: &ClStat) -> Result<(), String> {
        replace_atomic(&self.path, status.render().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

fn log_executed(log: Vec<Executed>, labels: &HashMap<ProcId, String>) {
    let label = |id: &ProcId| labels.get(id).cloned().unwrap_or_else(|| id.to_string());
    for e in log {
        match e {
            Executed::Action(Action::Spawn { id, level, command, .. }) => {
                info!("{} {id} starting at level {level}: {command}", label(&id))
            }
            Executed::Spawned { id, pid } => info!("{} {id} is pid {pid}", label(&id)),
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
                Notice::GroupRemoved { group } => info!("group {group} removed (gone from cltab)"),
            },
            Executed::Action(_) => {}
            Executed::SpawnFailed { id, tag, reason } => error!("{tag} {id}: {reason}"),
            Executed::StatusWriteFailed { seq, reason } => error!("status write #{seq}: {reason}"),
        }
    }
}

/// The node driver as the daemon builds it.
pub type RealDriver = NodeDriver<RealProcesses, FileStatus>;

/// A client request and where its reply goes.
pub(crate) type Job = (Request, oneshot::Sender<Reply>);

/// Bind the control socket, refusing to steal one a live daemon serves.
pub(crate) fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::Io {
            what: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(DaemonError::NotASocket(path.to_path_buf()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyRunning(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(|source| DaemonError::Io {
            what: "remove stale socket",
            path: path.to_path_buf(),
            source,
        })?;
    }
    UnixListener::bind(path).map_err(|source| DaemonError::Io {
        what: "bind socket",
        path: path.to_path_buf(),
        source,
    })
}

/// Read one request, hand it to the machine's task, write its reply.
pub(crate) async fn serve_connection(mut stream: UnixStream, jobs: mpsc::Sender<Job>) {
    let reply = match protocol::read_request(&mut stream, REQUEST_TIMEOUT).await {
        Ok(request) => {
            let (tx, rx) = oneshot::channel();
            if jobs.send((request, tx)).await.is_err() {
                Reply::err("the daemon is shutting down")
            } else {
                rx.await.unwrap_or_else(|_| Reply::err("the daemon is shutting down"))
            }
        }
        Err(e) => {
            warn!("bad request on control socket: {e}");
            Reply::err(format!("bad request: {e}"))
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, protocol::write_reply(&mut stream, &reply)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!("could not send reply: {e}"),
        Err(_) => debug!("client did not take its reply within {REQUEST_TIMEOUT:?}"),
    }
}

/// The daemon itself, after start-up checks.
struct Daemon {
    cfg: DaemonConfig,
    clock: Clock,
    driver: RealDriver,
}

impl Daemon {
    fn step(&mut self, input: Input) -> InitReply {
        let now = self.clock.now();
        let (reply, log) = self.driver.step(now, input);
        log_executed(log, &self.driver.processes.labels);
        reply
    }

    fn reap(&mut self) {
        for input in self.driver.processes.reap() {
            self.step(input);
        }
    }

    /// Re-read the cltab; on success hand it to the machine, on failure keep
    /// running on the last good table and say why.
    fn reload(&mut self) -> Result<(), String> {
        match load_cltab(&self.cfg.cltab) {
            Ok(table) => {
                if &table != self.driver.init.table() {
                    info!("cltab {} changed: reloading", self.cfg.cltab.display());
                    self.step(Input::Reload { table });
                }
                Ok(())
            }
            Err(e) => {
                error!("keeping the last good cltab: {e}");
                Err(e.to_string())
            }
        }
    }

    fn status_json(&self) -> serde_json::Value {
        let driver = &self.driver;
        let status = driver.init.status();
        let groups: Vec<serde_json::Value> = status
            .groups
            .iter()
            .map(|(g, s)| serde_json::json!({"group": g, "level": s.level, "state": s.state.as_str()}))
            .collect();
        serde_json::json!({
            "pid": std::process::id(),
            "cltab": self.cfg.cltab.display().to_string(),
            "processes": driver.processes.live(),
            "shutting_down": driver.init.is_shutting_down(),
            "groups": groups,
        })
    }

    fn handle_request(&mut self, request: Request) -> Reply {
        match request {
            Request::Shutdown => {
                info!("shutdown requested by a client");
                Reply::ok(self.step(Input::Shutdown).message())
            }
            Request::Status => Reply::ok("status").with_status(self.status_json()),
            Request::Reread => match self.reload() {
                Ok(()) => Reply::ok("cltab reloaded"),
                Err(e) => Reply::err(e),
            },
            Request::Tell { group, level } => {
                if let Err(e) = self.reload() {
                    return Reply::err(e);
                }
                info!("tell {group} {level}");
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

/// Run the daemon until a shutdown completes. Start-up errors (a malformed
/// cltab, a socket in use) are returned before anything is started.
pub async fn run(cfg: DaemonConfig) -> Result<(), DaemonError> {
    let table = load_cltab(&cfg.cltab)?;
    for (name, value) in &table.other_directives {
        warn!("cltab: ignoring unknown directive :::{name}:{value}");
    }
    let (socket, clstat) = effective_paths(&cfg, &table);
    if let Some(dir) = clstat.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::Io {
            what: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    // Handlers first: a child must never exit before we listen for SIGCHLD.
    let sig = |kind| signal(kind).map_err(DaemonError::Signal);
    let mut sigchld = sig(SignalKind::child())?;
    let mut sigterm = sig(SignalKind::terminate())?;
    let mut sigint = sig(SignalKind::interrupt())?;
    let mut sighup = sig(SignalKind::hangup())?;
    let listener = bind_socket(&socket)?;
    info!(
        "clinit daemon {} serving {} on {} (status {})",
        std::process::id(),
        cfg.cltab.display(),
        socket.display(),
        clstat.display()
    );

    let clock = Clock(Instant::now());
    // One instant for the machines' birth, so a recorded start replays exactly.
    let start = clock.now();
    let init = Init::new(cfg.init.clone(), table, start);
    let processes = RealProcesses::new(cfg.env.clone());
    let store = FileStatus { path: clstat.clone() };
    let driver = NodeDriver::new(init, processes, store);
    let mut daemon = Daemon { cfg, clock, driver };
    let first = daemon.driver.flush(start);
    log_executed(first, &daemon.driver.processes.labels);

    let (jobs_tx, mut requests) = mpsc::channel::<Job>(64);
    let mut conns = tokio::task::JoinSet::new();
    let mut backstop = tokio::time::interval(REAP_BACKSTOP);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !daemon.driver.init.has_exited() {
        let deadline = daemon.driver.init.poll_timeout();
        let sleep = tokio::time::sleep_until(match deadline {
            Some(at) => clock.instant(at),
            None => tokio::time::Instant::now() + Duration::from_secs(3600),
        });
        let lingering = daemon.driver.processes.lingering() > 0;
        tokio::select! {
            biased;
            _ = sigchld.recv() => daemon.reap(),
            Some((request, reply)) = requests.recv() => {
                let answer = daemon.handle_request(request);
                let _ = reply.send(answer);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, jobs_tx.clone()));
                }
                Err(e) => warn!("accept on {}: {e}", socket.display()),
            },
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
                let _ = daemon.reload();
            }
            _ = sleep, if deadline.is_some() => { daemon.step(Input::Tick); }
            _ = backstop.tick() => daemon.reap(),
            _ = tokio::time::sleep(LINGER_POLL), if lingering => daemon.reap(),
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }

    // Let in-flight replies (the shutdown request's, say) reach their clients.
    drop(requests);
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;

    daemon.driver.processes.kill_all();
    for path in [&clstat, &socket] {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != io::ErrorKind::NotFound {
                warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
    info!("clinit daemon {} exiting: all groups halted", std::process::id());
    Ok(())
}
