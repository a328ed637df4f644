//! Membership for any shared directory (an NFS mount, say) with no
//! openMosix underneath: a node is up iff its heartbeat file
//! `<mfsbase>/<N>/<varpath>/heartbeat` is fresher than the timeout.
//!
//! Why a file of its own rather than the clstat: the clstat says the init
//! machine is alive, the heartbeat says the whole `mosha` is; and a node
//! that shuts down cleanly removes its heartbeat, so it leaves membership at
//! once instead of a timeout later. `mosha` rewrites it when its cluster
//! driver commands it (every third of the timeout), independently of its
//! (possibly long) monitor cycles.
//!
//! Who counts as up is the engine's rule ([`fresh_heartbeats`]): ages
//! compare this node's clock with the writer's mtime, so clock skew between
//! nodes eats into the margin (spec W11); keep clocks in sync. This module
//! only lists, stats and writes the files.

use crate::membership::{Membership, MembershipError};
use crate::shared::{wall, SharedFile, SharedStore};
use clinit_engine::cluster::{fresh_heartbeats, FileRead, FileVersion, IoFailure};
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
    /// than the timeout, judged by the engine ([`fresh_heartbeats`]).
    pub fn members_at(&self, now: SystemTime) -> Result<Vec<u32>, MembershipError> {
        let report = report(&*self.store)?;
        Ok(fresh_heartbeats(wall(now), &report, self.timeout))
    }
}

/// Every node directory in the shared space with its heartbeat file's
/// stamp, judging nothing (the engine decides who is fresh).
pub fn report<S: SharedStore + ?Sized>(store: &S) -> Result<Vec<(u32, FileRead)>, MembershipError> {
    let nodes = store.nodes().map_err(|e| {
        MembershipError::Other(format!("cannot list nodes in {}: {e}", store.base()))
    })?;
    Ok(nodes
        .into_iter()
        .map(|node| {
            let read = store
                .stat(node, SharedFile::Heartbeat)
                .map(|stamp| {
                    stamp.map(|s| FileVersion { mtime: s.wall(), id: s.content_id(), bytes: None })
                })
                .map_err(|e| IoFailure::new(store.describe(node, SharedFile::Heartbeat), &e));
            (node, read)
        })
        .collect())
}

/// Write this node's heartbeat (its content is for humans: pid and time).
pub fn beat<S: SharedStore + ?Sized>(store: &S, me: u32) -> Result<(), IoFailure> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let text = format!("{} {secs}\n", std::process::id());
    store.write(me, SharedFile::Heartbeat, text.as_bytes(), None).map_err(|e| {
        IoFailure::new(format!("cannot write {}", store.describe(me, SharedFile::Heartbeat)), &e)
    })
}

/// Leave membership at once (clean shutdown).
pub fn remove<S: SharedStore + ?Sized>(store: &S, me: u32) -> Result<(), IoFailure> {
    store.remove(me, SharedFile::Heartbeat).map_err(|e| {
        IoFailure::new(format!("cannot remove {}", store.describe(me, SharedFile::Heartbeat)), &e)
    })
}

impl<S: SharedStore + ?Sized> Membership for HeartbeatMembership<S> {
    fn members(&self) -> Result<Vec<u32>, MembershipError> {
        self.members_at(SystemTime::now())
    }

    fn describe(&self) -> String {
        format!("heartbeat files, timeout {}", self.timeout)
    }
}
