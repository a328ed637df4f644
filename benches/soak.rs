//! Soak: a `clinit -d` supervising 1,000 `respawn` entries for 10 minutes
//! under random `kill -9`s of its children, level changes and cltab
//! re-reads (issue 10, "Soak"). A measurement, not a timing: a plain
//! `main` (`harness = false`) printing a table with every figure also as a
//! ratio to its value at the start (after warm-up):
//! * RSS over time (want: flat within 10 % after warm-up, under 10 MiB);
//! * open fds of the daemon (want: flat);
//! * zombies among its children seen on two samples in a row (want: 0; a
//!   child between its exit and its reaping is not a leak);
//! * missed respawns: a killed entry whose new instance did not report
//!   within 5 s (want: 0). Kills are spaced so the respawn throttle never
//!   engages (each entry at most once per 1.1 s), so none is delayed on
//!   purpose;
//! * restart latency (kill → the new instance's line on a FIFO): p50, p99.
//!
//! Run: `cargo bench --bench soak` (`CLINIT_SOAK_SECS`, default 600, and
//! `CLINIT_SOAK_PROCS`, default 1000). Under `cargo test --benches` it runs
//! 20 entries for 5 s as a smoke test.

mod support;

use clinit_backends::protocol::Request;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{Daemon, Fifo, Samples};

/// One entry's start line: `p<i> <pid>`.
fn parse_line(line: &str) -> Option<(usize, i32)> {
    let (tag, pid) = line.split_once(' ')?;
    Some((tag.strip_prefix('p')?.parse().ok()?, pid.trim().parse().ok()?))
}

/// `(state, ppid)` of a process.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut f = rest.split_whitespace();
    Some((f.next()?.chars().next()?, f.next()?.parse().ok()?))
}

/// Zombie children of `parent`.
fn zombies(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(pid) == Some(('Z', parent)))
        .collect()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    zombies: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if !args.is_empty() && !args.iter().any(|a| "soak".contains(a.as_str())) {
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: u64| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let n = env("CLINIT_SOAK_PROCS", if bench { 1000 } else { 20 }) as usize;
    let secs = env("CLINIT_SOAK_SECS", if bench { 600 } else { 5 });

    let dir = tempfile::Builder::new().prefix("clinit-soak.").tempdir().expect("tempdir");
    let mut fifo = Fifo::create(dir.path().join("started"));
    let body = |version: u64| {
        let mut t: String = (0..n)
            .map(|i| {
                format!("big:p{i}:12:respawn:echo \"p{i} $$\" > @DIR@/started; exec sleep 100000\n")
            })
            .collect();
        // A level change toggles these; a re-read sees a new comment line.
        t.push_str("lv:one:1:respawn:exec sleep 100001\nlv:two:2:respawn:exec sleep 100002\n");
        t.push_str(&format!("# version {version}\n"));
        t
    };
    let mut d = Daemon::start_in(dir, &body(0));
    let daemon = d.pid() as i32;
    let t0 = Instant::now();
    d.tell("big", "1");
    d.tell("lv", "1");
    let mut pids: HashMap<usize, i32> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while pids.len() < n {
        let line = fifo.read_line(deadline).expect("every entry started within 120 s");
        if let Some((i, pid)) = parse_line(&line) {
            pids.insert(i, pid);
        }
    }
    let warm_up = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut samples: Vec<Sample> = Vec::new();
    let mut latency = Samples::default();
    // Entry → (kill time, killed pid), while its respawn is awaited.
    let mut waiting: HashMap<usize, (Instant, i32)> = HashMap::new();
    let mut last_kill: HashMap<usize, Instant> = HashMap::new();
    let (mut kills, mut missed, mut level_changes, mut rereads) = (0u64, 0u64, 0u64, 0u64);
    let mut persistent_zombies = 0usize;
    let mut prev_zombies: Vec<i32> = Vec::new();
    let start = Instant::now();
    let (mut next_sample, mut next_level, mut next_reread) = (start, start, start);
    let mut lv = 1;
    while start.elapsed() < Duration::from_secs(secs) {
        let now = Instant::now();
        if now >= next_sample {
            let (rss_kib, _) = d.rss_kib();
            let z = zombies(daemon);
            persistent_zombies =
                persistent_zombies.max(z.iter().filter(|p| prev_zombies.contains(p)).count());
            samples.push(Sample {
                at: start.elapsed(),
                rss_kib,
                fds: fds(daemon as u32),
                zombies: z.len(),
            });
            prev_zombies = z;
            next_sample = now + Duration::from_secs(if bench { 10 } else { 1 });
        }
        if now >= next_level {
            lv = 3 - lv;
            d.tell("lv", &lv.to_string());
            level_changes += 1;
            next_level = now + Duration::from_secs(if bench { 15 } else { 2 });
        }
        if now >= next_reread {
            std::fs::write(
                &d.cltab,
                format!(
                    ":::socket:{}\n:::clstat:{}\n{}",
                    d.socket.display(),
                    d.clstat.display(),
                    body(rereads + 1).replace("@DIR@", &d.dir.path().display().to_string())
                ),
            )
            .expect("rewrite cltab");
            let r = d.request(&Request::Reread);
            assert!(r.ok, "re-read: {}", r.msg);
            rereads += 1;
            next_reread = now + Duration::from_secs(if bench { 20 } else { 2 });
        }
        // One kill about every 20 ms, of an entry not killed in the last 1.1 s.
        let i = rng.random_range(0..n as u64) as usize;
        let rested = last_kill.get(&i).is_none_or(|t| t.elapsed() > Duration::from_millis(1100));
        if rested && !waiting.contains_key(&i) {
            if let Some(&pid) = pids.get(&i) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let t = Instant::now();
                waiting.insert(i, (t, pid));
                last_kill.insert(i, t);
                kills += 1;
            }
        }
        let until = Instant::now() + Duration::from_millis(20);
        while let Some(line) = fifo.read_line(until) {
            if let Some((i, pid)) = parse_line(&line) {
                pids.insert(i, pid);
                if let Some((t, _)) = waiting.remove(&i) {
                    // Later than 5 s counts as missed, even if it came.
                    if t.elapsed() > Duration::from_secs(5) {
                        missed += 1;
                    }
                    latency.push(t.elapsed());
                }
            }
        }
        waiting.retain(|_, (t, _)| {
            let late = t.elapsed() > Duration::from_secs(5);
            if late {
                missed += 1;
            }
            !late
        });
    }
    let elapsed = start.elapsed();
    let (rss_end, hwm_end) = d.rss_kib();
    d.stop();

    let first = samples.first().expect("at least one sample");
    let mib = |kib: u64| format!("{:.2} MiB", kib as f64 / 1024.0);
    let max_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let max_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let last = samples.last().expect("samples");
    println!();
    println!(
        "soak ({n} respawn entries, {:.0} s after a {:.1} s warm-up; {kills} kill -9, {level_changes} level changes, {rereads} re-reads)",
        elapsed.as_secs_f64(),
        warm_up.as_secs_f64()
    );
    println!("| measurement | start | end | max | end / start |");
    println!("|---|---|---|---|---|");
    println!(
        "| daemon VmRSS | {} | {} | {} | {:.3} |",
        mib(first.rss_kib),
        mib(last.rss_kib),
        mib(max_rss),
        last.rss_kib as f64 / first.rss_kib as f64
    );
    println!(
        "| daemon open fds | {} | {} | {} | {:.3} |",
        first.fds,
        last.fds,
        max_fds,
        last.fds as f64 / first.fds.max(1) as f64
    );
    println!("| zombie children seen on two samples in a row | - | - | {persistent_zombies} | - |");
    println!("| missed respawns (none, or later than 5 s) | - | {missed} | - | - |");
    println!(
        "| kills still awaiting their respawn at the end (< 5 s) | - | {} | - | - |",
        waiting.len()
    );
    println!("| VmHWM at the end | - | {} | - | - |", mib(hwm_end));
    println!("| VmRSS after the last sample | - | {} | - | - |", mib(rss_end));
    if let Some(line) = latency.report("SOAK restart latency (kill -9 → new instance reports)") {
        println!("{line}");
    }
    println!(
        "RSS samples (s: MiB): {}",
        samples
            .iter()
            .map(|s| format!("{:.0}:{:.2}", s.at.as_secs_f64(), s.rss_kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(missed, 0, "missed respawns");
    assert_eq!(persistent_zombies, 0, "zombies left unreaped");
    let zombie_max = samples.iter().map(|s| s.zombies).max().unwrap_or(0);
    println!("(transient zombies at a sample, reaped by the next: at most {zombie_max})");
}
