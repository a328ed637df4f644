//! The order in which membership hooks (`--on-nodeup`, `--on-nodedown`)
//! run: once per transition, in transition order, never two at once
//! (issue 12: keepalived's notify scripts are known to run out of order;
//! these must not). `mosha`'s hook thread and the simulator's hook model
//! both take hooks from this queue; how a hook runs (a shell command with
//! a time-out, or a simulated duration) is theirs.

use super::Transition;
use std::collections::VecDeque;

/// Transitions waiting for their hook, and the one whose hook runs.
#[derive(Debug, Clone, Default)]
pub struct HookQueue {
    waiting: VecDeque<Transition>,
    /// The number whose hook runs now.
    running: Option<u64>,
    /// The highest number ever queued (a number is queued once).
    queued: u64,
}

impl HookQueue {
    /// Queue `t`'s hook; ignored when its number is not above every number
    /// queued before (a repeat, or one out of order).
    pub fn push(&mut self, t: Transition) -> bool {
        if t.number <= self.queued {
            return false;
        }
        self.queued = t.number;
        self.waiting.push_back(t);
        true
    }

    /// The next hook to start, if none runs now; it runs until
    /// [`HookQueue::finished`].
    pub fn start_next(&mut self) -> Option<Transition> {
        if self.running.is_some() {
            return None;
        }
        let t = self.waiting.pop_front()?;
        self.running = Some(t.number);
        Some(t)
    }

    /// The hook of transition `number` ended (done, failed or killed).
    pub fn finished(&mut self, number: u64) {
        if self.running == Some(number) {
            self.running = None;
        }
    }

    /// The number whose hook runs now.
    pub fn running(&self) -> Option<u64> {
        self.running
    }

    /// Hooks waiting to start.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Change;
    use super::*;

    fn t(number: u64) -> Transition {
        Transition { number, node: 2, change: Change::Down, at_ms: 0, by: 1, reason: "r".into() }
    }

    #[test]
    fn hooks_run_in_order_one_at_a_time_once_each() {
        let mut q = HookQueue::default();
        assert!(q.push(t(1)) && q.push(t(2)));
        assert!(!q.push(t(2)), "a number is queued once");
        assert!(!q.push(t(1)), "never backwards");
        assert_eq!(q.start_next().map(|t| t.number), Some(1));
        assert_eq!(q.start_next(), None, "one at a time");
        q.finished(2);
        assert_eq!(q.running(), Some(1), "only the running hook's end counts");
        q.finished(1);
        assert_eq!(q.start_next().map(|t| t.number), Some(2));
        q.finished(2);
        assert_eq!(q.start_next(), None);
        assert_eq!(q.waiting(), 0);
    }
}
