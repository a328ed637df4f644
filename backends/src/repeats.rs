//! Warnings that repeat from cycle to cycle, said without flooding the log.
//!
//! **Why.** `mosha`'s loop meets the same trouble every cycle while it
//! lasts (a peer's unreadable clstat, a read that never answers, a write
//! the disk refuses): a line per cycle buried everything else, and saying
//! it only once (the rule before this module) left an operator who read
//! the log an hour later no way to tell whether the trouble still held, or
//! when it ended. So each warning, keyed by what it is about:
//!
//! - is said at **warn** the first time it is seen;
//! - while it persists, is said again at most once per
//!   [`REMIND_EVERY`] (a minute), at warn, with how many times it was seen
//!   meanwhile; the repeats in between go to debug;
//! - when it is no longer seen, gets one **info** line saying it no longer
//!   holds, and how long it lasted.
//!
//! "No longer seen" is judged at cycle ends: a warning not seen during
//! [`CLEAR_AFTER`] whole cycles in a row is over (one cycle could miss it
//! without the trouble being over: a hung read is not asked again while it
//! hangs). A cycle whose view was blind (membership unknown, no node read)
//! proves nothing either way: [`Repeats::hold_cycle`] ends it without
//! counting it.
//!
//! Pure: the clock is the caller's (`now`, ms on a monotonic clock), so the
//! rule is tested without sleeping. The caller logs the lines it returns.

use clinit_engine::time::Millis;
use std::collections::BTreeMap;

/// How often a persisting warning is said again: once a minute.
pub const REMIND_EVERY: Millis = Millis(60_000);

/// How many whole cycles in a row a warning must go unseen to be over.
pub const CLEAR_AFTER: u32 = 2;

/// What to log for one sighting of a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting {
    /// First seen (or seen again after it was over): log at warn.
    New(String),
    /// Still so, and the last line about it is at least [`REMIND_EVERY`]
    /// old: log at warn (the text says how often it was seen meanwhile).
    Reminder(String),
    /// Still so, said recently: log at debug.
    Repeat(String),
}

/// One warning that holds.
#[derive(Debug, Clone)]
struct Held {
    text: String,
    first_seen: Millis,
    last_said: Millis,
    /// Sightings since the last line at warn.
    unsaid: u64,
    /// Sightings since it was first seen.
    total: u64,
    seen_this_cycle: bool,
    /// Whole cycles in a row without a sighting.
    missed: u32,
}

/// The warnings that hold, by key.
#[derive(Debug, Clone)]
pub struct Repeats {
    held: BTreeMap<String, Held>,
    remind_every: Millis,
    clear_after: u32,
}

impl Default for Repeats {
    fn default() -> Self {
        Repeats::new(REMIND_EVERY, CLEAR_AFTER)
    }
}

impl Repeats {
    pub fn new(remind_every: Millis, clear_after: u32) -> Repeats {
        Repeats { held: BTreeMap::new(), remind_every, clear_after: clear_after.max(1) }
    }

    /// The warning `key` is seen at `now`; `text` says it (made only when
    /// it will be logged, at whatever level).
    pub fn seen(&mut self, now: Millis, key: String, text: impl FnOnce() -> String) -> Sighting {
        let text = text();
        let Some(held) = self.held.get_mut(&key) else {
            let held = Held {
                text: text.clone(),
                first_seen: now,
                last_said: now,
                unsaid: 0,
                total: 1,
                seen_this_cycle: true,
                missed: 0,
            };
            self.held.insert(key, held);
            return Sighting::New(text);
        };
        held.seen_this_cycle = true;
        held.missed = 0;
        held.total += 1;
        held.unsaid += 1;
        held.text.clone_from(&text);
        if now.saturating_sub(held.last_said) < self.remind_every {
            return Sighting::Repeat(text);
        }
        let line = format!(
            "{text} (still so: seen {} more times in the last {}; first seen {} ago)",
            held.unsaid,
            now.saturating_sub(held.last_said),
            now.saturating_sub(held.first_seen)
        );
        held.last_said = now;
        held.unsaid = 0;
        Sighting::Reminder(line)
    }

    /// A cycle ended at `now`: the warnings unseen for [`CLEAR_AFTER`]
    /// cycles in a row are over. Returns their lines (log at info).
    pub fn end_cycle(&mut self, now: Millis) -> Vec<String> {
        let mut over = Vec::new();
        let clear_after = self.clear_after;
        self.held.retain(|_, held| {
            if std::mem::take(&mut held.seen_this_cycle) {
                return true;
            }
            held.missed += 1;
            if held.missed < clear_after {
                return true;
            }
            over.push(format!(
                "no longer so: {} (it held {}, seen {} times)",
                held.text,
                now.saturating_sub(held.first_seen),
                held.total
            ));
            false
        });
        over
    }

    /// How many warnings hold.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> impl FnOnce() -> String + '_ {
        move || s.to_string()
    }

    /// A warning seen every cycle (1 s apart) for three minutes: one line
    /// at first, one reminder a minute with the count, then one "no longer"
    /// line two cycles after it stops.
    #[test]
    fn a_persisting_warning_is_said_once_then_reminded_each_minute_then_cleared() {
        let mut r = Repeats::default();
        let mut warn = Vec::new();
        let mut debug = 0;
        for s in 0..180u64 {
            let now = Millis(s * 1000);
            match r.seen(now, "unreadable 2".into(), text("node 2's clstat is unreadable")) {
                Sighting::New(l) | Sighting::Reminder(l) => warn.push((s, l)),
                Sighting::Repeat(_) => debug += 1,
            }
            assert!(r.end_cycle(now).is_empty(), "still seen at {s} s");
        }
        assert_eq!(warn.len(), 3, "{warn:?}");
        assert_eq!(warn[0], (0, "node 2's clstat is unreadable".to_string()));
        assert_eq!(warn[1].0, 60);
        assert_eq!(
            warn[1].1,
            "node 2's clstat is unreadable (still so: seen 60 more times in the last 60s; first \
             seen 60s ago)"
        );
        assert_eq!(warn[2].0, 120);
        assert_eq!(debug, 177);
        // It stops: one cycle without it is not yet the end; two are.
        assert!(r.end_cycle(Millis(180_000)).is_empty());
        let over = r.end_cycle(Millis(181_000));
        assert_eq!(
            over,
            vec!["no longer so: node 2's clstat is unreadable (it held 181s, seen 180 times)"]
        );
        assert!(r.is_empty());
        // And if it comes back, it is new again.
        assert!(matches!(
            r.seen(Millis(200_000), "unreadable 2".into(), text("x")),
            Sighting::New(_)
        ));
    }

    #[test]
    fn warnings_are_kept_apart_by_key_and_a_missed_cycle_is_forgiven() {
        let mut r = Repeats::new(Millis(10_000), 2);
        assert!(matches!(r.seen(Millis(0), "a".into(), text("a")), Sighting::New(_)));
        assert!(matches!(r.seen(Millis(0), "b".into(), text("b")), Sighting::New(_)));
        assert!(r.end_cycle(Millis(1)).is_empty());
        // Cycle 2: only "a" is seen; "b" missed one cycle.
        assert!(matches!(r.seen(Millis(1_000), "a".into(), text("a")), Sighting::Repeat(_)));
        assert!(r.end_cycle(Millis(1_001)).is_empty());
        // Cycle 3: "b" is back before its second miss: no line at all.
        assert!(matches!(r.seen(Millis(2_000), "b".into(), text("b")), Sighting::Repeat(_)));
        let over = r.end_cycle(Millis(2_001));
        assert!(over.is_empty(), "{over:?}");
        // Cycle 4 without "a" (it missed cycle 3 too): over. "b" is not.
        let over = r.end_cycle(Millis(3_000));
        assert_eq!(over.len(), 1, "{over:?}");
        assert!(over[0].starts_with("no longer so: a ("), "{over:?}");
        assert_eq!(r.len(), 1);
    }

    /// The text a reminder repeats is the latest one (a write error whose
    /// retry time changed says the new time).
    #[test]
    fn a_reminder_says_the_latest_text() {
        let mut r = Repeats::new(Millis(1_000), 1);
        r.seen(Millis(0), "w".into(), text("retry in 1s"));
        r.seen(Millis(500), "w".into(), text("retry in 2s"));
        let Sighting::Reminder(line) = r.seen(Millis(1_000), "w".into(), text("retry in 3s"))
        else {
            panic!("no reminder")
        };
        assert!(line.starts_with("retry in 3s (still so: seen 2 more times"), "{line}");
    }
}
