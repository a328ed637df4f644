//! Issue 11 items 3 and 4 (and issue 10 item 8), against a real `clinit -d`:
//! children's output in per-entry rotated logs that never block the
//! daemon, `clinit log`, per-entry environment and readiness.

mod common;

use common::{wait_for, Daemon, CLINIT};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// Every line of an entry's log, oldest rotated file first.
fn all_lines(current: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = (1..1000)
        .map(|n| PathBuf::from(format!("{}.{n}", current.display())))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(current.to_path_buf());
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Number of the line `STAMP g:t: NNNNNNNN ...`, checking it is whole.
fn number(line: &str, label: &str, width: usize) -> u64 {
    let (stamp, rest) = line.split_once(' ').unwrap_or_else(|| panic!("no stamp: {line:?}"));
    assert_eq!(stamp.len(), 24, "stamp of {line:?}");
    assert!(stamp.ends_with('Z'));
    let body = rest.strip_prefix(label).unwrap_or_else(|| panic!("no {label} in {line:?}"));
    assert_eq!(body.len(), width, "a whole line: {line:?}");
    body[..8].parse().unwrap_or_else(|_| panic!("number in {line:?}"))
}

/// A child writes 100 MB (1,000,000 numbered 100-byte lines) while the
/// daemon's own stderr is a pipe nobody reads. The daemon keeps answering
/// status and carrying out tells meanwhile, and afterwards the entry's
/// logs hold every line, whole and in order, across rotations.
#[test]
fn a_child_writing_100_mb_never_blocks_the_daemon_and_no_line_is_lost() {
    let (_read_end, write_end) = nix::unistd::pipe().expect("pipe");
    let mut d = Daemon::prepare(
        "big:b:1:once:echo $$ > @DIR@/big.pid; \
           awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf \"%08d %090d\\n\", i, 0 }'; \
           touch @DIR@/big.done; exec sleep 100\n\
         g:a:1:once:true\ng:c:2:once:true\n",
    );
    d.spawn_with(&["--log-max-bytes", "8000000", "--log-keep", "40"], move |cmd| {
        cmd.stderr(Stdio::from(write_end));
    });
    let d = d.wait_ready();
    d.tell("big", "1");
    d.pid("big");
    let mut answered_while_writing = 0;
    for level in ["1", "2"].iter().cycle() {
        if d.path("big.done").exists() {
            break;
        }
        assert_eq!(d.tell("g", level).msg, "level transition started");
        d.wait_state("g", &format!("{level} DONE"), T);
        if !d.path("big.done").exists() {
            answered_while_writing += 1;
        }
        assert!(answered_while_writing < 100_000, "bounded");
        if answered_while_writing > 2000 {
            break;
        }
    }
    eprintln!("tells answered while the child wrote: {answered_while_writing}");
    assert!(answered_while_writing >= 3, "the daemon answered while the child wrote");
    wait_for(Duration::from_secs(300), "the child to finish writing", || {
        d.path("big.done").exists().then_some(())
    });
    let log = d.path("log/big/b.log");
    wait_for(Duration::from_secs(300), "every line in the log", || {
        let lines = all_lines(&log);
        (lines.len() >= 1_000_000).then_some(())
    });
    let lines = all_lines(&log);
    assert_eq!(lines.len(), 1_000_000, "no line lost, none added");
    for (expect, line) in (1..).zip(&lines) {
        assert_eq!(number(line, "big:b: ", 99), expect);
    }
    for n in 1..40 {
        let f = PathBuf::from(format!("{}.{n}", log.display()));
        if let Ok(meta) = std::fs::metadata(&f) {
            assert!(meta.len() <= 8_000_000, "{} is {} bytes", f.display(), meta.len());
        }
    }
    assert!(PathBuf::from(format!("{}.10", log.display())).exists(), "it did rotate");
    let bytes: u64 = (1..40)
        .filter_map(|n| std::fs::metadata(format!("{}.{n}", log.display())).ok())
        .map(|m| m.len())
        .sum();
    eprintln!("log bytes in rotated files: {bytes}");
}

/// Rotation at a small size keeps only `--log-keep` files, splits no
/// line, and `clinit log` prints what is kept, in order; `-n` the tail.
#[test]
fn rotation_keeps_lines_whole_and_clinit_log_prints_them() {
    let d = Daemon::start(
        "g:s:1:once:echo $$ > @DIR@/s.pid; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); \
           printf '%08d line\\n' $i; done; touch @DIR@/s.done; exec sleep 100\n\
         g:q:1:once:echo quiet one\n",
        &["--log-max-bytes", "4000", "--log-keep", "3"],
    );
    d.tell("g", "1");
    wait_for(T, "the writer", || d.path("s.done").exists().then_some(()));
    let log = d.path("log/g/s.log");
    wait_for(T, "the last line", || {
        all_lines(&log).last().is_some_and(|l| l.ends_with("00003000 line")).then_some(())
    });
    assert!(!PathBuf::from(format!("{}.4", log.display())).exists(), "at most 3 kept");
    let lines = all_lines(&log);
    let first = number(&lines[0], "g:s: ", 13);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(number(line, "g:s: ", 13), first + i as u64, "in order, none missing");
    }
    let out = d.client(&["log", "g:s"]);
    assert!(out.status.success(), "{out:?}");
    let printed: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert_eq!(printed, lines);
    let out = d.client(&["log", "g:s", "-n", "2"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.lines().count(), 2);
    assert!(text.ends_with("g:s: 00003000 line\n"), "{text}");
    // The whole group, merged by time: both entries.
    let out = d.client(&["log", "g"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("g:q: quiet one") && text.contains("g:s: 00003000 line"));
    let out = d.client(&["log", "g:nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// `clinit log -f` follows an entry's log across rotations: every line
/// written after it started comes out once, in order.
#[test]
fn clinit_log_follows_across_rotation() {
    let d = Daemon::start(
        "g:s:1:once:echo $$ > @DIR@/s.pid; echo start; while [ ! -e @DIR@/go ]; do sleep 0.05; done; \
           i=0; while [ $i -lt 400 ]; do i=$((i+1)); printf '%08d line\\n' $i; \
           [ $((i % 150)) = 0 ] && sleep 0.3; done; exec sleep 100\n",
        &["--log-max-bytes", "2000", "--log-keep", "5"],
    );
    d.tell("g", "1");
    wait_for(T, "the first line", || {
        std::fs::read_to_string(d.path("log/g/s.log"))
            .ok()
            .filter(|t| t.contains("start"))
            .map(|_| ())
    });
    let mut follower = Command::new(CLINIT)
        .arg("-c")
        .arg(&d.cltab)
        .args(["log", "g:s", "-f", "-n", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("clinit log -f");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::fs::write(d.path("go"), "").expect("go");
    let mut seen = Vec::new();
    let start = std::time::Instant::now();
    while seen.last().is_none_or(|l: &String| !l.ends_with("00000400 line")) {
        assert!(start.elapsed() < Duration::from_secs(60), "follower stalled at {:?}", seen.last());
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = follower.wait();
    assert!(seen[0].ends_with("g:s: start"), "-n 1 printed the last line first: {:?}", seen[0]);
    let numbers: Vec<u64> = seen[1..].iter().map(|l| number(l, "g:s: ", 13)).collect();
    assert_eq!(numbers, (1..=400).collect::<Vec<_>>());
}

/// `--child-output journal` puts lines in the daemon's log, prefixed.
#[test]
fn journal_mode_prefixes_lines_in_the_daemon_log() {
    let d = Daemon::start(
        "g:a:1:once:echo hello from a; echo oops >&2\n",
        &["--child-output", "journal"],
    );
    d.tell("g", "1");
    wait_for(T, "the lines in the daemon log", || {
        let log = d.log_text();
        (log.contains("g:a: hello from a") && log.contains("g:a: oops")).then_some(())
    });
    assert!(!d.path("log/g/a.log").exists());
}

const NOTIFY: &str = "perl -MSocket -e 'socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die; \
    send($s, \"STATUS=up\\nREADY=1\\n\", 0, pack_sockaddr_un($ENV{NOTIFY_SOCKET})) or die \"send: $!\"'";

/// [`NOTIFY`] from a sender that stays alive a while after its message, so
/// the daemon can see which process group it is in (a sender that already
/// exited cannot be placed, and is trusted like the socket's owner).
const NOTIFY_AND_STAY: &str = "perl -MSocket -e 'socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die; \
    send($s, \"STATUS=up\\nREADY=1\\n\", 0, pack_sockaddr_un($ENV{NOTIFY_SOCKET})) or die \"send: $!\"; sleep 5'";

fn entry_json(d: &Daemon, tag: &str) -> serde_json::Value {
    let out = d.client(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json status");
    doc["entries"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["tag"] == tag).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// A `ready=notify` entry (sd_notify) and a `ready=fd:N` entry (s6) hold
/// back the entries after them until they signal readiness; then the
/// group is DONE.
#[test]
fn notify_and_fd_entries_become_ready_and_gate_the_next_entries() {
    let d = Daemon::start(
        &format!(
            "g:n:1:respawn:echo $$ > @DIR@/n.pid; while [ ! -e @DIR@/go-n ]; do sleep 0.05; done; {NOTIFY}; exec sleep 100\n\
             :::entry:n ready=notify\n\
             g:f:1:once:echo $$ > @DIR@/f.pid; while [ ! -e @DIR@/go-f ]; do sleep 0.05; done; echo >&5; exec sleep 100\n\
             :::entry:f ready=fd:5\n\
             g:last:1:once:echo $$ > @DIR@/last.pid; exec sleep 100\n"
        ),
        &[],
    );
    d.tell("g", "1");
    d.pid("n");
    // Time passes while n is not ready: status rewrites and n still starting.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(d.state_of("g"), "1 STARTING");
        assert_eq!(entry_json(&d, "n")["state"], "starting");
        assert!(!d.path("f.pid").exists(), "f waits for n");
    }
    std::fs::write(d.path("go-n"), "").expect("go");
    d.pid("f");
    assert_eq!(entry_json(&d, "n")["state"], "running");
    assert!(!d.path("last.pid").exists(), "last waits for f");
    assert_eq!(d.state_of("g"), "1 STARTING");
    std::fs::write(d.path("go-f"), "").expect("go");
    d.wait_state("g", "1 DONE", T);
    d.pid("last");
    assert!(d.log_text().contains("g/n #1 is ready") && d.log_text().contains("g/f #2 is ready"));
}

/// A child that never signals readiness fails at its (shortened) time-out,
/// and is stopped; a READY=1 from outside its process group (here a
/// `setsid` descendant) does not count.
#[test]
fn an_entry_that_never_signals_fails_after_its_timeout() {
    let d = Daemon::start(
        &format!(
            "g:n:1:once:echo $$ > @DIR@/n.pid; setsid sh -c '{}' ; exec sleep 100\n\
             :::entry:n ready=notify ready_timeout=3s\n\
             g:after:1:once:true\n",
            NOTIFY_AND_STAY.replace('\'', "'\\''")
        ),
        &[],
    );
    d.tell("g", "1");
    let pid = d.pid("n");
    // The outsider's message comes before the shell goes on (setsid does
    // not fork here), so it is refused before the time-out ends.
    wait_for(T, "the refusal", || d.log_text().contains("not one of its processes").then_some(()));
    d.wait_state("g", "1 FAILED", T);
    let e = entry_json(&d, "n");
    assert_eq!(e["state"], "failed", "{e}");
    assert!(e["failure"].as_str().is_some_and(|f| f.contains("not ready within 3s")), "{e}");
    wait_for(T, "the entry to be stopped", || (!common::alive(pid)).then_some(()));
    let out = d.client(&["status", "g"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("n failed: not ready within 3s (ready=notify)"), "{text}");
}

/// cwd, env, umask and rlimits (and user/group when root) are applied:
/// the child reports them in its log.
#[test]
fn per_entry_environment_is_applied() {
    let root = nix::unistd::Uid::effective().is_root();
    let user = if root { " user=nobody" } else { "" };
    let d = Daemon::start(
        &format!(
            "g:e:1:once:pwd; umask; echo \"X=$X\"; ulimit -n; ulimit -c; id -u; echo \"HOME=$HOME\"\n\
             :::entry:e cwd=/usr env=\"X=a b\" umask=027 limit.nofile=77:99 limit.core=0{user}\n"
        ),
        &[],
    );
    d.tell("g", "1");
    let log = d.path("log/g/e.log");
    let lines = wait_for(T, "the child's report", || {
        let text = std::fs::read_to_string(&log).ok()?;
        let lines: Vec<String> =
            text.lines().map(|l| l.split_once(" g:e: ").map_or("", |x| x.1).to_string()).collect();
        (lines.len() >= 7).then_some(lines)
    });
    assert_eq!(lines[..5], ["/usr", "0027", "X=a b", "77", "0"]);
    if root {
        let nobody = nix::unistd::User::from_name("nobody").ok().flatten().expect("nobody");
        assert_eq!(lines[5], nobody.uid.to_string());
        assert_eq!(lines[6], format!("HOME={}", nobody.dir.display()));
    } else {
        eprintln!("not root: user= not checked");
    }
    // An unknown user fails the spawn with a clear reason.
    d.write_cltab("g:e:1:once:true\n:::entry:e user=no-such-user-h11l\n");
    d.tell("g", "2");
    d.tell("g", "1");
    wait_for(T, "the refusal", || {
        d.log_text().contains("no such user: no-such-user-h11l").then_some(())
    });
}
