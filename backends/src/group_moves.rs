//! The group-change record: a small, bounded file in each node's shared
//! directory (`<mfsbase>/<N>/<varpath>/groupmoves`, beside `clstat`) where
//! `mosha` appends one line each time one of its groups' clstat lines
//! changes, with the wall-clock time. `mosha status` reads every node's
//! record to say how long a group has run where it runs and how often it
//! moved in the last hour (issue 11, "the cluster at a glance"; `crm_mon`
//! shows the same from Pacemaker's CIB status history).
//!
//! The file only records what the node's own clstat said and when; what
//! counts as "running" and as a "move" is decided by the reader
//! ([`crate::cluster_status`]), with the same rule as its RUNNING ON column.
//!
//! Format: a comment line, then `at_ms group level STATE` per change, oldest
//! first, at most [`KEEP`] lines (older ones drop off the front). Written
//! whole by temp+rename ([`crate::atomic::replace_atomic`]), so a reader
//! never sees a torn file. Times are for operators only: no rule compares
//! them across clocks.

use clinit_engine::status::ClStat;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name, beside `clstat`.
pub const FILE: &str = "groupmoves";
/// Lines kept (about 30 bytes each: the file stays under 10 KiB).
pub const KEEP: usize = 200;
/// Largest file read (bytes); larger is refused as not ours.
pub const LIMIT: u64 = 64 * 1024;

/// One change of a group's clstat line on the node that keeps the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// Wall clock of the writing node, ms since the epoch.
    pub at_ms: i64,
    pub group: String,
    pub level: String,
    /// The clstat state word (`DONE`, `STARTING`, ...).
    pub state: String,
}

pub use crate::word_log::ParseError;

/// Parse a record (blank and `#` lines skipped). Any malformed line makes
/// the whole file unusable: a half-understood record would give wrong
/// ages.
pub fn parse(text: &str) -> Result<Vec<GroupChange>, ParseError> {
    crate::word_log::parse(text, "want `at_ms group level STATE`", |[at, group, level, state]| {
        Ok(GroupChange {
            at_ms: at.parse::<i64>().map_err(|_| "at_ms is not an integer")?,
            group: group.into(),
            level: level.into(),
            state: state.into(),
        })
    })
}

/// The file's text.
pub fn render(changes: &[GroupChange]) -> String {
    let lines = changes.iter().map(|c| format!("{} {} {} {}", c.at_ms, c.group, c.level, c.state));
    crate::word_log::render("# group changes (mosha): at_ms group level STATE", lines)
}

/// Read a node's record: `Ok(None)` when it has none.
pub fn read(path: &Path) -> Result<Option<Vec<GroupChange>>, String> {
    crate::word_log::read(path, LIMIT, parse)
}

/// The writer `mosha` keeps: the record so far and each group's last line.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    changes: Vec<GroupChange>,
    /// Each group's last recorded `(level, state)`.
    last: BTreeMap<String, (String, String)>,
    /// The last write error, reported once until a write succeeds.
    failing: crate::atomic::WriteFailure,
}

impl Recorder {
    /// Start from the record already at `path` (kept across restarts, so a
    /// restart does not look like a change); an unreadable or malformed
    /// one is started afresh, and the error returned for a log line.
    pub fn open(path: PathBuf) -> (Recorder, Option<String>) {
        let (changes, error) = match read(&path) {
            Ok(found) => (found.unwrap_or_default(), None),
            Err(e) => (Vec::new(), Some(format!("{e}; starting a new record"))),
        };
        let last =
            changes.iter().map(|c| (c.group.clone(), (c.level.clone(), c.state.clone()))).collect();
        (Recorder { path, changes, last, failing: Default::default() }, error)
    }

    /// The record kept in memory.
    pub fn changes(&self) -> &[GroupChange] {
        &self.changes
    }

    /// Note the clstat about to be written (`at_ms`: wall clock, ms since
    /// the epoch). Appends a line per group whose line changed and
    /// rewrites the file if any did. Returns a write error only when it is
    /// new (a read-only directory does not flood the log); the change
    /// stays in memory and is written with the next one.
    pub fn note(&mut self, status: &ClStat, at_ms: i64) -> Result<(), String> {
        let mut changed = false;
        for (group, st) in &status.groups {
            let line = (st.level.clone(), st.state.as_str().to_string());
            if self.last.get(group) == Some(&line) {
                continue;
            }
            self.changes.push(GroupChange {
                at_ms,
                group: group.clone(),
                level: line.0.clone(),
                state: line.1.clone(),
            });
            self.last.insert(group.clone(), line);
            changed = true;
        }
        if !changed && !self.failing.is_failing() {
            return Ok(());
        }
        if self.changes.len() > KEEP {
            let drop = self.changes.len() - KEEP;
            self.changes.drain(..drop);
        }
        self.failing.replace(&self.path, render(&self.changes).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clstat(lines: &str) -> ClStat {
        ClStat::parse(lines)
    }

    #[test]
    fn records_each_changed_line_once_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE);
        let (mut r, err) = Recorder::open(path.clone());
        assert_eq!(err, None);
        let a =
            clstat("Cluster::Init::Group web start STARTING\nCluster::Init::Group db stop DONE\n");
        r.note(&a, 1000).expect("write");
        r.note(&a, 2000).expect("write");
        let b = clstat("Cluster::Init::Group web start DONE\nCluster::Init::Group db stop DONE\n");
        r.note(&b, 3000).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "# group changes (mosha): at_ms group level STATE\n\
             1000 db stop DONE\n1000 web start STARTING\n3000 web start DONE\n"
        );
        // A restart reads the record: the same clstat is no change.
        let (mut again, err) = Recorder::open(path.clone());
        assert_eq!(err, None);
        assert_eq!(again.changes().len(), 3);
        again.note(&b, 4000).expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
    }

    #[test]
    fn keeps_only_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut r, _) = Recorder::open(dir.path().join(FILE));
        for i in 0..(KEEP as i64 + 50) {
            let state = if i % 2 == 0 { "STARTING" } else { "DONE" };
            r.note(&clstat(&format!("Cluster::Init::Group web start {state}\n")), i)
                .expect("write");
        }
        let got = read(&dir.path().join(FILE)).expect("read").expect("present");
        assert_eq!(got.len(), KEEP);
        assert_eq!(got.first().map(|c| c.at_ms), Some(50));
        assert_eq!(got.last().map(|c| c.at_ms), Some(KEEP as i64 + 49));
    }

    #[test]
    fn a_malformed_record_names_its_line_and_is_started_afresh() {
        assert_eq!(
            parse("# c\n1 web start DONE\nsoon web start DONE\n"),
            Err(ParseError { line: 3, reason: "at_ms is not an integer".into() })
        );
        assert_eq!(parse("1 web start\n").map_err(|e| e.line), Err(1));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE);
        std::fs::write(&path, "1 web\n").expect("write");
        let (r, err) = Recorder::open(path);
        assert!(r.changes().is_empty());
        let err = err.expect("an error");
        assert!(err.contains("groupmoves:line 1"), "{err}");
    }

    #[test]
    fn a_failed_write_is_reported_once_and_written_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing-dir").join(FILE);
        let (mut r, _) = Recorder::open(path.clone());
        assert!(r.note(&clstat("Cluster::Init::Group web start DONE\n"), 1).is_err());
        assert!(r.note(&clstat("Cluster::Init::Group web start DONE\n"), 2).is_ok(), "said once");
        std::fs::create_dir(dir.path().join("missing-dir")).expect("mkdir");
        // No new change, but the pending one is written now.
        r.note(&clstat("Cluster::Init::Group web start DONE\n"), 3).expect("write");
        let got = read(&path).expect("read").expect("present");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].at_ms, 1);
    }
}
