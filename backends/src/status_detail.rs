//! The detailed status file, `<clstat>.json` next to `clstat`: every group's
//! line and every entry's state, pid, restarts and last exit, for monitoring
//! tools that read files rather than sockets. The `clstat` file itself keeps
//! the original's lines.
//!
//! Times are absolute (seconds since the Unix epoch, millisecond precision)
//! so the file changes only when something happens, not as time passes: it
//! is rewritten (atomically) only when its content differs.

use clinit_engine::init::report::{EntryReport, EntryState};
use clinit_engine::process::ProcId;
use clinit_engine::status::ClStat;
use clinit_engine::time::Millis;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `<clstat>.json` beside the clstat file.
pub fn path_for(clstat: &Path) -> PathBuf {
    let mut name = clstat.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "clstat".into());
    name.push(".json");
    clstat.with_file_name(name)
}

/// Seconds since the epoch of the machine time `at`, given the wall-clock
/// time of machine time 0.
fn wall(start: SystemTime, at: Millis) -> f64 {
    let t = start + Duration::from_millis(at.0);
    t.duration_since(UNIX_EPOCH).map(|d| (d.as_millis() as f64) / 1000.0).unwrap_or(0.0)
}

/// One group's line in the file.
#[derive(serde::Serialize)]
struct GroupLine<'a> {
    group: &'a str,
    level: &'a str,
    state: &'a str,
}

/// One entry in the file. Fields are in alphabetical order, the order the
/// file has always had (it was built as a `serde_json` map, which sorts).
#[derive(serde::Serialize)]
struct EntryLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a str>,
    fast_respawns: u32,
    group: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_exit: Option<&'a str>,
    mode: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    /// Starved: the resource that ran out.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<f64>,
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopping_since: Option<f64>,
    tag: &'a str,
}

/// The whole file.
#[derive(serde::Serialize)]
struct Detail<'a> {
    entries: Vec<EntryLine<'a>>,
    groups: Vec<GroupLine<'a>>,
}

/// The file's JSON text. `now` is machine time, `start` the wall-clock
/// time of machine time 0; `pid` looks up a live instance's pid.
///
/// Serialized straight from borrowed fields: with 1,000 entries a
/// `serde_json::Value` tree made about 2,000 allocations and 2.7 MB at
/// its peak per render, which the daemon's heap kept afterwards.
pub fn render(
    status: &ClStat,
    entries: &[EntryReport],
    pid: impl Fn(ProcId) -> Option<u32>,
    now: Millis,
    start: SystemTime,
) -> String {
    let groups = status
        .groups
        .iter()
        .map(|(g, s)| GroupLine { group: g, level: &s.level, state: s.state.as_str() })
        .collect();
    let entries = entries
        .iter()
        .map(|r| {
            let at = |ms: u64| wall(start, now.saturating_sub(Millis(ms)));
            let mut line = EntryLine {
                failure: r.failure.as_deref(),
                fast_respawns: r.fast_respawns,
                group: &r.group,
                last_exit: r.last_exit.as_deref(),
                mode: r.mode.as_str(),
                next_start: None,
                pid: r.id.and_then(&pid),
                reason: None,
                restarts: r.restarts,
                signal: None,
                started: r.uptime_ms.map(at),
                state: "",
                stopping_since: None,
                tag: &r.tag,
            };
            line.state = match &r.state {
                EntryState::Queued => "queued",
                EntryState::Starting => "starting",
                EntryState::Running => "running",
                EntryState::Lingering => "lingering",
                EntryState::Exited => "exited",
                EntryState::Passed => "passed",
                EntryState::Failed => "failed",
                EntryState::Throttled { in_ms } => {
                    line.next_start = Some(wall(start, now + Millis(*in_ms)));
                    "throttled"
                }
                EntryState::Starved { in_ms, reason } => {
                    line.next_start = Some(wall(start, now + Millis(*in_ms)));
                    line.reason = Some(reason.to_string());
                    "starved"
                }
                EntryState::Stopping { for_ms, signal } => {
                    line.stopping_since = Some(at(*for_ms));
                    line.signal = Some(signal.name());
                    "stopping"
                }
            };
            line
        })
        .collect();
    let mut text = serde_json::to_string(&Detail { entries, groups }).unwrap_or_default();
    text.push('\n');
    text
}

/// The file and a digest of what was last written to it.
pub struct DetailFile {
    pub path: PathBuf,
    /// Digest of the last text written ([`digest`]), not the text: with
    /// 1,000 entries the text is about 300 kB, and keeping it cost the
    /// daemon half a megabyte of memory for a comparison.
    last: Option<u64>,
    /// The last write error, reported once until the next success.
    failing: crate::atomic::WriteFailure,
}

/// FNV-1a, 64 bits: a change of the text changes it but for a 2^-64
/// chance; the file is then rewritten at the next change instead.
fn digest(text: &[u8]) -> u64 {
    text.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl DetailFile {
    pub fn new(clstat: &Path) -> Self {
        DetailFile { path: path_for(clstat), last: None, failing: Default::default() }
    }

    /// The last write failed: the next update retries it even when the
    /// text is the same.
    pub fn is_failing(&self) -> bool {
        self.last.is_none() || self.failing.is_failing()
    }

    /// Write `text` if it differs from the last write. A failure is
    /// retried at the next update and returned (for a log line) only when
    /// it is new, so a read-only directory does not flood the log.
    pub fn update(&mut self, text: String) -> Result<(), String> {
        self.update_str(&text)
    }

    /// [`DetailFile::update`] of borrowed text (the caller keeps it, to
    /// retry a failed write).
    pub fn update_str(&mut self, text: &str) -> Result<(), String> {
        let d = digest(text.as_bytes());
        if self.last == Some(d) {
            return Ok(());
        }
        let result = self.failing.replace(&self.path, text.as_bytes());
        if !self.failing.is_failing() {
            self.last = Some(d);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_on_change_and_reports_a_failure_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = DetailFile::new(&dir.path().join("clstat"));
        f.update("a\n".into()).expect("written");
        assert_eq!(std::fs::read_to_string(&f.path).expect("file"), "a\n");
        let mut bad = DetailFile::new(&dir.path().join("missing/dir/clstat"));
        assert!(bad.update("a\n".into()).is_err());
        assert!(bad.update("b\n".into()).is_ok(), "the same failure is not reported again");
    }

    /// The text is the same as when it was built as a `serde_json::Value`
    /// (a sorted map): same keys, same order, same numbers, for every state.
    #[test]
    fn text_is_unchanged_from_the_value_tree_form() {
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let reports = crate::status_reply::every_state_reports();
        let status = ClStat::parse("Cluster::Init::Group web start DONE\n");
        let pid = |id: ProcId| (id.0 % 2 == 1).then_some(1000 + id.0 as u32);
        let now = Millis(50_000);
        let got = render(&status, &reports, pid, now, start);
        // The former construction, kept here as the reference.
        let groups: Vec<serde_json::Value> = status
            .groups
            .iter()
            .map(|(g, s)| serde_json::json!({"group": g, "level": s.level, "state": s.state.as_str()}))
            .collect();
        let entries: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                let mut v = serde_json::json!({"group": r.group, "tag": r.tag,
                    "mode": r.mode.as_str(), "restarts": r.restarts,
                    "fast_respawns": r.fast_respawns});
                let obj = v.as_object_mut().expect("object");
                let at = |ms: u64| wall(start, now.saturating_sub(Millis(ms)));
                let state = match &r.state {
                    EntryState::Queued => "queued",
                    EntryState::Starting => "starting",
                    EntryState::Running => "running",
                    EntryState::Lingering => "lingering",
                    EntryState::Exited => "exited",
                    EntryState::Passed => "passed",
                    EntryState::Failed => "failed",
                    EntryState::Throttled { in_ms } => {
                        obj.insert("next_start".into(), wall(start, now + Millis(*in_ms)).into());
                        "throttled"
                    }
                    EntryState::Starved { in_ms, reason } => {
                        obj.insert("next_start".into(), wall(start, now + Millis(*in_ms)).into());
                        obj.insert("reason".into(), reason.to_string().into());
                        "starved"
                    }
                    EntryState::Stopping { for_ms, signal } => {
                        obj.insert("stopping_since".into(), at(*for_ms).into());
                        obj.insert("signal".into(), signal.name().into());
                        "stopping"
                    }
                };
                obj.insert("state".into(), state.into());
                if let Some(up) = r.uptime_ms {
                    obj.insert("started".into(), at(up).into());
                }
                if let Some(x) = &r.last_exit {
                    obj.insert("last_exit".into(), x.as_str().into());
                }
                if let Some(why) = &r.failure {
                    obj.insert("failure".into(), why.as_str().into());
                }
                if let Some(p) = r.id.and_then(pid) {
                    obj.insert("pid".into(), p.into());
                }
                v
            })
            .collect();
        let want = serde_json::json!({"groups": groups, "entries": entries}).to_string() + "\n";
        assert_eq!(got, want);
    }

    #[test]
    fn sits_next_to_clstat() {
        assert_eq!(path_for(Path::new("/run/clinit/clstat")), Path::new("/run/clinit/clstat.json"));
    }

    #[test]
    fn times_are_absolute_so_the_text_does_not_change_as_time_passes() {
        use clinit_engine::cltab::Mode;
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let report = |now: u64| EntryReport {
            group: "g".into(),
            tag: "r".into(),
            mode: Mode::Respawn,
            state: EntryState::Throttled { in_ms: 60_000 - now },
            fast_respawns: 6,
            restarts: 7,
            uptime_ms: None,
            last_exit: Some("exit 1".into()),
            failure: None,
            id: None,
        };
        let a = render(&ClStat::default(), &[report(100)], |_| None, Millis(100), start);
        let b = render(&ClStat::default(), &[report(900)], |_| None, Millis(900), start);
        assert_eq!(a, b);
        let v: serde_json::Value = serde_json::from_str(&a).expect("json");
        assert_eq!(v["entries"][0]["next_start"], 1_060.0);
        assert_eq!(v["entries"][0]["state"], "throttled");
        assert_eq!(v["entries"][0]["last_exit"], "exit 1");
    }
}
