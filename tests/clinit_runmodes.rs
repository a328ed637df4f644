//! Runmodes, start order, verdicts and level changes, with real processes.

mod common;

use common::{alive, wait_for, Daemon};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

#[test]
fn once_does_not_block_wait_does_and_off_is_skipped() {
    // The original's 30once.t: `once` A writes 1, sleeps, writes 3; `wait` B
    // sleeps less and writes 2; C starts only after B exited.
    let d = Daemon::start(
        "g:a:1:once:echo 1 >> @DIR@/out; sleep 0.6; echo 3 >> @DIR@/out\n\
         g:b:1:wait:sleep 0.3; echo 2 >> @DIR@/out\n\
         g:off:1:off:echo never >> @DIR@/out\n\
         g:c:1:once:echo c >> @DIR@/out\n",
        &[],
    );
    assert_eq!(d.tell("g", "1").msg, "level transition started");
    d.wait_state("g", "1 DONE", T);
    wait_for(T, "a to finish", || d.read("out").contains('3').then_some(()));
    assert_eq!(d.read("out"), "1\n2\nc\n3\n");
}

#[test]
fn wait_entry_holds_the_group_in_starting_until_it_exits() {
    let d = Daemon::start("g:w:1:wait:echo $$ > @DIR@/w.pid; exec sleep 30\n", &[]);
    d.tell("g", "1");
    let pid = d.pid("w");
    d.wait_state("g", "1 STARTING", T);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)
        .expect("kill the wait entry");
    d.wait_state("g", "1 DONE", T);
}

#[test]
fn test_verdicts_are_passed_failed_and_done_and_are_not_rerun() {
    let d = Daemon::start(
        "t:pass:p,m:test:echo x >> @DIR@/ran; true\n\
         t:fail:f:test:false\n\
         t:bg:m:once:true\n",
        &[],
    );
    d.tell("t", "p");
    d.wait_state("t", "p PASSED", T);
    d.tell("t", "f");
    d.wait_state("t", "f FAILED", T);
    d.tell("t", "m");
    d.wait_state("t", "m DONE", T);
    // Re-telling the level it is in runs nothing again.
    d.tell("t", "m");
    d.wait_state("t", "m DONE", T);
    assert_eq!(d.read("ran"), "x\nx\n", "pass ran in p, then again in m after leaving p");
    // An empty level is DONE at once.
    d.tell("t", "nothing-here");
    d.wait_state("t", "nothing-here DONE", T);
}

#[test]
fn level_change_keeps_shared_entries_and_stops_the_rest() {
    let d = Daemon::start(
        "g:shared:12:respawn:echo $$ > @DIR@/shared.pid; exec sleep 60\n\
         g:one:1:once:echo $$ > @DIR@/one.pid; exec sleep 60\n\
         g:two:2:wait:echo $$ > @DIR@/two.pid\n",
        &[],
    );
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    let (shared, one) = (d.pid("shared"), d.pid("one"));
    let started = Instant::now();
    d.tell("g", "2");
    d.wait_state("g", "2 DONE", T);
    assert!(started.elapsed() < Duration::from_secs(5), "no escalation needed for sleep");
    assert!(alive(shared), "an entry in both levels keeps running");
    assert_eq!(d.pid("shared"), shared, "and is not restarted");
    wait_for(T, "the level-1 entry to be gone", || (!alive(one)).then_some(()));
    assert!(d.path("two.pid").exists());
}

#[test]
fn level_change_that_stops_nothing_is_immediate() {
    let d = Daemon::start("g:a:12:respawn:exec sleep 60\n", &[]);
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    let start = Instant::now();
    d.tell("g", "2");
    d.wait_state("g", "2 DONE", T);
    // Not a speed assert (machines are noisy): the original polled once a
    // second, we must not wait for a poll at all, so allow plenty of slack.
    assert!(start.elapsed() < Duration::from_millis(900), "took {:?}", start.elapsed());
}

#[test]
fn children_get_the_clinit_environment() {
    let d = Daemon::start(
        "web:env1:start:wait:echo $CLINIT_GROUP $CLINIT_TAG $CLINIT_LEVEL > @DIR@/env\n",
        &[],
    );
    d.tell("web", "start");
    d.wait_state("web", "start DONE", T);
    assert_eq!(d.read("env"), "web env1 start\n");
}

#[test]
fn level_zero_and_group_zero_show_in_clstat() {
    let d = Daemon::start("0:z1:0:once:true\n0:z2:1:respawn:exec sleep 60\n", &[]);
    d.tell("0", "1");
    d.wait_state("0", "1 DONE", T);
    d.tell("0", "0");
    d.wait_state("0", "0 DONE", T);
    let text = std::fs::read_to_string(&d.clstat).expect("clstat");
    assert_eq!(text, "Cluster::Init::Group 0 0 DONE\n");
}

#[test]
fn respawn_restarts_and_throttles_a_crash_loop() {
    let d = Daemon::start("r:loop:1:respawn:echo x >> @DIR@/runs; exit 1\n", &[]);
    d.tell("r", "1");
    wait_for(T, "seven runs", || (d.read("runs").lines().count() >= 7).then_some(()));
    // Then the throttle pauses it for a minute: no eighth run soon.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.read("runs").lines().count(), 7, "log:\n{}", d.log_text());
    assert!(d.log_text().contains("respawning too rapidly"));
}

#[test]
fn respawn_restarts_a_killed_server() {
    let d = Daemon::start("r:srv:1:respawn:echo $$ > @DIR@/srv.pid; exec sleep 60\n", &[]);
    d.tell("r", "1");
    let first = d.pid("srv");
    std::fs::remove_file(d.path("srv.pid")).expect("rm pid file");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::Signal::SIGKILL)
        .expect("kill -9");
    let second = d.pid("srv");
    assert_ne!(first, second);
    assert!(alive(second));
    d.wait_state("r", "1 DONE", T);
}

#[test]
fn clstat_is_rewritten_as_a_heartbeat_even_when_nothing_changes() {
    let d = Daemon::start("g:a:1:once:exec sleep 60\n", &["--heartbeat", "0.2"]);
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    let mtime = || std::fs::metadata(&d.clstat).and_then(|m| m.modified()).ok();
    let first = mtime().expect("clstat exists");
    wait_for(T, "a heartbeat rewrite", || (mtime() > Some(first)).then_some(()));
    assert_eq!(d.state_of("g"), "1 DONE");
}
