//! The `clinit-sim` command line: the fixed JSON fields of `run --json`, a
//! trace written by `run --trace` replaying bit for bit, what-if replays,
//! sweeps over a grid, and bad input answered with a message and exit 2.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clinit-sim")).args(args).output().expect("clinit-sim runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn run_json_has_exactly_the_documented_fields() {
    let o = sim(&[
        "run",
        "--nodes",
        "3",
        "--groups",
        "2",
        "--duration",
        "10m",
        "--seed",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let mut keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "seed",
        "nodes",
        "groups",
        "policy",
        "simulated_seconds",
        "wall_seconds",
        "events",
        "node_hours_per_wall_second",
        "failovers",
        "failover_p50_s",
        "failover_p99_s",
        "double_owner_seconds",
        "unavailable_group_seconds",
        "moves",
        "violations",
        "trace_sha256",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(v["seed"], 3);
    assert_eq!(v["policy"], "classic");
    assert_eq!(v["simulated_seconds"], 600.0);
    assert_eq!(v["trace_sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn a_written_trace_replays_bit_for_bit_and_supports_what_if() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t.jsonl");
    let trace = trace.to_str().expect("utf-8 path");
    let o = sim(&[
        "run",
        "--nodes",
        "3",
        "--duration",
        "15m",
        "--seed",
        "5",
        "--faults",
        "crash:rate=8",
        "--trace",
        trace,
    ]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{o:?}");
    let o = sim(&["replay", trace]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("identical to the recording"), "{}", stdout(&o));
    // A --killed node that no recording holds is refused (exit 2), naming it.
    let o = sim(&["replay", trace, "--killed", "7"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--killed 7: node 7 is in none of the recordings"), "{err}");
    let o = sim(&["replay", trace, "--param", "balance=-1", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert!(v["differing"].as_u64().is_some_and(|d| d > 0), "{v}");
    let o = sim(&["replay", trace, "--rerun", "--param", "cycletime=5"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("what-if settings"), "{}", stdout(&o));
    // Values for a person, not Rust debug text (`Some(24.996)`, `None`).
    assert!(!stdout(&o).contains("Some(") && !stdout(&o).contains("None"), "{}", stdout(&o));
    let o = sim(&["replay", trace, "--param", "balance=-1"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("first difference"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("Some("), "{}", stdout(&o));
}

#[test]
fn sweep_makes_one_row_per_grid_point() {
    let o = sim(&[
        "sweep",
        "--nodes",
        "2,3",
        "--seeds",
        "2",
        "--duration",
        "5m",
        "--param",
        "balance=1,2",
        "--json",
    ]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["runs"] == 2));
    assert_eq!(rows[1]["nodes"], 2);
    assert_eq!(rows[1]["params"]["balance"], "2");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    for args in [
        &["run", "--faults", "meteor"][..],
        &["run", "--duration", "soon"],
        &["run", "--param", "nonsense=1"],
        &["run", "--param", "balance"],
        &["run", "--policy", "ranked-v9"],
        &["run", "--nodes", "0"],
        &["replay", "/nonexistent/trace.jsonl"],
        // NU2: a rate of 1e9 drew gigabytes of episodes and aborted; the
        // others ran, or printed an empty table, with exit 0 or 1.
        &["run", "--faults", "crash:rate=1e9", "--duration", "10m"],
        &["run", "--param", "timeout=0"],
        &["run", "--param", "read_timeout=0"],
        &["failover", "--runs", "2", "--group", "nosuch"],
    ] {
        let o = sim(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("clinit-sim:"), "{args:?}: {o:?}");
    }
    for args in [&["failover", "--runs", "0"][..], &["sweep", "--nodes", "3", "--seeds", "0"]] {
        let o = sim(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
}

/// Every fault kind the issue names is accepted by `run --faults KIND`
/// with exactly that name, and draws episodes (exit 0 = invariants held,
/// 1 = a documented weakness fired; never 2 = bad input).
#[test]
fn every_fault_kind_runs_by_its_name() {
    for kind in [
        "read-hang",
        "membership-fail",
        "torn-copy",
        "cltab-edit",
        "hactl-edit",
        "one-way-partition",
        "mosha-crash",
        "monitor-freeze",
        "spawn-fail",
        "lingering-group",
        "fence-fail",
        "write-fail",
        "clock-drift",
        "node-pause",
        "d-state",
        "hactl-tie",
        "hactl-cut",
        "editor-write",
        "history-write-fail",
        "history-torn",
        "history-slow",
        "fence-no-kill",
    ] {
        let plan = format!("{kind}:rate=20");
        let o =
            sim(&["run", "--nodes", "3", "--duration", "20m", "--seed", "2", "--faults", &plan]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{kind}: {o:?}");
        let text = stdout(&o);
        assert!(text.contains(kind), "{kind}: the report names the kind:\n{text}");
        assert!(!text.contains("(0 episodes)"), "{kind}: episodes drawn:\n{text}");
    }
}

/// `failover --svg` draws the latency distribution of a tiny study: the
/// file is an SVG with the title, both panels and the marked percentiles
/// the text summary prints; without a terminal no progress bar reaches
/// stderr.
#[test]
fn failover_draws_its_latency_distribution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("failover.svg");
    let svg_arg = svg.to_str().expect("utf-8 path");
    let o = sim(&["failover", "--nodes", "3", "--runs", "6", "--svg", svg_arg]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    // D includes the jitter's mean (it was left out: issue 8).
    assert!(
        out.contains(
            "3 nodes, 6 runs, 6 failovers; detection delay D = 11.0 s (detect_down 10.0 s + \
             1.0 s, the mean of detect_jitter)"
        ),
        "{out}"
    );
    // The plain summary table: a header and one row per statistic.
    let table: Vec<&str> = out.lines().skip(1).take(6).collect();
    assert!(table[0].starts_with("stat") && table[0].contains("minus D s"), "{out}");
    let stats: Vec<&str> = table[1..].iter().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(stats, ["mean", "p50", "p90", "p95", "p99"], "{out}");
    // Every statistic has its latency minus D (p90 and p95 were blank).
    for row in &table[1..] {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let (all, minus): (f64, f64) =
            (cols[1].parse().expect("latency"), cols[2].parse().expect("minus D"));
        assert!((all - minus - 11.0).abs() < 0.11, "{row}");
    }
    assert!(o.stderr.is_empty(), "stderr is not a terminal: {o:?}");
    let drawn = std::fs::read_to_string(&svg).expect("SVG written");
    assert!(drawn.starts_with("<svg") && drawn.trim_end().ends_with("</svg>"), "{drawn}");
    for text in [
        "failover latency, 3 nodes, classic, 6 runs",
        "count",
        "cumulative fraction",
        "N=3 (6 failovers): p50 ",
        "p90 ",
        "p99 ",
    ] {
        assert!(drawn.contains(text), "no {text:?} in\n{drawn}");
    }
    // The chart's p50 is the summary's.
    let p50 = table[2].split_whitespace().nth(1).expect("p50 printed");
    assert!(drawn.contains(&format!("p50 {p50} s")), "p50 {p50} not in\n{drawn}");
}

/// `sweep --svg` draws one distribution per grid point.
#[test]
fn sweep_draws_one_distribution_per_grid_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("sweep.svg");
    let svg_arg = svg.to_str().expect("utf-8 path");
    let o = sim(&[
        "sweep",
        "--nodes",
        "3",
        "--seeds",
        "2",
        "--duration",
        "10m",
        "--faults",
        "crash:rate=12",
        "--param",
        "balance=1,2",
        "--svg",
        svg_arg,
    ]);
    // Exit 1 when a crash-heavy run violated an invariant (classic's
    // weaknesses count, as for `run`); the chart is drawn either way.
    assert!(matches!(o.status.code(), Some(0 | 1)), "{o:?}");
    let drawn = std::fs::read_to_string(&svg).expect("SVG written");
    assert!(drawn.starts_with("<svg"), "{drawn}");
    for text in [
        "failover latency per grid point, 2 seeds each",
        "N=3 classic balance=1 (",
        "N=3 classic balance=2 (",
    ] {
        assert!(drawn.contains(text), "no {text:?} in\n{drawn}");
    }
}

/// `failover --per-run` prints one JSON line per seed before the summary:
/// the seed, its crash time, its latency (the same values the summary's
/// percentiles are taken from), its conflict stops and its plans after the
/// crash, each within the run.
#[test]
fn failover_per_run_prints_one_line_per_seed() {
    let o = sim(&["failover", "--nodes", "3", "--runs", "4", "--first-seed", "5", "--per-run"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .take_while(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    let seeds: Vec<u64> = rows.iter().filter_map(|r| r["seed"].as_u64()).collect();
    assert_eq!(seeds, [5, 6, 7, 8]);
    let mut lat: Vec<f64> = rows.iter().filter_map(|r| r["latency_s"].as_f64()).collect();
    assert_eq!(lat.len(), 4, "every seed fails over: {out}");
    for r in &rows {
        let l = r["latency_s"].as_f64().expect("latency");
        let plans = r["plans"].as_array().expect("plans");
        assert!(!plans.is_empty(), "a failover plans: {r}");
        // Every plan after the crash and before the group ran again.
        assert!(plans.iter().all(|p| p[0].as_f64().is_some_and(|t| (0.0..l).contains(&t))), "{r}");
        assert!(r["collisions"].as_u64().is_some() && r["crash_s"].as_f64() > Some(300.0), "{r}");
    }
    // The summary's max is the largest per-run latency.
    lat.sort_by(f64::total_cmp);
    assert!(out.contains("3 nodes, 4 runs, 4 failovers"), "{out}");
    let p99 = out.lines().find(|l| l.starts_with("p99")).expect("p99 row");
    let shown: f64 = p99.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("number");
    assert!((shown - lat[3]).abs() < 0.06, "p99 {shown} vs rows {lat:?}");
}

/// `run --episodes` lists the drawn fault schedule in words, and
/// `--schedule-out` writes it in the format `--schedule` reads: running the
/// written schedule gives the same run (same events and outcomes) as the
/// drawn one.
#[test]
fn a_run_lists_and_writes_its_fault_schedule_and_the_written_one_runs_alike() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sched = dir.path().join("schedule.json");
    let sched_arg = sched.to_str().expect("utf-8 path");
    let base =
        ["run", "--nodes", "3", "--duration", "10m", "--faults", "crash:rate=30", "--seed", "4"];
    let mut drawn: Vec<&str> = base.to_vec();
    drawn.extend(["--episodes", "--schedule-out", sched_arg]);
    let out = sim(&drawn);
    let text = stdout(&out);
    let listed = text.lines().skip_while(|l| !l.starts_with("fault episodes")).skip(1);
    let crashes = listed.filter(|l| l.contains("crash node")).count();
    assert!(crashes > 0, "a crash plan at 30/h over 10 minutes lists crash episodes:\n{text}");
    let written = std::fs::read_to_string(&sched).expect("schedule written");
    assert!(written.contains("\"faults\""), "{written}");

    let mut json_drawn: Vec<&str> = base.to_vec();
    json_drawn.push("--json");
    // Without --faults: a plan beside --schedule is refused (issue 8).
    let mut json_given: Vec<&str> =
        base.iter().copied().filter(|a| !["--faults", "crash:rate=30"].contains(a)).collect();
    json_given.extend(["--json", "--schedule", sched_arg]);
    let a: serde_json::Value = serde_json::from_str(&stdout(&sim(&json_drawn))).expect("json");
    let b: serde_json::Value = serde_json::from_str(&stdout(&sim(&json_given))).expect("json");
    // The trace's header names the schedule's source, so its hash differs;
    // every outcome must not.
    let outcome = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            for timing in ["wall_seconds", "node_hours_per_wall_second", "trace_sha256"] {
                o.remove(timing);
            }
        }
        v
    };
    assert!(a["events"].as_u64().unwrap_or(0) > 0, "the run simulated something: {a}");
    assert_eq!(outcome(&a), outcome(&b), "the written schedule gives the same run");
}

/// A 30-minute 3-node run with crashes (seed 3), traced: its temp dir (kept
/// alive by the caller) and the trace's text.
fn crash_trace() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t.jsonl");
    let trace = trace.to_str().expect("utf-8 path");
    let o =
        sim(&["run", "--seed", "3", "--duration", "30m", "--faults", "crash", "--trace", trace]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{o:?}");
    let text = std::fs::read_to_string(trace).expect("trace");
    (dir, text)
}

/// A cut simulator trace carries no checkpoint (its only one is its end
/// line), so `--killed` cannot excuse it: naming one node of three leaves
/// it truncated, and naming all three says that nothing was verified
/// (exit 3; it used to say "verified up to record 0" and exit 0, issue 8).
/// A recording with checkpoints is verified up to its last one
/// (`sim/tests/incident_replay.rs`, `tests/mosha_record.rs`).
#[test]
fn killed_on_a_cut_simulator_trace_verifies_nothing_and_exits_3() {
    let (dir, text) = crash_trace();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 1000, "trace of {} lines", lines.len());
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..1000].join("\n") + "\n").expect("write cut");
    let cut = cut.to_str().expect("utf-8 path");
    let o = sim(&["replay", cut]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    // Naming one node of three does not excuse the other two.
    let o = sim(&["replay", cut, "--killed", "1"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(stdout(&o).contains("TRUNCATED"), "{}", stdout(&o));
    let mut all = vec!["replay", cut];
    for n in ["1", "2", "3"] {
        all.extend(["--killed", n]);
    }
    let o = sim(&all);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let said = stdout(&o);
    assert!(said.contains("NOTHING VERIFIED") && !said.contains("verified up to"), "{said}");
    assert!(said.contains("a simulator trace carries no checkpoints"), "{said}");
    // --help says what --killed verifies.
    let help = stdout(&sim(&["replay", "--help"]));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("verifies nothing and exits 3"), "{help}");
}

#[test]
fn what_if_first_checks_the_recorded_replay_against_the_recording() {
    let (dir, text) = crash_trace();
    // One recorded exit code changed: the recorded policy no longer
    // reproduces the recording, so no what-if is reported.
    let at = text.find("\"Code\":0").expect("a recorded exit code 0");
    let changed = dir.path().join("changed.jsonl");
    std::fs::write(&changed, format!("{}\"Code\":1{}", &text[..at], &text[at + 8..]))
        .expect("write changed");
    let changed = changed.to_str().expect("utf-8 path");
    let o = sim(&["replay", changed, "--param", "balance=1.5"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("what-if not run"), "{o:?}");
    // A cut trace: exit 3 unless its nodes are named with --killed.
    let lines: Vec<&str> = text.lines().collect();
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..1000].join("\n") + "\n").expect("write cut");
    let cut = cut.to_str().expect("utf-8 path");
    let o = sim(&["replay", cut, "--policy", "classic"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    // Naming its nodes verifies nothing either (no checkpoint before the
    // cut): no what-if.
    let o = sim(&["replay", cut, "--policy", "classic", "--killed", "1,2,3"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("could not be verified"), "{o:?}");
}

/// sim/README.md's shrink example is this binary's output for the command
/// the README names (item 10 of issue 8: the quoted lines had gone stale).
#[test]
fn the_readme_shrink_example_is_current() {
    let readme = include_str!("../sim/README.md");
    let at = readme.find("**Shrinking**").expect("the shrinking paragraph");
    let para = &readme[at..];
    let (_, from) = para.split_once("for `").expect("the example's options");
    let (options, after) = from.split_once("`:").expect("the options end");
    let (_, block) = after.split_once("```\n").expect("the quoted output");
    let (quoted, _) = block.split_once("```").expect("its end");
    let mut args = vec!["shrink"];
    args.extend(options.split_whitespace());
    let o = sim(&args);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
    assert_eq!(stdout(&o), quoted, "sim/README.md quotes stale output of {args:?}");
}

#[test]
fn a_failing_stdout_is_an_error_not_a_panic() {
    // A closed pipe (`| head -1`): a quiet exit 141 (128 + SIGPIPE), as
    // coreutils report it, with no backtrace.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_clinit-sim"))
        .args(["failover", "--runs", "3", "--per-run"])
        .stdout(writer)
        .output()
        .expect("clinit-sim runs");
    assert_eq!(o.status.code(), Some(141), "{o:?}");
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    // A full disk: a clear error and exit 1.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let o = Command::new(env!("CARGO_BIN_EXE_clinit-sim"))
        .args(["run", "--duration", "5m"])
        .stdout(full)
        .output()
        .expect("clinit-sim runs");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot write the output") && !err.contains("panicked"), "{err}");
}

#[test]
fn a_failed_trace_write_is_not_reported_as_written() {
    let o = sim(&["run", "--duration", "5m", "--trace", "/dev/full"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(!stdout(&o).contains("trace written"), "{}", stdout(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("writing the trace failed"), "{err}");
}

#[test]
fn run_refuses_json_with_episodes_rather_than_dropping_them() {
    let o = sim(&["run", "--duration", "5m", "--json", "--episodes"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--episodes") && err.contains("--json"), "{err}");
}

/// Under heartbeat-file membership no fixed detection delay D applies, so
/// `failover` leaves the `minus D` column empty (it printed the latency
/// minus the unused `detect_down`, 10 s) and its JSON has `null` there.
#[test]
fn failover_under_heartbeat_membership_subtracts_no_detection_delay() {
    let args = ["failover", "--nodes", "3", "--runs", "3", "--param", "membership=heartbeat"];
    let o = sim(&args);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("detection by heartbeat files"), "{out}");
    for stat in ["mean", "p50", "p99"] {
        let row = out.lines().find(|l| l.starts_with(stat)).expect("row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(cols[1].parse::<f64>().is_ok(), "a latency: {row}");
        assert_eq!(cols[2], "-", "no minus-D value: {row}");
    }
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let o = sim(&json_args);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert!(v["p50_s"].is_number(), "{v}");
    assert!(v["p50_minus_detect_s"].is_null(), "{v}");
}
