//! Crash safety, containment and access control of `clinit -d` (issue 10),
//! each against a real daemon with real processes under a temp dir.

mod common;

use clinit_backends::protocol::Request;
use common::{alive, wait_for, Daemon};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn kill9(pid: i32) {
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL");
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Item 1: a changed cltab line, re-read, then the running instance killed:
/// the entry restarts with its new definition (it used to stay down, DONE).
#[test]
fn respawn_entry_with_a_changed_line_restarts_with_the_new_definition() {
    let d = Daemon::start("g:srv:1:respawn:echo $$ > @DIR@/srv.pid; exec sleep 3011\n", &[]);
    d.tell("g", "1");
    let old = d.pid("srv");
    wait_for(T, "sleep 3011 to run", || cmdline(old).contains("sleep 3011").then_some(()));
    std::fs::remove_file(d.path("srv.pid")).expect("rm srv.pid");
    d.write_cltab("g:srv:1:respawn:echo $$ > @DIR@/srv.pid; exec sleep 3012\n");
    assert!(d.request(&Request::Reread).expect("reread").ok);
    kill9(old);
    let new = d.pid("srv");
    assert_ne!(new, old);
    wait_for(T, "sleep 3012 to run", || cmdline(new).contains("sleep 3012").then_some(()));
    assert_eq!(d.state_of("g"), "1 DONE");
    assert!(d.log_text().contains("g/srv restarting with its changed cltab line"));
}

/// Item 1: the shell of a respawn entry is killed while a child lives on in
/// its process group: the entry restarts at once, and the leftover is stopped
/// with the escalation (it used to wait for the leftover, maybe forever).
#[test]
fn respawn_does_not_wait_for_the_leftovers_of_a_killed_shell_and_stops_them() {
    let d = Daemon::start(
        "g:srv:1:respawn:echo $$ > @DIR@/srv.pid; \
         sh -c 'trap \"\" INT; echo $$ > @DIR@/child.pid; exec sleep 1000' & wait\n",
        &["--term-after", "0.3", "--kill-after", "0.8"],
    );
    d.tell("g", "1");
    let shell = d.pid("srv");
    let child = d.pid("child");
    std::fs::remove_file(d.path("srv.pid")).expect("rm srv.pid");
    std::fs::remove_file(d.path("child.pid")).expect("rm child.pid");
    kill9(shell);
    // The new instance starts while the old child still lives (it ignores
    // SIGINT, so it survives at least until SIGTERM 0.3 s later)...
    let new = d.pid("srv");
    assert_ne!(new, shell);
    // ...and the old child is stopped, not left behind.
    wait_for(T, "the leftover child to be stopped", || (!alive(child)).then_some(()));
    let new_child = d.pid("child");
    assert!(alive(new) && alive(new_child), "the new instance runs");
    assert_eq!(d.state_of("g"), "1 DONE");
    let log = d.log_text();
    assert!(log.contains("g/srv: sent SIGINT"), "{log}");
    assert!(log.contains("g/srv: sent SIGTERM"), "{log}");
}
