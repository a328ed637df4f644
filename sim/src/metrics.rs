//! What a run measured: how fast groups came back, how long they were
//! missing or doubled, how much churn it took. Filled by the
//! [invariant tracker](crate::invariants), summarised by the
//! [report](crate::report).

use clinit_engine::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Owner death → the group running again (on any live node), per failover.
    pub failover_latencies: Vec<Millis>,
    /// The wanted-group index of each entry of `failover_latencies`.
    pub failover_groups: Vec<u32>,
    /// Failovers still pending when the run ended.
    pub failovers_unfinished: u64,
    /// Per wanted group: time not running anywhere although some node could
    /// run it (up, healthy, in quorum by ground truth, eligible), counted
    /// from the group's first start or the end of the warm-up.
    pub unavailable: Vec<Millis>,
    /// The spans behind `unavailable`: (wanted-group index, from, until).
    /// For attributing unavailability to the faults active at the time
    /// (the report's `unavailable while` line); not in the JSON summary.
    #[serde(skip)]
    pub unavailable_spans: Vec<(u32, Millis, Millis)>,
    /// Per wanted group: time with live service processes on two or more nodes.
    pub double_owner: Vec<Millis>,
    /// Per wanted group: when it first ran (initial placement).
    pub first_running: Vec<Option<Millis>>,
    /// A group started running on a different node than last time.
    pub moves: u64,
    /// Conflict stops (a node aborting its instance because another node
    /// shows the group too): the classic policy's collisions.
    pub collisions: u64,
    /// When each conflict stop happened and on which node (for the
    /// failover study's per-run rows; not in the JSON summary).
    #[serde(skip)]
    pub collision_at: Vec<(Millis, u32)>,
    pub tells: u64,
    /// Files asked of the shared filesystem by every node's read phases
    /// (records or clstats, `hactl`, `cltab`; an unchanged answer counts):
    /// the per-node read cost of a policy (not in the JSON summary).
    #[serde(skip)]
    pub file_reads: u64,
    /// When each `tell G plan` was given and by which node (the failover
    /// study's per-run rows: how far apart the survivors planned).
    #[serde(skip)]
    pub plan_tells: Vec<(Millis, u32)>,
    pub fences: u64,
    pub fence_kills: u64,
    /// Fences of a node that was healthy by ground truth.
    pub needless_fences: u64,
    /// Fence commands that failed or hung (`fence-fail`).
    pub fence_failures: u64,
    pub crashes: u64,
    /// `mosha` killed while its node lived on (`mosha-crash`).
    pub monitor_crashes: u64,
    /// Orphans of a killed `mosha` that its next incarnation stopped
    /// before starting anything (as production's start-up does).
    #[serde(default)]
    pub orphans_stopped: u64,
    pub restarts: u64,
    pub quorum_losses: u64,
    /// Reads the drivers timed out (`read-hang`, partitions).
    pub read_timeouts: u64,
    /// Monitor cycles run (all nodes).
    pub cycles: u64,
    /// Fault episodes that began, by kind (`crash`, `mosha-crash`, ...;
    /// none in the quiet phase, where faults are ignored). The report
    /// counted only node crashes and restarts, so a run of `mosha-crash`,
    /// `monitor-freeze` or `node-pause` episodes read "0 crashes". Not
    /// serialised: trace end lines and their hashes stay as they were.
    #[serde(skip)]
    pub episodes: std::collections::BTreeMap<crate::faults::FaultKind, u64>,
}

/// The `p`-th percentile (0..=100) of `values` by nearest rank.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// A distribution-free 95 % confidence interval of the `p`-th percentile
/// (0 < p < 100) by order statistics: the number of samples at or below
/// the true percentile is Binomial(n, p/100), so the sorted samples
/// x(l) and x(u) with P(l ≤ B < u) ≥ 95 % bound it (Conover, *Practical
/// Nonparametric Statistics*, §3.2). A side is `None` when too few samples
/// bound it at all (e.g. the upper side of p90 with under 36 samples).
pub fn percentile_ci95(values: &[f64], p: f64) -> Option<(Option<f64>, Option<f64>)> {
    let n = values.len();
    if n == 0 || !(0.0..100.0).contains(&p) || p == 0.0 {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let q = p / 100.0;
    // cdf[k] = P(B <= k), summed in log space (q^n underflows for n ~ 1000).
    let mut cdf = Vec::with_capacity(n + 1);
    let mut log_pmf = n as f64 * (1.0 - q).ln();
    let mut sum = 0.0;
    for k in 0..=n {
        sum += log_pmf.exp();
        cdf.push(sum.min(1.0));
        if k < n {
            log_pmf += ((n - k) as f64 / (k + 1) as f64).ln() + (q / (1.0 - q)).ln();
        }
    }
    // Largest l (1-based rank) with P(B <= l-1) <= 2.5 %; smallest u with
    // P(B <= u-1) >= 97.5 %.
    let lower = (1..=n).rev().find(|&l| cdf[l - 1] <= 0.025).map(|l| v[l - 1]);
    let upper = (1..=n).find(|&u| cdf[u - 1] >= 0.975).map(|u| v[u - 1]);
    Some((lower, upper))
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    /// The order-statistic ranks of the textbook tables: n = 30, median:
    /// x(10) and x(21) (coverage 95.7 %); p90 of 30 has no upper bound.
    #[test]
    fn percentile_ci_ranks() {
        let v: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(percentile_ci95(&v, 50.0), Some((Some(10.0), Some(21.0))));
        assert_eq!(percentile_ci95(&v, 90.0).map(|(_, u)| u), Some(None));
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        let (lo, hi) = percentile_ci95(&v, 90.0).expect("ci");
        assert!(lo.is_some_and(|l| (880.0..=883.0).contains(&l)), "{lo:?}");
        assert!(hi.is_some_and(|h| (917.0..=920.0).contains(&h)), "{hi:?}");
        assert_eq!(percentile_ci95(&[], 50.0), None);
    }
}
