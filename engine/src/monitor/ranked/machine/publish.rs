//! What this node publishes and arms: the watchdog's deadline, the durable
//! state to persist, and the heartbeat record (written only by the engine).

use super::*;

impl Ranked {
    pub(super) fn watchdog_pass(&mut self) {
        if !self.params.watchdog {
            return;
        }
        let epoch = (self.durable.incarnation, self.epoch);
        let want = match self.phase {
            Phase::Holding => {
                (epoch, self.deadline.map(|d| d.saturating_sub(self.params.kill_bound)))
            }
            _ => (epoch, None),
        };
        if self.watchdog_sent != Some(want) {
            self.watchdog_sent = Some(want);
            self.out.push(Command::Watchdog { epoch: want.0, deadline: want.1 });
        }
    }

    pub(super) fn persist_pass(&mut self) {
        if self.durable_version > self.emitted_version {
            self.emitted_version = self.durable_version;
            self.outstanding.insert(self.durable_version, self.durable.clone());
            let state = Box::new(self.durable.clone());
            self.out.push(Command::Persist { version: self.durable_version, state });
        }
    }

    pub(super) fn heartbeat_pass(&mut self) {
        let now = self.now;
        let ready =
            self.persisted.as_ref().is_some_and(|d| d.incarnation == self.durable.incarnation);
        // While a kill is in flight (at most δ) nothing is published: the
        // next record says `released` or, if the kill failed, `lost`.
        // (Rule switched off: a node that lost its lease falls silent.)
        let silent = (self.phase == Phase::Killing && !self.kill_failed)
            || (!self.rules.publish_release && self.epoch > 0 && self.phase != Phase::Holding);
        if !ready || silent {
            return;
        }
        if now >= self.next_heartbeat {
            self.counter += 1;
            self.sent.insert(self.counter, now);
            // This record carries a prompt acknowledgement asked for since
            // the previous record (perhaps deferred to now): it does not use
            // up `hurry`'s spacing.
            let prev = self.last_heartbeat;
            if self.prompt_ack_at.is_some_and(|p| p <= now && prev.is_none_or(|l| p > l)) {
                self.prompt_ack_at = Some(now);
            }
            self.last_heartbeat = Some(now);
            self.next_heartbeat = now + self.params.heartbeat;
            let record = self.record();
            // The first record without a withdrawn revocation starts the
            // lifting round (see `reconsider`).
            let published =
                self.published_durable().map(|d| d.withdrawn.clone()).unwrap_or_default();
            for n in published {
                if let Some(p) = self.peers.get_mut(&n) {
                    p.withdrawn_from.get_or_insert(record.counter);
                }
            }
            let text = record.render();
            self.out.push(Command::WriteRecord { counter: self.counter, text });
            // Retry an unconfirmed kill, H after it failed and then at
            // doubling gaps: processes that have left D state since die,
            // and the kill's confirmation is what lets this node release
            // (and be spared the fence).
            if let Some((at, gap)) = self.kill_retry.filter(|_| self.phase == Phase::Killing) {
                if now >= at && self.kill_failed {
                    self.out.push(Command::KillAllNow);
                    let cap = Millis(self.params.lease.0 * KILL_RETRY_CAP);
                    self.kill_retry = Some((now + gap, (gap + gap).min(cap)));
                }
            }
        }
        self.wake_at(self.next_heartbeat);
    }

    /// The record this node publishes now.
    pub fn record(&self) -> Record {
        let voter = self.is_voter();
        let durable = self.published_durable().cloned().unwrap_or_else(|| self.durable.clone());
        Record {
            node: self.me,
            incarnation: self.durable.incarnation,
            counter: self.counter,
            policy: record::POLICY.to_string(),
            lease: self.lease_state(),
            floor: self.epoch_floor,
            // A watchdog that is gone guards nothing (`Input::Watchdog`).
            watchdog: self.params.watchdog && self.watchdog_up,
            seen_all: self.seen_all,
            config: durable.config,
            config_ack: durable.config_ack,
            // A learner's acknowledgements, revocations and grants count
            // for nobody: it publishes none (its record stays O(1)). A
            // `lost` record is the exception: its acknowledgements date it
            // for the fencers (`Rules::lost_fence_needs_current_record`),
            // and no lease counts a learner's acknowledgement.
            acks: if voter || self.phase == Phase::Killing { self.acks() } else { BTreeMap::new() },
            // A withdrawn revocation is no longer published (see
            // `reconsider`), though acknowledgements stay capped by it.
            revocations: if voter {
                let mut r = durable.revocations;
                r.retain(|n, _| !durable.withdrawn.contains(n));
                r
            } else {
                BTreeMap::new()
            },
            grants: if voter {
                durable.grants.into_iter().map(|(g, grant)| (g, grant.to)).collect()
            } else {
                BTreeMap::new()
            },
            claims: if self.phase == Phase::Released {
                BTreeMap::new()
            } else {
                self.claims.clone()
            },
            fenced: self.my_votes.clone(),
            votes: self.my_tie_votes.clone(),
            groups: self
                .own
                .groups
                .iter()
                .filter(|(_, st)| st.state != GroupState::Configured)
                .map(|(g, st)| {
                    (g.clone(), GroupStatus { level: st.level.clone(), state: st.state.clone() })
                })
                .collect(),
        }
    }
}
