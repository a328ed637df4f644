//! Membership transitions: a numbered history that only moves forward, the
//! same on every node, and readable by a node that joins later (issue 12;
//! the CI/CLMS design keeps such a transition history, and its hooks run
//! once per transition, in order).
//!
//! **How the history stays one.** Each node keeps a copy of the history in
//! its own shared directory (`<mfsbase>/<N>/<varpath>/transitions`), sealed
//! as replicated files are ([`super::replica_version`]): the version is the
//! last transition's number, so a torn copy is never taken. A reader takes
//! the best copy among all nodes: the highest last number, then the
//! content-hash tie-break ([`History::best`]). Only one node appends: the
//! *recorder*, the lowest-numbered node of its own membership view, and only
//! while that view holds a majority of the known nodes ([`recorder`]). It
//! appends to the best history it has read, so numbers only grow.
//!
//! **Limits.** Two nodes can both believe they are the recorder while their
//! views differ (for at most a membership round: the majority rule keeps a
//! minority side from recording at all). Their histories then fork at the
//! same number; once both are read, the content-hash tie-break picks one, and
//! the other fork's entries are dropped everywhere. A node's hooks may
//! already have run for a dropped entry; they never run twice for a number.
//!
//! A transition records the recorder's wall clock (ms since the epoch) for
//! operators only: no rule compares it with another clock.

mod hook_queue;
mod record;

pub use hook_queue::HookQueue;
pub use record::{ReadPlan, Recorder, Step, FULL_EVERY, SETTLE_POLLS};

use super::replica_version::{body, classify, seal};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// How many transitions a history file keeps (older ones drop off the
/// front; their numbers are never reused).
pub const KEEP: usize = 200;

/// A node came up or went down (`up`/`down` in files and JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Up,
    Down,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Up => "up",
            Change::Down => "down",
        })
    }
}

/// One membership transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Its place in the history, from 1, never reused.
    pub number: u64,
    pub node: u32,
    pub change: Change,
    /// The recorder's wall clock, ms since the epoch (for operators).
    pub at_ms: i64,
    /// The node that recorded it.
    pub by: u32,
    /// Why (one line).
    pub reason: String,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} {}: {}, transition {}", self.node, self.change, self.reason, self.number)
    }
}

/// A history file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("not sealed or truncated: {0}")]
    Unsealed(String),
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("numbers do not increase at line {line}")]
    Order { line: usize },
}

/// The transition history (ascending numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub entries: Vec<Transition>,
    /// The last number ever given (entries may have dropped off the front).
    pub last: u64,
}

impl History {
    /// Append a transition; returns its number (one above the last).
    pub fn append(&mut self, node: u32, change: Change, at_ms: i64, by: u32, reason: &str) -> u64 {
        self.last += 1;
        let reason = reason.replace(['\n', '\r'], " ");
        self.entries.push(Transition { number: self.last, node, change, at_ms, by, reason });
        if self.entries.len() > KEEP {
            let drop = self.entries.len() - KEEP;
            self.entries.drain(..drop);
        }
        self.last
    }

    /// Entries numbered above `n`, in order.
    pub fn after(&self, n: u64) -> &[Transition] {
        let from = self.entries.partition_point(|t| t.number <= n);
        &self.entries[from..]
    }

    /// Each node's last change in the history (nodes it never names are
    /// absent): the membership the history says, as far as it knows.
    pub fn states(&self) -> std::collections::BTreeMap<u32, Change> {
        self.entries.iter().map(|t| (t.node, t.change)).collect()
    }

    /// The last `k` entries.
    pub fn tail(&self, k: usize) -> &[Transition] {
        &self.entries[self.entries.len().saturating_sub(k)..]
    }

    /// The file's bytes: sealed with the last number as its version, one
    /// line per transition: `number change node at_ms by reason`.
    pub fn render(&self) -> Vec<u8> {
        let mut text =
            String::from("# membership transitions (mosha): number change node at_ms by reason\n");
        text.push_str(&format!("last {}\n", self.last));
        for t in &self.entries {
            text.push_str(&format!(
                "{} {} {} {} {} {}\n",
                t.number, t.change, t.node, t.at_ms, t.by, t.reason
            ));
        }
        seal(text.as_bytes(), self.last)
    }

    /// Parse a history file; only a complete, sealed one is accepted.
    pub fn parse(bytes: &[u8]) -> Result<History, HistoryError> {
        let seal = classify(bytes);
        if seal.version().is_none() {
            return Err(HistoryError::Unsealed(format!("{seal:?}")));
        }
        let text = String::from_utf8_lossy(body(bytes));
        let mut history = History::default();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 2;
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let bad = |reason: &str| HistoryError::Line { line: line_no, reason: reason.into() };
            if let Some(n) = line.strip_prefix("last ") {
                history.last = n.trim().parse().map_err(|_| bad("bad last number"))?;
                continue;
            }
            let mut f = line.splitn(6, ' ');
            let number: u64 = f.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("number"))?;
            let change = match f.next() {
                Some("up") => Change::Up,
                Some("down") => Change::Down,
                _ => return Err(bad("change is not up or down")),
            };
            let node = f.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("node"))?;
            let at_ms = f.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("time"))?;
            let by = f.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("recorder"))?;
            let reason = f.next().unwrap_or_default().to_string();
            if history.entries.last().is_some_and(|t| t.number >= number) {
                return Err(HistoryError::Order { line: line_no });
            }
            history.entries.push(Transition { number, node, change, at_ms, by, reason });
        }
        let top = history.entries.last().map_or(0, |t| t.number);
        history.last = history.last.max(top);
        Ok(history)
    }

    /// The best of several histories: the highest last number, then the
    /// higher content checksum (the tie-break replicated files use).
    ///
    /// The checksum (a render of the whole history) is computed only
    /// between histories with the same last number: the common case, one
    /// history ahead of the others, costs no render.
    pub fn best(histories: impl IntoIterator<Item = History>) -> Option<History> {
        let sum = |h: &History| classify(&h.render()).version().map_or(0, |v| v.sum);
        let mut best: Option<(History, Option<u64>)> = None;
        for h in histories {
            best = match best {
                None => Some((h, None)),
                Some((b, _)) if h.last > b.last => Some((h, None)),
                Some((b, bs)) if h.last < b.last || h == b => Some((b, bs)),
                Some((b, bs)) => {
                    let bs = bs.unwrap_or_else(|| sum(&b));
                    let hs = sum(&h);
                    if hs > bs {
                        Some((h, Some(hs)))
                    } else {
                        Some((b, Some(bs)))
                    }
                }
            };
        }
        best.map(|(h, _)| h)
    }
}

/// The recorder of a membership view: its lowest-numbered node, but only
/// when the view holds a strict majority of `known` (an empty `known`
/// means the view itself: no majority check, as under `classic`).
pub fn recorder(view: &BTreeSet<u32>, known: &[u32]) -> Option<u32> {
    recorder_tie_break(view, known, &BTreeSet::new(), false)
}

/// [`recorder`] with `ranked`'s exact-half rule when `tie_break` is set
/// (the rule its lease uses, as Corosync's `auto_tie_breaker`): a view
/// holding exactly half of `known` still has a recorder when it holds the
/// lowest-numbered known node, or when this node fenced a known node
/// outside the view successfully (`fenced`: that node is dead, and its
/// vote goes with the fencer, as the lease counts it). So the surviving
/// node of a 2-node cluster records its peer's `down`, and only one side
/// of an exact split records. Without `tie_break`, `fenced` is ignored.
pub fn recorder_tie_break(
    view: &BTreeSet<u32>,
    known: &[u32],
    fenced: &BTreeSet<u32>,
    tie_break: bool,
) -> Option<u32> {
    if !known.is_empty() {
        let holds = |n: &u32| view.contains(n) || (tie_break && fenced.contains(n));
        let seen = known.iter().filter(|n| holds(n)).count();
        let half = 2 * seen == known.len();
        let tie_won = tie_break && half && known.iter().min().is_some_and(holds);
        if 2 * seen < known.len() || (half && !tie_won) {
            return None;
        }
    }
    view.iter().next().copied()
}

/// Turns successive membership views into changes.
#[derive(Debug, Clone, Default)]
pub struct Observer {
    last: Option<BTreeSet<u32>>,
}

impl Observer {
    /// A view was seen already.
    pub fn seen(&self) -> bool {
        self.last.is_some()
    }

    /// The last view seen (empty before the first).
    pub fn view(&self) -> Vec<u32> {
        self.last.iter().flatten().copied().collect()
    }

    /// The changes from the previous view to `view` (none for the first
    /// view: a node that starts records nothing until it has seen twice).
    pub fn observe(&mut self, view: &[u32]) -> Vec<(u32, Change)> {
        let now: BTreeSet<u32> = view.iter().copied().collect();
        let Some(before) = self.last.replace(now.clone()) else { return Vec::new() };
        let mut changes: Vec<(u32, Change)> =
            before.difference(&now).map(|&n| (n, Change::Down)).collect();
        changes.extend(now.difference(&before).map(|&n| (n, Change::Up)));
        changes.sort();
        changes
    }
}

/// The reason a heartbeat-file member is down: `"missed heartbeats for
/// 6.2 s (timeout 6 s)"`, or that it has none.
pub fn heartbeat_reason(age: Option<Millis>, timeout: Millis) -> String {
    match age {
        Some(age) => format!(
            "missed heartbeats for {:.1} s (timeout {} s)",
            age.0 as f64 / 1000.0,
            timeout.0 as f64 / 1000.0
        ),
        None => "no readable heartbeat".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_round_trips_and_a_cut_one_is_refused() {
        let mut h = History::default();
        assert_eq!(h.append(3, Change::Down, 1_000, 1, "missed heartbeats for 6.2 s"), 1);
        assert_eq!(h.append(3, Change::Up, 9_000, 1, "membership lists it up"), 2);
        let bytes = h.render();
        assert_eq!(History::parse(&bytes), Ok(h.clone()));
        for cut in 1..bytes.len() {
            assert!(History::parse(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        assert_eq!(h.after(1).len(), 1);
        assert_eq!(h.after(0).len(), 2);
        assert_eq!(h.tail(1)[0].number, 2);
        assert_eq!(
            h.entries[0].to_string(),
            "node 3 down: missed heartbeats for 6.2 s, transition 1"
        );
    }

    #[test]
    fn numbers_survive_dropping_old_entries() {
        let mut h = History::default();
        for i in 0..(KEEP + 5) {
            h.append(2, if i % 2 == 0 { Change::Down } else { Change::Up }, 0, 1, "r");
        }
        assert_eq!(h.entries.len(), KEEP);
        let back = History::parse(&h.render()).expect("parses");
        assert_eq!(back.last, (KEEP + 5) as u64);
        assert_eq!(back.entries[0].number, 6);
    }

    #[test]
    fn the_best_history_is_the_longest_then_the_checksum() {
        let mut a = History::default();
        a.append(2, Change::Down, 0, 1, "a");
        let mut b = a.clone();
        b.append(2, Change::Up, 0, 1, "b");
        assert_eq!(History::best([a.clone(), b.clone()]), Some(b.clone()));
        let mut c = a.clone();
        c.append(3, Change::Down, 0, 1, "c");
        let best = History::best([b.clone(), c.clone()]).expect("some");
        assert_eq!(History::best([c.clone(), b.clone()]), Some(best), "order does not matter");
    }

    #[test]
    fn the_recorder_is_the_lowest_node_of_a_majority_view() {
        let view: BTreeSet<u32> = [2, 3].into();
        assert_eq!(recorder(&view, &[1, 2, 3]), Some(2));
        let alone: BTreeSet<u32> = [1].into();
        assert_eq!(recorder(&alone, &[1, 2, 3]), None);
        assert_eq!(recorder(&alone, &[]), Some(1));
        // ranked's exact half: the half holding node 1 records, the other
        // half only with a successful fence of a node outside its view.
        let none = BTreeSet::new();
        let two: BTreeSet<u32> = [2].into();
        assert_eq!(recorder(&alone, &[1, 2]), None, "classic: half is not a majority");
        assert_eq!(recorder_tie_break(&alone, &[1, 2], &none, true), Some(1));
        assert_eq!(recorder_tie_break(&two, &[1, 2], &none, true), None);
        assert_eq!(recorder_tie_break(&two, &[1, 2], &[1].into(), true), Some(2));
        assert_eq!(recorder_tie_break(&two, &[1, 2], &[1].into(), false), None);
        let split: BTreeSet<u32> = [3, 4].into();
        assert_eq!(recorder_tie_break(&split, &[1, 2, 3, 4], &none, true), None);
        assert_eq!(recorder_tie_break(&split, &[1, 2, 3, 4], &[1].into(), true), Some(3));
        let other: BTreeSet<u32> = [1, 2].into();
        assert_eq!(recorder_tie_break(&other, &[1, 2, 3, 4], &none, true), Some(1));
        assert_eq!(recorder_tie_break(&alone, &[1, 2, 3, 4], &none, true), None, "a quarter");
    }

    #[test]
    fn the_observer_reports_changes_after_the_first_view() {
        let mut o = Observer::default();
        assert!(o.observe(&[1, 2, 3]).is_empty());
        assert_eq!(o.observe(&[1, 2]), vec![(3, Change::Down)]);
        assert_eq!(
            o.observe(&[1, 3, 4]),
            vec![(2, Change::Down), (3, Change::Up), (4, Change::Up)]
        );
        assert!(o.observe(&[1, 3, 4]).is_empty());
    }

    #[test]
    fn heartbeat_reasons_name_the_age_and_the_timeout() {
        assert_eq!(
            heartbeat_reason(Some(Millis(6_200)), Millis(6_000)),
            "missed heartbeats for 6.2 s (timeout 6 s)"
        );
    }
}
