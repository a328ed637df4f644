//! A loaded fault schedule (`--schedule FILE`) is checked against the
//! scenario before the run: bad episodes are refused with an error naming
//! the episode, never a panic inside the world (issue 8).

use clinit_engine::time::Millis;
use clinit_sim::config::ConfigError;
use clinit_sim::faults::{FaultKind, Schedule};
use clinit_sim::trace::TraceMode;
use clinit_sim::{run, RunOptions, SimConfig};

fn try_run(episode: &str) -> Result<(), String> {
    let schedule: Schedule =
        serde_json::from_str(&format!("{{\"kinds\":[],\"faults\":[{episode}]}}")).unwrap();
    let cfg = SimConfig {
        nodes: 3,
        duration: Millis(600_000),
        schedule: Some(schedule),
        ..SimConfig::default()
    };
    let opts = RunOptions { trace: TraceMode::Off, trace_out: None, event_log: false };
    match run(&cfg, 1, opts) {
        Ok(_) => Ok(()),
        Err(ConfigError::Schedule(why)) => Err(why),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn bad_episodes_are_refused_before_the_run() {
    let cases = [
        (r#"{"at":200000,"fault":"read-failures","p":7.5,"len":5000}"#, "episode 0 (at 200000ms"),
        (r#"{"at":200000,"fault":"stale-reads","p":2.0,"len":5000}"#, "outside [0, 1]"),
        (r#"{"at":200000,"fault":"read-failures","p":-0.5,"len":5000}"#, "outside [0, 1]"),
        (r#"{"at":200000,"fault":"spawn-fail","node":1,"p":3.0,"len":5000}"#, "outside [0, 1]"),
        (r#"{"at":200000,"fault":"fence-fail","p":3.0,"len":5000}"#, "outside [0, 1]"),
        (r#"{"at":200000,"fault":"node-pause","node":9,"len":5000}"#, "node 9"),
        (r#"{"at":200000,"fault":"node-pause","node":0,"len":5000}"#, "node 0"),
        (r#"{"at":200000,"fault":"crash","node":4294967295,"down":5000}"#, "node 4294967295"),
        (r#"{"at":200000,"fault":"partition","sides":[],"len":5000}"#, "sides has 0"),
        (r#"{"at":200000,"fault":"partition","sides":[0,1],"len":5000}"#, "sides has 2"),
        (r#"{"at":200000,"fault":"partition","sides":[0,1,1,1],"len":5000}"#, "both sides"),
        (r#"{"at":200000,"fault":"crash-owner","group":"nope","down":5000}"#, "no group"),
        (r#"{"at":700000,"fault":"crash","node":1,"down":5000}"#, "after the run's end"),
    ];
    for (episode, want) in cases {
        let why = try_run(episode).expect_err(episode);
        assert!(why.contains(want), "{episode}: {why:?} lacks {want:?}");
    }
}

#[test]
fn good_episodes_still_run() {
    try_run(r#"{"at":200000,"fault":"partition","sides":[0,1,0,0],"len":5000}"#).unwrap();
    try_run(r#"{"at":200000,"fault":"read-failures","p":0.5,"len":5000}"#).unwrap();
}

#[test]
fn refresh_kinds_names_the_episodes_kinds() {
    let mut s: Schedule = serde_json::from_str(
        r#"{"kinds":[],"faults":[{"at":1,"fault":"read-failures","p":0.5,"len":5}]}"#,
    )
    .unwrap();
    s.refresh_kinds();
    assert_eq!(s.kinds, vec![FaultKind::ReadFailures]);
}
