//! The node's own files: clstat, hastat and heartbeat writes, with their
//! acknowledgements (`StatusWritten`, as raft-rs acknowledges persistence)
//! and retries. A failed write is written again, with the newest content,
//! within a quarter of the heartbeat period (at most 1 s), so before the
//! next heartbeat would have rewritten it.

use super::*;

/// Longest wait before a failed status or heartbeat write is retried.
pub(super) const WRITE_RETRY_CAP: Millis = Millis(1_000);

/// Shortest heartbeat period, however short the timeout.
pub(super) const MIN_HEARTBEAT: Millis = Millis(100);

/// The latest write of one file, for retries.
#[derive(Debug, Clone)]
pub(super) struct Write<T> {
    pub(super) seq: Option<u64>,
    pub(super) latest: Option<T>,
    pub(super) retry_at: Option<Millis>,
}

impl<T> Default for Write<T> {
    fn default() -> Self {
        Write { seq: None, latest: None, retry_at: None }
    }
}

/// Heartbeat-file bookkeeping.
#[derive(Debug, Clone, Default)]
pub(super) struct Beats {
    pub(super) next_at: Option<Millis>,
    pub(super) counter: u64,
    pub(super) seq: Option<u64>,
    pub(super) retry_at: Option<Millis>,
    /// Before the first beat is written (bounded by the read deadline), no
    /// cycle starts: this node should be a member of its own first view.
    pub(super) first_until: Option<Millis>,
    pub(super) removed: bool,
}

impl ClusterDriver {
    pub(super) fn retry_delay(&self) -> Millis {
        Millis((heartbeat_for(self.timeout).0 / 4).max(1)).min(WRITE_RETRY_CAP)
    }

    pub(super) fn write_clstat(&mut self, status: ClStat) {
        let seq = self.next_seq();
        self.clstat = Write { seq: Some(seq), latest: Some(status.clone()), retry_at: None };
        self.commands.push_back(ClusterCommand::WriteClstat { seq, status });
    }

    pub(super) fn write_hastat(&mut self, published: Published) {
        let seq = self.next_seq();
        self.hastat = Write { seq: Some(seq), latest: Some(published.clone()), retry_at: None };
        self.commands.push_back(ClusterCommand::WriteHastat { seq, published });
    }

    pub(super) fn beat(&mut self, now: Millis) {
        let seq = self.next_seq();
        self.beats.counter += 1;
        self.beats.seq = Some(seq);
        self.beats.retry_at = None;
        self.beats.next_at = Some(now + heartbeat_for(self.timeout).max(MIN_HEARTBEAT));
        let counter = self.beats.counter;
        self.commands.push_back(ClusterCommand::WriteHeartbeat { seq, counter, payload: None });
    }

    pub(super) fn on_written(
        &mut self,
        now: Millis,
        seq: u64,
        file: SharedFile,
        result: Result<(), IoFailure>,
    ) {
        if file == SharedFile::Heartbeat && self.beats.seq == Some(seq) {
            self.beats.first_until = None;
        }
        let Err(error) = result else { return };
        let retry_at = now + self.retry_delay();
        let latest = match file {
            SharedFile::Clstat => self.clstat.seq == Some(seq),
            SharedFile::Hastat => self.hastat.seq == Some(seq),
            SharedFile::Heartbeat => self.beats.seq == Some(seq) && !self.beats.removed,
            _ => false,
        };
        if latest {
            match file {
                SharedFile::Clstat => self.clstat.retry_at = Some(retry_at),
                SharedFile::Hastat => self.hastat.retry_at = Some(retry_at),
                _ => self.beats.retry_at = Some(retry_at),
            }
        }
        self.events.push_back(ClusterEvent::WriteFailed { file, seq, error, retry_at });
    }
}
