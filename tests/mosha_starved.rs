//! Issue 10 under `mosha`: a spawn that fails for lack of file descriptors
//! is retried within a second and never counted toward the crash-loop
//! throttle, as under `clinit -d` (`tests/clinit_starved.rs`). `mosha`'s
//! executor classifies the spawn's errno (`EMFILE`, `ENFILE`, `EAGAIN`,
//! `ENOMEM`) with the daemon's own function; `io::ErrorKind` has no stable
//! kind for `EMFILE`, so before, such a spawn counted as a crash.
//!
//! A one-node `mosha` runs `web`. Its descriptor limit is lowered from
//! outside with `prlimit(2)` to exactly what it holds, `web` is killed,
//! and for 3 s every respawn fails with `EMFILE`; then the limit is
//! restored and `web` must run again within seconds, with no throttle.
//! Every process started is ended by pid or process group; every wait is
//! bounded.

mod common;

use common::cluster::{service_line, service_pid, Cluster};
use common::nofile;
use std::time::{Duration, Instant, SystemTime};

const PHASE: Duration = Duration::from_secs(60);

fn starved_lines(log: &str) -> usize {
    log.lines().filter(|l| l.contains("(EMFILE), retried soon, not counted as a crash")).count()
}

#[test]
fn out_of_descriptors_a_mosha_respawn_is_retried_within_a_second_and_not_throttled() {
    let mut c = Cluster::new("mosha-starved-", &[1]);
    let old = SystemTime::now() - Duration::from_secs(60);
    let pids = c.path("pids");
    c.put(1, "cltab", service_line(&pids, "web"), old);
    c.put(1, "hactl", "web start\n", old);
    c.start(1);
    let first = c.wait_for("web running", PHASE, || service_pid(&pids, 1, "web"));
    // Settled: its first status files written.
    std::thread::sleep(Duration::from_millis(1_000));
    let mosha = c.mosha_pid(1).as_raw();

    let restore = nofile::starve(mosha);
    let pid_file = pids.join("1.web");
    std::fs::remove_file(&pid_file).expect("remove the pid file");
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(first), nix::sys::signal::SIGKILL)
        .expect("kill web");
    let starved_at = Instant::now();
    c.wait_for("a spawn refused for EMFILE in the log", PHASE, || {
        (starved_lines(&c.log(1)) > 0).then_some(())
    });
    // Starved through several retries (at 0.25, 0.5, then every 1 s).
    let starved_for = Duration::from_millis(3_000);
    std::thread::sleep(starved_for.saturating_sub(starved_at.elapsed()));
    assert!(!pid_file.exists(), "web must not have started while starved\n{}", c.report());
    let tries = starved_lines(&c.log(1));
    assert!(tries >= 2, "retried while starved: {tries} tries\n{}", c.report());

    drop(restore);
    let freed = Instant::now();
    let second = c.wait_for("web running again", PHASE, || service_pid(&pids, 1, "web"));
    let waited = freed.elapsed();
    assert_ne!(second, first);
    // Retries are at most 1 s apart: well within 10 s on a loaded machine
    // (the throttle would hold it back for a minute).
    assert!(waited < Duration::from_secs(10), "web restarted {waited:?} after fds were freed");
    let log = c.log(1);
    assert!(!log.contains("respawning too rapidly"), "{}", c.report());
    // Said once per try (the driver's event), not twice.
    let twice = log.lines().filter(|l| l.contains("executor") && l.contains("(EMFILE)")).count();
    assert_eq!(twice, 0, "{}", c.report());
}
