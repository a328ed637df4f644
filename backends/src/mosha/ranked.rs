//! `mosha` as executor of `ranked`'s commands: the record as heartbeat
//! payload, the durable state file, the kill on a lost lease, the
//! process-form watchdog and the compare-and-fence.
//!
//! * **Durable state**: `<run directory>/ranked-state.json`, next to the
//!   node's `clstat`, replaced by temp file + fsync + rename (+ fsync of
//!   the directory), so a `mosha -9` or a power cut leaves the old state or
//!   the new, never half. Loaded at start ([`load_state`]); the driver then
//!   bumps the incarnation.
//! * **Watchdog**: started at start-up as a separate process in its own
//!   process group ([`crate::watchdog`]); every `ArmWatchdog` becomes an
//!   `arm` line with the deadline converted to CLOCK_BOOTTIME, every
//!   service child's process group an `add`/`del` line.
//! * **Kill-all-now**: SIGKILL, on the loop, at once, to every process the
//!   services started outside their process groups (a descendant that left
//!   with `setsid`: everything in the node's cgroups, and every process
//!   carrying this monitor's generation marker), then to every child's
//!   process group; the exits come back through reaping. The rejoin of a
//!   fenced incarnation kills with the same command.
//! * **Compare-and-fence**: in the fence's thread, right before the hook
//!   runs, the target's record is read again; when the guard says it came
//!   back, the fence is skipped and answered as failed.

use super::executor::{fence_result, Executor, FenceProof};
use crate::atomic::write_atomic;
use crate::shared::SharedStore;
use crate::watchdog::Line;
use clinit_engine::cluster::{
    parse_record, ClusterCommand, ClusterInput, FenceFailure, IoFailure, SharedFile,
};
use clinit_engine::monitor::ranked::{Durable, Read, Record};
use clinit_engine::process::{ProcId, Signal};
use clinit_engine::time::Millis;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tracing::{error, info, warn};

/// The durable state's file name, in the node's run directory.
pub const STATE_FILE: &str = "ranked-state.json";

/// Where the durable state of a node whose clstat is `clstat` lives.
pub fn state_path(clstat: &Path) -> PathBuf {
    clstat.with_file_name(STATE_FILE)
}

/// A durable state file that exists but cannot be used.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: not a ranked state ({message})")]
    Parse { path: PathBuf, line: usize, message: String },
}

/// The state the previous run persisted (`None`: none yet, a first start).
/// A state that does not parse is an error: starting as if new would forget
/// revocations and grants this node promised to keep.
pub fn load_state(path: &Path) -> Result<Option<Durable>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Read { path: path.to_path_buf(), source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| StateError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        message: e.to_string(),
    })
}

/// Persist `state` durably at `path`.
pub fn save_state(path: &Path, state: &Durable) -> Result<(), IoFailure> {
    let what = || format!("cannot write {}", path.display());
    let text = serde_json::to_vec_pretty(state)
        .map_err(|e| IoFailure::other(what(), io::ErrorKind::InvalidData, e.to_string()))?;
    write_atomic(path, &text, None).map_err(|e| IoFailure::new(what(), &e))
}

/// Compare-and-fence's re-read of `node`'s record, bounded by `within`
/// (the engine's read deadline): `None` when it is unreadable, unparsable
/// or has not answered in time. A read stuck in the kernel (a hard NFS
/// mount whose server is gone) cannot be cancelled; its thread is left to
/// finish on its own and its answer is dropped, so a hung target
/// directory cannot hold the fence back.
fn reread_within(store: Arc<dyn SharedStore>, node: u32, within: Millis) -> Option<Arc<Record>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let reader =
        std::thread::Builder::new().name(format!("fence-reread-{node}")).spawn(move || {
            let newest = match store.read(node, SharedFile::Heartbeat) {
                Ok(Some(snap)) => match parse_record("record", &snap.bytes) {
                    Read::Record(r) => Some(r),
                    _ => None,
                },
                _ => None,
            };
            let _ = tx.send(newest);
        });
    if let Err(e) = reader {
        warn!("fence of node {node}: cannot start the re-read of its record ({e}): fencing");
        return None;
    }
    match rx.recv_timeout(std::time::Duration::from_millis(within.0)) {
        Ok(newest) => newest,
        Err(_) => {
            warn!("fence of node {node}: its record did not answer within {within}: fencing");
            None
        }
    }
}

impl Executor {
    /// Carry out one of `ranked`'s commands (see the module doc).
    pub(super) fn carry_out_ranked(&mut self, command: ClusterCommand) -> Option<ClusterInput> {
        match command {
            ClusterCommand::KillAllNow => {
                // What left the process groups (`setsid cmd &`) first,
                // while the groups still tell who is outside them: a copy
                // of a service must not outlive the lease while a peer
                // starts its own (RealProcesses::kill_escaped).
                let extra = self.processes.kill_escaped();
                let ids: Vec<ProcId> = self.labels.keys().copied().collect();
                let mut sent = 0;
                for id in ids {
                    if let Ok(true) = self.processes.signal_child(id, Signal::Kill) {
                        sent += 1;
                    }
                }
                let how = match self.processes.cgroup_base() {
                    Some(base) => format!("in cgroup {} or", base.display()),
                    None => "with".to_string(),
                };
                error!(
                    "no lease here (lost, or this incarnation fenced): SIGKILL sent to {sent} \
                     process groups and {extra} other processes {how} this monitor's \
                     {} marker",
                    crate::generations::GENERATION_ENV
                );
                None
            }
            ClusterCommand::Persist { seq, state } => {
                let result = save_state(&state_path(&self.clstat), &state);
                Some(ClusterInput::Persisted { seq, result })
            }
            ClusterCommand::ArmWatchdog { epoch, deadline } => {
                let now = self.clock.now();
                let boot = crate::watchdog::boottime();
                let at = deadline.map(|d| boot + d.saturating_sub(now));
                self.watchdog_send(Line::Arm { epoch, deadline: at });
                None
            }
            ClusterCommand::FenceRanked { seq, target, guard, read_within, .. } => {
                let (fence, store) = (self.fence.clone(), self.store.clone());
                let log = self.clstat.with_file_name(crate::fence_log::FILE);
                self.background(move || {
                    let node = target.node;
                    let newest = reread_within(store, node, read_within);
                    if guard.skip(newest.as_deref()) {
                        info!(
                            "fence of node {node} skipped: its record moved since it was decided"
                        );
                        let error = FenceFailure::Refused {
                            status: "skipped".into(),
                            output: "the target's record moved (compare-and-fence)".into(),
                        };
                        return ClusterInput::FenceDone { seq, node, result: Err(error) };
                    }
                    // Under ranked a fence must prove the target's
                    // services are dead: a log line proves nothing.
                    let result = fence_result(fence.fence(node), node, FenceProof::CommandRequired);
                    if result.is_ok() {
                        // For `mosha status` (who fenced whom, when).
                        let entry = crate::fence_log::FenceEntry {
                            at_ms: crate::shared::wall(std::time::SystemTime::now()).0,
                            node,
                            incarnation: target.incarnation,
                        };
                        if let Err(e) = crate::fence_log::append(&log, entry) {
                            warn!("cannot write the fence log {}: {e}", log.display());
                        }
                    }
                    ClusterInput::FenceDone { seq, node, result }
                });
                None
            }
            other => {
                warn!("not a ranked command: {other:?}");
                None
            }
        }
    }

    /// A service child started: its process group is the watchdog's.
    pub(super) fn watch_group(&mut self, id: ProcId, pid: u32) {
        if self.watchdog.is_some() {
            self.pgids.insert(id, pid);
            self.watchdog_send(Line::Add(pid as i32));
        }
    }

    /// A child's process group is gone (reaped): no longer the watchdog's.
    pub(super) fn unwatch_group(&mut self, id: ProcId) {
        if self.watchdog.is_some() {
            if let Some(pid) = self.pgids.remove(&id) {
                self.watchdog_send(Line::Del(pid as i32));
            }
        }
    }

    /// Send one line to the watchdog (restarting it if it is gone), and
    /// tell the monitor when the watchdog is lost for good or back: the
    /// record must not say `watchdog: true` while none guards this node.
    fn watchdog_send(&mut self, line: Line) {
        let Some(w) = self.watchdog.as_mut() else { return };
        let was_up = w.is_up();
        if let Err(e) = w.send(line) {
            error!("{e}");
        }
        let up = w.is_up();
        if up != was_up {
            let _ = self.results.send(ClusterInput::Watchdog { up });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::{FsStore, NodePaths, Snapshot, Stamp};
    use clinit_engine::monitor::ranked::{Config, LeaseState};
    use std::time::{Duration, SystemTime};

    /// A directory store whose reads of node 2 take `hang` (a dead NFS
    /// server's export, as far as the reader can tell).
    struct SlowStore {
        inner: FsStore,
        hang: Duration,
    }

    impl SharedStore for SlowStore {
        fn nodes(&self) -> io::Result<Vec<u32>> {
            self.inner.nodes()
        }
        fn stat(&self, node: u32, file: SharedFile) -> io::Result<Option<Stamp>> {
            self.inner.stat(node, file)
        }
        fn read(&self, node: u32, file: SharedFile) -> io::Result<Option<Snapshot>> {
            if node == 2 {
                std::thread::sleep(self.hang);
            }
            self.inner.read(node, file)
        }
        fn write(
            &self,
            node: u32,
            file: SharedFile,
            bytes: &[u8],
            mtime: Option<SystemTime>,
        ) -> io::Result<()> {
            self.inner.write(node, file, bytes, mtime)
        }
        fn remove(&self, node: u32, file: SharedFile) -> io::Result<()> {
            self.inner.remove(node, file)
        }
        fn describe(&self, node: u32, file: SharedFile) -> String {
            self.inner.describe(node, file)
        }
        fn base(&self) -> String {
            self.inner.base()
        }
    }

    fn record(node: u32) -> Record {
        Record {
            node,
            incarnation: 1,
            counter: 9,
            policy: clinit_engine::monitor::ranked::record::POLICY.into(),
            lease: LeaseState::Holding,
            floor: 1,
            watchdog: true,
            seen_all: true,
            config: Config { version: 1, members: vec![1, 2], voters: Vec::new() },
            config_ack: None,
            acks: Default::default(),
            revocations: Default::default(),
            grants: Default::default(),
            claims: Default::default(),
            fenced: Default::default(),
            votes: Default::default(),
            groups: Default::default(),
        }
    }

    /// Compare-and-fence's re-read answers in time from a healthy
    /// directory, and gives up at its deadline on a hung one (node 2's
    /// reads take 5 s; the deadline is 100 ms), so the fence goes on.
    #[test]
    fn a_hung_reread_counts_as_unreadable_at_its_deadline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SlowStore {
            inner: FsStore::new(NodePaths::new(dir.path(), "var/mosix-ha")),
            hang: Duration::from_secs(5),
        };
        for node in [1, 2] {
            std::fs::create_dir_all(store.inner.paths.node_dir(node)).expect("node dir");
            let text = record(node).render();
            store.write(node, SharedFile::Heartbeat, text.as_bytes(), None).expect("write record");
        }
        let store: Arc<dyn SharedStore> = Arc::new(store);
        let healthy = reread_within(store.clone(), 1, Millis(2_000));
        assert_eq!(healthy.map(|r| (r.node, r.counter)), Some((1, 9)), "node 1 answers");
        let started = std::time::Instant::now();
        let hung = reread_within(store, 2, Millis(100));
        let waited = started.elapsed();
        assert!(hung.is_none(), "a re-read with no answer by its deadline is unreadable");
        assert!(waited < Duration::from_secs(4), "it did not wait for the hung read: {waited:?}");
    }
}
