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

/// The file's JSON text. `now` is machine time, `start` the wall-clock
/// time of machine time 0; `pid` looks up a live instance's pid.
pub fn render(
    status: &ClStat,
    entries: &[EntryReport],
    pid: impl Fn(ProcId) -> Option<u32>,
    now: Millis,
    start: SystemTime,
) -> String {
    let groups: Vec<serde_json::Value> = status
        .groups
        .iter()
        .map(|(g, s)| serde_json::json!({"group": g, "level": s.level, "state": s.state.as_str()}))
        .collect();
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .map(|r| {
            let mut v = serde_json::json!({
                "group": r.group,
                "tag": r.tag,
                "mode": r.mode.as_str(),
                "restarts": r.restarts,
                "fast_respawns": r.fast_respawns,
            });
            let obj = v.as_object_mut().expect("a JSON object");
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
            if let Some(p) = r.id.and_then(&pid) {
                obj.insert("pid".into(), p.into());
            }
            v
        })
        .collect();
    let mut text = serde_json::json!({"groups": groups, "entries": entries}).to_string();
    text.push('\n');
    text
}

/// The file and what was last written to it.
pub struct DetailFile {
    pub path: PathBuf,
    last: Option<String>,
    /// The last write error, reported once until the next success.
    failing: crate::atomic::WriteFailure,
}

impl DetailFile {
    pub fn new(clstat: &Path) -> Self {
        DetailFile { path: path_for(clstat), last: None, failing: Default::default() }
    }

    /// Write `text` if it differs from the last write. A failure is
    /// retried at the next update and returned (for a log line) only when
    /// it is new, so a read-only directory does not flood the log.
    pub fn update(&mut self, text: String) -> Result<(), String> {
        if self.last.as_ref() == Some(&text) {
            return Ok(());
        }
        let result = self.failing.replace(&self.path, text.as_bytes());
        if !self.failing.is_failing() {
            self.last = Some(text);
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
