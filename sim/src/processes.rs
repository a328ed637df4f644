//! Simulated children that follow the [command vocabulary](crate::command):
//! the world carries out a cluster driver's `Spawn` and `Signal` commands
//! with them, and they queue what happened ("this child ends at t") for
//! the world to drain after every call. Calls complete instantly, as the
//! design asks of simulated I/O. The replay backends are here too.
//!
//! The children are also the simulation's **process table**, its ground
//! truth: every start and end of a service process is reported in
//! [`SimProcesses::changes`], whatever the init machine believes. When a
//! `mosha` dies (`mosha-crash`) the world keeps its `SimProcesses` as
//! orphans: the children live on, unknown to the next incarnation.

use crate::command::{signal_number, Command};
use crate::invariants::is_service_level;
use clinit_engine::driver::{Processes, StatusStore};
use clinit_engine::process::{ExitStatus, ProcId, Signal, SpawnError};
use clinit_engine::status::ClStat;
use clinit_engine::time::Millis;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The "pid" reported for a child: a function of its id, so a replay
/// reports the same numbers.
pub fn pid_of(id: ProcId) -> u32 {
    (id.0 as u32).wrapping_add(1000)
}

/// Parsed commands by their cltab text.
pub type Commands = Arc<BTreeMap<String, Command>>;

#[derive(Debug)]
struct Child {
    command: Command,
    group: String,
    /// Spawned at a service level (not plan, test or stop).
    service: bool,
    /// When and how it ends, as far as known now.
    end: Option<(Millis, ExitStatus)>,
    /// The leader has exited; other members of its process group linger
    /// until `end` (or a SIGTERM/SIGKILL to the group).
    remnant: bool,
    /// In uninterruptible sleep (D state, `d-state`): no signal has any
    /// effect until it is released; a SIGKILL sent meanwhile lands then.
    stuck: bool,
    kill_pending: bool,
}

/// A change in the process table: a service process of `group` started
/// or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcChange {
    pub group: String,
    pub started: bool,
}

/// How a child's end event turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The child (its leader) exited; with `lingering`, members of its
    /// process group still run.
    Exited { status: ExitStatus, lingering: bool },
    /// The last member of a lingering process group is gone.
    GroupGone,
}

/// Children of one node incarnation.
#[derive(Debug)]
pub struct SimProcesses {
    node: u32,
    /// Set by the world before every call into the driver.
    pub now: Millis,
    commands: Commands,
    rng: ChaCha8Rng,
    live: HashMap<ProcId, Child>,
    /// Exits the world must schedule: (when, which).
    pub due: Vec<(Millis, ProcId)>,
    /// Service processes started and ended since the world last looked.
    pub changes: Vec<ProcChange>,
    /// Probability that a spawn fails (`spawn-fail`), set by the world.
    pub spawn_fail: f64,
    /// A child that exits leaves its process group behind for this long
    /// (`lingering-group`), set by the world.
    pub linger: Option<Millis>,
    /// Children spawned now survive every signal until released
    /// (`d-state`), set by the world.
    pub unkillable: bool,
}

impl SimProcesses {
    pub fn new(node: u32, commands: Commands, rng: ChaCha8Rng) -> SimProcesses {
        SimProcesses {
            node,
            now: Millis::ZERO,
            commands,
            rng,
            live: HashMap::new(),
            due: Vec::new(),
            changes: Vec::new(),
            spawn_fail: 0.0,
            linger: None,
            unkillable: false,
        }
    }

    /// The D state ends: stuck children can be signalled again, and a
    /// SIGKILL sent while they were stuck ends them now.
    pub fn release_stuck(&mut self) {
        for (id, child) in &mut self.live {
            if !child.stuck {
                continue;
            }
            child.stuck = false;
            if child.kill_pending {
                child.end = Some((self.now, ExitStatus::Signaled(signal_number(Signal::Kill))));
                self.due.push((self.now, *id));
            }
        }
    }

    /// The child `id` ends at `at` (an exit event fired): how, or `None`
    /// when that end was superseded (an earlier signal) or it is gone.
    pub fn take_exit(&mut self, id: ProcId, at: Millis) -> Option<Ended> {
        let child = self.live.get_mut(&id)?;
        let status = match child.end {
            Some((when, status)) if when == at => status,
            _ => return None,
        };
        // A SIGKILL went to the whole process group: nothing of it
        // lingers (only an exit on its own, or on SIGINT, leaves members).
        let group_killed = status == ExitStatus::Signaled(signal_number(Signal::Kill));
        if !child.remnant && !group_killed {
            if let Some(linger) = self.linger {
                child.remnant = true;
                child.end = Some((at + linger, status));
                self.due.push((at + linger, id));
                return Some(Ended::Exited { status, lingering: true });
            }
        }
        let child = self.live.remove(&id)?;
        if child.service {
            self.changes.push(ProcChange { group: child.group, started: false });
        }
        Some(if child.remnant {
            Ended::GroupGone
        } else {
            Ended::Exited { status, lingering: false }
        })
    }

    /// Service processes alive, by group (for reports and orphans).
    pub fn service_groups(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.live.values().filter(|c| c.service).map(|c| c.group.clone()).collect();
        v.sort();
        v
    }

    /// Number of live children (for reports).
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Has a service process survived a SIGKILL (in D state, the kill
    /// pending)? Such a node cannot stop its services: fencing it is never
    /// needless.
    pub fn survived_kill(&self) -> bool {
        self.live.values().any(|c| c.service && c.stuck && c.kill_pending)
    }

    /// SIGKILL every live child's process group (`ranked`'s kill on a
    /// lost lease, and the watchdog's): each dies at once (lingering
    /// remnants too); the exits are scheduled in `due` as usual.
    pub fn kill_all(&mut self) -> usize {
        let mut ids: Vec<ProcId> = self.live.keys().copied().collect();
        ids.sort();
        for id in &ids {
            let _ = self.signal(*id, Signal::Kill);
        }
        ids.len()
    }
}

impl Processes for SimProcesses {
    fn spawn(
        &mut self,
        id: ProcId,
        group: &str,
        _tag: &str,
        level: &str,
        command: &str,
    ) -> Result<u32, SpawnError> {
        // Commands are validated when the scenario is built; one that is
        // not known here cannot be run, like a missing binary.
        let Some(cmd) = self.commands.get(command) else {
            return Err(format!("unknown simulated command {command:?}").into());
        };
        if self.spawn_fail > 0.0 && self.rng.random_bool(self.spawn_fail.min(1.0)) {
            return Err("fork failed: Resource temporarily unavailable (simulated)".into());
        }
        let end = cmd.natural_end(self.node, &mut self.rng).map(|(d, s)| (self.now + d, s));
        if let Some((at, _)) = end {
            self.due.push((at, id));
        }
        let service = is_service_level(level);
        if service {
            self.changes.push(ProcChange { group: group.to_string(), started: true });
        }
        let child = Child {
            command: cmd.clone(),
            group: group.to_string(),
            service,
            end,
            remnant: false,
            stuck: self.unkillable,
            kill_pending: false,
        };
        self.live.insert(id, child);
        Ok(pid_of(id))
    }

    fn signal(
        &mut self,
        id: ProcId,
        signal: Signal,
    ) -> Result<bool, clinit_engine::cluster::IoFailure> {
        let Some(child) = self.live.get_mut(&id) else { return Ok(false) };
        if child.stuck {
            child.kill_pending |= signal == Signal::Kill;
            return Ok(true);
        }
        let effect = if child.remnant {
            // The lingering members ignore SIGINT; SIGTERM and SIGKILL to
            // the group end them.
            (signal != Signal::Int).then_some(Millis::ZERO)
        } else {
            child.command.on_signal(signal)
        };
        if let Some(after) = effect {
            let at = self.now + after;
            if child.end.is_none_or(|(when, _)| at < when) {
                child.end = Some((at, ExitStatus::Signaled(signal_number(signal))));
                self.due.push((at, id));
            }
        }
        Ok(true)
    }
}

/// Replay backend: every spawn succeeds unless the trace recorded its
/// failure; signals always reach (the machine never signals a reaped child).
#[derive(Debug, Default)]
pub struct ReplayProcesses {
    pub failures: HashMap<ProcId, String>,
}

impl Processes for ReplayProcesses {
    fn spawn(
        &mut self,
        id: ProcId,
        _group: &str,
        _tag: &str,
        _level: &str,
        _command: &str,
    ) -> Result<u32, SpawnError> {
        match self.failures.get(&id) {
            Some(reason) => Err(reason.clone().into()),
            None => Ok(pid_of(id)),
        }
    }

    fn signal(
        &mut self,
        _id: ProcId,
        _signal: Signal,
    ) -> Result<bool, clinit_engine::cluster::IoFailure> {
        Ok(true)
    }
}

/// Replay backend: status writes go nowhere.
#[derive(Debug, Default)]
pub struct NullStore;

impl StatusStore for NullStore {
    fn write_status(
        &mut self,
        _seq: u64,
        _status: &ClStat,
    ) -> Result<(), clinit_engine::cluster::IoFailure> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn procs() -> SimProcesses {
        let mut commands = BTreeMap::new();
        commands.insert("run".to_string(), Command::parse("run").expect("parses"));
        SimProcesses::new(1, Arc::new(commands), ChaCha8Rng::seed_from_u64(1))
    }

    /// A child in D state survives SIGKILL; the kill lands when the D
    /// state ends. The process table saw it start and sees it end.
    #[test]
    fn a_child_in_d_state_survives_every_kill_until_released() {
        let mut p = procs();
        p.unkillable = true;
        p.spawn(ProcId(1), "web", "w", "start", "run").expect("spawns");
        assert_eq!(p.changes, vec![ProcChange { group: "web".into(), started: true }]);
        p.changes.clear();
        p.now = Millis(1_000);
        for signal in [Signal::Int, Signal::Term, Signal::Kill] {
            assert_eq!(p.signal(ProcId(1), signal), Ok(true));
        }
        assert!(p.due.is_empty(), "no signal had an effect");
        p.now = Millis(9_000);
        p.release_stuck();
        assert_eq!(p.due, vec![(Millis(9_000), ProcId(1))]);
        let ended = p.take_exit(ProcId(1), Millis(9_000));
        assert_eq!(
            ended,
            Some(Ended::Exited { status: ExitStatus::Signaled(9), lingering: false })
        );
        assert_eq!(p.changes, vec![ProcChange { group: "web".into(), started: false }]);
    }

    /// A lingering group: the leader's exit is reported with `lingering`,
    /// the group is gone later; a test-level child is no service process.
    #[test]
    fn lingering_groups_and_service_levels() {
        let mut p = procs();
        p.linger = Some(Millis(5_000));
        p.spawn(ProcId(1), "web", "t", "test", "run").expect("spawns");
        assert!(p.changes.is_empty(), "a test is not the service");
        p.spawn(ProcId(2), "web", "w", "start", "run").expect("spawns");
        p.now = Millis(100);
        p.signal(ProcId(2), Signal::Int).expect("signalled");
        let (at, id) = *p.due.last().expect("ends");
        let first = p.take_exit(id, at);
        assert!(matches!(first, Some(Ended::Exited { lingering: true, .. })), "{first:?}");
        let (later, _) = *p.due.last().expect("the group ends later");
        assert_eq!(later, at + Millis(5_000));
        assert_eq!(p.take_exit(id, later), Some(Ended::GroupGone));
    }

    /// SIGKILL goes to the whole process group (`kill_all`, the lease's
    /// kill and the watchdog's): nothing lingers, even under
    /// `lingering-group`. Before, the SIGKILLed leader left a remnant for
    /// the linger time, so ranked's kill was never confirmed within δ and
    /// the node was fenced although it had stopped its services. A D-state
    /// child survives the kill, and says so (`survived_kill`).
    #[test]
    fn a_killed_process_group_leaves_nothing_lingering() {
        let mut p = procs();
        p.linger = Some(Millis(30_000));
        p.spawn(ProcId(1), "web", "w", "start", "run").expect("spawns");
        p.now = Millis(100);
        assert_eq!(p.kill_all(), 1);
        let (at, id) = *p.due.last().expect("ends");
        assert_eq!(at, Millis(100), "at once");
        let ended = p.take_exit(id, at);
        assert_eq!(
            ended,
            Some(Ended::Exited { status: ExitStatus::Signaled(9), lingering: false })
        );
        assert_eq!(p.live(), 0);
        assert!(!p.survived_kill());
        p.unkillable = true;
        p.spawn(ProcId(2), "web", "w", "start", "run").expect("spawns");
        assert!(!p.survived_kill(), "not killed yet");
        p.kill_all();
        assert!(p.survived_kill(), "in D state, the SIGKILL pending");
    }
}
