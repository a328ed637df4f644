//! Containment under `mosha --policy ranked` (issue 10, "process
//! containment", a new user's finding), with three real `mosha` processes
//! on one machine, as `tests/mosha_ranked_ops.rs` runs them.
//!
//! The service leaves a descendant outside its process group
//! (`setsid sleep N &`): an *escapee*. Before, it survived every kill of
//! its node: the lease-loss kill, the watchdog's, a fenced node's before
//! its rejoin (the same command as the lease loss); after a failover and a
//! rejoin three copies ran. Each test, in one containment mode:
//!
//! 1. freezes the owner's watchdog and then its `mosha` (SIGSTOP) until a
//!    peer runs the group; the escapee still lives (nothing of its node
//!    runs); the owner is resumed, finds its lease lost and kills: its
//!    escapee is gone within seconds, and the log counts it;
//! 2. freezes the new owner's `mosha` alone: its watchdog fires at the
//!    deadline and kills the escapee too;
//! 3. `mosha hactl set web stop` stops the escapee of the current owner
//!    with its entry: through the entry's cgroup, or in process-group mode
//!    as an adopted orphan of `mosha` whose `CLINIT_INSTANCE` names the
//!    entry's instance (the stop escalates until it is gone).
//!
//! A second run per mode freezes the owner's watchdog and `mosha` until a
//! peer fences it (a fence command that kills nothing), resumes `mosha`
//! alone and checks that the kill before its rejoin as a new incarnation
//! ends the escapee (`escapee_dies_before_a_fenced_node_rejoins`).
//!
//! Escapees are found by a sleep argument unique to the test process, test
//! and node (`/proc/*/cmdline`); cleanup kills exactly those pids and
//! resumes every process it froze. Every wait is bounded.

mod common;

use clinit_engine::monitor::ranked::Record;
use common::cluster::Cluster;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::time::{Duration, Instant, SystemTime};

const NODES: [u32; 3] = [1, 2, 3];
/// Longest wait for any one phase.
const PHASE: Duration = Duration::from_secs(60);
/// Longest an escapee may outlive the kill that should reach it.
const KILL_LIMIT: Duration = Duration::from_secs(5);
/// Longest an escapee may outlive its entry's leader in a stop: SIGTERM
/// comes 5 s into the stop, SIGKILL at 15 s.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// The escapee's sleep argument on node `node`, for test `test`: digits
/// unique to this test process, so no other process on the machine has it.
fn escapee_arg(test: u32, node: u32) -> String {
    format!("4{:07}{test}{node}", std::process::id() % 10_000_000)
}

/// Live (not zombie) processes whose command line is `sleep ARG`.
fn escapees(arg: &str) -> Vec<i32> {
    let want = format!("sleep\0{arg}\0");
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            state.is_some_and(|s| s != 'Z' && s != 'X')
        })
        .collect()
}

/// Resumes the processes it froze and kills the escapees it names, by pid,
/// however the test ends.
struct Cleanup {
    frozen: Vec<Pid>,
    args: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.frozen {
            let _ = kill(pid, Signal::SIGCONT);
        }
        for arg in &self.args {
            for pid in escapees(arg) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// The pid of node `node`'s watchdog, from its latest start-up line.
fn watchdog_pid(c: &Cluster, node: u32) -> Option<Pid> {
    let log = c.log(node);
    let line = log.lines().rev().find(|l| l.contains("ranked: watchdog is pid "))?;
    let rest = line.split("ranked: watchdog is pid ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(Pid::from_raw)
}

/// Node `node`'s published record (its heartbeat file under `ranked`).
fn record(c: &Cluster, node: u32) -> Option<Record> {
    Record::parse(&fs::read_to_string(c.file(node, "heartbeat")).ok()?).ok()
}

/// Nodes where `web` is at level `start` (from their clstat files).
fn owners(c: &Cluster) -> Vec<u32> {
    NODES
        .into_iter()
        .filter(|&n| c.clstat(n).get("web").is_some_and(|s| s.level == "start"))
        .collect()
}

/// Wait at most [`KILL_LIMIT`] for `arg`'s escapee to be gone.
fn gone_within_limit(arg: &str) -> Result<Duration, Vec<i32>> {
    gone_within(arg, KILL_LIMIT)
}

/// Wait at most `limit` for `arg`'s escapee to be gone.
fn gone_within(arg: &str, limit: Duration) -> Result<Duration, Vec<i32>> {
    let start = Instant::now();
    loop {
        let left = escapees(arg);
        if left.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Give every node of `c` the `web` entry whose shell leaves an escapee
/// (`setsid sleep ARG &`, ARG ending in the node's number, from
/// $CLINIT_NODE) and `web start`, start them all, and return the node that
/// runs `web` with its escapee.
fn start_web_with_escapees(c: &mut Cluster, test: u32) -> u32 {
    let pids = c.path("pids");
    let arg = |node: u32| escapee_arg(test, node);
    let prefix = escapee_arg(test, 0);
    let prefix = &prefix[..prefix.len() - 1];
    let cltab = format!(
        "web:webrun:start:respawn:echo $$ > {}/$CLINIT_NODE.web; \
         setsid sleep {prefix}$CLINIT_NODE & exec sleep 1000\n",
        pids.display()
    );
    let old = SystemTime::now() - Duration::from_secs(60);
    for n in NODES {
        c.put(n, "cltab", cltab.as_bytes(), old);
        c.put(n, "hactl", b"web start\n", old);
    }
    for n in NODES {
        c.start(n);
    }
    c.wait_for("web on exactly one node, with its escapee", PHASE, || match owners(c)[..] {
        [one] if escapees(&arg(one)).len() == 1 => Some(one),
        _ => None,
    })
}

/// The run shared by both modes (module doc). `cgroups`: leave cgroups on
/// (the default) and expect cgroup mode; else `--no-cgroups`.
fn escapees_die_with_their_node(test: u32, cgroups: bool) {
    let mut c = Cluster::new("mosha-contain-", &NODES);
    c.policy = Some("ranked".to_string());
    if !cgroups {
        c.extra.push("--no-cgroups".into());
    }
    let arg = |node: u32| escapee_arg(test, node);
    let mut cleanup = Cleanup { frozen: Vec::new(), args: NODES.map(arg).to_vec() };
    let first = start_web_with_escapees(&mut c, test);
    let mode = if cgroups {
        "containment: one cgroup per entry under "
    } else {
        "containment: process groups only (cgroups disabled)"
    };
    let said = c.log(first).lines().find(|l| l.contains("containment:")).map(str::to_string);
    if cgroups && said.as_deref().is_some_and(|l| l.contains("process groups only")) {
        eprintln!("skipped: no cgroup mode here ({said:?})");
        return;
    }
    c.wait_for("every node holds its lease", PHASE, || {
        NODES.iter().all(|&n| record(&c, n).is_some_and(|r| r.holds_quorum())).then_some(())
    });

    // 1. The lease-loss kill (the monitor's own): watchdog and monitor
    //    frozen until a peer runs web; then the monitor alone resumed.
    let dog = watchdog_pid(&c, first).unwrap_or_else(|| panic!("no watchdog pid\n{}", c.report()));
    let monitor = c.mosha_pid(first);
    cleanup.frozen.extend([dog, monitor]);
    kill(dog, Signal::SIGSTOP).expect("SIGSTOP the watchdog");
    kill(monitor, Signal::SIGSTOP).expect("SIGSTOP the monitor");
    let second = c.wait_for("a peer runs web", PHASE, || {
        NODES.into_iter().find(|&n| n != first && escapees(&arg(n)).len() == 1)
    });
    assert_eq!(escapees(&arg(first)).len(), 1, "nothing of the frozen node killed its escapee yet");
    let kills_before = c.log(first).matches("no lease here").count();
    kill(monitor, Signal::SIGCONT).expect("SIGCONT the monitor");
    c.wait_for("the resumed owner kills on its lost lease", PHASE, || {
        (c.log(first).matches("no lease here").count() > kills_before).then_some(())
    });
    let took = gone_within_limit(&arg(first)).unwrap_or_else(|left| {
        panic!("the lease-loss kill left escapee {left:?} running\n{}", c.report())
    });
    let line = c.log(first).lines().rev().find(|l| l.contains("no lease here")).map(str::to_string);
    let line = line.unwrap_or_default();
    assert!(line.contains("and 1 other processes"), "the kill counts the escapee: {line}");
    eprintln!("lease-loss kill: escapee gone {} ms after the kill's line", took.as_millis());
    kill(dog, Signal::SIGCONT).expect("SIGCONT the watchdog");
    cleanup.frozen.clear();

    // 2. The watchdog's kill: the new owner's monitor frozen alone.
    let monitor = c.mosha_pid(second);
    cleanup.frozen.push(monitor);
    let frozen_at = Instant::now();
    kill(monitor, Signal::SIGSTOP).expect("SIGSTOP the new owner");
    c.wait_for("the frozen owner's watchdog killed web", PHASE, || {
        (!c.running("web").contains(&second)).then_some(())
    });
    let took = gone_within_limit(&arg(second)).unwrap_or_else(|left| {
        panic!("the watchdog's kill left escapee {left:?} running\n{}", c.report())
    });
    eprintln!(
        "watchdog kill: escapee gone {} ms after the service, {} ms after the freeze",
        took.as_millis(),
        frozen_at.elapsed().as_millis()
    );
    kill(monitor, Signal::SIGCONT).expect("SIGCONT");
    cleanup.frozen.clear();

    // 3. An ordinary stop of the entry reaches its escapee: through its
    //    cgroup, or (process-group mode) as an orphan of mosha that
    //    carries the entry's CLINIT_INSTANCE.
    {
        let third = c.wait_for("web runs again on one node, with its escapee", PHASE, || {
            match owners(&c)[..] {
                [one] if escapees(&arg(one)).len() == 1 && c.running("web") == [one] => Some(one),
                _ => None,
            }
        });
        let asked = Instant::now();
        let out = c.mosha_cli(third, &["hactl", "set", "web", "stop"]);
        assert!(out.status.success(), "{out:?}");
        c.wait_for("web stopped", PHASE, || c.running("web").is_empty().then_some(()));
        // The escapee, a `&` job of sh, ignores SIGINT: the stop's SIGTERM
        // (5 s into the stop, the default escalation) ends it.
        if let Err(left) = gone_within(&arg(third), STOP_LIMIT) {
            panic!("the stop of web left escapee {left:?} running\n{}", c.report());
        }
        eprintln!("hactl stop: escapee gone {} ms after the set", asked.elapsed().as_millis());
    }
    // Every node says its containment mode at start.
    for n in NODES {
        assert!(c.log(n).contains(mode), "node {n} does not say {mode:?}\n{}", c.report());
    }
}

/// The rejoin kill (issue 12): a node fenced while its `mosha` still runs
/// SIGKILLs every local service before it rejoins as a new incarnation, and
/// that kill must reach an escapee too, or the new incarnation would start
/// with a copy of a service its peers took over. The owner's watchdog and
/// `mosha` are frozen (so neither the watchdog's kill nor anything else of
/// the node touches the escapee) until a peer fences it with a command
/// that reports success and kills nothing, and publishes the fence; then
/// `mosha` alone is resumed. It reads the fence, kills (the command a lost
/// lease gives too; whichever it reads first, the kill is one) and rejoins:
/// by then its escapee is gone, the log counts it in the kill's line, and
/// `web` runs on one other node only. The watchdog is resumed only after.
fn escapee_dies_before_a_fenced_node_rejoins(test: u32, cgroups: bool) {
    let mut c = Cluster::new("mosha-rejoin-", &NODES);
    c.policy = Some("ranked".to_string());
    let fenced = c.path("fenced");
    let fence = format!("f() {{ echo \"fence $1\" >> '{}'; }}; f", fenced.display());
    c.extra = vec!["--stomith".into(), fence];
    if !cgroups {
        c.extra.push("--no-cgroups".into());
    }
    let arg = |node: u32| escapee_arg(test, node);
    let mut cleanup = Cleanup { frozen: Vec::new(), args: NODES.map(arg).to_vec() };
    let owner = start_web_with_escapees(&mut c, test);
    let said = c.log(owner).lines().find(|l| l.contains("containment:")).map(str::to_string);
    if cgroups && said.as_deref().is_some_and(|l| l.contains("process groups only")) {
        eprintln!("skipped: no cgroup mode here ({said:?})");
        return;
    }
    c.wait_for("every node holds its lease", PHASE, || {
        NODES.iter().all(|&n| record(&c, n).is_some_and(|r| r.holds_quorum())).then_some(())
    });
    let incarnation = record(&c, owner).expect("the owner's record").incarnation;
    let dog = watchdog_pid(&c, owner).unwrap_or_else(|| panic!("no watchdog pid\n{}", c.report()));
    let monitor = c.mosha_pid(owner);
    cleanup.frozen.extend([dog, monitor]);
    kill(dog, Signal::SIGSTOP).expect("SIGSTOP the watchdog");
    kill(monitor, Signal::SIGSTOP).expect("SIGSTOP the monitor");
    let fencer = c.wait_for("a peer publishes its fence of the frozen owner", PHASE, || {
        NODES
            .into_iter()
            .filter(|&n| n != owner)
            .find(|&n| record(&c, n).is_some_and(|r| r.fenced.get(&owner) == Some(&incarnation)))
    });
    assert_eq!(escapees(&arg(owner)).len(), 1, "nothing of the frozen node killed its escapee yet");
    let kills_before = c.log(owner).matches("no lease here").count();
    kill(monitor, Signal::SIGCONT).expect("SIGCONT the monitor");
    let next = incarnation + 1;
    let fenced_line = format!("node {fencer} FENCED this node (incarnation {incarnation})");
    let rejoining =
        format!("rejoining as incarnation {next}: incarnation {incarnation} was fenced");
    c.wait_for("the resumed node reads its fence, kills and rejoins", PHASE, || {
        let log = c.log(owner);
        (log.contains(&fenced_line) && log.contains(&rejoining)).then_some(())
    });
    // The kill is confirmed before the rejoin; the escapee, killed with
    // the services, may take a moment longer to be reaped and gone.
    let took = gone_within_limit(&arg(owner)).unwrap_or_else(|left| {
        panic!("the rejoin kill left escapee {left:?} running\n{}", c.report())
    });
    let log = c.log(owner);
    let kills: Vec<&str> = log.lines().filter(|l| l.contains("no lease here")).collect();
    assert!(kills.len() > kills_before, "no kill before the rejoin\n{}", c.report());
    assert!(
        kills[kills_before..].iter().any(|l| l.contains("and 1 other processes")),
        "the kill counts the escapee: {kills:?}"
    );
    eprintln!("rejoin kill: escapee gone {} ms after the rejoin line", took.as_millis());
    kill(dog, Signal::SIGCONT).expect("SIGCONT the watchdog");
    cleanup.frozen.clear();
    c.wait_for("web runs on exactly one other node, with its escapee", PHASE, || {
        match (&owners(&c)[..], &c.running("web")[..]) {
            ([one], [running]) if one == running && *one != owner => {
                (escapees(&arg(*one)).len() == 1).then_some(())
            }
            _ => None,
        }
    });
    assert!(escapees(&arg(owner)).is_empty(), "nothing runs again on the rejoined node");
}

/// [`escapee_dies_before_a_fenced_node_rejoins`] without cgroups: the kill
/// finds the escapee by the generation marker it inherited.
#[test]
fn the_rejoin_kill_reaches_an_escapee_in_process_group_mode() {
    escapee_dies_before_a_fenced_node_rejoins(3, false);
}

/// [`escapee_dies_before_a_fenced_node_rejoins`] in cgroup mode: the kill
/// reaches every process below the node's cgroup. Skipped, with a message,
/// where no cgroup can be made (not root, no cgroup2).
#[test]
fn the_rejoin_kill_reaches_an_escapee_in_cgroup_mode() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root (cgroup mode needs a writable cgroup2 tree)");
        return;
    }
    escapee_dies_before_a_fenced_node_rejoins(4, true);
}

/// Process-group mode (`--no-cgroups`): the kills find the escapee by the
/// generation marker it inherited. Fails without that: the escapee of the
/// frozen owner outlives both kills.
#[test]
fn escapees_die_with_their_node_in_process_group_mode() {
    escapees_die_with_their_node(1, false);
}

/// cgroup mode (the default as root): the kills reach every process of the
/// node's entry cgroups, and a stop of the entry its escapee. Skipped, with
/// a message, where no cgroup can be made (not root, no cgroup2).
#[test]
fn escapees_die_with_their_node_in_cgroup_mode() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root (cgroup mode needs a writable cgroup2 tree)");
        return;
    }
    escapees_die_with_their_node(2, true);
}
