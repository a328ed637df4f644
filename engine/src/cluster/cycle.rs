//! The read phase of one monitor cycle, as a state machine:
//! idle → membership → node reads → copies → decide → idle.
//!
//! Every phase that waits on the executor has a deadline the driver sets
//! (the read time-out); when it passes, whatever has not answered counts as
//! "no answer" and the cycle goes on. A read that outlives its deadline keeps
//! its node *busy*: no second read is sent to a node whose previous read
//! still hangs (it is "unreadable" meanwhile), so a dead mount costs one
//! blocked executor thread, not one per cycle.

use super::input::{ContentId, FileRead, FileReport, SharedFile, WallMs};
use crate::cltab::Cltab;
use crate::hactl::Hactl;
use crate::monitor::replicate::{parse_copy, CopyInfo, CopyRead, Replica, Replicated, Replication};
use crate::monitor::NodeStatus;
use crate::status::ClStat;
use crate::time::Millis;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where the cycle is.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// Waiting for the next cycle at `at`.
    Idle {
        at: Millis,
    },
    /// Membership read `seq` sent; no answer yet.
    Membership {
        seq: u64,
        deadline: Millis,
    },
    Reading(Reading),
    Copying(Box<Copying>),
}

/// The batch of node reads sent (one `ReadNodes`), some answered.
///
/// Flat vectors indexed like `nodes`, not maps: at 100 members a map entry
/// per node and cycle cost more than the judgement itself.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// The batch's `seq`.
    pub seq: u64,
    pub deadline: Millis,
    pub members: Vec<u32>,
    /// The nodes read, ascending.
    pub nodes: Vec<u32>,
    /// What each node's read gave (`None`: not answered yet), by the index
    /// of the node in `nodes`.
    pub got: Vec<Option<NodeFiles>>,
    /// How many of `got` are still `None`.
    pub waiting: usize,
}

impl Reading {
    /// The index of `node` when its read is still awaited.
    pub fn awaits(&self, seq: u64, node: u32) -> Option<usize> {
        if seq != self.seq {
            return None;
        }
        let i = self.nodes.binary_search(&node).ok()?;
        self.got[i].is_none().then_some(i)
    }

    /// Store node `i`'s result.
    pub fn answer(&mut self, i: usize, files: NodeFiles) {
        if self.got[i].is_none() {
            self.waiting -= 1;
        }
        self.got[i] = Some(files);
    }
}

/// Copies of replicated files sent, some answered.
#[derive(Debug, Clone)]
pub(crate) struct Copying {
    pub deadline: Millis,
    pub members: Vec<u32>,
    /// The nodes read this cycle, ascending.
    pub read: Vec<u32>,
    pub nodes: BTreeMap<u32, NodeStatus>,
    pub hactl: Step,
    pub cltab: Step,
}

/// One file kind's replication within a cycle.
#[derive(Debug, Clone, Default)]
pub(crate) struct Step {
    /// Nothing changed since a cycle that had nothing to do (see
    /// [`Quiet`]): no plan, no settle, the previous result stands.
    pub quiet: bool,
    pub decision: Option<Replication>,
    /// The copy's seq while it runs.
    pub copy: Option<u64>,
    /// The copy's outcome (`Ok(id)`: my new copy's identity).
    pub result: Option<Result<super::input::ContentId, String>>,
}

impl Step {
    pub fn waiting(&self) -> bool {
        self.copy.is_some() && self.result.is_none()
    }
}

/// What one node's read gave, as the monitor and replication need it.
#[derive(Debug, Clone)]
pub(crate) struct NodeFiles {
    pub clstat: ClstatRead,
    pub hactl: Copy<Hactl>,
    pub cltab: Copy<Cltab>,
}

/// What one node's read gave for its clstat.
#[derive(Debug, Clone)]
pub(crate) enum ClstatRead {
    /// The status as the monitor takes it.
    Status(NodeStatus),
    /// Confirmed unchanged: the node's entry of the clstat cache, aged
    /// `age`. Its `Arc` is looked up (and cloned only if the last cycle's
    /// observation does not hold it already) when the batch is finished
    /// ([`ClstatRead::store`]). Why: at 100 members, cloning an `Arc` per
    /// member and cycle was a third of a steady simulation, as each is a
    /// locked increment on a line nothing else touches (every reader holds
    /// its own parsed copy of every node's clstat).
    Cached {
        age: Millis,
        /// The entry at the answer; debug builds check that it is still
        /// the one stored (the cache of an answered node cannot change
        /// before its batch is finished: later reports of it are ignored).
        #[cfg(debug_assertions)]
        was: Arc<ClStat>,
    },
}

impl ClstatRead {
    /// Put the status into `slot` (the last cycle's status of the node):
    /// for an unchanged clstat whose `Arc` the slot already holds, only
    /// the age changes. `cached`: the node's clstat cache entry now.
    pub fn store(self, node: u32, slot: &mut NodeStatus, cached: Option<&Arc<ClStat>>) {
        match (self, slot) {
            (ClstatRead::Cached { age, .. }, NodeStatus::Read { clstat, age: old })
                if cached.is_some_and(|c| Arc::ptr_eq(c, clstat)) =>
            {
                *old = age;
            }
            (read, slot) => *slot = read.into_status(node, cached),
        }
    }

    /// The status as the monitor takes it (see [`ClstatRead::store`]).
    pub fn into_status(self, node: u32, cached: Option<&Arc<ClStat>>) -> NodeStatus {
        match self {
            ClstatRead::Status(status) => status,
            ClstatRead::Cached { age, .. } => match cached {
                Some(clstat) => NodeStatus::Read { clstat: Arc::clone(clstat), age },
                None => not_sent_clstat(node),
            },
        }
    }

    /// Debug builds: the cache entry given is the one answered with.
    #[cfg(debug_assertions)]
    pub fn check(&self, cached: Option<&Arc<ClStat>>) {
        if let ClstatRead::Cached { was, .. } = self {
            assert!(cached.is_some_and(|c| Arc::ptr_eq(c, was)), "clstat cache changed");
        }
    }
}

/// A clstat confirmed unchanged that the cache no longer holds (cannot
/// happen while the cache changes only with reports; said, not assumed).
fn not_sent_clstat(node: u32) -> NodeStatus {
    NodeStatus::Unreadable {
        reason: format!("node {node}'s {}: content not sent", SharedFile::Clstat),
    }
}

impl NodeFiles {
    /// Nothing could be read, for `reason`.
    pub fn failed(reason: String) -> NodeFiles {
        NodeFiles {
            clstat: ClstatRead::Status(NodeStatus::Unreadable { reason: reason.clone() }),
            hactl: Copy::Read(Box::new(Err(reason.clone()))),
            cltab: Copy::Read(Box::new(Err(reason))),
        }
    }
}

impl NodeFiles {
    /// What a read of `node` gives when the executor confirmed every asked
    /// file unchanged (`unchanged` of a [`super::ClusterInput::NodesRead`]): exactly
    /// what a report per file with `bytes` left out would give, built from
    /// the caches the asks were made from, with the clstat's age judged
    /// from its mtime now (`clstat_mtime`; `None`: not asked). `cached`:
    /// the node's entry of the clstat cache.
    pub fn unchanged(
        node: u32,
        me: u32,
        read_at: WallMs,
        clstat_mtime: Option<WallMs>,
        cached: Option<&Arc<ClStat>>,
    ) -> NodeFiles {
        let clstat = match clstat_mtime.filter(|_| node != me) {
            None => ClstatRead::Status(not_asked(node, me)),
            Some(mtime) => match cached {
                Some(_clstat) => ClstatRead::Cached {
                    age: read_at.since(mtime),
                    #[cfg(debug_assertions)]
                    was: Arc::clone(_clstat),
                },
                None => ClstatRead::Status(not_sent_clstat(node)),
            },
        };
        NodeFiles { clstat, hactl: Copy::Cached, cltab: Copy::Cached }
    }
}

/// Replication of one file kind had nothing to do in the last cycle that
/// ran it: no copy to make, and it settled on `current`. While every node
/// it read then is read again and confirmed unchanged, the same reads give
/// the same plan (`getlatest` is a function of them), so the cycle skips
/// plan and settle and keeps `current`: replication of a quiet cluster
/// costs nothing per member and cycle.
#[derive(Debug, Clone)]
pub(crate) struct Quiet<T> {
    /// The nodes read in that cycle, ascending; `None`: not quiet.
    pub nodes: Option<Vec<u32>>,
    pub current: Option<Arc<T>>,
}

impl<T> Default for Quiet<T> {
    fn default() -> Self {
        Quiet { nodes: None, current: None }
    }
}

impl<T> Quiet<T> {
    /// May this cycle, reading `nodes` and finding each unchanged or not
    /// (`all_unchanged`), skip replication?
    pub fn holds(&self, nodes: &[u32], all_unchanged: bool) -> bool {
        all_unchanged && self.nodes.as_deref() == Some(nodes)
    }

    /// After a cycle that planned and settled: quiet when it had nothing to
    /// copy (`decision` without a source) and nothing was copied.
    pub fn after(
        &mut self,
        nodes: &[u32],
        decision: Option<&Replication>,
        copied: bool,
        current: Option<Arc<T>>,
    ) {
        let quiet = !copied && decision.is_some_and(|d| d.copy_from.is_none());
        self.nodes = quiet.then(|| nodes.to_vec());
        self.current = current;
    }
}

/// The asks of the last `ReadNodes` batch and the read set they were made
/// for. The asks are a function of the read set and of three caches (the
/// parsed clstats and both replicas' copies, whose identities become each
/// ask's `known`); those caches change only when a report brings bytes or
/// an identity (`on_nodes_read`) or when replication plans or settles. So
/// while neither happened (`fresh`), the same read set gets the same asks,
/// copied in one go instead of walking three maps per member: at 100
/// members that walk was a fifth of a steady simulation. Debug builds
/// (every test) also build the asks anew and assert they are equal.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeptAsks {
    /// The read set the asks were made for, ascending.
    pub nodes: Vec<u32>,
    pub asks: Vec<super::command::FileAsk>,
    /// No cache the asks were made from changed since.
    pub fresh: bool,
}

impl KeptAsks {
    /// The kept asks, when they are still those of `nodes`.
    pub fn get(&self, nodes: &[u32]) -> Option<&[super::command::FileAsk]> {
        (self.fresh && self.nodes == nodes).then_some(&self.asks[..])
    }

    /// A cache the asks are made from may have changed.
    pub fn stale(&mut self) {
        self.fresh = false;
    }

    /// Keep `asks`, just made for `nodes` from the caches as they are.
    pub fn keep(&mut self, nodes: &[u32], asks: &[super::command::FileAsk]) {
        self.nodes.clear();
        self.nodes.extend_from_slice(nodes);
        self.asks.clear();
        self.asks.extend_from_slice(asks);
        self.fresh = true;
    }
}

/// Parsed clstats by node, keyed by content identity (a large cluster's
/// unchanged clstats are neither re-read nor re-parsed).
///
/// A vector sorted by node, not a `BTreeMap`: every cycle walks it beside
/// the (ascending) nodes read, three times (asks, unchanged answers,
/// statuses), and it changes only when a clstat does. A walk of a
/// contiguous vector is a fraction of a tree's (at 100 nodes the tree
/// walks were a tenth of a simulation's time).
#[derive(Debug, Clone, Default)]
pub(crate) struct ClstatCache {
    /// Ascending by node, each node once.
    entries: Vec<(u32, CachedClstat)>,
}

/// A cached clstat: the identity of the content it was parsed from.
pub(crate) type CachedClstat = (super::input::ContentId, Arc<ClStat>);

impl ClstatCache {
    pub fn new() -> ClstatCache {
        ClstatCache::default()
    }

    fn find(&self, node: u32) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&node, |(n, _)| *n)
    }

    pub fn get(&self, node: &u32) -> Option<&CachedClstat> {
        let i = self.find(*node).ok()?;
        self.entries.get(i).map(|(_, c)| c)
    }

    pub fn insert(&mut self, node: u32, cached: CachedClstat) {
        match self.find(node) {
            Ok(i) => self.entries[i].1 = cached,
            Err(i) => self.entries.insert(i, (node, cached)),
        }
    }

    pub fn remove(&mut self, node: &u32) {
        if let Ok(i) = self.find(*node) {
            self.entries.remove(i);
        }
    }

    /// Ascending by node, as a `BTreeMap`'s `iter`.
    pub fn iter(&self) -> ClstatIter<'_> {
        ClstatIter(self.entries.iter())
    }
}

/// [`ClstatCache::iter`]: a type of its own (not `impl Iterator`), so
/// that the borrow ends with its last use, as a `BTreeMap`'s iterator's.
pub(crate) struct ClstatIter<'a>(std::slice::Iter<'a, (u32, CachedClstat)>);

impl<'a> Iterator for ClstatIter<'a> {
    type Item = (&'a u32, &'a CachedClstat);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(n, c)| (n, c))
    }
}

/// One node's reported files, turned into what the monitor needs as they
/// come (one builder per node of a `NodesRead`).
#[derive(Default)]
pub(crate) struct NodeFilesBuilder {
    clstat: Option<NodeStatus>,
    hactl: Option<Copy<Hactl>>,
    cltab: Option<Copy<Cltab>>,
}

impl NodeFilesBuilder {
    /// Take one report of the node. A clstat that is not UTF-8 or has
    /// lines that are not status lines is *unreadable*: a torn or foreign
    /// file must not be taken for "runs nothing" (spec W3). Its age is the
    /// reader's clock at the read minus the writer's mtime, as the original
    /// computed it (spec §5.2).
    pub fn add(
        &mut self,
        me: u32,
        read_at: WallMs,
        report: FileReport,
        clstats: &mut ClstatCache,
        hactl_replica: &Replica<Hactl>,
        cltab_replica: &Replica<Cltab>,
    ) {
        let FileReport { node, file, path, read } = report;
        match file {
            SharedFile::Clstat if node != me => {
                self.clstat = Some(clstat_status(node, read_at, &path, read, clstats))
            }
            SharedFile::Hactl => self.hactl = Some(Copy::of(node, path, read, hactl_replica)),
            SharedFile::Cltab => self.cltab = Some(Copy::of(node, path, read, cltab_replica)),
            _ => {}
        }
    }

    /// What node `node`'s read gave; a file the executor did not report is
    /// "not read" (its text is built only then: formatting three per member
    /// per cycle cost a sixth of a large simulation).
    pub fn finish(self, node: u32, me: u32) -> NodeFiles {
        let not_read = |file: SharedFile| format!("node {node}'s {file} was not read");
        NodeFiles {
            // My own status comes from my init machine, never from the file.
            clstat: ClstatRead::Status(self.clstat.unwrap_or_else(|| not_asked(node, me))),
            hactl: self
                .hactl
                .unwrap_or_else(|| Copy::Read(Box::new(Err(not_read(SharedFile::Hactl))))),
            cltab: self
                .cltab
                .unwrap_or_else(|| Copy::Read(Box::new(Err(not_read(SharedFile::Cltab))))),
        }
    }
}

/// The status of a node whose clstat was not reported: my own comes from
/// my init machine, never from the file.
fn not_asked(node: u32, me: u32) -> NodeStatus {
    if node == me {
        NodeStatus::Missing
    } else {
        NodeStatus::Unreadable {
            reason: format!("node {node}'s {} was not read", SharedFile::Clstat),
        }
    }
}

/// One node's replicated file as read this cycle: resolved, or "the
/// version replication already knows" (the executor left the bytes out
/// because the identity matched), resolved against the replica's cache
/// only when replication runs at all (see [`Quiet`]).
#[derive(Debug, Clone)]
pub(crate) enum Copy<T> {
    /// Boxed: a read with bytes or an error is rare in a steady cluster,
    /// and unboxed it made every `NodeFiles` (moved a few times per member
    /// and cycle) several times larger.
    Read(Box<CopyRead<T>>),
    Known {
        id: ContentId,
    },
    /// The copy replication has cached, confirmed unchanged as a whole
    /// node (`NodesRead.unchanged`): no look-up until
    /// replication runs.
    Cached,
}

impl<T: Replicated> Copy<T> {
    fn of(node: u32, path: Arc<str>, read: FileRead, replica: &Replica<T>) -> Copy<T> {
        match read {
            Ok(Some(v)) if v.bytes.is_none() => Copy::Known { id: v.id },
            read => Copy::Read(Box::new(copy_read(node, &path, read, replica))),
        }
    }

    /// The version asked about was confirmed unchanged.
    pub fn unchanged(&self) -> bool {
        matches!(self, Copy::Known { .. } | Copy::Cached)
    }

    /// The read as replication takes it (a known version from the cache).
    pub fn resolve(self, node: u32, replica: &Replica<T>) -> CopyRead<T> {
        match self {
            Copy::Read(read) => *read,
            Copy::Known { id } => match replica.cached(node) {
                Some(info) if info.id == id => Ok(Some(info.clone())),
                _ => Err(not_sent::<T>(node)),
            },
            Copy::Cached => match replica.cached(node) {
                Some(info) => Ok(Some(info.clone())),
                None => Err(not_sent::<T>(node)),
            },
        }
    }
}

/// A version the driver was told it knows, but no longer does (cannot
/// happen while the caches change only between cycles; said, not assumed).
fn not_sent<T: Replicated>(node: u32) -> String {
    format!("node {node}'s {}: content not sent", T::FILE)
}

pub(crate) fn clstat_status(
    node: u32,
    read_at: WallMs,
    path: &str,
    read: FileRead,
    cache: &mut ClstatCache,
) -> NodeStatus {
    let version = match read {
        Ok(None) => {
            cache.remove(&node);
            return NodeStatus::Missing;
        }
        Err(e) => return NodeStatus::Unreadable { reason: e.to_string() },
        Ok(Some(v)) => v,
    };
    let age = read_at.since(version.mtime);
    let clstat = match (&version.bytes, cache.get(&node)) {
        (None, Some((id, clstat))) if *id == version.id => clstat.clone(),
        (None, _) => {
            let reason = format!("{path}: content not sent");
            return NodeStatus::Unreadable { reason };
        }
        (Some(bytes), _) => {
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    cache.remove(&node);
                    let line = crate::located::line_of_offset(bytes, e.valid_up_to());
                    return NodeStatus::Unreadable { reason: format!("{path}:{line}: not UTF-8") };
                }
            };
            let (clstat, bad) = ClStat::parse_strict(text);
            if let Some(line) = bad.first() {
                cache.remove(&node);
                let reason = format!("{path}:{line}: not a status line");
                return NodeStatus::Unreadable { reason };
            }
            let clstat = match cache.get(&node) {
                Some((_, old)) if **old == clstat => old.clone(),
                _ => Arc::new(clstat),
            };
            cache.insert(node, (version.id, clstat.clone()));
            clstat
        }
    };
    NodeStatus::Read { clstat, age }
}

pub(crate) fn copy_read<T: Replicated>(
    node: u32,
    path: &str,
    read: FileRead,
    replica: &Replica<T>,
) -> CopyRead<T> {
    let version = match read {
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
        Ok(Some(v)) => v,
    };
    match version.bytes {
        Some(bytes) => {
            let parsed = parse_copy::<T>(&bytes, path);
            Ok(Some(CopyInfo { mtime: version.mtime, id: version.id, bytes, parsed }))
        }
        None => match replica.cached(node) {
            Some(info) if info.id == version.id => Ok(Some(info.clone())),
            _ => Err(format!("{path}: content not sent")),
        },
    }
}
