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
use crate::cluster::{CycleReport, Event, External, Published};
use crate::driver::Executed;
use crate::hastat::Hastat;
use crate::init::{Action, InitConfig, Input, Reply};
use crate::monitor::{Observation, PolicyConfig};
use crate::process::{ProcId, Signal};
use crate::status::GroupState;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

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
    /// A `ranked` machine was created (with the driver): what
    /// [`crate::monitor::ranked::Ranked::new`] was given.
    RankedStart {
        node: u32,
        at: Millis,
        params: crate::monitor::ranked::RankedParams,
        initial: crate::monitor::ranked::Config,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        durable: Option<crate::monitor::ranked::Durable>,
        own: crate::status::ClStat,
    },
    /// One input stepped into the node's `ranked` machine.
    Ranked { node: u32, at: Millis, input: crate::monitor::ranked::Input },
    /// The node died with all its processes (simulation only); nothing more
    /// is fed to it until its next [`Record::Start`].
    Crash { node: u32, at: Millis },
    /// A checkpoint written by `mosha --record` after the records of each
    /// pass of its loop: at `at` on the node's monotonic clock its wall
    /// clock read `wall_ms` (ms since the Unix epoch, UTC), and the
    /// `records` decision records before it (marks not counted) digest to
    /// `decisions_sha256` (as in [`Record::End`]). Why: recordings of
    /// several nodes are lined up by these wall-clock anchors, and a node
    /// killed mid-run (no `End` line) is still verified up to its last
    /// mark. Decides nothing; a replay skips it except to compare.
    Mark { node: u32, at: Millis, wall_ms: u64, records: u64, decisions_sha256: String },
    /// A membership transition (issue 12) that node `node`'s `mosha`
    /// announced at `at`: number `number`, node `about` went `change`,
    /// recorded by node `by`. Written by the simulator as its transition
    /// recorder announces it. Why: a trace then shows the cluster-wide
    /// history next to the decisions, and a reader can check the
    /// `transition-*` invariants from the trace alone. Decides nothing; a
    /// replay skips it. An optional record kind: traces written before it
    /// have none and still read and replay.
    Transition {
        node: u32,
        at: Millis,
        number: u64,
        about: u32,
        change: crate::monitor::transitions::Change,
        by: u32,
    },
    /// The last line: how many records precede it and the writer's digest
    /// of every decision (see the simulator's `replay` module for its
    /// definition). Marks are not counted.
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
            | Record::RankedStart { node, .. }
            | Record::Ranked { node, .. }
            | Record::Crash { node, .. }
            | Record::Transition { node, .. }
            | Record::Mark { node, .. } => Some(*node),
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
            | Record::RankedStart { at, .. }
            | Record::Ranked { at, .. }
            | Record::Crash { at, .. }
            | Record::Transition { at, .. }
            | Record::Mark { at, .. } => Some(*at),
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
    /// A [`Record::RankedStart`] (decides nothing yet).
    RankedStarted,
    /// A [`Record::Ranked`]: the machine's commands.
    Ranked(&'a [crate::monitor::ranked::Command]),
}

/// The canonical text of the decisions in one outcome, replacing `buf`:
/// the machines' actions, events, externals, replies and wake-up times,
/// but not the backends' answers (pids, whether a signal found its
/// target), which a replay cannot know and which do not change the
/// machines. A writer hashes these texts, one line each, in record order
/// (SHA-256, hex) for [`Record::End`]; a replay does the same and compares.
///
/// For many outcomes use a [`DecisionWriter`]: same text, much cheaper.
pub fn decision_text(out: Outcome<'_>, buf: &mut String) {
    DecisionWriter::default().write(out, buf);
}

/// Writes [`decision_text`]s, remembering the text of each published
/// hastat. Why: every cycle publishes the node's whole view, and a
/// cluster's view is large (100 nodes × 50 groups) but rarely changes, so
/// it is the same `Arc` cycle after cycle; formatting it anew dominated the
/// cost of a traced simulation.
#[derive(Debug, Clone, Default)]
pub struct DecisionWriter {
    /// Text of a hastat by its address; the `Arc` is kept so the address
    /// cannot be reused by another hastat while cached.
    hastats: BTreeMap<usize, (Arc<Hastat>, String)>,
    /// Sweep the cache when it grows past this.
    limit: usize,
    /// The last non-empty node list written and its text.
    nodes: (Vec<u32>, String),
}

impl DecisionWriter {
    /// The text of `out`, replacing `buf` (exactly [`decision_text`]).
    pub fn write(&mut self, out: Outcome<'_>, buf: &mut String) {
        buf.clear();
        let actions = |buf: &mut String, ex: &[Executed]| {
            for e in ex {
                if let Executed::Action(a) = e {
                    debug_action(a, buf);
                    buf.push(';');
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
                let _ = write!(buf, "{:?}|", report.events);
                self.externals(&report.external, buf);
                let _ = write!(buf, "|{}|", report.next_wakeup.0);
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
            Outcome::RankedStarted => buf.push_str("rankedstart:"),
            Outcome::Ranked(commands) => {
                let _ = write!(buf, "ranked:{commands:?}");
            }
        }
    }

    /// `{:?}` of `external`, the hastats from the cache.
    fn externals(&mut self, external: &[External], buf: &mut String) {
        buf.push('[');
        for (i, ext) in external.iter().enumerate() {
            if i > 0 {
                buf.push_str(", ");
            }
            let External::Publish(published) = ext else {
                let _ = write!(buf, "{ext:?}");
                continue;
            };
            // Every field named, so a new one cannot be left out silently.
            let Published { hastat, members, stale, fenced, quorum, halting } = published;
            buf.push_str("Publish(Published { hastat: ");
            buf.push_str(self.hastat_text(hastat));
            let lists = [(", members: ", members), (", stale: ", stale), (", fenced: ", fenced)];
            for (name, nodes) in lists {
                buf.push_str(name);
                self.nodes_text(nodes, buf);
            }
            let _ = write!(buf, ", quorum: {quorum:?}, halting: {halting:?} }})");
        }
        buf.push(']');
    }

    /// [`debug_nodes`] of `nodes`, from the last non-empty list's text
    /// when it is the same list (a node's members, cycle after cycle).
    fn nodes_text(&mut self, nodes: &[u32], buf: &mut String) {
        if nodes.is_empty() {
            buf.push_str("[]");
            return;
        }
        let (last, text) = &mut self.nodes;
        if last.as_slice() != nodes {
            last.clear();
            last.extend_from_slice(nodes);
            text.clear();
            debug_nodes(nodes, text);
        }
        buf.push_str(text);
    }

    fn hastat_text(&mut self, hastat: &Arc<Hastat>) -> &str {
        let key = Arc::as_ptr(hastat) as usize;
        if !self.hastats.contains_key(&key) {
            if self.hastats.len() >= self.limit {
                // Keep the hastats some node still holds (current views).
                self.hastats.retain(|_, (h, _)| Arc::strong_count(h) > 1);
                self.limit = (2 * self.hastats.len()).max(256);
            }
            self.hastats.insert(key, (Arc::clone(hastat), format!("{hastat:?}")));
        }
        self.hastats.get(&key).map_or("", |(_, text)| text.as_str())
    }
}

/// `{:?}` of an init action, without the formatting machinery for the
/// ones every init step gives (status writes, spawns, signals): a
/// 100-node traced run formats thousands of clstats a simulated minute.
/// The text is exactly `format!("{action:?}")` (the derived `Debug`,
/// checked by `fast_debug_equals_derived_debug`); anything else goes
/// through `{:?}`.
fn debug_action(action: &Action, buf: &mut String) {
    match action {
        Action::WriteStatus { seq, status } => {
            buf.push_str("WriteStatus { seq: ");
            debug_uint(*seq, buf);
            buf.push_str(", status: ClStat { groups: {");
            for (i, (group, st)) in status.groups.iter().enumerate() {
                if i > 0 {
                    buf.push_str(", ");
                }
                debug_str(group, buf);
                buf.push_str(": GroupStatus { level: ");
                debug_str(&st.level, buf);
                buf.push_str(", state: ");
                debug_state(&st.state, buf);
                buf.push_str(" }");
            }
            buf.push_str("} } }");
        }
        Action::Spawn { id, group, tag, level, command } => {
            buf.push_str("Spawn { id: ProcId(");
            debug_uint(id.0, buf);
            buf.push_str("), group: ");
            debug_str(group, buf);
            buf.push_str(", tag: ");
            debug_str(tag, buf);
            buf.push_str(", level: ");
            debug_str(level, buf);
            buf.push_str(", command: ");
            debug_str(command, buf);
            buf.push_str(" }");
        }
        Action::Signal { id, signal } => {
            buf.push_str("Signal { id: ProcId(");
            debug_uint(id.0, buf);
            buf.push_str("), signal: ");
            buf.push_str(match signal {
                Signal::Int => "Int",
                Signal::Term => "Term",
                Signal::Kill => "Kill",
            });
            buf.push_str(" }");
        }
        Action::Notice(_) | Action::Exit => {
            let _ = write!(buf, "{action:?}");
        }
    }
}

/// `{:?}` of a string: quoted as is when no character needs escaping
/// (printable ASCII but `"` and `\`, what `str`'s `Debug` leaves alone),
/// else through `{:?}`.
fn debug_str(s: &str, buf: &mut String) {
    if s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') {
        buf.push('"');
        buf.push_str(s);
        buf.push('"');
    } else {
        let _ = write!(buf, "{s:?}");
    }
}

/// `{:?}` of a group state: the variant's name, `Other("word")`.
fn debug_state(state: &GroupState, buf: &mut String) {
    buf.push_str(match state {
        GroupState::Configured => "Configured",
        GroupState::Starting => "Starting",
        GroupState::Checking => "Checking",
        GroupState::Done => "Done",
        GroupState::Passed => "Passed",
        GroupState::Failed => "Failed",
        GroupState::Stopping => "Stopping",
        GroupState::Dumping => "Dumping",
        GroupState::Halting => "Halting",
        GroupState::Other(word) => {
            buf.push_str("Other(");
            debug_str(word, buf);
            buf.push(')');
            return;
        }
    });
}

/// `{:?}` of an unsigned integer (plain decimal digits).
fn debug_uint(mut n: u64, buf: &mut String) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits: one copy instead of a `push` (and its UTF-8 encoding
    // and capacity check) per digit.
    buf.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// `{:?}` of a list of node numbers (`[1, 2, 3]`), without the formatting
/// machinery: every cycle publishes the member list.
fn debug_nodes(nodes: &[u32], buf: &mut String) {
    buf.push('[');
    for (i, &n) in nodes.iter().enumerate() {
        if i > 0 {
            buf.push_str(", ");
        }
        debug_uint(n.into(), buf);
    }
    buf.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hastat::{NodeGroup, Unknown};
    use crate::monitor::Notice;
    use crate::status::GroupState;

    /// The text as first defined: everything through `{:?}`.
    fn by_debug(report: &CycleReport) -> String {
        format!("cycle:{:?}|{:?}|{}|", report.events, report.external, report.next_wakeup.0)
    }

    fn report(hastat: &Arc<Hastat>, quorum: bool) -> CycleReport {
        CycleReport {
            external: vec![
                External::Fence { node: 3 },
                External::Publish(Published {
                    hastat: Arc::clone(hastat),
                    members: vec![1, 2, 3],
                    stale: vec![3],
                    fenced: vec![3],
                    quorum,
                    halting: !quorum,
                }),
            ],
            events: vec![Event::Monitor(Notice::Stale { node: 3, age: Millis(61_000) })],
            executed: Vec::new(),
            next_wakeup: Millis(99_000),
        }
    }

    /// The cached hastat text gives the same decision text as formatting
    /// everything, on a cache miss, a hit, and after the hastat changed.
    #[test]
    fn writer_text_equals_debug_text() {
        let mut hastat = Hastat::default();
        let ng = |level: &str, state| NodeGroup { level: level.into(), state };
        hastat
            .groups
            .entry("web \"x\"".into())
            .or_default()
            .insert(1, ng("start", GroupState::Done));
        hastat.groups.entry("db".into()).or_default().insert(2, ng("test", GroupState::Failed));
        hastat.unknown.insert(3, Unknown { reason: "EIO".into(), last_good_used: true });
        let mut hastat = Arc::new(hastat);
        let mut writer = DecisionWriter::default();
        let mut buf = String::new();
        for quorum in [true, true, false] {
            let r = report(&hastat, quorum);
            writer.write(Outcome::Cycle { adopted: None, report: &r }, &mut buf);
            assert_eq!(buf, by_debug(&r));
        }
        Arc::make_mut(&mut hastat).groups.remove("db");
        let r = report(&hastat, true);
        writer.write(Outcome::Cycle { adopted: None, report: &r }, &mut buf);
        assert_eq!(buf, by_debug(&r));
        let mut plain = String::new();
        decision_text(Outcome::Cycle { adopted: None, report: &r }, &mut plain);
        assert_eq!(plain, buf);
    }

    /// The hand-written `{:?}` of init actions is the derived one, for
    /// plain and escaped strings, every group state, and the fallbacks.
    #[test]
    fn fast_debug_equals_derived_debug() {
        use crate::status::{ClStat, GroupStatus};
        let words = [
            "",
            "web",
            "1",
            "a b-c_d.e/f",
            "q\"t",
            "back\\slash",
            "tab\t",
            "é",
            "it's",
            "\u{301}x",
        ];
        let states = [
            GroupState::Configured,
            GroupState::Starting,
            GroupState::Checking,
            GroupState::Done,
            GroupState::Passed,
            GroupState::Failed,
            GroupState::Stopping,
            GroupState::Dumping,
            GroupState::Halting,
            GroupState::Other("weird \"x\"".into()),
            GroupState::Other("plain".into()),
        ];
        let mut actions = vec![
            Action::Exit,
            Action::Notice(crate::init::Notice::GroupState {
                group: "web".into(),
                level: "1".into(),
                state: GroupState::Done,
            }),
            Action::WriteStatus { seq: 0, status: ClStat::default() },
        ];
        for (i, word) in words.iter().enumerate() {
            let groups = states
                .iter()
                .enumerate()
                .map(|(j, state)| {
                    let level = words[(i + j) % words.len()].to_string();
                    (format!("{word}{j}"), GroupStatus { level, state: state.clone() })
                })
                .collect();
            actions
                .push(Action::WriteStatus { seq: u64::MAX - i as u64, status: ClStat { groups } });
            actions.push(Action::Spawn {
                id: ProcId(i as u64 * 1000),
                group: (*word).into(),
                tag: words[(i + 1) % words.len()].into(),
                level: words[(i + 2) % words.len()].into(),
                command: format!("echo {word}; exit 1"),
            });
        }
        for signal in [Signal::Int, Signal::Term, Signal::Kill] {
            actions.push(Action::Signal { id: ProcId(7), signal });
        }
        for action in &actions {
            let mut buf = String::from("x");
            debug_action(action, &mut buf);
            assert_eq!(buf, format!("x{action:?}"));
        }
    }

    /// The cached node list text follows each change of the lists.
    #[test]
    fn node_list_cache_follows_changes() {
        let hastat = Arc::new(Hastat::default());
        let mut writer = DecisionWriter::default();
        let mut buf = String::new();
        let lists: [&[u32]; 7] = [&[1, 2, 3], &[1, 2, 3], &[], &[1, 2], &[3], &[1, 2, 3], &[10]];
        for (i, members) in lists.iter().enumerate() {
            let mut r = report(&hastat, true);
            let stale = lists[(i + 3) % lists.len()];
            if let External::Publish(p) = &mut r.external[1] {
                p.members = members.to_vec();
                p.stale = stale.to_vec();
                p.fenced = members.to_vec();
            }
            writer.write(Outcome::Cycle { adopted: None, report: &r }, &mut buf);
            assert_eq!(buf, by_debug(&r), "step {i}");
        }
    }

    #[test]
    fn node_lists_read_as_debug() {
        for nodes in [vec![], vec![0], vec![1, 2, 3], vec![9, 10, 99, 100, 4_294_967_295]] {
            let mut buf = String::from("x");
            debug_nodes(&nodes, &mut buf);
            assert_eq!(buf, format!("x{nodes:?}"));
        }
    }

    /// The cache keeps what nodes still hold and lets the rest go.
    #[test]
    fn writer_cache_is_swept() {
        let mut writer = DecisionWriter::default();
        let mut buf = String::new();
        let held = Arc::new(Hastat::default());
        let r = report(&held, true);
        writer.write(Outcome::Cycle { adopted: None, report: &r }, &mut buf);
        drop(r);
        for i in 0..1000u32 {
            let mut h = Hastat::default();
            h.unknown.insert(i, Unknown { reason: String::new(), last_good_used: false });
            let r = report(&Arc::new(h), true);
            writer.write(Outcome::Cycle { adopted: None, report: &r }, &mut buf);
            assert_eq!(buf, by_debug(&r));
        }
        assert!(writer.hastats.len() <= 256, "{}", writer.hastats.len());
        assert!(writer.hastats.contains_key(&(Arc::as_ptr(&held) as usize)));
    }
}
