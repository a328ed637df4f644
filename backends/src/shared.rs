//! The shared store: every node's HA files under `<mfsbase>/<N>/<varpath>/`
//! (`cltab`, `hactl`, `clstat`, `hastat`, `heartbeat`, and the socket
//! `clinit.s`), as seen through the shared filesystem.
//!
//! [`SharedStore`] is the I/O (blocking calls; `mosha` runs them off its
//! loop's thread). On top of it, [`read_file`] reports what a file holds
//! (mtime, content identity, bytes) and judges nothing: what a read means
//! (age, staleness, "unknown", which copy to adopt) is decided by the
//! engine's cluster driver. [`read_clstat`] and [`Replica`] run those same
//! engine rules with blocking I/O, for tools and tests.

use crate::atomic::write_atomic;
use crate::openmosix::node_number;
use clinit_engine::cluster::{
    judge_clstat, judge_copy, ContentId, FileReport, FileVersion, IoFailure, Published, WallMs,
};
use clinit_engine::hastat::{NodeGroup, Unknown};
use clinit_engine::monitor::replicate::{CopyRead, Replica as EngineReplica, ReplicaNote};
pub use clinit_engine::monitor::replicate::{Replicated, Settled};
use clinit_engine::monitor::NodeStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{error, info, warn};

/// Largest shared file read, in bytes: a bigger one is "unreadable".
pub const MAX_FILE_LEN: u64 = 16 * 1024 * 1024;

pub use clinit_engine::cluster::SharedFile;

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
        // Regular files only, opened without blocking: a FIFO left at the
        // path must never wedge a reader thread (it would hold mosha's exit).
        let path = self.paths.file(node, file);
        let opened = crate::safe_read::open_regular(&path).map_err(|e| match e {
            crate::safe_read::ReadError::Io { source, .. } => source,
            e @ crate::safe_read::ReadError::NotRegular { what: "a directory", .. } => {
                io::Error::new(io::ErrorKind::IsADirectory, e.to_string())
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        })?;
        let Some((mut f, _)) = opened else {
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

impl Stamp {
    /// The content identity the engine compares ([`ContentId`]): equal
    /// stamps give equal identities.
    pub fn content_id(&self) -> ContentId {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        ContentId(h.finish())
    }

    /// The mtime as the engine's wall-clock type.
    pub fn wall(&self) -> WallMs {
        wall(self.mtime)
    }
}

/// A wall-clock time as the engine's [`WallMs`].
pub fn wall(t: SystemTime) -> WallMs {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => WallMs(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        Err(e) => WallMs(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
    }
}

/// The engine's wall-clock time as a [`SystemTime`].
pub fn system_time(t: WallMs) -> SystemTime {
    let ms = Duration::from_millis(t.0.unsigned_abs());
    if t.0 >= 0 {
        UNIX_EPOCH + ms
    } else {
        UNIX_EPOCH - ms
    }
}

/// Read one file of a node and report what was found, judging nothing.
/// When its stamp still gives the identity `known`, the content is not read
/// again (`bytes: None`).
pub fn read_file<S: SharedStore + ?Sized>(
    store: &S,
    node: u32,
    file: SharedFile,
    known: Option<ContentId>,
) -> FileReport {
    read_file_stamped(store, node, file, known).0
}

/// [`read_file`], also returning the stamp found (its mtime to the
/// nanosecond, where the report has milliseconds: a copy keeps the exact
/// mtime, as `cp -p` does).
pub fn read_file_stamped<S: SharedStore + ?Sized>(
    store: &S,
    node: u32,
    file: SharedFile,
    known: Option<ContentId>,
) -> (FileReport, Option<Stamp>) {
    let path = store.describe(node, file);
    let failure = |e: io::Error| IoFailure::new(format!("cannot read {path}"), &e);
    let mut found = None;
    let read = (|| {
        if let Some(known) = known {
            match store.stat(node, file).map_err(failure)? {
                None => return Ok(None),
                Some(stamp) if stamp.content_id() == known => {
                    found = Some(stamp);
                    return Ok(Some(FileVersion { mtime: stamp.wall(), id: known, bytes: None }));
                }
                Some(_) => {}
            }
        }
        Ok(store.read(node, file).map_err(failure)?.map(|snap| {
            found = Some(snap.stamp);
            FileVersion {
                mtime: snap.stamp.wall(),
                id: snap.stamp.content_id(),
                bytes: Some(snap.bytes.into()),
            }
        }))
    })();
    (FileReport { node, file, path: path.into(), read }, found)
}

/// The exact mtime to give a copy: the source's stamp when it is the
/// version the engine chose (same millisecond), else the engine's `mtime`.
pub fn copy_mtime(stamp: Option<&Stamp>, mtime: WallMs) -> SystemTime {
    match stamp {
        Some(s) if s.wall() == mtime => s.mtime,
        _ => system_time(mtime),
    }
}

/// Read a node's clstat for the monitor, judged as the cluster driver
/// judges it ([`judge_clstat`]); `now` (wall clock) gives its age.
pub fn read_clstat<S: SharedStore + ?Sized>(store: &S, node: u32, now: SystemTime) -> NodeStatus {
    judge_clstat(node, wall(now), read_file(store, node, SharedFile::Clstat, None))
}

/// One file kind's replication, run sequentially with blocking I/O (for
/// tools and tests). The rules are the engine's
/// ([`clinit_engine::monitor::replicate::Replica`], the same the cluster
/// driver runs every cycle); this only reads, copies and logs.
#[derive(Debug, Clone)]
pub struct Replica<T> {
    inner: EngineReplica<T>,
}

impl<T: Replicated> Default for Replica<T> {
    fn default() -> Self {
        Replica { inner: EngineReplica::new() }
    }
}

impl<T: Replicated> Replica<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn last_good(&self) -> Option<&Arc<T>> {
        self.inner.last_good()
    }

    /// Read every member's copy, decide, copy the chosen one over mine
    /// (atomically, mtime kept), and settle.
    pub fn replicate<S: SharedStore + ?Sized>(
        &mut self,
        store: &S,
        me: u32,
        members: &[u32],
    ) -> Settled<T> {
        let mut stamps = BTreeMap::new();
        let reads: BTreeMap<u32, CopyRead<T>> = members
            .iter()
            .map(|&n| {
                let known = self.inner.cached(n).map(|c| c.id);
                let (report, stamp) = read_file_stamped(store, n, T::FILE, known);
                if let Some(stamp) = stamp {
                    stamps.insert(n, stamp);
                }
                (n, judge_copy(n, report, &self.inner))
            })
            .collect();
        let mut notes = Vec::new();
        let decision = self.inner.plan(me, &reads, &mut notes);
        let installed =
            decision.as_ref().and_then(|d| self.inner.to_install(d)).map(|(from, c)| {
                let name = store.describe(me, T::FILE);
                let mtime = copy_mtime(stamps.get(&from), c.mtime);
                let write = store.write(me, T::FILE, &c.bytes, Some(mtime));
                let stat = write.and_then(|()| store.stat(me, T::FILE));
                match stat {
                    Ok(Some(stamp)) => Ok(stamp.content_id()),
                    Ok(None) => Err(format!("{name}: vanished right after it was written")),
                    Err(e) => Err(format!("cannot write {name}: {e}")),
                }
            });
        let settled = self.inner.settle(me, decision.as_ref(), installed, &mut notes);
        for note in notes {
            log_note(T::FILE, note);
        }
        settled
    }
}

/// The log line for another node's newest copy of `file` that does not
/// parse. One line: the parse errors (one per line, `file:line: reason`,
/// from a file anyone may have edited) are escaped, so a multi-line error
/// cannot split the line or forge another.
pub fn newest_unparsable_line(file: SharedFile, node: u32, errors: &str) -> String {
    format!(
        "node {node}'s {file} is the newest but does not parse; not adopted: {}",
        crate::daemon::escape(errors.trim_end())
    )
}

/// The log line for my own copy of `file` that does not parse (one line,
/// as [`newest_unparsable_line`]).
pub fn own_unparsable_line(file: SharedFile, kept_last_good: bool, errors: &str) -> String {
    let keep = if kept_last_good { "keeping the last good copy" } else { "no good copy yet" };
    format!("my {file} does not parse ({keep}): {}", crate::daemon::escape(errors.trim_end()))
}

fn log_note(file: SharedFile, note: ReplicaNote) {
    match note {
        ReplicaNote::OwnUnreadable { reason } => {
            error!("{reason}: cannot read my own {file}; not replicating it")
        }
        ReplicaNote::NewestUnparsable { node, errors } => {
            warn!("{}", newest_unparsable_line(file, node, &errors))
        }
        ReplicaNote::OwnUnparsable { errors, kept_last_good } => {
            error!("{}", own_unparsable_line(file, kept_last_good, &errors))
        }
        ReplicaNote::Adopted { from, theirs, mine } => {
            let mine = mine.map_or("none".to_string(), |m| format!("mtime {m}"));
            info!("{file}: adopted node {from}'s copy (mtime {theirs}), replacing mine ({mine})")
        }
        ReplicaNote::NotAdopted { from, reason } => {
            warn!("{file}: node {from}'s copy not adopted: {reason}")
        }
        ReplicaNote::Versioned(note) => info!("{file}: {note}"),
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
) -> Result<(), IoFailure> {
    let written =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let doc = HastatDoc::new(me, written, published);
    let what = || format!("cannot write {}", store.describe(me, SharedFile::Hastat));
    let mut json = serde_json::to_vec_pretty(&doc)
        .map_err(|e| IoFailure::other(what(), io::ErrorKind::InvalidData, e.to_string()))?;
    json.push(b'\n');
    store.write(me, SharedFile::Hastat, &json, None).map_err(|e| IoFailure::new(what(), &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hactl with two bad lines logged its errors on lines of their own,
    /// which a log reader took for separate (unlabelled) lines. Now one
    /// line each, the newlines escaped, at the same levels as before.
    #[test]
    fn parse_errors_stay_on_one_log_line() {
        let errors =
            "/mfs/1/var/mosix-ha/hactl:2: bad line\n/mfs/1/var/mosix-ha/hactl:3: bad too\n";
        let ((), logged) = crate::test_log::capture(|| {
            log_note(
                SharedFile::Hactl,
                ReplicaNote::OwnUnparsable { errors: errors.into(), kept_last_good: true },
            );
            log_note(
                SharedFile::Cltab,
                ReplicaNote::NewestUnparsable { node: 2, errors: errors.into() },
            );
        });
        let lines: Vec<&str> = logged.lines().collect();
        assert_eq!(lines.len(), 2, "{logged}");
        assert!(lines[0].contains("ERROR"), "{logged}");
        assert!(
            lines[0].ends_with(
                "my hactl does not parse (keeping the last good copy): \
                 /mfs/1/var/mosix-ha/hactl:2: bad line\\n/mfs/1/var/mosix-ha/hactl:3: bad too"
            ),
            "{logged}"
        );
        assert!(lines[1].contains("WARN"), "{logged}");
        assert!(lines[1].contains("node 2's cltab is the newest but does not parse"), "{logged}");
        assert!(lines[1].contains("bad line\\n/mfs"), "{logged}");
    }

    /// A FIFO (or a device) at a node's file is refused at once, naming
    /// it, instead of blocking the reader thread until a writer comes (a
    /// blocked thread held mosha's exit forever). The read is bounded by
    /// the test's own thread join, so a regression fails, not hangs.
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsStore::new(NodePaths::new(dir.path(), "ha"));
        std::fs::create_dir_all(store.paths.node_dir(1)).expect("mkdir");
        let fifo = store.paths.file(1, SharedFile::Hactl);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ =
                tx.send(store.read(1, SharedFile::Hactl).map(|_| ()).map_err(|e| e.to_string()));
        });
        let answer = rx.recv_timeout(Duration::from_secs(10)).expect("the read returned");
        let err = answer.expect_err("a FIFO is refused");
        assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    }

    /// The executor's half of the read contract: facts only (mtime,
    /// identity, bytes), and no content when the engine already has that
    /// identity; a replaced file gets a new identity and is read again.
    #[test]
    fn read_file_reports_facts_and_skips_known_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsStore::new(NodePaths::new(dir.path(), "ha"));
        std::fs::create_dir_all(store.paths.node_dir(1)).expect("mkdir");
        let missing = read_file(&store, 1, SharedFile::Hactl, None);
        assert_eq!(missing.read, Ok(None));
        assert!(missing.path.ends_with("1/ha/hactl"), "{}", missing.path);

        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        store.write(1, SharedFile::Hactl, b"web start\n", Some(t)).expect("write");
        let first = read_file(&store, 1, SharedFile::Hactl, None).read.expect("readable");
        let first = first.expect("exists");
        assert_eq!(first.mtime, WallMs(1_700_000_000_123));
        assert_eq!(first.bytes.as_deref(), Some(&b"web start\n"[..]));

        let again = read_file(&store, 1, SharedFile::Hactl, Some(first.id)).read.expect("ok");
        let again = again.expect("exists");
        assert_eq!((again.id, again.bytes), (first.id, None), "known content is not sent");

        store.write(1, SharedFile::Hactl, b"web stop\n", Some(t)).expect("rewrite");
        let changed = read_file(&store, 1, SharedFile::Hactl, Some(first.id)).read.expect("ok");
        let changed = changed.expect("exists");
        assert_ne!(changed.id, first.id, "a replaced file is a new version");
        assert_eq!(changed.bytes.as_deref(), Some(&b"web stop\n"[..]));

        // An unreadable file keeps its error kind.
        std::fs::create_dir_all(store.paths.file(1, SharedFile::Cltab)).expect("a directory");
        let err = read_file(&store, 1, SharedFile::Cltab, None).read.expect_err("unreadable");
        assert_eq!(err.kind, io::ErrorKind::IsADirectory, "{err}");
    }
}
