//! Test harness: a real `clinit -d` on a temp dir, with bounded waits and
//! cleanup that ends only what the test started.
//!
//! Conventions for test cltabs: `@DIR@` is replaced by the temp dir, and
//! commands write their shell's pid (`echo $$ > @DIR@/NAME.pid`) so the
//! harness can check liveness and, on failure, kill exactly those process
//! groups.
//!
//! [`cluster`] is the same for real `mosha` clusters (several nodes on one
//! machine, one shared directory).

#![allow(dead_code)]

pub mod cluster;
pub mod nofile;

use clinit_backends::protocol::{call, Reply, Request};
use clinit_engine::status::ClStat;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const CLINIT: &str = env!("CARGO_BIN_EXE_clinit");
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Poll `f` every few milliseconds until it returns `Some`, or panic with
/// `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Is this pid alive (and not a zombie)?
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state is the first field after the ")" that ends the name.
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub cltab: PathBuf,
    pub socket: PathBuf,
    pub clstat: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Write the cltab (with socket and clstat directives into the temp dir)
    /// and start a daemon on it with `extra` flags; wait until it answers.
    pub fn start(cltab: &str, extra: &[&str]) -> Daemon {
        let d = Daemon::prepare(cltab);
        d.spawn_and_wait(extra)
    }

    pub fn prepare(cltab: &str) -> Daemon {
        let dir = tempfile::Builder::new().prefix("clinit-test.").tempdir().expect("tempdir");
        let path = |n: &str| dir.path().join(n);
        let d = Daemon {
            cltab: path("cltab"),
            socket: path("clinit.s"),
            clstat: path("clstat"),
            log: path("daemon.log"),
            dir,
            child: None,
        };
        d.write_cltab(cltab);
        d
    }

    pub fn spawn(&mut self, extra: &[&str]) {
        self.spawn_with(extra, |_| {});
    }

    /// [`Daemon::spawn`], with a last say on the command (umask, fds...).
    pub fn spawn_with(&mut self, extra: &[&str], configure: impl FnOnce(&mut Command)) {
        let log = std::fs::File::create(&self.log).expect("log file");
        let mut cmd = Command::new(CLINIT);
        cmd.arg("-d")
            .arg("-c")
            .arg(&self.cltab)
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        configure(&mut cmd);
        let child = cmd.spawn().expect("start clinit -d");
        self.child = Some(child);
    }

    fn spawn_and_wait(mut self, extra: &[&str]) -> Daemon {
        self.spawn(extra);
        self.wait_ready()
    }

    /// Wait until a spawned daemon answers.
    pub fn wait_ready(mut self) -> Daemon {
        wait_for(Duration::from_secs(10), "the daemon to answer", || {
            if let Some(status) = self.try_wait() {
                panic!("daemon exited at start-up ({status}); log:\n{}", self.log_text());
            }
            // A restarted daemon answers while it stops the previous
            // generation (its status then says `starting`): not ready yet.
            let reply = self.request(&Request::Status).ok()?;
            let starting = reply.status.as_ref().is_some_and(|s| s.get("starting").is_some());
            (!starting).then_some(())
        });
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The cltab text with `@DIR@` expanded and the directives prepended.
    pub fn write_cltab(&self, body: &str) {
        let dir = self.dir.path().display().to_string();
        let text = format!(
            ":::socket:{}\n:::clstat:{}\n{}",
            self.socket.display(),
            self.clstat.display(),
            body.replace("@DIR@", &dir)
        );
        std::fs::write(&self.cltab, text).expect("write cltab");
    }

    pub fn request(&self, req: &Request) -> Result<Reply, String> {
        call(&self.socket, req, CALL_TIMEOUT).map_err(|e| e.to_string())
    }

    pub fn tell(&self, group: &str, level: &str) -> Reply {
        self.request(&Request::Tell { group: group.into(), level: level.into() })
            .unwrap_or_else(|e| panic!("tell {group} {level}: {e}\nlog:\n{}", self.log_text()))
    }

    /// Run the real client binary against this daemon.
    pub fn client(&self, args: &[&str]) -> Output {
        Command::new(CLINIT)
            .arg("-c")
            .arg(&self.cltab)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run clinit client")
    }

    pub fn clstat(&self) -> ClStat {
        ClStat::parse(&std::fs::read_to_string(&self.clstat).unwrap_or_default())
    }

    /// `group level STATE`, or "" when the group has no line.
    pub fn state_of(&self, group: &str) -> String {
        self.clstat().get(group).map(|s| format!("{} {}", s.level, s.state)).unwrap_or_default()
    }

    /// Wait until clstat shows `group` as `"level STATE"`.
    pub fn wait_state(&self, group: &str, want: &str, limit: Duration) {
        let start = Instant::now();
        while self.state_of(group) != want {
            if start.elapsed() > limit {
                panic!(
                    "group {group}: wanted {want:?}, clstat says {:?} after {limit:?}; log:\n{}",
                    self.state_of(group),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid a command wrote to `NAME.pid`, once it exists.
    pub fn pid(&self, name: &str) -> i32 {
        let path = self.path(&format!("{name}.pid"));
        wait_for(Duration::from_secs(10), &format!("{name}.pid"), || {
            std::fs::read_to_string(&path).ok()?.trim().parse().ok()
        })
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn daemon_pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("daemon running")
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait for the daemon to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let status = wait_for(limit, "the daemon to exit", || self.try_wait());
        self.child = None;
        status
    }

    /// Every pid a test command recorded in `*.pid` files.
    fn recorded_pids(&self) -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else { return Vec::new() };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .collect()
    }
}

impl Drop for Daemon {
    /// Graceful shutdown if the daemon still runs; then make sure nothing
    /// the test started survives: SIGKILL to the daemon and to the process
    /// groups of the pids its commands recorded.
    fn drop(&mut self) {
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        if let Some(mut child) = self.child.take() {
            let _ = call(&self.socket, &Request::Shutdown, Duration::from_secs(2));
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        for pid in self.recorded_pids() {
            if pid > 1 && alive(pid) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}
