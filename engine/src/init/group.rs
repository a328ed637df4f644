//! One resource group: its level changes, start order, verdict and halt
//! (spec §2, §3, §4.2), with the original's bugs fixed: `off` entries are
//! skipped, changed or removed entries are stopped gracefully, a halt stops
//! the processes of PASSED and FAILED groups too, and a level change that
//! stops nothing goes straight on (no one-second poll).
//!
//! Respawn rule (issue 10, item 1): a `respawn` entry at its group's level
//! runs again promptly whatever else is true.
//!
//! * When its own process ends while members of its process group linger
//!   (a shell killed while its `sleep` lives on), those leftovers are moved
//!   aside and stopped with the usual INT → TERM → KILL escalation, and the
//!   new instance starts at once, next to them (the original waited for the
//!   leftovers to exit by themselves, which may be never).
//! * When its cltab line changed since it started (a re-read), it restarts
//!   with the new definition. Only a line that was removed, moved to another
//!   group, no longer covers the level, or no longer says `respawn` ends the
//!   respawning; that is logged ([`Notice::NotRespawned`]) and the entry is
//!   forgotten, so a later tell of the level starts the new line.

use super::entry::{Outcome, Proc};
use super::escalation::StopState;
use super::{Action, Ctx, Notice, Timer};
use crate::cltab::{Entry, Mode};
use crate::process::{ExitStatus, ProcId, Shortage, Signal};
use crate::status::GroupState;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub state: GroupState,
    /// The level shown in clstat: the old one while stopping, the new one
    /// from the moment starting begins. `None` until the group first starts
    /// (a group never told anything has no clstat line).
    pub level: Option<String>,
    /// The level most recently told.
    pub target: Option<String>,
    /// The group vanished from the cltab: halt it, then forget it.
    pub removing: bool,
    /// Entries that have run in the current level (or are being stopped),
    /// by tag.
    pub procs: BTreeMap<String, Proc>,
    /// Leftovers of respawn instances whose own process ended while their
    /// process group lingered: being stopped (INT → TERM → KILL) while the
    /// entry's new instance runs. Keyed by the old instance's id.
    pub leftovers: BTreeMap<ProcId, Leftover>,
}

/// The lingering process group of a dead respawn instance, being stopped.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub stop: StopState,
}

enum Walk {
    Blocked,
    AllStarted,
}

impl Group {
    pub fn new(name: &str) -> Group {
        Group {
            name: name.to_string(),
            state: GroupState::Configured,
            level: None,
            target: None,
            removing: false,
            procs: BTreeMap::new(),
            leftovers: BTreeMap::new(),
        }
    }

    /// Any process of this group still alive (running or being stopped).
    pub fn has_live(&self) -> bool {
        !self.leftovers.is_empty() || self.procs.values().any(|p| p.live.is_some())
    }

    /// Something of this group is being stopped and not yet gone.
    fn stopping_anything(&self) -> bool {
        !self.leftovers.is_empty() || self.procs.values().any(Proc::is_stopping)
    }

    fn set_state(&mut self, ctx: &mut Ctx<'_>, state: GroupState) {
        if self.state != state {
            self.state = state;
            *ctx.dirty = true;
            if let Some(level) = &self.level {
                ctx.out.push(Action::Notice(Notice::GroupState {
                    group: self.name.clone(),
                    level: level.clone(),
                    state: self.state.clone(),
                }));
            }
        }
    }

    /// `tell group level` (spec §3).
    pub fn tell(&mut self, ctx: &mut Ctx<'_>, level: &str) {
        self.target = Some(level.to_string());
        if self.state == GroupState::Configured && !self.has_live() {
            self.procs.clear();
            self.begin_level(ctx);
        } else {
            // This group's current lines by tag: one pass over the table, not
            // one per running entry.
            let name = self.name.clone();
            let current: HashMap<&str, &Arc<Entry>> =
                ctx.table.group_entries(&name).map(|e| (e.tag.as_str(), e)).collect();
            let tags: Vec<String> = self.procs.keys().cloned().collect();
            for tag in tags {
                let line = current.get(tag.as_str()).copied();
                let keep = match (line, self.procs.get_mut(&tag)) {
                    (Some(e), Some(p))
                        if !p.is_stopping()
                            && e.same_process(&p.entry)
                            && e.mode != Mode::Off
                            && e.levels.contains(level) =>
                    {
                        // Same process: pick up edits that do not restart it
                        // (its levels, its line number).
                        p.entry = Arc::clone(e);
                        true
                    }
                    _ => false,
                };
                if !keep {
                    self.stop_proc(ctx, &tag);
                }
            }
            self.set_state(ctx, GroupState::Stopping);
        }
        self.advance(ctx);
    }

    /// Stop everything and return to CONFIGURED (daemon shutdown, group
    /// removed from the cltab). Unlike the original, PASSED and FAILED groups
    /// stop their processes too.
    pub fn halt(&mut self, ctx: &mut Ctx<'_>) {
        let tags: Vec<String> = self.procs.keys().cloned().collect();
        for tag in tags {
            self.stop_proc(ctx, &tag);
        }
        if self.level.is_some() || self.has_live() {
            self.set_state(ctx, GroupState::Halting);
        }
        self.advance(ctx);
    }

    /// The process-group leader of a child of this group ended; with
    /// `lingering`, members of its group still run.
    pub fn on_exit(
        &mut self,
        ctx: &mut Ctx<'_>,
        tag: &str,
        id: ProcId,
        status: ExitStatus,
        lingering: bool,
    ) {
        let Some(p) = self.procs.get_mut(tag) else { return };
        if p.live != Some(id) {
            return;
        }
        // This instance did start: the next shortage waits the shortest pause.
        p.starved_tries = 0;
        if lingering && p.mode() == Mode::Respawn && !p.is_stopping() {
            // Stop what the dead instance left behind, and start the next
            // one now: a respawn never waits for leftovers (module doc).
            p.live = None;
            p.leader_exited = false;
            let stop = StopState { since: ctx.now, sent: Signal::Int };
            ctx.out.push(Action::Signal { id, signal: Signal::Int });
            let (_, at) = ctx.cfg.escalation.next(&stop, ctx.now);
            ctx.timers.schedule(at, Timer::Escalate(id));
            self.leftovers.insert(id, Leftover { stop });
            self.respawn(ctx, tag);
            self.advance(ctx);
            return;
        }
        if !p.leader_exited {
            p.leader_exited = true;
            p.last_exit = Some(status);
            if !p.is_stopping() && p.mode() == Mode::Once && p.awaits_ready() {
                p.outcome = Outcome::Failed;
                p.failure = Some(format!("exited ({status}) before it was ready"));
            }
            if !p.is_stopping() {
                match p.mode() {
                    Mode::Wait => p.outcome = Outcome::Done,
                    Mode::Test => {
                        p.outcome =
                            if status.success() { Outcome::Passed } else { Outcome::Failed };
                    }
                    Mode::Respawn | Mode::Once | Mode::Off => {}
                }
            }
        }
        if lingering {
            self.advance(ctx);
        } else {
            self.on_group_gone(ctx, tag, id);
        }
    }

    /// Nothing of a child's process group is left.
    pub fn on_group_gone(&mut self, ctx: &mut Ctx<'_>, tag: &str, id: ProcId) {
        if self.leftovers.remove(&id).is_some() {
            self.advance(ctx);
            return;
        }
        let Some(p) = self.procs.get_mut(tag) else { return };
        if p.live != Some(id) {
            return;
        }
        p.live = None;
        p.leader_exited = false;
        if p.is_stopping() && p.stop_keeps {
            // Stopped for failing: it stays in its level, FAILED.
            p.stop = None;
            p.stop_keeps = false;
        } else if p.is_stopping() {
            self.procs.remove(tag);
        } else if p.mode() == Mode::Respawn && p.failure.is_none() {
            self.respawn(ctx, tag);
        }
        self.advance(ctx);
    }

    /// Instance `id` of `tag` could not be spawned for lack of a resource:
    /// retry it after a short pause, not counted as a crash (see
    /// [`super::starve`]). One that was being stopped, or a daemon that is
    /// shutting down, wants no retry: it ended as a failed spawn.
    pub fn on_spawn_starved(
        &mut self,
        ctx: &mut Ctx<'_>,
        tag: &str,
        id: ProcId,
        shortage: Shortage,
    ) {
        let Some(p) = self.procs.get_mut(tag) else { return };
        if p.live != Some(id) {
            return;
        }
        if p.is_stopping() || ctx.shutting_down {
            p.last_exit = Some(ExitStatus::SpawnFailed);
            self.on_group_gone(ctx, tag, id);
            return;
        }
        p.live = None;
        p.leader_exited = false;
        p.started_at = None;
        p.starved = Some(shortage);
        let delay = super::starve::retry_delay(p.starved_tries);
        p.starved_tries = p.starved_tries.saturating_add(1);
        let next = ctx.alloc_id(&p.entry);
        p.respawn_pending = Some(next);
        ctx.timers.schedule(ctx.now + delay, Timer::Respawn(next));
        self.advance(ctx);
    }

    /// A respawn pause is over.
    pub fn on_respawn_due(&mut self, ctx: &mut Ctx<'_>, tag: &str, id: ProcId) {
        let level = self.level.clone().unwrap_or_default();
        let Some(p) = self.procs.get_mut(tag) else { return };
        if p.respawn_pending != Some(id) {
            return;
        }
        p.respawn_pending = None;
        // The line may have changed during the pause: start the current one.
        if let Some(e) = ctx.table.entry(tag).filter(|e| {
            e.group == self.name && e.mode == Mode::Respawn && e.levels.contains(&level)
        }) {
            p.entry = Arc::clone(e);
        }
        p.live = Some(id);
        p.started_at = Some(ctx.now);
        arm_ready(ctx, p, id);
        ctx.out.push(spawn_action(id, &p.entry, &level));
    }

    /// Instance `id` of `tag` signalled readiness.
    pub fn on_ready(&mut self, ctx: &mut Ctx<'_>, tag: &str, id: ProcId) {
        let Some(p) = self.procs.get_mut(tag) else { return };
        if p.live != Some(id) || !p.awaits_ready() || p.is_stopping() {
            return;
        }
        p.ready = true;
        if p.outcome == Outcome::Pending {
            p.outcome = Outcome::Done;
        }
        *ctx.dirty = true;
        self.advance(ctx);
    }

    /// Instance `id` of `tag` did not signal readiness in time: stop it,
    /// and the entry FAILED (systemd fails a unit whose start times out).
    pub fn on_ready_timeout(&mut self, ctx: &mut Ctx<'_>, tag: &str, id: ProcId) {
        let Some(p) = self.procs.get_mut(tag) else { return };
        if p.live != Some(id) || !p.awaits_ready() || p.is_stopping() {
            return;
        }
        let timeout = p.entry.options.ready_timeout();
        p.outcome = Outcome::Failed;
        p.failure = Some(format!(
            "not ready within {timeout} (ready={})",
            p.entry.options.ready.map(|r| r.to_string()).unwrap_or_default()
        ));
        ctx.out.push(Action::Notice(Notice::NotReady {
            group: self.name.clone(),
            tag: tag.to_string(),
            timeout,
        }));
        let stop = StopState { since: ctx.now, sent: Signal::Int };
        ctx.out.push(Action::Signal { id, signal: Signal::Int });
        let (_, at) = ctx.cfg.escalation.next(&stop, ctx.now);
        ctx.timers.schedule(at, Timer::Escalate(id));
        p.stop = Some(stop);
        p.stop_keeps = true;
        *ctx.dirty = true;
        // A group already settled learns of the failure now.
        if matches!(self.state, GroupState::Done | GroupState::Passed) {
            self.set_state(ctx, GroupState::Failed);
        }
        self.advance(ctx);
    }

    /// The next signal of a stop sequence is due.
    pub fn on_escalate(&mut self, ctx: &mut Ctx<'_>, tag: &str, id: ProcId) {
        if let Some(left) = self.leftovers.get_mut(&id) {
            let (signal, _) = ctx.cfg.escalation.next(&left.stop, ctx.now);
            left.stop.sent = signal;
            ctx.out.push(Action::Signal { id, signal });
            let (_, at) = ctx.cfg.escalation.next(&left.stop, ctx.now);
            ctx.timers.schedule(at, Timer::Escalate(id));
            return;
        }
        let Some(p) = self.procs.get_mut(tag) else { return };
        let (Some(stop), true) = (p.stop.as_mut(), p.live == Some(id)) else { return };
        let (signal, _) = ctx.cfg.escalation.next(stop, ctx.now);
        stop.sent = signal;
        ctx.out.push(Action::Signal { id, signal });
        let (_, at) = ctx.cfg.escalation.next(stop, ctx.now);
        ctx.timers.schedule(at, Timer::Escalate(id));
    }

    fn respawn(&mut self, ctx: &mut Ctx<'_>, tag: &str) {
        let level = self.level.clone().unwrap_or_default();
        let current = ctx.table.entry(tag).filter(|e| e.group == self.name);
        let Some(p) = self.procs.get_mut(tag) else { return };
        let reason = match current {
            _ if ctx.shutting_down => Some("the daemon is shutting down".to_string()),
            None => Some("its cltab line was removed".to_string()),
            Some(e) if e.mode != Mode::Respawn => {
                Some(format!("its cltab line now says {}; a tell of the level starts it", e.mode))
            }
            Some(e) if !e.levels.contains(&level) => {
                Some(format!("its cltab line no longer covers level {level}"))
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            ctx.out.push(Action::Notice(Notice::NotRespawned {
                group: self.name.clone(),
                tag: tag.to_string(),
                reason,
            }));
            if !ctx.shutting_down {
                // Forget it: the group no longer runs this line here.
                self.procs.remove(tag);
            }
            return;
        }
        if let Some(e) = current.filter(|e| ***e != *p.entry) {
            if !e.same_process(&p.entry) {
                ctx.out.push(Action::Notice(Notice::Redefined {
                    group: self.name.clone(),
                    tag: tag.to_string(),
                }));
            }
            p.entry = Arc::clone(e);
        }
        let delay = p.throttle.respawn(ctx.now, &ctx.cfg.throttle);
        p.starved = None;
        let id = ctx.alloc_id(&p.entry);
        p.restarts += 1;
        if delay == crate::time::Millis::ZERO {
            p.live = Some(id);
            p.started_at = Some(ctx.now);
            arm_ready(ctx, p, id);
            ctx.out.push(spawn_action(id, &p.entry, self.level.as_deref().unwrap_or("")));
        } else {
            p.respawn_pending = Some(id);
            ctx.timers.schedule(ctx.now + delay, Timer::Respawn(id));
            ctx.out.push(Action::Notice(Notice::RespawnThrottled {
                group: self.name.clone(),
                tag: tag.to_string(),
                pause: delay,
            }));
        }
    }

    /// Stop one entry: signal a live instance (it is forgotten once reaped),
    /// forget one that is not running.
    fn stop_proc(&mut self, ctx: &mut Ctx<'_>, tag: &str) {
        let Some(p) = self.procs.get_mut(tag) else { return };
        if let Some(pending) = p.respawn_pending.take() {
            ctx.index.remove(&pending);
        }
        match p.live {
            Some(id) if p.stop.is_none() => {
                let stop = StopState { since: ctx.now, sent: Signal::Int };
                ctx.out.push(Action::Signal { id, signal: Signal::Int });
                let (_, at) = ctx.cfg.escalation.next(&stop, ctx.now);
                ctx.timers.schedule(at, Timer::Escalate(id));
                p.stop = Some(stop);
            }
            // Already being stopped; now for good, even if it was stopped
            // for failing (it is no longer wanted in its level).
            Some(_) => p.stop_keeps = false,
            None => {
                self.procs.remove(tag);
            }
        }
    }

    fn begin_level(&mut self, ctx: &mut Ctx<'_>) {
        self.level = self.target.clone();
        *ctx.dirty = true;
        self.set_state(ctx, GroupState::Starting);
    }

    /// Run the group's state machine until it has to wait for the world.
    fn advance(&mut self, ctx: &mut Ctx<'_>) {
        loop {
            match self.state {
                GroupState::Stopping => {
                    if self.stopping_anything() {
                        return;
                    }
                    // Everything not wanted is gone; what is left is kept.
                    self.set_state(ctx, GroupState::Dumping);
                    self.begin_level(ctx);
                }
                GroupState::Halting => {
                    if self.has_live() {
                        return;
                    }
                    for p in std::mem::take(&mut self.procs).into_values() {
                        if let Some(pending) = p.respawn_pending {
                            ctx.index.remove(&pending);
                        }
                    }
                    self.set_state(ctx, GroupState::Configured);
                    return;
                }
                GroupState::Starting => match self.start_next(ctx) {
                    Walk::Blocked => return,
                    Walk::AllStarted => self.set_state(ctx, GroupState::Checking),
                },
                GroupState::Checking => {
                    let verdict = self.verdict(ctx);
                    self.set_state(ctx, verdict);
                    return;
                }
                _ => return,
            }
        }
    }

    /// Start the entries of the current level in file order, up to the
    /// first one that must finish before the rest may start.
    fn start_next(&mut self, ctx: &mut Ctx<'_>) -> Walk {
        let Some(level) = self.level.clone() else { return Walk::AllStarted };
        for e in ctx.table.group_entries(&self.name) {
            if e.mode == Mode::Off || !e.levels.contains(&level) {
                continue;
            }
            match self.procs.get(&e.tag) {
                Some(p) if p.is_stopping() || p.blocks() => return Walk::Blocked,
                Some(_) => continue,
                None => {
                    let id = ctx.alloc_id(e);
                    ctx.out.push(spawn_action(id, e, &level));
                    let mut p = Proc::new(Arc::clone(e), id);
                    p.started_at = Some(ctx.now);
                    arm_ready(ctx, &mut p, id);
                    let blocks = p.blocks();
                    self.procs.insert(e.tag.clone(), p);
                    if blocks {
                        return Walk::Blocked;
                    }
                }
            }
        }
        Walk::AllStarted
    }

    /// The group verdict of spec §2.2, over the entries of the current level.
    fn verdict(&self, ctx: &Ctx<'_>) -> GroupState {
        let level = self.level.as_deref().unwrap_or("");
        let entries: Vec<&Entry> = ctx
            .table
            .group_entries(&self.name)
            .filter(|e| e.mode != Mode::Off && e.levels.contains(level))
            .map(|e| &**e)
            .collect();
        let outcome = |e: &Entry| self.procs.get(&e.tag).map(|p| p.outcome);
        if entries.iter().any(|e| outcome(e) == Some(Outcome::Failed)) {
            GroupState::Failed
        } else if !entries.is_empty()
            && entries.iter().all(|e| e.mode == Mode::Test && outcome(e) == Some(Outcome::Passed))
        {
            GroupState::Passed
        } else {
            GroupState::Done
        }
    }
}

/// A new instance `id` of `p` starts: if its entry declares readiness, it
/// is not ready yet and its time-out starts now.
fn arm_ready(ctx: &mut Ctx<'_>, p: &mut Proc, id: ProcId) {
    p.ready = false;
    if p.entry.options.ready.is_some() {
        let at = ctx.now + p.entry.options.ready_timeout();
        ctx.timers.schedule(at, Timer::Ready(id));
    }
}

fn spawn_action(id: ProcId, e: &Entry, level: &str) -> Action {
    Action::Spawn {
        id,
        group: e.group.clone(),
        tag: e.tag.clone(),
        level: level.to_string(),
        command: e.command.clone(),
    }
}
