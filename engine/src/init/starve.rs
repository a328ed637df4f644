//! Spawns that fail for lack of a resource (issue 10, NU2: out of file
//! descriptors, a respawn waited 60 s).
//!
//! A spawn that fails with `EMFILE`, `ENFILE`, `EAGAIN` or `ENOMEM`
//! ([`crate::process::Shortage`]) says nothing about the command: the same
//! command starts fine once a descriptor is free. Counting it as a crash
//! would feed the respawn throttle (`throttle`) and, after six
//! quick failures, hold the entry back for a full minute after the
//! shortage ended. So the machine retries such a spawn after a short pause
//! that doubles per consecutive shortage, from [`RETRY_FIRST`] up to
//! [`RETRY_MAX`] (the capped exponential back-off of TCP's retransmission
//! timer and of the daemon's own `accept` pause), for any mode of entry: a
//! `once` or `wait` entry would otherwise be lost for good. The retry keeps
//! the entry's place: a `wait` entry still holds back the entries after
//! it. A stop or a level change cancels the pending retry like a throttled
//! respawn. The count of consecutive shortages is reset once an instance
//! of the entry has run and ended.

use crate::time::Millis;

/// Pause before the first retry of a spawn that failed for lack of a resource.
pub const RETRY_FIRST: Millis = Millis(250);
/// Longest pause between retries: a freed descriptor is used within this time.
pub const RETRY_MAX: Millis = Millis(1_000);

/// The pause before retry number `tries + 1` (`tries` failures in a row so far).
pub fn retry_delay(tries: u32) -> Millis {
    let factor = 1u64 << tries.min(16);
    Millis(RETRY_FIRST.0.saturating_mul(factor).min(RETRY_MAX.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cltab::Cltab;
    use crate::init::report::EntryState;
    use crate::init::{Action, Init, InitConfig, Input, Notice};
    use crate::process::{ExitStatus, ProcId, Shortage};

    fn machine(text: &str) -> Init {
        Init::new(InitConfig::default(), Cltab::parse(text, "cltab").expect("cltab"), Millis(0))
    }

    /// Ids of the spawns among `actions`, by tag.
    fn spawns(actions: &[Action]) -> Vec<(String, ProcId)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Spawn { id, tag, .. } => Some((tag.clone(), *id)),
                _ => None,
            })
            .collect()
    }

    /// Drive the machine to `until`, ticking at each deadline; the spawns
    /// it asked for on the way, with their times.
    fn run_to(init: &mut Init, until: u64) -> Vec<(u64, String, ProcId)> {
        let mut out = Vec::new();
        while let Some(at) = init.poll_timeout().filter(|at| at.0 <= until) {
            init.handle(at, Input::Tick);
            out.extend(spawns(&init.drain_actions()).into_iter().map(|(t, id)| (at.0, t, id)));
        }
        out
    }

    fn throttled(actions: &[Action]) -> bool {
        actions.iter().any(|a| matches!(a, Action::Notice(Notice::RespawnThrottled { .. })))
    }

    /// NU2: out of descriptors, a respawn entry waited 60 s. Twenty spawns
    /// in a row that fail with EMFILE are retried at 250, 500, then every
    /// 1,000 ms, never throttled; the same twenty as plain spawn failures
    /// (`ENOENT` of the shell) hit the throttle's minute pause.
    #[test]
    fn a_starved_spawn_is_retried_soon_and_never_throttled() {
        let mut init = machine("g:srv:1:respawn:server\n");
        init.handle(Millis(0), Input::Tell { group: "g".into(), level: "1".into() });
        let mut id = spawns(&init.drain_actions())[0].1;
        let mut now = 0;
        let mut gaps = Vec::new();
        for _ in 0..20 {
            init.handle(Millis(now), Input::SpawnStarved { id, shortage: Shortage::Descriptors });
            assert!(!throttled(&init.drain_actions()));
            let report = &init.entries(Millis(now))[0];
            assert!(
                matches!(report.state, EntryState::Starved { reason: Shortage::Descriptors, .. }),
                "{report:?}"
            );
            assert!(report.state.is_trouble(report.mode));
            let json = serde_json::to_value(report).expect("json");
            assert_eq!(json["state"], "starved");
            assert_eq!(json["reason"], "out of file descriptors (EMFILE)");
            let next = run_to(&mut init, now + 5_000);
            assert_eq!(next.len(), 1, "one retry: {next:?}");
            gaps.push(next[0].0 - now);
            (now, id) = (next[0].0, next[0].2);
        }
        assert_eq!(&gaps[..4], &[250, 500, 1_000, 1_000]);
        assert!(gaps.iter().all(|&g| g <= RETRY_MAX.0), "{gaps:?}");
        let report = &init.entries(Millis(now))[0];
        assert_eq!(report.state, EntryState::Running);
        assert_eq!(report.fast_respawns, 0, "no crash counted");

        // The control: the same failures as ordinary spawn failures.
        let mut init = machine("g:srv:1:respawn:server\n");
        init.handle(Millis(0), Input::Tell { group: "g".into(), level: "1".into() });
        let mut id = spawns(&init.drain_actions())[0].1;
        let mut paused = false;
        for i in 0..20 {
            let status = ExitStatus::SpawnFailed;
            init.handle(Millis(i * 10), Input::Exited { id, status, lingering: false });
            let actions = init.drain_actions();
            if throttled(&actions) {
                paused = true;
                break;
            }
            id = spawns(&actions)[0].1;
        }
        assert!(paused, "plain spawn failures feed the throttle");
    }

    /// A starved `wait` entry keeps its place: the entry after it waits
    /// for the retried instance to exit. A starved `once` entry is not
    /// lost either.
    #[test]
    fn a_starved_wait_entry_still_holds_back_the_next_one() {
        let mut init = machine("g:w:1:wait:prepare\ng:o:1:once:job\n");
        init.handle(Millis(0), Input::Tell { group: "g".into(), level: "1".into() });
        let w = spawns(&init.drain_actions())[0].1;
        init.handle(Millis(0), Input::SpawnStarved { id: w, shortage: Shortage::Processes });
        assert!(spawns(&init.drain_actions()).is_empty(), "o waits for w");
        assert_eq!(init.status().get("g").map(|s| s.state.as_str()), Some("STARTING"));
        let retried = run_to(&mut init, 1_000);
        assert_eq!(retried.len(), 1);
        assert_eq!((retried[0].0, retried[0].1.as_str()), (250, "w"));
        let w = retried[0].2;
        init.handle(
            Millis(300),
            Input::Exited { id: w, status: ExitStatus::Code(0), lingering: false },
        );
        let o = spawns(&init.drain_actions());
        assert_eq!(o.len(), 1, "o starts once w exited");
        init.handle(Millis(300), Input::SpawnStarved { id: o[0].1, shortage: Shortage::Memory });
        let retried = run_to(&mut init, 2_000);
        assert_eq!(retried.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(), [(550, "o")]);
        assert_eq!(init.status().get("g").map(|s| s.state.as_str()), Some("DONE"));
    }

    /// A level change while a retry is pending cancels it: nothing of the
    /// old level starts afterwards.
    #[test]
    fn a_level_change_cancels_a_pending_retry() {
        let mut init = machine("g:a:1:respawn:server\ng:b:2:respawn:other\n");
        init.handle(Millis(0), Input::Tell { group: "g".into(), level: "1".into() });
        let a = spawns(&init.drain_actions())[0].1;
        init.handle(Millis(0), Input::SpawnStarved { id: a, shortage: Shortage::Descriptors });
        init.handle(Millis(100), Input::Tell { group: "g".into(), level: "2".into() });
        let started = spawns(&init.drain_actions());
        assert_eq!(started.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(run_to(&mut init, 10_000).is_empty(), "a's retry was cancelled");
        assert_eq!(init.entries(Millis(10_000)).len(), 1);
    }

    #[test]
    fn the_pause_doubles_up_to_its_cap() {
        let pauses: Vec<u64> = (0..6).map(|t| retry_delay(t).0).collect();
        assert_eq!(pauses, vec![250, 500, 1_000, 1_000, 1_000, 1_000]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
