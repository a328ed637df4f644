//! Validation against the reference timing: the classic policy at N = 3
//! fails a group over in the time the original's own analysis predicts
//! (spec §11 Monte-Carlo: mean ≈ 13 s, median 13 s, excluding the
//! membership detection delay D and the start time S), within ±30%. The
//! comparison with the real 3-node `mosha` test is documented in
//! sim/README.md (`clinit-sim failover` with its scenario files).

use clinit_sim::study::{failover_study, Crash};
use clinit_sim::SimConfig;

#[test]
fn classic_failover_at_three_nodes_matches_the_reference() {
    let mut base = SimConfig { nodes: 3, ..SimConfig::default() };
    for (k, v) in [("detect", "0s"), ("detect_jitter", "0s")] {
        base.set(k, v).expect("valid");
    }
    let s = failover_study(&base, &Crash::default(), 400, 1).expect("valid");
    assert_eq!(s.failovers, 400);
    assert_eq!(s.violations, 0);
    let (mean, p50) = (s.mean_s.expect("some"), s.p50_s.expect("some"));
    assert!((13.0 * 0.7..=13.0 * 1.3).contains(&mean), "mean {mean:.1} s vs 13 s");
    assert!((13.0 * 0.7..=13.0 * 1.3).contains(&p50), "median {p50:.1} s vs 13 s");
    // D adds on top, as the spec says.
    base.set("detect", "10s").expect("valid");
    let d = failover_study(&base, &Crash::default(), 100, 1).expect("valid");
    assert!(d.mean_s.expect("some") > mean + 5.0);
    assert_eq!(d.detect_s, 10.0);
}
