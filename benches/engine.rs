//! Engine step cost: the pure init machine, no I/O.
//!
//! A level change in a 1,000-entry cltab, measured as the driver would see
//! it: `handle(Tell)`, drain the actions, report an exit for every stop
//! signal the machine asked for, drain again, until the group is settled.
//! Every iteration starts from a clone of the same prepared machine (the
//! clone is setup, not measured).
//!
//! Run: `cargo bench --bench engine` (add `-- --quick` for a short run).

use clinit_engine::cltab::Cltab;
use clinit_engine::init::{Action, Init, InitConfig, Input, Reply};
use clinit_engine::process::ExitStatus;
use clinit_engine::status::GroupState;
use clinit_engine::time::Millis;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use std::time::Duration;

/// A cltab of `groups` × `per_group` `once` entries; `levels(i)` gives the
/// levels column of the i-th entry of a group.
fn cltab_text(groups: usize, per_group: usize, levels: impl Fn(usize) -> &'static str) -> String {
    let mut text = String::new();
    for g in 0..groups {
        for i in 0..per_group {
            text.push_str(&format!("g{g}:g{g}-t{i}:{}:once:exec sleep 300\n", levels(i)));
        }
    }
    text
}

/// The outcome of one level change, for the sanity check.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    spawns: usize,
    signals: usize,
}

/// Tell every group in `groups` to `level`, feed an exit for every signalled
/// process, until nothing is left to do. This is the measured routine.
fn level_change(init: &mut Init, groups: &[String], level: &str) -> Counts {
    let mut counts = Counts::default();
    let now = Millis(10_000);
    for g in groups {
        let reply = init.handle(now, Input::Tell { group: g.clone(), level: level.to_string() });
        debug_assert_eq!(reply, Reply::Started);
    }
    loop {
        let actions = init.drain_actions();
        if actions.is_empty() {
            return counts;
        }
        for a in actions {
            match a {
                Action::Spawn { .. } => counts.spawns += 1,
                Action::Signal { id, signal: _ } => {
                    counts.signals += 1;
                    init.handle(
                        now,
                        Input::Exited { id, status: ExitStatus::Signaled(2), lingering: false },
                    );
                }
                other => {
                    black_box(other);
                }
            }
        }
    }
}

/// A machine with the cltab loaded and every group settled at level 1.
fn prepared(text: &str) -> (Init, Vec<String>) {
    let table = Cltab::parse(text, "bench.cltab").expect("bench cltab parses");
    let groups: Vec<String> = table.groups().into_iter().map(String::from).collect();
    assert_eq!(table.entries.len(), 1000);
    let mut init = Init::new(InitConfig::default(), table, Millis(0));
    let start = level_change(&mut init, &groups, "1");
    assert!(start.spawns > 0);
    init.drain_actions();
    (init, groups)
}

struct Scenario {
    name: &'static str,
    text: String,
    /// Expected spawns and signals of the measured 1 → 2 change.
    expect: Counts,
}

fn scenarios() -> Vec<Scenario> {
    let alternate = |i: usize| if i.is_multiple_of(2) { "1" } else { "2" };
    vec![
        // Every entry is in both levels: the change stops and starts nothing.
        Scenario {
            name: "1x1000/keep_all (levels 12)",
            text: cltab_text(1, 1000, |_| "12"),
            expect: Counts { spawns: 0, signals: 0 },
        },
        // Half the entries are in level 1 only, half in level 2 only: 500
        // stops, 500 exits fed back, then 500 starts.
        Scenario {
            name: "1x1000/swap_half (500 stop, 500 start)",
            text: cltab_text(1, 1000, alternate),
            expect: Counts { spawns: 500, signals: 500 },
        },
        // The same change spread over 10 groups of 100, all told 1 → 2.
        Scenario {
            name: "10x100/swap_half (10 tells, 500 stop, 500 start)",
            text: cltab_text(10, 100, alternate),
            expect: Counts { spawns: 500, signals: 500 },
        },
        // Everything in level 1 only: 1000 stops, nothing to start.
        Scenario {
            name: "1x1000/stop_all (1000 stop)",
            text: cltab_text(1, 1000, |_| "1"),
            expect: Counts { spawns: 0, signals: 1000 },
        },
    ]
}

fn bench_level_change(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_level_change_1000");
    group.sample_size(30).measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for s in scenarios() {
        let (init, groups) = prepared(&s.text);
        // Sanity check once, outside the measurement.
        let mut check = init.clone();
        let counts = level_change(&mut check, &groups, "2");
        assert_eq!(counts, s.expect, "{}", s.name);
        let status = check.status();
        for g in &groups {
            let st = status.get(g).expect("group in status");
            assert_eq!((st.level.as_str(), &st.state), ("2", &GroupState::Done), "{}", s.name);
        }
        group.bench_function(s.name, |b| {
            b.iter_batched(
                || init.clone(),
                |mut init| {
                    black_box(level_change(&mut init, &groups, "2"));
                    init
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The daemon re-reads (and parses) its cltab on every tell.
fn bench_parse(c: &mut Criterion) {
    let text = cltab_text(10, 100, |_| "12");
    let mut group = c.benchmark_group("engine_cltab_parse");
    group.sample_size(30).measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("parse 1000 entries", |b| {
        b.iter(|| Cltab::parse(black_box(&text), "bench.cltab").unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_level_change, bench_parse);
criterion_main!(benches);
