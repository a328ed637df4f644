//! Daemon memory while supervising 1,000 processes: a measurement, not a
//! timing, so this is a plain `main` (`harness = false`) printing a table.
//!
//! A `clinit -d` gets a cltab of 1,000 `respawn` entries (`exec sleep 300`)
//! in one group; the bench tells the group to level 1, waits until the
//! daemon's status says `processes: 1000`, then reads `VmRSS` / `VmHWM` from
//! `/proc/<pid>/status`. Along the way it times the start of the 1,000
//! children, the status call with 1,000 children, and the shutdown.
//!
//! Run: `cargo bench --bench rss` (set `CLINIT_BENCH_PROCS` for another count).

mod support;

use clinit_backends::protocol::Request;
use std::time::{Duration, Instant};
use support::{Daemon, Samples};

fn main() {
    // `cargo bench` passes `--bench` (and any filter); a filter that does not
    // name this bench skips it, like criterion would.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if !args.is_empty() && !args.iter().any(|a| "rss_1000_processes".contains(a.as_str())) {
        return;
    }
    // Without `--bench` we run under `cargo test --benches`: only check that
    // the measurement works, on a few processes.
    let bench = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("CLINIT_BENCH_PROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1000 } else { 20 });

    let body: String = (0..n).map(|i| format!("big:p{i}:1:respawn:exec sleep 300\n")).collect();
    let mut d = Daemon::start(&body);
    let (idle_rss, _) = d.rss_kib();

    let t0 = Instant::now();
    d.tell("big", "1");
    d.wait_for(
        &format!("{n} live processes"),
        Duration::from_secs(120),
        Duration::from_millis(20),
        |d| d.processes() == n,
    );
    let start_all = t0.elapsed();
    d.wait_state("big", "1", "DONE", Duration::from_secs(10));
    // Let allocations settle (log lines flushed, no pending work).
    std::thread::sleep(Duration::from_millis(500));
    let (rss, hwm) = d.rss_kib();
    let smaps = d.smaps_kib();

    let mut status = Samples::default();
    for _ in 0..50 {
        let t = Instant::now();
        let reply = d.request(&Request::Status);
        status.push(t.elapsed());
        assert_eq!(reply.status.unwrap()["processes"].as_u64(), Some(n));
    }
    let (rss_after_status, hwm_after_status) = d.rss_kib();

    let t0 = Instant::now();
    d.send_shutdown();
    let exited = d.wait_exit(Duration::from_secs(60));
    let shutdown = t0.elapsed();
    assert!(exited.is_some_and(|s| s.success()), "daemon exit: {exited:?}");

    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!();
    println!("rss_1000_processes (clinit -d, {n} respawn entries `exec sleep 300`)");
    println!("| measurement | value |");
    println!("|---|---|");
    println!("| VmRSS, no children (after start-up) | {} |", mib(idle_rss));
    println!("| VmRSS, {n} children running | {} |", mib(rss));
    println!("| VmHWM (peak RSS) up to then | {} |", mib(hwm));
    println!(
        "| VmRSS / VmHWM after 50 status calls | {} / {} |",
        mib(rss_after_status),
        mib(hwm_after_status)
    );
    println!("| tell → status shows {n} processes | {} |", ms(start_all));
    println!(
        "| status call, {n} children: p50 / p99 | {} / {} |",
        ms(status.pct(50.0)),
        ms(status.pct(99.0))
    );
    println!("| shutdown request → daemon reaped ({n} children) | {} |", ms(shutdown));
    let field = |k: &str| smaps.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
    println!(
        "SMAPS {n} processes: Rss={} KiB Anonymous={} KiB file-backed={} KiB \
         Private_Dirty={} KiB Shared_Clean={} KiB",
        field("Rss"),
        field("Anonymous"),
        field("Rss").saturating_sub(field("Anonymous")),
        field("Private_Dirty"),
        field("Shared_Clean")
    );
    println!(
        "BENCH {n} processes: start_ms={:.1} stop_ms={:.1} rss_kib={rss} args={:?}",
        start_all.as_secs_f64() * 1e3,
        shutdown.as_secs_f64() * 1e3,
        support::extra_args().join(" ")
    );
    println!("RSS {n} processes: VmRSS={} KiB VmHWM={} KiB (target ≤ 10 MB)", rss, hwm);
}
