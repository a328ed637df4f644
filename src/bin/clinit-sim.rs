//! `clinit-sim`: the seeded cluster simulator's command line (thin: all
//! the work is in the `clinit-sim` crate).

use clap::{Args, Parser, Subcommand};
use clinit_engine::hactl::Hactl;
use clinit_engine::monitor::replicate::parse_copy;
use clinit_engine::monitor::PolicyConfig;
use clinit_sim::config::{
    check_policy, distinct_params, parse_policy, set_policy_param, ConfigError, SimConfig, Workload,
};
use clinit_sim::faults::{FaultChoice, Schedule};
use clinit_sim::report::{self, RunReport};
use clinit_sim::trace::{RecordStream, TraceMode};
use clinit_sim::units::{fmt_duration, parse_duration, plural};
use clinit_sim::{chart, incident, latency_svg, replay, shrink, study, sweep, timeline_svg, world};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufReader, BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use outputs::Output;

const AFTER_HELP: &str = "\
The simulator runs N production cluster drivers (the cluster loop mosha
runs: init machine, HA monitor, reads with deadlines, replication,
heartbeats) on a virtual clock and executes their commands against a
simulated shared filesystem, membership source and process table, in a
world of delays, crashes, partitions, killed, frozen or paused monitors,
skewed and drifting clocks and failing I/O. Everything random comes from --seed: the same seed and options give
the same run, bit for bit.

Fault plans (--faults): none | random (a seeded random subset of all kinds
but the three replica kinds) | random-ops (the same, the replica kinds
included) | safe (a random subset of the kinds classic is
expected to survive) | all | a list like
crash,partition:rate=2,slow-fs:size=5s:len=2m. Kinds: crash, partition,
slow-fs, read-failures, stale-reads, skew, slow-node, false-suspicion,
hactl-edit, cltab-edit, mosha-crash, monitor-freeze, node-pause, spawn-fail,
lingering-group, fence-fail, write-fail, membership-fail, one-way-partition,
clock-drift, read-hang, torn-copy, d-state; replica kinds: hactl-tie (two
nodes' hactl differ with one mtime), hactl-cut (a node's hactl loses the
second half of its lines), editor-write (an editor's write in place stands
half-written for len, under the 2 s settle time); history kinds (by name or
all only): history-write-fail, history-torn, history-slow (the
membership-transition history file's writes fail, tear or land late);
by name only (not under all): fence-no-kill (a fence command exits 0 but
its kill does not land, with probability size: a double owner no policy
can prevent, shown by the double-owner invariant).
Phases of a run: the warm-up (warmup, default 2 min: initial placement,
no faults), the faults, and a quiet phase without faults (the run's last
quiet, default the liveness bound + 60 s), in which every wanted group
must run within the liveness bound (liveness, default 180 s + 6 s per
node). A --duration shorter than the liveness bound, or with --faults no
longer than warmup + quiet, is refused (exit 2): it could not judge
liveness, or would drop every fault.

Parameters (--param key=value):
  classic policy: timeout (> 0, at least min_cycle), cycletime (seconds,
    at least min_cycle), balance (below 0: never plan), quorum (a
    fraction in [0, 1] of the last good member count, 0.6 = 60 %; not a
    percentage),
    stomith_grace, backoff (seconds, >= 0), quorum_loss_sleep;
  ranked policy: lease, heartbeat, kill_bound, suspect_after,
    read_deadline, rank_slot, tie_fence_delay, fence_command, watchdog
    (lease > 3 heartbeats + kill_bound, read_deadline <= lease/4,
    2 heartbeats <= suspect_after < lease);
  world: fs (local | shared), fs_delay, fs_jitter, fs_delay_cap, detect,
    detect_down, detect_up, detect_jitter, read_latency, read_jitter,
    read_timeout, membership (oracle | heartbeat: detection by heartbeat
    files and --timeout, as in production), fence_kills (default false;
    true for ranked with a fence command), fence_delay,
    fence_reboot, min_cycle, halt_bound, liveness, quiet, start_spread,
    warmup, drop_faults (kinds joined by +), fail_fraction, nodes, groups,
    duration.
Each key once: a key given twice is refused.
Durations read like 90s, 2h, 1h30m, 250ms; a bare number is seconds
(timeout=30 is 30 s, not 30 ms). The same ranges hold for the JSON of
--policy.

Invariants (judged from the simulated process table): double-owner,
start-after-failed-test, needless-fence, halt-bound, liveness; of the
membership-transition history: transition-forward, transition-agree,
transition-joiner, hook-order, no-flap (see sim/README.md). `run` and
`sweep` exit 1 when one is violated, 2 on bad input; `shrink --invariant`
takes any of them.

Examples:
  clinit-sim run --nodes 10 --groups 5 --seed 7 --faults random
  clinit-sim run --seed 7 --faults slow-fs:size=20s --trace /tmp/t.jsonl
  clinit-sim replay /tmp/t.jsonl --param balance=0.5
  clinit-sim replay n1.jsonl n2.jsonl n3.jsonl --killed 1 --svg incident.svg
  clinit-sim sweep --nodes 3,10 --seeds 200 --param cycletime=1,5 --faults safe
  clinit-sim shrink --seed 7 --faults random --out /tmp/minimal.json
  clinit-sim failover --nodes 3 --runs 2000 --param detect=0s --svg failover.svg";

/// Seeded discrete-event simulator of a clinit/mosha cluster.
#[derive(Parser, Debug)]
#[command(name = "clinit-sim", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one seed and report metrics and invariant violations.
    Run {
        #[command(flatten)]
        scenario: Scenario,
        #[command(flatten)]
        plan: Plan,
        #[command(flatten)]
        cluster: Cluster,
        /// Seed of everything random in the run.
        #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = parse_seed)]
        seed: u64,
        /// Write the trace (JSON lines) to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Do not hash a trace (fastest; trace_sha256 is null).
        #[arg(long, conflicts_with = "trace")]
        no_trace: bool,
        /// Print the summary as JSON (fixed fields).
        #[arg(long)]
        json: bool,
        /// Also list the run's fault episodes in words, in time order (the
        /// drawn schedule, or the one given with --schedule). Not with
        /// --json, whose field list is fixed: write the schedule as JSON
        /// with --schedule-out instead.
        #[arg(long, conflicts_with = "json")]
        episodes: bool,
        /// Write the run's fault schedule to FILE (JSON, the format
        /// --schedule reads), so that it can be edited and run again.
        #[arg(long, value_name = "FILE")]
        schedule_out: Option<PathBuf>,
    },
    /// Many seeds over a parameter grid, in parallel; one row per grid point.
    ///
    /// Exit codes, as `run`'s over every run of the sweep: 0 no run violated
    /// an invariant, 1 at least one did (its row's `viol.` and failing
    /// seeds say which; classic's known weaknesses count, as for `run`), 2
    /// bad input.
    Sweep {
        #[command(flatten)]
        scenario: Scenario,
        #[command(flatten)]
        plan: Plan,
        /// Cluster sizes, e.g. 3,10,100 [default: 3]. Not also as `--param
        /// nodes=...` (refused; either sweeps the cluster size).
        #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
        nodes: Vec<u32>,
        /// A swept parameter key=v1,v2,... (repeatable, each key once; every
        /// combination is a grid point).
        #[arg(long = "param", value_name = "KEY=V1,V2")]
        params: Vec<String>,
        /// Seeds per grid point (at least 1).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// Worker threads, at least 1 [default: all cores].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        threads: Option<u64>,
        /// Print {"rows": [...]}, each row the run fields aggregated over its seeds.
        #[arg(long)]
        json: bool,
        /// Also draw the failover latency distribution of every grid point
        /// (histogram and CDF, p50/p90/p99 marked) as SVG to FILE.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Replay a trace bit for bit, or under other settings (what-if); or the
    /// recordings of every node of one incident together (cluster-wide).
    ///
    /// Exit codes of a plain replay: 0 every recording identical (a node
    /// named by --killed: up to its last checkpoint before the cut), 1 a
    /// decision differs, 2 unreadable input (a bad line before the last, a
    /// line longer than 16 MiB, a format this version does not read, a
    /// header whose policy is out of range or whose node is not its
    /// records', two recordings of one node, a --killed node that no
    /// recording holds, --svg naming an input), 3 a recording is truncated (no end line) and its
    /// node was not named by --killed, or was named but the recording is
    /// cut before its first checkpoint (nothing verified).
    ///
    /// What-if (--policy, --param) replays the recorded inputs under other
    /// policy settings of the same policy (open loop); another policy, or a
    /// world parameter (fs_delay, detect, ...), needs --rerun.
    Replay {
        /// The trace files: one from `run --trace`, or the `mosha --record`
        /// files of the nodes of one incident (lined up by their wall clocks).
        #[arg(required = true, num_args = 1..)]
        traces: Vec<PathBuf>,
        /// Nodes killed during the incident: their recordings may end
        /// without an end line and are verified up to their last checkpoint
        /// (`mosha --record` writes one after each pass of its loop). A
        /// recording cut before its first checkpoint verifies nothing and
        /// exits 3; a cut simulator trace is one (its only checkpoint is its
        /// end line).
        #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
        killed: Vec<u32>,
        /// Print the merged incident timeline (the default with several files).
        #[arg(long)]
        timeline: bool,
        /// Also draw the timeline as SVG to FILE.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Replay under these settings of the recorded policy (a name or
        /// JSON) instead of the recorded ones; another policy needs --rerun.
        #[arg(long)]
        policy: Option<String>,
        /// Parameter override key=value (repeatable, each key once), on top
        /// of the recorded settings; world parameters (fs_delay, detect,
        /// ...) only with --rerun.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Closed loop: re-simulate the header's scenario and seed with the
        /// overrides and compare the run reports (simulator traces only).
        #[arg(long)]
        rerun: bool,
        /// Print the verdict or comparison as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Minimise the fault schedule of a failing seed.
    ///
    /// Exit codes, as `run`'s: 0 the seed violates nothing (nothing to
    /// shrink), 1 it does and the minimal failing schedule is printed (and
    /// written with --out), 2 bad input.
    Shrink {
        #[command(flatten)]
        scenario: Scenario,
        #[command(flatten)]
        plan: Plan,
        #[command(flatten)]
        cluster: Cluster,
        /// Seed of the failing run to shrink (as `run --seed`).
        #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = parse_seed)]
        seed: u64,
        /// The invariant to keep failing, any a run reports (see --help of
        /// clinit-sim) [default: the first one violated].
        #[arg(long)]
        invariant: Option<String>,
        /// Stop after this many runs (at least 1); the schedule printed
        /// then still fails but may not be minimal, and the output says so.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
        max_runs: u64,
        /// Write the minimal schedule here (JSON; run it with --schedule).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Failover timing over many seeds (the scenario of the real 3-node test).
    ///
    /// Each seed crashes the group's owner once and runs until 10 minutes
    /// after the crash, with no other fault: --duration, --faults and
    /// --schedule are refused (exit 2).
    Failover {
        #[command(flatten)]
        scenario: Scenario,
        #[command(flatten)]
        refused: NotForFailover,
        #[command(flatten)]
        cluster: Cluster,
        /// Number of seeds (one crash each; at least 1).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        runs: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// The group whose owner is crashed [default: web, the group of the
        /// study's own one-group workload]. Needed with --cltab/--hactl:
        /// one of the groups that cltab defines.
        #[arg(long)]
        group: Option<String>,
        /// Crash at this time plus U[0, 30 s).
        #[arg(long, default_value = "300s", allow_hyphen_values = true)]
        crash_at: String,
        /// Also print the full report of the slowest failover's seed.
        #[arg(long)]
        show_slowest: bool,
        /// Print the timing summary as JSON.
        #[arg(long)]
        json: bool,
        /// Also print one JSON line per seed first: crash time, latency,
        /// collisions and every plan after the crash (which node, when).
        #[arg(long)]
        per_run: bool,
        /// Also draw the failover latency distribution (histogram and CDF,
        /// p50/p90/p99 marked) as SVG to FILE.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
}

/// The cluster size and policy/world overrides of a one-size command.
#[derive(Args, Debug)]
struct Cluster {
    /// Number of nodes, 1 to 1000 [default: 3]. Not also as `--param
    /// nodes` (refused: one of the two would be ignored).
    #[arg(long)]
    nodes: Option<u32>,
    /// Parameter override key=value (repeatable; each key once: a key
    /// given twice is refused).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
}

/// What every simulation command needs to build a scenario.
#[derive(Args, Debug)]
struct Scenario {
    /// Number of generated groups, 1 to 1000 [default: 3] (ignored with
    /// --cltab/--hactl). Not also as `--param groups` (refused).
    #[arg(long)]
    groups: Option<u32>,
    /// Policy: a name (classic or ranked) or JSON like
    /// {"policy":"classic","timeout":30000}; each key once.
    #[arg(long, default_value = "classic")]
    policy: String,
    /// Custom cltab (commands from the simulated vocabulary); needs --hactl.
    #[arg(long, requires = "hactl")]
    cltab: Option<PathBuf>,
    /// Custom hactl; needs --cltab. A 0-byte file is refused, as `mosha`
    /// refuses one (an intentionally empty hactl has a comment line).
    #[arg(long, requires = "cltab")]
    hactl: Option<PathBuf>,
}

/// The run length and fault plan of `run`, `sweep` and `shrink` (not
/// `failover`, which schedules its own crash and run length).
#[derive(Args, Debug, Default)]
struct Plan {
    /// Simulated time, e.g. 90s, 2h; a bare number is seconds [default:
    /// 1h]. At least the liveness bound (180 s + 6 s per node, --param
    /// liveness), and with --faults longer than warmup plus quiet (2 min
    /// plus the liveness bound plus 60 s): shorter runs are refused (exit
    /// 2), as they could not judge liveness or would drop every fault.
    #[arg(long, allow_hyphen_values = true)]
    duration: Option<String>,
    /// Fault plan: none | random | random-ops | safe | all | KIND[:k=v...],...
    /// [default: none]. Episodes are drawn between the warm-up and the
    /// quiet phase. Each kind and each key once; a key the kind does not
    /// use is refused. Not with --schedule.
    #[arg(long, conflicts_with = "schedule")]
    faults: Option<String>,
    /// Use this fault schedule (JSON from `shrink --out` or
    /// `--schedule-out`) instead of drawing one. Refused: unknown or
    /// repeated keys, an episode in the warm-up or the quiet phase, lengths
    /// longer than the run, a kind not listed in its "kinds".
    #[arg(long, value_name = "FILE")]
    schedule: Option<PathBuf>,
}

/// [`Plan`]'s options, which `failover` refuses with a reason (exit 2)
/// rather than as unknown arguments; hidden from its --help, whose text
/// says why.
#[derive(Args, Debug)]
struct NotForFailover {
    #[arg(long, hide = true)]
    duration: Option<String>,
    #[arg(long, hide = true)]
    faults: Option<String>,
    #[arg(long, hide = true, value_name = "FILE")]
    schedule: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Writing the output to stdout failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    /// `failover` schedules its own crash and run length per seed.
    #[error(
        "failover does not take --{0}: each run crashes the group's owner once (at --crash-at \
         plus up to 30 s) and lasts until 10 minutes after the crash, with no other faults; use \
         `run` or `sweep` for fault plans and run lengths"
    )]
    FailoverOption(&'static str),
    #[error("{0}")]
    Other(String),
}

/// `--seed`: a whole number 0 or more. Its own parser so that `-1`
/// reaches it (`allow_hyphen_values`) and is said to be negative, not
/// clap's "unexpected argument '-1' found".
fn parse_seed(text: &str) -> Result<u64, String> {
    if text.trim().starts_with('-') {
        return Err(format!("{text:?} must not be negative (a seed is a whole number, 0 or more)"));
    }
    text.trim().parse().map_err(|_| format!("{text:?} is not a whole number 0 or more"))
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Other(format!("cannot read {}: {e}", path.display())))
}

/// `ranked` with a fence command counts a fence as done only once the
/// target's services are dead (issue 9: "in the simulator, a fence succeeds
/// only after its kill has landed"), so its fences kill unless the user
/// says otherwise; a fence that succeeds and kills nothing breaks the
/// policy's premise, and the run's double owners would be the setup's, not
/// the policy's. Classic keeps the original's default (STOMITH only logs).
fn fence_kills_for_ranked(cfg: &mut SimConfig, given: bool) {
    let PolicyConfig::Ranked(p) = &cfg.policy else { return };
    if !p.fence_command {
        return;
    }
    if !given {
        cfg.world.fence_kills = true;
    } else if !cfg.world.fence_kills {
        eprintln!(
            "clinit-sim: note: fence_kills=false with ranked's fence command: its fences \
             succeed without killing, which ranked takes as proof that the target's services \
             are dead; expect double owners from the setup, not the policy"
        );
    }
}

impl Scenario {
    /// The files this scenario reads, by option.
    fn inputs(&self) -> Vec<(&'static str, &Path)> {
        [("--cltab", &self.cltab), ("--hactl", &self.hactl)]
            .into_iter()
            .filter_map(|(o, p)| Some((o, p.as_deref()?)))
            .collect()
    }

    /// Refuse a setting given both as its flag and as `--param` (issue 8's
    /// new-user test: `run --nodes 3 --param nodes=5` ran 5 nodes without
    /// a word), as a `--param` key given twice is refused.
    /// `nodes_flag`: the `--nodes` value given, if any.
    fn refuse_flag_and_param(
        &self,
        plan: &Plan,
        nodes_flag: Option<String>,
        params: &[(String, String)],
    ) -> Result<(), CliError> {
        let flags = [
            ("nodes", nodes_flag),
            ("groups", self.groups.map(|g| g.to_string())),
            ("duration", plan.duration.clone()),
        ];
        for (key, given) in flags {
            let Some(flag) = given else { continue };
            if let Some((_, v)) = params.iter().find(|(k, _)| k == key) {
                return Err(CliError::Other(format!(
                    "--{key} {flag} and --param {key}={v} both given: one would be ignored; \
                     give the {key} once, as either"
                )));
            }
        }
        Ok(())
    }

    /// The scenario of `plan` on `nodes` nodes with the `--param`
    /// overrides `params`. Errors: bad input (exit 2), each naming the
    /// option or file and the value.
    fn build(
        &self,
        plan: &Plan,
        nodes: Option<u32>,
        params: &[String],
    ) -> Result<SimConfig, CliError> {
        let defaults = SimConfig::default();
        let mut cfg = SimConfig {
            nodes: nodes.unwrap_or(defaults.nodes),
            groups: self.groups.unwrap_or(defaults.groups),
            duration: parse_duration(plan.duration.as_deref().unwrap_or("1h"))
                .map_err(|e| CliError::Other(format!("--duration: {e}")))?,
            policy: parse_policy(&self.policy)?,
            faults: FaultChoice::parse(plan.faults.as_deref().unwrap_or("none"))
                .map_err(ConfigError::Faults)?,
            ..SimConfig::default()
        };
        if let (Some(c), Some(h)) = (&self.cltab, &self.hactl) {
            let (cltab, hactl) = (read(c)?, read(h)?);
            // A 0-byte hactl is refused as production refuses one (the
            // engine's `parse_copy`: likelier a truncation than an intent,
            // and adopted it would stop every group); the cltab parser
            // refuses a 0-byte cltab itself.
            if hactl.is_empty() {
                let name = h.display().to_string();
                parse_copy::<Hactl>(hactl.as_bytes(), &name).map_err(CliError::Other)?;
            }
            // Parsed here with the paths, so an error names FILE:LINE (the
            // world parses them again, as any scenario, when it is built).
            let (parsed_cltab, parsed_hactl, _) = clinit_sim::workload::parse(
                &cltab,
                &c.display().to_string(),
                &hactl,
                &h.display().to_string(),
            )?;
            // As `mosha check` refuses them: a hactl that wants a group or
            // level the cltab lacks ran silently ("invariants: all held")
            // with that group never started.
            let problems = clinit_engine::lint::check_hactl(&parsed_hactl, &parsed_cltab);
            if !problems.is_empty() {
                let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
                return Err(CliError::Other(format!(
                    "{} does not fit {} (as `mosha check` says):\n{}",
                    h.display(),
                    c.display(),
                    lines.join("\n")
                )));
            }
            cfg.workload = Workload::Custom { cltab, hactl };
        }
        if let Some(path) = &plan.schedule {
            let text = read(path)?;
            let s: Schedule = clinit_sim::json_words::no_duplicate_keys(&text)
                .and_then(|()| serde_json::from_str(&text))
                .map_err(|e| {
                    CliError::Other(format!(
                        "{}: {}\n  a schedule is the JSON that --schedule-out writes: \
                     {{\"kinds\": [KIND, ...], \"faults\": [{{\"at\": MS, \"fault\": KIND, \
                     \"node\": N, ...}}, ...]}}",
                        path.display(),
                        clinit_sim::json_words::explain(&e)
                    ))
                })?;
            // Parsed above, so the text is valid JSON.
            let given: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            s.check_given(&given)
                .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
            cfg.schedule = Some(s);
        }
        let params = distinct_params(params)?;
        self.refuse_flag_and_param(plan, nodes.map(|n| n.to_string()), &params)?;
        let mut kills_given = false;
        for (k, v) in &params {
            kills_given |= k == "fence_kills";
            cfg.set(k, v)?;
        }
        fence_kills_for_ranked(&mut cfg, kills_given);
        cfg.validate()?;
        let (quiet, quiet_len) = (cfg.quiet_start(), cfg.quiet());
        if let (Some(s), Some(path)) = (&mut cfg.schedule, &plan.schedule) {
            // Refuse bad episodes here, naming the file (the workload's
            // groups are checked again when the world is built).
            s.validate(cfg.nodes, None, cfg.duration)
                .and_then(|()| s.check_sizes(cfg.duration))
                .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
            s.refresh_kinds();
            // No fault comes before the warm-up ends (the docs' promise, and
            // what a draw keeps): the cluster places its groups first.
            let warmup = cfg.world.warmup;
            if let Some((i, f)) = s.faults.iter().enumerate().find(|(_, f)| f.at < warmup) {
                return Err(CliError::Other(format!(
                    "{}: episode {i} ({}) starts at {}, in the warm-up (the run's first {}, \
                     --param warmup, in which the cluster places its groups and no fault runs); \
                     move it to {} or later, or give a shorter --param warmup",
                    path.display(),
                    f.fault.kind().name(),
                    fmt_duration(f.at),
                    fmt_duration(warmup),
                    fmt_duration(warmup)
                )));
            }
            // The world ignores a fault once the quiet phase has begun: an
            // episode there would be dropped without a word.
            if let Some((i, f)) = s.faults.iter().enumerate().find(|(_, f)| f.at >= quiet) {
                return Err(CliError::Other(format!(
                    "{}: episode {i} ({}) starts at {}, in the quiet phase (from {}: the run's \
                     last {}, in which no fault runs); move it earlier, or give a longer \
                     --duration or a shorter --param quiet",
                    path.display(),
                    f.fault.kind().name(),
                    fmt_duration(f.at),
                    fmt_duration(quiet),
                    fmt_duration(quiet_len)
                )));
            }
        }
        Ok(cfg)
    }
}

impl Plan {
    /// The files this plan reads, by option.
    fn inputs(&self) -> Vec<(&'static str, &Path)> {
        self.schedule.as_deref().map(|p| ("--schedule", p)).into_iter().collect()
    }
}

/// Say on stderr when `--faults` drew no episode at all (the fault window
/// exists, see [`SimConfig::check_phases`], but was too short for the
/// rates), so a fault-free report is not mistaken for a survived plan.
fn note_no_episodes(cfg: &SimConfig, drawn: &Schedule) {
    let asked = cfg.faults != FaultChoice::None && cfg.schedule.is_none();
    if asked && cfg.world.drop_faults.is_empty() && drawn.faults.is_empty() {
        let end = cfg.quiet_start();
        let start = cfg.world.warmup.min(end);
        eprintln!(
            "clinit-sim: note: --faults drew no episode in this run's fault window ({} to {}, \
             between the warm-up and the quiet phase); a longer --duration or a higher rate \
             (KIND:rate=N, episodes per hour) draws some",
            fmt_duration(start),
            fmt_duration(end)
        );
    }
}

/// Write to stdout, returning `Err(CliError::Output)` instead of
/// panicking as `print!` does when stdout is a closed pipe or a full disk.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err(CliError::Output)
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(CliError::Output)
    }};
}

/// Exit status for output into a closed pipe: 128 + SIGPIPE, as a shell
/// reports a coreutils tool killed by the signal (`yes | head -1`).
const EXIT_BROKEN_PIPE: u8 = 141;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = dispatch(cli.command).and_then(|code| {
        use std::io::Write as _;
        std::io::stdout().flush().map_err(CliError::Output)?;
        Ok(code)
    });
    match done {
        Ok(code) => code,
        // The reader went away (`| head -1`): exit quietly, like coreutils.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(EXIT_BROKEN_PIPE)
        }
        Err(e @ CliError::Output(_)) => {
            eprintln!("clinit-sim: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("clinit-sim: {e}");
            ExitCode::from(2)
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(|e| CliError::Other(e.to_string()))
}

fn dispatch(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Run {
            scenario,
            plan,
            cluster,
            seed,
            trace,
            no_trace,
            json: as_json,
            episodes,
            schedule_out,
        } => {
            let mut inputs = scenario.inputs();
            inputs.extend(plan.inputs());
            let outs = [("--trace", trace.as_deref()), ("--schedule-out", schedule_out.as_deref())];
            let outs: Vec<(&str, &Path)> =
                outs.into_iter().filter_map(|(o, p)| Some((o, p?))).collect();
            outputs::check_distinct(&inputs, &outs)?;
            let cfg = scenario.build(&plan, cluster.nodes, &cluster.params)?;
            cfg.check_phases()?;
            // Claimed before the run: a bad path is refused at once.
            let trace_file = trace.as_deref().map(|p| Output::claim("--trace", p)).transpose()?;
            let schedule_file =
                schedule_out.as_deref().map(|p| Output::claim("--schedule-out", p)).transpose()?;
            let out: Option<Box<dyn std::io::Write + Send>> = match &trace_file {
                Some(f) => Some(Box::new(BufWriter::new(f.writer()?))),
                None => None,
            };
            let mode = if no_trace { TraceMode::Off } else { TraceMode::Hash };
            let opts = world::RunOptions { trace: mode, trace_out: out, event_log: true };
            let result = world::run(&cfg, seed, opts)?;
            note_no_episodes(&cfg, &result.schedule);
            // Put in place only when written whole; a failed one's
            // temporary file is removed when it is dropped.
            let trace_put = match (trace_file, &result.trace_error) {
                (Some(f), None) => Some(f.finish()),
                _ => None,
            };
            if as_json {
                outln!("{}", json(&RunReport::new(&result))?)?;
            } else {
                out!("{}", report::render(&result))?;
                // Claimed only when it is true (`--trace /dev/full` fails).
                if let (Some(path), Some(Ok(()))) = (&trace, &trace_put) {
                    outln!("trace written to {}", path.display())?;
                }
                if episodes {
                    outln!("fault episodes ({}):", result.schedule.faults.len())?;
                    for f in &result.schedule.faults {
                        outln!("  at {}: {}", report::fmt_secs(f.at.0 as f64 / 1000.0), f.fault)?;
                    }
                }
            }
            let schedule_put =
                schedule_file.map(|f| f.write(json(&result.schedule)?.as_bytes())).transpose();
            if let Some(e) = &result.trace_error {
                return Err(CliError::Other(format!("writing the trace failed: {e}")));
            }
            trace_put.transpose()?;
            schedule_put?;
            Ok(if result.tracker.counts().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Sweep {
            scenario,
            plan,
            nodes,
            params: grid,
            seeds,
            first_seed,
            threads,
            json: as_json,
            svg,
        } => {
            let mut inputs = scenario.inputs();
            inputs.extend(plan.inputs());
            let outs: Vec<(&str, &Path)> =
                svg.as_deref().map(|p| ("--svg", p)).into_iter().collect();
            outputs::check_distinct(&inputs, &outs)?;
            let base = scenario.build(&plan, nodes.first().copied(), &[])?;
            // Every grid point is checked as `run` checks its scenario
            // (`sweep::sweep`: validate, then the phases).
            let params = distinct_params(&grid)?;
            let sizes: Vec<String> = nodes.iter().map(u32::to_string).collect();
            let flag = (!nodes.is_empty()).then(|| sizes.join(","));
            scenario.refuse_flag_and_param(&plan, flag, &params)?;
            let params = params
                .into_iter()
                .map(|(k, v)| (k, v.split(',').map(|s| s.trim().to_string()).collect()))
                .collect();
            let sizes = nodes;
            let threads = threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                |t| usize::try_from(t).unwrap_or(usize::MAX),
            );
            let spec = sweep::SweepSpec { base, nodes: sizes, params, seeds, first_seed, threads };
            // Claimed before the sweep: a bad path is refused at once.
            let svg_file = svg.as_deref().map(|p| Output::claim("--svg", p)).transpose()?;
            let bar = progress_bar();
            let started = std::time::Instant::now();
            let rows = sweep::sweep(&spec, &mut |done, total| {
                if let Some(bar) = &bar {
                    bar.set_length(total);
                    bar.set_position(done);
                }
            })?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            // The table first: a failed drawing loses no results.
            if as_json {
                outln!("{}", json(&serde_json::json!({ "rows": rows }))?)?;
            } else {
                out!("{}", sweep::table(&rows))?;
                let runs: u64 = rows.iter().map(|r| r.runs).sum();
                outln!(
                    "{runs} runs on {threads} threads in {:.1} s",
                    started.elapsed().as_secs_f64()
                )?;
            }
            if let Some(file) = svg_file {
                let series: Vec<latency_svg::Series> = rows
                    .iter()
                    .map(|r| {
                        let params: Vec<String> =
                            r.params.iter().map(|(k, v)| format!(" {k}={v}")).collect();
                        latency_svg::Series {
                            label: format!("N={} {}{}", r.nodes, r.policy, params.concat()),
                            latencies_s: r.failover_latencies_s.clone(),
                        }
                    })
                    .collect();
                let title = format!("failover latency per grid point, {seeds} seeds each");
                write_svg(file, latency_svg::render(&title, &series))?;
            }
            // `run`'s rule: any violated invariant in any run is exit 1.
            Ok(if rows.iter().all(|r| r.runs_with_violations == 0) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Replay { traces, killed, timeline, svg, policy, params, rerun, json: as_json } => {
            let inputs: Vec<(&str, &Path)> = traces.iter().map(|p| ("", p.as_path())).collect();
            let outs: Vec<(&str, &Path)> =
                svg.as_deref().map(|p| ("--svg", p)).into_iter().collect();
            outputs::check_distinct(&inputs, &outs)?;
            let replacement = policy.as_deref().map(parse_policy).transpose()?;
            let overrides = distinct_params(&params)?;
            if !rerun && replacement.is_none() && overrides.is_empty() {
                let timeline = timeline || traces.len() > 1;
                return replay_incident(&traces, &killed, timeline, svg.as_deref(), as_json);
            }
            let [trace] = &traces[..] else {
                return Err(CliError::Other(
                    "what-if and --rerun replay one trace; give one file".into(),
                ));
            };
            // Only the header is needed here: the scenario, seed and policy
            // (opening it also range-checks the header's policy).
            let file = std::fs::File::open(trace)
                .map_err(|e| CliError::Other(format!("cannot open {}: {e}", trace.display())))?;
            let header = RecordStream::open(BufReader::new(file))
                .map_err(|e| CliError::Other(format!("{}: {e}", trace.display())))?
                .header;
            if rerun {
                note_newer(&trace.display().to_string(), &header.source, &header.version);
                return rerun_trace(trace, &header, replacement, &overrides, as_json);
            }
            // An open-loop what-if feeds the recorded inputs to the other
            // settings: the world that produced them cannot change.
            if let Some((k, _)) = overrides.iter().find(|(k, _)| is_world_param(k)) {
                return Err(CliError::Other(format!(
                    "--param {k} is a world parameter (the simulated world, not the policy): an \
                     open-loop what-if replays the recorded inputs, which that world produced, so \
                     it cannot change them; add --rerun to re-simulate the trace's scenario and \
                     seed with it (simulator traces only)"
                )));
            }
            let recorded_name = header
                .config
                .get("policy")
                .and_then(|p| p.get("policy"))
                .and_then(|n| n.as_str())
                .map(String::from);
            if let (Some(new), Some(old)) = (&replacement, &recorded_name) {
                let new = clinit_sim::config::policy_name(new);
                if new != *old {
                    return Err(cross_policy(trace, &header.source, old, &new));
                }
            }
            let f = |recorded: &PolicyConfig| -> Result<PolicyConfig, ConfigError> {
                // A header without a policy: the records' own policies.
                if let Some(new) = &replacement {
                    let (old, new) = (
                        clinit_sim::config::policy_name(recorded),
                        clinit_sim::config::policy_name(new),
                    );
                    if old != new {
                        return Err(ConfigError::CrossPolicy { recorded: old, what_if: new });
                    }
                }
                let mut p = replacement.clone().unwrap_or_else(|| recorded.clone());
                for (k, v) in &overrides {
                    p = set_policy_param(&p, k, v)?;
                }
                check_policy(&p)?;
                Ok(p)
            };
            // A what-if is measured against the recorded policy's replay:
            // first make sure that replay matches the recording (a changed
            // or cut trace would make the comparison meaningless).
            let checked = incident_of(std::slice::from_ref(trace), &killed)?;
            if checked.exit_code() != 0 {
                eprint!("{}", incident::render(&checked, false));
                eprintln!(
                    "what-if not run: replaying {} as recorded {}",
                    trace.display(),
                    if checked.exit_code() == 3 {
                        "could not be verified against the recording (it is cut)"
                    } else {
                        "does not match the recording"
                    }
                );
                return Ok(ExitCode::from(checked.exit_code()));
            }
            // Read line by line, twice: a long trace is never held whole.
            let cmp = replay::what_if_file(trace, &f).map_err(|e| match e {
                replay::WhatIfError::Config(e) => CliError::Config(e),
                e => CliError::Other(e.to_string()),
            })?;
            if as_json {
                outln!("{}", json(&cmp)?)?;
            } else {
                outln!(
                    "what-if over {} recorded inputs: {} decided differently",
                    cmp.records,
                    cmp.differing
                )?;
                outln!("  baseline: {}", summary(&cmp.baseline))?;
                outln!("  what-if:  {}", summary(&cmp.what_if))?;
                if let Some(d) = &cmp.first {
                    outln!(
                        "first difference at record {} (node {}, t={} s):\n  baseline: {}\n  what-if:  {}",
                        d.record,
                        d.node.map_or("–".into(), |n| n.to_string()),
                        secs(d.at_s),
                        d.baseline,
                        d.what_if
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Shrink { scenario, plan, cluster, seed, invariant, max_runs, out } => {
            let mut inputs = scenario.inputs();
            inputs.extend(plan.inputs());
            let outs: Vec<(&str, &Path)> =
                out.as_deref().map(|p| ("--out", p)).into_iter().collect();
            outputs::check_distinct(&inputs, &outs)?;
            let cfg = scenario.build(&plan, cluster.nodes, &cluster.params)?;
            cfg.check_phases()?;
            // Claimed before the shrinking: a bad path is refused at once.
            let out_file = out.as_deref().map(|p| Output::claim("--out", p)).transpose()?;
            match shrink::shrink(&cfg, seed, invariant.as_deref(), max_runs)? {
                None => {
                    outln!(
                        "seed {seed} violates nothing{}: nothing to shrink",
                        match &invariant {
                            Some(i) => format!(" ({i} holds)"),
                            None => String::new(),
                        }
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Some(s) => {
                    outln!(
                        "{}: {} → {}, weakened {}, in {}",
                        s.invariant,
                        plural(s.original.faults.len() as u64, "fault episode", "fault episodes"),
                        s.minimal.faults.len(),
                        plural(s.weakened, "time", "times"),
                        plural(s.runs, "run", "runs")
                    )?;
                    for f in &s.minimal.faults {
                        outln!("  at {}: {}", report::fmt_secs(f.at.0 as f64 / 1000.0), f.fault)?;
                    }
                    if s.gave_up {
                        outln!(
                            "stopped at --max-runs {max_runs}: this schedule still violates {} \
                             but may not be minimal (raise --max-runs to shrink further)",
                            s.invariant
                        )?;
                    }
                    if let Some(file) = out_file {
                        let path = file.path().to_path_buf();
                        file.write(json(&s.minimal)?.as_bytes())?;
                        outln!(
                            "written to {}; reproduce with the same options plus --schedule {}",
                            path.display(),
                            path.display()
                        )?;
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Failover {
            scenario,
            refused,
            cluster,
            runs,
            first_seed,
            group,
            crash_at,
            show_slowest,
            json: as_json,
            per_run,
            svg,
        } => {
            // Refused rather than silently ignored (the study sets both).
            for (given, option) in [
                (refused.duration.is_some(), "duration"),
                (refused.faults.is_some(), "faults"),
                (refused.schedule.is_some(), "schedule"),
            ] {
                if given {
                    return Err(CliError::FailoverOption(option));
                }
            }
            let outs: Vec<(&str, &Path)> =
                svg.as_deref().map(|p| ("--svg", p)).into_iter().collect();
            outputs::check_distinct(&scenario.inputs(), &outs)?;
            let base = scenario.build(&Plan::default(), cluster.nodes, &cluster.params)?;
            let group = failover_group(&scenario, &base, group)?;
            let at = parse_duration(&crash_at)
                .map_err(|e| CliError::Other(format!("--crash-at: {e}")))?;
            let crash = study::Crash { group, at };
            if crash.at > clinit_sim::config::MAX_DURATION {
                return Err(ConfigError::TooLong(format!("--crash-at {crash_at}")).into());
            }
            // Claimed before the study: a bad path is refused at once.
            let svg_file = svg.as_deref().map(|p| Output::claim("--svg", p)).transpose()?;
            let bar = progress_bar();
            let s = study::failover_study_with_progress(
                &base,
                &crash,
                runs,
                first_seed,
                &mut |d, t| {
                    if let Some(bar) = &bar {
                        bar.set_length(t);
                        bar.set_position(d);
                    }
                },
            )?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if per_run {
                for row in &s.rows {
                    let line =
                        serde_json::to_string(row).map_err(|e| CliError::Other(e.to_string()))?;
                    outln!("{line}")?;
                }
            }
            if as_json {
                outln!("{}", json(&s)?)?;
            } else {
                if base.world.membership == clinit_sim::config::MembershipModel::Heartbeat {
                    // The driver's own heartbeat rule detects the crash:
                    // there is no fixed delay to subtract.
                    outln!(
                        "{}, {}, {}; detection by heartbeat files (the `minus D` column does \
                         not apply)",
                        plural(s.nodes, "node", "nodes"),
                        plural(s.runs, "run", "runs"),
                        plural(s.failovers, "failover", "failovers")
                    )?;
                } else {
                    outln!(
                        "{}, {}, {}; detection delay D = {:.1} s (detect_down {:.1} s + {:.1} s, \
                         the mean of detect_jitter)",
                        plural(s.nodes, "node", "nodes"),
                        plural(s.runs, "run", "runs"),
                        plural(s.failovers, "failover", "failovers"),
                        s.detect_s,
                        s.detect_s - s.detect_jitter_mean_s,
                        s.detect_jitter_mean_s
                    )?;
                }
                out!("{}", failover_table(&s))?;
                if s.failovers < s.runs {
                    // Say why, rather than "1 runs, 0 failovers" alone.
                    let others = s.runs - s.failovers - s.no_owner_runs.min(s.runs - s.failovers);
                    outln!(
                        "{} had no failover of {}: {} found no node running it to crash (at \
                         --crash-at {crash_at}, in the warm-up of {}, it may not be placed \
                         yet: give a later --crash-at), {} no other node started it within 10 \
                         minutes (--per-run: latency null)",
                        plural(s.runs - s.failovers, "run", "runs"),
                        crash.group,
                        s.no_owner_runs,
                        fmt_duration(base.world.warmup),
                        others
                    )?;
                }
                outln!("(spec §11 at N=3, minus D: mean 13 s, median 13 s, p99 23 s)")?;
                outln!(
                    "cost per node: {:.1} file reads per simulated second; {:.2} s wall per \
                     simulated node-hour",
                    s.reads_per_node_s,
                    s.cpu_s_per_node_hour
                )?;
                if s.violations > 0 {
                    outln!("{} invariant violations", s.violations)?;
                }
                if let (true, Some(seed)) = (show_slowest, s.slowest_seed) {
                    outln!(
                        "\nslowest failover: seed {seed}\n{}",
                        study::report(&base, &crash, seed)?
                    )?;
                }
            }
            // After the summary: a failed drawing loses no results.
            if let Some(file) = svg_file {
                let title = format!(
                    "failover latency, {}, {}, {} (crash to running elsewhere)",
                    plural(s.nodes, "node", "nodes"),
                    base.policy_name(),
                    plural(s.runs, "run", "runs")
                );
                let series = [latency_svg::Series {
                    label: format!("N={}", s.nodes),
                    latencies_s: s.latencies_s.clone(),
                }];
                write_svg(file, latency_svg::render(&title, &series))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The group `failover` crashes the owner of: `--group` (`given`), which
/// must be a group of the workload, or `web`, the study's own workload's
/// group, when no --cltab is given. Errors name --group and the groups
/// there are (issue 8's new-user test: `failover --cltab X --hactl Y`
/// without --group said "bad fault schedule: episode 0 ...: no group
/// "web"", about a schedule the user never wrote).
fn failover_group(
    scenario: &Scenario,
    cfg: &SimConfig,
    given: Option<String>,
) -> Result<String, CliError> {
    let (Workload::Custom { cltab, hactl }, Some(file)) = (&cfg.workload, &scenario.cltab) else {
        return match given {
            Some(g) if g != "web" => Err(CliError::Other(format!(
                "--group {g}: the study's own workload has one group, web; give --cltab and \
                 --hactl for a workload with {g}"
            ))),
            _ => Ok("web".into()),
        };
    };
    let (cltab, _, _) = clinit_sim::workload::parse(cltab, "cltab", hactl, "hactl")?;
    let groups = cltab.groups().join(", ");
    match given {
        None => Err(CliError::Other(format!(
            "failover with --cltab needs --group NAME, the group whose owner is crashed (groups \
             in {}: {groups})",
            file.display()
        ))),
        Some(g) if !cltab.groups().contains(&g.as_str()) => Err(CliError::Other(format!(
            "--group {g}: no such group in {} (groups: {groups})",
            file.display()
        ))),
        Some(g) => Ok(g),
    }
}

/// A plain replay of one or more recordings (see `Command::Replay` for
/// the exit codes).
fn replay_incident(
    paths: &[PathBuf],
    killed: &[u32],
    timeline: bool,
    svg: Option<&Path>,
    as_json: bool,
) -> Result<ExitCode, CliError> {
    // Claimed before the replay: a bad path is refused at once.
    let svg_file = svg.map(|p| Output::claim("--svg", p)).transpose()?;
    let inc = incident_of(paths, killed)?;
    // The verdict first: a failed drawing loses no results.
    if as_json {
        outln!("{}", json(&inc)?)?;
    } else {
        out!("{}", incident::render(&inc, timeline))?;
    }
    if let Some(file) = svg_file {
        write_svg(file, timeline_svg::render(&inc))?;
    }
    Ok(ExitCode::from(inc.exit_code()))
}

/// Replay `paths` as recorded and check each against its recording
/// (`killed`: nodes whose cut recordings are excused), reading each file
/// line by line ([`incident::replay_files`]): a long recording is never
/// held in memory whole.
fn incident_of(paths: &[PathBuf], killed: &[u32]) -> Result<incident::Incident, CliError> {
    let killed = killed.iter().copied().collect();
    let inc = incident::replay_files(paths, &killed).map_err(|e| CliError::Other(e.to_string()))?;
    for c in &inc.recordings {
        note_newer(&c.file, &c.source, &c.version);
    }
    Ok(inc)
}

/// Say on stderr when a recording comes from a newer clinit than this
/// binary: it is replayed (its format is one this version reads), but a
/// difference may be the newer version's rule, not a defect.
fn note_newer(file: &str, source: &str, version: &str) {
    let ours = env!("CARGO_PKG_VERSION");
    if incident::newer_version(version, ours) {
        eprintln!(
            "clinit-sim: note: {file} was written by {source} {version}, newer than this \
             clinit-sim {ours}; replayed anyway, but a difference may come from a rule the newer \
             version changed"
        );
    }
}

/// A progress bar on stderr, or `None` when stderr is not a terminal (a
/// pipe or a file gets only the summary at the end).
fn progress_bar() -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left",
        ) {
            bar.set_style(style);
        }
        bar
    })
}

/// The plain summary table of a failover study: one row per statistic,
/// the latency, the latency minus D, and the 95 % CI where computed (s).
fn failover_table(s: &study::Study) -> String {
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    let ci = |c: Option<(Option<f64>, Option<f64>)>| match c {
        Some((lo, hi)) => format!(
            "[{}, {}]",
            lo.map_or("-∞".into(), |v| format!("{v:.2}")),
            hi.map_or("+∞".into(), |v| format!("{v:.2}"))
        ),
        None => "-".into(),
    };
    let rows = [
        ("mean", s.mean_s, s.mean_minus_detect_s, None),
        ("p50", s.p50_s, s.p50_minus_detect_s, s.p50_ci95_s),
        ("p90", s.p90_s, s.p90_minus_detect_s, s.p90_ci95_s),
        ("p95", s.p95_s, s.p95_minus_detect_s, None),
        ("p99", s.p99_s, s.p99_minus_detect_s, None),
    ];
    let mut t = format!("{:<6} {:>10} {:>10}  {}\n", "stat", "latency s", "minus D s", "95 % CI s");
    for (name, all, minus, c) in rows {
        t.push_str(&format!("{name:<6} {:>10} {:>10}  {}\n", f(all), f(minus), ci(c)));
    }
    t
}

/// Write a drawn chart to its claimed file.
fn write_svg(file: Output, drawn: Result<String, chart::ChartError>) -> Result<(), CliError> {
    let drawn = drawn.map_err(|e| CliError::Other(format!("{}: {e}", file.path().display())))?;
    file.write(drawn.as_bytes())
}

/// Seconds for a person to read: `12.345`, or `–` when there is no value.
fn secs(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

fn summary(s: &replay::Summary) -> String {
    let tells: Vec<String> = s.tells_by_level.iter().map(|(l, n)| format!("{l}×{n}")).collect();
    let steps = if s.ranked_inputs > 0 {
        format!("{} ranked inputs", s.ranked_inputs)
    } else {
        format!("{} cycles", s.cycles)
    };
    format!(
        "{steps}, tells [{}], {} conflicts, {} fences, {} halts",
        tells.join(" "),
        s.conflicts,
        s.fences,
        s.halts
    )
}

/// `replay --policy P` on a trace recorded under another policy, open
/// loop: refused (issue 8's new-user test got exit 0 and counts that meant
/// nothing).
///
/// `source` is the header's writer: only a simulator trace can be
/// re-simulated with `--rerun`, so a `mosha` recording is not pointed there
/// (issue 8's new-user test was, and `--rerun` then refused it).
fn cross_policy(trace: &Path, source: &str, recorded: &str, what_if: &str) -> CliError {
    if source == "clinit-sim" {
        let e =
            ConfigError::CrossPolicy { recorded: recorded.to_string(), what_if: what_if.into() };
        return CliError::Other(format!("{}: {e}", trace.display()));
    }
    CliError::Other(format!(
        "{}: --policy {what_if} on a {source} recording made under {recorded}: a what-if feeds \
         the recorded inputs, which only {recorded} asked for, to the other policy, so its \
         decisions would mean nothing; a {source} recording can be replayed under other \
         settings of {recorded} only (--policy {recorded} with its parameters, or --param), and \
         cannot be re-simulated (--rerun needs a simulator trace): to compare policies, \
         simulate the cluster with `clinit-sim run --policy {what_if}` or `clinit-sim sweep`",
        trace.display()
    ))
}

/// Whether `key` is a world parameter (one [`SimConfig::set`] takes that
/// no policy has), which only a re-simulation (`--rerun`) can change.
fn is_world_param(key: &str) -> bool {
    clinit_sim::config::WORLD_PARAMS.contains(&key)
}

/// `replay --rerun`: re-simulate the scenario and seed of the simulator
/// trace `path` (its header `header`) as recorded and with the overrides,
/// and compare the run reports. Errors: not a simulator trace, a header
/// this version cannot read (naming the file and line 1), an override
/// that is refused, a scenario whose phases do not fit its duration.
fn rerun_trace(
    path: &Path,
    header: &clinit_engine::trace::Header<serde_json::Value>,
    policy: Option<PolicyConfig>,
    overrides: &[(String, String)],
    as_json: bool,
) -> Result<ExitCode, CliError> {
    if header.source != "clinit-sim" {
        return Err(CliError::Other(format!(
            "{}: --rerun needs a simulator trace (from `clinit-sim run --trace`: its header has \
             the scenario and seed); this is a {} recording, which can be replayed as recorded \
             or under other settings of its policy (--param) but not re-simulated",
            path.display(),
            header.source
        )));
    }
    let Some(seed) = header.seed else {
        return Err(CliError::Other(format!(
            "{}: line 1: the header has no seed (\"seed\": null or missing), so its run cannot \
             be re-simulated; --rerun needs the header that `clinit-sim run --trace` wrote",
            path.display()
        )));
    };
    let cfg = serde_json::from_value::<SimConfig>(header.config.clone()).map_err(|e| {
        CliError::Other(format!(
            "{}: line 1: the header's scenario cannot be re-simulated by this version ({} {}): {e}",
            path.display(),
            header.source,
            header.version
        ))
    })?;
    let mut alt = cfg.clone();
    if let Some(p) = policy {
        alt.policy = p;
    }
    let mut kills_given = false;
    for (k, v) in overrides {
        kills_given |= k == "fence_kills";
        alt.set(k, v)?;
    }
    if alt.policy != cfg.policy {
        fence_kills_for_ranked(&mut alt, kills_given);
    }
    alt.validate()?;
    alt.check_phases_of(clinit_sim::config::Source::Recording)?;
    let a = RunReport::new(&world::run(&cfg, seed, world::RunOptions::default())?);
    let b = RunReport::new(&world::run(&alt, seed, world::RunOptions::default())?);
    if as_json {
        outln!("{}", json(&serde_json::json!({ "recorded": a, "what_if": b }))?)?;
    } else {
        let line = |r: &RunReport| {
            format!(
                "failovers {} (p50 {} s, p99 {} s), double-owner {:.1} s, unavailable {:.1} group-s, {} violations",
                r.failovers,
                secs(r.failover_p50_s),
                secs(r.failover_p99_s),
                r.double_owner_seconds,
                r.unavailable_group_seconds,
                r.violations.len()
            )
        };
        outln!(
            "re-run of seed {seed}:\n  recorded settings: {}\n  what-if settings:  {}",
            line(&a),
            line(&b)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Output files, claimed before the work and written atomically.
///
/// Every output (`--trace`, `--svg`, `--schedule-out`, `--out`) is
/// written to a temporary file beside its final path (`.NAME.tmpXXXXXX`,
/// created when the command starts, so a missing or read-only directory
/// is refused before a long run) and renamed over the final path only
/// when complete: a killed run leaves the previous file intact and at
/// most a temporary file, which every error path removes (issue 8's
/// new-user test: a `kill -9` cut a trace, and a good trace at that path
/// was lost at the start).
mod outputs {
    use super::CliError;
    use std::fs::File;
    use std::io::Write as _;
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    use std::path::{Path, PathBuf};
    use tempfile::NamedTempFile;

    /// Where an output goes.
    enum Target {
        /// A regular file (or none yet): written to `tmp`, renamed at the end.
        Atomic(NamedTempFile),
        /// A device or a pipe (`/dev/null`, `/dev/stdout`): written in
        /// place, as renaming over it would replace the device itself.
        InPlace(File),
    }

    /// One claimed output file of a command.
    pub(super) struct Output {
        /// The option that named it (`--svg`), for messages.
        option: &'static str,
        path: PathBuf,
        target: Target,
    }

    impl Output {
        /// Claim `path` for `option`: create its temporary file in the
        /// same directory now. Errors (exit 2): the path names a
        /// directory, or its directory does not exist or is not
        /// writable, each naming the option, the path and the OS error.
        pub(super) fn claim(option: &'static str, path: &Path) -> Result<Output, CliError> {
            let bad = |why: String| CliError::Other(format!("{option} {}: {why}", path.display()));
            if let Ok(meta) = std::fs::metadata(path) {
                let kind = meta.file_type();
                if kind.is_dir() {
                    return Err(bad("is a directory; give a file name".into()));
                }
                if !kind.is_file() {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| bad(format!("cannot open it for writing: {e}")))?;
                    return Ok(Output { option, path: path.into(), target: Target::InPlace(file) });
                }
            }
            let Some(name) = path.file_name() else {
                return Err(bad("not a file name".into()));
            };
            let dir = dir_of(path);
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{}.tmp", name.to_string_lossy()))
                .rand_bytes(6)
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .tempfile_in(dir)
                .map_err(|e| {
                    // The OS's words, without tempfile's random file name.
                    let e = match std::fs::metadata(dir) {
                        Err(e) => e.to_string(),
                        Ok(m) if !m.is_dir() => "not a directory".into(),
                        Ok(_) => e.to_string().split(" at path ").next().unwrap_or("").to_string(),
                    };
                    bad(format!("cannot create a file in {}: {e}", dir.display()))
                })?;
            Ok(Output { option, path: path.into(), target: Target::Atomic(tmp) })
        }

        /// The final path, as given.
        pub(super) fn path(&self) -> &Path {
            &self.path
        }

        /// A second handle to the file being written, for a writer that
        /// streams (the trace). Errors: the OS's, naming the file.
        pub(super) fn writer(&self) -> Result<File, CliError> {
            let file = match &self.target {
                Target::Atomic(t) => t.as_file(),
                Target::InPlace(f) => f,
            };
            file.try_clone().map_err(|e| self.error(e))
        }

        fn error(&self, e: std::io::Error) -> CliError {
            cannot_write(self.option, &self.path, e)
        }

        /// Write `contents` and put the file in place.
        pub(super) fn write(mut self, contents: &[u8]) -> Result<(), CliError> {
            let done = match &mut self.target {
                Target::Atomic(t) => t.write_all(contents),
                Target::InPlace(f) => f.write_all(contents),
            };
            done.map_err(|e| self.error(e))?;
            self.finish()
        }

        /// Put the file, written through [`Output::writer`], in place:
        /// flush it to disk and rename it over the final path. The
        /// temporary file is removed when this fails.
        pub(super) fn finish(self) -> Result<(), CliError> {
            let Output { option, path, target } = self;
            let fail = |e: std::io::Error| cannot_write(option, &path, e);
            match target {
                Target::InPlace(mut f) => f.flush().map_err(fail),
                Target::Atomic(t) => {
                    t.as_file().sync_all().map_err(fail)?;
                    t.persist(&path).map(drop).map_err(|e| fail(e.error))
                }
            }
        }
    }

    /// The error of a write to `option`'s file `path` that failed.
    fn cannot_write(option: &str, path: &Path, e: std::io::Error) -> CliError {
        CliError::Other(format!("{option} {}: cannot write it: {e}", path.display()))
    }

    /// The directory `path` is in (`.` for a bare file name).
    fn dir_of(path: &Path) -> &Path {
        match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        }
    }

    /// What a path is, for telling two names of one file apart: the
    /// device and inode of an existing file, else the canonical directory
    /// plus the name.
    #[derive(PartialEq, Eq)]
    enum Identity {
        Inode(u64, u64),
        Path(PathBuf),
    }

    fn identity(path: &Path) -> Option<Identity> {
        if let Ok(meta) = std::fs::metadata(path) {
            // Writing a device twice (`/dev/null`) harms nothing.
            if meta.file_type().is_char_device() {
                return None;
            }
            return Some(Identity::Inode(meta.dev(), meta.ino()));
        }
        let name = path.file_name()?;
        // A missing directory: refused when the output is claimed.
        let dir = std::fs::canonicalize(dir_of(path)).ok()?;
        Some(Identity::Path(dir.join(name)))
    }

    /// Refuse (exit 2) an output that is also an input or another output
    /// of the same command, by file identity (a symlink, a hard link and
    /// `./x` are the same file as `x`): `replay t.jsonl --svg t.jsonl`
    /// replaced the recording with its own drawing. `inputs` and
    /// `outputs` are (option, path) pairs; an input option of "" is a
    /// positional file.
    pub(super) fn check_distinct(
        inputs: &[(&str, &Path)],
        outputs: &[(&str, &Path)],
    ) -> Result<(), CliError> {
        let name = |option: &str, path: &Path| {
            if option.is_empty() {
                format!("input {}", path.display())
            } else {
                format!("{option} {}", path.display())
            }
        };
        for (i, (out_opt, out_path)) in outputs.iter().enumerate() {
            let Some(out_id) = identity(out_path) else { continue };
            let earlier_outputs = outputs[..i].iter().map(|(o, p)| (*o, *p, "output"));
            let all_inputs = inputs.iter().map(|(o, p)| (*o, *p, "input"));
            for (opt, path, role) in all_inputs.chain(earlier_outputs) {
                if identity(path).as_ref() == Some(&out_id) {
                    return Err(CliError::Other(format!(
                        "{} is the same file as {} (an {role} of this command): writing it \
                         would destroy the other; give another path",
                        name(out_opt, out_path),
                        name(opt, path),
                    )));
                }
            }
        }
        Ok(())
    }
}
