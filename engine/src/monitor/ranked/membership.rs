//! Changes of the known membership: one node at a time, acknowledged by the
//! old and the new members, durable.
//!
//! The known membership is replicated configuration, not a per-node memory:
//! a `(version, members)` pair that survives restarts (no ratchet, no reset).
//! A change names the version it replaces and adds or removes exactly one
//! node (Raft's single-server rule, Ongaro 2014 §4.1), so the majorities of
//! the old and the new configuration always overlap. Each node acknowledges
//! at most one change per version, persisted before it is published (a
//! restart cannot make it acknowledge a second one). A change is committed
//! when a strict majority of the old members *and* of the new members
//! acknowledge it; a node that sees a committed change, or a member that
//! publishes a newer version, adopts it. Two different changes of one
//! version can therefore never both commit.

use super::quorum::is_strict_majority;
use super::record::{Change, Config};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use thiserror::Error;

/// Why this node proposes a voter change by itself (see the module doc of
/// `ranked`, "Dead voters").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Autopilot {
    /// Demote voter `node` to learner: its claims are void (or its lease
    /// surely ran out) and the membership source has listed it down for
    /// `dead_voter_after`.
    Demote(u32),
    /// Demote voter `node` to learner although the membership source lists
    /// it up: its acknowledgement of the proposer's lease has not moved for
    /// `dead_voter_after` while the proposer held its lease (a node too
    /// slow, deaf or frozen to take part in any quorum).
    DemoteUnresponsive(u32),
    /// Promote learner `node` to a free voter seat: the membership source
    /// lists it up and its counter moves.
    Promote(u32),
}

/// Why a proposed change is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChangeError {
    #[error("a change must add or remove exactly one node (from {from:?} to {to:?})")]
    NotOneNode { from: Vec<u32>, to: Vec<u32> },
    #[error("a voter change must keep the members and add or remove exactly one voter (from {from:?} to {to:?})")]
    NotOneVoter { from: Vec<u32>, to: Vec<u32> },
    #[error("already acknowledged another change of version {version}: {members:?}")]
    AlreadyAcked { version: u64, members: Vec<u32> },
}

/// Normalise a member list: ascending, no duplicates.
pub fn normalise(members: &[u32]) -> Vec<u32> {
    let set: BTreeSet<u32> = members.iter().copied().collect();
    set.into_iter().collect()
}

/// Check that `to` differs from `config` by exactly one node.
pub fn one_at_a_time(config: &Config, to: &[u32]) -> Result<Change, ChangeError> {
    let to = normalise(to);
    let old: BTreeSet<u32> = config.members.iter().copied().collect();
    let new: BTreeSet<u32> = to.iter().copied().collect();
    if old.symmetric_difference(&new).count() != 1 {
        return Err(ChangeError::NotOneNode { from: config.members.clone(), to });
    }
    Ok(Change { replaces: config.version, members: to, voters: Vec::new() })
}

/// A voter change of `config`: the members stay, and `voters` (members,
/// at least one) differ from the current voters by exactly one node (a
/// demotion or a promotion; Raft's single-server rule applied to voters).
pub fn one_voter_at_a_time(config: &Config, voters: &[u32]) -> Result<Change, ChangeError> {
    let to = normalise(voters);
    let old: BTreeSet<u32> = config.voters().iter().copied().collect();
    let new: BTreeSet<u32> = to.iter().copied().collect();
    let members_only = to.iter().all(|v| config.members.contains(v));
    if to.is_empty() || !members_only || old.symmetric_difference(&new).count() != 1 {
        return Err(ChangeError::NotOneVoter { from: config.voters().to_vec(), to });
    }
    Ok(Change { replaces: config.version, members: config.members.clone(), voters: to })
}

/// Is `change` a valid change of `config` (one member, or one voter)?
pub fn valid(config: &Config, change: &Change) -> Result<(), ChangeError> {
    if change.voters.is_empty() {
        one_at_a_time(config, &change.members).map(|_| ())
    } else if normalise(&change.members) != config.members {
        Err(ChangeError::NotOneVoter { from: config.voters().to_vec(), to: change.voters.clone() })
    } else {
        one_voter_at_a_time(config, &change.voters).map(|_| ())
    }
}

/// Should this node acknowledge `change`, given the change it already
/// acknowledged (`acked`) for `config`? At most one per version.
pub fn may_ack(
    config: &Config,
    acked: Option<&Change>,
    change: &Change,
) -> Result<(), ChangeError> {
    valid(config, change)?;
    match acked {
        Some(a) if a.replaces == config.version && a != change => {
            Err(ChangeError::AlreadyAcked { version: a.replaces, members: a.members.clone() })
        }
        _ => Ok(()),
    }
}

/// Is `change` of `config` committed, given the nodes that acknowledge it?
pub fn committed(config: &Config, change: &Change, ackers: &BTreeSet<u32>) -> bool {
    committed_by(config, ackers, change, ackers)
}

/// [`committed`] with the old members' side counted apart (`old_ackers`:
/// the acknowledgements, completed by fence votes where `ranked` allows
/// it) from the new members' (`new_ackers`: real acknowledgements only).
/// Raft's single-server rule: a strict majority of each.
pub fn committed_by(
    config: &Config,
    old_ackers: &BTreeSet<u32>,
    change: &Change,
    new_ackers: &BTreeSet<u32>,
) -> bool {
    change.replaces == config.version
        && is_strict_majority(&config.members, old_ackers)
        && is_strict_majority(&change.members, new_ackers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: u64, m: &[u32]) -> Config {
        Config { version: v, members: m.to_vec(), voters: Vec::new() }
    }

    #[test]
    fn one_node_at_a_time() {
        let c = cfg(3, &[1, 2, 3]);
        assert!(one_at_a_time(&c, &[1, 2, 3, 4]).is_ok());
        assert!(one_at_a_time(&c, &[3, 1]).is_ok());
        assert!(matches!(one_at_a_time(&c, &[1, 2, 4, 5]), Err(ChangeError::NotOneNode { .. })));
        assert!(matches!(one_at_a_time(&c, &[1, 2, 4]), Err(ChangeError::NotOneNode { .. })));
    }

    #[test]
    fn at_most_one_ack_per_version_and_commit_needs_both_majorities() {
        let c = cfg(3, &[1, 2, 3]);
        let add4 = one_at_a_time(&c, &[1, 2, 3, 4]).expect("valid");
        let drop3 = one_at_a_time(&c, &[1, 2]).expect("valid");
        assert!(may_ack(&c, None, &add4).is_ok());
        assert!(may_ack(&c, Some(&add4), &add4).is_ok(), "idempotent");
        assert!(matches!(may_ack(&c, Some(&add4), &drop3), Err(ChangeError::AlreadyAcked { .. })));
        let s = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert!(!committed(&c, &add4, &s(&[1, 2])), "2 of 4 new members is no majority");
        assert!(committed(&c, &add4, &s(&[1, 2, 4])));
        assert!(committed(&c, &drop3, &s(&[1, 2])));
        // Two changes of one version cannot both commit: their ack sets
        // would need a common acker, who acks only one.
        assert!(!committed(&cfg(4, &[1, 2, 3, 4]), &add4, &s(&[1, 2, 3, 4])), "stale version");
    }
}
