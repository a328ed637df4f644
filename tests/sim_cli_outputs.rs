//! `clinit-sim`'s output files and the robustness of `replay` (issue 8,
//! new-user defects): an output that is also an input or another output
//! is refused; output paths are checked before the work; outputs are
//! written atomically (a killed run leaves the previous file whole); the
//! results are printed even when a drawing cannot be written; `replay`
//! refuses a line longer than its cap, a header whose node is not its
//! records', and says what applies to each kind of recording.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clinit-sim")).args(args).output().expect("clinit-sim runs")
}

fn sim_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clinit-sim"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("clinit-sim runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A 10-minute simulator trace of seed 3 at `dir/name`, and its bytes.
fn trace(dir: &Path, name: &str, extra: &[&str]) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let p = path.to_str().expect("UTF-8 path");
    let o = sim(&[&["run", "--seed", "3", "--duration", "10m", "--trace", p][..], extra].concat());
    assert!(o.status.success(), "{o:?}");
    let bytes = std::fs::read(&path).expect("trace");
    (path, bytes)
}

/// The files in `dir` whose names start with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (t, before) = trace(dir.path(), "t.jsonl", &[]);
    std::fs::hard_link(&t, dir.path().join("link.jsonl")).expect("hard link");
    // The recording being replayed, by its name, another spelling and a
    // hard link: refused, and the recording is untouched.
    for svg in ["t.jsonl", "./t.jsonl", "link.jsonl"] {
        let o = sim_in(dir.path(), &["replay", "t.jsonl", "--svg", svg]);
        assert_eq!(o.status.code(), Some(2), "{svg}: {o:?}");
        let err = stderr(&o);
        assert!(err.contains(&format!("--svg {svg} is the same file as input t.jsonl")), "{err}");
        assert_eq!(std::fs::read(&t).expect("trace"), before, "{svg}");
    }
    // Two outputs of one run: refused before anything is written.
    let args = ["run", "--seed", "3", "--faults", "mosha-crash", "--schedule-out", "x.json"];
    let o = sim_in(dir.path(), &[&args[..], &["--trace", "./x.json"]].concat());
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--schedule-out x.json is the same file as --trace ./x.json"));
    assert!(!stdout(&o).contains("trace written"), "{}", stdout(&o));
    assert!(!dir.path().join("x.json").exists());
    // An input file of sweep, shrink and failover (checked before it is read).
    std::fs::write(dir.path().join("s.json"), "{}").expect("write");
    for args in [
        &["sweep", "--schedule", "s.json", "--svg", "s.json"][..],
        &["shrink", "--schedule", "s.json", "--out", "s.json"],
        &["failover", "--cltab", "s.json", "--hactl", "t.jsonl", "--svg", "t.jsonl"],
    ] {
        let o = sim_in(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(stderr(&o).contains("is the same file as"), "{args:?}: {}", stderr(&o));
        assert_eq!(std::fs::read_to_string(dir.path().join("s.json")).expect("s"), "{}");
    }
    assert_eq!(std::fs::read(&t).expect("trace"), before);
}

#[test]
fn an_output_in_a_missing_directory_is_refused_before_the_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _) = trace(dir.path(), "t.jsonl", &[]);
    // Each would simulate (or replay) first and fail only at the end:
    // `run` printed its whole report, `sweep` ran 27 s.
    for args in [
        &["run", "--seed", "3", "--duration", "10m", "--schedule-out", "nodir/x.json"][..],
        &["run", "--seed", "3", "--duration", "10m", "--trace", "nodir/t.jsonl"],
        &["sweep", "--seeds", "4", "--duration", "10m", "--svg", "nodir/s.svg"],
        &["shrink", "--seed", "3", "--faults", "crash", "--out", "nodir/m.json"],
        &["failover", "--runs", "3", "--svg", "nodir/f.svg"],
        &["replay", "t.jsonl", "--svg", "nodir/r.svg"],
    ] {
        let o = sim_in(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(o.stdout.is_empty(), "{args:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains("nodir/") && err.contains("cannot create a file in nodir: No such file"),
            "{args:?}: {err}"
        );
        assert!(!err.contains(".tmp"), "no temporary name in the message: {err}");
    }
}

#[test]
fn the_results_are_printed_when_a_drawing_cannot_be_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _) = trace(dir.path(), "t.jsonl", &[]);
    let o = sim(&["sweep", "--seeds", "2", "--duration", "10m", "--svg", "/dev/full"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stdout(&o).contains("2 runs on"), "the table: {}", stdout(&o));
    assert!(stderr(&o).contains("--svg /dev/full: cannot write it"), "{}", stderr(&o));
    let o = sim_in(dir.path(), &["replay", "t.jsonl", "--svg", "/dev/full"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stdout(&o).contains("identical to the recording"), "{}", stdout(&o));
    let o = sim(&["failover", "--runs", "2", "--svg", "/dev/full"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stdout(&o).contains("p50"), "{}", stdout(&o));
}

/// `kill -9` of a long `run --trace tr.jsonl` cut the trace, and a good
/// trace at that path was lost as the run began. Now the run streams into
/// `.tr.jsonl.tmpXXXXXX` and renames it when complete.
#[test]
fn a_killed_run_leaves_the_previous_trace_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tr, good) = trace(dir.path(), "tr.jsonl", &[]);
    assert!(named(dir.path(), ".tr.jsonl.tmp").is_empty());
    // A year of 10 nodes: far longer than this test waits. Killed on
    // drop, so a failing assertion leaves no run behind.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_clinit-sim"))
            .args(["run", "--nodes", "10", "--duration", "8760h", "--trace", "tr.jsonl"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    // Time passed: the temporary trace has grown past one write buffer.
    let started = Instant::now();
    let tmp = loop {
        let tmps = named(dir.path(), ".tr.jsonl.tmp");
        let grown = tmps
            .iter()
            .find(|n| std::fs::metadata(dir.path().join(n)).is_ok_and(|m| m.len() > 64 * 1024));
        if let Some(n) = grown {
            break n.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no growing temporary trace");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.0.kill().expect("kill -9");
    let status = child.0.wait().expect("wait");
    assert!(!status.success(), "killed, not finished: {status:?}");
    assert_eq!(std::fs::read(&tr).expect("trace"), good, "the previous trace is whole");
    assert_eq!(named(dir.path(), ".tr.jsonl.tmp"), vec![tmp.clone()]);
    assert_eq!(named(dir.path(), "tr.jsonl"), vec!["tr.jsonl".to_string()]);
    // A completed run replaces it and leaves no temporary file of its own.
    let (_, again) = trace(dir.path(), "tr.jsonl", &["--nodes", "4"]);
    assert_ne!(again, good);
    assert_eq!(named(dir.path(), ".tr.jsonl.tmp"), vec![tmp]);
    // A device is written in place: no temporary file beside it, and
    // none left here.
    let o = sim_in(dir.path(), &["run", "--duration", "5m", "--trace", "/dev/full"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(named(dir.path(), ".").len(), 1, "only the killed run's temporary file");
}

#[test]
fn replay_refuses_an_endless_line() {
    let o = sim(&["replay", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = stderr(&o);
    assert!(
        err.contains("/dev/zero: line 1: longer than 16777216 bytes: not a recording"),
        "{err}"
    );
}

/// A cut simulator trace was told "say so with --killed 1,2,3", which then
/// verified nothing.
#[test]
fn a_cut_simulator_trace_is_not_sent_to_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (t, bytes) = trace(dir.path(), "t.jsonl", &[]);
    let text = String::from_utf8(bytes).expect("UTF-8");
    let cut: Vec<&str> = text.lines().filter(|l| !l.starts_with("{\"end\"")).collect();
    std::fs::write(&t, cut.join("\n") + "\n").expect("write");
    let o = sim(&["replay", t.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let out = stdout(&o);
    assert!(!out.contains("--killed 1"), "{out}");
    assert!(out.contains("this simulator trace was cut") && out.contains("none verified"), "{out}");
}

/// Rewrite the header (line 1) of `path` with `edit`.
fn edit_header(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let text = std::fs::read_to_string(path).expect("trace");
    let (first, rest) = text.split_once('\n').expect("a header line");
    let mut header: serde_json::Value = serde_json::from_str(first).expect("header");
    edit(&mut header);
    std::fs::write(path, format!("{header}\n{rest}")).expect("write");
}

/// Only node 2's records (and no end line): what a `mosha --record` of
/// node 2 holds, cut.
fn keep_node_2(path: &Path) {
    let text = std::fs::read_to_string(path).expect("trace");
    let mut lines = text.lines();
    let mut kept = vec![lines.next().expect("header").to_string()];
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("record");
        let node = v.as_object().and_then(|o| o.values().next()).and_then(|r| r.get("node"));
        if node.and_then(serde_json::Value::as_u64) == Some(2) {
            kept.push(line.to_string());
        }
    }
    std::fs::write(path, kept.join("\n") + "\n").expect("write");
}

#[test]
fn a_header_naming_another_node_is_refused_and_a_newer_version_noted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (t, _) = trace(dir.path(), "t.jsonl", &[]);
    let p = t.to_str().expect("path");
    keep_node_2(&t);
    let as_mosha = |node: u64| {
        move |h: &mut serde_json::Value| {
            h["source"] = "mosha".into();
            h["seed"] = serde_json::Value::Null;
            let policy = h["config"]["policy"].clone();
            h["config"] = serde_json::json!({ "node": node, "policy": policy });
        }
    };
    for wrong in [7, 0] {
        edit_header(&t, as_mosha(wrong));
        let o = sim(&["replay", p, "--killed", "2"]);
        assert_eq!(o.status.code(), Some(2), "node {wrong}: {o:?}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "line 1: the header names node {wrong}, but the records are of node(s) [2]"
            )),
            "{err}"
        );
    }
    // The right node replays (cut: no end line, no marks).
    edit_header(&t, as_mosha(2));
    let o = sim(&["replay", p, "--killed", "2"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(stdout(&o).contains("node 2"), "{}", stdout(&o));

    // A newer writer: replayed, with a note naming both versions.
    let (t, _) = trace(dir.path(), "new.jsonl", &[]);
    edit_header(&t, |h| h["version"] = "99.0.0".into());
    let o = sim(&["replay", t.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let err = stderr(&o);
    assert!(err.contains("99.0.0") && err.contains(env!("CARGO_PKG_VERSION")), "{err}");
    // The same version: no note.
    let (t, _) = trace(dir.path(), "same.jsonl", &[]);
    let o = sim(&["replay", t.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn replay_advice_says_what_applies_to_the_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A ranked recording from mosha: another policy is refused without
    // pointing at --rerun, which cannot re-simulate it.
    let (t, _) = trace(dir.path(), "r.jsonl", &["--policy", "ranked"]);
    edit_header(&t, |h| {
        h["source"] = "mosha".into();
        h["seed"] = serde_json::Value::Null;
    });
    let o = sim(&["replay", t.to_str().expect("path"), "--policy", "classic"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = stderr(&o);
    assert!(err.contains("mosha recording made under ranked"), "{err}");
    assert!(err.contains("cannot be re-simulated") && !err.contains("add --rerun"), "{err}");
    // A simulator trace whose header lost its seed: said so, not "mosha".
    let (t, _) = trace(dir.path(), "s.jsonl", &[]);
    edit_header(&t, |h| h["seed"] = serde_json::Value::Null);
    let o = sim(&["replay", t.to_str().expect("path"), "--rerun"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = stderr(&o);
    assert!(err.contains("the header has no seed") && !err.contains("recording"), "{err}");
}

/// The what-if's first difference was a multi-hundred-character `Debug`
/// dump (`Told { group: "g02", … }`).
#[test]
fn the_first_difference_is_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (t, _) = trace(dir.path(), "t.jsonl", &[]);
    let o = sim(&["replay", t.to_str().expect("path"), "--param", "balance=-1"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    let line =
        |name: &str| out.lines().find(|l| l.trim_start().starts_with(name)).map(str::to_string);
    let (base, alt) = (line("baseline: tells").expect("baseline"), line("what-if:  members"));
    assert!(base.contains("tells g02 plan"), "{out}");
    assert!(alt.is_some(), "{out}");
    assert!(!out.contains(" { ") && !out.contains("Told"), "{out}");
}
