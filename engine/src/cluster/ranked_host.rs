//! The cluster driver hosting the `ranked` policy machine
//! ([`crate::monitor::ranked::Ranked`]) instead of the classic
//! [`crate::monitor::Monitor`].
//!
//! Why a host and not a cycle policy: `ranked` is not a function of one
//! cycle's view. It reacts to every read of a peer's record, to its own
//! groups' status, to the result of every write, persist, kill and fence,
//! and it has timers of its own (heartbeat period P, lease deadline − δ,
//! takeover waits). So the driver keeps doing what it does for every policy
//! (membership, per-node reads with the engine's deadlines, `hactl`/`cltab`
//! replication and adoption, the init machine) and routes:
//!
//! * **into the machine**: the members of each membership read; each peer's
//!   heartbeat file, which under `ranked` *is* its checksummed record
//!   (a torn, empty or unparsable one is "unknown", never absent); this
//!   node's groups' status from its init machine whenever it changes; a
//!   newly adopted `hactl` or `cltab`; the result of every heartbeat write,
//!   persist and fence; and whether a kill landed within δ, judged here
//!   from the init machine's live children (the executor only reports
//!   exits);
//! * **out of it**: tells into the init machine (dropped when the driver
//!   reaches them at or after their not-after time), `KillAllNow` as
//!   [`ClusterCommand::KillAllNow`] (SIGKILL to every local process group)
//!   followed by `stop` to every local group (so nothing respawns), spawns
//!   carrying the lease deadline − δ as their not-after time, heartbeat
//!   writes only when the machine commands them (the driver's own
//!   heartbeat-file beat is off: a beat written by anyone else could
//!   extend a dead lease), persists of the durable state (retried until
//!   acknowledged), watchdog arming, and guarded fences.
//!
//! Re-entrancy: a command can change the init machine's status, which is an
//! input of the machine again. Inputs therefore go through a queue drained
//! by [`ClusterDriver::ranked_pump`], never by recursion.

use super::input::{ContentId, FileRead, IoFailure, SharedFile};
use super::{ClusterCommand, ClusterDriver, ClusterEvent, MembershipSource};
use crate::cltab::Cltab;
use crate::hactl::Hactl;
use crate::init::Input as InitInput;
use crate::monitor::ranked::{
    Command as RCommand, Config, Durable, Input as RInput, NodeInc, Ranked, RankedParams, Read,
    Record,
};
use crate::status::ClStat;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

/// A kill in flight: its deadline (now + δ) and whether "unconfirmed" was
/// already reported.
#[derive(Debug, Clone, Copy)]
struct Kill {
    deadline: Millis,
    reported: bool,
}

/// A persist to retry: when, and the version and state to write.
#[derive(Debug, Clone)]
struct PersistRetry {
    at: Millis,
    version: u64,
    state: Box<Durable>,
}

/// What the driver keeps for its `ranked` machine.
pub(crate) struct RankedHost {
    pub(crate) machine: Ranked,
    params: RankedParams,
    inbox: VecDeque<RInput>,
    pumping: bool,
    /// Heartbeat write seq → record counter.
    writes: BTreeMap<u64, u64>,
    /// Persist seq → (durable version, state), for retries.
    persists: BTreeMap<u64, (u64, Box<Durable>)>,
    persist_retry: Option<PersistRetry>,
    /// Fence seq → target.
    fences: BTreeMap<u64, NodeInc>,
    kill: Option<Kill>,
    last_own: ClStat,
    last_hactl: Option<Arc<Hactl>>,
    /// Content identity of each peer's last record fed in (unchanged
    /// records are not fed again: O(changed members) per cycle).
    record_ids: BTreeMap<u32, ContentId>,
    /// Peers whose last read fed to the machine was unknown: their next
    /// successful read is fed even when the record is unchanged
    /// ([`Read::Unchanged`]), so that the machine knows the failure ended.
    unknown_fed: BTreeSet<u32>,
    /// Parses shared with the other drivers of this process, if the
    /// executor gave any ([`ClusterDriver::share_record_parses`]).
    parses: Option<Arc<RecordParses>>,
    /// Live processes of earlier incarnations on this node, as the
    /// executor last reported them ([`super::ClusterDriver::leftovers`]):
    /// a kill is confirmed only once they are gone too.
    leftovers: usize,
    /// The machine's [`Ranked::heard_generation`] when the heard view was
    /// last compared (see `ClusterDriver::ranked_heard`).
    pub(crate) heard_seen: Option<(u64, u64)>,
}

impl RankedHost {
    /// A host for node `me`, its machine started at `now` with `durable`
    /// (what the previous run persisted, `None` on first start) and
    /// `known` as the initial known membership (ignored when `durable`
    /// carries one).
    pub(crate) fn new(
        me: u32,
        params: RankedParams,
        known: &[u32],
        durable: Option<Durable>,
        own: ClStat,
        now: Millis,
    ) -> RankedHost {
        let members = if known.is_empty() { vec![me] } else { known.to_vec() };
        let initial = Config { version: 1, members, voters: Vec::new() };
        let machine = Ranked::new(me, params.clone(), initial, durable, own.clone(), now);
        RankedHost {
            machine,
            params,
            inbox: VecDeque::new(),
            pumping: false,
            heard_seen: None,
            writes: BTreeMap::new(),
            persists: BTreeMap::new(),
            persist_retry: None,
            fences: BTreeMap::new(),
            kill: None,
            last_own: own,
            last_hactl: None,
            record_ids: BTreeMap::new(),
            unknown_fed: BTreeSet::new(),
            parses: None,
            leftovers: 0,
        }
    }

    /// Queue an input for the next [`ClusterDriver::ranked_pump`].
    pub(crate) fn push(&mut self, input: RInput) {
        self.inbox.push_back(input);
    }

    /// The next input for the machine. Record reads queued together are
    /// one batch's answers and come out as one [`RInput::Reads`], judged in
    /// one step.
    fn next_input(&mut self) -> Option<RInput> {
        let first = self.inbox.pop_front()?;
        if !matches!(self.inbox.front(), Some(RInput::Read { .. })) {
            return Some(first);
        }
        let RInput::Read { node, read } = first else { return Some(first) };
        let mut reads = vec![(node, read)];
        while let Some(RInput::Read { .. }) = self.inbox.front() {
            if let Some(RInput::Read { node, read }) = self.inbox.pop_front() {
                reads.push((node, read));
            }
        }
        Some(RInput::Reads(reads))
    }

    /// The earliest time the host wants a tick: the machine's timer, the
    /// kill's δ deadline, a persist retry.
    pub(crate) fn poll_timeout(&self) -> Option<Millis> {
        let kill = self.kill.filter(|k| !k.reported).map(|k| k.deadline);
        [self.machine.poll_timeout(), kill, self.persist_retry.as_ref().map(|r| r.at)]
            .into_iter()
            .flatten()
            .min()
    }

    /// How often a `ranked` node reads its peers: every half heartbeat
    /// period, P/2 (62 ms at the default P = 125 ms). Why not every P: a lease's
    /// acknowledgement crosses two read intervals (the voter's read of the
    /// holder's heartbeat, the holder's read of the voter's
    /// acknowledgement), and at fs visibility delays of H/4 the round trip
    /// with two full P intervals left no margin (see the budget in
    /// [`crate::monitor::ranked::lease`]): one failed read broke every
    /// lease. The cost is one small read per member per P/2, and nothing
    /// is fed to the machine for a record that did not change.
    pub(crate) fn read_period(&self) -> Millis {
        Millis(self.params.heartbeat.0 / 2).max(Millis(1))
    }

    /// The not-after time of a spawn decided now: the lease deadline − δ,
    /// `None` while no lease is held (stop scripts after a lost lease).
    pub(crate) fn spawn_not_after(&self) -> Option<Millis> {
        self.machine.lease_deadline().map(|d| d.saturating_sub(self.params.kill_bound))
    }

    /// The content identity of `node`'s last record fed in.
    pub(crate) fn known_record(&self, node: u32) -> Option<ContentId> {
        self.record_ids.get(&node).copied()
    }

    /// Turn the heartbeat file of a peer's read into a machine input
    /// (`None` when it is unchanged since the last one fed in, unless the
    /// last one was unknown).
    pub(crate) fn record_read(&mut self, node: u32, path: &str, read: FileRead) -> Option<RInput> {
        let read = match read {
            Ok(Some(version)) => match version.bytes {
                None if self.record_ids.get(&node) == Some(&version.id) => {
                    return self.unchanged(node);
                }
                None => Read::Unknown(format!("{path}: content not sent")),
                Some(bytes) => {
                    self.record_ids.insert(node, version.id);
                    match &self.parses {
                        Some(parses) => parses.parse(node, path, &bytes),
                        None => parse_record(path, &bytes),
                    }
                }
            },
            Ok(None) => Read::Unknown(format!("{path}: no record yet")),
            Err(e) => Read::Unknown(e.to_string()),
        };
        Some(self.fed(node, read))
    }

    /// `read` of `node` as the machine's input, remembering whether it
    /// was unknown (see `unknown_fed`).
    pub(crate) fn fed(&mut self, node: u32, read: Read) -> RInput {
        if matches!(read, Read::Unknown(_)) {
            self.unknown_fed.insert(node);
        } else {
            self.unknown_fed.remove(&node);
        }
        RInput::Read { node, read }
    }

    /// A successful read of `node` that found its record unchanged: an
    /// input only when the last one fed was unknown.
    pub(crate) fn unchanged(&mut self, node: u32) -> Option<RInput> {
        self.unknown_fed.remove(&node).then_some(RInput::Read { node, read: Read::Unchanged })
    }
}

/// The last parse of each writer's record, shared by the drivers of one
/// process (the simulator's nodes, which all read the same bytes).
///
/// Why: every record a node writes is new (a new counter and new
/// acknowledgements), so each reader's content-identity check lets it
/// through and each reader parsed and checksummed it anew: N − 1 parses of
/// the same bytes, a sixth of a 10-node `ranked` simulation. Parsing is a
/// pure function of the bytes, so a reader handed the very bytes (the same
/// `Arc`, compared by address: the executor's own copy, not by content)
/// that another reader parsed gets that parse, a shared [`Record`]. Only
/// parses that gave a record are kept (an "unknown" names the reader's
/// path); one entry per writer, holding its bytes so that their address
/// cannot be reused while the entry stands. A reader gets an equal
/// [`Read`] with or without it (`record_parses_answer_as_parse_record`), so
/// decisions are the same.
#[derive(Debug, Default)]
pub struct RecordParses {
    last: Mutex<BTreeMap<u32, Parsed>>,
}

/// The bytes of a writer's record (held, so their address stays theirs)
/// and the record parsed from them.
type Parsed = (Arc<[u8]>, Arc<Record>);

impl RecordParses {
    /// [`parse_record`] of `bytes`, the heartbeat file of `node` at `path`,
    /// or the record parsed from these very bytes before.
    pub fn parse(&self, node: u32, path: &str, bytes: &Arc<[u8]>) -> Read {
        let Ok(mut last) = self.last.lock() else { return parse_record(path, bytes) };
        if let Some((seen, record)) = last.get(&node) {
            if Arc::ptr_eq(seen, bytes) {
                return Read::Record(record.clone());
            }
        }
        let read = parse_record(path, bytes);
        if let Read::Record(record) = &read {
            last.insert(node, (bytes.clone(), record.clone()));
        }
        read
    }
}

/// The trace record of a `ranked` machine's creation: exactly what
/// [`RankedHost::new`] gives [`Ranked::new`], so a replay builds the same
/// machine and, fed the recorded inputs, decides the same.
pub(super) fn start_record(
    cfg: &super::ClusterConfig,
    params: &RankedParams,
    durable: &Option<Durable>,
    own: &ClStat,
    now: Millis,
) -> crate::trace::Record {
    let members = if cfg.known.is_empty() { vec![cfg.me] } else { cfg.known.clone() };
    crate::trace::Record::RankedStart {
        node: cfg.me,
        at: now,
        params: params.clone(),
        initial: Config { version: 1, members, voters: Vec::new() },
        durable: durable.clone(),
        own: own.clone(),
    }
}

/// A record's bytes as the machine reads them: a record that parses and
/// passes its checksum; `classic`'s heartbeat (another policy, see
/// [`crate::monitor::ranked::record::other_policy`]); else "unknown"
/// naming the file (never absent).
pub fn parse_record(path: &str, bytes: &[u8]) -> Read {
    match std::str::from_utf8(bytes) {
        Err(e) => Read::Unknown(format!("{path}: not UTF-8 ({e})")),
        Ok(text) => match Record::parse(text) {
            Ok(r) => Read::Record(Arc::new(r)),
            Err(e) => match crate::monitor::ranked::record::other_policy(text) {
                Some(policy) => Read::OtherPolicy(policy.to_string()),
                None => Read::Unknown(format!("{path}: {e}")),
            },
        },
    }
}

impl ClusterDriver {
    /// Is this driver hosting `ranked`?
    pub fn is_ranked(&self) -> bool {
        self.ranked.is_some()
    }

    /// Share record parses with the other drivers of this process (see
    /// [`RecordParses`]); no effect under `classic`. Optional: without it
    /// each driver parses every record it reads.
    pub fn share_record_parses(&mut self, parses: Arc<RecordParses>) {
        if let Some(h) = self.ranked.as_mut() {
            h.parses = Some(parses);
        }
    }

    /// The hosted `ranked` machine (lease, incarnation, the record it
    /// publishes), for status output and tests.
    pub fn ranked(&self) -> Option<&Ranked> {
        self.ranked.as_ref().map(|h| &h.machine)
    }

    pub(super) fn ranked_queue(&mut self, input: RInput) {
        if let Some(h) = self.ranked.as_mut() {
            h.inbox.push_back(input);
        }
    }

    /// After an init step: queue the local groups' status when it changed.
    pub(super) fn ranked_note_own(&mut self) {
        let Some(h) = self.ranked.as_mut() else { return };
        let own = self.node.driver.init.status();
        if own != h.last_own {
            h.last_own = own.clone();
            h.inbox.push_back(RInput::Own(own));
        }
    }

    /// Per cycle: membership, a newly adopted hactl or cltab.
    pub(super) fn ranked_cycle(
        &mut self,
        members: Vec<u32>,
        hactl: Option<&Arc<Hactl>>,
        cltab: Option<&Cltab>,
    ) {
        let heartbeat_files = self.cfg.membership == MembershipSource::HeartbeatFiles;
        let Some(h) = self.ranked.as_mut() else { return };
        // Heartbeat files are no membership verdict under ranked: which
        // files could be read says nothing about a node's counter, and a
        // "down" from one unreadable (or not yet written) file revoked a
        // live incarnation at once, durably, so that it stayed revoked for
        // as long as it held its lease through the others. The machine
        // judges heartbeat-file members by their counters alone.
        if !heartbeat_files {
            h.inbox.push_back(RInput::Membership(members));
        }
        if let Some(hactl) = hactl {
            if h.last_hactl.as_ref() != Some(hactl) {
                h.last_hactl = Some(hactl.clone());
                h.inbox.push_back(RInput::Hactl(hactl.clone()));
            }
        }
        if cltab.is_some() {
            h.inbox.push_back(RInput::CltabChanged);
        }
    }

    /// A heartbeat write's result; `true` when it was a record write.
    pub(super) fn ranked_written(
        &mut self,
        now: Millis,
        seq: u64,
        result: &Result<(), IoFailure>,
    ) -> bool {
        let Some(h) = self.ranked.as_mut() else { return false };
        let Some(counter) = h.writes.remove(&seq) else { return false };
        h.inbox.push_back(RInput::Written { counter, ok: result.is_ok() });
        if let Err(error) = result {
            // The machine writes a fresh record at its next period.
            let retry_at = now + h.params.heartbeat;
            self.events.push_back(ClusterEvent::WriteFailed {
                file: SharedFile::Heartbeat,
                seq,
                error: error.clone(),
                retry_at,
            });
        }
        true
    }

    pub(super) fn ranked_persisted(
        &mut self,
        now: Millis,
        seq: u64,
        result: Result<(), IoFailure>,
    ) {
        let retry = self.retry_delay();
        let Some(h) = self.ranked.as_mut() else { return };
        let Some((version, state)) = h.persists.remove(&seq) else { return };
        match result {
            Ok(()) => h.inbox.push_back(RInput::Persisted { version }),
            Err(error) => {
                // Retry the newest state that is not on disk yet.
                let newer = h.persist_retry.as_ref().is_some_and(|r| r.version > version)
                    || h.persists.values().any(|(v, _)| *v > version);
                if !newer {
                    h.persist_retry = Some(PersistRetry { at: now + retry, version, state });
                }
                self.events.push_back(ClusterEvent::PersistFailed { error });
            }
        }
    }

    /// The executor's count of live processes of earlier incarnations on
    /// this node (see [`super::ClusterDriver::leftovers`]).
    pub(super) fn ranked_leftovers(&mut self, live: usize) {
        let Some(h) = self.ranked.as_mut() else { return };
        let was = h.leftovers;
        h.leftovers = live;
        if was == 0 && live > 0 {
            h.inbox.push_back(RInput::Leftovers { live });
        }
    }

    /// The executor's word on its watchdog process (see
    /// [`ClusterInput::Watchdog`](super::ClusterInput::Watchdog)).
    pub(super) fn ranked_watchdog(&mut self, up: bool) {
        if let Some(h) = self.ranked.as_mut() {
            h.inbox.push_back(RInput::Watchdog { up });
        }
    }

    /// A fence result; `true` when it answered a `ranked` fence.
    pub(super) fn ranked_fenced(&mut self, seq: u64, ok: bool) -> bool {
        let Some(h) = self.ranked.as_mut() else { return false };
        let Some(target) = h.fences.remove(&seq) else { return false };
        h.inbox.push_back(RInput::Fenced { target, ok });
        true
    }

    /// Fire what is due (tick, kill judgement, persist retry) and drain the
    /// machine's inbox, carrying out its commands.
    pub(super) fn ranked_pump(&mut self, now: Millis) {
        let live = self.node.driver.init.live_processes();
        let Some(h) = self.ranked.as_mut() else { return };
        if h.pumping {
            return;
        }
        let live = live + h.leftovers;
        if let Some(k) = &mut h.kill {
            if live == 0 {
                h.kill = None;
                h.inbox.push_back(RInput::KillDone { confirmed: true });
            } else if now >= k.deadline && !k.reported {
                k.reported = true;
                h.inbox.push_back(RInput::KillDone { confirmed: false });
            }
        }
        if h.persist_retry.as_ref().is_some_and(|r| r.at <= now) {
            if let Some(r) = h.persist_retry.take() {
                let seq = self.next_seq();
                let h = self.ranked.as_mut().expect("checked above");
                h.persists.insert(seq, (r.version, r.state.clone()));
                self.commands.push_back(ClusterCommand::Persist { seq, state: r.state });
            }
        }
        let Some(h) = self.ranked.as_mut() else { return };
        // The machine steps on its own inputs and at its own timeout, never
        // merely because the driver handled something: `decide` is the
        // machine's whole judgement (O(members) and more), and the driver
        // handles one input per member read, child exit and write result.
        // Every step re-arms the machine's timer, so a Tick is only due
        // when that timer has come and no input steps it anyway.
        // A machine without a timer (never stepped yet, or waiting on a
        // persist) is stepped too: otherwise a node whose reads never answer
        // would never persist its incarnation nor publish a record.
        if h.inbox.is_empty() && h.machine.poll_timeout().is_none_or(|t| t <= now) {
            h.inbox.push_back(RInput::Tick);
        }
        h.pumping = true;
        // Bounded: each command can queue at most one status change.
        let mut budget = 10_000u32;
        while let Some(input) = self.ranked.as_mut().and_then(RankedHost::next_input) {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
            let Some(h) = self.ranked.as_mut() else { break };
            let out = h.machine.step(now, input);
            for c in out.commands {
                self.ranked_command(now, c);
            }
        }
        if let Some(h) = self.ranked.as_mut() {
            h.pumping = false;
        }
        self.ranked_heard();
    }

    fn ranked_command(&mut self, now: Millis, command: RCommand) {
        match command {
            RCommand::Persist { version, state } => {
                let seq = self.next_seq();
                if let Some(h) = self.ranked.as_mut() {
                    h.persists.insert(seq, (version, state.clone()));
                    h.persist_retry = None;
                }
                self.commands.push_back(ClusterCommand::Persist { seq, state });
            }
            RCommand::WriteRecord { counter, text } => {
                let seq = self.next_seq();
                if let Some(h) = self.ranked.as_mut() {
                    h.writes.insert(seq, counter);
                }
                let payload = Some(Arc::<[u8]>::from(text.into_bytes()));
                self.commands.push_back(ClusterCommand::WriteHeartbeat { seq, counter, payload });
            }
            RCommand::Tell { group, level, not_after } => {
                if let Some(na) = not_after.filter(|na| now >= *na) {
                    let late_by = now.saturating_sub(na);
                    self.events.push_back(ClusterEvent::LateTellDropped { group, level, late_by });
                    return;
                }
                self.node.told(&group, &level);
                let tell = InitInput::Tell { group: group.clone(), level: level.clone() };
                let reply = self.init_step(now, tell);
                // Refused (no such group in this node's cltab, shutting
                // down...): the machine must know, or a claim it asked for
                // would stand while nothing happens here.
                if !reply.is_ok() {
                    let reason = reply.message();
                    self.ranked_queue(RInput::TellRefused { group, level, reason });
                }
            }
            RCommand::KillAllNow => {
                let kill_bound = self.ranked.as_ref().map_or(Millis(0), |h| h.params.kill_bound);
                self.commands.push_back(ClusterCommand::KillAllNow);
                if let Some(h) = self.ranked.as_mut() {
                    h.kill = Some(Kill { deadline: now + kill_bound, reported: false });
                }
                // Recorded (`Record::StopAll`): a replay of a lease loss
                // must stop the groups the recording stopped.
                let (_, executed) = self.stop_all_traced(now);
                self.absorb(now, executed);
                let live = self.node.driver.init.live_processes();
                // Orphans of earlier incarnations count too: they are
                // killed by the same command and must be gone as well.
                if let Some(h) = self.ranked.as_mut().filter(|h| live + h.leftovers == 0) {
                    h.kill = None;
                    h.inbox.push_back(RInput::KillDone { confirmed: true });
                }
            }
            RCommand::Watchdog { epoch, deadline } => {
                self.commands.push_back(ClusterCommand::ArmWatchdog { epoch, deadline });
            }
            RCommand::Fence { target, reason, guard } => {
                let why = match reason {
                    crate::monitor::ranked::fencing::FenceReason::MustMove => {
                        "its groups must move and it has not published a release"
                    }
                    crate::monitor::ranked::fencing::FenceReason::CannotWait => {
                        "waiting for its lease and watchdog would exceed the failover bound"
                    }
                    crate::monitor::ranked::fencing::FenceReason::TieBreaker => {
                        "it is the lost tie-breaker of an exact half"
                    }
                };
                self.events.push_back(ClusterEvent::FenceOrdered {
                    node: target.node,
                    incarnation: target.incarnation,
                    reason: why.to_string(),
                });
                let seq = self.next_seq();
                let mut read_within = Millis(0);
                if let Some(h) = self.ranked.as_mut() {
                    h.fences.insert(seq, target);
                    read_within = h.params.read_deadline;
                }
                let fence = ClusterCommand::FenceRanked { seq, target, guard, reason, read_within };
                self.commands.push_back(fence);
            }
            RCommand::Log(notice) => self.events.push_back(ClusterEvent::Ranked(notice)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::ranked::record::tests::sample;

    /// The memo answers exactly as [`parse_record`] does, shares the parse
    /// only for the very same bytes (by address), and keeps no "unknown".
    #[test]
    fn record_parses_answer_as_parse_record() {
        let parses = RecordParses::default();
        let text = sample().render();
        let bytes: Arc<[u8]> = Arc::from(text.clone().into_bytes());
        let first = parses.parse(2, "/mfs/2/heartbeat", &bytes);
        assert_eq!(first, parse_record("/mfs/2/heartbeat", &bytes));
        let again = parses.parse(2, "/mfs/2/heartbeat", &bytes);
        match (&first, &again) {
            (Read::Record(a), Read::Record(b)) => {
                assert!(Arc::ptr_eq(a, b), "same bytes, one parse")
            }
            other => panic!("not records: {other:?}"),
        }
        // Equal content at another address is parsed anew (and equal).
        let copy: Arc<[u8]> = Arc::from(text.into_bytes());
        let other = parses.parse(2, "/mfs/2/heartbeat", &copy);
        match (&first, &other) {
            (Read::Record(a), Read::Record(b)) => assert!(!Arc::ptr_eq(a, b) && a == b),
            other => panic!("not records: {other:?}"),
        }
        // A torn record is "unknown" naming the reader's path, every time.
        let torn: Arc<[u8]> = Arc::from(b"clinit-ranked 1\nnode 2\n".to_vec());
        for path in ["/a/heartbeat", "/b/heartbeat"] {
            let read = parses.parse(3, path, &torn);
            assert_eq!(read, parse_record(path, &torn));
            assert!(matches!(&read, Read::Unknown(m) if m.starts_with(path)), "{read:?}");
        }
    }
}
