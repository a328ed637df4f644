//! The grant pass: Disk-Paxos-style claims over per-node records. Each node
//! grants at most one live claim per group, to the best-ranked live
//! request, and a claim holds once a quorum granted it.

use super::*;

impl Ranked {
    pub(super) fn my_epoch(&self, req: u64) -> Epoch {
        Epoch { node: self.me, incarnation: self.durable.incarnation, floor: self.epoch_floor, req }
    }

    /// Ask for the claim on `group` (a new request unless already asking).
    ///
    /// A new request is published soon ([`Ranked::hurry`]), not at the next
    /// heartbeat period: the grantors can only answer what they have read.
    pub(super) fn ask(&mut self, group: &str) {
        if self.claims.contains_key(group) {
            return;
        }
        self.claims.insert(group.to_string(), self.counter);
        if self.rules.early_claim {
            self.hurry();
        }
    }

    pub(super) fn requests(&self, group: &str, judged: &BTreeMap<u32, Judgement>) -> Vec<Epoch> {
        let mut out = Vec::new();
        if let Some(&req) = self.claims.get(group).filter(|_| self.phase == Phase::Holding) {
            out.push(self.my_epoch(req));
        }
        for (&n, p) in &self.peers {
            let Some(r) = &p.record else { continue };
            let Some(&req) = r.claims.get(group) else { continue };
            if judged.get(&n).is_some_and(|j| !j.void) && r.lease == LeaseState::Holding {
                out.push(Epoch { node: n, incarnation: r.incarnation, floor: r.floor, req });
            }
        }
        out
    }

    pub(super) fn grant_pass(&mut self, judged: &BTreeMap<u32, Judgement>) {
        if !self.is_voter() {
            // A learner's grants count for nobody.
            if !self.durable.grants.is_empty() {
                self.set_durable(|d| d.grants.clear());
            }
            return;
        }
        let mut groups: BTreeSet<String> = self.claims.keys().cloned().collect();
        for p in self.peers.values() {
            if let Some(r) = &p.record {
                groups.extend(r.claims.keys().cloned());
            }
        }
        groups.extend(self.durable.grants.keys().cloned());
        for g in groups {
            if let Some(grant) = self.durable.grants.get(&g).cloned() {
                let holder = if grant.to.node == self.me {
                    if grant.to != self.my_epoch(grant.to.req) {
                        Holder::Void
                    } else {
                        Holder::Seen {
                            counter: self.counter + 1,
                            asks: self.claims.get(&g) == Some(&grant.to.req)
                                && self.phase == Phase::Holding,
                        }
                    }
                } else {
                    let p = self.peers.get(&grant.to.node);
                    let void = judged.get(&grant.to.node).is_none_or(|j| j.void);
                    match p.and_then(|p| p.record.as_ref().map(|r| (r, p.unknown.is_some()))) {
                        _ if void => Holder::Void,
                        Some((r, _))
                            if r.incarnation != grant.to.incarnation
                                || r.floor != grant.to.floor =>
                        {
                            Holder::Void
                        }
                        Some((_, true)) | None => Holder::Unknown,
                        Some((r, false)) => Holder::Seen {
                            counter: r.counter,
                            asks: r.claims.get(&g) == Some(&grant.to.req),
                        },
                    }
                };
                if !claims::may_free(&grant, holder) {
                    continue;
                }
                self.set_durable(|d| {
                    d.grants.remove(&g);
                });
            }
            let requests = self.requests(&g, judged);
            if requests.is_empty() {
                continue;
            }
            let preferred = self.preferred(&g);
            let nodes: Vec<u32> = requests.iter().map(|r| r.node).collect();
            let best = rank(&g, &preferred, &nodes)[0];
            if let Some(&to) = requests.iter().find(|r| r.node == best) {
                let at_counter = if to.node == self.me {
                    self.counter
                } else {
                    self.latest(to.node).map_or(0, |l| l.counter)
                };
                self.set_durable(|d| {
                    d.grants.insert(g.clone(), Grant { to, at_counter });
                });
            }
        }
    }

    /// Do a quorum's published grants give this node the claim on `group`?
    pub(super) fn holds_claim(&self, group: &str, votes: &Votes) -> Option<BTreeSet<u32>> {
        if !self.rules.claims {
            return Some(BTreeSet::new());
        }
        let &req = self.claims.get(group)?;
        let me = self.my_epoch(req);
        let mut yes: BTreeSet<u32> = BTreeSet::new();
        if self.persisted.as_ref().and_then(|d| d.grants.get(group)).is_some_and(|g| g.to == me) {
            yes.insert(self.me);
        }
        for (&n, p) in &self.peers {
            if p.record.as_ref().and_then(|r| r.grants.get(group)) == Some(&me) {
                yes.insert(n);
            }
        }
        let voters = self.durable.config.voters();
        votes.expand(self.vote_rule(voters), &mut yes);
        claims::held(voters, &yes, self.tie_ready(votes)).then_some(yes)
    }
}
