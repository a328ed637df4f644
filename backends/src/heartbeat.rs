//! Membership for any shared directory (an NFS mount, say) with no
//! openMosix underneath: a node is up iff its heartbeat file
//! `<mfsbase>/<N>/<varpath>/heartbeat` is fresher than the timeout.
//!
//! Why a file of its own rather than the clstat: the clstat says the init
//! machine is alive, the heartbeat says the whole `mosha` is; and a node
//! that shuts down cleanly removes its heartbeat, so it leaves membership at
//! once instead of a timeout later. `mosha` rewrites it every third of the
//! timeout, independently of its (possibly long) monitor cycles.
//!
//! Ages compare this node's clock with the writer's mtime: clock skew
//! between nodes eats into the margin (spec W11); keep clocks in sync.

use crate::membership::{Membership, MembershipError};
use crate::shared::{age, SharedFile, SharedStore};
use clinit_engine::time::Millis;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Heartbeat-file membership over a [`SharedStore`].
pub struct HeartbeatMembership<S: ?Sized> {
    pub store: Arc<S>,
    pub timeout: Millis,
}

impl<S: SharedStore + ?Sized> HeartbeatMembership<S> {
    pub fn new(store: Arc<S>, timeout: Millis) -> Self {
        HeartbeatMembership { store, timeout }
    }

    /// Members as of `now` (wall clock): nodes with a heartbeat no older
    /// than the timeout. An unreadable heartbeat means "not up".
    pub fn members_at(&self, now: SystemTime) -> Result<Vec<u32>, MembershipError> {
        let nodes = self.store.nodes().map_err(|e| {
            MembershipError::Other(format!("cannot list nodes in {}: {e}", self.store.base()))
        })?;
        let mut up = Vec::new();
        for node in nodes {
            match self.store.stat(node, SharedFile::Heartbeat) {
                Ok(Some(stamp)) if age(now, stamp.mtime) <= self.timeout => up.push(node),
                Ok(_) => {}
                Err(e) => tracing::debug!(
                    "{}: {e}; node {node} counted as down",
                    self.store.describe(node, SharedFile::Heartbeat)
                ),
            }
        }
        Ok(up)
    }
}

/// Write this node's heartbeat (its content is for humans: pid and time).
pub fn beat<S: SharedStore + ?Sized>(store: &S, me: u32) -> Result<(), String> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let text = format!("{} {secs}\n", std::process::id());
    store
        .write(me, SharedFile::Heartbeat, text.as_bytes(), None)
        .map_err(|e| format!("cannot write {}: {e}", store.describe(me, SharedFile::Heartbeat)))
}

/// Leave membership at once (clean shutdown).
pub fn remove<S: SharedStore + ?Sized>(store: &S, me: u32) -> Result<(), String> {
    store
        .remove(me, SharedFile::Heartbeat)
        .map_err(|e| format!("cannot remove {}: {e}", store.describe(me, SharedFile::Heartbeat)))
}

impl<S: SharedStore + ?Sized> Membership for HeartbeatMembership<S> {
    fn members(&self) -> Result<Vec<u32>, MembershipError> {
        self.members_at(SystemTime::now())
    }

    fn describe(&self) -> String {
        format!("heartbeat files, timeout {}", self.timeout)
    }
}
