//! The voter pass (dead-voter replacement): the lowest voter holding its
//! lease demotes a surely dead voter, then promotes a learner it hears into
//! the free seat, one voter change at a time (see the module doc, "Dead
//! voters").

use super::*;
use membership::Autopilot;

impl Ranked {
    /// Propose at most one voter change (see [`RankedParams::replace_dead_voters`]).
    pub(super) fn autopilot_pass(&mut self, judged: &BTreeMap<u32, Judgement>, fenced: &Votes) {
        if self.config_seen != self.durable.config.version {
            self.config_seen = self.durable.config.version;
            let voters = self.durable.config.voters().to_vec();
            self.voter_since.retain(|v, _| voters.contains(v));
            for v in voters {
                self.voter_since.entry(v).or_insert(self.now);
            }
        }
        if !self.params.replace_dead_voters
            || self.leaving
            || !self.is_voter()
            || self.phase != Phase::Holding
            // A pending change of this version (ours or one acknowledged
            // in the membership pass): one change at a time.
            || self.durable.config_ack.is_some()
        {
            return;
        }
        // Only a membership source's verdict says "dead" (under
        // heartbeat-file membership nothing is demoted).
        let Some(live) = self.live.clone() else { return };
        let config = self.durable.config.clone();
        let voters = config.voters().to_vec();
        // The proposer: the lowest voter that holds its lease, so that two
        // voters rarely propose different changes of one version (each
        // node acknowledges one, so a split could stall changes until a
        // dead voter returns; safety does not depend on it).
        // Heard, not merely listed up: a voter whose monitor died or froze
        // leaves a last record that says `holding`, and until it was void
        // (a fence, needed only if it held groups) nobody proposed, so a
        // second silent voter was never replaced (N = 10 seed 34: voters 1
        // and 7 silent, then voter 3 froze and every group was down 30 s).
        let lower_holds = voters.iter().copied().filter(|&v| v < self.me).any(|v| {
            (if self.rules.proposer_must_be_heard { self.hears(v) } else { !self.listed_down(v) })
                && judged.get(&v).is_none_or(|j| !j.void)
                && self.record_of(v).is_some_and(|r| r.lease == LeaseState::Holding)
        });
        if lower_holds {
            return;
        }
        let Some((to, why)) = self.voter_change(&voters, &config, &live, judged) else { return };
        // Only a change that can commit: this node hears a strict majority
        // of the old voters and of the new ones. A change that cannot
        // commit (a promotion while the other of two voters is dead) stays
        // pending for good, since an acknowledgement is never withdrawn,
        // and a pending change takes the tie-breaker's exact half away
        // (`config_unsettled`): the last node would stop everything.
        // The old voters may count a fenced one (as the commit does, with
        // `change_counts_fence_votes`): the last voter of two, the other
        // fenced, can then replace it by a learner.
        let heard = |set: &[u32], fenced: Option<&Votes>| {
            let mut yes: BTreeSet<u32> = set.iter().copied().filter(|&v| self.hears(v)).collect();
            if let Some(f) = fenced {
                super::config_pass::count_fenced_voter(set, f, &mut yes);
            }
            crate::monitor::ranked::quorum::is_strict_majority(set, &yes)
        };
        let old_votes = self.rules.change_counts_fence_votes.then_some(fenced);
        if self.rules.propose_only_committable && (!heard(&voters, old_votes) || !heard(&to, None))
        {
            return;
        }
        let Ok(change) = membership::one_voter_at_a_time(&config, &to) else { return };
        self.set_durable(|d| d.config_ack = Some(change.clone()));
        self.log(RankedNotice::ChangeProposed { change, why });
        self.hurry();
    }

    /// The voter set to propose, and why: demote the lowest surely dead
    /// voter (never below `min_voters`), else promote the lowest learner
    /// heard while a seat is free.
    fn voter_change(
        &mut self,
        voters: &[u32],
        config: &Config,
        live: &BTreeSet<u32>,
        judged: &BTreeMap<u32, Judgement>,
    ) -> Option<(Vec<u32>, Autopilot)> {
        let now = self.now;
        let wait = self.params.takeover_wait();
        let grace = self.params.dead_voter_after;
        if voters.len() > self.params.min_voters.max(2) {
            for &x in voters {
                if x == self.me || live.contains(&x) {
                    continue;
                }
                let Some(peer) = self.peers.get(&x) else { continue };
                let Some(since) = peer.down_since else { continue };
                let void = judged.get(&x).is_some_and(|j| j.void);
                let lease_over = peer.revoked_since.is_some_and(|(_, at)| now >= at + wait);
                if !(void || lease_over) {
                    continue;
                }
                if now < since + grace {
                    self.wake_at(since + grace);
                    continue;
                }
                let to = voters.iter().copied().filter(|&v| v != x).collect();
                return Some((to, Autopilot::Demote(x)));
            }
            // A voter listed up that takes part in no quorum of this lease
            // holder: its acknowledgement of this node stood still for
            // `grace` while this node held its lease (a node whose cycles
            // lag beyond the read deadline, that cannot read, whose writes
            // fail, or whose monitor froze). It votes "no" as a dead voter
            // does, and two such voters and one crash leave no lease
            // anywhere (seed 14 at N = 10: voters 2 and 4 lagged 3.6–5.2 s
            // per cycle, then voter 5 crashed, and every group was down
            // 176 s while seven nodes were healthy). Safety does not rest
            // on why a change is proposed (see the module doc).
            if self.rules.demote_unresponsive {
                for &x in voters {
                    if x == self.me || !live.contains(&x) {
                        continue;
                    }
                    let moved = self.peers.get(&x).and_then(|p| p.ack_moved_at);
                    // Every current voter is in `voter_since` (filled
                    // above, in this very pass, for this configuration).
                    let voter_since = self.voter_since.get(&x).copied().unwrap_or(self.now);
                    let since = moved.unwrap_or(self.started).max(self.held_since).max(voter_since);
                    if now < since + grace {
                        self.wake_at(since + grace);
                        continue;
                    }
                    let to = voters.iter().copied().filter(|&v| v != x).collect();
                    return Some((to, Autopilot::DemoteUnresponsive(x)));
                }
            }
        }
        let seats = self.params.max_voters.max(1).min(config.members.len());
        if voters.len() < seats {
            let learner = config.members.iter().copied().find(|&l| {
                !voters.contains(&l)
                    && live.contains(&l)
                    && self.heard_now(l)
                    && self.hears(l)
                    && self.record_of(l).is_some_and(|r| {
                        if self.rules.promote_only_holders {
                            r.lease == LeaseState::Holding
                        } else {
                            r.lease != LeaseState::Lost
                        }
                    })
            });
            if let Some(l) = learner {
                let mut to = voters.to_vec();
                to.push(l);
                return Some((to, Autopilot::Promote(l)));
            }
        }
        None
    }
}
