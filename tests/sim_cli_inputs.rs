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
    let o = sim(&["run", "--duration", "4m", "--groups", "1", "--param", "timeout=30", "--json"]);
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
        vec!["run", "--duration", "4m", "--cltab", cltab, "--hactl", hactl]
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

/// Issue 8's second new-user test, item 1: a run too short for its phases
/// is refused (exit 2) with the values and what to give, instead of a
/// false `liveness` violation (a 10 s run judged groups not yet placed)
/// or faults dropped without a word (a quiet phase or warm-up as long as
/// the run). The bound itself runs: it is not a blanket refusal.
#[test]
fn a_run_too_short_for_its_phases_is_refused_with_the_values() {
    refused(
        &["run", "--duration", "10s"],
        &["--duration 10s is too short to judge liveness", "3m18s", "--param liveness=10s"],
    );
    refused(&["run", "--duration", "1m", "--nodes", "5"], &["3m30s", "at 5 nodes"]);
    refused(
        &["run", "--duration", "10m", "--faults", "crash", "--param", "quiet=20m"],
        &["no time for faults", "last 20m", "--duration 10m", "above 22m"],
    );
    refused(
        &["run", "--duration", "5m", "--faults", "crash", "--param", "warmup=10m"],
        &["no time for faults", "10m, --param warmup", "above 14m18s"],
    );
    refused(
        &["run", "--duration", "10m", "--param", "quiet=30s"],
        &["--param quiet=30s is shorter than the liveness bound (3m18s"],
    );
    refused(&["sweep", "--seeds", "1", "--duration", "1m"], &["too short to judge liveness"]);
    refused(
        &["sweep", "--seeds", "1", "--param", "duration=4m,1m"],
        &["--duration 1m is too short"],
    );
    refused(&["shrink", "--duration", "1m"], &["too short to judge liveness"]);
    // At the bound the run judges liveness, and it holds.
    let o = sim(&["run", "--duration", "3m18s", "--groups", "1", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["violations"].as_array().map(Vec::len), Some(0), "{v}");
    // A window too short for the rate: the run goes on, and says so.
    let o = sim(&["run", "--duration", "7m", "--faults", "crash", "--groups", "1"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("(0 episodes)"), "{}", stdout(&o));
    assert!(stderr(&o).contains("note: --faults drew no episode"), "{}", stderr(&o));
    assert!(stderr(&o).contains("(2m to 2m42s"), "{}", stderr(&o));
    // With faults, the run above warmup + quiet draws some.
    let o = sim(&["run", "--duration", "10m", "--faults", "crash:rate=30", "--seed", "4"]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{o:?}");
    assert!(!stdout(&o).contains("(0 episodes)"), "{}", stdout(&o));
}

/// A `--schedule` episode in the quiet phase would never happen (the world
/// ignores faults from then on): refused, naming the file and the times.
#[test]
fn a_schedule_episode_in_the_quiet_phase_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = dir.path().join("s.json");
    let s = s.to_str().expect("utf-8");
    let drawn = ["run", "--duration", "10m", "--faults", "crash:rate=30", "--seed", "4"];
    let o = sim(&[&drawn[..], &["--schedule-out", s]].concat());
    assert!(o.status.code().is_some_and(|c| c <= 1), "{o:?}");
    let o = sim(&["run", "--duration", "10m", "--schedule", s]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "as drawn it runs: {o:?}");
    // Quiet from 1 min on: every drawn episode (after the 2 min warm-up)
    // falls in it.
    refused(
        &["run", "--duration", "10m", "--schedule", s, "--param", "quiet=9m"],
        &[s, "episode 0 (crash)", "in the quiet phase (from 1m"],
    );
}

/// Trace written by `run` under `policy` into `dir` (4 minutes, 3 nodes,
/// no faults), and its path.
fn trace_of(dir: &std::path::Path, policy: &str) -> String {
    let t = dir.join(format!("{policy}.jsonl"));
    let t = t.to_str().expect("utf-8").to_string();
    let args = ["run", "--duration", "4m", "--groups", "2", "--seed", "4", "--policy", policy];
    let o = sim(&[&args[..], &["--trace", &t]].concat());
    assert!(o.status.code().is_some_and(|c| c <= 1), "{o:?}");
    t
}

/// A copy of the trace at `path` with `from` replaced by `to` in its
/// header (line 1) only.
fn edit_header(path: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(path).expect("trace");
    let (header, rest) = text.split_once('\n').expect("a header line");
    assert!(header.contains(from), "{from} not in {header}");
    let tag: String = to.chars().filter(char::is_ascii_alphanumeric).collect();
    let out = format!("{path}.{tag}.edited");
    std::fs::write(&out, format!("{}\n{rest}", header.replacen(from, to, 1))).expect("write");
    out
}

/// Items 2 and 7: a hand-edited trace header whose policy is out of range
/// (`"lease": 0`, `"timeout": 0`) or of the wrong type is refused (exit 2,
/// the file and line 1 named) in every replay mode, not only with
/// `--rerun`; and the type error is said in words, not serde's.
#[test]
fn a_trace_header_with_a_bad_policy_is_refused_in_every_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let classic = trace_of(dir.path(), "classic");
    let ranked = trace_of(dir.path(), "ranked");
    let cases = [
        (edit_header(&ranked, "\"lease\":2000", "\"lease\":0"), &["lease = 0 ms"][..]),
        (edit_header(&classic, "\"timeout\":60000", "\"timeout\":0"), &["timeout = 0 ms"][..]),
        (
            edit_header(&classic, "\"timeout\":60000", "\"timeout\":\"30s\""),
            &["timeout = \"30s\": expected a whole number"][..],
        ),
    ];
    for (file, needles) in &cases {
        let at = format!("{file}: line 1: the header's policy");
        for mode in [
            &[][..],
            &["--timeline"],
            &["--json"],
            &["--killed", "1,2,3"],
            &["--param", "timeout=30"],
            &["--rerun"],
        ] {
            let args = [&["replay", file.as_str()][..], mode].concat();
            let o = sim(&args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
            let err = stderr(&o);
            for n in needles.iter().chain([&at.as_str()]) {
                assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
            }
            assert!(!err.contains("invalid type") && !err.contains("expected u64"), "{err}");
        }
    }
    // The untouched traces replay.
    for t in [&classic, &ranked] {
        assert_eq!(sim(&["replay", t]).status.code(), Some(0), "{t}");
    }
}

/// Items 3 and 5: an open-loop what-if under another policy, or with a
/// world parameter, is refused (exit 2) and points to `--rerun`, which
/// runs both.
#[test]
fn what_ifs_that_only_a_rerun_can_answer_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let classic = trace_of(dir.path(), "classic");
    refused(
        &["replay", &classic, "--policy", "ranked"],
        &[&classic, "--policy ranked on a trace recorded under classic", "--rerun"],
    );
    let ranked = trace_of(dir.path(), "ranked");
    refused(
        &["replay", &ranked, "--policy", r#"{"policy":"classic","timeout":30000}"#],
        &["recorded under ranked", "--rerun"],
    );
    refused(
        &["replay", &classic, "--param", "fs_delay=1s"],
        &["--param fs_delay is a world parameter", "--rerun"],
    );
    // The same policy's settings are an open-loop what-if.
    let o = sim(&["replay", &ranked, "--policy", r#"{"policy":"ranked","lease":3000}"#]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let said = stdout(&o);
    assert!(said.contains("what-if over"), "{said}");
    // Its counts are ranked's own (they read "0 cycles, tells []" before).
    let baseline = said.lines().find(|l| l.contains("baseline:")).expect("baseline line");
    assert!(baseline.contains("ranked inputs") && baseline.contains("start×"), "{said}");
    for extra in [&["--policy", "ranked"][..], &["--param", "fs_delay=1s"]] {
        let o = sim(&[&["replay", &classic, "--rerun"][..], extra].concat());
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {o:?}");
        assert!(stdout(&o).contains("re-run of seed 4"), "{}", stdout(&o));
    }
    // --rerun on a trace that is not a simulator's says what it is.
    let mosha = edit_header(&classic, "\"source\":\"clinit-sim\"", "\"source\":\"mosha\"");
    refused(&["replay", &mosha, "--rerun"], &["needs a simulator trace", "a mosha recording"]);
}

/// Item 6: a `--param` key given twice (or under its two names) is
/// refused, naming both values, in every command that takes `--param`.
#[test]
fn a_parameter_given_twice_is_refused() {
    let base = ["run", "--duration", "4m", "--groups", "1"];
    refused(
        &[&base[..], &["--param", "timeout=30", "--param", "timeout=40"]].concat(),
        &["--param timeout given twice (timeout=30 and timeout=40)"],
    );
    refused(
        &[&base[..], &["--param", "quorum=0.5", "--param", "quorum_ratio=0.6"]].concat(),
        &["given twice (quorum=0.5 and quorum_ratio=0.6)"],
    );
    refused(
        &["sweep", "--seeds", "1", "--param", "balance=1,2", "--param", "balance=3"],
        &["--param balance given twice"],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let t = trace_of(dir.path(), "classic");
    refused(
        &["replay", &t, "--param", "balance=1", "--param", "balance=2"],
        &["--param balance given twice"],
    );
    // Different keys, one preset and an override of it, are fine.
    let o = sim(&[&base[..], &["--param", "fs=local", "--param", "read_jitter=2ms"]].concat());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

/// Item 7: value errors name the key, the value and what is allowed, in
/// the simulator's words, not serde's ("invalid type: string \"30s\",
/// expected u64").
#[test]
fn value_errors_name_key_value_and_what_is_allowed() {
    fn run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [&["run", "--duration", "4m"][..], extra].concat()
    }
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--policy", r#"{"policy":"classic","timeout":"30s"}"#],
            &["timeout = \"30s\": expected a whole number", "milliseconds"],
        ),
        (&["--policy", r#"{"policy":"classic","timeout":-5}"#], &["timeout = -5: expected"]),
        (
            &["--policy", r#"{"policy":"classic","balance":"x"}"#],
            &["balance = \"x\": expected a number"],
        ),
        (
            &["--policy", r#"{"policy":"ranked","fence_command":"yes"}"#],
            &["fence_command = \"yes\": expected true or false"],
        ),
        (
            &["--policy", r#"{"policy":"foo"}"#],
            &["unknown policy \"foo\" (policies: classic, ranked)"],
        ),
        (&["--policy", "ranked2"], &["unknown policy \"ranked2\""]),
        (&["--policy", r#"{"timeout":30000}"#], &["no \"policy\" key"]),
        (
            &["--param", "balance=1e999"],
            &["parameter balance: bad value \"1e999\": expected a finite number"],
        ),
        (
            &["--param", "timeout=abc"],
            &["parameter timeout: bad value \"abc\"", "a duration like 90s"],
        ),
        (&["--param", "warmup=-1"], &["parameter warmup: bad value \"-1\""]),
    ];
    for (extra, needles) in cases {
        let args = run(extra);
        refused(&args, needles);
        let err = stderr(&sim(&args));
        for serde_words in [
            "invalid type",
            "invalid value",
            "expected u64",
            "expected f64",
            "unknown variant",
            "missing field",
        ] {
            assert!(!err.contains(serde_words), "{extra:?}: {err}");
        }
    }
}

/// Item 8: a 0-byte `--hactl` is refused as production refuses a 0-byte
/// copy (the engine's `replicate::parse_copy`, which `mosha` runs on every
/// copy it reads), naming FILE:1; a comment-only one (an intentionally
/// empty hactl) is accepted.
#[test]
fn an_empty_hactl_is_refused_as_mosha_refuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_string()
    };
    let cltab = write("c.cltab", "g1:g1test:test:test:exit 0\ng1:g1run:start:respawn:run\n");
    let empty = write("empty.hactl", "");
    let engine =
        clinit_engine::monitor::replicate::parse_copy::<clinit_engine::hactl::Hactl>(b"", &empty)
            .expect_err("the engine refuses a 0-byte hactl");
    refused(
        &["run", "--duration", "4m", "--cltab", &cltab, "--hactl", &empty],
        &[&engine, &format!("{empty}:1: the file is empty (0 bytes)")],
    );
    let comment = write("comment.hactl", "# nothing wanted\n");
    let o = sim(&["run", "--duration", "4m", "--cltab", &cltab, "--hactl", &comment]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

/// Item 9: `failover --help` does not list the options failover refuses
/// (its text says they are refused); `run --help` lists them, with the
/// phase rule of item 1.
#[test]
fn failover_help_hides_the_options_it_refuses() {
    let help = stdout(&sim(&["failover", "--help"]));
    for option in ["--duration <", "--faults <", "--schedule <"] {
        assert!(!help.contains(option), "{option} in failover --help:\n{help}");
    }
    let run = stdout(&sim(&["run", "--help"]));
    for option in ["--duration <", "--faults <", "--schedule <"] {
        assert!(run.contains(option), "{option} not in run --help:\n{run}");
    }
    let flat = run.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("shorter runs are refused (exit 2)"), "{flat}");
}

/// A hand-edited `--schedule` that is not one is refused (exit 2) naming
/// FILE, line and column, in JSON's words (list, object, number), with the
/// shape a schedule has; serde's vocabulary never reaches the user.
#[test]
fn a_bad_schedule_file_is_explained_in_plain_words_with_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &[&str]); 4] = [
        ("{\"faults\": []}", &["line 1, column 14", "the required field `kinds` is missing"]),
        ("{\"kinds\": [\"explode\"], \"faults\": []}", &["unknown name `explode`", "read-hang"]),
        ("{\"kinds\": [\n", &["line 2, column 0", "cut short"]),
        ("[]", &["0 items where an object (Schedule)"]),
    ];
    for (i, (text, needles)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("s{i}.json"));
        std::fs::write(&path, text).expect("write");
        let p = path.to_str().expect("utf-8");
        let mut all = vec![p, "a schedule is the JSON that --schedule-out writes"];
        all.extend_from_slice(needles);
        refused(&["run", "--duration", "10m", "--schedule", p], &all);
        let err = stderr(&sim(&["run", "--duration", "10m", "--schedule", p]));
        for serde_words in ["invalid type", "sequence", "EOF", "struct Schedule", "expected u64"] {
            assert!(!err.contains(serde_words), "{text}: {err}");
        }
    }
}

/// Issue 8's new-user test, item 1: a setting given both as its flag and
/// as `--param` is refused (the `--param` won without a word), and a
/// sweep over `--param nodes` labels each row with the size it ran.
#[test]
fn a_flag_and_its_param_together_are_refused_and_sweep_rows_say_what_ran() {
    refused(
        &["run", "--nodes", "3", "--param", "nodes=5", "--duration", "5m"],
        &["--nodes 3", "--param nodes=5", "both given"],
    );
    refused(
        &["run", "--groups", "2", "--param", "groups=4", "--duration", "5m"],
        &["--groups 2", "--param groups=4"],
    );
    refused(&["run", "--duration", "5m", "--param", "duration=6m"], &["--duration 5m"]);
    refused(
        &["sweep", "--seeds", "1", "--nodes", "3", "--param", "nodes=3,7"],
        &["--nodes 3", "--param nodes=3,7"],
    );
    let o = sim(&["sweep", "--seeds", "1", "--param", "nodes=3,4", "--duration", "5m", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let rows = v["rows"].as_array().expect("rows");
    let sizes: Vec<u64> = rows.iter().map(|r| r["nodes"].as_u64().expect("nodes")).collect();
    assert_eq!(sizes, [3, 4], "{v}");
    // The simulated time is the size's: 4 nodes ran 4 nodes' hours.
    assert!(rows[1]["simulated_seconds"].as_f64() > Some(0.0), "{v}");
}

/// Item 2: `--groups` is capped (100000 ran for hours printing nothing)
/// and 0 is refused in words about groups, not an empty cltab.
#[test]
fn the_group_count_is_bounded_and_not_zero() {
    refused(
        &["run", "--groups", "100000", "--duration", "5m"],
        &["--groups 100000", "at most 1000"],
    );
    refused(&["run", "--param", "groups=1001", "--duration", "5m"], &["1001", "at most 1000"]);
    let o = sim(&["run", "--groups", "0", "--duration", "5m"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("at least one group"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("cltab"), "{}", stderr(&o));
    let help = stdout(&sim(&["run", "--help"]));
    assert!(help.contains("1 to 1000"), "{help}");
}

/// Item 4: `--faults` refuses what it used to read past or let the last
/// win, and `--policy` JSON refuses a key given twice.
#[test]
fn fault_plans_and_policy_json_refuse_empty_repeated_and_unused_parts() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["empty fault plan", "none"]),
        ("crash,,partition", &["item 2 is empty"]),
        ("crash:rate=2:rate=30", &["\"rate\" given twice"]),
        ("crash:size=5", &["crash does not use size", "rate, len"]),
        ("skew:len=5m", &["skew does not use len", "rate, size"]),
        ("crash,partition,crash", &["crash is given twice"]),
    ];
    for (plan, needles) in cases {
        refused(&["run", "--duration", "10m", "--faults", plan], needles);
    }
    refused(
        &["run", "--policy", r#"{"policy":"classic","timeout":30000,"timeout":40000}"#],
        &["timeout", "given twice", "column"],
    );
    // The same keys once each run (the refusals are not blanket).
    let o = sim(&["run", "--duration", "10m", "--faults", "crash:rate=2:len=1m,skew:size=2s"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{o:?}");
    let o =
        sim(&["run", "--duration", "5m", "--policy", r#"{"policy":"classic","timeout":40000}"#]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{o:?}");
}

/// Item 3: a `--schedule` file with unknown or repeated keys, an episode
/// longer than the run, one in the warm-up, or a kind its `kinds` does not
/// list is refused, naming the file and the episode; `--faults` with
/// `--schedule` is refused (the plan was dropped without a word).
#[test]
fn a_schedule_file_is_checked_as_strictly_as_a_draw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let ep = |body: &str| format!(r#"{{"kinds":["crash"],"faults":[{body}]}}"#);
    let ok = write("ok.json", &ep(r#"{"at":300000,"fault":"crash","node":1,"down":60000}"#));
    let o = sim(&["run", "--duration", "20m", "--schedule", &ok, "--json"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{o:?}");
    let cases: &[(&str, String, &[&str])] = &[
        (
            "color.json",
            ep(r#"{"at":300000,"fault":"crash","node":1,"down":60000,"color":"red"}"#),
            &["episode 0", "unknown key \"color\"", "down"],
        ),
        (
            "top.json",
            r#"{"kinds":[],"faults":[],"extra":1}"#.into(),
            &["unknown key \"extra\""],
        ),
        (
            "huge.json",
            ep(r#"{"at":300000,"fault":"crash","node":1,"down":18446744073709551615}"#),
            &["down 18446744073709551615 ms is longer than the run"],
        ),
        (
            "early.json",
            ep(r#"{"at":5,"fault":"crash","node":1,"down":60000}"#),
            &["episode 0 (crash) starts at 5ms", "warm-up"],
        ),
        (
            "kinds.json",
            r#"{"kinds":["partition"],"faults":[{"at":300000,"fault":"crash","node":1,"down":60000}]}"#
                .into(),
            &["crash is not in the schedule's kinds [partition]"],
        ),
        (
            "twice.json",
            ep(r#"{"at":300000,"fault":"crash","node":1,"node":2,"down":60000}"#),
            &["`node` is given twice"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = write(name, text);
        let mut all = vec![name.to_string()];
        all.extend(needles.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        refused(&["run", "--duration", "20m", "--schedule", &path], &all);
    }
    refused(
        &["run", "--duration", "20m", "--faults", "partition", "--schedule", &ok],
        &["--faults", "cannot be used with", "--schedule"],
    );
}

/// Item 5: `sweep` exits as `run` does: 1 when a run violated an
/// invariant (it exited 0 while `run` of the same seed exited 1), 0 when
/// none did, and its --help says so.
#[test]
fn sweep_exits_1_when_a_run_violates_an_invariant() {
    // sim/README's shrink seed: random faults on 3 nodes for an hour.
    let o = sim(&["run", "--seed", "7", "--faults", "random", "--no-trace", "--json"]);
    assert_eq!(o.status.code(), Some(1), "the seed fails alone: {o:?}");
    let o = sim(&["sweep", "--seeds", "1", "--first-seed", "7", "--faults", "random", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["rows"][0]["failing_seeds"], serde_json::json!([7]), "{v}");
    let o = sim(&["sweep", "--seeds", "2", "--duration", "5m"]);
    assert_eq!(o.status.code(), Some(0), "no faults, no violation: {o:?}");
    assert!(stdout(&o).contains("0/2"), "{}", stdout(&o));
    let help = stdout(&sim(&["sweep", "--help"]));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("1 at least one did"), "{help}");
}

/// Item 6: errors speak of what the user did. `failover` with a custom
/// workload and no --group asks for --group and lists the groups (it spoke
/// of a fault schedule's episode); a re-run whose recorded scenario does
/// not fit speaks of the recording's duration, not a `--duration` the user
/// never gave.
#[test]
fn errors_name_what_the_user_gave_not_what_was_derived() {
    let cltab = concat!(env!("CARGO_MANIFEST_DIR"), "/sim/scenarios/mosha_cluster.cltab");
    let hactl = concat!(env!("CARGO_MANIFEST_DIR"), "/sim/scenarios/mosha_cluster.hactl");
    let custom = ["failover", "--runs", "1", "--cltab", cltab, "--hactl", hactl];
    refused(&custom, &["needs --group NAME", "mosha_cluster.cltab", "g1, g2"]);
    refused(&[&custom[..], &["--group", "web"]].concat(), &["--group web: no such group", "g1"]);
    let o = sim(&[&custom[..], &["--group", "g1", "--json"]].concat());
    assert!(o.status.success(), "{o:?}");
    refused(&["failover", "--runs", "1", "--group", "db"], &["--group db", "one group, web"]);

    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t.jsonl");
    let trace = trace.to_str().expect("utf-8 path");
    let o = sim(&["run", "--duration", "5m", "--trace", trace]);
    assert!(o.status.success(), "{o:?}");
    let o = sim(&["replay", trace, "--rerun", "--param", "liveness=10m"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = stderr(&o);
    assert!(err.contains("the recording's duration, 5m is too short"), "{err}");
    assert!(err.contains("--param duration=10m"), "{err}");
    assert!(!err.contains("--duration"), "{err}");
}

/// Item 7: a failover study whose crash found no owner says why it has
/// no failover (it printed "1 runs, 0 failovers" alone), in the singular.
#[test]
fn a_failover_study_says_why_a_run_had_no_failover() {
    let o = sim(&["failover", "--runs", "1", "--first-seed", "2", "--crash-at", "0"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("3 nodes, 1 run, 0 failovers;"), "{out}");
    assert!(out.contains("1 run had no failover of web: 1 found no node running it"), "{out}");
    let o = sim(&["failover", "--runs", "2"]);
    assert!(!stdout(&o).contains("had no failover"), "{}", stdout(&o));
}

/// Item 8: the report counts each fault kind that happened by its name
/// (a run of `mosha-crash` episodes read "0 crashes, 0 restarts").
#[test]
fn the_report_counts_every_fault_kind_by_name() {
    let o = sim(&["run", "--duration", "30m", "--faults", "mosha-crash:rate=20", "--episodes"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{o:?}");
    let out = stdout(&o);
    let drawn: usize = out
        .split_once("fault episodes (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(n, _)| n.parse().ok())
        .expect("the episode count");
    assert!(drawn > 0, "episodes were drawn: {out}");
    let seen = out.lines().find(|l| l.starts_with("faults seen:")).expect("faults line");
    assert!(seen.contains(&format!("mosha-crash {drawn} (episodes by kind)")), "{seen}\n{out}");
    let o = sim(&["run", "--duration", "5m"]);
    assert!(stdout(&o).contains("faults seen: none (episodes by kind)"), "{}", stdout(&o));
}

/// Item 9: help and wording. Negative values reach our parsers and are
/// said to be negative; `nan` is not a number; a key a policy lacks is
/// the key's fault; help names both policies, describes `shrink --seed`
/// and lists all ten invariants, each of which `shrink --invariant` takes;
/// a hactl that wants a group the cltab lacks is refused; counts of one
/// are singular.
#[test]
fn help_and_wording_say_what_is_meant() {
    refused(&["run", "--seed", "-1"], &["--seed", "must not be negative"]);
    refused(&["shrink", "--seed", "-1"], &["--seed", "must not be negative"]);
    refused(&["run", "--duration", "-1h"], &["--duration", "\"-1h\"", "must not be negative"]);
    refused(&["failover", "--crash-at", "-5s"], &["--crash-at", "must not be negative"]);
    refused(&["run", "--param", "timeout=nan"], &["timeout", "\"nan\"", "not a number"]);
    refused(
        &["run", "--policy", "ranked", "--param", "timeout=30"],
        &["--param timeout: the ranked policy has no parameter timeout", "lease, heartbeat"],
    );
    let help = stdout(&sim(&["run", "--help"]));
    assert!(help.contains("a name (classic or ranked)"), "{help}");
    let help = stdout(&sim(&["shrink", "--help"]));
    assert!(help.contains("Seed of the failing run to shrink"), "{help}");
    let o = sim(&["shrink", "--duration", "5m", "--invariant", "hook-order"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("(hook-order holds)"), "{}", stdout(&o));
    refused(&["shrink", "--invariant", "no-such"], &["unknown invariant", "no-flap"]);

    let dir = tempfile::tempdir().expect("tempdir");
    let hactl = dir.path().join("hactl");
    std::fs::write(&hactl, "g1 start\nghost start\n").expect("write");
    let cltab = concat!(env!("CARGO_MANIFEST_DIR"), "/sim/scenarios/calibration.cltab");
    refused(
        &["run", "--duration", "5m", "--cltab", cltab, "--hactl", hactl.to_str().expect("utf-8")],
        &["does not fit", "ghost", "mosha check"],
    );

    let o = sim(&["run", "--nodes", "1", "--groups", "1", "--duration", "5m"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("· 1 node · 1 group ·"), "{}", stdout(&o));
}
