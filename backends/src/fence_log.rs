//! The fence log: a small, bounded file in each node's shared directory
//! (`<mfsbase>/<N>/<varpath>/fences`, beside `clstat`) where `mosha`
//! appends one line for each fence *it* carried out successfully, with
//! the wall-clock time and the fenced node's incarnation.
//!
//! Why: under `ranked` a node writes no hastat, and its record (the
//! heartbeat file) lists whom it fenced (`fenced NODE INCARNATION`) but
//! not when, and only until the fenced node comes back. `mosha status`
//! reads every node's log to show who fenced whom, which incarnation and
//! when (as `crm_mon --fence-history` shows Pacemaker's fencing history).
//!
//! Format: a comment line, then `at_ms node incarnation` per fence, oldest
//! first, at most [`KEEP`] lines (older ones drop off the front). Written
//! whole by temp+rename, so a reader never sees a torn file. Times are for
//! operators only: no rule reads this file.

use std::path::Path;

/// The file's name, beside `clstat`.
pub const FILE: &str = "fences";
/// Lines kept (about 25 bytes each).
pub const KEEP: usize = 100;
/// Largest file read (bytes); larger is refused as not ours.
pub const LIMIT: u64 = 16 * 1024;

/// One successful fence by the node that keeps the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceEntry {
    /// Wall clock of the fencing node, ms since the epoch.
    pub at_ms: i64,
    /// The fenced node.
    pub node: u32,
    /// The fenced node's incarnation (its restart count).
    pub incarnation: u64,
}

pub use crate::word_log::ParseError;

/// Parse a log (blank and `#` lines skipped); a malformed line makes the
/// whole file unusable.
pub fn parse(text: &str) -> Result<Vec<FenceEntry>, ParseError> {
    crate::word_log::parse(text, "expected `at_ms node incarnation`", |[at, node, inc]| {
        Ok(FenceEntry {
            at_ms: at.parse().map_err(|_| "at_ms is not a number")?,
            node: node.parse().map_err(|_| "node is not a number")?,
            incarnation: inc.parse().map_err(|_| "incarnation is not a number")?,
        })
    })
}

fn render(entries: &[FenceEntry]) -> String {
    let lines = entries.iter().map(|e| format!("{} {} {}", e.at_ms, e.node, e.incarnation));
    crate::word_log::render("# mosha fence log: at_ms node incarnation", lines)
}

/// The log at `path` (`Ok(None)`: no log). Errors name the file and line.
pub fn read(path: &Path) -> Result<Option<Vec<FenceEntry>>, String> {
    crate::word_log::read(path, LIMIT, parse)
}

/// Append `entry` to the log at `path`, keeping the last [`KEEP`] lines.
/// A log that does not parse is started anew (it is for operators only).
pub fn append(path: &Path, entry: FenceEntry) -> std::io::Result<()> {
    let mut entries = read(path).ok().flatten().unwrap_or_default();
    entries.push(entry);
    let skip = entries.len().saturating_sub(KEEP);
    crate::atomic::replace_atomic(path, render(&entries[skip..]).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_keep_the_last_lines_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE);
        assert_eq!(read(&path), Ok(None));
        for k in 0..(KEEP as u64 + 5) {
            append(&path, FenceEntry { at_ms: 1000 + k as i64, node: 2, incarnation: k })
                .expect("append");
        }
        let back = read(&path).expect("parses").expect("exists");
        assert_eq!(back.len(), KEEP);
        assert_eq!(back[0].incarnation, 5);
        assert_eq!(back[KEEP - 1], FenceEntry { at_ms: 1104, node: 2, incarnation: 104 });
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = parse("# c\n1 2 3\n1 x 3\n").unwrap_err();
        assert_eq!(e, ParseError { line: 3, reason: "node is not a number".into() });
    }
}
