//! What the monitor asks its driver to do, and what it wants logged.

use crate::hastat::Hastat;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// One thing for the driver to carry out, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Ask the local init machine to move `group` to `level`.
    Tell { group: String, level: String },
    /// Shoot the other node in the head (the STOMITH hook).
    Fence { node: u32 },
    /// Publish the consolidated view in this node's `hastat`.
    /// Shared, not copied: the same view is kept and published by the node.
    WriteHastat(std::sync::Arc<Hastat>),
    /// Quorum lost: stop every local group (the original's `haltwait`).
    HaltAll,
    /// Worth a log line.
    Log(Notice),
}

/// Things an operator should be able to read in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// Too few members visible; local groups are halted. `reference` is the
    /// member count at the last successful check.
    QuorumLost { me: u32, visible: Vec<u32>, reference: usize },
    /// A member's `clstat` is older than the timeout (start of an episode).
    Stale { node: u32, age: Millis },
    /// The stale episode is over (fresh again, or left membership).
    StaleEnded { node: u32 },
    /// A member's `clstat` could not be read this cycle.
    Unreadable { node: u32, reason: String, last_good_used: bool },
    /// A local group is non-idle elsewhere too: stopped here, and the cycle
    /// time grew by `backoff`.
    Conflict { group: String, nodes: Vec<u32>, backoff: Millis },
    /// A group looked unplaced, but some members' groups are unknown.
    PlanSuppressed { group: String, blind: Vec<u32> },
    /// No usable local `hactl`: no group decisions this cycle.
    NoHactl,
}
