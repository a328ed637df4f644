//! `mosha --record FILE` writes a trace of a real node's inputs that
//! `clinit-sim replay` re-runs through the same machines, as recorded and
//! what-if under other policy parameters. The recording ends with a digest
//! of every decision the node made, and the replay must reproduce it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_production_recording_replays_in_the_simulator() {
    let dir = tempfile::Builder::new().prefix("mosha-record-").tempdir().expect("tempdir");
    let trace = dir.path().join("trace.jsonl");
    let log = fs::File::create(dir.path().join("log")).expect("log");
    let (ha, mut command) = one_node(dir.path(), 60, &trace, log);
    let mut mosha = command.spawn().expect("start mosha");
    let pid = nix::unistd::Pid::from_raw(mosha.id() as i32);
    // Until the group runs: plan, test and start took several cycles.
    let clstat = ha.join("clstat");
    let start = Instant::now();
    let started = loop {
        let text = fs::read_to_string(&clstat).unwrap_or_default();
        if text.contains("Cluster::Init::Group g start DONE") {
            break true;
        }
        if start.elapsed() > Duration::from_secs(60) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let status = mosha.wait().expect("wait for mosha");
    let log = fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(started, "g never started; log:\n{log}");
    assert!(status.success(), "mosha exited with {status}; log:\n{log}");

    let text = fs::read_to_string(&trace).expect("trace written");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("\"source\":\"mosha\""), "{}", lines[0]);
    assert!(lines.iter().filter(|l| l.contains("\"cycle\"")).count() >= 3, "{text}");

    let sim = env!("CARGO_BIN_EXE_clinit-sim");
    assert!(lines.last().is_some_and(|l| l.starts_with("{\"end\"")), "no digest line");
    let replay = Command::new(sim).arg("replay").arg(&trace).output().expect("replay");
    assert!(replay.status.success(), "replay failed: {replay:?}");
    let said = String::from_utf8_lossy(&replay.stdout);
    assert!(said.contains("identical to the recording"), "{said}");
    let what_if = Command::new(sim)
        .args(["replay", "--param", "balance=0.5"])
        .arg(&trace)
        .output()
        .expect("what-if");
    assert!(what_if.status.success(), "what-if replay failed: {what_if:?}");
}

/// A restarted `mosha --record FILE` keeps the recording of the
/// incarnation before it (killed with -9: the incident) as FILE.1 instead
/// of overwriting it, and `clinit-sim replay FILE.1 --killed 1` verifies
/// that cut recording up to its last complete record.
#[test]
fn a_restart_keeps_the_killed_incarnations_recording() {
    let dir = tempfile::Builder::new().prefix("mosha-record-kill-").tempdir().expect("tempdir");
    let trace = dir.path().join("trace.jsonl");
    let kept = dir.path().join("trace.jsonl.1");
    let start = |n: u32| {
        let log = fs::File::create(dir.path().join(format!("log{n}"))).expect("log");
        one_node(dir.path(), 30, &trace, log).1.spawn().expect("start mosha")
    };
    // Until the recording holds `n` cycles (bounded: 60 s).
    let wait_cycles = |n: usize| {
        let t0 = Instant::now();
        loop {
            let text = fs::read_to_string(&trace).unwrap_or_default();
            if text.lines().filter(|l| l.contains("\"cycle\"")).count() >= n {
                return true;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut first = start(1);
    let ok = wait_cycles(3);
    let _ = first.kill(); // SIGKILL: no end line
    let _ = first.wait();
    assert!(
        ok,
        "no cycles recorded: {}",
        fs::read_to_string(dir.path().join("log1")).unwrap_or_default()
    );
    let killed = fs::read_to_string(&trace).expect("first recording");

    let mut second = start(2);
    // FILE still holds the old recording until the new mosha moves it.
    let t0 = Instant::now();
    while !kept.exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = wait_cycles(3);
    let pid = nix::unistd::Pid::from_raw(second.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let status = second.wait().expect("wait");
    let log = fs::read_to_string(dir.path().join("log2")).unwrap_or_default();
    assert!(ok && status.success(), "{status}: {log}");
    assert!(log.contains("is kept as"), "the log says where the old recording went: {log}");

    // The killed incarnation's recording is intact at FILE.1.
    let old = fs::read_to_string(&kept).expect("FILE.1 kept");
    assert!(old.starts_with(&killed), "FILE.1 is the first incarnation's recording");
    assert!(!old.lines().last().unwrap_or_default().starts_with("{\"end\""), "it was cut");
    let sim = env!("CARGO_BIN_EXE_clinit-sim");
    let cut = Command::new(sim).arg("replay").arg(&kept).output().expect("replay");
    assert_eq!(cut.status.code(), Some(3), "a cut recording is refused without --killed: {cut:?}");
    let replay = Command::new(sim)
        .arg("replay")
        .arg(&kept)
        .args(["--killed", "1"])
        .output()
        .expect("replay");
    assert!(replay.status.success(), "FILE.1 --killed 1: {replay:?}");
    // The new incarnation's own recording is complete and identical.
    let replay = Command::new(sim).arg("replay").arg(&trace).output().expect("replay");
    assert!(replay.status.success(), "FILE: {replay:?}");
    let said = String::from_utf8_lossy(&replay.stdout);
    assert!(said.contains("identical to the recording"), "{said}");
}

/// A one-node cluster under `dir`: membership view `view/nodes/1` (up),
/// `mfs/1/var/mosix-ha` with group `g` (a passing test, then `exec sleep
/// SECS` at `start`) wanted at `start`. Returns the node's shared
/// directory, and the `mosha` command that records to `trace` (its stderr
/// to `log`).
fn one_node(dir: &Path, secs: u32, trace: &Path, log: fs::File) -> (PathBuf, Command) {
    let view = dir.join("view/nodes/1");
    let ha = dir.join("mfs/1/var/mosix-ha");
    fs::create_dir_all(&view).expect("mkdir view");
    fs::create_dir_all(&ha).expect("mkdir mfs");
    fs::write(view.join("status"), "3\n").expect("status");
    fs::write(ha.join("cltab"), format!("g:t:test:test:true\ng:a:start:once:exec sleep {secs}\n"))
        .expect("cltab");
    fs::write(ha.join("hactl"), "g start\n").expect("hactl");
    let mut mosha = Command::new(env!("CARGO_BIN_EXE_mosha"));
    mosha
        .args(["--node", "1", "--timeout", "3", "--seed", "11", "--mfsbase"])
        .arg(dir.join("mfs"))
        .arg("--hpcbase")
        .arg(dir.join("view"))
        .arg("--record")
        .arg(trace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    (ha, mosha)
}
