//! The membership pass: adopt a committed configuration, acknowledge at
//! most one change per version (Raft's single-server rule), commit a change
//! once a majority of the old and of the new members acknowledged it.

use super::*;

impl Ranked {
    /// `fenced`: every fence known (see [`Ranked::fence_votes`]), for a
    /// change away from a fenced voter of two (`change_counts_fence_votes`).
    pub(super) fn membership_pass(&mut self, fenced: &Votes) {
        let config = self.durable.config.clone();
        // Adopt a newer configuration a member publishes (it was committed).
        let newer = self
            .peers
            .values()
            .filter_map(|p| p.record.as_ref())
            .filter(|r| r.config.version > config.version)
            .max_by_key(|r| r.config.version)
            .map(|r| r.config.clone());
        if let Some(c) = newer {
            self.set_durable(|d| {
                d.config = c.clone();
                d.config_ack = None;
            });
            self.log(RankedNotice::ConfigAdopted(c));
            return;
        }
        // A change of an older version can never commit here (a commit
        // needs `replaces` = the current version): an acknowledgement of
        // one only blocks this node's acknowledgements and proposals of
        // the current version. Drop it; safe, as this node never
        // acknowledges another change of that version (below).
        let only_current = self.rules.ack_current_version_only;
        let version = config.version;
        let stale = move |c: &Change| only_current && c.replaces != version;
        if self.durable.config_ack.as_ref().is_some_and(stale) {
            self.set_durable(|d| d.config_ack = None);
        }
        // Acknowledge a change others propose, if none acknowledged yet
        // (with the rule off: switch to any newer proposal seen). Only a
        // change of the current version: a member that lags a version or
        // two behind (a learner whose reads came late) still publishes its
        // acknowledgement of the change that made the version before, and
        // that change is valid in shape against the current voters too (a
        // demotion, a promotion, then the same demotion again). Acknowledged,
        // it blocked every later change on every node that took it (the
        // lock-step test `promoting_a_learner_that_holds_no_lease_...`).
        if !self.rules.one_change_per_version {
            let newest = self
                .peers
                .values()
                .filter_map(|p| p.record.as_ref())
                .filter_map(|r| r.config_ack.clone())
                .filter(|c| membership::valid(&config, c).is_ok() && c.replaces == config.version)
                .filter(|c| Some(c) != self.durable.config_ack.as_ref())
                .max();
            if let Some(c) = newest {
                self.set_durable(|d| d.config_ack = Some(c));
            }
        } else if self.durable.config_ack.is_none() {
            let proposed = self
                .peers
                .values()
                .filter_map(|p| p.record.as_ref())
                .filter_map(|r| r.config_ack.clone())
                .filter(|c| membership::may_ack(&config, None, c).is_ok() && !stale(c))
                .min();
            if let Some(c) = proposed {
                self.set_durable(|d| d.config_ack = Some(c));
            }
        }
        // Commit: a strict majority of old and new members acknowledge it
        // (this node's acknowledgement counts once persisted).
        let Some(change) = self.durable.config_ack.clone() else { return };
        let mut ackers: BTreeSet<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.record.as_ref().is_some_and(|r| r.config_ack.as_ref() == Some(&change))
            })
            .map(|(&n, _)| n)
            .collect();
        if self.persisted.as_ref().and_then(|d| d.config_ack.as_ref()) == Some(&change) {
            ackers.insert(self.me);
        }
        // Over voters: a strict majority of the old voters and of the new.
        let next = config.after(&change, self.params.max_voters);
        let voted = |c: &Config| Config {
            version: c.version,
            members: c.voters().to_vec(),
            voters: Vec::new(),
        };
        let old = voted(&config);
        let new = Change {
            replaces: change.replaces,
            members: next.voters().to_vec(),
            voters: Vec::new(),
        };
        let mut old_ackers = ackers.clone();
        if self.rules.change_counts_fence_votes {
            count_fenced_voter(&old.members, fenced, &mut old_ackers);
        }
        if membership::committed_by(&old, &old_ackers, &new, &ackers) {
            self.set_durable(|d| {
                d.config = next.clone();
                d.config_ack = None;
            });
            self.log(RankedNotice::ConfigAdopted(next));
        }
    }
}

/// Of two old voters, the one the other fenced (the fence succeeded, and
/// no newer incarnation of it is known) counts as acknowledging a change
/// the other acknowledges (`Rules::change_counts_fence_votes`).
///
/// Why only of two: the fenced voter's services are dead and it can never
/// acknowledge anything again in that incarnation. For two changes of one
/// version to commit, each of the two voters would have to acknowledge
/// one after its own fence of the other succeeded, so each would outlive
/// the other's fence; a successful fence means its target is dead. With
/// four voters or more, two pairs can each fence one of the other pair and
/// commit two changes, so there a voter change still needs a strict
/// majority of real acknowledgements (three voters need two real ones
/// anyway).
pub(super) fn count_fenced_voter(old_voters: &[u32], fenced: &Votes, ackers: &mut BTreeSet<u32>) {
    if old_voters.len() == 2 {
        fenced.expand(Some(old_voters), ackers);
    }
}
