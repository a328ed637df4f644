//! Waking `mosha` when its membership source changes, instead of on its
//! next periodic read (issue 9's target: a membership change reaches the
//! surviving nodes' first trace record within 100 ms, as the CI/CLMS
//! design reports for nodedown reconciliation; a read every heartbeat
//! period P gave a median of 222 ms).
//!
//! This module decides only *when to look*: it watches the source with
//! Linux inotify (through `nix`) and tells the loop "something changed,
//! read membership now". What the new view means stays the driver's: the
//! loop answers a wake with [`ClusterInput::CycleNow`], and the driver's
//! ordinary membership read and cycle follow.
//!
//! What is watched:
//! * openMosix: `<hpcbase>/nodes` (node directories appearing or going)
//!   and each `<hpcbase>/nodes/<N>` (its `status` written, renamed into
//!   place or removed);
//! * heartbeat files: `<mfsbase>` and each `<mfsbase>/<N>/<varpath>`, for
//!   a `heartbeat` file appearing or being removed (a clean leave). Its
//!   rewrites are not changes of membership (under `ranked` the machine
//!   judges silence by counters on its own clock), so they wake nothing.
//!
//! **A watch can be lost, so the periodic read stays** (P under `ranked`,
//! a third of the timeout under `classic`) and is the guarantee; the watch
//! only makes the common case fast:
//! * inotify sees no change made by another machine on NFS, and nothing
//!   on procfs (a real `/proc/hpc`): there, only the periodic read works;
//! * the kernel's event queue can overflow (`IN_Q_OVERFLOW`): logged, and
//!   membership is read at once;
//! * a watched directory can be removed or replaced: logged; the watch is
//!   set up again at the next periodic read;
//! * no watch can be set up at all (inotify limits, a missing directory):
//!   logged once, and `mosha` runs on the periodic read alone.

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use tokio::io::unix::AsyncFd;
use tracing::{debug, info, warn};

/// The membership source's layout, as far as watching it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `<hpcbase>/nodes/<N>/status`.
    OpenMosix { hpcbase: PathBuf },
    /// `<mfsbase>/<N>/<varpath>/heartbeat`.
    Heartbeat { mfsbase: PathBuf, varpath: PathBuf },
}

impl Source {
    /// The directory whose entries are the nodes.
    fn root(&self) -> PathBuf {
        match self {
            Source::OpenMosix { hpcbase } => hpcbase.join("nodes"),
            Source::Heartbeat { mfsbase, .. } => mfsbase.clone(),
        }
    }

    /// The directory holding node `node`'s membership file.
    fn node_dir(&self, node: u32) -> PathBuf {
        match self {
            Source::OpenMosix { hpcbase } => hpcbase.join("nodes").join(node.to_string()),
            Source::Heartbeat { mfsbase, varpath } => mfsbase.join(node.to_string()).join(varpath),
        }
    }

    /// The membership file's name in a node directory.
    fn file_name(&self) -> &'static str {
        match self {
            Source::OpenMosix { .. } => "status",
            Source::Heartbeat { .. } => "heartbeat",
        }
    }
}

/// What one watch descriptor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Root,
    Node(u32),
}

/// The inotify descriptor, for tokio's readiness (nix's `Inotify` offers
/// `AsFd`; tokio asks for `AsRawFd`).
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A live watch on the membership source (see the module doc).
pub struct Watch {
    fd: AsyncFd<Fd>,
    source: Source,
    targets: HashMap<WatchDescriptor, Target>,
    /// Node directories watched (so re-arming is a set look-up per node).
    armed: BTreeSet<u32>,
    /// The root is watched (false after it was removed, until re-armed).
    root: bool,
    /// Heartbeat files seen present (heartbeat source only): a rename onto
    /// an existing heartbeat is a rewrite, onto a missing one a join.
    present: BTreeSet<u32>,
    /// A failure to watch was logged (said once until a watch works again).
    failing: bool,
}

const ROOT_MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

/// A status file written in place, renamed into place or removed.
const NODE_MASK: AddWatchFlags = AddWatchFlags::IN_CLOSE_WRITE
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_ONLYDIR);

/// Heartbeat files: only appearing (create, rename onto) and going.
const HEARTBEAT_MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_ONLYDIR);

/// A node directory's name (`"12"` → 12).
fn node_of(name: Option<&std::ffi::OsStr>) -> Option<u32> {
    let name = name?.to_str()?;
    crate::openmosix::node_number(name)
}

impl Watch {
    /// Watch `source`; `None` (logged) when inotify is not available at
    /// all, and `mosha` then relies on its periodic read alone. Must be
    /// called inside the tokio runtime.
    pub fn start(source: Source) -> Option<Watch> {
        let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(i) => i,
            Err(e) => {
                warn!("cannot watch membership ({e}): reading it once per period only");
                return None;
            }
        };
        // SAFETY: `Fd` owns the inotify descriptor (nix's `Inotify` holds an
        // `OwnedFd`) and the `AsyncFd` owns `Fd`: the descriptor stays open
        // exactly as long as it is registered, and nothing else closes it.
        let registered =
            unsafe { AsyncFd::register_with_interest(Fd(inotify), tokio::io::Interest::READABLE) };
        let fd = match registered {
            Ok(fd) => fd,
            Err(e) => {
                warn!("cannot watch membership ({e}): reading it once per period only");
                return None;
            }
        };
        let mut watch = Watch {
            fd,
            source,
            targets: HashMap::new(),
            armed: BTreeSet::new(),
            root: false,
            present: BTreeSet::new(),
            failing: false,
        };
        watch.arm();
        if watch.root {
            info!(
                "watching {} for membership changes (and reading it every period, as a watch can miss changes: NFS, procfs)",
                watch.source.root().display()
            );
        }
        Some(watch)
    }

    /// (Re-)arm what is not watched yet: the root, and every node
    /// directory under it. Cheap when all is armed (one directory
    /// listing); the loop calls it at each periodic membership read.
    pub fn arm(&mut self) {
        let root = self.source.root();
        if !self.root {
            match self.fd.get_ref().0.add_watch(&root, ROOT_MASK) {
                Ok(wd) => {
                    self.targets.insert(wd, Target::Root);
                    self.root = true;
                    if self.failing {
                        info!("membership watch on {} set up again", root.display());
                        self.failing = false;
                    }
                }
                Err(e) => {
                    if !self.failing {
                        warn!(
                            "cannot watch {} ({e}): reading membership every period only, until it can be watched",
                            root.display()
                        );
                        self.failing = true;
                    }
                    return;
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(&root) else { return };
        let nodes: Vec<u32> =
            entries.flatten().filter_map(|e| node_of(Some(e.file_name().as_os_str()))).collect();
        for node in nodes {
            self.arm_node(node);
        }
    }

    /// Watch node `node`'s directory, unless it is already (adding a watch
    /// twice returns the same descriptor: harmless).
    fn arm_node(&mut self, node: u32) {
        if self.armed.contains(&node) {
            return;
        }
        let dir = self.source.node_dir(node);
        let mask = match self.source {
            Source::OpenMosix { .. } => NODE_MASK,
            Source::Heartbeat { .. } => HEARTBEAT_MASK,
        };
        match self.fd.get_ref().0.add_watch(&dir, mask) {
            Ok(wd) => {
                self.targets.insert(wd, Target::Node(node));
                self.armed.insert(node);
                if dir.join(self.source.file_name()).exists() {
                    self.present.insert(node);
                }
            }
            // Not there yet (a heartbeat node's <varpath> is made after
            // its node directory): the next periodic read arms it.
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {}
            Err(e) => debug!("cannot watch {}: {e}", dir.display()),
        }
    }

    /// Wait until an event may have changed membership (read it now).
    /// Batches that change nothing (a temp file created, a heartbeat
    /// rewritten) are read and skipped here: returning them to the loop's
    /// `select!` would disable this branch until another one fired, and
    /// the rename that follows a temp file would wait for the next cycle
    /// (seen: 5 of 50 changes took 160-230 ms instead of ~25 ms).
    /// Cancel-safe: events not yet read stay in the kernel's queue, and a
    /// batch is judged whole once read.
    pub async fn changed(&mut self) -> bool {
        loop {
            if self.next_batch().await {
                return true;
            }
        }
    }

    /// The next batch of events: `true` when one of them may change
    /// membership.
    async fn next_batch(&mut self) -> bool {
        loop {
            let mut ready = match self.fd.readable().await {
                Ok(r) => r,
                Err(e) => {
                    warn!("membership watch failed ({e}): reading it every period only");
                    return std::future::pending().await;
                }
            };
            match ready.get_inner().0.read_events() {
                Ok(events) => {
                    drop(ready);
                    return self.judge(events);
                }
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(Errno::EINTR) => {}
                Err(e) => {
                    warn!("membership watch failed ({e}): reading it every period only");
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Which events call for a read now (see the module doc).
    fn judge(&mut self, events: Vec<InotifyEvent>) -> bool {
        let mut wake = false;
        for event in events {
            let mask = event.mask;
            if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                warn!("membership watch: the kernel dropped events (queue overflow); reading membership now");
                wake = true;
                continue;
            }
            let Some(&target) = self.targets.get(&event.wd) else { continue };
            if mask.contains(AddWatchFlags::IN_IGNORED) {
                // The watched directory is gone (removed, unmounted).
                self.targets.remove(&event.wd);
                if let Target::Node(node) = target {
                    self.armed.remove(&node);
                }
                if target == Target::Root {
                    self.root = false;
                    self.failing = true;
                    warn!(
                        "membership watch on {} lost (the directory went away); reading membership every period until it is back",
                        self.source.root().display()
                    );
                }
                wake = true;
                continue;
            }
            match target {
                Target::Root => {
                    if mask.intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF)
                    {
                        wake = true;
                        continue;
                    }
                    if let Some(node) = node_of(event.name.as_deref()) {
                        if mask.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO) {
                            self.arm_node(node);
                        } else {
                            self.present.remove(&node);
                        }
                        wake = true;
                    }
                }
                Target::Node(node) => {
                    if event.name.as_deref() != Some(std::ffi::OsStr::new(self.source.file_name()))
                    {
                        continue;
                    }
                    let gone =
                        mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM);
                    wake |= match self.source {
                        Source::OpenMosix { .. } => true,
                        // A rewrite (rename onto a present file) is no
                        // change; appearing or going is.
                        Source::Heartbeat { .. } if gone => self.present.remove(&node),
                        Source::Heartbeat { .. } => self.present.insert(node),
                    };
                }
            }
        }
        wake
    }

    /// The root is watched now.
    pub fn is_armed(&self) -> bool {
        self.root
    }
}

/// Wait for a membership change on `watch`, or forever without one.
pub async fn changed(watch: &mut Option<Watch>) -> bool {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// The path of node `node`'s membership file under `source` (tests).
pub fn file_of(source: &Source, node: u32) -> PathBuf {
    source.node_dir(node).join(source.file_name())
}

#[cfg(test)]
mod tests {
    //! Real inotify on temp dirs; every wait bounded.
    use super::*;
    use crate::atomic::write_atomic;
    use std::time::Duration;

    const LIMIT: Duration = Duration::from_secs(5);

    /// The next batch's verdict, or `None` when no event came within `d`.
    async fn next(w: &mut Watch, d: Duration) -> Option<bool> {
        tokio::time::timeout(d, w.next_batch()).await.ok()
    }

    fn status(hpc: &std::path::Path, node: u32, text: &[u8]) {
        let dir = hpc.join("nodes").join(node.to_string());
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_atomic(&dir.join("status"), text, None).expect("write status");
    }

    #[tokio::test]
    async fn an_openmosix_status_renamed_into_place_wakes_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hpc = dir.path().to_path_buf();
        status(&hpc, 1, b"3\n");
        status(&hpc, 2, b"3\n");
        let mut w = Watch::start(Source::OpenMosix { hpcbase: hpc.clone() }).expect("watch");
        assert!(w.is_armed());
        status(&hpc, 2, b"1\n");
        // The temp file's creation may come in a batch of its own (it
        // wakes nothing): the rename onto `status` must follow.
        let mut woke = false;
        for _ in 0..4 {
            match next(&mut w, LIMIT).await {
                Some(true) => {
                    woke = true;
                    break;
                }
                Some(false) => {}
                None => break,
            }
        }
        assert!(woke, "node 2's status changed: no wake within {LIMIT:?}");
        // A node directory made after the start is watched too.
        status(&hpc, 3, b"3\n");
        assert_eq!(next(&mut w, LIMIT).await, Some(true), "node 3 appeared");
        while next(&mut w, Duration::from_millis(100)).await.is_some() {}
        status(&hpc, 3, b"1\n");
        let mut woke = false;
        while let Some(v) = next(&mut w, LIMIT).await {
            if v {
                woke = true;
                break;
            }
        }
        assert!(woke, "node 3's status changed: no wake");
    }

    #[tokio::test]
    async fn a_heartbeat_rewrite_wakes_nothing_but_its_removal_and_return_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mfs = dir.path().to_path_buf();
        let varpath = PathBuf::from("var/mosix-ha");
        let source = Source::Heartbeat { mfsbase: mfs.clone(), varpath: varpath.clone() };
        let beat = file_of(&source, 2);
        std::fs::create_dir_all(beat.parent().expect("parent")).expect("mkdir");
        write_atomic(&beat, b"1\n", None).expect("beat");
        let mut w = Watch::start(source).expect("watch");
        // Five rewrites: their events come (time passed, the watch works)
        // and none asks for a read.
        let mut batches = 0;
        for k in 0..5u8 {
            write_atomic(&beat, &[b'0' + k, b'\n'], None).expect("beat");
            while let Some(v) = next(&mut w, Duration::from_millis(200)).await {
                assert!(!v, "a rewrite of a present heartbeat woke a read");
                batches += 1;
            }
        }
        assert!(batches >= 5, "the rewrites' events never came ({batches} batches)");
        std::fs::remove_file(&beat).expect("remove");
        assert_eq!(next(&mut w, LIMIT).await, Some(true), "removal (a clean leave) wakes");
        write_atomic(&beat, b"9\n", None).expect("beat");
        let mut woke = false;
        while let Some(v) = next(&mut w, LIMIT).await {
            if v {
                woke = true;
                break;
            }
        }
        assert!(woke, "the heartbeat's return wakes");
    }

    #[tokio::test]
    async fn a_lost_root_is_said_and_armed_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hpc = dir.path().join("hpc");
        status(&hpc, 1, b"3\n");
        let mut w = Watch::start(Source::OpenMosix { hpcbase: hpc.clone() }).expect("watch");
        std::fs::remove_dir_all(hpc.join("nodes")).expect("rm");
        let mut woke = false;
        while let Some(v) = next(&mut w, LIMIT).await {
            woke |= v;
            if !w.is_armed() {
                break;
            }
        }
        assert!(woke && !w.is_armed(), "the root's loss wakes a read and disarms");
        w.arm();
        assert!(!w.is_armed(), "still missing: not armed");
        status(&hpc, 1, b"3\n");
        w.arm();
        assert!(w.is_armed(), "armed again once the directory is back");
        status(&hpc, 1, b"1\n");
        let mut woke = false;
        while let Some(v) = next(&mut w, LIMIT).await {
            if v {
                woke = true;
                break;
            }
        }
        assert!(woke, "changes are seen again after re-arming");
    }
}
