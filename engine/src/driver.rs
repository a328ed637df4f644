//! The node driver: turns the init machine's actions into backend calls.
//!
//! It is generic over small backend traits and does no I/O itself, so the
//! real daemon and the simulator share it and the simulator tests this glue
//! too, not only the machine.

use crate::cluster::IoFailure;
use crate::init::report::{EntryReport, EntryState};
use crate::init::{Action, Init, Input, Reply};
use crate::process::{ExitStatus, ProcId, Shortage, Signal, SpawnError};
use crate::status::{ClStat, GroupState};
use crate::time::Millis;
use std::collections::VecDeque;

/// The queue keeps at least this many slots however far it shrinks
/// ([`shrink_queue`]): small level changes reuse them without allocating.
const QUEUE_FLOOR: usize = 64;

/// Starts and signals child processes.
pub trait Processes {
    /// Start the child described by an [`Action::Spawn`] and return its pid
    /// (any number that names it in logs); an `Err` says why it could not
    /// be started: for lack of a resource ([`SpawnError::Starved`], the
    /// machine then retries it, [`Input::SpawnStarved`]) or for any other
    /// reason (the machine then sees [`ExitStatus::SpawnFailed`]).
    fn spawn(
        &mut self,
        id: ProcId,
        group: &str,
        tag: &str,
        level: &str,
        command: &str,
    ) -> Result<u32, SpawnError>;

    /// Signal a live child's process group. Must do nothing for an id whose
    /// process was already reaped; returns whether a signal went out.
    ///
    /// Errors: the OS refused the signal (`EPERM`, say), kind kept.
    fn signal(&mut self, id: ProcId, signal: Signal) -> Result<bool, IoFailure>;
}

/// Publishes the status file.
pub trait StatusStore {
    /// Replace the status file with `status` (write `seq`).
    ///
    /// Errors: the write or the rename failed (a full disk, a read-only
    /// mount), naming the path, kind kept.
    fn write_status(&mut self, seq: u64, status: &ClStat) -> Result<(), IoFailure>;
}

/// What the driver did, in order, for logging.
#[derive(Debug, Clone, PartialEq)]
pub enum Executed {
    /// An action the machine asked for (followed by its result, if any).
    Action(Action),
    Spawned {
        id: ProcId,
        pid: u32,
    },
    SpawnFailed {
        id: ProcId,
        tag: String,
        reason: String,
    },
    /// A spawn failed for lack of a resource; the machine retries it.
    SpawnStarved {
        id: ProcId,
        tag: String,
        shortage: Shortage,
        reason: String,
    },
    Signalled {
        id: ProcId,
        signal: Signal,
        sent: bool,
    },
    SignalFailed {
        id: ProcId,
        signal: Signal,
        reason: IoFailure,
    },
    StatusWriteFailed {
        seq: u64,
        reason: IoFailure,
    },
}

/// The init machine plus the backends that carry out its actions.
///
/// Actions run in the order the machine emitted them. With a spawn slice
/// ([`NodeDriver::set_spawn_slice`]), one call carries out at most that many
/// spawns and keeps the rest, in order, for [`NodeDriver::pump`]: a daemon
/// then answers requests between slices of a 2,000-entry level change
/// instead of going deaf for seconds (issue 10, item 12). Because the order
/// is kept, a signal never overtakes the spawn of its process.
pub struct NodeDriver<P, S> {
    pub init: Init,
    pub processes: P,
    pub store: S,
    spawn_slice: Option<usize>,
    /// Actions drained from the machine, not yet carried out.
    queue: VecDeque<Action>,
    /// Spawns that failed in the current round (with the shortage, if they
    /// failed for lack of a resource), reported to the machine once the
    /// round's actions are all carried out.
    failed: Vec<(ProcId, Option<Shortage>)>,
}

impl<P: Processes, S: StatusStore> NodeDriver<P, S> {
    pub fn new(init: Init, processes: P, store: S) -> Self {
        NodeDriver {
            init,
            processes,
            store,
            spawn_slice: None,
            queue: VecDeque::new(),
            failed: Vec::new(),
        }
    }

    /// Carry out at most `slice` spawns per call (`None`: no limit, the
    /// default, which the simulator relies on).
    pub fn set_spawn_slice(&mut self, slice: Option<usize>) {
        self.spawn_slice = slice.map(|n| n.max(1));
    }

    /// Work is left for [`NodeDriver::pump`].
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty() || !self.failed.is_empty()
    }

    /// Number of actions waiting for [`NodeDriver::pump`].
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The status as carried out, for clients (`clinit status`, `--wait`,
    /// the detail file): the machine's [`Init::status`], except that a
    /// group with a spawn still waiting in this driver's queue is shown
    /// `STARTING`, not the `DONE` the machine already decided. The machine
    /// counts an entry as started once it has asked for the spawn; under a
    /// spawn slice the spawn may still be seconds away, and a `--wait` that
    /// returned on that `DONE` ran ahead of the processes (found by a new
    /// user with 300 entries: `DONE` while 33 of them ran). The clstat
    /// file needs no such care: its write is queued behind the spawns.
    pub fn status(&self) -> ClStat {
        let mut stat = self.init.status();
        for action in &self.queue {
            if let Action::Spawn { group, .. } = action {
                if let Some(s) = stat.groups.get_mut(group) {
                    if s.state.is_settled() {
                        s.state = GroupState::Starting;
                    }
                }
            }
        }
        stat
    }

    /// Every entry's report ([`Init::entries`]), with an entry whose spawn
    /// is still waiting in this driver's queue shown as
    /// [`EntryState::Queued`] with no uptime: it has no process yet.
    pub fn entries(&self, now: Millis) -> Vec<EntryReport> {
        let waiting: std::collections::HashSet<ProcId> = self
            .queue
            .iter()
            .filter_map(|a| match a {
                Action::Spawn { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let mut entries = self.init.entries(now);
        for e in &mut entries {
            if e.id.is_some_and(|id| waiting.contains(&id)) {
                e.state = EntryState::Queued;
                e.uptime_ms = None;
            }
        }
        entries
    }

    /// Carry out the next slice of pending work.
    pub fn pump(&mut self, now: Millis) -> Vec<Executed> {
        let mut log = Vec::new();
        self.execute(now, &mut log);
        log
    }

    /// Carry out what the machine has queued (e.g. right after creating it).
    pub fn flush(&mut self, now: Millis) -> Vec<Executed> {
        let mut log = Vec::new();
        self.execute(now, &mut log);
        log
    }

    /// Feed one input and carry out every action it causes, including the
    /// follow-ups of spawn failures (with a spawn slice: the first slice, or
    /// nothing while earlier work is still pending). Returns the reply and
    /// what was done.
    pub fn step(&mut self, now: Millis, input: Input) -> (Reply, Vec<Executed>) {
        let reply = self.init.handle(now, input);
        let mut log = Vec::new();
        // While a sliced batch is under way, new actions queue behind it and
        // run in the next pumps: one slice per turn of the caller's loop,
        // however many inputs arrive in that turn.
        if !self.has_pending() {
            self.execute(now, &mut log);
        }
        (reply, log)
    }

    fn execute(&mut self, now: Millis, log: &mut Vec<Executed>) {
        self.execute_inner(now, log);
        shrink_queue(&mut self.queue);
    }

    fn execute_inner(&mut self, now: Millis, log: &mut Vec<Executed>) {
        let mut spawned = 0;
        loop {
            if self.queue.is_empty() {
                // A child that never started has ended, as far as the machine
                // is concerned; its follow-up actions run in the next round.
                for (id, shortage) in std::mem::take(&mut self.failed) {
                    let input = match shortage {
                        Some(shortage) => Input::SpawnStarved { id, shortage },
                        None => {
                            let status = ExitStatus::SpawnFailed;
                            Input::Exited { id, status, lingering: false }
                        }
                    };
                    self.init.handle(now, input);
                }
                self.queue.extend(self.init.drain_actions());
                if self.queue.is_empty() {
                    return;
                }
            }
            if matches!(self.queue.front(), Some(Action::Spawn { .. })) {
                if self.spawn_slice.is_some_and(|n| spawned >= n) {
                    return;
                }
                spawned += 1;
            }
            let Some(action) = self.queue.pop_front() else { continue };
            log.push(Executed::Action(action.clone()));
            match action {
                Action::Spawn { id, group, tag, level, command } => {
                    match self.processes.spawn(id, &group, &tag, &level, &command) {
                        Ok(pid) => log.push(Executed::Spawned { id, pid }),
                        Err(SpawnError::Starved { shortage, detail: reason }) => {
                            log.push(Executed::SpawnStarved { id, tag, shortage, reason });
                            self.failed.push((id, Some(shortage)));
                        }
                        Err(SpawnError::Failed { detail: reason }) => {
                            log.push(Executed::SpawnFailed { id, tag, reason });
                            self.failed.push((id, None));
                        }
                    }
                }
                Action::Signal { id, signal } => {
                    log.push(match self.processes.signal(id, signal) {
                        Ok(sent) => Executed::Signalled { id, signal, sent },
                        Err(reason) => Executed::SignalFailed { id, signal, reason },
                    });
                }
                Action::WriteStatus { seq, status } => {
                    if let Err(reason) = self.store.write_status(seq, &status) {
                        log.push(Executed::StatusWriteFailed { seq, reason });
                    }
                }
                Action::Notice(_) | Action::Exit => {}
            }
        }
    }
}

/// Give back most of the queue's capacity once a large batch has drained:
/// a 2,000-entry level change grows it to thousands of actions (about
/// 100 bytes each), and a `VecDeque` never shrinks by itself, so the
/// daemon would keep that peak for ever. Shrinks when the capacity is over
/// four times the length and over [`QUEUE_FLOOR`], to twice the length
/// (at least the floor): while a sliced batch drains, that is a copy of
/// the remaining actions each time the queue has lost three quarters,
/// linear in all.
fn shrink_queue<T>(queue: &mut VecDeque<T>) {
    let cap = queue.capacity();
    if cap > QUEUE_FLOOR && cap > 4 * queue.len() {
        queue.shrink_to((2 * queue.len()).max(QUEUE_FLOOR));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cltab::Cltab;
    use crate::init::InitConfig;

    /// Spawns fail for every third id, so failure follow-ups are covered.
    #[derive(Default)]
    struct Fake;

    impl Processes for Fake {
        fn spawn(
            &mut self,
            id: ProcId,
            _: &str,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<u32, SpawnError> {
            if id.0.is_multiple_of(3) {
                Err("no".into())
            } else {
                Ok(id.0 as u32 + 1000)
            }
        }
        fn signal(&mut self, _: ProcId, _: Signal) -> Result<bool, IoFailure> {
            Ok(true)
        }
    }

    struct NoStore;
    impl StatusStore for NoStore {
        fn write_status(&mut self, _: u64, _: &ClStat) -> Result<(), IoFailure> {
            Ok(())
        }
    }

    /// Everything a driver carries out for a scripted run, pumping any
    /// sliced remainder after each input.
    fn run(slice: Option<usize>) -> Vec<Executed> {
        let mut tab = String::new();
        for i in 0..40u32 {
            let mode = if i % 13 == 12 { "wait" } else { "respawn" };
            tab.push_str(&format!(
                "g:e{i}:{}:{mode}:cmd {i}\n",
                if i.is_multiple_of(2) { "12" } else { "1" }
            ));
        }
        let table = Cltab::parse(&tab, "t").expect("parses");
        let init = Init::new(InitConfig::default(), table, Millis::ZERO);
        let mut d = NodeDriver::new(init, Fake, NoStore);
        d.set_spawn_slice(slice);
        let mut log = d.flush(Millis::ZERO);
        let inputs = [
            Input::Tell { group: "g".into(), level: "1".into() },
            Input::Exited { id: ProcId(1), status: ExitStatus::Code(0), lingering: false },
            Input::Exited { id: ProcId(2), status: ExitStatus::Code(1), lingering: false },
            Input::Tell { group: "g".into(), level: "2".into() },
            Input::Exited { id: ProcId(4), status: ExitStatus::Signaled(2), lingering: false },
            Input::Shutdown,
        ];
        for input in inputs {
            log.extend(d.step(Millis(10), input).1);
            while d.has_pending() {
                log.extend(d.pump(Millis(10)));
            }
        }
        log
    }

    /// A sliced level change is `STARTING` for clients until its last
    /// spawn is carried out, though the machine decided `DONE` at once.
    #[test]
    fn a_sliced_level_change_is_done_for_clients_only_once_every_spawn_ran() {
        let tab: String = (0..10).map(|i| format!("g:e{i}:1:respawn:cmd {i}\n")).collect();
        let table = Cltab::parse(&tab, "t").expect("parses");
        let init = Init::new(InitConfig::default(), table, Millis::ZERO);
        let mut d = NodeDriver::new(init, Counting::default(), NoStore);
        d.set_spawn_slice(Some(4));
        d.flush(Millis::ZERO);
        d.step(Millis(1), Input::Tell { group: "g".into(), level: "1".into() });
        assert_eq!(d.init.status().get("g").map(|s| s.state.clone()), Some(GroupState::Done));
        let mut pumps = 0;
        while d.has_pending() {
            let state = d.status().get("g").map(|s| s.state.clone());
            assert_eq!(state, Some(GroupState::Starting), "after {pumps} pumps");
            let entries = d.entries(Millis(1));
            let queued = entries.iter().filter(|e| e.state == EntryState::Queued).count();
            assert_eq!(queued, 10 - d.processes.spawned, "after {pumps} pumps");
            assert!(entries
                .iter()
                .filter(|e| e.state == EntryState::Queued)
                .all(|e| e.uptime_ms.is_none()));
            d.pump(Millis(1));
            pumps += 1;
        }
        assert_eq!(pumps, 2, "10 spawns in slices of 4: 4 at the tell, then 4 and 2");
        assert_eq!(d.processes.spawned, 10);
        assert_eq!(d.status().get("g").map(|s| s.state.clone()), Some(GroupState::Done));
        assert!(d.entries(Millis(1)).iter().all(|e| e.state == EntryState::Running));
    }

    /// After a 2,000-entry level change has been carried out (in slices,
    /// as the daemon does, and in one go), the queue is back to a small
    /// capacity instead of keeping its peak.
    #[test]
    fn the_queue_gives_back_its_capacity_after_a_large_level_change() {
        let tab: String = (0..2000).map(|i| format!("g:e{i}:1:respawn:cmd {i}\n")).collect();
        for slice in [Some(16), None] {
            let table = Cltab::parse(&tab, "t").expect("parses");
            let init = Init::new(InitConfig::default(), table, Millis::ZERO);
            let mut d = NodeDriver::new(init, Counting::default(), NoStore);
            d.set_spawn_slice(slice);
            d.flush(Millis::ZERO);
            d.step(Millis(1), Input::Tell { group: "g".into(), level: "1".into() });
            let mut peak = d.queue.capacity();
            while d.has_pending() {
                d.pump(Millis(1));
                peak = peak.max(d.queue.capacity());
                assert!(d.queue.capacity() <= (4 * d.queue.len()).max(QUEUE_FLOOR));
            }
            assert_eq!(d.processes.spawned, 2000);
            assert!(peak >= 2000 || slice.is_none(), "{slice:?}: peak {peak}");
            assert!(d.queue.capacity() <= QUEUE_FLOOR, "{slice:?}: {}", d.queue.capacity());
        }
    }

    /// Counts spawns; every one succeeds.
    #[derive(Default)]
    struct Counting {
        spawned: usize,
    }

    impl Processes for Counting {
        fn spawn(
            &mut self,
            id: ProcId,
            _: &str,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<u32, SpawnError> {
            self.spawned += 1;
            Ok(id.0 as u32)
        }
        fn signal(&mut self, _: ProcId, _: Signal) -> Result<bool, IoFailure> {
            Ok(true)
        }
    }

    #[test]
    fn a_sliced_driver_carries_out_the_same_actions_in_the_same_order() {
        let plain = run(None);
        assert!(plain.iter().filter(|e| matches!(e, Executed::Spawned { .. })).count() > 10);
        for slice in [1, 3, 16] {
            assert_eq!(run(Some(slice)), plain, "slice {slice}");
        }
    }
}
