//! A scenario: cluster size, workload, policy, world physics and faults.
//!
//! It is plain serde data because it is written into every trace header:
//! a trace plus its header is enough to re-run the world that produced it.
//! Parameters can be overridden by name (`--param timeout=30s`), which is
//! how sweeps and what-if replays vary one thing at a time.

use crate::faults::{FaultChoice, Schedule};
use crate::units::{parse_duration, DurationError};
use clinit_engine::monitor::ranked::ParamsError;
use clinit_engine::monitor::{AnyPolicy, Policy, PolicyConfig};
use clinit_engine::time::Millis;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("unknown parameter {0:?} (policy: timeout, cycletime, balance, quorum, stomith_grace, backoff, quorum_loss_sleep; ranked: lease, heartbeat, kill_bound, suspect_after, read_deadline, rank_slot, tie_fence_delay, fence_command, watchdog; world: fs (local|shared), fs_delay, fs_jitter, detect, detect_down, detect_up, detect_jitter, read_latency, read_jitter, fence_kills, fence_delay, min_cycle, halt_bound, liveness, quiet, start_spread, warmup, membership, read_timeout, fs_delay_cap, drop_faults, fence_reboot, fail_fraction, nodes, groups, duration)")]
    UnknownParam(String),
    /// A policy parameter the chosen policy does not have (`--param
    /// timeout=30` under ranked).
    #[error("--param {key}: the {policy} policy has no parameter {key} (its parameters: {keys})")]
    NotForPolicy { key: String, policy: String, keys: String },
    #[error("parameter {key}: bad value {value:?}: {why}")]
    BadValue { key: String, value: String, why: String },
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("bad policy {text:?}: {why} (give `classic` or JSON like {{\"policy\":\"classic\",\"timeout\":30000}})")]
    Policy { text: String, why: String },
    /// A policy value out of its range, from `--policy` JSON, `--param`
    /// or a trace header (`field` is the JSON key).
    #[error("policy {policy}: {field} = {value}: {why}")]
    PolicyRange { policy: &'static str, field: &'static str, value: String, why: String },
    #[error("bad cltab:\n{0}")]
    Cltab(String),
    #[error("bad hactl:\n{0}")]
    Hactl(String),
    /// `at` is `FILE:LINE: cltab entry "TAG"`.
    #[error("{at}: {source}")]
    Command {
        at: String,
        #[source]
        source: crate::command::CommandError,
    },
    #[error("{0}")]
    Faults(String),
    #[error("bad fault schedule: {0}")]
    Schedule(String),
    #[error("unknown invariant {name:?} (known: {known})")]
    UnknownInvariant { name: String, known: String },
    #[error("the cluster needs at least one node")]
    NoNodes,
    #[error("no group {group:?} in the workload (groups: {known})")]
    NoSuchGroup { group: String, known: String },
    #[error("node count {0} is too large (at most 1000)")]
    TooManyNodes(u32),
    /// `--groups 0` with the generated workload (the message of the
    /// empty cltab it produced spoke of a truncated file).
    #[error("--groups 0: the generated workload needs at least one group (1 to {MAX_GROUPS})")]
    NoGroups,
    /// More generated groups than [`MAX_GROUPS`].
    #[error("--groups {0} is too many (at most {MAX_GROUPS})")]
    TooManyGroups(u32),
    #[error("{0} is too long (at most a year, 8760h)")]
    TooLong(String),
    /// The run's phases do not fit its duration (see
    /// [`SimConfig::check_phases`]); the text names the values and what to
    /// give instead.
    #[error("{0}")]
    Phases(String),
    /// One `--param` key given twice ([`distinct_params`]).
    #[error("--param {key} given twice ({first} and {second}): give each parameter once")]
    DuplicateParam { key: String, first: String, second: String },
    /// An open-loop what-if under another policy than the recorded one:
    /// the recorded inputs are what the recorded policy asked for
    /// (classic reads every node's files each cycle; ranked exchanges
    /// heartbeats, acknowledgements and claims), so the other policy's
    /// decisions on them, and their counts, mean nothing.
    #[error(
        "--policy {what_if} on a trace recorded under {recorded}: an open-loop what-if feeds the \
         recorded inputs, which only the recorded policy asked for, to the other policy, so its \
         decisions would mean nothing; add --rerun to re-simulate the scenario and seed under \
         the other policy (simulator traces only)"
    )]
    CrossPolicy { recorded: String, what_if: String },
}

/// The world parameters [`SimConfig::set`] takes (the simulated world and
/// the run, not the policy): an open-loop what-if (`replay --param`) cannot
/// change them, only `replay --rerun` can.
pub const WORLD_PARAMS: &[&str] = &[
    "fs",
    "fs_delay",
    "fs_jitter",
    "fs_delay_cap",
    "detect",
    "detect_down",
    "detect_up",
    "detect_jitter",
    "read_latency",
    "read_jitter",
    "read_timeout",
    "membership",
    "fence_kills",
    "fence_delay",
    "fence_reboot",
    "min_cycle",
    "halt_bound",
    "liveness",
    "quiet",
    "start_spread",
    "warmup",
    "drop_faults",
    "fail_fraction",
    "nodes",
    "groups",
    "duration",
];

/// The most generated groups (`--groups`, `--param groups`). Each group
/// is a cltab entry that every node's driver reads and judges every cycle,
/// so the cost of a run grows with nodes × groups; `run --groups 100000`
/// ran for hours printing nothing (issue 8's new-user test). 1000 is the
/// node cap's size and twenty times the benchmark's 50 groups.
pub const MAX_GROUPS: u32 = 1000;

/// The longest simulated run: a year. A bigger `--duration` (or
/// `--crash-at`) is a typo, and it would run for days printing nothing.
pub const MAX_DURATION: Millis = Millis(365 * 24 * 3_600_000);

/// Where each node's membership comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipModel {
    /// An outside source (openMosix `/proc/hpc`): each node's view follows
    /// the truth after `detect_down`/`detect_up` + jitter.
    #[default]
    Oracle,
    /// Heartbeat files on the shared filesystem, written when the driver
    /// commands it (every third of `--timeout`) and judged by the driver:
    /// a node is up while its heartbeat is no older than the timeout, by
    /// the reader's clock. Detection then follows `--timeout` exactly as in
    /// production.
    Heartbeat,
}

/// The physics of the simulated world (defaults in [`WorldParams::default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorldParams {
    /// Shared-fs visibility delay of a write to other nodes.
    pub fs_delay: Millis,
    /// Extra uniform visibility delay `[0, fs_jitter)`.
    pub fs_jitter: Millis,
    /// Membership notices a death or a cut this long after it.
    pub detect_down: Millis,
    /// Membership notices a (re)appearing node this long after it.
    pub detect_up: Millis,
    /// Extra uniform detection delay `[0, detect_jitter)`, per observer.
    pub detect_jitter: Millis,
    /// Time from a cycle's reads to its decision, `read_latency +
    /// U[0, read_jitter)` (slow nodes add to it). It also lengthens the
    /// cycle period, as in production, where the next cycle is timed from
    /// the end of this one; without it, whole-second sleeps would lock the
    /// nodes' phases together forever.
    pub read_latency: Millis,
    pub read_jitter: Millis,
    /// STOMITH really kills the target (after `fence_delay`); otherwise it
    /// only logs, like the original's default hook.
    pub fence_kills: bool,
    pub fence_delay: Millis,
    /// Shortest pause between two cycles (production's `MIN_CYCLE`).
    pub min_cycle: Millis,
    /// A node that lost quorum must have stopped every group within this.
    pub halt_bound: Millis,
    /// After the faults stop, every wanted group must run on exactly one
    /// eligible node within this (`None`: 180 s + 6 s per node).
    pub liveness: Option<Millis>,
    /// Length of the final fault-free phase (`None`: liveness + 60 s).
    pub quiet: Option<Millis>,
    /// Nodes boot at `U[0, start_spread)`.
    pub start_spread: Millis,
    /// No faults before this (the cluster places its groups first).
    pub warmup: Millis,
    /// Where membership comes from (`membership=oracle|heartbeat`).
    pub membership: MembershipModel,
    /// The drivers' read deadline (`None`: production's default, a third
    /// of the timeout between 1 and 10 s).
    pub read_timeout: Option<Millis>,
    /// The longest shared-filesystem delay a drawn fault may impose
    /// (`fs_delay_cap=500ms`; `None`: as drawn, up to about 10 s for
    /// `slow-fs`, plus its jitter of up to half that). It caps the
    /// visibility delay of `slow-fs` and `history-slow` episodes after the
    /// draw, and, while a `slow-fs` episode is under way, every write's
    /// visibility delay, jitter included (never below the healthy
    /// `fs_delay + fs_jitter`), so a capped run keeps the episodes, times,
    /// nodes and random draws of the same seed uncapped (see
    /// `Schedule::cap_fs_delays`). It is how issue 9's availability row,
    /// "random faults whose fs delays stay <= H/4", is measured, and how
    /// the unavailability-against-fs-delay curve is swept. A given
    /// `--schedule` is used as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_delay_cap: Option<Millis>,
    /// Fault kinds whose episodes are removed from a drawn schedule
    /// (`drop_faults=slow-node+read-hang`; `+` separates kinds, as `,`
    /// separates the values of a swept parameter). An ablation: the other
    /// episodes keep their times, nodes and sizes, so the difference
    /// between a run with and without a kind, seed for seed, is what that
    /// kind's episodes cost (the report's per-kind attribution only says
    /// what was under way at the time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_faults: Vec<crate::faults::FaultKind>,
    /// A node that a fence killed boots again this long after the kill
    /// (`fence_reboot=60s`), as after a STONITH power cycle; `None` (the
    /// default): it stays down until the quiet phase, as when an operator
    /// must bring a shot node back by hand. With a majority quorum the
    /// difference matters: a 3-node cluster with one node shot runs on two,
    /// and any fault on either of them stops every group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_reboot: Option<Millis>,
}

impl Default for WorldParams {
    fn default() -> Self {
        WorldParams {
            fs_delay: Millis(50),
            fs_jitter: Millis(50),
            detect_down: Millis(10_000),
            detect_up: Millis(5_000),
            detect_jitter: Millis(2_000),
            read_latency: Millis(5),
            read_jitter: Millis(20),
            fence_kills: false,
            fence_delay: Millis(2_000),
            min_cycle: Millis(200),
            halt_bound: Millis(20_000),
            liveness: None,
            quiet: None,
            start_spread: Millis(2_000),
            warmup: Millis(120_000),
            membership: MembershipModel::Oracle,
            read_timeout: None,
            fs_delay_cap: None,
            drop_faults: Vec::new(),
            fence_reboot: None,
        }
    }
}

impl WorldParams {
    /// `fs=local`: the I/O timing of the real calibration cluster (three
    /// `mosha` processes on one machine sharing a local directory, the
    /// `calibrate_failover` test), measured rather than assumed.
    ///
    /// * **Visibility 0.** A `clstat` is replaced by rename on the
    ///   executor's own loop, so another node's next read sees it at once
    ///   (no network filesystem between them). The defaults' 50–100 ms
    ///   stand for a shared network filesystem (openMosix MFS, NFS).
    /// * **Read phase 1 ms + U[0, 8 ms).** Two successive decisions of
    ///   one real node are the whole-second sleep plus 0–32 ms apart
    ///   (80 intervals: median 2 ms, mean 4.7 ms, p90 14 ms; from the
    ///   `tell` times in the logs of 40 real runs, debug build, load
    ///   average 12–13), against the defaults' 5–25 ms. The mean is what
    ///   is matched: the chance of a collision grows with it.
    ///
    /// Why it matters: two survivors that both plan a group collide, and
    /// back off for up to 10 s, only when each reads the other's `clstat`
    /// before the other's plan is in it, i.e. when their cycles start less
    /// than (read phase + visibility) apart. With the defaults that window
    /// is 55–125 ms and 8 % of simulated failovers collided; on the real
    /// cluster it is a few ms and collisions are rare.
    pub fn local_dir(&mut self) {
        self.fs_delay = Millis::ZERO;
        self.fs_jitter = Millis::ZERO;
        self.read_latency = Millis(1);
        self.read_jitter = Millis(8);
    }

    /// `fs=shared`: the defaults' filesystem and read timing (a shared
    /// network filesystem), everything else unchanged.
    pub fn shared_fs(&mut self) {
        let d = WorldParams::default();
        self.fs_delay = d.fs_delay;
        self.fs_jitter = d.fs_jitter;
        self.read_latency = d.read_latency;
        self.read_jitter = d.read_jitter;
    }
}

/// What runs on the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Workload {
    /// `groups` groups, each a test entry and a respawned server; a
    /// `fail_fraction` of them have a test that fails on some nodes.
    Generated { fail_fraction: f64 },
    /// Given cltab and hactl texts (commands from the simulated vocabulary).
    Custom { cltab: String, hactl: String },
}

/// One simulated scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub nodes: u32,
    pub groups: u32,
    pub duration: Millis,
    pub policy: PolicyConfig,
    pub faults: FaultChoice,
    /// A concrete fault schedule to use instead of drawing one from
    /// `faults` (what `shrink` produces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub world: WorldParams,
    pub workload: Workload,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            groups: 3,
            duration: Millis::from_secs(3600),
            policy: PolicyConfig::default(),
            faults: FaultChoice::None,
            schedule: None,
            world: WorldParams::default(),
            workload: Workload::Generated { fail_fraction: 0.2 },
        }
    }
}

impl SimConfig {
    pub fn timeout(&self) -> Millis {
        AnyPolicy::new(self.policy.clone()).timeout()
    }

    pub fn liveness_bound(&self) -> Millis {
        self.world.liveness.unwrap_or(Millis(180_000 + 6_000 * u64::from(self.nodes)))
    }

    pub fn quiet(&self) -> Millis {
        self.world.quiet.unwrap_or(self.liveness_bound() + Millis(60_000))
    }

    /// When the fault-free phase begins.
    pub fn quiet_start(&self) -> Millis {
        self.duration.saturating_sub(self.quiet())
    }

    /// The policy's name (`classic`, ...).
    pub fn policy_name(&self) -> String {
        policy_name(&self.policy)
    }

    /// Apply one `key=value` override.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |why: &str| ConfigError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            why: why.to_string(),
        };
        let dur = || param_duration(key, value);
        let float = || {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| bad("expected a finite number"))
        };
        let int = || value.trim().parse::<u32>().map_err(|_| bad("expected a whole number"));
        let w = &mut self.world;
        match key {
            "fs_delay" => w.fs_delay = dur()?,
            "fs_jitter" => w.fs_jitter = dur()?,
            // A preset of the four timings above (later keys override it).
            "fs" => match value.trim() {
                "local" => w.local_dir(),
                "shared" => w.shared_fs(),
                _ => return Err(bad("expected local or shared")),
            },
            "detect" => {
                w.detect_down = dur()?;
                w.detect_up = w.detect_down;
            }
            "detect_down" => w.detect_down = dur()?,
            "detect_up" => w.detect_up = dur()?,
            "detect_jitter" => w.detect_jitter = dur()?,
            "read_latency" => w.read_latency = dur()?,
            "read_jitter" => w.read_jitter = dur()?,
            "fence_kills" => {
                w.fence_kills = value.parse().map_err(|_| bad("expected true or false"))?
            }
            "fence_delay" => w.fence_delay = dur()?,
            "min_cycle" => w.min_cycle = dur()?,
            "halt_bound" => w.halt_bound = dur()?,
            "liveness" => w.liveness = Some(dur()?),
            "quiet" => w.quiet = Some(dur()?),
            "start_spread" => w.start_spread = dur()?,
            "warmup" => w.warmup = dur()?,
            "read_timeout" => {
                let d = dur()?;
                if d == Millis::ZERO {
                    return Err(bad("must be above 0 (every read would time out)"));
                }
                w.read_timeout = Some(d)
            }
            "fs_delay_cap" => w.fs_delay_cap = Some(dur()?),
            "fence_reboot" => w.fence_reboot = Some(dur()?),
            "drop_faults" => {
                w.drop_faults = value
                    .split('+')
                    .map(str::trim)
                    .filter(|k| !k.is_empty() && *k != "none")
                    .map(|k| {
                        crate::faults::FaultKind::parse(k)
                            .ok_or_else(|| bad("expected fault kinds joined by +, or none"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "membership" => {
                w.membership = match value.trim() {
                    "oracle" => MembershipModel::Oracle,
                    "heartbeat" => MembershipModel::Heartbeat,
                    _ => return Err(bad("expected oracle or heartbeat")),
                }
            }
            "nodes" => self.nodes = int()?,
            "groups" => self.groups = int()?,
            "duration" => self.duration = dur()?,
            "fail_fraction" => {
                let f = float()?;
                if !(0.0..=1.0).contains(&f) {
                    return Err(bad("expected a fraction between 0 and 1"));
                }
                self.workload = Workload::Generated { fail_fraction: f };
            }
            _ => self.policy = set_policy_param(&self.policy, key, value)?,
        }
        Ok(())
    }

    /// Check what can be checked before running.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes == 0 {
            return Err(ConfigError::NoNodes);
        }
        if self.nodes > 1000 {
            return Err(ConfigError::TooManyNodes(self.nodes));
        }
        if matches!(self.workload, Workload::Generated { .. }) {
            if self.groups == 0 {
                return Err(ConfigError::NoGroups);
            }
            if self.groups > MAX_GROUPS {
                return Err(ConfigError::TooManyGroups(self.groups));
            }
        }
        if self.duration > MAX_DURATION {
            return Err(ConfigError::TooLong(format!("--duration {} s", self.duration.0 / 1000)));
        }
        check_policy(&self.policy)?;
        // classic's periods against the world's minimum cycle (the
        // executor never cycles faster, so a shorter timeout makes every
        // member stale between two reads, and a shorter cycle time is
        // silently the minimum).
        if let PolicyConfig::Classic(p) = &self.policy {
            let min = self.world.min_cycle;
            let range = |field, value: String, why: String| ConfigError::PolicyRange {
                policy: "classic",
                field,
                value,
                why,
            };
            if p.timeout < min {
                return Err(range(
                    "timeout",
                    format!("{} ms", p.timeout.0),
                    format!("below the minimum cycle ({} ms, min_cycle)", min.0),
                ));
            }
            if p.cycletime_secs * 1000.0 < min.0 as f64 {
                return Err(range(
                    "cycletime_secs (--param cycletime)",
                    format!("{} s", p.cycletime_secs),
                    format!("below the minimum cycle ({} ms, min_cycle)", min.0),
                ));
            }
        }
        Ok(())
    }
}

impl SimConfig {
    /// Check that the run's phases fit its duration, before running:
    /// `[0, warmup)` initial placement, `[warmup, quiet_start)` faults,
    /// `[quiet_start, duration)` the quiet phase, in which every wanted
    /// group must settle within the liveness bound.
    ///
    /// Refused (each message names the values and what to give instead):
    /// * a run that ends before the liveness deadline (`quiet_start +
    ///   liveness`): it cannot tell a slow placement from a stuck one, and
    ///   judged at its end it reported a false `liveness` violation (the
    ///   new-user test of issue 8: `run --duration 30s`);
    /// * faults asked for (`--faults` other than `none`, no `--schedule`)
    ///   with no time between the warm-up and the quiet phase: every
    ///   episode would be dropped without a word (`--param quiet=` or
    ///   `warmup=` as long as the run).
    ///
    /// Not part of [`SimConfig::validate`]: the library's own tests build
    /// short worlds on purpose; the command line (`run`, `sweep`, `shrink`,
    /// `replay --rerun`) checks every scenario it runs.
    pub fn check_phases(&self) -> Result<(), ConfigError> {
        self.check_phases_of(Source::CommandLine)
    }

    /// [`SimConfig::check_phases`] for a scenario from `source`: the
    /// messages name what the user gave (`--duration 1s`), or, for a
    /// trace header's scenario (`replay --rerun`), the recording's
    /// duration and `--param duration=` as the remedy (issue 8's new-user
    /// test read of a "--duration 1s" it never gave).
    pub fn check_phases_of(&self, source: Source) -> Result<(), ConfigError> {
        use crate::units::fmt_duration as d;
        let (dur_is, give_dur, faults) = match source {
            Source::CommandLine => ("--duration ", "--duration ", "--faults"),
            Source::Recording => {
                ("the recording's duration, ", "--param duration=", "the recording's fault plan")
            }
        };
        let live = self.liveness_bound();
        let quiet = self.quiet();
        let quiet_start = self.quiet_start();
        let bound = match self.world.liveness {
            Some(_) => "--param liveness".to_string(),
            None => format!("180 s + 6 s per node at {} nodes", self.nodes),
        };
        if quiet < live && self.duration > quiet {
            return Err(ConfigError::Phases(format!(
                "--param quiet={} is shorter than the liveness bound ({}, {bound}): liveness is \
                 judged a liveness bound after the quiet phase starts, so the run would end \
                 before it could be; give quiet={} or more (default: the liveness bound + 60 s)",
                d(quiet),
                d(live),
                d(live)
            )));
        }
        if quiet_start + live > self.duration {
            return Err(ConfigError::Phases(format!(
                "{dur_is}{} is too short to judge liveness: every wanted group must run on one \
                 eligible node within the liveness bound ({}, {bound}) of the quiet phase's start \
                 ({}), i.e. by {}, and the run ends at {}; give {give_dur}{} or more, or \
                 --param liveness={} or less",
                d(self.duration),
                d(live),
                d(quiet_start),
                d(quiet_start + live),
                d(self.duration),
                d(live),
                d(self.duration)
            )));
        }
        if self.faults != crate::faults::FaultChoice::None && self.schedule.is_none() {
            let from = self.world.warmup.min(quiet_start);
            if from >= quiet_start {
                return Err(ConfigError::Phases(format!(
                    "{faults}: this run has no time for faults: they start after the warm-up \
                     ({}, --param warmup) and end where the quiet phase starts (the run's last \
                     {}, --param quiet), and {dur_is}{} leaves nothing between the two; give \
                     {give_dur}above {}, or a shorter warmup or quiet",
                    d(self.world.warmup),
                    d(quiet),
                    d(self.duration),
                    d(self.world.warmup + quiet)
                )));
            }
        }
        Ok(())
    }
}

/// Where a scenario came from, for the words of its errors
/// ([`SimConfig::check_phases_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Options the user gave (`--duration`, `--faults`).
    CommandLine,
    /// A trace header's scenario (`replay --rerun`), with the user's
    /// `--param` overrides on top.
    Recording,
}

/// Range checks of a policy's values, whichever way they were given
/// (`--policy` JSON, `--param`, a trace header): what `--param` refuses,
/// JSON must refuse too. Classic: `timeout` above 0 ms; `cycletime_secs`
/// above 0 s; `balance` a number (below 0: never plan, a what-if the
/// replay tests use); `backoff_max_secs` 0 or more; `quorum_ratio`
/// a fraction in [0, 1] of the last good member count (0.6 = 60 %, the
/// 2003 original's rule; not a percentage). Ranked: its own constraints
/// ([`clinit_engine::monitor::ranked::RankedParams::validate`]: a heartbeat
/// above 0, a lease above three heartbeats plus the kill bound, ...).
pub fn check_policy(policy: &PolicyConfig) -> Result<(), ConfigError> {
    match policy {
        PolicyConfig::Classic(p) => {
            let range = |field, value: String, why: &str| ConfigError::PolicyRange {
                policy: "classic",
                field,
                value,
                why: why.to_string(),
            };
            if p.timeout.0 == 0 {
                return Err(range("timeout", "0 ms".into(), "must be above 0"));
            }
            let real = |field, v: f64, unit: &str, why: &str| {
                if v.is_finite() {
                    Ok(())
                } else {
                    Err(range(field, format!("{v}{unit}"), why))
                }
            };
            real("cycletime_secs (--param cycletime)", p.cycletime_secs, " s", "must be a number")?;
            real("balance", p.balance, "", "must be a number")?;
            real("quorum_ratio (--param quorum)", p.quorum_ratio, "", "must be a number")?;
            real(
                "backoff_max_secs (--param backoff)",
                p.backoff_max_secs,
                " s",
                "must be a number",
            )?;
            if p.cycletime_secs <= 0.0 {
                let v = format!("{} s", p.cycletime_secs);
                return Err(range(
                    "cycletime_secs (--param cycletime)",
                    v,
                    "must be above 0 (seconds)",
                ));
            }
            if p.backoff_max_secs < 0.0 {
                let v = format!("{} s", p.backoff_max_secs);
                return Err(range(
                    "backoff_max_secs (--param backoff)",
                    v,
                    "must be 0 or more (seconds)",
                ));
            }
            if !(0.0..=1.0).contains(&p.quorum_ratio) {
                let hint = if p.quorum_ratio > 1.0 && p.quorum_ratio <= 100.0 {
                    format!(
                        "a fraction of the last good member count in [0, 1], not a percentage \
                         (for {} % give {})",
                        p.quorum_ratio,
                        p.quorum_ratio / 100.0
                    )
                } else {
                    "a fraction of the last good member count in [0, 1] (0.6: quorum is lost \
                     below 60 %)"
                        .into()
                };
                return Err(range(
                    "quorum_ratio (--param quorum)",
                    p.quorum_ratio.to_string(),
                    &hint,
                ));
            }
            Ok(())
        }
        PolicyConfig::Ranked(p) => p.validate().map_err(|e| ConfigError::PolicyRange {
            policy: "ranked",
            field: ranked_field(&e),
            value: match &e {
                ParamsError::LeaseTooShort { lease, .. } => format!("{} ms", lease.0),
                ParamsError::ReadDeadline { read_deadline, .. } => {
                    format!("{} ms", read_deadline.0)
                }
                ParamsError::Suspect { suspect_after, .. } => format!("{} ms", suspect_after.0),
                ParamsError::ZeroHeartbeat => "0 ms".into(),
            },
            why: e.to_string(),
        }),
    }
}

/// The JSON key a ranked parameter error is about.
fn ranked_field(e: &ParamsError) -> &'static str {
    match e {
        ParamsError::LeaseTooShort { .. } => "lease",
        ParamsError::ReadDeadline { .. } => "read_deadline",
        ParamsError::Suspect { .. } => "suspect_after",
        ParamsError::ZeroHeartbeat => "heartbeat",
    }
}

/// The `policy` tag of a policy configuration.
pub fn policy_name(policy: &PolicyConfig) -> String {
    serde_json::to_value(policy)
        .ok()
        .and_then(|v| v.get("policy").and_then(|p| p.as_str()).map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

/// Parse `--policy`: a policy name (its defaults) or a JSON object.
/// Errors name the key, the value and what is allowed
/// ([`policy_from_value`]), refuse unknown keys, and range-check
/// ([`check_policy`]).
pub fn parse_policy(text: &str) -> Result<PolicyConfig, ConfigError> {
    let t = text.trim();
    let bad = |why: String| ConfigError::Policy { text: text.to_string(), why };
    let given: serde_json::Value = if t.starts_with('{') {
        let explain = |e| format!("not valid JSON: {}", crate::json_words::explain(&e));
        // A `Value` keeps the last of two equal keys: refuse them first.
        crate::json_words::no_duplicate_keys(t).map_err(|e| bad(explain(e)))?;
        serde_json::from_str(t).map_err(|e| bad(explain(e)))?
    } else {
        serde_json::json!({ "policy": t })
    };
    let policy = policy_from_value(&given).map_err(bad)?;
    // serde ignores unknown keys, so a typo (`fence_comand`) would run
    // silently without the setting: every key given must be one the
    // parsed policy has (all its fields serialise).
    let known = serde_json::to_value(&policy).map_err(|e| bad(e.to_string()))?;
    if let (Some(given), Some(known)) = (given.as_object(), known.as_object()) {
        if let Some(k) = given.keys().find(|k| !known.contains_key(*k)) {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            return Err(bad(format!("unknown key {k:?} (keys: {})", names.join(", "))));
        }
    }
    check_policy(&policy)?;
    Ok(policy)
}

/// The policies a `"policy"` key can name.
const POLICIES: &str = "classic, ranked";

/// A policy from its JSON (`--policy`, a trace header), each mistake said
/// in words that name the key, the value given and what is allowed
/// (`timeout = "30s": expected a whole number, ...`), not serde's
/// (`invalid type: string "30s", expected u64`). Keys the policy does not
/// have are ignored here ([`parse_policy`] refuses them; a trace header
/// from another version may carry some). Ranges are not checked
/// ([`check_policy`]).
pub fn policy_from_value(given: &serde_json::Value) -> Result<PolicyConfig, String> {
    use serde_json::Value;
    let Some(obj) = given.as_object() else {
        return Err(format!(
            "{given} is not a JSON object: expected a policy name or an object like \
             {{\"policy\":\"classic\",\"timeout\":30000}}"
        ));
    };
    let name = match obj.get("policy") {
        None => return Err(format!("no \"policy\" key (policies: {POLICIES})")),
        Some(Value::String(n)) => n.clone(),
        Some(v) => return Err(format!("policy = {v}: expected a policy name ({POLICIES})")),
    };
    let defaults = serde_json::from_value::<PolicyConfig>(serde_json::json!({ "policy": name }))
        .map_err(|_| format!("unknown policy {name:?} (policies: {POLICIES})"))?;
    let defaults = serde_json::to_value(&defaults).map_err(|e| e.to_string())?;
    for (key, value) in obj.iter().filter(|(k, _)| *k != "policy") {
        let Some(default) = defaults.get(key) else { continue };
        let expected = match default {
            Value::Bool(_) if !value.is_boolean() => "true or false",
            Value::Number(n) if n.is_u64() && !value.is_u64() => {
                "a whole number, 0 or more (durations in milliseconds, without a unit: 30000 \
                 is 30 s)"
            }
            Value::Number(_) if !value.is_number() => "a number",
            Value::String(_) if !value.is_string() => "a string",
            _ => continue,
        };
        return Err(format!("{key} = {value}: expected {expected}"));
    }
    // What the look above does not cover (a nested value): serde's words.
    serde_json::from_value(given.clone()).map_err(|e| e.to_string())
}

/// Set one policy parameter by its short name (durations as `30s`, the
/// classic cycle-time arithmetic in seconds).
pub fn set_policy_param(
    policy: &PolicyConfig,
    key: &str,
    value: &str,
) -> Result<PolicyConfig, ConfigError> {
    let bad =
        |why: String| ConfigError::BadValue { key: key.to_string(), value: value.to_string(), why };
    let (field, json) = match key {
        // Periods that must not be 0 (every node stale at once, a lease
        // that never holds, a loop with no period).
        "timeout" | "lease" | "heartbeat" | "suspect_after" | "read_deadline" => {
            let d = param_duration(key, value)?;
            if d.0 == 0 {
                return Err(bad("must be above 0".into()));
            }
            (key, serde_json::Value::from(d.0))
        }
        "stomith_grace" | "quorum_loss_sleep" => {
            (key, serde_json::Value::from(param_duration(key, value)?.0))
        }
        // ranked's other durations and switches.
        "kill_bound" | "rank_slot" | "tie_fence_delay" => {
            (key, serde_json::Value::from(param_duration(key, value)?.0))
        }
        "fence_command" | "watchdog" => {
            let b: bool = value.trim().parse().map_err(|_| bad("expected true or false".into()))?;
            (key, serde_json::Value::from(b))
        }
        "cycletime" | "cycletime_secs" | "balance" | "quorum" | "quorum_ratio" | "backoff"
        | "backoff_max_secs" => {
            let f: f64 = value.trim().parse().map_err(|_| bad("expected a number".into()))?;
            // `1e999` parses as infinity, which JSON cannot carry.
            if !f.is_finite() {
                return Err(bad("expected a finite number".into()));
            }
            (policy_field(key), serde_json::Value::from(f))
        }
        _ => return Err(ConfigError::UnknownParam(key.to_string())),
    };
    let mut v = serde_json::to_value(policy).map_err(|e| bad(e.to_string()))?;
    match v.as_object_mut() {
        Some(obj) if obj.contains_key(field) => {
            obj.insert(field.to_string(), json);
        }
        // The key is the mistake, not the value (`timeout=30` under ranked
        // said "bad value \"30\"").
        _ => {
            return Err(ConfigError::NotForPolicy {
                key: key.to_string(),
                policy: policy_name(policy),
                keys: obj_keys(&v),
            })
        }
    }
    // Ranges are checked once every override is in ([`SimConfig::validate`],
    // [`check_policy`]): ranked's constraints tie several keys together,
    // so a check per key would depend on their order.
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

/// The policy `--param` keys [`set_policy_param`] takes, each with the
/// policy JSON field it sets (three are short names of a longer field,
/// which is taken as a key too).
const POLICY_PARAMS: [(&str, &str); 16] = [
    ("timeout", "timeout"),
    ("cycletime", "cycletime_secs"),
    ("balance", "balance"),
    ("quorum", "quorum_ratio"),
    ("stomith_grace", "stomith_grace"),
    ("backoff", "backoff_max_secs"),
    ("quorum_loss_sleep", "quorum_loss_sleep"),
    ("lease", "lease"),
    ("heartbeat", "heartbeat"),
    ("kill_bound", "kill_bound"),
    ("suspect_after", "suspect_after"),
    ("read_deadline", "read_deadline"),
    ("rank_slot", "rank_slot"),
    ("tie_fence_delay", "tie_fence_delay"),
    ("fence_command", "fence_command"),
    ("watchdog", "watchdog"),
];

/// The policy JSON field a `--param` key sets ([`POLICY_PARAMS`]; a
/// field's own name sets itself).
fn policy_field(key: &str) -> &str {
    POLICY_PARAMS.iter().find(|(k, _)| *k == key).map_or(key, |(_, f)| f)
}

/// The `--param` keys [`set_policy_param`] takes that the policy of JSON
/// `v` has, for messages.
fn obj_keys(v: &serde_json::Value) -> String {
    let has = |field: &str| v.get(field).is_some();
    POLICY_PARAMS.iter().filter(|(_, f)| has(f)).map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// A `--param` duration, its error naming the key, the value and what is
/// allowed (a bare [`DurationError`] named only the value).
fn param_duration(key: &str, value: &str) -> Result<Millis, ConfigError> {
    parse_duration(value).map_err(|e| ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        why: format!(
            "{} (a duration like 90s, 2h, 1h30m or 250ms is allowed; a bare number is seconds)",
            e.why
        ),
    })
}

/// The `--param key=value` overrides, split, each key given once. Errors:
/// a text without `=`, and a key given twice (`--param timeout=30 --param
/// timeout=40`, or under its two names, such as `quorum` and
/// `quorum_ratio`), naming both values, rather than letting the last win
/// without a word.
pub fn distinct_params(params: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for p in params {
        let (k, v) = split_param(p)?;
        if let Some((first, w)) = out.iter().find(|(first, _)| same_param(first, k)) {
            return Err(ConfigError::DuplicateParam {
                first: format!("{first}={w}"),
                second: format!("{k}={v}"),
                key: k.to_string(),
            });
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Two `--param` keys naming one setting: a short name and the policy
/// JSON field it sets ([`set_policy_param`]).
fn same_param(a: &str, b: &str) -> bool {
    let canonical = |k: &str| {
        match k {
            "cycletime" => "cycletime_secs",
            "quorum" => "quorum_ratio",
            "backoff" => "backoff_max_secs",
            k => k,
        }
        .to_string()
    };
    canonical(a) == canonical(b)
}

/// Split `key=value`.
pub fn split_param(text: &str) -> Result<(&str, &str), ConfigError> {
    text.split_once('=').map(|(k, v)| (k.trim(), v.trim())).ok_or_else(|| ConfigError::BadValue {
        key: text.to_string(),
        value: String::new(),
        why: "expected key=value".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_json_refuses_unknown_keys() {
        for text in
            [r#"{"policy":"classic","bogus":1}"#, r#"{"policy":"ranked","fence_comand":"x"}"#]
        {
            let err = parse_policy(text).unwrap_err().to_string();
            assert!(err.contains("unknown key"), "{err}");
        }
        parse_policy(r#"{"policy":"classic","timeout":30000}"#).unwrap();
        for name in ["classic", "ranked"] {
            let full = serde_json::to_string(&parse_policy(name).unwrap()).unwrap();
            parse_policy(&full).unwrap();
        }
    }

    /// What `--param` refuses, `--policy` JSON refuses too, and the
    /// cross-field rules hold whichever order the keys come in.
    #[test]
    fn policy_values_are_range_checked_from_json_and_params() {
        for (text, field) in [
            (r#"{"policy":"ranked","lease":0}"#, "lease"),
            (r#"{"policy":"ranked","heartbeat":0}"#, "heartbeat"),
            (r#"{"policy":"classic","timeout":0}"#, "timeout"),
            (r#"{"policy":"classic","cycletime_secs":-1}"#, "cycletime_secs"),
            (r#"{"policy":"classic","quorum_ratio":5}"#, "quorum_ratio"),
            (r#"{"policy":"classic","backoff_max_secs":-3}"#, "backoff_max_secs"),
        ] {
            let err = parse_policy(text).expect_err(text).to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
        let err = parse_policy(r#"{"policy":"classic","quorum_ratio":60}"#).unwrap_err();
        assert!(err.to_string().contains("not a percentage (for 60 % give 0.6)"), "{err}");

        let refused = |pairs: &[(&str, &str)]| {
            let mut c = SimConfig::default();
            for (k, v) in pairs {
                if let Err(e) = c.set(k, v) {
                    return Some(e.to_string());
                }
            }
            c.validate().err().map(|e| e.to_string())
        };
        for (pairs, needle) in [
            (&[("cycletime", "-1")][..], "cycletime"),
            (&[("quorum", "5")][..], "not a percentage"),
            (&[("timeout", "0")][..], "above 0"),
            (&[("timeout", "100ms")][..], "below the minimum cycle"),
            (&[("cycletime", "0.1")][..], "below the minimum cycle"),
            (&[("min_cycle", "2s"), ("timeout", "1")][..], "below the minimum cycle (2000 ms"),
        ] {
            let err = refused(pairs).unwrap_or_else(|| panic!("{pairs:?} accepted"));
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
        // A bare number is seconds: timeout=30 is 30 s.
        assert_eq!(refused(&[("timeout", "30")]), None);
        assert_eq!(refused(&[("quorum", "1")]), None);
        assert_eq!(refused(&[("quorum", "0")]), None);
        // ranked: lease and heartbeat checked together, in either order.
        let ranked = [("lease", "3s"), ("heartbeat", "600ms")];
        let mut c =
            SimConfig { policy: parse_policy("ranked").expect("ranked"), ..SimConfig::default() };
        for (k, v) in ranked.iter().rev() {
            c.set(k, v).expect("one key at a time is not judged alone");
        }
        c.validate().expect("3 s > 3 x 600 ms + 250 ms");
        c.set("lease", "0").expect_err("0 is refused at once");
        c.set("lease", "2s").expect("set");
        let err = c.validate().expect_err("2 s <= 2050 ms").to_string();
        assert!(err.contains("lease"), "{err}");
    }

    /// Every key of [`WORLD_PARAMS`] is one `SimConfig::set` takes and no
    /// policy has (so `replay --param` can tell it needs `--rerun`).
    #[test]
    fn world_params_are_world_keys() {
        let value = |k: &str| match k {
            "fs" => "local",
            "membership" => "heartbeat",
            "fence_kills" => "true",
            "drop_faults" => "crash",
            "fail_fraction" => "0.5",
            "nodes" | "groups" => "3",
            _ => "5s",
        };
        for key in WORLD_PARAMS {
            SimConfig::default().set(key, value(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
            for policy in ["classic", "ranked"] {
                let p = parse_policy(policy).expect("policy");
                let e = set_policy_param(&p, key, value(key)).expect_err(key);
                assert!(matches!(e, ConfigError::UnknownParam(_)), "{key}: {e}");
            }
        }
    }

    /// The run's phases against its duration (`check_phases`): the
    /// liveness deadline inside the run, and room for faults when asked.
    #[test]
    fn phases_must_fit_the_duration() {
        let cfg = |d: u64, faults: &str, params: &[(&str, &str)]| {
            let mut c = SimConfig {
                duration: Millis::from_secs(d),
                faults: FaultChoice::parse(faults).expect("faults"),
                ..SimConfig::default()
            };
            for (k, v) in params {
                c.set(k, v).expect("set");
            }
            c.check_phases().map_err(|e| e.to_string())
        };
        // 3 nodes: liveness bound 198 s, quiet 258 s, warm-up 120 s.
        assert!(cfg(197, "none", &[]).expect_err("short").contains("3m18s"));
        assert_eq!(cfg(198, "none", &[]), Ok(()));
        assert_eq!(cfg(60, "none", &[("liveness", "60s")]), Ok(()));
        assert!(cfg(378, "crash", &[]).expect_err("no window").contains("above 6m18s"));
        assert_eq!(cfg(379, "crash", &[]), Ok(()));
        assert!(cfg(3600, "crash", &[("warmup", "1h")]).is_err());
        assert!(cfg(3600, "none", &[("quiet", "1m")]).expect_err("quiet").contains("quiet=1m"));
    }

    #[test]
    fn overrides() {
        let mut c = SimConfig::default();
        c.set("timeout", "30s").expect("ok");
        c.set("cycletime", "2").expect("ok");
        c.set("fs_delay", "5s").expect("ok");
        let PolicyConfig::Classic(p) = &c.policy else { panic!("classic expected") };
        assert_eq!(p.timeout, Millis(30_000));
        assert_eq!(p.cycletime_secs, 2.0);
        assert_eq!(c.world.fs_delay, Millis(5000));
        assert!(c.set("nonsense", "1").is_err());
        // The preset sets the four timings; a later key overrides one.
        c.set("fs", "local").expect("ok");
        assert_eq!((c.world.fs_delay, c.world.fs_jitter), (Millis::ZERO, Millis::ZERO));
        assert_eq!((c.world.read_latency, c.world.read_jitter), (Millis(1), Millis(8)));
        c.set("read_jitter", "2ms").expect("ok");
        assert_eq!(c.world.read_jitter, Millis(2));
        c.set("fs", "shared").expect("ok");
        assert_eq!(c.world.fs_delay, WorldParams::default().fs_delay);
        assert_eq!(c.world.read_jitter, WorldParams::default().read_jitter);
        assert!(c.set("fs", "nfs").is_err());
        assert!(c.set("balance", "x").is_err());
        assert_eq!(c.policy_name(), "classic");
        assert!(parse_policy("classic").is_ok());
        assert!(parse_policy("{\"policy\":\"classic\",\"balance\":1}").is_ok());
        assert!(parse_policy("ranked-v9").is_err());
    }
}
