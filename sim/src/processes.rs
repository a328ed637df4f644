//! Simulated backends of the production node driver: children that follow
//! the [command vocabulary](crate::command), and a status store that hands
//! each write to the [shared filesystem model](crate::fs).
//!
//! The backends cannot reach the event queue (the driver owns them while a
//! machine runs), so they queue what happened ("this child ends at t",
//! "this clstat was written") and the world drains that after every call.
//! Backend calls complete instantly, as the design asks of simulated I/O.

use crate::command::{signal_number, Command};
use clinit_engine::driver::{Processes, StatusStore};
use clinit_engine::process::{ExitStatus, ProcId, Signal};
use clinit_engine::status::ClStat;
use clinit_engine::time::Millis;
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
    /// When and how it ends, as far as known now.
    end: Option<(Millis, ExitStatus)>,
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
        }
    }

    /// The child `id` ends at `at` (an exit event fired): its status, or
    /// `None` when that end was superseded (an earlier signal) or it is gone.
    pub fn take_exit(&mut self, id: ProcId, at: Millis) -> Option<ExitStatus> {
        let child = self.live.get(&id)?;
        match child.end {
            Some((when, status)) if when == at => {
                self.live.remove(&id);
                Some(status)
            }
            _ => None,
        }
    }

    /// Number of live children (for reports).
    pub fn live(&self) -> usize {
        self.live.len()
    }
}

impl Processes for SimProcesses {
    fn spawn(
        &mut self,
        id: ProcId,
        _group: &str,
        _tag: &str,
        _level: &str,
        command: &str,
    ) -> Result<u32, String> {
        // Commands are validated when the scenario is built; one that is
        // not known here cannot be run, like a missing binary.
        let Some(cmd) = self.commands.get(command) else {
            return Err(format!("unknown simulated command {command:?}"));
        };
        let end = cmd.natural_end(self.node, &mut self.rng).map(|(d, s)| (self.now + d, s));
        if let Some((at, _)) = end {
            self.due.push((at, id));
        }
        self.live.insert(id, Child { command: cmd.clone(), end });
        Ok(pid_of(id))
    }

    fn signal(&mut self, id: ProcId, signal: Signal) -> Result<bool, String> {
        let Some(child) = self.live.get_mut(&id) else { return Ok(false) };
        if let Some(after) = child.command.on_signal(signal) {
            let at = self.now + after;
            if child.end.is_none_or(|(when, _)| at < when) {
                child.end = Some((at, ExitStatus::Signaled(signal_number(signal))));
                self.due.push((at, id));
            }
        }
        Ok(true)
    }
}

/// Status writes of one node incarnation, for the world to publish.
#[derive(Debug, Default)]
pub struct SimStore {
    /// The newest write since the world last looked.
    pub written: Option<Arc<ClStat>>,
    /// The content of the last write. A heartbeat rewrite of the same
    /// content shares it, so readers can tell "same content, new mtime"
    /// without comparing (and the world copies nothing).
    last: Option<Arc<ClStat>>,
}

impl StatusStore for SimStore {
    fn write_status(&mut self, _seq: u64, status: &ClStat) -> Result<(), String> {
        let data = match &self.last {
            Some(last) if **last == *status => last.clone(),
            _ => Arc::new(status.clone()),
        };
        self.last = Some(data.clone());
        self.written = Some(data);
        Ok(())
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
    ) -> Result<u32, String> {
        match self.failures.get(&id) {
            Some(reason) => Err(reason.clone()),
            None => Ok(pid_of(id)),
        }
    }

    fn signal(&mut self, _id: ProcId, _signal: Signal) -> Result<bool, String> {
        Ok(true)
    }
}

/// Replay backend: status writes go nowhere.
#[derive(Debug, Default)]
pub struct NullStore;

impl StatusStore for NullStore {
    fn write_status(&mut self, _seq: u64, _status: &ClStat) -> Result<(), String> {
        Ok(())
    }
}
