//! Readiness and children's output under `mosha` (issue 11 items 3 and 4):
//! the cluster's init machine waits for a `ready=` entry as `clinit -d`
//! does, and fails one that never signals; its children's output goes to
//! per-entry log files (or, as set in mosha.toml, to mosha's own log), not
//! to mosha's stderr. One node, openMosix membership views on a temp dir.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

struct Node {
    dir: tempfile::TempDir,
    mosha: Option<Child>,
}

impl Node {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path("mfs/1/var/mosix-ha").join(name)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    fn state(&self, group: &str) -> String {
        let text = fs::read_to_string(self.file("clstat")).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("Cluster::Init::Group "))
            .find_map(|l| l.strip_prefix(&format!("{group} ")).map(String::from))
            .unwrap_or_default()
    }

    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < T, "timed out waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self, name: &str) -> Option<i32> {
        fs::read_to_string(self.path(name)).ok()?.trim().parse().ok()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.mosha.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        for name in ["r.pid", "after.pid", "n.pid", "c.pid"] {
            if let Some(pid) = self.pid(name).filter(|&p| p > 1) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// A node with one openMosix view (node 1 up), a cltab made from the temp
/// dir's path by `cltab`, `hactl`, and mosha started with `--config
/// mosha.toml` holding `settings` (empty: no settings), its stderr in `log`.
fn start_node(prefix: &str, cltab: impl Fn(&str) -> String, hactl: &str, settings: &str) -> Node {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir");
    let mut node = Node { dir, mosha: None };
    let d = dir_arg(node.dir.path());
    fs::create_dir_all(node.file("")).expect("mkdir");
    fs::create_dir_all(node.path("view/nodes/1")).expect("mkdir view");
    fs::write(node.path("view/nodes/1/status"), "3\n").expect("status");
    fs::write(node.file("cltab"), cltab(&d)).expect("cltab");
    fs::write(node.file("hactl"), hactl).expect("hactl");
    fs::write(node.path("mosha.toml"), settings).expect("mosha.toml");
    let log = fs::File::create(node.path("log")).expect("log");
    node.mosha = Some(
        Command::new(env!("CARGO_BIN_EXE_mosha"))
            .args(["--node", "1", "--timeout", "6", "--seed", "1", "--mfsbase"])
            .arg(node.path("mfs"))
            .arg("--hpcbase")
            .arg(node.path("view"))
            .arg("--config")
            .arg(node.path("mosha.toml"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosha"),
    );
    node
}

/// One entry that writes a line to stdout and one to stderr, then sleeps.
fn chatty(d: &str) -> String {
    format!(
        "g:c:start:once:echo $$ > {d}/c.pid; echo hello-from-c; echo oops-from-c >&2; \
           exec sleep 1000\n"
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ g:c: TEXT`: the prefix the log lines carry.
fn prefixed(line: &str, text: &str) -> bool {
    let Some((stamp, rest)) = line.split_once(' ') else { return false };
    stamp.len() == 24
        && stamp.ends_with('Z')
        && stamp.as_bytes()[10] == b'T'
        && rest == format!("g:c: {text}")
}

/// The default `--child-output file`: a child of mosha's init machine
/// writes (stdout and stderr) into `<varpath>/log/GROUP/TAG.log`, each line
/// prefixed with its UTC time and `GROUP:TAG:`, and none of it reaches
/// mosha's stderr. Before, children wrote straight into mosha's stderr.
#[test]
fn mosha_children_write_to_their_own_log_files() {
    let node = start_node("mosha-out.", chatty, "g start\n", "");
    let entry_log = node.file("log/g/c.log");
    node.wait("both lines in g/c's log", || {
        let text = fs::read_to_string(&entry_log).unwrap_or_default();
        text.lines().filter(|l| prefixed(l, "hello-from-c") || prefixed(l, "oops-from-c")).count()
            == 2
    });
    node.wait("g DONE", || node.state("g") == "start DONE");
    let log = node.log();
    assert!(log.contains("children's output: file"), "{log}");
    assert!(log.contains("g/c #"), "mosha logged the spawn: {log}");
    // (The logged command line names the words too, so look for a line
    // that ends with them, as the child's own output would.)
    let carried = |text: &str| log.lines().any(|l| l.trim_end().ends_with(text));
    assert!(!carried("hello-from-c") && !carried("oops-from-c"), "{log}");
    // The control socket's status names the mode and the directory, so
    // `clinit -s SOCKET log g:c` finds the file.
    let out = Command::new(env!("CARGO_BIN_EXE_clinit"))
        .arg("-s")
        .arg(node.file("clinit.s"))
        .args(["log", "g:c"])
        .stdin(Stdio::null())
        .output()
        .expect("clinit log");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| prefixed(l, "hello-from-c")), "{text}");
}

/// `child-output = "journal"` in mosha.toml: the lines go to mosha's own
/// log, prefixed `g:c:`, and no log file is made.
#[test]
fn mosha_toml_sets_the_child_output() {
    let node = start_node("mosha-journal.", chatty, "g start\n", "child-output = \"journal\"\n");
    node.wait("the lines in mosha's log", || {
        let log = node.log();
        log.contains("g:c: hello-from-c") && log.contains("g:c: oops-from-c")
    });
    assert!(node.log().contains("children's output: journal"), "{}", node.log());
    assert!(!node.file("log/g/c.log").exists());
}

fn dir_arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn mosha_waits_for_readiness_and_fails_an_entry_never_ready() {
    let dir = tempfile::Builder::new().prefix("mosha-ready.").tempdir().expect("tempdir");
    let mut node = Node { dir, mosha: None };
    let d = dir_arg(node.dir.path());
    fs::create_dir_all(node.file("")).expect("mkdir");
    fs::create_dir_all(node.path("view/nodes/1")).expect("mkdir view");
    fs::write(node.path("view/nodes/1/status"), "3\n").expect("status");
    fs::write(
        node.file("cltab"),
        format!(
            "g:r:start:respawn:echo $$ > {d}/r.pid; while [ ! -e {d}/go ]; do sleep 0.05; done; \
               echo >&4; exec sleep 1000\n\
             :::entry:r ready=fd:4\n\
             g:after:start:once:echo $$ > {d}/after.pid; exec sleep 1000\n\
             h:n:start:once:echo $$ > {d}/n.pid; exec sleep 1000\n\
             :::entry:n ready=notify ready_timeout=2s\n"
        ),
    )
    .expect("cltab");
    fs::write(node.file("hactl"), "g start\nh start\n").expect("hactl");
    let log = fs::File::create(node.path("log")).expect("log");
    node.mosha = Some(
        Command::new(env!("CARGO_BIN_EXE_mosha"))
            .args(["--node", "1", "--timeout", "6", "--seed", "1", "--mfsbase"])
            .arg(node.path("mfs"))
            .arg("--hpcbase")
            .arg(node.path("view"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosha"),
    );
    node.wait("r to start", || node.pid("r.pid").is_some());
    // Time passes with r not ready: `after` stays unstarted, g STARTING.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(100));
        assert!(node.pid("after.pid").is_none(), "after waits for r; log:\n{}", node.log());
        assert_eq!(node.state("g"), "start STARTING");
    }
    fs::write(node.path("go"), "").expect("go");
    node.wait("g DONE", || node.state("g") == "start DONE");
    assert!(node.pid("after.pid").is_some(), "after started once r was ready");
    assert!(node.log().contains("g/r #"), "{}", node.log());
    node.wait("h/n to fail its readiness", || node.log().contains("h/n not ready within 2s"));
}
