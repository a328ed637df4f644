//! The trace format: every input a node's machines received, as JSON lines.
//!
//! Why it lives in the engine: a trace must be replayable by the simulator
//! (`clinit-sim replay`) whether the simulator or a production `mosha
//! --record FILE` wrote it, and `mosha` must not depend on the simulator.
//! So the record *types* are here (pure serde data, no I/O); writers and
//! readers live with their binaries.
//!
//! A trace is one [`Header`] line followed by [`Record`] lines in the order
//! the inputs were applied, across all nodes of the recording (a production
//! recording has one node). Replaying means: for each [`Record::Start`] build
//! a fresh [`crate::cluster::ClusterNode`] (policy, init config, monitor seed,
//! cltab, start time as recorded), then feed every later record of that node
//! to it. Since the machines are pure and draw randomness only from their
//! seeded streams, the same records give the same decisions. An optional
//! [`Record::End`] carries a digest of the decisions so a replay can say
//! "bit for bit" or point at the first difference.
//!
//! What is *not* an input and therefore not recorded: what the machines
//! decided (tells, spawns, signals, status writes). Backend answers that
//! change a machine's state are inputs: a spawn that failed is recorded as
//! [`Record::SpawnFailed`] (a replay backend then fails the same spawn).

use crate::cltab::Cltab;
use crate::cluster::{CycleReport, Event};
use crate::driver::Executed;
use crate::init::{InitConfig, Input, Reply};
use crate::monitor::{Observation, PolicyConfig};
use crate::process::ProcId;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The `format` value of a [`Header`] this version writes and reads.
pub const FORMAT: &str = "clinit-trace/1";

/// The first line of a trace. `C` is the writer's own configuration (the
/// simulator's scenario, or `mosha`'s options): a reader that does not know
/// it can read it as any JSON value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header<C> {
    /// Always [`FORMAT`].
    pub format: String,
    /// Version of the program that wrote it (`CARGO_PKG_VERSION`).
    pub version: String,
    /// `clinit-sim` or `mosha`.
    pub source: String,
    /// The seed of a simulated world (`None` for a production recording).
    pub seed: Option<u64>,
    pub config: C,
}

impl<C> Header<C> {
    pub fn new(source: &str, version: &str, seed: Option<u64>, config: C) -> Header<C> {
        Header {
            format: FORMAT.to_string(),
            version: version.to_string(),
            source: source.to_string(),
            seed,
            config,
        }
    }
}

/// One input to one node, in application order. Externally tagged
/// (`{"cycle":{...}}`): serde cannot read the integer keys of
/// [`Observation::nodes`] back through an internally tagged enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The node's machines were (re)created: a fresh init machine with
    /// `cltab` (its queued first actions are flushed at once) and a fresh
    /// monitor. Every earlier state of the node is gone.
    Start {
        node: u32,
        at: Millis,
        policy: PolicyConfig,
        init: InitConfig,
        monitor_seed: u64,
        cltab: Cltab,
    },
    /// One monitor cycle: `adopt` (a newly replicated cltab) is handed to
    /// the node first, then `obs` to [`crate::cluster::ClusterNode::cycle`].
    Cycle {
        node: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adopt: Option<Cltab>,
        obs: Observation,
    },
    /// An input to the init machine from outside the monitor: a child's
    /// exit, a timer tick, an operator's tell, a shutdown.
    Init { node: u32, at: Millis, input: Input },
    /// Quorum-less or shutdown stop of every local group
    /// ([`crate::cluster::ClusterNode::stop_all`]) outside a cycle.
    StopAll { node: u32, at: Millis },
    /// The spawn of `id` by the node's current incarnation failed (the
    /// record follows the one whose processing spawned it).
    SpawnFailed { node: u32, id: ProcId, reason: String },
    /// The node died with all its processes (simulation only); nothing more
    /// is fed to it until its next [`Record::Start`].
    Crash { node: u32, at: Millis },
    /// The last line: how many records precede it and the writer's digest
    /// of every decision (see the simulator's `replay` module for its
    /// definition).
    End { records: u64, decisions_sha256: String },
}

impl Record {
    /// The node this record is about (`None` for [`Record::End`]).
    pub fn node(&self) -> Option<u32> {
        match self {
            Record::Start { node, .. }
            | Record::Cycle { node, .. }
            | Record::Init { node, .. }
            | Record::StopAll { node, .. }
            | Record::SpawnFailed { node, .. }
            | Record::Crash { node, .. } => Some(*node),
            Record::End { .. } => None,
        }
    }

    /// When it happened, on the node's monotonic clock (`None` for
    /// [`Record::SpawnFailed`] and [`Record::End`]).
    pub fn at(&self) -> Option<Millis> {
        match self {
            Record::Start { at, .. }
            | Record::Init { at, .. }
            | Record::StopAll { at, .. }
            | Record::Crash { at, .. } => Some(*at),
            Record::Cycle { obs, .. } => Some(obs.now),
            Record::SpawnFailed { .. } | Record::End { .. } => None,
        }
    }
}

/// What applying one record produced, borrowed (see [`decision_text`]).
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// A [`Record::Start`]: what flushing the new init machine did.
    Started(&'a [Executed]),
    /// A [`Record::Cycle`]: the cltab adoption (if any) and the cycle.
    Cycle { adopted: Option<(&'a Event, &'a [Executed])>, report: &'a CycleReport },
    /// A [`Record::Init`].
    Init { reply: &'a Reply, executed: &'a [Executed] },
    /// A [`Record::StopAll`].
    StopAll { told: &'a [String], executed: &'a [Executed] },
}

/// The canonical text of the decisions in one outcome, replacing `buf`:
/// the machines' actions, events, externals, replies and wake-up times,
/// but not the backends' answers (pids, whether a signal found its
/// target), which a replay cannot know and which do not change the
/// machines. A writer hashes these texts, one line each, in record order
/// (SHA-256, hex) for [`Record::End`]; a replay does the same and compares.
pub fn decision_text(out: Outcome<'_>, buf: &mut String) {
    buf.clear();
    let actions = |buf: &mut String, ex: &[Executed]| {
        for e in ex {
            if let Executed::Action(a) = e {
                let _ = write!(buf, "{a:?};");
            }
        }
    };
    match out {
        Outcome::Started(ex) => {
            buf.push_str("start:");
            actions(buf, ex);
        }
        Outcome::Cycle { adopted, report } => {
            buf.push_str("cycle:");
            if let Some((event, ex)) = adopted {
                let _ = write!(buf, "{event:?};");
                actions(buf, ex);
            }
            let _ =
                write!(buf, "{:?}|{:?}|{}|", report.events, report.external, report.next_wakeup.0);
            actions(buf, &report.executed);
        }
        Outcome::Init { reply, executed } => {
            let _ = write!(buf, "init:{reply:?}|");
            actions(buf, executed);
        }
        Outcome::StopAll { told, executed } => {
            let _ = write!(buf, "stopall:{told:?}|");
            actions(buf, executed);
        }
    }
}
