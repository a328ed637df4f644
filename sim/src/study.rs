//! The failover study: the scenario of spec §11 and of the real 3-node
//! `mosha` integration test, run over many seeds, to compare the
//! simulator's timing with reality.
//!
//! One group (a passing test and a respawned server) on N nodes; once the
//! cluster is steady, the node running the group crashes at a random phase;
//! the latency is from the crash to the group running again elsewhere. The
//! membership detection delay D is part of it; spec §11's table excludes D
//! and the start time S (≈ 0 here), so `minus_detect` subtracts the
//! configured mean D (`detect_down` plus half of `detect_jitter`; set
//! `detect_jitter` to 0 for an exact subtraction).

use crate::config::{ConfigError, SimConfig, Workload};
use crate::faults::{Fault, Schedule, Scheduled};
use crate::metrics::{mean, percentile, percentile_ci95};
use crate::seeds::{self, Stream};
use crate::units::secs;
use crate::world::{run, RunOptions};
use clinit_engine::time::Millis;
use rand::Rng;
use serde::Serialize;

/// Failover timing over many seeds, seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Study {
    pub nodes: u32,
    pub runs: u64,
    /// Runs where the group came back before the end.
    pub failovers: u64,
    /// Runs whose crash found no node running the group (a crash before
    /// its placement, `--crash-at` inside the warm-up): nothing to fail
    /// over.
    pub no_owner_runs: u64,
    pub mean_s: Option<f64>,
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
    /// 95 % confidence intervals of p50 and p90 (order statistics,
    /// [`crate::metrics::percentile_ci95`]; `None` for an unbounded side).
    pub p50_ci95_s: Option<(Option<f64>, Option<f64>)>,
    pub p90_ci95_s: Option<(Option<f64>, Option<f64>)>,
    pub p95_s: Option<f64>,
    pub p99_s: Option<f64>,
    /// The mean detection delay D, s: `detect_down` plus the mean of the
    /// per-observer `detect_jitter` (U[0, detect_jitter), mean half of
    /// it), subtracted below. It left the jitter out, so `detect=0`
    /// printed "D = 0.0 s" while the jitter still added 1 s on average
    /// (issue 8's new-user test). The `*_minus_detect_s` fields are
    /// `None` under heartbeat-file membership, where no fixed D applies.
    pub detect_s: f64,
    /// The jitter's share of [`Study::detect_s`], s (`detect_jitter / 2`).
    pub detect_jitter_mean_s: f64,
    pub mean_minus_detect_s: Option<f64>,
    pub p50_minus_detect_s: Option<f64>,
    pub p90_minus_detect_s: Option<f64>,
    pub p95_minus_detect_s: Option<f64>,
    pub p99_minus_detect_s: Option<f64>,
    pub violations: u64,
    /// File reads per node per simulated second, over all runs (records
    /// or clstats, `hactl`, `cltab`: the per-node read cost).
    pub reads_per_node_s: f64,
    /// Wall-clock (≈ CPU, one thread) seconds per simulated node-hour.
    pub cpu_s_per_node_hour: f64,
    /// The seed of the slowest failover (re-run it with `slowest_report`).
    pub slowest_seed: Option<u64>,
    /// Every failover latency, s, in seed order (for the distribution's
    /// chart, [`crate::latency_svg`]; not in the JSON summary).
    #[serde(skip)]
    pub latencies_s: Vec<f64>,
    /// One row per seed (`failover --per-run`; not in the JSON summary).
    #[serde(skip)]
    pub rows: Vec<RunRow>,
}

/// What one seed of the study did after the crash: enough to tell the
/// fast mode from the slow one and a collision (both survivors planned
/// before either saw the other's plan, then both backed off) from a
/// round in which no survivor's coin said plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub seed: u64,
    /// The crash, s after the start.
    pub crash_s: f64,
    /// Crash → running elsewhere, s (`None`: the group was not placed
    /// before the crash, or did not come back).
    pub latency_s: Option<f64>,
    /// Conflict stops (of any group) after the crash; each node that
    /// stops counts one.
    pub collisions: u64,
    /// Every `tell plan` (of any group) after the crash: (s after the
    /// crash, node).
    pub plans: Vec<(f64, u32)>,
    /// The gap between the first plans of two different nodes after the
    /// crash, ms (`None`: only one node planned): under ~the read latency
    /// plus the filesystem's visibility delay, neither sees the other's
    /// plan and the two collide.
    pub plan_gap_ms: Option<u64>,
}

impl RunRow {
    fn of(seed: u64, crash: Millis, latency: Option<Millis>, m: &crate::metrics::Metrics) -> Self {
        let after = |t: Millis| t >= crash;
        let plans: Vec<(Millis, u32)> =
            m.plan_tells.iter().copied().filter(|&(t, _)| after(t)).collect();
        let first = plans.first().copied();
        let plan_gap_ms = first.and_then(|(t0, n0)| {
            plans.iter().find(|&&(_, n)| n != n0).map(|&(t, _)| t.0.saturating_sub(t0.0))
        });
        RunRow {
            seed,
            crash_s: secs(crash),
            latency_s: latency.map(secs),
            collisions: m.collision_at.iter().filter(|&&(t, _)| after(t)).count() as u64,
            plans: plans.iter().map(|&(t, n)| (secs(t.saturating_sub(crash)), n)).collect(),
            plan_gap_ms,
        }
    }
}

/// Where and when the owner dies.
#[derive(Debug, Clone, PartialEq)]
pub struct Crash {
    /// The group whose owner is crashed.
    pub group: String,
    /// The crash happens at `at + U[0, 30 s)` (a random phase of the
    /// survivors' cycles). 300 s lets the cycle times settle at n first.
    pub at: Millis,
}

impl Default for Crash {
    fn default() -> Self {
        Crash { group: "web".into(), at: Millis::from_secs(300) }
    }
}

/// The study's scenario for seed `seed`, built on `base` (policy, world,
/// and its workload if custom; otherwise one group `web`).
pub fn scenario(base: &SimConfig, crash: &Crash, seed: u64) -> SimConfig {
    let mut cfg = base.clone();
    if !matches!(cfg.workload, Workload::Custom { .. }) {
        cfg.workload = Workload::Custom {
            cltab: "web:webt:test:test:exit 0\nweb:webr:start:respawn:run\n".into(),
            hactl: "web start\n".into(),
        };
    }
    let mut rng = seeds::rng(seed, Stream::Faults);
    let at = crash.at + Millis(rng.random_range(0..30_000));
    cfg.schedule = Some(Schedule {
        kinds: vec![crate::faults::FaultKind::Crash],
        faults: vec![Scheduled {
            at,
            fault: Fault::CrashOwner {
                group: crash.group.clone(),
                down: Millis::from_secs(100_000),
            },
        }],
    });
    cfg.duration = at + Millis::from_secs(600);
    // No liveness phase to speak of: the dead node stays dead.
    cfg.world.quiet = Some(Millis::ZERO);
    cfg
}

/// Run the study over `runs` seeds from `first_seed`.
pub fn failover_study(
    base: &SimConfig,
    crash: &Crash,
    runs: u64,
    first_seed: u64,
) -> Result<Study, ConfigError> {
    failover_study_with_progress(base, crash, runs, first_seed, &mut |_, _| {})
}

/// [`failover_study`], calling `progress(done, total)` after each seed (for
/// a progress bar).
pub fn failover_study_with_progress(
    base: &SimConfig,
    crash: &Crash,
    runs: u64,
    first_seed: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Study, ConfigError> {
    let mut lat = Vec::new();
    let mut rows = Vec::new();
    let mut violations = 0;
    let mut no_owner = 0;
    let mut slowest: Option<(f64, u64)> = None;
    let (mut reads, mut node_s, mut wall_s) = (0u64, 0f64, 0f64);
    for seed in first_seed..first_seed + runs {
        let cfg = scenario(base, crash, seed);
        let at =
            cfg.schedule.as_ref().and_then(|s| s.faults.first()).map_or(Millis::ZERO, |f| f.at);
        let r = run(&cfg, seed, RunOptions::fast())?;
        reads += r.tracker.metrics.file_reads;
        node_s += f64::from(cfg.nodes) * secs(cfg.duration);
        wall_s += r.wall.as_secs_f64();
        // Only the crashed group's failover (others on that node may move too).
        let g = r.tracker.group_names().iter().position(|n| *n == crash.group);
        if g.is_none() {
            // A typo in --group would otherwise read as "0 failovers".
            return Err(ConfigError::NoSuchGroup {
                group: crash.group.clone(),
                known: r.tracker.group_names().join(", "),
            });
        }
        let mine = g.and_then(|g| r.tracker.failover_of(g));
        rows.push(RunRow::of(seed, at, mine, &r.tracker.metrics));
        for l in mine.into_iter().map(secs) {
            if slowest.is_none_or(|(s, _)| l > s) {
                slowest = Some((l, seed));
            }
            lat.push(l);
        }
        // The study's only fault is the owner's crash.
        no_owner += u64::from(r.tracker.metrics.crashes == 0);
        violations += r.tracker.counts().values().sum::<u64>();
        progress(seed - first_seed + 1, runs);
    }
    let jitter_mean = secs(base.world.detect_jitter) / 2.0;
    let d = secs(base.world.detect_down) + jitter_mean;
    // Under heartbeat-file membership the driver's own rule detects the
    // crash: there is no fixed delay D to subtract, and the columns stay
    // empty (`None`, `-` in the table, `null` in JSON) rather than
    // subtract an unused parameter.
    let heartbeat = base.world.membership == crate::config::MembershipModel::Heartbeat;
    let minus: Vec<f64> = if heartbeat { Vec::new() } else { lat.iter().map(|l| l - d).collect() };
    Ok(Study {
        nodes: base.nodes,
        runs,
        failovers: lat.len() as u64,
        no_owner_runs: no_owner,
        mean_s: mean(&lat),
        p50_s: percentile(&lat, 50.0),
        p90_s: percentile(&lat, 90.0),
        p50_ci95_s: percentile_ci95(&lat, 50.0),
        p90_ci95_s: percentile_ci95(&lat, 90.0),
        p95_s: percentile(&lat, 95.0),
        p99_s: percentile(&lat, 99.0),
        detect_s: d,
        detect_jitter_mean_s: jitter_mean,
        mean_minus_detect_s: mean(&minus),
        p50_minus_detect_s: percentile(&minus, 50.0),
        p90_minus_detect_s: percentile(&minus, 90.0),
        p95_minus_detect_s: percentile(&minus, 95.0),
        p99_minus_detect_s: percentile(&minus, 99.0),
        violations,
        reads_per_node_s: if node_s > 0.0 { reads as f64 / node_s } else { 0.0 },
        cpu_s_per_node_hour: if node_s > 0.0 { wall_s / (node_s / 3600.0) } else { 0.0 },
        slowest_seed: slowest.map(|(_, seed)| seed),
        latencies_s: lat,
        rows,
    })
}

/// The full report (with its event log) of one seed of the study.
pub fn report(base: &SimConfig, crash: &Crash, seed: u64) -> Result<String, ConfigError> {
    let r = run(&scenario(base, crash, seed), seed, RunOptions::default())?;
    let mut text = crate::report::render(&r);
    text.push_str("event log (last 80 lines):\n");
    for line in r.tracker.log_tail(80) {
        text.push_str("    ");
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}
