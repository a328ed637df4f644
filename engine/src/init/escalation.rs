//! Stop escalation (spec §3.1, without the original's quirks).
//!
//! A stop sends SIGINT at once, SIGTERM after `term_after`, SIGKILL after
//! `kill_after`, then SIGKILL again every `kill_repeat` until the process is
//! reaped. Each process has its own timers: unrelated child exits never speed
//! the sequence up, and nothing is sent once the process has been reaped.

use crate::process::Signal;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// Default delay from the stop request to SIGTERM.
pub const TERM_AFTER: Millis = Millis(5_000);
/// Default delay from the stop request to the first SIGKILL.
pub const KILL_AFTER: Millis = Millis(15_000);
/// Default interval between repeated SIGKILLs (a process in uninterruptible
/// sleep may survive the first one).
pub const KILL_REPEAT: Millis = Millis(5_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub term_after: Millis,
    pub kill_after: Millis,
    pub kill_repeat: Millis,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation { term_after: TERM_AFTER, kill_after: KILL_AFTER, kill_repeat: KILL_REPEAT }
    }
}

/// Where one process is in its stop sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopState {
    /// When the stop was requested.
    pub since: Millis,
    /// The last signal sent.
    pub sent: Signal,
}

impl Escalation {
    /// The signal to send after `state.sent`, and when; `now` is when
    /// `state.sent` went out.
    pub fn next(&self, state: &StopState, now: Millis) -> (Signal, Millis) {
        match state.sent {
            Signal::Int => (Signal::Term, state.since + self.term_after),
            Signal::Term => (Signal::Kill, state.since + self.kill_after.max(self.term_after)),
            Signal::Kill => (Signal::Kill, now + self.kill_repeat.max(Millis(1))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_int_term_kill_at_0_5_15_then_every_5() {
        let e = Escalation::default();
        let mut st = StopState { since: Millis(100), sent: Signal::Int };
        let mut now = Millis(100);
        let mut seen = vec![(Signal::Int, now)];
        for _ in 0..3 {
            let (sig, at) = e.next(&st, now);
            seen.push((sig, at));
            st.sent = sig;
            now = at;
        }
        assert_eq!(
            seen,
            vec![
                (Signal::Int, Millis(100)),
                (Signal::Term, Millis(5_100)),
                (Signal::Kill, Millis(15_100)),
                (Signal::Kill, Millis(20_100)),
            ]
        );
    }
}
