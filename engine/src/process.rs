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
