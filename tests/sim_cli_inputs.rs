//! `clinit-sim` refusing bad input with a clear message and a non-zero
//! exit (the new-user test's leftovers of issue 8): policy values out of
//! range from `--policy` JSON and `--param`, `failover` options it cannot
//! honour, custom `cltab`/`hactl` errors naming `FILE:LINE`, recordings of
//! different incidents given together, and the smaller `sweep`/`shrink`
//! details. Every run here is short (a few simulated minutes, N ≤ 3).

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clinit-sim")).args(args).output().expect("clinit-sim runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit 2 with a message on stderr that contains every `needle`.
fn refused(args: &[&str], needles: &[&str]) {
    let o = sim(args);
    assert_eq!(o.status.code(), Some(2), "{args:?} should exit 2: {o:?}");
    let err = stderr(&o);
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} not in {err:?}");
    }
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn policy_values_out_of_range_are_refused_from_json_and_params() {
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "--duration", "2m", "--groups", "1"];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let cases: &[(&[&str], &[&str])] = &[
        (&["--policy", r#"{"policy":"ranked","lease":0}"#], &["lease"]),
        (&["--policy", r#"{"policy":"ranked","heartbeat":0}"#], &["heartbeat", "positive"]),
        (&["--policy", r#"{"policy":"classic","timeout":0}"#], &["timeout", "above 0"]),
        (&["--param", "cycletime=-1"], &["cycletime", "above 0"]),
        (&["--param", "quorum=5"], &["quorum", "not a percentage"]),
        (&["--param", "timeout=100ms"], &["timeout", "below the minimum cycle"]),
    ];
    for (extra, needles) in cases {
        let args = run(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, needles);
    }
    // A bare number is seconds, and --help says so.
    let o = sim(&["run", "--duration", "2m", "--groups", "1", "--param", "timeout=30", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let help = stdout(&sim(&["--help"]));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("a bare number is seconds"), "{help}");
    assert!(help.contains("not a percentage"), "{help}");
}

#[test]
fn failover_refuses_the_options_it_cannot_honour() {
    for extra in [["--duration", "5m"], ["--faults", "crash"], ["--schedule", "/nonexistent.json"]]
    {
        let mut args = vec!["failover", "--runs", "1"];
        args.extend_from_slice(&extra);
        let option = extra[0].trim_start_matches("--");
        refused(&args, &[&format!("failover does not take --{option}"), "10 minutes after"]);
    }
    let help = stdout(&sim(&["failover", "--help"]));
    assert!(help.contains("are refused"), "{help}");
    // Without them it runs (one seed), proving the refusal is not blanket.
    let o = sim(&["failover", "--runs", "1", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["runs"], 1, "{v}");
}

#[test]
fn custom_cltab_and_hactl_errors_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_string()
    };
    let good_cltab =
        write("good.cltab", "g1:g1test:test:test:exit 0\ng1:g1run:start:respawn:run\n");
    let good_hactl = write("good.hactl", "g1 start\n");
    let bad_cltab = write("bad.cltab", "# comment\ng1:g1run:start:respawn:run\ng1:broken line\n");
    let bad_cmd =
        write("cmd.cltab", "g1:g1test:test:test:exit 0\ng1:g1run:start:respawn:frobnicate\n");
    let bad_hactl = write("bad.hactl", "g1 start\ng1 start extra words here\n");
    let run = |cltab: &str, hactl: &str| {
        vec!["run", "--duration", "2m", "--cltab", cltab, "--hactl", hactl]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    for (cltab, hactl, at) in [
        (&bad_cltab, &good_hactl, format!("{bad_cltab}:3")),
        (&bad_cmd, &good_hactl, format!("{bad_cmd}:2")),
        (&good_cltab, &bad_hactl, format!("{bad_hactl}:2")),
    ] {
        let args = run(cltab, hactl);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, &[&at]);
    }
    let args = run(&good_cltab, &good_hactl);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = sim(&args);
    assert!(o.status.code().is_some_and(|c| c <= 1), "the good pair runs: {o:?}");
}

/// `clinit-sim --help` names every fault kind, invariant and `--param`
/// key the simulator knows (the lists are taken from the crate, so a new
/// one missing from the help fails here).
#[test]
fn help_lists_every_kind_invariant_and_parameter() {
    let help = stdout(&sim(&["--help"]));
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for kind in clinit_sim::faults::FaultKind::ALL {
        assert!(flat.contains(kind.name()), "kind {kind} missing from --help");
    }
    for inv in clinit_sim::invariants::ALL {
        assert!(flat.contains(inv), "invariant {inv} missing from --help");
    }
    // The unknown-parameter error lists every key `--param` takes.
    let err = clinit_sim::SimConfig::default().set("no-such-key", "1").expect_err("unknown");
    let text = err.to_string();
    let list = text.split_once('(').map(|(_, l)| l).expect("a list");
    let keys: Vec<&str> = list
        .split([',', ';', ':', '(', ')', '|', ' '])
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .filter(|k| !["policy", "ranked", "world", "local", "shared"].contains(k))
        .collect();
    assert!(keys.len() > 30, "{keys:?}");
    for key in keys {
        assert!(flat.contains(key), "parameter {key} missing from --help");
    }
    // sweep --threads 0 is refused; the default is all cores.
    let o = sim(&["sweep", "--threads", "0", "--seeds", "1", "--duration", "1m"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stdout(&sim(&["sweep", "--help"])).contains("all cores"));
    // A named plan with options: a clear message, not "unknown kind".
    refused(&["run", "--faults", "all:rate=2", "--duration", "1m"], &["takes no options"]);
}

/// `shrink` says when it stopped at --max-runs (the schedule may not be
/// minimal), and exits 1 for a failing seed (0 when nothing fails).
#[test]
fn shrink_says_when_it_stopped_at_its_run_budget() {
    // sim/README's example seed: random faults on 3 nodes for an hour.
    let base = ["shrink", "--seed", "7", "--faults", "random"];
    let o = sim(&[&base[..], &["--max-runs", "2"]].concat());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("stopped at --max-runs 2"), "{}", stdout(&o));
    // sim/README's two lines, as written (the file in a temp dir).
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("minimal.json");
    let out = out.to_str().expect("utf-8");
    let o = sim(&[&base[..], &["--out", out]].concat());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let o = sim(&["run", "--seed", "7", "--schedule", out]);
    assert_eq!(o.status.code(), Some(1), "the minimal schedule still fails: {o:?}");
    assert!(stdout(&o).contains("INVARIANTS VIOLATED"), "{}", stdout(&o));
    let o = sim(&["shrink", "--seed", "7", "--faults", "none", "--duration", "5m"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("violates nothing"), "{}", stdout(&o));
}

/// The report's `faults:` line leaves out kinds that `--param drop_faults`
/// removed (they are drawn, so the other kinds keep their episodes, but
/// never happen), and names them as dropped.
#[test]
fn the_faults_line_leaves_out_dropped_kinds() {
    let base = ["run", "--seed", "3", "--faults", "random", "--duration", "10m"];
    let faults_line = |extra: &[&str]| {
        let o = sim(&[&base[..], extra].concat());
        assert!(o.status.code().is_some_and(|c| c <= 1), "{o:?}");
        stdout(&o).lines().find(|l| l.starts_with("faults:")).expect("faults line").to_string()
    };
    let kinds = |line: &str| -> Vec<String> {
        let listed = line.trim_start_matches("faults: ").split(" (").next().unwrap_or_default();
        listed.split(", ").map(String::from).collect()
    };
    let all = faults_line(&[]);
    let has = |k: &Vec<String>, name: &str| k.iter().any(|x| x == name);
    assert!(has(&kinds(&all), "crash") && has(&kinds(&all), "slow-node"), "seed 3: {all}");
    let line = faults_line(&["--param", "drop_faults=crash+slow-node"]);
    assert!(!has(&kinds(&line), "crash") && !has(&kinds(&line), "slow-node"), "{line}");
    assert!(line.contains("dropped: crash, slow-node"), "{line}");
}

/// A typo'd length (`100000000h`) is refused at once (exit 2), not run for
/// days with nothing printed; a year is the bound (`config::MAX_DURATION`).
#[test]
fn absurd_durations_are_refused_not_run() {
    refused(&["run", "--duration", "100000000h"], &["--duration", "too long", "8760h"]);
    refused(
        &["failover", "--runs", "1", "--crash-at", "100000000h"],
        &["--crash-at 100000000h", "too long"],
    );
    refused(&["sweep", "--seeds", "1", "--duration", "9000h"], &["too long"]);
}

/// `ranked` with a fence command takes a fence's success as proof that
/// the target's services are dead, so the CLI's fences kill for it unless
/// told otherwise (the new-user test: seed 3 under `node-pause` reported
/// two double owners with "1 fences (0 killed)"); an explicit
/// `fence_kills=false` runs as asked, with a note on stderr.
#[test]
fn ranked_with_a_fence_command_fences_that_kill_by_default() {
    let policy = r#"{"policy":"ranked","fence_command":true}"#;
    let args = ["run", "--nodes", "3", "--seed", "3", "--duration", "15m", "--faults"];
    let o = sim(&[&args[..], &["node-pause:rate=12", "--policy", policy]].concat());
    let out = stdout(&o);
    assert!(out.contains("1 killed)"), "{out}\n{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}");
    let o = sim(&[
        &args[..],
        &["node-pause:rate=12", "--policy", policy, "--param", "fence_kills=false"],
    ]
    .concat());
    assert!(stdout(&o).contains("(0 killed)"), "{}", stdout(&o));
    assert!(stderr(&o).contains("fence_kills=false with ranked's fence command"), "{}", stderr(&o));
}
