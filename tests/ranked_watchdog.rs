//! `ranked`'s process-form watchdog, with real processes: the `mosha`
//! binary started as the watchdog (`CLINIT_WATCHDOG=1`), a "monitor" that
//! re-arms it every 100 ms through a pipe (a shell loop reading
//! CLOCK_BOOTTIME from /proc/uptime), and a service (`sleep`) in its own
//! process group. While the monitor re-arms, the service lives; once the
//! monitor is SIGSTOPped, the watchdog SIGKILLs the service's group at the
//! deadline. Every process is ours, ended by pid, and every wait bounded.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills what it holds when dropped (the test fails or ends).
struct Reap(Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start the service and the watchdog fed by a monitor shell that says
/// `add PGID` once, then `arm 1 1 <now + 500 ms>` every 100 ms.
fn start() -> (Reap, u32, u32) {
    let service = Command::new("sleep").arg("600").process_group(0).spawn().expect("sleep starts");
    let pgid = service.id();
    let script = format!(
        "echo add {pgid}; while :; do awk '{{printf \"arm 1 1 %d\\n\", $1*1000 + 500}}' /proc/uptime; sleep 0.1; done"
    );
    let mut monitor = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("monitor shell starts");
    let pipe = monitor.stdout.take().expect("piped");
    let watchdog = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .env(clinit_backends::watchdog::ENV, "1")
        .stdin(Stdio::from(pipe))
        .process_group(0)
        .spawn()
        .expect("watchdog starts");
    let monitor_pid = monitor.id();
    let watchdog_pid = watchdog.id();
    assert_ne!(watchdog_pid, monitor_pid);
    (Reap(vec![service, monitor, watchdog]), monitor_pid, pgid)
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn watchdog_kills_the_services_of_a_stopped_monitor() {
    let (mut procs, monitor, _) = start();
    // 1.5 s of re-arming: three times the 500 ms deadline has passed.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        procs.0[0].try_wait().expect("try_wait").is_none(),
        "the service died although the monitor kept re-arming"
    );
    kill(Pid::from_raw(monitor as i32), Signal::SIGSTOP).expect("SIGSTOP the monitor");
    let st = wait_exit(&mut procs.0[0], Duration::from_secs(5))
        .expect("the watchdog did not kill the service within 5 s of the monitor's stop");
    assert_eq!(st.signal(), Some(9), "killed by SIGKILL: {st:?}");
}

#[test]
fn watchdog_spares_the_services_while_the_monitor_re_arms() {
    let (mut procs, _, _) = start();
    // Proof that time passed: 2.5 s is five deadlines of 500 ms.
    let started = Instant::now();
    let early = wait_exit(&mut procs.0[0], Duration::from_millis(2500));
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert!(early.is_none(), "the service died while the monitor re-armed: {early:?}");
    // The watchdog itself is still there, waiting.
    assert!(procs.0[2].try_wait().expect("try_wait").is_none(), "the watchdog exited");
}

/// State letter of `pid` from /proc (`Z` for a zombie), or `None` when it
/// is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// The monitor's handle restarts a watchdog that was killed (`kill -9`, the
/// OOM killer) at the next line it sends, and replays the arming and the
/// service groups to the new one: the services of a monitor that then stops
/// re-arming still die at the deadline. Before, a dead watchdog was only
/// logged, at every heartbeat; a new user froze such a monitor and its
/// services ran for 10–14 s beside their new owners'.
#[test]
fn a_killed_watchdog_is_restarted_and_still_kills_at_the_deadline() {
    use clinit_backends::watchdog::{boottime, Line, WatchdogHandle};
    use clinit_engine::time::Millis;
    let service = Command::new("sleep").arg("600").process_group(0).spawn().expect("sleep starts");
    let pgid = service.id() as i32;
    let mut procs = Reap(vec![service]);
    let mut handle =
        WatchdogHandle::spawn(std::path::Path::new(env!("CARGO_BIN_EXE_mosha"))).expect("spawn");
    let arm = |ms: u64| Line::Arm { epoch: (1, 1), deadline: Some(Millis(boottime().0 + ms)) };
    handle.send(Line::Add(pgid)).expect("add");
    handle.send(arm(60_000)).expect("arm");
    let old = handle.pid();
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).expect("kill -9 the watchdog");
    let start = Instant::now();
    while proc_state(old).is_some_and(|s| s != 'Z') && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(proc_state(old), Some('Z'), "the old watchdog died (not reaped yet)");
    // The next arming finds the pipe broken and restarts the watchdog (a
    // process forked by another test thread at that moment may hold the
    // pipe's read end a little longer: keep arming, bounded, as the
    // monitor does every heartbeat).
    let start = Instant::now();
    while handle.pid() == old && start.elapsed() < Duration::from_secs(5) {
        handle.send(arm(1_000)).expect("the restart succeeds");
        std::thread::sleep(Duration::from_millis(20));
    }
    let new = handle.pid();
    assert_ne!(new, old, "a new watchdog process");
    assert_eq!(proc_state(old), None, "the old one was reaped, no zombie left");
    // No more arming: the new watchdog knows the group and the deadline.
    let st = wait_exit(&mut procs.0[0], Duration::from_secs(5))
        .expect("the restarted watchdog did not kill the service within 5 s of its deadline");
    assert_eq!(st.signal(), Some(9), "killed by SIGKILL: {st:?}");
    // End the new watchdog (ours): it exits after its deadline once the
    // pipe closes; kill it to be quick.
    let _ = kill(Pid::from_raw(new as i32), Signal::SIGKILL);
    drop(handle);
}

/// A watchdog that is gone and cannot be restarted (its program was
/// removed, as by a package upgrade gone wrong) is reported as down, so the
/// monitor publishes `watchdog: false` instead of a guard it no longer has;
/// once a restart succeeds it is up again. The program is a copy of `mosha`
/// in a temp dir, removed and put back by the test.
#[test]
fn a_watchdog_that_cannot_be_restarted_is_reported_down_until_one_starts() {
    use clinit_backends::watchdog::{boottime, Line, WatchdogHandle};
    use clinit_engine::time::Millis;
    let dir = tempfile::tempdir().expect("temp dir");
    let program = dir.path().join("mosha-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_mosha"), &program).expect("copy mosha");
    let mut handle = WatchdogHandle::spawn(&program).expect("spawn");
    let arm = |ms: u64| Line::Arm { epoch: (1, 1), deadline: Some(Millis(boottime().0 + ms)) };
    handle.send(arm(60_000)).expect("arm");
    assert!(handle.is_up());
    let old = handle.pid();
    std::fs::remove_file(&program).expect("remove the program");
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).expect("kill -9 the watchdog");
    let start = Instant::now();
    while proc_state(old).is_some_and(|s| s != 'Z') && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The first line after the kill finds the pipe broken (a process
    // forked by another test thread at that moment may hold the read end a
    // little longer, so keep sending, bounded).
    let start = Instant::now();
    let mut errors = 0;
    while handle.is_up() && start.elapsed() < Duration::from_secs(5) {
        errors += usize::from(handle.send(arm(60_000)).is_err());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!handle.is_up(), "down while restarts fail");
    assert_eq!(errors, 1, "the loss is reported once");
    assert!(handle.send(arm(60_000)).is_ok(), "later failures are quiet");
    assert!(!handle.is_up(), "still down");
    std::fs::copy(env!("CARGO_BIN_EXE_mosha"), &program).expect("put mosha back");
    handle.send(arm(60_000)).expect("the restart succeeds");
    assert!(handle.is_up(), "up again");
    let new = handle.pid();
    assert_ne!(new, old);
    let _ = kill(Pid::from_raw(new as i32), Signal::SIGKILL);
    drop(handle);
}

/// Issue 10, process containment: a service's descendant that left its
/// process group (`setsid sleep &`) is killed at the deadline too, found by
/// the generation marker the monitor hands the watchdog (`marker VALUE`),
/// also by a watchdog restarted after a `kill -9` (the marker is replayed).
/// A process with another marker is left alone. Fails without the marker
/// line: `killpg` does not reach the escapee.
#[test]
fn the_watchdog_kills_escaped_descendants_by_their_generation_marker() {
    use clinit_backends::generations::{marked_processes, GENERATION_ENV};
    use clinit_backends::watchdog::{boottime, Line, WatchdogHandle};
    use clinit_engine::time::Millis;
    let marker = format!("{}:/test/ranked_watchdog/{}", std::process::id(), line!());
    let other = format!("{marker}-other");
    let service = Command::new("sh")
        .args(["-c", "setsid sleep 3071 & exec sleep 3072"])
        .env(GENERATION_ENV, &marker)
        .process_group(0)
        .spawn()
        .expect("service starts");
    let bystander = Command::new("sleep")
        .arg("3073")
        .env(GENERATION_ENV, &other)
        .process_group(0)
        .spawn()
        .expect("bystander starts");
    let pgid = service.id() as i32;
    let mut procs = Reap(vec![service, bystander]);
    let start = Instant::now();
    while marked_processes(&marker).len() < 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let escapee: Vec<u32> =
        marked_processes(&marker).into_iter().filter(|&p| p != pgid as u32).collect();
    assert_eq!(escapee.len(), 1, "the setsid sleep carries the marker");
    let mut handle =
        WatchdogHandle::spawn(std::path::Path::new(env!("CARGO_BIN_EXE_mosha"))).expect("spawn");
    handle.send(Line::Marker(marker.clone())).expect("marker");
    handle.send(Line::Add(pgid)).expect("add");
    // Restarted once (kill -9), then armed to fire in 300 ms.
    let old = handle.pid();
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).expect("kill -9 the watchdog");
    let start = Instant::now();
    while handle.pid() == old && start.elapsed() < Duration::from_secs(5) {
        let deadline = Some(Millis(boottime().0 + 300));
        handle.send(Line::Arm { epoch: (1, 1), deadline }).expect("arm");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(handle.pid(), old, "restarted");
    let st = wait_exit(&mut procs.0[0], Duration::from_secs(5)).expect("the service is killed");
    assert_eq!(st.signal(), Some(9), "{st:?}");
    let start = Instant::now();
    while !marked_processes(&marker).is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = marked_processes(&marker);
    for &pid in &left {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    assert!(left.is_empty(), "the escaped descendant outlived the watchdog's kill: {left:?}");
    assert!(procs.0[1].try_wait().expect("try_wait").is_none(), "another marker is left alone");
    let _ = kill(Pid::from_raw(handle.pid() as i32), Signal::SIGKILL);
    drop(handle);
}
