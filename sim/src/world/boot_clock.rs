//! Each simulated node's boot clock (CLOCK_BOOTTIME-like), the clock a
//! `ranked` node's driver, leases and watchdog run on.
//!
//! Why: `ranked` promises never to compare one node's clock with another's
//! and to count every wait on the observer's own clock. With every driver
//! fed the simulator's global time, a rule that broke that promise would
//! still pass. So under `ranked` each node's clock:
//!
//! * starts at a different value at every boot (as a real uptime does; the
//!   value is derived from the node and its boot count, deterministic);
//! * keeps running through a `node-pause` and a `monitor-freeze`
//!   (CLOCK_BOOTTIME counts suspend; CLOCK_MONOTONIC would not);
//! * restarts with the machine after a crash (a new boot), but not after a
//!   `mosha-crash` (the machine stays up, and so do the watchdog's
//!   deadlines);
//! * runs at the node's `clock-drift` rate clamped to ±ρ/2, so any two
//!   nodes' rates stay within ρ, the bound `ranked`'s safety argument
//!   assumes (a clock outside it is outside the model; the wall clock still
//!   drifts in full).
//!
//! `classic` keeps the global time, so its traces and figures stay as
//! they were measured.

use super::World;
use clinit_engine::monitor::PolicyConfig;
use clinit_engine::time::Millis;

/// One node's boot clock: `value` at global time `anchor`, running at
/// `1 + ppm/10^6` from there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BootClock {
    anchor: Millis,
    value: Millis,
    ppm: i64,
    /// Boots so far (varies the start value).
    boots: u64,
}

impl BootClock {
    /// The clock at global time `now` (≥ the anchor).
    pub(super) fn at(&self, now: Millis) -> Millis {
        let dt = now.saturating_sub(self.anchor).0 as i128;
        let scaled = dt + dt * i128::from(self.ppm) / 1_000_000;
        Millis(self.value.0 + scaled.max(0) as u64)
    }

    /// The earliest global time at or after `now` when the clock shows at
    /// least `local`.
    pub(super) fn global(&self, local: Millis, now: Millis) -> Millis {
        let ahead = local.saturating_sub(self.at(now)).0 as i128;
        if ahead == 0 {
            return now;
        }
        let rate = 1_000_000 + i128::from(self.ppm);
        let dt = (ahead * 1_000_000 + rate - 1) / rate;
        let mut g = now + Millis(dt as u64);
        // Rounding: step forward until the clock has arrived.
        while self.at(g) < local {
            g = g + Millis(1);
        }
        g
    }

    /// A boot at global `now` of `node`: a new start value.
    pub(super) fn boot(&mut self, node: u32, now: Millis) {
        self.boots += 1;
        let start = (u64::from(node) * 7_919 + self.boots * 104_729) % 100_000 + 1_000;
        *self = BootClock { anchor: now, value: Millis(start), ppm: self.ppm, boots: self.boots };
    }

    /// The rate changes at `now` (`clock-drift`), clamped to ±`limit` ppm.
    pub(super) fn set_rate(&mut self, now: Millis, rate: f64, limit: u64) {
        let value = self.at(now);
        let limit = limit as i64;
        let ppm = ((rate * 1e6) as i64).clamp(-limit, limit);
        *self = BootClock { anchor: now, value, ppm, boots: self.boots };
    }
}

impl World {
    fn boot_clocked(&self) -> bool {
        matches!(self.cfg.policy, PolicyConfig::Ranked(_))
    }

    /// `node`'s own clock now: its boot clock under `ranked`, else the
    /// global time.
    pub(super) fn local_now(&self, node: u32) -> Millis {
        if self.boot_clocked() {
            self.nodes[node as usize].boot.at(self.now)
        } else {
            self.now
        }
    }

    /// The global time at which `node`'s clock reaches `local` (never
    /// before now).
    pub(super) fn to_global(&self, node: u32, local: Millis) -> Millis {
        if self.boot_clocked() {
            self.nodes[node as usize].boot.global(local, self.now)
        } else {
            local.max(self.now)
        }
    }

    /// The machine boots: its clock starts again.
    pub(super) fn boot_clock_start(&mut self, node: u32) {
        let now = self.now;
        self.nodes[node as usize].boot.boot(node, now);
    }

    /// `clock-drift` on `node`: the boot clock follows, within ±ρ/2.
    pub(super) fn boot_clock_drift(&mut self, node: u32, rate: f64) {
        let limit = match &self.cfg.policy {
            PolicyConfig::Ranked(p) => p.clock_rate_ppm / 2,
            _ => 0,
        };
        let now = self.now;
        self.nodes[node as usize].boot.set_rate(now, rate, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_clock_starts_per_boot_drifts_within_its_limit_and_inverts() {
        let mut c = BootClock::default();
        c.boot(2, Millis(50_000));
        let start = c.at(Millis(50_000));
        assert!(start.0 >= 1_000, "{start}");
        assert_eq!(c.at(Millis(51_000)), start + Millis(1_000));
        let mut again = c;
        again.boot(2, Millis(90_000));
        assert_ne!(again.at(Millis(90_000)), start, "a new boot, a new start value");
        c.set_rate(Millis(51_000), 0.5, 5_000);
        assert_eq!(c.at(Millis(61_000)), start + Millis(1_000 + 10_050), "clamped to 0.5 %");
        for local in [c.at(Millis(61_000)) + Millis(1), start + Millis(40_000)] {
            let g = c.global(local, Millis(61_000));
            assert!(c.at(g) >= local && c.at(g.saturating_sub(Millis(1))) < local, "{g}");
        }
        assert_eq!(c.global(Millis(0), Millis(61_000)), Millis(61_000), "never before now");
    }
}

#[cfg(test)]
mod world_tests {
    use super::super::World;
    use crate::{RunOptions, SimConfig};
    use clinit_engine::monitor::ranked::RankedParams;
    use clinit_engine::monitor::PolicyConfig;
    use clinit_engine::time::Millis;

    /// Under `ranked` every node's driver runs on its own boot clock: its
    /// lease deadline is within H of that clock, not of the global time,
    /// and the nodes' clocks differ. `classic` keeps the global time.
    #[test]
    fn ranked_nodes_run_on_their_own_boot_clocks() {
        let cfg = SimConfig {
            nodes: 3,
            groups: 1,
            duration: Millis::from_secs(60),
            policy: PolicyConfig::Ranked(RankedParams::default()),
            ..SimConfig::default()
        };
        let mut w = World::new(&cfg, 5, RunOptions::default()).expect("valid");
        w.run_until(Millis::from_secs(30));
        let now = w.now;
        let mut clocks = Vec::new();
        for node in 1..=3 {
            let local = w.local_now(node);
            let deadline = w.nodes[node as usize]
                .driver
                .as_ref()
                .and_then(|d| d.ranked())
                .and_then(|m| m.lease_deadline())
                .expect("every node holds a lease after 30 s");
            assert!(deadline > local && deadline <= local + Millis(2_000), "node {node}");
            clocks.push(local);
        }
        clocks.sort_unstable();
        clocks.dedup();
        assert_eq!(clocks.len(), 3, "three different clocks: {clocks:?}");
        assert!(clocks.iter().all(|&c| c != now), "none is the global time");
        let classic = SimConfig { policy: PolicyConfig::default(), ..cfg };
        let w = World::new(&classic, 5, RunOptions::default()).expect("valid");
        assert_eq!(w.local_now(1), w.now);
    }
}
