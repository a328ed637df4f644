//! A quick steady-state speed probe (the workload of `cargo bench --bench
//! sim -- steady`, without criterion): 100 nodes x 50 groups, one simulated
//! hour of warm-up, then `HOURS` (default 1) timed hours, printing
//! node-hours per wall-second. For profilers:
//! `cargo build --release -p clinit-sim --example steady`, then e.g.
//! `perf record target/release/examples/steady`.
//!
//! Arguments: `[nodes] [groups] [hours] [traced: 0|1] [policy]`.

use clinit_engine::time::Millis;
use clinit_sim::trace::TraceMode;
use clinit_sim::world::World;
use clinit_sim::{RunOptions, SimConfig};
use std::time::Instant;

const HOUR: u64 = 3_600_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (nodes, groups, hours, traced) = (arg(0, 100), arg(1, 50), arg(2, 1), arg(3, 0));
    let mut cfg = SimConfig {
        nodes: nodes as u32,
        groups: groups as u32,
        duration: Millis((hours + 2) * HOUR),
        ..SimConfig::default()
    };
    if let Some(policy) = args.get(4) {
        cfg.policy = clinit_sim::config::parse_policy(policy).expect("a policy");
    }
    let trace = if traced == 1 { TraceMode::Hash } else { TraceMode::Off };
    let opts = RunOptions { trace, trace_out: None, event_log: false };
    let t = Instant::now();
    let mut world = World::new(&cfg, 1, opts).expect("valid scenario");
    world.run_until(Millis(HOUR));
    let warm = t.elapsed();
    let t = Instant::now();
    let cpu = on_cpu();
    timed_part(&mut world, Millis((hours + 1) * HOUR));
    let timed = t.elapsed().as_secs_f64();
    let cpu = on_cpu().zip(cpu).map(|(b, a)| b - a);
    let nh = (nodes * hours) as f64;
    let per_cpu = cpu.map_or(String::new(), |c| {
        format!(", on CPU {c:.2} s = {:.0} node-hours per CPU-second", nh / c)
    });
    println!(
        "{nodes}x{groups}: warm-up {:.2} s, {hours} h timed in {timed:.2} s = {:.0} node-hours/s{per_cpu} ({} events)",
        warm.as_secs_f64(),
        nh / timed,
        world.events()
    );
}

/// Seconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`,
/// first field, ns): on a loaded machine wall time also counts the time
/// spent waiting for a core, CPU time does not. `None` elsewhere.
fn on_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// The timed hours, in a function of their own so a profiler can collect
/// only them (`valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect='*timed_part*'`).
#[inline(never)]
fn timed_part(world: &mut World, until: Millis) {
    world.run_until(until);
}
