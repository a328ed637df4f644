//! The daemon's answer to `{"op":"status"}`, as typed structs serialized
//! straight to JSON (serde derive), without a `serde_json::Value` tree.
//!
//! Why: a status reply carries every entry, and with 1,000 entries the
//! `Value` form cost about 12 allocations per entry on every call, while
//! `clinit --wait` (and the benches) ask every 20 ms. The bytes on the wire
//! are unchanged: fields are declared in the alphabetical order in which a
//! `serde_json::Value` map (a `BTreeMap`) used to write them, and the unit
//! test [`tests::bytes_are_unchanged_from_the_value_tree_form`] compares
//! the two forms for every entry state.

use crate::childlog::OutputThread;
use clinit_engine::init::report::{EntryReport, EntryState};
use clinit_engine::process::ProcId;
use clinit_engine::status::ClStat;
use serde::Serialize;
use std::sync::atomic::Ordering;

/// The whole status document (`status` in the reply). Field order is the
/// wire order: alphabetical.
#[derive(Debug, Serialize)]
pub struct StatusDoc<'a> {
    /// Children's output settings; `null` when children inherit stderr.
    pub child_output: Option<OutputLine<'a>>,
    /// The cltab path the daemon serves.
    pub cltab: &'a str,
    /// `cgroup v2 at …` or `process groups (…)`.
    pub containment: &'a str,
    pub entries: Vec<EntryLine<'a>>,
    pub groups: Vec<GroupLine<'a>>,
    /// Adopted orphans (the daemon is a subreaper) still alive.
    pub orphans: &'a [u32],
    /// Actions the machine asked for that are not carried out yet.
    pub pending_actions: usize,
    /// The daemon's own pid.
    pub pid: u32,
    /// Live children.
    pub processes: usize,
    pub respawns_waiting: Vec<GroupTag<'a>>,
    pub shutting_down: bool,
}

/// `child_output` of the status: mode, directory, rotation, counters.
#[derive(Debug, Serialize)]
pub struct OutputLine<'a> {
    /// Lines dropped (a child wrote faster than its log could take).
    pub dropped: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// Lines written to per-entry logs.
    pub lines: u64,
    pub log_dir: String,
    /// Rotate a log before it passes this size, in bytes.
    pub max_bytes: u64,
    pub mode: &'a str,
}

impl<'a> OutputLine<'a> {
    /// The output thread's settings and counters, `None` without one.
    pub fn of(out: Option<&'a OutputThread>) -> Option<Self> {
        out.map(|o| OutputLine {
            dropped: o.stats.dropped.load(Ordering::Relaxed),
            keep: o.cfg.rotation.keep,
            lines: o.stats.lines.load(Ordering::Relaxed),
            log_dir: o.cfg.dir.display().to_string(),
            max_bytes: o.cfg.rotation.max_bytes,
            mode: o.cfg.mode.as_str(),
        })
    }
}

/// One group's line, as in clstat.
#[derive(Debug, Serialize)]
pub struct GroupLine<'a> {
    pub group: &'a str,
    pub level: &'a str,
    pub state: &'a str,
}

/// A respawn entry whose restart is held back (a group and a tag).
#[derive(Debug, Serialize)]
pub struct GroupTag<'a> {
    pub group: &'a str,
    pub tag: &'a str,
}

/// One entry, the fields of [`EntryReport`] (its state flattened) plus the
/// live instance's pid; absent values are left out, as before.
#[derive(Debug, Serialize)]
pub struct EntryLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'a str>,
    pub fast_respawns: u32,
    /// Stopping: for how long, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,
    pub group: &'a str,
    /// Throttled or starved: the next start is in this many ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<&'a str>,
    pub mode: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Starved: the resource that ran out (`out of file descriptors (EMFILE)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub restarts: u32,
    /// Stopping: the last signal sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<&'a str>,
    pub state: &'a str,
    pub tag: &'a str,
    /// How long the live instance has run, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
}

impl<'a> EntryLine<'a> {
    /// `r` with the pid of its live instance, looked up by `pid`.
    pub fn of(r: &'a EntryReport, pid: impl Fn(ProcId) -> Option<u32>) -> Self {
        let mut reason = None;
        let (state, in_ms, for_ms, signal) = match &r.state {
            EntryState::Queued => ("queued", None, None, None),
            EntryState::Starting => ("starting", None, None, None),
            EntryState::Running => ("running", None, None, None),
            EntryState::Lingering => ("lingering", None, None, None),
            EntryState::Exited => ("exited", None, None, None),
            EntryState::Passed => ("passed", None, None, None),
            EntryState::Failed => ("failed", None, None, None),
            EntryState::Throttled { in_ms } => ("throttled", Some(*in_ms), None, None),
            EntryState::Starved { in_ms, reason: why } => {
                reason = Some(why.to_string());
                ("starved", Some(*in_ms), None, None)
            }
            EntryState::Stopping { for_ms, signal } => {
                ("stopping", None, Some(*for_ms), Some(signal.name()))
            }
        };
        EntryLine {
            failure: r.failure.as_deref(),
            fast_respawns: r.fast_respawns,
            for_ms,
            group: &r.group,
            in_ms,
            last_exit: r.last_exit.as_deref(),
            mode: r.mode.as_str(),
            pid: r.id.and_then(pid),
            reason,
            restarts: r.restarts,
            signal,
            state,
            tag: &r.tag,
            uptime_ms: r.uptime_ms,
        }
    }
}

/// The group lines of `status`.
pub fn group_lines(status: &ClStat) -> Vec<GroupLine<'_>> {
    status
        .groups
        .iter()
        .map(|(g, s)| GroupLine { group: g, level: &s.level, state: s.state.as_str() })
        .collect()
}

/// One report per entry state, with varied fields (a quote in the group,
/// a newline in the tag, both modes): the fixture of the byte-compatibility
/// tests here and in `status_detail`.
#[cfg(test)]
pub(crate) fn every_state_reports() -> Vec<EntryReport> {
    use clinit_engine::cltab::Mode;
    use clinit_engine::process::Signal;
    let states = [
        EntryState::Queued,
        EntryState::Starting,
        EntryState::Running,
        EntryState::Lingering,
        EntryState::Exited,
        EntryState::Passed,
        EntryState::Failed,
        EntryState::Throttled { in_ms: 1_234 },
        EntryState::Starved { in_ms: 250, reason: clinit_engine::process::Shortage::Descriptors },
        EntryState::Stopping { for_ms: 567, signal: Signal::Term },
    ];
    states
        .into_iter()
        .enumerate()
        .map(|(i, state)| EntryReport {
            group: format!("g\"{i}"),
            tag: format!("t{i}\n"),
            mode: if i % 2 == 0 { Mode::Respawn } else { Mode::Once },
            state,
            fast_respawns: i as u32,
            restarts: 2 * i as u32,
            uptime_ms: (i % 2 == 0).then_some(10 * i as u64),
            last_exit: (i % 3 == 0).then(|| format!("exit {i}")),
            failure: (i % 4 == 0).then(|| "not ready within 90s".to_string()),
            id: Some(ProcId(i as u64)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed document gives the same bytes as the `serde_json::json!`
    /// construction the daemon used before (kept here as the reference),
    /// for every entry state, with and without pids and child output.
    #[test]
    fn bytes_are_unchanged_from_the_value_tree_form() {
        let reports = every_state_reports();
        let status = ClStat::parse(
            "Cluster::Init::Group web start DONE\nCluster::Init::Group db 2 STARTING\n",
        );
        let pid = |id: ProcId| (id.0 % 2 == 1).then_some(1000 + id.0 as u32);
        let orphans = [7_u32, 9];
        let waiting = [("web".to_string(), "t1".to_string())];
        for output in [None, Some(("inherit", "/run/clinit/log", 1_u64 << 20, 3_u32, 5_u64, 1_u64))]
        {
            let doc = StatusDoc {
                child_output: output.map(|(mode, dir, max_bytes, keep, lines, dropped)| {
                    OutputLine { dropped, keep, lines, log_dir: dir.to_string(), max_bytes, mode }
                }),
                cltab: "/etc/cltab \"x\"",
                containment: "process groups (not root)",
                entries: reports.iter().map(|r| EntryLine::of(r, pid)).collect(),
                groups: group_lines(&status),
                orphans: &orphans,
                pending_actions: 3,
                pid: 4242,
                processes: 17,
                respawns_waiting: waiting
                    .iter()
                    .map(|(g, t)| GroupTag { group: g, tag: t })
                    .collect(),
                shutting_down: true,
            };
            let got = serde_json::to_string(&doc).expect("serializes");
            // The former construction.
            let groups: Vec<serde_json::Value> = status
                .groups
                .iter()
                .map(|(g, s)| {
                    serde_json::json!({"group": g, "level": s.level, "state": s.state.as_str()})
                })
                .collect();
            let entries: Vec<serde_json::Value> = reports
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    if let (Some(obj), Some(p)) = (v.as_object_mut(), r.id.and_then(pid)) {
                        obj.insert("pid".into(), p.into());
                    }
                    v
                })
                .collect();
            let child_output = output
                .map(|(mode, dir, max_bytes, keep, lines, dropped)| {
                    serde_json::json!({"mode": mode, "log_dir": dir, "max_bytes": max_bytes,
                        "keep": keep, "lines": lines, "dropped": dropped})
                })
                .unwrap_or(serde_json::Value::Null);
            let want = serde_json::json!({
                "pid": 4242,
                "cltab": "/etc/cltab \"x\"",
                "processes": 17,
                "pending_actions": 3,
                "containment": "process groups (not root)",
                "child_output": child_output,
                "orphans": orphans,
                "respawns_waiting": waiting.iter()
                    .map(|(g, t)| serde_json::json!({"group": g, "tag": t}))
                    .collect::<Vec<_>>(),
                "shutting_down": true,
                "groups": groups,
                "entries": entries,
            })
            .to_string();
            assert_eq!(got, want);
        }
    }
}
