//! Sweeps: many seeds over a grid of parameters, in parallel on all cores
//! (plain std threads pulling jobs from a shared counter; results come back
//! over a channel, so the caller can draw progress).
//!
//! Each grid point becomes one row with the run fields aggregated over its
//! seeds: counts and times are summed, failover percentiles are over the
//! pooled latencies of all seeds, double-owner and unavailable seconds are
//! means per run (with the worst run alongside).

use crate::config::{ConfigError, SimConfig};
use crate::metrics::{mean, percentile};
use crate::report::RunReport;
use crate::units::secs;
use crate::world::{run, RunOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub base: SimConfig,
    /// Cluster sizes (empty: the base's).
    pub nodes: Vec<u32>,
    /// `key → values`: every combination is a grid point.
    pub params: Vec<(String, Vec<String>)>,
    pub seeds: u64,
    pub first_seed: u64,
    pub threads: usize,
}

/// One grid point's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub nodes: u32,
    pub params: BTreeMap<String, String>,
    pub groups: u32,
    pub policy: String,
    pub runs: u64,
    pub simulated_seconds: f64,
    pub wall_seconds: f64,
    pub events: u64,
    pub node_hours_per_wall_second: f64,
    pub failovers: u64,
    pub failover_p50_s: Option<f64>,
    pub failover_p99_s: Option<f64>,
    /// Mean per run.
    pub double_owner_seconds: f64,
    pub double_owner_seconds_max: f64,
    /// Mean per run.
    pub unavailable_group_seconds: f64,
    pub unavailable_group_seconds_max: f64,
    /// Cross-node moves, mean per run.
    pub moves: f64,
    /// All violations of all runs.
    pub violations: u64,
    pub runs_with_violations: u64,
    /// Per invariant: how many runs violated it (`double-owner`,
    /// `needless-fence`, ...).
    pub runs_violating: BTreeMap<String, u64>,
    /// Up to ten seeds that violated something, to replay.
    pub failing_seeds: Vec<u64>,
    /// Every failover latency of the point, s (for the distribution's
    /// chart, [`crate::latency_svg`]; not in the JSON rows).
    #[serde(skip)]
    pub failover_latencies_s: Vec<f64>,
}

struct Point {
    nodes: u32,
    params: Vec<(String, String)>,
    cfg: SimConfig,
}

/// One run, reduced to what rows need.
struct Done {
    point: usize,
    seed: u64,
    report: RunReport,
    latencies: Vec<f64>,
    violations: u64,
    /// The invariants this run violated.
    violated: Vec<String>,
}

fn grid(spec: &SweepSpec) -> Result<Vec<Point>, ConfigError> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in &spec.params {
        let mut next = Vec::new();
        for c in &combos {
            for v in values {
                let mut c = c.clone();
                c.push((key.clone(), v.clone()));
                next.push(c);
            }
        }
        combos = next;
    }
    let sizes = if spec.nodes.is_empty() { vec![spec.base.nodes] } else { spec.nodes.clone() };
    let mut points = Vec::new();
    for &nodes in &sizes {
        for params in &combos {
            let mut cfg = spec.base.clone();
            cfg.nodes = nodes;
            for (k, v) in params {
                cfg.set(k, v)?;
            }
            cfg.validate()?;
            cfg.check_phases()?;
            // The size actually run: `--param nodes=...` sets it after the
            // grid's size (a row labelled with the grid's size ran another).
            points.push(Point { nodes: cfg.nodes, params: params.clone(), cfg });
        }
    }
    Ok(points)
}

/// Run the sweep; `progress(done, total)` is called from the calling thread.
pub fn sweep(
    spec: &SweepSpec,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Row>, ConfigError> {
    let points = grid(spec)?;
    // Fail fast on a scenario that cannot be built.
    for p in &points {
        crate::workload::build(
            &p.cfg,
            &mut crate::seeds::rng(spec.first_seed, crate::seeds::Stream::Workload),
        )?;
    }
    let total = points.len() * spec.seeds as usize;
    let next = AtomicUsize::new(0);
    let threads = spec.threads.max(1).min(total.max(1));
    let (tx, rx) = mpsc::channel::<Result<Done, ConfigError>>();
    let mut done: Vec<Done> = Vec::with_capacity(total);
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, points) = (&next, &points);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let point = i / spec.seeds as usize;
                let seed = spec.first_seed + (i % spec.seeds as usize) as u64;
                let result = run(&points[point].cfg, seed, RunOptions::fast()).map(|r| Done {
                    point,
                    seed,
                    latencies: r
                        .tracker
                        .metrics
                        .failover_latencies
                        .iter()
                        .map(|&l| secs(l))
                        .collect(),
                    violations: r.tracker.counts().values().sum(),
                    violated: r.tracker.counts().keys().cloned().collect(),
                    report: RunReport::new(&r),
                });
                if tx.send(result).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for result in rx {
            match result {
                Ok(d) => done.push(d),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            progress(done.len() as u64, total as u64);
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    done.sort_by_key(|d| (d.point, d.seed));
    Ok(points
        .iter()
        .enumerate()
        .map(|(i, p)| row(p, done.iter().filter(|d| d.point == i)))
        .collect())
}

fn row<'a>(p: &Point, runs: impl Iterator<Item = &'a Done>) -> Row {
    let runs: Vec<&Done> = runs.collect();
    let lat: Vec<f64> = runs.iter().flat_map(|d| d.latencies.iter().copied()).collect();
    let double: Vec<f64> = runs.iter().map(|d| d.report.double_owner_seconds).collect();
    let unavail: Vec<f64> = runs.iter().map(|d| d.report.unavailable_group_seconds).collect();
    let wall: f64 = runs.iter().map(|d| d.report.wall_seconds).sum();
    let sim: f64 = runs.iter().map(|d| d.report.simulated_seconds).sum();
    let node_hours = f64::from(p.nodes) * sim / 3600.0;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    Row {
        nodes: p.nodes,
        params: p.params.iter().cloned().collect(),
        groups: runs.first().map_or(p.cfg.groups, |d| d.report.groups),
        policy: p.cfg.policy_name(),
        runs: runs.len() as u64,
        simulated_seconds: sim,
        wall_seconds: wall,
        events: runs.iter().map(|d| d.report.events).sum(),
        node_hours_per_wall_second: if wall > 0.0 { node_hours / wall } else { 0.0 },
        failovers: lat.len() as u64,
        failover_p50_s: percentile(&lat, 50.0),
        failover_p99_s: percentile(&lat, 99.0),
        double_owner_seconds: mean(&double).unwrap_or(0.0),
        double_owner_seconds_max: max(&double),
        unavailable_group_seconds: mean(&unavail).unwrap_or(0.0),
        unavailable_group_seconds_max: max(&unavail),
        moves: mean(&runs.iter().map(|d| d.report.moves as f64).collect::<Vec<_>>()).unwrap_or(0.0),
        violations: runs.iter().map(|d| d.violations).sum(),
        runs_with_violations: runs.iter().filter(|d| d.violations > 0).count() as u64,
        runs_violating: {
            let mut m = BTreeMap::new();
            for d in &runs {
                for k in &d.violated {
                    *m.entry(k.clone()).or_default() += 1;
                }
            }
            m
        },
        failing_seeds: runs.iter().filter(|d| d.violations > 0).take(10).map(|d| d.seed).collect(),
        failover_latencies_s: lat,
    }
}

/// A plain table, one row per grid point.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let _ = writeln!(
        s,
        "{:>5} {:<28} {:>5} {:>9} {:>7} {:>7} {:>9} {:>10} {:>7} {:>8} {:>11}",
        "nodes",
        "params",
        "runs",
        "failovers",
        "p50 s",
        "p99 s",
        "double s",
        "unavail s",
        "moves",
        "viol.",
        "nh/wall-s"
    );
    for r in rows {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let params = if params.is_empty() { "-".to_string() } else { params.join(" ") };
        let _ = writeln!(
            s,
            "{:>5} {:<28} {:>5} {:>9} {:>7} {:>7} {:>9.2} {:>10.1} {:>7.1} {:>8} {:>11.0}",
            r.nodes,
            params,
            r.runs,
            r.failovers,
            opt(r.failover_p50_s),
            opt(r.failover_p99_s),
            r.double_owner_seconds,
            r.unavailable_group_seconds,
            r.moves,
            format!("{}/{}", r.runs_with_violations, r.runs),
            r.node_hours_per_wall_second
        );
    }
    s
}
