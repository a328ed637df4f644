//! Applying one input to the machine's memory (before the decision pass):
//! reads of peers' records, own status, command results, and the
//! resumption after a freeze.

use super::*;

impl Ranked {
    /// No step for more than H/2: this monitor was frozen (SIGSTOP, swap
    /// death) or its executor hung. What it remembers is stale, so, as at a
    /// start, it counts last contact with everyone from now and restarts the
    /// tie-breaker delay. This only delays suspicion (the safe direction);
    /// its own lease is judged from its own emission times, so a lease that
    /// ran out during the gap is seen as lost at once.
    pub(super) fn resumed(&mut self, gap: Millis) {
        let now = self.now;
        for p in self.peers.values_mut() {
            if let Some(c) = p.contact.as_mut() {
                c.last_change = c.last_change.max(now);
            }
            if p.revoked_by_me_at.is_some() {
                p.revoked_by_me_at = Some(now);
            }
        }
        self.log(RankedNotice::Resumed { gap });
    }

    pub(super) fn apply(&mut self, input: Input) {
        let now = self.now;
        match input {
            Input::Tick => {}
            Input::Membership(live) => {
                let live: BTreeSet<u32> = live.into_iter().collect();
                for n in self.durable.config.members.clone() {
                    if n == self.me {
                        continue;
                    }
                    let was_down = self.live.as_ref().is_some_and(|l| !l.contains(&n));
                    let peer = self.peers.entry(n).or_default();
                    if live.contains(&n) {
                        peer.down_of = None;
                        peer.down_since = None;
                    } else {
                        peer.down_since.get_or_insert(now);
                        if !was_down || peer.down_of.is_none() {
                            let latest = peer.contact.and_then(|c| c.latest);
                            peer.down_of = Some(latest.map_or(u64::MAX, |l| l.incarnation));
                        }
                    }
                }
                if self.live.as_ref() != Some(&live) {
                    self.heard_gen += 1;
                }
                self.live = Some(live);
            }
            Input::Read { node, read } => self.apply_read(node, read),
            Input::Reads(reads) => {
                for (node, read) in reads {
                    self.apply_read(node, read);
                }
            }
            Input::Own(own) => {
                for (g, st) in &own.groups {
                    if self.told.get(g) == Some(&st.level) {
                        self.told.remove(g);
                    }
                    // A changed status is progress of a claimed group.
                    if self.claims.contains_key(g) && self.own.groups.get(g) != Some(st) {
                        self.progress.insert(g.clone(), now);
                    }
                }
                self.own = own;
            }
            Input::Watchdog { up } => {
                if up != self.watchdog_up && self.params.watchdog {
                    self.watchdog_up = up;
                    self.log(if up {
                        RankedNotice::WatchdogBack
                    } else {
                        RankedNotice::WatchdogLost
                    });
                    // Peers judge a silent node by this word: say it now.
                    self.hurry();
                }
            }
            Input::TellRefused { group, level, reason } => {
                // A refused stop changes nothing (the group runs nothing
                // here) and is not told again: `told` keeps it.
                if level != "stop" && self.told.get(&group) == Some(&level) {
                    self.told.remove(&group);
                    self.claims.remove(&group);
                    let (base, cap) = (self.params.test_backoff, self.params.test_backoff_max);
                    let until = self.eligibility.failed(&group, self.me, now, base, cap);
                    self.log(RankedNotice::TellRefused { group, level, reason, until });
                }
            }
            Input::Hactl(h) => {
                if self.hactl.as_deref() != Some(&*h) {
                    self.eligibility.forget();
                }
                self.hactl = Some(h);
            }
            Input::CltabChanged => self.eligibility.forget(),
            Input::Persisted { version } => {
                let done: Vec<u64> = self.outstanding.range(..=version).map(|(v, _)| *v).collect();
                if let Some(last) = done.last().and_then(|v| self.outstanding.get(v)) {
                    self.persisted = Some(last.clone());
                    self.hurry();
                }
                for v in done {
                    self.outstanding.remove(&v);
                }
            }
            Input::Written { .. } => {}
            Input::Fenced { target, ok } => {
                let (min, max) = (self.params.fence_retry_min, self.params.fence_retry_max);
                let was = self.fences.in_flight(target);
                self.fences.result(target, ok, now, min, max);
                if ok && was {
                    self.my_votes.insert(target.node, target.incarnation);
                    if self.fence_reasons.get(&target) == Some(&FenceReason::TieBreaker) {
                        self.my_tie_votes.insert(target.node, target.incarnation);
                    }
                    self.hurry();
                }
            }
            Input::KillDone { confirmed } => {
                if self.phase == Phase::Killing {
                    if confirmed {
                        // Only now are its claims given up: until the kill is
                        // confirmed they stand (a `lost` node may still run
                        // them, whatever its init machine says).
                        self.phase = Phase::Released;
                        self.claims.clear();
                        self.kill_failed = false;
                        self.hurry();
                        if let Some(by) = self.fenced_by {
                            self.rejoin(by);
                        }
                    } else if !self.kill_failed {
                        self.kill_failed = true;
                        let h = self.params.lease;
                        self.kill_retry = Some((self.now + h, h));
                        self.log(RankedNotice::KillUnconfirmed);
                    }
                }
            }
            Input::Leftovers { live } => {
                // Kill them as after a lost lease: the same SIGKILL to every
                // service group, confirmed by the executor; until then the
                // record says `lost`, so the holders fence this node and
                // nobody plans (see the group pass).
                if live > 0 && self.rules.kill_leftovers && self.phase != Phase::Killing {
                    if self.phase == Phase::Holding {
                        self.epoch_floor = self.counter + 1;
                        self.deadline = None;
                    }
                    self.phase = Phase::Killing;
                    self.kill_failed = false;
                    self.told.clear();
                    self.out.push(Command::KillAllNow);
                    self.hurry();
                }
            }
            Input::Leave => {
                self.leaving = true;
                self.hurry();
            }
            Input::ProposeMembers(members) => {
                let config = self.durable.config.clone();
                let acked = self.durable.config_ack.clone();
                let result = membership::one_at_a_time(&config, &members)
                    .and_then(|c| membership::may_ack(&config, acked.as_ref(), &c).map(|()| c));
                match result {
                    Ok(change) => self.set_durable(|d| d.config_ack = Some(change)),
                    Err(e) => self.log(RankedNotice::ChangeRefused(e.to_string())),
                }
            }
        }
    }

    /// Publish soon (at most 4 records per heartbeat period).
    pub(super) fn hurry(&mut self) {
        let soon = match self.last_heartbeat {
            // A prompt acknowledgement does not use up the spacing.
            Some(t) if self.prompt_ack_at != Some(t) => t + Millis(self.params.heartbeat.0 / 4),
            _ => self.now,
        };
        self.next_heartbeat = self.next_heartbeat.min(soon);
    }

    pub(super) fn apply_read(&mut self, node: u32, read: Read) {
        if node == self.me {
            if matches!(read, Read::Record(_)) {
                self.own_read_at = Some(self.now);
            }
            return;
        }
        let now = self.now;
        let started = self.started;
        let (me, my_inc) = (self.me, self.durable.incarnation);
        let peer = self.peers.entry(node).or_default();
        match read {
            Read::Record(rec) => {
                if rec.node != node {
                    let names = rec.node;
                    self.out.push(Command::Log(RankedNotice::Misfiled { node, names }));
                    return;
                }
                let seen = Seen { incarnation: rec.incarnation, counter: rec.counter };
                let contact = peer.contact.get_or_insert_with(|| Contact::new(started));
                if contact.latest.is_some_and(|l| seen < l) {
                    return; // an older copy, read late
                }
                if contact.latest.is_none_or(|l| l.incarnation != seen.incarnation) {
                    self.heard_gen += 1;
                }
                let fresh = contact.observe(seen, now);
                peer.seen = true;
                peer.unknown = None;
                peer.unknown_since = None;
                peer.other_policy = None;
                // Its acknowledgement of this incarnation: when it last
                // moved (the unresponsive-voter rule of the voter pass).
                let ack = rec.acks.get(&me).copied().filter(|a| a.incarnation == my_inc);
                if ack.is_some() && ack != peer.ack_of_me {
                    peer.ack_moved_at = Some(now);
                }
                peer.ack_of_me = ack;
                peer.holding_since = match rec.lease {
                    LeaseState::Holding => Some(peer.holding_since.unwrap_or(now)),
                    _ => None,
                };
                if rec.policy != record::POLICY {
                    peer.other_policy = Some(rec.policy.clone());
                }
                let fenced_me = rec.fenced.get(&me) == Some(&my_inc);
                peer.record = Some(rec);
                self.fences.came_back(node, seen.incarnation);
                if fenced_me && self.said_fenced_by.insert(node) {
                    let notice = RankedNotice::FencedWhileRunning { by: node, incarnation: my_inc };
                    self.out.push(Command::Log(notice));
                }
                if fenced_me {
                    self.fenced_out(node);
                }
                // Acknowledge promptly: a voter that hears a new counter
                // publishes its acknowledgement at once (at most one such
                // record per P/2) instead of at its next periodic
                // heartbeat. The lease's round trip is then two
                // visibility delays, two read intervals and a write (the
                // issue's budget, H > P + round trip + δ), not three
                // intervals: with H = 2 s, P = H/8 (then the default) and δ = 250 ms a lease
                // survives fs delays of H/4 (2·500 + 2·250 + a write <
                // H − δ = 1750 ms), which with a third interval (1750 ms +
                // the write) it did not. Safety is unchanged: an
                // acknowledgement still names only a counter this node has
                // read, capped by its revocations. Reads come once per P,
                // so this adds at most one record per read round.
                if fresh && self.is_voter() {
                    // Half a period apart at most, and never through
                    // `hurry`'s budget, which urgent records (claims,
                    // releases) need. A prompt acknowledgement asked for
                    // within P/2 of the last record is deferred to P/2
                    // after it, not dropped: dropped, it waited for the
                    // next periodic heartbeat (up to P), and at fs delays
                    // of H/4 that third interval broke the lease.
                    let half = Millis(self.params.heartbeat.0 / 2);
                    let at = self.last_heartbeat.map_or(now, |t| (t + half).max(now));
                    if at < self.next_heartbeat {
                        self.next_heartbeat = at;
                        self.prompt_ack_at = Some(at);
                    }
                }
            }
            Read::Unknown(reason) => {
                let new = peer.unknown.as_ref() != Some(&reason);
                peer.unknown_since.get_or_insert(now);
                peer.unknown = Some(reason.clone());
                if new {
                    self.log(RankedNotice::Unknown { node, reason });
                }
            }
            Read::Unchanged => {
                peer.unknown = None;
                peer.unknown_since = None;
            }
            Read::OtherPolicy(policy) => {
                peer.unknown_since = None;
                let new = peer.other_policy.as_ref() != Some(&policy);
                peer.other_policy = Some(policy.clone());
                if new {
                    self.log(RankedNotice::MixedPolicy { node, policy });
                }
            }
        }
    }
}
