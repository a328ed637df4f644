//! Latency of the real daemon: `clinit -d` with real children, sockets and
//! files in a temporary directory.
//!
//! | bench                       | from                          | until                                   |
//! |-----------------------------|-------------------------------|-----------------------------------------|
//! | `tell_to_child/socket`      | tell sent on the socket        | the child wrote to a FIFO the bench reads |
//! | `tell_to_child/cli`         | `clinit -c CLTAB g L` started  | the same                                |
//! | `level_change_stops_nothing`| tell sent                      | clstat says `g L DONE`                  |
//! | `shutdown_10_children/socket` | shutdown request sent        | daemon process reaped                   |
//! | `shutdown_10_children/cli_k_wait` | `clinit -k --wait` started | that client and the daemon have exited |
//! | `respawn_after_kill9`       | `kill -9` of a respawn child   | its new instance wrote its pid to a FIFO |
//!
//! Criterion reports means and medians; each bench also prints a
//! `PERCENTILES name: n=.. p50=.. p90=.. p99=..` line over every iteration
//! it ran (warm-up included).
//!
//! Run: `cargo bench --bench daemon` (filters work: `-- respawn`). Files go
//! to `$TMPDIR` (default /tmp); `TMPDIR=/dev/shm` puts clstat on tmpfs, as
//! `/var/run/clinit` is on a typical node.

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{clinit_bin, finish_call, start_call, Daemon, Fifo, Samples};

const STEP_LIMIT: Duration = Duration::from_secs(5);

fn tell_line(group: &str, level: &str) -> Vec<u8> {
    format!("{{\"op\":\"tell\",\"group\":\"{group}\",\"level\":\"{level}\"}}\n").into_bytes()
}

/// A daemon whose group `g` has one `once` entry per level (1 and 2), each
/// writing its level to the FIFO `ready`.
fn fifo_daemon() -> (Daemon, Fifo) {
    let dir = tempfile::Builder::new().prefix("clinit-bench.").tempdir().unwrap();
    let fifo = Fifo::create(dir.path().join("ready"));
    let daemon = Daemon::start_in(
        dir,
        "g:a:1:once:echo $CLINIT_LEVEL > @DIR@/ready\n\
         g:b:2:once:echo $CLINIT_LEVEL > @DIR@/ready\n",
    );
    (daemon, fifo)
}

/// Between iterations (not timed): the previous child has been reaped, so
/// the next tell stops nothing and only starts.
fn settle_fifo_daemon(d: &Daemon) {
    d.wait_processes(0, STEP_LIMIT);
}

fn bench_tell_to_child(c: &mut Criterion) {
    let mut group = c.benchmark_group("tell_to_child");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));

    // Straight on the socket: what the daemon itself costs.
    let mut samples = Samples::default();
    let mut state: Option<(Daemon, Fifo)> = None;
    let mut n = 0u64;
    group.bench_function("socket", |b| {
        b.iter_custom(|iters| {
            let (d, fifo) = state.get_or_insert_with(fifo_daemon);
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let level = if n % 2 == 1 { "1" } else { "2" };
                settle_fifo_daemon(d);
                fifo.drain();
                let line = tell_line("g", level);
                let t0 = Instant::now();
                let conn = start_call(&d.socket, &line);
                let got = fifo.read_line(Instant::now() + STEP_LIMIT);
                let dt = t0.elapsed();
                assert_eq!(got.as_deref(), Some(level), "child of level {level} did not report");
                let reply = finish_call(conn);
                assert!(reply.ok, "tell: {}", reply.msg);
                samples.push(dt);
                total += dt;
            }
            total
        })
    });
    samples.report("tell_to_child/socket");
    drop(state.take());

    // Through the command-line client: includes exec of `clinit` itself.
    let mut samples = Samples::default();
    let mut state: Option<(Daemon, Fifo)> = None;
    let mut n = 0u64;
    group.bench_function("cli", |b| {
        b.iter_custom(|iters| {
            let (d, fifo) = state.get_or_insert_with(fifo_daemon);
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let level = if n % 2 == 1 { "1" } else { "2" };
                settle_fifo_daemon(d);
                fifo.drain();
                let t0 = Instant::now();
                let mut client = Command::new(clinit_bin())
                    .arg("-c")
                    .arg(&d.cltab)
                    .args(["g", level])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("run clinit client");
                let got = fifo.read_line(Instant::now() + STEP_LIMIT);
                let dt = t0.elapsed();
                assert_eq!(got.as_deref(), Some(level), "child of level {level} did not report");
                let deadline = Instant::now() + Duration::from_secs(15);
                let status = loop {
                    if let Some(st) = client.try_wait().unwrap() {
                        break st;
                    }
                    if Instant::now() > deadline {
                        let _ = client.kill();
                        let _ = client.wait();
                        panic!("clinit client did not exit within 15 s");
                    }
                    std::thread::sleep(Duration::from_micros(200));
                };
                assert!(status.success(), "clinit g {level}: {status}");
                samples.push(dt);
                total += dt;
            }
            total
        })
    });
    samples.report("tell_to_child/cli");
    drop(state.take());

    // The floor on this machine, without clinit: the bench itself starts
    // `/bin/sh -c 'echo 1 > FIFO'` and waits for the line.
    let mut samples = Samples::default();
    let mut state: Option<(tempfile::TempDir, Fifo)> = None;
    group.bench_function("baseline_sh_without_clinit", |b| {
        b.iter_custom(|iters| {
            let (dir, fifo) = state.get_or_insert_with(|| {
                let dir = tempfile::Builder::new().prefix("clinit-bench.").tempdir().unwrap();
                let fifo = Fifo::create(dir.path().join("ready"));
                (dir, fifo)
            });
            let cmd = format!("echo 1 > {}", dir.path().join("ready").display());
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                fifo.drain();
                let t0 = Instant::now();
                let mut child = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&cmd)
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn /bin/sh");
                let got = fifo.read_line(Instant::now() + STEP_LIMIT);
                let dt = t0.elapsed();
                assert_eq!(got.as_deref(), Some("1"));
                let deadline = Instant::now() + STEP_LIMIT;
                while child.try_wait().unwrap().is_none() {
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("/bin/sh did not exit");
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                samples.push(dt);
                total += dt;
            }
            total
        })
    });
    samples.report("tell_to_child/baseline_sh_without_clinit");
    drop(state.take());
    group.finish();
}

/// Level change where every entry of the old level is also in the new one.
fn bench_level_change_stops_nothing(c: &mut Criterion) {
    let mut group = c.benchmark_group("level_change_stops_nothing");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));
    let mut samples = Samples::default();
    let mut state: Option<Daemon> = None;
    let mut n = 0u64;
    group.bench_function("10_entries_in_both_levels_tell_to_clstat_done", |b| {
        b.iter_custom(|iters| {
            let d = state.get_or_insert_with(|| {
                let body: String =
                    (0..10).map(|i| format!("g:s{i}:12:respawn:exec sleep 300\n")).collect();
                let d = Daemon::start(&body);
                d.tell("g", "1");
                d.wait_processes(10, Duration::from_secs(10));
                d.wait_state("g", "1", "DONE", STEP_LIMIT);
                d
            });
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let level = if n % 2 == 1 { "2" } else { "1" };
                let want = format!("Cluster::Init::Group g {level} DONE");
                let t0 = Instant::now();
                let conn = start_call(&d.socket, &tell_line("g", level));
                let deadline = t0 + STEP_LIMIT;
                loop {
                    let text = std::fs::read_to_string(&d.clstat).unwrap_or_default();
                    if text.lines().any(|l| l.trim() == want) {
                        break;
                    }
                    assert!(Instant::now() < deadline, "clstat never said {want:?}: {text:?}");
                    std::thread::yield_now();
                }
                let dt = t0.elapsed();
                let reply = finish_call(conn);
                assert!(reply.ok, "tell: {}", reply.msg);
                samples.push(dt);
                total += dt;
            }
            total
        })
    });
    if let Some(d) = state.take() {
        // Nothing was stopped or restarted along the way.
        assert_eq!(d.processes(), 10);
        let restarts = d.log_text().matches("ended:").count();
        assert_eq!(restarts, 0, "a level change stopped something:\n{}", d.log_text());
    }
    samples.report("level_change_stops_nothing");
    group.finish();
}

/// A daemon supervising 10 cooperative children (`exec sleep 300` dies on
/// the first SIGINT).
fn ten_children() -> Daemon {
    let body: String = (0..10).map(|i| format!("g:c{i}:1:respawn:exec sleep 300\n")).collect();
    let d = Daemon::start(&body);
    d.tell("g", "1");
    d.wait_processes(10, Duration::from_secs(10));
    d
}

fn bench_shutdown(c: &mut Criterion) {
    let mut group = c.benchmark_group("shutdown_10_children");
    // Every iteration starts a fresh daemon (not timed), so keep it short.
    // Criterion sizes the run from the wall time of the warm-up, which
    // includes the untimed daemon start-up, so this is about the wall time.
    group.sample_size(10).measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(300));

    let mut samples = Samples::default();
    group.bench_function("socket", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut d = ten_children();
                let t0 = Instant::now();
                let reply = finish_call(start_call(&d.socket, b"{\"op\":\"shutdown\"}\n"));
                assert!(reply.ok, "shutdown: {}", reply.msg);
                let st = d.wait_exit(Duration::from_secs(30));
                let dt = t0.elapsed();
                assert!(st.is_some_and(|s| s.success()), "daemon exit: {st:?}");
                samples.push(dt);
                total += dt;
            }
            total
        })
    });
    samples.report("shutdown_10_children/socket");

    let mut samples = Samples::default();
    group.bench_function("cli_k_wait", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut d = ten_children();
                let t0 = Instant::now();
                let st = Command::new(clinit_bin())
                    .arg("-c")
                    .arg(&d.cltab)
                    .args(["-k", "--wait"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .expect("run clinit -k --wait");
                let exited = d.wait_exit(Duration::from_secs(30));
                let dt = t0.elapsed();
                assert!(st.success(), "clinit -k --wait: {st}");
                assert!(exited.is_some_and(|s| s.success()), "daemon exit: {exited:?}");
                samples.push(dt);
                total += dt;
            }
            total
        })
    });
    samples.report("shutdown_10_children/cli_k_wait");
    group.finish();
}

/// Entries in the respawn bench. Each is killed at most once per
/// [`RESPAWN_SPACING`], so no entry ever counts as respawning rapidly
/// (the throttle pauses an entry after more than 5 respawns, each within
/// 1 s of the previous one).
const RESPAWN_ENTRIES: usize = 100;
const RESPAWN_SPACING: Duration = Duration::from_millis(1100);

struct RespawnRig {
    daemon: Daemon,
    fifo: Fifo,
    /// tag → (pid, when it was last killed)
    pids: HashMap<String, (i32, Option<Instant>)>,
    tags: Vec<String>,
    next: usize,
}

impl RespawnRig {
    fn new() -> RespawnRig {
        let dir = tempfile::Builder::new().prefix("clinit-bench.").tempdir().unwrap();
        let mut fifo = Fifo::create(dir.path().join("pids"));
        let body: String = (0..RESPAWN_ENTRIES)
            .map(|i| {
                format!("r:r{i}:1:respawn:echo \"$CLINIT_TAG $$\" > @DIR@/pids; exec sleep 300\n")
            })
            .collect();
        let daemon = Daemon::start_in(dir, &body);
        daemon.tell("r", "1");
        let mut pids = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while pids.len() < RESPAWN_ENTRIES {
            let line = fifo.read_line(deadline).expect("every respawn entry reports its pid");
            let (tag, pid) = parse_pid_line(&line);
            pids.insert(tag, (pid, None));
        }
        daemon.wait_processes(RESPAWN_ENTRIES as u64, Duration::from_secs(10));
        let tags = (0..RESPAWN_ENTRIES).map(|i| format!("r{i}")).collect();
        RespawnRig { daemon, fifo, pids, tags, next: 0 }
    }

    /// Kill the next entry (waiting out its spacing first, untimed) and time
    /// until its new instance reports.
    fn one(&mut self) -> Duration {
        let tag = self.tags[self.next % self.tags.len()].clone();
        self.next += 1;
        let (pid, last) = self.pids[&tag];
        if let Some(last) = last {
            let wait = RESPAWN_SPACING.saturating_sub(last.elapsed());
            std::thread::sleep(wait);
        }
        let t0 = Instant::now();
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9 {pid} ({tag}): {}", std::io::Error::last_os_error());
        let line = self.fifo.read_line(t0 + STEP_LIMIT);
        let dt = t0.elapsed();
        let line = line.unwrap_or_else(|| {
            panic!("{tag} was not respawned within {STEP_LIMIT:?}:\n{}", self.daemon.log_text())
        });
        let (got_tag, new_pid) = parse_pid_line(&line);
        assert_eq!(got_tag, tag, "another entry reported");
        assert_ne!(new_pid, pid);
        self.pids.insert(tag, (new_pid, Some(t0)));
        dt
    }
}

fn parse_pid_line(line: &str) -> (String, i32) {
    let (tag, pid) = line.split_once(' ').unwrap_or_else(|| panic!("bad pid line {line:?}"));
    (tag.to_string(), pid.trim().parse().unwrap_or_else(|_| panic!("bad pid line {line:?}")))
}

fn bench_respawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("respawn_after_kill9");
    // Criterion sizes the run from the wall time of the warm-up (which
    // includes the spacing sleeps and the rig's start-up), so these are
    // roughly wall times: about 300 kills in all.
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(1500));
    let mut samples = Samples::default();
    let mut rig: Option<RespawnRig> = None;
    group.bench_function(format!("{RESPAWN_ENTRIES}_respawn_entries"), |b| {
        b.iter_custom(|iters| {
            let rig = rig.get_or_insert_with(RespawnRig::new);
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dt = rig.one();
                samples.push(dt);
                total += dt;
            }
            total
        })
    });
    if let Some(rig) = rig.take() {
        let log = rig.daemon.log_text();
        assert!(!log.contains("respawning too rapidly"), "the respawn throttle kicked in");
    }
    samples.report("respawn_after_kill9");
    group.finish();
}

criterion_group!(
    benches,
    bench_tell_to_child,
    bench_level_change_stops_nothing,
    bench_shutdown,
    bench_respawn
);
criterion_main!(benches);
