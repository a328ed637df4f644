//! The [`Ranked`] machine: inputs, commands, and one decision pass.
//!
//! Every call of [`Ranked::step`] applies one input and then runs the whole
//! decision pass (membership, revocations, own lease, judgement of the
//! others, fencing, grants, groups, watchdog, heartbeat). The pass is
//! O(members × groups) and idempotent: calling it twice at the same time
//! with nothing new emits nothing new.

use super::claims::{self, Grant, Holder};
use super::eligibility::Eligibility;
use super::fencing::{FenceReason, Fences, Votes};
use super::lease::{lease_counter, Contact};
use super::membership::{self, ChangeError};
use super::quorum::is_quorum;
use super::rank::rank;
use super::record::{self, Change, Config, Epoch, LeaseState, NodeInc, Record, Seen};
use super::{RankedParams, Rules};
use crate::hactl::Hactl;
use crate::status::{ClStat, GroupState, GroupStatus};
use crate::time::{earliest, Millis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What this node must keep across restarts (including `mosha -9`), in
/// local storage. Persisted on [`Command::Persist`]; nothing that depends
/// on it is published before [`Input::Persisted`] confirms it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    /// Bumped at every start: a restart is a new incarnation.
    pub incarnation: u64,
    /// The known membership (replicated configuration).
    pub config: Config,
    /// The one membership change acknowledged for `config.version`.
    pub config_ack: Option<Change>,
    /// Node → (incarnation, counter) acknowledged up to, never beyond.
    pub revocations: BTreeMap<u32, Seen>,
    /// Group → the claim this node grants.
    pub grants: BTreeMap<String, Grant>,
}

/// One read of another node's record, as the executor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A record that parsed and passed its checksum.
    Record(Box<Record>),
    /// Unreadable, torn, empty, failed checksum, or the read deadline
    /// passed: unknown, never absent. The reason is for the log.
    Unknown(String),
    /// The node publishes no ranked record but another policy's status
    /// (named): a rolling upgrade. `ranked` then takes nothing over.
    OtherPolicy(String),
}

/// An input, with the node's boot-clock time given to [`Ranked::step`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Nothing new: time passed (see [`Ranked::poll_timeout`]).
    Tick,
    /// The membership source's live nodes (a node it says is down is
    /// revoked at once: `detect=0` in the simulator).
    Membership(Vec<u32>),
    /// A read of `node`'s record.
    Read { node: u32, read: Read },
    /// This node's groups' status, from its own init machine.
    Own(ClStat),
    /// A newly adopted `hactl` (resets eligibility memory).
    Hactl(Arc<Hactl>),
    /// `cltab` changed (resets eligibility memory).
    CltabChanged,
    /// Durable state up to `version` is on disk.
    Persisted { version: u64 },
    /// The heartbeat with `counter` was written (`ok`) or failed.
    Written { counter: u64, ok: bool },
    /// A fence of `target` ended: `ok` means its services are dead.
    Fenced { target: NodeInc, ok: bool },
    /// The [`Command::KillAllNow`] ended; `confirmed`: every service
    /// process is gone.
    KillDone { confirmed: bool },
    /// The operator asks for a new membership (one node added or removed).
    ProposeMembers(Vec<u32>),
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Store `state` durably, then answer [`Input::Persisted`].
    Persist { version: u64, state: Box<Durable> },
    /// Write this node's record (whole, by rename), then answer
    /// [`Input::Written`]. Only the engine writes heartbeats.
    WriteRecord { counter: u64, text: String },
    /// Tell the local init machine to move `group` to `level`. When
    /// `not_after` is set (the lease deadline − δ, boot clock), the executor
    /// must drop the command if it runs it at or after that time.
    Tell { group: String, level: String, not_after: Option<Millis> },
    /// The lease is lost: SIGKILL every service process group (or kill the
    /// cgroups) now, without the INT/TERM escalation, set every local group
    /// to `stop`, then answer [`Input::KillDone`].
    KillAllNow,
    /// Hand the watchdog its deadline for lease `epoch`, which is
    /// (incarnation, epoch within it), so a restarted monitor's epochs are
    /// newer than its predecessor's (`None`: nothing may run; keep the
    /// service cgroups empty).
    Watchdog { epoch: (u64, u64), deadline: Option<Millis> },
    /// Fence `target`, then answer [`Input::Fenced`]. Compare-and-fence:
    /// right before firing, the executor re-reads the target's record and
    /// skips the fence (answering `ok: false`) when `guard` says the target
    /// came back (a frozen monitor that wakes up, or a kill that finally
    /// worked, is not shot needlessly).
    Fence { target: NodeInc, reason: FenceReason, guard: FenceGuard },
    /// Worth a log line.
    Log(RankedNotice),
}

/// When the executor must skip a fence it was asked for (see
/// [`Command::Fence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FenceGuard {
    /// Skip if the target's record shows a heartbeat newer than this.
    Silent(Option<Seen>),
    /// Skip if the target's newest record no longer says `lost`.
    StillLost,
}

impl FenceGuard {
    /// Should a fence guarded so be skipped, given the target's newest
    /// readable record (`None`: unreadable)?
    pub fn skip(&self, newest: Option<&Record>) -> bool {
        match (self, newest) {
            (_, None) => false,
            (FenceGuard::Silent(seen), Some(r)) => {
                seen.is_none_or(|s| Seen { incarnation: r.incarnation, counter: r.counter } > s)
            }
            (FenceGuard::StillLost, Some(r)) => r.lease != LeaseState::Lost,
        }
    }
}

/// Things an operator should be able to read in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RankedNotice {
    LeaseAcquired {
        epoch: u64,
        deadline: Millis,
    },
    LeaseLost {
        epoch: u64,
    },
    /// The kill after a lost lease was not confirmed: published `lost`,
    /// nobody takes over without a fence.
    KillUnconfirmed,
    Revoked {
        node: u32,
        up_to: Seen,
    },
    RevocationLifted {
        node: u32,
    },
    /// `node`'s claims are void from here on.
    Void {
        node: u32,
        incarnation: u64,
        why: &'static str,
    },
    Unknown {
        node: u32,
        reason: String,
    },
    /// The claim on `group` is granted by `grantors` (fence votes included):
    /// the group is started here.
    ClaimHeld {
        group: String,
        grantors: BTreeSet<u32>,
    },
    /// This node is in standby (`#@standby` in hactl): `group` is stopped
    /// here gracefully, and another node takes it (issue 12).
    StandbyDrain {
        group: String,
    },
    /// A better-ranked running instance keeps `group`; stopped here.
    Conflict {
        group: String,
        keeper: u32,
    },
    TestFailed {
        group: String,
        until: Millis,
    },
    /// `node` publishes another policy: nothing is taken over.
    MixedPolicy {
        node: u32,
        policy: String,
    },
    ChangeRefused(String),
    ConfigAdopted(Config),
    /// No step for `gap` (more than H/2): suspicion restarts from now.
    Resumed {
        gap: Millis,
    },
    /// A record that names another node was refused.
    Misfiled {
        node: u32,
        names: u32,
    },
}

/// The answer to one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub commands: Vec<Command>,
}

/// What this node knows of another.
#[derive(Debug, Clone, Default)]
struct Peer {
    record: Option<Arc<Record>>,
    unknown: Option<String>,
    other_policy: Option<String>,
    contact: Option<Contact>,
    /// First sight of a quorum of revocations of (incarnation), own clock.
    revoked_since: Option<(u64, Millis)>,
    /// When this node revoked it (own clock), for the tie-breaker delay.
    revoked_by_me_at: Option<Millis>,
    /// Read since this node's start (wait_for_all).
    seen: bool,
    void_logged: Option<u64>,
    /// (incarnation, epoch floor) proven void (fenced or lease ran out).
    void_epoch: Option<(u64, u64)>,
}

/// The lease phase of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Holding,
    Released,
    /// Kill sent, not confirmed yet (or failed).
    Killing,
}

/// The `ranked` policy machine of one node.
#[derive(Debug, Clone)]
pub struct Ranked {
    me: u32,
    params: RankedParams,
    pub(crate) rules: Rules,
    started: Millis,
    now: Millis,
    durable: Durable,
    durable_version: u64,
    emitted_version: u64,
    outstanding: BTreeMap<u64, Durable>,
    persisted: Option<Durable>,
    counter: u64,
    sent: BTreeMap<u64, Millis>,
    next_heartbeat: Millis,
    last_heartbeat: Option<Millis>,
    phase: Phase,
    kill_failed: bool,
    epoch: u64,
    epoch_floor: u64,
    deadline: Option<Millis>,
    watchdog_sent: Option<((u64, u64), Option<Millis>)>,
    peers: BTreeMap<u32, Peer>,
    live: Option<BTreeSet<u32>>,
    own: ClStat,
    hactl: Option<Arc<Hactl>>,
    eligibility: Eligibility,
    fences: Fences,
    my_votes: BTreeMap<u32, u64>,
    /// Tie-breakers this node fenced (their votes go with it).
    my_tie_votes: BTreeMap<u32, u64>,
    /// Why each fence in flight was asked for.
    fence_reasons: BTreeMap<NodeInc, FenceReason>,
    /// First sight of each known fence (node, incarnation), own clock.
    fence_seen: BTreeMap<(u32, u64), Millis>,
    /// Group → request id (the counter when this node began asking).
    claims: BTreeMap<String, u64>,
    unplaced_since: BTreeMap<String, Millis>,
    told: BTreeMap<String, String>,
    seen_all: bool,
    wake: Option<Millis>,
    out: Vec<Command>,
}

/// How a peer's claims stand, from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Judgement {
    void: bool,
    revoked_quorum: bool,
}

impl Ranked {
    /// A machine for node `me`, started at `now` (boot clock). `durable` is
    /// what the last run persisted (`None` on first start: the known
    /// membership is then `initial`); `own` is the local groups' status
    /// (non-idle groups left by a previous run are killed first: a new
    /// incarnation starts with nothing running).
    pub fn new(
        me: u32,
        params: RankedParams,
        initial: Config,
        durable: Option<Durable>,
        own: ClStat,
        now: Millis,
    ) -> Ranked {
        let durable = match durable {
            Some(mut d) => {
                d.incarnation += 1;
                d
            }
            None => Durable {
                incarnation: 1,
                config: Config {
                    version: initial.version,
                    members: membership::normalise(&initial.members),
                },
                config_ack: None,
                revocations: BTreeMap::new(),
                grants: BTreeMap::new(),
            },
        };
        let leftovers = own.groups.values().any(|st| !crate::hastat::is_idle(&st.level, &st.state));
        Ranked {
            me,
            params,
            rules: Rules::default(),
            started: now,
            now,
            durable,
            durable_version: 1,
            emitted_version: 0,
            outstanding: BTreeMap::new(),
            persisted: None,
            counter: 0,
            sent: BTreeMap::new(),
            next_heartbeat: now,
            last_heartbeat: None,
            phase: if leftovers { Phase::Killing } else { Phase::Released },
            kill_failed: false,
            epoch: 0,
            epoch_floor: 1,
            deadline: None,
            watchdog_sent: None,
            peers: BTreeMap::new(),
            live: None,
            own,
            hactl: None,
            eligibility: Eligibility::default(),
            fences: Fences::default(),
            my_votes: BTreeMap::new(),
            my_tie_votes: BTreeMap::new(),
            fence_reasons: BTreeMap::new(),
            fence_seen: BTreeMap::new(),
            claims: BTreeMap::new(),
            unplaced_since: BTreeMap::new(),
            told: BTreeMap::new(),
            seen_all: false,
            wake: None,
            out: if leftovers { vec![Command::KillAllNow] } else { Vec::new() },
        }
    }

    pub fn me(&self) -> u32 {
        self.me
    }

    pub fn incarnation(&self) -> u64 {
        self.durable.incarnation
    }

    pub fn params(&self) -> &RankedParams {
        &self.params
    }

    /// The known membership this node uses now.
    pub fn config(&self) -> &Config {
        &self.durable.config
    }

    /// The lease deadline (boot clock) while the lease holds.
    pub fn lease_deadline(&self) -> Option<Millis> {
        (self.phase == Phase::Holding).then_some(self.deadline).flatten()
    }

    /// The lease state this node publishes.
    pub fn lease_state(&self) -> LeaseState {
        match self.phase {
            Phase::Holding => LeaseState::Holding,
            Phase::Released => LeaseState::Released,
            Phase::Killing => LeaseState::Lost,
        }
    }

    /// When to call [`Ranked::step`] with [`Input::Tick`] next. Changed by
    /// every call of `step`.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.wake
    }

    /// Apply `input` at `now` (boot clock; a time earlier than a previous
    /// one is taken as the previous one) and decide.
    pub fn step(&mut self, now: Millis, input: Input) -> Output {
        let gap = now.saturating_sub(self.now);
        self.now = self.now.max(now);
        if gap > Millis(self.params.lease.0 / 2) {
            self.resumed(gap);
        }
        self.apply(input);
        self.decide();
        Output { commands: std::mem::take(&mut self.out) }
    }

    /// No step for more than H/2: this monitor was frozen (SIGSTOP, swap
    /// death) or its executor hung. What it remembers is stale, so, as at a
    /// start, it counts last contact with everyone from now and restarts the
    /// tie-breaker delay. This only delays suspicion (the safe direction);
    /// its own lease is judged from its own emission times, so a lease that
    /// ran out during the gap is seen as lost at once.
    fn resumed(&mut self, gap: Millis) {
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

    fn log(&mut self, notice: RankedNotice) {
        self.out.push(Command::Log(notice));
    }

    fn wake_at(&mut self, at: Millis) {
        self.wake = earliest(self.wake, Some(at.max(self.now)));
    }

    fn set_durable(&mut self, f: impl FnOnce(&mut Durable)) {
        let before = self.durable.clone();
        f(&mut self.durable);
        if self.durable != before {
            self.durable_version += 1;
        }
    }

    fn apply(&mut self, input: Input) {
        let now = self.now;
        match input {
            Input::Tick => {}
            Input::Membership(live) => self.live = Some(live.into_iter().collect()),
            Input::Read { node, read } => self.apply_read(node, read),
            Input::Own(own) => {
                for (g, st) in &own.groups {
                    if self.told.get(g) == Some(&st.level) {
                        self.told.remove(g);
                    }
                }
                self.own = own;
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
                    } else if !self.kill_failed {
                        self.kill_failed = true;
                        self.log(RankedNotice::KillUnconfirmed);
                    }
                }
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
    fn hurry(&mut self) {
        let soon = match self.last_heartbeat {
            Some(t) => t + Millis(self.params.heartbeat.0 / 4),
            None => self.now,
        };
        self.next_heartbeat = self.next_heartbeat.min(soon);
    }

    fn apply_read(&mut self, node: u32, read: Read) {
        if node == self.me {
            return;
        }
        let now = self.now;
        let started = self.started;
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
                contact.observe(seen, now);
                peer.seen = true;
                peer.unknown = None;
                peer.other_policy = None;
                if rec.policy != record::POLICY {
                    peer.other_policy = Some(rec.policy.clone());
                }
                peer.record = Some(Arc::new(*rec));
                self.fences.came_back(node, seen.incarnation);
            }
            Read::Unknown(reason) => {
                let new = peer.unknown.as_ref() != Some(&reason);
                peer.unknown = Some(reason.clone());
                if new {
                    self.log(RankedNotice::Unknown { node, reason });
                }
            }
            Read::OtherPolicy(policy) => {
                let new = peer.other_policy.as_ref() != Some(&policy);
                peer.other_policy = Some(policy.clone());
                if new {
                    self.log(RankedNotice::MixedPolicy { node, policy });
                }
            }
        }
    }

    /// Does this node hear `n` now: itself, or a member the membership
    /// source does not call down whose counter moved within
    /// `suspect_after`?
    fn hears(&self, n: u32) -> bool {
        if n == self.me {
            return true;
        }
        let down = self.live.as_ref().is_some_and(|l| !l.contains(&n));
        let silent = self
            .peers
            .get(&n)
            .and_then(|p| p.contact)
            .is_none_or(|c| c.silent(self.now, self.params.suspect_after));
        !down && !silent
    }

    fn members(&self) -> Vec<u32> {
        self.durable.config.members.clone()
    }

    fn record_of(&self, node: u32) -> Option<&Arc<Record>> {
        self.peers.get(&node).and_then(|p| p.record.as_ref())
    }

    fn latest(&self, node: u32) -> Option<Seen> {
        self.peers.get(&node).and_then(|p| p.contact).and_then(|c| c.latest)
    }

    /// Fences this node knows of (its own and those others publish), each
    /// until a newer incarnation of the fenced node is seen, and the subset
    /// that votes: a fence proves at once that the target's services are
    /// dead (its claims are void), but it votes only `H·(1+ρ)+δ` after this
    /// node first saw it, when no lease can still rest on the target's last
    /// real acknowledgements or grants (which may have gone to the other
    /// side before it died).
    fn fence_votes(&mut self) -> (Votes, Votes) {
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

    fn known_fences(
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
        votes
    }

    /// May the tie-breaker decide an exact half now?
    fn tie_ready(&self, votes: &Votes) -> bool {
        let Some(&t) = self.durable.config.members.iter().min() else {
            return false;
        };
        if !self.rules.wait_for_all || votes.contains(t) {
            return true;
        }
        if t == self.me {
            return self.seen_all;
        }
        self.record_of(t).is_some_and(|r| r.seen_all)
    }

    fn published_durable(&self) -> Option<&Durable> {
        if self.rules.durable_revocation {
            self.persisted.as_ref()
        } else {
            Some(&self.durable)
        }
    }

    fn decide(&mut self) {
        self.wake = None;
        let (fenced, votes) = self.fence_votes();
        self.membership_pass();
        // wait_for_all: every member has acknowledged this incarnation (so
        // none still counts a fence vote of an older one), or is fenced.
        let inc = self.durable.incarnation;
        self.seen_all = self.seen_all
            || self.members().iter().all(|&m| {
                m == self.me
                    || self
                        .record_of(m)
                        .and_then(|r| r.ack_of(self.me))
                        .is_some_and(|a| a.incarnation == inc)
                    || votes.contains(m)
            });
        self.revocation_pass();
        self.lease_pass(&votes);
        let judged = self.judge(&votes, &fenced);
        self.fence_pass(&votes, &judged);
        self.grant_pass(&judged);
        self.group_pass(&votes, &judged);
        self.watchdog_pass();
        self.persist_pass();
        self.heartbeat_pass();
        if let Some(at) = self.eligibility.next_expiry(self.now) {
            self.wake_at(at);
        }
        if let Some(at) = self.fences.next_retry() {
            self.wake_at(at);
        }
    }

    fn membership_pass(&mut self) {
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
        // Acknowledge a change others propose, if none acknowledged yet
        // (with the rule off: switch to any newer proposal seen).
        if !self.rules.one_change_per_version {
            let newest = self
                .peers
                .values()
                .filter_map(|p| p.record.as_ref())
                .filter_map(|r| r.config_ack.clone())
                .filter(|c| {
                    membership::one_at_a_time(&config, &c.members).is_ok()
                        && c.replaces == config.version
                })
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
                .filter(|c| membership::may_ack(&config, None, c).is_ok())
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
        if membership::committed(&config, &change, &ackers) {
            let next = Config { version: config.version + 1, members: change.members.clone() };
            self.set_durable(|d| {
                d.config = next.clone();
                d.config_ack = None;
            });
            self.log(RankedNotice::ConfigAdopted(next));
        }
    }

    /// Revoke silent or departed members; lift revocations of nodes that
    /// released or restarted.
    fn revocation_pass(&mut self) {
        let now = self.now;
        for node in self.members() {
            if node == self.me {
                continue;
            }
            let started = self.started;
            let peer = self.peers.entry(node).or_default();
            let contact = *peer.contact.get_or_insert_with(|| Contact::new(started));
            let down = self.live.as_ref().is_some_and(|l| !l.contains(&node));
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
                        self.set_durable(|d| {
                            d.revocations.remove(&node);
                        });
                        if let Some(p) = self.peers.get_mut(&node) {
                            p.revoked_by_me_at = None;
                        }
                        self.log(RankedNotice::RevocationLifted { node });
                    }
                }
                Some(_) => {
                    // A new incarnation: the old revocation is moot.
                    self.set_durable(|d| {
                        d.revocations.remove(&node);
                    });
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.revoked_by_me_at = None;
                    }
                }
                None if down || silent => {
                    self.set_durable(|d| {
                        d.revocations.insert(node, latest);
                    });
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.revoked_by_me_at = Some(now);
                    }
                    self.log(RankedNotice::Revoked { node, up_to: latest });
                }
                None => self.wake_at(contact.last_change + self.params.suspect_after),
            }
        }
    }

    /// My acknowledgement of every other node, capped by my revocations
    /// (effective at once, before they are durable).
    fn acks(&self) -> BTreeMap<u32, Seen> {
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

    fn lease_pass(&mut self, votes: &Votes) {
        let now = self.now;
        let inc = self.durable.incarnation;
        let members = self.members();
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
        let counter =
            lease_counter(&members, self.me, &acks, votes, tie, self.counter, self.epoch_floor);
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
            Phase::Released if holds && self.persisted.is_some() => {
                self.phase = Phase::Holding;
                self.epoch += 1;
                self.deadline = deadline;
                let (epoch, deadline) = (self.epoch, deadline.unwrap_or(now));
                self.log(RankedNotice::LeaseAcquired { epoch, deadline });
            }
            Phase::Released => {}
            Phase::Killing => {
                // Retry an unconfirmed kill every heartbeat.
                if self.kill_failed && self.last_heartbeat == Some(now) {
                    self.out.push(Command::KillAllNow);
                }
            }
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

    fn lose_lease(&mut self) {
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

    /// Decide, for every other member, whether its claims are void.
    fn judge(&mut self, votes: &Votes, fences: &Votes) -> BTreeMap<u32, Judgement> {
        let now = self.now;
        let members = self.members();
        let tie = self.tie_ready(votes);
        let wait = self.params.takeover_wait();
        let mine = self.published_durable().map(|d| d.revocations.clone()).unwrap_or_default();
        let mut out = BTreeMap::new();
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
            for &y in &members {
                if y == x {
                    continue;
                }
                let r = if y == self.me {
                    mine.get(&x).copied()
                } else {
                    self.record_of(y).and_then(|ry| ry.revocations.get(&x).copied())
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
            let used_votes = votes.expand(&mut with_votes);
            with_votes.remove(&x);
            let revoked_quorum = is_quorum(&members, &with_votes, tie);
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
            if let Some((_, since)) = peer.revoked_since {
                let mut base = since;
                if let Some(c) = peer
                    .contact
                    .filter(|c| !used_votes && c.latest.is_some_and(|l| l.counter >= bound))
                {
                    base = base.min(c.first_seen);
                }
                let at = base + wait;
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
            out.insert(x, Judgement { void, revoked_quorum });
        }
        out
    }

    fn fence_pass(&mut self, votes: &Votes, judged: &BTreeMap<u32, Judgement>) {
        if !self.params.fence_command {
            return;
        }
        let now = self.now;
        let members = self.members();
        // Who this node hears now (counter moving, membership up): a
        // revocation may outlive the silence that caused it.
        let heard: Vec<u32> = members.iter().copied().filter(|&n| self.hears(n)).collect();
        let mut wanted: Vec<(NodeInc, FenceReason)> = Vec::new();
        for (&x, j) in judged {
            // A node that published `lost` cannot release: fence it even if
            // it still writes heartbeats (it cannot read, or its kill hung).
            let lost = self.record_of(x).is_some_and(|r| r.lease == LeaseState::Lost)
                && self.rules.lost_needs_fence;
            if j.void || !(j.revoked_quorum || lost) {
                continue;
            }
            let designated = heard.iter().copied().filter(|&n| n != x).min();
            if designated != Some(self.me) {
                continue;
            }
            let rec = self.record_of(x);
            let holds = rec.is_none_or(|r| {
                r.lease != LeaseState::Released
                    && (!r.claims.is_empty() || r.groups.values().any(record::counts_as_running))
            });
            let reason = match rec {
                Some(r) if r.lease == LeaseState::Lost || !r.watchdog => FenceReason::CannotWait,
                _ => FenceReason::MustMove,
            };
            let released = rec.is_some_and(|r| r.lease == LeaseState::Released);
            if holds && !released {
                let inc = self.latest(x).map_or(0, |l| l.incarnation);
                wanted.push((NodeInc { node: x, incarnation: inc }, reason));
            }
        }
        // An exact half without the tie-breaker fences it after a delay.
        if let Some(&t) = members.iter().min().filter(|_| self.rules.tie_fence) {
            let mut side: BTreeSet<u32> = heard.iter().copied().collect();
            votes.expand(&mut side);
            let half = 2 * members.iter().filter(|m| side.contains(m)).count() == members.len();
            let lowest_here = heard.iter().copied().filter(|&n| n != t).min() == Some(self.me);
            if t != self.me && half && !side.contains(&t) && lowest_here {
                let since = self.peers.get(&t).and_then(|p| {
                    p.revoked_by_me_at.map(|r| r.max(p.contact.map_or(r, |c| c.last_change)))
                });
                if let Some(since) = since {
                    let at = since + self.params.tie_fence_delay;
                    if now >= at {
                        let inc = self.latest(t).map_or(0, |l| l.incarnation);
                        wanted
                            .push((NodeInc { node: t, incarnation: inc }, FenceReason::TieBreaker));
                    } else {
                        self.wake_at(at);
                    }
                }
            }
        }
        for (target, reason) in wanted {
            if !self.fences.succeeded(target) && self.fences.start(target, now) {
                self.fence_reasons.insert(target, reason);
                // A node that published `lost` is alive by its own account:
                // no compare; otherwise fire only on a silent target.
                let lost = self.record_of(target.node).is_some_and(|r| r.lease == LeaseState::Lost);
                let guard = if lost {
                    FenceGuard::StillLost
                } else {
                    FenceGuard::Silent(self.latest(target.node))
                };
                self.out.push(Command::Fence { target, reason, guard });
            }
        }
    }

    fn my_epoch(&self, req: u64) -> Epoch {
        Epoch { node: self.me, incarnation: self.durable.incarnation, floor: self.epoch_floor, req }
    }

    /// Ask for the claim on `group` (a new request unless already asking).
    fn ask(&mut self, group: &str) {
        let req = self.counter;
        self.claims.entry(group.to_string()).or_insert(req);
    }

    fn requests(&self, group: &str, judged: &BTreeMap<u32, Judgement>) -> Vec<Epoch> {
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

    fn grant_pass(&mut self, judged: &BTreeMap<u32, Judgement>) {
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

    fn preferred(&self, group: &str) -> Vec<u32> {
        self.hactl
            .as_ref()
            .and_then(|h| h.get(group))
            .map(|w| w.preferred.clone())
            .unwrap_or_default()
    }

    /// Do a quorum's published grants give this node the claim on `group`?
    fn holds_claim(&self, group: &str, votes: &Votes) -> Option<BTreeSet<u32>> {
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
        votes.expand(&mut yes);
        claims::held(&self.durable.config.members, &yes, self.tie_ready(votes)).then_some(yes)
    }

    fn tell(&mut self, group: &str, level: &str, starts: bool) {
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

    fn group_pass(&mut self, votes: &Votes, judged: &BTreeMap<u32, Judgement>) {
        let now = self.now;
        if self.phase != Phase::Holding {
            // Released or killing: nothing runs here; settle stragglers.
            let busy: Vec<String> = self
                .own
                .groups
                .iter()
                .filter(|(_, st)| !crate::hastat::is_idle(&st.level, &st.state))
                .map(|(g, _)| g.clone())
                .collect();
            if self.phase == Phase::Released {
                for g in busy {
                    self.tell(&g, "stop", false);
                }
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
                n == self.me
                    || (!self.durable.revocations.contains_key(&n)
                        && judged.get(&n).is_some_and(|j| !j.void))
            })
            .collect();
        // A member never read and not void: its groups are unknown.
        let blind = members.iter().any(|&n| {
            n != self.me && self.record_of(n).is_none() && judged.get(&n).is_some_and(|j| !j.void)
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
            let preferred = self.preferred(&g);
            match own {
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
                    if !running.is_empty() || !attempts.is_empty() || blind || mixed {
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
                    let at = since + Millis(self.params.rank_slot.0 * pos as u64);
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

    fn watchdog_pass(&mut self) {
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

    fn persist_pass(&mut self) {
        if self.durable_version > self.emitted_version {
            self.emitted_version = self.durable_version;
            self.outstanding.insert(self.durable_version, self.durable.clone());
            let state = Box::new(self.durable.clone());
            self.out.push(Command::Persist { version: self.durable_version, state });
        }
    }

    fn heartbeat_pass(&mut self) {
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
            self.last_heartbeat = Some(now);
            self.next_heartbeat = now + self.params.heartbeat;
            let text = self.record().render();
            self.out.push(Command::WriteRecord { counter: self.counter, text });
        }
        self.wake_at(self.next_heartbeat);
    }

    /// The record this node publishes now.
    pub fn record(&self) -> Record {
        let durable = self.published_durable().cloned().unwrap_or_else(|| self.durable.clone());
        Record {
            node: self.me,
            incarnation: self.durable.incarnation,
            counter: self.counter,
            policy: record::POLICY.to_string(),
            lease: self.lease_state(),
            floor: self.epoch_floor,
            watchdog: self.params.watchdog,
            seen_all: self.seen_all,
            config: durable.config,
            config_ack: durable.config_ack,
            acks: self.acks(),
            revocations: durable.revocations,
            grants: durable.grants.into_iter().map(|(g, grant)| (g, grant.to)).collect(),
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

impl From<ChangeError> for RankedNotice {
    fn from(e: ChangeError) -> Self {
        RankedNotice::ChangeRefused(e.to_string())
    }
}
