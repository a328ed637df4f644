//! Children must not inherit the daemon's ignored or blocked signals
//! (spec §9 item 17). This changes process-wide signal state, so it lives in
//! its own test binary (own process) and holds a single test function.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use clinit_backends::process::{ProcessTable, SpawnSpec};
use clinit_engine::process::{ExitStatus, ProcId, Signal};

const DEADLINE: Duration = Duration::from_secs(10);

fn spec(id: u64, command: &str) -> SpawnSpec {
    SpawnSpec { id: ProcId(id), command: command.into(), env: vec![], cwd: None }
}

fn wait_for(t: &mut ProcessTable, id: ProcId) -> ExitStatus {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = t.reap().into_iter().find(|r| r.id() == id).and_then(|r| r.status()) {
            return status;
        }
        assert!(Instant::now() < end, "{id} did not end within {DEADLINE:?}");
        sleep(Duration::from_millis(10));
    }
}

/// A `/proc/<pid>/status` mask line (`SigIgn:`, `SigBlk:`) as a number.
fn mask(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line[field.len()..].trim(), 16).unwrap()
}

/// Signal set bit for signal number `sig` in /proc masks.
fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// Set SIGINT, SIGQUIT and a real-time signal to SIG_IGN process-wide and block SIGINT/SIGTERM in
/// this thread (as a daemon started with `&` from a script would have);
/// restore on drop.
struct HostileSignals {
    old_int: libc::sigaction,
    old_quit: libc::sigaction,
    old_rt: libc::sigaction,
    old_mask: libc::sigset_t,
}

impl HostileSignals {
    fn install() -> Self {
        unsafe {
            let mut ign: libc::sigaction = std::mem::zeroed();
            ign.sa_sigaction = libc::SIG_IGN;
            libc::sigemptyset(&mut ign.sa_mask);
            let mut old_int: libc::sigaction = std::mem::zeroed();
            let mut old_quit: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(libc::SIGINT, &ign, &mut old_int), 0);
            assert_eq!(libc::sigaction(libc::SIGQUIT, &ign, &mut old_quit), 0);
            let mut old_rt: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(libc::SIGRTMIN(), &ign, &mut old_rt), 0);
            let mut block: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut block);
            libc::sigaddset(&mut block, libc::SIGINT);
            libc::sigaddset(&mut block, libc::SIGTERM);
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old_mask), 0);
            HostileSignals { old_int, old_quit, old_rt, old_mask }
        }
    }
}

impl Drop for HostileSignals {
    fn drop(&mut self) {
        unsafe {
            libc::sigaction(libc::SIGINT, &self.old_int, std::ptr::null_mut());
            libc::sigaction(libc::SIGQUIT, &self.old_quit, std::ptr::null_mut());
            libc::sigaction(libc::SIGRTMIN(), &self.old_rt, std::ptr::null_mut());
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }
}

#[test]
fn children_get_default_dispositions_and_an_empty_mask() {
    let mut t = ProcessTable::new();

    let pid = {
        let _hostile = HostileSignals::install();
        // Sanity: the test process really has them ignored/blocked now.
        let me = fs::read_to_string("/proc/thread-self/status").unwrap();
        assert_ne!(mask(&me, "SigIgn:") & bit(libc::SIGINT), 0);
        assert_ne!(mask(&me, "SigIgn:") & bit(libc::SIGRTMIN()), 0);
        assert_ne!(mask(&me, "SigBlk:") & bit(libc::SIGINT), 0);

        // `exec sleep` keeps the pid and inherits exactly the dispositions and
        // mask the shell was started with. (Reading the shell's own status
        // instead races with the shell blocking signals around its forks.)
        t.spawn(&spec(1, "exec sleep 1000")).unwrap()
    };
    let path = format!("/proc/{pid}/status");
    let end = Instant::now() + DEADLINE;
    let status_text = loop {
        let text = fs::read_to_string(&path).unwrap_or_default();
        if text.starts_with("Name:\tsleep") {
            break text;
        }
        assert!(Instant::now() < end, "child never became `sleep`: {text}");
        sleep(Duration::from_millis(5));
    };

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_eq!(mask(&status_text, "SigIgn:"), 0, "{status_text}");
        assert_eq!(mask(&status_text, "SigBlk:"), 0, "{status_text}");
        // SIGINT, the engine's first stop signal, now stops the command.
        assert!(t.signal(ProcId(1), Signal::Int).unwrap());
        assert_eq!(wait_for(&mut t, ProcId(1)), ExitStatus::Signaled(libc::SIGINT));
    }));
    let leftovers = t.kill_all_and_reap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(leftovers.is_empty(), "pid {pid} survived SIGINT");
}
