//! Claims: a node starts a group only under a claim that a quorum has
//! granted, and each node grants at most one live claim per group.
//!
//! This is the idea of Disk Paxos (Gafni & Lamport 2003) over per-node
//! records: every node owns one block (its record) that only it writes, and
//! a decision needs a quorum of blocks. A requester publishes `claim G`;
//! every node that grants no live claim for G grants it to the best-ranked
//! requester it sees, persists the grant *before* publishing it (a restart
//! cannot grant twice), and publishes `grant G node incarnation`. The
//! requester holds G while a quorum grants it G. Two holders would need two
//! quorums of grants; they intersect in a node that granted twice, which
//! never happens. So a node that reads another 2H late and wrongly believes
//! a group unplaced still cannot start it.
//!
//! A grant names the holder's lease epoch, and counts only for that epoch.
//! It is freed only when its holder is **void** (fenced, released, replaced
//! by a new incarnation or epoch, or past the takeover wait) or when a
//! record of the holder written *after* the grant no longer asks for the
//! claim (it stopped the group).

use super::quorum::is_quorum;
use super::record::Epoch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A grant this node gives, with the holder's counter when it was given
/// (a holder record must be newer to free it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub to: Epoch,
    pub at_counter: u64,
}

/// Does the claim hold, given the members that grant it to this node
/// (itself and fence votes included by the caller)?
pub fn held(members: &[u32], grantors: &BTreeSet<u32>, tie_ready: bool) -> bool {
    is_quorum(members, grantors, tie_ready)
}

/// What the holder of a grant looks like now, to the grantor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Fenced, released, newer incarnation or lease epoch, or past the
    /// takeover wait.
    Void,
    /// A record of the same incarnation and epoch with `counter`, asking
    /// for the claim under the granted request or not.
    Seen { counter: u64, asks: bool },
    /// Unknown (unreadable): keep the grant.
    Unknown,
}

/// May `grant` be freed, given what its holder looks like?
pub fn may_free(grant: &Grant, holder: Holder) -> bool {
    match holder {
        Holder::Void => true,
        Holder::Seen { counter, asks } => !asks && counter > grant.at_counter,
        Holder::Unknown => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frees_only_on_void_or_a_newer_record_without_the_claim() {
        let g = Grant { to: Epoch { node: 2, incarnation: 1, floor: 1, req: 9 }, at_counter: 10 };
        assert!(may_free(&g, Holder::Void));
        assert!(!may_free(&g, Holder::Unknown), "unknown is not absent");
        assert!(!may_free(&g, Holder::Seen { counter: 10, asks: false }), "an old copy");
        assert!(!may_free(&g, Holder::Seen { counter: 11, asks: true }));
        assert!(may_free(&g, Holder::Seen { counter: 11, asks: false }));
        let m = [1, 2, 3];
        assert!(held(&m, &[1, 3].into(), false));
        assert!(!held(&m, &[3].into(), true));
    }
}
