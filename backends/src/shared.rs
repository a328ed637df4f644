//! The shared store: every node's HA files under `<mfsbase>/<N>/<varpath>/`
//! (`cltab`, `hactl`, `clstat`, `hastat`, `heartbeat`, and the socket
//! `clinit.s`), as seen through the shared filesystem.
//!
//! [`SharedStore`] is the I/O (blocking calls; `mosha` runs them off the
//! daemon's thread, bounded in time; a simulator implements it in memory).
//! On top of it, with no further I/O of their own:
//!
//! * [`read_clstat`] turns a node's clstat into what the monitor needs:
//!   missing → [`NodeStatus::Missing`], unreadable or malformed →
//!   [`NodeStatus::Unreadable`] ("unknown", never "not running").
//! * [`Replica`] replicates `hactl` or `cltab` (spec §5.4): every member's
//!   copy is stat'ed, read and parsed only when it changed, the newest copy
//!   that parses wins ([`getlatest`]), and it is copied atomically with its
//!   mtime kept. A copy that does not parse never spreads, and a node whose
//!   own copy is broken keeps running on its last good parse.

use crate::atomic::write_atomic;
use crate::openmosix::node_number;
use clinit_engine::cltab::Cltab;
use clinit_engine::cluster::Published;
use clinit_engine::hactl::Hactl;
use clinit_engine::hastat::{NodeGroup, Unknown};
use clinit_engine::monitor::replicate::{getlatest, FileInfo, Replication, Why};
use clinit_engine::monitor::NodeStatus;
use clinit_engine::status::ClStat;
use clinit_engine::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{error, info, warn};

/// Largest shared file read, in bytes: a bigger one is "unreadable".
pub const MAX_FILE_LEN: u64 = 16 * 1024 * 1024;

/// The files of one node's HA directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SharedFile {
    Cltab,
    Hactl,
    Clstat,
    Hastat,
    Heartbeat,
}

impl SharedFile {
    pub fn name(self) -> &'static str {
        match self {
            SharedFile::Cltab => "cltab",
            SharedFile::Hactl => "hactl",
            SharedFile::Clstat => "clstat",
            SharedFile::Hastat => "hastat",
            SharedFile::Heartbeat => "heartbeat",
        }
    }
}

/// Where each node's files live: `<mfsbase>/<N>/<varpath>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    pub mfsbase: PathBuf,
    /// Relative; a leading `/` is ignored (the original's `varpath`).
    pub varpath: PathBuf,
}

impl NodePaths {
    pub fn new(mfsbase: impl Into<PathBuf>, varpath: impl AsRef<Path>) -> Self {
        let varpath = varpath.as_ref();
        let varpath = varpath.strip_prefix("/").unwrap_or(varpath).to_path_buf();
        NodePaths { mfsbase: mfsbase.into(), varpath }
    }

    /// `<mfsbase>/<node>/<varpath>`.
    pub fn node_dir(&self, node: u32) -> PathBuf {
        self.mfsbase.join(node.to_string()).join(&self.varpath)
    }

    pub fn file(&self, node: u32, file: SharedFile) -> PathBuf {
        self.node_dir(node).join(file.name())
    }

    /// The node's init-machine control socket.
    pub fn socket(&self, node: u32) -> PathBuf {
        self.node_dir(node).join("clinit.s")
    }
}

/// Identity of one version of a file: a changed stamp means "read again".
/// Replacement by rename changes the inode, so a copy with an identical
/// mtime and length is still noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub mtime: SystemTime,
    pub len: u64,
    pub ino: u64,
}

impl Stamp {
    /// Whole seconds since the epoch, as the original compared them.
    pub fn mtime_secs(&self) -> i64 {
        match self.mtime.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// A file's content and the stamp of that very content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bytes: Vec<u8>,
    pub stamp: Stamp,
}

/// Blocking access to every node's HA files.
pub trait SharedStore: Send + Sync + 'static {
    /// Nodes that have an HA directory in the shared space, ascending.
    fn nodes(&self) -> io::Result<Vec<u32>>;
    /// `Ok(None)`: no such file.
    fn stat(&self, node: u32, file: SharedFile) -> io::Result<Option<Stamp>>;
    /// Content and stamp, consistent with each other. `Ok(None)`: no file.
    fn read(&self, node: u32, file: SharedFile) -> io::Result<Option<Snapshot>>;
    /// Replace a node's file atomically (readers see old or new, never half),
    /// with `mtime` if given.
    fn write(
        &self,
        node: u32,
        file: SharedFile,
        bytes: &[u8],
        mtime: Option<SystemTime>,
    ) -> io::Result<()>;
    /// Remove a node's file; no file is fine.
    fn remove(&self, node: u32, file: SharedFile) -> io::Result<()>;
    /// The file's name for messages (its path).
    fn describe(&self, node: u32, file: SharedFile) -> String;
    /// The shared space's name for messages (`/mfs`).
    fn base(&self) -> String;
}

/// The real store: a directory tree (`/mfs`, an NFS mount, ...).
#[derive(Debug, Clone)]
pub struct FsStore {
    pub paths: NodePaths,
}

impl FsStore {
    pub fn new(paths: NodePaths) -> Self {
        FsStore { paths }
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    Ok(Stamp { mtime: meta.modified()?, len: meta.len(), ino: meta.ino() })
}

fn not_found<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl SharedStore for FsStore {
    fn nodes(&self) -> io::Result<Vec<u32>> {
        let mut nodes = Vec::new();
        for entry in std::fs::read_dir(&self.paths.mfsbase)?.flatten() {
            let Some(node) = entry.file_name().to_str().and_then(node_number) else { continue };
            if self.paths.node_dir(node).is_dir() {
                nodes.push(node);
            }
        }
        nodes.sort_unstable();
        nodes.dedup();
        Ok(nodes)
    }

    fn stat(&self, node: u32, file: SharedFile) -> io::Result<Option<Stamp>> {
        match not_found(std::fs::metadata(self.paths.file(node, file)))? {
            Some(meta) => Ok(Some(stamp_of(&meta)?)),
            None => Ok(None),
        }
    }

    fn read(&self, node: u32, file: SharedFile) -> io::Result<Option<Snapshot>> {
        let Some(mut f) = not_found(File::open(self.paths.file(node, file)))? else {
            return Ok(None);
        };
        // The stamp of the open file: a writer that renames a new version
        // into place cannot make content and stamp disagree.
        let stamp = stamp_of(&f.metadata()?)?;
        if stamp.len > MAX_FILE_LEN {
            return Err(io::Error::other(format!(
                "{} bytes is larger than the {MAX_FILE_LEN}-byte limit",
                stamp.len
            )));
        }
        let mut bytes = Vec::with_capacity(stamp.len as usize);
        f.by_ref().take(MAX_FILE_LEN + 1).read_to_end(&mut bytes)?;
        Ok(Some(Snapshot { bytes, stamp }))
    }

    fn write(
        &self,
        node: u32,
        file: SharedFile,
        bytes: &[u8],
        mtime: Option<SystemTime>,
    ) -> io::Result<()> {
        write_atomic(&self.paths.file(node, file), bytes, mtime)
    }

    fn remove(&self, node: u32, file: SharedFile) -> io::Result<()> {
        not_found(std::fs::remove_file(self.paths.file(node, file))).map(|_| ())
    }

    fn describe(&self, node: u32, file: SharedFile) -> String {
        self.paths.file(node, file).display().to_string()
    }

    fn base(&self) -> String {
        self.paths.mfsbase.display().to_string()
    }
}

/// Read a node's clstat for the monitor; `now` (wall clock) gives its age.
/// A clstat with lines that are not status lines is *unreadable*: a torn or
/// foreign file must not be taken for "runs nothing".
pub fn read_clstat<S: SharedStore + ?Sized>(store: &S, node: u32, now: SystemTime) -> NodeStatus {
    let name = || store.describe(node, SharedFile::Clstat);
    match store.read(node, SharedFile::Clstat) {
        Ok(None) => NodeStatus::Missing,
        Err(e) => NodeStatus::Unreadable { reason: format!("{}: {e}", name()) },
        Ok(Some(snap)) => {
            let Ok(text) = std::str::from_utf8(&snap.bytes) else {
                return NodeStatus::Unreadable { reason: format!("{}: not UTF-8", name()) };
            };
            let (clstat, bad) = ClStat::parse_strict(text);
            if let Some(line) = bad.first() {
                let reason = format!("{}:{line}: not a status line", name());
                return NodeStatus::Unreadable { reason };
            }
            NodeStatus::Read { clstat: clstat.into(), age: age(now, snap.stamp.mtime) }
        }
    }
}

/// `now − mtime`; a file from the future (clock skew) has age zero.
pub fn age(now: SystemTime, mtime: SystemTime) -> Millis {
    let d = now.duration_since(mtime).unwrap_or_default();
    Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A file replicated between nodes, and how to parse it.
pub trait Replicated: Clone + PartialEq + Send + Sync + 'static {
    const FILE: SharedFile;
    /// Parse; errors are `file:line: reason` lines.
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

/// One node's copy of a replicated file: its stamp and parse result.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyInfo<T> {
    pub stamp: Stamp,
    pub parsed: Result<Arc<T>, String>,
}

/// One node's copy as read this cycle: `Ok(None)` none, `Err` unreadable.
pub type CopyRead<T> = Result<Option<CopyInfo<T>>, String>;

fn parse_snapshot<T: Replicated>(snap: &Snapshot, name: &str) -> Result<Arc<T>, String> {
    let text = std::str::from_utf8(&snap.bytes)
        .map_err(|e| format!("{name}: not UTF-8 (invalid byte at offset {})", e.valid_up_to()))?;
    T::parse(text, name).map(Arc::new)
}

/// Stat a node's copy; read and parse it only when its stamp differs from
/// `prev` (what was read last time).
pub fn read_copy<T: Replicated, S: SharedStore + ?Sized>(
    store: &S,
    node: u32,
    prev: Option<&CopyInfo<T>>,
) -> CopyRead<T> {
    let name = store.describe(node, T::FILE);
    let stamp = store.stat(node, T::FILE).map_err(|e| format!("{name}: {e}"))?;
    let Some(stamp) = stamp else { return Ok(None) };
    if let Some(prev) = prev.filter(|p| p.stamp == stamp) {
        return Ok(Some(prev.clone()));
    }
    let snap = store.read(node, T::FILE).map_err(|e| format!("{name}: {e}"))?;
    let Some(snap) = snap else { return Ok(None) };
    Ok(Some(CopyInfo { stamp: snap.stamp, parsed: parse_snapshot::<T>(&snap, &name) }))
}

/// Copy node `from`'s file over `me`'s, atomically and keeping its mtime,
/// if (as read now) it still parses. Returns my new copy.
pub fn install<T: Replicated, S: SharedStore + ?Sized>(
    store: &S,
    me: u32,
    from: u32,
) -> Result<CopyInfo<T>, String> {
    let name = store.describe(from, T::FILE);
    let snap = store
        .read(from, T::FILE)
        .map_err(|e| format!("{name}: {e}"))?
        .ok_or_else(|| format!("{name}: vanished before it could be copied"))?;
    let parsed = parse_snapshot::<T>(&snap, &name)?;
    let mine = store.describe(me, T::FILE);
    store
        .write(me, T::FILE, &snap.bytes, Some(snap.stamp.mtime))
        .map_err(|e| format!("cannot write {mine}: {e}"))?;
    let stamp = store
        .stat(me, T::FILE)
        .map_err(|e| format!("{mine}: {e}"))?
        .ok_or_else(|| format!("{mine}: vanished right after it was written"))?;
    Ok(CopyInfo { stamp, parsed: Ok(parsed) })
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

/// Replication state of one file kind (`hactl` or `cltab`) on one node.
#[derive(Debug, Clone)]
pub struct Replica<T> {
    /// Every node's copy as last read (so unchanged copies are not re-read).
    cache: BTreeMap<u32, CopyInfo<T>>,
    last_good: Option<Arc<T>>,
    /// (node, stamp) pairs already complained about: say it once.
    warned: BTreeSet<(u32, Stamp)>,
}

impl<T> Default for Replica<T> {
    fn default() -> Self {
        Replica { cache: BTreeMap::new(), last_good: None, warned: BTreeSet::new() }
    }
}

impl<T: Replicated> Replica<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// What was read of `node`'s copy last time (pass it to [`read_copy`]).
    pub fn cached(&self, node: u32) -> Option<CopyInfo<T>> {
        self.cache.get(&node).cloned()
    }

    pub fn last_good(&self) -> Option<&Arc<T>> {
        self.last_good.as_ref()
    }

    /// Remember this cycle's reads and decide whom to copy from
    /// ([`getlatest`] over the members' readable copies, in node order).
    /// Returns `None` when my own copy could not be read (never overwrite
    /// what we cannot see).
    pub fn plan(&mut self, me: u32, reads: &BTreeMap<u32, CopyRead<T>>) -> Option<Replication> {
        let mut candidates = Vec::new();
        for (&node, read) in reads {
            match read {
                Ok(Some(info)) => {
                    self.cache.insert(node, info.clone());
                    let info2 = FileInfo {
                        mtime_secs: info.stamp.mtime_secs(),
                        parses: info.parsed.is_ok(),
                    };
                    candidates.push((node, Some(info2)));
                }
                Ok(None) => {
                    self.cache.remove(&node);
                    candidates.push((node, None));
                }
                Err(reason) => {
                    if node == me {
                        error!(
                            "{reason}: cannot read my own {}; not replicating it",
                            T::FILE.name()
                        );
                        return None;
                    }
                    tracing::debug!("{reason}: skipped for replication");
                }
            }
        }
        self.cache.retain(|n, _| reads.contains_key(n));
        let decision = getlatest(&candidates, me);
        for node in &decision.skipped_unparsable {
            let Some(info) = self.cache.get(node) else { continue };
            if self.warned.insert((*node, info.stamp)) {
                let why = info.parsed.as_ref().err().cloned().unwrap_or_default();
                warn!(
                    "node {node}'s {} is the newest but does not parse; not adopted:\n{why}",
                    T::FILE.name()
                );
            }
        }
        Some(decision)
    }

    /// After a possible [`install`]: settle on my copy (or the last good one).
    pub fn settle(
        &mut self,
        me: u32,
        decision: Option<&Replication>,
        installed: Option<Result<CopyInfo<T>, String>>,
    ) -> Settled<T> {
        let mut adopted_from = None;
        if let (Some(result), Some(decision)) = (installed, decision) {
            match (result, &decision.why) {
                (Ok(info), Why::Newer { from, theirs, mine }) => {
                    let mine = mine.map_or("none".to_string(), |m| format!("mtime {m}"));
                    info!(
                        "{}: adopted node {from}'s copy (mtime {theirs}), replacing mine ({mine})",
                        T::FILE.name()
                    );
                    adopted_from = Some(*from);
                    self.cache.insert(me, info);
                }
                (Ok(info), _) => {
                    self.cache.insert(me, info);
                }
                (Err(reason), _) => warn!("{}: not adopted: {reason}", T::FILE.name()),
            }
        }
        let mine = self.cache.get(&me).cloned();
        let previous = self.last_good.clone();
        let current = match mine {
            Some(CopyInfo { parsed: Ok(parsed), .. }) => {
                self.last_good = Some(parsed.clone());
                Some(parsed)
            }
            Some(CopyInfo { parsed: Err(why), stamp }) => {
                if self.warned.insert((me, stamp)) {
                    let keep = if self.last_good.is_some() {
                        "keeping the last good copy"
                    } else {
                        "no good copy yet"
                    };
                    error!("my {} does not parse ({keep}):\n{why}", T::FILE.name());
                }
                self.last_good.clone()
            }
            None => self.last_good.clone(),
        };
        // Forget complaints about versions that are gone.
        let cache = &self.cache;
        self.warned.retain(|(n, s)| cache.get(n).is_some_and(|c| c.stamp == *s));
        let changed = current.as_deref() != previous.as_deref();
        Settled { current, changed, adopted_from }
    }

    /// One whole replication step, sequentially and unbounded (for tests
    /// and tools; `mosha` runs the same three steps, each node's read and
    /// the copy bounded in time, off the daemon's thread).
    pub fn replicate<S: SharedStore + ?Sized>(
        &mut self,
        store: &S,
        me: u32,
        members: &[u32],
    ) -> Settled<T> {
        let reads: BTreeMap<u32, CopyRead<T>> =
            members.iter().map(|&n| (n, read_copy(store, n, self.cache.get(&n)))).collect();
        let decision = self.plan(me, &reads);
        let installed = decision
            .as_ref()
            .and_then(|d| d.copy_from)
            .map(|from| install::<T, S>(store, me, from));
        self.settle(me, decision.as_ref(), installed)
    }
}

/// A node's `hastat` file: what it saw in its last cycle, as JSON. The
/// `groups` and `unknown` maps are the original's hastat (`group → node →
/// {level, state}`); the rest is what an operator needs next to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HastatDoc {
    pub node: u32,
    /// Wall-clock time of writing, seconds since the epoch.
    pub written: f64,
    pub groups: BTreeMap<String, BTreeMap<u32, NodeGroup>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unknown: BTreeMap<u32, Unknown>,
    pub members: Vec<u32>,
    pub stale: Vec<u32>,
    pub fenced: Vec<u32>,
    pub quorum: bool,
    pub halting: bool,
}

impl HastatDoc {
    pub fn new(node: u32, written: f64, p: &Published) -> Self {
        HastatDoc {
            node,
            written,
            groups: p.hastat.groups.clone(),
            unknown: p.hastat.unknown.clone(),
            members: p.members.clone(),
            stale: p.stale.clone(),
            fenced: p.fenced.clone(),
            quorum: p.quorum,
            halting: p.halting,
        }
    }
}

/// Write this node's hastat (atomically).
pub fn write_hastat<S: SharedStore + ?Sized>(
    store: &S,
    me: u32,
    published: &Published,
) -> Result<(), String> {
    let written =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let doc = HastatDoc::new(me, written, published);
    let mut json = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
    json.push(b'\n');
    store
        .write(me, SharedFile::Hastat, &json, None)
        .map_err(|e| format!("cannot write {}: {e}", store.describe(me, SharedFile::Hastat)))
}
