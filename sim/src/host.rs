//! Feeding trace records to a production [`ClusterNode`], and the digest
//! of what it decided.
//!
//! The simulated world does not call the node directly: it builds the
//! [`Record`] of each input and applies it here, exactly as `replay` does.
//! So a trace is by construction the complete input of the run, and replay
//! cannot drift from the run through a second code path.

use clinit_engine::cluster::{ClusterNode, CycleReport, Event};
use clinit_engine::driver::{Executed, NodeDriver, Processes, StatusStore};
use clinit_engine::init::{Init, Reply};
use clinit_engine::monitor::{Monitor, PolicyConfig};
use clinit_engine::trace::{DecisionWriter, Outcome, Record};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// What applying one record produced.
#[derive(Debug)]
pub enum Output {
    Started(Vec<Executed>),
    Cycle {
        adopted: Option<(Event, Vec<Executed>)>,
        report: CycleReport,
    },
    Init {
        reply: Reply,
        executed: Vec<Executed>,
    },
    StopAll {
        told: Vec<String>,
        executed: Vec<Executed>,
    },
    /// A `ranked` machine was built ([`Record::RankedStart`]).
    RankedStarted,
    /// A `ranked` machine's commands for one input ([`Record::Ranked`]).
    Ranked(Vec<clinit_engine::monitor::ranked::Command>),
    /// Records that are not inputs of a live node (crash, spawn failure, end).
    Nothing,
}

impl Output {
    /// Every init-machine action the record caused, in order.
    pub fn executed(&self) -> impl Iterator<Item = &Executed> {
        let (a, b): (&[Executed], &[Executed]) = match self {
            Output::Started(e) => (e, &[]),
            Output::Cycle { adopted, report } => {
                (adopted.as_ref().map_or(&[][..], |(_, e)| e.as_slice()), &report.executed)
            }
            Output::Init { executed, .. } | Output::StopAll { executed, .. } => (executed, &[]),
            Output::RankedStarted | Output::Ranked(_) | Output::Nothing => (&[], &[]),
        };
        a.iter().chain(b.iter())
    }
}

/// Build a node from a [`Record::Start`] (`policy` overrides the recorded
/// one for what-if replays). `None` for any other record.
pub fn start<P: Processes, S: StatusStore>(
    rec: &Record,
    policy: Option<&PolicyConfig>,
    processes: P,
    store: S,
) -> Option<(ClusterNode<P, S>, Output)> {
    let Record::Start { node, at, policy: recorded, init, monitor_seed, cltab } = rec else {
        return None;
    };
    let policy = policy.unwrap_or(recorded).clone();
    let mut driver = NodeDriver::new(Init::new(init.clone(), cltab.clone(), *at), processes, store);
    let executed = driver.flush(*at);
    let monitor = Monitor::new(policy, *monitor_seed, *at);
    Some((ClusterNode::new(*node, driver, monitor), Output::Started(executed)))
}

/// Feed one record to its (live) node.
pub fn apply<P: Processes, S: StatusStore>(node: &mut ClusterNode<P, S>, rec: &Record) -> Output {
    match rec {
        Record::Cycle { adopt, obs, .. } => {
            let adopted = adopt.clone().and_then(|table| node.adopt_cltab(obs.now, table));
            let report = node.cycle(obs);
            Output::Cycle { adopted, report }
        }
        Record::Init { at, input, .. } => {
            let (reply, executed) = node.driver.step(*at, input.clone());
            Output::Init { reply, executed }
        }
        Record::StopAll { at, .. } => {
            let (told, executed) = node.stop_all(*at);
            Output::StopAll { told, executed }
        }
        // The replayer steps `ranked` machines itself (see `replay`).
        Record::RankedStart { .. } | Record::Ranked { .. } => Output::Nothing,
        Record::Start { .. }
        | Record::SpawnFailed { .. }
        | Record::Crash { .. }
        | Record::Transition { .. }
        | Record::Mark { .. }
        | Record::End { .. } => Output::Nothing,
    }
}

/// The decisions in an output, as one canonical text
/// ([`clinit_engine::trace::decision_text`]; empty for [`Output::Nothing`]).
pub fn decisions(writer: &mut DecisionWriter, out: &Output, buf: &mut String) {
    let outcome = match out {
        Output::Started(ex) => Outcome::Started(ex),
        Output::Cycle { adopted, report } => {
            Outcome::Cycle { adopted: adopted.as_ref().map(|(e, ex)| (e, ex.as_slice())), report }
        }
        Output::Init { reply, executed } => Outcome::Init { reply, executed },
        Output::StopAll { told, executed } => Outcome::StopAll { told, executed },
        Output::RankedStarted => Outcome::RankedStarted,
        Output::Ranked(commands) => Outcome::Ranked(commands),
        Output::Nothing => {
            buf.clear();
            return;
        }
    };
    writer.write(outcome, buf);
}

/// Running digest of decisions.
#[derive(Clone, Default)]
pub struct DecisionDigest {
    hasher: Sha256,
    writer: DecisionWriter,
    buf: String,
}

impl DecisionDigest {
    /// Add one record's output (records that decide nothing, such as a
    /// crash, add nothing).
    pub fn add(&mut self, out: &Output) {
        decisions(&mut self.writer, out, &mut self.buf);
        if matches!(out, Output::Nothing) {
            return;
        }
        self.hasher.update(self.buf.as_bytes());
        self.hasher.update(b"\n");
    }

    /// Add one record's decision text as computed elsewhere (a driver's
    /// trace tap): the same digest as [`DecisionDigest::add`] of the
    /// record's output. Records that decide nothing add nothing.
    pub fn add_text(&mut self, rec: &clinit_engine::trace::Record, text: &str) {
        use clinit_engine::trace::Record;
        self.buf.clear();
        if matches!(
            rec,
            Record::Crash { .. }
                | Record::SpawnFailed { .. }
                | Record::Transition { .. }
                | Record::Mark { .. }
                | Record::End { .. }
        ) {
            return;
        }
        // One update with the newline: the same bytes, one call less.
        self.buf.push_str(text);
        self.buf.push('\n');
        self.hasher.update(self.buf.as_bytes());
        self.buf.pop();
    }

    /// A short digest of the last output added (for comparing two replays
    /// record by record).
    pub fn last_short(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.buf.hash(&mut h);
        h.finish()
    }

    /// The text of the last output added.
    pub fn last_text(&self) -> &str {
        &self.buf
    }

    pub fn hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
