//! Fault injection, driven by proptest: random fault plans over the kinds
//! the classic policy is expected to survive (crash/restart, failed and
//! stale reads up to 5 %, clock skew up to 15 s), at random rates, on small
//! clusters. Every
//! named invariant must hold; a failure prints the seed, the plan and the
//! report with trace excerpts (replay it with `clinit-sim run`).
//!
//! Cases: `CLINIT_SIM_SEEDS` (default 300; CI-friendly), e.g.
//! `CLINIT_SIM_SEEDS=5000 cargo test -p clinit-sim --release --test sim_faults`.
//! The plans are drawn from a fixed proptest seed, so CI is repeatable;
//! `CLINIT_SIM_PROPTEST_SEED=<n>` explores other plans.

use clinit_engine::time::Millis;
use clinit_sim::faults::{FaultChoice, FaultKind, KindSpec, SAFE_READ_P, SAFE_SKEW_MS};
use clinit_sim::{report, run, RunOptions, SimConfig};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn rng_seed() -> RngSeed {
    let seed = std::env::var("CLINIT_SIM_PROPTEST_SEED").ok().and_then(|s| s.parse().ok());
    RngSeed::Fixed(seed.unwrap_or(2026))
}

fn cases() -> u32 {
    std::env::var("CLINIT_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300)
}

/// One enabled safe kind at a random intensity (within the ranges the
/// README documents as safe for classic).
fn kind() -> impl Strategy<Value = KindSpec> {
    (0..FaultKind::SAFE_FOR_CLASSIC.len(), 0.5f64..8.0, 0.1f64..1.0).prop_map(|(k, rate, f)| {
        let kind = FaultKind::SAFE_FOR_CLASSIC[k];
        let (max_len, size) = match kind {
            FaultKind::Crash => (Millis(300_000), 0.0),
            FaultKind::ReadFailures | FaultKind::StaleReads => (Millis(300_000), SAFE_READ_P * f),
            FaultKind::Skew => (Millis(0), SAFE_SKEW_MS * f),
            _ => (Millis(60_000), 0.0),
        };
        KindSpec { kind, rate_per_hour: rate, max_len, size }
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        rng_seed: rng_seed(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn classic_keeps_every_invariant_under_safe_faults(
        seed in any::<u64>(),
        nodes in 2u32..=6,
        groups in 1u32..=4,
        kinds in proptest::collection::vec(kind(), 1..=4),
    ) {
        let cfg = SimConfig {
            nodes,
            groups,
            duration: Millis::from_secs(40 * 60),
            faults: FaultChoice::Plan { kinds: kinds.clone() },
            ..SimConfig::default()
        };
        let r = run(&cfg, seed, RunOptions::default()).expect("valid scenario");
        prop_assert!(
            r.tracker.counts().is_empty(),
            "seed {seed}, {nodes} nodes, {groups} groups, plan {kinds:?}:\n{}",
            report::render(&r)
        );
    }
}
