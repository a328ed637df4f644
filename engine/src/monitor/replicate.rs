//! Which node's copy of a replicated file (`hactl`, `cltab`) to adopt: the
//! pure decision of the original's `getlatest` (spec §5.4). The driver
//! stats/parses the copies, asks here, then copies atomically.
//!
//! Faithful rules: walk the candidates in the given (node) order; the newest
//! mtime wins, a later candidate replacing it only when *strictly* newer (so
//! ties keep the earliest in list order); adopt only when my own copy is
//! missing or strictly older; never copy when `me` is not in the list.
//!
//! Improvement (spec W10, §12.2): another node's copy that does not parse is
//! never adopted; it is skipped and the next newest considered, so a
//! half-copied or half-edited file cannot spread. My own copy takes part
//! even when it does not parse: a local edit in progress is not overwritten
//! by an older file (the driver keeps using its last good parse meanwhile).
//!
//! [`Replica`] holds one file kind's replication state on one node: the
//! copies read so far (by content identity, so an unchanged copy is not
//! parsed again), the last good parse, and what was already complained
//! about. [`crate::cluster::ClusterDriver`] runs it every cycle.

use crate::cltab::Cltab;
use crate::cluster::input::{ContentId, SharedFile, WallMs};
use crate::hactl::Hactl;
use crate::monitor::replica_version::{
    self as version, Decision as VDecision, Facts, Seal, VersionNote,
};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the driver knows about one node's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Modification time, whole seconds since the epoch (as the original).
    pub mtime_secs: i64,
    /// The content parses.
    pub parses: bool,
}

/// Why the decision came out as it did (for logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Why {
    /// `me` is not among the candidates (not a member): never copy.
    NotListed,
    /// No usable copy on any node.
    NoCopy,
    /// My copy is at least as new as the newest usable one.
    UpToDate,
    /// `from` has a newer copy than mine (`mine` = None: I have none).
    Newer { from: u32, theirs: i64, mine: Option<i64> },
    /// Versioned rule: the decision over versions (see
    /// [`super::replica_version`]).
    Versioned(Box<VDecision>),
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    /// Node to copy from, if any.
    pub copy_from: Option<u32>,
    pub why: Why,
    /// Other nodes' unparsable copies newer than the result (would have
    /// been adopted by the original).
    pub skipped_unparsable: Vec<u32>,
}

/// Decide from `(node, copy)` pairs in node order.
pub fn getlatest(candidates: &[(u32, Option<FileInfo>)], me: u32) -> Replication {
    let mut mine: Option<Option<i64>> = None;
    let mut newest: Option<(u32, i64)> = None;
    for &(node, info) in candidates {
        if node == me {
            mine = Some(info.map(|i| i.mtime_secs));
        }
        let Some(info) = info else { continue };
        if node != me && !info.parses {
            continue;
        }
        // Strictly newer replaces: ties keep the earliest in list order.
        if !matches!(newest, Some((_, best)) if info.mtime_secs <= best) {
            newest = Some((node, info.mtime_secs));
        }
    }
    let bar = newest.map(|(_, t)| t).into_iter().chain(mine.flatten()).max();
    let skipped_unparsable = candidates
        .iter()
        .filter_map(|&(node, info)| {
            let info = info?;
            let newer = !matches!(bar, Some(b) if info.mtime_secs <= b);
            (node != me && !info.parses && newer).then_some(node)
        })
        .collect();
    let (copy_from, why) = match (mine, newest) {
        (None, _) => (None, Why::NotListed),
        (Some(_), None) => (None, Why::NoCopy),
        (Some(mine), Some((from, theirs))) => {
            if from == me || mine.is_some_and(|m| m >= theirs) {
                (None, Why::UpToDate)
            } else {
                (Some(from), Why::Newer { from, theirs, mine })
            }
        }
    };
    Replication { copy_from, why, skipped_unparsable }
}

/// A file replicated between nodes (`hactl`, `cltab`), and how to parse it.
pub trait Replicated: Clone + PartialEq + Send + Sync + 'static {
    /// Which file of a node's directory it is.
    const FILE: SharedFile;
    /// Parse; errors are `file:line: reason` lines naming `file`.
    fn parse(text: &str, file: &str) -> Result<Self, String>;
}

impl Replicated for Hactl {
    const FILE: SharedFile = SharedFile::Hactl;
    fn parse(text: &str, file: &str) -> Result<Self, String> {
        Hactl::parse(text, file).map_err(|e| e.to_string())
    }
}

impl Replicated for Cltab {
    const FILE: SharedFile = SharedFile::Cltab;
    fn parse(text: &str, file: &str) -> Result<Self, String> {
        Cltab::parse(text, file).map_err(|e| e.to_string())
    }
}

/// One node's copy of a replicated file, as the driver knows it: its
/// version (mtime, identity, bytes) and parse result.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyInfo<T> {
    pub mtime: WallMs,
    pub id: ContentId,
    pub bytes: Arc<[u8]>,
    pub parsed: Result<Arc<T>, String>,
}

/// One node's copy as read this cycle: `Ok(None)` none, `Err` unreadable
/// (the reason, naming the file).
pub type CopyRead<T> = Result<Option<CopyInfo<T>>, String>;

/// Parse one version (`name` for messages).
///
/// A 0-byte copy is refused whatever the format: it is far likelier a
/// truncation (a full disk, an editor killed mid-write) than an intent, and
/// adopted it would stop every group in the cluster (an empty `hactl` wants
/// nothing). An intentionally empty file has a comment line.
pub fn parse_copy<T: Replicated>(bytes: &[u8], name: &str) -> Result<Arc<T>, String> {
    if bytes.is_empty() {
        return Err(format!(
            "{name}:1: the file is empty (0 bytes): refused as a likely truncation; \
             an intentionally empty file needs a comment line"
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = crate::located::line_of_offset(bytes, e.valid_up_to());
        format!("{name}:{line}: not UTF-8 (invalid byte at offset {} of the file)", e.valid_up_to())
    })?;
    T::parse(text, name).map(Arc::new)
}

/// Something replication wants logged (the driver turns these into events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaNote {
    /// My own copy could not be read: not replicating it this cycle (never
    /// overwrite what we cannot see).
    OwnUnreadable { reason: String },
    /// Another node's copy is the newest but does not parse: not adopted
    /// (said once per version).
    NewestUnparsable { node: u32, errors: String },
    /// My own copy does not parse (said once per version).
    OwnUnparsable { errors: String, kept_last_good: bool },
    /// Node `from`'s copy was installed as mine.
    Adopted { from: u32, theirs: i64, mine: Option<i64> },
    /// The copy from `from` was not installed.
    NotAdopted { from: u32, reason: String },
    /// Versioned rule (`ranked`): what it wants said.
    Versioned(VersionNote),
}

/// Which rule picks the copy to adopt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// The original's `getlatest`: newest mtime (`classic`).
    Mtime,
    /// Version counter, content-hash tie-break, seal lines
    /// ([`super::replica_version`]): hand edits are sealed once unchanged
    /// for `settle` ms (`ranked`).
    Versioned { settle: Millis },
}

/// What replication settled on this cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled<T> {
    /// The content to use: my copy if it parses, else the last good one.
    pub current: Option<Arc<T>>,
    /// `current` differs from the previous cycle's.
    pub changed: bool,
    /// The node whose copy was adopted this cycle, if any.
    pub adopted_from: Option<u32>,
}

/// Replication state of one file kind on one node (spec §5.4, with the
/// W10 improvement: a copy that does not parse never spreads, and a node
/// whose own copy is broken keeps running on its last good parse).
#[derive(Debug, Clone)]
pub struct Replica<T> {
    /// Every node's copy as last read (so unchanged copies are not
    /// re-parsed, and the executor may skip re-reading them).
    cache: BTreeMap<u32, CopyInfo<T>>,
    last_good: Option<Arc<T>>,
    /// (node, identity) pairs already complained about: say it once.
    warned: BTreeSet<(u32, ContentId)>,
    rule: Rule,
    /// Versioned rule: each node's copy judged from its bytes, by identity
    /// (so an unchanged copy is not hashed again).
    seals: BTreeMap<u32, (ContentId, Seal)>,
    /// Versioned rule: my copy's identity, since when (my clock) I have
    /// seen it unchanged, and the highest version number known when I
    /// first saw it (a hand edit that a newer seal overtakes while it
    /// settles gives way, see [`version::decide_seen`]).
    own_since: Option<(ContentId, Millis, u64)>,
    /// Versioned rule: the sealed copy being written as mine (my hand edit
    /// sealed, or my last sealed copy written back), while it is written.
    sealing: Option<CopyInfo<T>>,
    /// Versioned rule: my last sealed copy that parses (the last one I
    /// wrote, or read as mine), with its version. A torn write or a hand
    /// edit hides it on disk; it is what a truncated copy of mine is
    /// rewritten from when it is newer than every sealed copy in sight,
    /// and its number counts among the versions known (see
    /// [`version::decide`]).
    own_sealed: Option<(version::Version, CopyInfo<T>)>,
    /// Versioned rule: `Some(me)` while my cached copy is what I asked the
    /// executor to write and not yet what was read back. A disk may lie
    /// about a write (a torn copy answered as done): the next read of my
    /// copy asks without an identity, so it brings the bytes, and the copy
    /// is judged from them.
    unverified: Option<u32>,
    /// Versioned rule: the version last said to be written back over my
    /// truncated copy: said once while a disk keeps tearing the rewrites
    /// (every one a new identity), again only after my copy read whole.
    said_restore: Option<version::Version>,
}

impl<T> Default for Replica<T> {
    fn default() -> Self {
        Replica {
            cache: BTreeMap::new(),
            last_good: None,
            warned: BTreeSet::new(),
            rule: Rule::Mtime,
            seals: BTreeMap::new(),
            own_since: None,
            sealing: None,
            own_sealed: None,
            unverified: None,
            said_restore: None,
        }
    }
}

impl<T: Replicated> Replica<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replication under `rule`.
    pub fn with_rule(rule: Rule) -> Self {
        Replica { rule, ..Self::default() }
    }

    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// Versioned rule: node `node`'s copy's version, when it is sealed.
    pub fn version_of(&self, node: u32) -> Option<version::Version> {
        self.seals.get(&node).and_then(|(_, s)| s.version())
    }

    /// What was read of `node`'s copy last time.
    pub fn cached(&self, node: u32) -> Option<&CopyInfo<T>> {
        self.cache.get(&node)
    }

    /// Every node's copy as last read, by ascending node (for a merge walk
    /// beside a sorted node list: one step per node, not a look-up).
    pub fn cached_all(&self) -> impl Iterator<Item = (u32, &CopyInfo<T>)> {
        self.cache.iter().map(|(n, c)| (*n, c))
    }

    /// The identities a read may be asked with (`known`), by ascending
    /// node: every cached copy's, except my own copy just written (its
    /// bytes must be read back, see `unverified`).
    pub fn known_all(&self) -> impl Iterator<Item = (u32, ContentId)> + '_ {
        let skip = self.unverified;
        self.cache.iter().filter(move |(n, _)| Some(**n) != skip).map(|(n, c)| (*n, c.id))
    }

    pub fn last_good(&self) -> Option<&Arc<T>> {
        self.last_good.as_ref()
    }

    /// Remember this cycle's reads and decide whom to copy from
    /// ([`getlatest`] over the readable copies, in node order). Returns
    /// `None` when my own copy could not be read.
    pub fn plan(
        &mut self,
        me: u32,
        reads: &BTreeMap<u32, CopyRead<T>>,
        notes: &mut Vec<ReplicaNote>,
    ) -> Option<Replication> {
        self.plan_at(Millis::ZERO, me, reads, notes)
    }

    /// [`Replica::plan`] at `now` (this node's clock, ms): the versioned
    /// rule times the settle of a hand edit with it.
    pub fn plan_at(
        &mut self,
        now: Millis,
        me: u32,
        reads: &BTreeMap<u32, CopyRead<T>>,
        notes: &mut Vec<ReplicaNote>,
    ) -> Option<Replication> {
        let mut candidates = Vec::new();
        for (&node, read) in reads {
            match read {
                Ok(Some(info)) => {
                    // My copy read back after I wrote it (asked without an
                    // identity, so these are the bytes on disk) replaces
                    // what I meant to write, and is judged anew, even under
                    // the same identity (a torn write answered as done).
                    let read_back = self.unverified == Some(node);
                    if read_back {
                        self.unverified = None;
                        self.seals.remove(&node);
                    }
                    // An unchanged copy is already cached (most cycles, for
                    // most nodes): no clone, no map write.
                    if read_back
                        || self
                            .cache
                            .get(&node)
                            .is_none_or(|c| c.id != info.id || c.mtime != info.mtime)
                    {
                        self.cache.insert(node, info.clone());
                    }
                    let mtime_secs = info.mtime.whole_secs();
                    candidates
                        .push((node, Some(FileInfo { mtime_secs, parses: info.parsed.is_ok() })));
                }
                Ok(None) => {
                    self.cache.remove(&node);
                    if self.unverified == Some(node) {
                        self.unverified = None;
                    }
                    candidates.push((node, None));
                }
                Err(reason) => {
                    if node == me {
                        notes.push(ReplicaNote::OwnUnreadable { reason: reason.clone() });
                        return None;
                    }
                }
            }
        }
        self.cache.retain(|n, _| reads.contains_key(n));
        if let Rule::Versioned { settle } = self.rule {
            return Some(self.plan_versioned(now, me, reads.contains_key(&me), settle, notes));
        }
        let decision = getlatest(&candidates, me);
        for node in &decision.skipped_unparsable {
            let Some(info) = self.cache.get(node) else { continue };
            if self.warned.insert((*node, info.id)) {
                let errors = info.parsed.as_ref().err().cloned().unwrap_or_default();
                notes.push(ReplicaNote::NewestUnparsable { node: *node, errors });
            }
        }
        Some(decision)
    }

    /// The versioned decision over the cached copies (see
    /// [`super::replica_version`]).
    fn plan_versioned(
        &mut self,
        now: Millis,
        me: u32,
        listed: bool,
        settle: Millis,
        notes: &mut Vec<ReplicaNote>,
    ) -> Replication {
        let cache = &self.cache;
        self.seals.retain(|n, (id, _)| cache.get(n).is_some_and(|c| c.id == *id));
        let mut copies = Vec::with_capacity(self.cache.len());
        for (&node, info) in &self.cache {
            let seal = self
                .seals
                .entry(node)
                .or_insert_with(|| (info.id, version::classify(&info.bytes)))
                .1
                .clone();
            if let Seal::Truncated { reason } = &seal {
                if node != me && self.warned.insert((node, info.id)) {
                    let reason = reason.clone();
                    notes.push(ReplicaNote::Versioned(VersionNote::TheirsTruncated {
                        node,
                        reason,
                    }));
                }
            }
            let writer = version::writer(&info.bytes);
            copies.push((node, Some(Facts { seal, parses: info.parsed.is_ok(), writer })));
        }
        // Nodes read with no copy take part as "none".
        let own = self.cache.get(&me).map(|c| c.id);
        if listed && own.is_none() {
            copies.push((me, None));
            copies.sort_by_key(|(n, _)| *n);
        }
        // My copy as read, sealed and parsing, is my last sealed copy.
        if let (Some(info), Some((id, Seal::Sealed(v)))) =
            (self.cache.get(&me), self.seals.get(&me))
        {
            let known = self.own_sealed.as_ref().is_some_and(|(_, c)| c.id == *id);
            if *id == info.id && info.parsed.is_ok() && !known {
                self.own_sealed = Some((*v, info.clone()));
            }
            self.said_restore = None;
        }
        let kept = self.own_sealed.as_ref().map(|(v, _)| *v);
        let (unchanged_for, seen) = match (own, self.own_since) {
            (Some(id), Some((was, since, seen))) if was == id => {
                (now.saturating_sub(since), Some(seen))
            }
            (Some(id), _) => {
                let seen = version::highest_known(&copies, kept);
                self.own_since = Some((id, now, seen));
                (Millis::ZERO, Some(seen))
            }
            (None, _) => {
                self.own_since = None;
                (Millis::ZERO, None)
            }
        };
        let decision = version::decide_seen(&copies, me, kept, unchanged_for, settle, seen);
        self.sealing = None;
        let mine = self.cache.get(&me);
        let truncated = match self.seals.get(&me) {
            Some((_, Seal::Truncated { reason })) => Some(reason.clone()),
            _ => None,
        };
        // A truncated copy of mine that is still within the settle time
        // (an editor's write under way) is said once it is judged.
        let settling = matches!(decision, VDecision::Settling { .. });
        if let (false, Some(mine), Some(reason)) = (settling, mine, truncated.clone()) {
            let first = self.warned.insert((me, mine.id));
            let note = match &decision {
                VDecision::Restore { version } => {
                    (self.said_restore != Some(*version)).then(|| {
                        self.said_restore = Some(*version);
                        VersionNote::MineRestored { reason, version: *version }
                    })
                }
                VDecision::Adopt { from, .. } => {
                    first.then_some(VersionNote::MineTruncated { reason, replaced_by: Some(*from) })
                }
                _ => first.then_some(VersionNote::MineTruncated { reason, replaced_by: None }),
            };
            notes.extend(note.map(ReplicaNote::Versioned));
        }
        let copy_from = match &decision {
            VDecision::Adopt { from, .. } | VDecision::DropEdit { from, .. } => Some(*from),
            VDecision::Seal { number } => {
                let mine = mine.cloned();
                self.sealing = mine.map(|info| {
                    // Named as my edit (`by=me`), so that a conflict read
                    // on a replica elsewhere names this node.
                    let bytes: Arc<[u8]> =
                        version::seal_edit(version::body(&info.bytes), *number, me).into();
                    CopyInfo { bytes, ..info }
                });
                self.sealing.as_ref().map(|_| me)
            }
            VDecision::Restore { .. } => {
                self.sealing = self.own_sealed.as_ref().map(|(_, info)| info.clone());
                self.sealing.as_ref().map(|_| me)
            }
            VDecision::Settling { left } => {
                if let (None, Some(id)) = (&truncated, own) {
                    // Said once per edit (identity), not every cycle.
                    if self.warned.insert((me, id)) {
                        let note = VersionNote::Settling { left: *left };
                        notes.push(ReplicaNote::Versioned(note));
                    }
                }
                None
            }
            _ => None,
        };
        let why = Why::Versioned(Box::new(decision));
        Replication { copy_from, why, skipped_unparsable: Vec::new() }
    }

    /// The copy `plan` chose, as the bytes and mtime to install.
    pub fn to_install(&self, decision: &Replication) -> Option<(u32, &CopyInfo<T>)> {
        let from = decision.copy_from?;
        let written_from_memory =
            |d: &VDecision| matches!(d, VDecision::Seal { .. } | VDecision::Restore { .. });
        if matches!(&decision.why, Why::Versioned(d) if written_from_memory(d)) {
            return self.sealing.as_ref().map(|info| (from, info));
        }
        let info = self.cache.get(&from)?;
        info.parsed.is_ok().then_some((from, info))
    }

    /// After a possible copy: settle on my copy (or the last good one).
    /// `installed` is the copy's outcome: `Ok(id)` my new copy's identity.
    pub fn settle(
        &mut self,
        me: u32,
        decision: Option<&Replication>,
        installed: Option<Result<ContentId, String>>,
        notes: &mut Vec<ReplicaNote>,
    ) -> Settled<T> {
        let mut adopted_from = None;
        if let (Some(result), Some(decision)) = (installed, decision) {
            if let Why::Versioned(d) = &decision.why {
                adopted_from = self.settle_versioned(me, d, result, notes);
            } else if let Why::Newer { from, theirs, mine } = &decision.why {
                match (result, self.cache.get(from).cloned()) {
                    (Ok(id), Some(info)) => {
                        notes.push(ReplicaNote::Adopted {
                            from: *from,
                            theirs: *theirs,
                            mine: *mine,
                        });
                        adopted_from = Some(*from);
                        self.cache.insert(me, CopyInfo { id, ..info });
                    }
                    (Ok(_), None) => notes.push(ReplicaNote::NotAdopted {
                        from: *from,
                        reason: "its copy is no longer known".into(),
                    }),
                    (Err(reason), _) => notes.push(ReplicaNote::NotAdopted { from: *from, reason }),
                }
            }
        }
        let mut mine = self.cache.get(&me).cloned();
        if let (Rule::Versioned { .. }, Some(info)) = (self.rule, &mine) {
            // Only a sealed copy is used: a hand edit waits for its seal,
            // a truncated copy is never used (the last good one is). One
            // that does not parse is still said (below), whatever it is.
            let sealed = match self.seals.get(&me) {
                Some((id, seal)) if *id == info.id => seal.version().is_some(),
                _ => version::classify(&info.bytes).version().is_some(),
            };
            if !sealed && info.parsed.is_ok() {
                mine = None;
            }
        }
        let previous = self.last_good.clone();
        let current = match mine {
            Some(CopyInfo { parsed: Ok(parsed), .. }) => {
                self.last_good = Some(parsed.clone());
                Some(parsed)
            }
            Some(CopyInfo { parsed: Err(errors), id, .. }) => {
                if self.warned.insert((me, id)) {
                    let kept_last_good = self.last_good.is_some();
                    notes.push(ReplicaNote::OwnUnparsable { errors, kept_last_good });
                }
                self.last_good.clone()
            }
            None => self.last_good.clone(),
        };
        // Forget complaints about versions that are gone.
        let cache = &self.cache;
        // (A settling note was keyed by my copy's identity; a parse
        // complaint about the same identity shares the key, so the
        // versioned rule says "settling" only for copies that parse.)
        self.warned.retain(|(n, id)| cache.get(n).is_some_and(|c| c.id == *id));
        let changed = current.as_deref() != previous.as_deref();
        Settled { current, changed, adopted_from }
    }

    /// Versioned rule: record what a copy or a seal installed as mine.
    fn settle_versioned(
        &mut self,
        me: u32,
        decision: &VDecision,
        result: Result<ContentId, String>,
        notes: &mut Vec<ReplicaNote>,
    ) -> Option<u32> {
        let (from, info, note) = match decision {
            VDecision::Adopt { from, theirs, mine } => {
                let note = VersionNote::Adopted { from: *from, theirs: *theirs, mine: *mine };
                (*from, self.cache.get(from).cloned(), Some(note))
            }
            VDecision::DropEdit { from, theirs, seen } => {
                let note = VersionNote::EditDropped { from: *from, theirs: *theirs, seen: *seen };
                (*from, self.cache.get(from).cloned(), Some(note))
            }
            VDecision::Seal { .. } => {
                let info = self.sealing.take();
                let seal = info.as_ref().map(|i| version::classify(&i.bytes));
                let Some(Seal::Sealed(v)) = seal else { return None };
                (me, info, Some(VersionNote::Sealed { version: v }))
            }
            // Said when decided (`MineRestored`).
            VDecision::Restore { .. } => (me, self.sealing.take(), None),
            _ => return None,
        };
        match (result, info) {
            (Ok(id), Some(info)) => {
                notes.extend(note.map(ReplicaNote::Versioned));
                let info = CopyInfo { id, ..info };
                if let (Some(v), true) =
                    (version::classify(&info.bytes).version(), info.parsed.is_ok())
                {
                    self.own_sealed = Some((v, info.clone()));
                }
                self.cache.insert(me, info);
                // Used at once, but read back before it is trusted.
                self.unverified = Some(me);
                self.own_since = None;
                (from != me).then_some(from)
            }
            (Ok(_), None) => {
                let reason = "its copy is no longer known".into();
                notes.push(ReplicaNote::NotAdopted { from, reason });
                None
            }
            (Err(reason), _) => {
                notes.push(ReplicaNote::NotAdopted { from, reason });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(mtime_secs: i64) -> Option<FileInfo> {
        Some(FileInfo { mtime_secs, parses: true })
    }

    fn broken(mtime_secs: i64) -> Option<FileInfo> {
        Some(FileInfo { mtime_secs, parses: false })
    }

    const Y1981: i64 = 347_158_860;
    const Y1982: i64 = 378_694_860;
    const NOW: i64 = 1_700_000_000;

    /// t/1070getlatest.t, all 8 assertions, with the copies the driver makes.
    #[test]
    fn t1070_sequence() {
        // hactl: node 1 = now, node 2 = older empty file, node 3 none.
        let mut hactl = [(1, at(NOW)), (2, at(Y1981)), (3, None)];
        // 1: node 2 adopts node 1's copy; `cp -p` keeps the mtime.
        let r = getlatest(&hactl, 2);
        assert_eq!(r.copy_from, Some(1));
        assert_eq!(r.why, Why::Newer { from: 1, theirs: NOW, mine: Some(Y1981) });
        hactl[1].1 = hactl[0].1;
        // 2: second call: nothing to do.
        assert_eq!(getlatest(&hactl, 2).copy_from, None);

        let mut clstat = [(1, at(Y1981)), (2, at(Y1982)), (3, None)];
        // 3: node 3 has none; the newest is node 2's.
        let r = getlatest(&clstat, 3);
        assert_eq!(r.copy_from, Some(2));
        assert_eq!(r.why, Why::Newer { from: 2, theirs: Y1982, mine: None });
        clstat[2].1 = clstat[1].1;
        // 4
        assert_eq!(getlatest(&clstat, 3).copy_from, None);
        // 5, 6: node 2 holds the newest (the tie with node 3 keeps node 2).
        for _ in 0..2 {
            let r = getlatest(&clstat, 2);
            assert_eq!((r.copy_from, r.why), (None, Why::UpToDate));
        }
        // 7: node 1's 1981 copy is replaced by the 1982 one (earliest of ties).
        assert_eq!(getlatest(&clstat, 1).copy_from, Some(2));
        clstat[0].1 = clstat[1].1;
        // 8
        assert_eq!(getlatest(&clstat, 1).copy_from, None);
    }

    #[test]
    fn not_listed_and_no_copy() {
        assert_eq!(getlatest(&[(1, at(5)), (2, at(6))], 3).why, Why::NotListed);
        assert_eq!(getlatest(&[(1, None), (2, None)], 2).why, Why::NoCopy);
        assert_eq!(getlatest(&[], 2).why, Why::NotListed);
    }

    #[test]
    fn unparsable_copies_are_skipped_for_the_next_newest() {
        let r = getlatest(&[(1, broken(30)), (2, at(20)), (3, at(10))], 3);
        assert_eq!(r.copy_from, Some(2));
        assert_eq!(r.skipped_unparsable, vec![1]);
        // Only unparsable copies newer than mine: nothing to do, but say so.
        let r = getlatest(&[(1, broken(30)), (3, at(10))], 3);
        assert_eq!((r.copy_from, r.why, r.skipped_unparsable), (None, Why::UpToDate, vec![1]));
        // An old broken copy is not worth mentioning.
        assert!(getlatest(&[(1, broken(5)), (3, at(10))], 3).skipped_unparsable.is_empty());
        // Nothing usable anywhere.
        assert_eq!(getlatest(&[(1, broken(5)), (2, None)], 2).why, Why::NoCopy);
    }

    fn copy(bytes: &[u8], id: u64) -> CopyInfo<Hactl> {
        let parsed = parse_copy::<Hactl>(bytes, "hactl");
        CopyInfo { mtime: WallMs(0), id: ContentId(id), bytes: bytes.into(), parsed }
    }

    fn reads(copies: &[(u32, &CopyInfo<Hactl>)]) -> BTreeMap<u32, CopyRead<Hactl>> {
        copies.iter().map(|(n, c)| (*n, Ok(Some((*c).clone())))).collect()
    }

    /// Node 1 under the versioned rule, with node 2 on `theirs`: its hand
    /// edit `edit` is sealed as `number`, and the executor answers the
    /// write with identity 10 (whatever landed). Returns the replica and
    /// the bytes it meant to write.
    fn sealed_own_edit(
        edit: &[u8],
        theirs: &CopyInfo<Hactl>,
        number: u64,
    ) -> (Replica<Hactl>, Vec<u8>) {
        use crate::monitor::replica_version::SETTLE;
        let mut r = Replica::<Hactl>::with_rule(Rule::Versioned { settle: SETTLE });
        let mine = copy(edit, 1);
        let mut notes = Vec::new();
        let d = r.plan_at(Millis::ZERO, 1, &reads(&[(1, &mine), (2, theirs)]), &mut notes);
        assert!(d.is_some_and(|d| d.copy_from.is_none()), "settling first");
        let d = r.plan_at(SETTLE, 1, &reads(&[(1, &mine), (2, theirs)]), &mut notes);
        let d = d.expect("my copy was read");
        assert_eq!(d.why, Why::Versioned(Box::new(VDecision::Seal { number })));
        let (from, info) = r.to_install(&d).expect("a seal to write");
        assert_eq!(from, 1);
        let intended = info.bytes.to_vec();
        r.settle(1, Some(&d), Some(Ok(ContentId(10))), &mut notes);
        (r, intended)
    }

    /// Issue 12, item 2: node 1's hand edit is settling (2 s) when node 2
    /// writes and confirms a `mosha hactl set` (version 6, one above the
    /// 5 the edit saw). The hand edit was sealed as 7 at the end of its
    /// settle time and undid the confirmed edit; the later edit must win:
    /// the hand edit gives way and node 2's copy replaces it. An edit
    /// written after version 6 was seen is still sealed above it.
    #[test]
    fn a_hand_edit_settling_when_a_newer_seal_arrives_gives_way_to_it() {
        use crate::monitor::replica_version::{classify, seal, SETTLE};
        let mut r = Replica::<Hactl>::with_rule(Rule::Versioned { settle: SETTLE });
        let mut notes = Vec::new();
        let v5 = copy(&seal(b"web start\ndb start\n", 5), 2);
        let edit = copy(b"web stop\ndb start\n", 1);
        let d = r.plan_at(Millis::ZERO, 1, &reads(&[(1, &edit), (2, &v5)]), &mut notes);
        assert!(matches!(d.as_ref().map(d_why), Some(VDecision::Settling { .. })), "{d:?}");
        // Node 2's `hactl set` (db stop), sealed above every copy it saw.
        let v6 = copy(&seal(b"web start\ndb stop\n", 6), 3);
        let d = r.plan_at(Millis(1_000), 1, &reads(&[(1, &edit), (2, &v6)]), &mut notes);
        assert!(matches!(d.as_ref().map(d_why), Some(VDecision::DropEdit { .. })), "{d:?}");
        let d = r.plan_at(SETTLE, 1, &reads(&[(1, &edit), (2, &v6)]), &mut notes);
        let d = d.expect("my copy was read");
        let theirs = classify(&v6.bytes).version().expect("sealed");
        assert_eq!(
            d.why,
            Why::Versioned(Box::new(VDecision::DropEdit { from: 2, theirs, seen: 5 })),
            "the hand edit must not be sealed above the confirmed edit it never saw"
        );
        let (from, info) = r.to_install(&d).expect("node 2's copy to install");
        assert_eq!((from, &info.bytes), (2, &v6.bytes));
        r.settle(1, Some(&d), Some(Ok(ContentId(20))), &mut notes);
        assert!(notes.iter().any(|n| matches!(
            n,
            ReplicaNote::Versioned(VersionNote::EditDropped { from: 2, seen: 5, .. })
        )));
        // A new hand edit, written once version 6 is known, wins over it.
        let later = copy(b"web stop\ndb stop\n", 4);
        let t = Millis(5_000);
        r.plan_at(t, 1, &reads(&[(1, &later), (2, &v6)]), &mut notes);
        let d = r.plan_at(t + SETTLE, 1, &reads(&[(1, &later), (2, &v6)]), &mut notes);
        assert_eq!(d.map(|d| d.why), Some(Why::Versioned(Box::new(VDecision::Seal { number: 7 }))));
    }

    /// Issue 12 leftover: the seal my monitor writes over my hand edit
    /// named no one, so `hactl set` on node 2, losing to that edit as read
    /// in node 3's replica of it, named node 3 as the editor. The seal now
    /// says `by=1` (node 1's operator edited node 1's copy), every replica
    /// carries it, and the conflict names node 1.
    #[test]
    fn a_sealed_hand_edit_names_its_node_and_a_conflict_read_on_a_replica_names_it() {
        use crate::monitor::replica_edit::{judge, CopyFacts, Edit, Verdict};
        use crate::monitor::replica_version::{classify, seal_by, writer};
        // Node 2's `hactl set web stop` (from start), written as version 6.
        let set = copy(&seal_by(b"web stop\n", 6, 2), 2);
        // Node 1's hand edit (web at level 3) is sealed above it, as 7.
        let (_, edit) = sealed_own_edit(b"web 3\n", &set, 7);
        assert_eq!(writer(&edit), Some(1), "{}", String::from_utf8_lossy(&edit));
        assert_eq!(classify(&edit).version().map(|v| v.number), Some(7));
        // Node 2 checks its write: node 1's copy is out of its reach, node
        // 3 holds the replica of node 1's edit.
        let facts = |bytes: &[u8]| {
            let parsed = parse_copy::<Hactl>(bytes, "hactl").ok();
            Some(CopyFacts {
                seal: classify(bytes),
                level: parsed.map(|h| h.get("web").map(|w| w.level.clone())),
                writer: writer(bytes),
            })
        };
        let copies = vec![(1, None), (2, facts(&set.bytes)), (3, facts(&edit))];
        let v =
            judge(&copies, &Edit { level: "stop", from: Some("start"), wrote: 6, concurrent: &[] });
        let Verdict::Conflict { node, writer, level, .. } = v else { panic!("{v:?}") };
        assert_eq!((node, writer, level.as_deref()), (3, Some(1), Some("3")));
    }

    /// At the first start on original-format files every node seals its
    /// own copy as version 1: those seals name no one, so that identical
    /// copies are identical files on every node.
    #[test]
    fn a_first_seal_of_unsealed_copies_names_no_one() {
        use crate::monitor::replica_version::{writer, SETTLE};
        let mut sealed = Vec::new();
        for me in [1, 2] {
            let mut r = Replica::<Hactl>::with_rule(Rule::Versioned { settle: SETTLE });
            let (a, b) = (copy(b"web start\n", 1), copy(b"web start\n", 2));
            let mut notes = Vec::new();
            r.plan_at(Millis::ZERO, me, &reads(&[(1, &a), (2, &b)]), &mut notes);
            let d = r.plan_at(SETTLE, me, &reads(&[(1, &a), (2, &b)]), &mut notes);
            let d = d.expect("my copy was read");
            assert_eq!(d.why, Why::Versioned(Box::new(VDecision::Seal { number: 1 })));
            let (_, info) = r.to_install(&d).expect("a seal to write");
            sealed.push(info.bytes.to_vec());
        }
        assert_eq!(writer(&sealed[0]), None);
        assert_eq!(sealed[0], sealed[1]);
    }

    fn d_why(d: &Replication) -> &VDecision {
        match &d.why {
            Why::Versioned(v) => v,
            other => panic!("not versioned: {other:?}"),
        }
    }

    /// Issue 12, seed 36 at N = 3: a torn write of my own sealed copy,
    /// answered as done with the identity of what landed. The next read of
    /// my copy must bring its bytes (not ask with the identity written),
    /// and the copy is judged from them: truncated, not my sealed edit.
    #[test]
    fn my_copy_is_read_back_after_i_write_it_and_judged_from_what_landed() {
        use crate::monitor::replica_version::{classify, seal};
        let theirs = copy(&seal(b"web start\n", 6), 2);
        let (mut r, intended) = sealed_own_edit(b"web stop\n", &theirs, 7);
        // Used at once: the sealed edit is my copy for this cycle.
        assert_eq!(r.version_of(1), None, "not judged yet");
        assert_eq!(r.cached(1).map(|c| c.bytes.to_vec()), Some(intended.clone()));
        // ...but not asked about by identity: the next read brings bytes.
        let known: Vec<(u32, ContentId)> = r.known_all().collect();
        assert_eq!(known, vec![(2, ContentId(2))], "my copy must be read back");
        // What landed: half of it, under the identity the write answered.
        let torn = copy(&intended[..intended.len() / 2], 10);
        let mut notes = Vec::new();
        r.plan_at(Millis(2_500), 1, &reads(&[(1, &torn), (2, &theirs)]), &mut notes);
        assert_eq!(r.cached(1).map(|c| c.bytes.to_vec()), Some(torn.bytes.to_vec()));
        // Judged once it has stayed so for the settle time (an editor's
        // rewrite in place also starts with a short file).
        assert!(notes.is_empty(), "{notes:?}");
        r.plan_at(Millis(4_600), 1, &reads(&[(1, &torn), (2, &theirs)]), &mut notes);
        assert!(
            notes.iter().any(|n| matches!(
                n,
                ReplicaNote::Versioned(VersionNote::MineTruncated { .. })
                    | ReplicaNote::Versioned(VersionNote::MineRestored { .. })
            )),
            "my torn copy went unnoticed: {notes:?}"
        );
        // A faithful write read back is trusted again (asked by identity).
        let (mut r, intended) = sealed_own_edit(b"web stop\n", &theirs, 7);
        let landed = copy(&intended, 10);
        r.plan_at(Millis(2_500), 1, &reads(&[(1, &landed), (2, &theirs)]), &mut Vec::new());
        assert_eq!(r.version_of(1), classify(&intended).version());
        let known: Vec<(u32, ContentId)> = r.known_all().collect();
        assert_eq!(known, vec![(1, ContentId(10)), (2, ContentId(2))]);
    }

    /// Issue 12, seed 36 at N = 3 (after the torn write is seen): my
    /// truncated copy is written back from my last sealed copy, version 7,
    /// kept in memory, not replaced by node 2's older version 6, which
    /// would undo the operator's edit.
    #[test]
    fn my_torn_copy_is_written_back_from_my_last_sealed_copy_not_an_older_one() {
        use crate::monitor::replica_version::{classify, seal};
        let theirs = copy(&seal(b"web start\n", 6), 2);
        let (mut r, intended) = sealed_own_edit(b"web stop\n", &theirs, 7);
        let torn = copy(&intended[..intended.len() / 2], 10);
        let mut notes = Vec::new();
        let d = r.plan_at(Millis(2_500), 1, &reads(&[(1, &torn), (2, &theirs)]), &mut notes);
        let d = d.expect("my copy was read");
        assert!(matches!(*d_why(&d), VDecision::Settling { .. }), "{:?}", d.why);
        let d = r.plan_at(Millis(4_600), 1, &reads(&[(1, &torn), (2, &theirs)]), &mut notes);
        let d = d.expect("my copy was read");
        let v7 = classify(&intended).version().expect("sealed");
        assert_eq!(d.why, Why::Versioned(Box::new(VDecision::Restore { version: v7 })));
        let (from, info) = r.to_install(&d).expect("a copy to write");
        assert_eq!((from, info.bytes.to_vec()), (1, intended.clone()));
        let said = notes.iter().any(|n| {
            matches!(n, ReplicaNote::Versioned(VersionNote::MineRestored { version, .. }) if *version == v7)
        });
        assert!(said, "{notes:?}");
        // The disk tears the rewrite too (a new identity): written back
        // again, and said once, not at every rewrite.
        r.settle(1, Some(&d), Some(Ok(ContentId(11))), &mut notes);
        let torn = copy(&intended[..intended.len() / 2], 11);
        r.plan_at(Millis(4_700), 1, &reads(&[(1, &torn), (2, &theirs)]), &mut notes);
        let d = r.plan_at(Millis(6_800), 1, &reads(&[(1, &torn), (2, &theirs)]), &mut notes);
        let d = d.expect("my copy was read");
        assert_eq!(d.why, Why::Versioned(Box::new(VDecision::Restore { version: v7 })));
        let restored = |notes: &[ReplicaNote]| {
            notes
                .iter()
                .filter(|n| matches!(n, ReplicaNote::Versioned(VersionNote::MineRestored { .. })))
                .count()
        };
        assert_eq!(restored(&notes), 1, "{notes:?}");
        // Written back (faithfully this time) and read back: up to date,
        // and node 1 runs the operator's edit.
        let s = r.settle(1, Some(&d), Some(Ok(ContentId(12))), &mut notes);
        assert_eq!(
            s.current.and_then(|h| h.get("web").map(|w| w.level.clone())).as_deref(),
            Some("stop")
        );
        let landed = copy(&intended, 12);
        let d = r.plan_at(Millis(3_000), 1, &reads(&[(1, &landed), (2, &theirs)]), &mut notes);
        assert_eq!(d.map(|d| d.why), Some(Why::Versioned(Box::new(VDecision::UpToDate))));
    }

    #[test]
    fn my_own_broken_copy_is_not_overwritten_by_an_older_one() {
        let r = getlatest(&[(1, at(10)), (2, broken(20))], 2);
        assert_eq!((r.copy_from, r.why), (None, Why::UpToDate));
        // ...but a newer good copy replaces it.
        assert_eq!(getlatest(&[(1, at(30)), (2, broken(20))], 2).copy_from, Some(1));
    }
}
