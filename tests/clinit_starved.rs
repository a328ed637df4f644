//! A spawn that fails for lack of file descriptors is retried within a
//! second, not counted toward the crash-loop throttle (NU2: out of
//! descriptors, a respawn waited 60 s), and status and log say why the
//! entry waits.
//!
//! The daemon's descriptor limit is lowered from outside with `prlimit(2)`
//! while it runs, to exactly what it holds: a spawn needs two new
//! descriptors (its output pipe) and fails with `EMFILE`. Then one slot is
//! given back, enough for a status connection but not for a spawn, and at
//! last the original limit, after which the entry must run again at once.

mod common;

use clinit_backends::protocol::Request;
use common::nofile::{lowest_free, set_nofile, starve};
use common::{alive, wait_for, Daemon};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn starved_lines(log: &str) -> usize {
    log.lines().filter(|l| l.contains("not started, out of file descriptors (EMFILE)")).count()
}

#[test]
fn out_of_descriptors_a_respawn_is_retried_within_a_second_and_not_throttled() {
    let d = Daemon::start("g:srv:1:respawn:echo $$ > @DIR@/srv.pid; exec sleep 1000\n", &[]);
    d.tell("g", "1");
    let first = d.pid("srv");
    let daemon = d.daemon_pid();
    // Let the daemon settle (its status, detail and state files written).
    d.wait_state("g", "1 DONE", T);
    std::thread::sleep(Duration::from_millis(300));

    // Restored when dropped, even if an assertion fails, so the daemon's
    // shutdown can still open what it needs.
    let restore = starve(daemon);
    std::fs::remove_file(d.path("srv.pid")).expect("remove srv.pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::SIGKILL)
        .expect("kill srv");
    let starved_at = Instant::now();
    wait_for(T, "a spawn refused for EMFILE in the log", || {
        (starved_lines(&d.log_text()) > 0).then_some(())
    });

    // One slot back: a status connection fits, a spawn (two) does not.
    let one_more = lowest_free(daemon) + 1;
    set_nofile(daemon, one_more).expect("one more descriptor");
    let entry = wait_for(T, "status to show srv starved", || {
        let reply = d.request(&Request::Status).ok()?;
        let entries = reply.status?.get("entries")?.as_array()?.clone();
        entries.into_iter().find(|e| e["tag"] == "srv" && e["state"] == "starved")
    });
    assert_eq!(entry["reason"], "out of file descriptors (EMFILE)", "{entry}");
    assert!(entry["in_ms"].as_u64().is_some_and(|ms| ms <= 1_000), "{entry}");
    assert_eq!(entry["fast_respawns"], 0, "a shortage is not a crash: {entry}");
    let text = d.client(&["status"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("srv not started: out of file descriptors (EMFILE), retrying in"),
        "{stdout}"
    );
    // Starved for a while, through several retries.
    let starved_for = Duration::from_millis(3_000);
    std::thread::sleep(starved_for.saturating_sub(starved_at.elapsed()));
    assert!(!d.path("srv.pid").exists(), "srv must not have started while starved");

    drop(restore);
    let freed = Instant::now();
    let second = d.pid("srv");
    let waited = freed.elapsed();
    assert!(second != first && alive(second));
    // Retries are at most 1 s apart: well within 5 s on a loaded machine.
    assert!(waited < Duration::from_secs(5), "srv restarted {waited:?} after fds were freed");

    let log = d.log_text();
    let lines = starved_lines(&log);
    let secs = starved_at.elapsed().as_secs() as usize;
    assert!(lines >= 1 && lines <= secs + 2, "{lines} starved lines in {secs} s:\n{log}");
    assert!(log.contains("not counted as a crash"), "{log}");
    assert!(!log.contains("respawning too rapidly"), "{log}");
    let reply = d.request(&Request::Status).expect("status");
    let status = reply.status.expect("status document");
    let srv = status["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["tag"] == "srv").cloned())
        .expect("srv entry");
    assert_eq!(srv["state"], "running", "{srv}");
    assert_eq!(srv["fast_respawns"], 0, "{srv}");
}
