//! The node driver: turns the init machine's actions into backend calls.
//!
//! It is generic over small backend traits and does no I/O itself, so the
//! real daemon and the simulator share it and the simulator tests this glue
//! too, not only the machine.

use crate::init::{Action, Init, Input, Reply};
use crate::process::{ExitStatus, ProcId, Signal};
use crate::status::ClStat;
use crate::time::Millis;

/// Starts and signals child processes.
pub trait Processes {
    /// Start the child described by an [`Action::Spawn`] and return its pid
    /// (any number that names it in logs); an `Err` carries the reason it
    /// could not be started (the machine then sees [`ExitStatus::SpawnFailed`]).
    fn spawn(
        &mut self,
        id: ProcId,
        group: &str,
        tag: &str,
        level: &str,
        command: &str,
    ) -> Result<u32, String>;

    /// Signal a live child's process group. Must do nothing for an id whose
    /// process was already reaped; returns whether a signal went out.
    fn signal(&mut self, id: ProcId, signal: Signal) -> Result<bool, String>;
}

/// Publishes the status file.
pub trait StatusStore {
    fn write_status(&mut self, seq: u64, status: &ClStat) -> Result<(), String>;
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
    Signalled {
        id: ProcId,
        signal: Signal,
        sent: bool,
    },
    SignalFailed {
        id: ProcId,
        signal: Signal,
        reason: String,
    },
    StatusWriteFailed {
        seq: u64,
        reason: String,
    },
}

/// The init machine plus the backends that carry out its actions.
pub struct NodeDriver<P, S> {
    pub init: Init,
    pub processes: P,
    pub store: S,
}

impl<P: Processes, S: StatusStore> NodeDriver<P, S> {
    pub fn new(init: Init, processes: P, store: S) -> Self {
        NodeDriver { init, processes, store }
    }

    /// Carry out what the machine has queued (e.g. right after creating it).
    pub fn flush(&mut self, now: Millis) -> Vec<Executed> {
        let mut log = Vec::new();
        self.execute(now, &mut log);
        log
    }

    /// Feed one input and carry out every action it causes, including the
    /// follow-ups of spawn failures. Returns the reply and what was done.
    pub fn step(&mut self, now: Millis, input: Input) -> (Reply, Vec<Executed>) {
        let reply = self.init.handle(now, input);
        let mut log = Vec::new();
        self.execute(now, &mut log);
        (reply, log)
    }

    fn execute(&mut self, now: Millis, log: &mut Vec<Executed>) {
        loop {
            let actions = self.init.drain_actions();
            if actions.is_empty() {
                return;
            }
            let mut failed = Vec::new();
            for action in actions {
                log.push(Executed::Action(action.clone()));
                match action {
                    Action::Spawn { id, group, tag, level, command } => {
                        match self.processes.spawn(id, &group, &tag, &level, &command) {
                            Ok(pid) => log.push(Executed::Spawned { id, pid }),
                            Err(reason) => {
                                log.push(Executed::SpawnFailed { id, tag, reason });
                                failed.push(id);
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
            // A child that never started has ended, as far as the machine
            // is concerned; its follow-up actions run in the next round.
            for id in failed {
                let status = ExitStatus::SpawnFailed;
                self.init.handle(now, Input::Exited { id, status, lingering: false });
            }
        }
    }
}
