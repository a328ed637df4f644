//! The start time of a child just spawned, without reading its
//! `/proc/PID/stat`.
//!
//! Why: the state file records each leader's start time (field 22 of
//! `/proc/PID/stat`, clock ticks since boot) so that a successor daemon can
//! tell the process from a later one with the same pid
//! ([`crate::generations`]). Reading that file makes the kernel create
//! dentries under `/proc/PID`, which it must drop again when the child is
//! reaped (`release_task` → `proc_flush_pid` → `d_invalidate`): 10 to 15 %
//! of the daemon's CPU at a stop of 1,000 children (`perf`, in `wait4`),
//! where `399a718`, which recorded nothing, paid none of it.
//!
//! How: during the clone the kernel sets the child's `start_boottime` from
//! `ktime_get_boottime_ns()`, and `/proc` shows it as
//! `start_boottime / (10^9 / USER_HZ)`, rounded down (`do_task_stat`,
//! `nsec_to_clock_t`, with the time namespace's boot-time offset added).
//! `CLOCK_BOOTTIME` read just before and just after the spawn, in the same
//! time namespace, brackets that instant. When both readings, each widened
//! by [`MARGIN_NS`], fall in the same tick, that tick is the start time.
//! When the tick turned meanwhile (a few spawns in a hundred), the caller
//! reads `/proc` as before.

/// Each reading is widened by this much before the ticks are compared
/// (50 µs, 1/200 of a tick at `USER_HZ` = 100): the verdict never rests
/// on the last microseconds of a tick. Both clocks are the kernel's one
/// timekeeper (the vDSO's `CLOCK_BOOTTIME` and `ktime_get_boottime_ns`),
/// so this covers rounding, not drift; a wider margin only sends more
/// spawns to `/proc` (a vfork-style spawn returns after the child's
/// `exec`, some 0.2 to 1 ms).
pub const MARGIN_NS: u64 = 50_000;

/// `CLOCK_BOOTTIME` in nanoseconds, or `None` where it cannot be read.
fn boottime_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only into the timespec we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Nanoseconds per clock tick of `/proc` (`10^9 / USER_HZ`), when `USER_HZ`
/// divides a second evenly (the kernel's own condition for this rounding).
fn tick_ns() -> Option<u64> {
    // SAFETY: sysconf has no memory effects.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    (hz > 0 && 1_000_000_000 % hz == 0).then(|| 1_000_000_000 / hz)
}

/// The tick both ends of `[before, after]` (nanoseconds), widened by
/// [`MARGIN_NS`], fall in; `None` when they straddle a tick boundary.
pub fn same_tick(before_ns: u64, after_ns: u64, tick_ns: u64) -> Option<u64> {
    if tick_ns == 0 || after_ns < before_ns {
        return None;
    }
    let first = before_ns.checked_sub(MARGIN_NS)? / tick_ns;
    let last = after_ns.checked_add(MARGIN_NS)? / tick_ns;
    (first == last).then_some(first)
}

/// A reading of the clock taken just before a spawn.
#[derive(Debug, Clone, Copy)]
pub struct Before(Option<u64>);

/// Read the clock; call just before the spawn.
pub fn before() -> Before {
    Before(boottime_ns())
}

impl Before {
    /// The start time (clock ticks since boot, as `/proc/PID/stat` field
    /// 22) of a child spawned since [`before`]; call right after the
    /// spawn returned. `None`: not known for sure, read `/proc`.
    pub fn start_ticks(self) -> Option<u64> {
        same_tick(self.0?, boottime_ns()?, tick_ns()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bracket_inside_one_tick_with_margins_gives_the_tick() {
        const TICK: u64 = 10_000_000;
        assert_eq!(same_tick(52 * TICK + 2_000_000, 52 * TICK + 8_000_000, TICK), Some(52));
        assert_eq!(same_tick(52 * TICK + 60_000, 53 * TICK - 60_000, TICK), Some(52));
        // Within the margin of either boundary: unknown.
        assert_eq!(same_tick(52 * TICK + 40_000, 52 * TICK + 3_000_000, TICK), None);
        assert_eq!(same_tick(52 * TICK + 2_000_000, 53 * TICK - 40_000, TICK), None);
        // Straddling, reversed, degenerate.
        assert_eq!(same_tick(52 * TICK + 5_000_000, 53 * TICK + 5_000_000, TICK), None);
        assert_eq!(same_tick(52 * TICK + 5_000_000, 52 * TICK + 4_000_000, TICK), None);
        assert_eq!(same_tick(40_000, 600_000, TICK), None);
        assert_eq!(same_tick(5, 6, 0), None);
    }

    /// Against the kernel: every start time this module claims equals
    /// field 22 of the child's `/proc/PID/stat`.
    #[test]
    fn the_claimed_start_time_is_the_one_proc_shows() {
        let (mut compared, mut tries) = (0, 0);
        for _ in 0..1000 {
            tries += 1;
            let clock = before();
            let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("spawn");
            let claimed = clock.start_ticks();
            let shown = crate::generations::start_time(child.id());
            let _ = child.kill();
            let _ = child.wait();
            if let Some(ticks) = claimed {
                assert_eq!(Some(ticks), shown, "pid {}", child.id());
                compared += 1;
                if compared == 50 {
                    break;
                }
            }
        }
        eprintln!("{compared} start times known from the clock in {tries} spawns");
        assert!(compared > 0, "no spawn fell inside one tick in 1,000 tries");
    }
}
