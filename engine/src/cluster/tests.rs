//! The driver by hand: a tiny in-memory executor (files in a map, children
//! that run until signalled), with no I/O and no clock but the test's.

use super::*;
use crate::monitor::Notice;
use crate::status::GroupState;
use std::collections::BTreeSet;
use std::io::ErrorKind;

const CLTAB: &str = "web:w1:start:respawn:serve\n";
const T0: i64 = 1_700_000_000_000;

fn wall(now: Millis) -> WallMs {
    WallMs(T0 + now.0 as i64)
}

/// A stored file: content, mtime, identity.
type Stored = (Arc<[u8]>, WallMs, ContentId);

/// Every node's shared files, with identities.
#[derive(Default)]
struct Files {
    map: BTreeMap<(u32, SharedFile), Stored>,
    next_id: u64,
    /// A clstat rewritten with the same content keeps its identity (only
    /// its mtime moves), as in the simulator: the identity is the
    /// content's, and the mtime is reported with every read.
    same_clstat_same_id: bool,
}

impl Files {
    fn put(&mut self, node: u32, file: SharedFile, text: &str, mtime: WallMs) -> ContentId {
        self.put_bytes(node, file, text.as_bytes().into(), mtime)
    }

    fn put_bytes(&mut self, node: u32, file: SharedFile, b: Arc<[u8]>, m: WallMs) -> ContentId {
        if self.same_clstat_same_id && file == SharedFile::Clstat {
            if let Some((old, mtime, id)) = self.map.get_mut(&(node, file)) {
                if *old == b {
                    *mtime = m;
                    return *id;
                }
            }
        }
        self.next_id += 1;
        let id = ContentId(self.next_id);
        self.map.insert((node, file), (b, m, id));
        id
    }

    fn read(&self, node: u32, file: SharedFile, known: Option<ContentId>) -> FileReport {
        let read = Ok(self.map.get(&(node, file)).map(|(bytes, mtime, id)| FileVersion {
            mtime: *mtime,
            id: *id,
            bytes: (known != Some(*id)).then(|| bytes.clone()),
        }));
        FileReport { node, file, path: format!("/mfs/{node}/{file}").into(), read }
    }

    fn text(&self, node: u32, file: SharedFile) -> Option<String> {
        self.map.get(&(node, file)).map(|(b, _, _)| String::from_utf8_lossy(b).into_owned())
    }
}

/// One node's executor state.
#[derive(Default)]
struct Exec {
    running: BTreeSet<ProcId>,
    spawned: Vec<String>,
    fenced: Vec<u32>,
    exited: bool,
    /// Commands not answered (hung reads, failing writes...), by the test.
    held: Vec<ClusterCommand>,
    /// `ranked`: the durable state last persisted, the watchdog's arming.
    durable: Option<crate::monitor::ranked::Durable>,
    watchdog: Option<((u64, u64), Option<Millis>)>,
    /// The not-after time of every spawn, in order.
    not_after: Vec<Option<Millis>>,
    /// Spawns refused as late (`Faults::spawns_late`).
    refused_late: usize,
    /// The next this many spawns fail: as starved for `spawn_shortage`
    /// (`EMFILE`...), else as a plain I/O failure. Every try's time.
    spawn_fails: usize,
    spawn_shortage: Option<crate::process::Shortage>,
    spawn_tries: Vec<Millis>,
}

/// What the executor should do with some commands.
#[derive(Default, Clone)]
struct Faults {
    /// Reads of these nodes' files never answer (held).
    hang_reads_of: BTreeSet<u32>,
    /// Clstat writes fail.
    fail_clstat: bool,
    /// Copies fail (disk full).
    fail_copy: bool,
    /// Membership reads never answer (held).
    hang_membership: bool,
    /// The executor gets to every spawn that carries a not-after time
    /// late (after that time), as a stalled `mosha` does after a lease
    /// loss, and refuses it with `SpawnFailure::TooLate`.
    spawns_late: bool,
}

struct Cluster {
    now: Millis,
    files: Files,
    drivers: BTreeMap<u32, ClusterDriver>,
    execs: BTreeMap<u32, Exec>,
    /// Membership as the (external) source reports it.
    up: Vec<u32>,
    faults: BTreeMap<u32, Faults>,
    events: BTreeMap<u32, Vec<ClusterEvent>>,
    /// Answer a node whose asked files are all unchanged with
    /// `NodesRead.unchanged` (counted in `unchanged_answers`), as the
    /// simulator does.
    compact: bool,
    unchanged_answers: usize,
    /// Take each node's trace records as they come and give each back
    /// (`recycle_trace`, `recycle_trace_text`), as the simulator does; kept in `traces` as
    /// (JSON, decision text).
    recycle: bool,
    traces: BTreeMap<u32, Vec<(String, String)>>,
    /// Answer membership reads as heartbeat-file membership does: every
    /// node directory (each node with an executor) with its heartbeat file
    /// as stored, absent until the node first wrote one.
    heartbeat_files: bool,
}

impl Cluster {
    fn new(nodes: &[u32], hactl: &str) -> Cluster {
        Cluster::with_faults(nodes, hactl, BTreeMap::new())
    }

    fn with_faults(nodes: &[u32], hactl: &str, faults: BTreeMap<u32, Faults>) -> Cluster {
        let mut files = Files::default();
        let mut drivers = BTreeMap::new();
        for &n in nodes {
            files.put(n, SharedFile::Hactl, hactl, WallMs(T0 - 10_000));
            files.put(n, SharedFile::Cltab, CLTAB, WallMs(T0 - 10_000));
            let table = Cltab::parse(CLTAB, "cltab").expect("parses");
            let mut cfg = ClusterConfig::new(n, PolicyConfig::default());
            cfg.seed = u64::from(n) * 7919;
            drivers.insert(n, ClusterDriver::new(cfg, table, Millis::ZERO));
        }
        let mut c = Cluster {
            now: Millis::ZERO,
            files,
            drivers,
            execs: nodes.iter().map(|&n| (n, Exec::default())).collect(),
            up: nodes.to_vec(),
            faults,
            events: BTreeMap::new(),
            compact: false,
            recycle: false,
            traces: BTreeMap::new(),
            unchanged_answers: 0,
            heartbeat_files: false,
        };
        for &n in nodes {
            c.pump(n);
        }
        c
    }

    fn feed(&mut self, node: u32, input: ClusterInput) {
        let now = self.now;
        if let Some(d) = self.drivers.get_mut(&node) {
            d.handle(now, input);
        }
    }

    /// Run every command of `node` at once, answering at once (unless held).
    fn pump(&mut self, node: u32) {
        loop {
            let Some(d) = self.drivers.get_mut(&node) else { return };
            while let Some(e) = d.poll_event() {
                self.events.entry(node).or_default().push(e);
            }
            while self.recycle {
                let Some((record, text)) = d.poll_trace() else { break };
                let json = serde_json::to_string(&record).expect("serialises");
                // A text given back is written into again: stale content
                // in it must not leak into a later record's text.
                d.recycle_trace_text(format!("stale {text}"));
                self.traces.entry(node).or_default().push((json, text));
                d.recycle_trace(record);
            }
            let Some(cmd) = d.poll_command() else { return };
            let faults = self.faults.get(&node).cloned().unwrap_or_default();
            let answer = self.run(node, cmd, &faults);
            if let Some(input) = answer {
                self.feed(node, input);
            }
        }
    }

    fn run(&mut self, node: u32, cmd: ClusterCommand, faults: &Faults) -> Option<ClusterInput> {
        let now = self.now;
        let exec = self.execs.get_mut(&node).expect("exec");
        Some(match cmd {
            ClusterCommand::ReadMembership { seq } => {
                if faults.hang_membership {
                    exec.held.push(ClusterCommand::ReadMembership { seq });
                    return None;
                }
                let report = if self.heartbeat_files {
                    let beats = self
                        .execs
                        .keys()
                        .map(|&n| (n, self.files.read(n, SharedFile::Heartbeat, None).read))
                        .collect();
                    MembershipReport::Heartbeats { read_at: wall(now), beats }
                } else {
                    MembershipReport::Members(self.up.clone())
                };
                ClusterInput::MembershipRead { seq, report }
            }
            ClusterCommand::ReadNodes { seq, asks } => {
                // Reads of a hung node are held (as a batch of their own);
                // the others answer.
                let (hung, asks): (Vec<_>, Vec<_>) =
                    asks.into_iter().partition(|a| faults.hang_reads_of.contains(&a.node));
                if !hung.is_empty() {
                    exec.held.push(ClusterCommand::ReadNodes { seq, asks: hung });
                }
                let mut asks = asks;
                let mut unchanged = Vec::new();
                if self.compact {
                    let mut rest = Vec::new();
                    for node in asks.iter().map(|a| a.node).collect::<BTreeSet<_>>() {
                        let group: Vec<FileAsk> =
                            asks.iter().filter(|a| a.node == node).copied().collect();
                        let stored = |a: &FileAsk| self.files.map.get(&(a.node, a.file));
                        let same = group
                            .iter()
                            .all(|a| a.known.is_some() && stored(a).map(|s| s.2) == a.known);
                        if same {
                            let clstat = group
                                .iter()
                                .find(|a| a.file == SharedFile::Clstat)
                                .and_then(|a| stored(a).map(|s| s.1));
                            unchanged.push((node, clstat));
                        } else {
                            rest.extend(group);
                        }
                    }
                    asks = rest;
                    self.unchanged_answers += unchanged.len();
                }
                let reports =
                    asks.iter().map(|a| self.files.read(a.node, a.file, a.known)).collect();
                ClusterInput::NodesRead { seq, read_at: wall(now), reports, unchanged }
            }
            ClusterCommand::Copy { seq, file, bytes, mtime, .. } => {
                if faults.fail_copy {
                    let error =
                        IoFailure::other("cannot write hactl", ErrorKind::StorageFull, "ENOSPC");
                    return Some(ClusterInput::CopyFailed { seq, error });
                }
                let id = self.files.put_bytes(node, file, bytes, mtime);
                ClusterInput::CopyDone { seq, id }
            }
            ClusterCommand::WriteClstat { seq, status } => {
                let result = if faults.fail_clstat {
                    Err(IoFailure::other(
                        "cannot write clstat",
                        ErrorKind::PermissionDenied,
                        "EACCES",
                    ))
                } else {
                    self.files.put(node, SharedFile::Clstat, &status.render(), wall(now));
                    Ok(())
                };
                ClusterInput::StatusWritten { seq, file: SharedFile::Clstat, result }
            }
            ClusterCommand::WriteHastat { seq, .. } => {
                ClusterInput::StatusWritten { seq, file: SharedFile::Hastat, result: Ok(()) }
            }
            ClusterCommand::WriteHeartbeat { seq, counter, payload } => {
                let bytes = payload.unwrap_or_else(|| counter.to_string().into_bytes().into());
                self.files.put_bytes(node, SharedFile::Heartbeat, bytes, wall(now));
                ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result: Ok(()) }
            }
            ClusterCommand::RemoveHeartbeat { seq } => {
                self.files.map.remove(&(node, SharedFile::Heartbeat));
                ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result: Ok(()) }
            }
            ClusterCommand::Spawn { id, group, tag, level, not_after, .. } => {
                exec.not_after.push(not_after);
                if faults.spawns_late && not_after.is_some() {
                    exec.refused_late += 1;
                    let late_by = 250;
                    return Some(ClusterInput::SpawnResult {
                        id,
                        result: Err(SpawnFailure::TooLate { late_by }),
                    });
                }
                exec.spawn_tries.push(now);
                if exec.spawn_fails > 0 {
                    exec.spawn_fails -= 1;
                    let failure = IoFailure::other("spawn w1", ErrorKind::Other, "out of fds");
                    let result = Err(match exec.spawn_shortage {
                        Some(shortage) => SpawnFailure::Starved { shortage, failure },
                        None => SpawnFailure::Io(failure),
                    });
                    return Some(ClusterInput::SpawnResult { id, result });
                }
                exec.running.insert(id);
                exec.spawned.push(format!("{group}/{tag}@{level}"));
                ClusterInput::SpawnResult { id, result: Ok(1000 + id.0 as u32) }
            }
            ClusterCommand::Signal { id, .. } => {
                if !exec.running.remove(&id) {
                    return None;
                }
                ClusterInput::ChildExited { id, status: ExitStatus::Signaled(2), lingering: false }
            }
            ClusterCommand::Fence { seq, node: target } => {
                exec.fenced.push(target);
                ClusterInput::FenceDone { seq, node: target, result: Ok(()) }
            }
            ClusterCommand::Exit => {
                exec.exited = true;
                return None;
            }
            ClusterCommand::KillAllNow => {
                let killed: Vec<ProcId> = std::mem::take(&mut exec.running).into_iter().collect();
                for id in killed {
                    let status = ExitStatus::Signaled(9);
                    self.feed(node, ClusterInput::ChildExited { id, status, lingering: false });
                }
                return None;
            }
            ClusterCommand::Persist { seq, state } => {
                exec.durable = Some(*state);
                ClusterInput::Persisted { seq, result: Ok(()) }
            }
            ClusterCommand::ArmWatchdog { epoch, deadline } => {
                exec.watchdog = Some((epoch, deadline));
                return None;
            }
            ClusterCommand::FenceRanked { seq, target, .. } => {
                exec.fenced.push(target.node);
                if let Some(t) = self.execs.get_mut(&target.node) {
                    t.running.clear();
                }
                ClusterInput::FenceDone { seq, node: target.node, result: Ok(()) }
            }
        })
    }

    /// Advance to the earliest timeout of any node (at most `until`) and
    /// fire it. Returns false when nothing is due before `until`.
    fn step(&mut self, until: Millis) -> bool {
        let next = self.drivers.values().filter_map(|d| d.poll_timeout()).min();
        let Some(next) = next.filter(|t| *t <= until) else {
            self.now = until;
            return false;
        };
        self.now = self.now.max(next);
        let nodes: Vec<u32> = self.drivers.keys().copied().collect();
        for n in nodes {
            if self.drivers[&n].poll_timeout().is_some_and(|t| t <= self.now) {
                self.feed(n, ClusterInput::Tick);
                self.pump(n);
            }
        }
        true
    }

    fn run_until(&mut self, until: Millis) {
        let mut guard = 0;
        while self.step(until) {
            guard += 1;
            assert!(guard < 100_000, "runaway at {}", self.now);
        }
    }

    /// Run until `pred` holds (checked after every step), at most `limit`.
    fn run_until_pred(&mut self, limit: Millis, pred: impl Fn(&Cluster) -> bool) -> bool {
        let mut guard = 0;
        while !pred(self) {
            if !self.step(limit) {
                return pred(self);
            }
            guard += 1;
            assert!(guard < 100_000, "runaway at {}", self.now);
        }
        true
    }

    fn level(&self, node: u32, group: &str) -> Option<(String, GroupState)> {
        let d = self.drivers.get(&node)?;
        d.init().status().get(group).map(|s| (s.level.clone(), s.state.clone()))
    }

    fn owners(&self, group: &str) -> Vec<u32> {
        let running = |l: Option<(String, GroupState)>| {
            l.is_some_and(|(level, state)| level == "start" && state == GroupState::Done)
        };
        self.drivers.keys().copied().filter(|&n| running(self.level(n, group))).collect()
    }

    fn events_of(&self, node: u32) -> &[ClusterEvent] {
        self.events.get(&node).map_or(&[], |v| v.as_slice())
    }

    /// Kill `node` with everything on it: gone from membership, no input.
    fn crash(&mut self, node: u32) {
        self.drivers.remove(&node);
        self.up.retain(|&n| n != node);
    }
}

/// Three drivers, run by hand: `web` starts on exactly one node; kill that
/// node and the survivors start it on exactly one of them.
#[test]
fn three_drivers_fail_over_by_hand() {
    let mut c = Cluster::new(&[1, 2, 3], "web start\n");
    let placed = c.run_until_pred(Millis::from_secs(300), |c| !c.owners("web").is_empty());
    assert!(placed, "web never started: {:?}", c.events);
    c.run_until(c.now + Millis::from_secs(30));
    let owners = c.owners("web");
    assert_eq!(owners.len(), 1, "one owner, not {owners:?}");
    let owner = owners[0];
    assert_eq!(c.execs[&owner].spawned, ["web/w1@start"]);
    // Every node saw the others' clstats through the files it read.
    let clstat = c.files.text(owner, SharedFile::Clstat).expect("owner's clstat written");
    assert!(clstat.contains("web start DONE"), "{clstat}");

    c.crash(owner);
    let dead = owner;
    let moved = c.run_until_pred(c.now + Millis::from_secs(600), |c| !c.owners("web").is_empty());
    assert!(moved, "web never failed over: {:?}", c.events);
    c.run_until(c.now + Millis::from_secs(30));
    let owners = c.owners("web");
    assert_eq!(owners.len(), 1, "one new owner, not {owners:?}");
    assert_ne!(owners[0], dead);
}

/// A hung read: the engine itself says "timed out" at its deadline, the
/// cycle goes on without that node, no second read is sent while the first
/// hangs, and its late answer is ignored (its content never reaches the
/// view) but frees the node for the next cycle.
#[test]
fn read_time_out_is_the_engines_and_a_late_result_is_ignored() {
    let faults = [(1, Faults { hang_reads_of: [2].into(), ..Faults::default() })].into();
    let mut c = Cluster::with_faults(&[1, 2], "web start\n", faults);
    // First cycle at t=0: node 1's read of node 2 hangs.
    assert_eq!(c.execs[&1].held.len(), 1);
    let deadline = c.drivers[&1].poll_timeout().expect("a deadline");
    assert_eq!(deadline, c.drivers[&1].config().read_timeout);
    assert!(!c.events_of(1).iter().any(|e| matches!(e, ClusterEvent::ReadTimedOut { .. })));
    c.run_until(deadline);
    let timed_out = |c: &Cluster| {
        c.events_of(1)
            .iter()
            .filter(|e| matches!(e, ClusterEvent::ReadTimedOut { node: Some(2), .. }))
            .count()
    };
    assert_eq!(timed_out(&c), 1, "{:?}", c.events_of(1));
    // Node 2 was unknown to node 1: nothing planned meanwhile.
    let blind = c.events_of(1).iter().any(|e| {
        matches!(e, ClusterEvent::Node(Event::Monitor(Notice::Unreadable { node: 2, .. })))
    });
    assert!(blind, "{:?}", c.events_of(1));
    // Next cycle: still hanging, so no new read of node 2 is sent.
    let before = c.execs[&1].held.len();
    let cycles = |c: &Cluster| {
        c.events_of(1)
            .iter()
            .filter(|e| {
                matches!(e, ClusterEvent::Node(Event::Monitor(Notice::Unreadable { node: 2, .. })))
            })
            .count()
    };
    let seen = cycles(&c);
    c.run_until_pred(c.now + Millis::from_secs(30), |c| cycles(c) > seen);
    assert!(cycles(&c) > seen, "a second cycle ran");
    assert_eq!(c.execs[&1].held.len(), before, "no second read while the first hangs");
    let still = c.events_of(1).iter().any(|e| match e {
        ClusterEvent::Node(Event::Monitor(Notice::Unreadable { node: 2, reason, .. })) => {
            reason.contains("has not finished")
        }
        _ => false,
    });
    assert!(still, "{:?}", c.events_of(1));
    // The late answer, claiming web runs on node 2: ignored.
    let Some(ClusterCommand::ReadNodes { seq, asks }) =
        c.execs.get_mut(&1).and_then(|e| e.held.pop())
    else {
        panic!("held read");
    };
    assert!(asks.iter().all(|a| a.node == 2), "{asks:?}");
    let late: Vec<FileReport> = asks.iter().map(|a| c.files.read(2, a.file, None)).collect();
    let now = c.now;
    let d = c.drivers.get_mut(&1).expect("node 1");
    let view_before = d.node().monitor.clone();
    let input =
        ClusterInput::NodesRead { seq, read_at: wall(now), reports: late, unchanged: vec![] };
    d.handle(now, input);
    assert_eq!(d.node().monitor, view_before, "a late result changes nothing");
    // ...but node 2 is read again at the next cycle (the late answer freed
    // it), and no more time-outs follow.
    c.faults.clear();
    let seen = c.events_of(1).len();
    c.run_until(c.now + Millis::from_secs(30));
    assert_eq!(c.execs[&1].held.len(), 0);
    assert_eq!(timed_out(&c), 1, "no new time-out once reads answer");
    let unreadable_after = c.events_of(1)[seen..].iter().any(|e| {
        matches!(e, ClusterEvent::Node(Event::Monitor(Notice::Unreadable { node: 2, .. })))
    });
    assert!(!unreadable_after, "{:?}", &c.events_of(1)[seen..]);
}

/// A failed clstat write is written again, with the newest content, before
/// the next heartbeat would have rewritten it.
#[test]
fn a_failed_status_write_is_retried_before_the_next_heartbeat() {
    let faults = [(1, Faults { fail_clstat: true, ..Faults::default() })].into();
    let mut c = Cluster::with_faults(&[1], "", faults);
    c.run_until(Millis::from_secs(1));
    let failed: Vec<Millis> = c
        .events_of(1)
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::WriteFailed { file: SharedFile::Clstat, retry_at, error, .. } => {
                assert_eq!(error.kind, ErrorKind::PermissionDenied);
                Some(*retry_at)
            }
            _ => None,
        })
        .collect();
    assert!(failed.len() >= 2, "retried and failed again: {failed:?}");
    let heartbeat = heartbeat_for(c.drivers[&1].timeout());
    assert!(failed[0] < heartbeat, "retry at {} before the heartbeat at {heartbeat}", failed[0]);
    assert!(c.files.text(1, SharedFile::Clstat).is_none());
    // The disk is back: the retry lands, and retries stop.
    c.faults.clear();
    c.run_until(c.now + Millis::from_secs(2));
    assert!(c.files.text(1, SharedFile::Clstat).is_some(), "written after the fault");
    let n = c.events_of(1).len();
    c.run_until(c.now + Millis::from_secs(5));
    let more = c.events_of(1)[n..].iter().any(|e| matches!(e, ClusterEvent::WriteFailed { .. }));
    assert!(!more);
}

/// A peer's newer hactl that is torn (does not parse) is never copied;
/// the older good copy stays in use. A later good version is adopted.
#[test]
fn a_torn_copy_is_not_adopted() {
    let mut c = Cluster::new(&[1, 2], "web start\n");
    // Half of "web start\nweb2 start\n", as a torn copy leaves it.
    c.files.put(1, SharedFile::Hactl, "web start\nweb2", WallMs(T0));
    c.run_until(Millis::from_secs(5));
    let said = c.events_of(2).iter().any(|e| {
        matches!(e, ClusterEvent::NewestUnparsable { file: SharedFile::Hactl, node: 1, .. })
    });
    assert!(said, "{:?}", c.events_of(2));
    assert_eq!(c.files.text(2, SharedFile::Hactl).as_deref(), Some("web start\n"));
    let copied = c.events_of(2).iter().any(|e| matches!(e, ClusterEvent::Adopted { .. }));
    assert!(!copied);
    // Node 1's own copy is broken too: it keeps its last good parse.
    let kept = c.events_of(1).iter().any(|e| {
        matches!(
            e,
            ClusterEvent::OwnUnparsable { file: SharedFile::Hactl, kept_last_good: true, .. }
        )
    });
    assert!(kept, "{:?}", c.events_of(1));
    assert!(c.drivers[&1].hactl().is_some_and(|h| h.groups.contains_key("web")));
    // A good newer version spreads.
    c.files.put(1, SharedFile::Hactl, "web stop\n", WallMs(T0 + 60_000));
    c.run_until(c.now + Millis::from_secs(10));
    assert_eq!(c.files.text(2, SharedFile::Hactl).as_deref(), Some("web stop\n"));
}

/// A 0-byte hactl (a truncation: `: > hactl`, a full disk) is newest but
/// never adopted or spread, and its node keeps its last good parse: an
/// empty hactl wants nothing, so adopting it would stop every group in the
/// cluster.
#[test]
fn a_zero_byte_hactl_is_not_adopted() {
    let mut c = Cluster::new(&[1, 2], "web start\n");
    c.files.put(1, SharedFile::Hactl, "", WallMs(T0 + 30_000));
    c.run_until(Millis::from_secs(5));
    assert_eq!(c.files.text(2, SharedFile::Hactl).as_deref(), Some("web start\n"));
    assert!(!c.events_of(2).iter().any(|e| matches!(e, ClusterEvent::Adopted { .. })));
    for node in [1, 2] {
        assert!(c.drivers[&node].hactl().is_some_and(|h| h.groups.contains_key("web")), "{node}");
    }
    // A comment-only file is an intent: it spreads.
    c.files.put(1, SharedFile::Hactl, "# nothing\n", WallMs(T0 + 60_000));
    c.run_until(c.now + Millis::from_secs(10));
    assert_eq!(c.files.text(2, SharedFile::Hactl).as_deref(), Some("# nothing\n"));
}

/// A peer's newer cltab is copied here (mtime kept) and handed to the
/// init machine.
#[test]
fn a_cltab_is_adopted_from_a_peer() {
    let mut c = Cluster::new(&[1, 2], "");
    let newer = "web:w1:start:respawn:serve\ndb:d1:start:once:db\n";
    c.files.put(1, SharedFile::Cltab, newer, WallMs(T0 + 5_000));
    c.run_until(Millis::from_secs(5));
    let adopted = c.events_of(2).iter().any(|e| {
        matches!(e, ClusterEvent::Adopted { file: SharedFile::Cltab, from: 1, theirs, .. } if *theirs == (T0 + 5_000) / 1000)
    });
    assert!(adopted, "{:?}", c.events_of(2));
    assert_eq!(c.files.text(2, SharedFile::Cltab).as_deref(), Some(newer));
    assert_eq!(c.files.map[&(2, SharedFile::Cltab)].1, WallMs(T0 + 5_000), "mtime kept");
    let reloaded = c.events_of(2).iter().any(|e| {
        matches!(e, ClusterEvent::Node(Event::CltabReloaded { groups }) if groups.contains(&"db".to_string()))
    });
    assert!(reloaded, "{:?}", c.events_of(2));
    assert!(c.drivers[&2].init().table().has_group("db"));
    assert!(c.drivers[&1].init().table().has_group("db"), "node 1's own edit is read too");
}

/// A quiet cluster skips replication (every copy read unchanged, nothing
/// to copy: the previous plan stands), but a change after a long quiet
/// spell is still seen and adopted the next cycle, and a node whose copy
/// vanishes ends the quiet spell too.
#[test]
fn a_change_after_a_quiet_spell_is_replicated() {
    let mut c = Cluster::new(&[1, 2, 3], "web start\n");
    c.run_until(Millis::from_secs(120));
    let adopted = |c: &Cluster, node: u32| {
        c.events_of(node)
            .iter()
            .filter(|e| matches!(e, ClusterEvent::Adopted { file: SharedFile::Hactl, .. }))
            .count()
    };
    let quiet: Vec<usize> = [1, 2, 3].iter().map(|&n| adopted(&c, n)).collect();
    let edited = "web start\ndb start\n";
    c.files.put(3, SharedFile::Hactl, edited, wall(c.now));
    c.run_until(c.now + Millis::from_secs(30));
    for n in [1, 2] {
        assert_eq!(adopted(&c, n), quiet[n as usize - 1] + 1, "{:?}", c.events_of(n));
        assert_eq!(c.files.text(n, SharedFile::Hactl).as_deref(), Some(edited));
        assert!(c.drivers[&n].hactl().is_some_and(|h| h.get("db").is_some()), "node {n}");
    }
    // Node 2's copy vanishes: node 2 copies it back from a peer.
    c.files.map.remove(&(2, SharedFile::Hactl));
    c.run_until(c.now + Millis::from_secs(30));
    assert_eq!(c.files.text(2, SharedFile::Hactl).as_deref(), Some(edited));
}

/// Heartbeat-file membership: the driver commands every beat (a third of
/// the timeout) and judges freshness itself from mtimes and the reader's
/// clock; a clean stop removes the beat and exits.
#[test]
fn heartbeats_are_commanded_and_judged_by_the_engine() {
    let mut cfg = ClusterConfig::new(1, PolicyConfig::default());
    cfg.membership = MembershipSource::HeartbeatFiles;
    let mut d = ClusterDriver::new(cfg, Cltab::default(), Millis::ZERO);
    let mut beats = Vec::new();
    let mut removed = false;
    let mut exited = false;
    let mut now = Millis::ZERO;
    let mut members_seen = Vec::new();
    for _ in 0..200 {
        while let Some(cmd) = d.poll_command() {
            let input = match cmd {
                ClusterCommand::WriteHeartbeat { seq, counter, .. } => {
                    beats.push((now, counter));
                    ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result: Ok(()) }
                }
                ClusterCommand::ReadMembership { seq } => {
                    // Node 2 beat 70 s ago (stale), node 3 5 s ago.
                    let beat = |ago: i64| {
                        Ok(Some(FileVersion {
                            mtime: WallMs(wall(now).0 - ago),
                            id: ContentId(1),
                            bytes: None,
                        }))
                    };
                    let beats = vec![(1, beat(0)), (2, beat(70_000)), (3, beat(5_000))];
                    let report = MembershipReport::Heartbeats { read_at: wall(now), beats };
                    ClusterInput::MembershipRead { seq, report }
                }
                ClusterCommand::ReadNodes { seq, asks } => {
                    // Each node answers, with no file at all.
                    let reports = asks
                        .iter()
                        .map(|a| FileReport {
                            node: a.node,
                            file: SharedFile::Hastat,
                            path: "-".into(),
                            read: Ok(None),
                        })
                        .collect();
                    ClusterInput::NodesRead { seq, read_at: wall(now), reports, unchanged: vec![] }
                }
                ClusterCommand::WriteHastat { seq, published } => {
                    members_seen.push(published.members.clone());
                    ClusterInput::StatusWritten { seq, file: SharedFile::Hastat, result: Ok(()) }
                }
                ClusterCommand::WriteClstat { seq, .. } => {
                    ClusterInput::StatusWritten { seq, file: SharedFile::Clstat, result: Ok(()) }
                }
                ClusterCommand::RemoveHeartbeat { seq } => {
                    removed = true;
                    ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result: Ok(()) }
                }
                ClusterCommand::Exit => {
                    exited = true;
                    continue;
                }
                other => panic!("unexpected {other:?}"),
            };
            d.handle(now, input);
        }
        if exited {
            break;
        }
        if now >= Millis::from_secs(65) && !d.is_stopping() {
            d.handle(now, ClusterInput::Stop);
            continue;
        }
        let Some(next) = d.poll_timeout() else { break };
        now = next.max(now);
        d.handle(now, ClusterInput::Tick);
    }
    let at: Vec<u64> = beats.iter().map(|(t, _)| t.0 / 1000).collect();
    assert_eq!(&at[..4], &[0, 20, 40, 60], "every third of the 60 s timeout");
    assert!(beats.windows(2).all(|w| w[1].1 == w[0].1 + 1), "counters grow");
    assert!(members_seen.iter().all(|m| m == &vec![1, 3]), "{members_seen:?}");
    assert!(!members_seen.is_empty());
    assert!(removed && exited, "a clean stop leaves membership and exits");
}

/// SIGTERM: every local group is told `stop`, the driver waits for its
/// children, then halts and exits.
#[test]
fn stop_stops_local_groups_then_exits() {
    let mut c = Cluster::new(&[1], "web start\n");
    c.run_until_pred(Millis::from_secs(120), |c| !c.owners("web").is_empty());
    assert_eq!(c.owners("web"), [1]);
    c.feed(1, ClusterInput::Stop);
    c.pump(1);
    let told = c
        .events_of(1)
        .iter()
        .any(|e| matches!(e, ClusterEvent::Stopping { told } if told == &vec!["web".to_string()]));
    assert!(told, "{:?}", c.events_of(1));
    assert!(c.execs[&1].running.is_empty(), "the server got its signal and exited");
    c.run_until(c.now + Millis::from_secs(5));
    assert!(c.execs[&1].exited, "{:?}", c.events_of(1));
    let order: Vec<&ClusterEvent> = c
        .events_of(1)
        .iter()
        .filter(|e| matches!(e, ClusterEvent::Stopped | ClusterEvent::Halting))
        .collect();
    assert_eq!(order, [&ClusterEvent::Stopped, &ClusterEvent::Halting]);
    assert!(c.drivers[&1].has_exited());
    assert_eq!(c.drivers[&1].poll_timeout(), None);
}

/// A copy that fails is not adopted: my old copy stays in use, the failure
/// is said, and the next cycle tries again (and succeeds once it can).
#[test]
fn a_failed_copy_is_not_adopted_and_is_retried() {
    let faults = [(2, Faults { fail_copy: true, ..Faults::default() })].into();
    let mut c = Cluster::with_faults(&[1, 2], "web start\n", faults);
    c.files.put(1, SharedFile::Hactl, "web stop\n", WallMs(T0 + 1_000));
    c.run_until(Millis::from_secs(5));
    let failed = c
        .events_of(2)
        .iter()
        .filter(|e| matches!(e, ClusterEvent::NotAdopted { file: SharedFile::Hactl, from: 1, .. }))
        .count();
    assert!(failed >= 2, "said every cycle it failed: {:?}", c.events_of(2));
    assert_eq!(c.files.text(2, SharedFile::Hactl).as_deref(), Some("web start\n"));
    let want = |c: &Cluster| c.drivers[&2].hactl().map(|h| h.groups["web"].level.clone());
    assert_eq!(want(&c).as_deref(), Some("start"), "the old copy stays in use");
    c.faults.clear();
    c.run_until(c.now + Millis::from_secs(5));
    assert_eq!(c.files.text(2, SharedFile::Hactl).as_deref(), Some("web stop\n"));
    assert_eq!(want(&c).as_deref(), Some("stop"));
}

/// A membership read that hangs: the engine times it out, decides nothing,
/// retries later, and sends no second read while the first still hangs.
#[test]
fn a_hung_membership_read_is_timed_out_by_the_engine() {
    let faults = [(1, Faults { hang_membership: true, ..Faults::default() })].into();
    let mut c = Cluster::with_faults(&[1], "web start\n", faults);
    assert_eq!(c.execs[&1].held.len(), 1, "the first cycle's read hangs");
    c.run_until(Millis::from_secs(30));
    let unknown: Vec<&str> = c
        .events_of(1)
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::MembershipUnknown { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert!(unknown.len() >= 2, "{unknown:?}");
    assert!(unknown[0].contains("no answer"), "{unknown:?}");
    assert!(unknown[1].contains("has not finished"), "{unknown:?}");
    assert_eq!(c.execs[&1].held.len(), 1, "no pile of hung reads");
    assert!(c.owners("web").is_empty(), "no decisions without membership");
    let told = c.events_of(1).iter().any(|e| matches!(e, ClusterEvent::Node(Event::Told { .. })));
    assert!(!told);
}

/// With `trace` set, the driver queues every call into its node's machines
/// as a trace record with the text of what it decided. Fed again, record by
/// record, to a fresh node (as the simulator's replay does), the records
/// give the same texts: a `mosha --record` trace of the driver replays.
#[test]
fn the_drivers_trace_replays_to_the_same_decisions() {
    use crate::trace::Record;
    let mut lab = lab::Lab::new();
    for n in 1..=2 {
        let mut cfg = ClusterConfig::new(n, PolicyConfig::default());
        cfg.seed = u64::from(n);
        cfg.trace = n == 1;
        lab.add_node(cfg, CLTAB, "web start\n");
    }
    lab.run_until(Millis::from_secs(40));
    lab.feed(1, ClusterInput::Stop);
    lab.run_until(Millis::from_secs(60));
    let driver = &mut lab.nodes.get_mut(&1).expect("node 1").driver;
    let mut trace = Vec::new();
    while let Some(item) = driver.poll_trace() {
        trace.push(item);
    }
    let kinds = |pred: fn(&Record) -> bool| trace.iter().filter(|(r, _)| pred(r)).count();
    assert_eq!(kinds(|r| matches!(r, Record::Start { .. })), 1);
    assert!(kinds(|r| matches!(r, Record::Cycle { .. })) >= 10);
    assert!(kinds(|r| matches!(r, Record::Init { .. })) >= 3, "exits, ticks, shutdown");
    assert!(kinds(|r| matches!(r, Record::StopAll { .. })) >= 1);
    assert!(lab.nodes[&1].exited);
    assert_replays(1, &trace);
}

/// Feed one node's trace again, record by record, to fresh machines (as
/// `clinit-sim replay` does: the init machine and monitor through a
/// [`ClusterNode`], the `ranked` machine stepped by itself) and assert that
/// every record decides the same text as when it was recorded.
pub(super) fn assert_replays(node: u32, trace: &[(crate::trace::Record, String)]) {
    use crate::monitor::ranked::Ranked;
    use crate::trace::{DecisionWriter, Outcome, Record as Trace};
    let mut host: Option<ClusterNode<Deferred, Deferred>> = None;
    let mut machine: Option<Ranked> = None;
    let mut writer = DecisionWriter::default();
    for (i, (record, text)) in trace.iter().enumerate() {
        let mut replayed = String::new();
        match record {
            Trace::Start { node: me, at, policy, init, monitor_seed, cltab } => {
                let init = Init::new(init.clone(), cltab.clone(), *at);
                let mut d = NodeDriver::new(init, Deferred, Deferred);
                let first = d.flush(*at);
                writer.write(Outcome::Started(&first), &mut replayed);
                let monitor = Monitor::new(policy.clone(), *monitor_seed, *at);
                host = Some(ClusterNode::new(*me, d, monitor));
            }
            Trace::Cycle { adopt, obs, .. } => {
                let n = host.as_mut().expect("started");
                let adopted = adopt.clone().and_then(|t| n.adopt_cltab(obs.now, t));
                let report = n.cycle(obs);
                let adopted = adopted.as_ref().map(|(e, ex)| (e, ex.as_slice()));
                writer.write(Outcome::Cycle { adopted, report: &report }, &mut replayed);
            }
            Trace::Init { at, input, .. } => {
                let n = host.as_mut().expect("started");
                let (reply, executed) = n.driver.step(*at, input.clone());
                writer.write(Outcome::Init { reply: &reply, executed: &executed }, &mut replayed);
            }
            Trace::StopAll { at, .. } => {
                let n = host.as_mut().expect("started");
                let (told, executed) = n.stop_all(*at);
                writer.write(Outcome::StopAll { told: &told, executed: &executed }, &mut replayed);
            }
            Trace::RankedStart { node: me, at, params, initial, durable, own } => {
                let m = Ranked::new(
                    *me,
                    params.clone(),
                    initial.clone(),
                    durable.clone(),
                    own.clone(),
                    *at,
                );
                machine = Some(m);
                writer.write(Outcome::RankedStarted, &mut replayed);
            }
            Trace::Ranked { at, input, .. } => {
                let m = machine.as_mut().expect("ranked started");
                let commands = m.step(*at, input.clone()).commands;
                writer.write(Outcome::Ranked(&commands), &mut replayed);
            }
            other => panic!("node {node}: unexpected record {other:?}"),
        }
        assert_eq!(
            &replayed, text,
            "node {node}: record {i} ({record:?}) decides differently on replay"
        );
    }
}

/// An executor may answer a node whose asked files are all unchanged with
/// one `NodesRead.unchanged` entry instead of a report per file: the drivers then
/// decide exactly as with the per-file reports (every trace record and
/// decision text equal), through placement, a crash and failover, a
/// hactl edit and its replication, while most answers were compact.
#[test]
fn unchanged_nodes_answered_in_one_line_decide_the_same() {
    let run = |compact: bool, recycle: bool| {
        let mut c = Cluster::new(&[1, 2, 3, 4], "web start\n");
        c.files.same_clstat_same_id = true;
        c.compact = compact;
        c.recycle = recycle;
        for d in c.drivers.values_mut() {
            d.trace = Some(Tap::new());
        }
        c.run_until(Millis::from_secs(200));
        let owner = *c.owners("web").first().expect("web placed");
        c.crash(owner);
        c.run_until(c.now + Millis::from_secs(300));
        let survivor = *c.drivers.keys().next().expect("survivors");
        c.files.put(survivor, SharedFile::Hactl, "web start\ndb start\n", wall(c.now));
        c.run_until(c.now + Millis::from_secs(300));
        let mut traces = BTreeMap::new();
        for (n, d) in c.drivers.iter_mut() {
            let mut t = c.traces.remove(n).unwrap_or_default();
            while let Some((record, text)) = d.poll_trace() {
                t.push((serde_json::to_string(&record).expect("serialises"), text));
            }
            traces.insert(*n, t);
        }
        let adopted = c.drivers.values().all(|d| d.hactl().is_some_and(|h| h.get("db").is_some()));
        (traces, c.owners("web"), adopted, c.unchanged_answers, owner)
    };
    let (full, web, db, none, owner) = run(false, false);
    let (compact, web2, db2, answers, owner2) = run(true, false);
    // Records given back as they come (their maps reused) change nothing.
    let (recycled, web3, db3, _, owner3) = run(true, true);
    assert_eq!(recycled, compact);
    assert_eq!((&web2, db2, owner2), (&web3, db3, owner3));
    assert_eq!(none, 0);
    assert!(answers > 100, "the compact answer was hardly used: {answers}");
    assert!(db, "the edited hactl was adopted everywhere");
    assert_eq!(web.len(), 1, "failed over: {web:?}");
    assert!(!web.contains(&owner));
    assert_eq!((web, db, owner), (web2, db2, owner2));
    assert!(full.values().all(|t| t.len() > 20), "cycles were traced");
    for (node, trace) in &full {
        let other = &compact[node];
        assert_eq!(trace.len(), other.len(), "node {node}");
        for (i, (a, b)) in trace.iter().zip(other).enumerate() {
            assert_eq!(a, b, "node {node}, record {i}");
        }
    }
}

/// The same executor hosting `ranked`.
mod ranked;
/// Spawns that fail for lack of a resource (issue 10).
mod starved;
