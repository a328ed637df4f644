//! Replaying a trace: the recorded inputs fed again to fresh production
//! nodes, bit for bit, or under other settings (what-if).
//!
//! * **Replay** rebuilds each node at its [`Record::Start`] and feeds it its
//!   records; the digest of every decision (see [`crate::host::decisions`])
//!   must equal the one the trace ends with.
//! * **What-if (open loop)** replays the same inputs twice in lock step,
//!   once as recorded and once with another policy or parameters, and
//!   reports where and how often the decisions differ. The inputs stay as
//!   recorded (other nodes' files, membership, exits), so this answers
//!   "what would this node have decided, seeing exactly this?"; the node's
//!   own state follows its own decisions.
//! * **Re-run (closed loop)** re-simulates the world from the header's
//!   scenario and seed with the overrides, and compares the run reports
//!   (only for simulator traces).

use crate::config::ConfigError;
use crate::host::{self, DecisionDigest, Output};
use crate::incident::decision_words;
use crate::processes::{NullStore, ReplayProcesses};
use crate::trace::{RecordStream, Trace, TraceError};
use clinit_engine::cluster::{ClusterNode, Event, External};
use clinit_engine::monitor::ranked::Ranked;
use clinit_engine::monitor::{Notice, PolicyConfig};
use clinit_engine::process::ProcId;
use clinit_engine::trace::Record;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use thiserror::Error;

type Node = ClusterNode<ReplayProcesses, NullStore>;

/// Turns a recorded policy into the one to replay with.
pub type Override<'a> = &'a dyn Fn(&PolicyConfig) -> Result<PolicyConfig, ConfigError>;

/// What one replay decided, in aggregate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub decisions_sha256: String,
    pub tells_by_level: BTreeMap<String, u64>,
    pub conflicts: u64,
    pub fences: u64,
    pub halts: u64,
    pub cycles: u64,
    /// Inputs fed to `ranked` machines ([`Record::Ranked`]), the ranked
    /// counterpart of `cycles` (a ranked node has no classic cycles; its
    /// tells, fences and lease-loss kills count above as classic's do).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ranked_inputs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One replayed copy of the recorded cluster.
pub(crate) struct Replayer<'a> {
    nodes: BTreeMap<u32, Node>,
    /// Each node's `ranked` machine, rebuilt at its [`Record::RankedStart`].
    ranked: BTreeMap<u32, Ranked>,
    incarnation: BTreeMap<u32, u32>,
    failures: &'a HashMap<(u32, u32, ProcId), String>,
    policy: Option<Override<'a>>,
    digest: DecisionDigest,
    summary: Summary,
    /// Records for a node that was not started (a cut recording).
    orphans: u64,
}

impl<'a> Replayer<'a> {
    pub(crate) fn new(
        failures: &'a HashMap<(u32, u32, ProcId), String>,
        policy: Option<Override<'a>>,
    ) -> Self {
        Replayer {
            nodes: BTreeMap::new(),
            ranked: BTreeMap::new(),
            incarnation: BTreeMap::new(),
            failures,
            policy,
            digest: DecisionDigest::default(),
            summary: Summary::default(),
            orphans: 0,
        }
    }

    /// Feed one record; returns the text of its decisions.
    fn feed(&mut self, rec: &Record) -> Result<&str, ConfigError> {
        self.step(rec)?;
        Ok(self.digest.last_text())
    }

    /// The digest of every decision so far (hex), as a [`Record::Mark`]
    /// or [`Record::End`] carries it.
    pub(crate) fn digest_hex(&self) -> String {
        self.digest.hex()
    }

    /// Feed one record; returns what it produced (already counted and
    /// added to the digest).
    pub(crate) fn step(&mut self, rec: &Record) -> Result<Output, ConfigError> {
        let out = match rec {
            Record::Start { node, policy, .. } => {
                let inc = self.incarnation.entry(*node).or_default();
                *inc += 1;
                let failures = self
                    .failures
                    .iter()
                    .filter(|((n, i, _), _)| n == node && i == inc)
                    .map(|((_, _, id), why)| (*id, why.clone()))
                    .collect();
                let policy = match self.policy {
                    Some(f) => Some(f(policy)?),
                    None => None,
                };
                let procs = ReplayProcesses { failures };
                match host::start(rec, policy.as_ref(), procs, NullStore) {
                    Some((n, out)) => {
                        self.nodes.insert(*node, n);
                        out
                    }
                    None => Output::Nothing,
                }
            }
            Record::Crash { node, .. } => {
                self.nodes.remove(node);
                self.ranked.remove(node);
                Output::Nothing
            }
            Record::RankedStart { node, at, params, initial, durable, own } => {
                // A what-if with ranked parameters replaces the recorded ones.
                let params = match self.policy.map(|f| f(&PolicyConfig::Ranked(params.clone()))) {
                    Some(Ok(PolicyConfig::Ranked(p))) => p,
                    Some(Err(e)) => return Err(e),
                    _ => params.clone(),
                };
                let machine =
                    Ranked::new(*node, params, initial.clone(), durable.clone(), own.clone(), *at);
                self.ranked.insert(*node, machine);
                Output::RankedStarted
            }
            Record::Ranked { node, at, input } => match self.ranked.get_mut(node) {
                Some(m) => Output::Ranked(m.step(*at, input.clone()).commands),
                None => {
                    self.orphans += 1;
                    Output::Nothing
                }
            },
            Record::End { .. }
            | Record::SpawnFailed { .. }
            | Record::Transition { .. }
            | Record::Mark { .. } => Output::Nothing,
            _ => match rec.node().and_then(|n| self.nodes.get_mut(&n)) {
                Some(node) => host::apply(node, rec),
                None => {
                    self.orphans += 1;
                    Output::Nothing
                }
            },
        };
        self.count(&out);
        self.digest.add(&out);
        Ok(out)
    }

    fn count(&mut self, out: &Output) {
        if let Output::Ranked(commands) = out {
            use clinit_engine::monitor::ranked::Command;
            self.summary.ranked_inputs += 1;
            for c in commands {
                match c {
                    Command::Tell { level, .. } => {
                        *self.summary.tells_by_level.entry(level.clone()).or_default() += 1
                    }
                    Command::Fence { .. } => self.summary.fences += 1,
                    Command::KillAllNow => self.summary.halts += 1,
                    _ => {}
                }
            }
            return;
        }
        let Output::Cycle { report, .. } = out else { return };
        self.summary.cycles += 1;
        for e in &report.events {
            match e {
                Event::Told { level, .. } => {
                    *self.summary.tells_by_level.entry(level.clone()).or_default() += 1
                }
                Event::Monitor(Notice::Conflict { .. }) => self.summary.conflicts += 1,
                Event::Halting { .. } => self.summary.halts += 1,
                _ => {}
            }
        }
        self.summary.fences +=
            report.external.iter().filter(|x| matches!(x, External::Fence { .. })).count() as u64;
    }

    pub(crate) fn finish(mut self) -> Summary {
        self.summary.decisions_sha256 = self.digest.hex();
        self.summary
    }
}

/// Spawn failures by (node, incarnation, id).
pub(crate) fn failures(records: &[Record]) -> HashMap<(u32, u32, ProcId), String> {
    let mut inc: BTreeMap<u32, u32> = BTreeMap::new();
    let mut out = HashMap::new();
    for rec in records {
        match rec {
            Record::Start { node, .. } => *inc.entry(*node).or_default() += 1,
            Record::SpawnFailed { node, id, reason } => {
                let i = inc.get(node).copied().unwrap_or(0);
                out.insert((*node, i, *id), reason.clone());
            }
            _ => {}
        }
    }
    out
}

/// The outcome of a plain replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub records: u64,
    /// Digest the trace ends with (`None`: the recording had no end line).
    pub recorded_sha256: Option<String>,
    pub replayed: Summary,
    /// Recorded and replayed digests are equal.
    pub identical: Option<bool>,
    pub orphan_records: u64,
}

/// Replay as recorded.
pub fn replay(trace: &Trace) -> Result<Verdict, ConfigError> {
    let fails = failures(&trace.records);
    let mut r = Replayer::new(&fails, None);
    let mut records = 0;
    let mut recorded = None;
    for rec in &trace.records {
        match rec {
            Record::End { decisions_sha256, .. } => {
                recorded = Some(decisions_sha256.clone());
                continue;
            }
            Record::Mark { .. } => continue,
            _ => {}
        }
        records += 1;
        r.feed(rec)?;
    }
    let orphans = r.orphans;
    let replayed = r.finish();
    let identical = recorded.as_ref().map(|d| *d == replayed.decisions_sha256);
    Ok(Verdict { records, recorded_sha256: recorded, replayed, identical, orphan_records: orphans })
}

/// Where two replays first decided differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// 1-based record number (the header is line 0).
    pub record: u64,
    pub node: Option<u32>,
    pub at_s: Option<f64>,
    /// The recorded settings' decisions at that record, in words
    /// ([`crate::incident::decision_words`]).
    pub baseline: String,
    /// The what-if settings' decisions there, in words.
    pub what_if: String,
}

/// Baseline vs what-if on the same inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub records: u64,
    /// Records whose decisions differ.
    pub differing: u64,
    pub first: Option<Divergence>,
    pub baseline: Summary,
    pub what_if: Summary,
}

/// Replay the inputs as recorded and under `policy`, in lock step.
pub fn what_if(trace: &Trace, policy: Override<'_>) -> Result<Comparison, ConfigError> {
    let fails = failures(&trace.records);
    compare(&fails, trace.records.iter().cloned().map(Ok), policy).map_err(|e| match e {
        WhatIfError::Config(e) => e,
        // In-memory records cannot fail to read.
        WhatIfError::Read { source, .. } => ConfigError::Schedule(source.to_string()),
    })
}

/// A what-if over a file that failed.
#[derive(Debug, Error)]
pub enum WhatIfError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: TraceError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// [`what_if`] over the trace file `path`, read line by line twice (once
/// for its spawn failures, once to replay), so a long trace is never held
/// in memory whole.
pub fn what_if_file(path: &Path, policy: Override<'_>) -> Result<Comparison, WhatIfError> {
    let file = path.display().to_string();
    let read = |source| WhatIfError::Read { file: file.clone(), source };
    let open = || -> Result<_, WhatIfError> {
        let f = File::open(path).map_err(|e| read(TraceError::Io(e)))?;
        RecordStream::open(BufReader::new(f)).map_err(read)
    };
    let mut inc: BTreeMap<u32, u32> = BTreeMap::new();
    let mut fails = HashMap::new();
    for rec in open()? {
        match rec.map_err(read)? {
            Record::Start { node, .. } => *inc.entry(node).or_default() += 1,
            Record::SpawnFailed { node, id, reason } => {
                let i = inc.get(&node).copied().unwrap_or(0);
                fails.insert((node, i, id), reason);
            }
            _ => {}
        }
    }
    compare(&fails, open()?.map(|r| r.map_err(read)), policy)
}

/// The recorded policy's replay and the what-if's, record by record.
fn compare(
    fails: &HashMap<(u32, u32, ProcId), String>,
    records: impl Iterator<Item = Result<Record, WhatIfError>>,
    policy: Override<'_>,
) -> Result<Comparison, WhatIfError> {
    let mut base = Replayer::new(fails, None);
    let mut alt = Replayer::new(fails, Some(policy));
    let (mut count, mut differing, mut first) = (0u64, 0u64, None);
    for rec in records {
        let rec = rec?;
        if matches!(rec, Record::End { .. } | Record::Mark { .. }) {
            continue;
        }
        count += 1;
        let out_a = base.step(&rec)?;
        let out_b = alt.step(&rec)?;
        if base.digest.last_text() != alt.digest.last_text() {
            differing += 1;
            if first.is_none() {
                let (a, b) = (decision_words(&rec, &out_a), decision_words(&rec, &out_b));
                // The same in words: a detail the words leave out differs.
                let (a, b) = if a == b {
                    let detail = "; the decisions differ in a detail these words leave out";
                    (a + detail, b + detail)
                } else {
                    (a, b)
                };
                first = Some(Divergence {
                    record: count,
                    node: rec.node(),
                    at_s: rec.at().map(|t| t.0 as f64 / 1000.0),
                    baseline: a,
                    what_if: b,
                });
            }
        }
    }
    Ok(Comparison {
        records: count,
        differing,
        first,
        baseline: base.finish(),
        what_if: alt.finish(),
    })
}
