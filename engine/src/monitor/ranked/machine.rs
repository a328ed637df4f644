//! The [`Ranked`] machine: inputs, commands, and one decision pass.
//!
//! Every call of [`Ranked::step`] applies one input (`inputs`) and then runs
//! the whole decision pass, one submodule per pass, in this order:
//! membership (`config_pass`), revocations and own lease (`lease_pass`),
//! judgement of the others (`judge`), fencing (`fence_pass`), grants
//! (`grant_pass`), groups (`group_pass`), then watchdog, persist and
//! heartbeat (`publish`). The pass is
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

mod config_pass;
mod fence_pass;
mod grant_pass;
mod group_pass;
mod inputs;
mod judge;
mod lease_pass;
mod member_pass;
mod publish;
mod rejoin;

/// The longest gap between retries of an unconfirmed kill, in leases (16 H:
/// 32 s at the default H = 2 s).
pub(crate) const KILL_RETRY_CAP: u64 = 16;

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
    /// Nodes whose revocation (in `revocations`) this node no longer
    /// publishes because it hears them again, while it still honours it
    /// (acknowledges them no further than its bound) until every other
    /// voter has seen a record without it: the first phase of lifting a
    /// one-sided revocation (see `revocation_pass` and the module doc).
    /// Absent in state persisted before this field existed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub withdrawn: BTreeSet<u32>,
}

/// One read of another node's record, as the executor saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    /// A record that parsed and passed its checksum. Shared: every reader
    /// of the same bytes may hold the same parse (see
    /// [`crate::cluster::RecordParses`]), and the machine keeps it as is.
    Record(Arc<Record>),
    /// Unreadable, torn, empty, failed checksum, or the read deadline
    /// passed: unknown, never absent. The reason is for the log.
    Unknown(String),
    /// The node publishes no ranked record but another policy's status
    /// (named): a rolling upgrade. `ranked` then takes nothing over.
    OtherPolicy(String),
    /// The read succeeded and found the record last given as
    /// [`Read::Record`] unchanged. Given only after an [`Read::Unknown`]
    /// of that node (an unchanged record is otherwise no input): the
    /// failure is over, which [`Rules::blind_when_every_peer_read_fails`]
    /// needs to know.
    Unchanged,
}

/// An input, with the node's boot-clock time given to [`Ranked::step`].
/// Serialisable: a `--record` trace stores every input (see
/// [`Ranked::record_steps`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Nothing new: time passed (see [`Ranked::poll_timeout`]).
    Tick,
    /// The membership source's live nodes (a node it says is down is
    /// revoked at once: `detect=0` in the simulator).
    Membership(Vec<u32>),
    /// A read of `node`'s record.
    Read { node: u32, read: Read },
    /// Reads of several nodes' records answered at one instant (one read
    /// batch), applied in order and then judged once. Why: the judgement
    /// walks every member, so a voter that judged after each of N record
    /// reads spent O(N²) per heartbeat period; fed as one input, O(N).
    /// Judging after the last read alone decides on everything known at
    /// that instant, as the one-by-one steps' last judgement did.
    Reads(Vec<(u32, Read)>),
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
    /// Service processes of an earlier incarnation of this node's monitor
    /// are still alive (`live` of them: the orphans of a `mosha` killed
    /// with -9, which its watchdog could not kill because they are in D
    /// state, or which it has not killed yet). This incarnation's own
    /// status cannot show them, so its record would say it holds nothing
    /// while a group runs here. Given by the executor at start and when the
    /// count changes (the simulator from its process table; the `mosha`
    /// backend does not report it yet, and would find them in the node's
    /// service cgroups): the machine kills them before it holds anything,
    /// and publishes `lost` (to be fenced) while the kill is not
    /// confirmed.
    Leftovers { live: usize },
    /// The executor's watchdog process is up (`true`) or gone and cannot
    /// be restarted (`false`), given when that changes. While it is gone
    /// the record publishes `watchdog: false`: a frozen monitor would then
    /// leave its services running past its lease, so peers with a fence
    /// command fence this node at once when it falls silent, and peers
    /// without one take nothing over from it (the issue's "with neither a
    /// watchdog nor a fence command, nothing is taken over"). Ignored
    /// when the node runs without a watchdog by configuration.
    Watchdog { up: bool },
    /// The operator asks for a new membership (one node added or removed).
    ProposeMembers(Vec<u32>),
    /// The local init machine refused a [`Command::Tell`] (`reason`: its
    /// reply, e.g. "no such group" when this node's `cltab` lacks the
    /// group, as after a restart with a `cltab` that does not parse). The
    /// tell took no effect: a claim asked for it is given up and the node
    /// backs off from the group as after a failed test, so the next-ranked
    /// node takes it.
    TellRefused { group: String, level: String, reason: String },
    /// This node is stopping (SIGTERM): stop every local group, plan
    /// nothing more, and once every group is idle give up the lease and
    /// publish `released`, so that peers take over at once instead of
    /// waiting out the lease (a graceful handover). Without it the machine
    /// would plan again every group the shutdown stopped.
    Leave,
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
    /// The watchdog process is gone and could not be restarted: the
    /// record says `watchdog: false` until it is back ([`Input::Watchdog`]).
    WatchdogLost,
    /// The watchdog process is back: the record says `watchdog: true`.
    WatchdogBack,
    Revoked {
        node: u32,
        up_to: Seen,
    },
    RevocationLifted {
        node: u32,
    },
    /// `node`, revoked by this node, is heard again: the revocation is no
    /// longer published, but acknowledgements stay capped at `up_to` until
    /// every other voter has seen a record without it (then
    /// [`RankedNotice::RevocationLifted`]).
    RevocationWithdrawn {
        node: u32,
        up_to: Seen,
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
    /// The init machine refused the tell of `group` to `level`: the claim
    /// is given up, and this node backs off from the group until `until`.
    TellRefused {
        group: String,
        level: String,
        reason: String,
        until: Millis,
    },
    /// `group` was claimed here but made no progress (neither running nor
    /// in a transition) since `since`, for longer than
    /// [`RankedParams::stall_after`]: the claim is released and this node
    /// backs off from the group until `until`, so the next-ranked node
    /// takes it.
    Stalled {
        group: String,
        since: Millis,
        until: Millis,
    },
    /// `node` publishes another policy: nothing is taken over.
    MixedPolicy {
        node: u32,
        policy: String,
    },
    ChangeRefused(String),
    /// This node proposes `change` by itself (it acknowledges it first):
    /// a dead member's removal, a promotion, or a member's return.
    ChangeProposed {
        change: Change,
        why: membership::Autopilot,
    },
    ConfigAdopted(Config),
    /// `group` runs here but fails back to the better-ranked `to`
    /// ([`RankedParams::failback`]): stopped here, a move.
    FailingBack {
        group: String,
        to: u32,
    },
    /// Stopping: every local group is idle and the lease is given up.
    Left {
        epoch: u64,
    },
    /// No step for `gap` (more than H/2): suspicion restarts from now.
    Resumed {
        gap: Millis,
    },
    /// Node `by` publishes this node's running incarnation as fenced: its
    /// fence command reported success without killing this node. Its peers
    /// hold this incarnation void for good (no claim will be granted to
    /// it), so this node kills its services at once (as after a lost
    /// lease) and, once the kill is confirmed, rejoins as a new incarnation
    /// by itself ([`RankedNotice::Rejoining`]).
    FencedWhileRunning {
        by: u32,
        incarnation: u64,
    },
    /// After [`RankedNotice::FencedWhileRunning`] and a confirmed kill of
    /// every local service: this node becomes incarnation `incarnation`
    /// (persisted before its first record, as a restart's), replacing the
    /// `fenced` one, and starts nothing until its peers acknowledge it and
    /// it holds a lease, as after a restart.
    Rejoining {
        by: u32,
        fenced: u64,
        incarnation: u64,
    },
    /// A record that names another node was refused.
    Misfiled {
        node: u32,
        names: u32,
    },
}

/// One recorded step: its time, its input and the commands it answered.
pub type Step = (Millis, Input, Vec<Command>);

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
    /// Since when (own clock) every read of this peer has been unknown
    /// (`None` while the last read succeeded).
    unknown_since: Option<Millis>,
    other_policy: Option<String>,
    contact: Option<Contact>,
    /// First sight of a quorum of revocations of (incarnation), own clock.
    revoked_since: Option<(u64, Millis)>,
    /// While a quorum revokes it: when (own clock) its lease and watchdog
    /// have surely ended, by the lease wait's argument: `H·(1+ρ)+δ` after
    /// the earlier of `revoked_since` and this node's first sight of a
    /// heartbeat at or beyond every revocation bound (no lease of it rests
    /// on a later heartbeat). Set by `judge`; under
    /// `Rules::release_wait_from_last_heartbeat` the fence pass waits for a
    /// silent member's release until then (plus 2P).
    lease_over_at: Option<Millis>,
    /// When this node revoked it (own clock), for the tie-breaker delay.
    revoked_by_me_at: Option<Millis>,
    /// This node's first counter after it revoked the node (or after its
    /// own start, when the revocation came from an earlier run): an
    /// acknowledgement of it or later by the revoked node shows that node
    /// read this node after the revocation (a full round).
    revoked_at_counter: Option<u64>,
    /// The first counter of a record this node wrote without its withdrawn
    /// revocation of the node: every other voter acknowledging it, the
    /// revocation may be lifted.
    withdrawn_from: Option<u64>,
    /// Read since this node's start (wait_for_all).
    seen: bool,
    void_logged: Option<u64>,
    /// (incarnation, epoch floor) proven void (fenced or lease ran out).
    void_epoch: Option<(u64, u64)>,
    /// Since when (own clock) its records say it holds a lease, without a
    /// break (failback waits for a steady node).
    holding_since: Option<Millis>,
    /// While the membership source lists it down: the newest incarnation
    /// seen when it first did (`u64::MAX` if none was seen yet). The
    /// verdict concerns that incarnation only: a newer one, started after
    /// it (a node that rebooted before the source noticed), is judged by
    /// its counter alone (see [`Ranked::listed_down`]).
    down_of: Option<u64>,
    /// Since when (own clock) the membership source lists it down without
    /// a break (dead-member removal waits `remove_dead_after`).
    down_since: Option<Millis>,
    /// Its latest record's acknowledgement of this node's current
    /// incarnation, and when (own clock) that acknowledgement last moved:
    /// a voter whose acknowledgement of a lease holder stands still for
    /// `dead_voter_after` takes no part in any quorum of it (see the module
    /// doc, "Dead voters": unresponsive voters).
    ack_of_me: Option<Seen>,
    ack_moved_at: Option<Millis>,
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
    /// Bumped when a peer's incarnation is first seen and when the
    /// membership source's view changes: with `durable_version` (which
    /// moves with every revocation), what [`Ranked::heard`] depends on.
    heard_gen: u64,
    emitted_version: u64,
    outstanding: BTreeMap<u64, Durable>,
    persisted: Option<Durable>,
    counter: u64,
    sent: BTreeMap<u64, Millis>,
    next_heartbeat: Millis,
    last_heartbeat: Option<Millis>,
    /// When a prompt acknowledgement was asked for (see `apply_read`): a
    /// record written then does not count against `hurry`'s spacing.
    prompt_ack_at: Option<Millis>,
    /// When this node last read a new copy of its own record (`None`:
    /// never). A node that has read none for H cannot tell its own
    /// blindness (reads timing out, cycles lagging) from a peer's silence
    /// (`Rules::blind_fencer_waits`).
    own_read_at: Option<Millis>,
    phase: Phase,
    /// The watchdog process is up, as the executor last said
    /// ([`Input::Watchdog`]; `true` until it says otherwise).
    watchdog_up: bool,
    kill_failed: bool,
    /// While a kill is unconfirmed: when (own clock) to retry it, and the
    /// gap after that retry (doubling from H up to `KILL_RETRY_CAP` H, so
    /// a process stuck in D state for hours costs a few log lines, not four
    /// a second).
    kill_retry: Option<(Millis, Millis)>,
    epoch: u64,
    epoch_floor: u64,
    /// Peers whose records were seen to list this very incarnation as
    /// fenced (said once each: [`RankedNotice::FencedWhileRunning`]).
    said_fenced_by: BTreeSet<u32>,
    /// The first peer seen to list this incarnation as fenced while it
    /// runs. Set, this incarnation is finished: it kills its services,
    /// never acquires a lease or asks for a claim again, and once the kill
    /// is confirmed the machine becomes a new incarnation
    /// ([`Ranked::rejoin`]).
    fenced_by: Option<u32>,
    /// When this node last acquired its lease (own clock).
    held_since: Millis,
    /// The configuration version the voter pass last saw: when it moves,
    /// the pass brings `voter_since` up to date.
    config_seen: u64,
    /// Since when (own clock) each current voter has been one, as the
    /// voter pass saw the configurations go by: a voter promoted in a
    /// change published no acknowledgements before (learners do not), so
    /// its silence counts from its promotion. Per voter, not per change: a
    /// change that promoted or demoted another voter says nothing about a
    /// voter that was frozen all along (N = 10 seed 34: each of two
    /// silent voters waited a full `dead_voter_after` from the change
    /// before, the second was still a voter when a third froze, and every
    /// group was down 30 s).
    voter_since: BTreeMap<u32, Millis>,
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
    /// Groups this node held when its lease ran out, and until when (own
    /// clock, ms) it plans them only after every other candidate's slot
    /// (`Rules::lease_loss_yields`).
    yields_until: BTreeMap<String, Millis>,
    unplaced_since: BTreeMap<String, Millis>,
    /// Claimed group → the last time (own clock) it made progress here:
    /// claimed, or its local status changed (see `stall_pass`).
    progress: BTreeMap<String, Millis>,
    told: BTreeMap<String, String>,
    /// Group → the (node, incarnation) it last failed back to.
    failed_back: BTreeMap<String, (u32, u64)>,
    seen_all: bool,
    /// [`Input::Leave`] was given: this node is stopping.
    leaving: bool,
    /// When recording (`--record`): every step's time, input and commands,
    /// until taken with [`Ranked::take_steps`].
    tap: Option<Vec<Step>>,
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
                config: if initial.voters.is_empty() {
                    Config::new(initial.version, initial.members.clone(), params.max_voters)
                } else {
                    Config { members: membership::normalise(&initial.members), ..initial }
                },
                config_ack: None,
                revocations: BTreeMap::new(),
                grants: BTreeMap::new(),
                withdrawn: BTreeSet::new(),
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
            heard_gen: 0,
            emitted_version: 0,
            outstanding: BTreeMap::new(),
            persisted: None,
            counter: 0,
            sent: BTreeMap::new(),
            next_heartbeat: now,
            last_heartbeat: None,
            prompt_ack_at: None,
            own_read_at: None,
            phase: if leftovers { Phase::Killing } else { Phase::Released },
            watchdog_up: true,
            kill_failed: false,
            kill_retry: None,
            epoch: 0,
            epoch_floor: 1,
            said_fenced_by: BTreeSet::new(),
            fenced_by: None,
            held_since: now,
            config_seen: 0,
            voter_since: BTreeMap::new(),
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
            yields_until: BTreeMap::new(),
            progress: BTreeMap::new(),
            told: BTreeMap::new(),
            failed_back: BTreeMap::new(),
            seen_all: false,
            leaving: false,
            tap: None,
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

    /// The members this node hears now, ascending, itself included: each
    /// other member whose current incarnation it has seen and neither
    /// revokes nor has listed down by the membership source. Under
    /// heartbeat-file membership this is the node's membership view for the
    /// transition history (issue 12): a node leaves it when this node
    /// revokes it (silent for `suspect_after` on this node's clock) and
    /// joins it when its incarnation is first heard, when a revocation is
    /// lifted, or when a new incarnation replaces a revoked one.
    ///
    /// Why not the heartbeat files' presence: a file that appears or cannot
    /// be read for one read says nothing about the incarnation's counter,
    /// and judging by it gave an `up` followed within milliseconds by a
    /// `down` at every join. Each incarnation is judged by its own counter
    /// history only, from its first sighting; a revocation given about
    /// incarnation k never applies to k+1.
    pub fn heard(&self) -> Vec<u32> {
        self.members().into_iter().filter(|&n| n == self.me || self.heard_now(n)).collect()
    }

    /// The membership source's last view as this machine took it (`None`
    /// before the first one): what the driver reads with while the source
    /// cannot be read, so that a failing membership read never stops the
    /// reads of the peers' records, on which every lease rests.
    pub fn live_view(&self) -> Option<Vec<u32>> {
        self.live.as_ref().map(|l| l.iter().copied().collect())
    }

    /// Changes whenever [`Ranked::heard`] may have changed (a cheap test,
    /// so that a driver recomputes the view only then: `heard` is
    /// O(members), and a driver steps the machine once per member read).
    pub fn heard_generation(&self) -> (u64, u64) {
        (self.durable_version, self.heard_gen)
    }

    /// The incarnation of `n` this node heard last (`None`: never).
    pub fn heard_incarnation(&self, n: u32) -> Option<u64> {
        self.latest(n).map(|l| l.incarnation).filter(|&i| i > 0)
    }

    fn heard_now(&self, n: u32) -> bool {
        let Some(latest) = self.latest(n).filter(|l| l.incarnation > 0) else { return false };
        let revoked =
            self.durable.revocations.get(&n).is_some_and(|r| r.incarnation == latest.incarnation);
        !revoked && !self.listed_down(n)
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
        let resumed = gap > Millis(self.params.lease.0 / 2);
        if resumed {
            self.resumed(gap);
        }
        // An input that changes nothing the judgement reads needs no
        // judgement: `decide` depends only on the machine's memory and on
        // `now`, and every time-driven change is armed in `wake`. Write
        // acknowledgements and an unchanged membership view are about half
        // of all inputs (one each per heartbeat period), so skipping them
        // cuts the simulator's cost without changing any decision.
        let quiet = !resumed
            && match &input {
                Input::Written { .. } => true,
                Input::Membership(live) => self
                    .live
                    .as_ref()
                    .is_some_and(|l| l.len() == live.len() && live.iter().all(|n| l.contains(n))),
                _ => false,
            };
        let recorded = self.tap.is_some().then(|| input.clone());
        self.apply(input);
        if !quiet || self.wake.is_some_and(|w| w <= self.now) {
            self.decide();
        }
        let out = Output { commands: std::mem::take(&mut self.out) };
        if let (Some(tap), Some(input)) = (self.tap.as_mut(), recorded) {
            tap.push((now, input, out.commands.clone()));
        }
        out
    }

    /// Keep every step from now on (time, input, commands) for a trace:
    /// replaying the inputs through a machine built the same way gives the
    /// same commands, since the machine is pure.
    pub fn record_steps(&mut self) {
        self.tap.get_or_insert_with(Vec::new);
    }

    /// The steps kept since the last call (empty when not recording).
    pub fn take_steps(&mut self) -> Vec<Step> {
        self.tap.as_mut().map(std::mem::take).unwrap_or_default()
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

    /// Does the membership source list `n` down, for the incarnation it
    /// may concern? A down verdict given before `n` came back with a new
    /// incarnation (a reboot faster than the source's detection) is not
    /// about that incarnation: revoking, and then fencing, a node whose
    /// fresh records move, on a verdict about its predecessor, fences a
    /// healthy node. The new incarnation is judged by its counter, as any
    /// node is under heartbeat-file membership.
    ///
    /// Nor does a verdict count against a node heard since it began: its
    /// counter moved after the source first listed it down, and it is not
    /// silent (`Rules::heard_overrides_down`). The verdict only hastens a
    /// revocation, and a revocation made later is always safe (the lease
    /// argument rests on acknowledgements, never on the source); but a
    /// verdict held against a node whose records move kept it revoked
    /// until the source listed it again. After a partition that left no
    /// side a majority, every node had revoked every node across it, each
    /// side's release could not lift the other's revocation while the
    /// source still listed it down, and no lease could form for the
    /// source's detection time after the partition healed (N = 10 seed 13:
    /// five groups down 5 s). A dead node's late-visible write can count
    /// as heard: its revocation then waits for its silence
    /// (`suspect_after`), which delays a takeover, never hastens one.
    fn listed_down(&self, n: u32) -> bool {
        if self.live.as_ref().is_none_or(|l| l.contains(&n)) {
            return false;
        }
        let peer = self.peers.get(&n);
        let contact = peer.and_then(|p| p.contact);
        let latest = contact.and_then(|c| c.latest);
        let about_this_incarnation = match (peer.and_then(|p| p.down_of), latest) {
            (Some(of), Some(l)) => l.incarnation <= of,
            _ => true,
        };
        let heard_since = self.rules.heard_overrides_down
            && match (peer.and_then(|p| p.down_since), contact) {
                (Some(since), Some(c)) => {
                    c.last_change > since && !c.silent(self.now, self.params.suspect_after)
                }
                _ => false,
            };
        about_this_incarnation && !heard_since
    }

    /// Does this node hear `n` now: itself, or a member the membership
    /// source does not call down whose counter moved within
    /// `suspect_after`?
    fn hears(&self, n: u32) -> bool {
        if n == self.me {
            return true;
        }
        let down = self.listed_down(n);
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

    /// The members whose acknowledgements, revocations and grants count
    /// (every member unless the cluster is larger than `max_voters`).
    fn voters(&self) -> Vec<u32> {
        self.durable.config.voters().to_vec()
    }

    /// Does this node read `n`'s record? Every member, unless this node is
    /// a learner that reads the voters only
    /// ([`RankedParams::learners_read_voters`]).
    fn reads(&self, n: u32) -> bool {
        n == self.me
            || !self.params.learners_read_voters
            || self.durable.config.voters().contains(&self.me)
            || self.durable.config.voters().contains(&n)
    }

    /// The members whose records this node reads: `None` for every member,
    /// `Some(voters)` for a learner that reads the voters only (the driver
    /// reads the other members' files never).
    pub fn read_set(&self) -> Option<Vec<u32>> {
        (!self.reads_all()).then(|| self.durable.config.voters().to_vec())
    }

    fn reads_all(&self) -> bool {
        !self.params.learners_read_voters || self.durable.config.voters().contains(&self.me)
    }

    fn is_voter(&self) -> bool {
        self.durable.config.voters().contains(&self.me)
    }

    fn record_of(&self, node: u32) -> Option<&Arc<Record>> {
        self.peers.get(&node).and_then(|p| p.record.as_ref())
    }

    /// When (own clock) this node emitted the newest record of its current
    /// incarnation that `rec` acknowledges: `rec` was written after that.
    /// An acknowledgement whose emission time was forgotten dates by the
    /// next earlier one kept (older: the safe side); `None` when `rec`
    /// acknowledges nothing of this incarnation or nothing kept.
    fn my_record_acked_by(&self, rec: &Record) -> Option<Millis> {
        let inc = self.durable.incarnation;
        rec.ack_of(self.me)
            .filter(|a| a.incarnation == inc)
            .and_then(|a| self.sent.range(..=a.counter).next_back())
            .map(|(_, &t)| t)
    }

    /// Does `rec` acknowledge a record of this incarnation written less
    /// than `within` ago (own clock)? Then `rec` is at most
    /// `within·(1+ρ)` old whatever the shared storage's delay.
    fn acks_me_within(&self, rec: &Record, within: Millis) -> bool {
        self.my_record_acked_by(rec).is_some_and(|t| self.now < t + within)
    }

    /// Does `rec` acknowledge a record of this incarnation emitted at or
    /// after `since` (this node's clock, ms)? Then it was written after
    /// `since`.
    fn acks_me_since(&self, rec: &Record, since: Millis) -> bool {
        self.my_record_acked_by(rec).is_some_and(|t| t >= since)
    }

    /// No new copy of this node's own record read within H (or none yet,
    /// H after the start): its reads time out or fail, or its cycles lag.
    fn blind(&self) -> bool {
        let last = self.own_read_at.unwrap_or(self.started);
        if self.now >= last + self.params.lease {
            return true;
        }
        // Every other member unreadable for H: this node's own reads are
        // the likelier fault (`Rules::blind_when_every_peer_read_fails`).
        let lease = self.params.lease;
        let mut others = self.durable.config.members.iter().filter(|&&m| m != self.me).peekable();
        self.rules.blind_when_every_peer_read_fails
            && others.peek().is_some()
            && others.all(|m| {
                self.peers
                    .get(m)
                    .and_then(|p| p.unknown_since)
                    .is_some_and(|since| self.now >= since + lease)
            })
    }

    fn latest(&self, node: u32) -> Option<Seen> {
        self.peers.get(&node).and_then(|p| p.contact).and_then(|c| c.latest)
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
        self.membership_pass(&fenced);
        // wait_for_all: every member has acknowledged this incarnation (so
        // none still counts a fence vote of an older one), or is fenced.
        let inc = self.durable.incarnation;
        self.seen_all = self.seen_all
            || self.voters().iter().all(|&m| {
                m == self.me
                    || self
                        .record_of(m)
                        .and_then(|r| r.ack_of(self.me))
                        .is_some_and(|a| a.incarnation == inc)
                    || votes.contains(m)
            });
        // Across a voter change, a fence vote completes no half: an exact
        // half of the old voters with a fence vote and a majority of the
        // new can be disjoint, as the tie-breaker's half can
        // (`votes_need_settled_config`).
        let votes = if self.rules.votes_need_settled_config && self.config_unsettled() {
            Votes::default()
        } else {
            votes
        };
        self.revocation_pass();
        self.lease_pass(&votes);
        let judged = self.judge(&votes, &fenced);
        self.autopilot_pass(&judged, &fenced);
        self.fence_pass(&votes, &judged);
        self.grant_pass(&judged);
        self.group_pass(&votes, &judged);
        self.stall_pass();
        self.watchdog_pass();
        self.persist_pass();
        self.heartbeat_pass();
        if let Some(at) = self.eligibility.next_expiry(self.now) {
            self.wake_at(at);
        }
        if let Some(at) = self.fences.next_retry(self.now) {
            self.wake_at(at);
        }
    }
}

impl From<ChangeError> for RankedNotice {
    fn from(e: ChangeError) -> Self {
        RankedNotice::ChangeRefused(e.to_string())
    }
}
