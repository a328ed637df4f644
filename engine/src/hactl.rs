//! The `hactl` file: the operator's wish list for the cluster layer.
//!
//! ```text
//! # group  level  [preferred nodes]
//! web      start  2,3
//! db       start
//! old      stop
//! ```
//!
//! One group per line, whitespace separated. Blank lines and lines whose first
//! non-blank character is `#` are ignored; a later line for the same group
//! overrides an earlier one (as in OpenMosix::HA 0.555, spec §3.2).
//!
//! Differences from the original, on purpose:
//!
//! * Level `0` and group `0` are ordinary names (the original lost them to
//!   Perl truthiness and treated them as "absent", i.e. *deleted*).
//! * A group line without a level is an error with `file:line` instead of
//!   silently meaning "absent": a half-typed line must not stop a service
//!   everywhere.
//! * An optional third column is reserved for a comma-separated preferred
//!   node list (`2,3`), the "preferred node list in hactl" the original's
//!   author planned (spec §12). The `classic` policy ignores it.
//! * A field starting with `#` starts a trailing comment, so an old file with
//!   `web start # the web farm` (legal before, as only two fields were read)
//!   still parses. Any other field after the third is an error.
//!
//! * `#@standby 2,3` (issue 12): nodes in standby, drained of their groups
//!   and kept free of new ones by the `ranked` policy (`mosha standby NODE
//!   on|off` writes it). To the original, and to `classic`, it is a comment.
//!   An empty list (`#@standby`) means none; the last such line counts.
//!
//! Parsing reports *every* error, so an operator fixes a bad file in one pass;
//! a caller keeps using its last good copy meanwhile.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// What the operator wants for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    /// Runlevel to run the group at; `stop` means "must not run anywhere".
    pub level: String,
    /// Preferred nodes, best first; empty = no preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred: Vec<u32>,
}

/// A parsed `hactl`. A group that is absent is wanted nowhere (and is
/// actively stopped where it runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hactl {
    pub groups: BTreeMap<String, Want>,
    /// Nodes in standby (`#@standby` line): `ranked` drains them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub standby: BTreeSet<u32>,
}

/// The standby directive's prefix.
pub const STANDBY: &str = "#@standby";

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    #[error("group {0:?} has no level")]
    MissingLevel(String),
    #[error("preferred node {0:?} is not a node number")]
    BadPreferredNode(String),
    #[error("unexpected field {0:?} (expected: group level [node,node,...])")]
    ExtraField(String),
    /// NUL, a byte-order mark inside the file, or a carriage return that is
    /// not part of CRLF: such a byte would silently rename a group (and so
    /// stop the real one everywhere).
    #[error("{0} in line")]
    BadByte(&'static str),
    /// A control character in a group name or level.
    #[error("control character {0:?} in a group name or level")]
    ControlChar(char),
}

/// One error of this format, located.
pub type ParseError = crate::located::ParseError<LineError>;

/// Every error found in one file, in line order.
pub type ParseErrors = crate::located::ParseErrors<LineError>;

impl Hactl {
    /// Parse `text`; `file` names it in error messages.
    ///
    /// Refused, each with `file:line`: NUL bytes, a byte-order mark other than a leading one (which is
    /// stripped), a carriage return outside CRLF, and control characters in
    /// a name: the cltab's input rules, for the same reason (a stray byte
    /// must never rename a group). A group given twice takes its last line,
    /// as in the original.
    pub fn parse(text: &str, file: &str) -> Result<Hactl, ParseErrors> {
        let mut hactl = Hactl::default();
        let mut errors = Vec::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, line) in text.lines().enumerate() {
            let bad = if line.contains('\0') {
                Some(LineError::BadByte("NUL byte"))
            } else if line.contains('\u{feff}') {
                Some(LineError::BadByte("byte-order mark (U+FEFF) inside the file"))
            } else if line.contains('\r') {
                Some(LineError::BadByte("carriage return (CR-only line endings are not supported)"))
            } else {
                line.split_whitespace()
                    .take_while(|f| !f.starts_with('#'))
                    .flat_map(str::chars)
                    .find(|c| c.is_control())
                    .map(LineError::ControlChar)
            };
            if bad.is_none() {
                if let Some(rest) = line.trim_start().strip_prefix(STANDBY) {
                    if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                        match parse_nodes(rest.trim()) {
                            Ok(nodes) => hactl.standby = nodes.into_iter().collect(),
                            Err(kind) => errors.push(ParseError {
                                file: file.to_string(),
                                line: i + 1,
                                kind,
                            }),
                        }
                        continue;
                    }
                }
            }
            let parsed = match bad {
                Some(kind) => Err(vec![kind]),
                None => parse_line(line),
            };
            match parsed {
                Ok(None) => {}
                Ok(Some((group, want))) => {
                    // A later line for the same group overrides an earlier
                    // one, as in the original (`mosha check` warns).
                    hactl.groups.insert(group, want);
                }
                Err(kinds) => errors.extend(kinds.into_iter().map(|kind| ParseError {
                    file: file.to_string(),
                    line: i + 1,
                    kind,
                })),
            }
        }
        if errors.is_empty() {
            Ok(hactl)
        } else {
            Err(crate::located::ParseErrors(errors))
        }
    }

    /// Render one line per group, sorted by name. Round-trips through
    /// [`Hactl::parse`] for names that contain no whitespace and do not start
    /// with `#` (the only names `parse` can produce).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.standby.is_empty() {
            let nodes: Vec<String> = self.standby.iter().map(u32::to_string).collect();
            out.push_str(&format!("{STANDBY} {}\n", nodes.join(",")));
        }
        for (group, want) in &self.groups {
            out.push_str(group);
            out.push(' ');
            out.push_str(&want.level);
            if !want.preferred.is_empty() {
                let nodes: Vec<String> = want.preferred.iter().map(u32::to_string).collect();
                out.push(' ');
                out.push_str(&nodes.join(","));
            }
            out.push('\n');
        }
        if self.groups.is_empty() {
            // A 0-byte hactl is refused as a truncation: say "nothing".
            out.push_str("# no group is wanted\n");
        }
        out
    }

    pub fn get(&self, group: &str) -> Option<&Want> {
        self.groups.get(group)
    }
}

/// Would `standby` leave no live node to run groups? True when every node
/// of `live` (the nodes membership lists up) is in `standby`, or `live` is
/// empty. Under `ranked` a standby node takes no group, so such a standby
/// stops every wanted group cluster-wide; `mosha standby` refuses it unless
/// forced (Pacemaker's `crm node standby` has the same hazard and leaves
/// the check to the operator; we make it explicit).
pub fn standby_leaves_none(standby: &BTreeSet<u32>, live: &[u32]) -> bool {
    live.iter().all(|n| standby.contains(n))
}

/// `text` (an hactl) with its `#@standby` lines replaced by one for
/// `nodes` at the top (none when `nodes` is empty); every other line is
/// kept as it was (comments, order, preferred nodes).
pub fn with_standby(text: &str, nodes: &BTreeSet<u32>) -> String {
    let mut out = String::new();
    if !nodes.is_empty() {
        let list: Vec<String> = nodes.iter().map(u32::to_string).collect();
        out.push_str(&format!("{STANDBY} {}\n", list.join(",")));
    }
    for line in text.lines() {
        let rest = line.trim_start().strip_prefix(STANDBY);
        if rest.is_some_and(|r| r.is_empty() || r.starts_with(char::is_whitespace)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A `#@standby` node list (`2,3`; empty: none).
fn parse_nodes(list: &str) -> Result<Vec<u32>, LineError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|item| match item.parse::<u32>() {
            Ok(node) if !item.starts_with('+') => Ok(node),
            _ => Err(LineError::BadPreferredNode(item.to_string())),
        })
        .collect()
}

/// `Ok(None)` for blank and comment lines.
/// A group given on more than one line of an hactl: accepted, the last
/// line wins (the original's behaviour), but likely an editing slip, so
/// `mosha check` warns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroup {
    pub group: String,
    /// 1-based lines giving it, in file order (the last one wins).
    pub lines: Vec<usize>,
}

/// Every group given on more than one line of `text` (lines that do not
/// parse are skipped: [`Hactl::parse`] reports those).
pub fn duplicate_groups(text: &str) -> Vec<DuplicateGroup> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if let Ok(Some((group, _))) = parse_line(line) {
            seen.entry(group).or_default().push(i + 1);
        }
    }
    seen.into_iter()
        .filter(|(_, lines)| lines.len() > 1)
        .map(|(group, lines)| DuplicateGroup { group, lines })
        .collect()
}

fn parse_line(line: &str) -> Result<Option<(String, Want)>, Vec<LineError>> {
    let mut fields = line.split_whitespace().take_while(|f| !f.starts_with('#'));
    let Some(group) = fields.next() else {
        return Ok(None);
    };
    let Some(level) = fields.next() else {
        return Err(vec![LineError::MissingLevel(group.to_string())]);
    };
    let mut errors = Vec::new();
    let mut preferred = Vec::new();
    if let Some(list) = fields.next() {
        for item in list.split(',') {
            match item.parse::<u32>() {
                Ok(node) if !item.starts_with('+') => preferred.push(node),
                _ => errors.push(LineError::BadPreferredNode(item.to_string())),
            }
        }
    }
    errors.extend(fields.map(|f| LineError::ExtraField(f.to_string())));
    if errors.is_empty() {
        let want = Want { level: level.to_string(), preferred };
        Ok(Some((group.to_string(), want)))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn want(level: &str, preferred: &[u32]) -> Want {
        Want { level: level.into(), preferred: preferred.to_vec() }
    }

    /// Bytes that would rename a group are refused with file:line; a
    /// leading BOM and CRLF are not.
    #[test]
    fn duplicate_groups_are_found_with_their_lines_and_the_last_wins() {
        let text = "web 1\n# web 9\ndb 2\nweb 2 3\nbad\nweb stop\n";
        assert_eq!(
            duplicate_groups(text),
            vec![DuplicateGroup { group: "web".into(), lines: vec![1, 4, 6] }]
        );
        assert!(duplicate_groups("web 1\ndb 1\n").is_empty());
        let ok = Hactl::parse("web 1\nweb 2\n", "h").expect("accepted");
        assert_eq!(ok.get("web").map(|w| w.level.as_str()), Some("2"));
    }

    #[test]
    fn refuses_bytes_that_would_rename_a_group() {
        let err = |text: &str| Hactl::parse(text, "h").expect_err(text).to_string();
        assert!(err("web start\nd\0b start\n").starts_with("h:2: NUL byte"));
        assert!(err("web start\n\u{feff}db start\n").starts_with("h:2: byte-order mark"));
        assert!(err("web start\rdb start\n").starts_with("h:1: carriage return"));
        assert!(err("w\x1beb start\n").starts_with("h:1: control character"));
        let ok = Hactl::parse("\u{feff}web start\r\ndb 2\r\n", "h").expect("BOM + CRLF");
        assert_eq!(ok.groups.keys().collect::<Vec<_>>(), ["db", "web"]);
        let empty = Hactl::parse("# nothing\n", "h").expect("comment only");
        assert!(empty.groups.is_empty());
        assert_eq!(Hactl::parse(&empty.render(), "h").expect("renders back"), empty);
    }

    #[test]
    fn a_standby_of_every_live_node_leaves_none() {
        let live = [1, 2, 3];
        assert!(!standby_leaves_none(&[1, 2].into(), &live));
        assert!(standby_leaves_none(&[1, 2, 3].into(), &live));
        // A down node in standby does not count as one left out of it.
        assert!(standby_leaves_none(&[1, 2].into(), &[1, 2]));
        assert!(standby_leaves_none(&BTreeSet::new(), &[]));
    }

    #[test]
    fn the_standby_directive_lists_nodes_and_is_a_comment_elsewhere() {
        let h = Hactl::parse("#@standby 2,3\nweb start\n", "h").expect("parses");
        assert_eq!(h.standby, [2, 3].into());
        assert_eq!(Hactl::parse(&h.render(), "h"), Ok(h));
        let none = Hactl::parse("#@standby\nweb start\n", "h").expect("parses");
        assert!(none.standby.is_empty());
        let err = Hactl::parse("#@standby 2,x\n", "h").expect_err("bad node").to_string();
        assert!(err.starts_with("h:1: preferred node \"x\""), "{err}");
        let edited = with_standby("# notes\n#@standby 2\nweb start 1\n", &[4].into());
        assert_eq!(edited, "#@standby 4\n# notes\nweb start 1\n");
        assert_eq!(with_standby(&edited, &BTreeSet::new()), "# notes\nweb start 1\n");
        // Another `#@...` word is an ordinary comment.
        assert!(Hactl::parse("#@standbyx 2\n", "h").expect("comment").standby.is_empty());
    }

    #[test]
    fn parses_the_original_fixture() {
        let text = "foo start\nbar 2\nbaz start\npln start\nbad start\nnew start\n";
        let hactl = Hactl::parse(text, "hactl").expect("fixture parses");
        assert_eq!(hactl.groups.len(), 6);
        assert_eq!(hactl.get("foo"), Some(&want("start", &[])));
        assert_eq!(hactl.get("bar"), Some(&want("2", &[])));
    }

    #[test]
    fn comments_blanks_duplicates_zero_and_preferred() {
        let text = "# header\n\n   # indented comment\n\t\n\
                    web start 2,3\n0 0\nweb stop # changed my mind\n\
                    db start 1 # primary\r\n";
        let hactl = Hactl::parse(text, "hactl").expect("parses");
        assert_eq!(hactl.get("web"), Some(&want("stop", &[])));
        assert_eq!(hactl.get("0"), Some(&want("0", &[])));
        assert_eq!(hactl.get("db"), Some(&want("start", &[1])));
        assert_eq!(hactl.groups.len(), 3);
    }

    #[test]
    fn empty_file_wants_nothing() {
        // Parsing an empty text is "nothing wanted", as in the original; a
        // 0-byte *copy* is refused by replication (`parse_copy`).
        assert_eq!(Hactl::parse("", "hactl"), Ok(Hactl::default()));
    }

    #[test]
    fn reports_every_error_with_file_and_line() {
        let text = "ok start\nlonely\nweb start 2,x,,+4\nweb start 2 extra\nnolevel # x\n";
        let err = Hactl::parse(text, "/mfs/1/var/mosix-ha/hactl").expect_err("bad");
        let shown = err.to_string();
        insta::assert_snapshot!(shown, @r#"
        /mfs/1/var/mosix-ha/hactl:2: group "lonely" has no level
        /mfs/1/var/mosix-ha/hactl:3: preferred node "x" is not a node number
        /mfs/1/var/mosix-ha/hactl:3: preferred node "" is not a node number
        /mfs/1/var/mosix-ha/hactl:3: preferred node "+4" is not a node number
        /mfs/1/var/mosix-ha/hactl:4: unexpected field "extra" (expected: group level [node,node,...])
        /mfs/1/var/mosix-ha/hactl:5: group "nolevel" has no level
        "#);
    }

    #[test]
    fn render_is_sorted_and_shows_preferences() {
        let mut hactl = Hactl::default();
        hactl.groups.insert("web".into(), want("start", &[3, 1]));
        hactl.groups.insert("db".into(), want("2", &[]));
        assert_eq!(hactl.render(), "db 2\nweb start 3,1\n");
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.:/-][A-Za-z0-9_.:/#-]{0,8}"
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC*|[a-z0-9# ,\t\r\n]*") {
            let _ = Hactl::parse(&text, "hactl");
        }

        #[test]
        fn render_parse_round_trips(
            groups in proptest::collection::btree_map(
                name(),
                (name(), proptest::collection::vec(any::<u32>(), 0..4)),
                0..8,
            )
        ) {
            let hactl = Hactl {
                groups: groups
                    .into_iter()
                    .map(|(g, (level, preferred))| (g, Want { level, preferred }))
                    .collect(),
                ..Hactl::default()
            };
            prop_assert_eq!(Hactl::parse(&hactl.render(), "hactl"), Ok(hactl));
        }
    }
}
