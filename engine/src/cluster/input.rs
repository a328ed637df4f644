//! What an executor tells a [`super::ClusterDriver`]: the result of every
//! command it ran, and the outside events (child exits, client requests,
//! signals) that concern the node.
//!
//! Executors report what happened and nothing more. They never judge age,
//! staleness, validity or time-outs: a read result carries the *raw facts*
//! (the writer's mtime, the reader's wall clock at the read, a content
//! identity and the bytes) and the driver decides what they mean.

use crate::cltab::Cltab;
use crate::process::{ExitStatus, ProcId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::sync::Arc;
use thiserror::Error;

/// A wall-clock time: milliseconds since the Unix epoch (negative before
/// it), as read by some node. Never compared with another node's clock by
/// the driver except where the original did so (classic's staleness:
/// `reader's clock − writer's mtime`, spec §5.2, weakness W11).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct WallMs(pub i64);

impl WallMs {
    /// Whole seconds since the epoch, truncated toward zero (the original
    /// compared `stat` mtimes in whole seconds, `getlatest` in spec §5.4).
    pub fn whole_secs(self) -> i64 {
        self.0 / 1000
    }

    /// `self − earlier` in ms; zero when `earlier` is later (a file from
    /// the future, under clock skew, has age zero, as `backends` always did).
    pub fn since(self, earlier: WallMs) -> crate::time::Millis {
        crate::time::Millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// Identity of one version of a file: equal identities mean equal content.
/// Production derives it from (inode, size, mtime in ns); the simulator uses
/// a per-file change counter. The driver uses it only to skip re-parsing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ContentId(pub u64);

/// The files of one node's HA directory (`<mfsbase>/<N>/<varpath>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SharedFile {
    Cltab,
    Hactl,
    Clstat,
    Hastat,
    Heartbeat,
}

impl SharedFile {
    /// The file's name inside the node directory.
    pub fn name(self) -> &'static str {
        match self {
            SharedFile::Cltab => "cltab",
            SharedFile::Hactl => "hactl",
            SharedFile::Clstat => "clstat",
            SharedFile::Hastat => "hastat",
            SharedFile::Heartbeat => "heartbeat",
        }
    }
}

impl fmt::Display for SharedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An I/O failure reported by an executor, with the `io::ErrorKind` kept
/// so a policy can tell "not found" from "permission denied" from "timed
/// out" (the project rule: errors at the I/O seams keep their kind).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[error("{what}: {detail}")]
pub struct IoFailure {
    /// What was being done, naming the path (`cannot write /mfs/2/clstat`).
    pub what: String,
    #[serde(with = "kind_serde")]
    pub kind: io::ErrorKind,
    /// The OS's (or simulator's) message.
    pub detail: String,
}

impl IoFailure {
    pub fn new(what: impl Into<String>, error: &io::Error) -> Self {
        IoFailure { what: what.into(), kind: error.kind(), detail: error.to_string() }
    }

    /// A failure with a kind and message of the executor's choosing.
    pub fn other(what: impl Into<String>, kind: io::ErrorKind, detail: impl Into<String>) -> Self {
        IoFailure { what: what.into(), kind, detail: detail.into() }
    }
}

/// `io::ErrorKind` is not serde: stored by its debug name (`NotFound`),
/// read back for the kinds a file system, process or fence reports,
/// `Other` for the rest.
mod kind_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::io::ErrorKind;

    const KINDS: &[ErrorKind] = &[
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::ConnectionRefused,
        ErrorKind::AlreadyExists,
        ErrorKind::WouldBlock,
        ErrorKind::InvalidInput,
        ErrorKind::InvalidData,
        ErrorKind::TimedOut,
        ErrorKind::WriteZero,
        ErrorKind::Interrupted,
        ErrorKind::Unsupported,
        ErrorKind::UnexpectedEof,
        ErrorKind::OutOfMemory,
        ErrorKind::IsADirectory,
        ErrorKind::NotADirectory,
        ErrorKind::DirectoryNotEmpty,
        ErrorKind::ReadOnlyFilesystem,
        ErrorKind::StaleNetworkFileHandle,
        ErrorKind::StorageFull,
        ErrorKind::QuotaExceeded,
        ErrorKind::FileTooLarge,
        ErrorKind::ResourceBusy,
        ErrorKind::ExecutableFileBusy,
        ErrorKind::Deadlock,
        ErrorKind::HostUnreachable,
        ErrorKind::NetworkUnreachable,
        ErrorKind::NetworkDown,
        ErrorKind::BrokenPipe,
        ErrorKind::ConnectionReset,
        ErrorKind::ConnectionAborted,
        ErrorKind::NotConnected,
        ErrorKind::Other,
    ];

    pub fn serialize<S: Serializer>(kind: &ErrorKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{kind:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorKind, D::Error> {
        let name = String::deserialize(d)?;
        Ok(KINDS.iter().copied().find(|k| format!("{k:?}") == name).unwrap_or(ErrorKind::Other))
    }
}

/// One version of a file as an executor found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileVersion {
    /// The writer's mtime (the writer's clock, or a copied original's).
    pub mtime: WallMs,
    /// Identity of this content.
    pub id: ContentId,
    /// The content. `None` when the command said the driver already knows
    /// content `id` (see [`super::ClusterCommand::ReadNodes`]): the executor
    /// may then skip reading it.
    pub bytes: Option<Arc<[u8]>>,
}

/// One file's read: `Ok(None)` when there is no such file.
pub type FileRead = Result<Option<FileVersion>, IoFailure>;

/// One file of a node's read, with its path for messages (`file:line`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// Whose file it is.
    pub node: u32,
    pub file: SharedFile,
    /// The path (or simulated name) that error messages should name.
    /// Shared: an executor makes each path once, not once per read.
    pub path: Arc<str>,
    pub read: FileRead,
}

/// What a membership read found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipReport {
    /// The membership source's own answer (openMosix `/proc/hpc`, a
    /// simulator's oracle): these nodes are up.
    Members(Vec<u32>),
    /// Heartbeat-file membership: every node directory found, with its
    /// heartbeat file as read, and the reader's wall clock at the read. The
    /// driver decides freshness (age ≤ the policy timeout).
    Heartbeats { read_at: WallMs, beats: Vec<(u32, FileRead)> },
}

/// A request from a client of the node's control socket (`clinit -s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// `clinit group level`.
    Tell { group: String, level: String },
    /// A re-read local cltab (`clinit -r`).
    Reload { table: Cltab },
    /// `clinit -k`: halt every group now and exit (no graceful wait).
    Halt,
}

/// Everything that can happen to a node's cluster driver.
///
/// Results carry the `seq` of the command they answer; a result whose
/// `seq` the driver no longer waits for (its read deadline passed) is
/// ignored, except that it frees the node for the next read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClusterInput {
    /// Time passed: fire whatever is due (call it when `now` reaches
    /// [`super::ClusterDriver::poll_timeout`]; early calls are harmless).
    Tick,
    /// SIGHUP: start a monitor cycle now (when none is running).
    CycleNow,
    /// The executor's count of live processes that earlier incarnations of
    /// this node's monitor left (orphans of a `mosha` killed with -9): given
    /// at start and whenever it changes. Under `ranked` the monitor kills
    /// them before it holds anything, and its kill is confirmed only once
    /// they are gone too (see `monitor::ranked::Input::Leftovers`); other
    /// policies ignore it (the original does not know its orphans).
    Leftovers { live: usize },
    /// The watchdog process is up (`true`) or gone and cannot be restarted
    /// (`false`), given when that changes (see
    /// `monitor::ranked::Input::Watchdog`); other policies ignore it.
    Watchdog { up: bool },
    /// Answer to [`super::ClusterCommand::ReadMembership`].
    MembershipRead { seq: u64, report: MembershipReport },
    /// Answer to [`super::ClusterCommand::ReadMembership`]: it failed.
    MembershipFailed { seq: u64, error: IoFailure },
    /// Answer to [`super::ClusterCommand::ReadNodes`] for some of its nodes:
    /// one report per file asked for, grouped by node (every asked file of
    /// each node it covers), and the reader's wall clock at the read.
    /// Several may answer one batch.
    ///
    /// `unchanged` lists nodes of the batch none of whose asked files
    /// changed: every file asked of such a node still has the identity the
    /// command gave as its `known` (so the same content, and but for the
    /// clstat the same mtime, as the driver last saw). Each comes with its
    /// clstat's mtime now (`None` when its clstat was not asked): a
    /// heartbeat rewrites the same content with a new mtime, and the age is
    /// judged from it (reader's clock at the read − writer's mtime, spec
    /// §5.2), as for a report. A node is covered by a report or by
    /// `unchanged`, never both.
    ///
    /// Why: in a steady cluster nearly every member is unchanged every
    /// cycle; a report per file cost the simulator more than the judgement
    /// (at 100 nodes × 50 groups, a fifth of the run). An executor may list
    /// a node only when each of its asks had a `known` that still matches;
    /// reporting it instead is always right (`mosha` does: a heartbeat's
    /// new mtime is a new identity there). Both are in the one input so that
    /// a batch is answered in as many inputs, at the same points, either way.
    NodesRead {
        seq: u64,
        read_at: WallMs,
        reports: Vec<FileReport>,
        #[serde(default)]
        unchanged: Vec<(u32, Option<WallMs>)>,
    },
    /// Answer to [`super::ClusterCommand::ReadNodes`] for one node: its
    /// directory could not be read at all.
    NodeReadFailed { seq: u64, node: u32, error: IoFailure },
    /// Answer to [`super::ClusterCommand::Copy`]: the bytes are now this
    /// node's copy, with the source's mtime, as content `id`.
    CopyDone { seq: u64, id: ContentId },
    /// Answer to [`super::ClusterCommand::Copy`]: nothing (or a partial
    /// file) was written.
    CopyFailed { seq: u64, error: IoFailure },
    /// Answer to a write command (`WriteClstat`, `WriteHastat`,
    /// `WriteHeartbeat`, `RemoveHeartbeat`), as raft-rs acknowledges
    /// persistence. A failed write is retried before the next heartbeat.
    StatusWritten { seq: u64, file: SharedFile, result: Result<(), IoFailure> },
    /// Answer to [`super::ClusterCommand::Persist`].
    Persisted { seq: u64, result: Result<(), IoFailure> },
    /// Answer to [`super::ClusterCommand::Fence`] and
    /// [`super::ClusterCommand::FenceRanked`].
    FenceDone { seq: u64, node: u32, result: Result<(), FenceFailure> },
    /// Answer to [`super::ClusterCommand::Spawn`]: the pid (for logs), or
    /// why it could not be started (then no exit will be reported).
    SpawnResult { id: ProcId, result: Result<u32, SpawnFailure> },
    /// A child's own process ended (see [`crate::init::Input::Exited`]).
    ChildExited { id: ProcId, status: ExitStatus, lingering: bool },
    /// The last member of a lingering process group is gone.
    GroupGone { id: ProcId },
    /// A child signalled readiness (see [`crate::init::Input::Ready`]).
    ChildReady { id: ProcId },
    /// A control-socket request; [`super::ClusterDriver::handle`] returns
    /// the reply.
    Client(ClientRequest),
    /// SIGTERM/SIGINT: stop every local group, wait for them (bounded by
    /// the configured shutdown wait), then halt and exit. A second `Stop`
    /// halts at once.
    Stop,
}

/// Why a spawn failed (fork or exec of the shell, a not-after time passed).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum SpawnFailure {
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// The executor ran the command after its `not_after` time and did not
    /// start it (a late command must not extend a lease that ended).
    #[error("the executor ran it {late_by} ms after its not-after time")]
    TooLate { late_by: u64 },
    /// The spawn failed for lack of a resource (`EMFILE`, `ENFILE`,
    /// `EAGAIN`, `ENOMEM`: the executor maps the errno, which
    /// `io::ErrorKind` does not keep for `EMFILE`). The init machine
    /// retries it soon and does not count it toward the crash-loop
    /// throttle ([`crate::init::Input::SpawnStarved`]), as `clinit -d`
    /// does: a starved respawn entry otherwise waited a minute.
    #[error("{failure}: {shortage}, retried soon, not counted as a crash")]
    Starved { shortage: crate::process::Shortage, failure: IoFailure },
}

/// Why a fence failed.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum FenceFailure {
    /// The fence command could not be run.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// It ran and said no (exit status and output).
    #[error("fence command failed ({status}){}", output_tail(.output))]
    Refused { status: String, output: String },
    /// It did not finish within its time limit (ms) and was killed.
    #[error("fence command did not finish within {limit_ms} ms")]
    TimedOut { limit_ms: u64 },
}

/// A command's output as the tail of one log line: `; output: TEXT`, with
/// control characters escaped (a multi-line output stays on its line), or
/// nothing at all when the command printed nothing (a line used to end in
/// a bare `: ` then).
pub fn output_tail(output: &str) -> String {
    let output = output.trim();
    if output.is_empty() {
        String::new()
    } else {
        format!("; output: {}", crate::located::escape_controls(output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_failure_is_one_line_without_an_empty_output_tail() {
        let quiet = FenceFailure::Refused { status: "exit status: 3".into(), output: "".into() };
        assert_eq!(quiet.to_string(), "fence command failed (exit status: 3)");
        let chatty =
            FenceFailure::Refused { status: "exit status: 1".into(), output: "no\npower\n".into() };
        assert_eq!(chatty.to_string(), "fence command failed (exit status: 1); output: no\\npower");
    }

    /// A failure survives a trace round trip with its kind.
    #[test]
    fn io_failures_keep_their_kind_through_serde() {
        for kind in [io::ErrorKind::StaleNetworkFileHandle, io::ErrorKind::TimedOut] {
            let f = IoFailure::other("cannot read /mfs/2/clstat", kind, "detail");
            let json = serde_json::to_string(&f).expect("serialises");
            let back: IoFailure = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, f, "{json}");
        }
        let unknown = r#"{"what":"w","kind":"SomethingNew","detail":"d"}"#;
        let back: IoFailure = serde_json::from_str(unknown).expect("parses");
        assert_eq!(back.kind, io::ErrorKind::Other);
    }
}
