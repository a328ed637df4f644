//! The one checksummed heartbeat record each `ranked` node publishes.
//!
//! One file per node, rewritten whole (by rename) every heartbeat period P.
//! Everything another node needs to judge this node is in it, so it is read
//! once per member per cycle and bound to one (incarnation, counter):
//!
//! ```text
//! clinit-ranked 1
//! node 3 7 123            node, incarnation, counter
//! policy ranked
//! lease holding 57        holding | released | lost, epoch floor counter
//! watchdog yes            a watchdog bounds this node's services (yes | no)
//! seen-all yes            seen every member since start (wait_for_all)
//! config 2 1,2,3          known membership: version, members
//! config-ack 2 1,2,4      optional: the one change of version 2 it accepts
//!                         (`voters 1,2` after it: a voter change)
//! ack 1 5 100             latest (incarnation, counter) seen of node 1
//! revoke 2 4 88           (node 2, incarnation 4) acknowledged up to 88, never beyond
//! grant web 3 7 57 1234   grants web to node 3, incarnation 7, epoch 57, request 1234
//! claim web 1234          asks for / holds the claim on web, request 1234
//! fenced 2 4              fenced (node 2, incarnation 4) successfully
//! vote 2 4                ... as the lost tie-breaker: it votes with this node
//! group web start DONE    its local groups' status, as in clstat
//! sum 9c1f0e2a7b3d4c55    FNV-1a 64 of every byte before this line
//! ```
//!
//! A record that does not parse, lacks its checksum or fails it (a torn or
//! half-written copy, an empty file) is an error here and **unknown** to the
//! policy, never "absent": the groups it last showed stay where they are.
//!
//! The checksum is FNV-1a 64 (Fowler–Noll–Vo, offset basis
//! `0xcbf29ce484222325`, prime `0x100000001b3`): fixed, documented and
//! independent of the Rust version, so two builds agree on every record. It
//! detects tearing and accidents, not malice (the shared directory is
//! trusted).

use crate::status::{GroupState, GroupStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use thiserror::Error;

/// The first line; the number is the format version.
pub const MAGIC: &str = "clinit-ranked 1";

/// The policy name a `ranked` node publishes (mixed-policy detection).
pub const POLICY: &str = "ranked";

/// A node's lease state, as it publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeaseState {
    /// Its lease holds: it may run groups.
    Holding,
    /// It runs no service process of any group, confirmed, and starts none
    /// before it holds a new lease and new claims. Others may take over its
    /// groups at once.
    Released,
    /// Its lease ran out but the kill of its services was not confirmed
    /// (e.g. a process in D state): nobody may take over without a fence.
    Lost,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Holding => "holding",
            LeaseState::Released => "released",
            LeaseState::Lost => "lost",
        }
    }

    fn parse(word: &str) -> Option<LeaseState> {
        match word {
            "holding" => Some(LeaseState::Holding),
            "released" => Some(LeaseState::Released),
            "lost" => Some(LeaseState::Lost),
            _ => None,
        }
    }
}

/// One incarnation's heartbeat counter: "(incarnation, counter)".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seen {
    pub incarnation: u64,
    pub counter: u64,
}

/// A node incarnation: the holder of a claim, or a fenced node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeInc {
    pub node: u32,
    pub incarnation: u64,
}

/// One request of one lease epoch of one node incarnation: what a grant
/// names. A node starts a new epoch (a higher `floor`) each time it
/// reacquires its lease after releasing it, and numbers each request for a
/// claim (`req`: its counter when it began asking), so a grant given before
/// a release, or to an abandoned request, never counts again (the ballot of
/// Disk Paxos).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Epoch {
    pub node: u32,
    pub incarnation: u64,
    /// The epoch's first counter: its lease rests only on acknowledgements
    /// of counters at or above it.
    pub floor: u64,
    /// The request: the requester's counter when it began asking.
    pub req: u64,
}

/// The known membership: replicated configuration, changed one node at a
/// time (see [`super::membership`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    pub version: u64,
    /// Ascending, no duplicates.
    pub members: Vec<u32>,
    /// The voters, when not every member votes (large clusters): leases,
    /// revocations, claims and membership changes count only voters'
    /// acknowledgements, as etcd separates voting members from learners.
    /// Empty: every member votes. See [`Config::voters`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<u32>,
}

impl Config {
    /// A configuration whose voters are its lowest `max_voters` members
    /// (every member when there are no more than that).
    pub fn new(version: u64, members: Vec<u32>, max_voters: usize) -> Config {
        let members = super::membership::normalise(&members);
        let voters = if members.len() > max_voters.max(1) {
            members[..max_voters.max(1)].to_vec()
        } else {
            Vec::new()
        };
        Config { version, members, voters }
    }

    /// Who votes: [`Config::voters`], or every member when that is empty.
    pub fn voters(&self) -> &[u32] {
        if self.voters.is_empty() {
            &self.members
        } else {
            &self.voters
        }
    }

    /// The configuration after `change` commits: [`Config::next`] for a
    /// member change, the named voters for a voter change (empty when they
    /// are every member).
    pub fn after(&self, change: &Change, max_voters: usize) -> Config {
        if change.voters.is_empty() {
            return self.next(&change.members, max_voters);
        }
        let members = super::membership::normalise(&change.members);
        let voters = super::membership::normalise(&change.voters);
        let voters = if voters == members { Vec::new() } else { voters };
        Config { version: self.version + 1, members, voters }
    }

    /// The configuration after `change` commits. The voter set changes by
    /// at most one node, so an old and a new voter majority always
    /// intersect (Raft's single-server rule, applied to voters): a removed
    /// voter leaves it (no learner is promoted in the same change), an
    /// added member joins it only while it has fewer than `max_voters`.
    pub fn next(&self, members: &[u32], max_voters: usize) -> Config {
        let members = super::membership::normalise(members);
        let mut voters: Vec<u32> =
            self.voters().iter().copied().filter(|v| members.contains(v)).collect();
        for &m in &members {
            if voters.len() < max_voters.max(1) && !self.members.contains(&m) {
                voters.push(m);
            }
        }
        voters.sort_unstable();
        let voters = if voters == members { Vec::new() } else { voters };
        Config { version: self.version + 1, members, voters }
    }
}

/// A membership change: the members that replace config `replaces`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Change {
    pub replaces: u64,
    pub members: Vec<u32>,
    /// A voter change: the members stay, and these (ascending) become the
    /// voters, one node added to or removed from the old voter set (a
    /// dead voter demoted to learner, a learner promoted: etcd's `member
    /// promote`). Empty: a member change, whose voters
    /// [`Config::next`] computes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<u32>,
}

/// The heartbeat record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub node: u32,
    pub incarnation: u64,
    pub counter: u64,
    pub policy: String,
    pub lease: LeaseState,
    /// The current lease epoch's first counter: this node's lease rests
    /// only on acknowledgements of counters at or above it, so a revocation
    /// with a lower bound no longer concerns it (it released since).
    pub floor: u64,
    pub watchdog: bool,
    pub seen_all: bool,
    pub config: Config,
    pub config_ack: Option<Change>,
    /// Latest heartbeat seen of every other node: the acknowledgements.
    pub acks: BTreeMap<u32, Seen>,
    /// Durable revocations: `(node, incarnation)` acknowledged up to
    /// `counter`, never beyond.
    pub revocations: BTreeMap<u32, Seen>,
    /// Group → the node epoch this node grants its claim to.
    pub grants: BTreeMap<String, Epoch>,
    /// Group → request id of the claim this node asks for or holds.
    pub claims: BTreeMap<String, u64>,
    /// Node → incarnation this node fenced successfully (proof that its
    /// services are dead).
    pub fenced: BTreeMap<u32, u64>,
    /// Node → incarnation this node fenced as the lost tie-breaker of an
    /// exact half: that node's vote goes with this node.
    pub votes: BTreeMap<u32, u64>,
    /// Its local groups' status.
    pub groups: BTreeMap<String, GroupStatus>,
}

/// Why a record is unknown. Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("empty record")]
    Empty,
    #[error("line 1: not a ranked record (expected {MAGIC:?})")]
    Magic,
    #[error("no checksum line: torn or half-written record")]
    NoChecksum,
    #[error("checksum mismatch (stored {stored:016x}, computed {computed:016x}): torn record")]
    Checksum { stored: u64, computed: u64 },
    #[error("line {line}: {what}")]
    BadLine { line: usize, what: &'static str },
    #[error("missing {0} line")]
    Missing(&'static str),
}

/// FNV-1a 64 of `bytes` (see the module doc).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn join(nodes: &[u32]) -> String {
    let parts: Vec<String> = nodes.iter().map(u32::to_string).collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

fn split_nodes(word: &str) -> Option<Vec<u32>> {
    if word == "-" {
        return Some(Vec::new());
    }
    word.split(',').map(|n| n.parse().ok()).collect()
}

/// Is a fence of incarnation `fenced` still in force, while the node's own
/// record publishes incarnation `current` (`None`: no record read)? Only
/// until a newer incarnation is seen: the rule by which a fence vote lasts
/// (`Rules::vote_until_new_incarnation`). `mosha status` showed fences of
/// incarnations long gone as in force, and every node as fenced.
pub fn fence_in_force(fenced: u64, current: Option<u64>) -> bool {
    current.is_none_or(|c| c <= fenced)
}

impl Record {
    /// Render, checksum line last. Group names, levels and states must be
    /// single whitespace-free words (what `hactl` and `cltab` can produce).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(256 + 32 * (self.acks.len() + self.groups.len()));
        let yes = |b: bool| if b { "yes" } else { "no" };
        // Writing to a String cannot fail.
        let _ = writeln!(s, "{MAGIC}");
        let _ = writeln!(s, "node {} {} {}", self.node, self.incarnation, self.counter);
        let _ = writeln!(s, "policy {}", self.policy);
        let _ = writeln!(s, "lease {} {}", self.lease.as_str(), self.floor);
        let _ = writeln!(s, "watchdog {}", yes(self.watchdog));
        let _ = writeln!(s, "seen-all {}", yes(self.seen_all));
        let _ = write!(s, "config {} {}", self.config.version, join(&self.config.members));
        if !self.config.voters.is_empty() {
            let _ = write!(s, " voters {}", join(&self.config.voters));
        }
        s.push('\n');
        if let Some(c) = &self.config_ack {
            let _ = write!(s, "config-ack {} {}", c.replaces, join(&c.members));
            if !c.voters.is_empty() {
                let _ = write!(s, " voters {}", join(&c.voters));
            }
            s.push('\n');
        }
        for (n, a) in &self.acks {
            let _ = writeln!(s, "ack {n} {} {}", a.incarnation, a.counter);
        }
        for (n, r) in &self.revocations {
            let _ = writeln!(s, "revoke {n} {} {}", r.incarnation, r.counter);
        }
        for (g, to) in &self.grants {
            let _ = writeln!(s, "grant {g} {} {} {} {}", to.node, to.incarnation, to.floor, to.req);
        }
        for (g, req) in &self.claims {
            let _ = writeln!(s, "claim {g} {req}");
        }
        for (n, inc) in &self.fenced {
            let _ = writeln!(s, "fenced {n} {inc}");
        }
        for (n, inc) in &self.votes {
            let _ = writeln!(s, "vote {n} {inc}");
        }
        for (g, st) in &self.groups {
            let _ = writeln!(s, "group {g} {} {}", st.level, st.state);
        }
        let sum = fnv1a64(s.as_bytes());
        let _ = writeln!(s, "sum {sum:016x}");
        s
    }

    /// Parse a record; any defect is an error (the record is unknown).
    pub fn parse(text: &str) -> Result<Record, RecordError> {
        if text.is_empty() {
            return Err(RecordError::Empty);
        }
        if !text.ends_with('\n') {
            return Err(RecordError::NoChecksum);
        }
        let body_end = text.trim_end_matches('\n').rfind('\n').map(|i| i + 1).unwrap_or(0);
        let (body, last) = text.split_at(body_end);
        let stored = last
            .trim_end_matches('\n')
            .strip_prefix("sum ")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or(RecordError::NoChecksum)?;
        let computed = fnv1a64(body.as_bytes());
        if stored != computed {
            return Err(RecordError::Checksum { stored, computed });
        }
        let mut lines = body.lines().enumerate();
        if lines.next().map(|(_, l)| l) != Some(MAGIC) {
            return Err(RecordError::Magic);
        }
        let mut head: Option<(u32, u64, u64)> = None;
        let mut policy = None;
        let mut lease = None;
        let mut watchdog = None;
        let mut seen_all = None;
        let mut config = None;
        let mut rec = Record {
            node: 0,
            incarnation: 0,
            counter: 0,
            policy: String::new(),
            lease: LeaseState::Released,
            floor: 0,
            watchdog: false,
            seen_all: false,
            config: Config { version: 0, members: Vec::new(), voters: Vec::new() },
            config_ack: None,
            acks: BTreeMap::new(),
            revocations: BTreeMap::new(),
            grants: BTreeMap::new(),
            claims: BTreeMap::new(),
            fenced: BTreeMap::new(),
            votes: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        for (i, line) in lines {
            let bad = |what| RecordError::BadLine { line: i + 1, what };
            // The words in a fixed array, not a `Vec` per line: every peer's
            // record is parsed every heartbeat period, and the allocation
            // was a visible part of a simulated hour. No line has more than
            // six words; a longer one keeps its true count and is refused.
            let mut words = [""; 7];
            let mut count = 0;
            for word in line.split_whitespace() {
                if let Some(slot) = words.get_mut(count) {
                    *slot = word;
                }
                count += 1;
            }
            let w = &words[..count.min(words.len())];
            let num = |k: usize| w.get(k).and_then(|x| x.parse::<u64>().ok());
            let node = |k: usize| w.get(k).and_then(|x| x.parse::<u32>().ok());
            match (w.first().copied(), count) {
                (Some("node"), 4) => {
                    head = Some((
                        node(1).ok_or(bad("bad node"))?,
                        num(2).ok_or(bad("bad incarnation"))?,
                        num(3).ok_or(bad("bad counter"))?,
                    ))
                }
                (Some("policy"), 2) => policy = Some(w[1].to_string()),
                (Some("lease"), 3) => {
                    lease = Some(LeaseState::parse(w[1]).ok_or(bad("bad lease"))?);
                    rec.floor = num(2).ok_or(bad("bad floor"))?;
                }
                (Some("watchdog"), 2) => watchdog = Some(yes_no(w[1]).ok_or(bad("bad yes/no"))?),
                (Some("seen-all"), 2) => seen_all = Some(yes_no(w[1]).ok_or(bad("bad yes/no"))?),
                (Some("config"), n @ (3 | 5)) => {
                    let voters = match n {
                        5 if w[3] == "voters" => split_nodes(w[4]).ok_or(bad("bad node list"))?,
                        5 => return Err(bad("expected `voters`")),
                        _ => Vec::new(),
                    };
                    config = Some(Config {
                        version: num(1).ok_or(bad("bad version"))?,
                        members: split_nodes(w[2]).ok_or(bad("bad node list"))?,
                        voters,
                    })
                }
                (Some("config-ack"), n @ (3 | 5)) => {
                    let voters = match n {
                        5 if w[3] == "voters" => split_nodes(w[4]).ok_or(bad("bad node list"))?,
                        5 => return Err(bad("expected `voters`")),
                        _ => Vec::new(),
                    };
                    rec.config_ack = Some(Change {
                        replaces: num(1).ok_or(bad("bad version"))?,
                        members: split_nodes(w[2]).ok_or(bad("bad node list"))?,
                        voters,
                    })
                }
                (Some(kind @ ("ack" | "revoke")), 4) => {
                    let n = node(1).ok_or(bad("bad node"))?;
                    let seen = Seen {
                        incarnation: num(2).ok_or(bad("bad incarnation"))?,
                        counter: num(3).ok_or(bad("bad counter"))?,
                    };
                    if kind == "ack" {
                        rec.acks.insert(n, seen);
                    } else {
                        rec.revocations.insert(n, seen);
                    }
                }
                (Some("grant"), 6) => {
                    let to = Epoch {
                        node: node(2).ok_or(bad("bad node"))?,
                        incarnation: num(3).ok_or(bad("bad incarnation"))?,
                        floor: num(4).ok_or(bad("bad floor"))?,
                        req: num(5).ok_or(bad("bad request"))?,
                    };
                    rec.grants.insert(w[1].to_string(), to);
                }
                (Some("claim"), 3) => {
                    rec.claims.insert(w[1].to_string(), num(2).ok_or(bad("bad request"))?);
                }
                (Some("vote"), 3) => {
                    rec.votes.insert(
                        node(1).ok_or(bad("bad node"))?,
                        num(2).ok_or(bad("bad incarnation"))?,
                    );
                }
                (Some("fenced"), 3) => {
                    rec.fenced.insert(
                        node(1).ok_or(bad("bad node"))?,
                        num(2).ok_or(bad("bad incarnation"))?,
                    );
                }
                (Some("group"), 4) => {
                    let st =
                        GroupStatus { level: w[2].to_string(), state: GroupState::parse(w[3]) };
                    rec.groups.insert(w[1].to_string(), st);
                }
                _ => return Err(bad("unknown or malformed line")),
            }
        }
        let (node, incarnation, counter) = head.ok_or(RecordError::Missing("node"))?;
        rec.node = node;
        rec.incarnation = incarnation;
        rec.counter = counter;
        rec.policy = policy.ok_or(RecordError::Missing("policy"))?;
        rec.lease = lease.ok_or(RecordError::Missing("lease"))?;
        rec.watchdog = watchdog.ok_or(RecordError::Missing("watchdog"))?;
        rec.seen_all = seen_all.ok_or(RecordError::Missing("seen-all"))?;
        rec.config = config.ok_or(RecordError::Missing("config"))?;
        Ok(rec)
    }

    /// Does the node that published this record hold quorum? Under
    /// `ranked` quorum is a lease granted by a majority of the voters
    /// (there is no hastat quorum line): the node holds quorum exactly
    /// while its lease is `holding`. `released` and `lost` are no quorum.
    pub fn holds_quorum(&self) -> bool {
        self.lease == LeaseState::Holding
    }

    /// Is the node that published `earlier` and then `self` (two reads of
    /// its record, some heartbeat periods apart) alive and able to run
    /// groups? Its record moved (a new counter, or a new incarnation) and
    /// its lease holds. This is `ranked`'s test of life, a counter that
    /// changes, for callers outside the machine (`mosha standby`): never a
    /// file's age against the local clock, which kept a node dead for 15 s
    /// "live" until `--timeout` (60 s) passed.
    pub fn alive_since(&self, earlier: &Record) -> bool {
        (self.incarnation, self.counter) != (earlier.incarnation, earlier.counter)
            && self.holds_quorum()
    }

    /// Of the nodes whose records were read twice (`earlier`, then
    /// `later`, some heartbeat periods apart: 1.5 s in `mosha standby` and
    /// `mosha status`), the live ones: those [`Record::not_live`] finds no
    /// fault with. One rule for every caller outside the machine, so
    /// `standby` and `status` never judge life differently.
    pub fn live_nodes(
        earlier: &BTreeMap<u32, Record>,
        later: &BTreeMap<u32, Record>,
    ) -> BTreeSet<u32> {
        let faults = Record::not_live(earlier, later, later.keys().copied());
        later.keys().copied().filter(|n| !faults.contains_key(n)).collect()
    }

    /// Why each of `nodes` is not live, judged from two reads of every
    /// record (`earlier`, then `later`); a live node is absent. A node is
    /// live when [`Record::alive_since`] holds and no other node's later
    /// record lists its current incarnation as fenced. A node a peer lists
    /// as fenced still runs only when the fence command reported success
    /// without killing it; peers grant that incarnation nothing again (it
    /// rejoins as a new incarnation by itself), so it runs nothing and is
    /// not live, whatever its own lease says (issue 12, items 4 and 5).
    /// Why it matters to say which: a frozen monitor, a lapsed lease and a
    /// missed fence call for different remedies.
    pub fn not_live(
        earlier: &BTreeMap<u32, Record>,
        later: &BTreeMap<u32, Record>,
        nodes: impl IntoIterator<Item = u32>,
    ) -> BTreeMap<u32, NotLive> {
        let mut faults = BTreeMap::new();
        for n in nodes {
            let Some(b) = later.get(&n) else {
                faults.insert(n, NotLive::NoRecord);
                continue;
            };
            let fenced_by = later.iter().find_map(|(&peer, r)| {
                let f = *r.fenced.get(&n)?;
                (peer != n && fence_in_force(f, Some(b.incarnation))).then_some(peer)
            });
            let fault = match (fenced_by, earlier.get(&n)) {
                (Some(by), _) => NotLive::Fenced { by, incarnation: b.incarnation },
                (None, None) => NotLive::NoRecord,
                (None, Some(a)) if (b.incarnation, b.counter) == (a.incarnation, a.counter) => {
                    NotLive::Frozen
                }
                (None, Some(_)) if !b.holds_quorum() => NotLive::LeaseLapsed,
                (None, Some(_)) => continue,
            };
            faults.insert(n, fault);
        }
        faults
    }

    /// The acknowledgement this record gives `node`'s heartbeats, if any.
    pub fn ack_of(&self, node: u32) -> Option<Seen> {
        self.acks.get(&node).copied()
    }

    /// Does this record run `group` as an instance that counts: non-idle at
    /// a level other than `plan`, `test` and `stop` (which never count as
    /// running).
    pub fn runs(&self, group: &str) -> bool {
        self.groups.get(group).is_some_and(counts_as_running)
    }
}

/// Why a node is not live ([`Record::not_live`]), in an operator's words
/// by its `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum NotLive {
    /// Its record could not be read (or parsed) both times.
    NoRecord,
    /// Its record did not move between the two reads: its monitor is
    /// frozen or dead (its watchdog kills its groups when its lease ends).
    Frozen,
    /// Its record moves, but its lease does not hold: lapsed (no quorum
    /// acknowledges it) or released.
    LeaseLapsed,
    /// Node `by` lists its current incarnation as fenced.
    Fenced { by: u32, incarnation: u64 },
}

impl std::fmt::Display for NotLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotLive::NoRecord => write!(f, "no readable record"),
            NotLive::Frozen => write!(
                f,
                "its record did not move (mosha frozen or dead; its watchdog kills its groups \
                 when its lease ends)"
            ),
            NotLive::LeaseLapsed => {
                write!(f, "lease lapsed (its record moves but holds no lease: no quorum hears it)")
            }
            // The fencer is not named here: `mosha status` lists fences
            // (`FENCED by N`, and the fences in force) on lines of their own.
            NotLive::Fenced { incarnation, .. } => write!(
                f,
                "its incarnation {incarnation} is fenced (a node that still runs rejoins by \
                 itself as a new incarnation)"
            ),
        }
    }
}

/// Quorum as a published heartbeat file shows it (`mosha status`): `Some`
/// when `text` is a ranked record ([`Record::holds_quorum`]), `None` when
/// it is not one (another policy's heartbeat, a torn or bad record): the
/// caller then knows nothing about quorum from it.
pub fn quorum_of(text: &str) -> Option<bool> {
    Record::parse(text).ok().map(|r| r.holds_quorum())
}

/// The policy a heartbeat file that is not a ranked record shows, if it is
/// one another policy writes: `classic` beats with `<pid> <unix seconds>`
/// (one line, the 2003 original's heartbeat-file form). A node that
/// publishes another policy is a rolling upgrade or a switch of the
/// default: `ranked` logs it and takes nothing over meanwhile, rather than
/// mixing two placement rules silently. Anything else is "unknown".
pub fn other_policy(text: &str) -> Option<&'static str> {
    let line = text.strip_suffix('\n')?;
    let (pid, secs) = line.split_once(' ')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(secs)).then_some("classic")
}

/// A group status that counts as a running instance. `plan`, `test` and
/// `stop` never do; a level change away from a wanted level still does
/// until it settles, as a process may run meanwhile.
///
/// The same rule as [`crate::hastat::counts_as_running`] (outside `stop`,
/// only `CONFIGURED` is idle), which `mosha status` uses.
pub fn counts_as_running(st: &GroupStatus) -> bool {
    crate::hastat::counts_as_running(&st.level, &st.state)
}

fn yes_no(word: &str) -> Option<bool> {
    match word {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_fence_is_in_force_until_a_newer_incarnation_publishes() {
        assert!(fence_in_force(4, Some(4)), "the fenced incarnation still publishes");
        assert!(fence_in_force(4, None), "no record read: say what is listed");
        assert!(!fence_in_force(4, Some(5)), "the node came back: over");
        assert!(fence_in_force(4, Some(3)), "an older record read: still listed");
    }

    /// A sample record of `n`'s incarnation `inc` at `counter`, fencing
    /// nobody, keyed by its node.
    fn node(n: u32, inc: u64, counter: u64) -> (u32, Record) {
        let mut r = sample();
        (r.node, r.incarnation, r.counter) = (n, inc, counter);
        r.fenced.clear();
        (n, r)
    }

    /// Issue 12, items 4 and 5: live is "record moved and lease holds"
    /// (a frozen node's record stops moving) and "not fenced in its
    /// current incarnation by a peer" (a fence that reported success
    /// without killing leaves a barred node holding its lease).
    #[test]
    fn live_nodes_need_a_moving_record_a_lease_and_no_fence_in_force() {
        let earlier: BTreeMap<u32, Record> =
            [node(1, 1, 10), node(2, 4, 10), node(3, 1, 10)].into_iter().collect();
        let mut later: BTreeMap<u32, Record> =
            [node(1, 1, 16), node(2, 4, 16), node(3, 1, 10)].into_iter().collect();
        // Node 3 froze: its record did not move.
        assert_eq!(Record::live_nodes(&earlier, &later), BTreeSet::from([1, 2]));
        // Node 1 lists node 2's incarnation 4 as fenced: node 2 is barred.
        later.get_mut(&1).expect("node 1 read").fenced.insert(2, 4);
        assert_eq!(Record::live_nodes(&earlier, &later), BTreeSet::from([1]));
        // Node 2 restarted as incarnation 5: that fence is over.
        later.insert(2, node(2, 5, 1).1);
        assert_eq!(Record::live_nodes(&earlier, &later), BTreeSet::from([1, 2]));
        // A lapsed lease is not live either, though the record moves.
        later.get_mut(&1).expect("node 1 read").lease = LeaseState::Lost;
        assert_eq!(Record::live_nodes(&earlier, &later), BTreeSet::from([2]));
    }

    /// `mosha status` says why a node is not live, by the same rule:
    /// frozen, lease lapsed, fenced (naming the fencer), or no record.
    #[test]
    fn not_live_says_why() {
        let earlier: BTreeMap<u32, Record> =
            [node(1, 1, 10), node(2, 4, 10), node(3, 1, 10), node(4, 1, 10)].into_iter().collect();
        let mut later: BTreeMap<u32, Record> =
            [node(1, 1, 16), node(2, 4, 16), node(3, 1, 10), node(4, 1, 16)].into_iter().collect();
        later.get_mut(&1).expect("node 1").fenced.insert(2, 4);
        later.get_mut(&4).expect("node 4").lease = LeaseState::Lost;
        let faults = Record::not_live(&earlier, &later, 1..=5);
        assert_eq!(
            faults,
            BTreeMap::from([
                (2, NotLive::Fenced { by: 1, incarnation: 4 }),
                (3, NotLive::Frozen),
                (4, NotLive::LeaseLapsed),
                (5, NotLive::NoRecord),
            ])
        );
        assert!(NotLive::LeaseLapsed.to_string().starts_with("lease lapsed"));
        assert!(NotLive::Fenced { by: 1, incarnation: 4 }.to_string().contains("incarnation 4"));
        // The fenced node rejoined as incarnation 5: live again.
        later.insert(2, node(2, 5, 1).1);
        assert!(!Record::not_live(&earlier, &later, [2]).contains_key(&2));
    }
    use proptest::prelude::*;

    pub(crate) fn sample() -> Record {
        let mut r = Record {
            node: 3,
            incarnation: 7,
            counter: 123,
            policy: POLICY.into(),
            lease: LeaseState::Holding,
            floor: 57,
            watchdog: true,
            seen_all: true,
            config: Config { version: 2, members: vec![1, 2, 3], voters: Vec::new() },
            config_ack: Some(Change { replaces: 2, members: vec![1, 2, 3, 4], voters: Vec::new() }),
            acks: BTreeMap::new(),
            revocations: BTreeMap::new(),
            grants: BTreeMap::new(),
            claims: BTreeMap::new(),
            fenced: BTreeMap::new(),
            votes: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        r.acks.insert(1, Seen { incarnation: 5, counter: 100 });
        r.revocations.insert(2, Seen { incarnation: 4, counter: 88 });
        r.grants.insert("web".into(), Epoch { node: 3, incarnation: 7, floor: 57, req: 99 });
        r.claims.insert("web".into(), 99);
        r.fenced.insert(2, 4);
        r.votes.insert(2, 4);
        r.groups
            .insert("web".into(), GroupStatus { level: "start".into(), state: GroupState::Done });
        r
    }

    #[test]
    fn renders_the_documented_shape() {
        let text = sample().render();
        insta::assert_snapshot!(text, @r"
        clinit-ranked 1
        node 3 7 123
        policy ranked
        lease holding 57
        watchdog yes
        seen-all yes
        config 2 1,2,3
        config-ack 2 1,2,3,4
        ack 1 5 100
        revoke 2 4 88
        grant web 3 7 57 99
        claim web 99
        fenced 2 4
        vote 2 4
        group web start DONE
        sum 759ffb166ba3f315
        ");
        assert_eq!(Record::parse(&text), Ok(sample()));
    }

    #[test]
    fn torn_empty_and_tampered_records_are_errors_not_absent() {
        let text = sample().render();
        assert_eq!(Record::parse(""), Err(RecordError::Empty));
        // Every strict prefix (a torn write) is refused.
        for cut in 1..text.len() {
            assert!(Record::parse(&text[..cut]).is_err(), "prefix of {cut} bytes accepted");
        }
        let tampered = text.replace("lease holding", "lease released");
        assert!(matches!(Record::parse(&tampered), Err(RecordError::Checksum { .. })));
    }

    #[test]
    fn quorum_is_the_lease_held_and_unknown_for_anything_else() {
        let mut r = sample();
        assert_eq!(quorum_of(&r.render()), Some(true));
        for lease in [LeaseState::Released, LeaseState::Lost] {
            r.lease = lease;
            assert_eq!(quorum_of(&r.render()), Some(false), "{lease:?}");
        }
        assert_eq!(quorum_of("1234 1700000000\n"), None, "classic heartbeat");
        assert_eq!(quorum_of(""), None);
    }

    #[test]
    fn a_checksummed_but_malformed_body_names_its_line() {
        let body = format!("{MAGIC}\nnode 1 x 2\n");
        let text = format!("{body}sum {:016x}\n", fnv1a64(body.as_bytes()));
        assert_eq!(
            Record::parse(&text),
            Err(RecordError::BadLine { line: 2, what: "bad incarnation" })
        );
        let body = format!("{MAGIC}\nnode 1 1 2\n");
        let text = format!("{body}sum {:016x}\n", fnv1a64(body.as_bytes()));
        assert_eq!(Record::parse(&text), Err(RecordError::Missing("policy")));
    }

    #[test]
    fn fnv1a64_reference_values() {
        // Published test vectors of FNV-1a 64.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    fn word() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.:-]{1,8}"
    }

    fn nodes() -> impl Strategy<Value = Vec<u32>> {
        proptest::collection::btree_set(0u32..50, 0..5).prop_map(|s| s.into_iter().collect())
    }

    fn seen() -> impl Strategy<Value = Seen> {
        (any::<u64>(), any::<u64>())
            .prop_map(|(incarnation, counter)| Seen { incarnation, counter })
    }

    fn record() -> impl Strategy<Value = Record> {
        let lease = prop_oneof![
            Just(LeaseState::Holding),
            Just(LeaseState::Released),
            Just(LeaseState::Lost)
        ];
        (
            (
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                word(),
                lease,
                any::<bool>(),
                any::<bool>(),
                any::<u64>(),
            ),
            (any::<u64>(), nodes(), proptest::option::of((any::<u64>(), nodes(), nodes()))),
            proptest::collection::btree_map(0u32..50, seen(), 0..4),
            proptest::collection::btree_map(0u32..50, seen(), 0..4),
            proptest::collection::btree_map(
                word(),
                (any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>()),
                0..4,
            ),
            proptest::collection::btree_map(word(), any::<u64>(), 0..4),
            proptest::collection::btree_map(0u32..50, any::<u64>(), 0..3),
            proptest::collection::btree_map(word(), (word(), word()), 0..4),
            proptest::collection::btree_map(0u32..50, any::<u64>(), 0..3),
        )
            .prop_map(
                |(h, c, acks, revocations, grants, claims, fenced, groups, votes)| Record {
                    node: h.0,
                    incarnation: h.1,
                    counter: h.2,
                    policy: h.3,
                    lease: h.4,
                    floor: h.7,
                    watchdog: h.5,
                    seen_all: h.6,
                    config: Config { version: c.0, members: c.1, voters: Vec::new() },
                    config_ack: c.2.map(|(replaces, members, voters)| Change {
                        replaces,
                        members,
                        voters,
                    }),
                    acks,
                    revocations,
                    grants: grants
                        .into_iter()
                        .map(|(g, (node, incarnation, floor, req))| {
                            (g, Epoch { node, incarnation, floor, req })
                        })
                        .collect(),
                    claims,
                    fenced,
                    votes,
                    groups: groups
                        .into_iter()
                        .map(|(g, (l, s))| {
                            (g, GroupStatus { level: l, state: GroupState::parse(&s) })
                        })
                        .collect(),
                },
            )
    }

    proptest! {
        #[test]
        fn render_parse_round_trips(r in record()) {
            prop_assert_eq!(Record::parse(&r.render()), Ok(r));
        }

        #[test]
        fn garbage_never_panics(text in "\\PC*|[a-z0-9 ,\n-]*") {
            let _ = Record::parse(&text);
        }

        #[test]
        fn flipped_byte_is_never_accepted_as_another_record(r in record(), at in any::<prop::sample::Index>(), x in 1u8..=255) {
            let text = r.render();
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= x;
            if let Ok(s) = String::from_utf8(bytes) {
                if let Ok(back) = Record::parse(&s) {
                    // Only a change that renders identically may pass
                    // (e.g. none: every byte is covered by the checksum).
                    prop_assert_eq!(back, r);
                }
            }
        }
    }

    #[test]
    fn a_classic_heartbeat_is_another_policy_not_unknown() {
        assert_eq!(other_policy("4242 1796028558\n"), Some("classic"));
        for text in ["", "4242\n", "4242 17960x\n", "4242 1796028558", "clinit-ranked 1\n"] {
            assert_eq!(other_policy(text), None, "{text:?}");
        }
        let read = crate::cluster::parse_record("hb", b"77 1796028558\n");
        assert_eq!(read, super::super::Read::OtherPolicy("classic".into()));
        let torn = crate::cluster::parse_record("hb", b"clinit-ranked 1\nnode 2\n");
        assert!(matches!(torn, super::super::Read::Unknown(_)), "{torn:?}");
    }
}
