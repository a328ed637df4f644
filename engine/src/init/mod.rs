//! The node init machine: the pure core of the `clinit` daemon.
//!
//! Inputs ([`Input`]) go in with the current time; actions ([`Action`]) come
//! out through [`Init::drain_actions`]; [`Init::poll_timeout`] says when the
//! machine next wants a [`Input::Tick`]. The driver (the real daemon, or the
//! simulator) spawns and signals processes, writes the status file, and
//! reports child exits back. Nothing here touches the outside world, so a
//! recorded input sequence replays to the same actions.
//!
//! What lives where: `group` has the per-group level-change logic,
//! `entry` the per-entry runtime record, `throttle` the respawn rate
//! limit, [`escalation`] the INT → TERM → KILL stop sequence.
//!
//! Readiness (issue 11): an entry whose options declare `ready=` (see
//! [`crate::options`]) is *starting* from its spawn until [`Input::Ready`]
//! for that instance; until then it holds back the entries after it and
//! the group's verdict, as a `wait` entry does. A [`Timer::Ready`] at
//! spawn + `ready_timeout` stops an instance that never got ready and
//! fails the entry with a reason ([`report::EntryReport::failure`]). A
//! `once` entry that exits before it is ready fails; a `respawn` entry is
//! respawned as usual, and stays starting until an instance is ready.

pub(crate) mod entry;
pub mod escalation;
pub(crate) mod group;
pub mod report;
pub mod starve;
pub(crate) mod throttle;

use crate::cltab::{Cltab, Entry};
use crate::process::{ExitStatus, ProcId, Shortage, Signal};
use crate::status::{ClStat, GroupState, GroupStatus};
use crate::time::{earliest, Millis, TimerTable};
use escalation::Escalation;
use group::Group;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use throttle::ThrottleParams;

/// Default period of the clstat heartbeat rewrite under a plain `clinit`.
pub const HEARTBEAT: Millis = Millis(30_000);

/// Tunables of the init machine. The defaults are the original's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitConfig {
    pub escalation: Escalation,
    pub throttle: ThrottleParams,
    /// Rewrite clstat this often even when nothing changed, so readers can
    /// tell a live node from a dead one by the file's age. `None` disables it.
    pub heartbeat: Option<Millis>,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            escalation: Escalation::default(),
            throttle: ThrottleParams::default(),
            heartbeat: Some(HEARTBEAT),
        }
    }
}

/// Everything that can happen to the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// Move `group` to `level` (the client's `clinit group level`).
    Tell { group: String, level: String },
    /// A new cltab was read and parsed. Groups that vanished are halted
    /// gracefully and then forgotten; changed entries of other groups are
    /// replaced at their group's next level change.
    Reload { table: Cltab },
    /// A child's own process (its process-group leader) ended, or could not
    /// be spawned (`ExitStatus::SpawnFailed`). With `lingering`, other
    /// members of its process group still run (a command's background
    /// children): the instance counts as alive, for stops and respawns,
    /// until [`Input::GroupGone`].
    Exited {
        id: ProcId,
        status: ExitStatus,
        #[serde(default)]
        lingering: bool,
    },
    /// The last member of a lingering process group is gone.
    GroupGone { id: ProcId },
    /// Instance `id` could not be spawned for lack of a resource (out of
    /// file descriptors, processes or memory): it never ran. The machine
    /// retries it after a short pause without counting a crash (see
    /// [`starve`]); any other spawn failure is an [`Input::Exited`] with
    /// [`ExitStatus::SpawnFailed`].
    SpawnStarved { id: ProcId, shortage: Shortage },
    /// Instance `id` signalled readiness (`READY=1` on its notify socket,
    /// or a newline on its readiness fd; see [`crate::options`]). Ignored
    /// for an instance that is not live or whose entry declares none.
    Ready { id: ProcId },
    /// Time passed: fire whatever timers are due.
    Tick,
    /// Halt every group; [`Action::Exit`] follows once the last child is gone.
    Shutdown,
}

/// Things worth a log line: what happened and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Notice {
    GroupState {
        group: String,
        level: String,
        state: GroupState,
    },
    RespawnThrottled {
        group: String,
        tag: String,
        pause: Millis,
    },
    NotRespawned {
        group: String,
        tag: String,
        reason: String,
    },
    /// A respawn entry whose cltab line changed restarts with the new line.
    Redefined {
        group: String,
        tag: String,
    },
    GroupRemoved {
        group: String,
    },
    /// An entry did not signal readiness within its time-out: it is
    /// stopped and FAILED.
    NotReady {
        group: String,
        tag: String,
        timeout: Millis,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Run `/bin/sh -c command` in a new process group, with `CLINIT_GROUP`,
    /// `CLINIT_TAG` and `CLINIT_LEVEL` set; report its end as
    /// [`Input::Exited`] with this id.
    Spawn {
        id: ProcId,
        group: String,
        tag: String,
        level: String,
        command: String,
    },
    /// Signal the process group of a live child. The engine never asks to
    /// signal an instance it already saw exit.
    Signal {
        id: ProcId,
        signal: Signal,
    },
    /// Replace the status file with this content (atomically). `seq` grows
    /// with every write, so a driver can tell which write is newest.
    WriteStatus {
        seq: u64,
        status: ClStat,
    },
    Notice(Notice),
    /// Shutdown is complete: every group halted, every child reaped.
    Exit,
}

/// The answer to a request-like input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Not a request (exits, ticks, reloads).
    None,
    Started,
    NoSuchGroup(String),
    Invalid(String),
    ShuttingDown,
    Halting,
}

impl Reply {
    /// The original's reply texts, where it had one.
    pub fn message(&self) -> String {
        match self {
            Reply::None => String::new(),
            Reply::Started => "level transition started".into(),
            Reply::NoSuchGroup(g) => format!("no such group: {g}"),
            Reply::Invalid(why) => format!("invalid request: {why}"),
            Reply::ShuttingDown => "the daemon is shutting down".into(),
            Reply::Halting => "all groups halting".into(),
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::None | Reply::Started | Reply::Halting)
    }
}

/// Timer keys. Validated when they fire (see [`TimerTable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    Escalate(ProcId),
    Respawn(ProcId),
    /// The readiness time-out of an instance (see [`crate::options`]).
    Ready(ProcId),
}

/// What a group needs from the machine while it handles one input.
pub struct Ctx<'a> {
    pub now: Millis,
    pub table: &'a Cltab,
    pub cfg: &'a InitConfig,
    pub shutting_down: bool,
    pub out: &'a mut Vec<Action>,
    pub timers: &'a mut TimerTable<Timer>,
    /// Which group and tag each live or pending instance belongs to: the
    /// cltab line it was started from (shared with the table and the
    /// running entry, not a copy of its names).
    pub index: &'a mut HashMap<ProcId, Arc<Entry>>,
    pub next_id: &'a mut u64,
    pub dirty: &'a mut bool,
}

impl Ctx<'_> {
    /// A new instance id for the entry of `line` (its group and tag).
    pub fn alloc_id(&mut self, line: &Arc<Entry>) -> ProcId {
        *self.next_id += 1;
        let id = ProcId(*self.next_id);
        self.index.insert(id, Arc::clone(line));
        id
    }
}

/// The node init machine.
#[derive(Debug, Clone)]
pub struct Init {
    cfg: InitConfig,
    table: Cltab,
    groups: BTreeMap<String, Group>,
    timers: TimerTable<Timer>,
    index: HashMap<ProcId, Arc<Entry>>,
    next_id: u64,
    now: Millis,
    out: Vec<Action>,
    dirty: bool,
    status_seq: u64,
    heartbeat_at: Option<Millis>,
    shutting_down: bool,
    exited: bool,
}

impl Init {
    /// A machine with `table` loaded. Its first actions write an empty
    /// status file, so readers see the node from the start.
    pub fn new(cfg: InitConfig, table: Cltab, now: Millis) -> Init {
        let mut init = Init {
            cfg,
            table,
            groups: BTreeMap::new(),
            timers: TimerTable::new(),
            index: HashMap::new(),
            next_id: 0,
            now,
            out: Vec::new(),
            dirty: true,
            status_seq: 0,
            heartbeat_at: None,
            shutting_down: false,
            exited: false,
        };
        init.finish_step();
        init
    }

    /// Feed one input at time `now` (earlier times than the last input are
    /// clamped: the machine's clock never runs backwards).
    pub fn handle(&mut self, now: Millis, input: Input) -> Reply {
        self.now = self.now.max(now);
        let reply = match input {
            Input::Tell { group, level } => self.tell(&group, &level),
            Input::Reload { table } => {
                self.reload(table);
                Reply::None
            }
            Input::Exited { id, status, lingering } => {
                let owner =
                    if lingering { self.index.get(&id).cloned() } else { self.index.remove(&id) };
                if let Some(e) = owner {
                    self.with_group(&e.group, |g, ctx| {
                        g.on_exit(ctx, &e.tag, id, status, lingering)
                    });
                }
                Reply::None
            }
            Input::GroupGone { id } => {
                if let Some(e) = self.index.remove(&id) {
                    self.with_group(&e.group, |g, ctx| g.on_group_gone(ctx, &e.tag, id));
                }
                Reply::None
            }
            Input::SpawnStarved { id, shortage } => {
                if let Some(e) = self.index.remove(&id) {
                    self.with_group(&e.group, |g, ctx| {
                        g.on_spawn_starved(ctx, &e.tag, id, shortage)
                    });
                }
                Reply::None
            }
            Input::Ready { id } => {
                if let Some(e) = self.index.get(&id).cloned() {
                    self.with_group(&e.group, |g, ctx| g.on_ready(ctx, &e.tag, id));
                }
                Reply::None
            }
            Input::Tick => {
                self.tick();
                Reply::None
            }
            Input::Shutdown => {
                if !self.shutting_down {
                    self.shutting_down = true;
                    let names: Vec<String> = self.groups.keys().cloned().collect();
                    for name in names {
                        self.with_group(&name, |g, ctx| g.halt(ctx));
                    }
                }
                Reply::Halting
            }
        };
        self.finish_step();
        reply
    }

    /// Take the actions produced so far.
    pub fn drain_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// When the machine next wants an [`Input::Tick`].
    pub fn poll_timeout(&self) -> Option<Millis> {
        earliest(self.timers.next_deadline(), self.heartbeat_at)
    }

    /// The current status, as it would be written to clstat.
    pub fn status(&self) -> ClStat {
        let mut stat = ClStat::default();
        for g in self.groups.values() {
            if let Some(level) = &g.level {
                stat.groups.insert(
                    g.name.clone(),
                    GroupStatus { level: level.clone(), state: g.state.clone() },
                );
            }
        }
        stat
    }

    pub fn table(&self) -> &Cltab {
        &self.table
    }

    /// `(group, tag)` of every respawn entry of a running level that is
    /// down right now: waiting out its throttle pause (or the retry of a
    /// spawn that failed for lack of a resource, see [`starve`]). The group's state
    /// stays DONE meanwhile (the pause is deliberate), so status readers
    /// learn about it here.
    pub fn respawns_waiting(&self) -> Vec<(String, String)> {
        self.groups
            .values()
            .flat_map(|g| g.procs.iter().map(move |(tag, p)| (g, tag, p)))
            .filter(|(_, _, p)| p.respawn_pending.is_some())
            .map(|(g, tag, _)| (g.name.clone(), tag.clone()))
            .collect()
    }

    /// Number of live child instances.
    pub fn live_processes(&self) -> usize {
        self.groups.values().flat_map(|g| g.procs.values()).filter(|p| p.live.is_some()).count()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The machine has emitted [`Action::Exit`].
    pub fn has_exited(&self) -> bool {
        self.exited
    }

    fn tell(&mut self, group: &str, level: &str) -> Reply {
        if self.shutting_down {
            return Reply::ShuttingDown;
        }
        for (what, value) in [("group", group), ("level", level)] {
            if value.is_empty() {
                return Reply::Invalid(format!("empty {what}"));
            }
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Reply::Invalid(format!("{what} {value:?} contains whitespace"));
            }
        }
        if !self.table.has_group(group) {
            return Reply::NoSuchGroup(group.to_string());
        }
        self.groups.entry(group.to_string()).or_insert_with(|| Group::new(group));
        self.with_group(group, |g, ctx| g.tell(ctx, level));
        Reply::Started
    }

    fn reload(&mut self, table: Cltab) {
        self.table = table;
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let present = self.table.has_group(&name);
            let Some(g) = self.groups.get_mut(&name) else { continue };
            if present {
                g.removing = false;
            } else if !g.removing {
                g.removing = true;
                self.with_group(&name, |g, ctx| g.halt(ctx));
            }
        }
    }

    fn tick(&mut self) {
        if self.heartbeat_at.is_some_and(|at| at <= self.now) {
            self.dirty = true;
        }
        for timer in self.timers.pop_due(self.now) {
            let (Timer::Escalate(id) | Timer::Respawn(id) | Timer::Ready(id)) = timer;
            let Some(e) = self.index.get(&id).cloned() else { continue };
            let tag = e.tag.as_str();
            self.with_group(&e.group, |g, ctx| match timer {
                Timer::Escalate(id) => g.on_escalate(ctx, tag, id),
                Timer::Respawn(id) => g.on_respawn_due(ctx, tag, id),
                Timer::Ready(id) => g.on_ready_timeout(ctx, tag, id),
            });
        }
    }

    /// Run `f` on a group with a context borrowed from the machine.
    fn with_group(&mut self, name: &str, f: impl FnOnce(&mut Group, &mut Ctx<'_>)) {
        let Some(group) = self.groups.get_mut(name) else { return };
        let mut ctx = Ctx {
            now: self.now,
            table: &self.table,
            cfg: &self.cfg,
            shutting_down: self.shutting_down,
            out: &mut self.out,
            timers: &mut self.timers,
            index: &mut self.index,
            next_id: &mut self.next_id,
            dirty: &mut self.dirty,
        };
        f(group, &mut ctx);
    }

    /// After every input: forget removed groups that finished halting,
    /// publish the status if it changed (or the heartbeat is due), and
    /// announce the end of a shutdown.
    fn finish_step(&mut self) {
        let out = &mut self.out;
        let dirty = &mut self.dirty;
        self.groups.retain(|name, g| {
            let gone = g.removing && g.state == GroupState::Configured && !g.has_live();
            if gone {
                out.push(Action::Notice(Notice::GroupRemoved { group: name.clone() }));
                *dirty = true;
            }
            !gone
        });
        if self.exited {
            return;
        }
        if self.dirty {
            self.dirty = false;
            self.status_seq += 1;
            self.out.push(Action::WriteStatus { seq: self.status_seq, status: self.status() });
            self.heartbeat_at = self.cfg.heartbeat.map(|hb| self.now + hb);
        }
        if self.shutting_down && self.groups.values().all(|g| !g.has_live()) {
            self.exited = true;
            self.heartbeat_at = None;
            self.out.push(Action::Exit);
        }
    }
}

#[cfg(test)]
mod tests;
