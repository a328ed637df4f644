//! The process supervisor with real processes. Every test is bounded in time
//! (polling up to a deadline) and kills every process group it started.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use clinit_backends::process::{ProcessTable, Reaped, SpawnError, SpawnSpec};
use clinit_engine::process::{ExitStatus, ProcId, Signal};

const DEADLINE: Duration = Duration::from_secs(10);

/// Owns a table; on drop (test passed or panicked) SIGKILLs and reaps every
/// group it still holds, and only those.
struct Guard(ProcessTable);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.kill_all_and_reap();
    }
}

impl std::ops::Deref for Guard {
    type Target = ProcessTable;
    fn deref(&self) -> &ProcessTable {
        &self.0
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut ProcessTable {
        &mut self.0
    }
}

fn table() -> Guard {
    Guard(ProcessTable::new())
}

/// The exits among reap results, as (id, pid, status).
fn exits(reaped: Vec<Reaped>) -> Vec<(ProcId, u32, ExitStatus)> {
    reaped
        .into_iter()
        .filter_map(|r| match r {
            Reaped::Exited { id, pid, status, .. } => Some((id, pid, status)),
            Reaped::GroupGone { .. } => None,
        })
        .collect()
}

fn spec(id: u64, command: &str) -> SpawnSpec {
    SpawnSpec { id: ProcId(id), command: command.into(), env: vec![], cwd: None }
}

/// Poll `reap()` until `id` has ended; panics after the deadline.
fn wait_for(t: &mut ProcessTable, id: ProcId) -> (u32, ExitStatus) {
    let end = Instant::now() + DEADLINE;
    loop {
        for r in t.reap() {
            if let Reaped::Exited { id: got, pid, status, .. } = r {
                if got == id {
                    return (pid, status);
                }
            }
        }
        assert!(Instant::now() < end, "{id} did not end within {DEADLINE:?}");
        sleep(Duration::from_millis(10));
    }
}

/// Wait until `path` has a complete line (the command writes then exits,
/// but we may read it before it is reaped).
fn read_when_written(path: &Path) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(Instant::now() < end, "{} never written", path.display());
        sleep(Duration::from_millis(10));
    }
}

/// Is `pid` gone: no such process, or a zombie/dead entry waiting for some
/// other parent (init) to reap it?
fn is_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next();
            matches!(state, Some('Z') | Some('X'))
        }
    }
}

fn wait_gone(pid: u32) {
    let end = Instant::now() + DEADLINE;
    while !is_gone(pid) {
        assert!(Instant::now() < end, "pid {pid} still alive");
        sleep(Duration::from_millis(10));
    }
}

/// Fields after the command name of /proc/<pid>/stat: state, ppid, pgrp, session...
fn stat_fields(stat: &str) -> Vec<String> {
    stat[stat.rfind(')').unwrap() + 2..].split_whitespace().map(String::from).collect()
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn env_and_cwd_reach_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.out");
    let mut t = table();
    let mut s = spec(
        1,
        &format!(
            "printf '%s\\n' \"$CLINIT_TAG\" \"$CLINIT_GROUP\" \"$PATH\" \"$(pwd -P)\" > {}",
            q(&out)
        ),
    );
    s.env =
        vec![("CLINIT_TAG".into(), "tag with space".into()), ("CLINIT_GROUP".into(), "grp".into())];
    s.cwd = Some(dir.path().to_path_buf());
    t.spawn(&s).unwrap();
    assert_eq!(wait_for(&mut t, ProcId(1)).1, ExitStatus::Code(0));
    let text = read_when_written(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "tag with space");
    assert_eq!(lines[1], "grp");
    // the daemon's own environment is inherited
    assert_eq!(lines[2], std::env::var("PATH").unwrap());
    assert_eq!(PathBuf::from(lines[3]), dir.path().canonicalize().unwrap());
    assert!(t.is_empty());
}

#[test]
fn stdin_is_dev_null() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdin.out");
    let mut t = table();
    // `cat` would block forever on an inherited terminal/pipe.
    t.spawn(&spec(1, &format!("cat; echo done > {}", q(&out)))).unwrap();
    assert_eq!(wait_for(&mut t, ProcId(1)).1, ExitStatus::Code(0));
    assert_eq!(read_when_written(&out), "done\n");
}

#[test]
fn exit_codes_and_signal_deaths_are_reported() {
    let mut t = table();
    let p7 = t.spawn(&spec(7, "exit 7")).unwrap();
    let p0 = t.spawn(&spec(8, "true")).unwrap();
    let p9 = t.spawn(&spec(9, "kill -9 $$")).unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(t.pid(ProcId(7)), Some(p7));
    let mut seen = Vec::new();
    let end = Instant::now() + DEADLINE;
    while seen.len() < 3 {
        assert!(Instant::now() < end, "not all ended: {seen:?}");
        seen.extend(exits(t.reap()));
        sleep(Duration::from_millis(10));
    }
    seen.sort_by_key(|r| r.0);
    assert_eq!(
        seen,
        vec![
            (ProcId(7), p7, ExitStatus::Code(7)),
            (ProcId(8), p0, ExitStatus::Code(0)),
            (ProcId(9), p9, ExitStatus::Signaled(libc::SIGKILL)),
        ]
    );
    assert!(t.is_empty());
    assert_eq!(t.pid(ProcId(7)), None);
}

#[test]
fn signal_term_kills_and_is_reported() {
    let mut t = table();
    let pid = t.spawn(&spec(1, "sleep 1000")).unwrap();
    // still running: reap reports nothing
    assert!(t.reap().is_empty());
    assert_eq!(t.pid(ProcId(1)), Some(pid));
    assert!(t.signal(ProcId(1), Signal::Term).unwrap());
    let (got_pid, status) = wait_for(&mut t, ProcId(1));
    assert_eq!(got_pid, pid);
    assert_eq!(status, ExitStatus::Signaled(libc::SIGTERM));
}

#[test]
fn child_leads_its_own_session_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stat.out");
    let mut t = table();
    let pid = t.spawn(&spec(1, &format!("cat /proc/$$/stat > {}", q(&out)))).unwrap();
    let stat = read_when_written(&out);
    wait_for(&mut t, ProcId(1));
    let f = stat_fields(&stat);
    let (pgrp, session): (u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap());
    assert_eq!(pgrp, pid, "pgid == pid");
    assert_eq!(session, pid, "session leader");
    assert_ne!(session, std::process::id(), "not in the test process's session");
}

#[test]
fn signalling_the_group_reaches_the_commands_children() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grandchild.pid");
    let mut t = table();
    t.spawn(&spec(1, &format!("sleep 1000 & echo $! > {}; wait", q(&out)))).unwrap();
    let grandchild: u32 = read_when_written(&out).trim().parse().unwrap();
    let leader = t.pid(ProcId(1)).unwrap();
    let stat = fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap();
    assert_eq!(stat_fields(&stat)[2], leader.to_string(), "same group");
    assert!(!is_gone(grandchild));

    assert!(t.signal(ProcId(1), Signal::Term).unwrap());
    let (_, status) = wait_for(&mut t, ProcId(1));
    assert_eq!(status, ExitStatus::Signaled(libc::SIGTERM));
    wait_gone(grandchild);
}

#[test]
fn signal_after_reap_sends_nothing() {
    let mut t = table();
    t.spawn(&spec(1, "exit 3")).unwrap();
    assert_eq!(wait_for(&mut t, ProcId(1)).1, ExitStatus::Code(3));
    assert_eq!(t.pid(ProcId(1)), None);
    for sig in [Signal::Int, Signal::Term, Signal::Kill] {
        assert!(!t.signal(ProcId(1), sig).unwrap());
    }
    // never-spawned ids too
    assert!(!t.signal(ProcId(999), Signal::Kill).unwrap());
}

#[test]
fn signal_to_an_exited_but_unreaped_child_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("done");
    let mut t = table();
    let pid = t.spawn(&spec(1, &format!("echo x > {}", q(&out)))).unwrap();
    read_when_written(&out);
    // wait until it is a zombie, without reaping it
    wait_gone(pid);
    assert_eq!(t.pid(ProcId(1)), Some(pid));
    // the zombie still holds pid and pgid: whatever killpg says, no error
    t.signal(ProcId(1), Signal::Term).unwrap();
    assert_eq!(wait_for(&mut t, ProcId(1)).1, ExitStatus::Code(0));
}

#[test]
fn kill_all_and_reap_leaves_nothing_alive() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gc.pid");
    let mut t = table();
    let mut pids = vec![];
    for id in 1..=3 {
        pids.push(t.spawn(&spec(id, "sleep 1000")).unwrap());
    }
    // one that ignores SIGTERM and SIGINT, with a child of its own
    pids.push(
        t.spawn(&spec(4, &format!("trap '' TERM INT; sleep 1000 & echo $! > {}; wait", q(&out))))
            .unwrap(),
    );
    let grandchild: u32 = read_when_written(&out).trim().parse().unwrap();
    assert_eq!(t.len(), 4);

    let mut reaped = exits(t.kill_all_and_reap());
    reaped.sort_by_key(|r| r.0);
    assert!(t.is_empty());
    let want: Vec<_> = (1..=4)
        .zip(&pids)
        .map(|(id, &pid)| (ProcId(id), pid, ExitStatus::Signaled(libc::SIGKILL)))
        .collect();
    assert_eq!(reaped, want);
    wait_gone(grandchild);
    // reaped: no longer signallable
    assert!(!t.signal(ProcId(1), Signal::Kill).unwrap());
    assert!(t.kill_all_and_reap().is_empty());
}

#[test]
fn missing_cwd_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let mut t = table();
    let mut s = spec(42, "true");
    s.cwd = Some(missing.clone());
    let err = t.spawn(&s).unwrap_err();
    assert!(matches!(err, SpawnError::Io { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("#42"), "{msg}");
    assert!(msg.contains("`true`"), "{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(t.is_empty());
    assert!(t.reap().is_empty());
}

/// The spawn path without a cgroup is vfork-style on x86_64 (`clone3`
/// with `CLONE_VM | CLONE_VFORK`): it is counted, the child still leads
/// its own session with default dispositions (the other tests here), a
/// failure between clone and exec (a missing working directory) comes back as that errno with the child reaped, and the
/// caller's signal mask is what it was before (it is blocked around the
/// clone). With `clone3` switched off, the same spawn forks through std.
#[test]
fn a_vfork_spawn_is_counted_reports_its_errors_and_restores_the_mask() {
    use clinit_backends::clone3::VFORK_SPAWN;
    let mask = || {
        let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain out-parameter; no change to the mask.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur) };
        (1..=64).filter(|&n| unsafe { libc::sigismember(&cur, n) } == 1).collect::<Vec<_>>()
    };
    let before = mask();
    let mut t = table();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ran");
    let pid = t.spawn(&spec(61, &format!("echo $$ > {}; exec sleep 30", q(&out)))).unwrap();
    assert_eq!(read_when_written(&out).trim(), pid.to_string());
    assert_eq!(t.vforked(), u64::from(VFORK_SPAWN));
    assert_eq!(mask(), before, "the caller's signal mask is restored");
    // A failure in the child: the errno, and no zombie or entry left.
    let mut bad = spec(62, "true");
    bad.cwd = Some(dir.path().join("missing"));
    match t.spawn(&bad) {
        Err(SpawnError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(t.vforked(), u64::from(VFORK_SPAWN), "a failed start is not counted");
    assert_eq!(mask(), before);
    assert!(t.reap().is_empty(), "only the sleep is live, and it runs");
    // The std fork path still works.
    t.set_clone_into_cgroup(false);
    let out2 = dir.path().join("ran2");
    let pid2 = t.spawn(&spec(63, &format!("echo $$ > {}; exec sleep 30", q(&out2)))).unwrap();
    assert_eq!(read_when_written(&out2).trim(), pid2.to_string());
    assert_eq!(t.vforked(), u64::from(VFORK_SPAWN), "forked, not vforked");
    t.kill_all_and_reap();
}

/// As root: a child started with other credentials runs as that user, and
/// every thread of this (multi-threaded) process keeps its own: the
/// vfork-style child changes its credentials by raw system calls, which
/// touch the calling task alone (glibc's wrappers would broadcast to the
/// threads whose memory the child shares).
#[test]
fn credentials_change_the_child_alone() {
    use clinit_backends::process::{ChildExtras, Credentials};
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to change credentials (CI runs as root)");
        return;
    }
    let uids = || -> Vec<String> {
        fs::read_dir("/proc/self/task")
            .expect("tasks")
            .flatten()
            .filter_map(|t| fs::read_to_string(t.path().join("status")).ok())
            .filter_map(|st| st.lines().find(|l| l.starts_with("Uid:")).map(str::to_string))
            .collect()
    };
    // Another thread alive during the spawn, as the daemon's output thread is.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let _ = stop_rx.recv_timeout(DEADLINE);
    });
    let before = uids();
    assert!(before.len() >= 2, "{before:?}");
    assert!(before.iter().all(|l| l.split_whitespace().skip(1).all(|u| u == "0")), "{before:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("id");
    // World-writable so that uid 65534 can write its report there.
    fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut t = table();
    let creds = Credentials { uid: 65534, gid: 65534, groups: vec![65534] };
    let extras = ChildExtras { creds: Some(creds), ..ChildExtras::default() };
    t.spawn_with(
        &spec(71, &format!("id -u > {}.tmp; id -g >> {0}.tmp; mv {0}.tmp {0}", q(&out))),
        extras,
    )
    .unwrap();
    assert_eq!(read_when_written(&out), "65534\n65534\n");
    assert_eq!(wait_for(&mut t, ProcId(71)).1, ExitStatus::Code(0));
    // Other tests' threads come and go: every thread there is must be root.
    let root = |l: &String| l.split_whitespace().skip(1).all(|u| u == "0");
    let after = uids();
    assert!(after.iter().all(root), "this process's threads keep their credentials: {after:?}");
    let _ = stop_tx.send(());
    other.join().unwrap();
}

#[test]
fn duplicate_live_id_is_refused() {
    let mut t = table();
    let pid = t.spawn(&spec(5, "sleep 1000")).unwrap();
    let err = t.spawn(&spec(5, "sleep 1000")).unwrap_err();
    assert!(matches!(err, SpawnError::DuplicateId { pid: p, .. } if p == pid), "{err:?}");
    assert_eq!(t.len(), 1);
    assert_eq!(t.pid(ProcId(5)), Some(pid));
}

#[test]
fn reap_leaves_other_children_of_the_process_alone() {
    // A child spawned by other code in the same process (here std) must not
    // be reaped by the table.
    let mut other = std::process::Command::new("/bin/sh").args(["-c", "exit 5"]).spawn().unwrap();
    let mut t = table();
    t.spawn(&spec(1, "exit 0")).unwrap();
    wait_for(&mut t, ProcId(1));
    for _ in 0..10 {
        assert!(t.reap().is_empty());
        sleep(Duration::from_millis(5));
    }
    assert_eq!(other.wait().unwrap().code(), Some(5));
}

#[test]
fn a_lingering_group_keeps_its_leader_zombie_until_the_last_member_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bg.pid");
    let mut t = table();
    // The shell exits at once; its background child ignores SIGINT (as an
    // async list of a non-interactive shell does) and lives on in the group.
    let leader = t.spawn(&spec(1, &format!("sleep 1000 & echo $! > {}", q(&out)))).unwrap();
    let bg: u32 = read_when_written(&out).trim().parse().unwrap();
    let end = Instant::now() + DEADLINE;
    let first = loop {
        if let Some(r) = t.reap().into_iter().next() {
            break r;
        }
        assert!(Instant::now() < end, "leader exit not reported");
        sleep(Duration::from_millis(10));
    };
    assert_eq!(
        first,
        Reaped::Exited { id: ProcId(1), pid: leader, status: ExitStatus::Code(0), lingering: true }
    );
    assert_eq!(t.lingering(), 1);
    // The zombie reserves the pgid, so the group can still be signalled.
    assert!(t.signal(ProcId(1), Signal::Term).unwrap());
    wait_gone(bg);
    let end = Instant::now() + DEADLINE;
    loop {
        let got = t.reap();
        if !got.is_empty() {
            assert_eq!(got, vec![Reaped::GroupGone { id: ProcId(1), pid: leader }]);
            break;
        }
        assert!(Instant::now() < end, "group end not reported");
        sleep(Duration::from_millis(10));
    }
    assert!(t.is_empty());
    assert!(!t.signal(ProcId(1), Signal::Kill).unwrap());
}

/// A table in cgroup mode, or `None` (with the reason printed) where this
/// process cannot create cgroups (not root, no cgroup2 mount): the test is
/// then skipped, saying so.
fn cgroup_table() -> Option<Guard> {
    use clinit_backends::cgroup::Containment;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: cgroup containment needs root (or a delegated subtree)");
        return None;
    }
    let mut t = table();
    match t.enable_cgroups() {
        Containment::Cgroup { .. } => Some(t),
        Containment::ProcessGroup { reason } => {
            eprintln!("skipped: no cgroup containment here ({reason})");
            None
        }
    }
}

/// The cgroup v2 path of `pid` (`0::PATH` of /proc/PID/cgroup).
fn cgroup_of(pid: u32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or_default().to_string()
}

/// Read an output pipe until every writer closed it (bounded by the test's
/// deadline through the child's own exit).
fn read_all(fd: std::os::fd::OwnedFd) -> String {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text).expect("read pipe");
    text
}

/// In cgroup mode an instance is born in its own cgroup (`clone3` with
/// `CLONE_INTO_CGROUP`, Linux 5.7+), with everything a fork-spawned one
/// gets: stdout and stderr on its pipe, stdin `/dev/null`, its variables,
/// its working directory, a new session. A start that fails (a missing
/// working directory) is an error naming it, and leaves no cgroup behind.
#[test]
fn an_instance_is_born_in_its_cgroup() {
    use clinit_backends::process::ChildExtras;
    let Some(mut t) = cgroup_table() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let mut s = spec(7001, "echo \"$FOO $(pwd) $(cat | wc -c)\"; echo err >&2; grep ^0:: /proc/self/cgroup; cut -d' ' -f6 /proc/$$/stat");
    s.env = vec![("FOO".into(), "bar".into())];
    s.cwd = Some(dir.path().to_path_buf());
    let extras = ChildExtras { output: Some(w), ..ChildExtras::default() };
    let pid = t.spawn_with(&s, extras).expect("spawn");
    let text = read_all(r);
    assert_eq!(wait_for(&mut t, ProcId(7001)).1, ExitStatus::Code(0));
    let want = format!("bar {} 0", dir.path().display());
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(want.as_str()), "{text}");
    assert_eq!(lines.next(), Some("err"), "{text}");
    let cgroup = lines.next().unwrap_or_default().to_string();
    assert!(cgroup.starts_with("0::/") && cgroup.ends_with("/7001"), "{text}");
    assert!(cgroup.contains(&format!("/clinit.{}/", std::process::id())), "{text}");
    assert_eq!(lines.next().map(str::trim), Some(pid.to_string().as_str()), "own session: {text}");
    // Linux 5.7 and later must have used clone3; older ones the fallback.
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok());
    let (major, minor): (u32, u32) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    if (major, minor) >= (5, 7) {
        assert_eq!(t.born_in_cgroup(), 1, "born by clone3 on Linux {release}");
        assert_eq!(
            t.vforked(),
            u64::from(clinit_backends::clone3::VFORK_SPAWN),
            "vfork-style into the cgroup"
        );
    } else {
        eprintln!("note: Linux {release} has no CLONE_INTO_CGROUP; the fork fallback ran");
    }
    // A missing working directory: an error, and no cgroup left.
    let mut bad = spec(7002, "true");
    bad.cwd = Some(dir.path().join("missing"));
    match t.spawn(&bad) {
        Err(SpawnError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let base = cgroup.trim_start_matches("0::").trim_end_matches("/7001").to_string();
    let mount = clinit_backends::cgroup::cgroup2_mount(
        &fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"),
    )
    .expect("cgroup2 mount")
    .1;
    let base_dir = mount.join(base.trim_start_matches('/'));
    assert!(!base_dir.join("7002").exists(), "the failed start's cgroup is removed");
    t.kill_all_and_reap();
    t.remove_cgroup_base();
}

/// With `clone3` off (as after a kernel refused it), an instance joins its
/// cgroup between fork and exec: it ends up in the same place, and the
/// count of instances born there stays 0.
#[test]
fn the_fork_fallback_joins_the_cgroup_before_exec() {
    let Some(mut t) = cgroup_table() else { return };
    t.set_clone_into_cgroup(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cg");
    let pid = t
        .spawn(&spec(
            7101,
            &format!("grep ^0:: /proc/self/cgroup > {}; exec sleep 30", out.display()),
        ))
        .expect("spawn");
    let text = read_when_written(&out);
    assert!(text.trim_end().ends_with("/7101"), "{text}");
    assert_eq!(cgroup_of(pid), text.trim_end().trim_start_matches("0::"));
    assert_eq!(t.born_in_cgroup(), 0);
    t.kill_all_and_reap();
    t.remove_cgroup_base();
}

/// A cgroup found empty when its instance ended is reused by the next
/// spawn; one whose instance was stopped by a signal (judged by process
/// group alone, see `ProcessTable::signal`) is removed instead, and the
/// next spawn gets a new one. This test's cgroups are all gone once the table is done.
#[test]
fn an_emptied_cgroup_is_reused_and_a_signalled_one_is_not() {
    let Some(mut t) = cgroup_table() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = |n: u32| dir.path().join(format!("cg{n}"));
    let write_cg = |n: u32, tail: &str| {
        format!("grep ^0:: /proc/self/cgroup > {}.tmp && mv {0}.tmp {0}{tail}", out(n).display())
    };
    t.spawn(&spec(7301, &write_cg(1, ""))).expect("spawn");
    let first = read_when_written(&out(1));
    assert_eq!(wait_for(&mut t, ProcId(7301)).1, ExitStatus::Code(0));
    assert!(first.trim_end().ends_with("/7301"), "{first}");
    let pid = t.spawn(&spec(7302, &write_cg(2, "; exec sleep 30"))).expect("spawn");
    let second = read_when_written(&out(2));
    assert_eq!(second, first, "the emptied cgroup of 7301 is reused");
    assert!(t.signal(ProcId(7302), Signal::Term).expect("signal"));
    wait_for(&mut t, ProcId(7302));
    wait_gone(pid);
    t.spawn(&spec(7303, &write_cg(3, ""))).expect("spawn");
    let third = read_when_written(&out(3));
    assert!(third.trim_end().ends_with("/7303"), "a new cgroup after a signalled stop: {third}");
    wait_for(&mut t, ProcId(7303));
    let base_dir = {
        let mount = clinit_backends::cgroup::cgroup2_mount(
            &fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"),
        )
        .expect("cgroup2 mount")
        .1;
        let rel = first.trim_end().trim_start_matches("0::").trim_end_matches("/7301");
        mount.join(rel.trim_start_matches('/'))
    };
    assert!(base_dir.join("7301").is_dir() || base_dir.join("7303").is_dir(), "spares kept");
    t.kill_all_and_reap();
    t.remove_cgroup_base();
    // Other tests of this process share the base directory (one per
    // process): this test's cgroups, spare ones included, are gone.
    for name in ["7301", "7302", "7303"] {
        assert!(!base_dir.join(name).exists(), "cgroup {name} left in {}", base_dir.display());
    }
}
