//! The read phase of one monitor cycle, as a state machine:
//! idle → membership → node reads → copies → decide → idle.
//!
//! Every phase that waits on the executor has a deadline the driver sets
//! (the read time-out); when it passes, whatever has not answered counts as
//! "no answer" and the cycle goes on. A read that outlives its deadline keeps
//! its node *busy*: no second read is sent to a node whose previous read
//! still hangs (it is "unreadable" meanwhile), so a dead mount costs one
//! blocked executor thread, not one per cycle.

use super::input::{FileRead, FileReport, SharedFile, WallMs};
use crate::cltab::Cltab;
use crate::hactl::Hactl;
use crate::monitor::replicate::{parse_copy, CopyInfo, CopyRead, Replica, Replicated, Replication};
use crate::monitor::NodeStatus;
use crate::status::ClStat;
use crate::time::Millis;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where the cycle is.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// Waiting for the next cycle at `at`.
    Idle {
        at: Millis,
    },
    /// Membership read `seq` sent; no answer yet.
    Membership {
        seq: u64,
        deadline: Millis,
    },
    Reading(Reading),
    Copying(Copying),
}

/// Node reads sent, some answered.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub deadline: Millis,
    pub members: Vec<u32>,
    /// seq → node, for reads not answered yet.
    pub pending: BTreeMap<u64, u32>,
    pub got: BTreeMap<u32, NodeFiles>,
}

/// Copies of replicated files sent, some answered.
#[derive(Debug, Clone)]
pub(crate) struct Copying {
    pub deadline: Millis,
    pub members: Vec<u32>,
    pub nodes: BTreeMap<u32, NodeStatus>,
    pub hactl: Step,
    pub cltab: Step,
}

/// One file kind's replication within a cycle.
#[derive(Debug, Clone, Default)]
pub(crate) struct Step {
    pub decision: Option<Replication>,
    /// The copy's seq while it runs.
    pub copy: Option<u64>,
    /// The copy's outcome (`Ok(id)`: my new copy's identity).
    pub result: Option<Result<super::input::ContentId, String>>,
}

impl Step {
    pub fn waiting(&self) -> bool {
        self.copy.is_some() && self.result.is_none()
    }
}

/// What one node's read gave, as the monitor and replication need it.
#[derive(Debug, Clone)]
pub(crate) struct NodeFiles {
    pub clstat: NodeStatus,
    pub hactl: CopyRead<Hactl>,
    pub cltab: CopyRead<Cltab>,
}

impl NodeFiles {
    /// Nothing could be read, for `reason`.
    pub fn failed(reason: String) -> NodeFiles {
        NodeFiles {
            clstat: NodeStatus::Unreadable { reason: reason.clone() },
            hactl: Err(reason.clone()),
            cltab: Err(reason),
        }
    }
}

/// Parsed clstats by node, keyed by content identity (a large cluster's
/// unchanged clstats are neither re-read nor re-parsed).
pub(crate) type ClstatCache = BTreeMap<u32, (super::input::ContentId, Arc<ClStat>)>;

/// Turn one node's reported files into what the monitor needs. A clstat
/// that is not UTF-8 or has lines that are not status lines is
/// *unreadable*: a torn or foreign file must not be taken for "runs
/// nothing" (spec W3). Its age is the reader's clock at the read minus the
/// writer's mtime, as the original computed it (spec §5.2).
pub(crate) fn node_files(
    node: u32,
    me: u32,
    read_at: WallMs,
    files: Vec<FileReport>,
    clstats: &mut ClstatCache,
    hactl_replica: &Replica<Hactl>,
    cltab_replica: &Replica<Cltab>,
) -> NodeFiles {
    let not_read = |file: SharedFile| format!("node {node}'s {file} was not read");
    // The "not read" texts are built only for files the report lacks
    // (formatting three per member per cycle cost a sixth of a large
    // simulation).
    let (mut clstat, mut hactl, mut cltab) = (None, None, None);
    for FileReport { file, path, read } in files {
        match file {
            SharedFile::Clstat if node != me => {
                clstat = Some(clstat_status(node, read_at, &path, read, clstats))
            }
            SharedFile::Hactl => hactl = Some(copy_read(node, &path, read, hactl_replica)),
            SharedFile::Cltab => cltab = Some(copy_read(node, &path, read, cltab_replica)),
            _ => {}
        }
    }
    NodeFiles {
        // My own status comes from my init machine, never from the file.
        clstat: clstat.unwrap_or_else(|| {
            if node == me {
                NodeStatus::Missing
            } else {
                NodeStatus::Unreadable { reason: not_read(SharedFile::Clstat) }
            }
        }),
        hactl: hactl.unwrap_or_else(|| Err(not_read(SharedFile::Hactl))),
        cltab: cltab.unwrap_or_else(|| Err(not_read(SharedFile::Cltab))),
    }
}

pub(crate) fn clstat_status(
    node: u32,
    read_at: WallMs,
    path: &str,
    read: FileRead,
    cache: &mut ClstatCache,
) -> NodeStatus {
    let version = match read {
        Ok(None) => {
            cache.remove(&node);
            return NodeStatus::Missing;
        }
        Err(e) => return NodeStatus::Unreadable { reason: e.to_string() },
        Ok(Some(v)) => v,
    };
    let age = read_at.since(version.mtime);
    let clstat = match (&version.bytes, cache.get(&node)) {
        (None, Some((id, clstat))) if *id == version.id => clstat.clone(),
        (None, _) => {
            let reason = format!("{path}: content not sent");
            return NodeStatus::Unreadable { reason };
        }
        (Some(bytes), _) => {
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    cache.remove(&node);
                    let line = crate::located::line_of_offset(bytes, e.valid_up_to());
                    return NodeStatus::Unreadable { reason: format!("{path}:{line}: not UTF-8") };
                }
            };
            let (clstat, bad) = ClStat::parse_strict(text);
            if let Some(line) = bad.first() {
                cache.remove(&node);
                let reason = format!("{path}:{line}: not a status line");
                return NodeStatus::Unreadable { reason };
            }
            let clstat = match cache.get(&node) {
                Some((_, old)) if **old == clstat => old.clone(),
                _ => Arc::new(clstat),
            };
            cache.insert(node, (version.id, clstat.clone()));
            clstat
        }
    };
    NodeStatus::Read { clstat, age }
}

pub(crate) fn copy_read<T: Replicated>(
    node: u32,
    path: &str,
    read: FileRead,
    replica: &Replica<T>,
) -> CopyRead<T> {
    let version = match read {
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
        Ok(Some(v)) => v,
    };
    match version.bytes {
        Some(bytes) => {
            let parsed = parse_copy::<T>(&bytes, path);
            Ok(Some(CopyInfo { mtime: version.mtime, id: version.id, bytes, parsed }))
        }
        None => match replica.cached(node) {
            Some(info) if info.id == version.id => Ok(Some(info.clone())),
            _ => Err(format!("{path}: content not sent")),
        },
    }
}
