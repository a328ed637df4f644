//! A tiny in-memory executor for [`ClusterDriver`]s: shared files in a map,
//! children that run until signalled, membership as a set, one virtual
//! clock. No I/O and no randomness: tests and the tutorial drive whole
//! clusters with it, running production's cluster loop.
//!
//! Every command is answered at once, in order. Children: a command `true`
//! exits 0 at once, `false` exits 1 at once, anything else runs until it is
//! signalled. It models no faults on purpose (the simulator does); it is
//! the smallest honest executor.

use super::{
    ClusterCommand, ClusterConfig, ClusterDriver, ClusterEvent, ClusterInput, ContentId,
    FileReport, FileVersion, MembershipReport, SharedFile, WallMs,
};
use crate::cltab::Cltab;
use crate::process::{ExitStatus, ProcId};
use crate::status::GroupState;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The wall clock of the lab at `now`: a fixed epoch plus `now`.
pub fn lab_wall(now: Millis) -> WallMs {
    WallMs(1_700_000_000_000 + i64::try_from(now.0).unwrap_or(i64::MAX))
}

/// One node of the lab: its driver and what its executor saw.
pub struct LabNode {
    pub driver: ClusterDriver,
    /// Children running now.
    pub running: BTreeSet<ProcId>,
    /// Every spawn, as `group/tag@level`.
    pub spawned: Vec<String>,
    /// Nodes this node fenced.
    pub fenced: Vec<u32>,
    /// Every event, with the time it was polled.
    pub events: Vec<(Millis, ClusterEvent)>,
    /// The driver issued [`ClusterCommand::Exit`].
    pub exited: bool,
    commands: VecDeque<(ProcId, String)>,
}

/// A stored file: content, mtime, identity.
type Stored = (Arc<[u8]>, WallMs, ContentId);

/// Every node's shared files, with content identities.
#[derive(Default)]
pub struct LabFiles {
    map: BTreeMap<(u32, SharedFile), Stored>,
    next_id: u64,
}

impl LabFiles {
    /// Write a file (a new identity) with this mtime.
    pub fn put(
        &mut self,
        node: u32,
        file: SharedFile,
        bytes: Arc<[u8]>,
        mtime: WallMs,
    ) -> ContentId {
        self.next_id += 1;
        let id = ContentId(self.next_id);
        self.map.insert((node, file), (bytes, mtime, id));
        id
    }

    /// A file's text, if it exists.
    pub fn text(&self, node: u32, file: SharedFile) -> Option<String> {
        self.map.get(&(node, file)).map(|(b, _, _)| String::from_utf8_lossy(b).into_owned())
    }

    /// A file's mtime, if it exists.
    pub fn mtime(&self, node: u32, file: SharedFile) -> Option<WallMs> {
        self.map.get(&(node, file)).map(|(_, m, _)| *m)
    }

    fn read(&self, node: u32, file: SharedFile, known: Option<ContentId>) -> FileReport {
        let read = Ok(self.map.get(&(node, file)).map(|(bytes, mtime, id)| FileVersion {
            mtime: *mtime,
            id: *id,
            bytes: (known != Some(*id)).then(|| bytes.clone()),
        }));
        FileReport { node, file, path: format!("/mfs/{node}/{file}").into(), read }
    }
}

/// A cluster of drivers on one virtual clock.
#[derive(Default)]
pub struct Lab {
    pub now: Millis,
    pub files: LabFiles,
    pub nodes: BTreeMap<u32, LabNode>,
    /// Membership as the (external) source reports it.
    pub up: BTreeSet<u32>,
}

impl Lab {
    pub fn new() -> Lab {
        Lab::default()
    }

    /// Add node `cfg.me`, up, with these `cltab` and `hactl` files (written
    /// 10 s before now), started now.
    pub fn add_node(&mut self, cfg: ClusterConfig, cltab: &str, hactl: &str) {
        let me = cfg.me;
        let old = WallMs(lab_wall(self.now).0 - 10_000);
        self.files.put(me, SharedFile::Cltab, cltab.as_bytes().into(), old);
        self.files.put(me, SharedFile::Hactl, hactl.as_bytes().into(), old);
        let table = Cltab::parse(cltab, &format!("/mfs/{me}/cltab")).unwrap_or_default();
        let driver = ClusterDriver::new(cfg, table, self.now);
        let node = LabNode {
            driver,
            running: BTreeSet::new(),
            spawned: Vec::new(),
            fenced: Vec::new(),
            events: Vec::new(),
            exited: false,
            commands: VecDeque::new(),
        };
        self.nodes.insert(me, node);
        self.up.insert(me);
        self.pump(me);
    }

    /// An operator writes `text` to `node`'s `file` now.
    pub fn edit(&mut self, node: u32, file: SharedFile, text: &str) {
        self.files.put(node, file, text.as_bytes().into(), lab_wall(self.now));
    }

    /// The node dies with everything on it: gone from membership, its
    /// driver dropped (its files stay, as on a shared disk).
    pub fn crash(&mut self, node: u32) {
        self.nodes.remove(&node);
        self.up.remove(&node);
    }

    /// Feed `node` one input now and carry out what follows.
    pub fn feed(&mut self, node: u32, input: ClusterInput) {
        let now = self.now;
        if let Some(n) = self.nodes.get_mut(&node) {
            n.driver.handle(now, input);
        }
        self.pump(node);
    }

    /// Carry out every command of `node`, answering each at once.
    pub fn pump(&mut self, node: u32) {
        loop {
            let now = self.now;
            let Some(n) = self.nodes.get_mut(&node) else { return };
            while let Some(e) = n.driver.poll_event() {
                n.events.push((now, e));
            }
            let Some(command) = n.driver.poll_command() else { return };
            if let Some(input) = self.carry_out(node, command) {
                if let Some(n) = self.nodes.get_mut(&node) {
                    n.driver.handle(now, input);
                }
            }
        }
    }

    fn carry_out(&mut self, me: u32, command: ClusterCommand) -> Option<ClusterInput> {
        let now = self.now;
        let node = self.nodes.get_mut(&me)?;
        Some(match command {
            ClusterCommand::ReadMembership { seq } => {
                let members = self.up.iter().copied().collect();
                ClusterInput::MembershipRead { seq, report: MembershipReport::Members(members) }
            }
            ClusterCommand::ReadNodes { seq, asks } => {
                let reports =
                    asks.iter().map(|a| self.files.read(a.node, a.file, a.known)).collect();
                ClusterInput::NodesRead { seq, read_at: lab_wall(now), reports, unchanged: vec![] }
            }
            ClusterCommand::Copy { seq, file, bytes, mtime, .. } => {
                let id = self.files.put(me, file, bytes, mtime);
                ClusterInput::CopyDone { seq, id }
            }
            ClusterCommand::WriteClstat { seq, status } => {
                let bytes = status.render().into_bytes().into();
                self.files.put(me, SharedFile::Clstat, bytes, lab_wall(now));
                ClusterInput::StatusWritten { seq, file: SharedFile::Clstat, result: Ok(()) }
            }
            ClusterCommand::WriteHastat { seq, .. } => {
                ClusterInput::StatusWritten { seq, file: SharedFile::Hastat, result: Ok(()) }
            }
            ClusterCommand::WriteHeartbeat { seq, counter, payload } => {
                let bytes = payload.unwrap_or_else(|| counter.to_string().into_bytes().into());
                self.files.put(me, SharedFile::Heartbeat, bytes, lab_wall(now));
                ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result: Ok(()) }
            }
            ClusterCommand::RemoveHeartbeat { seq } => {
                self.files.map.remove(&(me, SharedFile::Heartbeat));
                ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result: Ok(()) }
            }
            ClusterCommand::Spawn { id, group, tag, level, command, .. } => {
                node.spawned.push(format!("{group}/{tag}@{level}"));
                node.running.insert(id);
                node.commands.push_back((id, command));
                let exit = match node.commands.back().map(|(_, c)| c.as_str()) {
                    Some("true") => Some(0),
                    Some("false") => Some(1),
                    _ => None,
                };
                node.driver.handle(now, ClusterInput::SpawnResult { id, result: Ok(id.0 as u32) });
                let code = exit?;
                node.running.remove(&id);
                ClusterInput::ChildExited { id, status: ExitStatus::Code(code), lingering: false }
            }
            ClusterCommand::Signal { id, signal } => {
                if !node.running.remove(&id) {
                    return None;
                }
                let number = match signal {
                    crate::process::Signal::Int => 2,
                    crate::process::Signal::Term => 15,
                    crate::process::Signal::Kill => 9,
                };
                ClusterInput::ChildExited {
                    id,
                    status: ExitStatus::Signaled(number),
                    lingering: false,
                }
            }
            ClusterCommand::Fence { seq, node: target } => {
                node.fenced.push(target);
                ClusterInput::FenceDone { seq, node: target, result: Ok(()) }
            }
            ClusterCommand::Exit => {
                node.exited = true;
                return None;
            }
            // ranked: SIGKILL kills every child at once; the durable state
            // is kept nowhere (the lab has no restarts); no watchdog.
            ClusterCommand::KillAllNow => {
                let killed: Vec<ProcId> = std::mem::take(&mut node.running).into_iter().collect();
                for id in killed {
                    let status = ExitStatus::Signaled(9);
                    node.driver
                        .handle(now, ClusterInput::ChildExited { id, status, lingering: false });
                }
                return None;
            }
            ClusterCommand::Persist { seq, .. } => ClusterInput::Persisted { seq, result: Ok(()) },
            ClusterCommand::ArmWatchdog { .. } => return None,
            ClusterCommand::FenceRanked { seq, target, .. } => {
                node.fenced.push(target.node);
                ClusterInput::FenceDone { seq, node: target.node, result: Ok(()) }
            }
        })
    }

    /// Advance to the earliest timeout of any node, if it is at most
    /// `until`, and fire it. Returns false (with `now` = `until`) when none is.
    pub fn step(&mut self, until: Millis) -> bool {
        let next = self.nodes.values().filter_map(|n| n.driver.poll_timeout()).min();
        let Some(next) = next.filter(|t| *t <= until) else {
            self.now = self.now.max(until);
            return false;
        };
        self.now = self.now.max(next);
        let due: Vec<u32> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.driver.poll_timeout().is_some_and(|t| t <= self.now))
            .map(|(&me, _)| me)
            .collect();
        for me in due {
            self.feed(me, ClusterInput::Tick);
        }
        true
    }

    /// Run until `until`.
    pub fn run_until(&mut self, until: Millis) {
        while self.step(until) {}
    }

    /// Run until `done` holds (checked after every step), at most until
    /// `limit`. Returns whether it holds.
    pub fn run_until_true(&mut self, limit: Millis, done: impl Fn(&Lab) -> bool) -> bool {
        while !done(self) {
            if !self.step(limit) {
                return done(self);
            }
        }
        true
    }

    /// `(level, state)` of `group` on `node`, from its init machine.
    pub fn level(&self, node: u32, group: &str) -> Option<(String, GroupState)> {
        let n = self.nodes.get(&node)?;
        n.driver.init().status().get(group).map(|s| (s.level.clone(), s.state.clone()))
    }

    /// Live nodes where `group` is at `start DONE`.
    pub fn owners(&self, group: &str) -> Vec<u32> {
        let started = |l: Option<(String, GroupState)>| {
            l.is_some_and(|(level, state)| level == "start" && state == GroupState::Done)
        };
        self.nodes.keys().copied().filter(|&n| started(self.level(n, group))).collect()
    }
}
