//! Runtime state of one cltab entry inside its group (spec §4.1, reduced to
//! what is observable).

use super::escalation::StopState;
use super::throttle::Throttle;
use crate::cltab::{Entry, Mode};
use crate::process::{ExitStatus, ProcId, Shortage};
use crate::time::Millis;

/// What an entry achieved in the current level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A `wait` or `test` entry that is still running: later entries wait.
    Pending,
    /// Ran: a `wait` that exited, or a `once`/`respawn` that was started.
    Done,
    /// A `test` that exited 0.
    Passed,
    /// A `test` that exited non-zero, was killed, or could not be spawned.
    Failed,
}

/// One entry that was started in the group's current (or previous) level.
///
/// It exists from its first start until it is stopped and forgotten; while
/// it exists it has "run", so a re-tell of a level containing it never
/// starts it again (spec §2).
#[derive(Debug, Clone)]
pub struct Proc {
    /// The cltab line this instance was started from. A later cltab whose
    /// line differs in mode or command makes this instance obsolete.
    pub entry: std::sync::Arc<Entry>,
    /// The live instance: spawned, and its process group not yet empty.
    pub live: Option<ProcId>,
    /// The live instance's own process has exited (its group lingers).
    pub leader_exited: bool,
    pub outcome: Outcome,
    /// Stop requested: the instance is signalled until reaped, then forgotten.
    pub stop: Option<StopState>,
    /// A respawn waiting out the throttle pause, or a spawn waiting to be
    /// retried after a shortage, with the id it will get.
    pub respawn_pending: Option<ProcId>,
    /// The pending start retries a spawn that failed for lack of this
    /// resource (see [`super::starve`]); `None` for a throttle pause.
    pub starved: Option<Shortage>,
    /// Spawns of this entry that failed for lack of a resource in a row.
    pub starved_tries: u32,
    pub throttle: Throttle,
    /// For status reports only (never read by the machine's rules): when
    /// the current instance was started, how often the entry was respawned,
    /// and how its last instance ended.
    pub started_at: Option<Millis>,
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    /// The live instance signalled readiness (only for entries that
    /// declare `ready=`; see [`crate::options`]).
    pub ready: bool,
    /// Why the entry FAILED, when the machine decided it (a readiness
    /// time-out, an exit before readiness), for status.
    pub failure: Option<String>,
    /// The instance is stopped because it failed, not because its level
    /// ended: once gone, the entry stays, FAILED, in its level.
    pub stop_keeps: bool,
}

impl Proc {
    pub fn new(entry: std::sync::Arc<Entry>, id: ProcId) -> Proc {
        let outcome = if entry.mode.is_blocking() || entry.options.ready.is_some() {
            Outcome::Pending
        } else {
            Outcome::Done
        };
        Proc {
            entry,
            live: Some(id),
            leader_exited: false,
            outcome,
            stop: None,
            respawn_pending: None,
            starved: None,
            starved_tries: 0,
            throttle: Throttle::default(),
            started_at: None,
            restarts: 0,
            last_exit: None,
            ready: false,
            failure: None,
            stop_keeps: false,
        }
    }

    /// Waiting for this live instance's readiness.
    pub fn awaits_ready(&self) -> bool {
        self.entry.options.ready.is_some() && !self.ready && self.live.is_some()
    }

    pub fn mode(&self) -> Mode {
        self.entry.mode
    }

    /// Holds back the entries after it.
    pub fn blocks(&self) -> bool {
        self.outcome == Outcome::Pending
    }

    /// Being stopped and not yet gone.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_some()
    }
}
