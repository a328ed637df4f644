//! Stopping: the INT → TERM → KILL escalation on whole process groups,
//! removed and changed entries, halt and shutdown leaving nothing behind.

mod common;

use common::{alive, wait_for, Daemon};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// A command that ignores INT and TERM, with a child that ignores them too.
const STUBBORN: &str = "g:stub:1:once:trap '' INT TERM; echo $$ > @DIR@/stub.pid; \
    sh -c 'trap \"\" INT TERM; echo $$ > @DIR@/grandchild.pid; while :; do sleep 0.05; done' & \
    while :; do sleep 0.05; done\n\
    g:other:2:once:true\n";

#[test]
fn escalation_reaches_kill_for_a_stubborn_group_and_its_child() {
    let d = Daemon::start(STUBBORN, &["--term-after", "0.3", "--kill-after", "0.8"]);
    d.tell("g", "1");
    let (stub, grandchild) = (d.pid("stub"), d.pid("grandchild"));
    let start = Instant::now();
    d.tell("g", "2");
    d.wait_state("g", "2 DONE", T);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(800), "SIGKILL only after kill_after, took {took:?}");
    assert!(!alive(stub), "the command is gone");
    wait_for(T, "the grandchild to be gone", || (!alive(grandchild)).then_some(()));
    let log = d.log_text();
    let at = |s: &str| log.find(s).unwrap_or_else(|| panic!("{s} missing from log:\n{log}"));
    assert!(at("g/stub: sent SIGINT") < at("g/stub: sent SIGTERM"));
    assert!(at("g/stub: sent SIGTERM") < at("g/stub: sent SIGKILL"));
}

#[test]
fn a_cooperative_child_gets_only_sigint() {
    let d = Daemon::start(
        "g:c:1:once:trap 'echo int > @DIR@/got; exit 0' INT; echo $$ > @DIR@/c.pid; \
         while :; do sleep 0.05; done\n",
        &[],
    );
    d.tell("g", "1");
    let pid = d.pid("c");
    d.tell("g", "2");
    d.wait_state("g", "2 DONE", T);
    assert!(!alive(pid));
    assert_eq!(d.read("got"), "int\n");
    assert!(!d.log_text().contains("SIGTERM"));
}

#[test]
fn removed_group_is_stopped_gracefully_and_leaves_clstat() {
    let d = Daemon::start(
        "gone:g1:1:respawn:trap 'echo int >> @DIR@/got; exit 0' INT; echo $$ > @DIR@/g1.pid; \
         while :; do sleep 0.05; done\n\
         stay:s1:1:once:true\n",
        &[],
    );
    d.tell("gone", "1");
    d.tell("stay", "1");
    d.wait_state("gone", "1 DONE", T);
    let pid = d.pid("g1");
    d.write_cltab("stay:s1:1:once:true\n");
    // Any tell re-reads the cltab (whatever the mtime resolution).
    d.tell("stay", "1");
    wait_for(T, "the removed group to leave clstat", || {
        d.clstat().get("gone").is_none().then_some(())
    });
    assert!(!alive(pid));
    assert_eq!(d.read("got"), "int\n", "stopped with SIGINT, not SIGKILL, and not respawned");
    assert_eq!(d.tell("gone", "1").msg, "no such group: gone");
}

#[test]
fn changed_entry_is_stopped_gracefully_and_off_is_not_restarted() {
    let d = Daemon::start(
        "g:a:1:respawn:trap 'echo int >> @DIR@/got; exit 0' INT; echo $$ > @DIR@/a.pid; \
         while :; do sleep 0.05; done\n",
        &[],
    );
    d.tell("g", "1");
    let pid = d.pid("a");
    std::fs::remove_file(d.path("a.pid")).expect("rm");
    d.write_cltab("g:a:1:off:whatever\n");
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    wait_for(T, "the changed entry to stop", || (!alive(pid)).then_some(()));
    assert_eq!(d.read("got"), "int\n");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!d.path("a.pid").exists(), "an off entry is not started again");
}

#[test]
fn shutdown_stops_every_group_including_failed_ones_and_leaves_nothing() {
    let mut d = Daemon::start(
        "f:t:1:test:false\n\
         f:bg:1:once:echo $$ > @DIR@/fbg.pid; exec sleep 60\n\
         r:srv:1:respawn:echo $$ > @DIR@/srv.pid; sleep 60 & echo $! > @DIR@/srvchild.pid; wait\n",
        &[],
    );
    d.tell("f", "1");
    d.tell("r", "1");
    d.wait_state("f", "1 FAILED", T);
    let pids = [d.pid("fbg"), d.pid("srv"), d.pid("srvchild")];
    let out = d.client(&["-k", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let status = d.wait_exit(T);
    assert!(status.success(), "daemon exit status {status}");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived the shutdown");
    }
    assert!(!d.clstat.exists(), "clstat is removed at exit");
    assert!(!d.socket.exists(), "socket is removed at exit");
}

#[test]
fn sigterm_to_the_daemon_is_a_graceful_shutdown() {
    let mut d = Daemon::start("g:a:1:once:echo $$ > @DIR@/a.pid; exec sleep 60\n", &[]);
    d.tell("g", "1");
    let pid = d.pid("a");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.daemon_pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the daemon");
    let status = d.wait_exit(T);
    assert!(status.success());
    assert!(!alive(pid));
    assert!(d.log_text().contains("SIGTERM: shutting down gracefully"));
}
