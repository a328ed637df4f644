//! Cluster-wide replay (`clinit_sim::incident`) of simulator traces: a
//! complete trace is identical, a cut one is truncated unless its nodes
//! are named as killed, and then verified up to its last checkpoint (none
//! in a simulator trace: nothing verified), a changed input is found. Every record but marks
//! is counted, as writers count them for the end line.

use clinit_engine::time::Millis;
use clinit_sim::faults::FaultChoice;
use clinit_sim::incident::{replay, IncidentError, Named, Status};
use clinit_sim::trace::{read_recording, TraceMode};
use clinit_sim::{run, RunOptions, SimConfig};
use std::collections::BTreeSet;

fn lines(seed: u64, faults: &str) -> Vec<String> {
    let cfg = SimConfig {
        nodes: 3,
        groups: 3,
        duration: Millis::from_secs(20 * 60),
        faults: FaultChoice::parse(faults).expect("parses"),
        ..SimConfig::default()
    };
    let opts = RunOptions { trace: TraceMode::Keep, trace_out: None, event_log: false };
    run(&cfg, seed, opts).expect("valid").trace_lines
}

fn named(lines: &[String]) -> Vec<Named> {
    let text = lines.join("\n") + "\n";
    let recording = read_recording(text.as_bytes()).expect("reads");
    vec![Named { name: "t.jsonl".into(), recording }]
}

#[test]
fn a_complete_trace_is_identical() {
    for seed in [1, 2, 3] {
        let l = lines(seed, "spawn-fail:rate=30,crash:rate=6");
        let inc = replay(&named(&l), &BTreeSet::new()).expect("replays");
        let c = &inc.recordings[0];
        assert_eq!(c.status, Status::Identical, "seed {seed}: {c:?}");
        assert_eq!(inc.exit_code(), 0);
        assert_eq!(c.nodes, vec![1, 2, 3]);
        assert_eq!(c.records as usize, l.len() - 2, "every record but header and end");
        assert!(!c.anchored && !inc.anchored);
        assert!(inc.timeline.windows(2).all(|w| w[0].at.wall_ms <= w[1].at.wall_ms));
        assert!(inc.timeline.iter().any(|e| e.text.contains("start DONE")), "seed {seed}");
    }
}

#[test]
fn a_cut_trace_is_truncated_unless_its_nodes_were_killed() {
    let l = lines(4, "crash:rate=6");
    let cut = &l[..l.len() - 1];
    let inc = replay(&named(cut), &BTreeSet::new()).expect("replays");
    assert_eq!(inc.recordings[0].status, Status::Truncated);
    assert_eq!(inc.exit_code(), 3);
    assert!(inc.recordings[0].cut.is_some());
    let killed: BTreeSet<u32> = [1, 2, 3].into_iter().collect();
    let inc = replay(&named(cut), &killed).expect("replays");
    let c = &inc.recordings[0];
    // A simulator trace has no marks: nothing before the end is checked,
    // and the verdict says so (it used to be "identical up to record 0",
    // exit 0).
    assert_eq!(c.status, Status::NothingVerified);
    assert_eq!((c.checkpoints, c.verified_records), (0, 0));
    assert!(c.records > 100, "{} records replayed", c.records);
    assert_eq!(inc.exit_code(), 3);
    let text = clinit_sim::incident::render(&inc, false);
    assert!(text.contains("NOTHING VERIFIED") && !text.contains("verified up to"), "{text}");

    // With a checkpoint (a mark, as `mosha --record` writes after each
    // pass), the cut recording is verified up to it. The mark's digest is
    // the replay's after its first `k` records.
    let k = 200;
    let head = replay(&named(&l[..=k]), &killed).expect("replays");
    let (records, digest) =
        (head.recordings[0].records, head.recordings[0].replayed_sha256.clone());
    assert_eq!(records as usize, k);
    let rec: clinit_engine::trace::Record = serde_json::from_str(&l[k]).expect("a record");
    let at = rec.at().map_or(0, |a| a.0);
    let mark = serde_json::json!({ "mark": {
        "node": 1, "at": at, "wall_ms": 1_700_000_000_000u64 + at,
        "records": records, "decisions_sha256": digest,
    }});
    let mut marked: Vec<String> = l[..=k].to_vec();
    marked.push(mark.to_string());
    marked.extend_from_slice(&l[k + 1..l.len() - 1]);
    let inc = replay(&named(&marked), &killed).expect("replays");
    let c = &inc.recordings[0];
    assert_eq!(c.status, Status::IdenticalUpToCut, "{c:?}");
    assert_eq!((c.checkpoints, c.verified_records), (1, k as u64));
    assert_eq!(inc.exit_code(), 0);
    // The same recording is still truncated without --killed.
    let inc = replay(&named(&marked), &BTreeSet::new()).expect("replays");
    assert_eq!((inc.recordings[0].status, inc.exit_code()), (Status::Truncated, 3));
}

#[test]
fn a_changed_input_is_different() {
    let mut l = lines(5, "none");
    let i = l.iter().rposition(|x| x.starts_with("{\"cycle\"")).expect("a cycle");
    l[i] = l[i].replacen("\"members\":[", "\"members\":[99,", 1);
    let inc = replay(&named(&l), &BTreeSet::new()).expect("replays");
    let c = &inc.recordings[0];
    assert_eq!(c.status, Status::Different, "{c:?}");
    assert_eq!(inc.exit_code(), 1);
    let m = c.first_mismatch.as_ref().expect("a mismatch");
    assert_ne!(m.recorded_sha256, m.replayed_sha256);
}

/// The incident timeline drawn as SVG (plotters): a lane per node, the
/// groups' bars, the time axis, the legend of event kinds.
#[test]
fn the_timeline_draws_as_svg() {
    let l = lines(1, "crash:rate=6");
    let inc = replay(&named(&l), &BTreeSet::new()).expect("replays");
    let svg = clinit_sim::timeline_svg::render(&inc).expect("draws");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    for text in ["node 1", "node 2", "node 3", "runs on node", "+0.0 s", "start", "incident"] {
        assert!(svg.contains(text), "no {text:?} in\n{svg}");
    }
    assert!(svg.matches("<rect").count() > 3, "no bars:\n{svg}");
}

/// A `mosha` killed right after its header: the recording holds no record.
/// Its node comes from the header (`"node"` in `mosha`'s configuration),
/// the message names it, and `--killed` with that node applies.
#[test]
fn a_header_only_recording_names_its_node_and_killed_applies() {
    let l = lines(4, "none");
    let mut header: serde_json::Value = serde_json::from_str(&l[0]).expect("a JSON header");
    header["source"] = "mosha".into();
    header["config"] = serde_json::json!({ "node": 2, "membership": "Views" });
    let one = vec![header.to_string()];
    let inc = replay(&named(&one), &BTreeSet::new()).expect("replays");
    let c = &inc.recordings[0];
    assert_eq!((c.status, c.nodes.clone(), c.records), (Status::Truncated, vec![2], 0));
    assert_eq!(inc.exit_code(), 3);
    let text = clinit_sim::incident::render(&inc, false);
    assert!(text.contains("node 2 (t.jsonl"), "{text}");
    assert!(text.contains("if node 2 was killed, say so with --killed 2"), "{text}");

    let inc = replay(&named(&one), &[2].into_iter().collect()).expect("replays");
    assert_eq!(inc.recordings[0].status, Status::IdenticalUpToCut);
    assert_eq!(inc.exit_code(), 0);

    // A simulator's header names the cluster size: nodes 1 to N.
    let inc = replay(&named(&l[..1]), &BTreeSet::new()).expect("replays");
    assert_eq!(inc.recordings[0].nodes, vec![1, 2, 3]);
    let text = clinit_sim::incident::render(&inc, false);
    // Not sent to --killed, which verifies nothing in a simulator trace
    // (its only checkpoint is its end line; issue 8).
    assert!(text.contains("this simulator trace was cut") && !text.contains("say so"), "{text}");
}

/// `--killed 7` when no recording holds node 7 is refused (the command
/// line exits 2, as for other unusable input), naming the node and the
/// nodes the recordings hold; before, it was accepted and did nothing.
#[test]
fn killed_naming_a_node_in_no_recording_is_refused() {
    let l = lines(4, "crash:rate=6");
    let cut = &l[..l.len() - 1];
    let err = replay(&named(cut), &[1, 7].into_iter().collect()).expect_err("node 7 is unknown");
    assert!(matches!(err, IncidentError::UnknownKilled { node: 7, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("--killed 7: node 7 is in none of the recordings"), "{text}");
    assert!(text.contains("[1, 2, 3]"), "{text}");
}

/// The streaming replay of files ([`clinit_sim::incident::replay_files`],
/// what `clinit-sim replay` runs) reaches the same verdicts, digests and
/// timeline as the replay of the recordings read whole, for a complete
/// recording and for one cut mid-line; so does a what-if.
#[test]
fn streaming_a_file_replays_as_reading_it_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = lines(7, "spawn-fail:rate=30,crash:rate=6").join("\n") + "\n";
    let whole = dir.path().join("whole.jsonl");
    std::fs::write(&whole, &text).expect("write");
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, &text[..text.len() * 2 / 3]).expect("write");
    let all: BTreeSet<u32> = (1..=3).collect();
    // The what-if over the file, streamed, equals the one over the trace
    // read whole.
    let balance = |p: &clinit_engine::monitor::PolicyConfig| {
        clinit_sim::config::set_policy_param(p, "balance", "-1")
    };
    let t = clinit_sim::trace::read_trace(text.as_bytes()).expect("reads");
    let whole_cmp = clinit_sim::replay::what_if(&t, &balance).expect("what-if");
    let file_cmp = clinit_sim::replay::what_if_file(&whole, &balance).expect("what-if file");
    let json = |c: &clinit_sim::replay::Comparison| serde_json::to_string(c).expect("json");
    assert_eq!(json(&file_cmp), json(&whole_cmp));
    assert!(file_cmp.differing > 0, "never planning changes decisions");
    for (path, killed) in [(whole, BTreeSet::new()), (cut, all)] {
        let text = std::fs::read_to_string(&path).expect("read");
        let named = vec![Named {
            name: path.display().to_string(),
            recording: read_recording(text.as_bytes()).expect("reads"),
        }];
        let in_memory = replay(&named, &killed).expect("replays");
        let streamed = clinit_sim::incident::replay_files(std::slice::from_ref(&path), &killed)
            .expect("streams");
        let json = |i: &clinit_sim::incident::Incident| serde_json::to_string(i).expect("json");
        assert_eq!(json(&streamed), json(&in_memory), "{}", path.display());
        assert!(streamed.recordings[0].records > 100, "records were replayed");
        // The cut one has no checkpoint: nothing verified (exit 3).
        let want = if killed.is_empty() { 0 } else { 3 };
        assert_eq!(streamed.exit_code(), want, "{}", path.display());
    }
}

/// A `ranked` incident's timeline tells the protocol's side of a failover:
/// leases, the revocations and the fence of the dead owner, the void and
/// the claim that moved the group (the group lines alone showed only that
/// it moved). Seed 3's crash plan kills an owner.
#[test]
fn a_ranked_timeline_shows_leases_revocations_fences_and_claims() {
    let mut cfg = SimConfig {
        nodes: 3,
        groups: 3,
        duration: Millis::from_secs(20 * 60),
        policy: clinit_engine::monitor::PolicyConfig::Ranked(
            clinit_engine::monitor::ranked::RankedParams {
                fence_command: true,
                ..Default::default()
            },
        ),
        faults: FaultChoice::parse("crash:rate=6").expect("parses"),
        ..SimConfig::default()
    };
    cfg.world.fence_kills = true;
    let opts = RunOptions { trace: TraceMode::Keep, trace_out: None, event_log: false };
    let l = run(&cfg, 3, opts).expect("valid").trace_lines;
    let inc = replay(&named(&l), &BTreeSet::new()).expect("replays");
    assert_eq!(inc.exit_code(), 0, "identical");
    let has = |s: &str| inc.timeline.iter().any(|e| e.text.contains(s));
    let texts: Vec<&str> = inc.timeline.iter().map(|e| e.text.as_str()).collect();
    for want in ["lease acquired (epoch 1)", "revokes node", "holds the claim on"] {
        assert!(has(want), "no {want:?} in the timeline:\n{texts:#?}");
    }
    assert!(has("fences node") && has("is void"), "no takeover step:\n{texts:#?}");
}
