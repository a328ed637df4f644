//! The operator's `clinit` command line against a real daemon: documented
//! exit statuses (0 ok, 1 refused or FAILED, 2 usage, 3 not running, 4
//! `--wait` timed out), `status` only reads, ambiguous tells are refused,
//! `check`, and a daemon that refuses a missing cltab.

mod common;

use common::{alive, Daemon, CLINIT};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn hostname() -> String {
    nix::unistd::gethostname().expect("hostname").into_string().expect("utf-8 hostname")
}

#[test]
fn tell_with_wait_exits_by_the_verdict() {
    let d = Daemon::start(
        "g:ok:ok:once:true\n\
         g:bad:bad:test:false\n\
         g:slow:slow:wait:echo $$ > @DIR@/slow.pid; exec sleep 60\n",
        &[],
    );
    let out = d.client(&["tell", "g", "ok", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "level transition started\n");
    assert!(stderr(&out).contains("telling group g to go to level ok"), "{out:?}");
    d.wait_state("g", "ok DONE", T);

    let out = d.client(&["tell", "g", "bad", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "FAILED is exit 1: {out:?}");
    assert!(stderr(&out).contains("FAILED"), "{out:?}");

    // The compatible form takes --wait as well; the wait entry never ends.
    let out = d.client(&["g", "slow", "--wait", "--timeout", "0.3"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(stderr(&out).contains("has not settled at level slow"), "{out:?}");
    assert!(alive(d.pid("slow")));

    // -v keeps the original meaning: the status after the action.
    let out = d.client(&["-v", "g", "ok", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "level transition started\ng ok DONE\n");
}

#[test]
fn status_only_reads() {
    let d = Daemon::start("g:a:1:once:true\nh:b:1:once:true\nk:c:1:once:true\n", &[]);
    d.tell("g", "1");
    d.tell("k", "1");
    d.wait_state("g", "1 DONE", T);
    d.wait_state("k", "1 DONE", T);
    let out = d.client(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "g 1 DONE\nk 1 DONE\n");
    let out = d.client(&["status", "g"]);
    assert_eq!(stdout(&out), "g 1 DONE\n");
    let out = d.client(&["status", "g", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["groups"][0]["group"], "g");
    assert_eq!(v["groups"].as_array().map(Vec::len), Some(1), "only g: {v}");
    // A group with no status yet: exit 1, and it is not told anything.
    let out = d.client(&["status", "h"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("no status for group h"), "{out:?}");
    assert_eq!(d.state_of("h"), "");
    // Nothing reached the machine: only the two tells above are in the log.
    let log = d.log_text();
    assert_eq!(log.matches("tell ").count(), 2, "{log}");
}

#[test]
fn a_level_word_that_is_a_group_name_is_refused_unless_forced() {
    let host = hostname();
    let d = Daemon::start(
        &format!(
            "{host}:svc:1:respawn:echo $$ > @DIR@/svc.pid; exec sleep 60\n\
             web:w:start:once:true\n"
        ),
        &[],
    );
    let out = d.client(&["1", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let svc = d.pid("svc");
    // `clinit -v web` meant "show me web": refused, nothing moves.
    let out = d.client(&["-v", "web"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("'web' is a group"), "{err}");
    assert!(err.contains("did you mean `clinit status web`?"), "{err}");
    assert_eq!(d.state_of(&host), "1 DONE");
    assert!(alive(svc), "the host group's service was not touched");
    // The same with an explicit group, and with the tell verb.
    assert_eq!(d.client(&[&host, "web"]).status.code(), Some(1));
    assert_eq!(d.client(&["tell", &host, "web"]).status.code(), Some(1));
    // A level no entry names, that is not a group: allowed as in the original
    // (it stops the group's entries).
    let out = d.client(&[&host, "down", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!alive(svc), "level 'down' stopped the service");
    // --level forces the ambiguous word.
    let out = d.client(&["--level", "web", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(d.state_of(&host), "web DONE");
}

#[test]
fn a_dead_daemon_is_exit_3_and_its_stale_status_is_not_shown() {
    let mut d = Daemon::start("g:a:1:once:true\n", &[]);
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.daemon_pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the daemon");
    d.wait_exit(T);
    assert!(d.socket.exists() && d.clstat.exists(), "SIGKILL leaves both behind");
    for args in [&["-v"][..], &["status"], &["g", "1"], &["-k"]] {
        let out = d.client(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {out:?}");
        assert_eq!(stdout(&out), "", "{args:?}: the stale clstat is not printed");
        assert!(stderr(&out).contains("is the daemon running?"), "{out:?}");
    }
    let out = d.client(&["-v"]);
    assert!(stderr(&out).contains("by a daemon that is gone; not shown"), "{out:?}");
    let out = d.client(&["--json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("connection refused")), "{v}");
}

#[test]
fn no_socket_says_so_with_exit_3() {
    let d = Daemon::prepare("g:a:1:once:true\n");
    let out = d.client(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stderr(&out).contains("no daemon socket at"), "{out:?}");
}

#[test]
fn kill_wait_leaves_a_clean_daemon_log() {
    let mut d = Daemon::start("g:a:1:once:echo $$ > @DIR@/a.pid; exec sleep 60\n", &[]);
    d.tell("g", "1");
    let pid = d.pid("a");
    let out = d.client(&["-k", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stderr(&out).contains("to halt every group and exit"), "{out:?}");
    assert!(d.wait_exit(T).success());
    assert!(!alive(pid));
    let log = d.log_text();
    assert!(log.contains("exiting: all groups halted"), "{log}");
    assert!(!log.contains("empty request"), "{log}");
    assert!(!log.contains("bad request"), "{log}");
    assert!(!d.path("clstat.json").exists(), "the detailed status file is removed at exit");
}

#[test]
fn the_daemon_refuses_a_missing_cltab() {
    let d = Daemon::prepare("g:a:1:once:true\n");
    let missing = d.path("no-such-cltab");
    let out = Command::new(CLINIT)
        .arg("-d")
        .arg("-c")
        .arg(&missing)
        .arg("-s")
        .arg(&d.socket)
        .stdin(Stdio::null())
        .output()
        .expect("run clinit -d");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("refusing to start"), "{out:?}");
    assert!(!d.socket.exists(), "nothing was started");
}

#[test]
fn check_reports_a_table_or_every_error() {
    let d = Daemon::prepare("g:a:1:once:true\nh:b:2:respawn:sleep 1\n");
    let out = d.client(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).ends_with(": ok: 2 entries in 2 groups (g, h)\n"), "{out:?}");
    let bad = d.path("bad");
    std::fs::write(&bad, "g:a:1:once:true\ng:a:1:bogus:x\n").expect("write");
    let out = d.client(&["check", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains(&format!("{}:2: ", bad.display())), "{text}");
    assert!(text.contains("unknown mode \"bogus\""), "{text}");
    let out = d.client(&["check", d.path("missing").to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn usage_errors_are_exit_2() {
    let d = Daemon::prepare("g:a:1:once:true\n");
    for args in
        [&["-k", "g"][..], &["a", "b", "c"], &["tell", "g"], &["--bogus"], &["-k", "status"]]
    {
        let out = d.client(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn status_shows_what_a_done_group_hides_per_entry() {
    let d = Daemon::start(
        "g:crash:1:respawn:exit 1\n\
         g:srv:1:respawn:echo $$ > @DIR@/srv.pid; exec sleep 60\n\
         g:job:1:once:true\n",
        &[],
    );
    d.tell("g", "1");
    let srv = d.pid("srv");
    // The crash loop runs 7 times back to back, then waits 60 s.
    let doc = common::wait_for(T, "the crash loop to be throttled", || {
        let out = d.client(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let throttled = v["entries"].as_array()?.iter().any(|e| e["state"] == "throttled");
        throttled.then_some(v)
    });
    let entry = |tag: &str| {
        doc["entries"].as_array().and_then(|l| l.iter().find(|e| e["tag"] == tag)).cloned()
    };
    let crash = entry("crash").expect("crash entry");
    assert_eq!(crash["mode"], "respawn");
    assert!(crash["in_ms"].as_u64().is_some_and(|ms| ms > 50_000), "{crash}");
    assert!(crash["fast_respawns"].as_u64().is_some_and(|n| n > 5), "{crash}");
    assert!(crash["restarts"].as_u64().is_some_and(|n| n >= 6), "{crash}");
    assert_eq!(crash["last_exit"], "exit 1", "{crash}");
    let running = entry("srv").expect("srv entry");
    assert_eq!(running["state"], "running");
    assert_eq!(running["pid"], srv, "{running}");
    assert_eq!(running["restarts"], 0, "{running}");
    assert!(running["uptime_ms"].as_u64().is_some(), "{running}");
    assert_eq!(entry("job").expect("job entry")["state"], "exited");

    // The same detail in the JSON file next to clstat, with absolute times.
    // The daemon's status writer thread writes it after the step that the
    // socket already answers from, so wait for the throttle to reach it.
    let file = common::wait_for(T, "clstat.json to show the throttle", || {
        let file: serde_json::Value = serde_json::from_str(&d.read("clstat.json")).ok()?;
        let entries = file["entries"].as_array()?;
        let crash = entries.iter().find(|e| e["tag"] == "crash")?;
        (crash["state"] == "throttled").then_some(file.clone())
    });
    let crash = file["entries"].as_array().and_then(|l| l.iter().find(|e| e["tag"] == "crash"));
    let crash = crash.expect("crash in clstat.json");
    assert_eq!(crash["state"], "throttled", "{file}");
    assert!(crash["next_start"].as_f64().is_some_and(|t| t > 1.7e9), "{crash}");
    assert_eq!(file["groups"][0]["state"], "DONE");

    // The text status says so in the group's line; -v keeps the old line.
    assert_eq!(d.state_of("g"), "1 DONE", "clstat is unchanged");
    let out = d.client(&["status"]);
    let line = stdout(&out);
    assert!(line.starts_with("g 1 DONE (crash respawning too fast, next start in "), "{line}");
    let out = d.client(&["-v"]);
    assert_eq!(stdout(&out), "g 1 DONE\n");
}

/// Live children of `parent` (from /proc: zombies left out).
fn children_of(parent: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            fields.first() != Some(&"Z")
                && fields.get(1).and_then(|p| p.parse().ok()) == Some(parent)
        })
        .count()
}

/// A level change larger than one spawn slice is not `DONE` for `--wait`
/// (or status) before its last process is started. A new user found `tell
/// --wait` exiting 0 with 33 of 300 processes started: the machine decides
/// `DONE` when it asks for the spawns, and the daemon carries them out in
/// slices between requests.
#[test]
fn tell_wait_on_a_large_level_returns_only_once_every_process_is_started() {
    const N: usize = 300;
    let cltab: String = (0..N)
        .map(|i| format!("m:e{i}:1:respawn:echo $$ > @DIR@/e{i}.pid; exec sleep 1101\n"))
        .collect();
    let d = Daemon::start(&cltab, &[]);
    let out = d.client(&["tell", "m", "1", "--wait", "--timeout", "60"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let started = children_of(d.daemon_pid());
    assert_eq!(started, N, "--wait returned with {started} of {N} processes started");
    let status = d.client(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(doc["pending_actions"], 0, "{doc}");
    let queued =
        doc["entries"].as_array().map(|a| a.iter().filter(|e| e["state"] == "queued").count());
    assert_eq!(queued, Some(0), "{doc}");
}
