//! Judging the other members: which fences are known and which vote, and
//! whether each member's claims are void (fenced, released, or the lease
//! wait `H·(1+ρ)+δ` passed after a quorum revoked it).

use super::*;

impl Ranked {
    /// Fences this node knows of (its own and those others publish), each
    /// until a newer incarnation of the fenced node is seen, and the subset
    /// that votes: a fence proves at once that the target's services are
    /// dead (its claims are void), but it votes only `H·(1+ρ)+δ` after this
    /// node first saw it, when no lease can still rest on the target's last
    /// real acknowledgements or grants (which may have gone to the other
    /// side before it died).
    pub(super) fn fence_votes(&mut self) -> (Votes, Votes) {
        let all = self.known_fences(|r| &r.fenced, &self.my_votes);
        let tie = self.known_fences(|r| &r.votes, &self.my_tie_votes);
        let now = self.now;
        let wait = self.params.takeover_wait();
        for (&n, &(inc, _)) in &all.0 {
            self.fence_seen.entry((n, inc)).or_insert(now);
        }
        self.fence_seen.retain(|(n, inc), _| all.incarnation(*n) == Some(*inc));
        let mut votes = tie;
        votes.0.retain(|&n, v| self.fence_seen.get(&(n, v.0)).is_some_and(|&at| now >= at + wait));
        for (&(_, _), &at) in &self.fence_seen {
            if now < at + wait {
                self.wake = earliest(self.wake, Some(at + wait));
            }
        }
        (all, votes)
    }

    pub(super) fn known_fences(
        &self,
        published: impl Fn(&Record) -> &BTreeMap<u32, u64>,
        mine: &BTreeMap<u32, u64>,
    ) -> Votes {
        let mut votes = Votes::default();
        for (&n, &inc) in mine {
            votes.add(n, inc, self.me);
        }
        for (&fencer, p) in &self.peers {
            if let Some(r) = &p.record {
                for (&n, &inc) in published(r) {
                    votes.add(n, inc, fencer);
                }
            }
        }
        if self.rules.vote_until_new_incarnation {
            votes.0.retain(|&n, v| self.latest(n).is_none_or(|l| l.incarnation <= v.0));
        }
        // I am a newer incarnation than any fence of me that others still
        // publish (they have not read me since): it neither votes nor
        // fences me any more, here.
        if self.rules.own_restart_ends_vote {
            let inc = self.durable.incarnation;
            votes.0.retain(|&n, v| n != self.me || v.0 >= inc);
        }
        votes
    }

    /// The voter set for [`Votes::expand`]'s half rule, or `None` when
    /// the interleaving tests switch the rule off.
    pub(super) fn vote_rule<'a>(&self, voters: &'a [u32]) -> Option<&'a [u32]> {
        self.rules.tie_vote_completes_half.then_some(voters)
    }

    /// May the tie-breaker decide an exact half now?
    pub(super) fn tie_ready(&self, votes: &Votes) -> bool {
        let Some(&t) = self.durable.config.voters().iter().min() else {
            return false;
        };
        if self.rules.tie_needs_settled_config && self.config_unsettled() {
            return false;
        }
        if !self.rules.wait_for_all || votes.contains(t) {
            return true;
        }
        if t == self.me {
            return self.seen_all;
        }
        self.record_of(t).is_some_and(|r| r.seen_all)
    }

    /// Is a voter change under way: this node acknowledged one that has not
    /// committed here, or a voter publishes another configuration version
    /// or a change it acknowledged? Then an exact half is no quorum, even
    /// with the tie-breaker: across a change of the voter set, an exact
    /// half of one set and a majority of the other can be disjoint (seed
    /// 34 at N = 3: node 2, on voters {2, 3}, proposed promoting node 1
    /// and claimed a group with its own grant as the tie-breaker's half,
    /// while node 3 had committed {1, 2, 3} and granted it to node 1).
    /// Strict majorities of two voter sets that differ by one node always
    /// intersect, so they need no such wait.
    pub(super) fn config_unsettled(&self) -> bool {
        let version = self.durable.config.version;
        self.durable.config_ack.is_some()
            || self.durable.config.voters().iter().any(|&v| {
                v != self.me
                    && !self.surely_out(v)
                    && self
                        .record_of(v)
                        .is_some_and(|r| r.config.version != version || r.config_ack.is_some())
            })
    }

    /// Is `n`'s current incarnation out of every quorum: proven void (fenced
    /// or its lease wait passed), or revoked by a quorum `H·(1+ρ)+δ` ago?
    /// It holds no lease under any configuration, and its record, stale
    /// since it died (perhaps in the middle of a change), says nothing
    /// about what anybody counts now.
    pub(super) fn surely_out(&self, n: u32) -> bool {
        let Some(peer) = self.peers.get(&n) else { return false };
        let inc = self.latest(n).map_or(0, |l| l.incarnation);
        let void = peer.void_epoch.is_some_and(|(i, _)| i == inc);
        let wait = self.params.takeover_wait();
        let over = peer.revoked_since.is_some_and(|(i, at)| i == inc && self.now >= at + wait);
        void || over
    }

    /// Decide, for every other member, whether its claims are void.
    pub(super) fn judge(&mut self, votes: &Votes, fences: &Votes) -> BTreeMap<u32, Judgement> {
        let now = self.now;
        let members = self.members();
        let voting = self.voters();
        let tie = self.tie_ready(votes);
        let wait = self.params.takeover_wait();
        // As published: a withdrawn revocation counts for nobody. Nor does
        // one this node has lifted since, while the lift waits to be
        // persisted and published: its acknowledgements already go beyond
        // the bound (see `lift`).
        let current = &self.durable.revocations;
        let lifted_gone = self.rules.lift_clears_void;
        let mine = self
            .published_durable()
            .map(|d| {
                let mut r = d.revocations.clone();
                r.retain(|n, s| {
                    !d.withdrawn.contains(n)
                        && (!lifted_gone
                            || current.get(n).is_some_and(|c| c.incarnation == s.incarnation))
                });
                r
            })
            .unwrap_or_default();
        // The voters' records, looked up once per pass rather than once per
        // (member, voter): at 100 members that was most of the pass. Only
        // the records are taken; nothing below changes them.
        let voter_records: Vec<(u32, Option<Arc<Record>>)> =
            voting.iter().map(|&y| (y, self.record_of(y).cloned())).collect();
        // Built in member order and collected at once (members ascend):
        // one insert per member into a growing map cost a tenth of the pass.
        let mut out: Vec<(u32, Judgement)> = Vec::with_capacity(members.len());
        for &x in &members {
            if x == self.me {
                continue;
            }
            let rec = self.record_of(x).cloned();
            let latest = self.latest(x);
            let inc = latest.map_or(0, |l| l.incarnation);
            // Who revoked x's current incarnation, and up to which counter.
            let mut yes: BTreeSet<u32> = BTreeSet::new();
            let mut bound = 0u64;
            for (y, ry) in &voter_records {
                let y = *y;
                if y == x {
                    continue;
                }
                let r = if y == self.me {
                    mine.get(&x).copied()
                } else {
                    ry.as_ref().and_then(|ry| ry.revocations.get(&x).copied())
                };
                // A bound below x's epoch floor concerns an epoch x has
                // released since: moot (its revoker may have lifted it).
                let floor = rec.as_ref().filter(|r| r.incarnation == inc).map_or(0, |r| r.floor);
                if let Some(r) = r.filter(|r| r.incarnation == inc && r.counter >= floor) {
                    yes.insert(y);
                    bound = bound.max(r.counter);
                }
            }
            // Fence votes join with their fencers; a vote carries no bound,
            // so the wait then runs from the first sight of the quorum.
            let mut voters = yes.clone();
            voters.remove(&x);
            let mut with_votes = voters.clone();
            let used_votes = votes.expand(self.vote_rule(&voting), &mut with_votes);
            with_votes.remove(&x);
            let revoked_quorum = is_quorum(&voting, &with_votes, tie);
            let peer = self.peers.entry(x).or_default();
            if revoked_quorum {
                if peer.revoked_since.is_none_or(|(i, _)| i != inc) {
                    peer.revoked_since = Some((inc, now));
                }
            } else {
                peer.revoked_since = None;
            }
            let fenced = fences.incarnation(x).is_some_and(|v| v >= inc);
            let released = self.rules.publish_release
                && rec.as_ref().is_some_and(|r| r.lease == LeaseState::Released);
            let guarded = rec.as_ref().is_some_and(|r| {
                let unkillable = r.lease == LeaseState::Lost && self.rules.lost_needs_fence;
                !unkillable && (r.watchdog || self.params.unsafe_takeover_unguarded)
            }) || rec.is_none();
            let wait_allowed =
                guarded && !(self.params.fence_command && self.rules.pause_needs_fence);
            let mut waited = false;
            peer.lease_over_at = None;
            if let Some((_, since)) = peer.revoked_since {
                let mut base = since;
                if let Some(c) = peer
                    .contact
                    .filter(|c| !used_votes && c.latest.is_some_and(|l| l.counter >= bound))
                {
                    base = base.min(c.first_seen);
                }
                let at = base + wait;
                peer.lease_over_at = Some(at);
                waited = wait_allowed && now >= at;
                if wait_allowed && !waited {
                    self.wake = earliest(self.wake, Some(at));
                }
            }
            // Once proven, void stays so for that (incarnation, epoch): the
            // proof (a fence, a lease that ran out) cannot be undone, even if
            // the revocations that showed it vanish later (their revokers
            // saw a new incarnation and dropped them).
            let epoch = (inc, rec.as_ref().filter(|r| r.incarnation == inc).map_or(0, |r| r.floor));
            let sticky = self.peers.get(&x).and_then(|p| p.void_epoch) == Some(epoch);
            let void = fenced || released || waited || sticky;
            if fenced || waited {
                if let Some(p) = self.peers.get_mut(&x) {
                    p.void_epoch = Some(epoch);
                }
            }
            let why = if fenced {
                "fenced"
            } else if released {
                "released"
            } else {
                "lease wait passed"
            };
            let peer = self.peers.entry(x).or_default();
            if void && rec.is_some() && peer.void_logged != Some(inc) && !released {
                peer.void_logged = Some(inc);
                self.out.push(Command::Log(RankedNotice::Void { node: x, incarnation: inc, why }));
            }
            out.push((x, Judgement { void, revoked_quorum }));
        }
        out.into_iter().collect()
    }
}
