//! Defects a new user found in the `clinit` client (each test failed
//! before its fix).

mod common;

use common::Daemon;

/// `--timeout` only means something with `--wait`: alone it is a usage
/// error (exit 2) naming `--wait`, instead of being silently ignored.
#[test]
fn timeout_without_wait_is_a_usage_error() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let out = d.client(&["--timeout", "5", "g", "1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wait"), "{out:?}");
    assert_eq!(d.state_of("g"), "", "nothing was told");
    // With --wait it is accepted, as before.
    let out = d.client(&["--wait", "--timeout", "5", "g", "1"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// Control characters from argv (an escape sequence that clears the
/// screen, a newline that fakes an output line) are printed escaped, both
/// in the client's own lines and in the daemon's reply it prints.
#[test]
fn the_client_escapes_control_characters_from_argv() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let group = "\u{1b}[2Jevil\nclinit: all good";
    let out = d.client(&["tell", group, "1"]);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for text in [&stdout, &stderr] {
        assert!(!text.contains('\u{1b}'), "raw ESC printed: {out:?}");
        assert!(!text.lines().any(|l| l == "clinit: all good"), "forged line: {out:?}");
    }
    assert!(stderr.contains("\\u{1b}[2Jevil\\nclinit: all good"), "{out:?}");
    assert!(stdout.contains("\\u{1b}[2J"), "the reply is escaped too: {out:?}");
    assert_eq!(out.status.code(), Some(1), "no such group: refused: {out:?}");
}

/// A restarted daemon answers while it stops what the previous one left
/// (up to `--kill-after`): status says `starting`, a command is refused
/// with that reason. Before, every request hung until the stop was over
/// (a client gave up after 10 s).
#[test]
fn status_is_answered_while_a_restarted_daemon_stops_the_previous_generation() {
    use clinit_backends::protocol::Request;
    use common::{alive, wait_for};
    use std::time::Duration;
    let flags = ["--no-cgroups", "--term-after", "2", "--kill-after", "4"];
    let mut d = Daemon::start(
        "g:stubborn:1:once:trap '' INT TERM; echo $$ > @DIR@/s.pid; while :; do sleep 0.1; done\n",
        &flags,
    );
    d.tell("g", "1");
    let s = d.pid("s");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.daemon_pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    d.wait_exit(Duration::from_secs(10));
    d.spawn(&flags);
    let reply = wait_for(Duration::from_secs(10), "an answer", || d.request(&Request::Status).ok());
    let answered_while_alive = alive(s);
    let status = reply.status.expect("status document");
    assert!(answered_while_alive, "the answer came while the old process still ran");
    assert!(status["starting"].as_str().is_some_and(|t| t.contains("previous daemon")), "{status}");
    let tell = d.request(&Request::Tell { group: "g".into(), level: "1".into() }).expect("reply");
    assert!(!tell.ok && tell.msg.contains("starting"), "{tell:?}");
    // NU2: this exited 0 with the note on stderr only. Now exit 5
    // ("starting", documented in --help) and the note on stdout.
    let out = d.client(&["status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if alive(s) {
        assert_eq!(out.status.code(), Some(5), "{out:?}");
        assert!(stdout.contains("the daemon is starting"), "{out:?}");
    }
    let d = d.wait_ready();
    let out = d.client(&["status"]);
    assert_eq!(out.status.code(), Some(0), "ready: {out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("starting"), "{out:?}");
    assert!(!alive(s), "stopped (SIGKILL after 4 s) before the daemon is ready");
    assert!(d.log_text().contains("stopped (SIGKILL)"), "{}", d.log_text());
}

/// The daemon's cgroup directory removed behind its back (an operator, a
/// cleanup tool): the next spawn notices, logs it and recreates it, so the
/// new instance is still contained. Before, the instance silently ran
/// without a cgroup (a debug-level line only). Needs root.
#[test]
fn a_vanished_daemon_cgroup_is_noticed_and_recreated() {
    use clinit_backends::protocol::Request;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: cgroup containment needs root (or a delegated subtree)");
        return;
    }
    let d = Daemon::start("g:srv:1:once:echo $$ > @DIR@/srv.pid; exec sleep 3021\n", &[]);
    let status = d.request(&Request::Status).expect("status").status.expect("doc");
    let mode = status["containment"].as_str().unwrap_or_default().to_string();
    let Some(base) = mode.strip_prefix("cgroup2 ") else {
        eprintln!("skipped: no cgroup containment here ({mode})");
        return;
    };
    let base = std::path::PathBuf::from(base);
    std::fs::remove_dir(&base).expect("remove the (still empty) daemon cgroup");
    d.tell("g", "1");
    let pid = d.pid("srv");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let name = base.file_name().and_then(|n| n.to_str()).expect("name").to_string();
    assert!(base.is_dir(), "recreated; log:\n{}", d.log_text());
    assert!(cgroup.contains(&format!("/{name}/")), "contained: {cgroup}; log:\n{}", d.log_text());
    assert!(d.log_text().contains("has vanished; recreating it"), "{}", d.log_text());
}

/// NU2: `clinit -s SOCKET -v` with no daemon exited 3 (right) but also
/// printed a note about `/etc/cltab`, which the operator never named: with
/// -s the cltab plays no part in finding the daemon.
#[test]
fn with_s_and_no_daemon_nothing_is_said_about_a_cltab() {
    let d = Daemon::prepare("g:a:1:once:true\n");
    let socket = d.path("nobody.s");
    let out = std::process::Command::new(common::CLINIT)
        .arg("-s")
        .arg(&socket)
        .arg("-v")
        .output()
        .expect("run clinit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stderr.contains(&socket.display().to_string()), "names the socket: {stderr}");
    assert!(!stderr.contains("cltab"), "{stderr}");
    // Without -s and -c, the default cltab is missing here: no note either.
    if !std::path::Path::new("/etc/cltab").exists() {
        let out = std::process::Command::new(common::CLINIT)
            .args(["-s", "/nonexistent/clinit.s", "-v"])
            .output()
            .expect("run clinit");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("cltab"), "{out:?}");
    }
}

/// NU2: after the cltab was truncated, a re-read with only `-c cltab`
/// went to the default socket and just said no daemon runs, while the
/// daemon ran on the socket the cltab used to name. The client now says
/// which socket it tried and why (the cltab is empty, so it names none),
/// and how to reach the daemon; with `-s` the re-read reaches it, and the
/// daemon refuses the empty table and keeps its last good one.
#[test]
fn a_reread_of_a_truncated_cltab_says_which_socket_was_tried_and_why() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    std::fs::write(&d.cltab, b"").expect("truncate the cltab");
    let out = d.client(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let default = clinit_backends::daemon::DEFAULT_SOCKET;
    assert!(stderr.contains(&format!("tried {default}, the default socket")), "{stderr}");
    assert!(stderr.contains("is empty (0 bytes)"), "{stderr}");
    assert!(stderr.contains("give that socket with -s"), "{stderr}");
    let socket = d.socket.display().to_string();
    let out = d.client(&["-s", &socket]);
    assert_eq!(out.status.code(), Some(1), "the daemon refuses an empty cltab: {out:?}");
    let reply = d.request(&clinit_backends::protocol::Request::Status).expect("still running");
    assert!(reply.ok, "{reply:?}");
}
