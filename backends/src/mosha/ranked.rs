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
//! * **Kill-all-now**: SIGKILL to every child's process group, on the loop,
//!   at once; the exits come back through reaping.
//! * **Compare-and-fence**: in the fence's thread, right before the hook
//!   runs, the target's record is read again; when the guard says it came
//!   back, the fence is skipped and answered as failed.

use super::executor::{fence_result, Executor, FenceProof};
use crate::atomic::write_atomic;
use crate::watchdog::Line;
use clinit_engine::cluster::{
    parse_record, ClusterCommand, ClusterInput, FenceFailure, IoFailure, SharedFile,
};
use clinit_engine::monitor::ranked::{Durable, Read};
use clinit_engine::process::{ProcId, Signal};
use std::io;
use std::path::{Path, PathBuf};
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

impl Executor {
    /// Carry out one of `ranked`'s commands (see the module doc).
    pub(super) fn carry_out_ranked(&mut self, command: ClusterCommand) -> Option<ClusterInput> {
        match command {
            ClusterCommand::KillAllNow => {
                let ids: Vec<ProcId> = self.labels.keys().copied().collect();
                let mut sent = 0;
                for id in ids {
                    if let Ok(true) = self.processes.signal_child(id, Signal::Kill) {
                        sent += 1;
                    }
                }
                error!("lease lost: SIGKILL sent to {sent} process groups");
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
                if let Some(w) = self.watchdog.as_mut() {
                    if let Err(e) = w.send(Line::Arm { epoch, deadline: at }) {
                        error!("{e}");
                    }
                }
                None
            }
            ClusterCommand::FenceRanked { seq, target, guard, .. } => {
                let (fence, store) = (self.fence.clone(), self.store.clone());
                let log = self.clstat.with_file_name(crate::fence_log::FILE);
                self.background(move || {
                    let node = target.node;
                    let newest = match store.read(node, SharedFile::Heartbeat) {
                        Ok(Some(snap)) => match parse_record("record", &snap.bytes) {
                            Read::Record(r) => Some(r),
                            _ => None,
                        },
                        _ => None,
                    };
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
        if let Some(w) = self.watchdog.as_mut() {
            self.pgids.insert(id, pid);
            if let Err(e) = w.send(Line::Add(pid as i32)) {
                error!("{e}");
            }
        }
    }

    /// A child's process group is gone (reaped): no longer the watchdog's.
    pub(super) fn unwatch_group(&mut self, id: ProcId) {
        if let (Some(w), Some(pid)) = (self.watchdog.as_mut(), self.pgids.remove(&id)) {
            if let Err(e) = w.send(Line::Del(pid as i32)) {
                error!("{e}");
            }
        }
    }
}
