//! What a [`super::ClusterDriver`] wants an operator to read: every
//! decision and every failure it saw, with the reason. Executors log these
//! (`mosha`) or count them (the simulator); nothing in them is a command.

use super::glue::Event;
use super::input::{FenceFailure, IoFailure, SharedFile, SpawnFailure};
use crate::hactl::Hactl;
use crate::init::Notice as InitNotice;
use crate::process::ProcId;
use crate::status::GroupStatus;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Something worth a log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClusterEvent {
    /// The monitor and its glue (notices, tells, halting, quorum).
    Node(Event),
    /// The init machine's notice (group states, throttled respawns...).
    Init(InitNotice),
    /// Membership is unknown this cycle (read failed, or the previous read
    /// still hangs); the next try is at `retry_at`. `on_last_view`: what
    /// the driver does meanwhile. `false` (classic): no decisions this
    /// cycle. `true` (ranked): the peers' records are read on with the
    /// machine's last membership view, because every lease rests on those
    /// reads (see `read_phase.rs`).
    MembershipUnknown { reason: String, retry_at: Millis, on_last_view: bool },
    /// No answer came within the read deadline the driver set (`after`
    /// ms): `node` = `None` for the membership read. The engine, not the
    /// executor, decides this.
    ReadTimedOut { node: Option<u32>, after: Millis },
    /// Membership changed since the previous cycle, as this node sees it:
    /// each node that went down or came up, with the reason (heartbeat age
    /// and timeout, or the membership source's word). The transition
    /// history numbers them ([`crate::monitor::transitions`]).
    Membership {
        members: Vec<u32>,
        changes: Vec<(u32, crate::monitor::transitions::Change, String)>,
    },
    /// The replicated hactl changed: the monitor now works from this one.
    HactlChanged { hactl: Arc<Hactl> },
    /// A replicated file: node `from`'s copy (mtime `theirs`, whole
    /// seconds) was installed as mine (`mine`: my old copy's mtime).
    Adopted { file: SharedFile, from: u32, theirs: i64, mine: Option<i64> },
    /// A chosen copy could not be installed (copy failed or timed out).
    NotAdopted { file: SharedFile, from: u32, reason: String },
    /// Versioned replication (`ranked`): a version adopted, a hand edit
    /// sealed or settling, a truncated copy refused.
    Replica { file: SharedFile, note: crate::monitor::replica_version::VersionNote },
    /// Another node's copy is the newest but does not parse: not adopted.
    NewestUnparsable { file: SharedFile, node: u32, errors: String },
    /// My own copy does not parse; the last good one is used if any.
    OwnUnparsable { file: SharedFile, errors: String, kept_last_good: bool },
    /// My own copy could not be read: not replicated this cycle.
    OwnUnreadable { file: SharedFile, reason: String },
    /// A write failed; it is written again (newest content) at `retry_at`.
    WriteFailed { file: SharedFile, seq: u64, error: IoFailure, retry_at: Millis },
    /// `ranked` orders a fence of `node` (that incarnation), for `reason`.
    FenceOrdered { node: u32, incarnation: u64, reason: String },
    /// A fence succeeded.
    Fenced { node: u32 },
    /// A fence failed.
    FenceFailed { node: u32, error: FenceFailure },
    /// A child could not be started (the init machine sees it as ended).
    SpawnFailed { id: ProcId, error: SpawnFailure },
    /// Stop (SIGTERM): these local groups were told `stop`.
    Stopping { told: Vec<String> },
    /// Stop: still waiting for these groups.
    StopWaiting { busy: Vec<(String, GroupStatus)> },
    /// Stop: every local group has stopped; halting.
    Stopped,
    /// Stop: the wait ran out; halting these anyway.
    StopTimedOut { busy: Vec<(String, GroupStatus)>, waited: Millis },
    /// Stop: the init machine is told to halt (every group down, the wait
    /// ran out, or a second stop came).
    Halting,
    /// What the `ranked` machine wants logged (lease gained or lost,
    /// revocations, void claims, conflicts...). Written, never read back
    /// (a notice names its reason as a static text).
    #[serde(skip_deserializing)]
    Ranked(crate::monitor::ranked::RankedNotice),
    /// `ranked`: a persist of the durable state failed; it is retried with
    /// the newest state at the next step.
    PersistFailed { error: IoFailure },
    /// `ranked`: a tell reached the driver at or after its not-after time
    /// (the lease deadline − δ) and was dropped.
    LateTellDropped { group: String, level: String, late_by: Millis },
}
