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
    // The daemon logs this after the spawn: the child may run first.
    wait_for(T, "the restart's log line", || {
        d.log_text().contains("g/srv restarting with its changed cltab line").then_some(())
    });
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

/// Item 2: a 0-byte cltab is refused with a clear error; the daemon keeps
/// its last good table and every service runs on. A comments-only table is
/// an explicit "nothing configured" and is taken.
#[test]
fn zero_byte_cltab_is_refused_and_the_last_good_table_kept() {
    let d = Daemon::start("g:srv:1:respawn:echo $$ > @DIR@/srv.pid; exec sleep 3020\n", &[]);
    d.tell("g", "1");
    let pid = d.pid("srv");
    std::fs::write(&d.cltab, b"").expect("truncate cltab");
    let reply = d.request(&Request::Reread).expect("reread");
    assert!(!reply.ok, "{reply:?}");
    let want = format!("{}:1: the file is empty (0 bytes)", d.cltab.display());
    assert!(reply.msg.contains(&want), "{}", reply.msg);
    assert!(d.log_text().contains("keeping the last good cltab"));
    assert!(alive(pid), "the service runs on");
    assert_eq!(d.state_of("g"), "1 DONE");
    // The client cannot find the socket in an empty cltab: it says so, and
    // exits 3 (no daemon on the socket it tried), never 0.
    let out = d.client(&[]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is empty (0 bytes)") && err.contains("give that socket with -s"),
        "{err}"
    );
    // With the socket named, the refusal is the daemon's: exit 1.
    let out = d.client(&["-s", &d.socket.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Explicitly empty (directives and a comment): taken, the group halts.
    d.write_cltab("# nothing runs here\n");
    assert!(d.request(&Request::Reread).expect("reread").ok);
    wait_for(T, "the group to be removed", || d.clstat().get("g").is_none().then_some(()));
    wait_for(T, "the service to stop", || (!alive(pid)).then_some(()));
}

/// Item 9: a FIFO or a device at the cltab's path is refused at once, naming
/// the file, and the daemon keeps answering (a FIFO used to hang it).
#[test]
fn fifo_and_device_cltabs_are_refused_without_blocking_the_daemon() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let good = std::fs::read(&d.cltab).expect("read cltab");
    std::fs::remove_file(&d.cltab).expect("rm");
    nix::unistd::mkfifo(&d.cltab, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    let reply = d.request(&Request::Reread).expect("reread answers");
    assert!(!reply.ok);
    assert_eq!(
        reply.msg,
        format!("{} is a FIFO, not a regular file; refusing to read it", d.cltab.display())
    );
    // SIGHUP takes the same path and must not block the loop either.
    kill(Pid::from_raw(d.daemon_pid()), Signal::SIGHUP).expect("SIGHUP");
    assert!(d.request(&Request::Status).expect("status after SIGHUP").ok);
    wait_for(T, "the SIGHUP re-read to be refused", || {
        d.log_text().contains("keeping the last good cltab").then_some(())
    });
    std::fs::remove_file(&d.cltab).expect("rm fifo");
    std::os::unix::fs::symlink("/dev/zero", &d.cltab).expect("symlink");
    let reply = d.request(&Request::Reread).expect("reread answers");
    assert!(reply.msg.contains("is a character device, not a regular file"), "{}", reply.msg);
    // Back to a good file: the daemon works on.
    std::fs::remove_file(&d.cltab).expect("rm link");
    std::fs::write(&d.cltab, good).expect("restore");
    assert_eq!(d.tell("g", "1").msg, "level transition started");
    d.wait_state("g", "1 DONE", T);
}

/// Item 10: NUL, invalid UTF-8, an inner BOM, CR-only line ends and an
/// over-long command are refused with file:line (they used to be accepted,
/// then mangled or failing at every spawn).
#[test]
fn lines_that_could_not_run_are_refused_with_file_and_line() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let path = d.cltab.display().to_string();
    let head = format!(":::socket:{}\n:::clstat:{}\n", d.socket.display(), d.clstat.display());
    let cases: [(&[u8], &str); 5] = [
        (b"g:a:1:once:tr\0ue\n", ":3: NUL byte in line"),
        (b"g\xff:a:1:once:true\n", ":3: invalid UTF-8 at byte 1 of the line"),
        (b"\xef\xbb\xbfg:a:1:once:true\n", ":3: byte-order mark"),
        (b"g:a:1:once:true\rg:b:1:once:true\r", ":3: carriage return inside a line"),
        (b"", ":3: command is 131072 bytes long"),
    ];
    for (body, want) in cases {
        let mut text = head.clone().into_bytes();
        if body.is_empty() {
            text.extend(format!("g:a:1:once:{}\n", "x".repeat(131_072)).into_bytes());
        } else {
            text.extend_from_slice(body);
        }
        std::fs::write(&d.cltab, text).expect("write cltab");
        let reply = d.tell("g", "1");
        assert!(!reply.ok, "{want}: {reply:?}");
        assert!(reply.msg.contains(&format!("{path}{want}")), "{want}: {}", reply.msg);
    }
    // A leading BOM is stripped.
    let mut text = b"\xef\xbb\xbf".to_vec();
    text.extend(format!("{head}g:a:1:once:true\n").into_bytes());
    std::fs::write(&d.cltab, text).expect("write cltab");
    assert_eq!(d.tell("g", "1").msg, "level transition started");
}

/// Item 11: a newline in the group of a tell cannot forge a log line.
#[test]
fn a_newline_in_a_request_cannot_forge_a_log_line() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let reply = d.tell("g\nFORGED INFO clinit: all is well", "1");
    assert!(!reply.ok);
    assert!(!reply.msg.contains('\n'), "{:?}", reply.msg);
    assert!(d.request(&Request::Status).expect("status").ok);
    let log = d.log_text();
    assert!(log.contains("tell g\\nFORGED"), "the name is logged escaped:\n{log}");
    assert!(!log.lines().any(|l| l.starts_with("FORGED")), "forged line:\n{log}");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Item 5: under `umask 000` the socket is still 0600 and clstat 0644; a
/// peer that is neither root, the daemon's uid nor in its socket group may
/// read the status but not command (checked with SO_PEERCRED). Needs root
/// (to act as uid 65534); skipped otherwise.
#[test]
fn socket_mode_is_explicit_and_only_allowed_peers_may_command() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !is_root() {
        eprintln!("skipped: needs root to act as another uid");
        return;
    }
    let mut d = Daemon::prepare("g:a:1:once:true\n");
    d.spawn_with(&[], |cmd| {
        // SAFETY: umask is async-signal-safe and cannot fail.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
    });
    let d = d.wait_ready();
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&d.socket), 0o600, "socket mode");
    assert_eq!(mode(&d.clstat), 0o644, "clstat mode");
    // Let uid 65534 reach the socket at all, to test the second layer.
    for p in [d.dir(), d.cltab.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let client = client_for_anyone(d.dir());
    let as_nobody = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&client);
        cmd.arg("-c").arg(&d.cltab).args(args).stdin(std::process::Stdio::null());
        cmd.uid(65534).gid(65534);
        cmd.output().expect("client as nobody")
    };
    let out = as_nobody(&["-k"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("permission denied: only root or uid 0 may command"), "{said}");
    let out = as_nobody(&["g", "1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("permission denied"), "{out:?}");
    assert!(d.clstat().get("g").is_none(), "the tell was not obeyed");
    let out = as_nobody(&["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert!(v.get("groups").is_some(), "status stays readable: {v}");
    assert!(d.log_text().contains("refused a command from uid 65534"));
    // Root still commands.
    assert_eq!(d.tell("g", "1").msg, "level transition started");
}

/// A copy of the `clinit` client in `dir` (mode 0755) that uid 65534 can
/// run: the build tree may lie under a 0700 directory (a clone in
/// `mktemp -d`), which another uid cannot traverse.
fn client_for_anyone(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = dir.join("clinit-client");
    std::fs::copy(common::CLINIT, &copy).expect("copy the client");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

/// Item 5: with --socket-group the socket is 0660 and owned by that group,
/// and a member of the group may command.
#[test]
fn socket_group_members_may_command() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    if !is_root() {
        eprintln!("skipped: needs root to chown the socket and act as another uid");
        return;
    }
    let d = Daemon::start("g:a:1:once:true\n", &["--socket-group", "12345"]);
    let meta = std::fs::metadata(&d.socket).expect("stat socket");
    assert_eq!((meta.permissions().mode() & 0o777, meta.gid()), (0o660, 12345));
    for p in [d.dir(), d.cltab.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = std::process::Command::new(client_for_anyone(d.dir()))
        .arg("-c")
        .arg(&d.cltab)
        .args(["g", "1"])
        .uid(65534)
        .gid(12345)
        .output()
        .expect("client as a group member");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "level transition started\n", "{out:?}");
    d.wait_state("g", "1 DONE", T);
}

/// Item 7: a descriptor the daemon inherited without close-on-exec is not
/// passed on to its children (fd 7 here; children get 0, 1 and 2 only).
#[test]
fn children_get_only_stdin_stdout_and_stderr() {
    use std::os::unix::process::CommandExt;
    let mut d = Daemon::prepare(
        "g:a:1:once:if test -e /proc/$$/fd/7; then echo leaked; else echo closed; fi > @DIR@/fd7\n",
    );
    d.spawn_with(&[], |cmd| {
        // SAFETY: dup2 is async-signal-safe; the copy has no FD_CLOEXEC.
        unsafe {
            cmd.pre_exec(|| {
                libc::dup2(2, 7);
                Ok(())
            });
        }
    });
    let d = d.wait_ready();
    assert!(std::fs::metadata(format!("/proc/{}/fd/7", d.daemon_pid())).is_ok(), "set up");
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    wait_for(T, "the probe's answer", || (!d.read("fd7").is_empty()).then_some(()));
    assert_eq!(d.read("fd7"), "closed\n");
}

/// Item 12: a 2,000-entry level change is carried out in slices, and status
/// requests are answered between them (the reply shows spawns still
/// pending); before, the loop answered only after the last spawn.
#[test]
fn status_is_answered_while_a_large_level_change_is_under_way() {
    let mut tab = String::new();
    for i in 0..2000 {
        tab.push_str(&format!("big:e{i}:1:once:exit 0\n"));
    }
    let d = Daemon::start(&tab, &[]);
    assert_eq!(d.tell("big", "1").msg, "level transition started");
    let status = d.request(&Request::Status).expect("status during the change");
    let pending = status.status.as_ref().and_then(|s| s["pending_actions"].as_u64());
    assert!(pending.is_some_and(|n| n > 0), "answered mid-change: {status:?}");
    wait_for(Duration::from_secs(60), "every spawn to be carried out", || {
        let s = d.request(&Request::Status).ok()?.status?;
        (s["pending_actions"].as_u64() == Some(0)).then_some(())
    });
    d.wait_state("big", "1 DONE", T);
    assert_eq!(d.log_text().matches("starting at level 1").count(), 2000);
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // After the state field: ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime stime (numeric fields 1.. here).
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

/// Item 12: out of descriptors (nofile 32, 60 silent clients), the daemon
/// backs off instead of spinning on accept: little CPU, a few log lines per
/// second; once the clients go, it answers again.
#[test]
fn out_of_descriptors_the_daemon_backs_off_and_recovers() {
    use std::os::unix::process::CommandExt;
    let mut d = Daemon::prepare("g:a:1:once:true\n");
    d.spawn_with(&[], |cmd| {
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 32, rlim_max: 32 };
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        }
    });
    let d = d.wait_ready();
    let pid = d.daemon_pid();
    let clients: Vec<_> =
        (0..60).filter_map(|_| std::os::unix::net::UnixStream::connect(&d.socket).ok()).collect();
    wait_for(T, "accept to fail", || d.log_text().contains("accept on").then_some(()));
    let (ticks, lines) = (cpu_ticks(pid), d.log_text().lines().count());
    std::thread::sleep(Duration::from_secs(2));
    let (ticks2, lines2) = (cpu_ticks(pid), d.log_text().lines().count());
    // 2 s are 200 ticks at 100 Hz; a spinning loop uses nearly all of them.
    assert!(ticks2 - ticks < 40, "daemon used {} ticks in 2 s", ticks2 - ticks);
    assert!(lines2 - lines <= 8, "{} log lines in 2 s", lines2 - lines);
    drop(clients);
    assert!(d.request(&Request::Status).expect("status once fds are free").ok);
}

/// Pids of live processes whose command line is exactly `cmd`.
fn running(cmd: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| alive(pid) && cmdline(pid).trim_end() == cmd)
        .collect()
}

/// Item 3: `kill -9` of the daemon, then a new daemon on the same socket:
/// before starting anything it stops what the old one left (its state file
/// names the process groups), so a tell starts exactly one instance. Before,
/// two `sleep 1040` ran.
#[test]
fn a_restarted_daemon_stops_the_previous_generation_before_starting_anything() {
    let mut d = Daemon::start(
        "g:srv:1:respawn:echo $$ > @DIR@/srv.pid; exec sleep 1040\n\
         g:bg:1:once:sh -c 'echo $$ > @DIR@/bgchild.pid; exec sleep 1041' &\n",
        &["--term-after", "0.3", "--kill-after", "0.8"],
    );
    d.tell("g", "1");
    let (srv, bgchild) = (d.pid("srv"), d.pid("bgchild"));
    let state = d.path("clinit.state");
    wait_for(T, "the state file to list both groups", || {
        let text = std::fs::read_to_string(&state).ok()?;
        (text.matches("\"pgid\"").count() == 2).then_some(())
    });
    kill9(d.daemon_pid());
    d.wait_exit(T);
    assert!(alive(srv) && alive(bgchild), "SIGKILL of the daemon orphans its services");
    std::fs::remove_file(d.path("srv.pid")).expect("rm srv.pid");
    d.spawn(&["--term-after", "0.3", "--kill-after", "0.8"]);
    let d = d.wait_ready();
    assert!(!alive(srv) && !alive(bgchild), "the previous generation was stopped");
    let log = d.log_text();
    assert!(log.contains("a previous daemon left 2 process groups"), "{log}");
    assert!(log.contains("previous generation: g/srv (level 1"), "{log}");
    d.tell("g", "1");
    let new = d.pid("srv");
    wait_for(T, "the new sleep", || cmdline(new).contains("sleep 1040").then_some(()));
    assert_eq!(running("sleep 1040"), vec![new], "exactly one instance");
}

const ESCAPING: &str = "g:esc:1:once:setsid sh -c 'echo $$ > @DIR@/esc.pid; exec sleep 3001' & \
    echo $$ > @DIR@/main.pid; exec sleep 3002\n";

fn containment(d: &Daemon) -> String {
    let reply = d.request(&Request::Status).expect("status");
    let status = reply.status.expect("status document");
    status["containment"].as_str().unwrap_or_default().to_string()
}

/// Item 6: a descendant that leaves the process group (`setsid`) is still
/// stopped, through the entry's cgroup, and status shows the mode. Needs
/// root (to create cgroups here); skipped otherwise.
#[test]
fn cgroup_containment_stops_a_descendant_that_left_the_process_group() {
    if !is_root() {
        eprintln!("skipped: cgroup containment needs root (or a delegated subtree)");
        return;
    }
    let mut d = Daemon::start(ESCAPING, &["--term-after", "0.3", "--kill-after", "0.8"]);
    let mode = containment(&d);
    assert!(mode.starts_with("cgroup2 "), "{mode}");
    let base = std::path::PathBuf::from(mode.trim_start_matches("cgroup2 "));
    d.tell("g", "1");
    let (esc, main) = (d.pid("esc"), d.pid("main"));
    wait_for(T, "the escaped sleep", || cmdline(esc).contains("sleep 3001").then_some(()));
    let out = d.client(&["-k", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_exit(T);
    assert!(!alive(main), "the entry's own process is stopped");
    assert!(!alive(esc), "the escaped descendant is stopped too");
    assert!(!base.exists(), "the daemon's cgroup directory is removed at exit");
}

/// Item 6 with respawns: the cgroup of an instance that ended alone is
/// kept empty and reused by the entry's next instance (no `rmdir` and
/// `mkdir` per respawn), an instance that ended with an escaped member in
/// its cgroup is not reused until that member is gone, and at exit no
/// cgroup is left behind, spare ones included. Needs root; skipped
/// otherwise.
#[test]
fn respawns_reuse_an_emptied_cgroup_and_none_is_left_at_exit() {
    if !is_root() {
        eprintln!("skipped: cgroup containment needs root (or a delegated subtree)");
        return;
    }
    let cltab = "g:r:1:respawn:echo $$ > @DIR@/r.pid; exec sleep 3060\n\
                 g:e:1:once:setsid sh -c 'echo $$ > @DIR@/e.pid; exec sleep 3061' & \
                 echo $$ > @DIR@/m.pid; exec sleep 3062\n";
    let mut d = Daemon::start(cltab, &["--term-after", "0.3", "--kill-after", "0.8"]);
    let mode = containment(&d);
    assert!(mode.starts_with("cgroup2 "), "{mode}");
    let base = std::path::PathBuf::from(mode.trim_start_matches("cgroup2 "));
    let cgroup_of = |pid: i32| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or_default().to_string()
    };
    d.tell("g", "1");
    let first = d.pid("r");
    wait_for(T, "the first sleep", || cmdline(first).contains("sleep 3060").then_some(()));
    let first_cg = cgroup_of(first);
    assert!(!first_cg.is_empty(), "in a cgroup v2");
    // The once entry's leader dies; its escaped member keeps its cgroup busy.
    let (esc, main) = (d.pid("e"), d.pid("m"));
    wait_for(T, "the escaped sleep", || cmdline(esc).contains("sleep 3061").then_some(()));
    let esc_cg = cgroup_of(esc);
    kill9(main);
    for round in 0..3 {
        let old = d.pid("r");
        kill9(old);
        let new = wait_for(T, "the respawned instance", || {
            let p = d.pid("r");
            (p != old && cmdline(p).contains("sleep 3060")).then_some(p)
        });
        let cg = cgroup_of(new);
        assert_ne!(cg, esc_cg, "round {round}: a cgroup with a live member is never reused");
        assert!(cg.starts_with(first_cg.rsplit_once('/').map_or("", |c| c.0)), "{cg}");
        assert_eq!(cg, first_cg, "round {round}: the emptied cgroup is reused");
    }
    assert!(alive(esc), "the escaped member of the ended once entry still runs");
    let out = d.client(&["-k", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_exit(T);
    assert!(!alive(esc), "the escaped member is stopped at exit");
    assert!(!base.exists(), "no cgroup is left at exit; log:\n{}", d.log_text());
}

/// Item 6, found under `mosha` (issue 10, process containment): an
/// instance of two processes (so its cgroup is read when it ends, and kept
/// as a spare when found empty) stopped with SIGKILL (through
/// `cgroup.kill`) left its cgroup as a spare, and on Linux 6.18 every child later `clone3`d into
/// that cgroup is killed at birth (the kernel compares the kill counter of
/// the parent's cgroup with the target's). The next start of the entry
/// then died at once, again and again, until the respawn limit. A cgroup
/// that went through `cgroup.kill` is now never reused: the restarted
/// instance runs. Needs root; skipped otherwise.
#[test]
fn an_instance_started_after_a_sigkill_stop_is_not_killed_at_birth() {
    if !is_root() {
        eprintln!("skipped: cgroup containment needs root (or a delegated subtree)");
        return;
    }
    let cltab =
        "g:k:1:respawn:trap '' INT TERM; echo $$ > @DIR@/k.pid; sleep 3064 & exec sleep 3063\n";
    let mut d = Daemon::start(cltab, &["--term-after", "0.2", "--kill-after", "0.4"]);
    assert!(containment(&d).starts_with("cgroup2 "), "{}", containment(&d));
    d.tell("g", "1");
    let first = d.pid("k");
    wait_for(T, "the first sleep", || cmdline(first).contains("sleep 3063").then_some(()));
    // INT and TERM are ignored: the stop ends with SIGKILL (cgroup.kill).
    d.tell("g", "0");
    wait_for(T, "the SIGKILL stop", || (!alive(first)).then_some(()));
    std::fs::remove_file(d.path("k.pid")).expect("rm k.pid");
    d.tell("g", "1");
    let second = wait_for(T, "the restarted sleep", || {
        let text = std::fs::read_to_string(d.path("k.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        cmdline(pid).contains("sleep 3063").then_some(pid)
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(alive(second), "the restarted instance was killed; log:\n{}", d.log_text());
    let out = d.client(&["-k", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_exit(T);
}

/// Item 6, fallback: with --no-cgroups the daemon contains by process group
/// and says so in status; a descendant that left its process group and was
/// orphaned (re-parented to the daemon, a subreaper) is shown in status and
/// stopped at shutdown, not left behind.
#[test]
fn process_group_fallback_shows_and_stops_adopted_orphans() {
    let mut d = Daemon::start(ESCAPING, &["--no-cgroups"]);
    assert_eq!(containment(&d), "process-group (cgroups disabled)");
    d.tell("g", "1");
    let (esc, main) = (d.pid("esc"), d.pid("main"));
    wait_for(T, "the escaped sleep", || cmdline(esc).contains("sleep 3001").then_some(()));
    kill9(main);
    wait_for(T, "the orphan in status", || {
        let status = d.request(&Request::Status).ok()?.status?;
        let orphans: Vec<i64> =
            status["orphans"].as_array()?.iter().filter_map(|p| p.as_i64()).collect();
        (orphans == vec![i64::from(esc)]).then_some(())
    });
    let out = d.client(&["-k", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_exit(T);
    assert!(!alive(esc), "the adopted orphan is stopped at shutdown");
    assert!(d.log_text().contains(&format!("adopted orphan pid {esc}")));
}

/// Item 6, fallback, for a descendant that cleared its environment
/// (`env -i setsid ...`): it carries neither `CLINIT_INSTANCE` nor
/// `CLINIT_GENERATION`, so no marker names it. In process-group mode:
/// * `esc`'s escapee, still below its entry's leader when the stop begins,
///   is stopped with its entry (the stop remembers the descendants that
///   left the group, by pid and start time, and counts them as part of the
///   instance once they are orphans of the daemon); a `&` job of `sh`, it
///   ignores SIGINT and ends at the SIGTERM. Before, it outlived the stop.
/// * `left`'s escapee, orphaned before anything could see it, cannot be
///   attributed: it is listed in status (`"orphans"`) and stopped at
///   `clinit -k`, never left behind.
#[test]
fn process_group_mode_stops_an_escapee_without_markers() {
    let cltab = "g:esc:1:once:env -i setsid sh -c 'echo $$ > @DIR@/esc.pid; exec sleep 3031' & \
                 echo $$ > @DIR@/main.pid; exec sleep 3032\n\
                 g:left:1:once:env -i setsid sh -c 'echo $$ > @DIR@/left.pid; exec sleep 3033' &\n";
    let mut d =
        Daemon::start(cltab, &["--no-cgroups", "--term-after", "0.3", "--kill-after", "0.8"]);
    assert_eq!(containment(&d), "process-group (cgroups disabled)");
    d.tell("g", "1");
    let (esc, main, left) = (d.pid("esc"), d.pid("main"), d.pid("left"));
    wait_for(T, "the escaped sleeps", || {
        (cmdline(esc).contains("sleep 3031") && cmdline(left).contains("sleep 3033")).then_some(())
    });
    for pid in [esc, left] {
        // (sh sets PWD itself.)
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let marked = environ.split(|&b| b == 0).any(|v| v.starts_with(b"CLINIT_"));
        assert!(!marked, "pid {pid} carries a marker: {}", String::from_utf8_lossy(&environ));
    }
    let orphans = || -> Option<Vec<i64>> {
        let status = d.request(&Request::Status).ok()?.status?;
        Some(status["orphans"].as_array()?.iter().filter_map(|p| p.as_i64()).collect())
    };
    wait_for(T, "the unattributable orphan in status", || {
        (orphans()? == vec![i64::from(left)]).then_some(())
    });
    d.tell("g", "0");
    wait_for(T, "the entry's leader stopped", || (!alive(main)).then_some(()));
    wait_for(T, "the escapee stopped with its entry", || (!alive(esc)).then_some(()));
    assert!(alive(left), "an orphan no stop could attribute is left to the exit");
    assert_eq!(orphans(), Some(vec![i64::from(left)]), "and still listed in status");
    let out = d.client(&["-k", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_exit(T);
    assert!(!alive(left), "the adopted orphan is stopped at shutdown");
    assert!(d.log_text().contains(&format!("adopted orphan pid {left}")), "{}", d.log_text());
}

/// Item 8: the daemon's stderr is a pipe nobody reads, and a child fills
/// it: the daemon still answers (its own log lines are dropped and counted,
/// never waited for), and says how many it dropped once the pipe drains.
#[test]
fn a_full_stderr_pipe_never_blocks_the_daemon() {
    use std::io::Read;
    use std::os::fd::OwnedFd;
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    let mut d = Daemon::prepare(
        "fill:f:1:once:echo $$ > @DIR@/fill.pid; head -c 262144 /dev/zero >&2; exec sleep 100\n\
         g:a:1:once:true\ng:b:2:once:true\n",
    );
    // `inherit`: the filler writes into the daemon's stderr, as before
    // per-entry logs existed (the default `file` never shares it).
    d.spawn_with(&["--child-output", "inherit"], move |cmd| {
        cmd.stderr(std::process::Stdio::from(write_end));
    });
    let d = d.wait_ready();
    d.tell("fill", "1");
    d.pid("fill");
    // The child now blocks on the full pipe; the daemon must not.
    for level in ["1", "2", "1", "2"] {
        assert_eq!(d.tell("g", level).msg, "level transition started");
        d.wait_state("g", &format!("{level} DONE"), T);
    }
    // Drain the pipe in the background, then make the daemon log again.
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(read_end);
        // Non-blocking, so this thread ends within its time bound whatever
        // the daemon does.
        let flags = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETFL).expect("getfl");
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETFL(flags)).expect("setfl");
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
            if String::from_utf8_lossy(&out).contains("log lines dropped: stderr was full]") {
                break;
            }
        }
        out
    });
    wait_for(T, "the filler to finish writing", || {
        cmdline(d.pid("fill")).contains("sleep 100").then_some(())
    });
    // The filler's last bytes may still sit in the pipe when the next log
    // line is written, so that line may be dropped too: keep giving the
    // daemon something to log until the reader has seen the notice (or
    // its own 10 s bound ends).
    for level in ["1", "2"].iter().cycle() {
        if reader.is_finished() {
            break;
        }
        d.tell("g", level);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = reader.join().expect("reader");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("log lines dropped: stderr was full]"), "no drop notice");
}

/// Item 1: a respawn entry held back by the throttle (a crash loop) is
/// down while its group says DONE: status JSON lists it, so it is never
/// silently down.
#[test]
fn a_throttled_respawn_entry_is_listed_while_it_waits() {
    let d = Daemon::start("r:loop:1:respawn:echo x >> @DIR@/runs; exit 1\n", &[]);
    d.tell("r", "1");
    let waiting = wait_for(T, "the throttle to pause the entry", || {
        let status = d.request(&Request::Status).ok()?.status?;
        let list = status["respawns_waiting"].as_array()?.clone();
        (!list.is_empty()).then_some(list)
    });
    assert_eq!(waiting, vec![serde_json::json!({"group": "r", "tag": "loop"})]);
    assert_eq!(d.read("runs").lines().count(), 7, "7 quick runs, then the pause");
    assert_eq!(d.state_of("r"), "1 DONE");
}

/// Pids of processes still in the cgroup `dir` or below it.
fn cgroup_members(dir: &std::path::Path) -> Vec<i32> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            dirs.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
        }
    }
    out
}

/// Restart after a crash, cgroup mode: a descendant that left with
/// `setsid` (its entry's leader alive, or already exited) is stopped by the
/// next daemon through the recorded cgroup, and the dead daemon's cgroups
/// are removed. Before, only the recorded process groups were stopped and
/// `sleep 3001` lived on in `clinit.<deadpid>/N`. Needs root.
#[test]
fn a_restarted_daemon_stops_escaped_descendants_through_the_recorded_cgroup() {
    if !is_root() {
        eprintln!("skipped: cgroup containment needs root (or a delegated subtree)");
        return;
    }
    let flags = ["--term-after", "0.3", "--kill-after", "0.8"];
    let cltab = format!(
        "{ESCAPING}g:gone:1:once:setsid sh -c 'echo $$ > @DIR@/esc2.pid; exec sleep 3003' & \
         echo $$ > @DIR@/main2.pid\n"
    );
    let mut d = Daemon::start(&cltab, &flags);
    let mode = containment(&d);
    assert!(mode.starts_with("cgroup2 "), "{mode}");
    let base = std::path::PathBuf::from(mode.trim_start_matches("cgroup2 "));
    d.tell("g", "1");
    let (esc, main, esc2, main2) = (d.pid("esc"), d.pid("main"), d.pid("esc2"), d.pid("main2"));
    wait_for(T, "the escaped sleeps", || {
        (cmdline(esc).contains("sleep 3001") && cmdline(esc2).contains("sleep 3003")).then_some(())
    });
    wait_for(T, "the leader of g/gone to be reaped", || (!alive(main2)).then_some(()));
    kill9(d.daemon_pid());
    d.wait_exit(T);
    assert!(alive(esc) && alive(main) && alive(esc2), "SIGKILL of the daemon orphans them");
    assert!(cgroup_members(&base).contains(&esc2), "the escaped one is in the old cgroup");
    d.spawn(&flags);
    let d = d.wait_ready();
    let left: Vec<i32> = [esc, main, esc2].into_iter().filter(|&p| alive(p)).collect();
    let base_left = base.exists();
    for &p in &left {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    let log = d.log_text();
    assert!(left.is_empty(), "left running: {left:?}; log:\n{log}");
    assert!(!base_left, "the dead daemon's cgroup {} is removed; log:\n{log}", base.display());
    assert!(log.contains("every process in cgroup"), "{log}");
}

/// Restart after a crash, cgroup mode: a process spawned but not yet on
/// record when the daemon died (the state file still says `"procs":[]`,
/// as when `kill -9` lands between fork and the write at the end of the
/// loop turn) is stopped anyway, through the cgroup base the daemon
/// recorded at start-up, so the next tell starts exactly one copy. The
/// window is made deterministic: the state file's path is blocked by a
/// directory while the daemon runs, and the start-up file put back after.
#[test]
fn a_restarted_daemon_stops_a_process_spawned_but_not_yet_recorded() {
    if !is_root() {
        eprintln!("skipped: cgroup containment needs root (or a delegated subtree)");
        return;
    }
    let flags = ["--term-after", "0.3", "--kill-after", "0.8"];
    let mut d = Daemon::start("g:srv:1:once:echo $$ > @DIR@/srv.pid; exec sleep 3004\n", &flags);
    let state = d.path("clinit.state");
    let at_start = std::fs::read_to_string(&state).expect("state file written at start-up");
    assert!(at_start.contains("\"cgroup\"") && at_start.contains("\"procs\":[]"), "{at_start}");
    std::fs::remove_file(&state).expect("rm state");
    std::fs::create_dir(&state).expect("block the state path");
    std::fs::write(state.join("x"), b"").expect("make it non-empty");
    d.tell("g", "1");
    let srv = d.pid("srv");
    wait_for(T, "the sleep", || cmdline(srv).contains("sleep 3004").then_some(()));
    kill9(d.daemon_pid());
    d.wait_exit(T);
    assert!(d.log_text().contains("cannot write"), "the write was really blocked");
    std::fs::remove_dir_all(&state).expect("unblock");
    std::fs::write(&state, &at_start).expect("put back the start-up state");
    assert!(alive(srv), "SIGKILL of the daemon orphans it");
    std::fs::remove_file(d.path("srv.pid")).expect("rm srv.pid");
    d.spawn(&flags);
    let d = d.wait_ready();
    let survived = alive(srv);
    if survived {
        let _ = kill(Pid::from_raw(srv), Signal::SIGKILL);
    }
    assert!(!survived, "the unrecorded process was stopped; log:\n{}", d.log_text());
    d.tell("g", "1");
    let new = d.pid("srv");
    wait_for(T, "the new sleep", || cmdline(new).contains("sleep 3004").then_some(()));
    assert_eq!(running("sleep 3004"), vec![new], "exactly one instance");
}

/// Process-group mode: what a tell spawned is in the state file by the
/// time the client hears back, so a `kill -9` after the reply can no longer
/// leave an unrecorded group behind.
#[test]
fn a_tell_is_answered_only_after_its_spawns_are_on_record() {
    let mut d = Daemon::start(
        "g:srv:1:once:echo $$ > @DIR@/srv.pid; exec sleep 3005\n",
        &["--no-cgroups", "--term-after", "0.3", "--kill-after", "0.8"],
    );
    d.tell("g", "1");
    let text = std::fs::read_to_string(d.path("clinit.state")).expect("state file");
    let srv = d.pid("srv");
    assert!(text.contains(&format!("\"pgid\":{srv}")), "state at reply time: {text}");
    kill9(d.daemon_pid());
    d.wait_exit(T);
    std::fs::remove_file(d.path("srv.pid")).expect("rm srv.pid");
    d.spawn(&["--no-cgroups", "--term-after", "0.3", "--kill-after", "0.8"]);
    let d = d.wait_ready();
    let survived = alive(srv);
    if survived {
        let _ = kill(Pid::from_raw(srv), Signal::SIGKILL);
    }
    assert!(!survived, "the recorded group was stopped; log:\n{}", d.log_text());
}
