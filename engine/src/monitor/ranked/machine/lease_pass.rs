//! The revocation and lease passes: revoke silent or departed members
//! (durably, before publishing), lift revocations of nodes that released or
//! restarted, and hold, acquire or lose this node's own lease.

use super::*;

impl Ranked {
    /// Revoke silent or departed members; lift revocations of nodes that
    /// released or restarted.
    pub(super) fn revocation_pass(&mut self) {
        let now = self.now;
        for node in self.members() {
            // A learner revokes nobody it does not read: the voters judge
            // those members (and only voters' revocations count).
            if node == self.me || !self.reads(node) {
                continue;
            }
            let started = self.started;
            let down = self.listed_down(node);
            let peer = self.peers.entry(node).or_default();
            let contact = *peer.contact.get_or_insert_with(|| Contact::new(started));
            let silent = contact.silent(now, self.params.suspect_after);
            let latest = contact.latest.unwrap_or(Seen { incarnation: 0, counter: 0 });
            let revoked = self.durable.revocations.get(&node).copied();
            match revoked {
                Some(r) if r.incarnation == latest.incarnation || latest.incarnation == 0 => {
                    let released = self.record_of(node).is_some_and(|rec| {
                        rec.lease == LeaseState::Released && rec.counter > r.counter
                    });
                    let lift = if self.rules.durable_revocation {
                        released
                    } else {
                        released || (!down && !silent && latest.counter > r.counter)
                    };
                    if lift && !down && !silent {
                        self.lift(node);
                    } else if self.rules.lift_heard_revocation && latest.incarnation != 0 {
                        self.reconsider(node, r, down || silent);
                    }
                }
                // A new incarnation: the old revocation is moot.
                Some(_) => self.forget_revocation(node),
                None if down || silent => {
                    self.set_durable(|d| {
                        d.revocations.insert(node, latest);
                    });
                    let next = self.counter + 1;
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.revoked_by_me_at = Some(now);
                        p.revoked_at_counter = Some(next);
                        p.withdrawn_from = None;
                    }
                    self.log(RankedNotice::Revoked { node, up_to: latest });
                }
                None => self.wake_at(contact.last_change + self.params.suspect_after),
            }
        }
    }

    /// Drop every trace of this node's revocation of `node`: the durable
    /// revocation and its withdrawal, and the per-peer bookkeeping of when
    /// it was made. Shared by a lift and by a new incarnation of `node`.
    fn forget_revocation(&mut self, node: u32) {
        self.set_durable(|d| {
            d.revocations.remove(&node);
            d.withdrawn.remove(&node);
        });
        if let Some(p) = self.peers.get_mut(&node) {
            p.revoked_by_me_at = None;
            p.revoked_at_counter = None;
            p.withdrawn_from = None;
        }
    }

    /// Remove the revocation of `node` (it released, or the lifting
    /// round of [`Ranked::reconsider`] completed).
    fn lift(&mut self, node: u32) {
        self.forget_revocation(node);
        // A void this node proved by the lease wait rested on its own
        // revocation among others; lifted, its acknowledgements of `node`
        // go beyond the bound, and a new lease of `node` may rest on them.
        // (A fence's proof is kept apart, in the fence votes.)
        if self.rules.lift_clears_void {
            if let Some(p) = self.peers.get_mut(&node) {
                p.void_epoch = None;
                p.void_logged = None;
            }
        }
        self.log(RankedNotice::RevocationLifted { node });
    }

    /// A revocation of `node`'s current incarnation (bound `r`) that its
    /// release has not lifted: withdraw and lift it once `node` is heard
    /// again, in two phases (the argument is the module doc's "Lifting a
    /// revocation"):
    ///
    /// 1. *Withdraw*: `node` is heard (`!quiet`: listed up, its counter
    ///    moving), beyond the bound, not `lost`, and it acknowledges a
    ///    record this node wrote after the revocation (a full round both
    ///    ways). The revocation is then no longer published (once that is
    ///    persisted), but acknowledgements of `node` stay capped at the
    ///    bound, so nothing that rests on the published revocation is
    ///    broken. A node that falls quiet again is revoked again (the same
    ///    bound, published again).
    /// 2. *Lift*: every other voter acknowledges a record of this node
    ///    written without the revocation. From then on no voter counts it
    ///    towards a quorum of revocations (a reader never goes back to an
    ///    older copy), and every judgement that did count it was made while
    ///    the cap held, so the lease argument covered it. Only then do the
    ///    acknowledgements of `node` go beyond the bound.
    pub(super) fn reconsider(&mut self, node: u32, r: Seen, quiet: bool) {
        let (me, inc, counter) = (self.me, self.durable.incarnation, self.counter);
        let withdrawn = self.durable.withdrawn.contains(&node);
        let Some(peer) = self.peers.get_mut(&node) else { return };
        // After a restart the revocation's own counter is forgotten: count
        // the round from this run's first record.
        let since = *peer.revoked_at_counter.get_or_insert(counter + 1);
        if quiet {
            if withdrawn {
                peer.withdrawn_from = None;
                self.set_durable(|d| {
                    d.withdrawn.remove(&node);
                });
                self.log(RankedNotice::Revoked { node, up_to: r });
            }
            return;
        }
        if !withdrawn {
            let back = peer.contact.and_then(|c| c.latest).is_some_and(|l| l.counter > r.counter)
                && peer.record.as_ref().is_some_and(|rec| {
                    rec.incarnation == r.incarnation
                        && rec.lease != LeaseState::Lost
                        && rec
                            .ack_of(me)
                            .is_some_and(|a| a.incarnation == inc && a.counter >= since)
                });
            if back {
                peer.withdrawn_from = None;
                self.set_durable(|d| {
                    d.withdrawn.insert(node);
                });
                self.log(RankedNotice::RevocationWithdrawn { node, up_to: r });
                if self.rules.lift_after_round {
                    return;
                }
            } else {
                return;
            }
        }
        if self.rules.lift_after_round {
            let Some(from) = self.peers.get(&node).and_then(|p| p.withdrawn_from) else {
                return;
            };
            let all_saw = self.voters().into_iter().filter(|&v| v != me && v != node).all(|v| {
                self.record_of(v)
                    .and_then(|rec| rec.ack_of(me))
                    .is_some_and(|a| a.incarnation == inc && a.counter >= from)
            });
            if !all_saw {
                return;
            }
        }
        self.lift(node);
    }

    /// My acknowledgement of every other node, capped by my revocations
    /// (effective at once, before they are durable).
    pub(super) fn acks(&self) -> BTreeMap<u32, Seen> {
        let mut acks = BTreeMap::new();
        for (&n, p) in &self.peers {
            let Some(latest) = p.contact.and_then(|c| c.latest) else { continue };
            let ack = match self.durable.revocations.get(&n) {
                Some(r) if r.incarnation == latest.incarnation => {
                    Seen { incarnation: latest.incarnation, counter: latest.counter.min(r.counter) }
                }
                _ => latest,
            };
            acks.insert(n, ack);
        }
        acks
    }

    pub(super) fn lease_pass(&mut self, votes: &Votes) {
        let now = self.now;
        let inc = self.durable.incarnation;
        let members = self.voters();
        let acks: BTreeMap<u32, u64> = members
            .iter()
            .filter(|&&m| m != self.me)
            .filter_map(|&m| {
                let r = self.record_of(m)?;
                let a = r.ack_of(self.me).filter(|a| a.incarnation == inc)?;
                Some((m, a.counter))
            })
            .collect();
        let tie = self.tie_ready(votes);
        let counter = lease_counter(
            &members,
            self.me,
            &acks,
            votes,
            self.rules.tie_vote_completes_half,
            tie,
            self.epoch_floor..=self.counter,
        );
        // The emission time of `c`, or of an earlier counter if `c`'s was
        // forgotten (earlier is on the safe side).
        let deadline = counter
            .and_then(|c| self.sent.range(..=c).next_back())
            .map(|(_, &t)| t + self.params.lease);
        let kill_at = deadline.map(|d| d.saturating_sub(self.params.kill_bound));
        let holds = kill_at.is_some_and(|k| now < k);
        match self.phase {
            Phase::Holding if !holds => {
                let epoch = self.epoch;
                self.log(RankedNotice::LeaseLost { epoch });
                self.lose_lease();
            }
            Phase::Holding => self.deadline = deadline,
            // Never in an incarnation a peer fenced (`fenced_out`): it only
            // waits for its kill to rejoin as a new one.
            Phase::Released
                if holds
                    && self.persisted.is_some()
                    && !self.leaving
                    && self.fenced_by.is_none() =>
            {
                self.phase = Phase::Holding;
                self.held_since = now;
                self.epoch += 1;
                self.deadline = deadline;
                let (epoch, deadline) = (self.epoch, deadline.unwrap_or(now));
                self.log(RankedNotice::LeaseAcquired { epoch, deadline });
            }
            // An unconfirmed kill is retried with every heartbeat (see
            // `heartbeat_pass`, which runs after this pass).
            Phase::Released | Phase::Killing => {}
        }
        if let (Phase::Holding, Some(k)) = (self.phase, self.deadline) {
            self.wake_at(k.saturating_sub(self.params.kill_bound));
        }
        // Forget emission times no lease can rest on any more: below every
        // member's acknowledgement (a fence vote may vanish, and the lease
        // fall back on an older acknowledgement), and beyond 4 leases' worth.
        let oldest_ack = acks.values().copied().min().unwrap_or(self.counter);
        let keep = oldest_ack.max(
            self.counter.saturating_sub(4 * self.params.lease.0 / self.params.heartbeat.0.max(1)),
        );
        self.sent = self.sent.split_off(&keep);
    }

    pub(super) fn lose_lease(&mut self) {
        // The groups it held go to the next-ranked node: for 2 H this node
        // plans them only after every other candidate's slot
        // (`lease_loss_yields`).
        // A lapse across a voter change is the change's own short cost
        // (fence votes pause for it), not trouble of this node's.
        if self.rules.lease_loss_yields && !self.config_unsettled() {
            let until = self.now + self.params.lease + self.params.lease;
            // Its claims name them (the watchdog, which fires δ earlier,
            // may have stopped them already).
            let busy = self
                .own
                .groups
                .iter()
                .filter(|(_, st)| !crate::hastat::is_idle(&st.level, &st.state));
            let held: Vec<String> =
                self.claims.keys().cloned().chain(busy.map(|(g, _)| g.clone())).collect();
            self.yields_until.retain(|_, &mut t| t > self.now);
            for g in held {
                self.yields_until.insert(g, until);
            }
        }
        self.epoch_floor = self.counter + 1;
        self.deadline = None;
        self.told.clear();
        let busy = self.own.groups.values().any(|st| !crate::hastat::is_idle(&st.level, &st.state));
        if busy {
            self.phase = Phase::Killing;
            self.kill_failed = false;
            self.out.push(Command::KillAllNow);
            if !self.rules.lost_needs_fence {
                // The rule switched off: claim a release without proof.
                self.phase = Phase::Released;
            }
        } else {
            self.phase = Phase::Released;
        }
        if self.phase == Phase::Released {
            self.claims.clear();
        }
        self.hurry();
    }
}
