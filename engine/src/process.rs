//! Process-level vocabulary shared by the engine and the backends: how a
//! child ended, and which signal to send. Kept free of `nix`/`libc` so the
//! engine stays pure; backends map these to real signal numbers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identity of one spawned instance of a cltab entry, assigned by the engine.
///
/// A fresh id is used for every spawn (respawns included), so an event about
/// an old instance can never be mistaken for the current one, and a backend
/// that has reaped an instance can refuse to signal it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcId(pub u64);

impl fmt::Display for ProcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The stop signals the engine escalates through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Signal {
    Int,
    Term,
    Kill,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExitStatus {
    /// Normal exit with this code.
    Code(i32),
    /// Killed by this signal number.
    Signaled(i32),
    /// The backend could not start it at all (fork or exec of the shell failed).
    SpawnFailed,
}

impl ExitStatus {
    /// Only a clean `exit 0` counts as success (a test passes on it).
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by signal {s}"),
            ExitStatus::SpawnFailed => f.write_str("could not be spawned"),
        }
    }
}

/// A resource whose lack made a spawn fail: the daemon's descriptor limit
/// (`EMFILE`), the system's file table (`ENFILE`), the process or thread
/// limits (`EAGAIN` from fork or clone), or memory (`ENOMEM`).
///
/// Such a failure says nothing about the command, so the machine retries it
/// after a short pause and does not count it as a crash (see
/// [`crate::init::starve`]); the respawn throttle would otherwise hold the
/// entry back for a minute once descriptors are free again. A backend maps
/// its errno to this; any other failure (the shell missing, `EACCES`) is
/// [`SpawnError::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shortage {
    /// `EMFILE`: the daemon reached its own `RLIMIT_NOFILE`.
    Descriptors,
    /// `ENFILE`: the system-wide file table is full.
    SystemDescriptors,
    /// `EAGAIN`: `RLIMIT_NPROC`, `pid_max` or `threads-max` reached.
    Processes,
    /// `ENOMEM`: the kernel could not allocate the new process.
    Memory,
}

impl Shortage {
    /// The errno's name, as the operator will search for it.
    pub fn errno_name(self) -> &'static str {
        match self {
            Shortage::Descriptors => "EMFILE",
            Shortage::SystemDescriptors => "ENFILE",
            Shortage::Processes => "EAGAIN",
            Shortage::Memory => "ENOMEM",
        }
    }
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Shortage::Descriptors => "out of file descriptors",
            Shortage::SystemDescriptors => "the system is out of file descriptors",
            Shortage::Processes => "out of processes",
            Shortage::Memory => "out of memory",
        };
        write!(f, "{what} ({})", self.errno_name())
    }
}

/// Why a backend could not start a child (the error of
/// [`crate::driver::Processes::spawn`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SpawnError {
    /// A resource ran out: transient, retried without counting as a crash.
    #[error("{detail}")]
    Starved { shortage: Shortage, detail: String },
    /// Anything else (`ENOENT` of the shell, `EACCES`, a bad working
    /// directory): the instance ended as [`ExitStatus::SpawnFailed`].
    #[error("{detail}")]
    Failed { detail: String },
}

impl SpawnError {
    /// A failure that is not a shortage.
    pub fn failed(detail: impl Into<String>) -> Self {
        SpawnError::Failed { detail: detail.into() }
    }

    /// The shortage, if this failure is one.
    pub fn shortage(&self) -> Option<Shortage> {
        match self {
            SpawnError::Starved { shortage, .. } => Some(*shortage),
            SpawnError::Failed { .. } => None,
        }
    }
}

impl From<String> for SpawnError {
    fn from(detail: String) -> Self {
        SpawnError::Failed { detail }
    }
}

impl From<&str> for SpawnError {
    fn from(detail: &str) -> Self {
        SpawnError::Failed { detail: detail.into() }
    }
}
