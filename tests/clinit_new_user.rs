//! Defects a new user found in the node layer (issues 10 and 11, second
//! pass): a dead log reader, log file modes under umask 000, a full disk,
//! probe connections, control characters in child output. Each test runs a
//! real `clinit -d` under a temp dir, bounded in time.

mod common;

use common::{wait_for, Daemon};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// Defect 1: the daemon's stderr is a pipe whose reader has exited (EPIPE
/// on every write). The daemon used to panic ("failed printing to stderr:
/// Broken pipe", exit 101) at its first log line and orphan its services.
/// Now it keeps serving status and tells, and `-k --wait` stops it cleanly.
#[test]
fn a_dead_stderr_reader_does_not_kill_the_daemon() {
    use std::os::fd::OwnedFd;
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    // The reader goes away before the daemon writes anything.
    drop(read_end);
    let mut d = Daemon::prepare(
        "g:a:1:respawn:echo $$ > @DIR@/a.pid; exec sleep 3101\ng:b:2:once:true\n",
    );
    d.spawn_with(&[], move |cmd| {
        cmd.stderr(std::process::Stdio::from(write_end));
    });
    let mut d = d.wait_ready();
    // RUST_LOG=debug: every request below makes the daemon log, into the
    // dead pipe.
    for level in ["1", "2", "1"] {
        assert_eq!(d.tell("g", level).msg, "level transition started");
        d.wait_state("g", &format!("{level} DONE"), T);
    }
    let a = d.pid("a");
    assert!(common::alive(a), "the service runs");
    let out = d.client(&["-v"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("g 1 DONE"), "{out:?}");
    assert!(d.try_wait().is_none(), "the daemon is still running");
    let out = d.client(&["-k", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let status = d.wait_exit(T);
    assert!(status.success(), "the daemon ends cleanly, not by a panic: {status}");
    wait_for(T, "the service to be stopped", || (!common::alive(a)).then_some(()));
}
