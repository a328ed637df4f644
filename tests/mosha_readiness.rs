//! Readiness under `mosha` (issue 11 item 4): the cluster's init machine
//! waits for a `ready=` entry as `clinit -d` does, and fails one that never
//! signals. One node, openMosix membership views on a temp dir.

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
        for name in ["r.pid", "after.pid", "n.pid"] {
            if let Some(pid) = self.pid(name).filter(|&p| p > 1) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
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
