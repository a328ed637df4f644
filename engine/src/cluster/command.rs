//! What a [`super::ClusterDriver`] asks its executor to do, as data.
//!
//! Each variant says when it may run and which [`super::ClusterInput`]
//! answers it. An executor may run commands in any order and concurrently
//! (threads, async tasks, a simulated queue), late or never; the driver
//! never waits forever: reads and copies have deadlines it enforces itself.

use super::glue::Published;
use super::input::{ContentId, SharedFile, WallMs};
use crate::process::{ProcId, Signal};
use crate::status::ClStat;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One file of one node that a [`ClusterCommand::ReadNodes`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileAsk {
    pub node: u32,
    pub file: SharedFile,
    /// The content the driver already has of that file: when the file still
    /// has this identity the executor may leave `bytes` out of its report
    /// (an unchanged file then costs a `stat`, not a read and a parse).
    pub known: Option<ContentId>,
}

/// One thing for the executor to carry out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClusterCommand {
    /// Learn which nodes are up. Run at once; answered by
    /// `MembershipRead` or `MembershipFailed` with this `seq`. With
    /// heartbeat-file membership the executor lists every node directory and
    /// reads (at least stats) each heartbeat file, reporting mtimes, never a
    /// judgement. The driver times the read out itself.
    ReadMembership { seq: u64 },
    /// Read these files of these nodes: one batch per monitor cycle, grouped
    /// by node in ascending node order. Run at once, each node
    /// independently (a hung node must not delay the others). Answered by
    /// one or more `NodesRead` inputs with this `seq`, each carrying every
    /// asked file of the nodes it covers (an executor may answer the whole
    /// batch at once, as the simulator does, or each node as its read ends,
    /// as `mosha` does), or by `NodeReadFailed` for a node whose directory
    /// could not be read at all.
    ///
    /// Why a batch and not one command per node: at 100 nodes the per-node
    /// command, input and path strings cost more than the cycle's whole
    /// judgement (the simulator's 100-node speed fell 30-fold with them).
    ReadNodes { seq: u64, asks: Vec<FileAsk> },
    /// Make `bytes` (node `from`'s copy of `file`, as read and validated by
    /// the driver) this node's copy, atomically, with `mtime` as its mtime
    /// (the original's `cp -p`, spec §5.4). Answered by `CopyDone` or
    /// `CopyFailed`.
    Copy { seq: u64, file: SharedFile, from: u32, bytes: Arc<[u8]>, mtime: WallMs },
    /// Replace this node's `clstat` with `status` (atomically). `seq` grows
    /// with every write: an executor that finds an older write still
    /// running may drop it. Answered by `StatusWritten`.
    WriteClstat { seq: u64, status: ClStat },
    /// Replace this node's `hastat` with `published`, stamped with the
    /// executor's wall clock. Answered by `StatusWritten`.
    WriteHastat { seq: u64, published: Published },
    /// Write this node's heartbeat file. Only the driver decides when (a
    /// heartbeat written by anyone else could extend a lease that ended).
    /// `counter` grows with every beat; `payload` is the record to write,
    /// `None` for the human-readable default (pid and time). Answered by
    /// `StatusWritten` with [`SharedFile::Heartbeat`].
    WriteHeartbeat { seq: u64, counter: u64, payload: Option<Arc<[u8]>> },
    /// Remove this node's heartbeat file (a clean exit leaves membership at
    /// once). After it, no `WriteHeartbeat` is sent. Answered by
    /// `StatusWritten` with [`SharedFile::Heartbeat`].
    RemoveHeartbeat { seq: u64 },
    /// Start `/bin/sh -c command` in a new process group with
    /// `CLINIT_GROUP`, `CLINIT_TAG`, `CLINIT_LEVEL` set. When the executor
    /// gets to it after `not_after` (the driver's clock), it must not start
    /// it and answer `SpawnResult` with `SpawnFailure::TooLate`. Answered by
    /// `SpawnResult`, then `ChildExited` (and `GroupGone` if it lingered).
    Spawn {
        id: ProcId,
        group: String,
        tag: String,
        level: String,
        command: String,
        not_after: Option<Millis>,
    },
    /// Signal the process group of child `id`; nothing when it was already
    /// reaped. No answer (its effect comes back as `ChildExited`).
    Signal { id: ProcId, signal: Signal },
    /// Run the fence (STOMITH) hook against `node`. Answered by `FenceDone`.
    Fence { seq: u64, node: u32 },
    /// `ranked` lost its lease: SIGKILL every local child's process group
    /// now (or kill the service cgroups), without the INT/TERM escalation.
    /// No answer: the kills come back as `ChildExited`/`GroupGone`, and the
    /// driver itself judges whether they landed within the kill bound δ.
    KillAllNow,
    /// `ranked`: store `state` (this node's durable local state:
    /// incarnation, known membership, revocations, grants) durably, in
    /// local storage that survives a `mosha -9` (temp file, fsync, rename).
    /// Answered by [`super::ClusterInput::Persisted`]; nothing that rests
    /// on it is published before.
    Persist { seq: u64, state: Box<crate::monitor::ranked::Durable> },
    /// `ranked`: hand the node's watchdog the deadline (boot clock, ms) of
    /// lease `epoch` ((incarnation, epoch)): at it, the watchdog SIGKILLs
    /// the node's service process groups. `None`: no lease, keep them
    /// empty. No answer.
    ArmWatchdog { epoch: (u64, u64), deadline: Option<Millis> },
    /// `ranked`: fence incarnation `target.incarnation` of `target.node`.
    /// Compare-and-fence: right before running the hook, re-read the
    /// target's record and skip the fence, answering `FenceDone` with an
    /// error, when `guard.skip(newest record)` says so. Answered by
    /// `FenceDone` with this `seq`.
    FenceRanked {
        seq: u64,
        target: crate::monitor::ranked::NodeInc,
        guard: crate::monitor::ranked::FenceGuard,
        /// The re-read's deadline (ms; the policy's read deadline, ≤ H/4):
        /// a re-read with no answer by then counts as unreadable, and an
        /// unreadable record never skips the fence. A target whose files
        /// hang (a dead NFS server's export) is the very node to fence, so
        /// a hung re-read must not hold the fence back.
        read_within: Millis,
        /// Why (for logs, and for the simulator's ground truth: a lost
        /// tie-breaker's fence is never needless).
        reason: crate::monitor::ranked::fencing::FenceReason,
    },
    /// Every local child is gone and the node has left: exit the process.
    Exit,
}
