//! The summary of a run: the fixed JSON fields of `clinit-sim run --json`,
//! and a longer human-readable report with the details an engineer hunting
//! a bug wants (fault schedule, churn, violations with excerpts).

use crate::invariants::Violation;
use crate::metrics::{mean, percentile};
use crate::units::{plural, secs};
use crate::world::RunResult;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Exactly the fields of `run --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: u32,
    pub groups: u32,
    pub policy: String,
    pub simulated_seconds: f64,
    pub wall_seconds: f64,
    pub events: u64,
    pub node_hours_per_wall_second: f64,
    pub failovers: u64,
    pub failover_p50_s: Option<f64>,
    pub failover_p99_s: Option<f64>,
    pub double_owner_seconds: f64,
    pub unavailable_group_seconds: f64,
    /// Cross-node moves: a group starting on a node other than the last one
    /// it ran on (every move is an outage; failback counts).
    pub moves: u64,
    pub violations: Vec<Violation>,
    pub trace_sha256: Option<String>,
}

impl RunReport {
    pub fn new(r: &RunResult) -> RunReport {
        let m = &r.tracker.metrics;
        let lat: Vec<f64> = m.failover_latencies.iter().map(|&l| secs(l)).collect();
        let wall = r.wall.as_secs_f64();
        let node_hours = f64::from(r.config.nodes) * secs(r.simulated) / 3600.0;
        RunReport {
            seed: r.seed,
            nodes: r.config.nodes,
            groups: r.tracker.group_names().len() as u32,
            policy: r.config.policy_name(),
            simulated_seconds: secs(r.simulated),
            wall_seconds: wall,
            events: r.events,
            node_hours_per_wall_second: if wall > 0.0 { node_hours / wall } else { 0.0 },
            failovers: lat.len() as u64,
            failover_p50_s: percentile(&lat, 50.0),
            failover_p99_s: percentile(&lat, 99.0),
            double_owner_seconds: m.double_owner.iter().map(|&d| secs(d)).sum(),
            unavailable_group_seconds: m.unavailable.iter().map(|&d| secs(d)).sum(),
            moves: m.moves,
            violations: r.tracker.violations().to_vec(),
            trace_sha256: r.trace.as_ref().map(|t| t.trace_sha256.clone()),
        }
    }

    /// The same report with the machine-dependent fields zeroed, for
    /// snapshots and equality checks.
    pub fn deterministic(mut self) -> RunReport {
        self.wall_seconds = 0.0;
        self.node_hours_per_wall_second = 0.0;
        self
    }
}

/// Unavailable group-seconds attributed to the fault kinds under way at
/// the time: for each kind, the overlap of the unavailability spans with
/// that kind's episodes (a clock fault lasts until the quiet phase; instant
/// edits have no episode), and `none` for the unavailable time while no
/// episode was under way. Kinds overlap, so the rows add up to more than
/// the total. Sorted by seconds, largest first. A diagnostic for "which
/// fault makes groups run nowhere", not a proof of cause.
pub fn unavailable_by_fault(r: &RunResult) -> Vec<(String, f64)> {
    let quiet = r.config.quiet_start();
    let mut by_kind: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    for f in &r.schedule.faults {
        let end = match f.fault.duration() {
            Some(d) => f.at + d,
            None => quiet.max(f.at),
        };
        if end > f.at {
            by_kind.entry(f.fault.kind().name().to_string()).or_default().push((f.at.0, end.0));
        }
    }
    let merge = |mut v: Vec<(u64, u64)>| {
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out
    };
    let overlap = |spans: &[(u64, u64)], a: u64, b: u64| -> u64 {
        spans.iter().map(|&(x, y)| y.min(b).saturating_sub(x.max(a))).sum()
    };
    let all = merge(by_kind.values().flatten().copied().collect());
    let by_kind: Vec<(String, Vec<(u64, u64)>)> =
        by_kind.into_iter().map(|(k, v)| (k, merge(v))).collect();
    let mut rows: Vec<(String, f64)> = by_kind
        .iter()
        .map(|(k, spans)| {
            let ms: u64 = r
                .tracker
                .metrics
                .unavailable_spans
                .iter()
                .map(|&(_, a, b)| overlap(spans, a.0, b.0))
                .sum();
            (k.clone(), ms as f64 / 1000.0)
        })
        .collect();
    let none: u64 = r
        .tracker
        .metrics
        .unavailable_spans
        .iter()
        .map(|&(_, a, b)| (b.0 - a.0) - overlap(&all, a.0, b.0))
        .sum();
    rows.push(("none".into(), none as f64 / 1000.0));
    rows.retain(|(_, s)| *s > 0.0);
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    rows
}

/// The long, human-readable report.
pub fn render(r: &RunResult) -> String {
    let rep = RunReport::new(r);
    let m = &r.tracker.metrics;
    let mut s = String::new();
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} s"));
    let _ = writeln!(
        s,
        "seed {} · {} · {} · policy {} · {} simulated",
        rep.seed,
        plural(rep.nodes, "node", "nodes"),
        plural(rep.groups, "group", "groups"),
        rep.policy,
        fmt_secs(rep.simulated_seconds)
    );
    // Kinds removed by `--param drop_faults` are drawn (so the other
    // kinds keep their episodes) but never happen: not listed as faults.
    let dropped = &r.config.world.drop_faults;
    let kinds: Vec<&str> =
        r.schedule.kinds.iter().filter(|k| !dropped.contains(k)).map(|k| k.name()).collect();
    let gone: Vec<&str> =
        r.schedule.kinds.iter().filter(|k| dropped.contains(k)).map(|k| k.name()).collect();
    let _ = writeln!(
        s,
        "faults: {} ({}{}); quiet phase from {}",
        if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") },
        plural(r.schedule.faults.len() as u64, "episode", "episodes"),
        if gone.is_empty() { String::new() } else { format!("; dropped: {}", gone.join(", ")) },
        fmt_secs(secs(r.config.quiet_start()))
    );
    let _ = writeln!(
        s,
        "speed: {} events in {:.3} s wall = {:.0} simulated node-hours per wall-second",
        rep.events, rep.wall_seconds, rep.node_hours_per_wall_second
    );
    let lat: Vec<f64> = m.failover_latencies.iter().map(|&l| secs(l)).collect();
    let _ = writeln!(
        s,
        "failovers: {} (p50 {}, p99 {}, mean {}, max {}); unfinished {}",
        rep.failovers,
        opt(rep.failover_p50_s),
        opt(rep.failover_p99_s),
        opt(mean(&lat)),
        opt(percentile(&lat, 100.0)),
        m.failovers_unfinished
    );
    let placed: Vec<f64> = m.first_running.iter().flatten().map(|&t| secs(t)).collect();
    let _ = writeln!(
        s,
        "initial placement: {}/{} groups, last at {}",
        placed.len(),
        rep.groups,
        opt(percentile(&placed, 100.0))
    );
    let _ = writeln!(
        s,
        "availability: {:.1} group-seconds unavailable, {:.1} double-owner seconds",
        rep.unavailable_group_seconds, rep.double_owner_seconds
    );
    let _ = writeln!(
        s,
        "churn: {} moves, {} collisions (conflict stops), {} tells, {} monitor cycles",
        m.moves, m.collisions, m.tells, m.cycles
    );
    let kinds: Vec<String> = m.episodes.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        s,
        "faults seen: {} (episodes by kind); node crashes {}, restarts {}, quorum losses {}, \
         fences {} ({} killed)",
        if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") },
        m.crashes,
        m.restarts,
        m.quorum_losses,
        m.fences,
        m.fence_kills
    );
    let t = &r.transitions;
    if t.last > 0 {
        let agreed = if t.agreement_checked {
            format!("checked on nodes {:?}", t.compared)
        } else {
            "not checked (not settled at the end)".to_string()
        };
        let _ = writeln!(
            s,
            "membership transitions: last #{}, agreement {agreed}; {} hooks run; joined later: {:?}",
            t.last, t.hooks_run, t.joiners
        );
        for line in &t.lines {
            let _ = writeln!(s, "    {line}");
        }
    }
    let names = r.tracker.group_names();
    let mut worst: Vec<(f64, &String)> = m
        .unavailable
        .iter()
        .zip(&names)
        .map(|(&u, n)| (secs(u), n))
        .filter(|(u, _)| *u > 0.0)
        .collect();
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    if !worst.is_empty() {
        let top: Vec<String> = worst.iter().take(5).map(|(u, n)| format!("{n} {u:.1} s")).collect();
        let _ = writeln!(s, "least available: {}", top.join(", "));
        let by: Vec<String> =
            unavailable_by_fault(r).iter().map(|(k, u)| format!("{k} {u:.1} s")).collect();
        let _ = writeln!(s, "unavailable while (group-s; kinds overlap): {}", by.join(", "));
        let mut spans = m.unavailable_spans.clone();
        spans.sort_by_key(|&(g, a, b)| (std::cmp::Reverse(b.saturating_sub(a)), a, g));
        let longest: Vec<String> = spans
            .iter()
            .take(5)
            .map(|&(g, a, b)| {
                let name = names.get(g as usize).map_or("?", |n| n.as_str());
                format!("{name} {:.1}-{:.1} s", secs(a), secs(b))
            })
            .collect();
        let _ = writeln!(s, "longest outages: {}", longest.join(", "));
    }
    if let Some(t) = &r.trace {
        let _ = writeln!(
            s,
            "trace: {}, sha256 {}",
            plural(t.records, "record", "records"),
            t.trace_sha256
        );
        let _ = writeln!(s, "decisions sha256 {}", t.decisions_sha256);
    }
    if let Some(e) = &r.trace_error {
        let _ = writeln!(s, "TRACE WRITE FAILED: {e}");
    }
    let counts = r.tracker.counts();
    if counts.is_empty() {
        let _ = writeln!(s, "invariants: all held");
    } else {
        let list: Vec<String> = counts.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        let _ = writeln!(s, "INVARIANTS VIOLATED: {}", list.join(", "));
        for v in r.tracker.violations() {
            let _ = writeln!(
                s,
                "\n[{}] seed {} at {}: {}",
                v.invariant,
                v.seed,
                fmt_secs(v.at_s),
                v.detail
            );
            for line in &v.excerpt {
                let _ = writeln!(s, "    {line}");
            }
        }
    }
    s
}

/// `3725.2` → `1h02m05.2s`.
pub fn fmt_secs(total: f64) -> String {
    let h = (total / 3600.0).floor();
    let m = ((total - h * 3600.0) / 60.0).floor();
    let sec = total - h * 3600.0 - m * 60.0;
    if h > 0.0 {
        format!("{h:.0}h{m:02.0}m{sec:04.1}s")
    } else if m > 0.0 {
        format!("{m:.0}m{sec:04.1}s")
    } else {
        format!("{sec:.1}s")
    }
}
