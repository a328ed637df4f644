//! Respawn rate limit (spec §2.1).
//!
//! A crash-looping entry would otherwise fork as fast as the machine allows.
//! The original's rule is kept because operators know its shape: each respawn
//! that comes less than [`FAST_RESPAWN`] after the previous respawn adds a
//! hit, a slower one removes one; past [`MAX_HITS`] the next start waits
//! [`PAUSE`]. An instantly-exiting command therefore runs 7 times back to
//! back (the first start and 6 respawns), then once a minute.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// A respawn sooner than this after the previous one counts as rapid.
pub const FAST_RESPAWN: Millis = Millis(1_000);
/// Rapid respawns tolerated before pausing.
pub const MAX_HITS: u32 = 5;
/// How long a crash-looping entry waits before its next start.
pub const PAUSE: Millis = Millis(60_000);

/// Tunable copy of the constants above (the simulator sweeps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleParams {
    pub fast: Millis,
    pub max_hits: u32,
    pub pause: Millis,
}

impl Default for ThrottleParams {
    fn default() -> Self {
        ThrottleParams { fast: FAST_RESPAWN, max_hits: MAX_HITS, pause: PAUSE }
    }
}

/// Per-entry respawn history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttle {
    hits: u32,
    last_respawn: Option<Millis>,
}

impl Throttle {
    /// Record a respawn decided at `now`; returns the delay before the new
    /// instance may start (`Millis::ZERO` for "at once").
    pub fn respawn(&mut self, now: Millis, params: &ThrottleParams) -> Millis {
        if let Some(last) = self.last_respawn {
            let elapsed = now.saturating_sub(last);
            if elapsed < params.fast {
                self.hits += 1;
            } else if elapsed > params.fast {
                self.hits = self.hits.saturating_sub(1);
            }
        }
        let delay = if self.hits > params.max_hits { params.pause } else { Millis::ZERO };
        self.last_respawn = Some(now + delay);
        delay
    }

    pub fn hits(&self) -> u32 {
        self.hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_crash_loop_runs_seven_times_then_pauses() {
        let p = ThrottleParams::default();
        let mut t = Throttle::default();
        let mut now = Millis(0);
        let mut immediate = 1; // the first start is never throttled
        loop {
            now = now + Millis(10);
            let d = t.respawn(now, &p);
            if d > Millis::ZERO {
                assert_eq!(d, PAUSE);
                break;
            }
            immediate += 1;
        }
        assert_eq!(immediate, 7);
    }

    #[test]
    fn slow_exits_never_pause() {
        let p = ThrottleParams::default();
        let mut t = Throttle::default();
        for i in 1..100 {
            assert_eq!(t.respawn(Millis(i * 2_000), &p), Millis::ZERO);
        }
        assert_eq!(t.hits(), 0);
    }
}
