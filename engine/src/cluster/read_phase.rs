//! The read phase's transitions (the states are in `cycle`): start a
//! cycle with a membership read, read every member's files, time out what
//! does not answer, replicate `hactl` and `cltab`, copy, then decide.

use super::*;
use crate::monitor::replicate::Settled;

/// Longest wait before membership is tried again after a failure.
pub(super) const MEMBERSHIP_RETRY_CAP: Millis = Millis(5_000);

impl ClusterDriver {
    /// The index of `node` in the batch being read when its result (of
    /// batch `seq`) is still awaited; a late one frees its node and is
    /// otherwise ignored.
    pub(super) fn expects_read(&mut self, seq: u64, node: u32) -> Option<usize> {
        if !self.busy_reads.is_empty() && self.busy_reads.get(&node) == Some(&seq) {
            self.busy_reads.remove(&node);
        }
        match &self.phase {
            Phase::Reading(r) => r.awaits(seq, node),
            _ => None,
        }
    }

    /// Answers to the batch `seq`, grouped by node: each awaited node's
    /// files become what the monitor needs as they come (no per-node
    /// allocation: an unchanged file costs a cache look-up).
    pub(super) fn on_nodes_read(
        &mut self,
        now: Millis,
        seq: u64,
        read_at: WallMs,
        reports: Vec<FileReport>,
    ) {
        let me = self.cfg.me;
        if !reports.is_empty() {
            // A report may bring new bytes or identities into the caches.
            self.kept_asks.stale();
        }
        let mut current: Option<(u32, Option<usize>, cycle::NodeFilesBuilder)> = None;
        for mut report in reports {
            if current.as_ref().is_none_or(|(node, ..)| *node != report.node) {
                if let Some((node, Some(i), b)) = current.take() {
                    self.on_node_read(now, i, b.finish(node, me));
                }
                let at = self.expects_read(seq, report.node);
                current = Some((report.node, at, cycle::NodeFilesBuilder::default()));
            }
            let Some((node, Some(_), b)) = current.as_mut() else { continue };
            if report.file == SharedFile::Heartbeat {
                if let Some(h) = self.ranked.as_mut() {
                    let path = report.path.clone();
                    let read = std::mem::replace(&mut report.read, Ok(None));
                    if let Some(input) = h.record_read(*node, &path, read) {
                        h.push(input);
                    }
                }
                continue;
            }
            b.add(me, read_at, report, &mut self.clstats, &self.hactl, &self.cltab);
        }
        if let Some((node, Some(i), b)) = current {
            self.on_node_read(now, i, b.finish(node, me));
        }
    }

    /// Nodes of the batch `seq` whose asked files are all unchanged: each
    /// awaited one gives what its caches hold, its clstat aged anew.
    pub(super) fn on_nodes_unchanged(
        &mut self,
        now: Millis,
        seq: u64,
        read_at: WallMs,
        nodes: Vec<(u32, Option<WallMs>)>,
    ) {
        if nodes.is_empty() {
            return;
        }
        let me = self.cfg.me;
        let stopping = self.stopping.is_some();
        // The nodes come ascending, as the asks went out: the cache is
        // walked beside them instead of looked up per node (a look-up
        // only for one out of order). The batch is finished after the
        // walk, as `on_node_read` would have when its last node came.
        let mut cache = self.clstats.iter().peekable();
        // The batch's nodes are walked the same way (`awaits` without its
        // binary search per node).
        let mut at = 0;
        for (node, clstat_mtime) in nodes {
            if !self.busy_reads.is_empty() && self.busy_reads.get(&node) == Some(&seq) {
                self.busy_reads.remove(&node);
            }
            // Its record too is unchanged: the machine hears of it only
            // after an unknown read (`RankedHost::unchanged`).
            if let Some(h) = self.ranked.as_mut() {
                if let Some(input) = h.unchanged(node) {
                    h.push(input);
                }
            }
            let Phase::Reading(r) = &mut self.phase else { continue };
            while r.nodes.get(at).is_some_and(|&n| n < node) {
                at += 1;
            }
            let i = if r.seq == seq && r.nodes.get(at) == Some(&node) {
                at
            } else {
                match r.nodes.binary_search(&node) {
                    Ok(i) if r.seq == seq => i,
                    _ => continue,
                }
            };
            if r.got[i].is_some() {
                continue;
            }
            if stopping {
                continue;
            }
            while cache.next_if(|(n, _)| **n < node).is_some() {}
            let cached = match cache.peek() {
                Some(&(n, (_, clstat))) if *n == node => Some(clstat),
                _ => self.clstats.get(&node).map(|(_, clstat)| clstat),
            };
            r.answer(i, NodeFiles::unchanged(node, me, read_at, clstat_mtime, cached));
        }
        if matches!(&self.phase, Phase::Reading(r) if r.waiting == 0 && !stopping) {
            let Phase::Reading(r) = std::mem::replace(&mut self.phase, Phase::Idle { at: now })
            else {
                return;
            };
            self.finish_reads(now, r);
        }
    }

    pub(super) fn on_membership(
        &mut self,
        now: Millis,
        seq: u64,
        result: Result<MembershipReport, String>,
    ) {
        if self.busy_membership == Some(seq) {
            self.busy_membership = None;
        }
        let awaited = matches!(self.phase, Phase::Membership { seq: s, .. } if s == seq);
        if !awaited || self.stopping.is_some() {
            return;
        }
        match result {
            Ok(report) => {
                let ages = membership_log::heartbeat_ages(&report);
                let members = self.members_of(report);
                // Under ranked with heartbeat files the view is the
                // machine's (see `ranked_heard`), not the files' presence.
                let by_machine = self.ranked.is_some()
                    && self.cfg.membership == MembershipSource::HeartbeatFiles;
                if !by_machine {
                    self.observe_membership(&members, ages);
                }
                self.start_reads(now, members);
            }
            Err(reason) => self.membership_unknown(now, reason),
        }
    }

    /// Members from a report: heartbeat files count while no older than the
    /// timeout (reader's clock − writer's mtime; an unreadable heartbeat
    /// means "not up").
    pub(super) fn members_of(&self, report: MembershipReport) -> Vec<u32> {
        match report {
            MembershipReport::Members(m) => m,
            // Under ranked every node with a heartbeat file is listed; the
            // machine judges suspicion by counter changes on its own clock,
            // never by comparing a writer's mtime with this node's clock.
            MembershipReport::Heartbeats { beats, .. } if self.ranked.is_some() => beats
                .iter()
                .filter_map(|(node, read)| matches!(read, Ok(Some(_))).then_some(*node))
                .collect(),
            MembershipReport::Heartbeats { read_at, beats } => {
                fresh_heartbeats(read_at, &beats, self.timeout)
            }
        }
    }

    pub(super) fn membership_unknown(&mut self, now: Millis, reason: String) {
        // Under ranked the peers' records are read on with the last
        // membership view (the machine's, so the view it is given is
        // unchanged), and membership is tried again at the next read round:
        // every lease rests on those reads, and a voter whose membership
        // reads failed (p = 0.59) stopped reading for 2 s at a time,
        // revoked every peer after 1.5 s of silence and, with the voters
        // it acknowledged, stopped every group (N = 10 seed 9: 86 s).
        let last =
            self.ranked.as_ref().and_then(|h| Some((h.machine.live_view()?, h.read_period())));
        if let Some((members, period)) = last {
            let retry_at = now + period;
            let event = ClusterEvent::MembershipUnknown { reason, retry_at, on_last_view: true };
            self.events.push_back(event);
            return self.start_reads(now, members);
        }
        let retry = heartbeat_for(self.timeout).min(MEMBERSHIP_RETRY_CAP);
        let retry_at = now + retry;
        self.phase = Phase::Idle { at: retry_at };
        let event = ClusterEvent::MembershipUnknown { reason, retry_at, on_last_view: false };
        self.events.push_back(event);
    }

    pub(super) fn start_cycle(&mut self, now: Millis) {
        if let Some(seq) = self.busy_membership {
            let reason = format!("the previous membership read (#{seq}) has not finished");
            return self.membership_unknown(now, reason);
        }
        let seq = self.next_seq();
        self.commands.push_back(ClusterCommand::ReadMembership { seq });
        self.phase = Phase::Membership { seq, deadline: now + self.cfg.read_timeout };
    }

    pub(super) fn start_reads(&mut self, now: Millis, members: Vec<u32>) {
        let me = self.cfg.me;
        let mut readset = crate::monitor::view::member_set(&members, Some(me));
        if let Some(h) = &self.ranked {
            // ranked reads every known member, listed or not: a node that
            // membership dropped still has a record (its last one, or a
            // release), and the fence guard compares against it. A learner
            // reads the voters only (their records carry all it needs).
            match h.machine.read_set() {
                None => readset.extend(h.machine.config().members.iter().copied()),
                Some(voters) => {
                    readset.clear();
                    readset.extend(voters);
                    readset.push(me);
                }
            }
            readset.sort_unstable();
            readset.dedup();
        }
        let seq = self.next_seq();
        let mut reading = Reading {
            seq,
            deadline: now + self.cfg.read_timeout,
            members,
            got: vec![None; readset.len()],
            waiting: readset.len(),
            nodes: readset,
        };
        // The last batch's asks again, when nothing they were made from
        // changed (no read still hangs, no ranked records: their `known`
        // comes from elsewhere).
        let reusable = self.ranked.is_none() && self.busy_reads.is_empty();
        if let Some(kept) = self.kept_asks.get(&reading.nodes).filter(|_| reusable) {
            let asks = kept.to_vec();
            debug_assert_eq!(asks, self.make_asks(&mut reading), "kept asks are current");
            self.send_reads(now, seq, asks, reading);
            return;
        }
        let asks = self.make_asks(&mut reading);
        if reusable {
            self.kept_asks.keep(&reading.nodes, &asks);
        } else {
            self.kept_asks.stale();
        }
        self.send_reads(now, seq, asks, reading);
    }

    /// Send the batch (when it asks anything) and wait for it, or finish
    /// it at once when every node was answered already (busy).
    fn send_reads(&mut self, now: Millis, seq: u64, asks: Vec<FileAsk>, reading: Reading) {
        if !asks.is_empty() {
            self.commands.push_back(ClusterCommand::ReadNodes { seq, asks });
        }
        if reading.waiting == 0 {
            self.finish_reads(now, reading);
        } else {
            self.phase = Phase::Reading(reading);
        }
    }

    /// The asks of a batch reading `reading.nodes`, each file with the
    /// identity the caches hold; a node whose previous read still hangs is
    /// answered "unreadable" in `reading` and not asked.
    fn make_asks(&self, reading: &mut Reading) -> Vec<FileAsk> {
        let me = self.cfg.me;
        let mut asks = Vec::with_capacity(reading.nodes.len() * 3);
        // The known identities, walked beside the (ascending) nodes: one
        // step per node instead of three map look-ups.
        let mut clstats = self.clstats.iter().map(|(n, (id, _))| (*n, *id)).peekable();
        let mut hactls = self.hactl.known_all().peekable();
        let mut cltabs = self.cltab.known_all().peekable();
        for (i, &node) in reading.nodes.iter().enumerate() {
            let (clstat, hactl, cltab) =
                (known(&mut clstats, node), known(&mut hactls, node), known(&mut cltabs, node));
            if let Some(seq) = self.busy_reads.get(&node) {
                let reason = format!("node {node}: the previous read (#{seq}) has not finished");
                reading.got[i] = Some(NodeFiles::failed(reason));
                reading.waiting -= 1;
                continue;
            }
            let mut ask = |file, known| asks.push(FileAsk { node, file, known });
            match &self.ranked {
                // Under ranked a node's heartbeat file is its record; its
                // own is read back too, so that the policy knows when its
                // reads stop working (`Rules::blind_fencer_waits`).
                Some(h) => ask(SharedFile::Heartbeat, h.known_record(node)),
                None if node != me => ask(SharedFile::Clstat, clstat),
                None => {}
            }
            ask(SharedFile::Hactl, hactl);
            ask(SharedFile::Cltab, cltab);
        }
        asks
    }

    /// Node number `i` of the batch answered.
    pub(super) fn on_node_read(&mut self, now: Millis, i: usize, files: NodeFiles) {
        if self.stopping.is_some() {
            return;
        }
        let Phase::Reading(r) = &mut self.phase else { return };
        r.answer(i, files);
        if r.waiting == 0 {
            let Phase::Reading(r) = std::mem::replace(&mut self.phase, Phase::Idle { at: now })
            else {
                return;
            };
            self.finish_reads(now, r);
        }
    }

    /// Every read answered or timed out: replicate, then copy or decide.
    pub(super) fn finish_reads(&mut self, now: Millis, reading: Reading) {
        let me = self.cfg.me;
        let n = reading.nodes.len();
        // A quiet cycle (every copy unchanged since a cycle that had nothing
        // to copy) skips replication. Only under the mtime rule: the
        // versioned rule (ranked) is also driven by time, since a hand edit
        // is sealed once it has stayed unchanged for its settle time. A
        // node that did not answer counts as changed (its copies failed).
        let timed = self.is_ranked();
        let same =
            |f: &Option<NodeFiles>, pick: fn(&NodeFiles) -> bool| f.as_ref().is_some_and(pick);
        let (mut hactl_same, mut cltab_same) = (true, true);
        for f in &reading.got {
            hactl_same &= same(f, |f| f.hactl.unchanged());
            cltab_same &= same(f, |f| f.cltab.unchanged());
        }
        let hactl_quiet = !timed && self.hactl_quiet.holds(&reading.nodes, hactl_same);
        let cltab_quiet = !timed && self.cltab_quiet.holds(&reading.nodes, cltab_same);
        // The copies are resolved (and moved) only for a replication that runs.
        let (mut hactl_reads, mut cltab_reads) = (BTreeMap::new(), BTreeMap::new());
        // The last cycle's map, overwritten in place when it holds the same
        // nodes (the common case, no intermediate vector); built anew
        // (from sorted vectors: a bulk build) when the read set changed.
        let mut nodes = std::mem::take(&mut self.kept_nodes);
        let in_place = nodes.len() == n && nodes.keys().eq(reading.nodes.iter());
        let mut slots = in_place.then(|| nodes.values_mut());
        let mut statuses = Vec::with_capacity(if in_place { 0 } else { n });
        // The clstat cache, walked beside the (ascending) nodes.
        let mut cache = self.clstats.iter().peekable();
        for (&node, files) in reading.nodes.iter().zip(reading.got) {
            let files =
                files.unwrap_or_else(|| NodeFiles::failed(format!("node {node}: no answer")));
            if !hactl_quiet {
                hactl_reads.insert(node, files.hactl.resolve(node, &self.hactl));
            }
            if !cltab_quiet {
                cltab_reads.insert(node, files.cltab.resolve(node, &self.cltab));
            }
            while cache.next_if(|(n, _)| **n < node).is_some() {}
            let cached = cache.next_if(|(n, _)| **n == node).map(|(_, (_, clstat))| clstat);
            #[cfg(debug_assertions)]
            files.clstat.check(cached);
            match slots.as_mut().and_then(Iterator::next) {
                Some(slot) => files.clstat.store(node, slot, cached),
                None => statuses.push(files.clstat.into_status(node, cached)),
            }
        }
        if !in_place {
            nodes = reading.nodes.iter().copied().zip(statuses).collect();
        }
        let mut copying = Copying {
            deadline: now + self.cfg.read_timeout,
            members: reading.members,
            read: reading.nodes,
            nodes,
            hactl: Step { quiet: hactl_quiet, ..Step::default() },
            cltab: Step { quiet: cltab_quiet, ..Step::default() },
        };
        if !hactl_quiet || !cltab_quiet {
            // Planning (and the settle that follows) may change a replica's
            // cache, which the next asks' `known` come from.
            self.kept_asks.stale();
        }
        if !hactl_quiet {
            let mut notes = Vec::new();
            copying.hactl.decision = self.hactl.plan_at(now, me, &hactl_reads, &mut notes);
            self.notes::<Hactl>(notes);
        }
        if !cltab_quiet {
            let mut notes = Vec::new();
            copying.cltab.decision = self.cltab.plan_at(now, me, &cltab_reads, &mut notes);
            self.notes::<Cltab>(notes);
        }
        let hactl_copy = copying.hactl.decision.as_ref().and_then(|d| self.hactl.to_install(d));
        let hactl_copy = hactl_copy.map(|(from, i)| (from, i.bytes.clone(), i.mtime));
        let cltab_copy = copying.cltab.decision.as_ref().and_then(|d| self.cltab.to_install(d));
        let cltab_copy = cltab_copy.map(|(from, i)| (from, i.bytes.clone(), i.mtime));
        for (step, copy, file) in [
            (&mut copying.hactl, hactl_copy, SharedFile::Hactl),
            (&mut copying.cltab, cltab_copy, SharedFile::Cltab),
        ] {
            if let Some((from, bytes, mtime)) = copy {
                self.seq += 1;
                let seq = self.seq;
                step.copy = Some(seq);
                self.commands.push_back(ClusterCommand::Copy { seq, file, from, bytes, mtime });
            }
        }
        if copying.hactl.waiting() || copying.cltab.waiting() {
            self.phase = Phase::Copying(Box::new(copying));
        } else {
            self.decide(now, copying);
        }
    }

    pub(super) fn on_copy(&mut self, now: Millis, seq: u64, result: Result<ContentId, String>) {
        if self.stopping.is_some() {
            return;
        }
        let Phase::Copying(c) = &mut self.phase else { return };
        let step = if c.hactl.copy == Some(seq) {
            &mut c.hactl
        } else if c.cltab.copy == Some(seq) {
            &mut c.cltab
        } else {
            return;
        };
        step.result = Some(result);
        if !c.hactl.waiting() && !c.cltab.waiting() {
            let Phase::Copying(c) = std::mem::replace(&mut self.phase, Phase::Idle { at: now })
            else {
                return;
            };
            self.decide(now, *c);
        }
    }

    pub(super) fn notes<T: Replicated>(&mut self, notes: Vec<ReplicaNote>) {
        let file = T::FILE;
        for note in notes {
            self.events.push_back(match note {
                ReplicaNote::OwnUnreadable { reason } => {
                    ClusterEvent::OwnUnreadable { file, reason }
                }
                ReplicaNote::NewestUnparsable { node, errors } => {
                    ClusterEvent::NewestUnparsable { file, node, errors }
                }
                ReplicaNote::OwnUnparsable { errors, kept_last_good } => {
                    ClusterEvent::OwnUnparsable { file, errors, kept_last_good }
                }
                ReplicaNote::Adopted { from, theirs, mine } => {
                    ClusterEvent::Adopted { file, from, theirs, mine }
                }
                ReplicaNote::NotAdopted { from, reason } => {
                    ClusterEvent::NotAdopted { file, from, reason }
                }
                ReplicaNote::Versioned(note) => ClusterEvent::Replica { file, note },
            });
        }
    }

    /// Settle replication, hand a new cltab to the init machine, run the
    /// monitor's cycle and route its decisions.
    pub(super) fn decide(&mut self, now: Millis, copying: Copying) {
        let me = self.cfg.me;
        let Copying { members, read, nodes, hactl, cltab, .. } = copying;
        let h = if hactl.quiet {
            Settled {
                current: self.hactl_quiet.current.clone(),
                changed: false,
                adopted_from: None,
            }
        } else {
            let mut notes = Vec::new();
            let copied = hactl.copy.is_some();
            let h = self.hactl.settle(me, hactl.decision.as_ref(), hactl.result, &mut notes);
            self.notes::<Hactl>(notes);
            self.hactl_quiet.after(&read, hactl.decision.as_ref(), copied, h.current.clone());
            h
        };
        let c = if cltab.quiet {
            Settled {
                current: self.cltab_quiet.current.clone(),
                changed: false,
                adopted_from: None,
            }
        } else {
            let mut notes = Vec::new();
            let copied = cltab.copy.is_some();
            let c = self.cltab.settle(me, cltab.decision.as_ref(), cltab.result, &mut notes);
            self.notes::<Cltab>(notes);
            self.cltab_quiet.after(&read, cltab.decision.as_ref(), copied, c.current.clone());
            c
        };
        if h.changed {
            if let Some(hactl) = &h.current {
                self.events.push_back(ClusterEvent::HactlChanged { hactl: hactl.clone() });
            }
        }
        let adopt = c.current.filter(|_| c.changed).map(|t| (*t).clone());
        if self.ranked.is_some() {
            if let Some(table) = &adopt {
                self.adopt_cltab_traced(now, table.clone());
            }
            self.kept_nodes = nodes;
            self.ranked_cycle(members, h.current.as_ref(), adopt.as_ref());
            self.ranked_pump(now);
            // Not floored at `min_cycle` (200 ms, the classic cycle's
            // pause): the lease budget needs reads every P/2 (see
            // `RankedHost::read_period`), and a ranked read round is one
            // small read per member, not a classic cycle.
            let period = self.ranked.as_ref().map_or(self.cfg.min_cycle, |r| r.read_period());
            self.phase = Phase::Idle { at: now + period };
            return;
        }
        let obs = Observation { now, me, members, nodes, hactl: h.current };
        let recorded = self.trace.as_ref().map(|_| adopt.clone());
        let adopted = adopt.and_then(|table| self.node.adopt_cltab(now, table));
        let report = self.node.cycle(&obs);
        // The record takes the observation itself (the cycle only borrowed
        // it): a copy would clone an `Arc` per member and cycle. The next
        // cycle's map is then built anew, unless the writer gives the
        // record back first ([`ClusterDriver::recycle_trace`]).
        let obs = match (&mut self.trace, recorded) {
            (Some(tap), Some(adopt)) => {
                let adopted = adopted.as_ref().map(|(e, ex)| (e, ex.as_slice()));
                let outcome = TraceOutcome::Cycle { adopted, report: &report };
                tap.push(Record::Cycle { node: me, adopt, obs }, outcome);
                None
            }
            _ => Some(obs),
        };
        if let Some((event, executed)) = adopted {
            self.events.push_back(ClusterEvent::Node(event));
            self.absorb(now, executed);
        }
        self.absorb(now, report.executed);
        for event in report.events {
            self.events.push_back(ClusterEvent::Node(event));
        }
        for external in report.external {
            match external {
                External::Fence { node } => {
                    let seq = self.next_seq();
                    self.commands.push_back(ClusterCommand::Fence { seq, node });
                }
                External::Publish(published) => self.write_hastat(published),
            }
        }
        if let Some(obs) = obs {
            self.kept_nodes = obs.nodes;
        }
        let at = report.next_wakeup.max(now + self.cfg.min_cycle);
        self.phase = Phase::Idle { at };
    }

    pub(super) fn advance_cycle(&mut self, now: Millis) {
        match &mut self.phase {
            Phase::Idle { at } => {
                let gated = self.beats.first_until.is_some_and(|until| now < until);
                if *at <= now && !gated {
                    self.beats.first_until = None;
                    self.start_cycle(now);
                }
            }
            Phase::Membership { seq, deadline } => {
                if *deadline <= now {
                    let seq = *seq;
                    self.busy_membership = Some(seq);
                    let after = self.cfg.read_timeout;
                    self.events.push_back(ClusterEvent::ReadTimedOut { node: None, after });
                    self.membership_unknown(now, format!("no answer within {after}"));
                }
            }
            Phase::Reading(r) => {
                if r.deadline <= now {
                    let Phase::Reading(mut r) =
                        std::mem::replace(&mut self.phase, Phase::Idle { at: now })
                    else {
                        return;
                    };
                    let after = self.cfg.read_timeout;
                    for i in 0..r.nodes.len() {
                        if r.got[i].is_some() {
                            continue;
                        }
                        let node = r.nodes[i];
                        self.busy_reads.insert(node, r.seq);
                        let reason = format!("node {node}: no answer within {after}");
                        r.answer(i, NodeFiles::failed(reason));
                        self.events
                            .push_back(ClusterEvent::ReadTimedOut { node: Some(node), after });
                    }
                    self.finish_reads(now, r);
                }
            }
            Phase::Copying(c) => {
                if c.deadline <= now {
                    let after = self.cfg.read_timeout;
                    for step in [&mut c.hactl, &mut c.cltab] {
                        if step.waiting() {
                            step.result = Some(Err(format!("the copy took longer than {after}")));
                        }
                    }
                    let Phase::Copying(c) =
                        std::mem::replace(&mut self.phase, Phase::Idle { at: now })
                    else {
                        return;
                    };
                    self.decide(now, *c);
                }
            }
        }
    }
}

/// The identity `known` holds for `node`, stepping past smaller nodes
/// (`known` ascending by node, `node` ascending between calls).
fn known(
    known: &mut std::iter::Peekable<impl Iterator<Item = (u32, ContentId)>>,
    node: u32,
) -> Option<ContentId> {
    while known.next_if(|(n, _)| *n < node).is_some() {}
    known.next_if(|(n, _)| *n == node).map(|(_, id)| id)
}
