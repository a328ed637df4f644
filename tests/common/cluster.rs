//! A real cluster for the tests: several `mosha` processes on one machine,
//! under a temp dir, sharing one `--mfsbase` (`mfs/<node>/var/mosix-ha/`),
//! each with its own openMosix-style membership view
//! (`view<k>/nodes/<m>/status`: 3 up, 1 down), so a test can take a node
//! down for some nodes only, or split the views. `--membership heartbeat`
//! replaces the views when asked.
//!
//! Conventions shared by the cluster tests:
//! * every service writes its shell's pid to `pids/<node>.<group>` (the
//!   shell leads the entry's process group), so liveness is judged from
//!   real processes, and cleanup kills exactly those groups;
//! * each node's stderr goes to `log<node>`, appended across restarts;
//! * every wait is bounded, and a failure prints every node's clstat,
//!   hactl and log tail.
//!
//! Everything started is ended by pid or process group, never by name:
//! [`Drop`] asks each `mosha` to stop (SIGCONT, then SIGTERM, so a frozen
//! one is not left stopped and a running one stops its groups and its
//! watchdog), waits at most 10 s in total, then SIGKILLs what is left and
//! the services' process groups.

use clinit_backends::atomic::write_atomic;
use clinit_engine::hastat::is_idle;
use clinit_engine::status::{ClStat, GroupState};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

pub const MOSHA: &str = env!("CARGO_BIN_EXE_mosha");
/// `--timeout` of every node, in seconds: short, so tests fail over fast.
pub const TIMEOUT: &str = "6";
/// How long [`Drop`] lets the nodes stop by themselves.
const GRACE: Duration = Duration::from_secs(10);

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<u32>,
    pub moshas: BTreeMap<u32, Child>,
    /// Nodes whose `mosha` runs, shared with samplers on other threads.
    pub live: Arc<Mutex<BTreeSet<u32>>>,
    /// Extra arguments for every `mosha` started from now on.
    pub extra: Vec<String>,
    /// `--membership heartbeat` instead of the openMosix views.
    pub heartbeat: bool,
    /// `--policy P --known <nodes>`; `None` runs mosha's default policy
    /// with no known-node list.
    pub policy: Option<String>,
    /// `--timeout` of every node, in seconds ([`TIMEOUT`] unless set).
    pub timeout: String,
    /// Every `mosha` started records its inputs (`--record`) into
    /// [`Cluster::recording`].
    pub record: bool,
    /// How many times each node's `mosha` was started: a restart gets a
    /// new seed, so repeated failovers do not replay the same coin flips.
    pub starts: BTreeMap<u32, u32>,
}

impl Cluster {
    /// An empty cluster of `nodes`: every node up in every view, node
    /// directories and `pids/` created. Nothing runs yet.
    pub fn new(prefix: &str, nodes: &[u32]) -> Cluster {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir");
        let c = Cluster {
            dir,
            nodes: nodes.to_vec(),
            moshas: BTreeMap::new(),
            live: Arc::default(),
            extra: Vec::new(),
            heartbeat: false,
            policy: None,
            timeout: TIMEOUT.to_string(),
            record: false,
            starts: BTreeMap::new(),
        };
        fs::create_dir_all(c.path("pids")).expect("mkdir pids");
        for &k in nodes {
            for &m in nodes {
                c.set_up(k, m, true);
            }
            let own = c.file(k, "");
            fs::create_dir_all(own).expect("mkdir node dir");
        }
        c
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn mfs(&self) -> PathBuf {
        self.path("mfs")
    }

    pub fn view(&self, k: u32) -> PathBuf {
        self.path(&format!("view{k}"))
    }

    /// A file in node `node`'s shared directory (`clstat`, `hactl`, ...).
    pub fn file(&self, node: u32, name: &str) -> PathBuf {
        self.mfs().join(node.to_string()).join("var/mosix-ha").join(name)
    }

    /// In node `k`'s view, node `m` is up (status 3) or down (status 1).
    pub fn set_up(&self, k: u32, m: u32, up: bool) {
        let dir = self.view(k).join("nodes").join(m.to_string());
        fs::create_dir_all(&dir).expect("mkdir view");
        write_atomic(&dir.join("status"), if up { b"3\n" } else { b"1\n" }, None).expect("status");
    }

    /// Write a node's file atomically, with the given mtime.
    pub fn put(&self, node: u32, name: &str, bytes: impl AsRef<[u8]>, mtime: SystemTime) {
        let path = self.file(node, name);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        write_atomic(&path, bytes.as_ref(), Some(mtime)).expect("write");
    }

    /// Where node `node`'s `mosha` records with [`Cluster::record`].
    pub fn recording(&self, node: u32) -> PathBuf {
        self.path(&format!("rec{node}.jsonl"))
    }

    /// The arguments that make a `mosha` (daemon or client) node `node` of
    /// this cluster: node, timeout, seed, paths, membership and policy.
    /// The seed is `MOSHA_TEST_SEED` + node, plus 10 per restart.
    pub fn node_args(&self, node: u32) -> Vec<String> {
        let restarts = self.starts.get(&node).copied().unwrap_or(0).saturating_sub(1);
        let seed = seed_base() + u64::from(node) + 10 * u64::from(restarts);
        let mut args = vec!["--node".to_string(), node.to_string()];
        args.extend(["--timeout".to_string(), self.timeout.clone()]);
        args.extend(["--seed".to_string(), seed.to_string()]);
        args.extend(["--mfsbase".to_string(), self.mfs().display().to_string()]);
        if self.heartbeat {
            args.extend(["--membership".to_string(), "heartbeat".to_string()]);
        } else {
            args.extend(["--hpcbase".to_string(), self.view(node).display().to_string()]);
        }
        if let Some(policy) = &self.policy {
            let known: Vec<String> = self.nodes.iter().map(u32::to_string).collect();
            args.extend(["--policy".to_string(), policy.clone()]);
            args.extend(["--known".to_string(), known.join(",")]);
        }
        args
    }

    /// Start node `node`'s `mosha` daemon, its stderr appended to `log<node>`.
    pub fn start(&mut self, node: u32) {
        *self.starts.entry(node).or_default() += 1;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("log{node}")))
            .expect("log file");
        let mut cmd = Command::new(MOSHA);
        cmd.args(self.node_args(node)).args(&self.extra);
        if self.record {
            cmd.arg("--record").arg(self.recording(node));
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosha");
        self.moshas.insert(node, child);
        self.live.lock().expect("lock").insert(node);
    }

    /// Run `mosha ARGS` as a client of node `node` (status, hactl, standby).
    pub fn mosha_cli(&self, node: u32, args: &[&str]) -> Output {
        Command::new(MOSHA)
            .args(self.node_args(node))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mosha")
    }

    pub fn mosha_pid(&self, node: u32) -> Pid {
        Pid::from_raw(self.moshas[&node].id() as i32)
    }

    /// Nodes whose `mosha` runs.
    pub fn live(&self) -> BTreeSet<u32> {
        self.live.lock().expect("lock").clone()
    }

    pub fn clstat(&self, node: u32) -> ClStat {
        read_clstat(&self.file(node, "clstat"))
    }

    pub fn hactl(&self, node: u32) -> Vec<u8> {
        fs::read(self.file(node, "hactl")).unwrap_or_default()
    }

    pub fn log(&self, node: u32) -> String {
        fs::read_to_string(self.path(&format!("log{node}"))).unwrap_or_default()
    }

    /// Each group is `start DONE` on exactly one live node and non-idle
    /// nowhere else (judged from the clstat files); returns the owners.
    pub fn placement(&self, groups: &[&str]) -> Option<BTreeMap<String, u32>> {
        let live = self.live();
        let stats: BTreeMap<u32, ClStat> = live.iter().map(|&n| (n, self.clstat(n))).collect();
        let mut owners = BTreeMap::new();
        for &g in groups {
            let busy: Vec<u32> = stats
                .iter()
                .filter(|(_, st)| st.get(g).is_some_and(|s| !is_idle(&s.level, &s.state)))
                .map(|(&n, _)| n)
                .collect();
            let [owner] = busy[..] else { return None };
            let st = stats[&owner].get(g)?;
            if st.level != "start" || st.state != GroupState::Done {
                return None;
            }
            owners.insert(g.to_string(), owner);
        }
        Some(owners)
    }

    /// Nodes where `group`'s service process is alive now (real pids).
    pub fn running(&self, group: &str) -> Vec<u32> {
        self.nodes
            .iter()
            .copied()
            .filter(|&n| service_pid(&self.path("pids"), n, group).is_some())
            .collect()
    }

    /// Wait for `cond` to give `Some`, at most `limit`; fail with the
    /// cluster's report.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = cond() {
                return v;
            }
            if start.elapsed() > limit {
                panic!("{what}: not within {limit:?}\n{}", self.report());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every node's clstat, hactl and last 40 log lines (DEBUG left out).
    pub fn report(&self) -> String {
        let mut out = String::new();
        for &n in &self.nodes {
            let hactl = String::from_utf8_lossy(&self.hactl(n)).into_owned();
            out.push_str(&format!(
                "--- node {n} clstat:\n{}--- node {n} hactl:\n{hactl}--- node {n} log (tail):\n",
                self.clstat(n).render()
            ));
            let log = self.log(n);
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("DEBUG")).collect();
            for line in &lines[lines.len().saturating_sub(40)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// SIGKILL a node's `mosha` (resumed first, if frozen); with
    /// `services`, its services' process groups too: the node is dead.
    pub fn kill_mosha(&mut self, node: u32, services: bool) {
        self.live.lock().expect("lock").remove(&node);
        if let Some(mut child) = self.moshas.remove(&node) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
        if services {
            kill_services(&self.path("pids"), node);
        }
    }

    /// Wait at most `limit` until no live node's `mosha` has a zombie
    /// child; panics naming the zombies (and the cluster's report) if some
    /// remain. A child that just ended is a zombie until its `mosha` reaps
    /// it, so a moment with none is what counts, not every sample.
    pub fn assert_no_zombie_children(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let zombies: Vec<(u32, Vec<(i32, String)>)> = self
                .moshas
                .iter()
                .map(|(&n, child)| (n, zombie_children(child.id() as i32)))
                .filter(|(_, z)| !z.is_empty())
                .collect();
            if zombies.is_empty() {
                return;
            }
            if start.elapsed() > limit {
                panic!(
                    "zombie children (node, [(pid, command)]) still unreaped after {limit:?}: \
                     {zombies:?}\n{}",
                    self.report()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM a node's `mosha` and wait, at most `limit`, for its exit.
    pub fn terminate(&mut self, node: u32, limit: Duration) -> ExitStatus {
        let child = self.moshas.get_mut(&node).expect("running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.moshas.remove(&node);
                self.live.lock().expect("lock").remove(&node);
                return status;
            }
            if start.elapsed() > limit {
                panic!("node {node} did not exit within {limit:?} of SIGTERM\n{}", self.report());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.moshas.values() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGCONT);
            let _ = kill(pid, Signal::SIGTERM);
        }
        let start = Instant::now();
        for child in self.moshas.values_mut() {
            while start.elapsed() < GRACE {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for &n in &self.nodes {
            kill_services(&self.path("pids"), n);
        }
    }
}

/// Seeds of the nodes' coin flips: `MOSHA_TEST_SEED` + node (default 1000),
/// so a run can be repeated or varied.
pub fn seed_base() -> u64 {
    std::env::var("MOSHA_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1000)
}

pub fn read_clstat(path: &Path) -> ClStat {
    ClStat::parse(&fs::read_to_string(path).unwrap_or_default())
}

/// A cltab line for `group`'s service on level `start`: a respawned
/// `sleep 1000` whose shell records its pid under `pids/`.
pub fn service_line(pids: &Path, group: &str) -> String {
    format!(
        "{group}:{group}run:start:respawn:echo $$ > {}/$CLINIT_NODE.{group}; exec sleep 1000\n",
        pids.display()
    )
}

/// SIGKILL the process groups of `node`'s services (ours: checked in /proc).
pub fn kill_services(pids: &Path, node: u32) {
    let prefix = format!("{node}.");
    for entry in fs::read_dir(pids).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(group) = name.strip_prefix(&prefix) {
            if let Some(pid) = service_pid(pids, node, group) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// The pid of `node`'s copy of `group` if that process is alive (not a
/// zombie) and is our service (its command line says `sleep`, so not a
/// recycled pid).
pub fn service_pid(pids: &Path, node: u32, group: &str) -> Option<i32> {
    let text = fs::read_to_string(pids.join(format!("{node}.{group}"))).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    (state != Some("Z") && String::from_utf8_lossy(&cmdline).contains("sleep")).then_some(pid)
}

/// `(pid, command name)` of every zombie (state `Z`) whose parent is
/// `parent`, from one scan of `/proc/*/stat`.
pub fn zombie_children(parent: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The name (field 2) may hold spaces and ')': split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let name = head.split_once('(').map(|(_, n)| n.to_string()).unwrap_or_default();
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if state == Some("Z") && ppid == Some(parent) {
            out.push((pid, name));
        }
    }
    out
}
