//! Graceful stop (SIGTERM): tell `stop` to every local group, wait for
//! them (bounded by the configured wait, reported every 5 s), then halt the
//! init machine. A second stop halts at once.

use super::*;

/// How often a stopping node looks again at its groups (SIGTERM).
pub(super) const STOP_POLL: Millis = Millis(100);

/// How often a stopping node says what it still waits for.
pub(super) const STOP_REPORT: Millis = Millis(5_000);

/// A graceful stop in progress.
#[derive(Debug, Clone)]
pub(super) struct Stopping {
    pub(super) started: Millis,
    pub(super) deadline: Millis,
    pub(super) next_check: Millis,
    pub(super) next_report: Millis,
    pub(super) halted: bool,
}

impl ClusterDriver {
    pub(super) fn on_stop(&mut self, now: Millis) {
        match &mut self.stopping {
            Some(s) => {
                if !s.halted {
                    s.halted = true;
                    self.events.push_back(ClusterEvent::Halting);
                    self.init_step(now, Input::Shutdown);
                }
            }
            None => {
                // `ranked` stops planning and hands its groups over.
                self.ranked_queue(crate::monitor::ranked::Input::Leave);
                self.stopping = Some(Stopping {
                    started: now,
                    deadline: now + self.cfg.shutdown_wait,
                    next_check: now,
                    next_report: now,
                    halted: false,
                });
            }
        }
    }

    /// Tell every local group `stop` in the init machine, as a
    /// [`Record::StopAll`] in the trace. Every stop-all outside a cycle
    /// goes through here: the init machine's inputs must all be recorded,
    /// or a replay keeps groups running that the recording stopped.
    pub(super) fn stop_all_traced(&mut self, now: Millis) -> (Vec<String>, Vec<Executed>) {
        let (told, executed) = self.node.stop_all(now);
        if let Some(tap) = &mut self.trace {
            let record = Record::StopAll { node: self.cfg.me, at: now };
            tap.push(record, TraceOutcome::StopAll { told: &told, executed: &executed });
        }
        (told, executed)
    }

    /// Stop: tell every local group `stop`, wait for them, then halt.
    pub(super) fn stop_check(&mut self, now: Millis) {
        let Some(s) = &self.stopping else { return };
        if s.halted || now < s.next_check {
            return;
        }
        let (told, executed) = self.stop_all_traced(now);
        self.absorb(now, executed);
        if !told.is_empty() {
            self.events.push_back(ClusterEvent::Stopping { told });
        }
        let busy = self.node.busy_groups();
        let Some(s) = &mut self.stopping else { return };
        let halt = if busy.is_empty() {
            self.events.push_back(ClusterEvent::Stopped);
            true
        } else if now >= s.deadline {
            let waited = now.saturating_sub(s.started);
            self.events.push_back(ClusterEvent::StopTimedOut { busy, waited });
            true
        } else {
            if now >= s.next_report {
                s.next_report = now + STOP_REPORT;
                self.events.push_back(ClusterEvent::StopWaiting { busy });
            }
            s.next_check = now + STOP_POLL;
            false
        };
        if halt {
            s.halted = true;
            self.events.push_back(ClusterEvent::Halting);
            self.init_step(now, Input::Shutdown);
        }
    }
}
