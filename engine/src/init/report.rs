//! Per-entry state for operators: what each entry of each group is doing
//! right now, so a group shown as `DONE` no longer hides a crash-looping
//! respawn entry paused by the throttle, an entry being stopped, or a
//! `once` job that ended. Read-only: derived from the machine's records,
//! it changes nothing and adds nothing to them.
//!
//! The state words follow supervisord's and s6's status vocabulary
//! (running, starting, exited, backoff/throttled, stopping).

use super::entry::Outcome;
use super::{Init, Timer};
use crate::cltab::Mode;
use crate::process::{ExitStatus, ProcId, Shortage, Signal};
use crate::time::Millis;
use serde::Serialize;

/// What one entry is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EntryState {
    /// In the group's level but not started yet: a `wait` or `test` entry
    /// before it has not finished.
    Queued,
    /// A `wait` or `test` entry whose process runs (the entries after it
    /// wait for it to exit), or an entry with `ready=` that has not
    /// signalled readiness yet.
    Starting,
    /// Started, and its process runs.
    Running,
    /// Its process exited while other members of its process group still
    /// run (`daemon &`); the entry counts as alive until they are gone.
    Lingering,
    /// A `once` or `wait` entry whose process has ended (or a respawn entry
    /// that is not restarted, e.g. its cltab line changed).
    Exited,
    /// A `test` entry that exited 0.
    Passed,
    /// A `test` entry that failed (non-zero exit, killed, or not started).
    Failed,
    /// A respawn entry waiting out the respawn throttle's pause: the next
    /// start is in `in_ms` milliseconds.
    Throttled { in_ms: u64 },
    /// Its spawn failed for lack of a resource (`reason`, e.g. `out of
    /// file descriptors (EMFILE)`); it is retried in `in_ms` milliseconds,
    /// not counted as a crash (see [`super::starve`]).
    Starved {
        in_ms: u64,
        #[serde(serialize_with = "shortage_text")]
        reason: Shortage,
    },
    /// Being stopped for `for_ms` milliseconds; `signal` is the last one
    /// sent (`SIGINT`, `SIGTERM`, `SIGKILL`).
    Stopping {
        for_ms: u64,
        #[serde(serialize_with = "signal_name")]
        signal: Signal,
    },
}

impl EntryState {
    /// Trouble an operator should see next to the group's `DONE`: a paused
    /// respawn, a stop in progress, a respawn entry that is down, a failure.
    pub fn is_trouble(&self, mode: Mode) -> bool {
        match self {
            EntryState::Throttled { .. }
            | EntryState::Starved { .. }
            | EntryState::Stopping { .. }
            | EntryState::Failed => true,
            EntryState::Exited => mode == Mode::Respawn,
            _ => false,
        }
    }
}

/// One entry's line of the per-entry status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryReport {
    pub group: String,
    pub tag: String,
    /// The cltab word: `once`, `wait`, `respawn`, `off`, `test`.
    #[serde(serialize_with = "mode_word")]
    pub mode: Mode,
    #[serde(flatten)]
    pub state: EntryState,
    /// Respawns in quick succession counted by the throttle (past 5, the
    /// next start waits 60 s).
    pub fast_respawns: u32,
    /// How often the entry was respawned since it started in this level.
    pub restarts: u32,
    /// How long the live instance has run, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
    /// How the last instance ended: `exit 3`, `signal 9`, `spawn failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Why the machine failed the entry (a readiness time-out, an exit
    /// before readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The live instance (the backend knows its pid).
    #[serde(skip)]
    pub id: Option<ProcId>,
}

fn mode_word<S: serde::Serializer>(mode: &Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(mode.as_str())
}

fn shortage_text<S: serde::Serializer>(shortage: &Shortage, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(shortage)
}

fn signal_name<S: serde::Serializer>(signal: &Signal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(signal.name())
}

impl Init {
    /// Every entry that has run in its group's level, or is queued in it,
    /// by group then file order. `now` is the caller's clock (the status is
    /// asked for between inputs, so the machine's own last input time may
    /// be behind).
    pub fn entries(&self, now: Millis) -> Vec<EntryReport> {
        let now = now.max(self.now);
        let mut out = Vec::new();
        // The group of each tag's first cltab line (what `Cltab::entry`
        // finds), built once: one `Cltab::entry` (a scan of the table) per
        // instance made this quadratic, and the daemon calls it for every
        // status reply and detail-file render (13 % of the daemon's CPU
        // while it started 1,000 entries went to those comparisons, `perf`).
        let mut first_group: std::collections::BTreeMap<&str, &str> =
            std::collections::BTreeMap::new();
        for e in &self.table.entries {
            first_group.entry(e.tag.as_str()).or_insert(e.group.as_str());
        }
        for g in self.groups.values() {
            let level = g.level.as_deref();
            for e in self.table.group_entries(&g.name) {
                let Some(p) = g.procs.get(&e.tag) else {
                    let queued = level.is_some_and(|l| e.levels.contains(l))
                        && e.mode != Mode::Off
                        && !g.state.is_settled();
                    if queued {
                        out.push(EntryReport {
                            group: g.name.clone(),
                            tag: e.tag.clone(),
                            mode: e.mode,
                            state: EntryState::Queued,
                            fast_respawns: 0,
                            restarts: 0,
                            uptime_ms: None,
                            last_exit: None,
                            failure: None,
                            id: None,
                        });
                    }
                    continue;
                };
                out.push(self.report(&g.name, &e.tag, p, now));
            }
            // Instances whose cltab line is gone, still being stopped.
            for (tag, p) in &g.procs {
                if first_group.get(tag.as_str()).is_none_or(|&group| group != g.name) {
                    out.push(self.report(&g.name, tag, p, now));
                }
            }
        }
        out
    }

    fn report(&self, group: &str, tag: &str, p: &super::entry::Proc, now: Millis) -> EntryReport {
        let state = if let Some(stop) = &p.stop {
            EntryState::Stopping { for_ms: now.saturating_sub(stop.since).0, signal: stop.sent }
        } else if let Some(id) = p.respawn_pending {
            let due = self.timers.deadline_of(&Timer::Respawn(id)).unwrap_or(now);
            let in_ms = due.saturating_sub(now).0;
            match p.starved {
                Some(reason) => EntryState::Starved { in_ms, reason },
                None => EntryState::Throttled { in_ms },
            }
        } else {
            match (p.live, p.leader_exited, p.outcome) {
                (Some(_), true, _) => EntryState::Lingering,
                (Some(_), false, Outcome::Pending) => EntryState::Starting,
                (Some(_), false, _) if p.awaits_ready() => EntryState::Starting,
                (Some(_), false, _) => EntryState::Running,
                (None, _, Outcome::Passed) => EntryState::Passed,
                (None, _, Outcome::Failed) => EntryState::Failed,
                (None, _, _) => EntryState::Exited,
            }
        };
        EntryReport {
            group: group.to_string(),
            tag: tag.to_string(),
            mode: p.mode(),
            state,
            fast_respawns: p.throttle.hits(),
            restarts: p.restarts,
            uptime_ms: p.live.and(p.started_at).map(|t| now.saturating_sub(t).0),
            last_exit: p.last_exit.map(|x| match x {
                ExitStatus::Code(c) => format!("exit {c}"),
                ExitStatus::Signaled(n) => format!("signal {n}"),
                ExitStatus::SpawnFailed => "spawn failed".to_string(),
            }),
            failure: p.failure.clone(),
            id: p.live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cltab::Cltab;
    use crate::init::{Action, InitConfig, Input};

    fn machine(text: &str) -> Init {
        Init::new(InitConfig::default(), Cltab::parse(text, "cltab").expect("cltab"), Millis(0))
    }

    /// The id of the last spawn of `tag`.
    fn spawned(init: &mut Init, tag: &str) -> Option<ProcId> {
        init.drain_actions().into_iter().rev().find_map(|a| match a {
            Action::Spawn { id, tag: t, .. } if t == tag => Some(id),
            _ => None,
        })
    }

    fn states(init: &Init, now: u64) -> Vec<(String, EntryState)> {
        init.entries(Millis(now)).into_iter().map(|r| (r.tag, r.state)).collect()
    }

    #[test]
    fn a_wait_entry_holds_the_next_one_queued() {
        let mut init = machine("g:w:1:wait:sleep 1\ng:r:1:respawn:srv\ng:o:2:once:x\n");
        init.handle(Millis(0), Input::Tell { group: "g".into(), level: "1".into() });
        let w = spawned(&mut init, "w").expect("w started");
        assert_eq!(
            states(&init, 10),
            vec![("w".into(), EntryState::Starting), ("r".into(), EntryState::Queued)]
        );
        init.handle(
            Millis(20),
            Input::Exited { id: w, status: ExitStatus::Code(0), lingering: false },
        );
        assert_eq!(
            states(&init, 30),
            vec![("w".into(), EntryState::Exited), ("r".into(), EntryState::Running)]
        );
        let reports = init.entries(Millis(1_020));
        assert_eq!(reports[0].last_exit.as_deref(), Some("exit 0"));
        assert_eq!(reports[1].uptime_ms, Some(1_000), "r started when w exited, at 20 ms");
    }

    #[test]
    fn a_crash_looping_respawn_entry_shows_as_throttled_under_a_done_group() {
        let mut init = machine("g:r:1:respawn:false\n");
        init.handle(Millis(0), Input::Tell { group: "g".into(), level: "1".into() });
        let mut now = 0;
        let mut id = spawned(&mut init, "r").expect("started");
        // Instant exits: the throttle pauses the seventh respawn for 60 s.
        while let Some(next) = {
            now += 10;
            init.handle(
                Millis(now),
                Input::Exited { id, status: ExitStatus::Code(1), lingering: false },
            );
            spawned(&mut init, "r")
        } {
            id = next;
        }
        assert_eq!(init.status().get("g").map(|s| s.state.as_str()), Some("DONE"));
        let report = &init.entries(Millis(now + 1_000))[0];
        assert_eq!(report.state, EntryState::Throttled { in_ms: 59_000 });
        assert!(report.state.is_trouble(report.mode));
        assert_eq!(report.fast_respawns, 6);
        assert_eq!(report.restarts, 7, "six immediate respawns and the paused one");
        assert_eq!(report.last_exit.as_deref(), Some("exit 1"));
        assert_eq!(report.uptime_ms, None, "nothing runs while throttled");
        let json = serde_json::to_value(report).expect("json");
        assert_eq!(json["state"], "throttled");
        assert_eq!(json["in_ms"], 59_000);
        assert_eq!(json["mode"], "respawn");
    }

    #[test]
    fn a_stop_in_progress_shows_its_signal_and_age() {
        let mut init = machine("g:a:1:once:sleep 60\n");
        init.handle(Millis(0), Input::Tell { group: "g".into(), level: "1".into() });
        spawned(&mut init, "a").expect("started");
        init.handle(Millis(100), Input::Tell { group: "g".into(), level: "2".into() });
        assert_eq!(
            states(&init, 2_100),
            vec![("a".into(), EntryState::Stopping { for_ms: 2_000, signal: Signal::Int })]
        );
        let json = serde_json::to_value(&init.entries(Millis(2_100))[0]).expect("json");
        assert_eq!(json["signal"], "SIGINT");
        assert_eq!(json["state"], "stopping");
    }
}
