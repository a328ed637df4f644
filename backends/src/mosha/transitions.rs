//! `mosha`'s membership transitions: the history file and the hooks
//! (issue 12). The rules (numbering, which copy is the history, who
//! records) are the engine's [`clinit_engine::monitor::transitions`]; this
//! module only reads and writes the files and runs the hooks.
//!
//! Two threads, so that neither the monitor nor the history waits for a
//! hook:
//! * the **recorder thread** gets the driver's membership changes over a
//!   channel; every [`POLL`] (and on each change) it reads the
//!   `transitions` files the engine's [`Recorder`] plans (every node's
//!   after a change and every 10 s, else its own and the last recorder's),
//!   runs the engine's record step on them, writes its own copy when the
//!   step says so, and logs each transition the step announces;
//! * the **hook thread** runs `--on-nodeup`/`--on-nodedown` once per
//!   transition, in transition order, one at a time, with `MOSHA_TRANSITION`,
//!   `MOSHA_NODE`, `MOSHA_CHANGE` (`up`/`down`), `MOSHA_TIME` (the
//!   recorder's wall clock, seconds since the epoch with ms),
//!   `MOSHA_REASON` and `MOSHA_ME` in its environment. A hook that runs
//!   longer than its time-out is killed with its process group (logged); a
//!   hook that fails is logged. Hooks run for transitions recorded after
//!   this `mosha` started, never for older history. When a hook's shell
//!   ends, whatever is left in its process group (a `cmd &` it did not
//!   wait for) is ended and counted in the log; while it runs, its group is
//!   recorded in the node's [`hook_group::STATE_FILE`], so that a `mosha`
//!   restarted after a crash ends a hook its predecessor left running.

use super::hook_group::{self, Held};
use clinit_engine::monitor::transitions::{
    Change, History, HookQueue, ReadPlan, Recorder, Transition,
};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, error, info, warn};

/// The history file's name in each node's directory.
pub const FILE: &str = "transitions";
/// How often the recorder thread re-reads the histories without a change.
pub const POLL: Duration = Duration::from_millis(500);
/// Largest history file read (bytes).
const LIMIT: u64 = 1 << 20;

/// The hooks and their time-out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub on_nodeup: Option<String>,
    pub on_nodedown: Option<String>,
    /// Longest a hook may run before its process group is killed.
    pub timeout: Duration,
}

/// What the recorder thread is told.
enum Msg {
    Changes {
        members: Vec<u32>,
        changes: Vec<(u32, Change, String)>,
    },
    /// This node fenced `node` successfully (a vote under the exact-half
    /// rule).
    Fenced {
        node: u32,
        at_ms: i64,
    },
    Stop,
}

/// The running threads.
pub struct Transitions {
    tx: mpsc::Sender<Msg>,
    recorder: Option<JoinHandle<()>>,
    /// The process group of the hook running now (0: none). mosha's exit
    /// kills it: a hook is mosha's child, and must not outlive it (a hung
    /// hook would otherwise be orphaned until its time-out never comes).
    running: Arc<AtomicI32>,
    /// The node's record of the running hook ([`hook_group::STATE_FILE`]).
    state: PathBuf,
}

/// Every node's history file, by node (from the node directories under
/// `mfsbase`).
fn read_histories(mfsbase: &std::path::Path, varpath: &std::path::Path) -> Vec<(u32, History)> {
    let Ok(dir) = std::fs::read_dir(mfsbase) else { return Vec::new() };
    let nodes: Vec<u32> = dir
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .collect();
    read_nodes(mfsbase, varpath, &nodes)
}

/// The history files of `nodes` (a missing, unreadable or unsealed one is
/// left out, with a debug line).
fn read_nodes(
    mfsbase: &std::path::Path,
    varpath: &std::path::Path,
    nodes: &[u32],
) -> Vec<(u32, History)> {
    let mut out = Vec::new();
    for &node in nodes {
        let path = mfsbase.join(node.to_string()).join(varpath).join(FILE);
        match crate::safe_read::read_regular(&path, LIMIT) {
            Ok(Some(bytes)) => match History::parse(&bytes) {
                Ok(h) => out.push((node, h)),
                Err(e) => debug!("{}: not used: {e}", path.display()),
            },
            Ok(None) => {}
            Err(e) => debug!("{}: {e}", path.display()),
        }
    }
    out
}

/// The best history under `mfsbase` (for `mosha status`).
pub fn best_history(mfsbase: &std::path::Path, varpath: &std::path::Path) -> Option<History> {
    History::best(read_histories(mfsbase, varpath).into_iter().map(|(_, h)| h))
}

/// The last `k` transitions for `mosha status`, newest last, with their
/// age by the reader's clock (`now_ms`, ms since the epoch).
pub fn render_recent(history: &History, k: usize, now_ms: i64) -> String {
    let recent = history.tail(k);
    let mut out = format!(
        "\nrecent membership transitions (the last {}, up to #{}):\n",
        recent.len(),
        history.last
    );
    for t in recent {
        let ago = (now_ms - t.at_ms).max(0) as f64 / 1000.0;
        out.push_str(&format!(
            "  #{:<5} node {} {:<4} {} ago (by node {}): {}\n",
            t.number,
            t.node,
            t.change,
            crate::cluster_status::human_secs(ago),
            t.by,
            t.reason
        ));
    }
    out
}

impl Transitions {
    /// Start both threads for node `me` (`known`: the cluster's nodes, for
    /// the recorder's majority check; empty: none; `tie_break`: `ranked`'s
    /// exact-half rule, [`Recorder::with_tie_break`]).
    pub fn start(
        me: u32,
        mfsbase: PathBuf,
        varpath: PathBuf,
        known: Vec<u32>,
        tie_break: bool,
        hooks: Hooks,
    ) -> Transitions {
        let (tx, rx) = mpsc::channel();
        let (hook_tx, hook_rx) = mpsc::channel::<Transition>();
        let running = Arc::new(AtomicI32::new(0));
        // A hook a crashed predecessor left running ends before ours start.
        let state = mfsbase.join(me.to_string()).join(&varpath).join(hook_group::STATE_FILE);
        hook_group::reap_recorded(&state);
        if hooks.on_nodeup.is_some() || hooks.on_nodedown.is_some() {
            let running = Arc::clone(&running);
            let state = state.clone();
            thread::Builder::new()
                .name("mosha-hooks".into())
                .spawn(move || {
                    // The engine's queue orders them (in transition
                    // order, one at a time, once each).
                    let mut queue = HookQueue::default();
                    while let Ok(t) = hook_rx.recv() {
                        queue.push(t);
                        while let Some(t) = queue.start_next() {
                            run_hook(me, &hooks, &t, &running, &state);
                            queue.finished(t.number);
                        }
                    }
                })
                .map_err(|e| error!("cannot start the hook thread: {e}; hooks will not run"))
                .ok();
        }
        let recorder = thread::Builder::new()
            .name("mosha-transitions".into())
            .spawn(move || {
                let mut step = Recorder::new(me, known);
                if tie_break {
                    step = step.with_tie_break();
                }
                record_loop(me, &mfsbase, &varpath, step, rx, hook_tx)
            })
            .map_err(|e| error!("cannot start the transitions thread: {e}"))
            .ok();
        Transitions { tx, recorder, running, state }
    }

    /// The driver saw membership change (never blocks).
    pub fn changed(&self, members: Vec<u32>, changes: Vec<(u32, Change, String)>) {
        let _ = self.tx.send(Msg::Changes { members, changes });
    }

    /// This node fenced `node` successfully (never blocks).
    pub fn fenced(&self, node: u32) {
        let _ = self.tx.send(Msg::Fenced { node, at_ms: wall_ms() });
    }
}

impl Drop for Transitions {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(handle) = self.recorder.take() {
            let _ = handle.join();
        }
        let pgid = self.running.swap(0, Ordering::SeqCst);
        if pgid > 0 {
            warn!("mosha exits while a hook runs: killing its process group {pgid}");
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            hook_group::clear(&self.state);
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn record_loop(
    me: u32,
    mfsbase: &std::path::Path,
    varpath: &std::path::Path,
    mut step: Recorder,
    rx: mpsc::Receiver<Msg>,
    hooks: mpsc::Sender<Transition>,
) {
    let own = mfsbase.join(me.to_string()).join(varpath).join(FILE);
    // Every rule (what to read, merge, record, write, announce) is the
    // engine's; this loop reads and writes files and logs.
    let mut write_failing = false;
    let mut first = true;
    loop {
        if !first {
            match rx.recv_timeout(POLL) {
                Ok(Msg::Changes { members, changes }) => {
                    step.membership(&members, changes, wall_ms());
                }
                Ok(Msg::Fenced { node, at_ms }) => step.fenced(node, at_ms),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        first = false;
        let plan = step.plan();
        let read = match &plan {
            ReadPlan::All => read_histories(mfsbase, varpath),
            ReadPlan::Nodes(nodes) => read_nodes(mfsbase, varpath, nodes),
        };
        let out = step.step(read, plan == ReadPlan::All);
        if let Some(last) = out.found_at_start.filter(|&n| n > 0) {
            info!("membership transitions: history up to transition {last}");
        }
        for (node, change, reason) in &out.not_recorded {
            debug!("membership: node {node} {change} ({reason}); not the recorder");
        }
        if let Some(h) = out.write {
            match crate::atomic::write_atomic(&own, &h.render(), None) {
                Ok(()) => write_failing = false,
                Err(e) if !write_failing => {
                    write_failing = true;
                    error!("cannot write {}: {e}", own.display());
                }
                Err(_) => {}
            }
        }
        for t in out.announce {
            if t.change == Change::Down {
                warn!("{t} (recorded by node {})", t.by);
            } else {
                info!("{t} (recorded by node {})", t.by);
            }
            let _ = hooks.send(t);
        }
    }
}

/// When a hook's run ends, however it ends: ends what is left of its
/// process group (logged with the count), removes the node's record of it
/// and forgets it.
struct ClearOnDrop<'a> {
    running: &'a AtomicI32,
    pgid: i32,
    state: &'a Path,
    what: &'a str,
}

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        let left = hook_group::sweep(self.pgid);
        if left > 0 {
            warn!(
                "{}: {left} process(es) left in its process group {} after it ended: killed",
                self.what, self.pgid
            );
        }
        hook_group::clear(self.state);
        self.running.store(0, Ordering::SeqCst);
    }
}

/// Run the hook for one transition, bounded by the time-out.
fn run_hook(me: u32, hooks: &Hooks, t: &Transition, running: &AtomicI32, state: &Path) {
    let cmd = match t.change {
        Change::Up => hooks.on_nodeup.as_deref(),
        Change::Down => hooks.on_nodedown.as_deref(),
    };
    let Some(cmd) = cmd else { return };
    let what = format!("--on-node{} hook for transition {}", t.change, t.number);
    let time = format!("{}.{:03}", t.at_ms.div_euclid(1000), t.at_ms.rem_euclid(1000));
    let env = [
        ("MOSHA_TRANSITION", t.number.to_string()),
        ("MOSHA_NODE", t.node.to_string()),
        ("MOSHA_CHANGE", t.change.to_string()),
        ("MOSHA_TIME", time),
        ("MOSHA_REASON", t.reason.clone()),
        ("MOSHA_ME", me.to_string()),
    ];
    // Held at its gate until its group is on record (see spawn_held).
    let mut held = match hook_group::spawn_held(cmd, &env) {
        Ok(h) => h,
        Err(e) => return error!("{what}: cannot start: {e}"),
    };
    // Its own process group (`process_group(0)`): the pgid is its pid.
    let pgid = i32::try_from(held.child.id()).unwrap_or(0);
    running.store(pgid, Ordering::SeqCst);
    // The command starts only once its group is on record (README): a few
    // tries over a second; then the hook is not run, and the log says so.
    let mut recorded = Err(std::io::Error::other("its start time could not be read"));
    for i in 0..5 {
        if i > 0 {
            thread::sleep(Duration::from_millis(200));
        }
        if let Some(start) = hook_group::start_time(pgid) {
            recorded = hook_group::record(state, pgid, start);
            if recorded.is_ok() {
                break;
            }
        }
    }
    if let Err(e) = recorded {
        running.store(0, Ordering::SeqCst);
        held.abandon();
        return error!("{what}: not run: cannot record it in {}: {e}", state.display());
    }
    held.release();
    // The claim lives until this function returns, after the wait below.
    let Held { mut child, claim: _claim, .. } = held;
    let _clear = ClearOnDrop { running, pgid, state, what: &what };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                return debug!("{what}: done in {:?}", start.elapsed());
            }
            Ok(Some(status)) => {
                let how = match (status.code(), status.signal()) {
                    (Some(code), _) => format!("exit status {code}"),
                    (None, Some(sig)) => format!("signal {sig}"),
                    _ => "unknown status".into(),
                };
                return warn!("{what} failed ({how})");
            }
            Ok(None) => {}
            Err(e) => return error!("{what}: cannot wait: {e}"),
        }
        if start.elapsed() >= hooks.timeout {
            // Its own process group: the hook and whatever it started.
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait();
            return warn!("{what} ran longer than {:?}: killed", hooks.timeout);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinit_engine::monitor::transitions::Change;

    /// A hook whose group cannot be recorded (a read-only or missing
    /// directory) is not run, as README promises ("does not start before
    /// that record is written"); it used to be logged and run anyway
    /// (new-user test NU9 #10). The same hook with a writable record runs.
    #[test]
    fn a_hook_that_cannot_be_recorded_is_not_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ran = dir.path().join("ran");
        let hooks = Hooks {
            on_nodeup: Some(format!("touch {}", ran.display())),
            on_nodedown: None,
            timeout: Duration::from_secs(5),
        };
        let mut h = History::default();
        h.append(2, Change::Up, 1_000, 1, "listed up");
        let t = h.tail(1)[0].clone();
        let running = AtomicI32::new(0);
        let unwritable = dir.path().join("no-such-dir").join("hook.running");
        run_hook(1, &hooks, &t, &running, &unwritable);
        assert!(!ran.exists(), "the hook ran without its record");
        assert_eq!(running.load(Ordering::SeqCst), 0);
        run_hook(1, &hooks, &t, &running, &dir.path().join("hook.running"));
        assert!(ran.exists(), "a recorded hook runs");
    }

    /// The header says how many lines follow and the last number: "last
    /// 54" above 5 lines read as 54 lines (new-user test NU9).
    #[test]
    fn the_header_counts_the_lines_shown_and_names_the_last_number() {
        let mut h = History::default();
        for i in 0..54 {
            h.append(1 + i % 3, if i % 2 == 0 { Change::Down } else { Change::Up }, 1_000, 1, "x");
        }
        let text = render_recent(&h, 5, 2_000);
        assert!(text.contains("recent membership transitions (the last 5, up to #54):"), "{text}");
        assert_eq!(text.lines().filter(|l| l.trim_start().starts_with('#')).count(), 5, "{text}");
    }
}
