//! Canonical traces and reports, pinned: a change in the engine's
//! decisions, in the world model or in the formats shows up here as a
//! reviewable diff (`cargo insta review`).

use clinit_engine::time::Millis;
use clinit_sim::config::Workload;
use clinit_sim::faults::FaultChoice;
use clinit_sim::invariants::DOUBLE_OWNER;
use clinit_sim::report::{self, RunReport};
use clinit_sim::trace::TraceMode;
use clinit_sim::{run, RunOptions, SimConfig};

fn keep() -> RunOptions {
    RunOptions { trace: TraceMode::Keep, trace_out: None, event_log: true }
}

/// Two nodes place one group: the complete trace (inputs only).
#[test]
fn trace_of_a_two_node_placement() {
    let cfg = SimConfig {
        nodes: 2,
        duration: Millis::from_secs(25),
        workload: Workload::Custom {
            cltab: "web:webt:test:test:exit 0\nweb:webr:start:respawn:run\n".into(),
            hactl: "web start\n".into(),
        },
        ..SimConfig::default()
    };
    let r = run(&cfg, 1, keep()).expect("valid");
    let version = format!("\"version\":\"{}\"", env!("CARGO_PKG_VERSION"));
    let text = r.trace_lines.join("\n").replace(&version, "\"version\":\"[version]\"");
    insta::assert_snapshot!(text);
}

/// A crash-and-restart hour on three nodes: the `run --json` summary.
#[test]
fn report_of_a_crash_hour() {
    let cfg = SimConfig {
        nodes: 3,
        groups: 3,
        duration: Millis::from_secs(3600),
        faults: FaultChoice::parse("crash:rate=6").expect("parses"),
        ..SimConfig::default()
    };
    let r = run(&cfg, 7, RunOptions::default()).expect("valid");
    let rep = RunReport::new(&r).deterministic();
    insta::assert_snapshot!(serde_json::to_string_pretty(&rep).expect("serialises"));
}

/// A known classic weakness (W1 under a slow filesystem): the human report
/// with its violation excerpts.
#[test]
fn report_of_a_double_start() {
    let cfg = SimConfig {
        nodes: 3,
        groups: 3,
        duration: Millis::from_secs(40 * 60),
        faults: FaultChoice::parse("slow-fs:size=20s:rate=6:len=10m,crash:rate=6").expect("parses"),
        ..SimConfig::default()
    };
    let seed = (1..=40u64)
        .find(|&s| {
            run(&cfg, s, RunOptions::fast())
                .expect("valid")
                .tracker
                .counts()
                .contains_key(DOUBLE_OWNER)
        })
        .expect("a failing seed");
    let r = run(&cfg, seed, RunOptions::default()).expect("valid");
    let full = report::render(&r);
    let text: Vec<&str> = full.lines().filter(|l| !l.starts_with("speed:")).collect();
    insta::assert_snapshot!(text.join("\n"));
}
