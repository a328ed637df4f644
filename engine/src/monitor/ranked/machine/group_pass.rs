//! The group pass: placement by rank (a node plans a group only when its
//! rank slot came), keeping a running group where it runs (the better-ranked
//! running instance keeps a group), eligibility back-off, and the tells.

use super::*;

impl Ranked {
    pub(super) fn preferred(&self, group: &str) -> Vec<u32> {
        self.hactl
            .as_ref()
            .and_then(|h| h.get(group))
            .map(|w| w.preferred.clone())
            .unwrap_or_default()
    }

    pub(super) fn tell(&mut self, group: &str, level: &str, starts: bool) {
        let current = self.own.groups.get(group).map(|s| s.level.as_str());
        if current == Some(level) || self.told.get(group).map(String::as_str) == Some(level) {
            return;
        }
        let not_after = (starts && self.rules.spawn_deadline)
            .then(|| self.deadline.map(|d| d.saturating_sub(self.params.kill_bound)))
            .flatten();
        self.told.insert(group.to_string(), level.to_string());
        self.out.push(Command::Tell {
            group: group.to_string(),
            level: level.to_string(),
            not_after,
        });
    }

    pub(super) fn group_pass(&mut self, votes: &Votes, judged: &BTreeMap<u32, Judgement>) {
        let now = self.now;
        if self.phase != Phase::Holding || self.leaving {
            // Released, killing or leaving: nothing runs here; settle
            // stragglers.
            let busy: Vec<String> = self
                .own
                .groups
                .iter()
                .filter(|(_, st)| !crate::hastat::is_idle(&st.level, &st.state))
                .map(|(g, _)| g.clone())
                .collect();
            if self.phase == Phase::Released || self.leaving {
                for g in &busy {
                    self.tell(g, "stop", false);
                }
            }
            if self.leaving && self.phase == Phase::Holding && busy.is_empty() {
                // Every group is idle: give the lease up and publish it.
                let epoch = self.epoch;
                self.epoch_floor = self.counter + 1;
                self.deadline = None;
                self.phase = Phase::Released;
                self.told.clear();
                self.claims.clear();
                self.log(RankedNotice::Left { epoch });
                self.hurry();
            }
            return;
        }
        let Some(hactl) = self.hactl.clone() else { return };
        let mixed = self.peers.values().any(|p| p.other_policy.is_some());
        let members = self.members();
        let heard: Vec<u32> = members
            .iter()
            .copied()
            .filter(|&n| {
                // A member a learner does not read is heard while the
                // voters neither revoked it nor proved it void.
                let unread_live =
                    !self.reads(n) && judged.get(&n).is_some_and(|j| !j.void && !j.revoked_quorum);
                n == self.me
                    || unread_live
                    || (self.reads(n)
                        && !self.durable.revocations.contains_key(&n)
                        && judged.get(&n).is_some_and(|j| !j.void))
            })
            .collect();
        // A member never read and not void: its groups are unknown. (A
        // learner's unread members are known through the voters' grants.)
        let blind = members.iter().any(|&n| {
            n != self.me
                && self.reads(n)
                && self.record_of(n).is_none()
                && judged.get(&n).is_some_and(|j| !j.void)
        });
        // A learner's view of the members it does not read: group → nodes a
        // voter grants it to (a claim asked or held there).
        let mut granted_unread: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        if !self.reads_all() {
            for &v in self.durable.config.voters() {
                let Some(r) = self.record_of(v) else { continue };
                for (g, to) in &r.grants {
                    let live = judged.get(&to.node).is_some_and(|j| !j.void);
                    if to.node != self.me && !self.reads(to.node) && live {
                        let nodes = granted_unread.entry(g.clone()).or_default();
                        if !nodes.contains(&to.node) {
                            nodes.push(to.node);
                        }
                    }
                }
            }
        }
        // A member that publishes `lost` and is not void (not fenced yet)
        // may run any group, named in its record or not (orphans in D
        // state): plan nothing until it is fenced or its kill lands.
        let lost_member = self.rules.kill_leftovers
            && members.iter().any(|&n| {
                n != self.me
                    && self.record_of(n).is_some_and(|r| r.lease == LeaseState::Lost)
                    && judged.get(&n).is_some_and(|j| !j.void)
            });
        let mut names: BTreeSet<String> = hactl.groups.keys().cloned().collect();
        names.extend(self.own.groups.keys().cloned());
        // Standby nodes neither keep nor take groups (see `standby`).
        let standby = hactl.standby.contains(&self.me);
        let heard: Vec<u32> = heard.into_iter().filter(|n| !hactl.standby.contains(n)).collect();
        for g in names {
            let want = hactl.get(&g).map(|w| w.level.clone()).filter(|l| l != "stop");
            let own = self.own.groups.get(&g).cloned();
            let own_busy =
                own.as_ref().is_some_and(|st| !crate::hastat::is_idle(&st.level, &st.state));
            let Some(want) = want else {
                self.claims.remove(&g);
                self.unplaced_since.remove(&g);
                if own_busy {
                    self.tell(&g, "stop", false);
                }
                continue;
            };
            // Other nodes' instances and attempts whose claims are not void.
            let mut running: Vec<u32> = Vec::new();
            let mut attempts: Vec<u32> = Vec::new();
            for (&n, p) in &self.peers {
                let Some(r) = &p.record else { continue };
                if judged.get(&n).is_none_or(|j| j.void) {
                    continue;
                }
                if r.runs(&g) {
                    running.push(n);
                } else if r.claims.contains_key(&g)
                    || r.groups.get(&g).is_some_and(|st| {
                        matches!(st.level.as_str(), "plan" | "test")
                            && !crate::hastat::is_idle(&st.level, &st.state)
                    })
                {
                    attempts.push(n);
                }
            }
            attempts.extend(granted_unread.get(&g).into_iter().flatten().copied());
            let preferred = self.preferred(&g);
            match own {
                Some(_) if self.told.get(&g).map(String::as_str) == Some("stop") => {
                    // A stop is on its way (conflict, failback): ask for
                    // nothing until it lands.
                    self.claims.remove(&g);
                }
                Some(st) if record::counts_as_running(&st) && st.level != "stop" => {
                    self.unplaced_since.remove(&g);
                    self.ask(&g);
                    let mut contenders = running.clone();
                    contenders.push(self.me);
                    let keeper = rank(&g, &preferred, &contenders)[0];
                    if keeper != self.me {
                        self.claims.remove(&g);
                        self.tell(&g, "stop", false);
                        self.log(RankedNotice::Conflict { group: g.clone(), keeper });
                    } else if standby {
                        if self.told.get(&g).map(String::as_str) != Some("stop") {
                            self.log(RankedNotice::StandbyDrain { group: g.clone() });
                        }
                        self.claims.remove(&g);
                        self.tell(&g, "stop", false);
                    } else if st.level != want && st.state.is_settled() {
                        self.tell(&g, &want, true);
                    } else if st.state.is_settled() {
                        if let Some(to) = self.failback_to(&g, &preferred, &heard) {
                            self.claims.remove(&g);
                            self.tell(&g, "stop", false);
                            self.log(RankedNotice::FailingBack { group: g.clone(), to });
                        }
                    }
                }
                Some(st) if st.level == "plan" || st.level == "test" => {
                    self.unplaced_since.remove(&g);
                    let mut rivals = attempts.clone();
                    rivals.push(self.me);
                    let better_rival = rank(&g, &preferred, &rivals)[0] != self.me;
                    if !running.is_empty() || better_rival || standby {
                        self.claims.remove(&g);
                        self.tell(&g, "stop", false);
                        continue;
                    }
                    self.ask(&g);
                    match (st.level.as_str(), &st.state) {
                        (_, GroupState::Failed)
                            if self.told.get(&g).map(String::as_str) != Some("stop") =>
                        {
                            let (base, cap) =
                                (self.params.test_backoff, self.params.test_backoff_max);
                            let until = self.eligibility.failed(&g, self.me, now, base, cap);
                            self.claims.remove(&g);
                            self.tell(&g, "stop", false);
                            self.log(RankedNotice::TestFailed { group: g.clone(), until });
                        }
                        ("plan", GroupState::Done) => self.tell(&g, "test", true),
                        ("test", GroupState::Passed | GroupState::Done) => {
                            if let Some(grantors) = self.holds_claim(&g, votes) {
                                self.eligibility.passed(&g, self.me);
                                if self.told.get(&g) != Some(&want) {
                                    self.log(RankedNotice::ClaimHeld {
                                        group: g.clone(),
                                        grantors,
                                    });
                                }
                                self.tell(&g, &want, true);
                            }
                        }
                        _ => {}
                    }
                }
                _ => {
                    // Idle here: plan when unplaced and my slot has come.
                    if self.rules.early_claim
                        && self.asks_early(&g, &running, &attempts, &heard, judged)
                        && !(blind || mixed || lost_member)
                    {
                        continue;
                    }
                    if !running.is_empty() || !attempts.is_empty() || blind || mixed || lost_member
                    {
                        self.unplaced_since.remove(&g);
                        self.claims.remove(&g);
                        continue;
                    }
                    let since = *self.unplaced_since.entry(g.clone()).or_insert(now);
                    let candidates: Vec<u32> = heard
                        .iter()
                        .copied()
                        .filter(|&n| n != self.me || self.eligibility.eligible(&g, n, now))
                        .collect();
                    let order = rank(&g, &preferred, &candidates);
                    let Some(pos) = order.iter().position(|&n| n == self.me) else { continue };
                    let mut at = since + Millis(self.params.rank_slot.0 * pos as u64);
                    // A group this node held when its lease ran out goes
                    // to the others first: its slot comes after all of
                    // theirs, at most 2 H on (`lease_loss_yields`).
                    if self.yields_until.get(&g).is_some_and(|&t| now < t) {
                        let last = self.params.rank_slot.0 * order.len() as u64;
                        at = since + Millis(last.min(2 * self.params.lease.0));
                    }
                    if now >= at {
                        self.ask(&g);
                        self.tell(&g, "plan", true);
                    } else {
                        self.wake_at(at);
                    }
                }
            }
        }
    }

    /// Ask early for the claim on `group`, while every node that runs or
    /// attempts it is revoked by a quorum but not void yet (a fence in flight, a release
    /// on its way)? Only the best-ranked heard candidate does. The request
    /// is published at once, so that each grantor grants it in the very
    /// step in which it learns the holder is void (its fence result, the
    /// holder's release, a fence vote in a record), instead of a claim
    /// round (request, read, grant, read: about three heartbeat periods)
    /// after the requester itself saw the holder void.
    ///
    /// Safety is unchanged: a request is only a wish; a grantor still
    /// grants at most one live claim per group and frees the holder's
    /// grant only once the holder is void, and nothing is planned or
    /// started here before the holder is void and a quorum granted the
    /// claim. A request that stands while the holder is not voided is kept
    /// out of the stall check (waiting for a fence is not a stall).
    fn asks_early(
        &mut self,
        group: &str,
        running: &[u32],
        attempts: &[u32],
        heard: &[u32],
        judged: &BTreeMap<u32, Judgement>,
    ) -> bool {
        let condemned = |n: &u32| judged.get(n).is_some_and(|j| j.revoked_quorum && !j.void);
        let mut holders = running.iter().chain(attempts);
        if running.is_empty() && attempts.is_empty() || !holders.all(condemned) {
            return false;
        }
        let now = self.now;
        let candidates: Vec<u32> = heard
            .iter()
            .copied()
            .filter(|n| !running.contains(n) && !attempts.contains(n))
            .filter(|&n| n != self.me || self.eligibility.eligible(group, n, now))
            .collect();
        let preferred = self.preferred(group);
        if rank(group, &preferred, &candidates).first() != Some(&self.me) {
            return false;
        }
        self.unplaced_since.remove(group);
        self.ask(group);
        self.progress.insert(group.to_string(), now);
        true
    }

    /// The safety net for claims that lead nowhere: a group claimed here
    /// that neither runs nor is in a transition (STARTING, CHECKING,
    /// STOPPING...) and whose local status has not changed for
    /// [`RankedParams::stall_after`] is given up: the claim is released, a
    /// settled plan or test is stopped, and this node backs off from the
    /// group as after a failed test (so it is not the first candidate
    /// again at once), which lets the next-ranked node take it. Logged as
    /// [`RankedNotice::Stalled`]. Without it a claim whose tells take no
    /// effect stands as long as the node holds its lease, and every other
    /// node sees an attempt and waits.
    pub(super) fn stall_pass(&mut self) {
        let now = self.now;
        let stalled: Vec<String> = self
            .claims
            .keys()
            .filter(|g| {
                self.own.groups.get(*g).is_none_or(|st| {
                    !record::counts_as_running(st) && st.state.is_settled()
                        || crate::hastat::is_idle(&st.level, &st.state)
                })
            })
            .cloned()
            .collect();
        self.progress.retain(|g, _| stalled.contains(g));
        for g in stalled {
            let since = *self.progress.entry(g.clone()).or_insert(now);
            let at = since + self.params.stall_after;
            if now < at {
                self.wake_at(at);
                continue;
            }
            self.progress.remove(&g);
            self.claims.remove(&g);
            let (base, cap) = (self.params.test_backoff, self.params.test_backoff_max);
            let until = self.eligibility.failed(&g, self.me, now, base, cap);
            let settled_here = self
                .own
                .groups
                .get(&g)
                .is_some_and(|st| !crate::hastat::is_idle(&st.level, &st.state));
            if self.told.get(&g).map(String::as_str) != Some("stop") {
                self.told.remove(&g);
            }
            if settled_here {
                self.tell(&g, "stop", false);
            }
            self.log(RankedNotice::Stalled { group: g, since, until });
        }
    }

    /// With [`RankedParams::failback`]: the better-ranked node that `group`,
    /// running here, should move back to now. That node is heard, eligible,
    /// has held its lease for `failback_after`, runs and attempts nothing of
    /// the group, and was not failed back to in its current incarnation.
    fn failback_to(&mut self, group: &str, preferred: &[u32], heard: &[u32]) -> Option<u32> {
        if !self.params.failback {
            return None;
        }
        let now = self.now;
        let candidates: Vec<u32> = heard
            .iter()
            .copied()
            .filter(|&n| n == self.me || self.eligibility.eligible(group, n, now))
            .collect();
        let best = *rank(group, preferred, &candidates).first()?;
        if best == self.me {
            return None;
        }
        let rec = self.record_of(best)?.clone();
        let target = (best, rec.incarnation);
        if self.failed_back.get(group) == Some(&target)
            || rec.lease != LeaseState::Holding
            || rec.claims.contains_key(group)
            || rec.groups.get(group).is_some_and(|st| !crate::hastat::is_idle(&st.level, &st.state))
        {
            return None;
        }
        let since = self.peers.get(&best)?.holding_since?;
        let at = since + self.params.failback_after;
        if now < at {
            self.wake_at(at);
            return None;
        }
        self.failed_back.insert(group.to_string(), target);
        Some(best)
    }
}
