//! The fault-injection suite, driven by proptest: random plans of one or
//! two fault kinds drawn from **every** kind `--faults` accepts, at random
//! rates and intensities, on small clusters, for every policy: `classic`,
//! `ranked` with a fence command (`ranked+fence`) and `ranked` with the
//! watchdog only (`ranked+watchdog`). Every named invariant must hold,
//! except the weaknesses a policy is documented to have under a fault kind
//! ([`ALLOWED`], per policy and kind, each with its reason). A failure
//! prints the seed, the plan and the report with trace excerpts (re-run it
//! with `clinit-sim run`, shrink it with `clinit-sim shrink`).
//!
//! Cases: classic `CLINIT_SIM_SEEDS` (default 300, 40-minute runs on 2-6
//! nodes); ranked `CLINIT_SIM_RANKED_SEEDS` (default 24, each run under
//! both ranked setups: 5-minute runs on 2-5 nodes, see [`Setting::RANKED`];
//! ranked costs about 100 times classic's work per simulated minute), e.g.
//! `CLINIT_SIM_SEEDS=5000 CLINIT_SIM_RANKED_SEEDS=200 cargo test -p
//! clinit-sim --release --test sim_faults`.
//! The plans are drawn from a fixed proptest seed, so CI is repeatable;
//! `CLINIT_SIM_PROPTEST_SEED=<n>` explores other plans.
//! `CLINIT_SIM_CENSUS=1 cargo test -p clinit-sim --release --test sim_faults
//! -- --ignored census --nocapture` prints, per policy and kind, which
//! invariants break (classic over 100 seeds, ranked over 12; pick one with
//! `CLINIT_SIM_CENSUS_POLICY=ranked+fence`): how [`ALLOWED`] was
//! established.

use clinit_engine::monitor::ranked::RankedParams;
use clinit_engine::monitor::PolicyConfig;
use clinit_engine::time::Millis;
use clinit_sim::faults::{FaultChoice, FaultKind, KindSpec, SAFE_READ_P, SAFE_SKEW_MS};
use clinit_sim::invariants::{DOUBLE_OWNER, FAILED_TEST, HALT_BOUND, LIVENESS, NEEDLESS_FENCE};
use clinit_sim::{report, run, RunOptions, SimConfig};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::collections::BTreeSet;

/// `ranked` with a fence command, as [`ALLOWED`] names it.
const RANKED_FENCE: &str = "ranked+fence";
/// `ranked` with the watchdog alone (no fence command).
const RANKED_WATCHDOG: &str = "ranked+watchdog";

/// The documented weaknesses: (policy as [`label`] names it, fault kind,
/// invariants it may break under that kind, why). Anything not listed
/// must hold.
const ALLOWED: &[(&str, FaultKind, &[&str], &str)] = &[
    (
        "classic",
        FaultKind::Partition,
        &[DOUBLE_OWNER, HALT_BOUND],
        "W4: the majority restarts the minority's groups before the minority notices its quorum loss",
    ),
    (
        "classic",
        FaultKind::SlowFs,
        &[DOUBLE_OWNER, NEEDLESS_FENCE, LIVENESS],
        "W1: plans go unseen for longer than a cycle; heartbeats look stale",
    ),
    (
        "classic",
        FaultKind::SlowNode,
        &[DOUBLE_OWNER, NEEDLESS_FENCE],
        "W1: decisions on reads older than a cycle",
    ),
    (
        "classic",
        FaultKind::FalseSuspicion,
        &[DOUBLE_OWNER],
        "W2/W3: a node wrongly dropped from a view has its groups planned elsewhere",
    ),
    (
        "classic",
        FaultKind::HactlEdit,
        &[LIVENESS],
        "W10: whole-file last-writer-wins replication loses one of two close edits",
    ),
    (
        "classic",
        FaultKind::StaleReads,
        &[NEEDLESS_FENCE],
        "a stale read can return a restarted node's pre-crash clstat, which looks stale: fenced again on rejoin",
    ),
    (
        "classic",
        FaultKind::ReadFailures,
        &[DOUBLE_OWNER, NEEDLESS_FENCE],
        "W3's residue: the last good clstat stands in for an unreadable one and can hide a plan",
    ),
    (
        "classic",
        FaultKind::Skew,
        &[NEEDLESS_FENCE],
        "W11: ages compare the reader's clock with the writer's mtime; a fast clock sees healthy nodes as stale",
    ),
    (
        "classic",
        FaultKind::ClockDrift,
        &[NEEDLESS_FENCE],
        "W11 again: a drifting clock accumulates skew",
    ),
    (
        "classic",
        FaultKind::MoshaCrash,
        &[DOUBLE_OWNER, LIVENESS, NEEDLESS_FENCE],
        "while mosha is down its clstat goes stale and its services run on: a peer may start the group again (double owner until the restart stops the orphans). Rejoin: the restarted mosha's old clstat is read as stale and it is fenced as it comes back",
    ),
    (
        "classic",
        FaultKind::NodePause,
        &[DOUBLE_OWNER, LIVENESS, NEEDLESS_FENCE],
        "a paused node drops out of membership and resumes still running its services; as it resumes, its old clstat is read as stale and it is fenced (rejoin)",
    ),
    (
        "classic",
        FaultKind::MonitorFreeze,
        &[HALT_BOUND, DOUBLE_OWNER, NEEDLESS_FENCE],
        "a frozen monitor cannot halt on quorum loss nor see a collision; resumed, it decides on reads taken before the freeze (W1)",
    ),
    (
        "classic",
        FaultKind::WriteFail,
        &[NEEDLESS_FENCE],
        "a failed status write is not retried before the next heartbeat, and one stale reading triggers STOMITH: a node whose writes just recovered is fenced",
    ),
    (
        "classic",
        FaultKind::OneWayPartition,
        &[DOUBLE_OWNER, NEEDLESS_FENCE],
        "classic trusts its own reads: a node others cannot read looks stale while it runs on",
    ),
    (
        "classic",
        FaultKind::HactlCut,
        &[LIVENESS],
        "issue 12: a cut hactl still parses and has the newest mtime, so it replicates and the groups of its lost half stop cluster-wide for good (ranked never adopts a cut copy)",
    ),
    (
        "classic",
        FaultKind::EditorWrite,
        &[LIVENESS],
        "issue 12: mtimes compare in whole seconds, so an editor's whole file can carry the same mtime as its half-written first part that another node already copied; on the tie each node keeps its own copy and the half stays adopted there (ranked never adopts an unsettled hand edit)",
    ),
    // `ranked` with a fence command (issue 9's target: no double owner
    // and no needless fence under any fault kind). One documented
    // exception, as in sim_ranked.rs:
    (
        RANKED_FENCE,
        FaultKind::SlowFs,
        &[NEEDLESS_FENCE],
        "fs visibility delays beyond the lease's budget (about 600 ms with the defaults; slow-fs \
         draws up to ~9 s here): a healthy node's heartbeats are not acknowledged in time, its \
         lease lapses (its services are killed) and the others fence it. The ground-truth \
         `healthy` ignores fs delays, so the fence counts as needless; ranked trades \
         availability for safety here (never a double owner)",
    ),
    // `ranked` with the watchdog only (no fence command): issue 9 allows
    // a double owner under `node-pause` alone, because a whole-node pause
    // stops the watchdog with the monitor, the lease runs out on the
    // others' clocks, they take over, and the node resumes still running
    // its services until its monitor sees the lapsed lease.
    (
        RANKED_WATCHDOG,
        FaultKind::NodePause,
        &[DOUBLE_OWNER],
        "a whole-node pause (a VM pause) stops the process watchdog too: the others take over \
         after the lease wait, and the paused node resumes still running its services for up to \
         a heartbeat period (issue 9: a pause defeats a process watchdog; a fence does not)",
    ),
];

/// Invariants `policy` (a [`label`]) may break under `kinds`.
fn allowed(policy: &str, kinds: &[FaultKind]) -> BTreeSet<&'static str> {
    ALLOWED
        .iter()
        .filter(|(p, k, _, _)| *p == policy && kinds.contains(k))
        .flat_map(|(_, _, inv, _)| inv.iter().copied())
        .collect()
}

fn rng_seed() -> RngSeed {
    let seed = std::env::var("CLINIT_SIM_PROPTEST_SEED").ok().and_then(|s| s.parse().ok());
    RngSeed::Fixed(seed.unwrap_or(2026))
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Classic cases (`CLINIT_SIM_SEEDS`, default 300).
fn cases() -> u32 {
    env_u32("CLINIT_SIM_SEEDS", 300)
}

/// Ranked cases (`CLINIT_SIM_RANKED_SEEDS`, default 24), each run under
/// both ranked setups. `ranked` reads every member every heartbeat period
/// (250 ms), about 100 times classic's work per simulated minute, so its
/// cases are short (see [`Setting::RANKED`]).
fn ranked_cases() -> u32 {
    env_u32("CLINIT_SIM_RANKED_SEEDS", 24)
}

fn policies() -> Vec<PolicyConfig> {
    vec![PolicyConfig::default(), ranked(true), ranked(false)]
}

/// `ranked` with a fence command (`--policy
/// '{"policy":"ranked","fence_command":true}'`), or with the watchdog
/// only (`{"policy":"ranked"}`: the watchdog is on by default).
fn ranked(fence_command: bool) -> PolicyConfig {
    PolicyConfig::Ranked(RankedParams { fence_command, ..RankedParams::default() })
}

/// The name [`ALLOWED`] lists a policy under: `classic`, `ranked+fence`
/// (a fence command) or `ranked+watchdog` (the watchdog alone).
fn label(policy: &PolicyConfig) -> &'static str {
    match policy {
        PolicyConfig::Ranked(p) if p.fence_command => RANKED_FENCE,
        PolicyConfig::Ranked(_) => RANKED_WATCHDOG,
        _ => "classic",
    }
}

/// Whether a fence kills (`--param fence_kills`) for `policy`: drawn for
/// classic (its original's default hook only logs) and for ranked with
/// the watchdog only (it never fences), but always true for ranked with a
/// fence command. Issue 9 defines a fence command's success as "the
/// target's services are dead" (the simulator reports success only once
/// its kill has landed): a hook that reports success and kills nothing is
/// no fence, and under `node-pause` it lets the paused node resume with
/// its services beside the taker's (double-owner in 5 of 12 census seeds).
fn fence_kills_for(policy: &PolicyConfig, drawn: bool) -> bool {
    match policy {
        PolicyConfig::Ranked(p) if p.fence_command => true,
        _ => drawn,
    }
}

/// The length and phases of one case, per policy.
#[derive(Clone, Copy)]
struct Setting {
    /// Simulated length of a run.
    duration: Millis,
    /// Fault-free start (`--param warmup`); `None`: the default (120 s).
    warmup: Option<Millis>,
    /// Liveness bound (`--param liveness`); `None`: the default.
    liveness: Option<Millis>,
    /// Final fault-free phase (`--param quiet`); `None`: the default.
    quiet: Option<Millis>,
    /// Episodes per hour per kind: the range drawn from.
    rates: (f64, f64),
    /// Longest episode (`len=`); `None`: each kind's default.
    max_len: Option<Millis>,
}

impl Setting {
    /// Classic: 40 minutes with the default phases.
    const CLASSIC: Setting = Setting {
        duration: Millis(40 * 60 * 1000),
        warmup: None,
        liveness: None,
        quiet: None,
        rates: (0.5, 8.0),
        max_len: None,
    };

    /// Ranked: 5 simulated minutes. A lease is 2 s and a failover takes
    /// seconds, so 20 s of warm-up settle the cluster; faults fall in
    /// the 20 s..170 s window (episodes at most 60 s long, 20 to 80 per
    /// hour: 0.8 to 3.3 per kind and run); then a quiet phase of 130 s
    /// in which every wanted group must run again within 100 s.
    const RANKED: Setting = Setting {
        duration: Millis(5 * 60 * 1000),
        warmup: Some(Millis(20_000)),
        liveness: Some(Millis(100_000)),
        quiet: Some(Millis(130_000)),
        rates: (20.0, 80.0),
        max_len: Some(Millis(60_000)),
    };

    fn of(policy: &PolicyConfig) -> Setting {
        match policy {
            PolicyConfig::Ranked(_) => Setting::RANKED,
            _ => Setting::CLASSIC,
        }
    }

    fn config(
        self,
        policy: PolicyConfig,
        nodes: u32,
        groups: u32,
        kinds: Vec<KindSpec>,
    ) -> SimConfig {
        let mut cfg = SimConfig {
            nodes,
            groups,
            duration: self.duration,
            policy,
            faults: FaultChoice::Plan { kinds },
            ..SimConfig::default()
        };
        if let Some(w) = self.warmup {
            cfg.world.warmup = w;
        }
        cfg.world.liveness = self.liveness.or(cfg.world.liveness);
        cfg.world.quiet = self.quiet.or(cfg.world.quiet);
        cfg
    }
}

/// One kind of any kind at a random rate and intensity (`f` scales the
/// default intensity; probabilities are capped at 0.9).
fn spec(kind: FaultKind, rate: f64, f: f64, max_len: Option<Millis>) -> KindSpec {
    let FaultChoice::Plan { kinds } = FaultChoice::parse(kind.name()).expect("every kind parses")
    else {
        unreachable!("a kind parses to a plan")
    };
    let mut spec = kinds[0].clone();
    spec.rate_per_hour = rate;
    if let Some(cap) = max_len {
        spec.max_len = spec.max_len.min(cap);
    }
    spec.size = match kind {
        FaultKind::ReadFailures | FaultKind::StaleReads if f < 0.5 => SAFE_READ_P * f * 2.0,
        FaultKind::Skew if f < 0.5 => SAFE_SKEW_MS * f * 2.0,
        k if k.size_is_fraction() => (spec.size * f * 2.0).min(0.9),
        _ => spec.size * (0.25 + f * 1.75),
    };
    spec
}

fn kind(setting: Setting) -> impl Strategy<Value = KindSpec> {
    let (lo, hi) = setting.rates;
    (0..FaultKind::ALL.len(), lo..hi, 0.05f64..1.0)
        .prop_map(move |(k, rate, f)| spec(FaultKind::ALL[k], rate, f, setting.max_len))
}

/// Run `cfg` fast (no trace, no event log); on a broken invariant that
/// its policy is not allowed, run it again with the event log for the
/// report's trace excerpts.
fn check(cfg: &SimConfig, seed: u64) -> Result<(), String> {
    let r = run(cfg, seed, RunOptions::fast()).map_err(|e| e.to_string())?;
    let FaultChoice::Plan { kinds } = &cfg.faults else { return Ok(()) };
    let kinds: Vec<FaultKind> = kinds.iter().map(|k| k.kind).collect();
    let name = label(&cfg.policy);
    let ok = allowed(name, &kinds);
    let broken: Vec<&String> =
        r.tracker.counts().keys().filter(|k| !ok.contains(k.as_str())).collect();
    if broken.is_empty() {
        return Ok(());
    }
    let full = run(cfg, seed, RunOptions::default()).map_err(|e| e.to_string())?;
    Err(format!(
        "seed {seed}, policy {name}, {} nodes, {} groups, fence_kills {}, kinds {:?}: {broken:?} \
         broke (allowed: {ok:?}):\n{}",
        cfg.nodes,
        cfg.groups,
        cfg.world.fence_kills,
        cfg.faults,
        report::render(&full)
    ))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        rng_seed: rng_seed(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_fault_kind_keeps_every_invariant_but_the_documented_weaknesses(
        seed in any::<u64>(),
        nodes in 2u32..=6,
        groups in 1u32..=4,
        kinds in proptest::collection::vec(kind(Setting::CLASSIC), 1..=2),
        fence_kills in any::<bool>(),
    ) {
        let mut cfg = Setting::CLASSIC.config(PolicyConfig::default(), nodes, groups, kinds);
        cfg.world.fence_kills = fence_kills;
        let verdict = check(&cfg, seed);
        prop_assert!(verdict.is_ok(), "{}", verdict.err().unwrap_or_default());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: ranked_cases(),
        rng_seed: rng_seed(),
        failure_persistence: None,
        // A shrink step costs a ranked run; a failure prints the whole
        // case, and `clinit-sim shrink` minimises its schedule.
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    })]

    /// The same suite for `ranked`, with a fence command and with the
    /// watchdog only, on the same draws (2 to 5 nodes, 1 to 3 groups).
    #[test]
    fn ranked_keeps_every_invariant_but_the_documented_weaknesses(
        seed in any::<u64>(),
        nodes in 2u32..=5,
        groups in 1u32..=3,
        kinds in proptest::collection::vec(kind(Setting::RANKED), 1..=2),
        fence_kills in any::<bool>(),
    ) {
        for fence_command in [true, false] {
            let mut cfg =
                Setting::RANKED.config(ranked(fence_command), nodes, groups, kinds.clone());
            cfg.world.fence_kills = fence_kills_for(&cfg.policy, fence_kills);
            let verdict = check(&cfg, seed);
            prop_assert!(verdict.is_ok(), "{}", verdict.err().unwrap_or_default());
        }
    }
}

/// The safe kinds at safe intensities keep every safety invariant for
/// classic (crash/restart, failed and stale reads up to 5 %, skew up to
/// 15 s), but for the rejoin weakness under stale reads.
#[test]
fn classic_keeps_safety_under_the_safe_kinds() {
    let mut failures = Vec::new();
    for seed in 1..=60u64 {
        let cfg = SimConfig {
            nodes: 2 + (seed % 5) as u32,
            groups: 1 + (seed % 4) as u32,
            duration: Millis::from_secs(40 * 60),
            faults: FaultChoice::parse("safe").expect("parses"),
            ..SimConfig::default()
        };
        let r = run(&cfg, seed, RunOptions::fast()).expect("valid");
        let broken: Vec<&String> =
            r.tracker.counts().keys().filter(|k| *k != NEEDLESS_FENCE).collect();
        if !broken.is_empty() {
            failures.push((seed, broken.into_iter().cloned().collect::<Vec<_>>()));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// Every kind `--faults` names runs and produces episodes.
#[test]
fn every_kind_runs() {
    for kind in FaultKind::ALL {
        let cfg = SimConfig {
            nodes: 3,
            groups: 2,
            duration: Millis::from_secs(30 * 60),
            faults: FaultChoice::parse(&format!("{}:rate=12", kind.name())).expect("parses"),
            ..SimConfig::default()
        };
        let r = run(&cfg, 5, RunOptions::fast()).expect("valid");
        assert!(
            r.schedule.faults.iter().any(|f| f.fault.kind() == kind),
            "{kind}: no episode drawn"
        );
        assert!(r.tracker.metrics.cycles > 100, "{kind}: the cluster ran");
    }
}

/// Which invariants each kind breaks alone, per policy (how [`ALLOWED`]
/// was established): 100 seeds per kind for classic, 12 for each ranked
/// setup (`CLINIT_SIM_CENSUS_SEEDS` overrides both). Ignored: a census,
/// not a check.
#[test]
#[ignore]
fn census() {
    if std::env::var("CLINIT_SIM_CENSUS").is_err() {
        return;
    }
    let only = std::env::var("CLINIT_SIM_CENSUS_POLICY").ok();
    for policy in policies() {
        let name = label(&policy);
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let setting = Setting::of(&policy);
        let default_seeds = if name == "classic" { 100 } else { 12 };
        let seeds = u64::from(env_u32("CLINIT_SIM_CENSUS_SEEDS", default_seeds));
        for kind in FaultKind::ALL {
            let mut seen = std::collections::BTreeMap::<String, Vec<u64>>::new();
            // Classic: 2 to 6 nodes, 1 to 4 groups, 4 episodes an hour;
            // ranked: 2 to 5 nodes, 1 to 3 groups, 50 an hour.
            let (rate, n, g) = if name == "classic" { (4.0, 5, 4) } else { (50.0, 4, 3) };
            for seed in 1..=seeds {
                let kinds = vec![spec(kind, rate, 0.5, setting.max_len)];
                let (nodes, groups) = (2 + (seed % n) as u32, 1 + (seed % g) as u32);
                let mut cfg = setting.config(policy.clone(), nodes, groups, kinds);
                cfg.world.fence_kills = fence_kills_for(&cfg.policy, seed % 2 == 0);
                let r = run(&cfg, seed, RunOptions::fast()).expect("valid");
                for k in r.tracker.counts().keys() {
                    seen.entry(k.clone()).or_default().push(seed);
                }
            }
            println!(
                "{name} {kind}: {seen:?} (seeds out of {seeds}); allowed {:?}",
                allowed(name, &[kind])
            );
        }
    }
}

/// A ranked case the census found (seed 5 of `hactl-edit`, 3 nodes, 3
/// groups), shrunk with `clinit-sim shrink` to two overlapping operator
/// edits on two nodes: node 2 sets g02 to `stop` at 148.5 s for 26.1 s,
/// node 3 sets g01 to `stop` at 158.2 s for 13.0 s. Both are still open
/// when the quiet phase (170 s) restores them. It used to restore each on
/// its own node at the same instant: two concurrent hand edits from one
/// base, which `ranked`'s versioned replicas resolve by keeping one whole
/// file (equal versions, content-hash tie-break), so g01's restoration was
/// lost and g01 stayed down 170-300 s while the tracker wanted it. The
/// simulator now restores every open edit as one operator action on one
/// node; every policy keeps liveness. Reproduce: `clinit-sim run --seed 5
/// --nodes 3 --groups 3 --duration 5m --policy ranked --faults hactl-edit
/// --param warmup=20s --param liveness=100s --param quiet=130s --schedule
/// FILE` with the schedule below in FILE.
#[test]
fn ranked_restarts_a_group_after_two_overlapping_hactl_edits() {
    let schedule: clinit_sim::faults::Schedule =
        serde_json::from_str(HACTL_EDIT_5).expect("schedule");
    for policy in [ranked(true), ranked(false), PolicyConfig::default()] {
        let mut cfg = Setting::RANKED.config(policy.clone(), 3, 3, vec![]);
        cfg.faults = FaultChoice::parse("hactl-edit").expect("parses");
        cfg.schedule = Some(schedule.clone());
        let r = run(&cfg, 5, RunOptions::default()).expect("valid");
        assert!(r.tracker.metrics.cycles > 100, "the cluster ran");
        assert!(
            r.tracker.counts().is_empty(),
            "{}: {:?}\n{}",
            label(&policy),
            r.tracker.counts(),
            report::render(&r)
        );
    }
}

/// The shrunk schedule of [`ranked_restarts_a_group_after_two_overlapping_hactl_edits`].
const HACTL_EDIT_5: &str = r#"{"kinds":["hactl-edit"],"faults":[
  {"at":148464,"fault":"hactl-edit","node":2,"group":"g02","level":"stop","len":26109},
  {"at":158164,"fault":"hactl-edit","node":3,"group":"g01","level":"stop","len":13003}]}"#;

/// A ranked+fence case the suite found with `CLINIT_SIM_RANKED_SEEDS=64`
/// (proptest seed 2026; the default 24 cases do not reach it): 4 nodes, 2
/// groups, `fence_kills=true`, seed 8185498729148515470, write-fail and
/// slow-fs, shrunk by `clinit-sim shrink` to one episode: the shared
/// filesystem's visibility delay is 7.3 s for 4.0 s from 76.8 s. At 90.8 s
/// node 3 starts g01 and g02 under claims granted by nodes 1 and 3; at
/// 91.2 s node 2 acquires lease epoch 2 and plans, tests and starts both:
/// both groups run on nodes 2 and 3 at once (0.148 s after shrinking,
/// 7.4 s in the unshrunk run). A double owner with a fence command is no
/// documented weakness of `ranked` (issue 9 allows none). The cause:
/// both nodes fenced the tie-breaker (node 1) without seeing each other's
/// fence, and each counted its vote ({2, 1} and {3, 1}). Fixed: a
/// tie-breaker's fence vote only completes an exact half of the voters
/// (`Rules::tie_vote_completes_half`). The delay is beyond 2 × H (H = 2
/// s), the envelope issue 9 measures, but late writes are exactly what
/// its claims rule must survive. Reproduce: `clinit-sim run --seed
/// 8185498729148515470 --nodes 4 --groups 2 --duration 5m --param
/// warmup=20s --param liveness=100s --param quiet=130s --param
/// fence_kills=true --policy '{"policy":"ranked","fence_command":true}'
/// --faults slow-fs --schedule FILE` with the schedule below in FILE.
#[test]
fn ranked_with_a_fence_keeps_one_owner_through_a_long_fs_delay() {
    let schedule: clinit_sim::faults::Schedule =
        serde_json::from_str(SLOW_FS_4_NODES).expect("schedule");
    let mut cfg = Setting::RANKED.config(ranked(true), 4, 2, vec![]);
    cfg.faults = FaultChoice::parse("slow-fs").expect("parses");
    cfg.schedule = Some(schedule);
    cfg.world.fence_kills = true;
    let r = run(&cfg, 8_185_498_729_148_515_470, RunOptions::default()).expect("valid");
    assert!(r.tracker.metrics.cycles > 100, "the cluster ran");
    let broken: Vec<&String> =
        r.tracker.counts().keys().filter(|k| k.as_str() != NEEDLESS_FENCE).collect();
    assert!(broken.is_empty(), "{broken:?}\n{}", report::render(&r));
}

/// The shrunk schedule of
/// [`ranked_with_a_fence_keeps_one_owner_through_a_long_fs_delay`].
const SLOW_FS_4_NODES: &str = r#"{"kinds":["slow-fs"],"faults":[
  {"at":76773,"fault":"slow-fs","delay":7299,"len":4046}]}"#;

/// A ranked+fence case the suite found with `CLINIT_SIM_PROPTEST_SEED=11
/// CLINIT_SIM_RANKED_SEEDS=40`: 4 nodes, 1 group, `fence_kills=true`,
/// seed 3607112923310031772, partition and slow-fs (1.9 s, within issue
/// 9's 2 × H envelope), shrunk by `clinit-sim shrink --invariant
/// double-owner` to two partitions alone: nodes {1, 2} | {3, 4} from
/// 66.9 s for 27.4 s, then {2, 4} | {1, 3} from 92.7 s for 11.5 s. Node 2
/// fences node 1 as the lost tie-breaker of an exact half (99.5 s),
/// acquires lease epoch 2 at 103.8 s and starts g01 while node 3 still
/// runs it: g01 on nodes 2 and 3 at once for 0.376 s at 103.8 s. No
/// documented weakness of `ranked` with a fence command. Node 3 had
/// fenced node 1 too, and both counted its vote; fixed by the same half
/// rule as the case above. Reproduce: `clinit-sim run --seed
/// 3607112923310031772 --nodes 4 --groups 1 --duration 5m --param
/// warmup=20s --param liveness=100s --param quiet=130s --param
/// fence_kills=true --policy '{"policy":"ranked","fence_command":true}'
/// --faults partition --schedule FILE` with the schedule below in FILE.
#[test]
fn ranked_with_a_fence_keeps_one_owner_through_two_exact_half_partitions() {
    let schedule: clinit_sim::faults::Schedule =
        serde_json::from_str(PARTITIONS_4_NODES).expect("schedule");
    let mut cfg = Setting::RANKED.config(ranked(true), 4, 1, vec![]);
    cfg.faults = FaultChoice::parse("partition").expect("parses");
    cfg.schedule = Some(schedule);
    cfg.world.fence_kills = true;
    let r = run(&cfg, 3_607_112_923_310_031_772, RunOptions::default()).expect("valid");
    assert!(r.tracker.metrics.cycles > 100, "the cluster ran");
    assert!(r.tracker.counts().is_empty(), "{:?}\n{}", r.tracker.counts(), report::render(&r));
}

/// The shrunk schedule of
/// [`ranked_with_a_fence_keeps_one_owner_through_two_exact_half_partitions`]
/// (`sides[n]`: node n's side; index 0 unused).
const PARTITIONS_4_NODES: &str = r#"{"kinds":["partition"],"faults":[
  {"at":66939,"fault":"partition","sides":[0,1,1,0,0],"len":27440},
  {"at":92685,"fault":"partition","sides":[0,0,1,0,1],"len":11452}]}"#;

/// A ranked+watchdog case the suite found with `CLINIT_SIM_PROPTEST_SEED=19
/// CLINIT_SIM_RANKED_SEEDS=40`: 2 nodes, 3 groups, seed
/// 12279141920879986323, node-pause and history-slow, shrunk by
/// `clinit-sim shrink --invariant liveness` to two pauses: node 1 for
/// 11.8 s from 94.4 s, node 2 for 1.8 s from 104.5 s. g01 is then down
/// from 106.4 s to the end (300 s), through the whole quiet phase with
/// both nodes healthy: liveness fails. With a fence command the same
/// schedule recovers within 1.2 s. The cause: node 1 proved node 2's
/// epoch void (revoked, lease wait passed) while node 2 was paused and
/// listed down; node 2 resumed, node 1 lifted its revocation and node 2
/// acquired a new lease on node 1's acknowledgements in the same epoch,
/// but the void stuck, and node 1 never granted it a claim again. Lifting
/// a revocation now forgets the void it proved (`Rules::lift_clears_void`;
/// lock-step twins in the engine's interleavings:
/// `a_node_void_in_its_old_epoch_holds_claims_in_a_new_lease`).
/// Reproduce: `clinit-sim run
/// --seed 12279141920879986323 --nodes 2 --groups 3 --duration 5m --param
/// warmup=20s --param liveness=100s --param quiet=130s --policy ranked
/// --faults node-pause --schedule FILE` with the schedule below in FILE.
#[test]
fn ranked_with_the_watchdog_restarts_a_group_after_two_node_pauses() {
    let schedule: clinit_sim::faults::Schedule =
        serde_json::from_str(PAUSES_2_NODES).expect("schedule");
    for fence_command in [false, true] {
        let mut cfg = Setting::RANKED.config(ranked(fence_command), 2, 3, vec![]);
        cfg.faults = FaultChoice::parse("node-pause").expect("parses");
        cfg.schedule = Some(schedule.clone());
        cfg.world.fence_kills = true;
        let r = run(&cfg, 12_279_141_920_879_986_323, RunOptions::default()).expect("valid");
        assert!(r.tracker.metrics.cycles > 100, "the cluster ran");
        let broken: Vec<&String> =
            r.tracker.counts().keys().filter(|k| k.as_str() != DOUBLE_OWNER).collect();
        assert!(broken.is_empty(), "{broken:?}\n{}", report::render(&r));
    }
}

/// The shrunk schedule of
/// [`ranked_with_the_watchdog_restarts_a_group_after_two_node_pauses`].
const PAUSES_2_NODES: &str = r#"{"kinds":["node-pause"],"faults":[
  {"at":94438,"fault":"node-pause","node":1,"len":11820},
  {"at":104545,"fault":"node-pause","node":2,"len":1845}]}"#;

#[test]
fn allowances_name_known_invariants() {
    let known = [DOUBLE_OWNER, FAILED_TEST, HALT_BOUND, LIVENESS, NEEDLESS_FENCE];
    for (_, _, inv, why) in ALLOWED {
        assert!(!why.is_empty());
        assert!(inv.iter().all(|i| known.contains(i)), "{inv:?}");
    }
}
