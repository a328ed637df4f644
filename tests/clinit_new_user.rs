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
    let mut d =
        Daemon::prepare("g:a:1:respawn:echo $$ > @DIR@/a.pid; exec sleep 3101\ng:b:2:once:true\n");
    d.spawn_with(&[], move |cmd| {
        cmd.stderr(std::process::Stdio::from(write_end));
    });
    let mut d = d.wait_ready();
    // RUST_LOG=debug: every request below makes the daemon log, into the
    // dead pipe.
    for level in ["1", "2", "1"] {
        // `1 DONE` is reached once the respawn entry is spawned, maybe
        // before its shell wrote a.pid: remove the previous instance's pid
        // so `d.pid` waits for the new one instead of reading a dead pid.
        let _ = std::fs::remove_file(d.path("a.pid"));
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

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Defect 2: under umask 000 the per-group log directories were 0777 and
/// the log files 0666, so anyone could put a symlink in a log file's place
/// and make the (root) daemon append to any file. Now the modes are 0755
/// and 0640 whatever the umask, a directory left wide is narrowed, and a
/// symlink in a log file's place is removed, never followed.
#[test]
fn log_files_keep_their_modes_under_umask_000_and_symlinks_are_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let mut d = Daemon::prepare("g:a:1:once:echo hello from a\ng:b:1:once:echo hello from b\n");
    // As an older version left it: a world-writable group directory, and
    // someone's symlink in the place of b's log.
    let gdir = d.path("log").join("g");
    std::fs::create_dir_all(&gdir).expect("mkdir");
    std::fs::set_permissions(&gdir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let victim = d.path("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    std::os::unix::fs::symlink(&victim, gdir.join("b.log")).expect("symlink");
    d.spawn_with(&[], |cmd| {
        // SAFETY: umask is async-signal-safe and touches only this child.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::stat::umask(nix::sys::stat::Mode::empty());
                Ok(())
            });
        }
    });
    let d = d.wait_ready();
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    let a_log = gdir.join("a.log");
    let b_log = gdir.join("b.log");
    wait_for(T, "both entries' output in their logs", || {
        let a = std::fs::read_to_string(&a_log).ok()?;
        let b = std::fs::read_to_string(&b_log).ok()?;
        (a.contains("hello from a") && b.contains("hello from b")).then_some(())
    });
    assert_eq!(mode(&gdir), 0o755, "the group's log directory");
    assert_eq!(mode(&a_log), 0o640, "a new log file");
    assert_eq!(mode(&b_log), 0o640, "the log file that replaced the symlink");
    assert!(!std::fs::symlink_metadata(&b_log).expect("stat").file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "precious\n");
    assert!(d.log_text().contains("a symlink in place of a log file"), "{}", d.log_text());
}

/// Defect 6: a refused second `clinit -d` on a busy socket probes it with
/// connections that close without a byte; each used to add a `WARN bad
/// request on control socket: empty request` to the live daemon's log.
/// A probe is not a bad request: it is logged at debug, as such.
#[test]
fn a_refused_second_daemon_leaves_no_warnings_in_the_first_ones_log() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let second = std::process::Command::new(common::CLINIT)
        .arg("-d")
        .arg("-c")
        .arg(&d.cltab)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("second daemon");
    let pid = second.id() as i32;
    let done = std::thread::spawn(move || second.wait_with_output());
    wait_for(T, "the second daemon to give up", || done.is_finished().then_some(()));
    let out = done.join().expect("join").expect("output");
    assert!(!out.status.success(), "the second daemon is refused");
    assert!(!common::alive(pid));
    // The first one saw the probe (so time passed and it logged)...
    wait_for(T, "the probe in the first daemon's log", || {
        d.log_text().contains("a connection closed without a request").then_some(())
    });
    // ...and took it for what it is.
    let log = d.log_text();
    assert!(!log.contains("empty request"), "{log}");
    assert!(!log.contains("bad request"), "{log}");
    assert_eq!(d.tell("g", "1").msg, "level transition started");
}

/// Defect 7a: `clinit log` printed a child's NUL and ESC bytes raw to the
/// operator's terminal (a child could send it escape sequences). The file
/// keeps the bytes; `clinit log` shows them escaped (a tab is kept).
#[test]
fn clinit_log_escapes_control_characters_from_a_child() {
    let d = Daemon::start("g:a:1:once:printf 'a\\033[2Jb\\000c\\td\\n'\n", &[]);
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    let file = d.path("log").join("g").join("a.log");
    wait_for(T, "the child's line in its log file", || {
        let bytes = std::fs::read(&file).ok()?;
        bytes.windows(4).any(|w| w == b"a\x1b[2").then_some(())
    });
    let raw = std::fs::read(&file).expect("log file");
    assert!(raw.contains(&0), "the file keeps the child's bytes");
    let out = d.client(&["log", "g:a"]);
    assert!(out.status.success(), "{out:?}");
    let shown = &out.stdout;
    assert!(!shown.contains(&0x1b) && !shown.contains(&0), "raw controls: {shown:?}");
    let text = String::from_utf8_lossy(shown);
    assert!(text.contains("a\\u{1b}[2Jb\\0c\td"), "{text}");
}

/// Defect 7b: in `--child-output journal` mode with the daemon's stderr
/// full, children's lines were dropped (by the non-blocking log writer)
/// while status said `child_output.dropped: 0`. Now every line is counted,
/// written or dropped.
#[test]
fn journal_mode_counts_child_lines_dropped_on_a_full_stderr() {
    use clinit_backends::protocol::Request;
    use std::os::fd::OwnedFd;
    const LINES: u64 = 20_000;
    // Nobody reads: the pipe (64 KiB) fills.
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    let mut d = Daemon::prepare(&format!("g:chat:1:once:seq 1 {LINES}\n"));
    d.spawn_with(&["--child-output", "journal"], move |cmd| {
        cmd.stderr(std::process::Stdio::from(write_end));
    });
    let d = d.wait_ready();
    d.tell("g", "1");
    let (lines, dropped) = wait_for(T, "every child line written or dropped", || {
        let reply = d.request(&Request::Status).ok()?;
        let out = &reply.status.as_ref()?["child_output"];
        let lines = out["lines"].as_u64().unwrap_or(0);
        let dropped = out["dropped"].as_u64()?;
        (lines + dropped == LINES).then_some((lines, dropped))
    });
    assert!(dropped > 0, "stderr was full, yet nothing dropped ({lines} written)");
    drop(d);
    drop(read_end);
}

/// Defect 5: `clinit check` said `ok` for lines that cannot run on this
/// host: an unknown user or group, a missing working directory. Now it
/// names each with file:line and exits 1; a resolvable table stays ok.
#[test]
fn clinit_check_refuses_users_groups_and_cwds_this_host_lacks() {
    let dir = tempfile::Builder::new().prefix("clinit-check.").tempdir().expect("tempdir");
    let cltab = dir.path().join("cltab");
    let run = |text: &str| {
        std::fs::write(&cltab, text).expect("write");
        std::process::Command::new(common::CLINIT)
            .arg("check")
            .arg(&cltab)
            .output()
            .expect("clinit check")
    };
    let bad = run(":::entry:a user=nosuchuser-clinit\n\
                   g:a:1:once:true\n\
                   :::entry:b cwd=/nonexistent-clinit\n\
                   g:b:1:once:true\n\
                   :::entry:c group=nosuchgroup-clinit\n\
                   g:c:1:once:true\n");
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let text = String::from_utf8_lossy(&bad.stdout);
    let p = cltab.display();
    assert!(text.contains(&format!("{p}:2: entry g:a: no such user: nosuchuser-clinit")), "{text}");
    assert!(text.contains(&format!("{p}:4: entry g:b: cwd=/nonexistent-clinit")), "{text}");
    assert!(
        text.contains(&format!("{p}:6: entry g:c: no such group: nosuchgroup-clinit")),
        "{text}"
    );
    assert!(!text.contains(": ok:"), "{text}");
    let good = run(&format!(":::entry:a user=0 cwd={}\ng:a:1:once:true\n", dir.path().display()));
    assert!(good.status.success(), "{good:?}");
    assert!(String::from_utf8_lossy(&good.stdout).contains(": ok: 1 entries"), "{good:?}");
}

/// Defect 8: every verb's `--help` listed `--wait`, `--timeout`, `-v`,
/// `--json` and `--level` (global flags), though `check` and `log` ignore
/// them all and `status` all but `--json`. They now belong to the verbs that
/// use them (and to the compatible forms before a verb); elsewhere they are
/// usage errors (exit 2), and `tell`'s keep working after the verb.
#[test]
fn verbs_list_and_take_only_the_options_that_apply_to_them() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let help = |verb: &str| {
        let out = d.client(&[verb, "--help"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (verb, absent) in [
        ("check", &["--wait", "--timeout", "--level", "-v ", "--json"][..]),
        ("log", &["--wait", "--timeout", "--level", "-v ", "--json"]),
        ("status", &["--wait", "--timeout", "--level", "-v "]),
    ] {
        let text = help(verb);
        for flag in absent {
            assert!(!text.contains(flag), "clinit {verb} --help lists {flag}:\n{text}");
        }
    }
    assert!(help("status").contains("--json"));
    let tell = help("tell");
    for flag in ["--wait", "--timeout", "--level", "--json"] {
        assert!(tell.contains(flag), "{flag} missing:\n{tell}");
    }
    for args in
        [&["check", "--wait"][..], &["status", "--timeout", "5"], &["log", "g", "--level", "1"]]
    {
        assert_eq!(d.client(args).status.code(), Some(2), "clinit {args:?} is a usage error");
    }
    let out = d.client(&["tell", "g", "1", "--wait", "--timeout", "5", "-v"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("g 1 DONE"), "{out:?}");
    let out = d.client(&["--json", "status"]);
    assert!(out.status.success() && out.stdout.starts_with(b"{"), "{out:?}");
}

/// Defect 1, for `mosha`: the same dead stderr reader. The monitor keeps
/// running (its clstat keeps being rewritten, so time passed and it logged
/// into the dead pipe) and stops cleanly on SIGTERM.
#[test]
fn a_dead_stderr_reader_does_not_kill_mosha() {
    use common::cluster::{Cluster, MOSHA};
    use std::os::fd::OwnedFd;
    let mut c = Cluster::new("mosha-epipe-", &[1]);
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    drop(read_end);
    let child = std::process::Command::new(MOSHA)
        .args(c.node_args(1))
        .env("RUST_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(write_end))
        .spawn()
        .expect("start mosha");
    c.moshas.insert(1, child);
    c.live.lock().expect("lock").insert(1);
    let clstat = c.file(1, "clstat");
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let first = wait_for(T, "mosha's first clstat", || mtime(&clstat));
    // A later rewrite: the monitor lived through its logging meanwhile.
    wait_for(Duration::from_secs(20), "a later clstat rewrite", || {
        (mtime(&clstat)? > first).then_some(())
    });
    let child = c.moshas.get_mut(&1).expect("mosha");
    assert!(child.try_wait().expect("try_wait").is_none(), "mosha still runs");
    let status = c.terminate(1, T);
    assert!(status.success(), "mosha ends cleanly, not by a panic: {status}");
}
