//! Cluster-wide replay: the recordings of every node of one incident
//! (`mosha --record` on each node), replayed together and lined up by the
//! wall-clock anchors the recordings carry.
//!
//! Each recording is replayed through fresh production machines, exactly
//! as [`crate::replay::replay`] does for one file; a node's decisions
//! depend only on its own recorded inputs (what it read of the others is
//! in them), so "together" means in one merged order of time, which gives
//! one incident timeline. Each recording's decision digest is compared at
//! every checkpoint it carries ([`Record::Mark`], written by `mosha` after
//! each pass of its loop) and at its [`Record::End`].
//!
//! Time: a mark says "at `at` on this node's monotonic clock the wall clock
//! read `wall_ms`". A record's wall time is taken from the nearest mark at
//! or before it (so a wall clock stepped mid-run moves only what follows).
//! A recording without marks (a simulator trace, or one written before
//! marks existed) has no anchor: it is placed with its clock's zero at the
//! start of the earliest anchored recording, and the report says so.
//!
//! Verdict per recording ([`Status`]): complete and identical; cut (no end
//! line: the writer was killed, or the file was truncated) and identical up
//! to its last checkpoint, which counts as identical only for a node the
//! caller names as killed; or different.

use crate::config::ConfigError;
use crate::host::Output;
use crate::replay::Replayer;
use crate::trace::{Cut, RecordStream, Recording, TraceError};
use clinit_engine::cluster::{Event, External};
use clinit_engine::driver::Executed;
use clinit_engine::hastat::counts_as_running;
use clinit_engine::init::Action;
use clinit_engine::monitor::Notice;
use clinit_engine::process::ProcId;
use clinit_engine::trace::Record;
use serde::Serialize;
use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use thiserror::Error;

/// One recording to replay, with the name it is reported under (its path).
pub struct Named {
    pub name: String,
    pub recording: Recording,
}

#[derive(Debug, Error)]
pub enum IncidentError {
    #[error("no recordings given")]
    Empty,
    #[error(
        "node {node} is recorded in both {first} and {second}: give one recording per node \
         of one incident"
    )]
    DuplicateNode { node: u32, first: String, second: String },
    /// `--killed N` for a node that no recording holds: a typo would
    /// otherwise be accepted and change nothing.
    #[error(
        "--killed {node}: node {node} is in none of the recordings (they hold nodes {known:?})"
    )]
    UnknownKilled { node: u32, known: Vec<u32> },
    /// Two `mosha` recordings name different shared directories
    /// (`mfsbase`): nodes of different clusters.
    #[error(
        "{first} and {second} are recordings of different clusters (shared directory {a:?} and \
         {b:?}): give the recordings of the nodes of one incident"
    )]
    DifferentClusters { first: String, second: String, a: String, b: String },
    /// Two recordings' wall-clock spans (from their checkpoints) lie apart:
    /// the nodes of one incident run at the same time.
    #[error(
        "{first} and {second} are recordings of different incidents: their wall clocks do not \
         overlap ({first} {first_span}, {second} {second_span}, more than {gap_s} s apart); give \
         the recordings of the nodes of one incident"
    )]
    DifferentIncidents {
        first: String,
        second: String,
        first_span: String,
        second_span: String,
        gap_s: u64,
    },
    /// A simulator trace holds a whole simulated cluster; it cannot be
    /// one node of a real incident.
    #[error(
        "{sim} is a simulator trace and {real} a `mosha` recording: replay a simulator trace on \
         its own"
    )]
    MixedSources { sim: String, real: String },
    /// A `mosha` recording whose header names another node than its
    /// records do.
    #[error(
        "{file}: line 1: the header names node {header}, but the records are of node(s) \
         {records:?}: not one node's recording (edited, or put together from several)"
    )]
    HeaderNode { file: String, header: u64, records: Vec<u32> },
    /// A recording file that cannot be opened or read (the line named).
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: TraceError,
    },
    #[error("{file}: {source}")]
    Config {
        file: String,
        #[source]
        source: ConfigError,
    },
}

/// What a recording amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Complete (an end line), and the replay's digest equals the
    /// recording's at every checkpoint and at the end.
    Identical,
    /// Cut (no end line) for a node named as killed, and identical at every
    /// checkpoint up to the cut.
    IdenticalUpToCut,
    /// Some checkpoint or the end digest differs.
    Different,
    /// Cut (no end line), and its node was not named as killed: a truncated
    /// recording, which cannot prove the run identical.
    Truncated,
    /// Cut for a node named as killed, but before its first checkpoint:
    /// records were replayed and none was compared with anything, so
    /// nothing is verified. Every cut simulator trace is one (it carries no
    /// marks, only its end line); "identical up to record 0" said the
    /// opposite of what happened (issue 8's new-user test).
    NothingVerified,
}

/// A point in time of the incident.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stamp {
    /// On the recording node's monotonic clock, ms since it started.
    pub at_ms: u64,
    /// On the incident's common clock: ms since the Unix epoch when the
    /// incident is anchored, else ms on the recordings' own clock.
    pub wall_ms: i64,
}

/// A checkpoint whose digest differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// The checkpoint covers this many records; the first differing
    /// decision is after `last_match` and at or before `record`.
    pub record: u64,
    pub last_match: u64,
    pub at: Option<Stamp>,
    pub recorded_sha256: String,
    pub replayed_sha256: String,
}

/// The verdict on one recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    pub file: String,
    pub nodes: Vec<u32>,
    /// Writer and its version, from the header.
    pub source: String,
    pub version: String,
    pub status: Status,
    /// Decision records replayed (marks not counted).
    pub records: u64,
    /// Records covered by the last checkpoint that matched.
    pub verified_records: u64,
    /// When that checkpoint was written.
    pub verified_at: Option<Stamp>,
    /// Checkpoints compared (marks and the end line).
    pub checkpoints: u64,
    pub first_mismatch: Option<Mismatch>,
    /// Set for a recording without an end line.
    pub cut: Option<Cut>,
    /// The recording carries wall-clock anchors.
    pub anchored: bool,
    pub replayed_sha256: String,
    pub recorded_sha256: Option<String>,
}

impl Checked {
    /// Records replayed after the last matching checkpoint (of a cut
    /// recording: those the cut left without a digest to compare with).
    pub fn unverified(&self) -> u64 {
        self.records - self.verified_records
    }
}

/// What a timeline entry is about (for colours and filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Start,
    Told,
    /// The node's own state of a group changed (as its init machine wrote
    /// its status file).
    Group,
    Membership,
    Stale,
    Fence,
    Quorum,
    Conflict,
    Stop,
    /// The recording ends: the node stopped (end line) or was cut.
    End,
    Other,
}

/// One line of the merged incident timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub at: Stamp,
    pub node: u32,
    pub kind: Kind,
    /// For [`Kind::Group`]: the group and whether it now runs on the node
    /// ([`counts_as_running`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<(String, bool)>,
    pub text: String,
}

/// The outcome of a cluster-wide replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub recordings: Vec<Checked>,
    /// At least one recording carries wall-clock anchors: `wall_ms` values
    /// are ms since the Unix epoch (UTC).
    pub anchored: bool,
    /// The earliest record of the incident.
    pub start_wall_ms: i64,
    pub end_wall_ms: i64,
    pub timeline: Vec<Entry>,
}

impl Incident {
    /// The process exit code `clinit-sim replay` gives: 0 when every
    /// recording is identical (a killed node's up to its cut), 1 when a
    /// decision differs anywhere, 3 when a recording is truncated or a
    /// killed node's recording verifies nothing (and nothing differs). 2
    /// is left for unreadable input.
    pub fn exit_code(&self) -> u8 {
        let has = |s| self.recordings.iter().any(|c| c.status == s);
        if has(Status::Different) {
            1
        } else if has(Status::Truncated) || has(Status::NothingVerified) {
            3
        } else {
            0
        }
    }
}

/// Per-recording replay state.
struct Run<'a> {
    replayer: Replayer<'a>,
    /// Wall-clock anchors from marks: (at, wall_ms).
    anchors: Vec<(u64, i64)>,
    offset: i64,
    /// The recording's next record, read ahead.
    peeked: Option<Record>,
    /// The time of the last record fed (for records without one).
    last_wall: i64,
    last_at: u64,
    records: u64,
    verified: u64,
    verified_at: Option<Stamp>,
    checkpoints: u64,
    mismatch: Option<Mismatch>,
    view: BTreeMap<u32, NodeView>,
}

/// What the timeline remembers of a node, to report changes only.
#[derive(Default)]
struct NodeView {
    members: Option<Vec<u32>>,
    /// The node's groups as it last wrote its status (`level STATE`).
    own: BTreeMap<String, String>,
    /// Lines that repeat every cycle while a condition lasts: shown once.
    repeating: BTreeSet<String>,
    repeating_now: BTreeSet<String>,
}

impl Run<'_> {
    /// The incident time of a record at `at` on this node's clock.
    fn wall(&self, at: u64) -> i64 {
        let i = self.anchors.partition_point(|&(a, _)| a <= at);
        let (a, w) = match i {
            0 => self.anchors.first().copied().unwrap_or((0, self.offset)),
            i => self.anchors[i - 1],
        };
        w + (at as i64 - a as i64)
    }

    fn stamp(&self, rec: &Record) -> Stamp {
        match rec.at() {
            Some(at) => Stamp { at_ms: at.0, wall_ms: self.wall(at.0) },
            // A spawn failure: when the record it follows happened.
            None => Stamp { at_ms: self.last_at, wall_ms: self.last_wall },
        }
    }

    fn checkpoint(&mut self, records: u64, digest: &str, at: Option<Stamp>) {
        self.checkpoints += 1;
        let replayed = self.replayer.digest_hex();
        if records == self.records && replayed == digest {
            if self.mismatch.is_none() {
                self.verified = records;
                self.verified_at = at;
            }
        } else if self.mismatch.is_none() {
            self.mismatch = Some(Mismatch {
                record: records.max(self.records),
                last_match: self.verified,
                at,
                recorded_sha256: digest.to_string(),
                replayed_sha256: replayed,
            });
        }
    }
}

/// What the merge needs of a recording before replaying it, gathered in
/// one pass over its records (small: no record is kept).
struct Scan {
    header: clinit_engine::trace::Header<serde_json::Value>,
    nodes: Vec<u32>,
    /// Wall-clock anchors from marks: (at, wall_ms).
    anchors: Vec<(u64, i64)>,
    failures: HashMap<(u32, u32, ProcId), String>,
    first_at: Option<u64>,
    last_at: Option<u64>,
    end: Option<(u64, String)>,
    cut: Option<Cut>,
}

/// Records, one at a time (a file read line by line, or a recording in
/// memory).
type Records<'a> = Box<dyn Iterator<Item = Result<Record, TraceError>> + 'a>;

impl Scan {
    fn of(
        header: clinit_engine::trace::Header<serde_json::Value>,
        records: Records<'_>,
        file: &str,
    ) -> Result<Scan, IncidentError> {
        let mut named = BTreeSet::new();
        let mut anchors = Vec::new();
        let mut inc: BTreeMap<u32, u32> = BTreeMap::new();
        let mut failures = HashMap::new();
        let (mut first_at, mut last_at) = (None, None);
        for rec in records {
            let rec = rec.map_err(|source| IncidentError::Read { file: file.into(), source })?;
            if let Some(n) = rec.node() {
                named.insert(n);
            }
            if let Some(at) = rec.at() {
                first_at.get_or_insert(at.0);
                last_at = Some(at.0);
            }
            match &rec {
                Record::Mark { at, wall_ms, .. } => {
                    anchors.push((at.0, i64::try_from(*wall_ms).unwrap_or(i64::MAX)))
                }
                // As [`crate::replay::failures`]: keyed by incarnation.
                Record::Start { node, .. } => *inc.entry(*node).or_default() += 1,
                Record::SpawnFailed { node, id, reason } => {
                    let i = inc.get(node).copied().unwrap_or(0);
                    failures.insert((*node, i, *id), reason.clone());
                }
                _ => {}
            }
        }
        // A `mosha` header names its node; records of another node mean a
        // hand-edited or mixed-up file, whose verdict would be misfiled.
        let said = header.config.get("node").and_then(serde_json::Value::as_u64);
        if let Some(said) = said {
            if !named.is_empty() && !named.iter().all(|&n| u64::from(n) == said) {
                return Err(IncidentError::HeaderNode {
                    file: file.into(),
                    header: said,
                    records: named.into_iter().collect(),
                });
            }
        }
        let nodes = nodes_of(named, &header);
        Ok(Scan { header, nodes, anchors, failures, first_at, last_at, end: None, cut: None })
    }
}

/// Replay `recordings` (in memory) together. `killed`: nodes known to
/// have been killed mid-run, whose recordings may be cut. Errors: no
/// recordings, a node in two recordings, recordings of different
/// incidents, a recorded configuration this version cannot rebuild.
pub fn replay(recordings: &[Named], killed: &BTreeSet<u32>) -> Result<Incident, IncidentError> {
    let mut scans = Vec::new();
    for r in recordings {
        let records: Records = Box::new(r.recording.records.iter().cloned().map(Ok));
        let mut scan = Scan::of(r.recording.header.clone(), records, &r.name)?;
        scan.end = r.recording.end.clone();
        scan.cut = r.recording.cut.clone();
        scans.push(scan);
    }
    let names: Vec<String> = recordings.iter().map(|r| r.name.clone()).collect();
    let streams: Vec<Records> = recordings
        .iter()
        .map(|r| Box::new(r.recording.records.iter().cloned().map(Ok)) as Records)
        .collect();
    replay_scanned(&names, scans, streams, killed)
}

/// Replay the recording files `paths` together, streaming: each file is
/// read twice, line by line (once to gather its nodes, anchors and end,
/// once to replay), so memory is bounded by the replayed machines and
/// the timeline, not by the recordings' length. Errors: as [`replay`],
/// and a file that cannot be opened or read ([`IncidentError::Read`]).
pub fn replay_files(paths: &[PathBuf], killed: &BTreeSet<u32>) -> Result<Incident, IncidentError> {
    let open = |path: &PathBuf| -> Result<RecordStream<BufReader<File>>, IncidentError> {
        let name = path.display().to_string();
        let file = File::open(path)
            .map_err(|e| IncidentError::Read { file: name.clone(), source: TraceError::Io(e) })?;
        RecordStream::open(BufReader::new(file))
            .map_err(|source| IncidentError::Read { file: name, source })
    };
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut scans = Vec::new();
    for (path, name) in paths.iter().zip(&names) {
        let mut stream = open(path)?;
        let header = stream.header.clone();
        let mut scan = Scan::of(header, Box::new(stream.by_ref()), name)?;
        (scan.end, scan.cut) = stream.finish();
        scans.push(scan);
    }
    let mut streams: Vec<Records> = Vec::new();
    for path in paths {
        streams.push(Box::new(open(path)?));
    }
    replay_scanned(&names, scans, streams, killed)
}

/// The replay proper, over scanned recordings and their record streams.
fn replay_scanned(
    names: &[String],
    scans: Vec<Scan>,
    mut streams: Vec<Records>,
    killed: &BTreeSet<u32>,
) -> Result<Incident, IncidentError> {
    if scans.is_empty() {
        return Err(IncidentError::Empty);
    }
    let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
    for (name, scan) in names.iter().zip(&scans) {
        for &node in &scan.nodes {
            if let Some(first) = owner.insert(node, name) {
                return Err(IncidentError::DuplicateNode {
                    node,
                    first: first.to_string(),
                    second: name.clone(),
                });
            }
        }
    }
    one_incident(names, &scans)?;
    if let Some(&node) = killed.iter().find(|n| !owner.contains_key(n)) {
        return Err(IncidentError::UnknownKilled { node, known: owner.keys().copied().collect() });
    }
    let mut runs: Vec<Run> = scans
        .iter()
        .map(|scan| Run {
            replayer: Replayer::new(&scan.failures, None),
            anchors: scan.anchors.clone(),
            offset: 0,
            peeked: None,
            last_wall: 0,
            last_at: 0,
            records: 0,
            verified: 0,
            verified_at: None,
            checkpoints: 0,
            mismatch: None,
            view: BTreeMap::new(),
        })
        .collect();
    // Unanchored recordings start where the earliest anchored one does.
    let anchored_start = runs
        .iter()
        .zip(&scans)
        .filter(|(run, _)| !run.anchors.is_empty())
        .filter_map(|(run, scan)| scan.first_at.map(|a| run.wall(a)))
        .min();
    for run in runs.iter_mut().filter(|r| r.anchors.is_empty()) {
        run.offset = anchored_start.unwrap_or(0);
    }
    for (run, scan) in runs.iter_mut().zip(&scans) {
        run.last_wall = scan.first_at.map_or(run.offset, |a| run.wall(a));
    }
    // Each stream's next record, read ahead by one.
    for (i, run) in runs.iter_mut().enumerate() {
        run.peeked = next_of(&mut streams[i], &names[i])?;
    }

    let mut timeline = Vec::new();
    // Merge: always the recording whose next record is earliest, so each
    // recording is fed in its own order.
    loop {
        let mut best: Option<(i64, usize)> = None;
        for (i, run) in runs.iter().enumerate() {
            let Some(rec) = &run.peeked else { continue };
            let w = run.stamp(rec).wall_ms;
            if best.is_none_or(|(bw, _)| w < bw) {
                best = Some((w, i));
            }
        }
        let Some((_, i)) = best else { break };
        let next = next_of(&mut streams[i], &names[i])?;
        let run = &mut runs[i];
        let Some(rec) = std::mem::replace(&mut run.peeked, next) else { break };
        let at = run.stamp(&rec);
        run.last_wall = at.wall_ms;
        run.last_at = at.at_ms;
        if let Record::Mark { records, decisions_sha256, .. } = &rec {
            run.checkpoint(*records, decisions_sha256, Some(at));
            continue;
        }
        // Every record but marks counts, as writers count them for `End`.
        run.records += 1;
        let out = run
            .replayer
            .step(&rec)
            .map_err(|source| IncidentError::Config { file: names[i].clone(), source })?;
        if let Some(node) = rec.node() {
            let view = run.view.entry(node).or_default();
            notes(&rec, &out, view, &mut |kind, group, text| {
                timeline.push(Entry { at, node, kind, group, text })
            });
        }
    }

    let mut checked = Vec::new();
    for ((run, scan), name) in runs.into_iter().zip(&scans).zip(names) {
        let mut run = run;
        let nodes = scan.nodes.clone();
        let end_at = Stamp { at_ms: scan.last_at.unwrap_or(0), wall_ms: run.last_wall };
        if let Some((records, digest)) = &scan.end {
            run.checkpoint(*records, digest, Some(end_at));
        }
        let status = match (&run.mismatch, &scan.cut) {
            (Some(_), _) => Status::Different,
            (None, None) => Status::Identical,
            // A cut excuses a recording only when every node in it was
            // named: one file of a simulated cluster holds all its nodes,
            // and naming one of them says nothing about the others.
            (None, Some(_)) if !nodes.is_empty() && nodes.iter().all(|n| killed.contains(n)) => {
                if run.verified == 0 && run.records > 0 {
                    Status::NothingVerified
                } else {
                    Status::IdenticalUpToCut
                }
            }
            (None, Some(_)) => Status::Truncated,
        };
        for &node in &nodes {
            let text = match &scan.cut {
                None => "recording ends (stopped)".to_string(),
                Some(_) => "recording cut (killed?)".to_string(),
            };
            timeline.push(Entry { at: end_at, node, kind: Kind::End, group: None, text });
        }
        let summary = run.replayer.finish();
        checked.push(Checked {
            file: name.clone(),
            nodes,
            source: scan.header.source.clone(),
            version: scan.header.version.clone(),
            status,
            records: run.records,
            verified_records: run.verified,
            verified_at: run.verified_at,
            checkpoints: run.checkpoints,
            first_mismatch: run.mismatch,
            cut: scan.cut.clone(),
            anchored: !run.anchors.is_empty(),
            replayed_sha256: summary.decisions_sha256,
            recorded_sha256: scan.end.as_ref().map(|(_, d)| d.clone()),
        });
    }
    timeline.sort_by_key(|e| e.at.wall_ms);
    let start_wall_ms = timeline.first().map_or(0, |e| e.at.wall_ms);
    let end_wall_ms = timeline.last().map_or(0, |e| e.at.wall_ms);
    Ok(Incident {
        anchored: checked.iter().any(|c| c.anchored),
        recordings: checked,
        start_wall_ms,
        end_wall_ms,
        timeline,
    })
}

/// The next record of `stream` (named `file` in errors).
fn next_of(stream: &mut Records, file: &str) -> Result<Option<Record>, IncidentError> {
    stream.next().transpose().map_err(|source| IncidentError::Read { file: file.into(), source })
}

/// Largest gap between two recordings' wall-clock spans that still counts
/// as one incident: 60 s. Every node of one incident records at the same
/// time, so their spans overlap; a node killed early stops recording
/// first, but after the others began.
pub const MAX_GAP_MS: i64 = 60_000;

/// Refuse recordings that cannot be of one incident: a simulator trace
/// beside `mosha` recordings, `mosha` recordings of different shared
/// directories (their header's `mfsbase`; recordings written before it
/// was recorded are not compared), or wall-clock spans (first to last
/// checkpoint) more than [`MAX_GAP_MS`] apart.
fn one_incident(names: &[String], scans: &[Scan]) -> Result<(), IncidentError> {
    let of = |source: &str| names.iter().zip(scans).find(|(_, s)| s.header.source == source);
    if let (Some((sim, _)), Some((real, _))) = (of("clinit-sim"), of("mosha")) {
        return Err(IncidentError::MixedSources { sim: sim.clone(), real: real.clone() });
    }
    let mfsbase =
        |s: &Scan| s.header.config.get("mfsbase").and_then(|v| v.as_str()).map(String::from);
    let mut seen: Option<(&String, String)> = None;
    for (name, scan) in names.iter().zip(scans) {
        let Some(base) = mfsbase(scan) else { continue };
        match &seen {
            Some((first, a)) if *a != base => {
                return Err(IncidentError::DifferentClusters {
                    first: first.to_string(),
                    second: name.clone(),
                    a: a.clone(),
                    b: base,
                })
            }
            Some(_) => {}
            None => seen = Some((name, base)),
        }
    }
    let span = |s: &Scan| {
        s.anchors.iter().map(|&(_, w)| w).fold(None, |acc: Option<(i64, i64)>, w| {
            Some(acc.map_or((w, w), |(lo, hi)| (lo.min(w), hi.max(w))))
        })
    };
    let spans: Vec<(&String, (i64, i64))> =
        names.iter().zip(scans).filter_map(|(n, s)| span(s).map(|sp| (n, sp))).collect();
    for (i, (a, (a_lo, a_hi))) in spans.iter().enumerate() {
        for (b, (b_lo, b_hi)) in &spans[i + 1..] {
            let gap = (b_lo - a_hi).max(a_lo - b_hi);
            if gap > MAX_GAP_MS {
                let text = |lo: i64, hi: i64| format!("{} to {}", clock_text(lo), clock_text(hi));
                return Err(IncidentError::DifferentIncidents {
                    first: a.to_string(),
                    second: b.to_string(),
                    first_span: text(*a_lo, *a_hi),
                    second_span: text(*b_lo, *b_hi),
                    gap_s: (MAX_GAP_MS / 1000) as u64,
                });
            }
        }
    }
    Ok(())
}

/// The nodes a recording holds, ascending: those its records name, or,
/// for a recording cut before its first record (a `mosha` killed right
/// after writing its header), the node its header names (`mosha`'s
/// configuration carries `"node"`; a simulator's carries `"nodes"`, the
/// cluster size, and its trace holds nodes 1 to that). Without this a
/// header-only recording named no node, and `--killed` could not apply.
pub fn recorded_nodes(recording: &Recording) -> Vec<u32> {
    let named: BTreeSet<u32> = recording.records.iter().filter_map(Record::node).collect();
    nodes_of(named, &recording.header)
}

/// [`recorded_nodes`] from the nodes the records name and the header.
fn nodes_of(
    named: BTreeSet<u32>,
    header: &clinit_engine::trace::Header<serde_json::Value>,
) -> Vec<u32> {
    if !named.is_empty() {
        return named.into_iter().collect();
    }
    let config = &header.config;
    let number = |key: &str| config.get(key).and_then(serde_json::Value::as_u64);
    let as_node = |n: u64| u32::try_from(n).ok();
    match (number("node").and_then(as_node), number("nodes").and_then(as_node)) {
        (Some(node), _) => vec![node],
        (None, Some(n)) => (1..=n).collect(),
        (None, None) => Vec::new(),
    }
}

/// Whether the `version` a recording's header names (`MAJOR.MINOR.PATCH`)
/// is newer than `ours`. A version that does not read as three numbers
/// (a test's `"0"`) is not: nothing to warn about.
pub fn newer_version(version: &str, ours: &str) -> bool {
    let parse = |v: &str| -> Option<Vec<u64>> {
        let core = v.split(['-', '+']).next()?;
        let parts: Option<Vec<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| p.len() == 3)
    };
    matches!((parse(version), parse(ours)), (Some(a), Some(b)) if a > b)
}

/// One record's decisions in words, for a person (what-if's "first
/// difference"): its timeline notes, then the processes it starts and
/// signals and when it wakes next. The decision text that replays compare
/// and digest ([`clinit_engine::trace::decision_text`]) is a `Debug` form
/// hundreds of characters long; this says the same steps briefly.
pub fn decision_words(rec: &Record, out: &Output) -> String {
    let mut parts = Vec::new();
    notes(rec, out, &mut NodeView::default(), &mut |_, _, text| parts.push(text));
    for ex in out.executed() {
        match ex {
            Executed::Action(Action::Spawn { group, tag, level, .. }) => {
                parts.push(format!("runs {group} {tag} (level {level})"))
            }
            Executed::Action(Action::Signal { id, signal }) => {
                parts.push(format!("sends {signal:?} to process {}", id.0))
            }
            Executed::Action(Action::Exit) => parts.push("exits".into()),
            _ => {}
        }
    }
    if let Output::Cycle { report, .. } = out {
        parts.push(format!("next cycle at t={:.3} s", report.next_wakeup.0 as f64 / 1000.0));
    }
    if parts.is_empty() {
        "decides nothing".into()
    } else {
        parts.join("; ")
    }
}

/// The timeline lines of one record's output, reported through `push`.
fn notes(
    rec: &Record,
    out: &Output,
    view: &mut NodeView,
    push: &mut dyn FnMut(Kind, Option<(String, bool)>, String),
) {
    match (rec, out) {
        (Record::Start { policy, .. }, _) => {
            let policy = match policy {
                clinit_engine::monitor::PolicyConfig::Classic(_) => "classic",
                clinit_engine::monitor::PolicyConfig::Ranked(_) => "ranked",
            };
            *view = NodeView::default();
            push(Kind::Start, None, format!("started ({policy} policy)"));
        }
        (Record::RankedStart { .. }, _) => push(Kind::Start, None, "ranked machine started".into()),
        (Record::Crash { .. }, _) => push(Kind::End, None, "crashed".into()),
        (_, Output::StopAll { told, .. }) => {
            push(Kind::Stop, None, format!("stops every local group {told:?}"))
        }
        (_, Output::Ranked(commands)) => {
            for command in commands {
                ranked_note(command, push);
            }
        }
        (_, Output::Cycle { adopted, report }) => {
            view.repeating_now.clear();
            if let Some((event, _)) = adopted {
                event_note(event, view, push);
            }
            for event in &report.events {
                event_note(event, view, push);
            }
            for ext in &report.external {
                match ext {
                    External::Fence { node } => {
                        push(Kind::Fence, None, format!("fences node {node}"))
                    }
                    External::Publish(p) => {
                        if view.members.as_ref() != Some(&p.members) {
                            push(Kind::Membership, None, format!("members {:?}", p.members));
                            view.members = Some(p.members.clone());
                        }
                    }
                }
            }
            view.repeating = std::mem::take(&mut view.repeating_now);
        }
        _ => {}
    }
    // The node's own group states, as its init machine wrote them.
    for ex in out.executed() {
        let Executed::Action(Action::WriteStatus { status, .. }) = ex else { continue };
        for (g, st) in &status.groups {
            let text = format!("{} {}", st.level, st.state);
            if view.own.get(g) != Some(&text) {
                let running = counts_as_running(&st.level, &st.state);
                push(Kind::Group, Some((g.clone(), running)), format!("{g}: {text}"));
                view.own.insert(g.clone(), text);
            }
        }
        let gone: Vec<String> =
            view.own.keys().filter(|g| !status.groups.contains_key(*g)).cloned().collect();
        for g in gone {
            push(Kind::Group, Some((g.clone(), false)), format!("{g}: gone"));
            view.own.remove(&g);
        }
    }
}

/// A `ranked` machine's lease, revocation, void, claim and fence steps: the
/// protocol's own account of why groups moved (the group lines alone show
/// only that they did). Reads, heartbeats and persistence are left out.
fn ranked_note(
    command: &clinit_engine::monitor::ranked::Command,
    push: &mut dyn FnMut(Kind, Option<(String, bool)>, String),
) {
    use clinit_engine::monitor::ranked::{Command, RankedNotice as N};
    let notice = match command {
        Command::Fence { target, reason, .. } => {
            let (node, inc) = (target.node, target.incarnation);
            return push(
                Kind::Fence,
                None,
                format!("fences node {node} (incarnation {inc}): {reason:?}"),
            );
        }
        Command::Log(notice) => notice,
        _ => return,
    };
    let (kind, text) = match notice {
        N::LeaseAcquired { epoch, .. } => (Kind::Quorum, format!("lease acquired (epoch {epoch})")),
        N::LeaseLost { epoch } => {
            (Kind::Quorum, format!("lease lost (epoch {epoch}): kills its services"))
        }
        N::KillUnconfirmed => {
            (Kind::Quorum, "kill unconfirmed: publishes lost, needs a fence".into())
        }
        N::WatchdogLost => (Kind::Quorum, "watchdog gone: publishes watchdog false".into()),
        N::WatchdogBack => (Kind::Quorum, "watchdog back: publishes watchdog true".into()),
        N::Revoked { node, up_to } => (
            Kind::Stale,
            format!("revokes node {node} (acknowledged up to counter {})", up_to.counter),
        ),
        N::RevocationWithdrawn { node, .. } => {
            (Kind::Stale, format!("withdraws its revocation of node {node} (heard again)"))
        }
        N::RevocationLifted { node } => {
            (Kind::Stale, format!("lifts its revocation of node {node}"))
        }
        N::Void { node, incarnation, why } => {
            (Kind::Stale, format!("node {node} (incarnation {incarnation}) is void: {why}"))
        }
        N::ClaimHeld { group, grantors } => {
            (Kind::Told, format!("holds the claim on {group} (granted by {grantors:?})"))
        }
        N::Conflict { group, keeper } => {
            (Kind::Conflict, format!("{group}: node {keeper} keeps it, stopped here"))
        }
        N::ConfigAdopted(config) => (
            Kind::Membership,
            format!("configuration {}: voters {:?}", config.version, config.voters()),
        ),
        N::MixedPolicy { node, policy } => {
            (Kind::Other, format!("node {node} publishes policy {policy}: nothing taken over"))
        }
        N::Stalled { group, .. } => (Kind::Other, format!("{group}: stalled, claim released")),
        N::Resumed { gap } => (Kind::Other, format!("resumed after {} ms without a step", gap.0)),
        N::FencedWhileRunning { by, incarnation } => (
            Kind::Fence,
            format!("fenced by node {by} (incarnation {incarnation}) but still running"),
        ),
        N::Rejoining { by, fenced, incarnation } => (
            Kind::Fence,
            format!(
                "rejoins as incarnation {incarnation} (incarnation {fenced} fenced by node {by})"
            ),
        ),
        _ => return,
    };
    push(kind, None, text);
}

fn event_note(
    event: &Event,
    view: &mut NodeView,
    push: &mut dyn FnMut(Kind, Option<(String, bool)>, String),
) {
    let mut once = |kind, text: String| {
        if !view.repeating.contains(&text) {
            push(kind, None, text.clone());
        }
        view.repeating_now.insert(text);
    };
    match event {
        Event::Told { group, level, .. } => {
            push(Kind::Told, None, format!("tells {group} {level}"))
        }
        Event::Halting { stopping } => {
            push(Kind::Quorum, None, format!("halting: stops {stopping:?}"))
        }
        Event::Halted => push(Kind::Quorum, None, "halted".into()),
        Event::QuorumRegained => push(Kind::Quorum, None, "quorum regained".into()),
        Event::NotListed { members } => {
            once(Kind::Membership, format!("not listed in {members:?}"))
        }
        Event::CltabReloaded { groups } => {
            push(Kind::Other, None, format!("cltab reloaded {groups:?}"))
        }
        Event::Monitor(n) => match n {
            Notice::QuorumLost { visible, reference, .. } => {
                push(Kind::Quorum, None, format!("quorum lost: sees {visible:?} of {reference}"))
            }
            Notice::Stale { node, age } => push(
                Kind::Stale,
                None,
                format!("node {node} stale (clstat {:.1} s old)", age.0 as f64 / 1000.0),
            ),
            Notice::StaleEnded { node } => {
                push(Kind::Stale, None, format!("node {node} no longer stale"))
            }
            Notice::Unreadable { node, reason, .. } => {
                once(Kind::Other, format!("cannot read node {node}: {reason}"))
            }
            Notice::Conflict { group, nodes, .. } => {
                push(Kind::Conflict, None, format!("conflict: {group} on {nodes:?}"))
            }
            Notice::PlanSuppressed { group, blind } => {
                once(Kind::Other, format!("{group}: plan suppressed (blind to {blind:?})"))
            }
            Notice::NoHactl => once(Kind::Other, "no usable hactl".into()),
        },
    }
}

/// `HH:MM:SS.mmm` (UTC) of ms since the Unix epoch.
pub fn clock_text(wall_ms: i64) -> String {
    let ms = wall_ms.rem_euclid(86_400_000);
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// The verdicts, and the merged timeline if `timeline`, as text.
pub fn render(incident: &Incident, timeline: bool) -> String {
    let mut s = String::new();
    let when = |st: &Stamp| {
        let rel = (st.wall_ms - incident.start_wall_ms) as f64 / 1000.0;
        if incident.anchored {
            format!("{} UTC (+{rel:.3} s)", clock_text(st.wall_ms))
        } else {
            format!("+{rel:.3} s")
        }
    };
    for c in &incident.recordings {
        let who = match &c.nodes[..] {
            [] => "no node".to_string(),
            [n] => format!("node {n}"),
            ns => format!("nodes {ns:?}"),
        };
        let _ = write!(s, "{who} ({}, {} {}): ", c.file, c.source, c.version);
        let at = c.verified_at.as_ref().map_or_else(|| "start".into(), &when);
        let _ = match c.status {
            Status::Identical => writeln!(
                s,
                "identical to the recording ({}, {}, decisions {})",
                crate::units::plural(c.records, "record", "records"),
                crate::units::plural(c.checkpoints, "checkpoint", "checkpoints"),
                c.replayed_sha256
            ),
            Status::IdenticalUpToCut | Status::Truncated => {
                let _ = write!(
                    s,
                    "verified up to record {}, t={at}, recording cut ({} after it unverified{})",
                    c.verified_records,
                    crate::units::plural(c.unverified(), "record", "records"),
                    match c.cut.as_ref().and_then(|x| x.partial_line) {
                        Some(l) => format!("; half a line at line {l} left out"),
                        None => String::new(),
                    }
                );
                if c.status == Status::Truncated && c.source == "clinit-sim" {
                    // --killed names a node whose own recording was cut; a
                    // simulator trace is every node's at once, and its only
                    // checkpoint is its end line.
                    let _ = write!(
                        s,
                        "\n  TRUNCATED: this simulator trace was cut ({} read, none \
                         verified: its only checkpoint is its end line, and --killed does not \
                         apply to it); write it again with `clinit-sim run --trace` and replay \
                         the whole file",
                        crate::units::plural(c.records, "record", "records")
                    );
                } else if c.status == Status::Truncated {
                    let nodes: Vec<String> = c.nodes.iter().map(u32::to_string).collect();
                    let _ = match &c.nodes[..] {
                        [] => write!(
                            s,
                            "\n  TRUNCATED: no end line, and neither a record nor the header \
                             names its node"
                        ),
                        [n] => write!(
                            s,
                            "\n  TRUNCATED: no end line; if node {n} was killed, say so with \
                             --killed {n}"
                        ),
                        _ => write!(
                            s,
                            "\n  TRUNCATED: no end line; if nodes {} were killed, say so with \
                             --killed {}",
                            nodes.join(", "),
                            nodes.join(",")
                        ),
                    };
                }
                writeln!(s)
            }
            Status::NothingVerified => writeln!(
                s,
                "NOTHING VERIFIED: the recording is cut before its first checkpoint ({} \
                 replayed, none compared with a recorded digest){}",
                crate::units::plural(c.records, "record", "records"),
                if c.source == "clinit-sim" {
                    "; a simulator trace carries no checkpoints, only its end line: replay the \
                     whole trace (run it again with --trace)"
                } else {
                    ""
                }
            ),
            Status::Different => {
                let m = c.first_mismatch.as_ref();
                writeln!(
                    s,
                    "DIFFERENT: decisions differ after record {} and by record {}{} \
                     (recorded {}, replayed {})",
                    m.map_or(0, |m| m.last_match),
                    m.map_or(0, |m| m.record),
                    m.and_then(|m| m.at.as_ref())
                        .map_or_else(String::new, |a| format!(", t={}", when(a))),
                    m.map_or("", |m| m.recorded_sha256.as_str()),
                    m.map_or("", |m| m.replayed_sha256.as_str()),
                )
            }
        };
        if !c.anchored {
            let _ = writeln!(
                s,
                "  (no wall-clock anchors: placed by its own clock from the incident's start)"
            );
        }
    }
    if !timeline {
        return s;
    }
    let _ = writeln!(s, "timeline ({} entries):", incident.timeline.len());
    for e in &incident.timeline {
        let _ = writeln!(s, "  {}  node {:<3} {}", when(&e.at), e.node, e.text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinit_engine::time::Millis;
    use clinit_engine::trace::Header;

    /// A `mosha` recording of `node` in cluster `mfsbase` with checkpoints
    /// at the wall-clock times `walls` (ms since the epoch), cut.
    fn recording(name: &str, node: u32, mfsbase: &str, walls: &[u64]) -> Named {
        let config = serde_json::json!({ "node": node, "mfsbase": mfsbase });
        let records = walls
            .iter()
            .enumerate()
            .map(|(i, &wall_ms)| Record::Mark {
                node,
                at: Millis(i as u64 * 1000),
                wall_ms,
                records: 0,
                decisions_sha256: String::new(),
            })
            .collect();
        Named {
            name: name.into(),
            recording: Recording {
                header: Header::new("mosha", "test", None, config),
                records,
                end: None,
                cut: Some(Cut { partial_line: None }),
            },
        }
    }

    const T: u64 = 1_764_547_200_000; // 2025-12-01 00:00 UTC

    #[test]
    fn recordings_of_different_incidents_are_refused() {
        let none = BTreeSet::new();
        // One incident: one cluster, overlapping spans (node 2 killed early).
        let one = [
            recording("n1", 1, "/mfs", &[T, T + 60_000]),
            recording("n2", 2, "/mfs", &[T + 5_000, T + 20_000]),
        ];
        replay(&one, &none).expect("one incident");
        // Another cluster's recording.
        let other = [recording("n1", 1, "/mfs", &[T]), recording("x2", 2, "/other", &[T])];
        let err = replay(&other, &none).expect_err("two clusters").to_string();
        assert!(err.contains("different clusters") && err.contains("/other"), "{err}");
        // The same cluster a day later: spans far apart.
        let later = [
            recording("n1", 1, "/mfs", &[T, T + 60_000]),
            recording("n2", 2, "/mfs", &[T + 86_400_000]),
        ];
        let err = replay(&later, &none).expect_err("two incidents").to_string();
        assert!(err.contains("different incidents") && err.contains("n2"), "{err}");
        // Just within the gap: still one incident.
        let near = [
            recording("n1", 1, "/mfs", &[T, T + 60_000]),
            recording("n2", 2, "/mfs", &[T + 60_000 + MAX_GAP_MS as u64]),
        ];
        replay(&near, &none).expect("within the gap");
        // A simulator trace among mosha recordings.
        let mut sim = recording("sim", 3, "/mfs", &[]);
        sim.recording.header.source = "clinit-sim".into();
        let err = replay(&[recording("n1", 1, "/mfs", &[T]), sim], &none).expect_err("mixed");
        assert!(err.to_string().contains("simulator trace"), "{err}");
    }
}
