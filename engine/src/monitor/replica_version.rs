//! Versioned replicas of `hactl` and `cltab`: the rule `ranked` uses so
//! that every node converges on one content whatever the mtimes or clocks
//! say (issue 12). `classic` keeps the original's mtime rule
//! ([`super::replicate::getlatest`]).
//!
//! **Why not mtimes.** Two copies with the same mtime never converge under
//! the original's rule (each node keeps the earliest of a tie in its own
//! list order, and a node keeps its own copy on a tie), and a copy whose
//! mtime lies in the future (a clock running ahead) beats every later edit
//! until that time comes. An mtime compares one node's clock with
//! another's; a version counter compares nothing but numbers.
//!
//! **The seal line.** A copy that `mosha` writes starts with one comment
//! line, which the original parsers skip (`#` starts a comment in both
//! files):
//!
//! ```text
//! #@mosha version=7 bytes=123 fnv1a64=0123456789abcdef
//! ```
//!
//! `bytes` and `fnv1a64` describe the *body*: everything after that line.
//! The checksum is FNV-1a 64 (the same the `ranked` heartbeat record uses,
//! [`super::ranked::record::fnv1a64`]); it detects a torn copy, it is not a
//! defence against a malicious writer. The line is optional: a file without
//! it is the original format.
//!
//! An optional `by=N` field names the node whose edit made the content: the
//! node where `mosha hactl set` or `mosha standby` ran ([`seal_by`]), or the
//! node whose hand-edited copy its monitor sealed ([`seal_edit`]). It is
//! copied along with the bytes, so a reader of any replica can name the
//! editor (`hactl set`'s conflict message); it is not covered by the
//! checksum and plays no part in the order. Readers that do not know it
//! skip it (unknown fields are ignored), and a file without it reads as
//! before ([`writer`] is `None`).
//!
//! **The order.** A sealed copy's [`Version`] is (version number, body
//! checksum). The highest number wins; equal numbers go to the higher
//! checksum, a content-hash tie-break that every node computes the same, so
//! the order is total on contents and every node reaches the same winner.
//!
//! **What a copy is** ([`Seal`], from the bytes alone):
//! - *sealed*: the seal line parses, the body has the declared length and
//!   checksum;
//! - *truncated*: the seal line is cut or damaged, or the body is shorter
//!   than declared. Never adopted, whatever its version. My own truncated
//!   copy, once it has stayed unchanged for the settle time (an editor
//!   that rewrites the file in place truncates it first), is written back from my last sealed copy (kept in memory, see
//!   below) when that one is newer than every sealed copy I can see;
//!   otherwise it is replaced by the best sealed copy that parses. (A torn
//!   write of the operator's freshly sealed edit must not give way to the
//!   older version it replaced: that would undo the edit for good.)
//! - *hand-edited*: no seal line (the original format), or a seal line whose
//!   checksum fails while the body is at least as long as declared (edited
//!   with the line kept). Another node's hand-edited copy is never adopted:
//!   its own node seals it. My own is sealed as a new version, numbered one
//!   above every version known (so an operator's edit wins over what it
//!   has seen), but only once it has stayed unchanged for the settle time
//!   ([`SETTLE`], 2 s), so that an editor's write in place is not caught
//!   half-way. If its content equals the best sealed copy's body *and* that
//!   copy is the highest version known, it simply takes that copy (no new
//!   version); an edit back to an older content (a stale copy elsewhere
//!   still shows it) is sealed above the newer versions instead, or the
//!   newer version would win again. While it does not parse, it is left
//!   alone (the node keeps its last good parse), as under the mtime rule.
//!   A hand edit counts from when it was written (first seen), not from
//!   when its settle time ends: if, while it settles, a sealed copy that
//!   parses appears numbered above every version known when the edit was
//!   first seen (a `mosha hactl set` made and confirmed elsewhere
//!   meanwhile), that later edit wins and replaces the hand edit, which
//!   is logged (issue 12, item 2; [`decide_seen`]).
//!
//! **Only its own node seals a hand edit, even while that node is down.**
//! An operator's edit of a dead node's copy waits for that node to run
//! again (issue 12, N = 3 seed 9: node 1 was fenced 0.3 s after the edit
//! and the edit was taken 48 minutes later, at its restart). Readers do
//! not seal it for the dead node, although the content would be the same:
//! a reader cannot tell a node that is down from one it is cut off from (a
//! partition, a lapsed lease, a membership source that lists it down
//! wrongly), and a node cut off goes on sealing its own edits. Two sealers
//! of one file can give two contents the same version number (the operator
//! edits again in between), and the tie-break then drops one of them: the
//! loss of an edit that this module exists to prevent. Only a fence known
//! to have killed proves a node down, and that is the ranked machine's
//! knowledge, not the copies'. To change a running cluster's `hactl`, edit
//! a running node's copy, or use `mosha hactl set`.
//!
//! **My last sealed copy.** Each node remembers its own last sealed copy
//! that parses: the last one it wrote (a seal, an adoption, a write-back)
//! or read whole as its own. It is the caller's memory (lost at a restart),
//! passed to [`decide`] as `kept`: a torn or hand-edited copy on disk no
//! longer shows it, yet its number counts among the versions known and it
//! is what a truncated copy of mine is written back from.
//!
//! **A write is read back.** After a copy of my own file, the next read of
//! it brings its bytes (it is not asked by the identity the write
//! returned), and the copy is judged from what was read: a disk can answer
//! a torn write as done, and a copy trusted unread was never seen torn
//! (issue 9, seed 36: a node ran alone on an edit its peers never got).
//!
//! An edit by hand that only *deletes* text and keeps the seal line looks
//! like a truncation and is not adopted: delete the seal line too when
//! editing by hand, or use `mosha hactl set`. README says so.

use super::ranked::record::fnv1a64;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The seal line's prefix.
pub const MARK: &str = "#@mosha ";

/// How long (ms, on the reading node's own clock) a hand-edited own copy
/// must stay unchanged before it is sealed as a new version: longer than an
/// editor's write in place, short enough not to be noticed by an operator.
pub const SETTLE: Millis = Millis(2_000);

/// The largest version number a seal may carry (2^53: a billion edits a
/// second for over a hundred days). A copy above it is damaged, never
/// adopted, so that the next edit can always be numbered above every
/// version in use.
pub const MAX_VERSION: u64 = 1 << 53;

/// A sealed copy's place in the order: number first, then the body's
/// checksum as the content-hash tie-break.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version {
    pub number: u64,
    pub sum: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "version {} ({:016x})", self.number, self.sum)
    }
}

/// What a copy is, judged from its bytes alone (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seal {
    /// Written by `mosha`, complete.
    Sealed(Version),
    /// Hand-edited: no seal line (`was` = None), or a seal line for version
    /// `was` whose checksum fails on a body at least as long as declared.
    /// `sum` is the body's checksum.
    Edited { was: Option<u64>, sum: u64 },
    /// Cut or damaged: never adopted.
    Truncated { reason: String },
}

impl Seal {
    /// The version, for a sealed copy.
    pub fn version(&self) -> Option<Version> {
        match self {
            Seal::Sealed(v) => Some(*v),
            _ => None,
        }
    }
}

/// `body` with a seal line for version `number` in front.
pub fn seal(body: &[u8], number: u64) -> Vec<u8> {
    let line =
        format!("{MARK}version={number} bytes={} fnv1a64={:016x}\n", body.len(), fnv1a64(body));
    let mut out = Vec::with_capacity(line.len() + body.len());
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(body);
    out
}

/// `body` sealed as `number` by node `writer`: the seal line also says
/// `by=<writer>`, which replication copies along with the bytes, so that
/// any reader can name who wrote a content, whichever node's copy it read
/// (older readers skip the unknown field; the checksum covers the body
/// only, so the order of versions is unchanged).
pub fn seal_by(body: &[u8], number: u64, writer: u32) -> Vec<u8> {
    let line = format!(
        "{MARK}version={number} bytes={} fnv1a64={:016x} by={writer}\n",
        body.len(),
        fnv1a64(body)
    );
    let mut out = Vec::with_capacity(line.len() + body.len());
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The seal my monitor writes over my own hand-edited copy, sealed as
/// `number`: it names me (`by=me`), the node whose operator made the edit,
/// so that a conflict found on another node's replica names me and not
/// that replica's node.
///
/// Except version 1: no version was known anywhere, so the files are still
/// the original format and every node seals its own copy at its first
/// start. Those are not an operator's edits, and identical copies must get
/// identical bytes, or the nodes would hold one content in different files
/// for ever (equal versions are never replaced).
pub fn seal_edit(body: &[u8], number: u64, me: u32) -> Vec<u8> {
    if number <= 1 {
        seal(body, number)
    } else {
        seal_by(body, number, me)
    }
}

/// The node a seal line names as the content's writer (`by=N`), if any:
/// `None` for a file without a seal line or an older seal without `by=`.
pub fn writer(bytes: &[u8]) -> Option<u32> {
    let rest = bytes.strip_prefix(MARK.as_bytes())?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&rest[..end]).ok()?;
    line.split_whitespace().find_map(|f| f.strip_prefix("by=")).and_then(|v| v.parse().ok())
}

/// The bytes after the seal line (all of them when there is none).
pub fn body(bytes: &[u8]) -> &[u8] {
    if !bytes.starts_with(MARK.as_bytes()) {
        return bytes;
    }
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[end + 1..],
        None => &[],
    }
}

/// Judge a copy's bytes (see the module doc).
pub fn classify(bytes: &[u8]) -> Seal {
    let mark = MARK.as_bytes();
    if bytes.is_empty() {
        return Seal::Truncated { reason: "0 bytes".into() };
    }
    if !bytes.starts_with(mark) {
        if mark.starts_with(bytes) {
            let reason = format!("cut inside its seal line ({} bytes)", bytes.len());
            return Seal::Truncated { reason };
        }
        return Seal::Edited { was: None, sum: fnv1a64(bytes) };
    }
    let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
        return Seal::Truncated { reason: "its seal line is cut (no end of line)".into() };
    };
    let Ok(line) = std::str::from_utf8(&bytes[mark.len()..end]) else {
        return Seal::Truncated { reason: "its seal line is not UTF-8".into() };
    };
    let (mut number, mut len, mut sum) = (None, None, None);
    for field in line.split_whitespace() {
        match field.split_once('=') {
            Some(("version", v)) => number = v.parse::<u64>().ok(),
            Some(("bytes", v)) => len = v.parse::<usize>().ok(),
            Some(("fnv1a64", v)) if v.len() == 16 => sum = u64::from_str_radix(v, 16).ok(),
            // Unknown fields are for later versions of the format.
            _ => {}
        }
    }
    let (Some(number), Some(len), Some(sum)) = (number, len, sum) else {
        return Seal::Truncated {
            reason: "its seal line is damaged (needs version=N, bytes=N and fnv1a64= with 16 \
                     hex digits)"
                .into(),
        };
    };
    if number > MAX_VERSION {
        // One above it must still be a number: a copy at u64::MAX won every
        // comparison, and the next edit, sealed as "version 0", lost to it.
        let reason = format!("its version {number} is beyond the largest allowed, {MAX_VERSION}");
        return Seal::Truncated { reason };
    }
    let body = &bytes[end + 1..];
    let actual = fnv1a64(body);
    if body.len() == len && actual == sum {
        Seal::Sealed(Version { number, sum })
    } else if body.len() < len {
        let reason = format!("{} of the {len} bytes its seal line declares", body.len());
        Seal::Truncated { reason }
    } else {
        Seal::Edited { was: Some(number), sum: actual }
    }
}

/// What one node's copy is, as the versioned decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub seal: Seal,
    pub parses: bool,
    /// The node its seal line names (`by=N`, [`writer`]). It plays no part
    /// in the order of versions; among copies of one version (one content)
    /// whose seal lines name different writers, the lowest writer's file is
    /// the one every node ends up holding ([`converged`]).
    pub writer: Option<u32>,
}

/// The versioned decision for my copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// `me` is not among the candidates (not a member): never copy.
    NotListed,
    /// No sealed copy that parses anywhere, and nothing of mine to seal.
    NoCopy,
    /// My copy is the best (or a broken one with nothing better to take).
    UpToDate,
    /// Install `from`'s copy (`mine`: my sealed version, if any).
    Adopt { from: u32, theirs: Version, mine: Option<Version> },
    /// Seal my hand-edited copy as version `number`.
    Seal { number: u64 },
    /// My copy is truncated and my last sealed copy (`version`, kept in
    /// memory by the caller) is newer than every sealed copy I can see:
    /// write it back (adopting an older copy would undo the newest edit).
    Restore { version: Version },
    /// My hand-edited copy has been unchanged for less than the settle
    /// time: `left` ms to go.
    Settling { left: Millis },
    /// My hand-edited copy was still settling when `from`'s copy `theirs`,
    /// numbered above `seen` (the highest version known when the edit was
    /// first seen), appeared: a later edit the hand edit never saw (a
    /// confirmed `mosha hactl set`, say). The hand edit gives way and
    /// `from`'s copy is installed over it (issue 12, item 2).
    DropEdit { from: u32, theirs: Version, seen: u64 },
}

/// Decide for node `me` from `(node, copy)` pairs (`None`: no copy;
/// unreadable copies are left out by the caller). `kept` is my own last
/// sealed copy that parses (the last one written or read as mine; the
/// caller remembers it, since a torn or hand-edited copy no longer shows
/// it). `unchanged_for` is how long (ms, my clock) my own copy has had its
/// current content.
///
/// The best copy is the highest [`Version`] among sealed copies that parse
/// (ties on the whole version are the same content; the first in list
/// order is taken). The highest version *known* also counts `kept` and the
/// numbers of damaged or hand-edited seal lines.
pub fn decide(
    copies: &[(u32, Option<Facts>)],
    me: u32,
    kept: Option<Version>,
    unchanged_for: Millis,
    settle: Millis,
) -> Decision {
    decide_seen(copies, me, kept, unchanged_for, settle, None)
}

/// The highest version number known from `copies` and `kept`: sealed
/// copies, the numbers of hand-edited seal lines, and my last sealed copy
/// (what [`decide`] seals a hand edit one above).
pub fn highest_known(copies: &[(u32, Option<Facts>)], kept: Option<Version>) -> u64 {
    let mut highest = kept.map_or(0, |k| k.number);
    for facts in copies.iter().filter_map(|(_, f)| f.as_ref()) {
        match &facts.seal {
            Seal::Sealed(v) => highest = highest.max(v.number),
            Seal::Edited { was: Some(n), .. } => highest = highest.max(*n),
            _ => {}
        }
    }
    highest
}

/// The copy every node converges on, from `(node, copy)` pairs: the
/// highest [`Version`] among sealed copies that parse. Equal versions are
/// the same content (the checksum is part of the version), so a tie goes
/// to the first in list order, unless another of them names a lower
/// writer (`by=`; none is lowest). `None`: no sealed copy parses.
///
/// **Why the writer.** Two nodes whose operators made the same hand edit
/// within one settle time seal one content as one version, each naming
/// itself: equal versions, different files. Without a rule for them each
/// node would keep its own file for ever; with it, every node takes the
/// lowest writer's file (the content is the same either way).
///
/// **Why a function of its own.** [`decide_seen`] adopts this copy, `mosha
/// hactl set` judges its edit against it ([`super::replica_edit::judge`])
/// and `mosha status` shows it as the hactl in force: one rule, so that
/// what the operator is shown is what the nodes converge on.
pub fn converged(copies: &[(u32, Option<Facts>)]) -> Option<(u32, Version)> {
    let mut best: Option<(u32, Version, Option<u32>)> = None;
    for (node, facts) in copies {
        let Some(Facts { seal: Seal::Sealed(v), parses: true, writer }) = facts else { continue };
        let better = |&(_, b, w): &(u32, Version, Option<u32>)| *v > b || *v == b && *writer < w;
        if best.as_ref().is_none_or(better) {
            best = Some((*node, *v, *writer));
        }
    }
    best.map(|(node, v, _)| (node, v))
}

/// [`decide`], told `seen`: the highest version number known (as
/// [`highest_known`] counts it) when my current hand-edited copy was first
/// seen, if it is one.
///
/// **Why.** A hand edit waits for the settle time (2 s) before it is
/// sealed; sealing it one above every version known *then* would put it
/// above a `mosha hactl set` made and confirmed on another node meanwhile,
/// an edit the hand edit never saw, and undo it (issue 12, item 2). So
/// while my edit settles, a sealed copy that parses and is numbered above
/// `seen` makes the edit give way ([`Decision::DropEdit`]): of two edits
/// the later one wins, and a hand edit counts from when it was written
/// (first seen), not from when its settle time ends. An edit made after
/// that copy was seen here has `seen` at or above it and is sealed above
/// it as before.
pub fn decide_seen(
    copies: &[(u32, Option<Facts>)],
    me: u32,
    kept: Option<Version>,
    unchanged_for: Millis,
    settle: Millis,
    seen: Option<u64>,
) -> Decision {
    let best = converged(copies);
    let highest = highest_known(copies, kept);
    let Some((_, mine)) = copies.iter().find(|(node, _)| *node == me) else {
        return Decision::NotListed;
    };
    let mine = mine.as_ref();
    // The best copy's writer (see [`converged`]: it breaks a tie between
    // files of one version).
    let best_writer = best.and_then(|(from, _)| {
        copies.iter().find(|(n, _)| *n == from).and_then(|(_, f)| f.as_ref()?.writer)
    });
    let adopt = |mine: Option<Version>| match best {
        Some((from, theirs)) if from != me && Some(theirs) != mine => {
            Decision::Adopt { from, theirs, mine }
        }
        Some(_) => Decision::UpToDate,
        None => Decision::NoCopy,
    };
    let Some(facts) = mine else { return adopt(None) };
    match &facts.seal {
        Seal::Sealed(v) => match best {
            Some((_, b)) if b > *v || !facts.parses => adopt(Some(*v)),
            // One content, one version, another writer's file: take it.
            Some((from, b)) if b == *v && from != me && best_writer < facts.writer => {
                Decision::Adopt { from, theirs: b, mine: Some(*v) }
            }
            _ => Decision::UpToDate,
        },
        // An editor that rewrites the file in place truncates it first:
        // give the whole write the settle time before repairing my copy
        // (the repair renames a new file over it, and the editor's bytes
        // would go to the replaced one). Peers never adopt it meanwhile.
        Seal::Truncated { .. } if unchanged_for < settle => {
            Decision::Settling { left: settle.saturating_sub(unchanged_for) }
        }
        Seal::Truncated { .. } => match kept {
            Some(k) if best.is_none_or(|(_, b)| k > b) => Decision::Restore { version: k },
            _ => adopt(None),
        },
        Seal::Edited { sum, .. } => {
            // Taking an equal copy instead of sealing is right only when
            // that copy is the newest version known: an edit back to an
            // older content (a stale copy elsewhere still shows it) must
            // win over the newer versions, so it gets a number above them.
            if best.is_some_and(|(_, b)| b.sum == *sum && b.number >= highest) {
                return adopt(None);
            }
            if !facts.parses {
                return Decision::UpToDate;
            }
            if let (Some(seen), Some((from, theirs))) = (seen, best) {
                if theirs.number > seen && from != me {
                    return Decision::DropEdit { from, theirs, seen };
                }
            }
            if unchanged_for >= settle {
                Decision::Seal { number: highest + 1 }
            } else {
                Decision::Settling { left: settle.saturating_sub(unchanged_for) }
            }
        }
    }
}

/// What versioned replication wants logged, once per copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionNote {
    /// Node `node`'s copy is cut or damaged: never adopted.
    TheirsTruncated { node: u32, reason: String },
    /// My own copy is cut or damaged; `replaced_by` the best sealed copy's
    /// node, or none (the last good parse is kept).
    MineTruncated { reason: String, replaced_by: Option<u32> },
    /// My own copy is cut or damaged and my last sealed copy, `version`,
    /// is newer than every complete copy: written back.
    MineRestored { reason: String, version: Version },
    /// My hand edit was sealed as `version`.
    Sealed { version: Version },
    /// My hand edit waits for the settle time before it is sealed.
    Settling { left: Millis },
    /// Node `from`'s copy was installed as mine.
    Adopted { from: u32, theirs: Version, mine: Option<Version> },
    /// My hand edit, still settling, gave way to node `from`'s copy
    /// `theirs`, sealed after the edit was written (above `seen`, the
    /// highest version known then): installed over the edit.
    EditDropped { from: u32, theirs: Version, seen: u64 },
}

/// What an operator who cut a sealed file by hand should know: the usual
/// cause of a "truncated" copy that nobody truncated is a hand edit that
/// only removed text and kept the seal line.
const TRUNCATION_HINT: &str = "a hand edit that only removes text must remove the \
     `#@mosha` seal line too, or use `mosha hactl set` (README, \"Versioned replicas\")";

impl fmt::Display for VersionNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionNote::TheirsTruncated { node, reason } => write!(
                f,
                "node {node}'s copy is truncated or damaged ({reason}): never adopted; \
                 {TRUNCATION_HINT}"
            ),
            VersionNote::MineTruncated { reason, replaced_by: Some(n) } => write!(
                f,
                "my copy is truncated or damaged ({reason}): replacing it with node {n}'s; \
                 {TRUNCATION_HINT}"
            ),
            VersionNote::MineTruncated { reason, replaced_by: None } => write!(
                f,
                "my copy is truncated or damaged ({reason}) and no node has a complete one: \
                 keeping the last good copy; {TRUNCATION_HINT}"
            ),
            VersionNote::MineRestored { reason, version } => write!(
                f,
                "my copy is truncated or damaged ({reason}): writing back my last sealed copy \
                 ({version}), newer than every complete copy; {TRUNCATION_HINT}"
            ),
            VersionNote::Sealed { version } => {
                write!(f, "my copy was edited by hand: sealed as {version}")
            }
            VersionNote::Settling { left } => write!(
                f,
                "my copy was edited by hand: sealing it once it stays unchanged ({left} to go)"
            ),
            VersionNote::Adopted { from, theirs, mine: Some(mine) } => {
                write!(f, "adopted node {from}'s copy ({theirs}), replacing mine ({mine})")
            }
            VersionNote::EditDropped { from, theirs, seen } => write!(
                f,
                "my copy was edited by hand, and while it settled node {from}'s copy ({theirs}) \
                 was sealed above version {seen}, the newest when the edit was written: the later \
                 edit wins, so node {from}'s copy replaces my hand edit; edit again (or use \
                 `mosha hactl set`) to change it"
            ),
            VersionNote::Adopted { from, theirs, mine: None } => {
                write!(f, "adopted node {from}'s copy ({theirs}); mine was none or not sealed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_naming_its_writer_is_the_same_version_and_names_it() {
        let body = b"web start\n";
        let plain = seal(body, 7);
        let named = seal_by(body, 7, 3);
        assert_eq!(classify(&plain), classify(&named), "by= changes no version");
        assert_eq!(writer(&named), Some(3));
        assert_eq!(writer(&plain), None);
        assert_eq!(writer(body), None);
        assert_eq!(super::body(&named), body);
    }

    /// Two operators made the same hand edit on nodes 1 and 2 within one
    /// settle time: each monitor sealed it as version 7 naming itself. One
    /// content, one version, two files: node 2 takes node 1's file (the
    /// lower writer), node 1 keeps its own, and a third node takes node 1's
    /// whichever order it reads them in, so every node ends on one file.
    #[test]
    fn one_version_sealed_by_two_writers_ends_as_the_lower_writers_file() {
        let (one, two) = (seal_by(b"web stop\n", 7, 1), seal_by(b"web stop\n", 7, 2));
        let v = classify(&one).version().expect("sealed");
        assert_eq!(classify(&two).version(), Some(v), "the same version");
        let copies = [(1, facts(&one)), (2, facts(&two))];
        let d = |me| decide(&copies, me, None, Millis::ZERO, SETTLE);
        assert_eq!(d(2), Decision::Adopt { from: 1, theirs: v, mine: Some(v) });
        assert_eq!(d(1), Decision::UpToDate);
        for copies in [
            [(1, facts(&one)), (2, facts(&two)), (3, None)],
            [(2, facts(&two)), (1, facts(&one)), (3, None)],
        ] {
            assert_eq!(converged(&copies), Some((1, v)));
            let d = decide(&copies, 3, None, Millis::ZERO, SETTLE);
            assert_eq!(d, Decision::Adopt { from: 1, theirs: v, mine: None });
        }
        // An older seal without `by=` counts as the lowest writer.
        let plain = seal(b"web stop\n", 7);
        let copies = [(1, facts(&one)), (2, facts(&plain))];
        assert_eq!(converged(&copies), Some((2, v)));
    }
    use proptest::prelude::*;

    fn sealed(body: &str, n: u64) -> Vec<u8> {
        seal(body.as_bytes(), n)
    }

    fn facts(bytes: &[u8]) -> Option<Facts> {
        Some(Facts { seal: classify(bytes), parses: true, writer: writer(bytes) })
    }

    const S: Millis = SETTLE;

    /// A copy at the largest u64 won every comparison, and the next edit,
    /// numbered one above it, wrapped to 0 and lost (new-user test NU9).
    #[test]
    fn a_version_beyond_the_largest_allowed_is_damaged_and_the_next_edit_wins() {
        assert!(matches!(classify(&sealed("web start\n", MAX_VERSION)), Seal::Sealed(_)));
        let huge = sealed("web start\n", u64::MAX);
        let Seal::Truncated { reason } = classify(&huge) else { panic!("adoptable: {huge:?}") };
        assert!(reason.contains("beyond the largest allowed"), "{reason}");
        // My hand edit beside it is sealed above the versions in use.
        let copies =
            [(1, facts(&huge)), (2, facts(&sealed("web start\n", 5))), (3, facts(b"web stop\n"))];
        assert_eq!(decide(&copies, 3, None, S, S), Decision::Seal { number: 6 });
    }

    #[test]
    fn a_sealed_copy_round_trips_and_its_body_is_the_original() {
        let bytes = sealed("web start\n", 7);
        let Seal::Sealed(v) = classify(&bytes) else { panic!("not sealed: {bytes:?}") };
        assert_eq!(v.number, 7);
        assert_eq!(v.sum, fnv1a64(b"web start\n"));
        assert_eq!(body(&bytes), b"web start\n");
        assert_eq!(body(b"web start\n"), b"web start\n");
        // The seal line is a comment to both original parsers.
        let text = std::str::from_utf8(&bytes).expect("utf8");
        let h = crate::hactl::Hactl::parse(text, "hactl").expect("hactl parses");
        assert_eq!(h.get("web").map(|w| w.level.as_str()), Some("start"));
    }

    #[test]
    fn every_cut_of_a_sealed_copy_is_truncated_never_sealed() {
        let bytes = sealed("web start\ndb start 2,3\n", 4);
        for cut in 1..bytes.len() {
            match classify(&bytes[..cut]) {
                Seal::Truncated { .. } => {}
                other => panic!("cut at {cut} of {}: {other:?}", bytes.len()),
            }
        }
    }

    #[test]
    fn an_edit_that_keeps_the_seal_line_is_a_hand_edit() {
        let mut bytes = sealed("web start\n", 4);
        bytes.extend_from_slice(b"db start\n");
        assert!(matches!(classify(&bytes), Seal::Edited { was: Some(4), .. }));
        // Same length, other content.
        let mut bytes = sealed("web start\n", 4);
        let n = bytes.len();
        bytes[n - 2] = b'x';
        assert!(matches!(classify(&bytes), Seal::Edited { was: Some(4), .. }));
        assert!(matches!(classify(b"web start\n"), Seal::Edited { was: None, .. }));
    }

    #[test]
    fn a_damaged_seal_line_is_truncated() {
        assert!(matches!(classify(b"#@mosha version=x\nweb start\n"), Seal::Truncated { .. }));
        assert!(matches!(classify(b"#@mo"), Seal::Truncated { .. }));
    }

    #[test]
    fn the_highest_version_wins_and_equal_versions_go_to_the_higher_checksum() {
        let (a, b) = (sealed("web start\n", 3), sealed("web stop\n", 3));
        let c = sealed("web start 2\n", 2);
        let copies = [(1, facts(&a)), (2, facts(&b)), (3, facts(&c))];
        let version = |bytes: &[u8]| classify(bytes).version().expect("sealed");
        let (va, vb) = (version(&a), version(&b));
        let (win, winner) = if va > vb { (va, 1) } else { (vb, 2) };
        for me in 1..=3u32 {
            let d = decide(&copies, me, None, Millis::ZERO, S);
            if me == winner {
                assert_eq!(d, Decision::UpToDate);
            } else {
                assert!(
                    matches!(d, Decision::Adopt { from, theirs, .. } if from == winner && theirs == win),
                    "node {me}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn a_truncated_copy_is_never_adopted_whatever_its_version() {
        let good = sealed("web start\n", 2);
        let high = sealed("web stop\ndb stop\n", 9);
        let cut = &high[..high.len() - 3];
        let copies = [(1, facts(&good)), (2, facts(cut)), (3, None)];
        assert_eq!(
            decide(&copies, 3, None, Millis::ZERO, S),
            Decision::Adopt { from: 1, theirs: classify(&good).version().unwrap(), mine: None }
        );
        assert_eq!(decide(&copies, 1, None, Millis::ZERO, S), Decision::UpToDate);
        // My own truncated copy is replaced by the best complete one, once
        // it has stayed so for the settle time (an editor's rewrite in
        // place starts with a short file: not overtaken).
        assert_eq!(
            decide(&copies, 2, None, Millis(500), S),
            Decision::Settling { left: Millis(1_500) }
        );
        assert!(matches!(decide(&copies, 2, None, S, S), Decision::Adopt { from: 1, .. }));
    }

    #[test]
    fn a_hand_edit_is_sealed_above_every_version_seen_after_the_settle_time() {
        let other = sealed("web start\n", 5);
        let copies = [(1, facts(&other)), (2, facts(b"web stop\n"))];
        assert_eq!(
            decide(&copies, 2, None, Millis(500), S),
            Decision::Settling { left: Millis(1_500) }
        );
        assert_eq!(decide(&copies, 2, None, S, S), Decision::Seal { number: 6 });
        // Never adopted by another node before it is sealed.
        assert_eq!(decide(&copies, 1, None, S, S), Decision::UpToDate);
        // A hand edit equal to the best body takes that copy, no new version.
        let copies = [(1, facts(&other)), (2, facts(b"web start\n"))];
        assert!(matches!(
            decide(&copies, 2, None, Millis::ZERO, S),
            Decision::Adopt { from: 1, .. }
        ));
        // An unparsable hand edit is left alone.
        let copies = [
            (1, facts(&other)),
            (2, Some(Facts { seal: classify(b"web"), parses: false, writer: None })),
        ];
        assert_eq!(decide(&copies, 2, None, S, S), Decision::UpToDate);
    }

    /// Issue 12, seed 36 at N = 3: node 1 sealed the operator's edit as
    /// version 7, and the write was torn. Node 2's version 6 is the best
    /// complete copy in sight, but older than mine: my copy is rewritten
    /// from my last sealed copy (kept in memory), never replaced by 6.
    #[test]
    fn my_truncated_copy_is_written_back_from_my_last_sealed_copy_when_it_is_newer() {
        let v6 = sealed("g03 stop\n", 6);
        let v7 = sealed("g03 start\n", 7);
        let torn = &v7[..v7.len() / 2];
        let copies = [(1, facts(torn)), (2, facts(&v6)), (3, facts(&v6))];
        let version = |bytes: &[u8]| classify(bytes).version().expect("sealed");
        let (k6, k7) = (version(&v6), version(&v7));
        assert_eq!(decide(&copies, 1, Some(k7), S, S), Decision::Restore { version: k7 });
        // Nothing complete anywhere: written back too.
        let alone = [(1, facts(torn)), (2, None)];
        assert_eq!(decide(&alone, 1, Some(k7), S, S), Decision::Restore { version: k7 });
        // Mine is not newer (older, or the same version): the best is adopted.
        for kept in [None, Some(version(&sealed("g03 start\n", 5))), Some(k6)] {
            assert_eq!(
                decide(&copies, 1, kept, S, S),
                Decision::Adopt { from: 2, theirs: k6, mine: None },
                "kept {kept:?}"
            );
        }
        // A newer sealed copy elsewhere wins over what I kept.
        let v8 = sealed("g03 stop 2\n", 8);
        let copies = [(1, facts(torn)), (2, facts(&v8))];
        assert!(matches!(decide(&copies, 1, Some(k7), S, S), Decision::Adopt { from: 2, .. }));
    }

    /// Issue 12, seed 26 at N = 3: node 2 sealed version 2 ("g03 stop");
    /// the operator edits node 2's copy back to "g03 start", the body of
    /// version 1 that a stale copy elsewhere still shows. Taking that copy
    /// would let version 2 win again: the edit is sealed above my own last
    /// version (remembered: my hand-edited copy no longer shows it).
    #[test]
    fn a_hand_edit_back_to_an_older_content_is_sealed_above_my_last_version() {
        let v1 = sealed("g03 start\n", 1);
        let v2 = classify(&sealed("g03 stop\n", 2)).version().expect("sealed");
        let copies = [(1, facts(&v1)), (2, facts(b"g03 start\n")), (3, facts(&v1))];
        assert_eq!(
            decide(&copies, 2, Some(v2), Millis(500), S),
            Decision::Settling { left: Millis(1_500) }
        );
        assert_eq!(decide(&copies, 2, Some(v2), S, S), Decision::Seal { number: 3 });
        // The same edit equal to the newest version known takes that copy.
        let v1v = classify(&v1).version();
        assert!(matches!(
            decide(&copies, 2, v1v, Millis::ZERO, S),
            Decision::Adopt { from: 1, .. }
        ));
        assert!(matches!(
            decide(&copies, 2, None, Millis::ZERO, S),
            Decision::Adopt { from: 1, .. }
        ));
    }

    /// The copy `mosha status` shows is the one `decide` makes every node
    /// adopt: highest version, equal numbers to the higher checksum; a
    /// truncated, hand-edited or unparsable copy never wins, whatever its
    /// number.
    #[test]
    fn converged_is_the_copy_every_node_adopts() {
        let (a, b) = (sealed("web start\n", 3), sealed("web stop\n", 3));
        let v5 = sealed("db start\n", 5);
        let cut = &v5[..v5.len() - 2];
        let high = sealed("web start 2\n", 9);
        let version = |bytes: &[u8]| classify(bytes).version().expect("sealed");
        let unparsable = Some(Facts { seal: classify(&high), parses: false, writer: None });
        let copies = [
            (1, facts(&a)),
            (2, facts(&b)),
            (3, facts(cut)),
            (4, facts(b"web stop\ndb start\n")),
            (5, unparsable),
            (6, None),
        ];
        let tie = if version(&a) > version(&b) { (1, version(&a)) } else { (2, version(&b)) };
        assert_eq!(converged(&copies), Some(tie));
        // Every node that is not the winner adopts exactly it.
        for me in [3, 6] {
            match decide(&copies, me, None, S, S) {
                Decision::Adopt { from, theirs, .. } => assert_eq!((from, theirs), tie),
                other => panic!("node {me}: {other:?}"),
            }
        }
        // The same content twice: the first in list order.
        let copies = [(4, facts(&v5)), (2, facts(&v5))];
        assert_eq!(converged(&copies), Some((4, version(&v5))));
        // Nothing sealed that parses: none.
        assert_eq!(converged(&[(1, facts(cut)), (2, facts(b"web start\n")), (3, None)]), None);
    }

    #[test]
    fn not_listed_and_no_copy() {
        assert_eq!(decide(&[(1, None)], 2, None, S, S), Decision::NotListed);
        assert_eq!(decide(&[(1, None), (2, None)], 2, None, S, S), Decision::NoCopy);
    }

    /// One node's file in the convergence model.
    #[derive(Debug, Clone)]
    struct File {
        bytes: Vec<u8>,
        /// When its content last changed (model ms).
        since: u64,
        /// The node's last sealed copy (written or read as its own), kept
        /// in memory: what a torn copy of its own is written back from.
        kept: Option<Vec<u8>>,
    }

    /// Node `me` reads (`views`: every node's copy as it sees it) and
    /// acts; `torn`: a write of its keeps only half the bytes, while the
    /// node believes the whole was written (kept in memory).
    fn step(files: &mut [File], views: &[Vec<u8>], me: usize, now: u64, torn: bool) {
        let copies: Vec<(u32, Option<Facts>)> = views
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let bytes = if i == me { &files[me].bytes } else { b };
                (i as u32, (!bytes.is_empty()).then(|| facts(bytes)).flatten())
            })
            .collect();
        if matches!(classify(&files[me].bytes), Seal::Sealed(_)) {
            files[me].kept = Some(files[me].bytes.clone());
        }
        let kept = files[me].kept.as_deref().and_then(|k| classify(k).version());
        let unchanged = Millis(now.saturating_sub(files[me].since));
        let new = match decide(&copies, me as u32, kept, unchanged, S) {
            Decision::Adopt { from, .. } => views[from as usize].clone(),
            // As the monitor seals: naming the node (`by=`) above version 1.
            Decision::Seal { number } => seal_edit(body(&files[me].bytes), number, me as u32),
            Decision::Restore { .. } => files[me].kept.clone().unwrap_or_default(),
            _ => return,
        };
        files[me].kept = Some(new.clone());
        let new = if torn { new[..new.len() / 2].to_vec() } else { new };
        if new != files[me].bytes {
            files[me].bytes = new;
            files[me].since = now;
        }
    }

    fn content() -> impl Strategy<Value = Vec<u8>> {
        let body = prop::sample::select(vec!["web start\n", "web stop\n", "db start 2\n"]);
        let kind = 0..4u8;
        (body, kind, 0..4u64).prop_map(|(b, k, n)| match k {
            0 => Vec::new(),
            1 => b.as_bytes().to_vec(),
            2 => {
                let s = seal(b.as_bytes(), n);
                s[..s.len() - 2].to_vec()
            }
            _ => seal(b.as_bytes(), n),
        })
    }

    proptest! {
        /// The seal line round-trips: whatever the body, number and writer,
        /// the copy is sealed as that number and the body's checksum,
        /// gives back its body and writer, and is the same version as the
        /// seal without `by=` (what an older writer wrote, and what an
        /// older reader, skipping the field, sees).
        #[test]
        fn a_seal_round_trips_with_or_without_its_writer(
            bytes in prop::collection::vec(any::<u8>(), 0..200),
            number in 0..=MAX_VERSION,
            by in prop::option::of(any::<u32>()),
        ) {
            let sealed = match by {
                Some(w) => seal_by(&bytes, number, w),
                None => seal(&bytes, number),
            };
            let v = Version { number, sum: fnv1a64(&bytes) };
            prop_assert_eq!(classify(&sealed), Seal::Sealed(v));
            prop_assert_eq!(body(&sealed), &bytes[..]);
            prop_assert_eq!(writer(&sealed), by);
            prop_assert_eq!(classify(&seal(&bytes, number)), Seal::Sealed(v));
            // A monitor's seal of a hand edit names it above version 1.
            let w = by.unwrap_or(3);
            let edit = seal_edit(&bytes, number, w);
            prop_assert_eq!(classify(&edit), Seal::Sealed(v));
            prop_assert_eq!(writer(&edit), (number > 1).then_some(w));
        }

        /// Any order of reads, stale or fresh, converges: once every node
        /// has read every other's current copy a few times, all hold the
        /// same sealed content.
        #[test]
        fn any_order_of_reads_converges_to_one_content(
            initial in prop::collection::vec(content(), 2..5),
            order in prop::collection::vec(
                (0..5usize, prop::collection::vec(any::<bool>(), 5), 0..8u8),
                0..40,
            ),
        ) {
            let n = initial.len();
            let mut files: Vec<File> =
                initial.into_iter().map(|bytes| File { bytes, since: 0, kept: None }).collect();
            let mut history: Vec<Vec<Vec<u8>>> = files.iter().map(|f| vec![f.bytes.clone()]).collect();
            let mut now = 0;
            // A random phase: each read sees every other node's current or
            // first-known copy (late reads through a slow file system).
            // Some writes are torn (action 0) and an operator edits a copy
            // by hand (actions 1 and 2, to an older body or a new one).
            for (who, stale, action) in order {
                let me = who % n;
                now += 700;
                let views: Vec<Vec<u8>> = (0..n)
                    .map(|i| if stale[i] { history[i][0].clone() } else { files[i].bytes.clone() })
                    .collect();
                match action {
                    1 | 2 => {
                        let edit = ["web start\n", "db start 2\n"][action as usize - 1];
                        files[me].bytes = edit.as_bytes().to_vec();
                        files[me].since = now;
                    }
                    _ => step(&mut files, &views, me, now, action == 0),
                }
                for (i, f) in files.iter().enumerate() {
                    if history[i].last() != Some(&f.bytes) {
                        history[i].push(f.bytes.clone());
                    }
                }
            }
            // Then fresh rounds, each node in turn, past the settle time.
            for _ in 0..(2 * n + 2) {
                for me in 0..n {
                    now += SETTLE.0;
                    let views: Vec<Vec<u8>> = files.iter().map(|f| f.bytes.clone()).collect();
                    step(&mut files, &views, me, now, false);
                }
            }
            let bodies: Vec<&[u8]> = files.iter().map(|f| body(&f.bytes)).collect();
            let any_usable = files.iter().any(|f| {
                f.kept.is_some()
                    || !matches!(classify(&f.bytes), Seal::Truncated { .. }) && !f.bytes.is_empty()
            });
            if any_usable {
                for f in &files {
                    prop_assert!(matches!(classify(&f.bytes), Seal::Sealed(_)), "{:?}", files);
                }
                prop_assert!(bodies.iter().all(|b| *b == bodies[0]), "{:?}", files);
                prop_assert!(files.iter().all(|f| f.bytes == files[0].bytes), "{:?}", files);
            }
        }
    }
}
